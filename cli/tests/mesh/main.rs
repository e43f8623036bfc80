//! Multi-daemon tests: real `rpcmesh run` processes over real loopback sockets, real and
//! simulated Ethereum backends. Each daemon binds 127.0.0.1 only and is killed with its
//! process group when the test ends.

mod attacker;
mod cache;
mod censorship;
mod clients;
mod dashboard;
mod failover;
mod integrity;
mod metrics;
mod safety;
mod scenarios;
mod support;
mod telemetry;
mod testnet_prometheus;
mod tests;
mod trust;
