//! The requesting side of relays.

use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use rpcmesh_protocol::messages::{MessageHeader, Receipt, RelayRequest, RelayResponse, RelayStatus};
use rpcmesh_protocol::validate::{Limits, ValidationContext, check_receipt_binds, decode_relay};
use rpcmesh_protocol::{PublicKey, Signed, encoding};

use super::status_label;
use crate::clock::{SeqGen, now_ms};
use crate::metrics::NodeMetrics;
use crate::p2p::{P2pError, P2pHandle};

/// A verified relay answer.
#[derive(Debug, Clone)]
pub struct RelayOutcome {
    /// What the server said.
    pub status: RelayStatus,
    /// Upstream response (status `Ok`) or reason.
    pub body: Vec<u8>,
    /// The verified receipt (status `Ok`).
    pub receipt: Option<Signed<Receipt>>,
    /// Round trip.
    pub elapsed: Duration,
}

/// Why a relay produced no verified answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RelayCallError {
    /// Could not reach the peer, or no answer in time.
    #[error(transparent)]
    Transport(#[from] P2pError),
    /// The answer failed validation (bad receipt, wrong digest, malformed).
    #[error("invalid relay response from {peer}: {reason}")]
    Invalid {
        /// The peer.
        peer: PeerId,
        /// What was wrong.
        reason: String,
    },
}

/// Sends relays and checks what comes back.
#[derive(Clone)]
pub struct RelayClient {
    p2p: P2pHandle,
    own: PublicKey,
    network_id: String,
    limits: Limits,
    seq: Arc<SeqGen>,
    metrics: NodeMetrics,
}

impl RelayClient {
    /// A client sending through `p2p`.
    pub fn new(p2p: P2pHandle, own: PublicKey, network_id: String, limits: Limits, metrics: NodeMetrics) -> Self {
        Self { p2p, own, network_id, limits, seq: Arc::new(SeqGen::default()), metrics }
    }

    /// Relays `body` to `peer` for `chain_id` within `timeout`, verifying the response.
    pub async fn call(
        &self,
        peer: PeerId,
        chain_id: u64,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<RelayOutcome, RelayCallError> {
        let start = Instant::now();
        let timeout_ms = timeout.as_millis().clamp(1, u128::from(self.limits.max_relay_timeout_ms)) as u32;
        let header = MessageHeader::new(self.network_id.clone(), self.seq.next(), now_ms(), u64::from(timeout_ms));
        let request = RelayRequest { header, chain_id, timeout_ms, body };
        let encoded = encoding::to_bytes(&request);
        let raw = match self.p2p.relay(peer, encoded, timeout).await {
            Ok(raw) => raw,
            Err(e) => {
                self.metrics.relay("outbound", "transport_error");
                return Err(e.into());
            }
        };
        let ctx =
            ValidationContext { network_id: self.network_id.clone(), now_ms: now_ms(), limits: self.limits.clone() };
        let invalid = |reason: String| RelayCallError::Invalid { peer, reason };
        let response = decode_relay::<RelayResponse>(&raw, &ctx).map_err(|e| invalid(e.to_string()))?;
        if response.header.seq != request.header.seq {
            return Err(invalid("response to another request".into()));
        }
        if let Some(receipt) = &response.receipt {
            check_receipt_binds(&response, &request.body, &self.own, chain_id).map_err(|e| invalid(e.to_string()))?;
            let signer_peer = receipt.signer.to_peer_id();
            if signer_peer != peer {
                return Err(invalid("receipt signed by another provider".into()));
            }
        }
        self.metrics.relay("outbound", status_label(response.status));
        Ok(RelayOutcome {
            status: response.status,
            body: response.body,
            receipt: response.receipt,
            elapsed: start.elapsed(),
        })
    }
}
