//! The integrity seam: checks one answer on its own, without a reference.
//!
//! What one answer proves on its own ([`rpcmesh_eth`]): a block's `hash` is keccak256 of its RLP
//! header (and its transactions hash to `transactionsRoot` when hydrated), a transaction's fields
//! hash to its `hash` and its sender recovers, and each is the one asked for. Receipts and state
//! reads need a trusted header and a proof from elsewhere (the daemon's integrity layer does that
//! against a quorum); here they are compared with the references instead.

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
    let bytes = || serde_json::to_vec(answer).unwrap_or_default();
    let crypto = |checked: Result<(), rpcmesh_eth::EthError>, kind: &'static str| match checked {
        Ok(()) => Verification::Verified(kind),
        Err(e) => Verification::Failed(e.to_string()),
    };
    match method {
        "eth_getBlockByNumber" | "eth_getBlockByHash" => {
            let echoed = match method {
                "eth_getBlockByHash" => echo(param(0), field("hash"), "block hash"),
                _ => match param(0).filter(|p| p.starts_with("0x")) {
                    Some(n) => echo(Some(n), field("number"), "block number"),
                    None => Verification::NotVerifiable,
                },
            };
            if let Verification::Failed(_) = echoed {
                return echoed;
            }
            crypto(rpcmesh_eth::verify_block(&bytes()).map(drop), "header hash")
        }
        "eth_getTransactionByHash" => match param(0).and_then(|h| rpcmesh_eth::json::parse_hash(&h).ok()) {
            Some(hash) => crypto(rpcmesh_eth::verify_transaction_by_hash(&bytes(), hash).map(drop), "transaction hash"),
            None => Verification::NotVerifiable,
        },
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
        assert!(matches!(verify("eth_getBlockByNumber", &json!(["0x11", false]), &block), Verification::Failed(_)));
        // Right number, but a header that does not hash to its hash.
        assert!(matches!(verify("eth_getBlockByNumber", &json!(["0x10", false]), &block), Verification::Failed(_)));
        assert_eq!(verify("eth_getBalance", &json!(["0x0", "0x1"]), &json!("0x5")), Verification::NotVerifiable);
        assert_eq!(verify("eth_getTransactionReceipt", &json!(["0x1"]), &Value::Null), Verification::NotVerifiable);
        assert!(same_hex("0x0001", "0X1") && !same_hex("0x2", "0x1"));
    }
}

#[cfg(test)]
mod crypto_tests {
    use serde_json::json;

    use super::*;

    fn fixture(name: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../eth/tests/fixtures").join(name);
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn real_blocks_and_transactions_verify_and_altered_ones_fail() {
        let block = fixture("block_2_full.json");
        assert_eq!(
            verify("eth_getBlockByNumber", &json!(["0x2", true]), &block),
            Verification::Verified("header hash")
        );
        let mut lie = block.clone();
        lie["gasUsed"] = json!("0x1");
        assert!(matches!(verify("eth_getBlockByNumber", &json!(["0x2", true]), &lie), Verification::Failed(_)));
        let tx = fixture("tx_eip1559.json");
        let hash = tx["hash"].clone();
        assert_eq!(verify("eth_getTransactionByHash", &json!([hash]), &tx), Verification::Verified("transaction hash"));
        let mut lie = tx.clone();
        lie["value"] = json!("0x1");
        assert!(matches!(verify("eth_getTransactionByHash", &json!([hash]), &lie), Verification::Failed(_)));
    }
}
