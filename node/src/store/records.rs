//! The store's own record types (protocol messages are stored as their canonical bytes).
//!
//! These are encoded with [`rpcmesh_protocol::encoding`] (bincode 2, fixed-width integers), so
//! their field order and types are part of the on-disk schema: changing them means bumping
//! [`SCHEMA_VERSION`](super::SCHEMA_VERSION) and writing a migration.

use bincode::{Decode, Encode};
use rpcmesh_protocol::PublicKey;

/// Metadata about this daemon's own identity, kept so a swapped key file can be noticed.
/// The secret key is never stored here; it lives in its own 0600 key file.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct IdentityMeta {
    /// The daemon's public key.
    pub public_key: PublicKey,
    /// When this identity was first used with this store, Unix milliseconds.
    pub created_at_ms: u64,
}

/// One entry of the peer address book.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct PeerRecord {
    /// Multiaddrs the peer was reached at or announced, as text.
    pub addrs: Vec<String>,
    /// When the peer was last seen, Unix milliseconds.
    pub last_seen_ms: u64,
}

/// Evidence of a provider's misbehaviour (a wrong answer with its receipt, equivocation...),
/// kept for operators and researchers.
///
/// For a gossiped bundle (`node::evidence`): `kind` is the [`LieKind`] label, `detail` is
/// [`EVIDENCE_VERIFIED`] or [`EVIDENCE_UNVERIFIED`], `data` the canonical `Signed<Evidence>`
/// bytes (so it still verifies when read back).
///
/// [`LieKind`]: rpcmesh_protocol::messages::LieKind
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct EvidenceRecord {
    /// When it was recorded, Unix milliseconds.
    pub at_ms: u64,
    /// The provider accused.
    pub accused: PublicKey,
    /// Short machine-readable kind, e.g. `wrong-result` or `equivocation`.
    pub kind: String,
    /// Human-readable explanation.
    pub detail: String,
    /// Supporting bytes (e.g. an encoded receipt and the response it covers).
    pub data: Vec<u8>,
}

/// `EvidenceRecord::detail` of a bundle this node re-proved (anchor on its trusted chain, lie
/// re-checked from the material).
pub const EVIDENCE_VERIFIED: &str = "verified";
/// `EvidenceRecord::detail` of a bundle this node reported but could not re-prove itself (no
/// judge wired); it is not forwarded to a cordon elsewhere unless they prove it.
pub const EVIDENCE_UNVERIFIED: &str = "unverified";

/// A provider not routed to on one chain, because of proven evidence. Key: accused ‖ chain id.
/// Kept apart from the evidence itself so that an operator's clearing survives restarts while
/// the evidence stays on record.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct CordonRecord {
    /// When the cordon began, Unix milliseconds.
    pub since_ms: u64,
    /// When it lapses on its own, Unix milliseconds.
    pub until_ms: u64,
    /// The evidence record that caused it.
    pub evidence_id: u64,
    /// The lie kind's label.
    pub kind: String,
    /// Who signed the evidence.
    pub reporter: PublicKey,
}

/// A provider labelled as filtering on one chain, because of proven censorship evidence (an
/// "empty" answer proven wrong, an omitted log, a refused transaction). Unlike a cordon it keeps
/// the provider routable for everything but its subjects. Key: accused ‖ chain id.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct FilterRecord {
    /// When the label began, Unix milliseconds.
    pub since_ms: u64,
    /// When it lapses on its own (extended by new evidence), Unix milliseconds.
    pub until_ms: u64,
    /// The latest evidence record that added to it.
    pub evidence_id: u64,
    /// What it was seen filtering: lower-case 0x addresses, or method names.
    pub subjects: Vec<String>,
    /// Who signed the latest evidence.
    pub reporter: PublicKey,
}
