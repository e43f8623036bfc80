//! Coverage: which method groups answer, how deep the state goes, the widest `eth_getLogs` range
//! and the largest batch answered.
//!
//! - **Method groups**: one light call each (see [`group_probe`]); a group answers when the call
//!   returns a result.
//! - **Archive depth**: the oldest block whose state answers (`eth_getBalance` of the zero
//!   address): block 1 first (answers: an archive node), else a binary search between block 1
//!   and the head, assuming a node keeps the state of a suffix of the chain.
//! - **`eth_getLogs` range**: ranges ending at the head with an address filter that matches
//!   nothing (so answers stay empty while the node still scans the range), doubled from 1 block
//!   until refused or [`Settings::logs_range_max`](super::Settings) or the whole chain, then a
//!   binary search between the last answered and the first refused width.
//! - **Batch size**: batches of `eth_chainId` doubled from 1 up to the configured maximum, then a
//!   binary search; a batch counts only when every call in it has a result.

use std::sync::atomic::AtomicU64;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::correctness::{Pinned, ZERO_ADDRESS};
use super::progress::{Phase, Tracker};
use super::target::{CallError, Rpc, RpcTarget, qty, short};

/// Address of the logs-range filter: the conventional burn address, which emits no logs.
const NO_LOGS_ADDRESS: &str = "0x000000000000000000000000000000000000dead";

/// Checks planned for the progress estimate (groups, and about a dozen probes per search).
const PLANNED_CHECKS: usize = 6 + 3 * 12;

/// One method group's probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupProbe {
    /// `eth`, `net`, `web3`, `debug`, `trace` or `txpool`.
    pub group: String,
    /// The method called.
    pub method: String,
    /// Whether it returned a result.
    pub answers: bool,
    /// The answer or error, shortened.
    pub answer: String,
    /// Refused by the candidate's relay method policy (through the mesh): the group is not
    /// served to the mesh by the candidate's choice.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refused_by_policy: bool,
}

/// The archive-depth search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveDepth {
    /// Head when the search ran.
    pub head: u64,
    /// Oldest block whose state answered; `None`: not even the head's.
    pub oldest_state_block: Option<u64>,
    /// Calls made.
    pub probes: u32,
    /// The last error seen below the oldest state, shortened.
    pub last_error: Option<String>,
}

impl ArchiveDepth {
    /// Whether the state of block 1 answers.
    pub fn is_archive(&self) -> bool {
        self.oldest_state_block.is_some_and(|b| b <= 1)
    }

    /// In words.
    pub fn describe(&self) -> String {
        match self.oldest_state_block {
            Some(b) if b <= 1 => format!("state answers from block {b} on (archive)"),
            Some(b) => {
                format!("state answers from block {b} on ({} blocks of state, head {})", self.head - b + 1, self.head)
            }
            None => "no state answered, not even at the head".into(),
        }
    }
}

/// The result of a doubling-then-bisecting search for the largest size answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    /// Largest size answered (0: not even 1).
    pub largest_ok: u64,
    /// Smallest size refused, if one was.
    pub smallest_refused: Option<u64>,
    /// The largest size the search would try.
    pub probe_max: u64,
    /// Whether `probe_max` is the whole chain (logs): answering it means there is no limit here.
    pub covers_chain: bool,
    /// The refusal, shortened.
    pub refusal: Option<String>,
    /// The unit, for the report: `blocks` or `calls`.
    pub unit: String,
}

impl Limit {
    /// Whether `min` is met: answered at least `min`, or answered the whole chain.
    pub fn meets(&self, min: u64) -> bool {
        self.largest_ok >= min || (self.covers_chain && self.smallest_refused.is_none() && self.largest_ok > 0)
    }

    /// In words.
    pub fn describe(&self) -> String {
        match self.smallest_refused {
            Some(r) => format!("{} {} answered, {r} refused", self.largest_ok, self.unit),
            None if self.covers_chain => {
                format!("{} {} answered: the whole chain, no limit found", self.largest_ok, self.unit)
            }
            None => format!("{} {} answered, no limit found up to the probe maximum", self.largest_ok, self.unit),
        }
    }
}

/// The coverage section of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// One probe per group of [`METHOD_GROUPS`](super::policy::METHOD_GROUPS).
    pub method_groups: Vec<GroupProbe>,
    /// State depth.
    pub archive: ArchiveDepth,
    /// `eth_getLogs` range.
    pub logs_range: Limit,
    /// Batch size.
    pub batch: Limit,
}

/// The call that tells whether `group` answers, given a pinned block (with a transaction, when
/// it has one: tracing one transaction is much lighter than tracing a block).
pub fn group_probe(group: &str, pinned: Option<&Pinned>) -> (&'static str, Value) {
    let block = qty(pinned.map_or(0, |p| p.number));
    let tx = pinned.and_then(|p| p.txs.first());
    match (group, tx) {
        ("net", _) => ("net_version", json!([])),
        ("web3", _) => ("web3_clientVersion", json!([])),
        ("debug", Some(tx)) => ("debug_traceTransaction", json!([tx, { "tracer": "callTracer" }])),
        ("debug", None) => ("debug_traceBlockByNumber", json!([block, { "tracer": "callTracer" }])),
        ("trace", Some(tx)) => ("trace_transaction", json!([tx])),
        ("trace", None) => ("trace_block", json!([block])),
        ("txpool", _) => ("txpool_status", json!([])),
        _ => ("eth_chainId", json!([])),
    }
}

/// Settings of the searches.
#[derive(Debug, Clone, Copy)]
pub struct Probes {
    /// Chain head.
    pub head: u64,
    /// Widest logs range tried, blocks.
    pub logs_range_max: u64,
    /// Largest batch tried, calls.
    pub batch_max: u64,
}

/// Runs every coverage probe against the candidate.
pub async fn run<C: RpcTarget>(
    candidate: &C,
    pinned: Option<&Pinned>,
    probes: Probes,
    tracker: &Tracker<'_>,
) -> Coverage {
    tracker.plan(PLANNED_CHECKS);
    let ids = AtomicU64::new(2_000);
    let rpc = Rpc::new(candidate, &ids);
    let mut method_groups = Vec::new();
    for group in super::policy::METHOD_GROUPS {
        let (method, params) = group_probe(group, pinned);
        let answer = rpc.call(method, &params).await;
        tracker.check_done(Phase::Coverage, &format!("method group {group}"));
        let refused_by_policy = matches!(&answer, Err(CallError::Target(e)) if e.refused_by_policy());
        method_groups.push(GroupProbe {
            group: group.into(),
            method: method.into(),
            answers: answer.is_ok(),
            refused_by_policy,
            answer: match answer {
                Ok(v) => short(&v.to_string(), 200),
                Err(e) => short(&e.to_string(), 200),
            },
        });
    }
    let archive = archive_depth(rpc, probes.head, tracker).await;
    let logs_range = logs_range(rpc, probes, tracker).await;
    let batch = batch_limit(candidate, probes.batch_max, tracker).await;
    Coverage { method_groups, archive, logs_range, batch }
}

async fn archive_depth<C: RpcTarget>(rpc: Rpc<'_, C>, head: u64, tracker: &Tracker<'_>) -> ArchiveDepth {
    let mut depth = ArchiveDepth { head, oldest_state_block: None, probes: 0, last_error: None };
    let state_at = async |b: u64, depth: &mut ArchiveDepth| {
        depth.probes += 1;
        let r = rpc.call("eth_getBalance", &json!([ZERO_ADDRESS, qty(b)])).await;
        tracker.check_done(Phase::Coverage, &format!("archive depth: state at block {b}"));
        match r {
            Ok(_) => true,
            Err(e) => {
                depth.last_error = Some(short(&e.to_string(), 200));
                false
            }
        }
    };
    if !state_at(head, &mut depth).await {
        return depth;
    }
    if head <= 1 || state_at(1, &mut depth).await {
        depth.oldest_state_block = Some(head.min(1));
        depth.last_error = None;
        return depth;
    }
    // Invariant: no state at `lo`, state at `hi`.
    let (mut lo, mut hi) = (1, head);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if state_at(mid, &mut depth).await {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    depth.oldest_state_block = Some(hi);
    depth
}

async fn logs_range<C: RpcTarget>(rpc: Rpc<'_, C>, probes: Probes, tracker: &Tracker<'_>) -> Limit {
    let chain_len = probes.head.saturating_add(1);
    let probe_max = probes.logs_range_max.min(chain_len).max(1);
    let head = probes.head;
    let mut limit = search(probe_max, async |width| {
        let from = head + 1 - width.min(head + 1);
        let filter = json!([{ "fromBlock": qty(from), "toBlock": qty(head), "address": NO_LOGS_ADDRESS }]);
        let r = rpc.call("eth_getLogs", &filter).await;
        tracker.check_done(Phase::Coverage, &format!("eth_getLogs over {width} blocks"));
        r.map(|_| ()).map_err(|e| e.to_string())
    })
    .await;
    limit.covers_chain = probe_max == chain_len;
    limit.unit = "blocks".into();
    limit
}

async fn batch_limit<C: RpcTarget>(candidate: &C, batch_max: u64, tracker: &Tracker<'_>) -> Limit {
    let mut limit = search(batch_max.max(1), async |size| {
        let calls: Vec<Value> =
            (0..size).map(|i| json!({ "jsonrpc": "2.0", "id": i, "method": "eth_chainId", "params": [] })).collect();
        let answer = candidate.call(Bytes::from(Value::Array(calls).to_string())).await;
        tracker.check_done(Phase::Coverage, &format!("batch of {size}"));
        let body = answer.map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))?;
        match v.as_array() {
            Some(list) if list.len() as u64 == size && list.iter().all(|a| a.get("result").is_some()) => Ok(()),
            Some(list) => Err(format!(
                "{} answers, {} with a result",
                list.len(),
                list.iter().filter(|a| a.get("result").is_some()).count()
            )),
            None => Err(short(&v.to_string(), 200)),
        }
    })
    .await;
    limit.unit = "calls".into();
    limit
}

/// The largest size in `1..=max` for which `ok(size)` holds, by doubling then bisecting; assumes
/// that a size answered means every smaller one is too.
async fn search(max: u64, mut ok: impl AsyncFnMut(u64) -> Result<(), String>) -> Limit {
    let mut limit = Limit {
        largest_ok: 0,
        smallest_refused: None,
        probe_max: max,
        covers_chain: false,
        refusal: None,
        unit: String::new(),
    };
    let mut size = 1u64;
    loop {
        match ok(size).await {
            Ok(()) => limit.largest_ok = size,
            Err(e) => {
                limit.smallest_refused = Some(size);
                limit.refusal = Some(short(&e, 200));
                break;
            }
        }
        if size >= max {
            return limit;
        }
        size = size.saturating_mul(2).min(max);
    }
    let mut hi = size;
    while hi - limit.largest_ok > 1 {
        let mid = limit.largest_ok + (hi - limit.largest_ok) / 2;
        match ok(mid).await {
            Ok(()) => limit.largest_ok = mid,
            Err(e) => {
                hi = mid;
                limit.refusal = Some(short(&e, 200));
            }
        }
    }
    limit.smallest_refused = Some(hi);
    limit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_search(max: u64, real_limit: u64) -> (Limit, u32) {
        let mut calls = 0;
        let limit = futures::executor::block_on(search(max, async |n| {
            calls += 1;
            if n <= real_limit { Ok(()) } else { Err(format!("{n} is too many")) }
        }));
        (limit, calls)
    }

    #[test]
    fn finds_the_exact_limit() {
        for (max, real) in [(1000, 100), (1000, 1), (1000, 999), (1000, 5000), (1000, 0), (7, 3)] {
            let (limit, calls) = run_search(max, real);
            assert_eq!(limit.largest_ok, real.min(max), "max {max} real {real}");
            assert_eq!(limit.smallest_refused, (real < max).then_some(real + 1), "max {max} real {real}");
            assert!(calls <= 2 * 64, "{calls}");
        }
    }

    #[test]
    fn a_short_chain_answered_whole_meets_any_range() {
        let whole = Limit {
            largest_ok: 41,
            smallest_refused: None,
            probe_max: 41,
            covers_chain: true,
            refusal: None,
            unit: "blocks".into(),
        };
        assert!(whole.meets(1000));
        assert!(!Limit { covers_chain: false, ..whole.clone() }.meets(1000));
        assert!(!Limit { smallest_refused: Some(41), largest_ok: 40, ..whole }.meets(1000));
    }
}
