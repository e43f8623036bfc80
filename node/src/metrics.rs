//! Prometheus metrics: one registry per daemon, holding rpcmesh's own families (`rpcmesh_*`)
//! and libp2p's, all under `libp2p_` (bandwidth, swarm connections, identify, kad, ping, and
//! gossipsub's own families under `libp2p_gossipsub_`, e.g. `libp2p_gossipsub_topic_peers_counts`):
//! no family is unprefixed, so the daemon can share a Prometheus with anything. Served as text at
//! the admin `/metrics`; every family and its labels are listed in docs/operator-guide.md.
//!
//! Label sets are bounded: chains are the configured or announced ones, methods are
//! [`KNOWN_METHODS`] or `other`, upstreams are numbered (their URLs may hold API keys), and every
//! other label is a fixed set of short words.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::router::{Routed, Target};
use crate::upstream::UpstreamSet;

/// Ethereum JSON-RPC methods counted by name in `rpcmesh_requests_total`; any other method is
/// counted as `other`, so a client sending random method names cannot grow the label set. The
/// standard `eth_`/`net_`/`web3_` methods plus the common `debug_`/`trace_`/`txpool_` ones.
pub const KNOWN_METHODS: &[&str] = &[
    "eth_accounts",
    "eth_blobBaseFee",
    "eth_blockNumber",
    "eth_call",
    "eth_chainId",
    "eth_coinbase",
    "eth_createAccessList",
    "eth_estimateGas",
    "eth_feeHistory",
    "eth_gasPrice",
    "eth_getBalance",
    "eth_getBlockByHash",
    "eth_getBlockByNumber",
    "eth_getBlockReceipts",
    "eth_getBlockTransactionCountByHash",
    "eth_getBlockTransactionCountByNumber",
    "eth_getCode",
    "eth_getFilterChanges",
    "eth_getFilterLogs",
    "eth_getLogs",
    "eth_getProof",
    "eth_getStorageAt",
    "eth_getTransactionByBlockHashAndIndex",
    "eth_getTransactionByBlockNumberAndIndex",
    "eth_getTransactionByHash",
    "eth_getTransactionCount",
    "eth_getTransactionReceipt",
    "eth_getUncleByBlockHashAndIndex",
    "eth_getUncleByBlockNumberAndIndex",
    "eth_getUncleCountByBlockHash",
    "eth_getUncleCountByBlockNumber",
    "eth_maxPriorityFeePerGas",
    "eth_newBlockFilter",
    "eth_newFilter",
    "eth_newPendingTransactionFilter",
    "eth_protocolVersion",
    "eth_sendRawTransaction",
    "eth_sendTransaction",
    "eth_sign",
    "eth_signTransaction",
    "eth_simulateV1",
    "eth_subscribe",
    "eth_syncing",
    "eth_uninstallFilter",
    "eth_unsubscribe",
    "net_listening",
    "net_peerCount",
    "net_version",
    "web3_clientVersion",
    "web3_sha3",
    "debug_traceBlockByHash",
    "debug_traceBlockByNumber",
    "debug_traceCall",
    "debug_traceTransaction",
    "trace_block",
    "trace_call",
    "trace_filter",
    "trace_replayBlockTransactions",
    "trace_replayTransaction",
    "trace_transaction",
    "txpool_content",
    "txpool_status",
];

/// The `method` label for `method`: itself if known, else `other`.
pub fn method_label(method: &str) -> &'static str {
    KNOWN_METHODS.iter().find(|m| **m == method).copied().unwrap_or("other")
}

/// Labels of gossip message outcomes.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GossipLabels {
    /// Topic kind (`announcements`, `attestations`, `evidence`).
    pub kind: String,
    /// `accept`, `reject`, `ignore`, or `dropped` (valid but the node was too busy to use it).
    pub outcome: String,
    /// Why, for rejects and ignores (`bad_signature`, `stale_seq`, `expired`, ...).
    pub reason: String,
}

/// Labels of relay outcomes.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RelayLabels {
    /// `inbound` (served for a peer) or `outbound` (sent to a peer).
    pub direction: String,
    /// Relay status (`ok`, `busy`, `refused`, ...) or transport failure.
    pub status: String,
}

/// Labels of `rpcmesh_relay_bytes_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RelayBytesLabels {
    /// `inbound` (served for a peer) or `outbound` (sent to a peer), as in `rpcmesh_relays_total`.
    pub direction: &'static str,
    /// `request` or `response`: for `inbound`, requests received and responses sent; for
    /// `outbound`, requests sent and responses received.
    pub part: &'static str,
}

/// Labels of answer checks.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    /// A verifiable method's name, or `other`.
    pub method: String,
    /// How far it was verified (`none`, `header`, `proof`, `quorum`), the kind of lie proven
    /// (`header`, `state`, `log_omitted`, ...), or `unverifiable`.
    pub outcome: String,
}

/// Labels of evidence outcomes.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EvidenceLabels {
    /// `received` (from gossip, before judging), `accepted`, `rejected`, `ignored`, or
    /// `reported` (signed and published by this node).
    pub outcome: String,
    /// Why, for rejects and ignores (`not_proven`, `anchor_off_chain`, `bad_signature`,
    /// `invalid_field`, `anchor_unknown`, `no_judge`, `duplicate`, ...); empty otherwise.
    pub reason: String,
}

/// Labels by who answered: `own` upstream or `peer`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServedByLabels {
    /// `own` or `peer`.
    pub served_by: String,
}

/// Labels of canary checks.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CanaryLabels {
    /// `read` (a proven read of a watched address) or `write` (a dry transaction).
    pub probe: String,
    /// Reads: `honest`, `proven_wrong`, `unverifiable`, `failed`. Writes: `honest` (a node-level
    /// refusal), `filtered`, `accepted` (it should never be), `failed`.
    pub outcome: String,
}

/// Labels of gateway access decisions.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccessLabels {
    /// A `[[gateway.keys]]` name, `(none)` for calls without a key or `(unknown)` for a key that
    /// matched none: bounded by the config, never a client-chosen string.
    pub key: String,
    /// `admitted`, `rate_limited`, `method_refused`, `missing_key` or `bad_key`.
    pub outcome: String,
}

/// rpcmesh's own metrics.
#[derive(Debug, Clone, Default)]
pub struct NodeMetrics {
    /// Gossip messages received, by kind, outcome and reason.
    pub gossip_messages: Family<GossipLabels, Counter>,
    /// Gossip messages published by this node, by kind.
    pub gossip_published: Family<GossipLabels, Counter>,
    /// Peers with an established connection.
    pub connected_peers: Gauge,
    /// Providers in the mesh view.
    pub known_providers: Gauge,
    /// Relays, by direction and status.
    pub relays: Family<RelayLabels, Counter>,
    /// Encoded relay messages, in bytes, by direction and part (request or response).
    pub relay_bytes: Family<RelayBytesLabels, Counter>,
    /// Relay receipts verified and recorded (outbound relays answered Ok).
    pub receipts_verified: Counter,
    /// Relay receipts whose signature failed (the answer was used; the receipt is dropped).
    pub receipts_invalid: Counter,
    /// Answers checked by the integrity layer, by method and outcome.
    pub integrity_checks: Family<CheckLabels, Counter>,
    /// `eth_getLogs` ranges wider than the integrity layer verifies per request.
    pub integrity_ranges_too_wide: Counter,
    /// Evidence bundles, by outcome and reason.
    pub evidence: Family<EvidenceLabels, Counter>,
    /// Providers cordoned on some chain right now (one per provider and chain).
    pub cordons_active: Gauge,
    /// Gateway calls (batch items) by API key and access outcome.
    pub gateway_access: Family<AccessLabels, Counter>,
    /// Providers labelled as filtering on some chain right now (one per provider and chain).
    pub censorship_labels_active: Gauge,
    /// Transactions refused without a node-level reason (sent to the next operator), by who
    /// refused.
    pub censorship_refusals: Family<ServedByLabels, Counter>,
    /// Canary checks of providers, by probe and outcome.
    pub censorship_canary_checks: Family<CanaryLabels, Counter>,
    /// Cached answers dropped because a reorganisation was seen.
    pub cache_reorg_evictions: Counter,
    /// Bytes of cached answers.
    pub cache_bytes: Gauge,
    /// Gateway compute units charged against quotas, by API key and outcome.
    pub gateway_units: Family<AccessLabels, Counter>,
}

impl NodeMetrics {
    /// Registers the families under the `rpcmesh` prefix.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("rpcmesh");
        r.register(
            "gossip_messages",
            "Gossip messages received, by kind, outcome and reason",
            m.gossip_messages.clone(),
        );
        r.register("gossip_published", "Gossip messages published by this node", m.gossip_published.clone());
        r.register("connected_peers", "Peers with an established connection", m.connected_peers.clone());
        r.register("known_providers", "Providers in the mesh view", m.known_providers.clone());
        r.register("relays", "Relays by direction and status", m.relays.clone());
        r.register(
            "relay_bytes",
            "Bytes of encoded relay messages, by direction (inbound: served for peers, outbound: sent \
             to peers) and part (request, response)",
            m.relay_bytes.clone(),
        );
        m.init_zero();
        r.register(
            "receipts_verified",
            "Relay receipts whose signature was checked and passed (a sample on arrival, the rest when used)",
            m.receipts_verified.clone(),
        );
        r.register("receipts_invalid", "Relay receipts with a bad signature, dropped", m.receipts_invalid.clone());
        r.register(
            "integrity_checks",
            "Answers checked by the integrity layer, by method and outcome",
            m.integrity_checks.clone(),
        );
        r.register(
            "integrity_ranges_too_wide",
            "eth_getLogs ranges wider than the integrity layer verifies per request",
            m.integrity_ranges_too_wide.clone(),
        );
        r.register("evidence", "Evidence bundles by outcome and reason", m.evidence.clone());
        r.register("cordons_active", "Cordons in force (provider and chain)", m.cordons_active.clone());
        r.register(
            "censorship_labels_active",
            "Providers labelled as filtering (provider and chain)",
            m.censorship_labels_active.clone(),
        );
        r.register(
            "censorship_refusals",
            "Transactions refused without a node-level reason, sent to the next operator, by who refused",
            m.censorship_refusals.clone(),
        );
        r.register(
            "censorship_canary_checks",
            "Canary checks of providers about watched addresses, by probe and outcome",
            m.censorship_canary_checks.clone(),
        );
        r.register(
            "cache_reorg_evictions",
            "Cached answers dropped because a reorganisation was seen",
            m.cache_reorg_evictions.clone(),
        );
        r.register("cache_bytes", "Bytes of cached answers", m.cache_bytes.clone());
        r.register(
            "gateway_key_calls",
            "Gateway calls (batch items) by API key and outcome (admitted, rate_limited, method_refused, \
             missing_key, bad_key)",
            m.gateway_access.clone(),
        );
        r.register(
            "gateway_key_units",
            "Gateway compute units (see [gateway.method_costs]) by API key and outcome (admitted, rate_limited)",
            m.gateway_units.clone(),
        );
        m
    }

    /// Creates at 0 the series of families that only move on rare events (relays aside, a
    /// healthy mesh may never see evidence, refusals or canary results): an empty family is not
    /// exported at all (not even its `# TYPE`), so a dashboard or alert on it reads "no data"
    /// instead of 0, and a query with a typo looks the same as a quiet node. Only label values
    /// that occur with the empty reason are created, so no series exists that never could.
    fn init_zero(&self) {
        for direction in ["inbound", "outbound"] {
            for part in ["request", "response"] {
                self.relay_bytes.get_or_create(&RelayBytesLabels { direction, part }).inc_by(0);
            }
        }
        for outcome in ["received", "accepted", "reported"] {
            self.evidence.get_or_create(&EvidenceLabels { outcome: outcome.into(), reason: String::new() }).inc_by(0);
        }
        for served_by in ["own", "peer"] {
            self.censorship_refusals.get_or_create(&ServedByLabels { served_by: served_by.into() }).inc_by(0);
        }
        let canary = [
            ("read", ["honest", "proven_wrong", "unverifiable", "failed"]),
            ("write", ["honest", "filtered", "accepted", "failed"]),
        ];
        for (probe, outcomes) in canary {
            for outcome in outcomes {
                let labels = CanaryLabels { probe: probe.into(), outcome: outcome.into() };
                self.censorship_canary_checks.get_or_create(&labels).inc_by(0);
            }
        }
    }

    /// Counts an evidence bundle.
    pub fn evidence(&self, outcome: &str, reason: &str) {
        self.evidence.get_or_create(&EvidenceLabels { outcome: outcome.into(), reason: reason.into() }).inc();
    }

    /// Counts a received gossip message.
    pub fn gossip(&self, kind: &str, outcome: &str, reason: &str) {
        self.gossip_messages
            .get_or_create(&GossipLabels { kind: kind.into(), outcome: outcome.into(), reason: reason.into() })
            .inc();
    }

    /// Counts a relay.
    pub fn relay(&self, direction: &str, status: &str) {
        self.relays.get_or_create(&RelayLabels { direction: direction.into(), status: status.into() }).inc();
    }

    /// Counts `bytes` of an encoded relay message (`direction` `inbound`/`outbound`, `part`
    /// `request`/`response`).
    pub fn relay_bytes(&self, direction: &'static str, part: &'static str, bytes: usize) {
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        self.relay_bytes.get_or_create(&RelayBytesLabels { direction, part }).inc_by(bytes);
    }
}

/// The registry, shared for encoding at `/metrics`.
#[derive(Debug, Clone)]
pub struct SharedRegistry(pub Arc<Mutex<Registry>>);

impl SharedRegistry {
    /// Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let reg = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if prometheus_client::encoding::text::encode(&mut out, &reg).is_err() {
            out.clear();
        }
        out
    }
}

/// Labels of `rpcmesh_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Chain id.
    pub chain: u64,
    /// A [`KNOWN_METHODS`] name, or `other`.
    pub method: &'static str,
    /// `ok`, `caller_error`, `upstream_error`, `no_provider` or `verification_failed`.
    pub outcome: &'static str,
    /// `own` (an own upstream), `peer` (relayed), `cache` (the response cache, or an identical
    /// request in flight) or `none`.
    pub served_by: &'static str,
}

/// Labels of per-chain counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChainLabels {
    /// Chain id.
    pub chain: u64,
}

/// Labels of `rpcmesh_request_duration_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportLabels {
    /// Chain id.
    pub chain: u64,
    /// `http` or `ws`.
    pub transport: &'static str,
}

/// Labels of `rpcmesh_target_duration_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    /// `own` (own upstream over HTTP) or `relay` (a peer over libp2p).
    pub kind: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latency buckets, seconds: 1 ms to ~33 s in doublings (a JSON-RPC answer is a few ms from a
/// local node, hundreds across the world; the default request budget is seconds).
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Attempts per request: 1 is the norm, each bucket above is a failover or hedge more.
fn attempts_histogram() -> Histogram {
    Histogram::new([1.0, 2.0, 3.0, 4.0, 6.0, 8.0])
}

/// Metrics of client requests, recorded by the gateway once per routed request from what the
/// router returned ([`Routed`]): the router and its attempt layer stay free of metrics.
#[derive(Debug, Clone)]
pub struct RequestMetrics {
    /// Requests by chain, method, outcome and who served.
    pub requests: Family<RequestLabels, Counter>,
    /// Whole calls (a batch is one) as the client saw them, by chain and transport.
    pub duration: HistogramFamily<TransportLabels>,
    /// Attempts per routed request.
    pub attempts: HistogramFamily<ChainLabels>,
    /// Hedges started (a second target asked because the first was slow).
    pub hedges: Family<ChainLabels, Counter>,
    /// Failovers (a next target asked because one failed or passed its hard timeout).
    pub failovers: Family<ChainLabels, Counter>,
    /// Busy targets asked again after a backoff.
    pub busy_retries: Family<ChainLabels, Counter>,
    /// Each finished attempt, by target kind.
    pub target_duration: HistogramFamily<TargetLabels>,
    /// Cacheable requests by what the response cache did (hit, coalesced, miss).
    pub cache: Family<CacheLabels, Counter>,
}

/// Labels of `rpcmesh_cache_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// Chain id.
    pub chain: u64,
    /// `hit`, `coalesced` or `miss`.
    pub outcome: &'static str,
}

impl Default for RequestMetrics {
    /// Families registered nowhere (tests, embedders without a registry).
    fn default() -> Self {
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            attempts: Family::new_with_constructor(attempts_histogram),
            hedges: Family::default(),
            failovers: Family::default(),
            busy_retries: Family::default(),
            target_duration: Family::new_with_constructor(latency_histogram),
            cache: Family::default(),
        }
    }
}

impl RequestMetrics {
    /// Registers the families under the `rpcmesh` prefix.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("rpcmesh");
        r.register("requests", "Routed JSON-RPC requests by chain, method, outcome and served_by", m.requests.clone());
        r.register(
            "request_duration_seconds",
            "Gateway time per call (a batch is one), by chain and transport",
            m.duration.clone(),
        );
        r.register("request_attempts", "Attempts per routed request (1 = no failover or hedge)", m.attempts.clone());
        r.register(
            "cache_requests",
            "Cacheable requests by what the response cache did (hit, coalesced, miss)",
            m.cache.clone(),
        );
        r.register(
            "request_hedges",
            "Hedged attempts (second target asked because the first was slow)",
            m.hedges.clone(),
        );
        r.register("request_failovers", "Failovers (next target asked after a failure)", m.failovers.clone());
        r.register("request_busy_retries", "Busy targets asked again after a backoff", m.busy_retries.clone());
        r.register(
            "target_duration_seconds",
            "Duration of each finished attempt, by target kind (own upstream or relay)",
            m.target_duration.clone(),
        );
        m
    }

    /// Creates the per-chain counters at 0 for `chains`: an empty family is not exported at all,
    /// and a rate over a series that appears only with its first hedge reads as "no data".
    pub fn init_chains(&self, chains: impl IntoIterator<Item = u64>) {
        for chain in chains {
            let c = ChainLabels { chain };
            for family in [&self.hedges, &self.failovers, &self.busy_retries] {
                family.get_or_create(&c).inc_by(0);
            }
        }
    }

    /// Records one routed request.
    pub fn routed(&self, chain: u64, method: &str, r: &Routed) {
        let served_by = match (r.target, r.cache) {
            (Some(Target::Own(_)), _) => "own",
            (Some(Target::Peer(_)), _) => "peer",
            (None, crate::router::CacheOutcome::Hit | crate::router::CacheOutcome::Coalesced) => "cache",
            (None, _) => "none",
        };
        if let Some(outcome) = r.cache.label() {
            self.cache.get_or_create(&CacheLabels { chain, outcome }).inc();
        }
        self.requests
            .get_or_create(&RequestLabels { chain, method: method_label(method), outcome: r.status.label(), served_by })
            .inc();
        let c = ChainLabels { chain };
        if r.attempts > 0 {
            self.attempts.get_or_create(&c).observe(f64::from(r.attempts));
        }
        let t = &r.tally;
        for (counter, n) in
            [(&self.hedges, t.hedges), (&self.failovers, t.failovers), (&self.busy_retries, t.busy_retries)]
        {
            if n > 0 {
                counter.get_or_create(&c).inc_by(u64::from(n));
            }
        }
        for (target, took) in &t.finished {
            let kind = match target {
                Target::Own(_) => "own",
                Target::Peer(_) => "relay",
            };
            self.target_duration.get_or_create(&TargetLabels { kind }).observe(took.as_secs_f64());
        }
    }

    /// Records a request the gateway refused before routing (invalid JSON-RPC item).
    pub fn invalid(&self, chain: u64) {
        let labels = RequestLabels { chain, method: "other", outcome: "caller_error", served_by: "none" };
        self.requests.get_or_create(&labels).inc();
    }

    /// Records the gateway time of one call.
    pub fn call(&self, chain: u64, transport: &'static str, took: Duration) {
        self.duration.get_or_create(&TransportLabels { chain, transport }).observe(took.as_secs_f64());
    }
}

/// Labels of per-upstream gauges.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    chain: u64,
    /// Position in the chain's `upstreams` list (not the URL: it may hold an API key).
    upstream: usize,
}

/// Per-upstream health, read from the upstreams at scrape time (the prober already keeps it):
/// `rpcmesh_upstream_up`, `rpcmesh_upstream_latency_seconds`, `rpcmesh_upstream_head_block`,
/// `rpcmesh_upstream_consecutive_failures`.
#[derive(Debug)]
pub struct UpstreamCollector(pub Arc<UpstreamSet>);

impl UpstreamCollector {
    /// Registers the collector under the `rpcmesh` prefix.
    pub fn register(registry: &mut Registry, upstreams: Arc<UpstreamSet>) {
        registry.sub_registry_with_prefix("rpcmesh").register_collector(Box::new(Self(upstreams)));
    }
}

impl Collector for UpstreamCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let up = Family::<UpstreamLabels, Gauge>::default();
        let latency = Family::<UpstreamLabels, Gauge<f64, AtomicU64>>::default();
        let head = Family::<UpstreamLabels, Gauge>::default();
        let failures = Family::<UpstreamLabels, Gauge>::default();
        for (chain, ups) in &self.0.chains {
            for (i, u) in ups.iter().enumerate() {
                let l = UpstreamLabels { chain: *chain, upstream: i };
                let r = u.report();
                up.get_or_create(&l).set(i64::from(r.status.is_usable()));
                if let Some(us) = r.ewma_us {
                    latency.get_or_create(&l).set(f64::from(us) / 1e6);
                }
                if let Some(h) = r.head {
                    head.get_or_create(&l).set(i64::try_from(h).unwrap_or(i64::MAX));
                }
                failures.get_or_create(&l).set(i64::from(r.consecutive_failures));
            }
        }
        let families: [(&str, &str, &dyn EncodeMetric); 4] = [
            ("upstream_up", "1 if the own upstream is healthy (answering, right chain, synced), else 0", &up),
            (
                "upstream_latency_seconds",
                "Latency estimate (EWMA) of calls to the own upstream, probes included",
                &latency,
            ),
            ("upstream_head_block", "Head block number the own upstream reported last", &head),
            ("upstream_consecutive_failures", "Failed calls to the own upstream since its last success", &failures),
        ];
        for (name, help, family) in families {
            family.encode(encoder.encode_descriptor(name, help, None, family.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label("eth_call"), "eth_call");
        assert_eq!(method_label("eth_Call"), "other", "names are case-sensitive in JSON-RPC");
        assert_eq!(method_label("x".repeat(10_000).as_str()), "other");
        let mut sorted = KNOWN_METHODS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), KNOWN_METHODS.len(), "no duplicates");
    }

    #[test]
    fn event_families_are_declared_at_zero_from_start() {
        let mut registry = Registry::default();
        NodeMetrics::register(&mut registry);
        let text = SharedRegistry(Arc::new(Mutex::new(registry))).encode();
        for family in [
            "rpcmesh_relay_bytes counter",
            "rpcmesh_evidence counter",
            "rpcmesh_censorship_refusals counter",
            "rpcmesh_censorship_canary_checks counter",
        ] {
            assert!(text.contains(&format!("# TYPE {family}")), "{family} in:\n{text}");
        }
        assert!(text.lines().any(|l| l == r#"rpcmesh_evidence_total{outcome="accepted",reason=""} 0"#), "{text}");
        assert!(text.lines().any(|l| l == r#"rpcmesh_censorship_refusals_total{served_by="own"} 0"#), "{text}");
        let canaries = text.lines().filter(|l| l.starts_with("rpcmesh_censorship_canary_checks_total{")).count();
        assert_eq!(canaries, 8, "every probe and outcome:\n{text}");
    }

    #[test]
    fn relay_bytes_are_exported_from_start_and_add_up() {
        let mut registry = Registry::default();
        let m = NodeMetrics::register(&mut registry);
        let shared = SharedRegistry(Arc::new(Mutex::new(registry)));
        let text = shared.encode();
        assert!(text.contains("# TYPE rpcmesh_relay_bytes counter"), "{text}");
        for series in [
            r#"rpcmesh_relay_bytes_total{direction="inbound",part="request"} 0"#,
            r#"rpcmesh_relay_bytes_total{direction="inbound",part="response"} 0"#,
            r#"rpcmesh_relay_bytes_total{direction="outbound",part="request"} 0"#,
            r#"rpcmesh_relay_bytes_total{direction="outbound",part="response"} 0"#,
        ] {
            assert!(text.lines().any(|l| l == series), "{series} in:\n{text}");
        }
        m.relay_bytes("outbound", "request", 120);
        m.relay_bytes("outbound", "request", 30);
        assert!(
            shared
                .encode()
                .lines()
                .any(|l| l == r#"rpcmesh_relay_bytes_total{direction="outbound",part="request"} 150"#)
        );
    }
}
