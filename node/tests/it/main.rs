//! rpcmesh-node integration tests: one binary.

mod store;
