//! Message types. Every body begins with a [`MessageHeader`]; signed kinds implement
//! [`SignedBody`](crate::signed::SignedBody) with their own domain tag.
//!
//! | kind | signed by | carried over |
//! |---|---|---|
//! | [`CapacityAnnouncement`] | the provider | gossip topic `rpcmesh/<net>/announcements/1` |
//! | [`AttestationRound`] | the attester | gossip topic `rpcmesh/<net>/attestation-rounds/1` |
//! | [`HealthAttestation`] | the attester | one observation of a round, read with the round's header (the store, the mesh view); no longer gossiped alone |
//! | [`MembershipCert`] | a federation root key | inside announcements, and as a file |
//! | [`VettingSummary`] | the vetting operator | inside a [`MembershipCert`], and as `report.sig` beside a vetting report |
//! | [`RelayRequest`] / [`RelayResponse`] | not signed (the libp2p connection authenticates both ends) | request-response |
//! | [`Receipt`] | the serving provider | inside [`RelayResponse`], and inside [`Evidence`] |
//! | [`Evidence`] | the reporter (the accused signed the embedded receipt) | gossip topic `rpcmesh/<net>/evidence/1` |

mod announcement;
mod attestation;
mod evidence;
mod header;
mod membership;
mod relay;

pub use announcement::{BlockRef, CapacityAnnouncement, ChainCapacity};
pub use attestation::{AttestationRound, HealthAttestation, Observation};
pub use evidence::{Evidence, LieKind};
pub use header::MessageHeader;
pub use membership::{MembershipCert, VettingSummary, VettingVerdict};
pub use relay::{Receipt, RelayRequest, RelayResponse, RelayStatus, TraceContext};
