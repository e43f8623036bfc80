//! # rpcmesh-testnet
//!
//! Local testnets for researchers and end-to-end tests (see issue "Local testnets").
#![warn(missing_docs)]
