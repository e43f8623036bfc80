//! # rpcmesh-protocol
//!
//! The rules every rpcmesh daemon agrees on, as pure data and functions:
//!
//! - [`identity`]: one ed25519 key per daemon. The same key is the libp2p identity (its
//!   [`PeerId`](libp2p_identity::PeerId)) and signs every message.
//! - [`encoding`]: the canonical byte form (bincode 2.0.1, one fixed configuration).
//! - [`signed`]: the [`Signed`] envelope: `body || signer || signature`, where the signature
//!   covers `domain_tag || canonical_bytes(body)` and is checked with `verify_strict`.
//! - [`messages`]: capacity announcements, health attestations, membership certificates,
//!   relay requests/responses, receipts and evidence of wrong answers. Every body starts with a
//!   [`MessageHeader`].
//! - [`validate`]: explicit limits and typed errors; each error maps to a gossip
//!   [`Verdict`].
//! - [`replay`]: a small sequence tracker the node uses to drop replays.
//!
//! Nothing here touches sockets or async runtimes; the only I/O is loading and saving key files.
//!
//! ```
//! use rpcmesh_protocol::{Identity, messages::*, signed::Signed, validate::*};
//!
//! let me = Identity::generate();
//! let header = MessageHeader::new("testnet-1", 7, 1_700_000_000_000, 15_000);
//! let ann = CapacityAnnouncement::new(header, vec![], vec![], None, "rpcmesh/0.1.0".into());
//! let signed = Signed::sign(ann, &me);
//! let bytes = signed.to_bytes();
//!
//! let ctx = ValidationContext::new("testnet-1", 1_700_000_000_500);
//! let checked = decode_and_validate::<CapacityAnnouncement>(&bytes, &ctx).unwrap();
//! assert_eq!(checked.signer(), me.public_key());
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod digest;
pub mod encoding;
pub mod identity;
pub mod messages;
pub mod replay;
pub mod signed;
pub mod validate;

pub use identity::{Identity, KeyFileError, PublicKey};
pub use messages::MessageHeader;
pub use signed::{SignatureError, Signed, SignedBody};
pub use validate::{ValidationContext, ValidationError, Verdict};

/// The protocol version every message body carries in its header and its domain tag.
pub const PROTOCOL_VERSION: u16 = 1;
