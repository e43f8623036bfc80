//! The response cache's disk tier (`[cache] sled_mib`): answers that hold past the head (about a
//! block hash, or settled history at a block number), kept across restarts, bounded in bytes.
//!
//! Two trees, added without a schema bump (an older build ignores them and so starts with a
//! cold cache, which is safe):
//! - `cached_answers`: `chain_id(8, BE) ‖ method ‖ 0x00 ‖ params` → [`AnswerRecord`];
//! - `cached_answers_by_age`: `seq(8, BE)` → the answer's key: the oldest first, for eviction.
//!
//! The bytes kept (keys and values of both trees) are counted from a scan on first use, then
//! kept up to date under one lock; a write past the budget evicts the oldest answers.

use std::sync::Mutex;

use bincode::{Decode, Encode};

use super::{Store, StoreError};

/// One answer on disk.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct AnswerRecord {
    /// Insertion order (key of its `cached_answers_by_age` entry).
    pub seq: u64,
    /// The block number it depends on (settled history): dropped on a reorganisation of the
    /// chain. `None`: it names a block hash, or nothing that changes.
    pub at_block: Option<u64>,
    /// How far it was verified (`router::outcome::Verified` as a number).
    pub verified: u8,
    /// Who served it.
    pub served_by: String,
    /// The answer body.
    pub body: Vec<u8>,
}

/// Bytes counted per index entry besides the key: the 8-byte seq key.
const INDEX_ENTRY_OVERHEAD: u64 = 8;

/// Running totals of the tier, loaded on first use.
#[derive(Debug, Default)]
pub(super) struct AnswerTier {
    loaded: bool,
    bytes: u64,
    next_seq: u64,
}

/// Lock of [`AnswerTier`].
pub(super) type AnswerTierLock = Mutex<AnswerTier>;

fn answer_key(chain_id: u64, method: &str, params: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + method.len() + 1 + params.len());
    key.extend_from_slice(&chain_id.to_be_bytes());
    key.extend_from_slice(method.as_bytes());
    key.push(0);
    key.extend_from_slice(params.as_bytes());
    key
}

fn entry_bytes(key_len: usize, value_len: usize) -> u64 {
    // The answer entry, and its index entry (seq → key).
    (2 * key_len + value_len) as u64 + INDEX_ENTRY_OVERHEAD
}

impl Store {
    /// The cached answer to `method(params)` on `chain_id`, if kept.
    pub fn cached_answer(&self, chain_id: u64, method: &str, params: &str) -> Result<Option<AnswerRecord>, StoreError> {
        self.get_decoded(&self.inner.answers, "cached_answers", &answer_key(chain_id, method, params))
    }

    /// Keeps an answer (replacing one for the same question), then evicts the oldest until the
    /// tier holds at most `max_bytes`. The record's `seq` is assigned here.
    pub fn put_cached_answer(
        &self,
        chain_id: u64,
        method: &str,
        params: &str,
        mut record: AnswerRecord,
        max_bytes: u64,
    ) -> Result<(), StoreError> {
        let key = answer_key(chain_id, method, params);
        let mut tier = self.load_answer_tier()?;
        record.seq = tier.next_seq;
        tier.next_seq += 1;
        let value = self.encode(&record, "cached answer")?;
        let size = entry_bytes(key.len(), value.len());
        if size > max_bytes {
            return Ok(());
        }
        if let Some(old) = self.inner.answers.insert(&key, value).map_err(|e| self.backend(e))? {
            tier.bytes = tier.bytes.saturating_sub(entry_bytes(key.len(), old.len()));
            if let Ok(old) = rpcmesh_protocol::encoding::from_bytes::<AnswerRecord>(&old) {
                self.inner.answers_by_age.remove(old.seq.to_be_bytes()).map_err(|e| self.backend(e))?;
            }
        }
        self.inner.answers_by_age.insert(record.seq.to_be_bytes(), key).map_err(|e| self.backend(e))?;
        tier.bytes += size;
        while tier.bytes > max_bytes {
            let Some((_, old_key)) = self.inner.answers_by_age.pop_min().map_err(|e| self.backend(e))? else {
                break;
            };
            let removed = self.inner.answers.remove(&old_key).map_err(|e| self.backend(e))?;
            let value_len = removed.map_or(0, |v| v.len());
            tier.bytes = tier.bytes.saturating_sub(entry_bytes(old_key.len(), value_len));
        }
        Ok(())
    }

    /// Drops every cached answer of `chain_id` tied to a block number (a reorganisation was
    /// seen); answers about a block hash stay. Returns how many went.
    pub fn drop_cached_answers_at_blocks(&self, chain_id: u64) -> Result<usize, StoreError> {
        let mut tier = self.load_answer_tier()?;
        let mut dropped = 0;
        for entry in self.inner.answers.scan_prefix(chain_id.to_be_bytes()) {
            let (key, value) = entry.map_err(|e| self.backend(e))?;
            let record = match rpcmesh_protocol::encoding::from_bytes::<AnswerRecord>(&value) {
                Ok(r) if r.at_block.is_none() => continue,
                Ok(r) => Some(r),
                // A damaged entry goes too: it can never be served.
                Err(_) => None,
            };
            self.inner.answers.remove(&key).map_err(|e| self.backend(e))?;
            if let Some(r) = record {
                self.inner.answers_by_age.remove(r.seq.to_be_bytes()).map_err(|e| self.backend(e))?;
            }
            tier.bytes = tier.bytes.saturating_sub(entry_bytes(key.len(), value.len()));
            dropped += 1;
        }
        Ok(dropped)
    }

    /// Bytes the tier holds (keys and values, index included).
    pub fn cached_answers_bytes(&self) -> Result<u64, StoreError> {
        Ok(self.load_answer_tier()?.bytes)
    }

    /// The tier's totals, counted from the trees on first use.
    fn load_answer_tier(&self) -> Result<std::sync::MutexGuard<'_, AnswerTier>, StoreError> {
        let mut tier = self.inner.answer_tier.lock().unwrap_or_else(|p| p.into_inner());
        if !tier.loaded {
            let mut bytes = 0;
            for entry in self.inner.answers.iter() {
                let (k, v) = entry.map_err(|e| self.backend(e))?;
                bytes += entry_bytes(k.len(), v.len());
            }
            let last = self.inner.answers_by_age.last().map_err(|e| self.backend(e))?;
            let next_seq = last
                .and_then(|(k, _)| <[u8; 8]>::try_from(&k[..]).ok())
                .map_or(0, |k| u64::from_be_bytes(k).saturating_add(1));
            *tier = AnswerTier { loaded: true, bytes, next_seq };
        }
        Ok(tier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;

    fn record(at_block: Option<u64>, body: &str) -> AnswerRecord {
        AnswerRecord { seq: 0, at_block, verified: 1, served_by: "own".into(), body: body.as_bytes().to_vec() }
    }

    #[test]
    fn answers_persist_are_bounded_and_reorgs_drop_numbered_ones() {
        let dir = tempfile::tempdir().unwrap();
        let budget = 4096;
        {
            let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
            store.put_cached_answer(1, "eth_getBlockByHash", "[\"0xaa\"]", record(None, "hash"), budget).unwrap();
            store.put_cached_answer(1, "eth_getBlockByNumber", "[\"0x5\"]", record(Some(5), "five"), budget).unwrap();
            store.put_cached_answer(2, "eth_getBlockByNumber", "[\"0x5\"]", record(Some(5), "other"), budget).unwrap();
            // Replacing an answer keeps one entry.
            store.put_cached_answer(1, "eth_getBlockByNumber", "[\"0x5\"]", record(Some(5), "five!"), budget).unwrap();
            assert_eq!(store.inner.answers.len(), 3);
            assert_eq!(store.inner.answers_by_age.len(), 3);
            store.flush().unwrap();
        }
        // Reopened (a restart): answers and their byte count are back.
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        let got = store.cached_answer(1, "eth_getBlockByNumber", "[\"0x5\"]").unwrap().unwrap();
        assert_eq!((got.body.as_slice(), got.at_block), (&b"five!"[..], Some(5)));
        let bytes = store.cached_answers_bytes().unwrap();
        assert!(bytes > 0);

        assert_eq!(store.drop_cached_answers_at_blocks(1).unwrap(), 1);
        assert!(store.cached_answer(1, "eth_getBlockByNumber", "[\"0x5\"]").unwrap().is_none());
        assert!(store.cached_answer(1, "eth_getBlockByHash", "[\"0xaa\"]").unwrap().is_some(), "a hash's answer stays");
        assert!(store.cached_answer(2, "eth_getBlockByNumber", "[\"0x5\"]").unwrap().is_some(), "another chain");
        assert!(store.cached_answers_bytes().unwrap() < bytes);

        // Past the budget, the oldest go first.
        for i in 0..100u64 {
            store
                .put_cached_answer(1, "eth_getBalance", &format!("[{i}]"), record(None, &"x".repeat(100)), budget)
                .unwrap();
            assert!(store.cached_answers_bytes().unwrap() <= budget);
        }
        assert!(store.cached_answer(1, "eth_getBalance", "[0]").unwrap().is_none());
        assert!(store.cached_answer(1, "eth_getBalance", "[99]").unwrap().is_some());
        assert!(store.cached_answer(1, "eth_getBlockByHash", "[\"0xaa\"]").unwrap().is_none(), "the oldest went");
        assert_eq!(store.inner.answers.len(), store.inner.answers_by_age.len());
    }
}
