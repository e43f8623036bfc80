//! Typed outcomes of one attempt: the [`Answer`] a target gave, or the [`AttemptError`] that
//! says why it gave none usable, with the [`Class`] that decides what the attempt machinery
//! does next. Strings exist only in `Display`, for `/explain` and logs.

use std::fmt;

use bytes::Bytes;
use rpcmesh_protocol::Signed;
use rpcmesh_protocol::messages::{Receipt, RelayStatus};

use crate::jsonrpc::{Answered, Malformed, RpcError};

/// How far an answer was verified before it was passed on (the `x-rpcmesh-verified` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Verified {
    /// Not checked beyond its JSON-RPC shape (the method cannot be verified, or checks are off).
    #[default]
    None,
    /// Checked against a trusted block header (hashes, roots).
    Header,
    /// Checked with a Merkle proof against a trusted state root.
    Proof,
    /// Agreed on by a quorum of operators.
    Quorum,
}

impl Verified {
    /// The header value.
    pub fn label(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Header => "header",
            Self::Proof => "proof",
            Self::Quorum => "quorum",
        }
    }
}

/// A usable answer: a result, or an error the caller caused (returned as it is).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The body, a single JSON-RPC response checked by [`crate::jsonrpc::parse_response`] (empty
    /// for a notification).
    pub body: Bytes,
    /// What it says, with the result's span in `body`.
    pub answered: Answered,
    /// What the answer checks established.
    pub verified: Verified,
    /// The serving peer's signed receipt for this answer (relayed answers): what turns a wrong
    /// answer into evidence. Boxed: most answers have none.
    pub receipt: Option<Box<Signed<Receipt>>>,
}

impl Answer {
    /// An answer whose body was parsed into `answered`.
    pub fn new(body: Bytes, answered: Answered) -> Self {
        Self { body, answered, verified: Verified::None, receipt: None }
    }

    /// The raw JSON of the result, if it is one.
    pub fn result(&self) -> Option<&[u8]> {
        match &self.answered {
            Answered::Result(r) => self.body.get(r.clone()),
            Answered::Error(_) => None,
        }
    }

    /// The error object, if the caller caused one.
    pub fn error(&self) -> Option<&RpcError> {
        match &self.answered {
            Answered::Error(e) => Some(e),
            Answered::Result(_) => None,
        }
    }
}

/// What the attempt machinery does after an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The target failed: count it against its breaker and try the next target.
    Retryable,
    /// The target protects its capacity: try another now, or it again after a short backoff;
    /// never counted against it.
    Busy,
    /// No target can do better (e.g. the answer is over our size limit): stop and report it.
    Fatal,
    /// The request itself is at fault: stop and tell the caller.
    Caller,
}

/// Why an answer failed a check of the answer-check layer (filled by the integrity checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckFailure {
    /// Short stable label (metrics, evidence): `header_hash`, `proof`, `quorum`...
    pub kind: &'static str,
    /// What did not match.
    pub detail: String,
}

/// Why an attempt produced no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptError {
    /// The target could not be reached (connection refused or reset, dial failure).
    Unreachable(String),
    /// No answer within the attempt's time.
    Timeout {
        /// After how long, ms.
        after_ms: u64,
    },
    /// An HTTP status that is the node's problem (5xx, 429, 408).
    Http(u16),
    /// A JSON-RPC error the node caused (lagging, pruned, overloaded, internal).
    Node(RpcError),
    /// Not one well-formed JSON-RPC response to this request.
    Malformed(Malformed),
    /// The answer is larger than this daemon accepts.
    TooLarge {
        /// The limit, bytes.
        limit: usize,
    },
    /// The peer is at its announced capacity.
    Busy,
    /// The peer answered the relay with a failure status.
    Relay(RelayStatus),
    /// The relay exchange itself failed validation (bad receipt, wrong request, undecodable).
    RelayInvalid(String),
    /// The answer failed an answer check.
    Unverified(CheckFailure),
    /// Nothing can carry the request to that target (relay disabled, upstream removed).
    Unavailable(&'static str),
    /// The peer's relay policy does not serve the method to us (its reason): the client gets
    /// -32601, as from our own policy.
    MethodRefused(String),
    /// A transaction refused for no reason a well-behaved node gives (a filter): the next
    /// operator is asked at once.
    Filtered(RpcError),
}

impl AttemptError {
    /// What to do next.
    pub fn class(&self) -> Class {
        match self {
            Self::Busy => Class::Busy,
            Self::TooLarge { .. } => Class::Fatal,
            Self::MethodRefused(_) => Class::Caller,
            Self::Unreachable(_)
            | Self::Timeout { .. }
            | Self::Http(_)
            | Self::Node(_)
            | Self::Malformed(_)
            | Self::Relay(_)
            | Self::RelayInvalid(_)
            | Self::Unverified(_)
            | Self::Filtered(_)
            | Self::Unavailable(_) => Class::Retryable,
        }
    }

    /// Whether the target worked even though its answer cannot be used: its breaker records a
    /// success. A filtered refusal is a working node's answer (a filtering own node must not be
    /// ejected for every other request).
    pub fn target_worked(&self) -> bool {
        matches!(self, Self::Filtered(_))
    }

    /// Short stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Unreachable(_) => "unreachable",
            Self::Timeout { .. } => "timeout",
            Self::Http(_) => "http_status",
            Self::Node(_) => "node_error",
            Self::Malformed(_) => "malformed",
            Self::TooLarge { .. } => "too_large",
            Self::Busy => "busy",
            Self::Relay(_) => "relay_status",
            Self::RelayInvalid(_) => "relay_invalid",
            Self::Unverified(_) => "unverified",
            Self::Unavailable(_) => "unavailable",
            Self::MethodRefused(_) => "method_refused",
            Self::Filtered(_) => "filtered",
        }
    }
}

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable(why) => write!(f, "unreachable: {why}"),
            Self::Timeout { after_ms } => write!(f, "no answer within {after_ms} ms"),
            Self::Http(s) => write!(f, "HTTP {s}"),
            Self::Node(e) => write!(f, "node error {}: {}", e.code, e.message),
            Self::Malformed(m) => write!(f, "malformed response: {m}"),
            Self::TooLarge { limit } => write!(f, "answer over the {limit}-byte limit"),
            Self::Busy => f.write_str("peer answered busy"),
            Self::Relay(s) => write!(f, "peer answered {}", s.label()),
            Self::RelayInvalid(why) => write!(f, "invalid relay response: {why}"),
            Self::Unverified(c) => write!(f, "answer failed verification ({}): {}", c.kind, c.detail),
            Self::Unavailable(why) => f.write_str(why),
            Self::MethodRefused(why) => f.write_str(why),
            Self::Filtered(e) => {
                write!(f, "transaction refused without a node-level reason ({}: {})", e.code, e.message)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(AttemptError::Busy.class(), Class::Busy);
        assert_eq!(AttemptError::TooLarge { limit: 1 }.class(), Class::Fatal);
        assert_eq!(AttemptError::Http(503).class(), Class::Retryable);
        assert_eq!(AttemptError::Malformed(Malformed::IdMismatch).class(), Class::Retryable);
        let bad = AttemptError::Unverified(CheckFailure { kind: "header_hash", detail: "x".into() });
        assert_eq!(bad.class(), Class::Retryable);
        assert_eq!(bad.to_string(), "answer failed verification (header_hash): x");
    }
}
