//! # rpcmesh-node
//!
//! The rpcmesh daemon as a library. [`launch::launch`] starts a node from a [`config::Config`].
//!
//! Data flow:
//!
//! ```text
//!  own upstreams ◄── upstream::run_prober (eth_chainId, head, latency)
//!        │ head/status changes
//!        ▼
//!  announce::Announcer ──signed announcement──► p2p (gossipsub) ──► peers
//!                                                   │ validated gossip (P2pEvent)
//!  peer_prober ──relay probes──► p2p ──► peers       ▼
//!        │ probe results, signed attestations ──► mesh::MeshTask ──► watch<Arc<MeshSnapshot>>
//!                                                   │ persists            │ read by
//!                                                   ▼                     ▼
//!                                                 store            admin API, relay server
//! ```
//!
//! Module map:
//!
//! - [`config`]: the TOML configuration, its defaults, and overrides from flags and `RPCMESH_*`.
//! - [`store`]: persistent state (sled behind one module).
//! - [`upstream`]: the provider's own nodes: pooled client, health, prober.
//! - [`p2p`]: the libp2p swarm (only its event loop touches it) and its handle.
//! - [`mesh`]: the single-writer mesh view and its snapshots.
//! - [`trust`]: federated/open trust decisions, certificate files.
//! - [`relay`]: serving and sending relays.
//! - [`telemetry`]: OpenTelemetry (OTLP) export of the `request` and `relay` spans, joined across relays.
//! - [`announce`], [`peer_prober`]: what this node tells the mesh; [`pacer`]: their jittered timers.
//! - [`jsonrpc`]: JSON-RPC envelopes (a leaf: shared by gateway, router, relay, testnet).
//! - [`gateway`] → [`router`]: the request path, a stack of layers (see [`router`]).
//! - [`serve`]: the HTTP server under gateway and admin (connection cap, header timeout).
//! - [`evidence`]: signed evidence of wrong answers (own reports and gossip), cordons.
//! - [`admin`]: the operator HTTP API. [`metrics`]: Prometheus.
#![warn(missing_docs)]

pub mod admin;
pub mod announce;
pub mod censorship;
pub mod clock;
pub mod config;
pub mod evidence;
pub mod gateway;
pub mod integrity;
pub mod jsonrpc;
pub mod launch;
pub mod mesh;
pub mod metrics;
pub mod p2p;
pub mod pacer;
pub mod peer_prober;
pub mod relay;
pub mod router;
pub mod serve;
pub mod store;
pub mod telemetry;
pub mod trust;
pub mod upstream;
