//! Refused transactions: which refusals a well-behaved node gives, and which show a filter.
//!
//! A node refuses `eth_sendRawTransaction` for reasons about the transaction itself (nonce,
//! funds, fees, gas, size, type, signature, chain id, a full pool) or because it already has it.
//! Any other refusal ("transaction rejected", "address blocked", a policy message) is a
//! **filtered write**: the transaction is sent to another operator at once, and the accused's
//! signed answer becomes a [`LieKind::Refusal`] bundle that any receiver re-judges with
//! [`recheck`].

use rpcmesh_protocol::messages::{Evidence, LieKind};
use serde::Deserialize;

use crate::jsonrpc::RpcError;

/// Fragments (lower-case) of the messages well-behaved nodes (geth, reth, erigon, nethermind,
/// besu, anvil) refuse a transaction with. Deliberately broad: a false "filter" label costs an
/// honest provider its share of writes to one address, a missed one costs nothing the
/// broadcast does not already cover.
const NODE_REASONS: &[&str] = &[
    "nonce",
    "insufficient funds",
    "insufficient balance",
    "underpriced",
    "fee",
    "gas",
    "already known",
    "known transaction",
    "already imported",
    "already exists",
    "replacement",
    "exceeds",
    "oversized",
    "too large",
    "chain id",
    "chainid",
    "eip-155",
    "eip155",
    "replay-protected",
    "invalid sender",
    "signature",
    "exceeded",
    "limit reached",
    "tries to replace",
    "already reserved",
    "transaction type",
    "not supported",
    "unsupported",
    "txpool",
    "pool is full",
    "pool full",
    "queue",
    "blob",
    "rlp",
    "decode",
    "invalid transaction",
    "max initcode",
    "init code",
    "priority",
    "syncing",
];

/// Whether `e`, the answer to an `eth_sendRawTransaction`, is a refusal no well-behaved node
/// gives: not a caller or protocol error (-32600..-32602, -32700: the request itself), and no
/// node-level reason in its message.
pub fn is_filtered(e: &RpcError) -> bool {
    if matches!(e.code, -32700 | -32600 | -32601 | -32602) {
        return false;
    }
    let m = e.message.to_ascii_lowercase();
    !NODE_REASONS.iter().any(|r| m.contains(r))
}

#[derive(Debug, Deserialize)]
struct ErrorAnswer {
    error: RpcErrorBody,
}

#[derive(Debug, Deserialize)]
struct RpcErrorBody {
    code: i64,
    #[serde(default)]
    message: String,
}

/// The JSON-RPC error of a response body, if it is one.
pub fn error_of(response: &[u8]) -> Option<RpcError> {
    let a: ErrorAnswer = serde_json::from_slice(response).ok()?;
    Some(RpcError { code: a.error.code, message: a.error.message })
}

/// Re-judges a [`LieKind::Refusal`] bundle: the request is an `eth_sendRawTransaction` of a
/// well-formed, correctly signed transaction for the bundle's chain, and the accused refused it
/// with an error [`is_filtered`] accepts. (The signatures binding request and answer to the
/// accused, and the anchor, are checked by the caller.)
pub fn recheck(ev: &Evidence) -> Result<(), String> {
    if ev.kind != LieKind::Refusal {
        return Err("not a refusal".into());
    }
    let method = crate::jsonrpc::method_of(&ev.request).ok_or("request has no method")?;
    if method != "eth_sendRawTransaction" {
        return Err(format!("a refusal of {method}, not of a transaction"));
    }
    let tx = super::touch::raw_transaction(&ev.request).ok_or("the transaction does not decode or verify")?;
    if tx.chain_id.is_some_and(|c| c != ev.chain_id) {
        return Err("the transaction is signed for another chain".into());
    }
    let e = error_of(&ev.response).ok_or("the response is not an error")?;
    if !is_filtered(&e) {
        return Err(format!("a node-level refusal ({}: {})", e.code, e.message));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(code: i64, message: &str) -> RpcError {
        RpcError { code, message: message.into() }
    }

    #[test]
    fn node_reasons_are_not_filters() {
        for (code, m) in [
            (-32000, "nonce too low"),
            (-32003, "Insufficient funds for gas * price + value"),
            (-32000, "transaction underpriced"),
            (-32000, "replacement transaction underpriced"),
            (-32000, "already known"),
            (-32000, "intrinsic gas too low"),
            (-32000, "max fee per gas less than block base fee"),
            (-32000, "invalid sender"),
            (-32000, "only replay-protected (EIP-155) transactions allowed over RPC"),
            (-32000, "transaction type not supported"),
            (-32010, "FeeTooLow"),
            (-32000, "account limit exceeded"),
            (-32000, "future transaction tries to replace pending"),
            (-32000, "address already reserved"),
            (-32000, "in-flight transaction limit reached for delegated accounts"),
            (-32601, "the method eth_sendRawTransaction does not exist"),
            (-32602, "invalid argument 0: hex string without 0x prefix"),
        ] {
            assert!(!is_filtered(&e(code, m)), "{m}");
        }
    }

    #[test]
    fn other_refusals_are_filters() {
        for (code, m) in [
            (-32003, "transaction rejected"),
            (-32000, "address is blocked"),
            (-32090, "policy violation"),
            (-32000, "sender is sanctioned"),
        ] {
            assert!(is_filtered(&e(code, m)), "{m}");
        }
    }
}
