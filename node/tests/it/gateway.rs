//! The gateway over real HTTP on 127.0.0.1, in process and without p2p: JSON-RPC envelopes and
//! the errors the gateway makes, ids echoed byte for byte, batches and notifications, chain
//! paths, headers and CORS, failover classification, hedging, the breaker, and sends.
//!
//! Each test starts mock Ethereum JSON-RPC upstreams (axum on 127.0.0.1:0), probes them with the
//! real prober until usable, and serves a real `Gateway` over a `Router` with an empty mesh and
//! no relay. Requests go over a fresh HTTP/1 connection each (no client stickiness between
//! requests). Tests wait on observable state (upstream status, breaker state, counters), never
//! on fixed sleeps.
//!
//! Ranking between two upstreams of one chain follows latency, so the failover tests make the
//! second mock slow ([`SLOW`]) on probes and traffic: the first is then deterministically tried
//! first (checked up front with `Router::explain`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use rpcmesh_node::config::{ChainConfig, GatewayConfig, RoutingConfig, UpstreamConfig};
use rpcmesh_node::gateway::{ATTEMPTS, FAILOVER, Gateway, SERVED_BY};
use rpcmesh_node::mesh::MeshSnapshot;
use rpcmesh_node::router::{MethodPolicy, Router, SharedForward, Targets, VerifyMode};
use rpcmesh_node::serve::{ServeLimits, serve};
use rpcmesh_node::upstream::{HttpClient, ProberSettings, Upstream, UpstreamSet, run_prober};
use rpcmesh_protocol::Identity;
use serde_json::Value;
use serde_json::value::RawValue;
use sha3::{Digest as _, Keccak256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Extra latency of the second upstream in failover tests, so that it ranks second.
const SLOW: Duration = Duration::from_millis(150);
/// Generous bound on waiting for observable state on a loaded machine.
pub(crate) const WAIT: Duration = Duration::from_secs(10);
/// Methods the prober calls; faults and traffic counters only concern the other methods.
const PROBE_METHODS: [&str; 3] = ["eth_chainId", "eth_getBlockByNumber", "eth_syncing"];
/// The ids of the exactness tests, as JSON text.
const IDS: [&str; 7] = ["1", "\"abc\"", "null", "1.50", "123456789012345678901234567890", "-0", r#""a\"b\\c""#];

// ---------------------------------------------------------------------------------------------
// Mock upstream
// ---------------------------------------------------------------------------------------------

/// How the mock answers traffic (every method but the prober's).
#[derive(Debug, Clone)]
enum Fault {
    /// Normal answers.
    None,
    /// HTTP 500 with a text body.
    Http500,
    /// Never answers.
    Hang,
    /// HTTP 200 with this JSON-RPC error.
    Rpc { code: i64, message: &'static str, data: Option<&'static str> },
}

struct MockState {
    chain_id: u64,
    tag: u64,
    fault: Mutex<Fault>,
    probe_delay: Mutex<Duration>,
    traffic_delay: Mutex<Duration>,
    traffic: AtomicUsize,
    bodies: Mutex<Vec<Bytes>>,
}

/// A mock Ethereum JSON-RPC node. Answers `eth_chainId` (its chain), `eth_getBlockByNumber`
/// (head `0x1000 + tag`), `eth_blockNumber` (that head), `eth_getBalance` (`tag`: says which
/// mock answered), `eth_syncing` (false), `eth_sendRawTransaction`; other methods get -32601.
/// Ids are echoed byte for byte; notifications get an empty HTTP 200 body, as geth does.
#[derive(Clone)]
pub(crate) struct Mock {
    state: Arc<MockState>,
    url: String,
}

impl Mock {
    pub(crate) async fn start(chain_id: u64, tag: u64) -> Mock {
        let state = Arc::new(MockState {
            chain_id,
            tag,
            fault: Mutex::new(Fault::None),
            probe_delay: Mutex::new(Duration::ZERO),
            traffic_delay: Mutex::new(Duration::ZERO),
            traffic: AtomicUsize::new(0),
            bodies: Mutex::new(Vec::new()),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind mock upstream");
        let addr = listener.local_addr().expect("mock address");
        let app = axum::Router::new()
            .route("/", axum::routing::post(mock_handler))
            .layer(DefaultBodyLimit::disable())
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Mock { state, url: format!("http://{addr}/") }
    }

    fn set_fault(&self, f: Fault) {
        *self.state.fault.lock().unwrap() = f;
    }

    /// Delays probe answers and client traffic alike.
    fn set_delay(&self, d: Duration) {
        *self.state.probe_delay.lock().unwrap() = d;
        *self.state.traffic_delay.lock().unwrap() = d;
    }

    fn set_probe_delay(&self, d: Duration) {
        *self.state.probe_delay.lock().unwrap() = d;
    }

    fn set_traffic_delay(&self, d: Duration) {
        *self.state.traffic_delay.lock().unwrap() = d;
    }

    /// Requests received, probes excluded (counted on arrival, before any delay or fault).
    fn traffic(&self) -> usize {
        self.state.traffic.load(Ordering::SeqCst)
    }

    /// Bodies of those requests, as received.
    fn bodies(&self) -> Vec<Bytes> {
        self.state.bodies.lock().unwrap().clone()
    }

    /// Its `eth_getBalance` answer, as JSON text.
    fn balance(&self) -> String {
        format!("\"0x{:x}\"", self.state.tag)
    }

    /// Its `eth_blockNumber` answer, as JSON text.
    fn head(&self) -> String {
        format!("\"0x{:x}\"", 0x1000 + self.state.tag)
    }
}

fn json_reply(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A JSON-RPC error body exactly as the mock writes it.
fn rpc_error_body(id: &str, code: i64, message: &str, data: Option<&str>) -> String {
    let message = serde_json::to_string(message).unwrap();
    match data {
        Some(d) => format!(
            r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":{message},"data":{}}}}}"#,
            serde_json::to_string(d).unwrap()
        ),
        None => format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":{message}}}}}"#),
    }
}

async fn mock_handler(State(s): State<Arc<MockState>>, body: Bytes) -> Response {
    let Ok(map) = serde_json::from_slice::<BTreeMap<String, Box<RawValue>>>(&body) else {
        return json_reply(rpc_error_body("null", -32700, "mock: expected one request object", None));
    };
    let id = map.get("id").map(|v| v.get().to_owned());
    let method: String = map.get("method").and_then(|m| serde_json::from_str(m.get()).ok()).unwrap_or_default();
    let is_probe = PROBE_METHODS.contains(&method.as_str());
    if is_probe {
        let d = *s.probe_delay.lock().unwrap();
        tokio::time::sleep(d).await;
    } else {
        s.traffic.fetch_add(1, Ordering::SeqCst);
        s.bodies.lock().unwrap().push(body.clone());
        let d = *s.traffic_delay.lock().unwrap();
        tokio::time::sleep(d).await;
        let fault = s.fault.lock().unwrap().clone();
        match fault {
            Fault::None => {}
            Fault::Http500 => return (StatusCode::INTERNAL_SERVER_ERROR, "internal server error").into_response(),
            Fault::Hang => return std::future::pending::<Response>().await,
            Fault::Rpc { code, message, data } => {
                return json_reply(rpc_error_body(id.as_deref().unwrap_or("null"), code, message, data));
            }
        }
    }
    // JSON-RPC 2.0: a notification gets no answer at all (geth: HTTP 200, empty body).
    let Some(id) = id else { return StatusCode::OK.into_response() };
    let result = match method.as_str() {
        "eth_chainId" => format!("\"0x{:x}\"", s.chain_id),
        "eth_getBlockByNumber" => serde_json::json!({
            "number": format!("0x{:x}", 0x1000 + s.tag),
            "hash": format!("0x{}", hex::encode([s.tag as u8; 32])),
        })
        .to_string(),
        "eth_blockNumber" => format!("\"0x{:x}\"", 0x1000 + s.tag),
        "eth_getBalance" => format!("\"0x{:x}\"", s.tag),
        "eth_syncing" => "false".into(),
        "eth_sendRawTransaction" => format!("\"0x{}\"", "ab".repeat(32)),
        other => {
            let msg = format!("the method {other} does not exist/is not available");
            return json_reply(rpc_error_body(&id, -32601, &msg, None));
        }
    };
    json_reply(format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#))
}

// ---------------------------------------------------------------------------------------------
// Node under test: probers, router, gateway
// ---------------------------------------------------------------------------------------------

struct ChainSpec<'a> {
    id: u64,
    aliases: &'a [&'a str],
    mocks: &'a [&'a Mock],
}

pub(crate) struct Node {
    pub(crate) addr: SocketAddr,
    router: Router,
    /// This node's PeerId.
    peer: String,
    _stop: DropGuard,
}

async fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out after {WAIT:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn start_node(chains: &[ChainSpec<'_>], gateway: GatewayConfig, routing: RoutingConfig) -> Node {
    let own = Identity::from_secret_bytes([42; 32]).public_key();
    let client = HttpClient::new(32 << 20);
    let cancel = CancellationToken::new();
    let mut set = UpstreamSet::default();
    let mut configs = Vec::new();
    let mut all = Vec::new();
    for c in chains {
        let mut cfg = ChainConfig::with_upstream(c.id, c.mocks[0].url.clone());
        cfg.aliases = c.aliases.iter().map(|a| a.to_string()).collect();
        cfg.upstreams = c.mocks.iter().map(|m| UpstreamConfig { http: m.url.clone(), ws: None }).collect();
        configs.push(cfg);
        let ups: Vec<Arc<Upstream>> = c
            .mocks
            .iter()
            .map(|m| Arc::new(Upstream::new(c.id, m.url.parse().unwrap(), None, client.clone(), 60_000)))
            .collect();
        for u in &ups {
            let settings = ProberSettings { interval: Duration::from_millis(50), timeout: Duration::from_secs(1) };
            tokio::spawn(run_prober(u.clone(), settings, watch::channel(0).0, cancel.clone()));
        }
        all.extend(ups.iter().cloned());
        set.chains.push((c.id, ups));
    }
    wait_until("every upstream to be usable", || all.iter().all(|u| u.status().is_usable())).await;
    let mesh = watch::channel(Arc::new(MeshSnapshot::default())).1;
    let upstreams = Arc::new(set);
    let forward = SharedForward::new(Targets { upstreams: upstreams.clone(), relay: None });
    let router =
        Router::new(own, upstreams, &configs, mesh, forward, routing, MethodPolicy::default(), Default::default());
    // Served as the daemon serves it: connection cap and header timeout from the config.
    let app = Gateway::new(router.clone(), &gateway, &configs, VerifyMode::Off).app();
    let limits = ServeLimits {
        max_connections: gateway.max_connections,
        max_connections_per_ip: gateway.max_connections_per_ip,
        header_timeout: Duration::from_millis(gateway.header_timeout_ms),
        setting: "gateway.max_connections",
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind gateway");
    let addr = listener.local_addr().expect("gateway address");
    tokio::spawn(serve(listener, app, limits, cancel.clone()));
    Node { addr, router, peer: own.to_peer_id().to_string(), _stop: cancel.drop_guard() }
}

/// One node serving chain 1 from `mock`.
pub(crate) async fn single(mock: &Mock, gateway: GatewayConfig, routing: RoutingConfig) -> Node {
    start_node(&[ChainSpec { id: 1, aliases: &[], mocks: &[mock] }], gateway, routing).await
}

/// One node serving chain 1 from two mocks; the second is slow so that the first ranks first.
async fn two_upstreams(routing: RoutingConfig) -> (Node, Mock, Mock) {
    let (m1, m2) = (Mock::start(1, 1).await, Mock::start(1, 2).await);
    m2.set_delay(SLOW);
    let node =
        start_node(&[ChainSpec { id: 1, aliases: &[], mocks: &[&m1, &m2] }], GatewayConfig::default(), routing).await;
    let first = node.router.explain(1, "eth_getBalance", false, None, &[]);
    assert_eq!(first[0].upstream.as_deref(), Some(m1.url.as_str()), "the fast upstream must rank first: {first:?}");
    (node, m1, m2)
}

/// Routing without hedges: what is retried is then exactly what the classification says.
fn no_hedge() -> RoutingConfig {
    RoutingConfig { hedge: false, ..RoutingConfig::default() }
}

pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

pub(crate) type Fields = BTreeMap<String, Box<RawValue>>;

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("ASCII header"))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as one JSON object (raw member texts).
    pub(crate) fn object(&self) -> Fields {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not one JSON object ({e}): {}", self.text()))
    }

    /// The body as a JSON array of objects.
    pub(crate) fn array(&self) -> Vec<Fields> {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not an array of objects ({e}): {}", self.text()))
    }
}

impl Node {
    pub(crate) async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let body = body.into();
        let exchange = async {
            let stream = TcpStream::connect(self.addr).await.expect("connect to the gateway");
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)).await.expect("handshake");
            tokio::spawn(conn);
            let mut req =
                hyper::Request::builder().method(method).uri(path).header(header::HOST, self.addr.to_string());
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let resp = sender.send_request(req.body(Full::new(body)).unwrap()).await.expect("HTTP exchange");
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.expect("response body").to_bytes();
            Reply { status: parts.status, headers: parts.headers, body }
        };
        tokio::time::timeout(WAIT, exchange).await.expect("the gateway answers within the bound")
    }

    pub(crate) async fn post(&self, path: &str, body: impl Into<Bytes>) -> Reply {
        self.request(Method::POST, path, &[("content-type", "application/json")], body).await
    }

    /// The breaker state the router reports for `mock` on chain 1.
    fn breaker(&self, mock: &Mock) -> &'static str {
        let all = self.router.explain(1, "eth_getBalance", false, None, &[]);
        all.iter().find(|c| c.upstream.as_deref() == Some(mock.url.as_str())).expect("candidate of the mock").breaker
    }
}

pub(crate) fn call(id: &str, method: &str, params: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#)
}

fn notification(method: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","method":"{method}","params":[]}}"#)
}

pub(crate) fn balance_call(id: &str) -> String {
    call(id, "eth_getBalance", r#"["0x00000000000000000000000000000000000000aa","latest"]"#)
}

pub(crate) fn raw<'a>(f: &'a Fields, key: &str) -> &'a str {
    f.get(key).unwrap_or_else(|| panic!("no {key:?} member in {f:?}")).get()
}

/// Asserts a JSON-RPC error with `code` and the raw id text `id`; returns its message.
pub(crate) fn assert_error(f: &Fields, id: &str, code: i64) -> String {
    assert_eq!(raw(f, "jsonrpc"), r#""2.0""#, "{f:?}");
    assert_eq!(raw(f, "id"), id, "id of {f:?}");
    assert!(!f.contains_key("result"), "an error has no result: {f:?}");
    let e: Value = serde_json::from_str(raw(f, "error")).unwrap();
    assert_eq!(e["code"].as_i64(), Some(code), "error code of {f:?}");
    e["message"].as_str().expect("error message is a string").to_owned()
}

/// Asserts a JSON-RPC result with the raw id text `id` and raw result text `result`.
pub(crate) fn assert_result(f: &Fields, id: &str, result: &str) {
    assert_eq!(raw(f, "jsonrpc"), r#""2.0""#, "{f:?}");
    assert_eq!(raw(f, "id"), id, "id of {f:?}");
    assert_eq!(raw(f, "result"), result, "result of {f:?}");
    assert!(!f.contains_key("error"), "a result has no error: {f:?}");
}

// ---------------------------------------------------------------------------------------------
// Envelopes and the errors the gateway makes
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_is_a_parse_error_with_id_null() {
    let m = Mock::start(1, 1).await;
    let node = single(&m, GatewayConfig::default(), RoutingConfig::default()).await;
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"method""#,
        "not json",
        "",
        "   ",
        r#"[{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber"},"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber"} trailing"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber"}{"jsonrpc":"2.0","id":2,"method":"eth_blockNumber"}"#,
    ] {
        let r = node.post("/", body).await;
        assert_eq!(r.status, StatusCode::OK, "{body:?}");
        assert_error(&r.object(), "null", -32700);
    }
    assert_eq!(m.traffic(), 0, "nothing reaches the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_json_that_is_not_a_request_is_invalid_request_with_the_readable_id() {
    let m = Mock::start(1, 1).await;
    let node = single(&m, GatewayConfig::default(), RoutingConfig::default()).await;
    let cases = [
        ("42", "null"),
        (r#""eth_blockNumber""#, "null"),
        ("true", "null"),
        ("null", "null"),
        (r#"{"jsonrpc":"2.0","id":5}"#, "5"),
        (r#"{"jsonrpc":"2.0","id":"m","method":""}"#, r#""m""#),
        (r#"{"jsonrpc":"2.0","id":6,"method":7}"#, "6"),
        (r#"{"jsonrpc":"1.0","id":"a","method":"eth_blockNumber"}"#, r#""a""#),
        (r#"{"jsonrpc":2.0,"id":8,"method":"eth_blockNumber"}"#, "8"),
        (r#"{"id":9,"method":"eth_blockNumber"}"#, "9"),
        (r#"{"jsonrpc":"2.0","id":10,"method":"eth_getBalance","params":"0xaa"}"#, "10"),
        (r#"{"jsonrpc":"2.0","id":11,"method":"eth_getBalance","params":1}"#, "11"),
        // Ids that are not a string, number or null cannot be echoed.
        (r#"{"jsonrpc":"2.0","id":{"a":1},"method":"eth_blockNumber"}"#, "null"),
        (r#"{"jsonrpc":"2.0","id":[1],"method":"eth_blockNumber"}"#, "null"),
        (r#"{"jsonrpc":"2.0","id":true,"method":"eth_blockNumber"}"#, "null"),
    ];
    for (body, id) in cases {
        let r = node.post("/", body).await;
        assert_eq!(r.status, StatusCode::OK, "{body}");
        assert_error(&r.object(), id, -32600);
    }
    assert_eq!(m.traffic(), 0, "nothing reaches the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_batch_is_one_invalid_request_object() {
    let m = Mock::start(1, 1).await;
    let node = single(&m, GatewayConfig::default(), RoutingConfig::default()).await;
    for body in ["[]", " [ ] "] {
        let r = node.post("/", body).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.body.starts_with(b"{"), "one object, not an array: {}", r.text());
        assert_error(&r.object(), "null", -32600);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_max_body_bytes_is_413_and_one_at_the_limit_is_served() {
    let m = Mock::start(1, 1).await;
    let gw = GatewayConfig { max_body_bytes: 1024, ..GatewayConfig::default() };
    let node = single(&m, gw, RoutingConfig::default()).await;
    let base = call("1", "eth_blockNumber", "[]");
    let padded = |len: usize| format!("{base}{}", " ".repeat(len - base.len()));

    let r = node.post("/", padded(1025)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let msg = assert_error(&r.object(), "null", -32600);
    assert!(msg.contains("1024") && msg.contains("gateway.max_body_bytes"), "clear message: {msg}");
    assert_eq!(m.traffic(), 0);

    let r = node.post("/", padded(1024)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_result(&r.object(), "1", &m.head());
    assert_eq!(m.traffic(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_axum_default_limit_but_under_the_gateway_limit_is_served() {
    // axum's own default body limit is 2 MiB; the gateway's default is 5 MiB and must rule.
    let m = Mock::start(1, 1).await;
    let node = single(&m, GatewayConfig::default(), RoutingConfig::default()).await;
    let base = call("1", "eth_blockNumber", "[]");
    let body = format!("{base}{}", " ".repeat(3 * 1024 * 1024));
    let r = node.post("/", body.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text().chars().take(300).collect::<String>());
    assert_result(&r.object(), "1", &m.head());
    assert_eq!(m.bodies(), vec![Bytes::from(body)], "forwarded as received");
}

// ---------------------------------------------------------------------------------------------
// Exact ids
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_are_echoed_byte_exactly_through_the_upstream() {
    let m = Mock::start(1, 1).await;
    let node = single(&m, GatewayConfig::default(), RoutingConfig::default()).await;
    for (n, id) in IDS.iter().enumerate() {
        let body = call(id, "eth_blockNumber", "[]");
        let r = node.post("/", body.clone()).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_result(&r.object(), id, &m.head());
        // Ids every node echoes exactly are forwarded as they are; others (fractions, huge
        // numbers, -0, escapes) are replaced by 1 on the way up and put back on the way down.
        let plain = ["1", "\"abc\"", "null"].contains(id);
        let expected = if plain { body.clone() } else { call("1", "eth_blockNumber", "[]") };
        assert_eq!(m.bodies()[n], Bytes::from(expected), "what the node got for id {id}");
    }
    // The same ids in one batch: each answer in place with its own id.
    let batch = format!("[{}]", IDS.iter().map(|id| call(id, "eth_blockNumber", "[]")).collect::<Vec<_>>().join(","));
    let r = node.post("/", batch).await;
    let answers = r.array();
    assert_eq!(answers.len(), IDS.len());
    for (a, id) in answers.iter().zip(IDS) {
        assert_result(a, id, &m.head());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_are_echoed_byte_exactly_on_gateway_errors() {
    let m = Mock::start(1, 1).await;
    let node = single(&m, GatewayConfig::default(), RoutingConfig::default()).await;
    let bad = Mock::start(1, 2).await;
    let never_eject = RoutingConfig { eject_after_failures: 1_000, ..RoutingConfig::default() };
    let failing = single(&bad, GatewayConfig::default(), never_eject).await;
    bad.set_fault(Fault::Http500);
    for id in IDS {
        // Invalid request (made by the gateway's parser).
        let r = node.post("/", format!(r#"{{"jsonrpc":"1.0","id":{id},"method":"eth_blockNumber"}}"#)).await;
        assert_error(&r.object(), id, -32600);
        let r = node.post("/", format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"eth_getBalance","params":7}}"#)).await;
        assert_error(&r.object(), id, -32600);
        // No provider could serve it (made by the router).
        let r = failing.post("/", balance_call(id)).await;
        assert_eq!(r.status, StatusCode::OK);
        let msg = assert_error(&r.object(), id, -32002);
        assert!(msg.contains("HTTP 500"), "{msg}");
        assert_eq!(r.header(ATTEMPTS), Some("1"));
        // A caller error from the upstream (made by the mock, passed through as is).
        let r = node.post("/", call(id, "eth_nonexistent", "[]")).await;
        assert_error(&r.object(), id, -32601);
    }
    // And inside a batch.
    let batch = format!(
        "[{}]",
        IDS.iter()
            .map(|id| format!(r#"{{"jsonrpc":"1.0","id":{id},"method":"eth_blockNumber"}}"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    let answers = node.post("/", batch).await.array();
    assert_eq!(answers.len(), IDS.len());
    for (a, id) in answers.iter().zip(IDS) {
        assert_error(a, id, -32600);
    }
}

// ---------------------------------------------------------------------------------------------
// Batches and notifications
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_is_answered_in_order_with_errors_in_place_and_no_entry_for_notifications() {
    let m = Mock::start(1, 1).await;
    let node = single(&m, GatewayConfig::default(), RoutingConfig::default()).await;
    let batch = [
        call("1", "eth_blockNumber", "[]"),
        "5".into(),
        notification("eth_blockNumber"),
        balance_call(r#""x""#),
        r#"{"id":7,"method":"eth_blockNumber"}"#.into(),
        call("8", "eth_nonexistent", "[]"),
        // Invalid and without id: still an error (id null), in place.
        r#"{"jsonrpc":"2.0","method":"eth_blockNumber","params":1}"#.into(),
        call("null", "eth_chainId", "[]"),
    ];
    let r = node.post("/", format!("[{}]", batch.join(", "))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header(SERVED_BY), Some(node.peer.as_str()));
    let a = r.array();
    assert_eq!(a.len(), 7, "one entry per element but the notification: {}", r.text());
    assert_result(&a[0], "1", &m.head());
    assert_error(&a[1], "null", -32600);
    assert_result(&a[2], r#""x""#, &m.balance());
    assert_error(&a[3], "7", -32600);
    assert_error(&a[4], "8", -32601);
    assert_error(&a[5], "null", -32600);
    assert_result(&a[6], "null", r#""0x1""#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_of_only_valid_calls_counts_every_attempt() {
    let m = Mock::start(1, 1).await;
    let node = single(&m, GatewayConfig::default(), RoutingConfig::default()).await;
    let batch =
        format!("[{},{},{}]", call("1", "eth_blockNumber", "[]"), balance_call("2"), call("3", "eth_chainId", "[]"));
    let r = node.post("/", batch).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header(ATTEMPTS), Some("3"));
    assert_eq!(r.header(SERVED_BY), Some(node.peer.as_str()));
    let a = r.array();
    assert_result(&a[0], "1", &m.head());
    assert_result(&a[1], "2", &m.balance());
    assert_result(&a[2], "3", r#""0x1""#);
    // Each element is forwarded alone, as its exact bytes.
    let mut got: Vec<String> = m.bodies().iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect();
    got.sort();
    assert_eq!(got, vec![call("1", "eth_blockNumber", "[]"), balance_call("2")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_get_an_empty_204() {
    let m = Mock::start(1, 1).await;
    let node = single(&m, GatewayConfig::default(), RoutingConfig::default()).await;
    let r = node.post("/", format!("[{},{}]", notification("eth_blockNumber"), notification("eth_getBalance"))).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.body.is_empty(), "{}", r.text());
    assert_eq!(m.traffic(), 2, "notifications are still forwarded");
    let r = node.post("/", notification("eth_blockNumber")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.body.is_empty(), "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_over_max_batch_len_is_one_invalid_request() {
    let m = Mock::start(1, 1).await;
    let gw = GatewayConfig { max_batch_len: 3, ..GatewayConfig::default() };
    let node = single(&m, gw, RoutingConfig::default()).await;
    let batch = |n: usize| {
        format!("[{}]", (0..n).map(|i| call(&i.to_string(), "eth_blockNumber", "[]")).collect::<Vec<_>>().join(","))
    };
    let r = node.post("/", batch(4)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.starts_with(b"{"), "one object, not an array: {}", r.text());
    let msg = assert_error(&r.object(), "null", -32600);
    assert!(msg.contains('4') && msg.contains('3'), "names the size and the limit: {msg}");
    assert_eq!(m.traffic(), 0, "no element of a rejected batch is forwarded");
    let a = node.post("/", batch(3)).await.array();
    assert_eq!(a.len(), 3);
    for (i, f) in a.iter().enumerate() {
        assert_result(f, &i.to_string(), &m.head());
    }
}

// ---------------------------------------------------------------------------------------------
// Chain selection
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_is_chosen_by_path_id_or_alias() {
    let (m1, m10) = (Mock::start(1, 1).await, Mock::start(10, 10).await);
    let chains = [
        ChainSpec { id: 1, aliases: &["eth", "Mainnet"], mocks: &[&m1] },
        ChainSpec { id: 10, aliases: &["op"], mocks: &[&m10] },
    ];
    let node = start_node(&chains, GatewayConfig::default(), RoutingConfig::default()).await;
    for (path, chain, mock) in [
        ("/", r#""0x1""#, &m1),
        ("/1", r#""0x1""#, &m1),
        ("/10", r#""0xa""#, &m10),
        ("/eth", r#""0x1""#, &m1),
        ("/ETH", r#""0x1""#, &m1),
        ("/mainnet", r#""0x1""#, &m1),
        ("/op", r#""0xa""#, &m10),
    ] {
        let r = node.post(path, call("1", "eth_chainId", "[]")).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_result(&r.object(), "1", chain);
        let before = mock.traffic();
        let r = node.post(path, balance_call("2")).await;
        assert_result(&r.object(), "2", &mock.balance());
        assert_eq!(mock.traffic(), before + 1, "{path} reached its chain's upstream");
    }
    for path in ["/5", "/nope", "/0x1"] {
        let r = node.post(path, call("1", "eth_chainId", "[]")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        let msg = assert_error(&r.object(), "1", -32001);
        for served in ["1", "10", "eth (1)", "mainnet (1)", "op (10)"] {
            assert!(msg.split(": ").last().unwrap().split(", ").any(|s| s == served), "{served} in {msg:?}");
        }
        assert!(msg.contains(path.trim_start_matches('/')), "names what was asked: {msg}");
    }

    // gateway.default_chain moves `/`.
    let gw = GatewayConfig { default_chain: 10, ..GatewayConfig::default() };
    let node = start_node(&chains, gw, RoutingConfig::default()).await;
    let r = node.post("/", call("1", "eth_chainId", "[]")).await;
    assert_result(&r.object(), "1", r#""0xa""#);
}

// ---------------------------------------------------------------------------------------------
// Headers and CORS
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_names_this_node_and_one_attempt() {
    let m = Mock::start(1, 1).await;
    let node = single(&m, GatewayConfig::default(), RoutingConfig::default()).await;
    let r = node.post("/", balance_call("1")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header(SERVED_BY), Some(node.peer.as_str()));
    assert_eq!(r.header(ATTEMPTS), Some("1"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_result(&r.object(), "1", &m.balance());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_header_must_be_on_or_off() {
    let m = Mock::start(1, 1).await;
    let node = single(&m, GatewayConfig::default(), RoutingConfig::default()).await;
    let json = ("content-type", "application/json");
    let r = node.request(Method::POST, "/", &[json, (FAILOVER, "bogus")], balance_call("1")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let msg = assert_error(&r.object(), "1", -32600);
    assert!(msg.contains(FAILOVER), "{msg}");
    assert_eq!(m.traffic(), 0);
    for v in ["on", "off", "OFF"] {
        let r = node.request(Method::POST, "/", &[json, (FAILOVER, v)], balance_call("1")).await;
        assert_eq!(r.status, StatusCode::OK, "{v}");
        assert_result(&r.object(), "1", &m.balance());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_other_than_post_are_405() {
    let m = Mock::start(1, 1).await;
    let node = single(&m, GatewayConfig::default(), RoutingConfig::default()).await;
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let r = node.request(method.clone(), "/", &[], balance_call("1")).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        let msg = assert_error(&r.object(), "null", -32600);
        assert!(msg.contains("POST"), "{msg}");
    }
    assert_eq!(m.traffic(), 0);
}

fn has_cors(r: &Reply) -> bool {
    r.headers.keys().any(|k| k.as_str().starts_with("access-control-"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_only_configured_origins() {
    let m = Mock::start(1, 1).await;
    let gw = GatewayConfig { cors_origins: vec!["https://app.example".into()], ..GatewayConfig::default() };
    let node = single(&m, gw, RoutingConfig::default()).await;
    let preflight = |origin: &'static str| {
        [
            ("origin", origin),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type, x-rpcmesh-failover"),
        ]
    };
    let r = node.request(Method::OPTIONS, "/", &preflight("https://app.example"), Bytes::new()).await;
    assert!(r.status.is_success(), "{}", r.status);
    assert_eq!(r.header("access-control-allow-origin"), Some("https://app.example"));
    let allowed: Vec<String> = r
        .header("access-control-allow-headers")
        .expect("allow-headers")
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    assert!(allowed.iter().any(|h| h == "x-rpcmesh-failover"), "{allowed:?}");
    assert!(allowed.iter().any(|h| h == "content-type"), "{allowed:?}");
    assert!(r.header("access-control-allow-methods").expect("allow-methods").contains("POST"));
    let r = node.request(Method::OPTIONS, "/1", &preflight("https://app.example"), Bytes::new()).await;
    assert_eq!(r.header("access-control-allow-origin"), Some("https://app.example"), "on chain paths too");

    let r = node.request(Method::OPTIONS, "/", &preflight("https://evil.example"), Bytes::new()).await;
    assert!(!has_cors(&r), "another origin gets no CORS headers: {:?}", r.headers);

    // Actual requests: the allowed origin can read the answer and the rpcmesh headers.
    let json = ("content-type", "application/json");
    let r = node.request(Method::POST, "/", &[json, ("origin", "https://app.example")], balance_call("1")).await;
    assert_eq!(r.header("access-control-allow-origin"), Some("https://app.example"));
    let exposed = r.header("access-control-expose-headers").expect("expose-headers").to_ascii_lowercase();
    assert!(exposed.contains(SERVED_BY) && exposed.contains(ATTEMPTS), "{exposed}");
    assert_result(&r.object(), "1", &m.balance());
    let r = node.request(Method::POST, "/", &[json, ("origin", "https://evil.example")], balance_call("1")).await;
    assert!(!has_cors(&r), "{:?}", r.headers);
    assert_result(&r.object(), "1", &m.balance());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_headers_absent_without_origins_and_any_with_star() {
    let m = Mock::start(1, 1).await;
    let node = single(&m, GatewayConfig::default(), RoutingConfig::default()).await;
    let headers = [("origin", "https://app.example"), ("access-control-request-method", "POST")];
    let r = node.request(Method::OPTIONS, "/", &headers, Bytes::new()).await;
    assert!(!has_cors(&r), "{:?}", r.headers);
    let r = node.request(Method::POST, "/", &[("origin", "https://app.example")], balance_call("1")).await;
    assert!(!has_cors(&r), "{:?}", r.headers);
    assert_result(&r.object(), "1", &m.balance());

    let gw = GatewayConfig { cors_origins: vec!["*".into()], ..GatewayConfig::default() };
    let node = single(&m, gw, RoutingConfig::default()).await;
    let r = node.request(Method::OPTIONS, "/", &headers, Bytes::new()).await;
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
}

// ---------------------------------------------------------------------------------------------
// Failover classification (two own upstreams, the first ranked first)
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_500_fails_over_to_the_second_upstream() {
    let (node, m1, m2) = two_upstreams(no_hedge()).await;
    m1.set_fault(Fault::Http500);
    let r = node.post("/", balance_call(r#""q""#)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_result(&r.object(), r#""q""#, &m2.balance());
    assert_eq!(r.header(ATTEMPTS), Some("2"));
    assert_eq!(r.header(SERVED_BY), Some(node.peer.as_str()));
    assert_eq!((m1.traffic(), m2.traffic()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_side_rpc_error_is_retried_on_the_second_upstream() {
    let (node, m1, m2) = two_upstreams(no_hedge()).await;
    m1.set_fault(Fault::Rpc { code: -32000, message: "header not found", data: None });
    let r = node.post("/", balance_call("1.50")).await;
    assert_result(&r.object(), "1.50", &m2.balance());
    assert_eq!(r.header(ATTEMPTS), Some("2"));
    assert_eq!((m1.traffic(), m2.traffic()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_errors_are_returned_as_is_and_not_retried() {
    let (node, m1, m2) = two_upstreams(no_hedge()).await;
    let revert_data = "0x08c379a00000000000000000000000000000000000000000000000000000000000000020";
    let faults = [
        (-32601, "the method eth_getBalance does not exist/is not available", None),
        (-32602, "invalid argument 0: hex string without 0x prefix", None),
        (3, "execution reverted: not owner", Some(revert_data)),
        (-32000, "execution reverted", None),
        (-32000, "nonce too low: next nonce 5, tx nonce 4", None),
        (-32000, "insufficient funds for gas * price + value", None),
    ];
    for (n, (code, message, data)) in faults.into_iter().enumerate() {
        m1.set_fault(Fault::Rpc { code, message, data });
        let id = format!("\"c{n}\"");
        let r = node.post("/", balance_call(&id)).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.text(), rpc_error_body(&id, code, message, data), "returned byte for byte");
        assert_eq!(r.header(ATTEMPTS), Some("1"), "{message}");
        assert_eq!(r.header(SERVED_BY), Some(node.peer.as_str()));
        assert_eq!(m1.traffic(), n + 1);
        assert_eq!(m2.traffic(), 0, "{message}: not retried on the second upstream");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_attempt_allowed_and_it_fails_gives_resource_unavailable() {
    let (node, m1, m2) =
        two_upstreams(RoutingConfig { max_attempts: 1, hedge: false, ..RoutingConfig::default() }).await;
    m1.set_fault(Fault::Http500);
    let r = node.post("/", balance_call(r#""q""#)).await;
    assert_eq!(r.status, StatusCode::OK);
    let msg = assert_error(&r.object(), r#""q""#, -32002);
    assert!(msg.contains("1 attempt") && msg.contains("HTTP 500"), "{msg}");
    assert_eq!(r.header(ATTEMPTS), Some("1"));
    assert_eq!(r.header(SERVED_BY), None, "nobody served it: no header");
    assert_eq!((m1.traffic(), m2.traffic()), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_upstream_is_hedged_to_the_second() {
    let (node, m1, m2) = two_upstreams(RoutingConfig::default()).await;
    assert!(node.router.config().hedge, "hedging is on by default");
    m1.set_fault(Fault::Hang);
    let r = node.post("/", balance_call("7")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_result(&r.object(), "7", &m2.balance());
    assert_eq!(r.header(SERVED_BY), Some(node.peer.as_str()));
    assert_eq!(r.header(ATTEMPTS), Some("2"));
    assert_eq!((m1.traffic(), m2.traffic()), (1, 1));
}

// ---------------------------------------------------------------------------------------------
// Breaker
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_ejects_after_consecutive_failures_then_admits_one_probation_request() {
    let routing = RoutingConfig { eject_after_failures: 3, eject_ms: 2_500, ..no_hedge() };
    let (node, m1, m2) = two_upstreams(routing).await;
    m1.set_fault(Fault::Http500);
    for n in 1..=3 {
        let r = node.post("/", balance_call(&n.to_string())).await;
        assert_result(&r.object(), &n.to_string(), &m2.balance());
        assert_eq!(r.header(ATTEMPTS), Some("2"));
        assert_eq!(m1.traffic(), n, "failure {n} reached the first upstream");
    }
    // Ejected: requests go straight to the second upstream.
    for n in 4..=5 {
        assert_eq!(node.breaker(&m1), "ejected", "still within eject_ms");
        let r = node.post("/", balance_call(&n.to_string())).await;
        assert_result(&r.object(), &n.to_string(), &m2.balance());
        assert_eq!(r.header(ATTEMPTS), Some("1"));
        assert_eq!(m1.traffic(), 3, "an ejected upstream gets no requests");
    }
    // After eject_ms: one probation request; it fails, so the upstream is ejected again.
    wait_until("the breaker to half-open", || node.breaker(&m1) == "probation").await;
    let r = node.post("/", balance_call("6")).await;
    assert_result(&r.object(), "6", &m2.balance());
    assert_eq!(r.header(ATTEMPTS), Some("2"));
    assert_eq!(m1.traffic(), 4, "exactly one probation request");
    assert_eq!(node.breaker(&m1), "ejected");
    let r = node.post("/", balance_call("7")).await;
    assert_result(&r.object(), "7", &m2.balance());
    assert_eq!(m1.traffic(), 4, "ejected again after a failed probation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_closes_after_a_successful_probation() {
    let routing = RoutingConfig { eject_after_failures: 2, eject_ms: 1_000, ..no_hedge() };
    let (node, m1, m2) = two_upstreams(routing).await;
    m1.set_fault(Fault::Http500);
    for n in 1..=2 {
        node.post("/", balance_call(&n.to_string())).await;
    }
    assert_eq!(m1.traffic(), 2);
    assert_eq!(node.breaker(&m1), "ejected");
    m1.set_fault(Fault::None);
    wait_until("the breaker to half-open", || node.breaker(&m1) == "probation").await;
    let r = node.post("/", balance_call("3")).await;
    assert_result(&r.object(), "3", &m1.balance());
    assert_eq!(r.header(ATTEMPTS), Some("1"));
    assert_eq!(node.breaker(&m1), "closed");
    let r = node.post("/", balance_call("4")).await;
    assert_result(&r.object(), "4", &m1.balance());
    assert_eq!((m1.traffic(), m2.traffic()), (4, 2));
}

// ---------------------------------------------------------------------------------------------
// eth_sendRawTransaction
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_raw_transaction_already_known_is_the_transaction_hash() {
    let m = Mock::start(1, 1).await;
    let node = single(&m, GatewayConfig::default(), RoutingConfig::default()).await;
    m.set_fault(Fault::Rpc { code: -32000, message: "already known", data: None });
    let raw_tx = "0x02f8730180843b9aca008504a817c80082520894000000000000000000000000000000000000dead8080c0";
    let expected = format!("\"0x{}\"", hex::encode(Keccak256::digest(hex::decode(&raw_tx[2..]).unwrap())));
    let r = node.post("/", call(r#""abc""#, "eth_sendRawTransaction", &format!(r#"["{raw_tx}"]"#))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_result(&r.object(), r#""abc""#, &expected);
    assert_eq!(r.header(SERVED_BY), Some(node.peer.as_str()));
    assert_eq!(r.header(ATTEMPTS), Some("1"));

    // Known vector: keccak256(0x01).
    let r = node.post("/", call("9", "eth_sendRawTransaction", r#"["0x01"]"#)).await;
    assert_result(&r.object(), "9", r#""0x5fe7f977e71dba2ea1a68e21057beebb9be2ac30c6410aa38d4f3fbe41dcffd2""#);

    // Other send errors are the caller's: returned as is.
    m.set_fault(Fault::Rpc { code: -32000, message: "nonce too low", data: None });
    let r = node.post("/", call("10", "eth_sendRawTransaction", &format!(r#"["{raw_tx}"]"#))).await;
    assert_eq!(r.text(), rpc_error_body("10", -32000, "nonce too low", None));
    assert_eq!(m.traffic(), 3);
}

// ---------------------------------------------------------------------------------------------
// Bugs (ignored until fixed)
// ---------------------------------------------------------------------------------------------

/// A JSON-RPC 2.0 server must not reply to a notification; geth answers HTTP 200 with an empty
/// body. The router judges that empty body "malformed", so a notification is retried on the
/// next upstream (sent twice) and recorded as a failure of each upstream tried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_is_forwarded_to_one_upstream_only() {
    let (node, m1, m2) = two_upstreams(no_hedge()).await;
    let r = node.post("/", notification("eth_blockNumber")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!((m1.traffic(), m2.traffic()), (1, 0), "a notification is not sent twice");
    assert_eq!(r.header(ATTEMPTS), Some("1"), "one upstream takes a notification");
}

/// Same cause, worse effect: with one upstream, `eject_after_failures` notifications eject it,
/// and the chain answers -32002 to everything for `eject_ms`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_do_not_eject_a_spec_compliant_upstream() {
    let m = Mock::start(1, 1).await;
    let node = single(&m, GatewayConfig::default(), RoutingConfig::default()).await;
    for _ in 0..3 {
        let r = node.post("/", notification("eth_blockNumber")).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }
    assert_eq!(m.traffic(), 3);
    let r = node.post("/", balance_call("1")).await;
    assert_result(&r.object(), "1", &m.balance());
    assert_eq!(node.breaker(&m), "closed", "answering a notification correctly is not a failure");
}

/// JSON-RPC 2.0: `params`, when present, must be an array or an object. `null` is neither, but
/// `Option<&RawValue>` reads it as absent and the request is forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn params_null_is_invalid_request() {
    let m = Mock::start(1, 1).await;
    let node = single(&m, GatewayConfig::default(), RoutingConfig::default()).await;
    let r = node.post("/", r#"{"jsonrpc":"2.0","id":12,"method":"eth_getBalance","params":null}"#).await;
    assert_error(&r.object(), "12", -32600);
    assert_eq!(m.traffic(), 0);
}

/// A probation request abandoned without an outcome (here: sent as a hedge that loses to the
/// primary before its own hedge delay) keeps the probation slot reserved forever, so the
/// upstream stays ejected for good even after it recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_probation_does_not_eject_forever() {
    let (a, b) = (Mock::start(1, 1).await, Mock::start(1, 2).await);
    // B's latency estimate (probes) is over 333 ms: its own hedge delay is the 1 s maximum.
    b.set_probe_delay(Duration::from_millis(500));
    let routing = RoutingConfig { eject_after_failures: 1, eject_ms: 300, ..RoutingConfig::default() };
    let node =
        start_node(&[ChainSpec { id: 1, aliases: &[], mocks: &[&a, &b] }], GatewayConfig::default(), routing).await;
    assert_eq!(node.router.explain(1, "eth_getBalance", false, None, &[])[0].upstream.as_deref(), Some(a.url.as_str()));

    // 1. A is slow this once, so B gets a hedge, fails it, and is ejected.
    a.set_traffic_delay(Duration::from_millis(200));
    b.set_fault(Fault::Http500);
    let r = node.post("/", balance_call("1")).await;
    assert_result(&r.object(), "1", &a.balance());
    assert_eq!(b.traffic(), 1, "B got the hedge");
    assert_eq!(node.breaker(&b), "ejected");
    wait_until("B to half-open", || node.breaker(&b) == "probation").await;

    // 2. A is slower than its hedge delay (3 × ~200 ms): B's probation goes out as a hedge,
    // hangs, and A answers before B's own hedge delay (1 s) is over.
    b.set_fault(Fault::Hang);
    a.set_traffic_delay(Duration::from_millis(1_200));
    let r = node.post("/", balance_call("2")).await;
    assert_result(&r.object(), "2", &a.balance());
    assert_eq!(b.traffic(), 2, "B's probation request was sent");

    // 3. B recovers. It must get another probation at some point.
    b.set_fault(Fault::None);
    b.set_probe_delay(Duration::ZERO);
    a.set_traffic_delay(Duration::ZERO);
    wait_until("B to be admitted again", || node.breaker(&b) != "ejected").await;
    a.set_fault(Fault::Http500);
    let r = node.post("/", balance_call("3")).await;
    assert_result(&r.object(), "3", &b.balance());
}
