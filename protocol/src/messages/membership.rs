use bincode::{Decode, Encode};

use super::MessageHeader;
use crate::identity::PublicKey;
use crate::signed::SignedBody;

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
}

impl SignedBody for MembershipCert {
    const DOMAIN: &'static [u8] = b"rpcmesh/v1/membership-cert\0";
    const KIND: &'static str = "membership-cert";
}
