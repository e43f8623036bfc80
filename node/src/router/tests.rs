//! The router as a whole (policy → planning → attempts) over a mesh snapshot of peers and a
//! scripted [`Forward`]: no p2p channel, no receipts.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use rpcmesh_protocol::messages::{CapacityAnnouncement, MessageHeader};
use rpcmesh_protocol::{Identity, PublicKey, Signed};
use tokio::sync::watch;

use super::outcome::CheckFailure;
use super::testkit::{RESULT, Scripted, Step, request};
use super::*;
use crate::clock::now_ms;
use crate::mesh::{ChainView, Health, ProviderView, Source};
use crate::trust::TrustStatus;

const NET: &str = "rpcmesh-router-test";
const CHAIN: u64 = 1;
const HEAD: u64 = 100;

/// One fake peer as the mesh shows it.
struct Spec {
    p50_us: u32,
    utilisation_permille: u16,
    groups: &'static [&'static str],
    trust: TrustStatus,
}

impl Spec {
    fn new(p50_us: u32) -> Self {
        Self { p50_us, utilisation_permille: 0, groups: &["eth"], trust: TrustStatus::Open }
    }
}

fn identity(n: u8) -> Identity {
    Identity::from_secret_bytes([n; 32])
}

fn provider(id: &Identity, spec: &Spec) -> ProviderView {
    let key = id.public_key();
    let ann = CapacityAnnouncement::new(MessageHeader::new(NET, 1, now_ms(), 60_000), vec![], vec![], None, "t".into());
    ProviderView {
        peer_id: key.to_peer_id().to_string(),
        public_key: key.to_hex(),
        is_self: false,
        trust: spec.trust.clone(),
        connected: true,
        seq: 1,
        announced_at_ms: now_ms(),
        received_at_ms: now_ms(),
        expires_at_ms: now_ms() + 60_000,
        expired: false,
        source: Source::Gossip,
        listen_addrs: vec![],
        software_version: "t".into(),
        operator: None,
        jurisdiction: None,
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
            method_groups: spec.groups.iter().map(|g| g.to_string()).collect(),
            policies: vec![],
        }],
        attestations: vec![],
        announcement: Arc::new(Signed::sign(ann, id)),
        key,
    }
}

struct Mesh {
    router: Router,
    scripted: Scripted,
    keys: Vec<PublicKey>,
}

impl Mesh {
    fn peer(&self, i: usize) -> Target {
        Target::Peer(self.keys[i])
    }

    fn served_by(&self, i: usize) -> Option<Arc<str>> {
        Some(Arc::from(self.keys[i].to_peer_id().to_string()))
    }

    async fn route(&self, method: &str) -> Routed {
        self.router
            .route(
                CHAIN,
                &request(method),
                &RouteOptions { failover: true, client: Some(7), verify: VerifyMode::Off, avoid: None },
            )
            .await
    }
}

/// A router with no own upstream over peers `identity(i + 1)` answering `Step::Ok`.
fn mesh(routing: RoutingConfig, specs: Vec<Spec>) -> Mesh {
    let own = identity(200);
    let views: Vec<Arc<ProviderView>> =
        specs.iter().enumerate().map(|(i, s)| Arc::new(provider(&identity(i as u8 + 1), s))).collect();
    let keys: Vec<PublicKey> = views.iter().map(|v| v.key).collect();
    let scripted = Scripted::default();
    for k in &keys {
        scripted.script(Target::Peer(*k), vec![], Step::Ok);
    }
    let snap = MeshSnapshot::new(now_ms(), BTreeMap::from([(CHAIN, HEAD)]), views);
    let router = Router::new(
        own.public_key(),
        Arc::new(UpstreamSet::default()),
        &[],
        watch::channel(Arc::new(snap)).1,
        SharedForward::new(scripted.clone()),
        routing,
        MethodPolicy::default(),
        Default::default(),
    );
    Mesh { router, scripted, keys }
}

fn error_code(body: &[u8]) -> Option<i64> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v["error"]["code"].as_i64()
}

#[tokio::test(start_paused = true)]
async fn full_utilisation_is_a_penalty_not_ineligibility() {
    let alone = mesh(RoutingConfig::default(), vec![Spec { utilisation_permille: 1000, ..Spec::new(1_000) }]);
    let c = alone.router.explain(CHAIN, "eth_blockNumber", true, None, &[]);
    assert!(c[0].eligible && c[0].saturated, "{c:?}");
    let r = alone.route("eth_blockNumber").await;
    assert_eq!(r.served_by, alone.served_by(0), "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.body, Bytes::from_static(RESULT));
    assert_eq!(r.status, RouteStatus::Ok);

    // Next to a peer with headroom: ranked after it, even though it is far faster.
    let two =
        mesh(RoutingConfig::default(), vec![Spec { utilisation_permille: 1000, ..Spec::new(100) }, Spec::new(40_000)]);
    let c = two.router.explain(CHAIN, "eth_blockNumber", true, None, &[]);
    assert!(c.iter().all(|c| c.eligible), "{c:?}");
    assert_eq!((c[0].target, c[1].target), (two.peer(1), two.peer(0)), "the peer with headroom first: {c:?}");
    assert!(c[1].score < c[0].score, "by score alone it would have been first");
    assert_eq!(two.route("eth_blockNumber").await.served_by, two.served_by(1));
}

#[tokio::test(start_paused = true)]
async fn refused_methods_never_reach_a_provider() {
    let m = mesh(RoutingConfig::default(), vec![Spec { groups: &["eth", "anvil", "debug"], ..Spec::new(1_000) }]);
    for method in ["anvil_reset", "eth_sendTransaction", "eth_sign", "debug_traceTransaction", "evm_mine"] {
        let r = m.route(method).await;
        assert_eq!(error_code(&r.body), Some(-32601), "{method}: {}", String::from_utf8_lossy(&r.body));
        let text = String::from_utf8_lossy(&r.body).to_string();
        assert!(text.contains("gateway.allow_methods"), "names the setting: {text}");
        assert_eq!((r.attempts, r.status), (0, RouteStatus::CallerError));
    }
    assert!(m.scripted.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_namespace_no_peer_serves_is_method_not_found() {
    let m = mesh(RoutingConfig::default(), vec![Spec::new(1_000)]);
    let router = Router::new(
        identity(200).public_key(),
        Arc::new(UpstreamSet::default()),
        &[],
        m.router.inner.mesh.clone(),
        SharedForward::new(m.scripted.clone()),
        RoutingConfig::default(),
        MethodPolicy::new(MethodRules::allow_all(), Default::default()),
        Default::default(),
    );
    let r = router.route(CHAIN, &request("debug_traceTransaction"), &RouteOptions::internal(true)).await;
    assert_eq!(error_code(&r.body), Some(-32601), "{}", String::from_utf8_lossy(&r.body));
    assert!(m.scripted.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn untrusted_peers_are_never_planned_and_explain_says_why() {
    let m = mesh(
        RoutingConfig::default(),
        vec![Spec { trust: TrustStatus::Untrusted { reason: "no certificate".into() }, ..Spec::new(1_000) }],
    );
    let c = m.router.explain(CHAIN, "eth_blockNumber", true, None, &[]);
    assert_eq!(c[0].reasons, vec!["not trusted".to_string()]);
    let r = m.route("eth_blockNumber").await;
    assert_eq!(error_code(&r.body), Some(-32002));
    assert!(String::from_utf8_lossy(&r.body).contains("no eligible provider"));
    assert_eq!((r.status, r.target), (RouteStatus::NoProvider, None));
    assert!(m.scripted.calls().is_empty());
}

/// The three ways of getting no answer are told apart for metrics; the client sees -32002 for each.
#[tokio::test(start_paused = true)]
async fn failing_providers_and_failed_verification_are_distinct_outcomes() {
    let m = mesh(RoutingConfig { hedge: false, ..RoutingConfig::default() }, vec![Spec::new(1_000)]);
    m.scripted.script(m.peer(0), vec![], Step::Fail(AttemptError::Http(502)));
    let r = m.route("eth_blockNumber").await;
    assert_eq!((error_code(&r.body), r.status), (Some(-32002), RouteStatus::UpstreamError));
    let unverified = AttemptError::Unverified(CheckFailure { kind: "header_hash", detail: "wrong hash".into() });
    m.scripted.script(m.peer(0), vec![], Step::Fail(unverified));
    let r = m.route("eth_blockNumber").await;
    assert_eq!((error_code(&r.body), r.status), (Some(-32002), RouteStatus::Unverified));
    assert!(String::from_utf8_lossy(&r.body).contains("no provider gave an answer that passed verification"));
    assert_eq!(RouteStatus::Unverified.label(), "verification_failed");
}

#[tokio::test(start_paused = true)]
async fn a_client_sticks_to_its_provider_within_the_hysteresis() {
    // Peer 1 is slightly slower (within 2x): once it served this client, it keeps serving it.
    let m = mesh(RoutingConfig { hedge: false, ..RoutingConfig::default() }, vec![Spec::new(1_000), Spec::new(1_500)]);
    m.scripted.script(m.peer(0), vec![Step::Fail(AttemptError::Http(502))], Step::Ok);
    let r = m.route("eth_blockNumber").await;
    assert_eq!(r.served_by, m.served_by(1), "failed over once");
    assert_eq!((r.target, r.tally.failovers, r.tally.finished.len()), (Some(m.peer(1)), 1, 2));
    for _ in 0..3 {
        assert_eq!(m.route("eth_blockNumber").await.served_by, m.served_by(1), "sticky");
    }
}

#[tokio::test(start_paused = true)]
async fn ids_reach_the_client_byte_for_byte() {
    let m = mesh(RoutingConfig::default(), vec![Spec::new(1_000)]);
    let raw = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1.50,"method":"eth_blockNumber","params":[]}"#);
    let crate::jsonrpc::Call::Single(crate::jsonrpc::Item::Request(req)) = crate::jsonrpc::parse(&raw) else {
        panic!()
    };
    assert_eq!(req.upstream_id(), Some(&b"1"[..]), "nodes get an id they echo");
    let r = m.router.route(CHAIN, &req, &RouteOptions::internal(true)).await;
    assert_eq!(&r.body[..], br#"{"jsonrpc":"2.0","id":1.50,"result":"0x64"}"#);
}

#[tokio::test(start_paused = true)]
async fn identical_requests_in_flight_are_asked_once_and_cached_answers_reused() {
    let mut m = mesh(RoutingConfig { hedge: false, ..RoutingConfig::default() }, vec![Spec::new(1_000)]);
    let settings = cache::CacheSettings {
        max_bytes: 1 << 20,
        final_depth_blocks: 10,
        head_ttl: std::time::Duration::from_secs(60),
    };
    m.router = m.router.with_cache(Some(cache::ResponseCache::new(settings, Default::default())));
    let peer = Target::Peer(m.keys[0]);
    m.scripted.script(peer, vec![], Step::Slow(std::time::Duration::from_millis(50)));
    let (a, b) = tokio::join!(m.route("eth_blockNumber"), m.route("eth_blockNumber"));
    assert_eq!(m.scripted.calls_to(peer), 1, "the second waited for the first's answer");
    let mut outcomes = [a.cache, b.cache];
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(outcomes, [CacheOutcome::Coalesced, CacheOutcome::Miss]);
    assert_eq!(&a.body[..], RESULT);
    assert_eq!(&b.body[..], RESULT);
    let c = m.route("eth_blockNumber").await;
    assert_eq!((c.cache, m.scripted.calls_to(peer)), (CacheOutcome::Hit, 1), "then from the cache");
    assert_eq!(c.served_by, m.served_by(0), "naming who served it first");
    // Writes are never cached.
    let w = m.route("eth_sendRawTransaction").await;
    assert_eq!(w.cache, CacheOutcome::None);
}

/// Answers `eth_getLogs` with one log per block of ranges up to `self.0` blocks, and refuses
/// wider ones as hosted providers do.
struct RangeLimited(u64);

impl Forward for RangeLimited {
    async fn forward<'a>(
        &'a self,
        call: &'a Call<'a>,
        _: Target,
        _: std::time::Duration,
    ) -> Result<Answer, AttemptError> {
        let v: serde_json::Value = serde_json::from_slice(call.req.upstream_body()).unwrap();
        // An absent bound is `latest`: the head.
        let n = |k: &str| {
            v["params"][0][k].as_str().map_or(HEAD, |s| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap())
        };
        let (from, to) = (n("fromBlock"), n("toBlock"));
        let id = v["id"].clone();
        let body = if to - from + 1 > self.0 {
            let message = format!("query exceeds max block range {}", self.0);
            serde_json::json!({ "jsonrpc": "2.0", "id": id, "error": { "code": -32005, "message": message } })
                .to_string()
        } else {
            let logs: Vec<serde_json::Value> =
                (from..=to).map(|b| serde_json::json!({ "blockNumber": format!("{b:#x}") })).collect();
            serde_json::json!({ "jsonrpc": "2.0", "id": id, "result": logs }).to_string()
        };
        super::classify::judge_body(call.req, Bytes::from(body))
    }
}

#[tokio::test(start_paused = true)]
async fn a_log_range_over_every_providers_limit_is_split_and_merged_in_order() {
    let m = mesh(RoutingConfig { hedge: false, ..RoutingConfig::default() }, vec![Spec::new(1_000), Spec::new(2_000)]);
    let router = Router::new(
        identity(200).public_key(),
        Arc::new(UpstreamSet::default()),
        &[],
        m.router.inner.mesh.clone(),
        SharedForward::new(RangeLimited(16)),
        RoutingConfig { hedge: false, ..RoutingConfig::default() },
        MethodPolicy::default(),
        Default::default(),
    );
    let raw = Bytes::from_static(
        br#"{"jsonrpc":"2.0","id":"q","method":"eth_getLogs","params":[{"fromBlock":"0x0","toBlock":"0x63"}]}"#,
    );
    let crate::jsonrpc::Call::Single(crate::jsonrpc::Item::Request(req)) = crate::jsonrpc::parse(&raw) else {
        panic!()
    };
    let r = router.route(CHAIN, &req, &RouteOptions::internal(true)).await;
    assert_eq!(r.status, RouteStatus::Ok, "{}", String::from_utf8_lossy(&r.body));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["id"], "q");
    let blocks: Vec<u64> = v["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| u64::from_str_radix(l["blockNumber"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap())
        .collect();
    assert_eq!(blocks, (0..=99).collect::<Vec<_>>(), "every block once, in order");
    // `latest` resolves to the mesh's reference head (100).
    let raw = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"eth_getLogs","params":[{"fromBlock":"0x40"}]}"#);
    let crate::jsonrpc::Call::Single(crate::jsonrpc::Item::Request(req)) = crate::jsonrpc::parse(&raw) else {
        panic!()
    };
    let r = router.route(CHAIN, &req, &RouteOptions::internal(true)).await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["result"].as_array().map(Vec::len), Some(37), "blocks 64..=100");
}
