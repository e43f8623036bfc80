//! # rpcmesh-node
//!
//! The daemon as a library.
#![warn(missing_docs)]
