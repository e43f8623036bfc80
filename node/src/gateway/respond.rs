//! Every error the gateway makes itself, and the one place that turns it into an HTTP response
//! with a JSON-RPC error body. Gateway-made errors echo the request's id whenever it could be
//! read (a batch gets one error per element, each with its id).

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;

use super::access::Denied;
use super::quota::retry_after_secs;
use crate::jsonrpc::{self, INVALID_REQUEST, LIMIT_EXCEEDED, PARSE_ERROR, RESOURCE_NOT_FOUND};

/// An error of the gateway itself (not of a provider).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayError {
    /// Too many requests in flight (`gateway.max_connections`).
    Busy {
        /// The limit.
        limit: usize,
    },
    /// An HTTP method other than POST, OPTIONS or a WebSocket upgrade.
    HttpMethod,
    /// The body is over `gateway.max_body_bytes`.
    BodyTooLarge {
        /// The limit, bytes.
        limit: usize,
    },
    /// The body did not arrive in time (`gateway.body_timeout_ms` or the minimum rate).
    BodyTimeout,
    /// The bodies being received already hold `gateway.max_buffered_body_bytes`.
    BodyBudget {
        /// The limit, bytes.
        limit: usize,
    },
    /// The body could not be read.
    BodyUnreadable(String),
    /// No such chain served here.
    UnknownChain(String),
    /// A request header has an unusable value.
    BadHeader {
        /// Header name.
        name: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// Not JSON.
    Parse(String),
    /// A batch over `gateway.max_batch_len`.
    BatchTooLarge {
        /// Items in it.
        items: usize,
        /// The limit.
        limit: usize,
    },
    /// Not a request at all (an empty batch, a bare value).
    InvalidRequest(&'static str),
    /// No API key where `gateway.require_key` asks for one, or a key that matches none.
    Unauthorized {
        /// `true`: no key was presented; `false`: a wrong one was.
        missing: bool,
    },
    /// Over a quota (`[[gateway.keys]] requests_per_sec` or `gateway.per_ip_requests_per_sec`).
    RateLimited {
        /// Seconds to wait, also sent as `retry-after`.
        retry_after_secs: u64,
        /// The key whose quota it is; `None`: the client address's.
        key: Option<std::sync::Arc<str>>,
    },
}

impl From<Denied> for GatewayError {
    fn from(d: Denied) -> Self {
        match d {
            Denied::MissingKey => Self::Unauthorized { missing: true },
            Denied::BadKey => Self::Unauthorized { missing: false },
            Denied::RateLimited { wait, key } => Self::RateLimited { retry_after_secs: retry_after_secs(wait), key },
        }
    }
}

impl GatewayError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Busy { .. } | Self::BodyBudget { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::HttpMethod => StatusCode::METHOD_NOT_ALLOWED,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::BodyUnreadable(_) | Self::BadHeader { .. } => StatusCode::BAD_REQUEST,
            Self::UnknownChain(_) => StatusCode::NOT_FOUND,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            // JSON-RPC-level errors of a request that did arrive: HTTP 200, as nodes answer.
            Self::Parse(_) | Self::BatchTooLarge { .. } | Self::InvalidRequest(_) => StatusCode::OK,
        }
    }

    /// The JSON-RPC error code.
    pub fn code(&self) -> i64 {
        match self {
            Self::Busy { .. } | Self::BodyBudget { .. } | Self::RateLimited { .. } => LIMIT_EXCEEDED,
            Self::UnknownChain(_) => RESOURCE_NOT_FOUND,
            Self::Parse(_) => PARSE_ERROR,
            Self::HttpMethod
            | Self::BodyTooLarge { .. }
            | Self::BodyTimeout
            | Self::BodyUnreadable(_)
            | Self::BadHeader { .. }
            | Self::BatchTooLarge { .. }
            | Self::InvalidRequest(_)
            | Self::Unauthorized { .. } => INVALID_REQUEST,
        }
    }

    /// The message (names the setting to change where there is one).
    pub fn message(&self) -> String {
        match self {
            Self::Busy { limit } => {
                format!("gateway busy: {limit} requests in flight (gateway.max_connections)")
            }
            Self::HttpMethod => "use POST for JSON-RPC over HTTP, or a WebSocket upgrade".into(),
            Self::BodyTooLarge { limit } => {
                format!("request body is larger than the gateway limit of {limit} bytes (gateway.max_body_bytes)")
            }
            Self::BodyTimeout => "the request body did not arrive in time (gateway.body_timeout_ms)".into(),
            Self::BodyBudget { limit } => format!(
                "gateway busy: request bodies being received already hold {limit} bytes \
                 (gateway.max_buffered_body_bytes)"
            ),
            Self::BodyUnreadable(why) => format!("could not read the body: {why}"),
            Self::UnknownChain(why) => why.clone(),
            Self::BadHeader { name, expected } => format!("header {name} must be {expected}"),
            Self::Parse(why) => format!("parse error: {why}"),
            Self::BatchTooLarge { items, limit } => {
                format!("batch of {items} requests is over the limit of {limit} (gateway.max_batch_len)")
            }
            Self::InvalidRequest(why) => format!("invalid request: {why}"),
            Self::Unauthorized { missing: true } => "this gateway needs an API key: send \"Authorization: Bearer \
                                                     <key>\" or use the path /k/<key>/<chain> (gateway.require_key)"
                .into(),
            Self::Unauthorized { missing: false } => "unknown API key".into(),
            Self::RateLimited { retry_after_secs, key: Some(name) } => format!(
                "rate limit of API key {name} exceeded; retry after {retry_after_secs} s ([[gateway.keys]] \
                 requests_per_sec)"
            ),
            Self::RateLimited { retry_after_secs, key: None } => format!(
                "rate limit of this client address exceeded; retry after {retry_after_secs} s, or use an API key \
                 (gateway.per_ip_requests_per_sec)"
            ),
        }
    }

    /// The JSON-RPC error body for the ids that could be read.
    pub fn body(&self, ids: &Ids) -> Bytes {
        let (code, message) = (self.code(), self.message());
        match ids {
            Ids::Unknown => jsonrpc::error_response(b"null", code, &message),
            Ids::Single(id) => jsonrpc::error_response(id, code, &message),
            Ids::Batch(ids) => {
                let mut out = Vec::with_capacity(ids.len() * (message.len() + 64) + 2);
                out.push(b'[');
                for (i, id) in ids.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(&jsonrpc::error_response(id, code, &message));
                }
                out.push(b']');
                Bytes::from(out)
            }
        }
    }

    /// The whole HTTP response.
    pub fn respond(&self, ids: &Ids) -> Response {
        let mut r = json_response(self.status(), self.body(ids));
        match self {
            Self::RateLimited { retry_after_secs, .. } => {
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            Self::Unauthorized { .. } => {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        r
    }
}

/// The ids of what the client sent, as far as they could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ids {
    /// Nothing readable: errors carry id null.
    Unknown,
    /// A single request's id.
    Single(Bytes),
    /// A batch's ids (notifications left out).
    Batch(Vec<Bytes>),
}

/// A JSON response with `status`.
pub fn json_response(status: StatusCode, body: Bytes) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_mapping_with_ids() {
        let e = GatewayError::UnknownChain("unknown chain \"9\"".into());
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        let v: serde_json::Value = serde_json::from_slice(&e.body(&Ids::Single(Bytes::from_static(b"\"a\"")))).unwrap();
        assert_eq!((v["id"].as_str(), v["error"]["code"].as_i64()), (Some("a"), Some(RESOURCE_NOT_FOUND)));
        let batch = Ids::Batch(vec![Bytes::from_static(b"1"), Bytes::from_static(b"2")]);
        let v: serde_json::Value = serde_json::from_slice(&e.body(&batch)).unwrap();
        assert_eq!(v.as_array().map(Vec::len), Some(2));
        assert_eq!(v[1]["id"], 2);
        let v: serde_json::Value = serde_json::from_slice(&GatewayError::HttpMethod.body(&Ids::Unknown)).unwrap();
        assert!(v["id"].is_null());
        assert_eq!(GatewayError::Busy { limit: 1 }.code(), LIMIT_EXCEEDED);
    }

    #[test]
    fn access_refusals_carry_their_headers() {
        let limited = GatewayError::from(Denied::RateLimited {
            wait: std::time::Duration::from_millis(1500),
            key: Some("alice".into()),
        });
        let r = limited.respond(&Ids::Single(Bytes::from_static(b"7")));
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("2"));
        assert_eq!(limited.code(), LIMIT_EXCEEDED);
        assert!(limited.message().contains("alice"));
        let r = GatewayError::from(Denied::BadKey).respond(&Ids::Unknown);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
    }
}
