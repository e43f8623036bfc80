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
use rpcmesh_protocol::messages::{MessageHeader, RelayRequest, RelayResponse, RelayStatus};

use crate::clock::now_ms;

/// An encoded response with `status` and a short reason, echoing the request's seq if readable.
pub fn status_response(request: &[u8], network_id: &str, status: RelayStatus, reason: &str) -> Vec<u8> {
    let seq = encoding::from_bytes::<RelayRequest>(request).map(|r| r.header.seq).unwrap_or(0);
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
