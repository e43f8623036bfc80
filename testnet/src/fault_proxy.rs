//! An in-process HTTP JSON-RPC fault proxy in front of a real node (anvil): one per provider, so
//! every [`Fault`] kind works on a shared real chain with the same meaning as on the simulated
//! backend ([`crate::sim`]), where that meaning makes sense for a real node.
//!
//! - [`Fault::None`]: requests are forwarded as they are (pooled keep-alive client, body bytes
//!   untouched, the node's status and body returned as they are).
//! - [`Fault::Down`]: the listener is closed and open connections are dropped (connecting is
//!   refused); leaving `Down` binds the same port again.
//! - [`Fault::Freeze`]: requests are accepted and read but not answered until the fault changes;
//!   held requests are then answered under the new fault.
//! - [`Fault::Slow`]: every request is answered after `delay_ms` plus a seeded random
//!   `0..=jitter_ms`.
//! - [`Fault::Errors`]: that fraction of requests fails (seeded draws): half a bare HTTP 500, half a
//!   JSON-RPC `-32603` for every call of the request.
//! - [`Fault::Stale`]: a node `blocks` behind the real head `H` (its head `h = H - blocks`):
//!   `eth_blockNumber` answers `h`; block tags `latest`/`pending` (and a missing block parameter)
//!   of block and state queries mean `h`; blocks above `h` are `null` (by number, by hash, and the
//!   block of a transaction or receipt); state queries (`eth_getBalance`, `eth_call`,
//!   `eth_getTransactionCount`, `eth_getCode`, `eth_getStorageAt`, `eth_estimateGas`) at a number
//!   above `h` fail with `-32000 header not found` (`eth_feeHistory`: `request beyond head
//!   block`); `eth_getLogs` stops at `h`.
//! - [`Fault::Lie`] (`lie`) lies in every way of [`LieKind`] at once; [`Fault::LieAbout`]
//!   (`lie=balance,storage`) only in the listed ways, one per answer the integrity layer can
//!   check, so a test can aim at one check at a time:
//!   - `hash`: block objects get a consistent fake `hash` and `parentHash` (the true hash XOR
//!     [`LIE_MASK`], so block `n`'s fake `parentHash` is block `n-1`'s fake `hash`), and
//!     `blockHash` in transactions, receipts and logs is faked the same way; the liar finds its
//!     own fake hashes wherever a parameter names a block by hash (`eth_getBlockByHash`, EIP-1898
//!     `blockHash` objects, `eth_getLogs` `blockHash` filters, `eth_getBlockReceipts`);
//!   - `balance`: `eth_getBalance` is doubled (an empty account holds 1 ether);
//!   - `nonce`: `eth_getTransactionCount` is one more;
//!   - `code`: `eth_getCode` has the low bit of its last byte flipped (no code: `0x00`);
//!   - `storage`: `eth_getStorageAt` has the low bit of its word flipped;
//!   - `proof`: `eth_getProof` tells the balance, nonce and storage values above under the true
//!     proof nodes, so its own proof refutes it;
//!   - `header`: blocks by number or hash carry a `stateRoot` with its low bit flipped under
//!     their true `hash`;
//!   - `tx`: transactions by hash, by block and index, and inside full blocks carry an altered
//!     `value` (doubled; 0 → 1 ether) under their true `hash` and signature;
//!   - `receipt`: `eth_getTransactionReceipt` and every receipt of `eth_getBlockReceipts` have
//!     `status` flipped (receipts without one: `cumulativeGasUsed` + 1);
//!   - `log-data`: every log of `eth_getLogs` has the low bit of its `data`'s last byte flipped
//!     (empty data: `0x00`);
//!   - `log-omit`: `eth_getLogs` leaves out the last log of its answer;
//!   - `call`: `eth_call` returns altered bytes, as `code`.
//!
//!   Every lie is a function of the true answer alone: the same request gets the same wrong
//!   answer, and one value lies alike in every method (a transaction by hash and in its block,
//!   a balance in `eth_getBalance` and `eth_getProof`). `eth_chainId`, `net_version`,
//!   `eth_blockNumber` and block numbers are never altered: the liar's head is honest.
//! - [`Fault::Overload`]: of the requests arriving in each one-second window (counted from the
//!   first request under the fault), those beyond `max_per_sec` get HTTP 429 and a JSON-RPC
//!   `-32005 limit exceeded` for every call (ids echoed); the others are forwarded as they are.
//! - [`Fault::Censor`]: a node filtering one address the way a sanctions filter in front of a
//!   real node does: `eth_sendRawTransaction` whose raw bytes contain the address, and
//!   `eth_call`/`eth_estimateGas` whose `to` or `from` is it, fail with `-32003 transaction
//!   rejected`; its account reads empty (`eth_getBalance` and `eth_getTransactionCount` `0x0`,
//!   `eth_getCode` `0x`, `eth_getStorageAt` the zero word); logs emitted by it or mentioning it in
//!   a topic are left out of `eth_getLogs`. `eth_getProof` stays honest: a daemon checks a read
//!   with proofs fetched from *other* operators, so lying there too would change nothing.
//!
//! Content faults (`Stale`, `Lie`/`LieAbout`, `Censor`) act on every call of a batch on its own;
//! ids are echoed byte for byte, calls without an id (notifications) get no answer. They send one
//! batch to the node per client request (plus one `eth_blockNumber` under `Stale`).
//!
//! Transport: the accept loop, per-connection control and transport faults are the simulated
//! backend's (`crate::transport`): connections of one listening period share a cancellation
//! token and a task tracker, so `Down` and shutdown drop them all.
//! Bounds: connections ([`FaultProxyConfig::max_connections`], more are closed on accept),
//! request bodies ([`FaultProxyConfig::max_body_bytes`], larger get HTTP 413), node answers
//! ([`FaultProxyConfig::max_response_bytes`]), batch size ([`crate::sim::MAX_BATCH_CALLS`] under
//! content faults). HTTP only (`POST`, any path); WebSocket is not proxied.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use rpcmesh_node::upstream::{HttpClient, TransportError};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::sim::{Address, Fault, LieKind, LieKinds, MAX_BATCH_CALLS};
use crate::transport::{Admission, Call, IdOnly, Listener, Switch, Upgrades};

mod lies;

/// What a lying proxy XORs into every block hash: an involution, so faking a fake hash gives the
/// true one back, and a chain of true hashes becomes a consistent chain of fake ones.
pub const LIE_MASK: [u8; 32] = *b"rpcmesh-fault-proxy/lie-mask/v1!";

/// Options of a fault proxy beyond its target and address.
#[derive(Clone, Debug)]
pub struct FaultProxyConfig {
    /// Seed of the PRNG behind `Slow` jitter and `Errors` draws.
    pub seed: u64,
    /// Most simultaneous client connections; more are closed on accept.
    pub max_connections: usize,
    /// Largest request body accepted, in bytes; larger bodies get HTTP 413.
    pub max_body_bytes: usize,
    /// Largest answer read from the node, in bytes; larger ones get HTTP 502.
    pub max_response_bytes: usize,
    /// Deadline of one exchange with the node; past it the client gets HTTP 502.
    pub upstream_timeout: Duration,
}

impl Default for FaultProxyConfig {
    fn default() -> Self {
        Self {
            seed: 0x5151_0000_0000_0002,
            max_connections: 256,
            max_body_bytes: crate::sim::MAX_REQUEST_BYTES,
            max_response_bytes: 32 * 1024 * 1024,
            upstream_timeout: Duration::from_secs(30),
        }
    }
}

/// Counters of a fault proxy since it was spawned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultProxyStats {
    /// Client connections accepted.
    pub connections: u64,
    /// Client connections closed at once because `max_connections` were open.
    pub rejected_connections: u64,
    /// HTTP requests received (counted on arrival, before any fault holds or fails them).
    pub http_requests: u64,
    /// HTTP requests sent to the node.
    pub upstream_requests: u64,
    /// Exchanges with the node that failed (transport error, timeout, oversized answer).
    pub upstream_failures: u64,
    /// Requests failed by `Fault::Errors`.
    pub injected_errors: u64,
}

/// Counters of what the proxy forwards; connections and injected errors are counted by its
/// [`Switch`].
#[derive(Debug, Default)]
struct Counters {
    http_requests: AtomicU64,
    upstream_requests: AtomicU64,
    upstream_failures: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    fn snapshot(&self, switch: &Switch) -> FaultProxyStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        FaultProxyStats {
            connections: get(&switch.connections),
            rejected_connections: get(&switch.rejected_connections),
            http_requests: get(&self.http_requests),
            upstream_requests: get(&self.upstream_requests),
            upstream_failures: get(&self.upstream_failures),
            injected_errors: get(&switch.injected_errors),
        }
    }
}

struct Shared {
    target: hyper::Uri,
    client: HttpClient,
    config: FaultProxyConfig,
    /// Fault, listening period and connection counters.
    switch: Arc<Switch>,
    stats: Counters,
    /// `Fault::Overload`'s window: its start and the requests counted in it.
    overload_window: Mutex<Option<(Instant, u32)>>,
}

/// Why the node could not be asked.
struct Upstream(String);

impl Shared {
    /// Counts a request under `Fault::Overload`: whether it is beyond `max_per_sec` in its
    /// one-second window.
    fn over_rate(&self, max_per_sec: u32) -> bool {
        let mut window = self.overload_window.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let (start, count) = match *window {
            Some((start, count)) if now.duration_since(start) < Duration::from_secs(1) => (start, count + 1),
            _ => (now, 1),
        };
        *window = Some((start, count));
        count > max_per_sec
    }

    /// One HTTP exchange with the node.
    async fn post(&self, body: Bytes) -> Result<(u16, Bytes), Upstream> {
        bump(&self.stats.upstream_requests);
        match self.client.post_json(&self.target, body, self.config.upstream_timeout).await {
            Ok(reply) => Ok((reply.status, reply.body)),
            Err(e) => {
                bump(&self.stats.upstream_failures);
                let why = match e {
                    TransportError::TooLarge(n) => format!("the node's answer is over {n} bytes"),
                    other => other.to_string(),
                };
                Err(Upstream(why))
            }
        }
    }
}

/// Spawns fault proxies.
#[derive(Debug)]
pub struct FaultProxy;

impl FaultProxy {
    /// Binds `addr` (`127.0.0.1:0` for any free port) and forwards to the node at `target`
    /// (`http://target/`) with default options.
    pub async fn spawn(target: SocketAddr, addr: SocketAddr) -> io::Result<FaultProxyHandle> {
        Self::spawn_with(target, addr, FaultProxyConfig::default()).await
    }

    /// Binds `addr` and forwards to `target` with `config`. Must be called inside a tokio runtime.
    pub async fn spawn_with(
        target: SocketAddr,
        addr: SocketAddr,
        config: FaultProxyConfig,
    ) -> io::Result<FaultProxyHandle> {
        let target_uri: hyper::Uri =
            format!("http://{target}/").parse().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let switch = Arc::new(Switch::new("fault proxy", config.seed));
        let shared = Arc::new(Shared {
            target: target_uri,
            client: HttpClient::new(config.max_response_bytes),
            switch: switch.clone(),
            stats: Counters::default(),
            overload_window: Mutex::new(None),
            config,
        });
        let max_connections = shared.config.max_connections;
        let listener = Listener::spawn(switch, addr, router(shared.clone()), max_connections, Upgrades::Refused)?;
        let addr = listener.addr();
        tracing::debug!(%addr, %target, "fault proxy listening");
        Ok(FaultProxyHandle { inner: Arc::new(HandleInner { shared, target, listener }) })
    }
}

/// Cloneable control of a running fault proxy. The proxy stops when [`shutdown`] is called or the
/// last clone is dropped.
///
/// [`shutdown`]: FaultProxyHandle::shutdown
#[derive(Clone)]
pub struct FaultProxyHandle {
    inner: Arc<HandleInner>,
}

struct HandleInner {
    shared: Arc<Shared>,
    target: SocketAddr,
    listener: Listener,
}

impl std::fmt::Debug for FaultProxyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxyHandle")
            .field("addr", &self.addr())
            .field("target", &self.inner.target)
            .field("fault", &self.fault())
            .finish()
    }
}

impl FaultProxyHandle {
    /// The bound address (the same across `Down` and heal).
    pub fn addr(&self) -> SocketAddr {
        self.inner.listener.addr()
    }

    /// The node it forwards to.
    pub fn target(&self) -> SocketAddr {
        self.inner.target
    }

    /// `http://ip:port/`.
    pub fn http_url(&self) -> String {
        format!("http://{}/", self.addr())
    }

    /// Switches the proxy to `fault` at once for requests that arrive from now on (held `Freeze`
    /// requests are released under the new fault). Closing or rebinding the listener for
    /// [`Fault::Down`] happens moments later in the accept loop; await [`FaultProxyHandle::ready`].
    pub fn set_fault(&self, fault: Fault) {
        self.inner.listener.set_fault(fault);
    }

    /// Sets [`Fault::None`].
    pub fn heal(&self) {
        self.set_fault(Fault::None);
    }

    /// The fault currently set.
    pub fn fault(&self) -> Fault {
        self.inner.shared.switch.fault()
    }

    /// Waits until the last fault set is in effect at the socket too: after `Down` the port
    /// refuses connections and earlier connections are closed; after leaving `Down` it listens on
    /// the same port again. Errs if that rebinding fails (it is retried in the background) or the
    /// proxy has stopped.
    pub async fn ready(&self) -> io::Result<()> {
        self.inner.listener.ready().await
    }

    /// Sets `fault` and waits until it is in effect (see [`FaultProxyHandle::ready`]).
    pub async fn apply(&self, fault: Fault) -> io::Result<()> {
        self.set_fault(fault);
        self.ready().await
    }

    /// Counters since spawn.
    pub fn stats(&self) -> FaultProxyStats {
        self.inner.shared.stats.snapshot(&self.inner.shared.switch)
    }

    /// Stops the proxy: closes the port, drops all connections and waits for its accept loop.
    pub async fn shutdown(self) {
        self.inner.listener.shutdown().await;
    }
}

fn router(shared: Arc<Shared>) -> Router {
    let limit = shared.config.max_body_bytes;
    Router::new()
        .route("/", post(http_rpc))
        .route("/{*path}", post(http_rpc))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(shared)
}

fn json_response(status: StatusCode, body: impl Into<axum::body::Body>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.into()).into_response()
}

fn bad_gateway(why: &Upstream) -> Response {
    (StatusCode::BAD_GATEWAY, format!("bad gateway: {}\n", why.0)).into_response()
}

async fn http_rpc(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    bump(&shared.stats.http_requests);
    if let Fault::Overload { max_per_sec } = shared.switch.fault()
        && shared.over_rate(max_per_sec)
    {
        return match every_call_fails(&body, -32005, "limit exceeded") {
            Some(text) => json_response(StatusCode::TOO_MANY_REQUESTS, text),
            None => StatusCode::TOO_MANY_REQUESTS.into_response(),
        };
    }
    let fault = match shared.switch.admit(true).await {
        Admission::Http500 => return (StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n").into_response(),
        Admission::Internal(_) => {
            return match internal_errors(&body) {
                Some(text) => json_response(StatusCode::OK, text),
                None => StatusCode::OK.into_response(),
            };
        }
        Admission::Answer(fault) => fault,
    };
    let content = match fault {
        Fault::Stale { blocks } => match stale_head(&shared, blocks).await {
            Ok(head) => Content::Stale(head),
            Err(why) => return bad_gateway(&why),
        },
        Fault::Lie => Content::Lie(LieKinds::ALL),
        Fault::LieAbout { kinds } => Content::Lie(kinds),
        Fault::Censor { address } => Content::Censor(address),
        Fault::None
        | Fault::Down
        | Fault::Freeze
        | Fault::Slow { .. }
        | Fault::Errors { .. }
        | Fault::Overload { .. } => {
            return match shared.post(body).await {
                Ok((status, body)) => {
                    json_response(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY), body)
                }
                Err(why) => bad_gateway(&why),
            };
        }
    };
    match answer_content(&shared, &content, &body).await {
        Ok(Some(text)) => json_response(StatusCode::OK, text),
        Ok(None) => StatusCode::OK.into_response(),
        Err(why) => bad_gateway(&why),
    }
}

/// The head of a node `blocks` behind the real one.
async fn stale_head(shared: &Shared, blocks: u64) -> Result<u64, Upstream> {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#;
    let (status, reply) = shared.post(Bytes::from_static(body.as_bytes())).await?;
    let head = serde_json::from_slice::<Value>(&reply)
        .ok()
        .and_then(|v| v.get("result").and_then(Value::as_str).and_then(parse_quantity))
        .ok_or_else(|| Upstream(format!("the node answered eth_blockNumber with HTTP {status} and no head")))?;
    Ok(head.saturating_sub(blocks))
}

// ---------------------------------------------------------------------------------------------
// JSON-RPC framing.

/// One answer of the node to a call the proxy sent with id `id`.
#[derive(Deserialize)]
struct Reply<'a> {
    #[serde(default)]
    id: Value,
    /// `None` for an absent or `null` result.
    #[serde(default, borrow)]
    result: Option<&'a RawValue>,
    #[serde(default, borrow)]
    error: Option<&'a RawValue>,
}

/// A call's outcome as JSON text: `Ok(result)` or `Err(error object)`.
type Outcome = Result<String, String>;

fn error_text(code: i64, message: &str) -> String {
    json!({ "code": code, "message": message }).to_string()
}

fn render(id: &str, outcome: &Outcome) -> String {
    match outcome {
        Ok(result) => format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#),
        Err(error) => format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{error}}}"#),
    }
}

/// The items of a request body: `(is_batch, items)`, or an error answer for the whole body.
fn split(body: &[u8]) -> Result<(bool, Vec<&RawValue>), String> {
    let whole = |code, message: &str| render("null", &Err(error_text(code, message)));
    let Ok(text) = std::str::from_utf8(body) else { return Err(whole(-32700, "parse error")) };
    if text.trim_start().starts_with('[') {
        let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(text) else { return Err(whole(-32700, "parse error")) };
        if items.is_empty() {
            return Err(whole(-32600, "invalid request: empty batch"));
        }
        if items.len() > MAX_BATCH_CALLS {
            return Err(whole(-32600, "invalid request: batch too large"));
        }
        Ok((true, items))
    } else {
        match serde_json::from_str::<&RawValue>(text) {
            Ok(item) => Ok((false, vec![item])),
            Err(_) => Err(whole(-32700, "parse error")),
        }
    }
}

/// Joins the answers of a request: `None` when every call was a notification.
fn join(batch: bool, answers: Vec<String>) -> Option<String> {
    if batch { (!answers.is_empty()).then(|| format!("[{}]", answers.join(","))) } else { answers.into_iter().next() }
}

/// The `Fault::Errors` answer: `-32603` for every call.
fn internal_errors(body: &[u8]) -> Option<String> {
    every_call_fails(body, -32603, "internal error")
}

/// The same error for every call of a request (ids echoed, notifications unanswered).
fn every_call_fails(body: &[u8], code: i64, message: &str) -> Option<String> {
    let internal: Outcome = Err(error_text(code, message));
    let (batch, items) = match split(body) {
        Ok(split) => split,
        Err(_) => return Some(render("null", &internal)),
    };
    let answers = items
        .iter()
        .filter_map(|item| match serde_json::from_str::<IdOnly<'_>>(item.get()) {
            Ok(IdOnly { id: Some(id) }) => Some(render(id.get(), &internal)),
            Ok(IdOnly { id: None }) => None,
            Err(_) => Some(render("null", &internal)),
        })
        .collect();
    join(batch, answers)
}

// ---------------------------------------------------------------------------------------------
// Content faults.

/// A content fault with what it needs to know.
enum Content {
    /// The stale node's head.
    Stale(u64),
    /// What the node lies about.
    Lie(LieKinds),
    Censor(Address),
}

/// What to do with the node's result of one call.
#[derive(Clone, Copy, Debug)]
enum Post {
    None,
    /// A block (or block count) above the head is `null`.
    StaleBlock(u64),
    /// Logs above the head are dropped.
    StaleLogs(u64),
    /// A transaction or receipt in a block above the head is `null`.
    StaleTx(u64),
    /// Lies of these kinds, about a result of this shape.
    Lie(LieKinds, lies::Answer),
    /// A string result (a quantity or data) is replaced by this empty value.
    Empty(&'static str),
    /// Logs emitted by or naming this address are dropped.
    CensorLogs(Address),
}

/// How one call is answered.
enum Plan {
    /// Without asking the node.
    Local(Outcome),
    /// Ask the node `method(params)` (params as JSON text), then apply `post` to the result.
    Ask { params: Option<String>, post: Post },
}

fn pass(post: Post) -> Plan {
    Plan::Ask { params: None, post }
}

fn ask(params: Vec<Value>, post: Post) -> Plan {
    Plan::Ask { params: Some(Value::Array(params).to_string()), post }
}

/// Answers a body under a content fault: plans every call, asks the node the remaining calls in
/// one batch (with the proxy's own ids), post-processes, renders with the client's ids.
async fn answer_content(shared: &Shared, content: &Content, body: &[u8]) -> Result<Option<String>, Upstream> {
    let (batch, items) = match split(body) {
        Ok(split) => split,
        Err(answer) => return Ok(Some(answer)),
    };
    let mut calls: Vec<(Option<&RawValue>, Plan)> = Vec::with_capacity(items.len());
    let mut upstream = String::from("[");
    for item in &items {
        let Ok(call) = serde_json::from_str::<Call<'_>>(item.get()) else {
            let id = serde_json::from_str::<IdOnly<'_>>(item.get()).ok().and_then(|r| r.id).unwrap_or(RawValue::NULL);
            let invalid = Err(error_text(-32600, "invalid request: not a JSON-RPC call object"));
            calls.push((Some(id), Plan::Local(invalid)));
            continue;
        };
        let plan = plan(content, &call.method, call.params);
        if let Plan::Ask { params, .. } = &plan {
            if upstream.len() > 1 {
                upstream.push(',');
            }
            let params = params.as_deref().or(call.params.map(RawValue::get)).unwrap_or("[]");
            let method = Value::from(call.method.as_str());
            upstream
                .push_str(&format!(r#"{{"jsonrpc":"2.0","id":{},"method":{method},"params":{params}}}"#, calls.len()));
        }
        calls.push((call.id, plan));
    }
    upstream.push(']');
    let mut replies: Vec<Option<Outcome>> = vec![None; calls.len()];
    if upstream.len() > 2 {
        let (status, reply) = shared.post(Bytes::from(upstream)).await?;
        collect_replies(status, &reply, &mut replies);
    }
    let mut answers = Vec::with_capacity(calls.len());
    for (k, (id, plan)) in calls.into_iter().enumerate() {
        let outcome = match plan {
            Plan::Local(outcome) => outcome,
            Plan::Ask { post, .. } => match replies[k].take() {
                Some(Ok(result)) => Ok(post_process(post, result)),
                Some(Err(error)) => Err(error),
                None => Err(error_text(-32603, "internal error: no answer from the node")),
            },
        };
        if let Some(id) = id {
            answers.push(render(id.get(), &outcome));
        }
    }
    Ok(join(batch, answers))
}

/// Files the node's answers to a batch by the proxy's ids.
fn collect_replies(status: u16, body: &[u8], replies: &mut [Option<Outcome>]) {
    let fill_all = |replies: &mut [Option<Outcome>], error: String| {
        for r in replies.iter_mut() {
            *r = Some(Err(error.clone()));
        }
    };
    if let Ok(list) = serde_json::from_slice::<Vec<Reply<'_>>>(body) {
        for reply in list {
            let Some(slot) = reply.id.as_u64().and_then(|k| replies.get_mut(k as usize)) else { continue };
            *slot = Some(match reply.error {
                Some(error) => Err(error.get().to_string()),
                None => Ok(reply.result.map_or_else(|| "null".to_string(), |r| r.get().to_string())),
            });
        }
    } else if let Ok(Reply { error: Some(error), .. }) = serde_json::from_slice::<Reply<'_>>(body) {
        fill_all(replies, error.get().to_string());
    } else {
        fill_all(
            replies,
            error_text(-32603, &format!("internal error: the node answered HTTP {status} without JSON-RPC")),
        );
    }
}

/// State queries and the index of their block parameter.
fn state_block_index(method: &str) -> Option<usize> {
    match method {
        "eth_getBalance" | "eth_getTransactionCount" | "eth_getCode" | "eth_call" | "eth_estimateGas" => Some(1),
        "eth_getStorageAt" => Some(2),
        _ => None,
    }
}

fn plan(content: &Content, method: &str, params: Option<&RawValue>) -> Plan {
    let list = match params.map(|p| serde_json::from_str::<Value>(p.get())) {
        None | Some(Ok(Value::Null)) => Vec::new(),
        Some(Ok(Value::Array(list))) => list,
        // Not positional params: the node judges them.
        Some(_) => return pass(Post::None),
    };
    match content {
        Content::Stale(head) => plan_stale(*head, method, list),
        Content::Lie(kinds) => plan_lie(*kinds, method, list),
        Content::Censor(address) => plan_censor(address, method, list),
    }
}

/// A block parameter as a stale node resolves it.
enum Tag {
    /// `latest`, `pending` or absent: the node's head.
    Head,
    Number(u64),
    /// Another tag, a block hash, or something the node will judge.
    Other,
}

fn tag(v: Option<&Value>) -> Tag {
    match v {
        None | Some(Value::Null) => Tag::Head,
        Some(Value::String(s)) => match s.as_str() {
            "latest" | "pending" => Tag::Head,
            other => parse_quantity(other).map_or(Tag::Other, Tag::Number),
        },
        Some(_) => Tag::Other,
    }
}

/// Moves the block parameter at `p[i]` (absent, a tag, a number or an EIP-1898 object) to the
/// stale head `head`; `Err` if it names a block above it.
fn stale_block_param(p: &mut Vec<Value>, i: usize, head: u64) -> Result<(), ()> {
    if p.len() < i {
        return Ok(()); // Missing earlier params: the node judges the call.
    }
    if p.len() == i {
        p.push(Value::Null);
    }
    let slot = match &mut p[i] {
        Value::Object(obj) => {
            if obj.get("blockHash").is_some_and(|h| !h.is_null()) {
                return Ok(());
            }
            obj.entry("blockNumber").or_insert(Value::Null)
        }
        other => other,
    };
    match tag(Some(slot)) {
        Tag::Head => {
            *slot = qty(head);
            Ok(())
        }
        Tag::Number(n) if n > head => Err(()),
        Tag::Number(_) | Tag::Other => Ok(()),
    }
}

fn plan_stale(head: u64, method: &str, mut p: Vec<Value>) -> Plan {
    if let Some(i) = state_block_index(method) {
        return match stale_block_param(&mut p, i, head) {
            Ok(()) => ask(p, Post::None),
            Err(()) => Plan::Local(Err(error_text(-32000, "header not found"))),
        };
    }
    match method {
        "eth_blockNumber" => Plan::Local(Ok(qty(head).to_string())),
        "eth_getBlockByNumber" | "eth_getBlockTransactionCountByNumber" | "eth_getUncleCountByBlockNumber" => {
            match stale_block_param(&mut p, 0, head) {
                Ok(()) => ask(p, Post::StaleBlock(head)),
                Err(()) => Plan::Local(Ok("null".into())),
            }
        }
        "eth_getBlockByHash" => pass(Post::StaleBlock(head)),
        "eth_feeHistory" => match stale_block_param(&mut p, 1, head) {
            Ok(()) => ask(p, Post::None),
            Err(()) => Plan::Local(Err(error_text(-32000, "request beyond head block"))),
        },
        "eth_getTransactionByHash" | "eth_getTransactionReceipt" => pass(Post::StaleTx(head)),
        "eth_getLogs" => {
            let Some(Value::Object(filter)) = p.get_mut(0) else { return pass(Post::StaleLogs(head)) };
            if filter.get("blockHash").is_some_and(|h| !h.is_null()) {
                return pass(Post::StaleLogs(head));
            }
            let number = |t: &Tag| match t {
                Tag::Head => Some(head),
                Tag::Number(n) => Some(*n),
                Tag::Other => None,
            };
            let (from, to) = (tag(filter.get("fromBlock")), tag(filter.get("toBlock")));
            let (from_n, to_n) = (number(&from), number(&to));
            if let (Tag::Number(a), Tag::Number(b)) = (&from, &to)
                && a > b
            {
                // An inverted range: the node judges the original.
                return pass(Post::StaleLogs(head));
            }
            if from_n.is_some_and(|a| a > head) {
                return Plan::Local(Ok("[]".into()));
            }
            if matches!(from, Tag::Head) {
                filter.insert("fromBlock".into(), qty(head));
            }
            if to_n.is_some_and(|b| b >= head) {
                filter.insert("toBlock".into(), qty(head));
            }
            ask(p, Post::StaleLogs(head))
        }
        _ => pass(Post::None),
    }
}

fn plan_lie(kinds: LieKinds, method: &str, mut p: Vec<Value>) -> Plan {
    let post = lies::Answer::of(method).map_or(Post::None, |answer| Post::Lie(kinds, answer));
    if kinds.contains(LieKind::Hash) && lies::unfake_block_hashes(method, &mut p) {
        return ask(p, post);
    }
    pass(post)
}

/// The zero storage word, what a censor answers for any slot of the censored account.
const ZERO_WORD: &str = "0x0000000000000000000000000000000000000000000000000000000000000000";

/// The refusal a censor gives for a transaction or call touching the censored address.
fn refused() -> Plan {
    Plan::Local(Err(error_text(-32003, "transaction rejected")))
}

fn plan_censor(address: &Address, method: &str, p: Vec<Value>) -> Plan {
    let is_censored =
        |v: Option<&Value>| v.and_then(Value::as_str).and_then(parse_address).is_some_and(|a| a == *address);
    // Account reads name the account first; the node still judges the block parameter, so a
    // read at an unknown block fails as it would anyway.
    let empty = |value: &'static str| pass(if is_censored(p.first()) { Post::Empty(value) } else { Post::None });
    match method {
        "eth_sendRawTransaction" => {
            let raw = p.first().and_then(Value::as_str).and_then(|s| strip_0x(s)).and_then(|h| hex::decode(h).ok());
            match raw {
                Some(raw) if raw.windows(address.len()).any(|w| w == address) => refused(),
                _ => pass(Post::None),
            }
        }
        "eth_call" | "eth_estimateGas" => {
            let call = p.first();
            if is_censored(call.and_then(|c| c.get("to"))) || is_censored(call.and_then(|c| c.get("from"))) {
                refused()
            } else {
                pass(Post::None)
            }
        }
        "eth_getBalance" | "eth_getTransactionCount" => empty("0x0"),
        "eth_getCode" => empty("0x"),
        "eth_getStorageAt" => empty(ZERO_WORD),
        "eth_getLogs" => pass(Post::CensorLogs(*address)),
        _ => pass(Post::None),
    }
}

/// Applies `post` to a result (JSON text); results it does not apply to are returned as they are.
fn post_process(post: Post, result: String) -> String {
    if matches!(post, Post::None) {
        return result;
    }
    let Ok(mut v) = serde_json::from_str::<Value>(&result) else { return result };
    let above = |v: &Value, head: u64| {
        v.get("blockNumber")
            .or_else(|| v.get("number"))
            .and_then(Value::as_str)
            .and_then(parse_quantity)
            .is_some_and(|n| n > head)
    };
    match post {
        Post::None => return result,
        Post::StaleBlock(head) | Post::StaleTx(head) => {
            if v.is_object() && above(&v, head) {
                v = Value::Null;
            } else {
                return result;
            }
        }
        Post::StaleLogs(head) => match &mut v {
            Value::Array(logs) => logs.retain(|log| !above(log, head)),
            _ => return result,
        },
        Post::Lie(kinds, answer) => {
            if !lies::tell(kinds, answer, &mut v) {
                return result;
            }
        }
        Post::Empty(empty) => {
            if v.is_string() {
                v = Value::from(empty);
            } else {
                return result;
            }
        }
        Post::CensorLogs(address) => match &mut v {
            Value::Array(logs) => logs.retain(|log| !mentions(log, &address)),
            _ => return result,
        },
    }
    v.to_string()
}

/// Whether a log was emitted by `address` or names it in a topic (as a left-padded word).
fn mentions(log: &Value, address: &Address) -> bool {
    let emitted = log.get("address").and_then(Value::as_str).and_then(parse_address).is_some_and(|a| a == *address);
    let in_topics = log.get("topics").and_then(Value::as_array).is_some_and(|topics| {
        topics
            .iter()
            .filter_map(Value::as_str)
            .filter_map(parse_hash)
            .any(|t| t[..12] == [0u8; 12] && t[12..] == *address)
    });
    emitted || in_topics
}

// ---------------------------------------------------------------------------------------------
// Hex helpers.

fn strip_0x(s: &str) -> Option<&str> {
    s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))
}

fn parse_quantity(s: &str) -> Option<u64> {
    let digits = strip_0x(s)?;
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

fn parse_fixed<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    hex::decode_to_slice(strip_0x(s)?, &mut out).ok()?;
    Some(out)
}

fn parse_address(s: &str) -> Option<Address> {
    parse_fixed(s)
}

fn parse_hash(s: &str) -> Option<[u8; 32]> {
    parse_fixed(s)
}

fn qty(n: u64) -> Value {
    Value::String(format!("{n:#x}"))
}

/// The fake of a true block hash and the true hash of a fake one (`0x` + 64 hex digits): XOR
/// [`LIE_MASK`]. The zero hash (genesis' parent) stays zero. `None` if `s` is not a hash.
pub fn fake_hash(s: &str) -> Option<String> {
    let mut h = parse_hash(s)?;
    if h != [0u8; 32] {
        for (b, m) in h.iter_mut().zip(LIE_MASK) {
            *b ^= m;
        }
    }
    Some(format!("0x{}", hex::encode(h)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_hashes_are_an_involution_and_keep_zero() {
        let h = format!("0x{}", "ab".repeat(32));
        let fake = fake_hash(&h).unwrap();
        assert_ne!(fake, h);
        assert_eq!(fake_hash(&fake).unwrap(), h);
        let zero = format!("0x{}", "00".repeat(32));
        assert_eq!(fake_hash(&zero).unwrap(), zero);
        assert!(fake_hash("0x12").is_none());
    }

    #[test]
    fn stale_plans() {
        let head = 10;
        let local = |p: Plan| match p {
            Plan::Local(o) => Some(o),
            Plan::Ask { .. } => None,
        };
        let asked = |p: Plan| match p {
            Plan::Ask { params, .. } => params.map(|s| serde_json::from_str::<Value>(&s).unwrap()),
            Plan::Local(_) => panic!("local"),
        };
        assert_eq!(local(plan_stale(head, "eth_blockNumber", vec![])), Some(Ok("\"0xa\"".into())));
        assert_eq!(
            local(plan_stale(head, "eth_getBlockByNumber", vec![json!("0xb"), json!(false)])),
            Some(Ok("null".into()))
        );
        assert_eq!(
            asked(plan_stale(head, "eth_getBlockByNumber", vec![json!("latest"), json!(false)])),
            Some(json!(["0xa", false]))
        );
        assert_eq!(asked(plan_stale(head, "eth_getBalance", vec![json!("0x00")])), Some(json!(["0x00", "0xa"])));
        assert_eq!(
            asked(plan_stale(head, "eth_call", vec![json!({}), json!({"blockNumber": "pending"})])),
            Some(json!([{}, {"blockNumber": "0xa"}]))
        );
        let err = local(plan_stale(head, "eth_getStorageAt", vec![json!("0x00"), json!("0x0"), json!("0xb")]));
        assert!(err.unwrap().unwrap_err().contains("header not found"));
        assert_eq!(local(plan_stale(head, "eth_getLogs", vec![json!({"fromBlock": "0xb"})])), Some(Ok("[]".into())));
        assert_eq!(
            asked(plan_stale(head, "eth_getLogs", vec![json!({"fromBlock": "0x1", "toBlock": "0x20"})])),
            Some(json!([{"fromBlock": "0x1", "toBlock": "0xa"}]))
        );
        assert_eq!(
            asked(plan_stale(head, "eth_getLogs", vec![json!({})])),
            Some(json!([{"fromBlock": "0xa", "toBlock": "0xa"}]))
        );
        assert_eq!(post_process(Post::StaleBlock(head), r#"{"number":"0xb"}"#.into()), "null");
        assert_eq!(post_process(Post::StaleBlock(head), r#"{"number":"0xa"}"#.into()), r#"{"number":"0xa"}"#);
        assert_eq!(
            post_process(Post::StaleLogs(head), r#"[{"blockNumber":"0xa"},{"blockNumber":"0xb"}]"#.into()),
            r#"[{"blockNumber":"0xa"}]"#
        );
    }

    /// What a censor does with one call: `Err(code)` refused locally, `Ok(Some(result))` the
    /// node's `answer` post-processed, `Ok(None)` passed on untouched.
    fn censored(method: &str, params: Value, answer: &str) -> Result<Option<String>, i64> {
        let Value::Array(p) = params else { panic!("positional params") };
        match plan_censor(&[0x11; 20], method, p) {
            Plan::Local(Err(e)) => Err(serde_json::from_str::<Value>(&e).unwrap()["code"].as_i64().unwrap()),
            Plan::Local(Ok(r)) => panic!("answered locally: {r}"),
            Plan::Ask { params: Some(p), .. } => panic!("params rewritten: {p}"),
            Plan::Ask { params: None, post: Post::None } => Ok(None),
            Plan::Ask { params: None, post } => Ok(Some(post_process(post, answer.to_string()))),
        }
    }

    #[test]
    fn censor_empties_every_account_read_of_the_address() {
        let (a, other) = (format!("0x{}", "11".repeat(20)), format!("0x{}", "22".repeat(20)));
        let upper = format!("0x{}", "11".repeat(20).to_uppercase());
        let word = format!("\"0x{}\"", "ab".repeat(32));
        assert_eq!(censored("eth_getBalance", json!([a, "latest"]), "\"0x64\""), Ok(Some("\"0x0\"".into())));
        assert_eq!(censored("eth_getBalance", json!([upper, "0x5"]), "\"0x64\""), Ok(Some("\"0x0\"".into())));
        assert_eq!(censored("eth_getTransactionCount", json!([a, "pending"]), "\"0x3\""), Ok(Some("\"0x0\"".into())));
        assert_eq!(censored("eth_getCode", json!([a, "latest"]), "\"0x6001\""), Ok(Some("\"0x\"".into())));
        assert_eq!(
            censored("eth_getStorageAt", json!([a, "0x0", "latest"]), &word),
            Ok(Some(format!("\"{ZERO_WORD}\"")))
        );
        // An error of the node (a null result) is passed on as it is.
        assert_eq!(censored("eth_getBalance", json!([a, "0x99"]), "null"), Ok(Some("null".into())));
        // Other accounts, and the proof of the censored one, are answered honestly.
        for method in ["eth_getBalance", "eth_getTransactionCount", "eth_getCode"] {
            assert_eq!(censored(method, json!([other, "latest"]), "\"0x1\""), Ok(None), "{method}");
        }
        assert_eq!(censored("eth_getProof", json!([a, [], "latest"]), "{}"), Ok(None));
    }

    #[test]
    fn censor_refuses_calls_and_transactions_touching_the_address() {
        let (a, other) = (format!("0x{}", "11".repeat(20)), format!("0x{}", "22".repeat(20)));
        for method in ["eth_call", "eth_estimateGas"] {
            assert_eq!(censored(method, json!([{ "to": a, "data": "0x" }, "latest"]), ""), Err(-32003), "{method}");
            assert_eq!(censored(method, json!([{ "from": a, "to": other }]), ""), Err(-32003), "{method}");
            assert_eq!(censored(method, json!([{ "from": other, "to": other }, "latest"]), ""), Ok(None), "{method}");
            // A contract creation (no `to`) by someone else goes through.
            assert_eq!(censored(method, json!([{ "data": "0x6001" }]), ""), Ok(None), "{method}");
        }
        let raw_to = format!("0x02f86c827a6980{}", "11".repeat(20));
        assert_eq!(censored("eth_sendRawTransaction", json!([raw_to]), ""), Err(-32003));
        let raw_other = format!("0x02f86c827a6980{}", "22".repeat(20));
        assert_eq!(censored("eth_sendRawTransaction", json!([raw_other]), ""), Ok(None));
        assert_eq!(censored("eth_sendRawTransaction", json!(["not hex"]), ""), Ok(None));
    }

    #[test]
    fn censor_matches_address_and_topics() {
        let a: Address = [0x11; 20];
        let by = json!({"address": format!("0x{}", "11".repeat(20)), "topics": []});
        let topic = json!({"address": format!("0x{}", "22".repeat(20)), "topics": [format!("0x{}{}", "00".repeat(12), "11".repeat(20))]});
        let other = json!({"address": format!("0x{}", "22".repeat(20)), "topics": [format!("0x{}", "11".repeat(32))]});
        assert!(mentions(&by, &a) && mentions(&topic, &a) && !mentions(&other, &a));
    }
}
