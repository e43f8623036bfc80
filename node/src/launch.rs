//! [`launch`]: wires every task of the daemon together and starts them.
//!
//! Tasks (all share one [`CancellationToken`]; if a critical one ends, the daemon stops):
//! p2p event loop · gateway · mesh writer · evidence · relay server · announcer · peer prober ·
//! one prober per own upstream · admin HTTP server · trusted peers (mesh view → p2p admission).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};
use prometheus_client::registry::Registry;
use rpcmesh_protocol::messages::MembershipCert;
use rpcmesh_protocol::validate::Limits;
use rpcmesh_protocol::{Identity, Signed};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState};
use crate::announce::{Announcer, SOFTWARE_VERSION};
use crate::censorship;
use crate::clock::{SeqGen, now_ms};
use crate::config::Config;
use crate::evidence::{self, EvidenceHandle, EvidenceHooks, EvidenceSettings, EvidenceTask};
use crate::gateway::Gateway;
use crate::integrity;
use crate::mesh::{MeshSettings, MeshSnapshot, MeshState, MeshTask};
use crate::metrics::{NodeMetrics, RequestMetrics, SharedRegistry, UpstreamCollector};
use crate::p2p::{self, BehaviourSettings, P2pHandle, P2pSettings};
use crate::peer_prober::{PeerProber, PeerProberSettings};
use crate::relay::{Capacity, RelayClient, RelayMethodPolicy, RelayServer, RelayServerSettings};
use crate::router::check::Checked;
use crate::router::{Router, SharedForward, Targets};
use crate::serve::{self, ServeLimits};
use crate::store::{IdentityMeta, Store, StoreConfig};
use crate::trust::{TrustPolicy, cert_file};
use crate::upstream::{HttpClient, ProberSettings, Upstream, UpstreamSet, run_prober, run_ws_heads};

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// A config value is unusable (names the key).
    #[error("{0}")]
    Config(String),
    /// The identity could not be loaded.
    #[error(transparent)]
    Identity(#[from] rpcmesh_protocol::KeyFileError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A socket could not be bound.
    #[error("cannot listen on {addr} ({key}): {error}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Config key.
        key: &'static str,
        /// Why.
        error: std::io::Error,
    },
    /// libp2p could not be set up.
    #[error("p2p: {0}")]
    P2p(String),
}

/// A running daemon.
pub struct NodeHandle {
    /// This node's PeerId.
    pub peer_id: PeerId,
    /// Bound admin address.
    pub admin_addr: SocketAddr,
    /// Bound gateway address.
    pub gateway_addr: SocketAddr,
    /// The swarm.
    pub p2p: P2pHandle,
    /// The mesh view.
    pub mesh: watch::Receiver<Arc<MeshSnapshot>>,
    /// Evidence: report this node's findings, list, clear cordons.
    pub evidence: EvidenceHandle,
    cancel: CancellationToken,
    tasks: JoinSet<(&'static str, Result<(), String>)>,
    /// Held so the announcer's change feed stays open on a node without upstreams.
    _upstream_changed: watch::Sender<u64>,
}

impl NodeHandle {
    /// Waits until a critical task ends (an error, or shutdown) and says which and why.
    pub async fn wait(&mut self) -> (&'static str, Result<(), String>) {
        match self.tasks.join_next().await {
            Some(Ok(r)) => r,
            Some(Err(e)) => ("task", Err(format!("a task panicked: {e}"))),
            None => ("node", Ok(())),
        }
    }

    /// Stops every task, giving them `grace` to finish in-flight work (the mesh task flushes
    /// the store on its way out), then aborts what is left.
    pub async fn shutdown(mut self, grace: Duration) {
        self.cancel.cancel();
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!("tasks still running after {} ms; aborting them", grace.as_millis());
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
    }
}

fn parse_addrs(key: &str, addrs: &[String]) -> Result<Vec<Multiaddr>, LaunchError> {
    addrs
        .iter()
        .map(|a| {
            a.parse::<Multiaddr>().map_err(|e| LaunchError::Config(format!("{key}: {a:?} is not a multiaddr: {e}")))
        })
        .collect()
}

/// What this configuration exposes beyond loopback, as warnings an operator should read. A
/// gateway beyond loopback is warned about while clients without a key are unlimited: no
/// `gateway.require_key` and no `gateway.per_ip_requests_per_sec`.
pub fn exposure_warnings(config: &Config, gateway: SocketAddr, admin: SocketAddr) -> Vec<String> {
    let mut out = Vec::new();
    let g = &config.gateway;
    if !gateway.ip().is_loopback() && !g.require_key && g.per_ip_requests_per_sec == 0 {
        let keys = if g.keys.is_empty() {
            "with no API keys or quotas".to_string()
        } else {
            format!("with {} API key(s) but gateway.require_key = false and no per-address quota", g.keys.len())
        };
        out.push(format!(
            "the gateway listens on {gateway}, beyond loopback, {keys}: anyone who can reach it can use your nodes \
             without limit within gateway.allow_methods; set gateway.require_key or \
             gateway.per_ip_requests_per_sec (see \"Running a public gateway\" in docs/operator-guide.md)"
        ));
    }
    if !admin.ip().is_loopback() {
        out.push(format!(
            "the admin API listens on {admin}, beyond loopback: every endpoint but /health and /metrics needs the \
             bearer token in {}; keep it secret, or bind admin.addr to 127.0.0.1",
            config.admin.token_file.display()
        ));
    }
    out
}

/// Bytes a relay frame may carry besides the body (`relay.max_body_bytes`): the message's
/// header, receipt and encoding.
const RELAY_FRAME_HEADROOM: usize = 64 * 1024;

/// Evidence kept at least this long, ms (a week): longer than any bundle's gossip lifetime, so a
/// cleared bundle replayed later is recognised, and long enough for an operator to look.
pub const EVIDENCE_RETENTION_MS: u64 = 7 * 24 * 3600 * 1000;

/// Starts the daemon described by `config`, whose relative paths are relative to `home`.
/// Bundles from gossip are ignored (this node cannot prove them): see [`launch_with`].
pub async fn launch(config: Config, home: &Path) -> Result<NodeHandle, LaunchError> {
    launch_with(config, home, EvidenceHooks::default()).await
}

/// [`launch`], judging evidence with `hooks` (the integrity layer's trusted chain and re-check).
pub async fn launch_with(config: Config, home: &Path, hooks: EvidenceHooks) -> Result<NodeHandle, LaunchError> {
    let identity = Arc::new(Identity::load(&Config::resolve(home, &config.identity.key_file))?);
    let own = identity.public_key();
    let store_dir: PathBuf = Config::resolve(home, &config.store.path);
    let store = Store::open(
        &store_dir,
        StoreConfig {
            attestation_ttl_ms: config.store.attestation_ttl_secs * 1000,
            max_attestations: config.store.max_attestations,
            max_evidence: config.store.max_evidence,
            cache_capacity_bytes: config.store.cache_mib.saturating_mul(1024 * 1024),
        },
    )?;
    match store.identity()? {
        Some(meta) if meta.public_key != own => {
            tracing::warn!("the store was created by another identity; its view is kept, the identity record updated");
            store.set_identity(&IdentityMeta { public_key: own, created_at_ms: now_ms() })?;
        }
        Some(_) => {}
        None => store.set_identity(&IdentityMeta { public_key: own, created_at_ms: now_ms() })?,
    }

    let mut registry = Registry::default();
    let metrics = NodeMetrics::register(&mut registry);
    let request_metrics = RequestMetrics::register(&mut registry);
    request_metrics.init_chains(config.chains.iter().map(|c| c.id));
    let limits = Limits { max_relay_body_bytes: config.relay.max_body_bytes, ..Limits::default() };

    // Upstreams.
    let client = HttpClient::new(config.relay.max_body_bytes.max(config.gateway.max_body_bytes));
    let mut set = UpstreamSet::default();
    for c in &config.chains {
        let mut ups = Vec::new();
        for u in &c.upstreams {
            let uri: hyper::Uri = u
                .http
                .parse()
                .map_err(|e| LaunchError::Config(format!("chain {} upstream {:?}: {e}", c.id, u.http)))?;
            ups.push(Arc::new(Upstream::new(c.id, uri, u.ws.clone(), client.clone(), config.prober.window_ms)));
        }
        set.chains.push((c.id, ups));
    }
    let upstreams = Arc::new(set);
    UpstreamCollector::register(&mut registry, upstreams.clone());

    // Trust and our certificate.
    let policy = TrustPolicy::new(&config.trust, own, &config.network_id);
    let cert: Option<Signed<MembershipCert>> = if config.trust.membership_cert.as_os_str().is_empty() {
        None
    } else {
        let path = Config::resolve(home, &config.trust.membership_cert);
        let cert = cert_file::load(&path).map_err(|e| LaunchError::Config(format!("trust.membership_cert: {e}")))?;
        if cert.body.member != own {
            return Err(LaunchError::Config(format!(
                "trust.membership_cert {} names {}, not this node ({})",
                path.display(),
                cert.body.member.to_peer_id(),
                own.to_peer_id()
            )));
        }
        Some(cert)
    };

    // Mesh.
    let mesh_settings = MeshSettings {
        max_head_lag_blocks: config.routing.max_head_lag_blocks,
        probe_fresh_ms: config.prober.peer_interval_ms * 5,
        attestation_fresh_ms: config.prober.attest_interval_ms * 3,
        announce_heartbeat_ms: config.announce.heartbeat_ms,
        forget_after_ms: 10 * 60 * 1000,
        probe_window_ms: config.prober.window_ms,
    };
    let state = MeshState::new(own, policy.clone(), mesh_settings);
    let (p2p_events_tx, p2p_events_rx) = mpsc::channel(4096);
    let (mesh_tx, mesh_rx) = mpsc::channel(4096);
    let (mut mesh_task, mesh) = MeshTask::new(state, store.clone(), p2p_events_rx, mesh_rx, metrics.clone());

    // p2p.
    let mut initial_peers: Vec<(PeerId, Vec<Multiaddr>, u64)> = store
        .peers()?
        .into_iter()
        .filter(|(k, _)| *k != own)
        .map(|(k, rec)| (k.to_peer_id(), rec.addrs.iter().filter_map(|a| a.parse().ok()).collect(), rec.last_seen_ms))
        .collect();
    initial_peers.sort_by_key(|(_, _, seen)| std::cmp::Reverse(*seen));
    let p2p_settings = P2pSettings {
        behaviour: BehaviourSettings {
            network_id: config.network_id.clone(),
            max_connections: config.p2p.max_connections,
            max_connections_per_peer: config.p2p.max_connections_per_peer,
            max_pending_incoming: config.p2p.max_pending_incoming,
            max_pending_per_ip: config.p2p.max_pending_per_ip,
            max_incoming: config.p2p.max_incoming.min(config.p2p.max_connections),
            reserved_peers: config
                .trust
                .peers
                .iter()
                .filter_map(|p| rpcmesh_protocol::PublicKey::parse(p).ok())
                .map(|k| k.to_peer_id())
                .collect(),
            // Evidence is the largest gossip (a block's receipts); every kind's own cap is
            // checked on receipt.
            max_gossip_bytes: limits.max_gossip_bytes.max(limits.max_evidence_bytes),
            max_relay_frame_bytes: config.relay.max_body_bytes + RELAY_FRAME_HEADROOM,
            relay_timeout: Duration::from_millis(u64::from(limits.max_relay_timeout_ms)),
            mdns: config.p2p.mdns,
            agent_version: SOFTWARE_VERSION.into(),
        },
        listen: parse_addrs("p2p.listen", &config.p2p.listen)?,
        bootstrap: parse_addrs("p2p.bootstrap", &config.p2p.bootstrap)?,
        external: parse_addrs("p2p.external_addrs", &config.p2p.external_addrs)?,
        loopback_only: config.p2p.loopback_only,
        idle_timeout: Duration::from_secs(config.p2p.idle_connection_timeout_secs),
        backoff_max: Duration::from_millis(config.p2p.bootstrap_backoff_max_ms),
        limits: limits.clone(),
        initial_peers: initial_peers.into_iter().map(|(p, a, _)| (p, a)).collect(),
        initial_seqs: mesh_task.seqs(),
    };
    let (inbound_tx, inbound_rx) = mpsc::channel(1024);
    let (stream_relays_tx, stream_relays_rx) = mpsc::channel(1024);
    let (p2p, p2p_loop) =
        p2p::build(&identity, p2p_settings, p2p_events_tx, inbound_tx, metrics.clone(), &mut registry)
            .map_err(LaunchError::P2p)?;
    // Relay streams: served always (a peer may use them whatever this node's setting), used
    // for this node's relays when `relay.streams`.
    let relay_frame_bytes = config.relay.max_body_bytes + RELAY_FRAME_HEADROOM;
    let stream_protocol = crate::relay::stream::protocol(&config.network_id).map_err(LaunchError::P2p)?;
    let relay_streams = config.relay.streams.then(|| {
        crate::relay::stream::RelayStreams::new(p2p.stream_control(), stream_protocol.clone(), relay_frame_bytes)
    });
    // The integrity layer judges evidence: its trusted chain (filled once it exists, below) and
    // its re-check, unless the caller brought its own.
    let anchor_slot = Arc::new(integrity::AnchorSlot::default());
    let hooks = EvidenceHooks {
        trusted_chain: hooks.trusted_chain.or_else(|| Some(anchor_slot.clone())),
        recheck: hooks.recheck.or_else(|| Some(Arc::new(integrity::judge::recheck))),
    };
    let (evidence_tx, evidence_rx) = mpsc::channel(evidence::INBOUND_QUEUE);
    let p2p_loop = p2p_loop.with_evidence(evidence_tx);
    let (evidence, evidence_task) = EvidenceTask::new(
        identity.clone(),
        EvidenceSettings {
            network_id: config.network_id.clone(),
            limits: limits.clone(),
            cordon_ms: config.integrity.cordon_secs.saturating_mul(1000),
            retention_ms: EVIDENCE_RETENTION_MS,
            max_evidence: config.store.max_evidence,
            max_filtered_subjects: config.censorship.max_filtered_subjects,
        },
        store.clone(),
        p2p.clone(),
        mesh_tx.clone(),
        hooks,
        evidence_rx,
        metrics.clone(),
    )?;
    mesh_task.seed_standings(evidence_task.standings());

    // Admin listener (bound before anything runs, so a port clash fails the start).
    let admin_listener = tokio::net::TcpListener::bind(config.admin.addr).await.map_err(|error| LaunchError::Bind {
        addr: config.admin.addr,
        key: "admin.addr",
        error,
    })?;
    let admin_addr = admin_listener.local_addr().map_err(|error| LaunchError::Bind {
        addr: config.admin.addr,
        key: "admin.addr",
        error,
    })?;
    let gateway_listener = tokio::net::TcpListener::bind(config.gateway.addr)
        .await
        .map_err(|error| LaunchError::Bind { addr: config.gateway.addr, key: "gateway.addr", error })?;
    let gateway_addr = gateway_listener.local_addr().map_err(|error| LaunchError::Bind {
        addr: config.gateway.addr,
        key: "gateway.addr",
        error,
    })?;

    let registry = SharedRegistry(Arc::new(Mutex::new(registry)));
    let cancel = CancellationToken::new();
    let mut tasks: JoinSet<(&'static str, Result<(), String>)> = JoinSet::new();

    let capacity = Capacity::new(config.chains.iter().map(|c| (c.id, c.max_concurrent_relays)));
    let (upstream_changed_tx, upstream_changed_rx) = watch::channel(0u64);
    let prober_settings = ProberSettings {
        interval: Duration::from_millis(config.prober.interval_ms),
        timeout: Duration::from_millis(config.prober.timeout_ms),
    };
    for (_, ups) in &upstreams.chains {
        for u in ups {
            let (u, tx, c) = (u.clone(), upstream_changed_tx.clone(), cancel.clone());
            if u.ws.is_some() {
                let (u, tx, c) = (u.clone(), tx.clone(), c.clone());
                tasks.spawn(async move {
                    run_ws_heads(u, tx, c).await;
                    ("upstream newHeads", Ok(()))
                });
            }
            tasks.spawn(async move {
                run_prober(u, prober_settings, tx, c).await;
                ("upstream prober", Ok(()))
            });
        }
    }

    let c = cancel.clone();
    tasks.spawn(async move { ("p2p", p2p_loop.run(c).await) });
    let (c, view, p) = (cancel.clone(), mesh.clone(), p2p.clone());
    tasks.spawn(async move {
        crate::mesh::sync_trusted(view, p, c).await;
        ("trusted peers", Ok(()))
    });
    let c = cancel.clone();
    tasks.spawn(async move {
        mesh_task.run(c).await;
        ("mesh", Ok(()))
    });

    let c = cancel.clone();
    tasks.spawn(async move {
        evidence_task.run(c).await;
        ("evidence", Ok(()))
    });

    let relay_server = RelayServer {
        identity: identity.clone(),
        settings: RelayServerSettings {
            network_id: config.network_id.clone(),
            open: config.relay.open,
            limits: limits.clone(),
            methods: RelayMethodPolicy::from_config(&config.relay),
        },
        upstreams: upstreams.clone(),
        policy: policy.clone(),
        mesh: mesh.clone(),
        p2p: p2p.clone(),
        metrics: metrics.clone(),
        capacity: capacity.clone(),
    };
    let c = cancel.clone();
    tasks.spawn(async move {
        relay_server.run(inbound_rx, stream_relays_rx, c).await;
        ("relay server", Ok(()))
    });
    let (control, c) = (p2p.stream_control(), cancel.clone());
    tasks.spawn(async move {
        crate::relay::stream::accept(control, stream_protocol, relay_frame_bytes, stream_relays_tx, c).await;
        ("relay streams", Ok(()))
    });

    let announcer = Announcer {
        identity: identity.clone(),
        network_id: config.network_id.clone(),
        chains: config.chains.clone(),
        upstreams: upstreams.clone(),
        capacity: capacity.clone(),
        cert,
        p2p: p2p.clone(),
        mesh: mesh_tx.clone(),
        heartbeat: Duration::from_millis(config.announce.heartbeat_ms),
        expiry_heartbeats: config.announce.expiry_heartbeats,
        mesh_rate_per_sec: config.announce.mesh_rate_per_sec,
        view: mesh.clone(),
        seq: Arc::new(SeqGen::default()),
        jurisdiction: config.jurisdiction.clone(),
    };
    let c = cancel.clone();
    tasks.spawn(async move {
        announcer.run(upstream_changed_rx, c).await;
        ("announcer", Ok(()))
    });

    let relay_client = RelayClient::new(p2p.clone(), own, config.network_id.clone(), limits.clone(), metrics.clone())
        .with_streams(relay_streams.clone());
    let relay_receipts = relay_client.receipts().clone();
    let targets = Targets { upstreams: upstreams.clone(), relay: Some(relay_client.clone()) };
    let integrity = integrity::build(
        &config.integrity,
        targets.clone(),
        Arc::new(evidence.clone()),
        integrity::IntegrityMetrics::new(&metrics),
        Some(store.clone()),
    );
    anchor_slot.fill(integrity.anchors.clone());
    let integrity_source = integrity.source.clone();
    // Integrity checks results; the write check (outermost) judges transaction refusals.
    let write_check = censorship::WriteCheck::new(
        integrity.anchors.clone(),
        Arc::new(evidence.clone()),
        metrics.censorship_refusals.clone(),
    );
    let forward =
        SharedForward::new(Checked { inner: Checked { inner: targets, check: integrity.check }, check: write_check });
    let router = Router::new(
        own,
        upstreams.clone(),
        &config.chains,
        mesh.clone(),
        forward,
        config.routing.clone(),
        config.method_policy(),
        censorship::Censorship::new(&config.censorship, &config.chains, config.jurisdiction.clone()),
    )
    .with_cache(config.cache.enabled.then(|| {
        crate::router::cache::ResponseCache::new(
            crate::router::cache::CacheSettings {
                max_bytes: config.cache.max_mib.saturating_mul(1 << 20),
                final_depth_blocks: config.cache.final_depth_blocks,
                head_ttl: Duration::from_millis(config.cache.head_ttl_ms),
            },
            crate::router::cache::CacheMetrics {
                reorg_evictions: metrics.cache_reorg_evictions.clone(),
                bytes: metrics.cache_bytes.clone(),
            },
        )
        .with_disk(store.clone(), config.cache.sled_mib.saturating_mul(1 << 20))
    }));
    integrity_source.attach(router.downgrade());
    let canary = censorship::canary::CanarySettings {
        watch: config.censorship.watch.iter().filter_map(|w| censorship::parse_address(w)).collect(),
        interval: Duration::from_secs(config.censorship.canary_interval_secs),
        audit: config.integrity.mode != crate::router::VerifyMode::Off,
    };
    let (c, canary_router, canary_metrics) = (cancel.clone(), router.clone(), metrics.clone());
    tasks.spawn(async move {
        censorship::canary::run(canary_router, canary, canary_metrics, c.clone()).await;
        // It returns at once when nothing is watched; an ended task stops the daemon, so wait.
        c.cancelled().await;
        ("canary", Ok(()))
    });
    let gateway =
        Gateway::with_access_metrics(router.clone(), &config.gateway, &config.chains, config.integrity.mode, &metrics)
            .with_metrics(request_metrics);
    let gateway_limits = ServeLimits {
        max_connections: config.gateway.max_connections,
        max_connections_per_ip: config.gateway.max_connections_per_ip,
        header_timeout: Duration::from_millis(config.gateway.header_timeout_ms),
        setting: "gateway.max_connections",
    };
    let c = cancel.clone();
    tasks.spawn(async move {
        let r = serve::serve(gateway_listener, gateway.app(), gateway_limits, c).await;
        ("gateway", r.map_err(|e| e.to_string()))
    });
    let prober = PeerProber {
        identity: identity.clone(),
        settings: PeerProberSettings {
            network_id: config.network_id.clone(),
            peer_interval: Duration::from_millis(config.prober.peer_interval_ms),
            peer_sample: config.prober.peer_sample,
            timeout: Duration::from_millis(config.prober.timeout_ms),
            attest_interval: Duration::from_millis(config.prober.attest_interval_ms),
            mesh_rounds_per_sec: config.prober.mesh_rounds_per_sec,
            window: Duration::from_millis(config.prober.window_ms),
        },
        // Its own client: probe receipts must not push client receipts out of /receipts.
        relay: RelayClient::new(p2p.clone(), own, config.network_id.clone(), limits.clone(), metrics.clone())
            .with_streams(relay_streams.clone()),
        p2p: p2p.clone(),
        mesh: mesh.clone(),
        mesh_tx: mesh_tx.clone(),
        upstreams: upstreams.clone(),
        seq: Arc::new(SeqGen::default()),
    };
    let c = cancel.clone();
    tasks.spawn(async move {
        prober.run(c).await;
        ("peer prober", Ok(()))
    });

    let token_path = Config::resolve(home, &config.admin.token_file);
    let token = admin::auth::load_or_create_token(&token_path)
        .map_err(|e| LaunchError::Config(format!("admin.token_file {}: {e}", token_path.display())))?;
    let warnings = exposure_warnings(&config, gateway_addr, admin_addr);
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let admin_state = AdminState {
        peer_id: own.to_peer_id().to_string(),
        public_key: own.to_hex(),
        network_id: config.network_id.clone(),
        trust_mode: config.trust.mode,
        chains: Arc::new(config.chains.clone()),
        gateway_addr,
        router,
        receipts: relay_receipts,
        // Its own client, as the prober's: vetting relays must not crowd client receipts out.
        relay: RelayClient::new(p2p.clone(), own, config.network_id.clone(), limits.clone(), metrics.clone())
            .with_streams(relay_streams.clone()),
        evidence: evidence.clone(),
        p2p: p2p.clone(),
        mesh: mesh.clone(),
        upstreams: upstreams.clone(),
        registry,
        started: Instant::now(),
        auth: admin::auth::AdminAuth::new(token, admin_addr, &config.admin.allowed_hosts),
        warnings: Arc::new(warnings),
    };
    let c = cancel.clone();
    tasks.spawn(async move {
        let app = admin::router(admin_state);
        let r = serve::serve(admin_listener, app, admin::serve_limits(), c).await;
        ("admin", r.map_err(|e| e.to_string()))
    });

    tracing::info!(peer_id = %own.to_peer_id(), network = %config.network_id, gateway = %gateway_addr, admin = %admin_addr, "rpcmesh node started");
    Ok(NodeHandle {
        peer_id: own.to_peer_id(),
        admin_addr,
        gateway_addr,
        p2p,
        mesh,
        evidence,
        cancel,
        tasks,
        _upstream_changed: upstream_changed_tx,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_beyond_loopback_is_warned_about() {
        let c = Config::default();
        let lo: SocketAddr = "127.0.0.1:8545".parse().unwrap();
        assert!(exposure_warnings(&c, lo, lo).is_empty());
        let public: SocketAddr = "0.0.0.0:8545".parse().unwrap();
        let w = exposure_warnings(&c, public, lo);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("gateway") && w[0].contains("0.0.0.0:8545"), "{w:?}");
        assert!(!w[0].contains("  "), "{w:?}");
        let w = exposure_warnings(&c, lo, public);
        assert!(w[0].contains("admin API") && w[0].contains("admin.token"), "{w:?}");
    }

    #[test]
    fn a_public_gateway_with_keys_required_or_a_quota_is_not_warned_about() {
        let public: SocketAddr = "0.0.0.0:8545".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:8546".parse().unwrap();
        let mut c = Config::default();
        c.gateway.keys = vec![crate::config::ApiKeyConfig {
            name: "a".into(),
            key_sha256: "ab".repeat(32),
            requests_per_sec: None,
            burst: None,
            allow_methods: Vec::new(),
        }];
        // Keys alone: strangers are still unlimited.
        let w = exposure_warnings(&c, public, lo);
        assert!(w.len() == 1 && w[0].contains("require_key = false"), "{w:?}");
        c.gateway.require_key = true;
        assert!(exposure_warnings(&c, public, lo).is_empty());
        let mut c = Config::default();
        c.gateway.per_ip_requests_per_sec = 10;
        assert!(exposure_warnings(&c, public, lo).is_empty());
    }
}
