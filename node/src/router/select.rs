//! Candidate selection: who may serve a request, and in which order.
//!
//! Eligible: healthy, not ejected, within the allowed head lag (against the median head of
//! trusted providers), serving the method's namespace (peers: as announced; own upstreams take
//! any method, their node answers for itself), trusted.
//! Ranked by a score (lower is better): latency (our own observations first, trusted
//! attestations second, a pessimistic default last) × error penalty × utilisation, with a
//! bonus for the own upstream so it serves whenever it is among the best.
//!
//! A peer announcing full utilisation stays eligible but ranks after every candidate with
//! headroom: the announced figure is a sample of relay permits in use, so at full load it
//! flaps, and excluding the peer turns a moment at capacity into a failed request when it is
//! the only provider. If it really is full it answers `Busy`, which the router handles by
//! failing over, or by waiting when nobody else can serve.

use std::time::Instant;

use rpcmesh_protocol::PublicKey;
use serde::Serialize;

use super::breaker::{Admission, Breaker};
use crate::mesh::{Health, MeshSnapshot};
use crate::upstream::UpstreamSet;

/// A provider that can serve: one of our upstreams, or a peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// Own upstream, by index in the chain's upstream list.
    Own(usize),
    /// A peer, by key.
    Peer(PublicKey),
}

/// Latency assumed for a provider we know nothing about, µs (pessimistic, so measured ones win).
pub const UNKNOWN_LATENCY_US: f64 = 50_000.0;
/// Own upstreams' score is multiplied by this: prefer them when among the best.
pub const OWN_BONUS: f64 = 0.5;
/// Each point of recent error rate multiplies the score by this much more.
pub const ERROR_PENALTY: f64 = 5.0;

/// Every score component of one candidate, for ranking and `/explain`.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// Who.
    #[serde(skip)]
    pub target: Target,
    /// `own` or `peer`.
    pub kind: &'static str,
    /// PeerId (own upstreams: this node's).
    pub peer_id: String,
    /// Upstream URL for own upstreams.
    pub upstream: Option<String>,
    /// Whether it may serve now.
    pub eligible: bool,
    /// Why not, if not.
    pub reasons: Vec<String>,
    /// Latency estimate, µs.
    pub latency_us: f64,
    /// Where the estimate came from: `router` (our requests), `probes`, `attestations`, `unknown`.
    pub latency_source: &'static str,
    /// Recent error fraction of our requests to it.
    pub error_rate: f64,
    /// Announced utilisation, 0..1.
    pub utilisation: f64,
    /// At its announced relay capacity (utilisation 100%): still eligible, ranked after every
    /// candidate with headroom.
    pub saturated: bool,
    /// Head lag vs the reference head, blocks.
    pub lag_blocks: Option<i64>,
    /// Own-upstream bonus factor applied.
    pub own_bonus: f64,
    /// Final score (lower is better).
    pub score: f64,
    /// Breaker state: `closed`, `probation` or `ejected`.
    pub breaker: &'static str,
    /// Derived health.
    pub health: String,
}

/// Inputs to selection for one request.
pub struct SelectInput<'a> {
    /// Chain.
    pub chain_id: u64,
    /// JSON-RPC namespace of the method (`eth`, `debug`...).
    pub namespace: &'a str,
    /// Whether peers may serve.
    pub failover: bool,
    /// Most blocks behind the reference head.
    pub max_lag: u64,
    /// This node's PeerId (named as the server of own upstreams).
    pub own_peer: &'a str,
}

/// All candidates for a request, ranked: eligible first, then those with capacity headroom,
/// then by score.
pub fn candidates(
    input: &SelectInput<'_>,
    upstreams: &UpstreamSet,
    snap: &MeshSnapshot,
    breaker: &dyn Fn(&Target) -> Option<Breaker>,
    now: Instant,
) -> Vec<Candidate> {
    let reference = snap.reference_heads.get(&input.chain_id).copied();
    let mut out = Vec::new();
    for (i, u) in upstreams.for_chain(input.chain_id).iter().enumerate() {
        let target = Target::Own(i);
        let state = u.state();
        let b = breaker(&target).unwrap_or_default();
        let mut reasons = Vec::new();
        if !state.status.is_usable() {
            reasons.push(format!("upstream status {:?}", state.status));
        }
        let lag = match (reference, state.head) {
            (Some(r), Some(h)) => Some(r as i64 - h.number as i64),
            _ => None,
        };
        if lag.is_some_and(|l| l > input.max_lag as i64) {
            reasons.push(format!("{} blocks behind the median head", lag.unwrap_or(0)));
        }
        let (latency_us, source) = match (b.ewma_us, state.window.ewma_us()) {
            (Some(x), _) => (x, "router"),
            (None, Some(x)) => (f64::from(x), "probes"),
            _ => (UNKNOWN_LATENCY_US, "unknown"),
        };
        out.push(finish(
            Candidate {
                target,
                kind: "own",
                peer_id: input.own_peer.to_string(),
                upstream: Some(u.http.to_string()),
                eligible: true,
                reasons,
                latency_us,
                latency_source: source,
                error_rate: b.error_rate(),
                utilisation: 0.0,
                saturated: false,
                lag_blocks: lag,
                own_bonus: OWN_BONUS,
                score: 0.0,
                breaker: "closed",
                health: format!("{:?}", state.status).to_lowercase(),
            },
            &b,
            now,
        ));
    }
    for (p, c) in snap.on_chain(input.chain_id) {
        if p.is_self {
            continue;
        }
        let target = Target::Peer(p.key);
        let b = breaker(&target).unwrap_or_default();
        let mut reasons = Vec::new();
        if !input.failover {
            reasons.push("failover is off: only own upstreams serve".into());
        }
        if !p.trust.is_trusted() {
            reasons.push("not trusted".into());
        }
        if p.expired {
            reasons.push("announcement expired".into());
        }
        if c.health != Health::Healthy {
            reasons.push(format!("health {:?}: {}", c.health, c.health_reason).to_lowercase());
        }
        if c.lag_blocks.is_some_and(|l| l > input.max_lag as i64) {
            reasons.push(format!("{} blocks behind the median head", c.lag_blocks.unwrap_or(0)));
        }
        if !c.method_groups.iter().any(|g| g == input.namespace) {
            reasons.push(format!("namespace {} not served", input.namespace));
        }
        let (latency_us, source) = match (b.ewma_us, c.latency_p50_us) {
            (Some(x), _) => (x, "router"),
            (None, Some(x)) => (f64::from(x), if p.attestations.is_empty() { "probes" } else { "probes/attestations" }),
            _ => (UNKNOWN_LATENCY_US, "unknown"),
        };
        out.push(finish(
            Candidate {
                target,
                kind: "peer",
                peer_id: p.peer_id.clone(),
                upstream: None,
                eligible: true,
                reasons,
                latency_us,
                latency_source: source,
                error_rate: b.error_rate(),
                utilisation: f64::from(c.utilisation_permille.min(1000)) / 1000.0,
                saturated: c.utilisation_permille >= 1000,
                lag_blocks: c.lag_blocks,
                own_bonus: 1.0,
                score: 0.0,
                breaker: "closed",
                health: format!("{:?}", c.health).to_lowercase(),
            },
            &b,
            now,
        ));
    }
    out.sort_by(|a, b| {
        b.eligible.cmp(&a.eligible).then(a.saturated.cmp(&b.saturated)).then(a.score.total_cmp(&b.score))
    });
    out
}

fn finish(mut c: Candidate, b: &Breaker, now: Instant) -> Candidate {
    match b.admission(now) {
        Admission::Open => {}
        Admission::Probation => c.breaker = "probation",
        Admission::Ejected => {
            c.breaker = "ejected";
            c.reasons.push("ejected after consecutive failures".into());
        }
    }
    c.eligible = c.reasons.is_empty();
    c.score = c.latency_us * (1.0 + ERROR_PENALTY * c.error_rate) * (1.0 + c.utilisation) * c.own_bonus;
    c
}
