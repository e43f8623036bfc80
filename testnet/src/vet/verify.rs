//! The integrity seam: checks one answer on its own, without a reference.
//!
//! Today it only checks that an answer is about what was asked (the block number or hash, the
//! transaction hash echoed back): a node that answers a different block than requested is caught
//! even without a reference. The cryptographic checks belong here when the `rpcmesh-eth` crate
//! lands: a block's `hash` against keccak256 of its RLP header, `transactionsRoot` and
//! `receiptsRoot` against the tries of the block's transactions and receipts, and state reads
//! against `eth_getProof` Merkle proofs to the header's `stateRoot`.

use serde_json::Value;

/// What the integrity checks made of one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Checked and consistent; the name says which check.
    Verified(&'static str),
    /// No check applies to this method (or the answer is empty).
    NotVerifiable,
    /// Checked and inconsistent.
    Failed(String),
}

impl Verification {
    /// Short words for the report.
    pub fn describe(&self) -> String {
        match self {
            Verification::Verified(kind) => format!("verified ({kind})"),
            Verification::NotVerifiable => "not verifiable".into(),
            Verification::Failed(why) => format!("failed: {why}"),
        }
    }
}

/// Checks `answer` (a JSON-RPC result) to `method(params)`.
pub fn verify(method: &str, params: &Value, answer: &Value) -> Verification {
    if answer.is_null() {
        return Verification::NotVerifiable;
    }
    let param = |i: usize| params.get(i).and_then(Value::as_str).map(str::to_ascii_lowercase);
    let field = |k: &str| answer.get(k).and_then(Value::as_str).map(str::to_ascii_lowercase);
    let echo = |asked: Option<String>, got: Option<String>, what: &str| match (asked, got) {
        (Some(a), Some(g)) if same_hex(&a, &g) => Verification::Verified("echo"),
        (Some(a), Some(g)) => Verification::Failed(format!("asked for {what} {a}, got {g}")),
        (Some(_), None) => Verification::Failed(format!("the answer has no {what}")),
        (None, _) => Verification::NotVerifiable,
    };
    match method {
        "eth_getBlockByNumber" => match param(0).filter(|p| p.starts_with("0x")) {
            Some(n) => echo(Some(n), field("number"), "block number"),
            None => Verification::NotVerifiable,
        },
        "eth_getBlockByHash" => echo(param(0), field("hash"), "block hash"),
        "eth_getTransactionByHash" => echo(param(0), field("hash"), "transaction hash"),
        "eth_getTransactionReceipt" => echo(param(0), field("transactionHash"), "transaction hash"),
        // Header, transactions and receipts roots and state proofs: with rpcmesh-eth.
        _ => Verification::NotVerifiable,
    }
}

/// Whether two `0x` hex strings denote the same value (case and leading zeros aside).
pub fn same_hex(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        let s = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
        s.trim_start_matches('0').to_ascii_lowercase()
    };
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn echoes() {
        let block = json!({"number": "0x10", "hash": "0xAB"});
        assert_eq!(verify("eth_getBlockByNumber", &json!(["0x10", false]), &block), Verification::Verified("echo"));
        assert!(matches!(verify("eth_getBlockByNumber", &json!(["0x11", false]), &block), Verification::Failed(_)));
        assert_eq!(verify("eth_getBlockByNumber", &json!(["latest", false]), &block), Verification::NotVerifiable);
        assert_eq!(verify("eth_getBlockByHash", &json!(["0xab", false]), &block), Verification::Verified("echo"));
        assert_eq!(verify("eth_getBalance", &json!(["0x0", "0x1"]), &json!("0x5")), Verification::NotVerifiable);
        assert_eq!(verify("eth_getTransactionReceipt", &json!(["0x1"]), &Value::Null), Verification::NotVerifiable);
        assert!(same_hex("0x0001", "0X1") && !same_hex("0x2", "0x1"));
    }
}
