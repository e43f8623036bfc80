//! Prometheus metrics: one registry per daemon, holding rpcmesh's own families (`rpcmesh_*`)
//! and libp2p's: `libp2p_*` (bandwidth, swarm connections, identify, kad, ping) and
//! gossipsub's own families, which carry no prefix (e.g. `topic_peers_counts`). Served as text
//! at the admin `/metrics`.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

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
        r.register("receipts_verified", "Relay receipts verified and recorded", m.receipts_verified.clone());
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
            "gateway_key_calls",
            "Gateway calls (batch items) by API key and outcome (admitted, rate_limited, method_refused, \
             missing_key, bad_key)",
            m.gateway_access.clone(),
        );
        m
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
