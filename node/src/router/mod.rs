//! The request path below the gateway, as a stack of small layers composed once at start-up:
//!
//! ```text
//!  gateway (HTTP/WS framing, batch split, ids)          gateway/
//!    │ one Request
//!    ▼
//!  policy      method allow/deny per chain              policy.rs
//!    ▼
//!  planning    eligible targets, ranked, hedge delays   plan.rs over table.rs (per snapshot)
//!    ▼
//!  attempts    retry · hedge · busy back-off ·          attempts.rs (+ breaker.rs, budget.rs)
//!              breakers · one deadline
//!    ▼
//!  answer check  content checks (integrity)             check.rs
//!    ▼
//!  forward     own upstream (HTTP) | peer (relay)       forward.rs (+ classify.rs: answer hygiene)
//! ```
//!
//! Each layer returns typed outcomes ([`outcome::AttemptError`] with its [`outcome::Class`]); a
//! failed answer check is retryable, so the request goes to the next target exactly as after a
//! transport error. Strings exist only for `/explain` and logs.
//!
//! Per request: one policy check, one plan (the per-chain table is rebuilt per mesh snapshot,
//! not per request), one attempt run. State: one breaker per (chain, provider) behind its own
//! short lock, sticky choices per client connection, a hedge budget (an atomic).

pub mod attempts;
pub mod breaker;
pub mod budget;
pub mod cache;
pub mod check;
pub mod classify;
pub mod forward;
pub mod logs_split;
pub mod outcome;
pub mod plan;
pub mod policy;
pub mod table;
mod tx;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rpcmesh_protocol::PublicKey;
use tokio::sync::watch;
use tokio::time::Instant;

pub use self::attempts::{AttemptSettings, Attempts, Failure, Outcome, Plan, Planned, Tally};
use self::breaker::BreakerCell;
pub use self::forward::{Call, DynForward, Forward, SharedForward, Target, Targets, VerifyMode};
pub use self::outcome::{Answer, AttemptError, Class, Verified};
pub use self::plan::Candidate;
use self::plan::{PlanInput, Scope, Unplannable};
pub use self::policy::{MethodPolicy, MethodRules};
use self::table::{Breakers, TableCache, Tables};
use crate::censorship::{self, Avoid, Censorship};
use crate::config::{ChainConfig, RoutingConfig};
use crate::jsonrpc::{self, METHOD_NOT_FOUND, RESOURCE_UNAVAILABLE, Request};
use crate::mesh::MeshSnapshot;
use crate::upstream::UpstreamSet;

/// Sticky choices idle for this long are forgotten.
const STICKY_IDLE: Duration = Duration::from_secs(300);
/// Most sticky entries kept.
const STICKY_MAX: usize = 10_000;

/// Per-request routing options.
#[derive(Debug, Clone, Default)]
pub struct RouteOptions {
    /// Whether peers may serve (config, overridden by `x-rpcmesh-failover`).
    pub failover: bool,
    /// Identifies the client connection for stickiness.
    pub client: Option<u64>,
    /// How far answers must be verified.
    pub verify: VerifyMode,
    /// Policy patterns of providers this request must not go to (`x-rpcmesh-avoid`), on top of
    /// `censorship.avoid`.
    pub avoid: Option<Avoid>,
}

impl RouteOptions {
    /// Options with failover as given, no client, verification off: for requests this daemon
    /// makes itself.
    pub fn internal(failover: bool) -> Self {
        Self { failover, client: None, verify: VerifyMode::Off, avoid: None }
    }
}

/// How a routed request ended, for metrics and headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteStatus {
    /// A provider answered with a result.
    Ok,
    /// A provider answered with an error the caller caused, or the policy refused the method.
    CallerError,
    /// Targets were tried and all failed (errors, timeouts, the deadline, an answer too large):
    /// the providers' fault, as opposed to having nobody to ask.
    UpstreamError,
    /// Nobody could be asked (no eligible provider, every breaker open).
    NoProvider,
    /// Answers came, but none passed verification (strict mode): distinct because it may mean
    /// lying providers, not broken ones. The client sees the same -32002 as for no provider.
    Unverified,
}

impl RouteStatus {
    /// The `outcome` label of `rpcmesh_requests_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::CallerError => "caller_error",
            Self::UpstreamError => "upstream_error",
            Self::NoProvider => "no_provider",
            Self::Unverified => "verification_failed",
        }
    }
}

/// The outcome of routing one request.
#[derive(Debug, Clone)]
pub struct Routed {
    /// The response body (a provider's, with the client's id, or our error).
    pub body: Bytes,
    /// PeerId of who served it (this node for own upstreams); `None` if nobody could.
    pub served_by: Option<Arc<str>>,
    /// Attempts made.
    pub attempts: u32,
    /// How far the answer was verified.
    pub verified: Verified,
    /// How it ended.
    pub status: RouteStatus,
    /// The target that served it (own upstream or peer), for the `served_by` metric label.
    pub target: Option<Target>,
    /// Hedges, failovers and attempt durations, for metrics.
    pub tally: Tally,
    /// What the response cache did for it.
    pub cache: CacheOutcome,
}

/// What the response cache did for a request (`x-rpcmesh-cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheOutcome {
    /// Not cacheable, or no cache.
    #[default]
    None,
    /// Answered from the cache.
    Hit,
    /// Answered by the same providers' answer as an identical request in flight.
    Coalesced,
    /// Cacheable, asked of providers.
    Miss,
}

impl CacheOutcome {
    /// The `x-rpcmesh-cache` value and metric label (`None`: no header).
    pub fn label(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Hit => Some("hit"),
            Self::Coalesced => Some("coalesced"),
            Self::Miss => Some("miss"),
        }
    }
}

impl Routed {
    /// An answer the cache had (or shared from an identical request in flight), with `req`'s id.
    fn cached(req: &Request, c: cache::Cached, outcome: CacheOutcome) -> Self {
        let body = match &req.id {
            Some(id) => jsonrpc::with_client_id(c.body, id),
            None => c.body,
        };
        Self {
            body,
            served_by: Some(c.served_by),
            attempts: 0,
            verified: c.verified,
            status: RouteStatus::Ok,
            target: None,
            tally: Tally::default(),
            cache: outcome,
        }
    }

    fn error(req: &Request, code: i64, message: &str, status: RouteStatus, attempts: u32, tally: Tally) -> Self {
        Self {
            body: jsonrpc::error_response(req.id_or_null(), code, message),
            served_by: None,
            attempts,
            verified: Verified::None,
            status,
            target: None,
            tally,
            cache: CacheOutcome::None,
        }
    }

    /// Refused before any attempt (policy, or a method nobody serves).
    fn refused(req: &Request, message: &str) -> Self {
        Self::error(req, METHOD_NOT_FOUND, message, RouteStatus::CallerError, 0, Tally::default())
    }
}

/// Clone-able router handle.
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

/// A router handle that does not keep the router alive: for layers below it (the answer check
/// asks the router who is eligible) without a reference cycle.
#[derive(Clone)]
pub struct WeakRouter(std::sync::Weak<Inner>);

impl WeakRouter {
    /// The router, while it exists.
    pub fn upgrade(&self) -> Option<Router> {
        self.0.upgrade().map(|inner| Router { inner })
    }
}

struct Inner {
    own_peer: Arc<str>,
    own_key: PublicKey,
    upstreams: Arc<UpstreamSet>,
    chains: HashMap<u64, ChainConfig>,
    /// Breakers of own upstreams, by chain, in upstream order (fixed at start).
    own_cells: HashMap<u64, Vec<Arc<BreakerCell>>>,
    mesh: watch::Receiver<Arc<MeshSnapshot>>,
    cfg: RoutingConfig,
    policy: MethodPolicy,
    breakers: Breakers,
    tables: TableCache,
    sticky: Mutex<HashMap<(u64, u64), (Target, Instant)>>,
    attempts: Attempts<SharedForward>,
    censorship: Censorship,
    /// Bounds transaction confirmations running after their client was answered.
    confirmations: Arc<tokio::sync::Semaphore>,
    /// The response cache, when enabled.
    cache: Option<cache::ResponseCache>,
}

/// Most transaction confirmations in flight at once; more are skipped (the broadcast already
/// reached `broadcast_operators` operators).
const MAX_CONFIRMATIONS: usize = 256;

impl Router {
    /// A router over our upstreams and the mesh, forwarding through `forward` (the composed
    /// forward and answer-check layers), refusing what `policy` refuses, avoiding and
    /// broadcasting as `censorship` says.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        own: PublicKey,
        upstreams: Arc<UpstreamSet>,
        chains: &[ChainConfig],
        mesh: watch::Receiver<Arc<MeshSnapshot>>,
        forward: SharedForward,
        cfg: RoutingConfig,
        policy: MethodPolicy,
        censorship: Censorship,
    ) -> Self {
        let breakers = Breakers::default();
        let own_cells = upstreams
            .chains
            .iter()
            .map(|(chain, ups)| (*chain, (0..ups.len()).map(|i| breakers.cell(*chain, Target::Own(i))).collect()))
            .collect();
        let settings = AttemptSettings {
            max_attempts: cfg.max_attempts,
            hedge: cfg.hedge,
            eject_after_failures: cfg.eject_after_failures,
            eject_for: Duration::from_millis(cfg.eject_ms),
        };
        Self {
            inner: Arc::new(Inner {
                own_peer: Arc::from(own.to_peer_id().to_string()),
                own_key: own,
                upstreams,
                chains: chains.iter().map(|c| (c.id, c.clone())).collect(),
                own_cells,
                tables: TableCache::new(mesh.clone(), cfg.max_head_lag_blocks),
                mesh,
                policy,
                breakers,
                sticky: Mutex::new(HashMap::new()),
                attempts: Attempts::new(forward, settings),
                cfg,
                censorship,
                confirmations: Arc::new(tokio::sync::Semaphore::new(MAX_CONFIRMATIONS)),
                cache: None,
            }),
        }
    }

    /// The same router answering from `cache` where it can. Call right after [`Router::new`]
    /// (before the router is shared).
    pub fn with_cache(mut self, cache: Option<cache::ResponseCache>) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.cache = cache,
            None => tracing::warn!("the response cache must be set before the router is shared; it stays off"),
        }
        self
    }

    /// The chain's head as this node knows it: its own upstream's, or the mesh's reference head,
    /// whichever is higher. The own upstream's head (with its hash) also tells the cache about
    /// reorganisations.
    fn current_head(&self, chain_id: u64) -> Option<u64> {
        let own = self.inner.upstreams.head(chain_id);
        if let (Some(c), Some(b)) = (&self.inner.cache, own) {
            c.observe_block(chain_id, b.number, rpcmesh_eth::B256::from(b.hash));
        }
        let reference = self.inner.mesh.borrow().reference_heads.get(&chain_id).copied();
        own.map(|b| b.number).max(reference)
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

    fn own_cells(&self, chain_id: u64) -> &[Arc<BreakerCell>] {
        self.inner.own_cells.get(&chain_id).map(Vec::as_slice).unwrap_or(&[])
    }

    fn input<'a>(&'a self, chain_id: u64, method: &'a str, failover: bool, scope: Scope<'a>) -> PlanInput<'a> {
        PlanInput {
            chain_id,
            method,
            namespace: method.split('_').next().unwrap_or(method),
            failover,
            max_lag: self.inner.cfg.max_head_lag_blocks,
            own_policies: self.inner.censorship.own_policies.get(&chain_id).map(Vec::as_slice).unwrap_or(&[]),
            avoid: scope.avoid,
            touched: scope.touched,
        }
    }

    /// Every candidate with its eligibility and score components (`/explain`), for a request
    /// about `touched` accounts avoiding `avoid` (on top of the configured patterns).
    pub fn explain(
        &self,
        chain_id: u64,
        method: &str,
        failover: bool,
        avoid: Option<&Avoid>,
        touched: &[rpcmesh_eth::Address],
    ) -> Vec<Candidate> {
        let tables = self.inner.tables.get(&self.inner.breakers);
        let avoid = self.avoid_for(avoid);
        plan::explain(
            &self.input(chain_id, method, failover, Scope { avoid: &avoid, touched }),
            &tables,
            &self.inner.upstreams,
            self.own_cells(chain_id),
            &self.inner.own_peer,
            Instant::now(),
        )
    }

    /// The configured avoid patterns with a request's own.
    fn avoid_for(&self, extra: Option<&Avoid>) -> Avoid {
        match extra {
            Some(a) => self.inner.censorship.avoid.union(a),
            None => self.inner.censorship.avoid.clone(),
        }
    }

    fn plan(
        &self,
        tables: &Tables,
        chain_id: u64,
        method: &str,
        opts: &RouteOptions,
        scope: Scope<'_>,
    ) -> Result<Plan, Unplannable> {
        let sticky = opts.client.and_then(|c| self.sticky(chain_id, c));
        plan::plan(
            &self.input(chain_id, method, opts.failover, scope),
            tables,
            &self.inner.upstreams,
            self.own_cells(chain_id),
            sticky,
            Instant::now(),
        )
    }

    /// Routes one request, failing over within one deadline.
    pub async fn route(&self, chain_id: u64, req: &Request, opts: &RouteOptions) -> Routed {
        let routed = self.route_one(chain_id, req, opts).await;
        if req.method == "eth_getLogs"
            && routed.status != RouteStatus::Ok
            && logs_split::is_range_limit(&routed.body)
            && let Some(merged) = self.split_logs(chain_id, req, opts, 0).await
        {
            return merged;
        }
        routed
    }

    /// A too-wide `eth_getLogs` asked in halves (recursively, [`logs_split::MAX_SPLIT_DEPTH`]
    /// at most) and merged; `None` when it cannot be split or a part failed otherwise.
    fn split_logs<'a>(
        &'a self,
        chain_id: u64,
        req: &'a Request,
        opts: &'a RouteOptions,
        depth: u32,
    ) -> futures::future::BoxFuture<'a, Option<Routed>> {
        Box::pin(async move {
            if depth >= logs_split::MAX_SPLIT_DEPTH {
                return None;
            }
            let (a, b) = logs_split::halves(req, self.current_head(chain_id))?;
            let mut parts = Vec::with_capacity(2);
            for part in [a, b] {
                let mut r = self.route_one(chain_id, &part, opts).await;
                if r.status != RouteStatus::Ok {
                    if !logs_split::is_range_limit(&r.body) {
                        return Some(r);
                    }
                    r = self.split_logs(chain_id, &part, opts, depth + 1).await?;
                }
                parts.push(r);
            }
            let id = req.id.as_deref().unwrap_or(b"null");
            let body = logs_split::merge(&parts[0].body, &parts[1].body, id)?;
            let mut merged = parts.swap_remove(0);
            let second = parts.pop()?;
            merged.body = body;
            merged.attempts += second.attempts;
            merged.verified = merged.verified.min(second.verified);
            merged.cache = CacheOutcome::None;
            Some(merged)
        })
    }

    async fn route_one(&self, chain_id: u64, req: &Request, opts: &RouteOptions) -> Routed {
        if let Err(refused) = self.inner.policy.check(chain_id, &req.method) {
            let msg = format!("method {} is not allowed by this gateway (set {})", req.method, refused.setting);
            return Routed::refused(req, &msg);
        }
        // One snapshot's tables for the whole request (planning included).
        let tables = self.inner.tables.get(&self.inner.breakers);
        // The accounts a request is about matter only when something acts on them: a watched
        // address (always verified) or a provider labelled as filtering on this chain.
        let touched = if !self.inner.censorship.watch.is_empty() || tables.any_filters(chain_id) {
            censorship::touch::touched(&req.method, req.upstream_body())
        } else {
            Vec::new()
        };
        let mode = if self.inner.censorship.watched(&touched) { VerifyMode::Strict } else { opts.verify };
        if let Some(cache) = &self.inner.cache
            && req.id.is_some()
            && opts.avoid.is_none()
        {
            let head = self.current_head(chain_id);
            let depth = cache.settings().final_depth_blocks;
            if let Some(scope) = cache::scope_of(&req.method, req.upstream_body(), head, depth)
                && let Some(key) = cache::ResponseCache::key(chain_id, &req.method, req.upstream_body())
            {
                let strict = mode == VerifyMode::Strict;
                if let Some(hit) = cache.get(&key, head, strict) {
                    return Routed::cached(req, hit, CacheOutcome::Hit);
                }
                let flight = cache.flight(&key, strict);
                let mut mine: Option<Routed> = None;
                let shared = flight
                    .get_or_init(|| async {
                        let routed = self.route_uncached(&tables, chain_id, req, opts, &touched, mode).await;
                        let keep = (routed.status == RouteStatus::Ok && routed.target.is_some())
                            .then(|| routed.served_by.clone())
                            .flatten()
                            .map(|served_by| {
                                let scope = match scope {
                                    cache::Scope::AtHead { head, .. } => {
                                        cache::Scope::AtHead { head, at: Instant::now() }
                                    }
                                    s => s,
                                };
                                cache.put(key.clone(), routed.body.clone(), served_by.clone(), routed.verified, scope);
                                cache::Cached::new(routed.body.clone(), served_by, routed.verified, scope)
                            });
                        mine = Some(routed);
                        keep
                    })
                    .await
                    .clone();
                cache.land(key, strict, &flight);
                return match (mine, shared) {
                    (Some(mut routed), _) => {
                        routed.cache = CacheOutcome::Miss;
                        routed
                    }
                    (None, Some(c)) => Routed::cached(req, c, CacheOutcome::Coalesced),
                    // The request it waited for got no answer to share: ask on its own.
                    (None, None) => {
                        let mut routed = self.route_uncached(&tables, chain_id, req, opts, &touched, mode).await;
                        routed.cache = CacheOutcome::Miss;
                        routed
                    }
                };
            }
        }
        self.route_uncached(&tables, chain_id, req, opts, &touched, mode).await
    }

    /// Routes one request past the cache: plan, attempts (or a broadcast for transactions).
    async fn route_uncached(
        &self,
        tables: &Tables,
        chain_id: u64,
        req: &Request,
        opts: &RouteOptions,
        touched: &[rpcmesh_eth::Address],
        mode: VerifyMode,
    ) -> Routed {
        let avoid = self.avoid_for(opts.avoid.as_ref());
        let plan = match self.plan(tables, chain_id, &req.method, opts, Scope { avoid: &avoid, touched }) {
            Ok(plan) => plan,
            Err(Unplannable::MethodNotServed) => return Routed::refused(req, "Method not found"),
        };
        let budget_ms = self.inner.cfg.request_timeout_ms;
        let deadline = Instant::now() + Duration::from_millis(budget_ms);
        let call = Call { chain_id, req, mode };
        let outcome = if call.is_send() {
            // Distinct jurisdictions first: one regulator's filter stops at most one copy.
            let plan = tx::across_jurisdictions(plan, |t| self.jurisdiction(tables, chain_id, t));
            self.broadcast(chain_id, req, mode, plan, deadline, budget_ms).await
        } else {
            self.inner.attempts.run(&call, &plan, deadline, budget_ms).await
        };
        match outcome.result {
            Ok((target, answer)) => {
                if let Some(c) = opts.client {
                    self.set_sticky(chain_id, c, target);
                }
                let status = if answer.error().is_some() { RouteStatus::CallerError } else { RouteStatus::Ok };
                let body = match &req.id {
                    Some(id) => jsonrpc::with_client_id(answer.body, id),
                    None => answer.body,
                };
                Routed {
                    body,
                    served_by: Some(self.served_by(chain_id, target)),
                    attempts: outcome.attempts,
                    verified: answer.verified,
                    status,
                    target: Some(target),
                    tally: outcome.tally,
                    cache: CacheOutcome::None,
                }
            }
            Err(Failure::Stopped(AttemptError::MethodRefused(why))) => {
                Routed::error(req, METHOD_NOT_FOUND, &why, RouteStatus::CallerError, outcome.attempts, outcome.tally)
            }
            Err(failure) => {
                let (what, status) = match failure {
                    Failure::Exhausted(AttemptError::Unverified(_)) => {
                        ("no provider gave an answer that passed verification", RouteStatus::Unverified)
                    }
                    Failure::Exhausted(AttemptError::Filtered(_)) => {
                        ("every provider asked refused the transaction", RouteStatus::UpstreamError)
                    }
                    Failure::NoTarget => ("no provider could serve the request", RouteStatus::NoProvider),
                    _ => ("no provider could serve the request", RouteStatus::UpstreamError),
                };
                let msg = format!("{what} after {} attempt(s): {failure}", outcome.attempts);
                Routed::error(req, RESOURCE_UNAVAILABLE, &msg, status, outcome.attempts, outcome.tally)
            }
        }
    }

    /// The best eligible provider for `method` on `chain_id`, skipping `exclude`: for state that
    /// lives on one provider (filters), which must then be asked with [`Router::call_target`].
    pub fn best_target(&self, chain_id: u64, method: &str, failover: bool, exclude: &[Target]) -> Option<Target> {
        let opts = RouteOptions::internal(failover);
        let avoid = self.avoid_for(None);
        let tables = self.inner.tables.get(&self.inner.breakers);
        self.plan(&tables, chain_id, method, &opts, Scope { avoid: &avoid, touched: &[] })
            .ok()?
            .into_iter()
            .map(|p| p.target)
            .find(|t| !exclude.contains(t))
    }

    /// Whether the mesh has cordoned this node itself on `chain_id` (proof that its own
    /// upstream lied): its own answers are then checked in full.
    pub fn own_cordoned(&self, chain_id: u64) -> bool {
        self.inner.mesh.borrow().cordon(&self.inner.own_key, chain_id).is_some()
    }

    /// Every eligible target of `chain_id`, best first (own upstreams, then peers). Policies
    /// and filter labels do not apply: these are the operators asked for verification material
    /// and canaries, and a filter cannot fake what a proof shows.
    pub fn eligible_targets(&self, chain_id: u64) -> Vec<Target> {
        let opts = RouteOptions::internal(true);
        let tables = self.inner.tables.get(&self.inner.breakers);
        self.plan(&tables, chain_id, "eth_getBlockByNumber", &opts, Scope { avoid: &Avoid::default(), touched: &[] })
            .map(|plan| plan.into_iter().map(|p| p.target).collect())
            .unwrap_or_default()
    }

    /// Sends a transaction to `censorship.broadcast_operators` distinct operators in `plan`
    /// order (distinct jurisdictions first) and answers at the first acceptance; the broadcast
    /// (and a later confirmation on one more operator) goes on in its own task, so the client does
    /// not wait for the slowest operator and a cancelled client does not cancel the broadcast.
    async fn broadcast(
        &self,
        chain_id: u64,
        req: &Request,
        mode: VerifyMode,
        plan: Plan,
        deadline: Instant,
        budget_ms: u64,
    ) -> Outcome {
        let n = self.inner.censorship.broadcast_operators;
        let (first_tx, first_rx) = tokio::sync::oneshot::channel();
        let router = self.clone();
        let req = req.clone();
        // The broadcast outlives the client's request: its own span, in the request's trace.
        let span = tracing::info_span!(parent: None, "tx_broadcast", chain = chain_id);
        span.follows_from(tracing::Span::current());
        crate::telemetry::continue_current_trace(&span);
        let run = tokio::spawn(tracing::Instrument::instrument(
            async move {
                let call = Call { chain_id, req: &req, mode };
                let outcome =
                    router.inner.attempts.broadcast(&call, &plan, n, deadline, budget_ms, Some(first_tx)).await;
                if let (Ok((_, answer)), Some(after)) = (&outcome.result, router.inner.censorship.confirm_ms)
                    && answer.error().is_none()
                    && let Ok(permit) = router.inner.confirmations.clone().try_acquire_owned()
                {
                    let asked: Vec<Target> = outcome.tally.finished.iter().map(|(t, _)| *t).collect();
                    let router = router.clone();
                    let plan = plan.clone();
                    tokio::spawn(tracing::Instrument::in_current_span(async move {
                        tokio::time::sleep(Duration::from_millis(after)).await;
                        router.confirm(chain_id, &req, &plan, &asked).await;
                        drop(permit);
                    }));
                }
                outcome
            },
            span,
        ));
        match first_rx.await {
            Ok((target, answer, attempts)) => {
                Outcome { result: Ok((target, answer)), attempts, tally: Tally::default() }
            }
            // No acceptance: the run's own outcome (a caller error, or why it failed).
            Err(_) => match run.await {
                Ok(outcome) => outcome,
                Err(e) => {
                    tracing::warn!(error = %e, "transaction broadcast task failed");
                    Outcome {
                        result: Err(Failure::Exhausted(AttemptError::Unavailable("broadcast failed"))),
                        attempts: 0,
                        tally: Tally::default(),
                    }
                }
            },
        }
    }

    /// Asks one operator the broadcast did not reach whether it knows the transaction, and
    /// sends it there if not: a transaction accepted by filtering pools that never propagate it
    /// still reaches the chain.
    async fn confirm(&self, chain_id: u64, req: &Request, plan: &[Planned], asked: &[Target]) {
        let Some(hash) = tx::tx_hash(req) else { return };
        let own_asked = asked.iter().any(|t| matches!(t, Target::Own(_)));
        let Some(other) = plan.iter().map(|p| p.target).find(|t| match t {
            Target::Own(_) => !own_asked,
            Target::Peer(_) => !asked.contains(t),
        }) else {
            return;
        };
        let lookup = tx::lookup_request(&hash);
        match self.call_target(chain_id, other, &lookup, VerifyMode::Off).await {
            Ok(body)
                if crate::integrity::judge::result_of(&body)
                    .is_some_and(|r| crate::integrity::judge::is_null(r.get().as_bytes())) =>
            {
                let sent = self.call_target(chain_id, other, req, VerifyMode::Off).await;
                tracing::info!(chain_id, %hash, target = ?other, ok = sent.is_ok(), "transaction unknown to one more operator: sent it there");
            }
            Ok(_) => tracing::debug!(chain_id, %hash, target = ?other, "transaction confirmed on one more operator"),
            Err(e) => tracing::debug!(chain_id, %hash, target = ?other, error = %e, "could not confirm a transaction"),
        }
    }

    fn jurisdiction(&self, tables: &table::Tables, chain_id: u64, target: Target) -> Option<String> {
        match target {
            Target::Own(_) => self.inner.censorship.own_jurisdiction.clone(),
            Target::Peer(key) => tables
                .chain(chain_id)
                .and_then(|t| t.peers.iter().find(|p| p.key == key))
                .and_then(|p| p.view.jurisdiction.clone()),
        }
    }

    /// Whether `key` carries a filter label on `chain_id` naming `address` with more than
    /// `share` of its life left (the canary need not prove it again yet).
    pub fn labelled_long_enough(
        &self,
        chain_id: u64,
        key: &PublicKey,
        address: &rpcmesh_eth::Address,
        share: f64,
    ) -> bool {
        let snap = self.inner.mesh.borrow().clone();
        let Some(label) = snap.standing(key).and_then(|s| s.filter(chain_id)) else { return false };
        let subject = censorship::subject_of(address);
        let now = crate::clock::now_ms();
        let life = label.until_ms.saturating_sub(label.since_ms) as f64;
        label.subjects.contains(&subject) && (label.until_ms.saturating_sub(now) as f64) > life * share
    }

    /// A handle that does not keep the router alive.
    pub fn downgrade(&self) -> WeakRouter {
        WeakRouter(Arc::downgrade(&self.inner))
    }

    /// Sends `req` to exactly `target` (no failover) and returns the body of a successful or
    /// caller-error answer, or why it failed. Outcomes feed the breaker like routed ones.
    pub async fn call_target(
        &self,
        chain_id: u64,
        target: Target,
        req: &Request,
        mode: VerifyMode,
    ) -> Result<Bytes, AttemptError> {
        let breaker = match target {
            Target::Own(i) => self.own_cells(chain_id).get(i).cloned(),
            Target::Peer(_) => Some(self.inner.breakers.cell(chain_id, target)),
        }
        .ok_or(AttemptError::Unavailable("upstream gone"))?;
        let planned = Planned { target, hedge_delay: attempts::HEDGE_MAX, breaker };
        let deadline = Instant::now() + Duration::from_millis(self.inner.cfg.request_timeout_ms);
        let answer = self.inner.attempts.call_one(&Call { chain_id, req, mode }, &planned, deadline).await?;
        Ok(answer.body)
    }

    /// The PeerId answers from `target` are served by (this node's for its own upstreams).
    pub fn served_by(&self, chain_id: u64, target: Target) -> Arc<str> {
        match target {
            Target::Own(_) => self.inner.own_peer.clone(),
            Target::Peer(key) => {
                let tables = self.inner.tables.get(&self.inner.breakers);
                let known = tables.chain(chain_id).and_then(|t| t.peers.iter().find(|p| p.key == key));
                known.map(|p| p.peer_id.clone()).unwrap_or_else(|| Arc::from(key.to_peer_id().to_string()))
            }
        }
    }

    fn sticky(&self, chain_id: u64, client: u64) -> Option<Target> {
        self.inner.sticky.lock().unwrap_or_else(|p| p.into_inner()).get(&(client, chain_id)).map(|(t, _)| *t)
    }

    fn set_sticky(&self, chain_id: u64, client: u64, target: Target) {
        let mut map = self.inner.sticky.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if map.len() >= STICKY_MAX {
            map.retain(|_, (_, at)| now.duration_since(*at) < STICKY_IDLE);
            if map.len() >= STICKY_MAX {
                map.clear();
            }
        }
        map.insert((client, chain_id), (target, now));
    }
}

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;
