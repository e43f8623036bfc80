//! The trusted chain: block headers this node trusts, per chain, and how they become trusted.
//!
//! A header is trusted when its hash (recomputed from its fields) is the one that a quorum of
//! distinct eligible operators (this node's own node counts as one) answer for its height, or
//! when it is the parent of a trusted header (the parent hash is inside the trusted child's
//! hashed fields, so following `parentHash` downward needs one source and no quorum). The
//! trusted head is the highest height at which a quorum of operators' latest blocks agree.
//!
//! One liar never sets the anchor: with two operators both must agree, with more a majority
//! (or `integrity.quorum`). An operator whose verified header disagrees with the quorum's at
//! the same height is logged and counted at once. State is bounded: the newest
//! [`Settings::capacity`] trusted headers per chain, kept in memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use rpcmesh_eth::{B256, BlockId, VerifiedHeader, verify_header, verify_header_of};
use rpcmesh_protocol::messages::BlockRef;
use tokio::time::Instant;

use super::source::Source;
use crate::router::Target;

/// Tuning of the trusted chain.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Operators that must agree (`None`: a majority of the eligible ones, at least 2 when 2
    /// exist).
    pub quorum: Option<usize>,
    /// How long a trusted head is used before it is refreshed (a refresh costs about two
    /// requests per quorum member).
    pub head_fresh: Duration,
    /// Trusted headers kept per chain.
    pub capacity: usize,
}

/// A header on the trusted chain, with the JSON it was verified from (evidence carries it).
#[derive(Debug, Clone)]
pub struct Trusted {
    /// The verified header.
    pub header: VerifiedHeader,
    /// The `eth_getBlockByNumber(.., false)` result it was read from.
    pub json: Bytes,
}

/// The trusted head of a chain, with the highest head a quorum member reported.
#[derive(Debug, Clone)]
pub struct Head {
    /// The trusted header at the head.
    pub header: Arc<Trusted>,
    /// The highest latest block any quorum member answered (bounds `eth_blockNumber`).
    pub highest_seen: u64,
    /// When it was established.
    pub at: Instant,
}

#[derive(Default)]
struct ChainState {
    trusted: BTreeMap<u64, Arc<Trusted>>,
    head: Option<Head>,
}

#[derive(Default)]
struct ChainAnchor {
    state: Mutex<ChainState>,
    /// One head refresh at a time per chain; others wait for its result.
    refresh: tokio::sync::Mutex<()>,
}

/// Trusted headers of every chain.
pub struct Anchors {
    source: Arc<Source>,
    settings: Settings,
    chains: Mutex<HashMap<u64, Arc<ChainAnchor>>>,
    /// Where trusted headers are kept for warm restarts (none in tests).
    store: Option<crate::store::Store>,
}

/// Headers this far below the newest stored one are trusted again after a restart; the newer
/// ones are asked of the quorum again (a reorganisation while the daemon was down is shallower).
pub const WARM_SAFE_DEPTH: u64 = 64;

/// Operators that must agree among `n` eligible ones.
pub fn quorum_of(n: usize, configured: Option<usize>) -> usize {
    let majority = n / 2 + 1;
    configured.unwrap_or(majority).max(n.min(2)).min(n)
}

impl Anchors {
    /// Trusted chains fed by `source`.
    pub fn new(source: Arc<Source>, settings: Settings) -> Self {
        Self { source, settings, chains: Mutex::new(HashMap::new()), store: None }
    }

    /// The same, keeping trusted headers in `store` and starting from those it kept: the newest
    /// stored chain of linked, verifying headers, minus its top [`WARM_SAFE_DEPTH`].
    pub fn with_store(mut self, store: crate::store::Store) -> Self {
        match store.trusted_headers(self.settings.capacity) {
            Ok(rows) => {
                let mut by_chain: HashMap<u64, Vec<(u64, Vec<u8>)>> = HashMap::new();
                for (chain_id, number, json) in rows {
                    by_chain.entry(chain_id).or_default().push((number, json));
                }
                for (chain_id, rows) in by_chain {
                    let warm = warm_chain(rows, WARM_SAFE_DEPTH);
                    let n = warm.len();
                    let chain = self.chain(chain_id);
                    let mut state = chain.state.lock().unwrap_or_else(|p| p.into_inner());
                    for h in warm {
                        insert_linked(&mut state.trusted, h, self.settings.capacity);
                    }
                    tracing::info!(chain_id, headers = n, "trusted headers restored from the store");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read stored trusted headers; starting cold"),
        }
        self.store = Some(store);
        self
    }

    fn chain(&self, chain_id: u64) -> Arc<ChainAnchor> {
        let mut chains = self.chains.lock().unwrap_or_else(|p| p.into_inner());
        chains.entry(chain_id).or_default().clone()
    }

    /// Whether `block` is on the trusted chain: `None` when this node has no trusted header at
    /// that height (too old, too new, or never asked).
    pub fn contains(&self, chain_id: u64, block: &BlockRef) -> Option<bool> {
        let chain = self.chain(chain_id);
        let state = chain.state.lock().unwrap_or_else(|p| p.into_inner());
        state.trusted.get(&block.number).map(|h| h.header.hash().0 == block.hash)
    }

    /// The trusted header at `number`, if already known.
    pub fn cached(&self, chain_id: u64, number: u64) -> Option<Arc<Trusted>> {
        let chain = self.chain(chain_id);
        let state = chain.state.lock().unwrap_or_else(|p| p.into_inner());
        state.trusted.get(&number).cloned()
    }

    fn trust(&self, chain_id: u64, chain: &ChainAnchor, header: Arc<Trusted>) {
        if let Some(store) = &self.store
            && let Err(e) = store.put_trusted_header(chain_id, header.header.number(), &header.json)
        {
            tracing::debug!(error = %e, "could not keep a trusted header");
        }
        let mut state = chain.state.lock().unwrap_or_else(|p| p.into_inner());
        let dropped = insert_linked(&mut state.trusted, header, self.settings.capacity);
        if dropped > 0 {
            tracing::info!(
                chain_id,
                dropped,
                "the chain reorganised: trusted headers that no longer link were dropped"
            );
        }
    }

    /// Asks a quorum again for block `number`, ignoring what is cached: before an answer that
    /// contradicts a recent trusted header is called a lie, the chain may have reorganised
    /// under it. The new quorum's header replaces the old (and what no longer links to it).
    pub async fn reconfirm(&self, chain_id: u64, number: u64, deadline: Instant) -> Result<Arc<Trusted>, String> {
        let chain = self.chain(chain_id);
        let ops = self.source.operators(chain_id);
        let q = quorum_of(ops.len(), self.settings.quorum);
        if q == 0 {
            return Err("no operator serves this chain".into());
        }
        self.quorum_at(chain_id, &chain, number, Vec::new(), &ops, q, deadline).await
    }

    /// The trusted head, refreshed when older than [`Settings::head_fresh`].
    pub async fn head(&self, chain_id: u64, deadline: Instant) -> Result<Head, String> {
        let chain = self.chain(chain_id);
        let fresh = |chain: &ChainAnchor| {
            let state = chain.state.lock().unwrap_or_else(|p| p.into_inner());
            state.head.clone().filter(|h| h.at.elapsed() < self.settings.head_fresh)
        };
        if let Some(head) = fresh(&chain) {
            return Ok(head);
        }
        let _one = chain.refresh.lock().await;
        if let Some(head) = fresh(&chain) {
            return Ok(head);
        }
        let head = self.refresh_head(chain_id, &chain, deadline).await?;
        chain.state.lock().unwrap_or_else(|p| p.into_inner()).head = Some(head.clone());
        Ok(head)
    }

    async fn refresh_head(&self, chain_id: u64, chain: &ChainAnchor, deadline: Instant) -> Result<Head, String> {
        let ops = self.source.operators(chain_id);
        let q = quorum_of(ops.len(), self.settings.quorum);
        if q == 0 {
            return Err("no operator serves this chain".into());
        }
        // One more than the quorum first (one liar or laggard does not cost a second round),
        // the rest only if too few heads verify: the cost stays flat in the size of the mesh.
        let first = (q + 1).min(ops.len());
        let mut heads: Vec<(Target, Trusted)> = Vec::new();
        for batch in [&ops[..first], &ops[first..]] {
            if heads.len() >= q || batch.is_empty() {
                break;
            }
            let latest = join_all(batch.iter().map(|&t| async move {
                let r = self.source.ask(chain_id, t, "eth_getBlockByNumber", r#"["latest",false]"#, deadline).await;
                let r = r.and_then(|json| {
                    verify_header(&json).map(|header| Trusted { header, json }).map_err(|e| e.to_string())
                });
                (t, r)
            }))
            .await;
            for (t, r) in latest {
                match r {
                    Ok(h) => heads.push((t, h)),
                    Err(why) => tracing::debug!(chain_id, target = ?t, %why, "no verifiable head"),
                }
            }
        }
        if heads.len() < q {
            return Err(format!("{} of {} operators gave a verifiable head, {q} needed", heads.len(), ops.len()));
        }
        heads.sort_by_key(|(_, h)| std::cmp::Reverse(h.header.number()));
        let highest_seen = heads[0].1.header.number();
        // The highest height q operators have all reached.
        let height = heads[q - 1].1.header.number();
        let prior: Vec<(Target, Trusted)> =
            heads.iter().filter(|(_, h)| h.header.number() == height).map(|(t, h)| (*t, h.clone())).collect();
        let others: Vec<Target> = heads.iter().filter(|(_, h)| h.header.number() > height).map(|(t, _)| *t).collect();
        let header = self.quorum_at(chain_id, chain, height, prior, &others, q, deadline).await?;
        Ok(Head { header, highest_seen, at: Instant::now() })
    }

    /// The trusted header at `number`: from memory, as the parent of a trusted header, or by
    /// quorum.
    pub async fn at(&self, chain_id: u64, number: u64, deadline: Instant) -> Result<Arc<Trusted>, String> {
        let chain = self.chain(chain_id);
        if let Some(h) = self.cached(chain_id, number) {
            return Ok(h);
        }
        let ops = self.source.operators(chain_id);
        if let Some(child) = self.cached(chain_id, number + 1) {
            for &t in ops.iter().take(2) {
                if let Ok(h) = self.header_by_number(chain_id, t, number, deadline).await
                    && h.header.hash() == child.header.parent_hash()
                {
                    let h = Arc::new(h);
                    self.trust(chain_id, &chain, h.clone());
                    return Ok(h);
                }
            }
        }
        let q = quorum_of(ops.len(), self.settings.quorum);
        if q == 0 {
            return Err("no operator serves this chain".into());
        }
        self.quorum_at(chain_id, &chain, number, Vec::new(), &ops, q, deadline).await
    }

    /// Trusted headers of `from..=to` (at most a few dozen: the caller caps it), linked by
    /// parent hashes down from a trusted `to`, fetched concurrently from one operator.
    pub async fn range(
        &self,
        chain_id: u64,
        from: u64,
        to: u64,
        deadline: Instant,
    ) -> Result<Vec<Arc<Trusted>>, String> {
        let chain = self.chain(chain_id);
        let top = self.at(chain_id, to, deadline).await?;
        let missing: Vec<u64> = (from..to).filter(|&n| self.cached(chain_id, n).is_none()).collect();
        if !missing.is_empty() {
            let ops = self.source.operators(chain_id);
            let t = *ops.first().ok_or("no operator serves this chain")?;
            let fetched = join_all(missing.iter().map(|&n| self.header_by_number(chain_id, t, n, deadline))).await;
            let mut by_number: HashMap<u64, Trusted> = HashMap::new();
            for h in fetched.into_iter().flatten() {
                by_number.insert(h.header.number(), h);
            }
            let mut child = top.clone();
            for n in (from..to).rev() {
                let h = match self.cached(chain_id, n) {
                    Some(h) => h,
                    None => {
                        let h = by_number.remove(&n).ok_or_else(|| format!("no header for block #{n}"))?;
                        if h.header.hash() != child.header.parent_hash() {
                            return Err(format!("block #{n} does not link to its trusted child"));
                        }
                        let h = Arc::new(h);
                        self.trust(chain_id, &chain, h.clone());
                        h
                    }
                };
                child = h;
            }
        }
        (from..=to).map(|n| self.cached(chain_id, n).ok_or_else(|| format!("block #{n} evicted"))).collect()
    }

    async fn header_by_number(
        &self,
        chain_id: u64,
        t: Target,
        number: u64,
        deadline: Instant,
    ) -> Result<Trusted, String> {
        let params = format!(r#"["{number:#x}",false]"#);
        let json = self.source.ask(chain_id, t, "eth_getBlockByNumber", &params, deadline).await?;
        let header = verify_header_of(&json, BlockId::Number(number)).map_err(|e| e.to_string())?;
        Ok(Trusted { header, json })
    }

    /// Asks operators (those in `prior` already answered) for block `number` until `q` agree.
    #[allow(clippy::too_many_arguments)]
    async fn quorum_at(
        &self,
        chain_id: u64,
        chain: &ChainAnchor,
        number: u64,
        prior: Vec<(Target, Trusted)>,
        ask: &[Target],
        q: usize,
        deadline: Instant,
    ) -> Result<Arc<Trusted>, String> {
        let mut votes: Vec<(Target, Trusted)> = prior;
        let mut pending: Vec<Target> = ask.iter().copied().filter(|t| !votes.iter().any(|(v, _)| v == t)).collect();
        if votes.len() < q {
            // Ask all still needed at once; a second round only if some fail or disagree.
            for round in 0..2 {
                let want = if round == 0 { q.saturating_sub(votes.len()) } else { pending.len() };
                let batch: Vec<Target> = pending.drain(..want.min(pending.len())).collect();
                if batch.is_empty() {
                    break;
                }
                let got = join_all(batch.iter().map(|&t| self.header_by_number(chain_id, t, number, deadline))).await;
                votes.extend(batch.into_iter().zip(got).filter_map(|(t, r)| r.ok().map(|h| (t, h))));
                if agreed(&votes, q).is_some() {
                    break;
                }
            }
        }
        let Some(hash) = agreed(&votes, q) else {
            return Err(format!("no {q} operators agree on block #{number} ({} answered)", votes.len()));
        };
        for (t, h) in &votes {
            if h.header.hash() != hash {
                tracing::warn!(chain_id, number, target = ?t, their = %h.header.hash(), trusted = %hash, "operator is on another block than the quorum");
            }
        }
        let header = votes.into_iter().find(|(_, h)| h.header.hash() == hash).map(|(_, h)| Arc::new(h));
        let header = header.ok_or("quorum header vanished")?;
        self.trust(chain_id, chain, header.clone());
        Ok(header)
    }
}

/// Stored headers of one chain (newest first) that may be trusted again: each verifies, each
/// links to its stored child when that is the next block (each was trusted by a quorum when
/// stored; the trusted set has gaps), and those within [`WARM_SAFE_DEPTH`] blocks of the newest
/// (`safe_depth`, [`WARM_SAFE_DEPTH`] in use) are left for the quorum. The first one that fails
/// ends the run.
fn warm_chain(mut rows: Vec<(u64, Vec<u8>)>, safe_depth: u64) -> Vec<Arc<Trusted>> {
    rows.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    let Some(newest) = rows.first().map(|(n, _)| *n) else { return Vec::new() };
    let mut linked: Vec<Arc<Trusted>> = Vec::new();
    for (number, json) in rows {
        let Ok(header) = verify_header_of(&json, BlockId::Number(number)) else { break };
        if linked
            .last()
            .is_some_and(|child| child.header.number() == number + 1 && child.header.parent_hash() != header.hash())
        {
            break;
        }
        linked.push(Arc::new(Trusted { header, json: Bytes::from(json) }));
    }
    linked.into_iter().filter(|h| h.header.number() + safe_depth <= newest).collect()
}

/// Inserts a trusted header, first dropping cached headers it proves replaced: when it does not
/// link to the cached parent (or the cached child does not link to it), the chain reorganised
/// and everything on the far side of the break is stale. Keeps at most `capacity` (oldest out).
/// Returns how many headers were dropped for not linking.
fn insert_linked(trusted: &mut BTreeMap<u64, Arc<Trusted>>, header: Arc<Trusted>, capacity: usize) -> usize {
    let n = header.header.number();
    let mut dropped = 0;
    if let Some(parent) = n.checked_sub(1).and_then(|p| trusted.get(&p))
        && parent.header.hash() != header.header.parent_hash()
    {
        let keep = trusted.split_off(&n);
        dropped += trusted.len();
        *trusted = keep;
    }
    if let Some(child) = n.checked_add(1).and_then(|c| trusted.get(&c))
        && child.header.parent_hash() != header.header.hash()
    {
        dropped += trusted.split_off(&(n + 1)).len();
    }
    if trusted.get(&n).is_some_and(|old| old.header.hash() != header.header.hash()) {
        dropped += 1;
    }
    trusted.insert(n, header);
    while trusted.len() > capacity {
        trusted.pop_first();
    }
    dropped
}

/// The hash at least `q` votes agree on.
fn agreed(votes: &[(Target, Trusted)], q: usize) -> Option<B256> {
    let mut count: HashMap<B256, usize> = HashMap::new();
    for (_, h) in votes {
        *count.entry(h.header.hash()).or_default() += 1;
    }
    count.into_iter().find(|&(_, c)| c >= q).map(|(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(fixture: &[u8]) -> Arc<Trusted> {
        let header = verify_header(fixture).unwrap();
        Arc::new(Trusted { header, json: bytes::Bytes::copy_from_slice(fixture) })
    }

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../eth/tests/fixtures/", $name)).as_slice()
        };
    }

    #[test]
    fn a_header_that_does_not_link_drops_the_replaced_side() {
        let mut map = BTreeMap::new();
        for h in [fixture!("block_0_hashes.json"), fixture!("block_1_hashes.json"), fixture!("block_2_hashes.json")] {
            assert_eq!(insert_linked(&mut map, trusted(h), 10), 0, "a linked chain drops nothing");
        }
        // Block 1 of another chain: its parent is not our block 0, and our block 2 is not its child.
        let other = trusted(fixture!("hf_berlin_block_1_full.json"));
        assert_eq!(other.header.number(), 1);
        assert_eq!(insert_linked(&mut map, other.clone(), 10), 3, "block 0 below the break, 2 above, 1 replaced");
        assert_eq!(map.keys().copied().collect::<Vec<_>>(), vec![1]);
        assert_eq!(map[&1].header.hash(), other.header.hash());
        let mut full = BTreeMap::new();
        for h in [fixture!("block_0_hashes.json"), fixture!("block_1_hashes.json"), fixture!("block_2_hashes.json")] {
            insert_linked(&mut full, trusted(h), 2);
        }
        assert_eq!(full.keys().copied().collect::<Vec<_>>(), vec![1, 2], "bounded, oldest out");
    }

    #[test]
    fn warm_headers_verify_link_and_stay_clear_of_the_newest() {
        let rows = |list: &[(u64, &[u8])]| list.iter().map(|(n, j)| (*n, j.to_vec())).collect::<Vec<_>>();
        let numbers = |w: Vec<Arc<Trusted>>| w.iter().map(|h| h.header.number()).collect::<Vec<_>>();
        let (b0, b1, b2) =
            (fixture!("block_0_hashes.json"), fixture!("block_1_hashes.json"), fixture!("block_2_hashes.json"));
        let chain = rows(&[(0, b0), (1, b1), (2, b2)]);
        assert_eq!(numbers(warm_chain(chain.clone(), 0)), [2, 1, 0], "a linked, verifying run comes back");
        assert_eq!(numbers(warm_chain(chain.clone(), 1)), [1, 0], "the newest `safe_depth` are left out");
        assert!(warm_chain(chain, WARM_SAFE_DEPTH).is_empty(), "nothing 64 blocks below the newest");
        // Block 2's JSON stored as block 3 does not verify as block 3: the run ends before it.
        assert!(warm_chain(rows(&[(3, b2), (1, b1), (0, b0)]), 0).is_empty(), "an unverifiable header ends the run");
        // Another chain's block 1 under our block 2: the link breaks, only what is above it stays.
        let other = fixture!("hf_berlin_block_1_full.json");
        assert_eq!(numbers(warm_chain(rows(&[(2, b2), (1, other), (0, b0)]), 0)), [2]);
        // A gap is no break: each stored header was trusted by a quorum on its own.
        assert_eq!(numbers(warm_chain(rows(&[(2, b2), (0, b0)]), 0)), [2, 0]);
    }

    #[test]
    fn quorum_is_a_majority_and_never_one_liar() {
        assert_eq!(quorum_of(0, None), 0);
        assert_eq!(quorum_of(1, None), 1);
        assert_eq!(quorum_of(2, None), 2);
        assert_eq!(quorum_of(3, None), 2);
        assert_eq!(quorum_of(4, None), 3);
        assert_eq!(quorum_of(5, Some(1)), 2, "a configured quorum of one is raised to two");
        assert_eq!(quorum_of(3, Some(9)), 3, "never more than exist");
    }
}
