//! rpcmesh-node integration tests: one binary.

mod access;
mod evidence;
mod gateway;
mod limits;
mod store;
