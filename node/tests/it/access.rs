//! Client access control over real HTTP and WebSocket on 127.0.0.1: API keys by header and by
//! path, a wrong or missing key (401), a key narrowed to some methods (-32601), and quotas per
//! key and per client address (429, -32005, `retry-after`), batches counted by items.
//!
//! Quotas are made deterministic without touching the clock: a batch much larger than the burst
//! is admitted and leaves the bucket in a debt of tens of seconds (at 1 call/s), so the next call
//! is refused however slowly the machine runs the test.

use axum::http::{Method, StatusCode};
use futures::{SinkExt as _, StreamExt as _};
use rpcmesh_node::config::{ApiKeyConfig, GatewayConfig, RoutingConfig};
use sha2::{Digest as _, Sha256};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::gateway::{Mock, Node, WAIT, assert_error, assert_result, balance_call, call, single};

const OPEN: &str = "rmk_open_key";
const NARROW: &str = "rmk_narrow_key";
const TINY: &str = "rmk_tiny_key";
/// Items of the batch that drains a bucket of burst 2 at 1 call/s into a debt of 48 s.
const BIG_BATCH: usize = 50;
/// JSON-RPC "limit exceeded".
const LIMIT_EXCEEDED: i64 = -32005;

fn key(name: &str, secret: &str) -> ApiKeyConfig {
    ApiKeyConfig {
        name: name.into(),
        key_sha256: hex::encode(Sha256::digest(secret.as_bytes())),
        requests_per_sec: None,
        burst: None,
        allow_methods: Vec::new(),
    }
}

fn keys() -> Vec<ApiKeyConfig> {
    let mut narrow = key("narrow", NARROW);
    narrow.allow_methods = vec!["eth_blockNumber".into()];
    let mut tiny = key("tiny", TINY);
    tiny.requests_per_sec = Some(1);
    tiny.burst = Some(2);
    vec![key("open", OPEN), narrow, tiny]
}

async fn node(gateway: GatewayConfig) -> (Node, Mock) {
    let mock = Mock::start(1, 1).await;
    let node = single(&mock, gateway, RoutingConfig::default()).await;
    (node, mock)
}

fn batch(n: usize) -> String {
    let items: Vec<String> = (0..n).map(|i| balance_call(&i.to_string())).collect();
    format!("[{}]", items.join(","))
}

fn bearer(secret: &str) -> String {
    format!("Bearer {secret}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_required_by_header_or_path() {
    let (node, _mock) = node(GatewayConfig { require_key: true, keys: keys(), ..GatewayConfig::default() }).await;
    // No key.
    let r = node.post("/1", balance_call("7")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let msg = assert_error(&r.object(), "7", -32600);
    assert!(msg.contains("Authorization: Bearer") && msg.contains("gateway.require_key"), "{msg}");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    // A wrong key, by header and by path; ids echoed for a batch too.
    let wrong = bearer("rmk_wrong");
    let headers = [("content-type", "application/json"), ("authorization", wrong.as_str())];
    let r = node.request(Method::POST, "/1", &headers, balance_call("\"w\"")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(assert_error(&r.object(), "\"w\"", -32600).contains("unknown API key"));
    let r = node.post("/k/rmk_wrong/1", batch(2)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let items = r.array();
    assert_eq!((items.len(), crate::gateway::raw(&items[1], "id")), (2, "1"));
    // The right key, by header (default chain and chain path) and by path.
    let good = bearer(OPEN);
    let headers = [("content-type", "application/json"), ("authorization", good.as_str())];
    for path in ["/", "/1"] {
        let r = node.request(Method::POST, path, &headers, balance_call("8")).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_result(&r.object(), "8", "\"0x1\"");
    }
    for path in [format!("/k/{OPEN}"), format!("/k/{OPEN}/1")] {
        let r = node.post(&path, balance_call("9")).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_result(&r.object(), "9", "\"0x1\"");
    }
    // The path form wins over the header: a wrong path key is refused even with a good header.
    let r = node.request(Method::POST, "/k/rmk_wrong/1", &headers, balance_call("10")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_refused_even_when_keys_are_optional() {
    let (node, _mock) = node(GatewayConfig { keys: keys(), ..GatewayConfig::default() }).await;
    assert_eq!(node.post("/1", balance_call("1")).await.status, StatusCode::OK);
    assert_eq!(node.post("/k/rmk_typo/1", balance_call("1")).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_limited_to_some_methods_is_refused_the_others() {
    let (node, _mock) = node(GatewayConfig { require_key: true, keys: keys(), ..GatewayConfig::default() }).await;
    let path = format!("/k/{NARROW}/1");
    let r = node.post(&path, call("1", "eth_blockNumber", "[]")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_result(&r.object(), "1", "\"0x1001\"");
    let r = node.post(&path, balance_call("2")).await;
    assert_eq!(r.status, StatusCode::OK);
    let msg = assert_error(&r.object(), "2", -32601);
    assert!(msg.contains("narrow") && msg.contains("[[gateway.keys]] allow_methods"), "{msg}");
    // In a batch, per item.
    let body = format!("[{},{}]", call("3", "eth_blockNumber", "[]"), balance_call("4"));
    let items = node.post(&path, body).await.array();
    assert_result(&items[0], "3", "\"0x1001\"");
    assert_error(&items[1], "4", -32601);
}

/// Asserts a 429 with -32005, the id echoed and a `retry-after` of at least `min_secs`;
/// returns the message.
fn assert_limited(r: &crate::gateway::Reply, id: &str, min_secs: u64) -> String {
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.header("retry-after").expect("retry-after header").parse().expect("whole seconds");
    assert!(retry >= min_secs, "retry-after {retry} < {min_secs}");
    assert_error(&r.object(), id, LIMIT_EXCEEDED)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_quota_gets_429_and_batches_count_by_items() {
    let (node, _mock) = node(GatewayConfig { keys: keys(), ..GatewayConfig::default() }).await;
    let path = format!("/k/{TINY}/1");
    // A full bucket (burst 2) admits a batch of 50, which costs 50: a debt of 48 s.
    let r = node.post(&path, batch(BIG_BATCH)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.array().len(), BIG_BATCH);
    let r = node.post(&path, balance_call("\"after\"")).await;
    let msg = assert_limited(&r, "\"after\"", 10);
    assert!(msg.contains("API key tiny"), "{msg}");
    // Other keys and anonymous clients are not affected.
    assert_eq!(node.post(&format!("/k/{OPEN}/1"), balance_call("1")).await.status, StatusCode::OK);
    assert_eq!(node.post("/1", balance_call("1")).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_address_over_its_quota_gets_429_with_the_ids() {
    let gateway =
        GatewayConfig { keys: keys(), per_ip_requests_per_sec: 1, per_ip_burst: 2, ..GatewayConfig::default() };
    let (node, _mock) = node(gateway).await;
    // A full bucket admits a batch of 50 (50 items: a debt of 48 s at 1 call/s).
    let r = node.post("/1", batch(BIG_BATCH)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.array().len(), BIG_BATCH);
    let r = node.post("/1", balance_call("42")).await;
    let msg = assert_limited(&r, "42", 10);
    assert!(msg.contains("gateway.per_ip_requests_per_sec"), "{msg}");
    // A batch is refused with one error per item, each with its id.
    let r = node.post("/1", batch(3)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let items = r.array();
    for (i, item) in items.iter().enumerate() {
        assert_error(item, &i.to_string(), LIMIT_EXCEEDED);
    }
    // A key is its own quota: the same address is served with one.
    assert_eq!(node.post(&format!("/k/{OPEN}/1"), balance_call("1")).await.status, StatusCode::OK);
    // Over WebSocket the session stays open and each message is charged.
    let (mut ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(format!("ws://{}/1", node.addr)))
        .await
        .expect("upgrade answered")
        .expect("anonymous upgrade allowed");
    ws.send(Message::Text(balance_call("5").into())).await.expect("send");
    let reply = tokio::time::timeout(WAIT, ws.next()).await.expect("answered").expect("open").expect("frame");
    let v: serde_json::Value = serde_json::from_str(reply.to_text().expect("text")).expect("JSON");
    assert_eq!((v["id"].as_i64(), v["error"]["code"].as_i64()), (Some(5), Some(LIMIT_EXCEEDED)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_sessions_need_a_key_at_the_upgrade() {
    let (node, _mock) = node(GatewayConfig { require_key: true, keys: keys(), ..GatewayConfig::default() }).await;
    let refused = tokio_tungstenite::connect_async(format!("ws://{}/1", node.addr)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), StatusCode::UNAUTHORIZED),
        other => panic!("expected HTTP 401, got {other:?}"),
    }
    // By bearer header.
    let mut req = format!("ws://{}/1", node.addr).into_client_request().expect("request");
    req.headers_mut().insert("authorization", bearer(NARROW).parse().expect("header"));
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("keyed upgrade");
    ws.send(Message::Text(balance_call("6").into())).await.expect("send");
    let reply = tokio::time::timeout(WAIT, ws.next()).await.expect("answered").expect("open").expect("frame");
    let v: serde_json::Value = serde_json::from_str(reply.to_text().expect("text")).expect("JSON");
    assert_eq!(v["error"]["code"].as_i64(), Some(-32601), "{v}");
    // By path.
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/k/{OPEN}/1", node.addr)).await.expect("keyed upgrade");
    ws.send(Message::Text(balance_call("7").into())).await.expect("send");
    let reply = tokio::time::timeout(WAIT, ws.next()).await.expect("answered").expect("open").expect("frame");
    let v: serde_json::Value = serde_json::from_str(reply.to_text().expect("text")).expect("JSON");
    assert_eq!(v["result"].as_str(), Some("0x1"), "{v}");
}

/// Quotas count compute units: with `eth_getBalance` priced at 100 (`gateway.method_costs`), a
/// bucket of 200 at 1 unit/s holds two balance reads, while a batch of 50 `eth_blockNumber` (1
/// unit each, built in) costs half of one. The waits are tens of seconds, so the outcome does
/// not depend on how fast the machine runs the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_count_compute_units_and_a_batch_costs_its_sum() {
    const CU: &str = "rmk_cu_key";
    let mut cu = key("cu", CU);
    cu.requests_per_sec = Some(1);
    cu.burst = Some(200);
    let mut gateway = GatewayConfig { keys: vec![cu], ..GatewayConfig::default() };
    gateway.method_costs.insert("eth_getBalance".into(), 100);
    let (node, _mock) = node(gateway).await;
    let path = format!("/k/{CU}/1");
    assert_eq!(node.post(&path, balance_call("1")).await.status, StatusCode::OK, "100 of 200 units");
    // Two balance reads in one batch: 200 units, 100 held.
    let r = node.post(&path, batch(2)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.header("retry-after").expect("retry-after").parse().expect("seconds");
    assert!(retry >= 50, "about 100 units short at 1 unit/s: retry-after {retry}");
    // Fifty plain reads cost 50.
    let items: Vec<String> = (0..50).map(|i| call(&i.to_string(), "eth_blockNumber", "[]")).collect();
    let r = node.post(&path, format!("[{}]", items.join(","))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.array().len(), 50);
    // 50 left: one more balance read (100) waits.
    let r = node.post(&path, balance_call("\"last\"")).await;
    assert_limited(&r, "\"last\"", 10);
}
