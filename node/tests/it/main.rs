//! rpcmesh-node integration tests: one binary.

mod gateway;
mod store;
