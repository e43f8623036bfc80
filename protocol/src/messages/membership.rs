use bincode::{Decode, Encode};

use super::MessageHeader;
use crate::digest::Digest;
use crate::identity::PublicKey;
use crate::signed::{Signed, SignedBody};

/// A federation root's statement that `member` is a vetted provider. Signed by the root key;
/// the header's `issued_at_ms`..`expires_at_ms` is the validity window and `seq` a serial number.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct MembershipCert {
    /// Common header (`network_id` limits the certificate to one mesh).
    pub header: MessageHeader,
    /// The member's public key (its PeerId is derived from it).
    pub member: PublicKey,
    /// Human-readable operator name.
    pub operator_name: String,
    /// Why the member was admitted: the vetting operator's signed summary of the report of
    /// `rpcmesh federation vet` that the root looked at, if it was admitted with one. The root's
    /// signature covers it too, so it cannot be swapped without re-issuing the certificate.
    /// Boxed: certificates ride inside announcements, which would otherwise grow by its size
    /// wherever they are held or moved (the encoding is the same).
    pub vetting: Option<Box<Signed<VettingSummary>>>,
}

impl SignedBody for MembershipCert {
    const DOMAIN: &'static [u8] = b"rpcmesh/v1/membership-cert\0";
    const KIND: &'static str = "membership-cert";
}

/// What a vetting run concluded against its policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub enum VettingVerdict {
    /// Every criterion of the policy was met.
    Pass,
    /// At least one criterion was not met (the report names each).
    Fail,
    /// The run was interrupted before every test ran: the report is partial and proves nothing.
    Incomplete,
}

impl VettingVerdict {
    /// Lower-case name, as written in reports and shown by `/peers`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Incomplete => "incomplete",
        }
    }
}

/// The vetting operator's signed statement about one `rpcmesh federation vet` report: which
/// report (by digest), judged against which policy, with what verdict, and when. The envelope's
/// signer is the vetting operator. Written beside the report as `report.sig` and embedded in
/// the [`MembershipCert`] of a member admitted with it.
///
/// The header's `issued_at_ms` is when the run ended (the vetting time), `expires_at_ms` how long
/// the operator stands by the result, `seq` a serial number, and `network_id` the mesh the
/// candidate was vetted for.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct VettingSummary {
    /// Common header (see above).
    pub header: MessageHeader,
    /// EIP-155 chain id the candidate was vetted on.
    pub chain_id: u64,
    /// The candidate's key when the vetting operator named it (`--member`); a report that names
    /// a member can only be used to admit that member.
    pub member: Option<PublicKey>,
    /// SHA-256 of the report's canonical JSON bytes (`report.json` with sorted keys, no spaces).
    pub report_digest: Digest,
    /// The policy's name (its `name` key).
    pub policy_name: String,
    /// SHA-256 of the policy's canonical JSON bytes: two runs with the same digest were judged by
    /// the same thresholds.
    pub policy_digest: Digest,
    /// The verdict against that policy.
    pub verdict: VettingVerdict,
}

impl SignedBody for VettingSummary {
    const DOMAIN: &'static [u8] = b"rpcmesh/v1/vetting-summary\0";
    const KIND: &'static str = "vetting-summary";
}
