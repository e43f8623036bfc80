//! Relaying raw JSON-RPC bodies between daemons over the `/rpcmesh/relay/1` protocol.
//!
//! - [`RelayServer`] serves inbound relays: only for trusted peers (unless `relay.open`),
//!   within the announced capacity (a full chain answers `Busy` at once instead of queueing),
//!   through the best own upstream, with a signed [`Receipt`](rpcmesh_protocol::messages::Receipt).
//! - [`RelayClient`] sends relays and verifies the response and its receipt.

mod client;
mod server;

pub use client::{RECEIPT_LOG_CAPACITY, ReceiptLog, ReceiptRecord, RelayCallError, RelayClient, RelayOutcome};
pub use server::{Capacity, RelayServer, RelayServerSettings};

use rpcmesh_protocol::encoding;
use rpcmesh_protocol::messages::{MessageHeader, RelayResponse, RelayStatus};

use crate::clock::now_ms;

/// An encoded response with `status` and a short reason, echoing the request's seq if readable.
/// Reads only the request's header: refusals (above all `Busy`, which runs most when the server
/// is loaded) must not decode and copy the body.
pub fn status_response(request: &[u8], network_id: &str, status: RelayStatus, reason: &str) -> Vec<u8> {
    let seq = encoding::from_prefix::<MessageHeader>(request).map(|h| h.seq).unwrap_or(0);
    encoding::to_bytes(&RelayResponse {
        header: MessageHeader::new(network_id, seq, now_ms(), 10_000),
        status,
        body: reason.as_bytes().to_vec(),
        receipt: None,
    })
}

/// The `Busy` answer the p2p loop gives when the relay server's queue is full.
pub fn busy_response(request: &[u8], network_id: &str) -> Vec<u8> {
    status_response(request, network_id, RelayStatus::Busy, "relay queue full")
}

/// Lower-case label of a status, for metrics and JSON.
pub fn status_label(s: RelayStatus) -> &'static str {
    match s {
        RelayStatus::Ok => "ok",
        RelayStatus::Busy => "busy",
        RelayStatus::NotServingChain => "not_serving_chain",
        RelayStatus::UpstreamError => "upstream_error",
        RelayStatus::Refused => "refused",
        RelayStatus::Timeout => "timeout",
    }
}

#[cfg(test)]
mod tests {
    use rpcmesh_protocol::messages::RelayRequest;

    use super::*;

    #[test]
    fn status_responses_echo_the_request_seq() {
        let request = encoding::to_bytes(&RelayRequest {
            header: MessageHeader::new("net", 41, 1_000, 5_000),
            chain_id: 1,
            timeout_ms: 5_000,
            body: b"{}".to_vec(),
        });
        let raw = status_response(&request, "net", RelayStatus::Busy, "at capacity");
        let r = encoding::from_bytes::<RelayResponse>(&raw).unwrap();
        assert_eq!((r.header.seq, r.status, r.body.as_slice()), (41, RelayStatus::Busy, &b"at capacity"[..]));
        assert!(r.receipt.is_none());
        let unreadable = status_response(b"junk", "net", RelayStatus::Refused, "no");
        assert_eq!(encoding::from_bytes::<RelayResponse>(&unreadable).unwrap().header.seq, 0);
    }
}
