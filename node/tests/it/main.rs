//! rpcmesh-node integration tests: one binary.

mod evidence;
mod gateway;
mod limits;
mod store;
