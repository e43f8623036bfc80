//! What a target's reply means: an [`Answer`] (a result, or an error the caller caused, passed
//! on unchanged) or an [`AttemptError`].
//!
//! Every reply is first checked to be one well-formed JSON-RPC response to this request (answer
//! hygiene: truncated JSON, HTML, arrays, another request's id are the provider's fault).
//! Retried: transport errors, timeouts, HTTP 5xx/429/408, and JSON-RPC errors that signal a bad
//! node (lagging, pruned, overloaded, internal). Never retried: caller errors
//! (-32600/-32601/-32602, execution reverted, nonce and balance errors): another provider would
//! answer the same.

use bytes::Bytes;

use super::outcome::{Answer, AttemptError};
use crate::jsonrpc::{Answered, Request, RpcError, parse_response};

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

/// Judges an HTTP status from an upstream: 5xx, 429 and 408 are the node's problem; other
/// statuses carry the node's answer, judged by its body.
pub fn judge_status(status: u16) -> Result<(), AttemptError> {
    match status {
        408 | 429 | 500..=599 => Err(AttemptError::Http(status)),
        200..=299 | 400..=499 => Ok(()),
        s => Err(AttemptError::Http(s)),
    }
}

/// Judges the body a target returned for `req`.
pub fn judge_body(req: &Request, body: Bytes) -> Result<Answer, AttemptError> {
    let Some(expected_id) = req.upstream_id() else {
        // A notification has no answer: an empty body (with a 2xx status) is the correct one.
        return Ok(Answer::new(Bytes::new(), Answered::Result(0..0)));
    };
    let answered = parse_response(&body, expected_id).map_err(AttemptError::Malformed)?;
    if let Answered::Error(e) = &answered {
        if req.method == "eth_sendRawTransaction"
            && is_already_known(e)
            && let Some(known) = super::tx::already_known_answer(req, expected_id)
        {
            let answered = parse_response(&known, expected_id).map_err(AttemptError::Malformed)?;
            return Ok(Answer::new(known, answered));
        }
        // A range over this node's log limit is an answer about the request, not a failing node:
        // not held against its breaker; the router splits the range (router::logs_split).
        if req.method == "eth_getLogs" && super::logs_split::is_range_limit(&body) {
            return Ok(Answer::new(body, answered));
        }
        if is_node_side(e) {
            return Err(AttemptError::Node(e.clone()));
        }
    }
    Ok(Answer::new(body, answered))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::Malformed;

    fn req(method: &str) -> Request {
        let raw = Bytes::from(format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":[]}}"#));
        match crate::jsonrpc::parse(&raw) {
            crate::jsonrpc::Call::Single(crate::jsonrpc::Item::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    fn judge(method: &str, body: &str) -> Result<Answer, AttemptError> {
        judge_body(&req(method), Bytes::from(body.to_string()))
    }

    #[test]
    fn classifies_responses() {
        assert!(judge("eth_blockNumber", r#"{"jsonrpc":"2.0","id":1,"result":"0x1"}"#).is_ok());
        for caller in [
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"the method x does not exist"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"invalid argument 0"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":3,"message":"execution reverted","data":"0x"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"nonce too low"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"execution reverted"}}"#,
        ] {
            let a = judge("eth_call", caller).expect(caller);
            assert!(a.error().is_some(), "{caller}");
        }
        for node in [
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"header not found"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"boom"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32005,"message":"limit exceeded"}}"#,
        ] {
            assert!(matches!(judge("eth_call", node), Err(AttemptError::Node(_))), "{node}");
        }
        assert!(matches!(judge("eth_call", "<html>bad gateway</html>"), Err(AttemptError::Malformed(_))));
        assert_eq!(
            judge("eth_call", r#"{"jsonrpc":"2.0","id":2,"result":"0x1"}"#).unwrap_err(),
            AttemptError::Malformed(Malformed::IdMismatch)
        );
        let known = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"already known"}}"#;
        assert!(judge("eth_sendRawTransaction", known).unwrap().error().is_some(), "no transaction to hash");
        assert!(judge_status(200).is_ok());
        assert!(judge_status(400).is_ok(), "a 4xx carries a JSON-RPC answer to judge");
        assert_eq!(judge_status(429), Err(AttemptError::Http(429)));
        assert_eq!(judge_status(503), Err(AttemptError::Http(503)));
    }
}
