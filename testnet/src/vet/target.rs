//! What the battery talks to: any [`RpcTarget`] that takes a JSON-RPC body and gives the answer
//! body back. [`HttpTarget`] is a plain HTTP endpoint (a candidate's node, or a reference);
//! [`MeshTarget`](super::mesh::MeshTarget) reaches a candidate's own node through a local
//! daemon and the libp2p relay.
//!
//! [`Rpc`] wraps a target with request ids and JSON handling for the checks.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rpcmesh_node::upstream::{HttpClient, TransportError};
use serde_json::{Value, json};

/// Largest answer read from an endpoint. A full block with transactions or a wide `eth_getLogs`
/// runs to a few MiB; more than this is reported as a failure of that request.
pub const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// Why a target gave no JSON-RPC answer body.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// Could not connect, or the connection failed mid-request.
    #[error("transport: {0}")]
    Transport(String),
    /// No answer within the request timeout.
    #[error("timed out after {0} ms")]
    Timeout(u64),
    /// An HTTP status other than 200; `body` is what came with it (some servers put a JSON-RPC
    /// error there, which the conformance checks read).
    #[error("HTTP {status}: {}", short(String::from_utf8_lossy(body).trim(), 200))]
    Http {
        /// The status code.
        status: u16,
        /// The body, as received.
        body: Bytes,
    },
    /// This kind of target cannot be used yet.
    #[error("{0}")]
    Unsupported(String),
    /// The candidate's daemon answered the relay without its node's answer (targets through the
    /// mesh): busy at its relay capacity, refused before its node saw the request, or its node
    /// failed or timed out.
    #[error("the candidate's relay answered {status}: {}", short(reason, 200))]
    Relay {
        /// The relay status (`busy`, `refused`, `upstream_error`, `timeout`, `not_serving_chain`).
        status: String,
        /// The candidate's reason.
        reason: String,
        /// Refused by the candidate's relay method policy: what it chooses to serve the mesh.
        method_refused: bool,
    },
}

impl TargetError {
    /// The candidate answered busy: at its announced relay capacity.
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Relay { status, .. } if status == "busy")
    }

    /// Why the candidate's relay refused the request before its node saw it (its method policy,
    /// or its relay's own check that the body is a valid request), if it did: nothing about the
    /// node can be concluded from such an answer.
    pub fn not_relayed(&self) -> Option<&str> {
        match self {
            Self::Relay { status, reason, .. } if status == "refused" => Some(reason),
            _ => None,
        }
    }

    /// Refused by the candidate's relay method policy.
    pub fn refused_by_policy(&self) -> bool {
        matches!(self, Self::Relay { method_refused: true, .. })
    }
}

/// One JSON-RPC endpoint under test or used as a reference.
///
/// Implementations must be cheap to call concurrently (the load ramp keeps many calls in flight)
/// and must bound every call in time themselves.
pub trait RpcTarget: Send + Sync + 'static {
    /// Sends one JSON-RPC body (a single call or a batch) and returns the answer body.
    fn call(&self, body: Bytes) -> impl Future<Output = Result<Bytes, TargetError>> + Send;

    /// How the target is named in the report. Must not reveal credentials (API keys in URLs).
    fn describe(&self) -> String;

    /// What reaching the candidate through the mesh showed so far (relay statuses, receipts,
    /// refusals, caveats); `None` for targets reached directly.
    fn through_mesh(&self) -> Option<super::mesh::ThroughMesh> {
        None
    }
}

/// A JSON-RPC endpoint over plain HTTP (`http://`), with a pooled keep-alive client.
#[derive(Clone, Debug)]
pub struct HttpTarget {
    uri: hyper::Uri,
    label: String,
    client: HttpClient,
    timeout: Duration,
}

impl HttpTarget {
    /// A target at `url` whose calls time out after `timeout`. Only `http://` is supported: the
    /// daemon's own upstream client speaks plain HTTP, and so does this one.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        if !url.starts_with("http://") {
            return Err(format!("{} is not an http:// URL (https is not supported yet)", redact_url(url)));
        }
        let uri: hyper::Uri = url.parse().map_err(|e| format!("{}: {e}", redact_url(url)))?;
        Ok(Self { uri, label: redact_url(url), client: HttpClient::new(MAX_ANSWER_BYTES), timeout })
    }
}

impl RpcTarget for HttpTarget {
    async fn call(&self, body: Bytes) -> Result<Bytes, TargetError> {
        match self.client.post_json(&self.uri, body, self.timeout).await {
            Ok(reply) if reply.status == 200 => Ok(reply.body),
            Ok(reply) => Err(TargetError::Http { status: reply.status, body: reply.body }),
            Err(TransportError::Timeout(ms)) => Err(TargetError::Timeout(ms)),
            // Unwrapped: its own text would say "transport:" a second time.
            Err(TransportError::Connect(why)) => Err(TargetError::Transport(why)),
            Err(e) => Err(TargetError::Transport(e.to_string())),
        }
    }

    fn describe(&self) -> String {
        self.label.clone()
    }
}

/// A URL as it may appear in a report: scheme, host and port only. Paths and queries often
/// carry provider API keys (`/v3/<key>`, `?apikey=`), and user info carries passwords.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let hidden = rest.len() > authority.len() && !matches!(&rest[authority.len()..], "/" | "");
    let tail = if hidden { "/…" } else { "/" };
    if scheme.is_empty() { format!("{host}{tail}") } else { format!("{scheme}://{host}{tail}") }
}

/// Why a JSON-RPC call gave no result.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    /// No answer body.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// An answer that is not a JSON-RPC response.
    #[error("not a JSON-RPC response: {0}")]
    Invalid(String),
    /// A JSON-RPC error object.
    #[error("JSON-RPC error {code}: {message}")]
    Rpc {
        /// The error code.
        code: i64,
        /// The error message (first 200 characters).
        message: String,
    },
}

impl CallError {
    /// The answer as JSON for the report: the error object, or the failure in words.
    pub fn to_json(&self) -> Value {
        match self {
            CallError::Rpc { code, message } => json!({ "error": { "code": code, "message": message } }),
            other => json!({ "failure": other.to_string() }),
        }
    }
}

/// A target with JSON-RPC framing: fresh ids, result or error.
#[derive(Debug)]
pub struct Rpc<'a, T> {
    target: &'a T,
    next_id: &'a AtomicU64,
}

impl<T> Clone for Rpc<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Rpc<'_, T> {}

impl<'a, T: RpcTarget> Rpc<'a, T> {
    /// Wraps `target`; ids come from `next_id`.
    pub fn new(target: &'a T, next_id: &'a AtomicU64) -> Self {
        Self { target, next_id }
    }

    /// The wrapped target.
    pub fn target(&self) -> &'a T {
        self.target
    }

    /// Calls `method(params)` and returns its `result` (`null` included).
    pub async fn call(&self, method: &str, params: &Value) -> Result<Value, CallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }).to_string();
        let answer = self.target.call(Bytes::from(body)).await?;
        result_of(&answer)
    }
}

/// The `result` of a single JSON-RPC answer body, or its error.
pub fn result_of(answer: &[u8]) -> Result<Value, CallError> {
    let mut v: Value = serde_json::from_slice(answer).map_err(|e| CallError::Invalid(e.to_string()))?;
    outcome_of(&mut v)
}

/// The `result` or error of one parsed JSON-RPC response object (taken out of `v`).
pub fn outcome_of(v: &mut Value) -> Result<Value, CallError> {
    if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
        return Err(CallError::Rpc {
            code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
            message: err.get("message").and_then(Value::as_str).unwrap_or("").chars().take(200).collect(),
        });
    }
    match v.get_mut("result") {
        Some(r) => Ok(r.take()),
        None => Err(CallError::Invalid(format!("neither result nor error: {}", short(&v.to_string(), 200)))),
    }
}

/// The first `max` characters of `s`, with `…` when cut.
pub fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_string() } else { s.chars().take(max).chain(['…']).collect() }
}

/// Parses a `0x` quantity of up to 64 bits.
pub fn quantity(v: &Value) -> Option<u64> {
    let digits = v.as_str()?.strip_prefix("0x")?;
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// A block number as a JSON-RPC quantity.
pub fn qty(n: u64) -> Value {
    Value::String(format!("{n:#x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_keys_and_passwords() {
        assert_eq!(redact_url("http://127.0.0.1:8545"), "http://127.0.0.1:8545/");
        assert_eq!(redact_url("http://127.0.0.1:8545/"), "http://127.0.0.1:8545/");
        assert_eq!(redact_url("https://mainnet.example/v3/SECRET"), "https://mainnet.example/…");
        assert_eq!(redact_url("http://user:pw@node.example:80/?key=1"), "http://node.example:80/…");
        assert_eq!(redact_url("ws://h:1"), "ws://h:1/");
    }

    #[test]
    fn results_and_errors() {
        assert_eq!(result_of(br#"{"jsonrpc":"2.0","id":1,"result":"0x1"}"#).unwrap(), json!("0x1"));
        assert_eq!(result_of(br#"{"jsonrpc":"2.0","id":1,"result":null}"#).unwrap(), Value::Null);
        assert_eq!(
            result_of(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"nope"}}"#).unwrap_err(),
            CallError::Rpc { code: -32601, message: "nope".into() }
        );
        assert!(matches!(result_of(b"<html>").unwrap_err(), CallError::Invalid(_)));
        assert!(matches!(result_of(br#"{"id":1}"#).unwrap_err(), CallError::Invalid(_)));
    }
}
