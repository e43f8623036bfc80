//! [`CordonBook`]: active cordons and the reputation counter, pure (time passed in).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rpcmesh_protocol::PublicKey;
use rpcmesh_protocol::digest::Digest;

use crate::mesh::{CordonView, Standing};
use crate::store::CordonRecord;

/// Cordons by (accused, chain) and distinct proven lies by provider.
#[derive(Debug, Default, Clone)]
pub struct CordonBook {
    cordons: HashMap<(PublicKey, u64), CordonRecord>,
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

    /// The cordon of `accused` on `chain_id`.
    pub fn get(&self, accused: &PublicKey, chain_id: u64) -> Option<&CordonRecord> {
        self.cordons.get(&(*accused, chain_id))
    }

    /// Clears the cordons of `accused` on `chain_id`, or on every chain. Returns the chains cleared.
    pub fn clear(&mut self, accused: &PublicKey, chain_id: Option<u64>) -> Vec<u64> {
        let mut cleared = Vec::new();
        self.cordons.retain(|(k, c), _| {
            let hit = k == accused && chain_id.is_none_or(|want| want == *c);
            if hit {
                cleared.push(*c);
            }
            !hit
        });
        cleared.sort_unstable();
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
        for s in out.values_mut() {
            s.cordons.sort_by_key(|c| c.chain_id);
        }
        Arc::new(out)
    }
}
