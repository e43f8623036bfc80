use bincode::{Decode, Encode};

use super::MessageHeader;
use crate::digest::Digest;
use crate::identity::PublicKey;
use crate::signed::{Signed, SignedBody};

/// A raw JSON-RPC body forwarded to a peer's upstream.
///
/// Not signed: the libp2p connection (Noise) already authenticates the requester, and signing
/// every relay would cost more than the relay's own budget. `header.seq` is the request id.
///
/// Encoded as its four first fields, then — only when `trace` is `Some` — the
/// [`TraceContext`]'s [`TraceContext::ENCODED_BYTES`] bytes, with no tag: a request without a
/// trace context is byte for byte the original layout, and one with it is that layout followed
/// by the trailer. Decoding accepts both. Peers that predate the trailer refuse it (trailing
/// bytes), so a requester sends it only on `/rpcmesh/relay/2` streams (the node's codec strips
/// it on `/rpcmesh/relay/1`, see [`RelayRequest::without_trace_context`]).
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// The requester's trace, so that the server's span joins it (W3C trace context). Optional
    /// trailer; see the type's docs.
    pub trace: Option<TraceContext>,
}

/// The requester's distributed-tracing context (the fields of a W3C `traceparent`): the server
/// makes its `relay` span a child of `parent_span_id` in trace `trace_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub struct TraceContext {
    /// Trace id (16 bytes, not all zero).
    pub trace_id: [u8; 16],
    /// The requester's span the relay belongs to (8 bytes, not all zero).
    pub parent_span_id: [u8; 8],
    /// W3C trace flags; bit 0 = sampled.
    pub flags: u8,
}

impl TraceContext {
    /// Bytes of an encoded trace context (fixed: two arrays and a byte).
    pub const ENCODED_BYTES: usize = 16 + 8 + 1;
}

impl Encode for RelayRequest {
    fn encode<E: bincode::enc::Encoder>(&self, encoder: &mut E) -> Result<(), bincode::error::EncodeError> {
        self.header.encode(encoder)?;
        self.chain_id.encode(encoder)?;
        self.timeout_ms.encode(encoder)?;
        self.body.encode(encoder)?;
        match &self.trace {
            Some(t) => t.encode(encoder),
            None => Ok(()),
        }
    }
}

impl<Context> Decode<Context> for RelayRequest {
    fn decode<D: bincode::de::Decoder<Context = Context>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        use bincode::de::read::Reader as _;
        let header = MessageHeader::decode(decoder)?;
        let chain_id = u64::decode(decoder)?;
        let timeout_ms = u32::decode(decoder)?;
        let body = Vec::<u8>::decode(decoder)?;
        // The trailer is there when bytes follow (slice readers can tell; all of ours are).
        let trace = match decoder.reader().peek_read(1) {
            Some(_) => Some(TraceContext::decode(decoder)?),
            None => None,
        };
        Ok(Self { header, chain_id, timeout_ms, body, trace })
    }
}

bincode::impl_borrow_decode!(RelayRequest);

impl RelayRequest {
    /// The encoded request `bytes` as a peer that predates the trace-context trailer reads it:
    /// the trailer cut off when there is one. Bytes that do not decode are returned unchanged
    /// (the server refuses them either way).
    pub fn without_trace_context(mut bytes: Vec<u8>) -> Vec<u8> {
        if let Ok(RelayRequest { trace: Some(_), .. }) = crate::encoding::from_bytes::<RelayRequest>(&bytes) {
            bytes.truncate(bytes.len() - TraceContext::ENCODED_BYTES);
        }
        bytes
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding;

    /// The layout before the trailer existed, as an older peer decodes it.
    #[derive(Debug, PartialEq, Eq, Encode, Decode)]
    struct RelayRequestV1 {
        header: MessageHeader,
        chain_id: u64,
        timeout_ms: u32,
        body: Vec<u8>,
    }

    fn request(trace: Option<TraceContext>) -> RelayRequest {
        RelayRequest {
            header: MessageHeader::new("net", 7, 1_000, 2_000),
            chain_id: 1,
            timeout_ms: 2_000,
            body: br#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber"}"#.to_vec(),
            trace,
        }
    }

    const TRACE: TraceContext = TraceContext { trace_id: [0xab; 16], parent_span_id: [0xcd; 8], flags: 1 };

    #[test]
    fn the_trace_context_is_an_optional_trailer() {
        let plain = encoding::to_bytes(&request(None));
        let old = encoding::to_bytes(&RelayRequestV1 {
            header: MessageHeader::new("net", 7, 1_000, 2_000),
            chain_id: 1,
            timeout_ms: 2_000,
            body: request(None).body,
        });
        assert_eq!(plain, old, "without a trace context the layout is the original one");
        assert_eq!(encoding::from_bytes::<RelayRequest>(&old).unwrap(), request(None));

        let traced = encoding::to_bytes(&request(Some(TRACE)));
        assert_eq!(traced.len(), plain.len() + TraceContext::ENCODED_BYTES);
        assert_eq!(&traced[..plain.len()], &plain[..]);
        assert_eq!(encoding::from_bytes::<RelayRequest>(&traced).unwrap(), request(Some(TRACE)));
        assert!(
            matches!(encoding::from_bytes::<RelayRequestV1>(&traced), Err(encoding::DecodeError::TrailingBytes(25))),
            "an older peer refuses the trailer: it must only be sent on relay/2"
        );
        assert_eq!(RelayRequest::without_trace_context(traced), plain);
        assert_eq!(RelayRequest::without_trace_context(plain.clone()), plain);
        // A cut-off trailer is malformed, not silently dropped.
        let mut cut = encoding::to_bytes(&request(Some(TRACE)));
        cut.pop();
        assert!(encoding::from_bytes::<RelayRequest>(&cut).is_err());
    }
}
