//! Persistent state: the only module that knows the storage engine (sled 0.34) exists.
//!
//! It owns one directory (nothing else may write there) and keeps:
//!
//! | what | key | kept until |
//! |---|---|---|
//! | schema version and [`IdentityMeta`] | fixed names in the `meta` tree | forever |
//! | the latest [`CapacityAnnouncement`] per provider | signer | a higher `seq` replaces it; [`Store::prune`] drops it once expired |
//! | [`HealthAttestation`] history | `subject ‖ issued_at_ms ‖ attester ‖ chain_id` (big-endian, so one subject's history is one range, oldest first) | older than [`StoreConfig::attestation_ttl_ms`], or the oldest beyond [`StoreConfig::max_attestations`] |
//! | [`AttestationRound`]s (what the mesh gossips; replaced the per-observation history above, which is only read and pruned now) | `issued_at_ms ‖ attester` (big-endian, oldest first) | older than [`StoreConfig::attestation_ttl_ms`], or the oldest beyond [`StoreConfig::max_attestations`] / [`ROUND_OBSERVATIONS_PER_ENTRY`] |
//! | the peer address book ([`PeerRecord`]) | peer | the caller removes it |
//! | [`EvidenceRecord`]s | an id increasing with insertion | the oldest beyond [`StoreConfig::max_evidence`], or older than the caller's cutoff ([`Store::prune_evidence_before`]) |
//! | [`CordonRecord`]s | `accused ‖ chain_id` (big-endian) | the caller removes it (an operator's clear, expiry) |
//! | [`FilterRecord`]s (censorship labels) | `accused ‖ chain_id` | the caller removes it (an operator's clear, expiry) |
//! | trusted block headers (the integrity layer's, for warm restarts) | `chain_id ‖ number` (big-endian) | the newest [`TRUSTED_HEADERS_KEPT`] per chain |
//! | the response cache's disk tier ([`AnswerRecord`], `[cache] sled_mib`) | `chain_id ‖ method ‖ 0 ‖ params` | the oldest beyond the caller's byte budget; those tied to a block number on a reorganisation |
//!
//! Protocol messages are stored as their canonical signed bytes and the store's own records with
//! the same encoding (`rpcmesh_protocol::encoding`), so a value read back is byte-identical to
//! what was written and its signature still verifies. A value that does not decode is reported as
//! [`StoreError::Corrupt`] by single-key reads and skipped with a warning by bulk reads; it never
//! panics. The layout is versioned by [`SCHEMA_VERSION`]: opening a store written by a newer
//! rpcmesh fails with [`StoreError::NewerSchema`] instead of misreading it.
//!
//! # Durability: what "committed" means
//! A write returns once it is in memory and in sled's log buffer; it is **committed** once a
//! [`Store::flush`] that started after the write returned has returned `Ok` (flush writes the log
//! and fsyncs). A committed entry survives any crash of the process (`kill -9`) and, as far as
//! the disk honours fsync, of the machine. Uncommitted writes may or may not survive (sled also
//! flushes in the background about every 500 ms), but a crash never leaves half of one write:
//! an attestation and its time-index entry are written in one transaction. After a crash the
//! store reopens with [`Store::open`] and no repair step. Dropping the last [`Store`] handle
//! flushes; a daemon should still call [`Store::flush`] on shutdown to see the error, if any.
//!
//! # Concurrency
//! [`Store`] is a cheap `Clone` handle, `Send + Sync`; all clones share one database. Every
//! method blocks the calling thread: reads and unflushed writes take microseconds, but
//! [`Store::flush`] waits for fsync and [`Store::prune`] scans, so async code should call those
//! through `spawn_blocking` (or give the store its own task). Only one process can open a
//! directory at a time (a file lock, which also refuses a second open in the same process).

mod answers;
mod error;
mod records;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rpcmesh_protocol::encoding::{self, MAX_ENCODED_BYTES};
use rpcmesh_protocol::messages::{AttestationRound, CapacityAnnouncement, HealthAttestation};
use rpcmesh_protocol::{PublicKey, Signed};
use sled::Transactional as _;
use sled::transaction::{ConflictableTransactionError, TransactionError};

pub use answers::AnswerRecord;
pub use error::{BackendError, StoreError};
pub use records::{
    CordonRecord, EVIDENCE_UNVERIFIED, EVIDENCE_VERIFIED, EvidenceRecord, FilterRecord, IdentityMeta, PeerRecord,
};

/// Version of the on-disk layout (trees, keys, value encodings) this build reads and writes.
/// Bump it, and add a step to `Store::migrate`, whenever any of them changes.
pub const SCHEMA_VERSION: u32 = 1;

/// How long [`Store::open`] keeps retrying a store locked by a handle that is still closing.
pub const LOCK_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(3);

/// Tuning for a [`Store`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Attestations issued longer ago than this are dropped by [`Store::prune`], in ms.
    /// Default one hour: scoring looks at recent behaviour; older history is for researchers,
    /// who can raise it.
    pub attestation_ttl_ms: u64,
    /// Most attestations kept; [`Store::prune`] drops the oldest beyond it. Default 20 000
    /// (about 6 MB on disk): the view needs only the latest per attester, the rest is history
    /// for researchers, who can raise it.
    pub max_attestations: usize,
    /// Most evidence records kept; [`Store::prune`] drops the oldest beyond it. Default 10 000.
    pub max_evidence: usize,
    /// Memory sled may use for its page cache, in bytes. Default 8 MiB (sled's own default,
    /// 1 GiB, is far more than this data needs).
    pub cache_capacity_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            attestation_ttl_ms: 60 * 60 * 1000,
            max_attestations: 20_000,
            max_evidence: 10_000,
            cache_capacity_bytes: 8 * 1024 * 1024,
        }
    }
}

/// What one [`Store::prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneStats {
    /// Attestations older than the TTL.
    pub attestations_expired: usize,
    /// The oldest attestations beyond `max_attestations`.
    pub attestations_over_limit: usize,
    /// The oldest evidence records beyond `max_evidence`.
    pub evidence_over_limit: usize,
    /// Announcements past their expiry.
    pub announcements_expired: usize,
    /// Announcements whose stored bytes no longer decode (each was also logged).
    pub corrupt_removed: usize,
}

/// A handle on the store. Clones share one database; see the [module docs](self).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    cfg: StoreConfig,
    db: sled::Db,
    meta: sled::Tree,
    announcements: sled::Tree,
    /// `subject(32) ‖ issued_at_ms(8, BE) ‖ attester(32) ‖ chain_id(8, BE)` → signed attestation.
    attestations: sled::Tree,
    /// `issued_at_ms(8, BE) ‖ attestation key` → empty: the attestations oldest first, for pruning.
    attestations_by_time: sled::Tree,
    /// `issued_at_ms(8, BE) ‖ attester(32)` → signed attestation round. Added without a schema
    /// bump: an older build ignores the tree.
    attestation_rounds: sled::Tree,
    peers: sled::Tree,
    /// `id(8, BE)` → evidence record.
    evidence: sled::Tree,
    /// `accused(32) ‖ chain_id(8, BE)` → cordon record. Added without a schema bump: an older
    /// build ignores the tree (and so forgets cordons on a downgrade, which is safe).
    cordons: sled::Tree,
    /// `accused(32) ‖ chain_id(8, BE)` → filter label. Added without a schema bump, like cordons.
    filters: sled::Tree,
    /// `chain_id(8, BE) ‖ number(8, BE)` → a trusted header's JSON. Added without a schema bump.
    trusted_headers: sled::Tree,
    /// Writes to `trusted_headers` since open (paces its pruning).
    trusted_header_writes: std::sync::atomic::AtomicU64,
    /// The response cache's disk tier (see `answers`). Added without a schema bump.
    answers: sled::Tree,
    /// `seq(8, BE)` → key in `answers`: oldest first.
    answers_by_age: sled::Tree,
    /// Bytes and next seq of the disk tier.
    answer_tier: answers::AnswerTierLock,
}

/// Trusted headers kept per chain in the store (the newest).
pub const TRUSTED_HEADERS_KEPT: usize = 1024;

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.db.flush() {
            tracing::warn!(path = %self.path.display(), error = %e, "flushing the store on close failed");
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.inner.path).field("cfg", &self.inner.cfg).finish_non_exhaustive()
    }
}

const SCHEMA_KEY: &[u8] = b"schema_version";
const IDENTITY_KEY: &[u8] = b"identity";
const KEY_LEN: usize = 32;
const ATT_KEY_LEN: usize = 32 + 8 + 32 + 8;
const ATT_INDEX_KEY_LEN: usize = 8 + ATT_KEY_LEN;
/// Observations counted per stored round when capping the rounds by `max_attestations` (a
/// round of one chain holds up to 7): the cap stays about the same number of observations.
pub const ROUND_OBSERVATIONS_PER_ENTRY: usize = 4;

/// A round's key: oldest first, so pruning by age is one range.
fn round_key(round: &Signed<AttestationRound>) -> [u8; 8 + KEY_LEN] {
    let mut k = [0u8; 8 + KEY_LEN];
    k[..8].copy_from_slice(&round.body.header.issued_at_ms.to_be_bytes());
    k[8..].copy_from_slice(&round.signer.0);
    k
}
/// Removals per transaction while pruning: bounds the memory and latency of one transaction.
const PRUNE_CHUNK: usize = 1024;

/// The attestation's primary key: one subject's history is one contiguous range, oldest first.
fn attestation_key(att: &Signed<HealthAttestation>) -> [u8; ATT_KEY_LEN] {
    let mut k = [0u8; ATT_KEY_LEN];
    k[..32].copy_from_slice(&att.body.observation.subject.0);
    k[32..40].copy_from_slice(&att.body.header.issued_at_ms.to_be_bytes());
    k[40..72].copy_from_slice(&att.signer.0);
    k[72..].copy_from_slice(&att.body.observation.chain_id.to_be_bytes());
    k
}

fn cordon_key(accused: &PublicKey, chain_id: u64) -> [u8; KEY_LEN + 8] {
    let mut k = [0u8; KEY_LEN + 8];
    k[..KEY_LEN].copy_from_slice(&accused.0);
    k[KEY_LEN..].copy_from_slice(&chain_id.to_be_bytes());
    k
}

/// The time-index key: the issue time (bytes 32..40 of the primary key) first, then the primary key.
fn attestation_index_key(key: &[u8; ATT_KEY_LEN]) -> [u8; ATT_INDEX_KEY_LEN] {
    let mut k = [0u8; ATT_INDEX_KEY_LEN];
    k[..8].copy_from_slice(&key[32..40]);
    k[8..].copy_from_slice(key);
    k
}

fn public_key_from(key: &[u8]) -> Option<PublicKey> {
    <[u8; KEY_LEN]>::try_from(key).ok().map(PublicKey)
}

impl Store {
    /// Opens the store in `dir`, creating the directory and an empty store if needed.
    ///
    /// Fails with [`StoreError::Locked`] if another process (or another open `Store` in this
    /// process) has the directory open, [`StoreError::NewerSchema`] if a newer rpcmesh wrote it,
    /// and [`StoreError::Corrupt`] if it cannot be read.
    pub fn open(dir: &Path, cfg: StoreConfig) -> Result<Store, StoreError> {
        let path = dir.to_path_buf();
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir { path: path.clone(), source })?;
        // sled closes a database on background threads: a handle dropped a moment ago (a
        // restart in the same process, a previous owner still exiting) may hold the lock
        // briefly. Retry for a bounded time before reporting the store as locked.
        let deadline = std::time::Instant::now() + LOCK_RETRY_FOR;
        let db = loop {
            match sled::Config::new().path(dir).cache_capacity(cfg.cache_capacity_bytes).open() {
                Ok(db) => break db,
                Err(e) => {
                    let err = open_error(&path, e);
                    if matches!(err, StoreError::Locked { .. }) && std::time::Instant::now() < deadline {
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        continue;
                    }
                    return Err(err);
                }
            }
        };
        let tree = |name: &str| db.open_tree(name).map_err(|e| open_error(&path, e));
        let store = Store {
            inner: Arc::new(Inner {
                meta: tree("meta")?,
                announcements: tree("announcements")?,
                attestations: tree("attestations")?,
                attestations_by_time: tree("attestations_by_time")?,
                attestation_rounds: tree("attestation_rounds")?,
                peers: tree("peers")?,
                evidence: tree("evidence")?,
                cordons: tree("cordons")?,
                filters: tree("filters")?,
                trusted_headers: tree("trusted_headers")?,
                trusted_header_writes: Default::default(),
                answers: tree("cached_answers")?,
                answers_by_age: tree("cached_answers_by_age")?,
                answer_tier: Default::default(),
                db,
                cfg,
                path,
            }),
        };
        store.check_schema()?;
        Ok(store)
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Writes the schema version into a new store, or checks (and migrates) an existing one.
    fn check_schema(&self) -> Result<(), StoreError> {
        let inner = &self.inner;
        let Some(raw) = inner.meta.get(SCHEMA_KEY).map_err(|e| self.backend(e))? else {
            // The version is committed before `open` returns, so data without it is not ours.
            let trees = [&inner.announcements, &inner.attestations, &inner.peers, &inner.evidence, &inner.cordons];
            if trees.iter().any(|t| !t.is_empty()) {
                return Err(self.corrupt("records present but no schema version".into()));
            }
            inner.meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes()).map_err(|e| self.backend(e))?;
            self.flush()?;
            return Ok(());
        };
        let found = <[u8; 4]>::try_from(raw.as_ref())
            .map(u32::from_be_bytes)
            .map_err(|_| self.corrupt(format!("schema version is {} bytes, expected 4", raw.len())))?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema { path: inner.path.clone(), found, supported: SCHEMA_VERSION });
        }
        self.migrate(found)
    }

    /// Brings a store of an older schema version up to [`SCHEMA_VERSION`]. There is no older
    /// version yet; each future bump adds a step here, then rewrites the version and flushes.
    fn migrate(&self, found: u32) -> Result<(), StoreError> {
        match found {
            SCHEMA_VERSION => Ok(()),
            other => Err(self.corrupt(format!("unknown schema version {other}"))),
        }
    }

    /// This daemon's identity metadata, if recorded.
    pub fn identity(&self) -> Result<Option<IdentityMeta>, StoreError> {
        self.get_decoded(&self.inner.meta, "meta", IDENTITY_KEY)
    }

    /// Records this daemon's identity metadata, replacing any previous one.
    pub fn set_identity(&self, meta: &IdentityMeta) -> Result<(), StoreError> {
        let bytes = self.encode(meta, "identity")?;
        self.inner.meta.insert(IDENTITY_KEY, bytes).map_err(|e| self.backend(e))?;
        Ok(())
    }

    /// Stores `ann` as its signer's latest announcement unless one with an equal or higher
    /// `header.seq` is already stored. Returns whether it was stored. Atomic (compare-and-swap):
    /// concurrent writers can never make the stored `seq` go down. Does not validate `ann`.
    pub fn put_announcement(&self, ann: &Signed<CapacityAnnouncement>) -> Result<bool, StoreError> {
        let tree = &self.inner.announcements;
        let key = ann.signer.0;
        let new = self.encode(ann, "announcement")?;
        let mut current = tree.get(key).map_err(|e| self.backend(e))?;
        loop {
            if let Some(cur) = &current {
                match self.decode::<Signed<CapacityAnnouncement>>("announcements", &key, cur) {
                    Ok(old) if old.body.header.seq >= ann.body.header.seq => return Ok(false),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "replacing a damaged announcement"),
                }
            }
            match tree.compare_and_swap(key, current.as_ref(), Some(new.as_slice())).map_err(|e| self.backend(e))? {
                Ok(()) => return Ok(true),
                Err(conflict) => current = conflict.current,
            }
        }
    }

    /// The latest stored announcement of `signer`.
    pub fn announcement(&self, signer: &PublicKey) -> Result<Option<Signed<CapacityAnnouncement>>, StoreError> {
        self.get_decoded(&self.inner.announcements, "announcements", &signer.0)
    }

    /// Every stored announcement, ordered by signer. Damaged entries are skipped with a warning.
    pub fn announcements(&self) -> Result<Vec<Signed<CapacityAnnouncement>>, StoreError> {
        self.scan_decoded(self.inner.announcements.iter(), "announcements")
            .map(|all| all.into_iter().map(|(_, ann)| ann).collect())
    }

    /// Forgets `signer`'s announcement.
    pub fn remove_announcement(&self, signer: &PublicKey) -> Result<(), StoreError> {
        self.inner.announcements.remove(signer.0).map_err(|e| self.backend(e))?;
        Ok(())
    }

    /// Adds an attestation to the history. One attestation is kept per subject, attester, chain
    /// and issue time: a second one with all four equal replaces the first. Does not validate.
    pub fn put_attestation(&self, att: &Signed<HealthAttestation>) -> Result<(), StoreError> {
        let key = attestation_key(att);
        let index = attestation_index_key(&key);
        let bytes = self.encode(att, "attestation")?;
        let inner = &self.inner;
        (&inner.attestations, &inner.attestations_by_time)
            .transaction(|(atts, by_time)| {
                atts.insert(&key[..], bytes.as_slice())?;
                by_time.insert(&index[..], &[][..])?;
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e| self.tx_error(e))
    }

    /// The stored attestations about `subject`, oldest first. Damaged entries are skipped with a
    /// warning.
    pub fn attestations_about(&self, subject: &PublicKey) -> Result<Vec<Signed<HealthAttestation>>, StoreError> {
        self.scan_decoded(self.inner.attestations.scan_prefix(subject.0), "attestations")
            .map(|all| all.into_iter().map(|(_, att)| att).collect())
    }

    /// Adds an attestation round (one write, whatever the number of its observations). One round
    /// is kept per attester and issue time. Does not validate.
    pub fn put_attestation_round(&self, round: &Signed<AttestationRound>) -> Result<(), StoreError> {
        let bytes = self.encode(round, "attestation round")?;
        self.inner.attestation_rounds.insert(round_key(round), bytes).map_err(|e| self.backend(e))?;
        Ok(())
    }

    /// Every stored attestation round, oldest first. Damaged entries are skipped with a warning.
    pub fn attestation_rounds(&self) -> Result<Vec<Signed<AttestationRound>>, StoreError> {
        self.scan_decoded(self.inner.attestation_rounds.iter(), "attestation_rounds")
            .map(|all| all.into_iter().map(|(_, r)| r).collect())
    }

    /// Records or replaces `peer`'s address-book entry.
    pub fn put_peer(&self, peer: &PublicKey, rec: &PeerRecord) -> Result<(), StoreError> {
        let bytes = self.encode(rec, "peer record")?;
        self.inner.peers.insert(peer.0, bytes).map_err(|e| self.backend(e))?;
        Ok(())
    }

    /// The whole address book, ordered by peer key. Damaged entries are skipped with a warning.
    pub fn peers(&self) -> Result<Vec<(PublicKey, PeerRecord)>, StoreError> {
        let all = self.scan_decoded::<PeerRecord>(self.inner.peers.iter(), "peers")?;
        Ok(all
            .into_iter()
            .filter_map(|(key, rec)| match public_key_from(&key) {
                Some(pk) => Some((pk, rec)),
                None => {
                    tracing::warn!(key = %hex::encode(&key), "skipping a peer entry with a malformed key");
                    None
                }
            })
            .collect())
    }

    /// Removes `peer` from the address book.
    pub fn remove_peer(&self, peer: &PublicKey) -> Result<(), StoreError> {
        self.inner.peers.remove(peer.0).map_err(|e| self.backend(e))?;
        Ok(())
    }

    /// Appends an evidence record and returns its id. Ids increase with every call, also across
    /// restarts and crashes (they may skip values), so id order is insertion order.
    pub fn put_evidence(&self, ev: &EvidenceRecord) -> Result<u64, StoreError> {
        let bytes = self.encode(ev, "evidence record")?;
        let id = self.inner.db.generate_id().map_err(|e| self.backend(e))?;
        self.inner.evidence.insert(id.to_be_bytes(), bytes).map_err(|e| self.backend(e))?;
        Ok(id)
    }

    /// Every evidence record with its id, oldest first. Damaged entries are skipped with a warning.
    pub fn evidence(&self) -> Result<Vec<(u64, EvidenceRecord)>, StoreError> {
        let all = self.scan_decoded::<EvidenceRecord>(self.inner.evidence.iter(), "evidence")?;
        Ok(all
            .into_iter()
            .filter_map(|(key, rec)| match <[u8; 8]>::try_from(key.as_ref()) {
                Ok(id) => Some((u64::from_be_bytes(id), rec)),
                Err(_) => {
                    tracing::warn!(key = %hex::encode(&key), "skipping an evidence entry with a malformed key");
                    None
                }
            })
            .collect())
    }

    /// Calls `f` with every evidence record and its id, oldest first, one at a time (records may
    /// be MiBs: this never holds more than one). Damaged entries are skipped with a warning.
    pub fn for_each_evidence(&self, mut f: impl FnMut(u64, EvidenceRecord)) -> Result<(), StoreError> {
        for entry in self.inner.evidence.iter() {
            let (key, value) = entry.map_err(|e| self.backend(e))?;
            let Ok(id) = <[u8; 8]>::try_from(key.as_ref()).map(u64::from_be_bytes) else {
                tracing::warn!(key = %hex::encode(&key), "skipping an evidence entry with a malformed key");
                continue;
            };
            match self.decode::<EvidenceRecord>("evidence", &key, &value) {
                Ok(rec) => f(id, rec),
                Err(e) => tracing::warn!(error = %e, "skipping a damaged store entry"),
            }
        }
        Ok(())
    }

    /// The evidence record `id`.
    pub fn evidence_by_id(&self, id: u64) -> Result<Option<EvidenceRecord>, StoreError> {
        self.get_decoded(&self.inner.evidence, "evidence", &id.to_be_bytes())
    }

    /// Drops evidence recorded before `cutoff_ms` (oldest first; ids follow insertion, so the
    /// scan stops at the first younger record). Returns how many were dropped.
    pub fn prune_evidence_before(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for entry in self.inner.evidence.iter() {
            let (key, value) = entry.map_err(|e| self.backend(e))?;
            match self.decode::<EvidenceRecord>("evidence", &key, &value) {
                Ok(rec) if rec.at_ms >= cutoff_ms => break,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "removing a damaged evidence record"),
            }
            batch.remove(key);
            n += 1;
        }
        self.inner.evidence.apply_batch(batch).map_err(|e| self.backend(e))?;
        Ok(n)
    }

    /// Records a trusted header (its `eth_getBlockByNumber` JSON) of `chain_id` at `number`;
    /// every 256th write drops the chain's headers beyond the newest [`TRUSTED_HEADERS_KEPT`].
    pub fn put_trusted_header(&self, chain_id: u64, number: u64, json: &[u8]) -> Result<(), StoreError> {
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&chain_id.to_be_bytes());
        key[8..].copy_from_slice(&number.to_be_bytes());
        self.inner.trusted_headers.insert(key, json).map_err(|e| self.backend(e))?;
        let writes = self.inner.trusted_header_writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if writes % 256 == 255 {
            let old = self.inner.trusted_headers.scan_prefix(chain_id.to_be_bytes()).rev().skip(TRUSTED_HEADERS_KEPT);
            let keys = self.collect_keys(old, usize::MAX)?;
            let mut batch = sled::Batch::default();
            for k in keys {
                batch.remove(k);
            }
            self.inner.trusted_headers.apply_batch(batch).map_err(|e| self.backend(e))?;
        }
        Ok(())
    }

    /// The newest `max` trusted headers of every chain, as `(chain_id, number, json)`, newest
    /// first per chain.
    pub fn trusted_headers(&self, max: usize) -> Result<Vec<(u64, u64, Vec<u8>)>, StoreError> {
        let mut out: Vec<(u64, u64, Vec<u8>)> = Vec::new();
        let mut per_chain: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
        for item in self.inner.trusted_headers.iter().rev() {
            let (k, v) = item.map_err(|e| self.backend(e))?;
            let (Ok(c), Ok(n)) = (<[u8; 8]>::try_from(&k[..k.len().min(8)]), <[u8; 8]>::try_from(&k[k.len().min(8)..]))
            else {
                tracing::warn!(key = %hex::encode(&k), "skipping a trusted header with a malformed key");
                continue;
            };
            let chain_id = u64::from_be_bytes(c);
            let seen = per_chain.entry(chain_id).or_default();
            if *seen < max {
                *seen += 1;
                out.push((chain_id, u64::from_be_bytes(n), v.to_vec()));
            }
        }
        Ok(out)
    }

    /// Records or replaces the filter label of `accused` on `chain_id`.
    pub fn put_filter(&self, accused: &PublicKey, chain_id: u64, rec: &FilterRecord) -> Result<(), StoreError> {
        self.put_by_provider(&self.inner.filters, accused, chain_id, rec, "filter record")
    }

    /// Removes the filter labels of `accused` on `chain_id`, or on every chain when `None`.
    pub fn remove_filters(&self, accused: &PublicKey, chain_id: Option<u64>) -> Result<(), StoreError> {
        self.remove_by_provider(&self.inner.filters, accused, chain_id)
    }

    /// Every filter label, as `(accused, chain, record)`; malformed entries are skipped.
    pub fn filters(&self) -> Result<Vec<(PublicKey, u64, FilterRecord)>, StoreError> {
        self.all_by_provider(&self.inner.filters, "filters")
    }

    /// Records or replaces the cordon of `accused` on `chain_id`.
    pub fn put_cordon(&self, accused: &PublicKey, chain_id: u64, rec: &CordonRecord) -> Result<(), StoreError> {
        self.put_by_provider(&self.inner.cordons, accused, chain_id, rec, "cordon record")
    }

    /// Removes the cordon of `accused` on `chain_id`, or on every chain when `None`.
    pub fn remove_cordons(&self, accused: &PublicKey, chain_id: Option<u64>) -> Result<(), StoreError> {
        self.remove_by_provider(&self.inner.cordons, accused, chain_id)
    }

    /// Every cordon as `(accused, chain_id, record)`. Damaged entries are skipped with a warning.
    pub fn cordons(&self) -> Result<Vec<(PublicKey, u64, CordonRecord)>, StoreError> {
        self.all_by_provider(&self.inner.cordons, "cordons")
    }

    /// A record of a tree keyed `provider ‖ chain_id` (cordons, filter labels).
    fn put_by_provider<T: bincode::Encode>(
        &self,
        tree: &sled::Tree,
        provider: &PublicKey,
        chain_id: u64,
        rec: &T,
        what: &str,
    ) -> Result<(), StoreError> {
        let bytes = self.encode(rec, what)?;
        tree.insert(cordon_key(provider, chain_id), bytes).map_err(|e| self.backend(e))?;
        Ok(())
    }

    /// Removes `provider`'s record on `chain_id`, or on every chain when `None`.
    fn remove_by_provider(
        &self,
        tree: &sled::Tree,
        provider: &PublicKey,
        chain_id: Option<u64>,
    ) -> Result<(), StoreError> {
        match chain_id {
            Some(c) => {
                tree.remove(cordon_key(provider, c)).map_err(|e| self.backend(e))?;
            }
            None => {
                let keys = self.collect_keys(tree.scan_prefix(provider.0), usize::MAX)?;
                let mut batch = sled::Batch::default();
                for k in keys {
                    batch.remove(k);
                }
                tree.apply_batch(batch).map_err(|e| self.backend(e))?;
            }
        }
        Ok(())
    }

    /// Every record of a tree keyed `provider ‖ chain_id`; damaged entries and malformed keys are
    /// skipped with a warning.
    fn all_by_provider<T: bincode::Decode<()>>(
        &self,
        tree: &sled::Tree,
        tree_name: &'static str,
    ) -> Result<Vec<(PublicKey, u64, T)>, StoreError> {
        let all = self.scan_decoded::<T>(tree.iter(), tree_name)?;
        Ok(all
            .into_iter()
            .filter_map(|(key, rec)| {
                let parsed = (key.len() == KEY_LEN + 8)
                    .then(|| public_key_from(&key[..KEY_LEN]))
                    .flatten()
                    .zip(<[u8; 8]>::try_from(&key[KEY_LEN..]).ok().map(u64::from_be_bytes));
                if parsed.is_none() {
                    tracing::warn!(tree = tree_name, key = %hex::encode(&key), "skipping an entry with a malformed key");
                }
                parsed.map(|(k, c)| (k, c, rec))
            })
            .collect())
    }

    /// Drops, in order: attestations issued more than `attestation_ttl_ms` before `now_ms`; the
    /// oldest attestations beyond `max_attestations`; the oldest evidence beyond `max_evidence`;
    /// announcements that expired before `now_ms` (and any that no longer decode).
    ///
    /// Costs a scan of the attestation time index and the evidence keys (sled keeps no counts);
    /// call it every minute or so, not per write. Removals are not flushed.
    pub fn prune(&self, now_ms: u64) -> Result<PruneStats, StoreError> {
        let inner = &self.inner;
        let mut stats = PruneStats::default();

        let cutoff = now_ms.saturating_sub(inner.cfg.attestation_ttl_ms).to_be_bytes();
        loop {
            let keys = self.collect_keys(inner.attestations_by_time.range(..cutoff), PRUNE_CHUNK)?;
            if keys.is_empty() {
                break;
            }
            self.remove_attestations(&keys)?;
            stats.attestations_expired += keys.len();
        }

        let mut excess = inner.attestations_by_time.len().saturating_sub(inner.cfg.max_attestations);
        while excess > 0 {
            let keys = self.collect_keys(inner.attestations_by_time.iter(), excess.min(PRUNE_CHUNK))?;
            if keys.is_empty() {
                break;
            }
            self.remove_attestations(&keys)?;
            stats.attestations_over_limit += keys.len();
            excess -= keys.len();
        }

        // Rounds: the same age limit, and about the same number of observations.
        loop {
            let keys = self.collect_keys(inner.attestation_rounds.range(..cutoff), PRUNE_CHUNK)?;
            if keys.is_empty() {
                break;
            }
            self.remove_rounds(&keys)?;
            stats.attestations_expired += keys.len();
        }
        let max_rounds = (inner.cfg.max_attestations / ROUND_OBSERVATIONS_PER_ENTRY).max(1);
        let mut excess = inner.attestation_rounds.len().saturating_sub(max_rounds);
        while excess > 0 {
            let keys = self.collect_keys(inner.attestation_rounds.iter(), excess.min(PRUNE_CHUNK))?;
            if keys.is_empty() {
                break;
            }
            self.remove_rounds(&keys)?;
            stats.attestations_over_limit += keys.len();
            excess -= keys.len();
        }

        let mut excess = inner.evidence.len().saturating_sub(inner.cfg.max_evidence);
        while excess > 0 {
            let keys = self.collect_keys(inner.evidence.iter(), excess.min(PRUNE_CHUNK))?;
            if keys.is_empty() {
                break;
            }
            let mut batch = sled::Batch::default();
            for k in &keys {
                batch.remove(k.clone());
            }
            inner.evidence.apply_batch(batch).map_err(|e| self.backend(e))?;
            stats.evidence_over_limit += keys.len();
            excess -= keys.len();
        }

        for entry in inner.announcements.iter() {
            let (key, value) = entry.map_err(|e| self.backend(e))?;
            // `Some(damaged)` for an entry to remove.
            let remove = match self.decode::<Signed<CapacityAnnouncement>>("announcements", &key, &value) {
                Ok(ann) => (ann.body.header.expires_at_ms < now_ms).then_some(false),
                Err(e) => {
                    tracing::warn!(error = %e, "removing a damaged announcement");
                    Some(true)
                }
            };
            let Some(damaged) = remove else { continue };
            // Compare-and-swap so that a newer announcement stored meanwhile is kept.
            let swapped = inner
                .announcements
                .compare_and_swap(&key, Some(&value), None::<&[u8]>)
                .map_err(|e| self.backend(e))?
                .is_ok();
            match (swapped, damaged) {
                (true, true) => stats.corrupt_removed += 1,
                (true, false) => stats.announcements_expired += 1,
                (false, _) => {}
            }
        }
        Ok(stats)
    }

    /// The durability point: returns once every write that returned before this call started is
    /// on disk (written and fsynced), so survives a crash. Returns the bytes written.
    pub fn flush(&self) -> Result<usize, StoreError> {
        self.inner.db.flush().map_err(|e| self.backend(e))
    }

    fn remove_rounds(&self, keys: &[sled::IVec]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for k in keys {
            batch.remove(k.clone());
        }
        self.inner.attestation_rounds.apply_batch(batch).map_err(|e| self.backend(e))
    }

    fn remove_attestations(&self, index_keys: &[sled::IVec]) -> Result<(), StoreError> {
        let inner = &self.inner;
        (&inner.attestations, &inner.attestations_by_time)
            .transaction(|(atts, by_time)| {
                for ik in index_keys {
                    if ik.len() == ATT_INDEX_KEY_LEN {
                        atts.remove(&ik[8..])?;
                    }
                    by_time.remove(ik)?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e| self.tx_error(e))
    }

    fn collect_keys(
        &self,
        iter: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
        max: usize,
    ) -> Result<Vec<sled::IVec>, StoreError> {
        iter.take(max).map(|entry| entry.map(|(k, _)| k).map_err(|e| self.backend(e))).collect()
    }

    fn get_decoded<T: bincode::Decode<()>>(
        &self,
        tree: &sled::Tree,
        tree_name: &'static str,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        match tree.get(key).map_err(|e| self.backend(e))? {
            None => Ok(None),
            Some(bytes) => self.decode(tree_name, key, &bytes).map(Some),
        }
    }

    /// Decodes every entry of `iter`, skipping (with a warning) values that do not decode.
    fn scan_decoded<T: bincode::Decode<()>>(
        &self,
        iter: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
        tree_name: &'static str,
    ) -> Result<Vec<(sled::IVec, T)>, StoreError> {
        let mut out = Vec::new();
        for entry in iter {
            let (key, value) = entry.map_err(|e| self.backend(e))?;
            match self.decode(tree_name, &key, &value) {
                Ok(v) => out.push((key, v)),
                Err(e) => tracing::warn!(error = %e, "skipping a damaged store entry"),
            }
        }
        Ok(out)
    }

    fn decode<T: bincode::Decode<()>>(&self, tree_name: &str, key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
        encoding::from_bytes(bytes).map_err(|e| self.corrupt(format!("{tree_name} entry {}: {e}", hex::encode(key))))
    }

    fn encode<T: bincode::Encode>(&self, value: &T, what: &str) -> Result<Vec<u8>, StoreError> {
        let bytes = encoding::to_bytes(value);
        // `to_bytes` gives an empty vector only when the value is over the encoding's size limit;
        // every valid encoding of these types is non-empty.
        if bytes.is_empty() {
            return Err(StoreError::TooLarge { what: what.to_string(), limit: MAX_ENCODED_BYTES });
        }
        Ok(bytes)
    }

    fn corrupt(&self, what: String) -> StoreError {
        StoreError::Corrupt { path: self.inner.path.clone(), what }
    }

    fn backend(&self, e: sled::Error) -> StoreError {
        backend_error(&self.inner.path, e)
    }

    fn tx_error(&self, e: TransactionError<()>) -> StoreError {
        match e {
            TransactionError::Storage(e) => self.backend(e),
            // Our transactions never abort.
            TransactionError::Abort(()) => self.corrupt("a store transaction aborted".into()),
        }
    }
}

fn backend_error(path: &Path, e: sled::Error) -> StoreError {
    match e {
        sled::Error::Corruption { at, .. } => StoreError::Corrupt {
            path: path.to_path_buf(),
            what: match at {
                Some(at) => format!("the storage engine found damaged data at {at:?}"),
                None => "the storage engine found damaged data".into(),
            },
        },
        other => StoreError::Backend { path: path.to_path_buf(), source: BackendError(other) },
    }
}

/// Like [`backend_error`], but recognises sled's lock failure (sled 0.34 reports it as an
/// `io::Error` of kind `Other` whose message starts "could not acquire lock") and its refusals of
/// a damaged settings file (`conf`). sled reads `conf` first and answers `Unsupported` when it
/// is not UTF-8 ("created using a sled version earlier than 0.29") or names another version or
/// segment size than the ones this build always writes: for a store only this build made, that
/// is damage, not an old sled, and the advice is the same as for damaged data.
fn open_error(path: &Path, e: sled::Error) -> StoreError {
    match e {
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
            StoreError::Locked { path: path.to_path_buf() }
        }
        sled::Error::Unsupported(why) => StoreError::Corrupt {
            path: path.to_path_buf(),
            what: format!(
                "the storage engine cannot read its settings file {}; sled says: {why}",
                path.join("conf").display()
            ),
        },
        other => backend_error(path, other),
    }
}
