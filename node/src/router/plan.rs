//! Route planning: which targets may serve a request, in which order, with which hedge delay.
//!
//! Eligible: own upstreams that are healthy and within the allowed head lag (against the median
//! head of trusted providers; they take any method, their node answers for itself); peers that
//! the snapshot finds trusted, current, healthy and not lagging ([`super::table`]), that
//! announce the method's namespace, with failover on. Any target whose breaker is ejected is
//! skipped. Ranked by a score (lower is better): latency (our own attempts first, then probes
//! and attestations, a pessimistic default last) × error penalty × (1 + utilisation), with a
//! bonus for own upstreams so they serve whenever they are among the best. A peer at its
//! announced capacity stays eligible but ranks after every candidate with headroom: the
//! announced figure is a sample, and excluding it would turn a moment at capacity into a failed
//! request when it is the only provider.
//!
//! [`explain`] renders the same decision with every reason and score component, on demand.

use std::sync::Arc;

use serde::Serialize;
use tokio::time::Instant;

use super::attempts::{Plan, Planned, hedge_delay};
use super::breaker::{Admission, BreakerCell};
use super::forward::Target;
use super::table::{Ineligible, PeerEntry, Tables, UNKNOWN_LATENCY_US};
use crate::censorship::Avoid;
use crate::upstream::UpstreamSet;
use rpcmesh_eth::Address;

/// Own upstreams' score is multiplied by this: prefer them when among the best.
pub const OWN_BONUS: f64 = 0.5;
/// Each point of recent error rate multiplies the score by this much more.
pub const ERROR_PENALTY: f64 = 5.0;

fn score(latency_us: f64, error_rate: f64, utilisation: f64, own_bonus: f64) -> f64 {
    latency_us * (1.0 + ERROR_PENALTY * error_rate) * (1.0 + utilisation) * own_bonus
}

/// What planning needs to know about one request.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    /// Chain.
    pub chain_id: u64,
    /// The method.
    pub method: &'a str,
    /// JSON-RPC namespace of the method (`eth`, `debug`...).
    pub namespace: &'a str,
    /// Whether peers may serve.
    pub failover: bool,
    /// Most blocks behind the reference head.
    pub max_lag: u64,
    /// This node's own declared policies on the chain.
    pub own_policies: &'a [String],
    /// Policy patterns of providers not to use.
    pub avoid: &'a Avoid,
    /// Accounts the request is about (empty when nothing acts on them).
    pub touched: &'a [Address],
}

/// The per-request part of a plan's input: what the request avoids and is about.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// Policy patterns (configured ∪ the request's).
    pub avoid: &'a Avoid,
    /// Accounts the request is about.
    pub touched: &'a [Address],
}

impl PlanInput<'_> {
    /// Why a peer may not serve this request in particular (policies, filter labels).
    fn excludes(&self, p: &PeerEntry) -> Option<Ineligible> {
        if let Some(policy) = self.avoid.matching(&p.policies) {
            return Some(Ineligible::Avoided { policy: Arc::from(policy) });
        }
        let f = p.filters.as_ref()?;
        f.hit(self.method, self.touched)
            .map(|subject| Ineligible::Filters { subject: Arc::from(subject), evidence_id: f.evidence_id })
    }

    /// Why own upstreams may not serve it (this operator's own declared policies).
    fn excludes_own(&self) -> Option<Ineligible> {
        self.avoid.matching(self.own_policies).map(|policy| Ineligible::Avoided { policy: Arc::from(policy) })
    }
}

/// Why a request has no plan at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unplannable {
    /// No own upstream can serve and no peer announces the method's namespace: the method is
    /// not found (the caller's error), not temporarily unavailable.
    MethodNotServed,
}

/// The own upstreams of a chain with their breakers.
pub type OwnCells<'a> = &'a [Arc<BreakerCell>];

struct Ranked {
    saturated: bool,
    score: f64,
    planned: Planned,
}

/// A sticky choice is kept first unless the best candidate scores this many times better.
pub const STICKY_HYSTERESIS: f64 = 2.0;

/// The eligible targets of a request, best first; `sticky` (the client's last target) is moved
/// first while it scores within [`STICKY_HYSTERESIS`] of the best and is as saturated as it.
pub fn plan(
    input: &PlanInput<'_>,
    tables: &Tables,
    upstreams: &UpstreamSet,
    own_cells: OwnCells<'_>,
    sticky: Option<Target>,
    now: Instant,
) -> Result<Plan, Unplannable> {
    let reference = tables.snapshot().reference_heads.get(&input.chain_id).copied();
    let mut ranked: Vec<Ranked> = Vec::with_capacity(4);
    let own = if input.excludes_own().is_some() { &[][..] } else { upstreams.for_chain(input.chain_id) };
    for (i, u) in own.iter().enumerate() {
        let Some(cell) = own_cells.get(i) else { continue };
        let (usable, head, probe_ewma) = u.routing_view();
        let behind = matches!((reference, head), (Some(r), Some(h)) if r as i64 - h as i64 > input.max_lag as i64);
        let (admission, ewma, error_rate) = cell.peek(now);
        if !usable || behind || admission == Admission::Ejected {
            continue;
        }
        let latency = ewma.or(probe_ewma.map(f64::from)).unwrap_or(UNKNOWN_LATENCY_US);
        ranked.push(Ranked {
            saturated: false,
            score: score(latency, error_rate, 0.0, OWN_BONUS),
            planned: Planned { target: Target::Own(i), hedge_delay: hedge_delay(latency), breaker: cell.clone() },
        });
    }
    let peers = tables.chain(input.chain_id).map(|t| t.peers.as_slice()).unwrap_or(&[]);
    if input.failover {
        for p in
            peers.iter().filter(|p| p.reasons.is_empty() && p.serves(input.namespace) && input.excludes(p).is_none())
        {
            let (admission, ewma, error_rate) = p.breaker.peek(now);
            if admission == Admission::Ejected {
                continue;
            }
            let latency = ewma.or(p.prior_latency.map(|(x, _)| x)).unwrap_or(UNKNOWN_LATENCY_US);
            ranked.push(Ranked {
                saturated: p.saturated,
                score: score(latency, error_rate, p.utilisation, 1.0),
                planned: Planned {
                    target: Target::Peer(p.key),
                    hedge_delay: hedge_delay(latency),
                    breaker: p.breaker.clone(),
                },
            });
        }
    }
    if ranked.is_empty() && !peers.is_empty() && peers.iter().all(|p| !p.serves(input.namespace)) {
        return Err(Unplannable::MethodNotServed);
    }
    ranked.sort_by(|a, b| a.saturated.cmp(&b.saturated).then(a.score.total_cmp(&b.score)));
    if let (Some(t), Some(best)) = (sticky, ranked.first().map(|r| (r.score, r.saturated)))
        && let Some(pos) = ranked.iter().position(|r| r.planned.target == t)
        && ranked[pos].score <= best.0 * STICKY_HYSTERESIS
        && ranked[pos].saturated == best.1
    {
        ranked[..=pos].rotate_right(1);
    }
    Ok(ranked.into_iter().map(|r| r.planned).collect())
}

/// Every score component of one candidate, for `/explain` (built on demand, never per request).
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

fn breaker_label(a: Admission) -> &'static str {
    match a {
        Admission::Open => "closed",
        Admission::Probation => "probation",
        Admission::Ejected => "ejected",
    }
}

/// Every candidate of a request with its eligibility and score, ranked as [`plan`] ranks them:
/// eligible first, then those with headroom, then by score.
pub fn explain(
    input: &PlanInput<'_>,
    tables: &Tables,
    upstreams: &UpstreamSet,
    own_cells: OwnCells<'_>,
    own_peer: &str,
    now: Instant,
) -> Vec<Candidate> {
    let reference = tables.snapshot().reference_heads.get(&input.chain_id).copied();
    let mut out = Vec::new();
    for (i, u) in upstreams.for_chain(input.chain_id).iter().enumerate() {
        let Some(cell) = own_cells.get(i) else { continue };
        let state = u.state();
        let mut reasons = Vec::new();
        if !state.status.is_usable() {
            reasons.push(Ineligible::UpstreamStatus(state.status.clone()));
        }
        let lag = match (reference, state.head) {
            (Some(r), Some(h)) => Some(r as i64 - h.number as i64),
            _ => None,
        };
        if let Some(l) = lag.filter(|l| *l > input.max_lag as i64) {
            reasons.push(Ineligible::Behind { blocks: l });
        }
        reasons.extend(input.excludes_own());
        let b = cell.get();
        let admission = b.admission(now);
        if admission == Admission::Ejected {
            reasons.push(Ineligible::Ejected);
        }
        let (latency_us, source) = match (b.ewma_us, state.window.ewma_us()) {
            (Some(x), _) => (x, "router"),
            (None, Some(x)) => (f64::from(x), "probes"),
            _ => (UNKNOWN_LATENCY_US, "unknown"),
        };
        out.push(Candidate {
            target: Target::Own(i),
            kind: "own",
            peer_id: own_peer.to_string(),
            upstream: Some(u.http.to_string()),
            eligible: reasons.is_empty(),
            reasons: reasons.iter().map(ToString::to_string).collect(),
            latency_us,
            latency_source: source,
            error_rate: b.error_rate(),
            utilisation: 0.0,
            saturated: false,
            lag_blocks: lag,
            own_bonus: OWN_BONUS,
            score: score(latency_us, b.error_rate(), 0.0, OWN_BONUS),
            breaker: breaker_label(admission),
            health: format!("{:?}", state.status).to_lowercase(),
        });
    }
    for p in tables.chain(input.chain_id).map(|t| t.peers.as_slice()).unwrap_or(&[]) {
        let mut reasons: Vec<String> = Vec::new();
        if !input.failover {
            reasons.push(Ineligible::FailoverOff.to_string());
        }
        reasons.extend(p.reasons.iter().map(ToString::to_string));
        if !p.serves(input.namespace) {
            reasons.push(format!("namespace {} not served", input.namespace));
        }
        reasons.extend(input.excludes(p).map(|r| r.to_string()));
        let b = p.breaker.get();
        let admission = b.admission(now);
        if admission == Admission::Ejected {
            reasons.push(Ineligible::Ejected.to_string());
        }
        let (latency_us, source) = match (b.ewma_us, p.prior_latency) {
            (Some(x), _) => (x, "router"),
            (None, Some((x, s))) => (x, s),
            _ => (UNKNOWN_LATENCY_US, "unknown"),
        };
        let health = p.view.chain(input.chain_id).map(|c| format!("{:?}", c.health).to_lowercase()).unwrap_or_default();
        out.push(Candidate {
            target: Target::Peer(p.key),
            kind: "peer",
            peer_id: p.peer_id.to_string(),
            upstream: None,
            eligible: reasons.is_empty(),
            reasons,
            latency_us,
            latency_source: source,
            error_rate: b.error_rate(),
            utilisation: p.utilisation,
            saturated: p.saturated,
            lag_blocks: p.lag_blocks,
            own_bonus: 1.0,
            score: score(latency_us, b.error_rate(), p.utilisation, 1.0),
            breaker: breaker_label(admission),
            health,
        });
    }
    out.sort_by(|a, b| {
        b.eligible.cmp(&a.eligible).then(a.saturated.cmp(&b.saturated)).then(a.score.total_cmp(&b.score))
    });
    out
}
