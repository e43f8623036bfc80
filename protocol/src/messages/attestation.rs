use bincode::{Decode, Encode};

use super::MessageHeader;
use crate::identity::PublicKey;
use crate::signed::SignedBody;

/// A signed summary of probes the attester (the envelope's signer) sent to a subject over a
/// window of time. The subject may be the attester itself (its own upstreams).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct HealthAttestation {
    /// Common header.
    pub header: MessageHeader,
    /// The provider observed.
    pub subject: PublicKey,
    /// Chain the probes ran on.
    pub chain_id: u64,
    /// Start of the observation window, Unix milliseconds.
    pub window_start_ms: u64,
    /// End of the observation window, Unix milliseconds.
    pub window_end_ms: u64,
    /// Probes sent in the window.
    pub probes_sent: u32,
    /// Probes answered correctly in the window.
    pub probes_ok: u32,
    /// Median latency of successful probes, microseconds.
    pub latency_p50_us: u32,
    /// 95th percentile latency of successful probes, microseconds.
    pub latency_p95_us: u32,
    /// Latest head the subject reported, if any probe succeeded.
    pub observed_head: Option<u64>,
    /// The attester's reference head (median of trusted providers) at the end of the window.
    pub reference_head: Option<u64>,
    /// `reference_head - observed_head` in blocks (negative when the subject is ahead).
    pub head_lag_blocks: Option<i64>,
}

impl SignedBody for HealthAttestation {
    const DOMAIN: &'static [u8] = b"rpcmesh/v1/health-attestation\0";
    const KIND: &'static str = "health-attestation";
}
