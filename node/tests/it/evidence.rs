//! Evidence across a real libp2p mesh: whole nodes (`launch_with`, each with its own store, p2p on
//! loopback TCP, admin API) judging with stub hooks in place of the integrity layer.
//!
//! ```text
//!   accused A ── reporter R ── third C ── forger F (a bare p2p peer, connected to C only)
//! ```
//! A takes one connection (to R), so C never talks to it. R reports a bundle whose receipt A
//! signed; C re-checks it and cordons A. F publishes a forged bundle; C rejects it and F's gossip
//! score falls.

use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use rpcmesh_node::config::{ChainConfig, Config};
use rpcmesh_node::evidence::{EvidenceHooks, TrustedChain};
use rpcmesh_node::launch::{NodeHandle, launch_with};
use rpcmesh_node::p2p::{self, BehaviourSettings, P2pHandle, P2pSettings, TopicKind};
use rpcmesh_protocol::digest::sha256;
use rpcmesh_protocol::messages::{BlockRef, Evidence, LieKind, MessageHeader, Receipt};
use rpcmesh_protocol::validate::Limits;
use rpcmesh_protocol::{Identity, Signed};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const CHAIN: u64 = 1;
const ANCHOR: BlockRef = BlockRef { number: 1_000, hash: [0x11; 32] };
/// Generous bound for what normally takes a second or two.
const WAIT: Duration = Duration::from_secs(60);

struct Chain;
impl TrustedChain for Chain {
    fn contains(&self, chain_id: u64, block: &BlockRef) -> Option<bool> {
        (chain_id == CHAIN && block.number == ANCHOR.number).then_some(block.hash == ANCHOR.hash)
    }
}

/// The stub judge: the lie is proven when the answer is not the "true" balance `0x0`.
fn hooks() -> EvidenceHooks {
    let recheck = |e: &Evidence| -> Result<(), String> {
        if e.response.windows(5).any(|w| w == b"\"0x0\"") { Err("the proof agrees".into()) } else { Ok(()) }
    };
    EvidenceHooks { trusted_chain: Some(Arc::new(Chain)), recheck: Some(Arc::new(recheck)) }
}

fn config(net: &str, bootstrap: Vec<String>, chains: Vec<ChainConfig>) -> Config {
    let mut c = Config { network_id: net.into(), chains, ..Config::default() };
    c.p2p.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    c.p2p.bootstrap = bootstrap;
    c.p2p.loopback_only = true;
    c.gateway.addr = "127.0.0.1:0".parse().unwrap();
    c.admin.addr = "127.0.0.1:0".parse().unwrap();
    c.trust.mode = rpcmesh_node::config::TrustMode::Open;
    c.announce.heartbeat_ms = 1_000;
    c
}

/// Chain 1 without upstreams: announced (head unknown), routable in principle.
fn chain() -> ChainConfig {
    let mut c = ChainConfig::with_upstream(CHAIN, "http://127.0.0.1:9".into());
    c.upstreams.clear();
    c
}

async fn node(dir: &std::path::Path, id: &Identity, cfg: Config) -> NodeHandle {
    std::fs::create_dir_all(dir).unwrap();
    id.save(&dir.join("identity.key"), true).unwrap();
    launch_with(cfg, dir, hooks()).await.unwrap()
}

async fn wait(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !cond().await {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn dial_addr(n: &NodeHandle) -> String {
    let mut status = n.p2p.watch_status();
    let addr = status.wait_for(|s| !s.listen_addrs.is_empty()).await.unwrap().listen_addrs[0].clone();
    format!("{addr}/p2p/{}", n.peer_id)
}

async fn admin(n: &NodeHandle, path: &str) -> Value {
    let url = format!("http://{}{path}", n.admin_addr);
    let body = rpcmesh_node::admin::client::get_ok(&url, Duration::from_secs(5)).await.unwrap();
    serde_json::from_slice(&body).unwrap()
}

async fn metric(n: &NodeHandle, prefix: &str) -> f64 {
    let url = format!("http://{}/metrics", n.admin_addr);
    let body = rpcmesh_node::admin::client::get_ok(&url, Duration::from_secs(5)).await.unwrap();
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn subscribed(p2p: &P2pHandle, peer: PeerId) -> bool {
    p2p.topic_peers(TopicKind::Evidence).await.unwrap_or_default().contains(&peer)
}

/// `accused` answered `requester` a balance of `answer` and signed the receipt.
fn finding(net: &str, accused: &Identity, requester: &Identity, answer: &str) -> Evidence {
    let request = br#"{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0x00000000000000000000000000000000000000aa","0x3e8"]}"#.to_vec();
    let response = format!(r#"{{"jsonrpc":"2.0","id":1,"result":"{answer}"}}"#).into_bytes();
    let receipt = Receipt {
        header: MessageHeader::new(net, 1, rpcmesh_node::clock::now_ms(), 2_000),
        requester: requester.public_key(),
        chain_id: CHAIN,
        request_digest: sha256(&request),
        response_digest: sha256(&response),
        head: Some(ANCHOR.number),
    };
    Evidence {
        header: MessageHeader::new(net, 0, 0, 1),
        accused: accused.public_key(),
        chain_id: CHAIN,
        kind: LieKind::State,
        request,
        response,
        receipt: Signed::sign(receipt, accused),
        anchor: ANCHOR,
        material: vec![b"{\"stateRoot\":\"0x..\"}".to_vec()],
    }
}

/// A bare libp2p peer (the daemon's own p2p stack) that publishes whatever it is given.
async fn forger(net: &str, bootstrap: String) -> (Identity, P2pHandle, CancellationToken) {
    let identity = Identity::generate();
    let settings = P2pSettings {
        behaviour: BehaviourSettings {
            network_id: net.into(),
            max_connections: 1,
            max_connections_per_peer: 1,
            max_pending_incoming: 4,
            max_pending_per_ip: 4,
            max_incoming: 4,
            reserved_peers: vec![],
            max_gossip_bytes: 64 * 1024,
            max_relay_frame_bytes: 1 << 20,
            relay_timeout: Duration::from_secs(5),
            mdns: false,
            agent_version: "forger".into(),
        },
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        bootstrap: vec![bootstrap.parse().unwrap()],
        external: vec![],
        loopback_only: true,
        idle_timeout: Duration::from_secs(60),
        backoff_max: Duration::from_secs(1),
        limits: Limits::default(),
        initial_peers: vec![],
        initial_seqs: vec![],
    };
    let (events_tx, mut events_rx) = tokio::sync::mpsc::channel(1024);
    let (relay_tx, mut relay_rx) = tokio::sync::mpsc::channel(16);
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = rpcmesh_node::metrics::NodeMetrics::register(&mut registry);
    let (p2p, event_loop) = p2p::build(&identity, settings, events_tx, relay_tx, metrics, &mut registry).unwrap();
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move { event_loop.run(c).await });
    tokio::spawn(async move { while events_rx.recv().await.is_some() {} });
    tokio::spawn(async move { while relay_rx.recv().await.is_some() {} });
    (identity, p2p, cancel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proven_evidence_cordons_mesh_wide_and_a_forgery_costs_its_forwarder() {
    let net = format!("evidence-it-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let (a_id, r_id, c_id) = (Identity::generate(), Identity::generate(), Identity::generate());

    let r = node(&dir.path().join("r"), &r_id, config(&net, vec![], vec![])).await;
    let r_addr = dial_addr(&r).await;
    let c = node(&dir.path().join("c"), &c_id, config(&net, vec![r_addr.clone()], vec![chain()])).await;
    let mut a_cfg = config(&net, vec![r_addr], vec![chain()]);
    a_cfg.p2p.max_connections = 1;
    let a = node(&dir.path().join("a"), &a_id, a_cfg).await;

    // C learns of A through gossip only.
    wait("C to see A's announcement", async || {
        admin(&c, "/peers").await["providers"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["peer_id"] == a.peer_id.to_string()))
    })
    .await;
    wait("C on R's evidence topic", async || subscribed(&r.p2p, c.peer_id).await).await;

    // R reports A's wrong answer (A signed the receipt, as in a relay R sent it).
    let outcome = r.evidence.report(finding(&net, &a_id, &r_id, "0x56bc75e2d63100000")).await.unwrap();
    assert!(outcome.verified && outcome.published, "{outcome:?}");

    wait("C to accept and cordon", async || metric(&c, "rpcmesh_cordons_active").await >= 1.0).await;
    let list = admin(&c, "/evidence").await;
    let e = &list["evidence"][0];
    assert_eq!(e["accused"], a.peer_id.to_string());
    assert_eq!(e["reporter"], r.peer_id.to_string());
    assert_eq!(
        (e["verified"].clone(), e["cordoning"].clone(), e["own"].clone()),
        (true.into(), true.into(), false.into())
    );
    assert_eq!(e["method"], "eth_getBalance");
    let shown = admin(&c, &format!("/evidence/{}", e["id"])).await;
    assert_eq!(shown["decoded"]["receipt"]["signer"], a.peer_id.to_string());
    assert!(Signed::<Evidence>::from_bytes(&hex::decode(shown["signed_hex"].as_str().unwrap()).unwrap()).is_ok());
    // /peers shows the cordon, and routing skips A on that chain.
    wait("the cordon in C's /peers", async || {
        admin(&c, "/peers").await["providers"].as_array().into_iter().flatten().any(|p| {
            p["peer_id"] == a.peer_id.to_string()
                && p["cordons"][0]["kind"] == "state"
                && p["cordons"][0]["reporter"] == r.peer_id.to_string()
                && p["proven_lies"] == 1
        })
    })
    .await;
    let explain = admin(&c, &format!("/explain?chain={CHAIN}&method=eth_getBalance")).await;
    let reasons = explain["candidates"].to_string();
    assert!(reasons.contains("cordoned: proven state lie"), "{reasons}");

    // A forged bundle (digest of another answer) from F: C rejects it, F's score falls.
    let (f_id, f, f_cancel) = forger(&net, dial_addr(&c).await).await;
    wait("F on C's evidence topic", async || subscribed(&f, c.peer_id).await).await;
    let mut forged = finding(&net, &a_id, &f_id, "0x1");
    forged.response = br#"{"jsonrpc":"2.0","id":1,"result":"0x2"}"#.to_vec();
    forged.header = MessageHeader::new(&net, 1, rpcmesh_node::clock::now_ms(), 60_000);
    let mut bad_sig = finding(&net, &a_id, &f_id, "0x3");
    bad_sig.receipt.signature[0] ^= 1;
    bad_sig.header = MessageHeader::new(&net, 2, rpcmesh_node::clock::now_ms(), 60_000);
    for e in [forged, bad_sig] {
        f.publish(TopicKind::Evidence, Signed::sign(e, &f_id).to_bytes()).await.unwrap();
    }
    wait("C to reject both forgeries", async || metric(&c, "rpcmesh_evidence_total{outcome=\"rejected\"").await >= 2.0)
        .await;
    wait("F's gossip score at C below zero", async || {
        c.p2p.peer_scores().await.unwrap_or_default().iter().any(|(p, s)| *p == f_id.peer_id() && *s < 0.0)
    })
    .await;
    assert_eq!(admin(&c, "/evidence").await["evidence"].as_array().map(Vec::len), Some(1));

    // The operator clears the cordon on C.
    let url = format!("http://{}/cordons/{}?chain={CHAIN}", c.admin_addr, a.peer_id);
    // Mutating: with the admin token the node created in its home at start-up.
    let token_file = dir.path().join("c").join(rpcmesh_node::config::AdminConfig::default().token_file);
    let token = rpcmesh_node::admin::auth::read_token_file(&token_file).unwrap();
    rpcmesh_node::admin::client::delete(&url, Some(&token), Duration::from_secs(5)).await.unwrap();
    wait("the cordon cleared", async || metric(&c, "rpcmesh_cordons_active").await == 0.0).await;

    f_cancel.cancel();
    for n in [a, c, r] {
        n.shutdown(Duration::from_secs(5)).await;
    }
}
