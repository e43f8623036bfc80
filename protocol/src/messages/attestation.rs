use bincode::{Decode, Encode};

use super::MessageHeader;
use crate::identity::PublicKey;
use crate::signed::SignedBody;

/// A signed summary of probes the attester (the envelope's signer) sent to a subject over a
/// window of time. The subject may be the attester itself (its own upstreams). Encoded as the
/// header followed by the observation's fields, in order.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct HealthAttestation {
    /// Common header.
    pub header: MessageHeader,
    /// What was observed: the fields an [`AttestationRound`] carries per observation.
    pub observation: Observation,
}

impl SignedBody for HealthAttestation {
    const DOMAIN: &'static [u8] = b"rpcmesh/v1/health-attestation\0";
    const KIND: &'static str = "health-attestation";
}

/// One attester's observations of one probing round, signed once: the aggregated form of
/// [`HealthAttestation`] that daemons gossip. A round carries every (subject, chain) the attester
/// probed in its window, so the mesh carries one message and one signature per attester per
/// round instead of one per observation (see docs/protocol.md, "Attestation rounds").
///
/// Each observation reads as a [`HealthAttestation`] with the round's header
/// ([`AttestationRound::attestations`]), and is validated by the same rules.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct AttestationRound {
    /// Common header: one `seq` per attester for the whole round.
    pub header: MessageHeader,
    /// What was observed, at most one per (subject, chain).
    pub observations: Vec<Observation>,
}

/// One (subject, chain) of an [`AttestationRound`], or of a [`HealthAttestation`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Observation {
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

impl Observation {
    /// This observation as a stand-alone attestation under `header`.
    pub fn to_attestation(&self, header: &MessageHeader) -> HealthAttestation {
        HealthAttestation { header: header.clone(), observation: self.clone() }
    }
}

impl AttestationRound {
    /// Every observation as a [`HealthAttestation`] carrying the round's header.
    pub fn attestations(&self) -> impl Iterator<Item = HealthAttestation> + '_ {
        self.observations.iter().map(|o| o.to_attestation(&self.header))
    }
}

impl SignedBody for AttestationRound {
    const DOMAIN: &'static [u8] = b"rpcmesh/v1/attestation-round\0";
    const KIND: &'static str = "attestation-round";
}
