//! The request path below the gateway: one routed request through every layer (policy →
//! plan → attempts → check → forward) with a no-op `Forward` that answers at once, over a mesh
//! snapshot of 10, 100 and 1000 trusted, healthy peers; its allocations per request (counted by
//! a wrapping global allocator); and `Router::explain` (built on demand for `/explain`).
//!
//! Run: `cargo bench -p rpcmesh-node --bench router` (add `-- --quick` for a fast pass).
//! See docs/benchmarks.md.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rpcmesh_node::config::RoutingConfig;
use rpcmesh_node::jsonrpc::{self, Answered, Call as RpcCall, Item, Request};
use rpcmesh_node::mesh::{AttestationSummary, ChainView, Health, MeshSnapshot, ProviderView, Source};
use rpcmesh_node::router::{
    Answer, AttemptError, Call, Forward, MethodPolicy, RouteOptions, Router, SharedForward, Target, VerifyMode,
};
use rpcmesh_node::trust::TrustStatus;
use rpcmesh_node::upstream::UpstreamSet;
use rpcmesh_protocol::messages::{CapacityAnnouncement, MessageHeader};
use rpcmesh_protocol::{Identity, Signed};

/// Counts allocations made through the global allocator.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const CHAIN: u64 = 1;
const NET: &str = "rpcmesh-bench";
const T0: u64 = 1_760_000_000_000;
const REFERENCE_HEAD: u64 = 21_000_000;
const SIZES: [usize; 3] = [10, 100, 1000];

fn identity(n: u32) -> Identity {
    let mut secret = [7u8; 32];
    secret[..4].copy_from_slice(&n.to_le_bytes());
    Identity::from_secret_bytes(secret)
}

fn chain_view(i: usize) -> ChainView {
    let head = REFERENCE_HEAD - (i % 3) as u64;
    ChainView {
        chain_id: CHAIN,
        announced_head: Some(head),
        announced_head_hash: Some(format!("0x{}", "ab".repeat(32))),
        head: Some(head),
        lag_blocks: Some((REFERENCE_HEAD - head) as i64),
        health: Health::Healthy,
        health_reason: "answering within the allowed lag".into(),
        latency_p50_us: Some(800 + (i as u32 * 37) % 5_000),
        latency_p95_us: Some(2_500 + (i as u32 * 53) % 10_000),
        success_rate: Some(0.99),
        utilisation_permille: ((i * 13) % 900) as u16,
        max_requests_per_sec: 500,
        max_concurrent_relays: 64,
        archive: i.is_multiple_of(2),
        method_groups: vec!["eth".into(), "net".into(), "web3".into()],
        policies: vec![],
    }
}

fn provider(id: &Identity, i: usize, is_self: bool) -> ProviderView {
    let key = id.public_key();
    let ann =
        CapacityAnnouncement::new(MessageHeader::new(NET, 1, T0, 60_000), vec![], vec![], None, "rpcmesh/0.1.0".into());
    let trust = if is_self {
        TrustStatus::Own
    } else if i.is_multiple_of(2) {
        TrustStatus::Member {
            federation: "ab".repeat(32),
            operator: format!("operator {i}"),
            expires_at_ms: T0 + 1,
            vetting: None,
        }
    } else {
        TrustStatus::Open
    };
    let attestations = (0..3)
        .map(|a| AttestationSummary {
            attester: format!("attester-{a}").into(),
            attester_trusted: true,
            chain_id: CHAIN,
            issued_at_ms: T0,
            probes_sent: 10,
            probes_ok: 10,
            latency_p50_us: 900,
            latency_p95_us: 2_000,
            head_lag_blocks: Some(0),
        })
        .collect();
    ProviderView {
        peer_id: key.to_peer_id().to_string(),
        public_key: key.to_hex(),
        is_self,
        trust,
        connected: true,
        seq: 1,
        announced_at_ms: T0,
        received_at_ms: T0,
        expires_at_ms: T0 + 60_000,
        expired: false,
        source: Source::Gossip,
        listen_addrs: vec!["/ip4/192.0.2.10/tcp/4001".into()],
        software_version: "rpcmesh/0.1.0".into(),
        operator: None,
        jurisdiction: None,
        chains: vec![chain_view(i)],
        attestations,
        announcement: Arc::new(Signed::sign(ann, id)),
        key,
    }
}

/// This node first (skipped by selection, as in a real snapshot), then `peers` peers.
fn snapshot(own: &Identity, peers: usize) -> MeshSnapshot {
    let mut providers = vec![provider(own, 0, true)];
    providers.extend((0..peers).map(|i| provider(&identity(i as u32 + 1), i, false)));
    MeshSnapshot::new(T0, BTreeMap::from([(CHAIN, REFERENCE_HEAD)]), providers.into_iter().map(Arc::new).collect())
}

/// Answers every call at once with a fixed result, judged as a real reply would be.
#[derive(Clone)]
struct NoOp;

const RESULT: &[u8] = br#"{"jsonrpc":"2.0","id":1,"result":"0x1406f40"}"#;

impl Forward for NoOp {
    fn forward<'a>(
        &'a self,
        _: &'a Call<'a>,
        _: Target,
        _: Duration,
    ) -> impl std::future::Future<Output = Result<Answer, AttemptError>> + Send + 'a {
        std::future::ready(Ok(Answer::new(Bytes::from_static(RESULT), Answered::Result(33..44))))
    }
}

fn request() -> Request {
    let raw = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#);
    match jsonrpc::parse(&raw) {
        RpcCall::Single(Item::Request(r)) => r,
        other => panic!("{other:?}"),
    }
}

fn router(own: &Identity, snap: MeshSnapshot) -> (Router, tokio::sync::watch::Sender<Arc<MeshSnapshot>>) {
    let (tx, rx) = tokio::sync::watch::channel(Arc::new(snap));
    let router = Router::new(
        own.public_key(),
        Arc::new(UpstreamSet::default()),
        &[],
        rx,
        SharedForward::new(NoOp),
        RoutingConfig::default(),
        MethodPolicy::default(),
        Default::default(),
    );
    (router, tx)
}

fn bench_route(c: &mut Criterion) {
    let own = identity(0);
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    let req = request();
    let opts = RouteOptions { failover: true, client: Some(1), verify: VerifyMode::Off, avoid: None };
    let mut g = c.benchmark_group("route");
    for n in SIZES {
        let (router, _tx) = router(&own, snapshot(&own, n));
        let routed = rt.block_on(router.route(CHAIN, &req, &opts));
        assert_eq!(&routed.body[..], RESULT, "{}", String::from_utf8_lossy(&routed.body));
        // Allocations per request, steady state (tables built, sticky entry present).
        let rounds = 1000u64;
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for _ in 0..rounds {
            black_box(rt.block_on(router.route(CHAIN, &req, &opts)));
        }
        let per = (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / rounds as f64;
        println!("route with {n} peers: {per:.1} allocations per request");
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new("one request, no-op forward", n), &n, |b, _| {
            b.iter(|| rt.block_on(router.route(CHAIN, black_box(&req), &opts)))
        });
    }
    // The same with the runtime's block_on alone, to subtract.
    g.bench_function("baseline: block_on of a ready future", |b| {
        b.iter(|| rt.block_on(std::future::ready(black_box(1))))
    });
    g.finish();
}

fn bench_explain(c: &mut Criterion) {
    let own = identity(0);
    let mut g = c.benchmark_group("router_explain");
    for n in SIZES {
        let (router, _tx) = router(&own, snapshot(&own, n));
        assert_eq!(router.explain(CHAIN, "eth_call", true, None, &[]).len(), n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("explain, peers only", n), &n, |b, _| {
            b.iter(|| router.explain(CHAIN, black_box("eth_call"), true, None, &[]))
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_route, bench_explain
}
criterion_main!(benches);
