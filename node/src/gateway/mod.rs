//! The JSON-RPC gateway clients point at (default 127.0.0.1:8545): Ethereum JSON-RPC 2.0 over
//! HTTP POST (single, batch, notifications) and WebSocket, on `/` (default chain),
//! `/{chain_id}` and `/{alias}`. Every answer says who served it (`x-rpcmesh-served-by`) and
//! after how many attempts (`x-rpcmesh-attempts`).
//!
//! Bodies are forwarded as received; only the envelope (method, id) is read. Errors the
//! gateway itself produces follow JSON-RPC 2.0 and echo the id byte for byte.

pub mod jsonrpc;
mod ws;

use std::collections::HashMap;
use std::hash::{Hash as _, Hasher as _};
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest as _, Path, Request as HttpRequest, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Limited};

use self::jsonrpc::{Call, INVALID_REQUEST, Item, RESOURCE_NOT_FOUND};
use crate::config::{ChainConfig, GatewayConfig};
use crate::router::{RouteOptions, Routed, Router};

/// Header naming who served a response.
pub const SERVED_BY: &str = "x-rpcmesh-served-by";
/// Header with the number of attempts.
pub const ATTEMPTS: &str = "x-rpcmesh-attempts";
/// Request header switching failover per request: `on` or `off`.
pub const FAILOVER: &str = "x-rpcmesh-failover";

/// Gateway state shared by handlers.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<GatewayInner>,
}

struct GatewayInner {
    router: Router,
    aliases: HashMap<String, u64>,
    default_chain: Option<u64>,
    max_body_bytes: usize,
    max_batch_len: usize,
    cors: Vec<String>,
    in_flight: Arc<tokio::sync::Semaphore>,
    max_in_flight: usize,
}

impl Gateway {
    /// A gateway over `router` for the configured chains.
    pub fn new(router: Router, cfg: &GatewayConfig, chains: &[ChainConfig]) -> Self {
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
                cors: cfg.cors_origins.clone(),
                in_flight: Arc::new(tokio::sync::Semaphore::new(cfg.max_connections.max(1))),
                max_in_flight: cfg.max_connections.max(1),
            }),
        }
    }

    /// The axum router serving HTTP and WebSocket on every path.
    pub fn app(self) -> axum::Router {
        axum::Router::new().route("/", any(handle_root)).route("/{chain}", any(handle_chain)).with_state(self)
    }

    /// Resolves a path segment to a chain id, or the error listing what is served.
    fn chain(&self, segment: Option<&str>) -> Result<u64, String> {
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
                Err(format!(
                    "unknown chain {:?}; served chains: {}",
                    segment.unwrap_or("/"),
                    if names.is_empty() { "none".into() } else { names.join(", ") }
                ))
            }
        }
    }

    /// Answers one call (single or batch) on `chain`.
    pub async fn dispatch(&self, chain: u64, body: &Bytes, opts: RouteOptions) -> (Option<Bytes>, Vec<String>, u32) {
        match jsonrpc::parse(body) {
            Call::Error { code, message } => (Some(jsonrpc::error_response(b"null", code, &message)), vec![], 0),
            Call::Single(item) => {
                let (resp, routed) = self.item(chain, item, opts).await;
                let served = routed.as_ref().and_then(|r| r.served_by.clone()).into_iter().collect();
                (resp, served, routed.map_or(0, |r| r.attempts))
            }
            Call::Batch(items) if items.len() > self.inner.max_batch_len => (
                Some(jsonrpc::error_response(
                    b"null",
                    INVALID_REQUEST,
                    &format!("batch of {} requests is over the limit of {}", items.len(), self.inner.max_batch_len),
                )),
                vec![],
                0,
            ),
            Call::Batch(items) => {
                // Each element is routed on its own, concurrently; answers keep request order.
                let results = futures::future::join_all(items.into_iter().map(|i| self.item(chain, i, opts))).await;
                let mut out = Vec::with_capacity(
                    results.iter().map(|(r, _)| r.as_ref().map_or(0, |b| b.len() + 1)).sum::<usize>() + 2,
                );
                let mut served: Vec<String> = Vec::new();
                let mut attempts = 0;
                out.push(b'[');
                for (resp, routed) in results {
                    if let Some(r) = routed {
                        attempts += r.attempts;
                        if let Some(s) = r.served_by
                            && !served.contains(&s)
                        {
                            served.push(s);
                        }
                    }
                    if let Some(b) = resp {
                        if out.len() > 1 {
                            out.push(b',');
                        }
                        out.extend_from_slice(b.trim_ascii());
                    }
                }
                out.push(b']');
                // Only notifications: JSON-RPC says to return nothing at all.
                let body = if out.len() == 2 { None } else { Some(Bytes::from(out)) };
                (body, served, attempts)
            }
        }
    }

    async fn item(&self, chain: u64, item: Item, opts: RouteOptions) -> (Option<Bytes>, Option<Routed>) {
        match item {
            Item::Invalid { id, code, message } => (Some(jsonrpc::error_response(&id, code, &message)), None),
            Item::Request(req) => {
                let routed = self.inner.router.route(chain, &req, opts).await;
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
                HeaderValue::from_static("content-type, x-rpcmesh-failover"),
            );
            out.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("x-rpcmesh-served-by, x-rpcmesh-attempts"),
            );
            out.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
            out.insert(header::VARY, HeaderValue::from_static("origin"));
        }
    }

    fn failover(&self, headers: &HeaderMap) -> Result<bool, String> {
        match headers.get(FAILOVER).map(|v| v.to_str().map(str::to_ascii_lowercase)) {
            None => Ok(self.inner.router.config().failover),
            Some(Ok(v)) if v == "on" => Ok(true),
            Some(Ok(v)) if v == "off" => Ok(false),
            Some(_) => Err(format!("header {FAILOVER} must be \"on\" or \"off\"")),
        }
    }
}

fn client_key(addr: &SocketAddr) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    addr.hash(&mut h);
    h.finish()
}

fn json_response(status: StatusCode, body: Bytes) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

async fn handle_root(
    State(gw): State<Gateway>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    req: HttpRequest,
) -> Response {
    handle(gw, None, addr, req).await
}

async fn handle_chain(
    State(gw): State<Gateway>,
    Path(chain): Path<String>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    req: HttpRequest,
) -> Response {
    handle(gw, Some(chain), addr, req).await
}

async fn handle(gw: Gateway, segment: Option<String>, addr: SocketAddr, req: HttpRequest) -> Response {
    // Refuse rather than queue past the limit: a client (or a load balancer) retries elsewhere.
    let Ok(_permit) = gw.inner.in_flight.clone().try_acquire_owned() else {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            jsonrpc::error_response(
                b"null",
                -32005,
                &format!("gateway busy: {} requests in flight (gateway.max_connections)", gw.inner.max_in_flight),
            ),
        );
    };
    let req_headers = req.headers().clone();
    let mut resp = match *req.method() {
        Method::OPTIONS => StatusCode::NO_CONTENT.into_response(),
        Method::GET if req_headers.get(header::UPGRADE).is_some() => {
            match axum::extract::ws::WebSocketUpgrade::from_request(req, &()).await {
                Ok(upgrade) => match gw.chain(segment.as_deref()) {
                    Ok(chain) => {
                        let failover = gw.failover(&req_headers).unwrap_or(gw.inner.router.config().failover);
                        ws::upgrade(
                            gw.clone(),
                            chain,
                            RouteOptions { failover, client: Some(client_key(&addr)) },
                            upgrade,
                        )
                    }
                    Err(msg) => {
                        json_response(StatusCode::NOT_FOUND, jsonrpc::error_response(b"null", RESOURCE_NOT_FOUND, &msg))
                    }
                },
                Err(rejection) => rejection.into_response(),
            }
        }
        Method::POST => post(&gw, segment, addr, &req_headers, req.into_body()).await,
        _ => json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            jsonrpc::error_response(
                b"null",
                INVALID_REQUEST,
                "use POST for JSON-RPC over HTTP, or a WebSocket upgrade",
            ),
        ),
    };
    gw.cors_headers(&req_headers, resp.headers_mut());
    resp
}

async fn post(gw: &Gateway, segment: Option<String>, addr: SocketAddr, headers: &HeaderMap, body: Body) -> Response {
    let limit = gw.inner.max_body_bytes;
    let body = match Limited::new(body, limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                jsonrpc::error_response(
                    b"null",
                    INVALID_REQUEST,
                    &format!("request body is larger than the gateway limit of {limit} bytes (gateway.max_body_bytes)"),
                ),
            );
        }
        Err(e) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                jsonrpc::error_response(b"null", INVALID_REQUEST, &format!("could not read the body: {e}")),
            );
        }
    };
    let chain = match gw.chain(segment.as_deref()) {
        Ok(c) => c,
        Err(msg) => {
            return json_response(StatusCode::NOT_FOUND, jsonrpc::error_response(b"null", RESOURCE_NOT_FOUND, &msg));
        }
    };
    let failover = match gw.failover(headers) {
        Ok(f) => f,
        Err(msg) => {
            return json_response(StatusCode::BAD_REQUEST, jsonrpc::error_response(b"null", INVALID_REQUEST, &msg));
        }
    };
    let (answer, served, attempts) =
        gw.dispatch(chain, &body, RouteOptions { failover, client: Some(client_key(&addr)) }).await;
    let mut resp = match answer {
        Some(b) => json_response(StatusCode::OK, b),
        None => StatusCode::NO_CONTENT.into_response(),
    };
    if !served.is_empty()
        && let Ok(v) = HeaderValue::from_str(&served.join(","))
    {
        resp.headers_mut().insert(SERVED_BY, v);
    }
    resp.headers_mut().insert(ATTEMPTS, HeaderValue::from(attempts));
    resp
}
