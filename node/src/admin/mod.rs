//! The operator's HTTP API (default 127.0.0.1:8546): `/status`, `/peers`, `/health`, `/ready`,
//! `/metrics`, `/evidence`, ... JSON fields are documented in docs/admin-api.md. It never blocks
//! the daemon (snapshots are `Arc` clones, the swarm and the evidence task are asked through
//! their handles). Mutating routes: `PUT /blocked`, `DELETE /cordons/{peer}`, and
//! `POST /relay/{peer}/{chain}` ([`relay`]: one request to exactly one peer, for vetting through
//! the mesh).

pub mod auth;
pub mod client;
pub mod relay;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::config::{ChainConfig, TrustMode};
use crate::evidence::{EvidenceError, EvidenceHandle};
use crate::mesh::{CordonView, MeshSnapshot, ProviderView};
use crate::metrics::SharedRegistry;
use crate::p2p::P2pHandle;
use crate::router::Router;
use crate::upstream::{UpstreamReport, UpstreamSet};

/// What the admin API reads.
#[derive(Clone)]
pub struct AdminState {
    /// PeerId.
    pub peer_id: String,
    /// Public key, hex.
    pub public_key: String,
    /// Network id.
    pub network_id: String,
    /// Trust mode.
    pub trust_mode: TrustMode,
    /// Configured chains.
    pub chains: Arc<Vec<ChainConfig>>,
    /// Gateway address (for display).
    pub gateway_addr: SocketAddr,
    /// The swarm.
    pub p2p: P2pHandle,
    /// The mesh.
    pub mesh: watch::Receiver<Arc<MeshSnapshot>>,
    /// Own upstreams.
    pub upstreams: Arc<UpstreamSet>,
    /// Metrics.
    pub registry: SharedRegistry,
    /// The router (for `/explain`).
    pub router: Router,
    /// Verified relay receipts (for `/receipts`).
    pub receipts: crate::relay::ReceiptLog,
    /// Relays of `POST /relay/{peer}/{chain}`: a client of their own, whose receipts stay out of
    /// `/receipts`.
    pub relay: crate::relay::RelayClient,
    /// Evidence and cordons (for `/evidence`, `/cordons`).
    pub evidence: EvidenceHandle,
    /// Start time.
    pub started: Instant,
    /// Who may call the API.
    pub auth: auth::AdminAuth,
    /// Exposure warnings found at start-up (also logged), shown by `rpcmesh status`.
    pub warnings: Arc<Vec<String>>,
}

/// Most open connections to the admin API: an operator, a scraper and a few CLI calls.
pub const ADMIN_MAX_CONNECTIONS: usize = 64;
/// Time an admin client has to send its request headers (also the keep-alive idle timeout).
pub const ADMIN_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time an admin request may take from its headers to its answer, body included: every
/// endpoint answers from memory, so only a slow or silent client gets near it.
pub const ADMIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The admin server's connection bounds.
pub fn serve_limits() -> crate::serve::ServeLimits {
    crate::serve::ServeLimits {
        max_connections: ADMIN_MAX_CONNECTIONS,
        // The operator's own tools, usually from one address; the cap above is small already.
        max_connections_per_ip: 0,
        header_timeout: ADMIN_HEADER_TIMEOUT,
        setting: "the admin API's connection limit",
    }
}

/// Ends a request that has not been answered within [`ADMIN_REQUEST_TIMEOUT`] (a body that
/// trickles in) with HTTP 408.
async fn request_timeout(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match tokio::time::timeout(ADMIN_REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => (StatusCode::REQUEST_TIMEOUT, "request not completed in time\n").into_response(),
    }
}

/// Builds the router.
pub fn router(state: AdminState) -> axum::Router {
    axum::Router::new()
        .route("/status", get(status))
        .route("/peers", get(peers))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/explain", get(explain))
        .route("/receipts", get(receipts))
        .route("/blocked", get(blocked).put(set_blocked))
        .route("/evidence", get(evidence_list))
        .route("/evidence/{id}", get(evidence_show))
        .route("/cordons/{peer}", delete(clear_cordons))
        .route("/relay/{peer}/{chain}", post(relay::relay_to_peer))
        .layer(axum::middleware::from_fn(request_timeout))
        .layer(axum::middleware::from_fn_with_state(state.auth.clone(), auth::guard))
        .with_state(state)
}

/// `GET /status`.
#[derive(Debug, Serialize, Deserialize)]
pub struct StatusBody {
    /// This node's PeerId.
    pub peer_id: String,
    /// Its public key, hex.
    pub public_key: String,
    /// Network id.
    pub network_id: String,
    /// Software version.
    pub version: String,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// Listen addresses.
    pub listen_addrs: Vec<String>,
    /// Addresses announced to the mesh.
    pub external_addrs: Vec<String>,
    /// Number of connected peers.
    pub connected_peers: usize,
    /// Their PeerIds.
    pub peers: Vec<String>,
    /// `federated` or `open`.
    pub trust_mode: String,
    /// Gateway address.
    pub gateway_addr: String,
    /// Providers in the mesh view (this node included).
    pub providers_known: usize,
    /// Per configured chain.
    pub chains: Vec<ChainStatus>,
    /// What is exposed beyond loopback without protection (empty when nothing is).
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// One chain in `/status`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChainStatus {
    /// Chain id.
    pub chain_id: u64,
    /// Gateway aliases.
    pub aliases: Vec<String>,
    /// Head of the best healthy own upstream.
    pub head: Option<u64>,
    /// Median head of trusted providers.
    pub reference_head: Option<u64>,
    /// Own upstreams.
    pub upstreams: Vec<serde_json::Value>,
}

async fn status(State(s): State<AdminState>) -> Json<StatusBody> {
    let p2p = s.p2p.status();
    let snap = s.mesh.borrow().clone();
    let chains = s
        .chains
        .iter()
        .map(|c| ChainStatus {
            chain_id: c.id,
            aliases: c.aliases.clone(),
            head: s.upstreams.head(c.id).map(|h| h.number),
            reference_head: snap.reference_heads.get(&c.id).copied(),
            upstreams: s
                .upstreams
                .for_chain(c.id)
                .iter()
                .map(|u| serde_json::to_value::<UpstreamReport>(u.report()).unwrap_or_default())
                .collect(),
        })
        .collect();
    Json(StatusBody {
        peer_id: s.peer_id.clone(),
        public_key: s.public_key.clone(),
        network_id: s.network_id.clone(),
        version: crate::announce::SOFTWARE_VERSION.into(),
        uptime_secs: s.started.elapsed().as_secs(),
        listen_addrs: p2p.listen_addrs.iter().map(ToString::to_string).collect(),
        external_addrs: p2p.external_addrs.iter().map(ToString::to_string).collect(),
        connected_peers: p2p.connected.len(),
        peers: p2p.connected.iter().map(ToString::to_string).collect(),
        trust_mode: match s.trust_mode {
            TrustMode::Federated => "federated".into(),
            TrustMode::Open => "open".into(),
        },
        gateway_addr: s.gateway_addr.to_string(),
        providers_known: snap.providers.len(),
        chains,
        warnings: s.warnings.as_ref().clone(),
    })
}

/// Query of `/peers`.
#[derive(Debug, Deserialize)]
pub struct PeersQuery {
    /// Only providers announcing this chain.
    pub chain: Option<u64>,
    /// Only what a poller of the whole mesh needs ([`BriefPeer`]): no attestations, scores or
    /// standings. A full `/peers` holds every attester's summary of every provider, O(N^2) for
    /// a mesh of N; polling it from every node of a large testnet would be the load measured.
    #[serde(default)]
    pub brief: bool,
}

/// One provider in `/peers?brief=true`.
#[derive(Debug, Serialize)]
pub struct BriefPeer<'a> {
    /// PeerId.
    pub peer_id: &'a str,
    /// This node.
    pub is_self: bool,
    /// Sequence number of the announcement held.
    pub seq: u64,
    /// When it was issued, Unix ms (the provider's clock).
    pub announced_at_ms: u64,
    /// When this node accepted it, Unix ms.
    pub received_at_ms: u64,
    /// Past its expiry.
    pub expired: bool,
    /// Where it came from.
    pub source: crate::mesh::Source,
    /// Health per chain.
    pub chains: Vec<BriefChain>,
}

/// A chain of a [`BriefPeer`].
#[derive(Debug, Serialize)]
pub struct BriefChain {
    /// Chain id.
    pub chain_id: u64,
    /// Health in this node's view.
    pub health: crate::mesh::Health,
}

/// `GET /peers`.
#[derive(Debug, Serialize)]
pub struct PeersBody<'a> {
    /// When the view was built, Unix ms.
    pub generated_at_ms: u64,
    /// Median head per chain.
    pub reference_heads: &'a BTreeMap<u64, u64>,
    /// Providers.
    pub providers: Vec<PeerEntry<'a>>,
}

/// One provider in `/peers`: the mesh view plus live connection data.
#[derive(Debug, Serialize)]
pub struct PeerEntry<'a> {
    /// Mesh view.
    #[serde(flatten)]
    pub view: &'a ProviderView,
    /// Milliseconds since its announcement was issued.
    pub announcement_age_ms: u64,
    /// Gossipsub peer score, when connected.
    pub gossip_score: Option<f64>,
    /// Chains it is cordoned on (proven wrong answers), with why and until when.
    pub cordons: Vec<CordonView>,
    /// Distinct wrong answers proven against it.
    pub proven_lies: u32,
    /// Chains on which it was proven to filter, with what (it keeps serving the rest).
    pub filters: Vec<crate::mesh::FilterView>,
}

async fn peers(State(s): State<AdminState>, Query(q): Query<PeersQuery>) -> Response {
    let snap = s.mesh.borrow().clone();
    if q.brief {
        let providers: Vec<BriefPeer> = snap
            .providers
            .iter()
            .filter(|p| q.chain.is_none_or(|c| p.chain(c).is_some()))
            .map(|p| BriefPeer {
                peer_id: &p.peer_id,
                is_self: p.is_self,
                seq: p.seq,
                announced_at_ms: p.announced_at_ms,
                received_at_ms: p.received_at_ms,
                expired: p.expired,
                source: p.source,
                chains: p.chains.iter().map(|c| BriefChain { chain_id: c.chain_id, health: c.health }).collect(),
            })
            .collect();
        return Json(serde_json::json!({
            "generated_at_ms": snap.generated_at_ms,
            "reference_heads": &snap.reference_heads,
            "providers": providers,
        }))
        .into_response();
    }
    let scores: std::collections::HashMap<String, f64> =
        s.p2p.peer_scores().await.unwrap_or_default().into_iter().map(|(p, v)| (p.to_string(), v)).collect();
    let now = crate::clock::now_ms();
    let providers = snap
        .providers
        .iter()
        .filter(|p| q.chain.is_none_or(|c| p.chain(c).is_some()))
        .map(|p| {
            let standing = snap.standing(&p.key);
            PeerEntry {
                view: p,
                announcement_age_ms: now.saturating_sub(p.announced_at_ms),
                gossip_score: scores.get(&p.peer_id).copied(),
                cordons: standing.map(|s| s.cordons.clone()).unwrap_or_default(),
                proven_lies: standing.map_or(0, |s| s.proven_lies),
                filters: standing.map(|s| s.filters.clone()).unwrap_or_default(),
            }
        })
        .collect();
    Json(PeersBody { generated_at_ms: snap.generated_at_ms, reference_heads: &snap.reference_heads, providers })
        .into_response()
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Ready when listening on p2p and every configured chain has a healthy own upstream (or
/// there are none to wait for).
async fn ready(State(s): State<AdminState>) -> Response {
    let mut reasons = Vec::new();
    if s.p2p.status().listen_addrs.is_empty() {
        reasons.push("p2p is not listening yet".to_string());
    }
    for c in s.chains.iter() {
        if !c.upstreams.is_empty() && s.upstreams.best(c.id).is_none() {
            reasons.push(format!("chain {}: no healthy upstream", c.id));
        }
    }
    if reasons.is_empty() {
        (StatusCode::OK, Json(serde_json::json!({ "ready": true }))).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "ready": false, "reasons": reasons })))
            .into_response()
    }
}

async fn metrics(State(s): State<AdminState>) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.registry.encode())
        .into_response()
}

/// Query of `/explain`.
#[derive(Debug, Deserialize)]
pub struct ExplainQuery {
    /// Chain (default: the first configured).
    pub chain: Option<u64>,
    /// Method to judge (default `eth_blockNumber`).
    pub method: Option<String>,
    /// `on`/`off`: judge as with that failover setting (default: config).
    pub failover: Option<String>,
    /// An account (0x…) the request is about: shows which providers are labelled as filtering it.
    pub address: Option<String>,
    /// Policy patterns to avoid, as the `x-rpcmesh-avoid` header takes them.
    pub avoid: Option<String>,
}

/// `GET /explain?chain=ID[&method=M][&failover=on|off][&address=0x…][&avoid=filters]`: every
/// candidate, its eligibility and reasons, and every score component, in routing order.
async fn explain(State(s): State<AdminState>, Query(q): Query<ExplainQuery>) -> Response {
    let Some(chain) = q.chain.or_else(|| s.chains.first().map(|c| c.id)) else {
        return (StatusCode::BAD_REQUEST, Json(serde_json::json!({ "error": "pass ?chain=ID" }))).into_response();
    };
    let method = q.method.unwrap_or_else(|| "eth_blockNumber".into());
    let failover = match q.failover.as_deref() {
        Some("on") => true,
        Some("off") => false,
        _ => s.router.config().failover,
    };
    let touched: Vec<_> = match q.address.as_deref().map(crate::censorship::parse_address) {
        None => Vec::new(),
        Some(Some(a)) => vec![a],
        Some(None) => {
            let error = "address must be a 0x-prefixed 20-byte hex address";
            return (StatusCode::BAD_REQUEST, Json(serde_json::json!({ "error": error }))).into_response();
        }
    };
    let avoid = match q.avoid.as_deref().map(crate::censorship::Avoid::parse_header) {
        None => None,
        Some(Some(a)) => Some(a),
        Some(None) => {
            let error = "avoid must be comma-separated policy patterns such as filters or geo:blocks:*";
            return (StatusCode::BAD_REQUEST, Json(serde_json::json!({ "error": error }))).into_response();
        }
    };
    let candidates = s.router.explain(chain, &method, failover, avoid.as_ref(), &touched);
    Json(serde_json::json!({
        "chain_id": chain,
        "method": method,
        "failover": failover,
        "reference_head": s.mesh.borrow().reference_heads.get(&chain),
        "candidates": candidates,
    }))
    .into_response()
}

/// Query of `/receipts`.
#[derive(Debug, Deserialize)]
pub struct ReceiptsQuery {
    /// How many (default 100, at most the log's capacity).
    pub limit: Option<usize>,
}

/// `GET /receipts[?limit=N]`: the most recent verified relay receipts, newest last.
async fn receipts(State(s): State<AdminState>, Query(q): Query<ReceiptsQuery>) -> Json<serde_json::Value> {
    let n = q.limit.unwrap_or(100).min(crate::relay::RECEIPT_LOG_CAPACITY);
    Json(serde_json::json!({ "receipts": s.receipts.recent(n) }))
}

/// Body of `PUT /blocked` and answer of `GET /blocked`.
#[derive(Debug, Serialize, Deserialize)]
pub struct BlockedBody {
    /// Blocked PeerIds.
    pub peers: Vec<String>,
}

/// `GET /blocked`: peers this node refuses to talk to.
async fn blocked(State(s): State<AdminState>) -> Json<BlockedBody> {
    Json(BlockedBody { peers: s.p2p.status().blocked.iter().map(ToString::to_string).collect() })
}

/// `PUT /blocked` with `{"peers": [...]}`: replaces the block list (an operator ban list;
/// local testnets use it for partitions). Connections to blocked peers are closed at once.
async fn set_blocked(State(s): State<AdminState>, Json(body): Json<BlockedBody>) -> Response {
    let mut peers = Vec::with_capacity(body.peers.len());
    for p in &body.peers {
        match p.parse::<PeerId>() {
            Ok(id) if id.to_string() == s.peer_id => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(serde_json::json!({ "error": format!("{p} is this node's own PeerId; it cannot block itself") })),
                )
                    .into_response();
            }
            Ok(id) => peers.push(id),
            Err(_) => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(serde_json::json!({ "error": format!("{p:?} is not a PeerId") })),
                )
                    .into_response();
            }
        }
    }
    match s.p2p.set_blocked(peers).await {
        Ok(()) => (StatusCode::OK, Json(serde_json::json!({ "blocked": body.peers }))).into_response(),
        Err(e) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "error": e.to_string() }))).into_response()
        }
    }
}

fn evidence_error(e: EvidenceError) -> Response {
    let status = match e {
        EvidenceError::Shutdown | EvidenceError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        EvidenceError::Invalid(_) => StatusCode::BAD_REQUEST,
        EvidenceError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, Json(serde_json::json!({ "error": e.to_string() }))).into_response()
}

/// `GET /evidence`: every kept bundle, oldest first.
async fn evidence_list(State(s): State<AdminState>) -> Response {
    match s.evidence.list().await {
        Ok(list) => Json(serde_json::json!({ "evidence": list })).into_response(),
        Err(e) => evidence_error(e),
    }
}

/// `GET /evidence/{id}`: one bundle, its signed bytes (hex) and decoded.
async fn evidence_show(State(s): State<AdminState>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": format!("{id:?} is not an evidence id") })),
        )
            .into_response();
    };
    match s.evidence.show(id).await {
        Ok(Some(detail)) => Json(detail).into_response(),
        Ok(None) => {
            (StatusCode::NOT_FOUND, Json(serde_json::json!({ "error": format!("no evidence {id}") }))).into_response()
        }
        Err(e) => evidence_error(e),
    }
}

/// Query of `DELETE /cordons/{peer}`.
#[derive(Debug, Deserialize)]
pub struct CordonQuery {
    /// Only this chain (default: every chain).
    pub chain: Option<u64>,
}

/// `DELETE /cordons/{peer}[?chain=ID]`: an operator lifts cordons (the evidence stays on record).
async fn clear_cordons(
    State(s): State<AdminState>,
    Path(peer): Path<String>,
    Query(q): Query<CordonQuery>,
) -> Response {
    let key = match rpcmesh_protocol::PublicKey::parse(&peer) {
        Ok(k) => k,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, Json(serde_json::json!({ "error": format!("{peer:?}: {e}") })))
                .into_response();
        }
    };
    match s.evidence.clear(key, q.chain).await {
        Ok(chains) => {
            Json(serde_json::json!({ "peer": key.to_peer_id().to_string(), "cleared_chains": chains })).into_response()
        }
        Err(e) => evidence_error(e),
    }
}
