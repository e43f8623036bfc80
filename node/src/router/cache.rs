//! The response cache: answers reused for identical questions, as long as the chain says they
//! still hold, and identical questions in flight asked of providers once.
//!
//! What an answer depends on decides how long it is kept ([`Scope`]):
//! - **a block hash** (`eth_getBlockByHash`, a state read or call at `{"blockHash": …}`, logs of
//!   one block hash) or nothing that changes (`eth_chainId`): kept until evicted for space;
//! - **a block number at least `final_depth_blocks` below the head** (settled history): kept
//!   until evicted, or until a reorganisation is seen (then every block- and head-scoped entry of
//!   the chain goes: a reorganisation deeper than assumed must not leave a replaced block served);
//! - **the head** (`latest`, recent numbers, `eth_blockNumber`, a transaction or receipt by hash):
//!   kept while the head is the one it was served at, and at most `head_ttl_ms`.
//!
//! `pending`, writes, filters and subscriptions are never cached. A reorganisation is seen when a
//! block number this cache has a hash for (from its own upstream's head, or a block answer) shows
//! up with another hash. Bounded in bytes (oldest out). An answer is cached only when it is a
//! result that passed the checks of its request's mode; a `strict` request is answered from the
//! cache only by an entry that was verified.
//!
//! With a disk tier ([`ResponseCache::with_disk`], `[cache] sled_mib`), answers that hold past
//! the head ([`Scope::Forever`], [`Scope::AtBlock`]) are also written to the daemon's store,
//! read there on a memory miss (and brought back into memory), dropped there like in memory when
//! a reorganisation is seen, and kept across restarts. The store bounds it in bytes (oldest out).
//! A restart forgets which hashes it saw, so a reorganisation deeper than `final_depth_blocks`
//! that happened while the daemon was down is not noticed; the depth is chosen so that none does.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rpcmesh_eth::B256;
use serde::Deserialize;
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::outcome::Verified;
use crate::integrity::claim::{BlockSel, Claim, claim_of, params_text};
use crate::store::{AnswerRecord, Store};

/// Settings (`[cache]`).
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    /// Bytes of answers kept.
    pub max_bytes: usize,
    /// Blocks below the head after which a block number's answers are settled history.
    pub final_depth_blocks: u64,
    /// Longest a head-scoped answer is reused.
    pub head_ttl: Duration,
}

/// How long an answer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// As long as it is kept: it names a block hash, or nothing that changes.
    Forever,
    /// Settled history at this block number: until a reorganisation is seen.
    AtBlock(u64),
    /// While the head is this block number, and at most `head_ttl` from `at`.
    AtHead {
        /// The head it was served at.
        head: u64,
        /// When it was stored.
        at: Instant,
    },
}

/// Methods whose answers may be cached (anything else never is).
const CACHEABLE: &[&str] = &[
    "eth_chainId",
    "net_version",
    "eth_blockNumber",
    "eth_gasPrice",
    "eth_maxPriorityFeePerGas",
    "eth_getBlockByNumber",
    "eth_getBlockByHash",
    "eth_getBlockReceipts",
    "eth_getBlockTransactionCountByHash",
    "eth_getBlockTransactionCountByNumber",
    "eth_getTransactionByHash",
    "eth_getTransactionReceipt",
    "eth_getLogs",
    "eth_getBalance",
    "eth_getTransactionCount",
    "eth_getCode",
    "eth_getStorageAt",
    "eth_getProof",
    "eth_call",
    "eth_estimateGas",
];

/// The scope an answer to `method(body)` would have with the chain's head at `head`; `None`:
/// never cached.
pub fn scope_of(method: &str, body: &[u8], head: Option<u64>, final_depth: u64) -> Option<Scope> {
    if !CACHEABLE.contains(&method) {
        return None;
    }
    let at_head = || head.map(|h| Scope::AtHead { head: h, at: Instant::now() });
    let by_number = |n: u64| match head {
        Some(h) if n.saturating_add(final_depth) <= h => Some(Scope::AtBlock(n)),
        Some(_) => at_head(),
        None => None,
    };
    let sel = |b: BlockSel| match b {
        BlockSel::Hash(_) => Some(Scope::Forever),
        BlockSel::Number(n) => by_number(n),
        BlockSel::Earliest => by_number(0),
        BlockSel::Head => at_head(),
        BlockSel::Pending => None,
    };
    match method {
        "eth_chainId" | "net_version" => return Some(Scope::Forever),
        "eth_blockNumber" | "eth_gasPrice" | "eth_maxPriorityFeePerGas" => return at_head(),
        "eth_getBlockTransactionCountByHash" => return Some(Scope::Forever),
        "eth_getProof" | "eth_getBlockTransactionCountByNumber" => {
            // The block is the last parameter.
            let params: Vec<serde_json::Value> = serde_json::from_str(&params_text(body)?).ok()?;
            return match params.last()?.as_str()? {
                "latest" | "safe" | "finalized" => at_head(),
                "pending" => None,
                "earliest" => by_number(0),
                n => by_number(rpcmesh_eth::json::parse_quantity_u64(n).ok()?),
            };
        }
        _ => {}
    }
    match claim_of(method, body).ok()?? {
        Claim::Block { block } | Claim::BlockReceipts { block } => sel(block),
        Claim::State { block, .. } | Claim::Call { block } => sel(block),
        Claim::Transaction { .. } | Claim::Receipt { .. } => at_head(),
        Claim::Logs { filter } => match filter.blocks {
            rpcmesh_eth::logs::FilterBlocks::Hash(_) => Some(Scope::Forever),
            rpcmesh_eth::logs::FilterBlocks::Range { from, to } => {
                use rpcmesh_eth::logs::BlockSpec;
                let number = |s: Option<BlockSpec>| match s {
                    Some(BlockSpec::Number(n)) => Some(n),
                    Some(BlockSpec::Earliest) => Some(0),
                    _ => None,
                };
                match (number(from), number(to)) {
                    (Some(_), Some(t)) => by_number(t),
                    _ => at_head(),
                }
            }
        },
        Claim::Head => at_head(),
        Claim::ChainId => Some(Scope::Forever),
    }
}

/// What the cache keeps of one answer.
#[derive(Debug, Clone)]
pub struct Cached {
    /// The answer body (with the id of the request that fetched it).
    pub body: Bytes,
    /// Who served it.
    pub served_by: Arc<str>,
    /// How far it was verified.
    pub verified: Verified,
    scope: Scope,
}

impl Cached {
    /// An entry (also what an in-flight request shares with identical ones).
    pub fn new(body: Bytes, served_by: Arc<str>, verified: Verified, scope: Scope) -> Self {
        Self { body, served_by, verified, scope }
    }
}

/// Identifies a question: chain, method, params as sent.
pub type Key = (u64, String, String);

#[derive(Default)]
struct Memory {
    map: HashMap<Key, Cached>,
    order: VecDeque<Key>,
    bytes: usize,
    /// Known block hashes by number, per chain (the most recent [`HASHES_KEPT`]).
    hashes: HashMap<u64, BTreeMap<u64, B256>>,
}

/// Block hashes remembered per chain for seeing reorganisations.
const HASHES_KEPT: usize = 256;

/// One in-flight question's shared result.
pub type Flight = Arc<OnceCell<Option<Cached>>>;

/// The cache's metric handles.
#[derive(Debug, Clone, Default)]
pub struct CacheMetrics {
    /// Entries dropped because a reorganisation was seen.
    pub reorg_evictions: prometheus_client::metrics::counter::Counter,
    /// Bytes kept.
    pub bytes: prometheus_client::metrics::gauge::Gauge,
}

/// The disk tier: the daemon's store and the bytes it may hold.
struct DiskTier {
    store: Store,
    max_bytes: u64,
}

/// The cache, one per router.
pub struct ResponseCache {
    settings: CacheSettings,
    store: Mutex<Memory>,
    inflight: Mutex<HashMap<(Key, bool), Flight>>,
    metrics: CacheMetrics,
    disk: Option<DiskTier>,
}

impl ResponseCache {
    /// An empty cache.
    pub fn new(settings: CacheSettings, metrics: CacheMetrics) -> Self {
        Self { settings, store: Mutex::default(), inflight: Mutex::default(), metrics, disk: None }
    }

    /// The same cache with a disk tier of at most `max_bytes` in `store` (see the module docs);
    /// what an earlier run left there is served from the first request on.
    pub fn with_disk(mut self, store: Store, max_bytes: u64) -> Self {
        self.disk = (max_bytes > 0).then_some(DiskTier { store, max_bytes });
        self
    }

    /// The settings.
    pub fn settings(&self) -> &CacheSettings {
        &self.settings
    }

    /// The key of a request, or `None` when it has no readable params.
    pub fn key(chain_id: u64, method: &str, body: &[u8]) -> Option<Key> {
        Some((chain_id, method.to_string(), params_text(body)?))
    }

    /// A usable entry for `key` with the head at `head`: `strict` requests only take verified ones.
    pub fn get(&self, key: &Key, head: Option<u64>, strict: bool) -> Option<Cached> {
        let usable = |c: &Cached| {
            let fresh = match c.scope {
                Scope::Forever | Scope::AtBlock(_) => true,
                Scope::AtHead { head: h, at } => head == Some(h) && at.elapsed() < self.settings.head_ttl,
            };
            fresh && (!strict || c.verified != Verified::None)
        };
        {
            let s = self.store.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = s.map.get(key) {
                return usable(c).then(|| c.clone());
            }
        }
        let c = self.disk_get(key)?;
        self.remember(key.clone(), c.clone());
        usable(&c).then_some(c)
    }

    /// The disk tier's answer to `key`, if it has one.
    fn disk_get(&self, key: &Key) -> Option<Cached> {
        let disk = self.disk.as_ref()?;
        let record = match disk.store.cached_answer(key.0, &key.1, &key.2) {
            Ok(r) => r?,
            Err(e) => {
                tracing::warn!(error = %e, "reading the response cache's disk tier failed");
                return None;
            }
        };
        let scope = record.at_block.map_or(Scope::Forever, Scope::AtBlock);
        Some(Cached {
            body: Bytes::from(record.body),
            served_by: Arc::from(record.served_by),
            verified: verified_from(record.verified),
            scope,
        })
    }

    /// Keeps an answer (a result) under `scope`. Answers over a sixteenth of the budget are not kept.
    /// With a disk tier, answers that hold past the head go there too (same size rule, against
    /// its budget).
    pub fn put(&self, key: Key, body: Bytes, served_by: Arc<str>, verified: Verified, scope: Scope) {
        let size = (body.len() + key.1.len() + key.2.len() + 64) as u64;
        if let (Scope::AtBlock(_) | Scope::Forever, Some((number, hash))) = (scope, block_of(&key.1, &body)) {
            self.observe_block(key.0, number, hash);
        }
        if let Some(disk) = self.disk.as_ref().filter(|d| size <= d.max_bytes / 16) {
            let at_block = match scope {
                Scope::Forever => Some(None),
                Scope::AtBlock(n) => Some(Some(n)),
                Scope::AtHead { .. } => None,
            };
            if let Some(at_block) = at_block {
                let record = AnswerRecord {
                    seq: 0,
                    at_block,
                    verified: verified_code(verified),
                    served_by: served_by.to_string(),
                    body: body.to_vec(),
                };
                if let Err(e) = disk.store.put_cached_answer(key.0, &key.1, &key.2, record, disk.max_bytes) {
                    tracing::warn!(error = %e, "writing to the response cache's disk tier failed");
                }
            }
        }
        self.remember(key, Cached { body, served_by, verified, scope });
    }

    /// Keeps `c` in memory (oldest out past the budget).
    fn remember(&self, key: Key, c: Cached) {
        let size = c.body.len() + key.1.len() + key.2.len() + 64;
        if size > self.settings.max_bytes / 16 {
            return;
        }
        let mut s = self.store.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = s.map.insert(key.clone(), c) {
            s.bytes -= old.body.len() + key.1.len() + key.2.len() + 64;
        } else {
            s.order.push_back(key);
        }
        s.bytes += size;
        while s.bytes > self.settings.max_bytes {
            let Some(old) = s.order.pop_front() else { break };
            if let Some(c) = s.map.remove(&old) {
                s.bytes -= c.body.len() + old.1.len() + old.2.len() + 64;
            }
        }
        self.metrics.bytes.set(s.bytes as i64);
    }

    /// Tells the cache the block at `number` on `chain_id` is `hash`. Another hash than the one
    /// it had for that number is a reorganisation: every entry of the chain that is not tied to
    /// a block hash is dropped, and the hashes above it are forgotten.
    pub fn observe_block(&self, chain_id: u64, number: u64, hash: B256) {
        let mut s = self.store.lock().unwrap_or_else(|p| p.into_inner());
        let hashes = s.hashes.entry(chain_id).or_default();
        // The common case on the request path: the head it already knows.
        let known = hashes.get(&number).copied();
        if known == Some(hash) {
            return;
        }
        let reorg = known.is_some();
        if reorg {
            hashes.split_off(&number);
        }
        hashes.insert(number, hash);
        while hashes.len() > HASHES_KEPT {
            hashes.pop_first();
        }
        if reorg {
            let before = s.map.len();
            s.map.retain(|k, c| k.0 != chain_id || c.scope == Scope::Forever);
            let live: std::collections::HashSet<Key> = s.map.keys().cloned().collect();
            s.order.retain(|k| live.contains(k));
            s.bytes = s.map.iter().map(|(k, c)| c.body.len() + k.1.len() + k.2.len() + 64).sum();
            let mut dropped = before - s.map.len();
            self.metrics.bytes.set(s.bytes as i64);
            drop(s);
            if let Some(disk) = &self.disk {
                match disk.store.drop_cached_answers_at_blocks(chain_id) {
                    Ok(n) => dropped += n,
                    Err(e) => tracing::warn!(error = %e, "dropping reorganised answers from the disk tier failed"),
                }
            }
            self.metrics.reorg_evictions.inc_by(dropped as u64);
            tracing::info!(
                chain_id,
                number,
                dropped,
                "the chain reorganised: cached answers not tied to a block hash dropped"
            );
        }
    }

    /// The shared in-flight slot of a question (`strict` ones apart: they need a verified answer).
    pub fn flight(&self, key: &Key, strict: bool) -> Flight {
        let mut f = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        f.entry((key.clone(), strict)).or_default().clone()
    }

    /// Forgets an in-flight slot once its question is answered (if it is still that slot).
    pub fn land(&self, key: Key, strict: bool, flight: &Flight) {
        let mut f = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        let k = (key, strict);
        if f.get(&k).is_some_and(|cur| Arc::ptr_eq(cur, flight)) {
            f.remove(&k);
        }
    }

    /// Bytes kept.
    pub fn bytes(&self) -> usize {
        self.store.lock().unwrap_or_else(|p| p.into_inner()).bytes
    }
}

/// [`Verified`] as stored in the disk tier.
fn verified_code(v: Verified) -> u8 {
    match v {
        Verified::None => 0,
        Verified::Header => 1,
        Verified::Proof => 2,
        Verified::Quorum => 3,
    }
}

/// The inverse of [`verified_code`]; an unknown code (a newer build's) counts as unverified.
fn verified_from(code: u8) -> Verified {
    match code {
        1 => Verified::Header,
        2 => Verified::Proof,
        3 => Verified::Quorum,
        _ => Verified::None,
    }
}

/// The number and hash of a block answer, if it is one.
fn block_of(method: &str, body: &[u8]) -> Option<(u64, B256)> {
    if !matches!(method, "eth_getBlockByNumber" | "eth_getBlockByHash") {
        return None;
    }
    #[derive(Deserialize)]
    struct B<'a> {
        number: &'a str,
        hash: &'a str,
    }
    let b: B<'_> = serde_json::from_str(crate::integrity::judge::result_of(body)?.get()).ok()?;
    Some((rpcmesh_eth::json::parse_quantity_u64(b.number).ok()?, rpcmesh_eth::json::parse_hash(b.hash).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(method: &str, params: &str) -> Vec<u8> {
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#).into_bytes()
    }

    fn scope(method: &str, params: &str, head: u64) -> Option<Scope> {
        scope_of(method, &body(method, params), Some(head), 10)
    }

    const H: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";
    const A: &str = "0x00000000000000000000000000000000000000aa";

    #[test]
    fn scopes_follow_what_an_answer_depends_on() {
        assert_eq!(scope("eth_getBlockByHash", &format!(r#"["{H}",false]"#), 100), Some(Scope::Forever));
        assert_eq!(scope("eth_getBalance", &format!(r#"["{A}",{{"blockHash":"{H}"}}]"#), 100), Some(Scope::Forever));
        assert_eq!(scope("eth_getBlockByNumber", r#"["0x5a",false]"#, 100), Some(Scope::AtBlock(90)));
        assert!(matches!(
            scope("eth_getBlockByNumber", r#"["0x5b",false]"#, 100),
            Some(Scope::AtHead { head: 100, .. })
        ));
        assert!(matches!(scope("eth_getBalance", &format!(r#"["{A}","latest"]"#), 100), Some(Scope::AtHead { .. })));
        assert!(matches!(scope("eth_blockNumber", "[]", 100), Some(Scope::AtHead { .. })));
        assert_eq!(scope("eth_getBalance", &format!(r#"["{A}","pending"]"#), 100), None);
        assert_eq!(scope("eth_sendRawTransaction", r#"["0x00"]"#, 100), None);
        assert_eq!(scope("eth_getFilterChanges", r#"["0x1"]"#, 100), None);
        assert_eq!(scope("eth_getLogs", r#"[{"fromBlock":"0x1","toBlock":"0x5a"}]"#, 100), Some(Scope::AtBlock(90)));
        assert!(matches!(scope("eth_getLogs", r#"[{"fromBlock":"0x1"}]"#, 100), Some(Scope::AtHead { .. })));
        assert_eq!(scope_of("eth_blockNumber", &body("eth_blockNumber", "[]"), None, 10), None, "no head known");
        assert_eq!(scope("eth_chainId", "[]", 100), Some(Scope::Forever));
    }

    fn cache() -> ResponseCache {
        ResponseCache::new(
            CacheSettings { max_bytes: 1 << 20, final_depth_blocks: 10, head_ttl: Duration::from_secs(60) },
            CacheMetrics::default(),
        )
    }

    fn block(n: u64, hash: &str) -> Bytes {
        Bytes::from(format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"number":"{n:#x}","hash":"{hash}"}}}}"#))
    }

    #[tokio::test(start_paused = true)]
    async fn head_scoped_answers_last_one_head_and_strict_takes_only_verified() {
        let c = cache();
        let k = ResponseCache::key(1, "eth_blockNumber", &body("eth_blockNumber", "[]")).unwrap();
        c.put(
            k.clone(),
            Bytes::from_static(b"x"),
            Arc::from("p"),
            Verified::None,
            Scope::AtHead { head: 5, at: Instant::now() },
        );
        assert!(c.get(&k, Some(5), false).is_some());
        assert!(c.get(&k, Some(5), true).is_none(), "strict needs a verified entry");
        assert!(c.get(&k, Some(6), false).is_none(), "a new head");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(c.get(&k, Some(5), false).is_none(), "past the ttl");
    }

    #[test]
    fn a_reorganisation_drops_what_is_not_tied_to_a_hash() {
        let c = cache();
        let by_number =
            ResponseCache::key(1, "eth_getBlockByNumber", &body("eth_getBlockByNumber", r#"["0x5",false]"#)).unwrap();
        let by_hash =
            ResponseCache::key(1, "eth_getBlockByHash", &body("eth_getBlockByHash", &format!(r#"["{H}",false]"#)))
                .unwrap();
        let other_chain = (2, by_number.1.clone(), by_number.2.clone());
        c.put(by_number.clone(), block(5, H), Arc::from("p"), Verified::Header, Scope::AtBlock(5));
        c.put(by_hash.clone(), block(5, H), Arc::from("p"), Verified::Header, Scope::Forever);
        c.put(other_chain.clone(), block(5, H), Arc::from("p"), Verified::Header, Scope::AtBlock(5));
        c.observe_block(1, 5, B256::from([0x11; 32]));
        assert!(c.get(&by_number, Some(20), true).is_some(), "the same hash is no reorganisation");
        c.observe_block(1, 5, B256::from([0x22; 32]));
        assert!(c.get(&by_number, Some(20), false).is_none(), "replaced block number 5");
        assert!(c.get(&by_hash, Some(20), false).is_some(), "a block hash's answer still holds");
        assert!(c.get(&other_chain, Some(20), false).is_some(), "another chain is untouched");
        assert_eq!(c.metrics.reorg_evictions.get(), 1);
    }

    #[test]
    fn a_warm_restart_serves_settled_answers_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let open = || crate::store::Store::open(dir.path(), crate::store::StoreConfig::default()).unwrap();
        let by_number =
            ResponseCache::key(1, "eth_getBlockByNumber", &body("eth_getBlockByNumber", r#"["0x5",false]"#)).unwrap();
        let by_hash =
            ResponseCache::key(1, "eth_getBlockByHash", &body("eth_getBlockByHash", &format!(r#"["{H}",false]"#)))
                .unwrap();
        let head = ResponseCache::key(1, "eth_blockNumber", &body("eth_blockNumber", "[]")).unwrap();
        {
            let c = cache().with_disk(open(), 1 << 20);
            c.put(by_number.clone(), block(5, H), Arc::from("p"), Verified::Header, Scope::AtBlock(5));
            c.put(by_hash.clone(), block(5, H), Arc::from("p"), Verified::Header, Scope::Forever);
            c.put(
                head.clone(),
                Bytes::from_static(b"h"),
                Arc::from("p"),
                Verified::None,
                Scope::AtHead { head: 20, at: Instant::now() },
            );
        }
        // A new process: an empty memory tier over the same store.
        let c = cache().with_disk(open(), 1 << 20);
        let hit = c.get(&by_number, Some(20), true).expect("settled answer served from disk");
        assert_eq!(hit.body, block(5, H));
        assert_eq!(&*hit.served_by, "p");
        assert_eq!(hit.verified, Verified::Header, "its verification is kept, so strict requests take it");
        assert!(c.get(&head, Some(20), false).is_none(), "answers about the head are never written to disk");
        // A reorganisation drops the number-keyed answer on disk too; the hash-keyed one stays.
        c.observe_block(1, 5, B256::from([0x11; 32]));
        c.observe_block(1, 5, B256::from([0x22; 32]));
        drop(c);
        let c = cache().with_disk(open(), 1 << 20);
        assert!(c.get(&by_number, Some(20), false).is_none(), "replaced block number 5, on disk as well");
        assert!(c.get(&by_hash, Some(20), false).is_some());
    }

    #[test]
    fn bounded_in_bytes_oldest_out() {
        let c = ResponseCache::new(
            CacheSettings { max_bytes: 4096, final_depth_blocks: 10, head_ttl: Duration::from_secs(1) },
            CacheMetrics::default(),
        );
        for i in 0..100u64 {
            let k = (1, "eth_getBalance".to_string(), format!("[{i}]"));
            c.put(k, Bytes::from(vec![b'x'; 100]), Arc::from("p"), Verified::None, Scope::Forever);
        }
        assert!(c.bytes() <= 4096);
        assert!(c.get(&(1, "eth_getBalance".into(), "[0]".into()), None, false).is_none());
        assert!(c.get(&(1, "eth_getBalance".into(), "[99]".into()), None, false).is_some());
        let big = Bytes::from(vec![b'x'; 1000]);
        c.put((1, "eth_call".into(), "[]".into()), big, Arc::from("p"), Verified::None, Scope::Forever);
        assert!(c.get(&(1, "eth_call".into(), "[]".into()), None, false).is_none(), "over a sixteenth: not kept");
    }
}
