use bincode::{Decode, Encode};

use super::MessageHeader;
use crate::digest::Digest;
use crate::identity::PublicKey;
use crate::signed::{Signed, SignedBody};

/// A raw JSON-RPC body forwarded to a peer's upstream.
///
/// Not signed: the libp2p connection (Noise) already authenticates the requester, and signing
/// every relay would cost more than the relay's own budget. `header.seq` is the request id.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct RelayRequest {
    /// Common header; `expires_at_ms` is the absolute deadline.
    pub header: MessageHeader,
    /// Chain to serve it on.
    pub chain_id: u64,
    /// Time budget left when sent, in milliseconds. The server uses this rather than the
    /// absolute deadline so clock skew between daemons cannot shorten or stretch it.
    pub timeout_ms: u32,
    /// The JSON-RPC request (single or batch), byte for byte.
    pub body: Vec<u8>,
}

/// Outcome of a relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub enum RelayStatus {
    /// Served; `body` is the upstream's response.
    Ok,
    /// At capacity right now; try another provider at once.
    Busy,
    /// This provider does not serve that chain.
    NotServingChain,
    /// The provider's upstream failed (transport error, 5xx, bad node).
    UpstreamError,
    /// Not accepted from this requester (not trusted, wrong network).
    Refused,
    /// The deadline passed before the upstream answered.
    Timeout,
}

impl RelayStatus {
    /// Lower-case label, for metrics, logs and JSON.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Busy => "busy",
            Self::NotServingChain => "not_serving_chain",
            Self::UpstreamError => "upstream_error",
            Self::Refused => "refused",
            Self::Timeout => "timeout",
        }
    }
}

/// The answer to a [`RelayRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct RelayResponse {
    /// Common header; `seq` echoes the request's.
    pub header: MessageHeader,
    /// What happened.
    pub status: RelayStatus,
    /// The upstream's JSON-RPC response when `status` is `Ok`, else a short reason in UTF-8.
    pub body: Vec<u8>,
    /// The provider's signed receipt when `status` is `Ok`.
    pub receipt: Option<Signed<Receipt>>,
}

impl RelayResponse {
    /// The encoded refusal (or failure) of the encoded request `request`: `status` with a short
    /// `reason`, echoing the request's seq when its header is readable. Reads only the header:
    /// refusals (above all `Busy`, which runs most when a server is loaded) must not decode and
    /// copy the body.
    pub fn refusal(request: &[u8], network_id: &str, status: RelayStatus, reason: &str, now_ms: u64) -> Vec<u8> {
        let seq = crate::encoding::from_prefix::<MessageHeader>(request).map(|h| h.seq).unwrap_or(0);
        crate::encoding::to_bytes(&RelayResponse {
            header: MessageHeader::new(network_id, seq, now_ms, REFUSAL_TTL_MS),
            status,
            body: reason.as_bytes().to_vec(),
            receipt: None,
        })
    }
}

/// Validity of a refusal: long enough for any relay round trip, short enough to be useless later.
pub const REFUSAL_TTL_MS: u64 = 10_000;

/// A serving provider's signed statement of what it answered: evidence if the answer was wrong.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Receipt {
    /// Common header (`seq` is the relay request's id, `issued_at_ms` when it was served).
    pub header: MessageHeader,
    /// Who asked.
    pub requester: PublicKey,
    /// Chain served.
    pub chain_id: u64,
    /// SHA-256 of the request body.
    pub request_digest: Digest,
    /// SHA-256 of the response body.
    pub response_digest: Digest,
    /// The server's head when it answered, if known.
    pub head: Option<u64>,
}

impl SignedBody for Receipt {
    const DOMAIN: &'static [u8] = b"rpcmesh/v1/relay-receipt\0";
    const KIND: &'static str = "relay-receipt";
}
