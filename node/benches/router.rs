//! Router candidate selection: `select::candidates` over a mesh snapshot of 10, 100 and 1000
//! trusted, healthy peer providers on one chain, with no own upstream and with one; plus
//! `Router::explain` (what `Router::route` runs first on every request) and the per-request
//! clone of the breaker map it takes.
//!
//! Run: `cargo bench -p rpcmesh-node --bench router` (add `-- --quick` for a fast pass).
//! See docs/benchmarks.md.

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rpcmesh_node::config::RoutingConfig;
use rpcmesh_node::mesh::{AttestationSummary, ChainView, Health, MeshSnapshot, ProviderView, Source};
use rpcmesh_node::router::Router;
use rpcmesh_node::router::breaker::Breaker;
use rpcmesh_node::router::select::{self, SelectInput, Target};
use rpcmesh_node::trust::TrustStatus;
use rpcmesh_node::upstream::{HttpClient, Upstream, UpstreamSet};
use rpcmesh_protocol::messages::{CapacityAnnouncement, MessageHeader};
use rpcmesh_protocol::{Identity, Signed};

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
            attester: format!("attester-{a}"),
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

/// Steady state: the router has a breaker (with a latency EWMA) for every peer.
fn breakers(snap: &MeshSnapshot) -> HashMap<(u64, Target), Breaker> {
    snap.providers
        .iter()
        .filter(|p| !p.is_self)
        .enumerate()
        .map(|(i, p)| {
            let mut b = Breaker::default();
            b.success(Duration::from_micros(700 + (i as u64 * 29) % 4_000));
            ((CHAIN, Target::Peer(p.key)), b)
        })
        .collect()
}

/// One own upstream. It is never called; the client only needs to exist. Its status stays
/// `Starting` (status setters are crate-private), so it is ranked but not eligible.
fn one_upstream() -> UpstreamSet {
    let uri = "http://127.0.0.1:8545".parse().expect("static uri");
    let u = Upstream::new(CHAIN, uri, None, HttpClient::new(32 * 1024 * 1024), 60_000);
    for i in 0..64 {
        u.observe(Duration::from_micros(400 + i * 3), true);
    }
    UpstreamSet { chains: vec![(CHAIN, vec![Arc::new(u)])] }
}

fn bench_candidates(c: &mut Criterion) {
    let own = identity(0);
    let own_peer = own.peer_id().to_string();
    let input = SelectInput { chain_id: CHAIN, namespace: "eth", failover: true, max_lag: 3, own_peer: &own_peer };
    let upstream_sets = [("peers only", UpstreamSet::default()), ("own upstream + peers", one_upstream())];

    let mut g = c.benchmark_group("select_candidates");
    for n in SIZES {
        let snap = snapshot(&own, n);
        let map = breakers(&snap);
        let lookup = |t: &Target| map.get(&(CHAIN, t.clone())).cloned();
        g.throughput(Throughput::Elements(n as u64));
        for (label, ups) in &upstream_sets {
            let out = select::candidates(&input, ups, &snap, &lookup, Instant::now());
            let own_count = ups.for_chain(CHAIN).len();
            assert_eq!(out.len(), n + own_count);
            assert_eq!(out.iter().filter(|c| c.eligible).count(), n, "{label}: all peers must be eligible");
            g.bench_with_input(BenchmarkId::new(*label, n), &snap, |b, snap| {
                b.iter(|| select::candidates(&input, ups, black_box(snap), &lookup, Instant::now()))
            });
        }
    }
    g.finish();
}

/// `Router::explain` (snapshot from the watch channel, breaker map clone, `candidates`), with
/// an empty breaker map (breakers are only filled by routing real traffic); plus the cost of
/// cloning a full breaker map, which `explain` adds per request in steady state.
fn bench_explain(c: &mut Criterion) {
    let own = identity(0);
    let mut g = c.benchmark_group("router_explain");
    for n in SIZES {
        let snap = snapshot(&own, n);
        let map = breakers(&snap);
        let (_tx, rx) = tokio::sync::watch::channel(Arc::new(snap));
        let router =
            Router::new(own.public_key(), Arc::new(UpstreamSet::default()), &[], rx, None, RoutingConfig::default());
        assert_eq!(router.explain(CHAIN, "eth_call", true).len(), n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("explain, peers only", n), &n, |b, _| {
            b.iter(|| router.explain(CHAIN, black_box("eth_call"), true))
        });
        g.bench_with_input(BenchmarkId::new("clone full breaker map", n), &map, |b, map| {
            b.iter(|| black_box(map).clone())
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
    targets = bench_candidates, bench_explain
}
criterion_main!(benches);
