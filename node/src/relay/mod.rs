//! Relaying raw JSON-RPC bodies between daemons: over long-lived relay streams
//! ([`stream`], `/rpcmesh/<network>/relay-stream/1`, requests with their optional trace
//! context), or the `/rpcmesh/relay/2` request-response protocol (`/1` with older peers, which
//! drops the trace context) with peers that do not speak streams.
//!
//! - [`RelayServer`] serves inbound relays: only for trusted peers (unless `relay.open`),
//!   within the announced capacity (a full chain answers `Busy` at once instead of queueing),
//!   through the best own upstream, with a signed [`Receipt`](rpcmesh_protocol::messages::Receipt).
//! - [`RelayMethodPolicy`]: only methods the operator relays (`[relay] allow_methods` /
//!   `deny_methods`, per-peer `[[relay.grants]]`) reach the upstream; others are `Refused` with a
//!   reason starting [`METHOD_REFUSED`]. [`check_answer`]: an upstream answer that is not a
//!   well-formed response to the request is an `UpstreamError`, never signed.
//! - [`RelayClient`] sends relays and verifies the response and its receipt.

mod client;
mod policy;
mod server;
pub mod stream;

pub use client::{RECEIPT_LOG_CAPACITY, ReceiptLog, ReceiptRecord, RelayCallError, RelayClient, RelayOutcome};
pub use policy::{METHOD_REFUSED, RelayMethodPolicy, check_answer};
pub use server::{Capacity, RelayServer, RelayServerSettings};

use rpcmesh_protocol::messages::{RelayResponse, RelayStatus};

use crate::clock::now_ms;

/// An encoded response with `status` and a short reason, echoing the request's seq if readable.
pub fn status_response(request: &[u8], network_id: &str, status: RelayStatus, reason: &str) -> Vec<u8> {
    RelayResponse::refusal(request, network_id, status, reason, now_ms())
}
