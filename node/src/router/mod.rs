//! The router: picks who serves each request and fails over.
//!
//! Layers, outermost first: one **deadline** per client request → **attempts** (retries and an
//! optional hedge, all spending that one budget) → **selection** (ranked eligible candidates,
//! sticky per client with hysteresis, breaker admission) → **forward** (own upstream over HTTP,
//! or a trusted peer over the libp2p relay). See [`select`] for eligibility and ranking and
//! [`classify`] for what is retried.
//!
//! State: one breaker per (chain, provider) and one sticky choice per client connection, each
//! behind a short std `Mutex` (no `.await` while held).

pub mod breaker;
pub mod classify;
pub mod select;
mod tx;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt as _};
use rpcmesh_protocol::PublicKey;
use rpcmesh_protocol::messages::RelayStatus;
use tokio::sync::watch;

use self::breaker::{Admission, Breaker};
use self::classify::{Verdict, judge_body, judge_status};
use self::select::{Candidate, SelectInput, Target, candidates};
use crate::config::{ChainConfig, RoutingConfig};
use crate::gateway::jsonrpc::{self, RESOURCE_UNAVAILABLE, Request};
use crate::mesh::MeshSnapshot;
use crate::relay::{RelayClient, status_label};
use crate::upstream::{TransportError, UpstreamSet};

/// Sticky choices are replaced when the best candidate scores this many times better.
const STICKY_HYSTERESIS: f64 = 2.0;
/// Sticky choices idle for this long are forgotten.
const STICKY_IDLE: Duration = Duration::from_secs(300);
/// Most sticky entries kept.
const STICKY_MAX: usize = 10_000;
/// Bounds of the hedge delay.
const HEDGE_MIN: Duration = Duration::from_millis(25);
const HEDGE_MAX: Duration = Duration::from_millis(1000);

/// Per-request routing options.
#[derive(Debug, Clone, Copy)]
pub struct RouteOptions {
    /// Whether peers may serve (config, overridden by `x-rpcmesh-failover`).
    pub failover: bool,
    /// Identifies the client connection for stickiness.
    pub client: Option<u64>,
}

/// The outcome of routing one request.
#[derive(Debug, Clone)]
pub struct Routed {
    /// The response body (a provider's, or our error).
    pub body: Bytes,
    /// PeerId of who served it (this node for own upstreams); `None` if nobody could.
    pub served_by: Option<String>,
    /// Attempts made.
    pub attempts: u32,
}

type BreakerKey = (u64, Target);

/// Clone-able router handle.
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

struct Inner {
    own_peer: String,
    upstreams: Arc<UpstreamSet>,
    chains: HashMap<u64, ChainConfig>,
    mesh: watch::Receiver<Arc<MeshSnapshot>>,
    relay: Option<RelayClient>,
    cfg: RoutingConfig,
    breakers: Mutex<HashMap<BreakerKey, Breaker>>,
    sticky: Mutex<HashMap<(u64, u64), (Target, Instant)>>,
}

struct AttemptResult {
    target: Target,
    started: Instant,
    body: Bytes,
    verdict: Verdict,
}

impl Router {
    /// A router over our upstreams and, through `relay`, the mesh (`None`: own upstreams only).
    pub fn new(
        own: PublicKey,
        upstreams: Arc<UpstreamSet>,
        chains: &[ChainConfig],
        mesh: watch::Receiver<Arc<MeshSnapshot>>,
        relay: Option<RelayClient>,
        cfg: RoutingConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                own_peer: own.to_peer_id().to_string(),
                upstreams,
                chains: chains.iter().map(|c| (c.id, c.clone())).collect(),
                mesh,
                relay,
                cfg,
                breakers: Mutex::new(HashMap::new()),
                sticky: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The routing configuration.
    pub fn config(&self) -> &RoutingConfig {
        &self.inner.cfg
    }

    /// Chains this node can route: its own, and those announced by trusted providers.
    pub fn served_chains(&self) -> Vec<u64> {
        let mut chains: Vec<u64> = self.inner.chains.keys().copied().collect();
        if self.inner.cfg.failover {
            let snap = self.inner.mesh.borrow().clone();
            for p in snap.providers.iter().filter(|p| p.trust.is_trusted() && !p.expired) {
                chains.extend(p.chains.iter().map(|c| c.chain_id));
            }
        }
        chains.sort_unstable();
        chains.dedup();
        chains
    }

    /// Ranked candidates with every score component (for `/explain` and routing).
    pub fn explain(&self, chain_id: u64, method: &str, failover: bool) -> Vec<Candidate> {
        let namespace = method.split('_').next().unwrap_or(method);
        let input = SelectInput {
            chain_id,
            namespace,
            failover,
            max_lag: self.inner.cfg.max_head_lag_blocks,
            own_peer: &self.inner.own_peer,
        };
        let snap = self.inner.mesh.borrow().clone();
        // Held while ranking (no await inside): cheaper than copying every breaker per request.
        let breakers = self.inner.breakers.lock().unwrap_or_else(|p| p.into_inner());
        candidates(
            &input,
            &self.inner.upstreams,
            &snap,
            &|t| breakers.get(&(chain_id, t.clone())).cloned(),
            Instant::now(),
        )
    }

    /// Routes one request, failing over within one deadline.
    pub async fn route(&self, chain_id: u64, req: &Request, opts: RouteOptions) -> Routed {
        let deadline = Instant::now() + Duration::from_millis(self.inner.cfg.request_timeout_ms);
        let is_send = req.method == "eth_sendRawTransaction";
        let all = self.explain(chain_id, &req.method, opts.failover);
        // With our own nodes unable to answer and no peer serving the method's namespace, the
        // method is not found (the caller's error), not temporarily unavailable: answer as a
        // node would.
        let peers: Vec<&Candidate> = all.iter().filter(|c| c.kind == "peer").collect();
        if !all.iter().any(|c| c.eligible)
            && !peers.is_empty()
            && peers.iter().all(|c| c.reasons.iter().any(|r| r.starts_with("namespace")))
        {
            let id = req.id.as_deref().unwrap_or(b"null");
            return Routed {
                body: jsonrpc::error_response(id, jsonrpc::METHOD_NOT_FOUND, "Method not found"),
                served_by: None,
                attempts: 0,
            };
        }
        let mut order: Vec<Candidate> = all.into_iter().filter(|c| c.eligible).collect();
        self.apply_sticky(chain_id, opts.client, &mut order);
        if is_send && self.inner.cfg.broadcast_transactions > 1 {
            return self.broadcast(chain_id, req, &order, deadline).await;
        }
        let hedging = self.inner.cfg.hedge && !is_send;
        let max_attempts = self.inner.cfg.max_attempts as usize;
        let mut next = 0usize;
        let mut attempts = 0u32;
        let mut inflight = FuturesUnordered::new();
        let mut last_error = String::from("no eligible provider (see /explain)");
        let mut hedge_at: Option<tokio::time::Instant> = None;

        let mut pending: Vec<(Target, Instant, Duration)> = Vec::new();
        let launch = |next: &mut usize,
                      attempts: &mut u32,
                      inflight: &mut FuturesUnordered<_>,
                      pending: &mut Vec<(Target, Instant, Duration)>|
         -> Option<Duration> {
            while *next < order.len() && (*attempts as usize) < max_attempts {
                let c = order[*next].clone();
                *next += 1;
                if !self.admit(chain_id, &c.target) {
                    continue;
                }
                *attempts += 1;
                let hedge_delay = Duration::from_micros((c.latency_us * 3.0) as u64).clamp(HEDGE_MIN, HEDGE_MAX);
                pending.push((c.target.clone(), Instant::now(), hedge_delay));
                inflight.push(self.attempt(
                    chain_id,
                    c.target.clone(),
                    req.raw.clone(),
                    deadline,
                    is_send,
                    req.is_notification(),
                ));
                return Some(hedge_delay);
            }
            None
        };

        if let Some(d) = launch(&mut next, &mut attempts, &mut inflight, &mut pending) {
            hedge_at = hedging.then(|| tokio::time::Instant::now() + d);
        }
        while !inflight.is_empty() {
            let hedge_sleep = async {
                match hedge_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(r) = inflight.next() => {
                    let r: AttemptResult = r;
                    match r.verdict {
                        Verdict::Success | Verdict::CallerError => {
                            self.record(chain_id, &r.target, r.started.elapsed(), true);
                            drop(inflight);
                            // Attempts still in flight lost to a hedge: a provider that slow is failing.
                            pending.retain(|(t, _, _)| t != &r.target);
                            for (t, started, hedge_delay) in pending {
                                if started.elapsed() > hedge_delay {
                                    self.record(chain_id, &t, started.elapsed(), false);
                                }
                            }
                            self.set_sticky(chain_id, opts.client, &r.target);
                            let body = if is_send { tx::normalize_send(req, r.body) } else { r.body };
                            return Routed { body, served_by: Some(self.served_by(&r.target)), attempts };
                        }
                        Verdict::Retry(reason) => {
                            pending.retain(|(t, _, _)| t != &r.target);
                            self.record(chain_id, &r.target, r.started.elapsed(), false);
                            tracing::debug!(chain = chain_id, target = ?r.target, %reason, "attempt failed; failing over");
                            last_error = reason;
                            if Instant::now() < deadline
                                && let Some(d) = launch(&mut next, &mut attempts, &mut inflight, &mut pending)
                            {
                                hedge_at = hedging.then(|| tokio::time::Instant::now() + d);
                            }
                        }
                    }
                }
                _ = hedge_sleep => {
                    hedge_at = None;
                    if let Some(d) = launch(&mut next, &mut attempts, &mut inflight, &mut pending) {
                        hedge_at = Some(tokio::time::Instant::now() + d);
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    last_error = format!("deadline of {} ms exceeded", self.inner.cfg.request_timeout_ms);
                    break;
                }
            }
        }
        let id = req.id.as_deref().unwrap_or(b"null");
        Routed {
            body: jsonrpc::error_response(
                id,
                RESOURCE_UNAVAILABLE,
                &format!("no provider could serve the request after {attempts} attempt(s): {last_error}"),
            ),
            served_by: None,
            attempts,
        }
    }

    /// The best eligible provider for `method` on `chain_id`, skipping `exclude`: for state that
    /// lives on one provider (filters), which must then be asked with [`Router::call_target`].
    pub fn best_target(&self, chain_id: u64, method: &str, failover: bool, exclude: &[Target]) -> Option<Target> {
        self.explain(chain_id, method, failover)
            .into_iter()
            .find(|c| c.eligible && !exclude.contains(&c.target))
            .map(|c| c.target)
    }

    /// Sends `req` to exactly `target` (no failover) and returns the body of a successful or
    /// caller-error answer, or why it failed. Outcomes feed the breaker like routed ones.
    pub async fn call_target(&self, chain_id: u64, target: &Target, req: &Request) -> Result<Bytes, String> {
        let deadline = Instant::now() + Duration::from_millis(self.inner.cfg.request_timeout_ms);
        let r = self.attempt(chain_id, target.clone(), req.raw.clone(), deadline, false, req.is_notification()).await;
        match r.verdict {
            Verdict::Success | Verdict::CallerError => {
                self.record(chain_id, target, r.started.elapsed(), true);
                Ok(r.body)
            }
            Verdict::Retry(reason) => {
                self.record(chain_id, target, r.started.elapsed(), false);
                Err(reason)
            }
        }
    }

    /// Whether a candidate may take a request now; reserves a probation slot if half-open.
    fn admit(&self, chain_id: u64, target: &Target) -> bool {
        let mut map = self.inner.breakers.lock().unwrap_or_else(|p| p.into_inner());
        let b = map.entry((chain_id, target.clone())).or_default();
        match b.admission(Instant::now()) {
            Admission::Open => true,
            Admission::Probation => {
                b.start_probation();
                true
            }
            Admission::Ejected => false,
        }
    }

    fn record(&self, chain_id: u64, target: &Target, latency: Duration, ok: bool) {
        let mut map = self.inner.breakers.lock().unwrap_or_else(|p| p.into_inner());
        let b = map.entry((chain_id, target.clone())).or_default();
        if ok {
            b.success(latency);
        } else if b.failure(
            Instant::now(),
            self.inner.cfg.eject_after_failures,
            Duration::from_millis(self.inner.cfg.eject_ms),
        ) {
            tracing::info!(chain = chain_id, target = ?target, "provider ejected after consecutive failures");
        }
    }

    fn served_by(&self, target: &Target) -> String {
        match target {
            Target::Own(_) => self.inner.own_peer.clone(),
            Target::Peer(k) => k.to_peer_id().to_string(),
        }
    }

    fn apply_sticky(&self, chain_id: u64, client: Option<u64>, order: &mut [Candidate]) {
        let Some(client) = client else { return };
        let Some(best) = order.first().map(|c| c.score) else { return };
        let sticky = self.inner.sticky.lock().unwrap_or_else(|p| p.into_inner()).get(&(client, chain_id)).cloned();
        if let Some((target, _)) = sticky
            && let Some(pos) = order.iter().position(|c| c.target == target)
            && order[pos].score <= best * STICKY_HYSTERESIS
        {
            order[..=pos].rotate_right(1);
        }
    }

    fn set_sticky(&self, chain_id: u64, client: Option<u64>, target: &Target) {
        let Some(client) = client else { return };
        let mut map = self.inner.sticky.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if map.len() >= STICKY_MAX {
            map.retain(|_, (_, at)| now.duration_since(*at) < STICKY_IDLE);
            if map.len() >= STICKY_MAX {
                map.clear();
            }
        }
        map.insert((client, chain_id), (target.clone(), now));
    }

    async fn attempt(
        &self,
        chain_id: u64,
        target: Target,
        body: Bytes,
        deadline: Instant,
        is_send: bool,
        notification: bool,
    ) -> AttemptResult {
        let started = Instant::now();
        // If this attempt is dropped unfinished (lost to a hedge, deadline, client gone), its
        // probation slot must not stay taken: the guard frees it.
        let mut guard = InFlight { router: self, chain_id, target: target.clone(), finished: false };
        let remaining = deadline.saturating_duration_since(started).max(Duration::from_millis(1));
        let (body, verdict) = match &target {
            Target::Own(i) => match self.inner.upstreams.for_chain(chain_id).get(*i) {
                Some(u) => match u.forward(body, remaining).await {
                    Ok(reply) => match judge_status(reply.status) {
                        Some(v) => (reply.body, v),
                        None => {
                            let v = judge_body(&reply.body, is_send);
                            (reply.body, v)
                        }
                    },
                    Err(TransportError::Timeout(ms)) => {
                        (Bytes::new(), Verdict::Retry(format!("own upstream timed out after {ms} ms")))
                    }
                    Err(e) => (Bytes::new(), Verdict::Retry(format!("own upstream: {e}"))),
                },
                None => (Bytes::new(), Verdict::Retry("upstream gone".into())),
            },
            Target::Peer(key) => match &self.inner.relay {
                None => (Bytes::new(), Verdict::Retry("relay disabled".into())),
                Some(relay) => match relay.call(key.to_peer_id(), chain_id, body.to_vec(), remaining).await {
                    Ok(o) if o.status == RelayStatus::Ok => {
                        let b = Bytes::from(o.body);
                        let v = judge_body(&b, is_send);
                        (b, v)
                    }
                    Ok(o) => (Bytes::new(), Verdict::Retry(format!("peer answered {}", status_label(o.status)))),
                    Err(e) => (Bytes::new(), Verdict::Retry(e.to_string())),
                },
            },
        };
        guard.finished = true;
        // A notification has no answer: an empty body with a 2xx status is the correct one.
        let verdict = match verdict {
            Verdict::Retry(r) if notification && r == "malformed response" && body.trim_ascii().is_empty() => {
                Verdict::Success
            }
            v => v,
        };
        AttemptResult { target, started, body, verdict }
    }
}

/// Frees a reserved probation slot when an attempt is dropped before its outcome is recorded.
struct InFlight<'a> {
    router: &'a Router,
    chain_id: u64,
    target: Target,
    finished: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let mut map = self.router.inner.breakers.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(b) = map.get_mut(&(self.chain_id, self.target.clone())) {
                b.release_probation();
            }
        }
    }
}
