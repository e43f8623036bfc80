//! The daemon's configuration: one TOML file (`config.toml` in the home directory), every key
//! overridable by an `RPCMESH_*` environment variable and by a command-line flag.
//!
//! Precedence, lowest first: built-in defaults → `config.toml` → environment → flags.
//! Unknown keys are errors everywhere: a typo in the file names the key and its line; a typo in
//! an override names the variable or flag it came from.
//!
//! Environment names: `RPCMESH_` + the key path upper-cased, sections joined by a double
//! underscore: `p2p.mdns` ← `RPCMESH_P2P__MDNS`, `network_id` ← `RPCMESH_NETWORK_ID`.
//! Values are TOML (`true`, `5000`, `["a", "b"]`); a bare word is a string; for list keys a
//! comma-separated value is split into a list.

mod template;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use template::render_template;
/// TOML values, as overrides carry them.
pub use toml::Value as TomlValue;

/// File name of the configuration inside the home directory.
pub const CONFIG_FILE: &str = "config.toml";

/// Environment variables with the `RPCMESH_` prefix that are not configuration keys.
/// (`RPCMESH_GIT_COMMIT` is read at build time only, by cli/build.rs, and may stay exported.)
pub const NON_CONFIG_ENV: &[&str] =
    &["RPCMESH_HOME", "RPCMESH_ADMIN_URL", "RPCMESH_UPDATE_GOLDEN", "RPCMESH_ANVIL", "RPCMESH_GIT_COMMIT"];

/// The whole configuration. Paths are relative to the home directory unless absolute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Which mesh to join. Messages of other networks are dropped; testnets use their own id.
    pub network_id: String,
    /// The daemon's key.
    pub identity: IdentityConfig,
    /// libp2p networking.
    pub p2p: P2pConfig,
    /// The JSON-RPC gateway clients connect to.
    pub gateway: GatewayConfig,
    /// The operator's HTTP API.
    pub admin: AdminConfig,
    /// Chains served and the upstream nodes serving them (`[[chain]]` tables).
    #[serde(rename = "chain")]
    pub chains: Vec<ChainConfig>,
    /// Capacity announcements.
    pub announce: AnnounceConfig,
    /// Probing of own upstreams and of peers.
    pub prober: ProberConfig,
    /// Request routing and failover.
    pub routing: RoutingConfig,
    /// Verification of answers.
    pub integrity: IntegrityConfig,
    /// Censorship: providers' declared filters, watched addresses, canaries, broadcast writes.
    pub censorship: CensorshipConfig,
    /// The response cache.
    pub cache: CacheConfig,
    /// Where this operator is subject to law (ISO 3166-1 alpha-2 such as `DE`, or `US-CA`),
    /// announced so that peers broadcast transactions across jurisdictions. Optional.
    pub jurisdiction: Option<String>,
    /// Serving relays for peers.
    pub relay: RelayConfig,
    /// Who is trusted.
    pub trust: TrustConfig,
    /// Persistent state.
    pub store: StoreConfig,
    /// Logging.
    pub log: LogConfig,
    /// Export of the tracing spans to an OpenTelemetry collector.
    pub telemetry: TelemetryConfig,
    /// The async runtime.
    pub runtime: RuntimeConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            network_id: "rpcmesh-mainnet".into(),
            identity: IdentityConfig::default(),
            p2p: P2pConfig::default(),
            gateway: GatewayConfig::default(),
            admin: AdminConfig::default(),
            chains: Vec::new(),
            announce: AnnounceConfig::default(),
            prober: ProberConfig::default(),
            routing: RoutingConfig::default(),
            integrity: IntegrityConfig::default(),
            censorship: CensorshipConfig::default(),
            cache: CacheConfig::default(),
            jurisdiction: None,
            relay: RelayConfig::default(),
            trust: TrustConfig::default(),
            store: StoreConfig::default(),
            log: LogConfig::default(),
            telemetry: TelemetryConfig::default(),
            runtime: RuntimeConfig::default(),
        }
    }
}

/// `[identity]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// The ed25519 key file (mode 0600).
    pub key_file: PathBuf,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self { key_file: "identity.key".into() }
    }
}

/// `[p2p]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct P2pConfig {
    /// Multiaddrs to listen on (TCP and QUIC).
    pub listen: Vec<String>,
    /// Multiaddrs of peers to join through (with `/p2p/<PeerId>`).
    pub bootstrap: Vec<String>,
    /// Addresses to announce in addition to the listen addresses (e.g. a public IP behind NAT).
    pub external_addrs: Vec<String>,
    /// Discover peers on the local network by mDNS. Off by default: meshes are explicit.
    pub mdns: bool,
    /// Never dial or announce a non-loopback address (local testnets).
    pub loopback_only: bool,
    /// Most established connections in total.
    pub max_connections: u32,
    /// Most established connections to one peer.
    pub max_connections_per_peer: u32,
    /// Most incoming connections still in the handshake.
    pub max_pending_incoming: u32,
    /// Most incoming connections from one IP address still in the handshake (bootstrap and
    /// trusted addresses included: a reserved address may be a NAT shared with strangers).
    /// Local testnets raise it: all their daemons share 127.0.0.1.
    pub max_pending_per_ip: u32,
    /// Close a connection idle for this long, seconds. Long: mesh links are meant to persist.
    pub idle_connection_timeout_secs: u64,
    /// Upper bound of the reconnect backoff towards bootstrap peers, milliseconds.
    pub bootstrap_backoff_max_ms: u64,
    /// Most established incoming connections from peers that are neither bootstrap peers nor
    /// trusted (at most `max_connections`; 0 admits only those). Bootstrap and trusted peers are
    /// admitted beyond it, and beyond `max_connections` by closing a stranger's connection, so a
    /// flood of strangers cannot crowd them out.
    pub max_incoming: u32,
}

impl Default for P2pConfig {
    fn default() -> Self {
        Self {
            listen: vec!["/ip4/0.0.0.0/tcp/4001".into(), "/ip4/0.0.0.0/udp/4001/quic-v1".into()],
            bootstrap: Vec::new(),
            external_addrs: Vec::new(),
            mdns: false,
            loopback_only: false,
            max_connections: 256,
            max_connections_per_peer: 2,
            max_pending_incoming: 64,
            max_pending_per_ip: crate::p2p::MAX_PENDING_PER_IP as u32,
            idle_connection_timeout_secs: 300,
            bootstrap_backoff_max_ms: 60_000,
            // Three quarters of max_connections: the rest is for the connections this node
            // dials (bootstrap, discovery) without evicting anyone.
            max_incoming: 192,
        }
    }
}

/// `[gateway]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// HTTP and WebSocket listen address.
    pub addr: SocketAddr,
    /// Largest request body accepted, bytes (larger: HTTP 413 and JSON-RPC -32600).
    pub max_body_bytes: usize,
    /// Most requests in one batch.
    pub max_batch_len: usize,
    /// Chain served on `/` (0: the first `[[chain]]`).
    pub default_chain: u64,
    /// Allowed CORS origins; `["*"]` allows any, empty disables CORS headers.
    pub cors_origins: Vec<String>,
    /// Most client requests in flight at once, and most open connections (WebSocket sessions
    /// included); beyond it the gateway answers HTTP 503 (JSON-RPC -32005 for a request)
    /// instead of queueing.
    pub max_connections: usize,
    /// Most open connections (WebSocket sessions included) from one client address (IPv6: one
    /// /64), so one host cannot hold all of `max_connections`; 0 turns it off (e.g. behind a
    /// reverse proxy that connects from one address and limits clients itself).
    pub max_connections_per_ip: usize,
    /// Time a client has to send a request's headers, milliseconds; also how long an idle
    /// keep-alive connection is kept. Slow or silent clients must not hold connections.
    pub header_timeout_ms: u64,
    /// Time a client has to send a request's whole body once its headers arrived,
    /// milliseconds (HTTP 408 after it): at the default body limit this asks at least
    /// ~500 KB/s of a client sending the largest body.
    pub body_timeout_ms: u64,
    /// Methods clients may call (`*` wildcards); see `deny_methods`.
    pub allow_methods: Vec<String>,
    /// Methods refused even when allowed (deny wins): node admin, dev, debugging and
    /// unlocked-account methods by default. Refused calls get JSON-RPC -32601.
    pub deny_methods: Vec<String>,
    /// Refuse clients without a valid API key (HTTP 401). Needs at least one `[[gateway.keys]]`.
    /// A presented key that matches none is refused whatever this says.
    pub require_key: bool,
    /// Compute units per second each client address may spend without an API key (a plain read
    /// costs 1; see `method_costs`); 0 turns the per-address quota off. IPv6 clients are counted
    /// per /64 (one host's usual share).
    pub per_ip_requests_per_sec: u32,
    /// Compute units an address may spend at once above its rate (bucket size); 0 means one
    /// second's worth (`per_ip_requests_per_sec`).
    pub per_ip_burst: u32,
    /// API keys clients may present (`Authorization: Bearer <key>` or `/k/<key>/...`).
    pub keys: Vec<ApiKeyConfig>,
    /// Compute units a call of a method costs against the quotas (`*` wildcards), over the
    /// built-in table (`gateway::cost::DEFAULT_METHOD_COSTS`: plain reads 1, eth_call 5,
    /// eth_getLogs 10, debug_*/trace_* 20...). A batch costs the sum of its items.
    pub method_costs: BTreeMap<String, u32>,
    /// Bytes all request bodies being received or served may hold at once (at least
    /// `max_body_bytes`); a request beyond it gets HTTP 503 and JSON-RPC -32005 at once. The
    /// timeouts bound how long slow clients hold body memory; this bounds how much.
    pub max_buffered_body_bytes: usize,
}

/// One `[[gateway.keys]]`: a client's API key, stored as the SHA-256 of the secret so that the
/// config file (often shared or committed) never holds the secret. `rpcmesh gateway key new`
/// makes one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Who holds the key: shown in metrics and logs (letters, digits, `_`, `-`, `.`).
    pub name: String,
    /// Hex SHA-256 of the secret key (64 hex digits).
    pub key_sha256: String,
    /// Compute units per second this key may spend (a plain read costs 1; see
    /// `gateway.method_costs`); absent: no quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_sec: Option<u32>,
    /// Compute units this key may spend at once above its rate; absent: one second's worth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Methods this key may call (`*` wildcards), within what the gateway allows; absent or
    /// empty: whatever the gateway allows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8545)),
            max_body_bytes: 5 * 1024 * 1024,
            max_batch_len: 1000,
            default_chain: 0,
            cors_origins: Vec::new(),
            max_connections: 4096,
            max_connections_per_ip: 1024,
            header_timeout_ms: 10_000,
            body_timeout_ms: 10_000,
            allow_methods: crate::router::policy::DEFAULT_ALLOW.iter().map(|m| m.to_string()).collect(),
            deny_methods: crate::router::policy::DEFAULT_DENY.iter().map(|m| m.to_string()).collect(),
            require_key: false,
            per_ip_requests_per_sec: 0,
            per_ip_burst: 0,
            keys: Vec::new(),
            method_costs: BTreeMap::new(),
            // 51 maximal bodies at once: far more than honest clients send together, and a
            // bounded share of memory whatever slow clients do.
            max_buffered_body_bytes: 256 * 1024 * 1024,
        }
    }
}

/// `[admin]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Listen address of `/status`, `/peers`, `/metrics`... Keep it on loopback.
    pub addr: SocketAddr,
    /// The bearer token file (mode 0600; written by `rpcmesh init`, created at start-up if
    /// missing). Every mutating endpoint needs the token; beyond loopback every endpoint but
    /// `/health` and `/metrics` does.
    pub token_file: PathBuf,
    /// Host names (with or without port) clients may reach the API by besides its address,
    /// `localhost` and loopback addresses. Other `Host` headers are refused (DNS rebinding).
    pub allowed_hosts: Vec<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8546)),
            token_file: "admin.token".into(),
            allowed_hosts: Vec::new(),
        }
    }
}

/// One `[[chain]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// EIP-155 chain id; upstreams must report it from `eth_chainId`.
    pub id: u64,
    /// Gateway path aliases, e.g. `["eth"]` serves the chain on `/eth`.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The provider's own nodes for this chain.
    #[serde(default)]
    pub upstreams: Vec<UpstreamConfig>,
    /// Requests per second offered to the mesh.
    #[serde(default = "defaults::max_requests_per_sec")]
    pub max_requests_per_sec: u32,
    /// Relays served at once before answering "busy".
    #[serde(default = "defaults::max_concurrent_relays")]
    pub max_concurrent_relays: u32,
    /// Whether the upstreams keep full history.
    #[serde(default)]
    pub archive: bool,
    /// JSON-RPC namespaces served.
    #[serde(default = "defaults::method_groups")]
    pub method_groups: Vec<String>,
    /// Disclosures of filtering or alteration, announced to the mesh verbatim.
    #[serde(default)]
    pub policies: Vec<String>,
    /// Methods clients may call on this chain, replacing `gateway.allow_methods` for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_methods: Option<Vec<String>>,
    /// Methods refused on this chain, replacing `gateway.deny_methods` for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_methods: Option<Vec<String>>,
}

impl ChainConfig {
    /// A chain with one HTTP upstream and default capacities.
    pub fn with_upstream(id: u64, http: String) -> Self {
        Self {
            id,
            aliases: Vec::new(),
            upstreams: vec![UpstreamConfig { http, ws: None }],
            max_requests_per_sec: defaults::max_requests_per_sec(),
            max_concurrent_relays: defaults::max_concurrent_relays(),
            archive: false,
            method_groups: defaults::method_groups(),
            policies: Vec::new(),
            allow_methods: None,
            deny_methods: None,
        }
    }
}

/// One upstream node: `{ http = "http://127.0.0.1:8545", ws = "ws://127.0.0.1:8546" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// JSON-RPC over HTTP.
    pub http: String,
    /// JSON-RPC over WebSocket (subscriptions, newHeads), if the node offers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ws: Option<String>,
}

mod defaults {
    pub fn max_requests_per_sec() -> u32 {
        500
    }
    pub fn max_concurrent_relays() -> u32 {
        64
    }
    pub fn method_groups() -> Vec<String> {
        ["eth", "net", "web3"].map(String::from).to_vec()
    }
}

/// `[announce]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnnounceConfig {
    /// Heartbeat period, milliseconds; material changes are announced at once.
    pub heartbeat_ms: u64,
    /// An announcement expires after this many heartbeats.
    pub expiry_heartbeats: u32,
    /// Heartbeat announcements the whole mesh may send per second: in a mesh of more than
    /// `heartbeat_ms / 1000 × mesh_rate_per_sec` providers the heartbeat (and its expiry, and
    /// the head bucket) stretches to `providers / mesh_rate_per_sec` seconds, so the messages
    /// every daemon verifies stay flat as the mesh grows (docs/architecture.md, section 5.7).
    pub mesh_rate_per_sec: f64,
}

impl Default for AnnounceConfig {
    fn default() -> Self {
        Self { heartbeat_ms: 5_000, expiry_heartbeats: 3, mesh_rate_per_sec: DEFAULT_MESH_ANNOUNCEMENTS_PER_SEC }
    }
}

/// Default `announce.mesh_rate_per_sec`: up to 25 providers keep the 5 s heartbeat.
pub const DEFAULT_MESH_ANNOUNCEMENTS_PER_SEC: f64 = 5.0;
/// Default `prober.mesh_rounds_per_sec`: up to 20 providers keep the 10 s attestation period.
pub const DEFAULT_MESH_ROUNDS_PER_SEC: f64 = 2.0;

/// `[prober]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProberConfig {
    /// Own-upstream probe period, milliseconds.
    pub interval_ms: u64,
    /// Timeout of one probe, milliseconds.
    pub timeout_ms: u64,
    /// Peer probe period, milliseconds.
    pub peer_interval_ms: u64,
    /// Peers probed per chain per period (bounds probe load as the mesh grows).
    pub peer_sample: usize,
    /// Window summarised by one attestation, milliseconds.
    pub window_ms: u64,
    /// Attestation period, milliseconds.
    pub attest_interval_ms: u64,
    /// Attestation rounds the whole mesh may sign per second: in a larger mesh the period
    /// stretches to `providers / mesh_rounds_per_sec` seconds (as `announce.mesh_rate_per_sec`).
    pub mesh_rounds_per_sec: f64,
}

impl Default for ProberConfig {
    fn default() -> Self {
        Self {
            interval_ms: 1_000,
            timeout_ms: 2_000,
            peer_interval_ms: 2_000,
            peer_sample: 3,
            window_ms: 30_000,
            attest_interval_ms: 10_000,
            mesh_rounds_per_sec: DEFAULT_MESH_ROUNDS_PER_SEC,
        }
    }
}

/// `[routing]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// Route to trusted peers when the own upstreams cannot serve. Per request: header
    /// `x-rpcmesh-failover: on|off`.
    pub failover: bool,
    /// Most blocks behind the median head of trusted providers a candidate may be.
    pub max_head_lag_blocks: u64,
    /// Budget of one client request, retries and hedges included, milliseconds.
    pub request_timeout_ms: u64,
    /// Most providers tried per client request (asking a `busy` provider again is bounded by
    /// the deadline instead).
    pub max_attempts: u32,
    /// Send a second copy of a read to the next provider when the first has not answered
    /// within 3 times its latency estimate (at least 25 ms, at most 1 s); at most about one
    /// request in ten is hedged. Writes are never hedged.
    pub hedge: bool,
    /// Consecutive failures before a provider is ejected.
    pub eject_after_failures: u32,
    /// How long an ejected provider sits out before a probation request, milliseconds.
    pub eject_ms: u64,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            failover: true,
            max_head_lag_blocks: 3,
            request_timeout_ms: 10_000,
            max_attempts: 4,
            hedge: true,
            eject_after_failures: 3,
            eject_ms: 5_000,
        }
    }
}

/// `[integrity]`: verification of answers against a trusted chain (see docs/client-guide.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntegrityConfig {
    /// `off`, `sample` or `strict`. Per request: header `x-rpcmesh-verify`.
    pub mode: crate::router::VerifyMode,
    /// Distinct operators that must agree on a block hash before it is trusted (default: a
    /// majority of the eligible operators, at least 2 when 2 exist).
    pub quorum: Option<usize>,
    /// Share of answers fully verified in `sample` mode, per mille (all answers of a provider
    /// that failed a check in the last hour are).
    pub sample_permille: u16,
    /// Most blocks of one `eth_getLogs` range verified; a wider range passes unverified in
    /// `sample` mode and is refused in `strict` mode.
    pub max_log_blocks: u64,
    /// How long a trusted head is reused before asking the quorum again, milliseconds.
    pub head_fresh_ms: u64,
    /// Trusted headers kept in memory per chain.
    pub trusted_headers: usize,
    /// How far `eth_blockNumber` may run ahead of the highest head the quorum reported, blocks.
    pub head_slack_blocks: u64,
    /// How far `eth_blockNumber` may lag the trusted head, blocks.
    pub max_lag_blocks: u64,
    /// How long a provider proven to have answered wrongly stays out of routing on that chain,
    /// seconds, unless an operator clears it first (`rpcmesh evidence clear`). Default 24 h: long
    /// enough that its operator must notice, short enough that a fixed node comes back unaided.
    pub cordon_secs: u64,
}

impl Default for IntegrityConfig {
    fn default() -> Self {
        Self {
            mode: crate::router::VerifyMode::Sample,
            quorum: None,
            sample_permille: 50,
            max_log_blocks: 64,
            head_fresh_ms: 1_000,
            trusted_headers: 2_048,
            head_slack_blocks: 8,
            max_lag_blocks: 16,
            cordon_secs: 24 * 3600,
        }
    }
}

/// `[censorship]`: no provider decides what clients may read or send (see
/// docs/operator-guide.md, "Censorship").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CensorshipConfig {
    /// Policy patterns of providers not to route to, matched against every policy a provider
    /// announces for the chain (own `[[chain]] policies` included): `filters:*`,
    /// `geo:blocks:*`, an exact policy. `*` matches any rest. Per request: header
    /// `x-rpcmesh-avoid`.
    pub avoid: Vec<String>,
    /// Addresses (0x…) whose reads and transactions are always verified, whatever the integrity
    /// mode, and that canaries ask every provider about.
    pub watch: Vec<String>,
    /// Period of canary rounds, seconds (jittered by ±20 %); 0 turns canaries off. Each round
    /// costs at most one proven read per watched address and kind, plus one dry transaction, per
    /// provider.
    pub canary_interval_secs: u64,
    /// Distinct operators `eth_sendRawTransaction` is sent to (different jurisdictions first);
    /// the first acceptance answers the client.
    pub broadcast_operators: u32,
    /// After a transaction was accepted, ask one more operator for it after this long and send
    /// it there if it does not know it, milliseconds; 0 turns the confirmation off.
    pub confirm_ms: u64,
    /// Distinct filtered subjects (addresses, methods) proven against one provider on a chain
    /// before it is no longer merely labelled but cordoned like a liar: a provider whose every
    /// wrong answer is "empty" must not escape cordons by that alone.
    pub max_filtered_subjects: usize,
}

impl Default for CensorshipConfig {
    fn default() -> Self {
        Self {
            avoid: Vec::new(),
            watch: Vec::new(),
            canary_interval_secs: 300,
            broadcast_operators: 2,
            confirm_ms: 3_000,
            max_filtered_subjects: 64,
        }
    }
}

/// `[cache]`: answers reused while the chain says they hold (see `router::cache`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Off by default: a cache changes what an operator measures of its upstreams (their load
    /// drops, repeated questions no longer reach them), so turning it on is a decision.
    pub enabled: bool,
    /// Memory for cached answers, MiB.
    pub max_mib: usize,
    /// Blocks below the head after which a block number's answers are kept as settled history
    /// (Ethereum finalizes after 2 epochs, 64 blocks). A deeper reorganisation, when seen, still
    /// drops them.
    pub final_depth_blocks: u64,
    /// Longest an answer about the head (`latest`, `eth_blockNumber`, receipts) is reused,
    /// milliseconds; it is never reused past the head it was served at.
    pub head_ttl_ms: u64,
    /// Disk for a second tier in the daemon's store, MiB; 0 (the default): memory only. Answers
    /// that hold past the head (about a block hash, or settled history) are also written there,
    /// read on a memory miss and kept across restarts; the oldest go first past this size.
    pub sled_mib: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { enabled: false, max_mib: 64, final_depth_blocks: 64, head_ttl_ms: 250, sled_mib: 0 }
    }
}

/// `[relay]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// Serve relays for any valid peer, not only trusted ones.
    pub open: bool,
    /// Largest relayed request or response body, bytes.
    pub max_body_bytes: usize,
    /// Relay over long-lived per-peer streams (many relays on one stream, no event-loop hop);
    /// false: one request-response exchange per relay. Peers without streams are always served
    /// and asked over request-response.
    pub streams: bool,
    /// Methods peers may have this node's upstreams serve (`*` wildcards); see `deny_methods`.
    /// Separate from the gateway's lists: what strangers on the mesh may ask of the operator's
    /// node is decided by the operator, not by the requesting gateway.
    pub allow_methods: Vec<String>,
    /// Methods never relayed for peers (deny wins), unless a `[[relay.grants]]` entry opts a
    /// peer in. The default refuses the node-admin, dev-chain, debugging and signing set.
    pub deny_methods: Vec<String>,
    /// Per-peer opt-ins to methods the lists above refuse (`[[relay.grants]]`).
    pub grants: Vec<RelayGrant>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            open: false,
            max_body_bytes: 32 * 1024 * 1024,
            streams: true,
            allow_methods: crate::router::policy::DEFAULT_ALLOW.iter().map(|m| m.to_string()).collect(),
            deny_methods: crate::router::policy::DEFAULT_DENY.iter().map(|m| m.to_string()).collect(),
            grants: Vec::new(),
        }
    }
}

/// One `[[relay.grants]]`: a peer allowed methods beyond `relay.allow_methods`/`deny_methods`
/// (e.g. the operator's own test rig driving a dev chain through the mesh).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayGrant {
    /// The peer's PeerId (`12D3KooW...`) or public key (hex).
    pub peer: String,
    /// Methods this peer may have relayed in addition (`*` wildcards), deny lists ignored.
    pub allow_methods: Vec<String>,
}

/// How peers earn trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrustMode {
    /// Explicit peers and holders of a membership certificate from a listed federation.
    Federated,
    /// Every valid peer, ranked by observed reputation.
    Open,
}

/// `[trust]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustConfig {
    /// `federated` or `open`.
    pub mode: TrustMode,
    /// PeerIds trusted explicitly.
    pub peers: Vec<String>,
    /// Federation root public keys (hex) whose certificates make a peer trusted.
    pub federations: Vec<String>,
    /// This node's own membership certificate file, presented in its announcements ("" for none).
    pub membership_cert: PathBuf,
}

impl Default for TrustConfig {
    fn default() -> Self {
        Self { mode: TrustMode::Federated, peers: Vec::new(), federations: Vec::new(), membership_cert: PathBuf::new() }
    }
}

/// `[store]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Directory of the database.
    pub path: PathBuf,
    /// Attestations older than this are pruned, seconds.
    pub attestation_ttl_secs: u64,
    /// Most attestations kept.
    pub max_attestations: usize,
    /// Most evidence records kept.
    pub max_evidence: usize,
    /// Memory for the database's page cache, MiB. The store is small (the view, the latest
    /// attestations, the peer book); a bigger cache only holds history nobody reads hot.
    pub cache_mib: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: "store".into(),
            attestation_ttl_secs: 3_600,
            max_attestations: 20_000,
            max_evidence: 10_000,
            cache_mib: 8,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` filter, e.g. `info` or `info,rpcmesh_node::p2p=debug` (`RUST_LOG` wins if set).
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Text }
    }
}

/// `[telemetry]`: OpenTelemetry export of the daemon's tracing spans (a `request` span per
/// client request, a `relay` span per relay served for a peer, joined across daemons).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// OTLP/HTTP (protobuf) traces URL of the collector, e.g. `http://127.0.0.1:4318/v1/traces`
    /// (a URL with no path gets `/v1/traces`); empty (the default): no export.
    pub otlp_endpoint: String,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// Share of traces recorded and exported, 0.0 to 1.0. A relay served for a peer follows the
    /// requester's decision, so a trace is whole or absent.
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self { otlp_endpoint: String::new(), service_name: "rpcmesh".into(), sample_ratio: 1.0 }
    }
}

/// `[runtime]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Async worker threads; 0 = half the CPU cores, at least one (the daemon shares its
    /// machine with the chain node it fronts; `TOKIO_WORKER_THREADS` overrides). A request and
    /// its upstream call are often handled on different workers, and every hand-over is a
    /// cross-thread wake-up: one worker answers a single client fastest, more workers carry
    /// more concurrent load.
    pub worker_threads: usize,
}

/// Where an override came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverrideSource {
    /// An environment variable.
    Env(String),
    /// A command-line flag.
    Flag(String),
}

impl std::fmt::Display for OverrideSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Env(name) => write!(f, "environment variable {name}"),
            Self::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// One `key = value` applied over the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// Dotted key path, e.g. `p2p.mdns`.
    pub key: String,
    /// The value, already typed.
    pub value: toml::Value,
    /// Where it came from.
    pub source: OverrideSource,
}

impl Override {
    /// An override from a flag with a raw text value (parsed as TOML, else taken as a string).
    pub fn flag(flag: impl Into<String>, key: impl Into<String>, raw: &str) -> Self {
        Self { key: key.into(), value: parse_value(raw), source: OverrideSource::Flag(flag.into()) }
    }

    /// An override from a flag with an already-typed value.
    pub fn flag_value(flag: impl Into<String>, key: impl Into<String>, value: toml::Value) -> Self {
        Self { key: key.into(), value, source: OverrideSource::Flag(flag.into()) }
    }

    /// Parses `--set KEY=VALUE`.
    pub fn parse_set(arg: &str) -> Result<Self, ConfigError> {
        let (key, raw) = arg.split_once('=').ok_or_else(|| ConfigError::BadOverride {
            origin: "flag --set".into(),
            reason: format!("{arg:?} is not KEY=VALUE"),
        })?;
        Ok(Self::flag(format!("--set {key}"), key.trim(), raw.trim()))
    }
}

/// Parses an override value: TOML if it parses as a TOML value, else the plain string.
pub fn parse_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.into()),
    }
}

/// The overrides given by `RPCMESH_*` variables in `vars`. Variables in [`NON_CONFIG_ENV`] and
/// those starting with `RPCMESH_TEST_` are not config keys and are skipped.
pub fn env_overrides(vars: impl IntoIterator<Item = (String, String)>) -> Vec<Override> {
    let mut out: Vec<Override> = vars
        .into_iter()
        .filter(|(k, _)| {
            k.starts_with("RPCMESH_") && !NON_CONFIG_ENV.contains(&k.as_str()) && !k.starts_with("RPCMESH_TEST_")
        })
        .map(|(name, raw)| {
            let key = name["RPCMESH_".len()..].to_ascii_lowercase().replace("__", ".");
            Override { key, value: parse_value(&raw), source: OverrideSource::Env(name) }
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has an unknown or mistyped key.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// The parser's message, naming the line and key.
        message: String,
    },
    /// An override names an unknown key or has a value of the wrong type.
    #[error("{origin}: {reason}")]
    BadOverride {
        /// The flag or variable.
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// The values parse but contradict each other.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl ConfigError {
    /// Whether the error is in what the user typed on this invocation (flags, environment),
    /// rather than in the file: the CLI exits 2 for these.
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::BadOverride { .. })
    }
}

impl Config {
    /// The gateway's method policy: gateway-wide rules, and a chain's own where it sets any.
    pub fn method_policy(&self) -> crate::router::MethodPolicy {
        use crate::router::MethodRules;
        let g = &self.gateway;
        let chains = self
            .chains
            .iter()
            .filter(|c| c.allow_methods.is_some() || c.deny_methods.is_some())
            .map(|c| {
                let allow = c.allow_methods.as_ref().unwrap_or(&g.allow_methods);
                let deny = c.deny_methods.as_ref().unwrap_or(&g.deny_methods);
                (c.id, MethodRules::new(allow, deny))
            })
            .collect();
        crate::router::MethodPolicy::new(MethodRules::new(&g.allow_methods, &g.deny_methods), chains)
    }

    /// Parses the text of a config file; errors name the line and the key.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Config =
            toml::from_str(text).map_err(|e| ConfigError::File { path: path.to_path_buf(), message: e.to_string() })?;
        Ok(config)
    }

    /// Reads `path` (defaults if it does not exist and `must_exist` is false), applies
    /// `overrides` in order, and checks the result.
    pub fn load(path: &Path, must_exist: bool, overrides: &[Override]) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) if t.trim().is_empty() => {
                return Err(ConfigError::Invalid(format!(
                    "{} is empty; write a configuration with `rpcmesh init --force` (new identity) or copy one, \
                     or delete the file to run on the built-in defaults",
                    path.display()
                )));
            }
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => String::new(),
            Err(source) => return Err(ConfigError::Read { path: path.to_path_buf(), source }),
        };
        let config = Self::from_toml(&text, path)?;
        let config = config.with_overrides(overrides)?;
        config.check()?;
        Ok(config)
    }

    /// Applies overrides one by one so an error names the one at fault.
    pub fn with_overrides(self, overrides: &[Override]) -> Result<Self, ConfigError> {
        if overrides.is_empty() {
            return Ok(self);
        }
        let mut table = toml::Table::try_from(&self).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let reference = toml::Table::try_from(Config::default()).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let mut current = self;
        for o in overrides {
            let bad = |reason: String| ConfigError::BadOverride { origin: o.source.to_string(), reason };
            let value = coerce_for_key(&reference, &o.key, o.value.clone());
            set_path(&mut table, &o.key, value).map_err(bad)?;
            current = toml::Value::Table(table.clone())
                .try_into::<Config>()
                .map_err(|e| bad(format!("key {:?}: {}", o.key, e.message().trim())))?;
        }
        Ok(current)
    }

    /// Consistency checks the types cannot express.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |s: String| Err(ConfigError::Invalid(s));
        if self.network_id.is_empty() || self.network_id.len() > 64 {
            return invalid(format!("network_id {:?} must be 1..=64 bytes", self.network_id));
        }
        let mut ids = std::collections::HashSet::new();
        let mut aliases: BTreeMap<&str, u64> = BTreeMap::new();
        for c in &self.chains {
            if c.upstreams.is_empty() {
                return invalid(format!(
                    "chain {} has no upstreams: add upstreams = [{{ http = \"...\" }}] to its [[chain]] table or pass \
                     --upstream {}=URL",
                    c.id, c.id
                ));
            }
            if !ids.insert(c.id) {
                return invalid(format!("chain {} is configured twice; merge its [[chain]] tables", c.id));
            }
            for a in &c.aliases {
                if a.is_empty()
                    || a.parse::<u64>().is_ok()
                    || !a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return invalid(format!(
                        "chain {} alias {a:?} must be letters, digits, - or _ and not a number",
                        c.id
                    ));
                }
                if let Some(other) = aliases.insert(a, c.id) {
                    return invalid(format!("alias {a:?} names both chain {other} and chain {}", c.id));
                }
            }
            for u in &c.upstreams {
                if !(u.http.starts_with("http://") || u.http.starts_with("https://")) {
                    return invalid(format!(
                        "chain {} upstream http {:?} must start with http:// or https://",
                        c.id, u.http
                    ));
                }
                if let Some(ws) = &u.ws
                    && !(ws.starts_with("ws://") || ws.starts_with("wss://"))
                {
                    return invalid(format!("chain {} upstream ws {ws:?} must start with ws:// or wss://", c.id));
                }
            }
        }
        if self.gateway.default_chain != 0 && !ids.contains(&self.gateway.default_chain) {
            return invalid(format!(
                "gateway.default_chain {} is not a configured [[chain]]",
                self.gateway.default_chain
            ));
        }
        for p in &self.trust.peers {
            rpcmesh_protocol::PublicKey::parse(p)
                .map_err(|e| ConfigError::Invalid(format!("trust.peers entry {p:?}: {e}")))?;
        }
        for f in &self.trust.federations {
            rpcmesh_protocol::PublicKey::parse(f)
                .map_err(|e| ConfigError::Invalid(format!("trust.federations entry {f:?}: {e}")))?;
        }
        if self.announce.heartbeat_ms == 0 || self.announce.expiry_heartbeats == 0 {
            return invalid("announce.heartbeat_ms and announce.expiry_heartbeats must be positive".into());
        }
        if self.p2p.max_pending_per_ip == 0 {
            return invalid("p2p.max_pending_per_ip must be at least 1 (0 refuses every incoming connection)".into());
        }
        if self.prober.interval_ms == 0 || self.prober.peer_interval_ms == 0 {
            return invalid("prober intervals must be positive".into());
        }
        for (key, rate) in [
            ("announce.mesh_rate_per_sec", self.announce.mesh_rate_per_sec),
            ("prober.mesh_rounds_per_sec", self.prober.mesh_rounds_per_sec),
        ] {
            if !(rate.is_finite() && rate > 0.0) {
                return invalid(format!("{key} must be a positive number of messages per second, not {rate}"));
            }
        }
        let patterns = self
            .gateway
            .allow_methods
            .iter()
            .chain(&self.gateway.deny_methods)
            .chain(self.chains.iter().flat_map(|c| c.allow_methods.iter().chain(&c.deny_methods).flatten()))
            .map(|p| (p, "gateway or [[chain]] allow_methods/deny_methods"))
            .chain(
                self.relay
                    .allow_methods
                    .iter()
                    .chain(&self.relay.deny_methods)
                    .map(|p| (p, "relay.allow_methods/deny_methods")),
            )
            .chain(
                self.relay.grants.iter().flat_map(|g| &g.allow_methods).map(|p| (p, "[[relay.grants]] allow_methods")),
            )
            .chain(
                self.gateway.keys.iter().flat_map(|k| &k.allow_methods).map(|p| (p, "[[gateway.keys]] allow_methods")),
            );
        for (p, key) in patterns {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'*') {
                return invalid(format!("method pattern {p:?} ({key}) must be letters, digits, _ and * wildcards"));
            }
        }
        for g in &self.relay.grants {
            rpcmesh_protocol::PublicKey::parse(&g.peer)
                .map_err(|e| ConfigError::Invalid(format!("[[relay.grants]] peer {:?}: {e}", g.peer)))?;
        }
        if self.gateway.max_connections == 0 {
            return invalid("gateway.max_connections must be at least 1 (0 would refuse every client)".into());
        }
        if self.gateway.header_timeout_ms == 0 || self.gateway.body_timeout_ms == 0 {
            return invalid("gateway.header_timeout_ms and gateway.body_timeout_ms must be positive".into());
        }
        self.validate_keys()?;
        self.validate_method_costs()?;
        if self.gateway.max_buffered_body_bytes < self.gateway.max_body_bytes {
            return invalid(format!(
                "gateway.max_buffered_body_bytes ({}) must be at least gateway.max_body_bytes ({}), or no body of the \
                 largest allowed size could ever be received",
                self.gateway.max_buffered_body_bytes, self.gateway.max_body_bytes
            ));
        }
        if self.routing.max_attempts == 0 {
            return invalid("routing.max_attempts must be at least 1".into());
        }
        self.validate_censorship()?;
        let t = &self.telemetry;
        if !(0.0..=1.0).contains(&t.sample_ratio) {
            return invalid(format!("telemetry.sample_ratio must be 0.0 to 1.0, not {}", t.sample_ratio));
        }
        if !t.otlp_endpoint.is_empty()
            && !t.otlp_endpoint.starts_with("http://")
            && !t.otlp_endpoint.starts_with("https://")
        {
            return invalid(format!(
                "telemetry.otlp_endpoint {:?} must be an http:// URL of an OTLP/HTTP collector (or empty: no export)",
                t.otlp_endpoint
            ));
        }
        if t.service_name.is_empty() {
            return invalid("telemetry.service_name must not be empty".into());
        }
        if self.integrity.cordon_secs == 0 {
            return invalid(
                "integrity.cordon_secs must be at least 1 (clear cordons with `rpcmesh evidence clear`)".into(),
            );
        }
        Ok(())
    }

    fn validate_censorship(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let c = &self.censorship;
        for w in &c.watch {
            if crate::censorship::parse_address(w).is_none() {
                return invalid(format!("censorship.watch: {w:?} is not a 0x-prefixed 20-byte hex address"));
            }
        }
        for a in &c.avoid {
            if a.is_empty() || a.len() > 256 || a.chars().any(char::is_whitespace) {
                return invalid(format!("censorship.avoid: {a:?} is not a policy pattern (e.g. \"filters:*\")"));
            }
        }
        if c.broadcast_operators == 0 {
            return invalid("censorship.broadcast_operators must be at least 1".into());
        }
        if c.max_filtered_subjects == 0 {
            return invalid("censorship.max_filtered_subjects must be at least 1".into());
        }
        if let Some(j) = &self.jurisdiction
            && (j.is_empty()
                || j.len() > rpcmesh_protocol::validate::MAX_JURISDICTION_LEN
                || !j.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return invalid(format!("jurisdiction {j:?} must be a region code such as \"DE\" or \"US-CA\""));
        }
        for ch in &self.chains {
            let most = rpcmesh_protocol::validate::Limits::default().max_policies;
            if ch.policies.len() > most {
                return invalid(format!(
                    "chain {}: {} policies, at most {most} (peers would reject the announcement)",
                    ch.id,
                    ch.policies.len()
                ));
            }
            for p in &ch.policies {
                if p.is_empty() || p.len() > 256 {
                    return invalid(format!("chain {}: policy {p:?} must be 1..=256 bytes", ch.id));
                }
            }
        }
        Ok(())
    }

    fn validate_method_costs(&self) -> Result<(), ConfigError> {
        use crate::gateway::cost::MAX_METHOD_COST;
        for (pattern, cost) in &self.gateway.method_costs {
            if pattern.is_empty() || !pattern.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'*') {
                return Err(ConfigError::Invalid(format!(
                    "gateway.method_costs: {pattern:?} must be a method name or pattern (letters, digits, _ and * \
                     wildcards)"
                )));
            }
            if !(1..=MAX_METHOD_COST).contains(cost) {
                return Err(ConfigError::Invalid(format!(
                    "gateway.method_costs.{pattern} = {cost}: a cost must be 1..={MAX_METHOD_COST} compute units \
                     (every call is some work; refuse a method with gateway.deny_methods instead)"
                )));
            }
        }
        Ok(())
    }

    fn validate_keys(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let g = &self.gateway;
        if g.require_key && g.keys.is_empty() {
            return invalid(
                "gateway.require_key = true but no [[gateway.keys]] is configured: every client would be refused \
                 (add a key with `rpcmesh gateway key new --name NAME`)"
                    .into(),
            );
        }
        let mut names = std::collections::HashSet::new();
        let mut digests = std::collections::HashSet::new();
        for k in &g.keys {
            if k.name.is_empty() || !k.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)) {
                return invalid(format!("[[gateway.keys]] name {:?} must be letters, digits, _, - and .", k.name));
            }
            if !names.insert(k.name.as_str()) {
                return invalid(format!("[[gateway.keys]] name {:?} is used twice", k.name));
            }
            if k.key_sha256.len() != 64 || !k.key_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return invalid(format!(
                    "[[gateway.keys]] {:?}: key_sha256 must be 64 hex digits (the SHA-256 of the key, as printed by \
                     `rpcmesh gateway key new`), not the key itself",
                    k.name
                ));
            }
            if !digests.insert(k.key_sha256.to_ascii_lowercase()) {
                return invalid(format!("[[gateway.keys]] {:?}: key_sha256 is the same as another key's", k.name));
            }
            if k.requests_per_sec == Some(0) || k.burst == Some(0) {
                return invalid(format!(
                    "[[gateway.keys]] {:?}: requests_per_sec and burst must be at least 1 (remove them for no quota)",
                    k.name
                ));
            }
            if k.burst.is_some() && k.requests_per_sec.is_none() {
                return invalid(format!("[[gateway.keys]] {:?}: burst needs requests_per_sec", k.name));
            }
        }
        Ok(())
    }

    /// `path` resolved against `home` when relative.
    pub fn resolve(home: &Path, path: &Path) -> PathBuf {
        if path.is_absolute() { path.to_path_buf() } else { home.join(path) }
    }
}

/// Splits `"a,b"` into a list when the key is a list in the defaults.
fn coerce_for_key(reference: &toml::Table, key: &str, value: toml::Value) -> toml::Value {
    let mut node = Some(reference);
    let mut found = None;
    for (i, part) in key.split('.').enumerate() {
        let Some(t) = node else { break };
        match t.get(part) {
            Some(toml::Value::Table(inner)) => node = Some(inner),
            Some(v) if i == key.split('.').count() - 1 => found = Some(v),
            _ => break,
        }
    }
    match (found, value) {
        (Some(toml::Value::Array(_)), toml::Value::String(s)) => toml::Value::Array(
            s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(|p| toml::Value::String(p.into())).collect(),
        ),
        (
            Some(toml::Value::String(_)),
            v @ (toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_)),
        ) => toml::Value::String(v.to_string()),
        (_, v) => v,
    }
}

fn set_path(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), String> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("{key:?} is not a key path like p2p.mdns"));
    }
    if parts[0] == "chain" {
        // `chain.ID.KEY`: one key of the [[chain]] table with that id (e.g. its policies).
        let (Some(id), Some(field), 3) = (parts.get(1).and_then(|p| p.parse::<i64>().ok()), parts.get(2), parts.len())
        else {
            return Err("[[chain]] tables are set in config.toml, with --upstream CHAIN=URL, or one key at a time \
                        as chain.ID.KEY (e.g. chain.1.policies=[\"filters:ofac-sdn\"])"
                .into());
        };
        if *field == "id" {
            return Err(format!("{key:?}: a chain's id cannot be changed"));
        }
        let chains = table
            .entry("chain")
            .or_insert_with(|| toml::Value::Array(Vec::new()))
            .as_array_mut()
            .ok_or_else(|| "chain is not a list of [[chain]] tables".to_string())?;
        let pos = chains.iter().position(|t| t.get("id").and_then(toml::Value::as_integer) == Some(id));
        let pos = match pos {
            Some(p) => p,
            // A chain whose upstreams come from --upstream (applied after overrides): its table
            // starts here, and `check` refuses it if no upstream ever joins it.
            None => {
                let mut t = toml::Table::new();
                t.insert("id".into(), toml::Value::Integer(id));
                chains.push(toml::Value::Table(t));
                chains.len() - 1
            }
        };
        let chain = chains[pos].as_table_mut().ok_or_else(|| format!("{key:?}: [[chain]] {id} is not a table"))?;
        // List keys take a comma-separated string too, as list keys of the sections do.
        let lists = ["aliases", "method_groups", "policies", "allow_methods", "deny_methods"];
        let value = match value {
            toml::Value::String(s) if lists.contains(field) => toml::Value::Array(
                s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(|p| toml::Value::String(p.into())).collect(),
            ),
            v => v,
        };
        chain.insert(field.to_string(), value);
        return Ok(());
    }
    let mut t = table;
    for part in &parts[..parts.len() - 1] {
        let entry = t.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = match entry {
            toml::Value::Table(inner) => inner,
            _ => return Err(format!("{part:?} in {key:?} is a value, not a section")),
        };
    }
    t.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests;
