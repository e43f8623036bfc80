//! # rpcmesh-testnet
//!
//! Local testnets for researchers and end-to-end tests (see issue "Local testnets").
//!
//! - [`daemon`]: `rpcmesh` daemons as child processes (own process group, loopback only).
//! - [`forward`]: a TCP forwarder, a provider's killable path to a shared backend.
//! - [`sim`]: simulated Ethereum JSON-RPC backends (one per provider) that follow one
//!   deterministic chain, with fault injection (down, freeze, slow, errors, stale, lie, censor).
#![warn(missing_docs)]

pub mod daemon;
pub mod forward;
pub mod sim;
