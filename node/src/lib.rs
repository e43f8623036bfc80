//! # rpcmesh-node
//!
//! The daemon as a library. Module map:
//!
//! - [`config`]: the TOML configuration, its defaults, and overrides from flags and `RPCMESH_*`.
//! - [`store`]: persistent state (sled behind one module): identity metadata, announcements,
//!   attestation history, peer address book, evidence.
#![warn(missing_docs)]

pub mod config;
pub mod store;
