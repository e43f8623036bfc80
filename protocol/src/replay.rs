//! Replay protection: the highest `seq` accepted per signer.
//!
//! A pure, bounded map. The node keeps one tracker per message kind and persists it with the
//! mesh view, so a restart does not reopen the replay window.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use crate::identity::PublicKey;
use crate::validate::ValidationError;

/// Eviction is O(log n) (an index by last update), so a flood of fresh signers costs the
/// tracker nothing beyond its bound. Eviction can forget an honest signer under such a flood;
/// the mesh view therefore also refuses to replace a held message with an older `seq`.
///
/// Highest accepted `seq` per key (by default the signer; attestations use signer, subject and
/// chain, since one attester issues many independent series), bounded to `capacity` keys. When full, the signer
/// updated longest ago is forgotten (a forgotten signer's old messages have long expired, so
/// forgetting cannot reopen a replay that expiry would not also stop).
#[derive(Debug, Clone)]
pub struct SeqTracker<K = PublicKey> {
    last: HashMap<K, Entry>,
    by_touch: BTreeMap<u64, K>,
    capacity: usize,
    clock: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    seq: u64,
    touched: u64,
}

impl<K: Hash + Eq + Clone> SeqTracker<K> {
    /// A tracker for at most `capacity` signers (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self { last: HashMap::new(), by_touch: BTreeMap::new(), capacity: capacity.max(1), clock: 0 }
    }

    /// Errors with [`ValidationError::StaleSeq`] if `seq` is not newer than the last accepted.
    pub fn check(&self, signer: &K, seq: u64) -> Result<(), ValidationError> {
        match self.last.get(signer) {
            Some(e) if seq <= e.seq => Err(ValidationError::StaleSeq { seq, last_seen: e.seq }),
            _ => Ok(()),
        }
    }

    /// Records `seq` as accepted (if newer). Call after every other check passed.
    pub fn accept(&mut self, signer: K, seq: u64) {
        self.clock += 1;
        let touched = self.clock;
        if let Some(e) = self.last.get_mut(&signer) {
            e.seq = e.seq.max(seq);
            self.by_touch.remove(&e.touched);
            e.touched = touched;
            self.by_touch.insert(touched, signer);
            return;
        }
        if self.last.len() >= self.capacity
            && let Some((_, oldest)) = self.by_touch.pop_first()
        {
            self.last.remove(&oldest);
        }
        self.by_touch.insert(touched, signer.clone());
        self.last.insert(signer, Entry { seq, touched });
    }

    /// Checks and, if fresh, accepts.
    pub fn check_and_accept(&mut self, signer: K, seq: u64) -> Result<(), ValidationError> {
        self.check(&signer, seq)?;
        self.accept(signer, seq);
        Ok(())
    }

    /// The last accepted `seq` from `signer`.
    pub fn last_seen(&self, signer: &K) -> Option<u64> {
        self.last.get(signer).map(|e| e.seq)
    }

    /// Signers tracked.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether no signer is tracked.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> PublicKey {
        PublicKey([b; 32])
    }

    #[test]
    fn rejects_equal_and_older_seq() {
        let mut t: SeqTracker = SeqTracker::new(8);
        t.check_and_accept(key(1), 5).unwrap();
        assert!(matches!(t.check(&key(1), 5), Err(ValidationError::StaleSeq { seq: 5, last_seen: 5 })));
        assert!(t.check(&key(1), 4).is_err());
        t.check_and_accept(key(1), 6).unwrap();
        t.check_and_accept(key(2), 1).unwrap();
        assert_eq!(t.last_seen(&key(1)), Some(6));
    }

    #[test]
    fn bounded_and_evicts_least_recently_updated() {
        let mut t: SeqTracker = SeqTracker::new(2);
        t.accept(key(1), 1);
        t.accept(key(2), 1);
        t.accept(key(1), 2);
        t.accept(key(3), 1);
        assert_eq!(t.len(), 2);
        assert_eq!(t.last_seen(&key(2)), None);
        assert_eq!(t.last_seen(&key(1)), Some(2));
    }
}
