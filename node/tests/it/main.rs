//! rpcmesh-node integration tests: one binary.

mod gateway;
mod limits;
mod store;
