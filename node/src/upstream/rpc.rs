//! Minimal JSON-RPC calls for probing (not for client traffic, which is forwarded as bytes).

use std::time::Duration;

use bytes::Bytes;
use hyper::Uri;
use serde_json::Value;

use super::{HttpClient, TransportError};

/// Why a probe call failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RpcCallError {
    /// Could not get an HTTP answer.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// HTTP status other than 200.
    #[error("HTTP {0}")]
    Http(u16),
    /// Not a JSON-RPC response.
    #[error("invalid JSON-RPC response: {0}")]
    Invalid(String),
    /// A JSON-RPC error object.
    #[error("JSON-RPC error {code}: {message}")]
    Rpc {
        /// Error code.
        code: i64,
        /// Error message.
        message: String,
    },
}

/// Calls `method` with `params` (a JSON array) and returns `result`.
pub async fn rpc_call(
    client: &HttpClient,
    uri: &Uri,
    method: &str,
    params: Value,
    timeout: Duration,
) -> Result<Value, RpcCallError> {
    let body = serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
    let reply = client.post_json(uri, Bytes::from(body.to_string()), timeout).await?;
    if reply.status != 200 {
        return Err(RpcCallError::Http(reply.status));
    }
    let mut v: Value = serde_json::from_slice(&reply.body).map_err(|e| RpcCallError::Invalid(e.to_string()))?;
    if let Some(err) = v.get("error") {
        return Err(RpcCallError::Rpc {
            code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
            message: err.get("message").and_then(Value::as_str).unwrap_or("").chars().take(200).collect(),
        });
    }
    v.get_mut("result").map(Value::take).ok_or_else(|| RpcCallError::Invalid("no result".into()))
}

/// Parses a 0x-hex quantity.
pub fn parse_quantity(v: &Value) -> Option<u64> {
    let s = v.as_str()?.strip_prefix("0x")?;
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// Parses a 0x-hex 32-byte hash.
pub fn parse_hash(v: &Value) -> Option<[u8; 32]> {
    let s = v.as_str()?.strip_prefix("0x")?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}
