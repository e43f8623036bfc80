//! What to do with an attempt's outcome: keep it, or try another provider.
//!
//! Retry on transport errors, timeouts, HTTP 5xx/429, a peer's non-Ok relay status, and
//! JSON-RPC errors that signal a bad node (lagging, pruned, overloaded, internal). Never on
//! caller errors (-32600/-32601/-32602, execution reverted, nonce and balance errors): another
//! provider would answer the same.

use crate::gateway::jsonrpc::{ResponseKind, RpcError, response_kind};

/// Decision about one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A result: return it.
    Success,
    /// An error the caller caused: return it unchanged, the provider is fine.
    CallerError,
    /// The provider failed: record it and try another.
    Retry(String),
}

/// Messages of `-32000` errors that mean "this node cannot answer now", not "bad request".
const NODE_SIDE_MESSAGES: &[&str] = &[
    "header not found",
    "missing trie node",
    "unknown block",
    "block not found",
    "pruned",
    "not available",
    "request timed out",
    "too many requests",
    "rate limit",
    "syncing",
    "internal",
    "upstream",
];

/// Whether a JSON-RPC error is the node's fault.
pub fn is_node_side(e: &RpcError) -> bool {
    match e.code {
        -32603 | -32005 | -32002 | -32001 => true,
        -32099..=-32000 => {
            let m = e.message.to_ascii_lowercase();
            NODE_SIDE_MESSAGES.iter().any(|n| m.contains(n))
        }
        _ => false,
    }
}

/// Whether an error means the transaction is already in the node's pool: a success for sends.
pub fn is_already_known(e: &RpcError) -> bool {
    let m = e.message.to_ascii_lowercase();
    m.contains("already known") || m.contains("known transaction") || m.contains("already imported")
}

/// Judges an HTTP 200 body of a single request.
pub fn judge_body(body: &[u8], is_send: bool) -> Verdict {
    match response_kind(body) {
        ResponseKind::Result => Verdict::Success,
        ResponseKind::Error(e) if is_send && is_already_known(&e) => Verdict::Success,
        ResponseKind::Error(e) if is_node_side(&e) => Verdict::Retry(format!("node error {}: {}", e.code, e.message)),
        ResponseKind::Error(_) => Verdict::CallerError,
        ResponseKind::Malformed => Verdict::Retry("malformed response".into()),
    }
}

/// Judges an HTTP status from an upstream: `None` means "judge the body". 5xx, 429 and 408
/// are the node's problem; other 4xx answers carry the node's verdict on the request itself.
pub fn judge_status(status: u16) -> Option<Verdict> {
    match status {
        200..=299 => None,
        408 | 429 | 500..=599 => Some(Verdict::Retry(format!("HTTP {status}"))),
        400..=499 => None,
        s => Some(Verdict::Retry(format!("HTTP {s}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_responses() {
        assert_eq!(judge_body(br#"{"jsonrpc":"2.0","id":1,"result":"0x1"}"#, false), Verdict::Success);
        for caller in [
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"the method x does not exist"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"invalid argument 0"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":3,"message":"execution reverted","data":"0x"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"nonce too low"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"execution reverted"}}"#,
        ] {
            assert_eq!(judge_body(caller.as_bytes(), false), Verdict::CallerError, "{caller}");
        }
        for node in [
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"header not found"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"boom"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32005,"message":"limit exceeded"}}"#,
            "<html>bad gateway</html>",
        ] {
            assert!(matches!(judge_body(node.as_bytes(), false), Verdict::Retry(_)), "{node}");
        }
        let known = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"already known"}}"#;
        assert_eq!(judge_body(known, true), Verdict::Success);
        assert_eq!(judge_body(known, false), Verdict::CallerError);
        assert!(judge_status(200).is_none());
        assert!(judge_status(400).is_none(), "a 4xx carries a JSON-RPC answer to judge");
        assert!(matches!(judge_status(429), Some(Verdict::Retry(_))));
        assert!(matches!(judge_status(503), Some(Verdict::Retry(_))));
    }
}
