//! Correctness: a fixed set of reads at pinned blocks, sent to the candidate and to every
//! reference, answers compared field by field, and each answer checked on its own by
//! [`verify`](super::verify).
//!
//! **Pinned blocks.** `--block N` pins blocks explicitly. Otherwise the battery takes the source
//! (the first reference, else the candidate) at `head - confirmations` and walks back at most
//! [`SCAN_BACK_BLOCKS`] blocks to the first one with transactions, so the reads have real data.
//!
//! **The reads** (per pinned block `B` with hash `H`), documented in the operator guide too:
//! - block data: `eth_getBlockByNumber(B, false)`, `eth_getBlockByNumber(B, true)`,
//!   `eth_getBlockByHash(H, false)`, `eth_getBlockTransactionCountByNumber(B)`,
//!   `eth_getBlockReceipts(B)`, `eth_getLogs({fromBlock: B, toBlock: B})`,
//!   `eth_getLogs({blockHash: H})`, and for up to [`MAX_TXS`] of its transactions
//!   `eth_getTransactionByHash` and `eth_getTransactionReceipt`;
//! - state at `B`, for up to [`MAX_ADDRESSES`] addresses the block touches (senders, recipients,
//!   created contracts): `eth_getBalance`, `eth_getTransactionCount`, `eth_getCode`,
//!   `eth_getStorageAt(slot 0)`, and `eth_call` of a contract with empty data;
//! - once: `eth_chainId`, `net_version`, `eth_getBlockByNumber(1, false)` (early history).
//!
//! **Verification.** Besides the comparison, each answer is checked on its own: blocks and
//! transactions by their hashes ([`verify`](super::verify)), and, against the pinned block's
//! header (the candidate's, accepted only when it hashes to the pinned hash), receipts against its
//! `receiptsRoot`, logs against those receipts, state reads against an `eth_getProof` at its
//! `stateRoot` ([`super::deep`]).
//!
//! **Comparison.** Answers are compared field by field over the fields both sides have (clients
//! differ in optional fields), hex case- and zero-padding-insensitively. When several references
//! are given, only reads on which every answering reference agrees are compared. A candidate
//! error where the references answer is a difference ("unanswered") unless it is a state read
//! below the candidate's oldest state, which is the archive criterion's business.

use std::sync::atomic::AtomicU64;

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::progress::{Phase, Tracker};
use super::target::{CallError, Rpc, RpcTarget, qty, quantity};
use super::verify::{Verification, same_hex, verify};

/// How far back from `head - confirmations` to look for a block with transactions.
pub const SCAN_BACK_BLOCKS: u64 = 64;
/// Transactions read per pinned block.
pub const MAX_TXS: usize = 3;
/// Addresses whose state is read per pinned block.
pub const MAX_ADDRESSES: usize = 3;
/// Reads in flight at once: enough to keep a slow endpoint from stretching the run, few enough
/// not to trip a rate limit before the load ramp.
const CONCURRENCY: usize = 4;
/// Answers longer than this (as JSON text) are cut in the report.
const MAX_ANSWER_CHARS: usize = 4096;
/// Differing field paths listed per read.
const MAX_PATHS: usize = 20;

/// A pinned block and what the battery learned of it from the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pinned {
    /// Block number.
    pub number: u64,
    /// Block hash, as the source gave it.
    pub hash: String,
    /// Up to [`MAX_TXS`] transaction hashes.
    pub txs: Vec<String>,
    /// Up to [`MAX_ADDRESSES`] addresses the block touches.
    pub addresses: Vec<String>,
    /// A contract address (created or called in the block), if any.
    pub contract: Option<String>,
    /// An address that emitted a log in the block, if any.
    pub log_address: Option<String>,
}

/// Finds the pinned blocks on `source`: `given` if any, else the first block with transactions
/// at or below `head - confirmations`.
pub async fn pin<S: RpcTarget>(
    source: Rpc<'_, S>,
    head: u64,
    confirmations: u64,
    given: &[u64],
) -> Result<Vec<Pinned>, CallError> {
    let mut numbers = given.to_vec();
    if numbers.is_empty() {
        let start = head.saturating_sub(confirmations);
        let mut chosen = start;
        for n in (start.saturating_sub(SCAN_BACK_BLOCKS)..=start).rev() {
            let count = source.call("eth_getBlockTransactionCountByNumber", &json!([qty(n)])).await?;
            if quantity(&count).is_some_and(|c| c > 0) {
                chosen = n;
                break;
            }
        }
        numbers.push(chosen);
    }
    let mut pinned = Vec::new();
    for n in numbers {
        pinned.push(describe_block(source, n).await?);
    }
    Ok(pinned)
}

async fn describe_block<S: RpcTarget>(source: Rpc<'_, S>, n: u64) -> Result<Pinned, CallError> {
    let block = source.call("eth_getBlockByNumber", &json!([qty(n), true])).await?;
    let hash = block
        .get("hash")
        .and_then(Value::as_str)
        .ok_or_else(|| CallError::Invalid(format!("block {n} has no hash (is it beyond the head?)")))?
        .to_string();
    let mut p = Pinned { number: n, hash, txs: vec![], addresses: vec![], contract: None, log_address: None };
    let add_address = |p: &mut Pinned, a: Option<&str>| {
        if let Some(a) = a
            && p.addresses.len() < MAX_ADDRESSES
            && !p.addresses.iter().any(|x| x.eq_ignore_ascii_case(a))
        {
            p.addresses.push(a.to_ascii_lowercase());
        }
    };
    for tx in block.get("transactions").and_then(Value::as_array).into_iter().flatten().take(MAX_TXS) {
        let Some(h) = tx.get("hash").and_then(Value::as_str) else { continue };
        p.txs.push(h.to_string());
        add_address(&mut p, tx.get("from").and_then(Value::as_str));
        add_address(&mut p, tx.get("to").and_then(Value::as_str));
        let receipt = source.call("eth_getTransactionReceipt", &json!([h])).await?;
        if let Some(c) = receipt.get("contractAddress").and_then(Value::as_str) {
            p.contract.get_or_insert_with(|| c.to_ascii_lowercase());
            add_address(&mut p, Some(c));
        }
        if let Some(a) = receipt.pointer("/logs/0/address").and_then(Value::as_str) {
            p.log_address.get_or_insert_with(|| a.to_ascii_lowercase());
        }
    }
    if p.addresses.is_empty() {
        p.addresses.push(ZERO_ADDRESS.into());
    }
    Ok(p)
}

/// Whose state is read when nothing better is known, and whose balance the archive search reads.
pub const ZERO_ADDRESS: &str = "0x0000000000000000000000000000000000000000";

/// One read of the set.
#[derive(Debug, Clone, PartialEq)]
pub struct Read {
    /// Method.
    pub method: &'static str,
    /// Params.
    pub params: Value,
    /// The block it reads at, if any.
    pub block: Option<u64>,
    /// Whether it reads state (and so needs the state of `block`).
    pub state: bool,
}

/// The read set for `pinned` on a chain whose head is `head`.
pub fn reads(pinned: &[Pinned], head: u64) -> Vec<Read> {
    let mut out: Vec<Read> = Vec::new();
    // A pinned block 1 would repeat the early-history read: each read once.
    let mut push = |method, params: Value, block, state| {
        if !out.iter().any(|r| r.method == method && r.params == params) {
            out.push(Read { method, params, block, state });
        }
    };
    push("eth_chainId", json!([]), None, false);
    push("net_version", json!([]), None, false);
    if head >= 1 {
        push("eth_getBlockByNumber", json!(["0x1", false]), Some(1), false);
    }
    for p in pinned {
        let (b, n) = (qty(p.number), Some(p.number));
        push("eth_getBlockByNumber", json!([b, false]), n, false);
        push("eth_getBlockByNumber", json!([b, true]), n, false);
        push("eth_getBlockByHash", json!([p.hash, false]), n, false);
        push("eth_getBlockTransactionCountByNumber", json!([b]), n, false);
        push("eth_getBlockReceipts", json!([b]), n, false);
        push("eth_getLogs", json!([{ "fromBlock": b, "toBlock": b }]), n, false);
        push("eth_getLogs", json!([{ "blockHash": p.hash }]), n, false);
        for tx in &p.txs {
            push("eth_getTransactionByHash", json!([tx]), n, false);
            push("eth_getTransactionReceipt", json!([tx]), n, false);
        }
        for a in &p.addresses {
            push("eth_getBalance", json!([a, b]), n, true);
            push("eth_getTransactionCount", json!([a, b]), n, true);
            push("eth_getCode", json!([a, b]), n, true);
            push("eth_getStorageAt", json!([a, "0x0", b]), n, true);
        }
        if let Some(c) = &p.contract {
            push("eth_call", json!([{ "to": c, "data": "0x" }, b]), n, true);
        }
    }
    out
}

/// How one read came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadOutcome {
    /// The candidate's answer agrees with the references'.
    Match,
    /// It disagrees.
    Differs,
    /// The candidate failed where the references answered.
    Unanswered,
    /// The candidate failed a state read below its oldest state (see the archive criterion).
    BelowStateDepth,
    /// Not compared: no reference, the references disagree, or none answered.
    NotCompared,
}

/// One read in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadResult {
    /// Method.
    pub method: String,
    /// Params.
    pub params: Value,
    /// Block read at.
    pub block: Option<u64>,
    /// Whether it reads state.
    pub state: bool,
    /// Outcome.
    pub outcome: ReadOutcome,
    /// The integrity check of the candidate's answer (see `verify`).
    pub verification: String,
    /// Whether that check failed.
    pub verification_failed: bool,
    /// Fields that differ (JSON paths), for `differs`.
    pub differing_fields: Vec<String>,
    /// Why it was not compared, or other context.
    pub note: Option<String>,
    /// The candidate's answer (result, error object, or failure), cut at 4096 characters.
    pub candidate: Value,
    /// The references' answer, cut likewise.
    pub reference: Option<Value>,
}

/// The correctness section of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Correctness {
    /// Whether any reference was given.
    pub references_used: bool,
    /// Reads compared with a reference answer.
    pub compared: usize,
    /// Every read.
    pub reads: Vec<ReadResult>,
}

impl Correctness {
    /// Reads that count against the candidate: differing or unanswered answers, and answers that
    /// failed the integrity checks.
    pub fn differences(&self) -> usize {
        self.reads
            .iter()
            .filter(|r| matches!(r.outcome, ReadOutcome::Differs | ReadOutcome::Unanswered) || r.verification_failed)
            .count()
    }

    /// Moves unanswered state reads below `oldest_state` to [`ReadOutcome::BelowStateDepth`].
    pub fn attribute_to_archive(&mut self, oldest_state: Option<u64>) {
        for r in &mut self.reads {
            let below = match (r.block, oldest_state) {
                (Some(b), Some(oldest)) => b < oldest,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if r.state && r.outcome == ReadOutcome::Unanswered && below {
                r.outcome = ReadOutcome::BelowStateDepth;
                r.note = Some("below the candidate's oldest state: judged by the archive criterion".into());
            }
        }
    }
}

/// Runs the read set against the candidate and the references.
pub async fn run<C: RpcTarget, R: RpcTarget>(
    candidate: &C,
    references: &[R],
    reads: Vec<Read>,
    pinned: &[Pinned],
    tracker: &Tracker<'_>,
) -> Correctness {
    tracker.plan(reads.len());
    let ids = AtomicU64::new(1_000);
    let candidate = Rpc::new(candidate, &ids);
    let refs: Vec<Rpc<'_, R>> = references.iter().map(|r| Rpc::new(r, &ids)).collect();
    // Each pinned block's header (matching the pinned hash) and receipts, verified once.
    let material = super::deep::material(candidate, pinned).await;
    let results: Vec<ReadResult> = futures::stream::iter(reads)
        .map(|read| {
            let (refs, material) = (&refs, &material);
            async move {
                let mine = candidate.call(read.method, &read.params).await;
                let deep = match &mine {
                    Ok(v) => super::deep::verify(candidate, &read, v, material).await,
                    Err(_) => None,
                };
                let theirs = futures::future::join_all(refs.iter().map(|r| r.call(read.method, &read.params))).await;
                let mut result = judge(&read, mine, theirs, !references.is_empty());
                if let Some(v) = deep {
                    // A material check replaces the plain one (echo at most) when it applies.
                    result.verification_failed = matches!(v, Verification::Failed(_));
                    result.verification = v.describe();
                }
                tracker.check_done(Phase::Correctness, read.method);
                result
            }
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let compared = results.iter().filter(|r| r.reference.is_some()).count();
    Correctness { references_used: !references.is_empty(), compared, reads: results }
}

fn judge(
    read: &Read,
    mine: Result<Value, CallError>,
    theirs: Vec<Result<Value, CallError>>,
    have_references: bool,
) -> ReadResult {
    let (verification, candidate) = match &mine {
        Ok(v) => (verify(read.method, &read.params, v), cut(v)),
        Err(e) => (Verification::NotVerifiable, e.to_json()),
    };
    let mut r = ReadResult {
        method: read.method.to_string(),
        params: read.params.clone(),
        block: read.block,
        state: read.state,
        outcome: ReadOutcome::NotCompared,
        verification_failed: matches!(verification, Verification::Failed(_)),
        verification: verification.describe(),
        differing_fields: vec![],
        note: None,
        candidate,
        reference: None,
    };
    if !have_references {
        r.note = Some("no reference endpoint".into());
        return r;
    }
    let answered: Vec<&Value> = theirs.iter().filter_map(|t| t.as_ref().ok()).collect();
    let Some(truth) = answered.first().copied() else {
        r.note = Some(match theirs.first() {
            Some(Err(e)) => format!("no reference answered: {e}"),
            _ => "no reference answered".into(),
        });
        return r;
    };
    if answered.iter().any(|other| !diff(truth, other).is_empty()) {
        r.note = Some("the references disagree with each other".into());
        return r;
    }
    r.reference = Some(cut(truth));
    match &mine {
        Ok(v) => {
            r.differing_fields = diff(truth, v);
            r.outcome = if r.differing_fields.is_empty() { ReadOutcome::Match } else { ReadOutcome::Differs };
        }
        Err(_) => r.outcome = ReadOutcome::Unanswered,
    }
    r
}

/// An answer for the report: as is, or its first [`MAX_ANSWER_CHARS`] characters as a string.
fn cut(v: &Value) -> Value {
    let text = v.to_string();
    if text.len() <= MAX_ANSWER_CHARS {
        return v.clone();
    }
    Value::String(format!("{}… ({} bytes in all)", text.chars().take(MAX_ANSWER_CHARS).collect::<String>(), text.len()))
}

/// Paths at which `b` differs from `a`, over the object keys both have (at most [`MAX_PATHS`]).
pub fn diff(a: &Value, b: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff_at(a, b, &mut String::from("$"), &mut out);
    out
}

fn diff_at(a: &Value, b: &Value, path: &mut String, out: &mut Vec<String>) {
    if out.len() >= MAX_PATHS {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                if let Some(vb) = y.get(k) {
                    let len = path.len();
                    path.push('.');
                    path.push_str(k);
                    diff_at(va, vb, path, out);
                    path.truncate(len);
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                out.push(format!("{path} (length {} vs {})", x.len(), y.len()));
                return;
            }
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                diff_at(va, vb, path, out);
                path.truncate(len);
            }
        }
        (Value::String(x), Value::String(y)) if x.starts_with("0x") && y.starts_with("0x") => {
            if !same_hex(x, y) {
                out.push(path.clone());
            }
        }
        (x, y) if x == y => {}
        _ => out.push(path.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_ignore_one_sided_fields_and_hex_spelling() {
        let a = json!({"hash": "0xAB", "number": "0x01", "extra": 1, "txs": [{"v": "0x1"}]});
        let b = json!({"hash": "0xab", "number": "0x1", "other": 2, "txs": [{"v": "0x1"}]});
        assert!(diff(&a, &b).is_empty());
        let c = json!({"hash": "0xac", "number": "0x1", "txs": [{"v": "0x2"}]});
        assert_eq!(diff(&a, &c), vec!["$.hash".to_string(), "$.txs[0].v".to_string()]);
        assert_eq!(diff(&json!([1]), &json!([1, 2])), vec!["$ (length 1 vs 2)".to_string()]);
        assert_eq!(diff(&json!({"a": 1}), &Value::Null), vec!["$".to_string()]);
    }

    #[test]
    fn state_reads_below_the_oldest_state_go_to_the_archive_criterion() {
        let read = |block, state| ReadResult {
            method: "eth_getBalance".into(),
            params: json!([]),
            block: Some(block),
            state,
            outcome: ReadOutcome::Unanswered,
            verification: String::new(),
            verification_failed: false,
            differing_fields: vec![],
            note: None,
            candidate: Value::Null,
            reference: Some(Value::Null),
        };
        let mut c = Correctness {
            references_used: true,
            compared: 3,
            reads: vec![read(5, true), read(50, true), read(5, false)],
        };
        c.attribute_to_archive(Some(10));
        let outcomes: Vec<_> = c.reads.iter().map(|r| r.outcome).collect();
        assert_eq!(outcomes, [ReadOutcome::BelowStateDepth, ReadOutcome::Unanswered, ReadOutcome::Unanswered]);
        assert_eq!(c.differences(), 2);
    }

    #[test]
    fn the_read_set_covers_block_tx_and_state_reads() {
        let p = Pinned {
            number: 10,
            hash: "0xaa".into(),
            txs: vec!["0x01".into()],
            addresses: vec!["0xf3".into()],
            contract: Some("0xc0".into()),
            log_address: None,
        };
        let set = reads(&[p], 20);
        assert_eq!(set.len(), 3 + 7 + 2 + 4 + 1);
        assert_eq!(set.iter().filter(|r| r.state).count(), 5);
    }
}
