//! How a lying node alters the answer to one call, per [`LieKind`]: pure functions over the
//! node's true `result` (JSON), so they are tested without a node.
//!
//! Every alteration is a function of the true answer alone: the same request always gets the
//! same wrong answer (equivocation evidence needs a liar that repeats itself), and a lie is the
//! same whichever method tells it (the balance in a lying `eth_getProof` is the one a lying
//! `eth_getBalance` answers; a transaction lies the same by hash and inside its block), so a
//! combination of kinds tells one consistent story that only the check of the lie's own kind
//! can refute. Each alteration always changes the value (a zero balance becomes 1 ether, empty
//! bytes become `0x00`), so "the answers differ" holds for every account, slot and call.
//!
//! What each kind alters, and what is left true so that only the matching check fails:
//!
//! | kind | methods | altered | kept |
//! | --- | --- | --- | --- |
//! | `hash` | blocks, transactions, receipts, logs | `hash`, `parentHash`, `blockHash` → fake ([`super::fake_hash`]); fake hashes accepted as parameters | everything else |
//! | `balance` | `eth_getBalance` | ×2 (0 → 1 ether) | |
//! | `nonce` | `eth_getTransactionCount` | +1 | |
//! | `code` | `eth_getCode` | last byte's low bit flipped (`0x` → `0x00`) | |
//! | `storage` | `eth_getStorageAt` | the word's low bit flipped | |
//! | `proof` | `eth_getProof` | `balance`, `nonce`, storage `value`s as above | `accountProof`, storage `proof`s, `codeHash`, `storageHash` |
//! | `header` | `eth_getBlockBy{Number,Hash}` | `stateRoot`'s low bit flipped | `hash`, `number` |
//! | `tx` | `eth_getTransactionBy*`, full blocks | `value` as a balance | `hash`, signature |
//! | `receipt` | `eth_getTransactionReceipt`, `eth_getBlockReceipts` | `status` flipped (no `status`: `cumulativeGasUsed` + 1) | logs, bloom |
//! | `log-data` | `eth_getLogs` | every log's `data` as code | the other log fields |
//! | `log-omit` | `eth_getLogs` | the last log left out | the other logs |
//! | `call` | `eth_call` | returned bytes as code | |

use alloy_primitives::U256;
use serde_json::{Map, Value};

use super::{fake_hash, parse_quantity, strip_0x};
use crate::sim::{LieKind, LieKinds};

/// 1 ether in wei: what a liar claims an empty account holds, a sum worth lying about.
const ONE_ETHER_WEI: u64 = 1_000_000_000_000_000_000;

/// What a call's result is, as far as lies go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Answer {
    /// A block object (or `null`).
    Block,
    /// A transaction object.
    Transaction,
    /// A receipt object.
    Receipt,
    /// An array of receipts.
    Receipts,
    /// An array of logs.
    Logs,
    Balance,
    Nonce,
    Code,
    Storage,
    Proof,
    Call,
}

impl Answer {
    /// The answer of `method`, if any kind of lie alters it.
    pub(super) fn of(method: &str) -> Option<Answer> {
        Some(match method {
            "eth_getBlockByNumber" | "eth_getBlockByHash" => Answer::Block,
            "eth_getTransactionByHash"
            | "eth_getTransactionByBlockHashAndIndex"
            | "eth_getTransactionByBlockNumberAndIndex" => Answer::Transaction,
            "eth_getTransactionReceipt" => Answer::Receipt,
            "eth_getBlockReceipts" => Answer::Receipts,
            "eth_getLogs" => Answer::Logs,
            "eth_getBalance" => Answer::Balance,
            "eth_getTransactionCount" => Answer::Nonce,
            "eth_getCode" => Answer::Code,
            "eth_getStorageAt" => Answer::Storage,
            "eth_getProof" => Answer::Proof,
            "eth_call" => Answer::Call,
            _ => return None,
        })
    }
}

/// The index of the parameter of `method` that can name a block by hash (a hash string, or an
/// EIP-1898 object with `blockHash`).
fn block_hash_param(method: &str) -> Option<usize> {
    match method {
        "eth_getBlockByHash"
        | "eth_getBlockTransactionCountByHash"
        | "eth_getUncleCountByBlockHash"
        | "eth_getTransactionByBlockHashAndIndex"
        | "eth_getUncleByBlockHashAndIndex"
        | "eth_getBlockReceipts" => Some(0),
        "eth_getBalance"
        | "eth_getTransactionCount"
        | "eth_getCode"
        | "eth_call"
        | "eth_estimateGas"
        | "eth_createAccessList" => Some(1),
        "eth_getStorageAt" | "eth_getProof" => Some(2),
        _ => None,
    }
}

/// Swaps a true and a fake block hash (a JSON string) in place; other values are left alone.
/// Whether it swapped.
fn swap_hash(v: &mut Value) -> bool {
    match v.as_str().and_then(fake_hash) {
        Some(swapped) => {
            *v = Value::String(swapped);
            true
        }
        None => false,
    }
}

/// Under the `hash` lie the liar knows blocks by its fake hashes: turns a fake hash in the
/// parameters back into the true one the node knows (and a true one into a fake one the node does
/// not know). Whether any parameter changed.
pub(super) fn unfake_block_hashes(method: &str, params: &mut [Value]) -> bool {
    if method == "eth_getLogs" {
        return match params.first_mut() {
            Some(Value::Object(filter)) => filter.get_mut("blockHash").is_some_and(swap_hash),
            _ => false,
        };
    }
    match block_hash_param(method).and_then(|i| params.get_mut(i)) {
        Some(Value::Object(obj)) => obj.get_mut("blockHash").is_some_and(swap_hash),
        Some(v) => swap_hash(v),
        None => false,
    }
}

/// Alters `result`, the true answer of a call whose answer is `answer`, as a node lying in
/// `kinds` would. Whether anything changed (if not, the node's bytes can be sent as they are).
pub(super) fn tell(kinds: LieKinds, answer: Answer, result: &mut Value) -> bool {
    let on = |kind| kinds.contains(kind);
    match answer {
        Answer::Block => result.as_object_mut().is_some_and(|block| lie_block(kinds, block)),
        Answer::Transaction => result.as_object_mut().is_some_and(|tx| lie_transaction(kinds, tx)),
        Answer::Receipt => result.as_object_mut().is_some_and(|r| lie_receipt(kinds, r)),
        Answer::Receipts => result.as_array_mut().is_some_and(|receipts| {
            receipts.iter_mut().filter_map(Value::as_object_mut).fold(false, |any, r| lie_receipt(kinds, r) | any)
        }),
        Answer::Logs => result.as_array_mut().is_some_and(|logs| lie_logs(kinds, logs)),
        Answer::Balance => on(LieKind::Balance) && alter(result, lie_amount),
        Answer::Nonce => on(LieKind::Nonce) && alter(result, lie_count),
        Answer::Code => on(LieKind::Code) && alter(result, lie_bytes),
        Answer::Storage => on(LieKind::Storage) && alter(result, lie_bytes),
        Answer::Proof => on(LieKind::Proof) && result.as_object_mut().is_some_and(lie_proof),
        Answer::Call => on(LieKind::Call) && alter(result, lie_bytes),
    }
}

/// Replaces a JSON string by `how(string)`; whether it did.
fn alter(v: &mut Value, how: fn(&str) -> Option<String>) -> bool {
    match v.as_str().and_then(how) {
        Some(lie) => {
            *v = Value::String(lie);
            true
        }
        None => false,
    }
}

/// [`alter`] on member `key` of `obj`, if present.
fn alter_member(obj: &mut Map<String, Value>, key: &str, how: fn(&str) -> Option<String>) -> bool {
    obj.get_mut(key).is_some_and(|v| alter(v, how))
}

fn swap_member(obj: &mut Map<String, Value>, key: &str) -> bool {
    obj.get_mut(key).is_some_and(swap_hash)
}

fn lie_block(kinds: LieKinds, block: &mut Map<String, Value>) -> bool {
    let mut changed = false;
    if kinds.contains(LieKind::Hash) {
        changed |= swap_member(block, "hash");
        changed |= swap_member(block, "parentHash");
    }
    if kinds.contains(LieKind::Header) {
        changed |= alter_member(block, "stateRoot", lie_bytes);
    }
    // Hydrated blocks: their transactions lie as they do by hash.
    if let Some(Value::Array(txs)) = block.get_mut("transactions") {
        for tx in txs.iter_mut().filter_map(Value::as_object_mut) {
            changed |= lie_transaction(kinds, tx);
        }
    }
    changed
}

fn lie_transaction(kinds: LieKinds, tx: &mut Map<String, Value>) -> bool {
    let mut changed = false;
    if kinds.contains(LieKind::Hash) {
        changed |= swap_member(tx, "blockHash");
    }
    if kinds.contains(LieKind::Tx) {
        changed |= alter_member(tx, "value", lie_amount);
    }
    changed
}

fn lie_receipt(kinds: LieKinds, receipt: &mut Map<String, Value>) -> bool {
    let mut changed = false;
    if kinds.contains(LieKind::Hash) {
        changed |= swap_member(receipt, "blockHash");
        if let Some(Value::Array(logs)) = receipt.get_mut("logs") {
            for log in logs.iter_mut().filter_map(Value::as_object_mut) {
                changed |= swap_member(log, "blockHash");
            }
        }
    }
    if kinds.contains(LieKind::Receipt) {
        changed |= if receipt.contains_key("status") {
            alter_member(receipt, "status", flip_status)
        } else {
            // Pre-Byzantium receipts carry a state root instead of a status.
            alter_member(receipt, "cumulativeGasUsed", lie_count)
        };
    }
    changed
}

fn lie_logs(kinds: LieKinds, logs: &mut Vec<Value>) -> bool {
    let mut changed = false;
    if kinds.contains(LieKind::LogOmit) && logs.pop().is_some() {
        changed = true;
    }
    for log in logs.iter_mut().filter_map(Value::as_object_mut) {
        if kinds.contains(LieKind::Hash) {
            changed |= swap_member(log, "blockHash");
        }
        if kinds.contains(LieKind::LogData) {
            changed |= alter_member(log, "data", lie_bytes);
        }
    }
    changed
}

/// The state lies of `balance`, `nonce` and `storage`, told under the true proof nodes.
fn lie_proof(proof: &mut Map<String, Value>) -> bool {
    let mut changed = alter_member(proof, "balance", lie_amount);
    changed |= alter_member(proof, "nonce", lie_count);
    if let Some(Value::Array(slots)) = proof.get_mut("storageProof") {
        for slot in slots.iter_mut().filter_map(Value::as_object_mut) {
            changed |= alter_member(slot, "value", lie_word);
        }
    }
    changed
}

fn parse_u256(s: &str) -> Option<U256> {
    let digits = strip_0x(s)?;
    if digits.is_empty() || digits.len() > 64 {
        return None;
    }
    U256::from_str_radix(digits, 16).ok()
}

fn u256_quantity(x: U256) -> String {
    format!("{x:#x}")
}

/// An amount of wei, doubled: `0` → 1 ether; one too large to double → halved.
fn lie_amount(s: &str) -> Option<String> {
    let x = parse_u256(s)?;
    let lie =
        if x.is_zero() { U256::from(ONE_ETHER_WEI) } else { x.checked_mul(U256::from(2u8)).unwrap_or_else(|| x >> 1) };
    Some(u256_quantity(lie))
}

/// A storage value (quantity) with its low bit flipped: the value of a lying `eth_getStorageAt`
/// word.
fn lie_word(s: &str) -> Option<String> {
    Some(u256_quantity(parse_u256(s)? ^ U256::from(1u8)))
}

/// A count, one more (one less at the maximum).
fn lie_count(s: &str) -> Option<String> {
    let n = parse_quantity(s)?;
    Some(format!("{:#x}", n.checked_add(1).unwrap_or(u64::MAX - 1)))
}

/// Bytes with the low bit of the last byte flipped; no bytes → one zero byte.
fn lie_bytes(s: &str) -> Option<String> {
    let mut bytes = hex::decode(strip_0x(s)?).ok()?;
    match bytes.last_mut() {
        Some(last) => *last ^= 1,
        None => bytes.push(0),
    }
    Some(format!("0x{}", hex::encode(bytes)))
}

/// A receipt status, success ↔ failure.
fn flip_status(s: &str) -> Option<String> {
    match parse_quantity(s)? {
        0 => Some("0x1".into()),
        1 => Some("0x0".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn only(kind: LieKind) -> LieKinds {
        kind.into()
    }

    fn told(kinds: LieKinds, answer: Answer, mut v: Value) -> Value {
        tell(kinds, answer, &mut v);
        v
    }

    #[test]
    fn values_always_change_and_stay_well_formed() {
        assert_eq!(lie_amount("0x0").unwrap(), "0xde0b6b3a7640000");
        assert_eq!(lie_amount("0x21e19e0c9bab2400000").unwrap(), "0x43c33c1937564800000");
        assert_eq!(lie_amount(&format!("0x8{}", "0".repeat(63))).unwrap(), format!("0x4{}", "0".repeat(63)));
        assert_eq!(lie_count("0x0").unwrap(), "0x1");
        assert_eq!(lie_count("0xffffffffffffffff").unwrap(), "0xfffffffffffffffe");
        assert_eq!(lie_bytes("0x").unwrap(), "0x00");
        assert_eq!(lie_bytes("0x6001").unwrap(), "0x6000");
        assert_eq!(lie_word("0x0").unwrap(), "0x1");
        assert_eq!(lie_word("0x5").unwrap(), "0x4");
        assert_eq!(flip_status("0x1").unwrap(), "0x0");
        assert_eq!(flip_status("0x0").unwrap(), "0x1");
        for bad in ["12", "0x", "0xzz"] {
            assert!(lie_amount(bad).is_none() && lie_count(bad).is_none(), "{bad}");
        }
        assert!(lie_bytes("0x123").is_none());
        assert!(flip_status("0x2").is_none());
    }

    #[test]
    fn each_kind_alters_only_its_answers() {
        let word = format!("0x{}05", "00".repeat(31));
        let plain = [
            (LieKind::Balance, Answer::Balance, json!("0x10"), json!("0x20")),
            (LieKind::Nonce, Answer::Nonce, json!("0x2"), json!("0x3")),
            (LieKind::Code, Answer::Code, json!("0x60ff"), json!("0x60fe")),
            (LieKind::Storage, Answer::Storage, json!(word), json!(format!("0x{}04", "00".repeat(31)))),
            (LieKind::Call, Answer::Call, json!("0x"), json!("0x00")),
        ];
        for (kind, answer, truth, lie) in plain {
            assert_eq!(told(only(kind), answer, truth.clone()), lie, "{kind:?}");
            // Another kind leaves it alone; `null` stays `null`.
            let others: LieKinds = LieKind::ALL.into_iter().filter(|k| *k != kind).collect();
            assert_eq!(told(others, answer, truth.clone()), truth, "{kind:?}");
            assert_eq!(told(only(kind), answer, Value::Null), Value::Null);
        }
    }

    #[test]
    fn proofs_keep_their_nodes() {
        let truth = json!({
            "address": "0x00000000000000000000000000000000000000aa", "balance": "0x0", "nonce": "0x1",
            "codeHash": "0x01", "storageHash": "0x02", "accountProof": ["0xaa", "0xbb"],
            "storageProof": [{ "key": "0x0", "value": "0x0", "proof": ["0xcc"] }],
        });
        let lie = told(only(LieKind::Proof), Answer::Proof, truth.clone());
        assert_eq!(lie["balance"], "0xde0b6b3a7640000");
        assert_eq!(lie["nonce"], "0x2");
        assert_eq!(lie["storageProof"][0]["value"], "0x1");
        for same in ["address", "codeHash", "storageHash", "accountProof"] {
            assert_eq!(lie[same], truth[same], "{same}");
        }
        assert_eq!(lie["storageProof"][0]["proof"], truth["storageProof"][0]["proof"]);
        // The same values the plain state lies tell.
        assert_eq!(told(only(LieKind::Balance), Answer::Balance, json!("0x0")), lie["balance"]);
        assert_eq!(told(only(LieKind::Nonce), Answer::Nonce, json!("0x1")), lie["nonce"]);
    }

    #[test]
    fn blocks_transactions_receipts_and_logs() {
        let hash = format!("0x{}", "11".repeat(32));
        let tx = json!({ "hash": "0x01", "blockHash": hash, "value": "0x0", "input": "0x" });
        let block = json!({
            "hash": hash, "parentHash": hash, "number": "0x5", "stateRoot": format!("0x{}", "22".repeat(32)),
            "timestamp": "0x10", "transactions": [tx],
        });
        let header = told(only(LieKind::Header), Answer::Block, block.clone());
        assert_ne!(header["stateRoot"], block["stateRoot"]);
        for same in ["hash", "parentHash", "number", "timestamp", "transactions"] {
            assert_eq!(header[same], block[same], "{same}");
        }
        let full = told(only(LieKind::Tx), Answer::Block, block.clone());
        assert_eq!(full["transactions"][0]["value"], "0xde0b6b3a7640000");
        assert_eq!(full["stateRoot"], block["stateRoot"]);
        assert_eq!(told(only(LieKind::Tx), Answer::Transaction, tx.clone()), full["transactions"][0]);
        let hashes = told(only(LieKind::Hash), Answer::Block, block.clone());
        assert_eq!(hashes["hash"], fake_hash(&hash).unwrap());
        assert_eq!(hashes["transactions"][0]["blockHash"], hashes["hash"]);
        assert_eq!(hashes["transactions"][0]["value"], "0x0");

        let receipt = json!({ "status": "0x1", "blockHash": hash, "logs": [{ "blockHash": hash, "data": "0x" }] });
        let lie = told(only(LieKind::Receipt), Answer::Receipt, receipt.clone());
        assert_eq!(lie["status"], "0x0");
        assert_eq!(lie["logs"], receipt["logs"]);
        let block_receipts = told(only(LieKind::Receipt), Answer::Receipts, json!([receipt.clone(), receipt.clone()]));
        assert_eq!(block_receipts, json!([lie.clone(), lie]));
        let pre_byzantium = told(only(LieKind::Receipt), Answer::Receipt, json!({ "cumulativeGasUsed": "0x5208" }));
        assert_eq!(pre_byzantium["cumulativeGasUsed"], "0x5209");

        let logs = json!([{ "blockHash": hash, "data": "0x01" }, { "blockHash": hash, "data": "0x02" }]);
        assert_eq!(
            told(only(LieKind::LogData), Answer::Logs, logs.clone()),
            json!([{ "blockHash": hash, "data": "0x00" }, { "blockHash": hash, "data": "0x03" }])
        );
        assert_eq!(told(only(LieKind::LogOmit), Answer::Logs, logs.clone()), json!([logs[0]]));
        assert_eq!(told(only(LieKind::LogOmit), Answer::Logs, json!([])), json!([]));
        assert_eq!(told(only(LieKind::Balance), Answer::Logs, logs.clone()), logs);
    }

    #[test]
    fn fake_hashes_in_parameters_become_true_ones() {
        let truth = format!("0x{}", "11".repeat(32));
        let fake = fake_hash(&truth).unwrap();
        let mut p = vec![json!(fake), json!(false)];
        assert!(unfake_block_hashes("eth_getBlockByHash", &mut p));
        assert_eq!(p[0], truth);
        let mut p = vec![json!("0x00"), json!("0x0"), json!({ "blockHash": fake })];
        assert!(unfake_block_hashes("eth_getStorageAt", &mut p));
        assert_eq!(p[2]["blockHash"], truth);
        let mut p = vec![json!({ "blockHash": fake })];
        assert!(unfake_block_hashes("eth_getLogs", &mut p));
        assert_eq!(p[0]["blockHash"], truth);
        let mut p = vec![json!("0x00"), json!("latest")];
        assert!(!unfake_block_hashes("eth_getBalance", &mut p));
        assert!(!unfake_block_hashes("eth_chainId", &mut []));
    }
}
