//! The router: picks who serves each request and fails over.
//!
//! Layers, outermost first: one **deadline** per client request → **attempts** (retries and an
//! optional hedge, all spending that one budget) → **selection** (ranked eligible candidates,
//! sticky per client with hysteresis, breaker admission) → **forward** (own upstream over HTTP,
//! or a trusted peer over the libp2p relay). See [`select`] for eligibility and ranking and
//! [`classify`] for what is retried.
//!
//! State: one breaker per (chain, provider) and one sticky choice per client connection, each
//! behind a short std `Mutex` (no `.await` while held), and a hedge budget (an atomic).
//!
//! What counts against a provider's breaker: a real error, no answer within the attempt's
//! hard timeout, or losing to a hedge that answered in under half the hedge delay (the loser
//! is the slow one, not the machine). Not counted: losing to a hedge that was slow too (under
//! a CPU burst every answer is slow at once), and `Busy` (the provider
//! protecting its announced capacity, as designed). A `Busy` provider is left for another
//! candidate at once; when nobody else can serve, it is asked again after a short backoff,
//! within the request's deadline (these asks are bounded by the deadline, not by
//! `max_attempts`, which bounds failing over).

pub mod breaker;
pub mod budget;
pub mod classify;
pub mod select;
#[cfg(test)]
mod tests;
mod tx;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt as _};
use rpcmesh_protocol::PublicKey;
use rpcmesh_protocol::messages::RelayStatus;
use tokio::sync::watch;

use self::breaker::{Admission, Breaker};
use self::budget::{HedgeBudget, busy_backoff};
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
/// With hedging on, an attempt unanswered after this many hedge delays has failed: the breaker
/// counts it and the next candidate is launched. Slow answers below that are not failures.
const HARD_TIMEOUT_FACTOR: u32 = 4;
/// Floor of that hard timeout. Well above the 100–200 ms stalls of a CPU burst, so a burst does
/// not eject healthy providers; low enough that a frozen provider is left within ~0.5 s when
/// the hedge budget is spent.
const HARD_TIMEOUT_MIN: Duration = Duration::from_millis(500);

/// When to hedge an attempt on a candidate with this latency estimate.
fn hedge_delay(latency_us: f64) -> Duration {
    Duration::from_micros((latency_us * 3.0) as u64).clamp(HEDGE_MIN, HEDGE_MAX)
}

/// When an attempt with this hedge delay has failed for want of an answer.
fn hard_timeout(hedge_delay: Duration) -> Duration {
    (hedge_delay * HARD_TIMEOUT_FACTOR).max(HARD_TIMEOUT_MIN)
}

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
    hedges: HedgeBudget,
}

struct AttemptResult {
    target: Target,
    started: Instant,
    body: Bytes,
    verdict: Verdict,
    /// The peer answered `Busy`: no outcome for its breaker (the verdict is a retry).
    busy: bool,
}

/// An attempt of [`Router::route`] still in flight.
struct Pending {
    target: Target,
    started: Instant,
    hedge_delay: Duration,
    /// `None` with hedging off: the attempt may use the whole deadline.
    hard_timeout: Option<Duration>,
    /// Already counted as a failure (hard timeout), so its outcome is not counted twice.
    failed: bool,
}

impl Pending {
    fn overdue_at(&self) -> Option<Instant> {
        if self.failed { None } else { self.hard_timeout.map(|h| self.started + h) }
    }
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
                hedges: HedgeBudget::default(),
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
        if hedging {
            self.inner.hedges.earn();
        }
        let max_attempts = self.inner.cfg.max_attempts as usize;
        let notification = req.is_notification();
        let mut next = 0usize;
        let mut attempts = 0u32;
        let mut inflight = FuturesUnordered::new();
        let mut pending: Vec<Pending> = Vec::new();
        // Providers that answered Busy, with their hedge delay: asked again, in turn, once
        // nobody else is left to try.
        let mut busy: VecDeque<(Target, Duration)> = VecDeque::new();
        let mut busy_rounds = 0u32;
        let mut last_error = String::from("no eligible provider (see /explain)");
        let mut hedge_at: Option<Instant> = None;
        let mut retry_at: Option<Instant> = None;

        // The next candidate in order that the breaker admits, with its hedge delay.
        let pick = |next: &mut usize, attempts: u32| -> Option<(Target, Duration)> {
            while *next < order.len() && (attempts as usize) < max_attempts {
                let c = &order[*next];
                *next += 1;
                if self.admit(chain_id, &c.target) {
                    return Some((c.target.clone(), hedge_delay(c.latency_us)));
                }
            }
            None
        };
        let start = |(target, delay): (Target, Duration),
                     attempts: &mut u32,
                     pending: &mut Vec<Pending>,
                     inflight: &mut FuturesUnordered<_>,
                     hedge_at: &mut Option<Instant>| {
            *attempts += 1;
            let now = Instant::now();
            pending.push(Pending {
                target: target.clone(),
                started: now,
                hedge_delay: delay,
                hard_timeout: hedging.then(|| hard_timeout(delay)),
                failed: false,
            });
            inflight.push(self.attempt(chain_id, target, req.raw.clone(), deadline, is_send, notification));
            if hedging {
                *hedge_at = Some(now + delay);
            }
        };

        if let Some(c) = pick(&mut next, attempts) {
            start(c, &mut attempts, &mut pending, &mut inflight, &mut hedge_at);
        }
        loop {
            // Nobody left but providers that said Busy: they refused rather than queue past
            // their capacity, and a permit frees within about a round trip, so wait a little
            // and ask again rather than fail a request that still has budget.
            if retry_at.is_none() && !busy.is_empty() && pending.iter().all(|p| p.failed) {
                let at = Instant::now() + busy_backoff(busy_rounds);
                busy_rounds += 1;
                if at < deadline {
                    retry_at = Some(at);
                } else {
                    busy.clear();
                }
            }
            if inflight.is_empty() && retry_at.is_none() {
                break;
            }
            let overdue_at = pending.iter().filter_map(Pending::overdue_at).min();
            let wake = [hedge_at, overdue_at, retry_at].into_iter().flatten().min();
            let timer = async {
                match wake {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(r) = inflight.next() => {
                    let r: AttemptResult = r;
                    let (already_failed, delay) = match pending.iter().position(|p| p.target == r.target) {
                        Some(i) => {
                            let p = pending.swap_remove(i);
                            (p.failed, p.hedge_delay)
                        }
                        None => (false, HEDGE_MIN),
                    };
                    match r.verdict {
                        Verdict::Success | Verdict::CallerError => {
                            self.record(chain_id, &r.target, r.started.elapsed(), true);
                            drop(inflight);
                            // The others lost to this answer and are cancelled. Slower is not
                            // broken: only a loser past its hard timeout, or one that was waited
                            // on for its whole hedge delay while the winner took less than half
                            // of that, has failed. Under a CPU burst the winner is slow too and
                            // nobody is blamed; a frozen provider is blamed on every request.
                            let now = Instant::now();
                            let won_in = r.started.elapsed();
                            for p in pending {
                                let waited = now - p.started;
                                let outrun = hedging && !p.failed && waited >= p.hedge_delay && won_in < p.hedge_delay / 2;
                                if p.overdue_at().is_some_and(|t| t <= now) || outrun {
                                    self.record(chain_id, &p.target, waited, false);
                                }
                            }
                            self.set_sticky(chain_id, opts.client, &r.target);
                            let body = if is_send { tx::normalize_send(req, r.body) } else { r.body };
                            return Routed { body, served_by: Some(self.served_by(&r.target)), attempts };
                        }
                        Verdict::Retry(reason) => {
                            if r.busy {
                                if !busy.iter().any(|(t, _)| t == &r.target) {
                                    busy.push_back((r.target.clone(), delay));
                                }
                            } else if !already_failed {
                                self.record(chain_id, &r.target, r.started.elapsed(), false);
                            }
                            tracing::debug!(chain = chain_id, target = ?r.target, %reason, "attempt failed; failing over");
                            last_error = reason;
                            if Instant::now() < deadline
                                && let Some(c) = pick(&mut next, attempts)
                            {
                                start(c, &mut attempts, &mut pending, &mut inflight, &mut hedge_at);
                            }
                        }
                    }
                }
                _ = timer => {
                    let now = Instant::now();
                    if retry_at.is_some_and(|t| t <= now) {
                        retry_at = None;
                        while let Some((target, delay)) = busy.pop_front() {
                            if self.admit(chain_id, &target) {
                                start((target, delay), &mut attempts, &mut pending, &mut inflight, &mut hedge_at);
                                break;
                            }
                        }
                    }
                    let mut overdue = 0;
                    for p in pending.iter_mut().filter(|p| p.overdue_at().is_some_and(|t| t <= now)) {
                        p.failed = true;
                        self.record(chain_id, &p.target, now - p.started, false);
                        last_error = format!("no answer within {} ms", (now - p.started).as_millis());
                        overdue += 1;
                    }
                    // An overdue attempt has failed: fail over as for an error, without
                    // cancelling it (it may still answer first).
                    for _ in 0..overdue {
                        if let Some(c) = pick(&mut next, attempts) {
                            start(c, &mut attempts, &mut pending, &mut inflight, &mut hedge_at);
                        }
                    }
                    if hedge_at.is_some_and(|t| t <= now) {
                        hedge_at = None;
                        // Without budget the hedge is skipped; the hard timeout still fails
                        // over from a provider that does not answer at all.
                        if self.inner.hedges.try_spend() {
                            match pick(&mut next, attempts) {
                                Some(c) => start(c, &mut attempts, &mut pending, &mut inflight, &mut hedge_at),
                                None => self.inner.hedges.refund(),
                            }
                        }
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
    /// caller-error answer, or why it failed. Outcomes feed the breaker like routed ones; a
    /// `Busy` target is asked again after a short backoff while the deadline allows.
    pub async fn call_target(&self, chain_id: u64, target: &Target, req: &Request) -> Result<Bytes, String> {
        let deadline = Instant::now() + Duration::from_millis(self.inner.cfg.request_timeout_ms);
        let mut round = 0u32;
        loop {
            let r =
                self.attempt(chain_id, target.clone(), req.raw.clone(), deadline, false, req.is_notification()).await;
            match r.verdict {
                Verdict::Success | Verdict::CallerError => {
                    self.record(chain_id, target, r.started.elapsed(), true);
                    return Ok(r.body);
                }
                Verdict::Retry(reason) if r.busy => {
                    let wait = busy_backoff(round);
                    round += 1;
                    if Instant::now() + wait >= deadline {
                        return Err(reason);
                    }
                    tokio::time::sleep(wait).await;
                }
                Verdict::Retry(reason) => {
                    self.record(chain_id, target, r.started.elapsed(), false);
                    return Err(reason);
                }
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
        // A provider at capacity is not kept ahead of one with headroom.
        if let Some((target, _)) = sticky
            && let Some(pos) = order.iter().position(|c| c.target == target)
            && order[pos].score <= best * STICKY_HYSTERESIS
            && order[pos].saturated == order[0].saturated
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
        let mut busy = false;
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
                Some(relay) => match relay.call(*key, chain_id, Vec::from(body), remaining).await {
                    Ok(o) if o.status == RelayStatus::Ok => {
                        let b = Bytes::from(o.body);
                        let v = judge_body(&b, is_send);
                        (b, v)
                    }
                    Ok(o) => {
                        busy = o.status == RelayStatus::Busy;
                        (Bytes::new(), Verdict::Retry(format!("peer answered {}", status_label(o.status))))
                    }
                    Err(e) => (Bytes::new(), Verdict::Retry(e.to_string())),
                },
            },
        };
        // Busy is no outcome: the guard frees a probation slot it took, as for a cancelled attempt.
        guard.finished = !busy;
        // A notification has no answer: an empty body with a 2xx status is the correct one.
        let verdict = match verdict {
            Verdict::Retry(r) if notification && r == "malformed response" && body.trim_ascii().is_empty() => {
                Verdict::Success
            }
            v => v,
        };
        AttemptResult { target, started, body, verdict, busy }
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
