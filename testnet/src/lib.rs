//! # rpcmesh-testnet
//!
//! Local testnets for researchers and end-to-end tests (see issue "Local testnets").
//!
//! - [`bench`]: `rpcmesh testnet bench`: latency, throughput, failover gap, gossip convergence,
//!   memory and CPU of the daemon, each against a baseline measured in the same run.
//! - [`daemon`]: `rpcmesh` daemons as child processes (own process group, loopback only).
//! - [`net`]: a whole local testnet: daemons, backends, federation, faults, partitions.
//! - [`runner`]: a command-line testnet's lifecycle: the runner process, its state file,
//!   `up --detach` and `down`.
//! - [`control`]: the runner's control API used by `testnet down|fault|partition|restart`.
//! - [`federation`]: a federation root and membership certificates, made with the binary.
//! - [`faults`]: fault specifications (`down`, `slow=200ms`, ...).
//! - [`fault_proxy`]: an HTTP JSON-RPC fault proxy in front of a real node (anvil), one per
//!   provider, so every fault kind works on a real chain as it does on the simulated backend.
//! - [`forward`]: a TCP forwarder, a provider's killable path to a shared backend.
//! - [`prometheus`]: `testnet up --prometheus`: a scrape config for every daemon, and Prometheus
//!   itself when installed.
//! - [`load`]: the one load engine (HTTP/1.1 and WebSocket clients, pacing, client threads)
//!   that the bench and the scenarios send their requests with.
//! - [`measure`]: the one definition of percentiles and gossip convergence (bench, reports,
//!   simulator).
//! - [`simulate`]: `rpcmesh testnet simulate`: a discrete-event simulation of a large mesh that
//!   runs the daemon's real mesh view, trust, cordon book and route planning.
//! - [`record`]: the measurement records of a scenario run (`records.jsonl`), their writer and reader.
//! - [`report`]: `report.md` and SVG plots computed from those records.
//! - [`scenario`]: scenario files, the load generator, the timeline runner.
//! - [`vet`]: `rpcmesh federation vet`: the vetting battery (correctness, coverage, error
//!   conformance, load ramp), its policy, and the signed report.
//! - [`sim`]: simulated Ethereum JSON-RPC backends (one per provider) that follow one
//!   deterministic chain, with fault injection (down, freeze, slow, errors, stale, lie, censor).
#![warn(missing_docs)]

pub mod bench;
pub mod control;
pub mod daemon;
pub mod fault_proxy;
pub mod faults;
pub mod federation;
pub mod forward;
pub mod load;
pub mod measure;
pub mod net;
pub mod prometheus;
pub mod record;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod sim;
pub mod simulate;
mod transport;
pub mod vet;
