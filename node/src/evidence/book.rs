//! [`CordonBook`]: active cordons and the reputation counter, pure (time passed in).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rpcmesh_protocol::PublicKey;
use rpcmesh_protocol::digest::Digest;

use crate::mesh::{CordonView, FilterView, Standing};
use crate::store::{CordonRecord, FilterRecord};

/// Cordons and filter labels by (accused, chain), and distinct proven lies by provider.
#[derive(Debug, Default, Clone)]
pub struct CordonBook {
    cordons: HashMap<(PublicKey, u64), CordonRecord>,
    /// Providers proven to filter, with what they filter.
    labels: HashMap<(PublicKey, u64), FilterRecord>,
    /// Per provider, the digests of the receipts proven wrong: one lie reported by several
    /// reporters counts once.
    lies: HashMap<PublicKey, HashSet<Digest>>,
}

impl CordonBook {
    /// Cordons `accused` on `chain_id`, or extends a cordon already there (keeping when it
    /// began). Returns whether anything changed.
    pub fn cordon(&mut self, accused: PublicKey, chain_id: u64, rec: CordonRecord) -> bool {
        match self.cordons.get_mut(&(accused, chain_id)) {
            Some(cur) if cur.until_ms >= rec.until_ms => false,
            Some(cur) => {
                let since_ms = cur.since_ms;
                *cur = CordonRecord { since_ms, ..rec };
                true
            }
            None => {
                self.cordons.insert((accused, chain_id), rec);
                true
            }
        }
    }

    /// Adds `rec.subjects` to the filter label of `accused` on `chain_id` (creating it, keeping
    /// when it began, extending when it lapses). Returns whether anything changed and how many
    /// distinct subjects the label now holds; at most `max_subjects` are kept.
    pub fn label(
        &mut self,
        accused: PublicKey,
        chain_id: u64,
        rec: FilterRecord,
        max_subjects: usize,
    ) -> (bool, usize) {
        match self.labels.get_mut(&(accused, chain_id)) {
            Some(cur) => {
                let mut changed = false;
                for s in rec.subjects {
                    if !cur.subjects.contains(&s) {
                        if cur.subjects.len() >= max_subjects {
                            return (changed, max_subjects + 1);
                        }
                        cur.subjects.push(s);
                        changed = true;
                    }
                }
                if rec.until_ms > cur.until_ms {
                    cur.until_ms = rec.until_ms;
                    cur.evidence_id = rec.evidence_id;
                    cur.reporter = rec.reporter;
                    changed = true;
                }
                (changed, cur.subjects.len())
            }
            None => {
                let mut rec = rec;
                let n = rec.subjects.len();
                rec.subjects.truncate(max_subjects);
                self.labels.insert((accused, chain_id), rec);
                (true, n)
            }
        }
    }

    /// The filter label of `accused` on `chain_id`.
    pub fn label_of(&self, accused: &PublicKey, chain_id: u64) -> Option<&FilterRecord> {
        self.labels.get(&(*accused, chain_id))
    }

    /// Every filter label, as `(accused, chain, record)`.
    pub fn labels(&self) -> impl Iterator<Item = (&PublicKey, u64, &FilterRecord)> {
        self.labels.iter().map(|((k, c), r)| (k, *c, r))
    }

    /// Active filter labels.
    pub fn active_labels(&self) -> usize {
        self.labels.len()
    }

    /// The cordon of `accused` on `chain_id`.
    pub fn get(&self, accused: &PublicKey, chain_id: u64) -> Option<&CordonRecord> {
        self.cordons.get(&(*accused, chain_id))
    }

    /// Clears the cordons of `accused` on `chain_id`, or on every chain. Returns the chains cleared.
    pub fn clear(&mut self, accused: &PublicKey, chain_id: Option<u64>) -> Vec<u64> {
        let mut cleared = Vec::new();
        let mut hit = |k: &PublicKey, c: u64| {
            let hit = k == accused && chain_id.is_none_or(|want| want == c);
            if hit {
                cleared.push(c);
            }
            !hit
        };
        self.cordons.retain(|(k, c), _| hit(k, *c));
        self.labels.retain(|(k, c), _| hit(k, *c));
        cleared.sort_unstable();
        cleared.dedup();
        cleared
    }

    /// Drops cordons that lapsed at or before `now_ms`; returns them.
    pub fn expire(&mut self, now_ms: u64) -> Vec<(PublicKey, u64)> {
        let mut gone = Vec::new();
        self.cordons.retain(|(k, c), rec| {
            let keep = rec.until_ms > now_ms;
            if !keep {
                gone.push((*k, *c));
            }
            keep
        });
        gone
    }

    /// Drops filter labels that lapsed at or before `now_ms`; returns them.
    pub fn expire_labels(&mut self, now_ms: u64) -> Vec<(PublicKey, u64)> {
        let mut gone = Vec::new();
        self.labels.retain(|(k, c), rec| {
            let keep = rec.until_ms > now_ms;
            if !keep {
                gone.push((*k, *c));
            }
            keep
        });
        gone
    }

    /// Counts a proven wrong answer (identified by its receipt). Returns whether it was new.
    pub fn record_lie(&mut self, accused: PublicKey, receipt: Digest) -> bool {
        self.lies.entry(accused).or_default().insert(receipt)
    }

    /// Distinct wrong answers proven against `accused`.
    pub fn proven_lies(&self, accused: &PublicKey) -> u32 {
        self.lies.get(accused).map_or(0, |s| u32::try_from(s.len()).unwrap_or(u32::MAX))
    }

    /// Active cordons.
    pub fn active(&self) -> usize {
        self.cordons.len()
    }

    /// Every active cordon, as `(accused, chain, record)`.
    pub fn iter(&self) -> impl Iterator<Item = (&PublicKey, u64, &CordonRecord)> {
        self.cordons.iter().map(|((k, c), r)| (k, *c, r))
    }

    /// The standings the mesh publishes, keyed by provider: cordons (by chain) and reputation.
    pub fn standings(&self, reason: impl Fn(&CordonRecord) -> String) -> Arc<HashMap<PublicKey, Standing>> {
        let mut out: HashMap<PublicKey, Standing> = HashMap::new();
        for (k, lies) in &self.lies {
            out.entry(*k).or_default().proven_lies = u32::try_from(lies.len()).unwrap_or(u32::MAX);
        }
        for ((k, chain_id), rec) in &self.cordons {
            out.entry(*k).or_default().cordons.push(CordonView {
                chain_id: *chain_id,
                kind: rec.kind.clone(),
                reason: reason(rec),
                since_ms: rec.since_ms,
                until_ms: rec.until_ms,
                reporter: rec.reporter.to_peer_id().to_string(),
                evidence_id: rec.evidence_id,
            });
        }
        for ((k, chain_id), rec) in &self.labels {
            out.entry(*k).or_default().filters.push(FilterView {
                chain_id: *chain_id,
                subjects: rec.subjects.clone(),
                since_ms: rec.since_ms,
                until_ms: rec.until_ms,
                reporter: rec.reporter.to_peer_id().to_string(),
                evidence_id: rec.evidence_id,
            });
        }
        for s in out.values_mut() {
            s.cordons.sort_by_key(|c| c.chain_id);
            s.filters.sort_by_key(|c| c.chain_id);
        }
        Arc::new(out)
    }
}

#[cfg(test)]
mod tests {
    use rpcmesh_protocol::Identity;

    use super::*;

    fn rec(subjects: &[&str], until_ms: u64) -> FilterRecord {
        FilterRecord {
            since_ms: 1,
            until_ms,
            evidence_id: until_ms,
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            reporter: Identity::from_secret_bytes([2; 32]).public_key(),
        }
    }

    #[test]
    fn labels_grow_by_subject_and_say_when_they_pass_the_limit() {
        let k = Identity::from_secret_bytes([1; 32]).public_key();
        let mut book = CordonBook::default();
        assert_eq!(book.label(k, 1, rec(&["0xa"], 10), 2), (true, 1));
        assert_eq!(book.label(k, 1, rec(&["0xa"], 10), 2), (false, 1), "the same evidence again changes nothing");
        assert_eq!(book.label(k, 1, rec(&["0xb"], 20), 2), (true, 2));
        assert_eq!(book.label_of(&k, 1).map(|l| (l.since_ms, l.until_ms, l.evidence_id)), Some((1, 20, 20)));
        assert!(book.label(k, 1, rec(&["0xc"], 30), 2).1 > 2, "a third subject is over the limit");
        let other = Identity::from_secret_bytes([3; 32]).public_key();
        assert!(book.label(other, 1, rec(&["0x1", "0x2", "0x3"], 10), 2).1 > 2, "a new label over the limit too");
        assert_eq!(book.label_of(&other, 1).map(|l| l.subjects.len()), Some(2), "kept bounded");
        assert_eq!(book.clear(&k, None), vec![1]);
        assert_eq!(book.expire_labels(10), vec![(other, 1)]);
        assert_eq!(book.active_labels(), 0);
    }
}
