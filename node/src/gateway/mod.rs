//! The JSON-RPC gateway clients point at (default 127.0.0.1:8545): Ethereum JSON-RPC 2.0 over
//! HTTP POST (single, batch, notifications) and WebSocket, on `/` (default chain),
//! `/{chain_id}` and `/{alias}`. The outermost layer of the request path: HTTP/WS framing,
//! batch splitting, ids; each request then goes through the [`Router`]'s stack.
//!
//! Client access control (API keys, quotas in compute units) is checked before a call is routed:
//! [`access`], [`quota`], [`cost`]. A key may also be given in the path: `/k/<key>` and `/k/<key>/{chain}`.
//!
//! Every answer says who served it (`x-rpcmesh-served-by`), after how many attempts
//! (`x-rpcmesh-attempts`) and how far it was verified (`x-rpcmesh-verified`). Errors the gateway
//! itself makes are mapped to responses in one place ([`respond`]) and echo the id byte for byte
//! whenever it could be read.

pub mod access;
pub mod body;
pub mod cost;
pub mod quota;
pub mod respond;
mod served_log;
mod ws;

use std::hash::{Hash as _, Hasher as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest as _, Path, Request as HttpRequest, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::Bytes;
use futures::StreamExt as _;

use self::access::{Access, ApiKey};
use self::respond::{GatewayError, Ids, json_response};
use crate::censorship::Avoid;
use crate::config::{ChainConfig, GatewayConfig};
use crate::jsonrpc::{self, Call, Item, METHOD_NOT_FOUND};
use crate::metrics::{NodeMetrics, RequestMetrics};
use crate::router::{CacheOutcome, RouteOptions, Routed, Router, Verified, VerifyMode};

/// Header naming who served a response.
pub const SERVED_BY: &str = "x-rpcmesh-served-by";
/// Header with the number of attempts.
pub const ATTEMPTS: &str = "x-rpcmesh-attempts";
/// Header saying how far the answer was verified: `none`, `header`, `proof` or `quorum` (a batch:
/// the least verified of its answers).
pub const VERIFIED: &str = "x-rpcmesh-verified";
/// Request header switching failover per request: `on` or `off`.
pub const FAILOVER: &str = "x-rpcmesh-failover";
/// Request header choosing how far answers are verified: `off`, `sample` or `strict`.
pub const VERIFY: &str = "x-rpcmesh-verify";
/// Ids of client requests in this process, for their tracing spans.
static NEXT_REQUEST_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Response header: whether the answer came from the response cache (`hit`) or providers (`miss`).
pub const CACHE: &str = "x-rpcmesh-cache";
/// Request header: policy patterns of providers not to use (`filters`, `geo:blocks:*`, ...).
pub const AVOID: &str = "x-rpcmesh-avoid";

/// Items of one batch routed at once: a batch of 1000 must not open 1000 upstream connections.
pub const BATCH_CONCURRENCY: usize = 16;

/// Gateway state shared by handlers.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<GatewayInner>,
}

#[derive(Clone)]
struct GatewayInner {
    router: Router,
    aliases: std::collections::HashMap<String, u64>,
    default_chain: Option<u64>,
    max_body_bytes: usize,
    max_batch_len: usize,
    body_timeout: Duration,
    /// Bytes all request bodies may hold at once (`gateway.max_buffered_body_bytes`).
    body_budget: body::BodyBudget,
    cors: Vec<String>,
    in_flight: Arc<tokio::sync::Semaphore>,
    max_in_flight: usize,
    /// Verification mode of requests without `x-rpcmesh-verify`.
    verify: VerifyMode,
    metrics: RequestMetrics,
    /// API keys and quotas (shared: the per-key and per-address buckets are one set).
    access: Arc<Access>,
}

/// What a call (single or batch) got.
#[derive(Debug, Default)]
pub struct Dispatched {
    /// The answer; `None` for notifications only.
    pub body: Option<Bytes>,
    /// Who served, in order of first appearance.
    pub served_by: Vec<Arc<str>>,
    /// Attempts, summed over a batch.
    pub attempts: u32,
    /// The least verified answer (`None` when nothing was routed).
    pub verified: Option<Verified>,
    /// `hit` when every cacheable request was answered from the cache (or an identical one in
    /// flight), `miss` when one was not; `None` when nothing was cacheable.
    pub cache: Option<&'static str>,
}

impl Dispatched {
    fn add(&mut self, r: &Routed) {
        self.attempts += r.attempts;
        if let Some(s) = &r.served_by
            && !self.served_by.contains(s)
        {
            self.served_by.push(s.clone());
        }
        self.verified = Some(self.verified.map_or(r.verified, |v| v.min(r.verified)));
        let item = match r.cache {
            CacheOutcome::None => None,
            CacheOutcome::Hit | CacheOutcome::Coalesced => Some("hit"),
            CacheOutcome::Miss => Some("miss"),
        };
        self.cache = match (self.cache, item) {
            (Some("miss"), _) | (_, Some("miss")) => Some("miss"),
            (a, b) => b.or(a),
        };
    }
}

impl Gateway {
    /// A gateway over `router` for the configured chains, its access metrics unregistered.
    pub fn new(router: Router, cfg: &GatewayConfig, chains: &[ChainConfig], verify: VerifyMode) -> Self {
        Self::with_access_metrics(router, cfg, chains, verify, &NodeMetrics::default())
    }

    /// [`Gateway::new`], counting calls per API key into `metrics`.
    pub fn with_access_metrics(
        router: Router,
        cfg: &GatewayConfig,
        chains: &[ChainConfig],
        verify: VerifyMode,
        metrics: &NodeMetrics,
    ) -> Self {
        let aliases =
            chains.iter().flat_map(|c| c.aliases.iter().map(move |a| (a.to_ascii_lowercase(), c.id))).collect();
        let default_chain = if cfg.default_chain != 0 { Some(cfg.default_chain) } else { chains.first().map(|c| c.id) };
        Self {
            inner: Arc::new(GatewayInner {
                router,
                aliases,
                default_chain,
                max_body_bytes: cfg.max_body_bytes,
                max_batch_len: cfg.max_batch_len,
                body_timeout: Duration::from_millis(cfg.body_timeout_ms),
                body_budget: body::BodyBudget::new(cfg.max_buffered_body_bytes),
                cors: cfg.cors_origins.clone(),
                in_flight: Arc::new(tokio::sync::Semaphore::new(cfg.max_connections.max(1))),
                max_in_flight: cfg.max_connections.max(1),
                verify,
                metrics: RequestMetrics::default(),
                access: Arc::new(
                    Access::new(cfg, metrics.gateway_access.clone()).with_units_metrics(metrics.gateway_units.clone()),
                ),
            }),
        }
    }

    /// Records requests into `metrics` (registered ones; by default they count into families
    /// nobody scrapes). Set before serving: a gateway already shared is copied.
    pub fn with_metrics(mut self, metrics: RequestMetrics) -> Self {
        Arc::make_mut(&mut self.inner).metrics = metrics;
        self
    }

    /// The request metrics, for the transports to record call durations.
    pub(crate) fn metrics(&self) -> &RequestMetrics {
        &self.inner.metrics
    }

    /// The axum router serving HTTP and WebSocket on every path.
    pub fn app(self) -> axum::Router {
        axum::Router::new()
            .route("/", any(handle_root))
            .route("/{chain}", any(handle_chain))
            .route("/k/{key}", any(handle_key_root))
            .route("/k/{key}/{chain}", any(handle_key_chain))
            .with_state(self)
    }

    /// Resolves a path segment to a chain id, or the error listing what is served.
    fn chain(&self, segment: Option<&str>) -> Result<u64, GatewayError> {
        let served = self.inner.router.served_chains();
        let chain = match segment {
            None | Some("") => self.inner.default_chain.or_else(|| served.first().copied()),
            Some(s) => s.parse::<u64>().ok().or_else(|| self.inner.aliases.get(&s.to_ascii_lowercase()).copied()),
        };
        match chain {
            Some(c) if served.contains(&c) => Ok(c),
            _ => {
                let mut names: Vec<String> = served.iter().map(u64::to_string).collect();
                let mut aliases: Vec<String> = self.inner.aliases.iter().map(|(a, c)| format!("{a} ({c})")).collect();
                aliases.sort();
                names.extend(aliases);
                Err(GatewayError::UnknownChain(format!(
                    "unknown chain {:?}; served chains: {}",
                    segment.unwrap_or("/"),
                    if names.is_empty() { "none".into() } else { names.join(", ") }
                )))
            }
        }
    }

    /// Answers one call (single or batch) on `chain`, for a client without a key.
    pub async fn dispatch(&self, chain: u64, body: &Bytes, opts: RouteOptions) -> Dispatched {
        self.dispatch_call(chain, jsonrpc::parse(body), opts, None).await
    }

    /// Answers a parsed call on `chain`; each request must be allowed to `key` as well.
    async fn dispatch_call(&self, chain: u64, call: Call, opts: RouteOptions, key: Option<&ApiKey>) -> Dispatched {
        let mut out = Dispatched::default();
        match call {
            Call::Error { code, message } => {
                out.body = Some(jsonrpc::error_response(b"null", code, &message));
            }
            Call::Single(item) => {
                let (resp, routed) = self.item(chain, item, opts, key).await;
                if let Some(r) = &routed {
                    out.add(r);
                }
                out.body = resp;
            }
            Call::Batch(items) if items.len() > self.inner.max_batch_len => {
                let err = GatewayError::BatchTooLarge { items: items.len(), limit: self.inner.max_batch_len };
                out.body = Some(err.body(&Ids::Unknown));
            }
            Call::Batch(items) => {
                // Routed concurrently, at most BATCH_CONCURRENCY at a time; answers keep
                // request order.
                let results: Vec<(Option<Bytes>, Option<Routed>)> = futures::stream::iter(items)
                    .map(|i| self.item(chain, i, opts.clone(), key))
                    .buffered(BATCH_CONCURRENCY)
                    .collect()
                    .await;
                let mut buf = Vec::with_capacity(
                    results.iter().map(|(r, _)| r.as_ref().map_or(0, |b| b.len() + 1)).sum::<usize>() + 2,
                );
                buf.push(b'[');
                for (resp, routed) in results {
                    if let Some(r) = &routed {
                        out.add(r);
                    }
                    if let Some(b) = resp {
                        if buf.len() > 1 {
                            buf.push(b',');
                        }
                        buf.extend_from_slice(b.trim_ascii());
                    }
                }
                buf.push(b']');
                // Only notifications: JSON-RPC says to return nothing at all.
                out.body = if buf.len() == 2 { None } else { Some(Bytes::from(buf)) };
            }
        }
        out
    }

    async fn item(
        &self,
        chain: u64,
        item: Item,
        opts: RouteOptions,
        key: Option<&ApiKey>,
    ) -> (Option<Bytes>, Option<Routed>) {
        match item {
            Item::Invalid { id, code, message } => {
                self.inner.metrics.invalid(chain);
                (Some(jsonrpc::error_response(&id, code, &message)), None)
            }
            Item::Request(req) => {
                if let Some(k) = key.filter(|k| !k.allows(&req.method)) {
                    self.inner.access.count(Some(k), "method_refused", 1);
                    let refused = jsonrpc::error_response(
                        req.id.as_deref().unwrap_or(b"null"),
                        METHOD_NOT_FOUND,
                        &k.refusal(&req.method),
                    );
                    return (req.id.is_some().then_some(refused), None);
                }
                // One span per client request: every event of its routing (attempts, failovers,
                // checks, the relay's `seq`, which the serving peer's `relay` span names too)
                // carries its id, chain and method.
                let span = tracing::info_span!(
                    "request",
                    rid = NEXT_REQUEST_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                    chain,
                    method = %req.method,
                    attempts = tracing::field::Empty,
                    served_by = tracing::field::Empty,
                    outcome = tracing::field::Empty,
                );
                let routed =
                    tracing::Instrument::instrument(self.inner.router.route(chain, &req, &opts), span.clone()).await;
                span.record("attempts", routed.attempts);
                span.record("outcome", routed.status.label());
                if let Some(s) = &routed.served_by {
                    span.record("served_by", &**s);
                }
                tracing::debug!(parent: &span, "answered");
                self.inner.metrics.routed(chain, &req.method, &routed);
                let resp = (!req.is_notification()).then(|| routed.body.clone());
                (resp, Some(routed))
            }
        }
    }

    fn cors_headers(&self, req_headers: &HeaderMap, out: &mut HeaderMap) {
        if self.inner.cors.is_empty() {
            return;
        }
        let origin = req_headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
        let allowed = if self.inner.cors.iter().any(|o| o == "*") {
            Some("*".to_string())
        } else {
            origin.filter(|o| self.inner.cors.iter().any(|a| a == o)).map(str::to_string)
        };
        if let Some(a) = allowed.and_then(|a| HeaderValue::from_str(&a).ok()) {
            out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, a);
            out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, GET, OPTIONS"));
            out.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(
                    "content-type, authorization, x-rpcmesh-failover, x-rpcmesh-verify, x-rpcmesh-avoid",
                ),
            );
            out.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(
                    "x-rpcmesh-served-by, x-rpcmesh-attempts, x-rpcmesh-verified, x-rpcmesh-cache, retry-after",
                ),
            );
            out.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
            out.insert(header::VARY, HeaderValue::from_static("origin"));
        }
    }

    /// Routing options of a client's request: its headers over the configured defaults.
    fn options(&self, headers: &HeaderMap, addr: &SocketAddr) -> Result<RouteOptions, GatewayError> {
        let failover = match headers.get(FAILOVER).map(|v| v.to_str().map(str::to_ascii_lowercase)) {
            None => self.inner.router.config().failover,
            Some(Ok(v)) if v == "on" => true,
            Some(Ok(v)) if v == "off" => false,
            Some(_) => return Err(GatewayError::BadHeader { name: FAILOVER, expected: "\"on\" or \"off\"" }),
        };
        let verify = match headers.get(VERIFY).map(|v| v.to_str().map(str::to_ascii_lowercase)) {
            None => self.inner.verify,
            Some(Ok(v)) => VerifyMode::parse(&v)
                .ok_or(GatewayError::BadHeader { name: VERIFY, expected: "\"off\", \"sample\" or \"strict\"" })?,
            Some(Err(_)) => {
                return Err(GatewayError::BadHeader { name: VERIFY, expected: "\"off\", \"sample\" or \"strict\"" });
            }
        };
        let avoid = match headers.get(AVOID).map(|v| v.to_str()) {
            None => None,
            Some(Ok(v)) => Some(Avoid::parse_header(v).ok_or(GatewayError::BadHeader {
                name: AVOID,
                expected: "comma-separated policy patterns such as \"filters\" or \"geo:blocks:*\" (at most 16)",
            })?),
            Some(Err(_)) => {
                return Err(GatewayError::BadHeader { name: AVOID, expected: "comma-separated policy patterns" });
            }
        };
        Ok(RouteOptions { failover, client: Some(client_key(addr)), verify, avoid })
    }
}

fn client_key(addr: &SocketAddr) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    addr.hash(&mut h);
    h.finish()
}

async fn handle_root(
    State(gw): State<Gateway>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    req: HttpRequest,
) -> Response {
    handle(gw, None, None, addr, req).await
}

async fn handle_chain(
    State(gw): State<Gateway>,
    Path(chain): Path<String>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    req: HttpRequest,
) -> Response {
    handle(gw, Some(chain), None, addr, req).await
}

async fn handle_key_root(
    State(gw): State<Gateway>,
    Path(key): Path<String>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    req: HttpRequest,
) -> Response {
    handle(gw, None, Some(key), addr, req).await
}

async fn handle_key_chain(
    State(gw): State<Gateway>,
    Path((key, chain)): Path<(String, String)>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    req: HttpRequest,
) -> Response {
    handle(gw, Some(chain), Some(key), addr, req).await
}

async fn handle(
    gw: Gateway,
    segment: Option<String>,
    path_key: Option<String>,
    addr: SocketAddr,
    req: HttpRequest,
) -> Response {
    let req_headers = req.headers().clone();
    let key = Access::presented(path_key.as_deref(), &req_headers);
    let mut resp = match *req.method() {
        Method::OPTIONS => StatusCode::NO_CONTENT.into_response(),
        Method::GET if req_headers.get(header::UPGRADE).is_some() => upgrade(&gw, segment, key, addr, req).await,
        Method::POST => post(&gw, segment, key, addr, &req_headers, req.into_body()).await,
        _ => GatewayError::HttpMethod.respond(&Ids::Unknown),
    };
    gw.cors_headers(&req_headers, resp.headers_mut());
    resp
}

async fn upgrade(
    gw: &Gateway,
    segment: Option<String>,
    key: Option<&str>,
    addr: SocketAddr,
    req: HttpRequest,
) -> Response {
    // Refused before the upgrade: a client without a valid key gets no session at all. Calls
    // inside the session are charged one by one against the quota.
    let key = match gw.inner.access.authenticate(key) {
        Ok(k) => k,
        Err(denied) => {
            gw.inner.access.count_denied(&denied, 1);
            return GatewayError::from(denied).respond(&Ids::Unknown);
        }
    };
    let headers = req.headers().clone();
    let slot = req.extensions().get::<crate::serve::ConnectionSlot>().cloned();
    let meter = req.extensions().get::<crate::serve::ReadMeter>().cloned();
    let upgrade = match axum::extract::ws::WebSocketUpgrade::from_request(req, &()).await {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    let chain = match gw.chain(segment.as_deref()) {
        Ok(c) => c,
        Err(e) => return e.respond(&Ids::Unknown),
    };
    let opts = match gw.options(&headers, &addr) {
        Ok(o) => o,
        Err(e) => return e.respond(&Ids::Unknown),
    };
    // The session keeps the connection's place under `gateway.max_connections`.
    let permit = slot.and_then(|s| s.take());
    ws::upgrade(gw.clone(), ws::Session { chain, opts, key, ip: addr.ip(), meter }, upgrade, permit)
}

async fn post(
    gw: &Gateway,
    segment: Option<String>,
    key: Option<&str>,
    addr: SocketAddr,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let length = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let inner = &gw.inner;
    // `_held` keeps the body's bytes counted until the answer is made.
    let (body, _held) =
        match body::read(body, inner.max_body_bytes, inner.body_timeout, length, &inner.body_budget).await {
            Ok(b) => b,
            Err(refused) => return refused.error.respond(&body::sniff_id(&refused.prefix)),
        };
    let call = jsonrpc::parse(&body);
    // A batch over the limit is refused whole: it costs at most the limit.
    let calls = body::calls_in(&call).min(u32::try_from(gw.inner.max_batch_len).unwrap_or(u32::MAX).max(1));
    let access = &gw.inner.access;
    let units = access.units(&call, gw.inner.max_batch_len);
    let key = match access.authenticate(key) {
        Ok(k) => k,
        Err(denied) => {
            access.count_denied(&denied, calls);
            return GatewayError::from(denied).respond(&body::ids_of_call(&call));
        }
    };
    if let Err(denied) = access.charge(key.as_deref(), addr.ip(), calls, units) {
        return GatewayError::from(denied).respond(&body::ids_of_call(&call));
    }
    // The in-flight slot is taken once the request is complete: a slow client holds a
    // connection, never a slot.
    let Ok(_permit) = gw.inner.in_flight.clone().try_acquire_owned() else {
        return GatewayError::Busy { limit: gw.inner.max_in_flight }.respond(&body::ids_of_call(&call));
    };
    let chain = match gw.chain(segment.as_deref()) {
        Ok(c) => c,
        Err(e) => return e.respond(&body::ids_of_call(&call)),
    };
    let opts = match gw.options(headers, &addr) {
        Ok(o) => o,
        Err(e) => return e.respond(&body::ids_of_call(&call)),
    };
    let started = tokio::time::Instant::now();
    let d = gw.dispatch_call(chain, call, opts, key.as_deref()).await;
    gw.metrics().call(chain, "http", started.elapsed());
    let mut resp = match d.body {
        Some(b) => json_response(StatusCode::OK, b),
        None => StatusCode::NO_CONTENT.into_response(),
    };
    let h = resp.headers_mut();
    if !d.served_by.is_empty()
        && let Ok(v) = HeaderValue::from_str(&d.served_by.join(","))
    {
        h.insert(SERVED_BY, v);
    }
    h.insert(ATTEMPTS, HeaderValue::from(d.attempts));
    if let Some(v) = d.verified {
        h.insert(VERIFIED, HeaderValue::from_static(v.label()));
    }
    if let Some(c) = d.cache {
        h.insert(CACHE, HeaderValue::from_static(c));
    }
    resp
}
