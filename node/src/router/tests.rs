//! Routing to peers through a real `RelayClient` whose p2p handle is answered by scripted fake
//! providers (no swarm): each answers a relay `Ok` with a signed receipt, `Busy`, slowly, or
//! never. Covers what the relay path changes: utilisation as a ranking penalty, `Busy`
//! handling, hedge losers and the hedge budget.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use libp2p::PeerId;
use rpcmesh_protocol::messages::{
    CapacityAnnouncement, MessageHeader, Receipt, RelayRequest, RelayResponse, RelayStatus,
};
use rpcmesh_protocol::validate::Limits;
use rpcmesh_protocol::{Identity, PublicKey, Signed, digest, encoding};
use tokio::sync::{mpsc, watch};

use super::breaker::{Admission, Breaker};
use super::select::Target;
use super::{RouteOptions, Router};
use crate::clock::now_ms;
use crate::config::RoutingConfig;
use crate::gateway::jsonrpc::Request;
use crate::mesh::{ChainView, Health, MeshSnapshot, ProviderView, Source};
use crate::metrics::NodeMetrics;
use crate::p2p::{Command, P2pHandle, P2pStatus};
use crate::relay::{RelayClient, status_response};
use crate::trust::TrustStatus;
use crate::upstream::UpstreamSet;

const NET: &str = "rpcmesh-router-test";
const CHAIN: u64 = 1;
const HEAD: u64 = 100;
const RESULT: &[u8] = br#"{"jsonrpc":"2.0","id":1,"result":"0x64"}"#;

/// How a fake provider answers one relay.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Ok,
    Busy,
    /// `Ok`, after this long.
    Slow(Duration),
    /// Never.
    Hang,
}

struct FakePeer {
    id: Identity,
    /// Answers for the next relays, in order; then `then`.
    script: Mutex<VecDeque<Answer>>,
    then: Answer,
    calls: AtomicUsize,
}

impl FakePeer {
    fn next(&self) -> Answer {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.script.lock().unwrap().pop_front().unwrap_or(self.then)
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// One fake provider: its latency estimate and announced utilisation as the mesh shows them,
/// and how it answers.
struct Spec {
    p50_us: u32,
    utilisation_permille: u16,
    script: Vec<Answer>,
    then: Answer,
}

impl Spec {
    fn new(p50_us: u32, then: Answer) -> Self {
        Self { p50_us, utilisation_permille: 0, script: Vec::new(), then }
    }
}

struct Mesh {
    router: Router,
    peers: Vec<Arc<FakePeer>>,
}

impl Mesh {
    fn key(&self, i: usize) -> PublicKey {
        self.peers[i].id.public_key()
    }

    fn breaker(&self, i: usize) -> Breaker {
        let map = self.router.inner.breakers.lock().unwrap();
        map.get(&(CHAIN, Target::Peer(self.key(i)))).cloned().unwrap_or_default()
    }

    /// Nothing ever counted against peer `i`.
    fn assert_no_failure(&self, i: usize) {
        let b = self.breaker(i);
        assert_eq!(b.recent_err, 0.0, "peer {i} has a failure recorded: {b:?}");
        assert_eq!(b.admission(Instant::now()), Admission::Open, "peer {i}: {b:?}");
    }

    async fn route(&self) -> super::Routed {
        let req = Request {
            raw: Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#),
            method: "eth_blockNumber".into(),
            id: Some(Bytes::from_static(b"1")),
        };
        self.router.route(CHAIN, &req, RouteOptions { failover: true, client: None }).await
    }

    fn served_by(&self, i: usize) -> Option<String> {
        Some(self.key(i).to_peer_id().to_string())
    }
}

fn identity(n: u8) -> Identity {
    Identity::from_secret_bytes([n; 32])
}

fn provider(id: &Identity, spec: &Spec) -> ProviderView {
    let key = id.public_key();
    let ann = CapacityAnnouncement::new(
        MessageHeader::new(NET, 1, now_ms(), 60_000),
        vec![],
        vec![],
        None,
        "rpcmesh/test".into(),
    );
    ProviderView {
        peer_id: key.to_peer_id().to_string(),
        public_key: key.to_hex(),
        is_self: false,
        trust: TrustStatus::Open,
        connected: true,
        seq: 1,
        announced_at_ms: now_ms(),
        received_at_ms: now_ms(),
        expires_at_ms: now_ms() + 60_000,
        expired: false,
        source: Source::Gossip,
        listen_addrs: vec![],
        software_version: "rpcmesh/test".into(),
        operator: None,
        chains: vec![ChainView {
            chain_id: CHAIN,
            announced_head: Some(HEAD),
            announced_head_hash: None,
            head: Some(HEAD),
            lag_blocks: Some(0),
            health: Health::Healthy,
            health_reason: "answering within the allowed lag".into(),
            latency_p50_us: Some(spec.p50_us),
            latency_p95_us: Some(spec.p50_us * 2),
            success_rate: Some(1.0),
            utilisation_permille: spec.utilisation_permille,
            max_requests_per_sec: 1000,
            max_concurrent_relays: 64,
            archive: false,
            method_groups: vec!["eth".into()],
            policies: vec![],
        }],
        attestations: vec![],
        announcement: Arc::new(Signed::sign(ann, id)),
        key,
    }
}

/// A fake provider's answer to one relay request, as its relay server would encode it.
fn respond(id: &Identity, requester: PublicKey, raw: &[u8]) -> Vec<u8> {
    let Ok(req) = encoding::from_bytes::<RelayRequest>(raw) else {
        return status_response(raw, NET, RelayStatus::Refused, "undecodable");
    };
    let header = MessageHeader::new(NET, req.header.seq, now_ms(), 60_000);
    let receipt = Signed::sign(
        Receipt {
            header: header.clone(),
            requester,
            chain_id: req.chain_id,
            request_digest: digest::sha256(&req.body),
            response_digest: digest::sha256(RESULT),
            head: Some(HEAD),
        },
        id,
    );
    encoding::to_bytes(&RelayResponse {
        header,
        status: RelayStatus::Ok,
        body: RESULT.to_vec(),
        receipt: Some(receipt),
    })
}

/// Serves the relay commands of the router's p2p handle from the fake providers.
fn serve_relays(mut commands: mpsc::Receiver<Command>, own: PublicKey, peers: HashMap<PeerId, Arc<FakePeer>>) {
    tokio::spawn(async move {
        while let Some(cmd) = commands.recv().await {
            let Command::Relay { peer, request, reply } = cmd else { continue };
            let Some(p) = peers.get(&peer).cloned() else {
                let _ = reply.send(Err(crate::p2p::P2pError::Relay { peer, reason: "unknown peer".into() }));
                continue;
            };
            tokio::spawn(async move {
                let answer = match p.next() {
                    Answer::Ok => respond(&p.id, own, &request),
                    Answer::Busy => status_response(&request, NET, RelayStatus::Busy, "at capacity"),
                    Answer::Slow(d) => {
                        tokio::time::sleep(d).await;
                        respond(&p.id, own, &request)
                    }
                    Answer::Hang => {
                        // Holding the reply channel keeps the relay unanswered.
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        drop(reply);
                        return;
                    }
                };
                let _ = reply.send(Ok(answer));
            });
        }
    });
}

/// A router with no own upstream, over a mesh of the given fake providers (peer `i` is
/// `identity(i + 1)`).
fn mesh(routing: RoutingConfig, specs: Vec<Spec>) -> Mesh {
    let own = identity(200);
    let mut peers = Vec::new();
    let mut views = Vec::new();
    for (i, spec) in specs.into_iter().enumerate() {
        let id = identity(i as u8 + 1);
        views.push(provider(&id, &spec));
        peers.push(Arc::new(FakePeer {
            id,
            script: Mutex::new(spec.script.into()),
            then: spec.then,
            calls: AtomicUsize::new(0),
        }));
    }
    let snap =
        MeshSnapshot::new(now_ms(), BTreeMap::from([(CHAIN, HEAD)]), views.into_iter().map(Into::into).collect());
    let (commands_tx, commands_rx) = mpsc::channel(64);
    let p2p = P2pHandle::new(own.peer_id(), commands_tx, watch::channel(P2pStatus::default()).1);
    let metrics = NodeMetrics::register(&mut prometheus_client::registry::Registry::default());
    let relay = RelayClient::new(p2p, own.public_key(), NET.into(), Limits::default(), metrics);
    serve_relays(commands_rx, own.public_key(), peers.iter().map(|p| (p.id.peer_id(), p.clone())).collect());
    let router = Router::new(
        own.public_key(),
        Arc::new(UpstreamSet::default()),
        &[],
        watch::channel(Arc::new(snap)).1,
        Some(relay),
        routing,
    );
    Mesh { router, peers }
}

fn is_error(body: &[u8]) -> bool {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v["error"]["code"] == -32002
}

#[tokio::test]
async fn full_utilisation_is_a_penalty_not_ineligibility() {
    // Alone at full utilisation: still eligible, and it serves.
    let alone =
        mesh(RoutingConfig::default(), vec![Spec { utilisation_permille: 1000, ..Spec::new(1_000, Answer::Ok) }]);
    let c = alone.router.explain(CHAIN, "eth_blockNumber", true);
    assert!(c[0].eligible && c[0].saturated, "{c:?}");
    let r = alone.route().await;
    assert_eq!(r.served_by, alone.served_by(0), "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.body, Bytes::from_static(RESULT));

    // Next to a peer with headroom: ranked after it, even though it is far faster.
    let two = mesh(
        RoutingConfig::default(),
        vec![Spec { utilisation_permille: 1000, ..Spec::new(100, Answer::Ok) }, Spec::new(40_000, Answer::Ok)],
    );
    let c = two.router.explain(CHAIN, "eth_blockNumber", true);
    assert!(c.iter().all(|c| c.eligible), "{c:?}");
    assert_eq!(c[0].target, Target::Peer(two.key(1)), "the peer with headroom first: {c:?}");
    assert_eq!(c[1].target, Target::Peer(two.key(0)));
    assert!(c[1].score < c[0].score, "by score alone it would have been first");
    let r = two.route().await;
    assert_eq!(r.served_by, two.served_by(1));
}

#[tokio::test]
async fn busy_sole_peer_is_asked_again_within_the_deadline() {
    let m =
        mesh(RoutingConfig::default(), vec![Spec { script: vec![Answer::Busy; 3], ..Spec::new(1_000, Answer::Ok) }]);
    let r = m.route().await;
    assert_eq!(r.served_by, m.served_by(0), "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.body, Bytes::from_static(RESULT));
    assert_eq!(r.attempts, 4, "three busy answers, then served");
    assert_eq!(m.peers[0].calls(), 4);
    let b = m.breaker(0);
    assert_eq!(b.recent_err, 0.0, "busy is not a failure: {b:?}");
    assert!(b.ewma_us.is_some(), "the success was recorded");
}

#[tokio::test]
async fn busy_peer_is_left_at_once_for_another_and_not_counted() {
    // 1 µs: still first once the other has a measured latency.
    let m = mesh(RoutingConfig::default(), vec![Spec::new(1, Answer::Busy), Spec::new(5_000, Answer::Ok)]);
    assert_eq!(m.router.explain(CHAIN, "eth_blockNumber", true)[0].target, Target::Peer(m.key(0)));
    for _ in 0..5 {
        let r = m.route().await;
        assert_eq!(r.served_by, m.served_by(1));
        assert_eq!(r.attempts, 2);
    }
    assert_eq!(m.peers[0].calls(), 5, "asked once per request, then left for the other");
    m.assert_no_failure(0);
}

#[tokio::test]
async fn busy_until_the_deadline_fails_at_the_deadline_without_ejecting() {
    let routing = RoutingConfig { request_timeout_ms: 300, ..RoutingConfig::default() };
    let m = mesh(routing, vec![Spec::new(1_000, Answer::Busy)]);
    let started = Instant::now();
    let r = m.route().await;
    let took = started.elapsed();
    assert!(is_error(&r.body), "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.served_by, None);
    assert!(took >= Duration::from_millis(250), "gave up early: {took:?}");
    assert!(took < Duration::from_secs(2), "overran the deadline: {took:?}");
    let calls = m.peers[0].calls();
    assert!(calls >= 5, "asked again with a short backoff: {calls} calls");
    assert!(calls <= 100, "the backoff grows: {calls} calls in 300 ms");
    assert_eq!(r.attempts as usize, calls);
    m.assert_no_failure(0);
}

#[tokio::test]
async fn a_cancelled_hedge_loser_is_not_a_failure_when_the_winner_was_slow_too() {
    // The first peer answers correctly but slower than its hedge delay (25 ms); the second,
    // slow as well (a CPU burst slows everyone), wins the hedge and the first is cancelled.
    let m = mesh(
        RoutingConfig::default(),
        vec![
            Spec::new(1_000, Answer::Slow(Duration::from_millis(300))),
            Spec::new(20_000, Answer::Slow(Duration::from_millis(15))),
        ],
    );
    assert_eq!(m.router.explain(CHAIN, "eth_blockNumber", true)[0].target, Target::Peer(m.key(0)));
    let r = m.route().await;
    assert_eq!(r.served_by, m.served_by(1));
    assert_eq!(r.attempts, 2);
    let b = m.breaker(0);
    assert_eq!(b.recent_err, 0.0, "a cancelled loser is not a failure: {b:?}");
    assert_eq!(b.recent_ok, 0.0, "nor a success: it never answered: {b:?}");
    assert!(b.ewma_us.is_none(), "{b:?}");
    assert_eq!(b.admission(Instant::now()), Admission::Open);
}

#[tokio::test]
async fn a_silent_peer_outrun_by_a_fast_hedge_is_blamed() {
    // A frozen provider: waited on for its whole hedge delay (25 ms) while the hedge answered
    // at once. That is a failure (three eject it), unlike losing to a hedge that was slow too.
    let m = mesh(RoutingConfig::default(), vec![Spec::new(1_000, Answer::Hang), Spec::new(20_000, Answer::Ok)]);
    let r = m.route().await;
    assert_eq!((r.served_by.clone(), r.attempts), (m.served_by(1), 2), "hedged to the second peer");
    let b = m.breaker(0);
    assert!(b.recent_err > 0.0, "the outrun loser is blamed: {b:?}");
    m.assert_no_failure(1);
}

#[tokio::test]
async fn without_hedge_budget_a_silent_peer_is_failed_over_at_its_hard_timeout() {
    let m = mesh(RoutingConfig::default(), vec![Spec::new(1_000, Answer::Hang), Spec::new(20_000, Answer::Ok)]);
    while m.router.inner.hedges.try_spend() {}
    let started = Instant::now();
    let r = m.route().await;
    let took = started.elapsed();
    assert_eq!(r.served_by, m.served_by(1));
    assert_eq!(r.attempts, 2);
    // Hedge delay 25 ms (3 × 1 ms, floored); hard timeout max(4 × 25 ms, 500 ms).
    assert!(took >= super::HARD_TIMEOUT_MIN, "no hedge without budget: served after {took:?}");
    let b = m.breaker(0);
    assert!(b.recent_err > 0.0, "no answer within the hard timeout is a failure: {b:?}");
    m.assert_no_failure(1);
}

#[tokio::test]
async fn hedges_are_capped_per_router() {
    // Nobody answers within the 100 ms deadline, so every request reaches its hedge delay
    // (25 ms), and the ranking never changes (relays that time out with the deadline count as
    // failures, but never eject and never outweigh the 500× latency gap): each request is
    // hedged exactly when the budget allows.
    let routing = RoutingConfig { request_timeout_ms: 100, eject_after_failures: u32::MAX, ..RoutingConfig::default() };
    let m = mesh(routing, vec![Spec::new(100, Answer::Hang), Spec::new(50_000, Answer::Hang)]);
    let mut hedged = 0;
    for _ in 0..30 {
        let r = m.route().await;
        assert!(is_error(&r.body));
        if r.attempts == 2 {
            hedged += 1;
        }
    }
    // 10 saved up, then one per 10 requests: the 10th and 20th after the burst (30 × 0.1).
    assert_eq!(hedged, 12, "{hedged} of 30 requests hedged");
    assert_eq!(m.peers[0].calls(), 30);
    assert_eq!(m.peers[1].calls(), hedged);
}
