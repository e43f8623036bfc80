//! Simulated backends over real sockets on 127.0.0.1: chain agreement, methods, JSON-RPC framing,
//! WebSocket `newHeads`, and every fault kind with its heal.
//!
//! Tests wait on events with generous timeouts and never sleep to synchronize; chains use short
//! block times and enough history that block-boundary races cannot change an assertion.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rpcmesh_testnet::sim::{
    Fault, MAX_LOG_BLOCK_RANGE, REVERT_SELECTOR, SimBackend, SimChain, SimConfig, SimHandle, SimTxPool, WEI_PER_ETH,
    transaction_hash,
};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// Upper bound for anything that should happen promptly, even on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(20);

/// Block time of the test chains: short, so a new block comes quickly.
const BLOCK_MS: u64 = 200;

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn chain(id: u64) -> SimChain {
    SimChain::with_history(id, BLOCK_MS, 1000)
}

async fn spawn(chain: SimChain) -> SimHandle {
    SimBackend::spawn(chain, any_port()).await.expect("spawn sim backend")
}

fn hex0x(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

fn qty(v: &Value) -> u64 {
    let s = v.as_str().unwrap_or_else(|| panic!("quantity expected, got {v}"));
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|e| panic!("bad quantity {s}: {e}"))
}

fn qty128(v: &Value) -> u128 {
    let s = v.as_str().unwrap_or_else(|| panic!("quantity expected, got {v}"));
    u128::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|e| panic!("bad quantity {s}: {e}"))
}

/// POSTs `body` to `url` on a fresh connection; `Err` on transport failure or after `limit`.
async fn post(url: &str, body: String, limit: Duration) -> Result<(StatusCode, String), String> {
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let request = hyper::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let response = client.request(request).await.map_err(|e| format!("request: {e:?}"))?;
        let status = response.status();
        let bytes = response.into_body().collect().await.map_err(|e| format!("body: {e}"))?.to_bytes();
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    };
    tokio::time::timeout(limit, exchange).await.map_err(|_| "timeout".to_string())?
}

/// One JSON-RPC call; returns the whole response object.
async fn call(h: &SimHandle, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let (status, text) = post(&h.http_url(), body, PATIENCE).await.unwrap_or_else(|e| panic!("{method}: {e}"));
    assert_eq!(status, StatusCode::OK, "{method}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method}: {e}: {text}"))
}

/// One JSON-RPC call that must succeed; returns its result.
async fn result(h: &SimHandle, method: &str, params: Value) -> Value {
    let response = call(h, method, params).await;
    assert!(response.get("error").is_none(), "{method}: {response}");
    response["result"].clone()
}

async fn error_code(h: &SimHandle, method: &str, params: Value) -> i64 {
    let response = call(h, method, params).await;
    response["error"]["code"].as_i64().unwrap_or_else(|| panic!("{method}: error expected, got {response}"))
}

async fn block_number(h: &SimHandle) -> u64 {
    qty(&result(h, "eth_blockNumber", json!([])).await)
}

/// Polls `condition` until it holds or `PATIENCE` runs out.
async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn backends_of_one_chain_agree_with_each_other_and_the_truth() {
    let chain = chain(1337);
    let (a, b) = (spawn(chain).await, spawn(chain).await);
    for _ in 0..3 {
        let before = chain.head_now();
        let a1 = block_number(&a).await;
        let b1 = block_number(&b).await;
        let a2 = block_number(&a).await;
        let after = chain.head_now();
        assert!(before <= a1 && a1 <= b1 && b1 <= a2 && a2 <= after, "{before} {a1} {b1} {a2} {after}");
    }
    let n = block_number(&a).await;
    for number in [0, n / 2, n] {
        let from_a = result(&a, "eth_getBlockByNumber", json!([format!("{number:#x}"), false])).await;
        let from_b = result(&b, "eth_getBlockByNumber", json!([format!("{number:#x}"), false])).await;
        assert_eq!(from_a, from_b);
        assert_eq!(from_a, chain.block(number));
        assert_eq!(from_a["hash"], hex0x(&chain.block_hash(number)));
        let by_hash = result(&b, "eth_getBlockByHash", json!([from_a["hash"], false])).await;
        assert_eq!(by_hash, from_a);
    }
    let parent = result(&a, "eth_getBlockByNumber", json!([format!("{:#x}", n - 1), false])).await;
    let child = result(&b, "eth_getBlockByNumber", json!([format!("{n:#x}"), false])).await;
    assert_eq!(child["parentHash"], parent["hash"]);
    assert_eq!(qty(&child["timestamp"]), (chain.genesis_ms + n * BLOCK_MS) / 1000);
    let addr = hex0x(&chain.account_address(3));
    assert_eq!(
        result(&a, "eth_getBalance", json!([addr, "latest"])).await,
        result(&b, "eth_getBalance", json!([addr, "latest"])).await
    );
    let logs = json!([{"fromBlock": "0x64", "toBlock": "0x78"}]);
    assert_eq!(result(&a, "eth_getLogs", logs.clone()).await, result(&b, "eth_getLogs", logs).await);

    // Another chain id: different hashes.
    let other = spawn(SimChain { chain_id: 1338, ..chain }).await;
    let theirs = result(&other, "eth_getBlockByNumber", json!(["0x1", false])).await;
    assert_ne!(theirs["hash"], hex0x(&chain.block_hash(1)));
}

#[tokio::test]
async fn every_listed_method_answers_sensibly() {
    let chain = chain(31337);
    let h = spawn(chain).await;
    let addr = chain.account_address(1);
    let addr_hex = hex0x(&addr);

    assert_eq!(result(&h, "eth_chainId", json!([])).await, "0x7a69");
    assert_eq!(result(&h, "net_version", json!([])).await, "31337");
    assert!(result(&h, "web3_clientVersion", json!([])).await.as_str().is_some_and(|v| v.starts_with("rpcmesh-sim/")));
    assert_eq!(result(&h, "eth_syncing", json!([])).await, false);
    let head = block_number(&h).await;
    assert!(head >= 1000);

    let gas_price = qty(&result(&h, "eth_gasPrice", json!([])).await);
    assert!((2_000_000_000..2_500_000_000).contains(&gas_price), "{gas_price}");
    assert_eq!(qty(&result(&h, "eth_maxPriorityFeePerGas", json!([])).await), 1_000_000_000);
    let history = result(&h, "eth_feeHistory", json!(["0x4", "latest", [25, 75]])).await;
    assert_eq!(history["baseFeePerGas"].as_array().map(Vec::len), Some(5));
    assert_eq!(history["reward"][0].as_array().map(Vec::len), Some(2));

    let latest = result(&h, "eth_getBlockByNumber", json!(["latest", true])).await;
    assert!(qty(&latest["number"]) >= head);
    for field in ["hash", "parentHash", "timestamp", "gasLimit", "gasUsed", "baseFeePerGas", "miner", "stateRoot"] {
        assert!(latest[field].as_str().is_some_and(|s| s.starts_with("0x")), "{field}: {latest}");
    }
    assert_eq!(latest["transactions"], json!([]));
    assert_eq!(qty(&result(&h, "eth_getBlockByNumber", json!(["earliest", false])).await["number"]), 0);
    let finalized = qty(&result(&h, "eth_getBlockByNumber", json!(["finalized", false])).await["number"]);
    assert!(finalized + 64 >= head && finalized < head);
    let future = format!("{:#x}", head + 1_000_000);
    assert_eq!(result(&h, "eth_getBlockByNumber", json!([future, false])).await, Value::Null);
    assert_eq!(result(&h, "eth_getBlockByHash", json!([hex0x(&[7u8; 32]), false])).await, Value::Null);
    assert_eq!(error_code(&h, "eth_getBlockByNumber", json!(["soon", false])).await, -32602);

    let balance = qty128(&result(&h, "eth_getBalance", json!([addr_hex, "latest"])).await);
    assert_eq!(balance, chain.balance(&addr));
    assert!(balance >= 1000 * WEI_PER_ETH);
    let nonce = qty(&result(&h, "eth_getTransactionCount", json!([addr_hex, "latest"])).await);
    assert_eq!(nonce, chain.transaction_count(&addr));
    let by_hash = json!({"blockHash": hex0x(&chain.block_hash(10))});
    assert_eq!(qty128(&result(&h, "eth_getBalance", json!([addr_hex, by_hash])).await), balance);
    assert_eq!(error_code(&h, "eth_getBalance", json!([addr_hex, future])).await, -32000);
    assert_eq!(error_code(&h, "eth_getBalance", json!(["0x1234", "latest"])).await, -32602);

    let contract = hex0x(&chain.contract_address(0));
    let call_result = result(&h, "eth_call", json!([{"to": contract, "data": "0x70a08231"}, "latest"])).await;
    assert_eq!(call_result.as_str().map(str::len), Some(66));
    assert_eq!(call_result, hex0x(&chain.call_result(&chain.contract_address(0), &[0x70, 0xa0, 0x82, 0x31])));
    let revert = hex0x(&REVERT_SELECTOR);
    assert_eq!(error_code(&h, "eth_call", json!([{"to": contract, "data": revert}, "latest"])).await, 3);
    assert_eq!(qty(&result(&h, "eth_estimateGas", json!([{"from": addr_hex, "to": contract}])).await), 21_000);
    assert_eq!(qty(&result(&h, "eth_estimateGas", json!([{"to": contract, "data": "0x0100"}])).await), 21_020);
    assert_eq!(result(&h, "eth_getCode", json!([contract, "latest"])).await.as_str().map(|c| c.len() > 2), Some(true));

    let logs = result(&h, "eth_getLogs", json!([{"fromBlock": "0xa", "toBlock": "0x13"}])).await;
    assert_eq!(logs, Value::Array(chain.logs(10, 19)));
    assert!(logs.as_array().is_some_and(|l| l.len() >= 20));
    let of_contract =
        result(&h, "eth_getLogs", json!([{"fromBlock": "0xa", "toBlock": "0x13", "address": contract}])).await;
    assert!(of_contract.as_array().is_some_and(|l| l.iter().all(|log| log["address"] == contract)));
    let first = &logs[0];
    let by_topic = json!([{"blockHash": first["blockHash"], "topics": [first["topics"][0], null, first["topics"][2]]}]);
    assert!(result(&h, "eth_getLogs", by_topic).await.as_array().is_some_and(|l| l.contains(first)));
    let long = spawn(SimChain::with_history(31337, BLOCK_MS, 2 * MAX_LOG_BLOCK_RANGE)).await;
    let too_wide = json!([{"fromBlock": "0x0", "toBlock": format!("{MAX_LOG_BLOCK_RANGE:#x}")}]);
    assert_eq!(error_code(&long, "eth_getLogs", too_wide).await, -32005);
    let too_many = json!([{"fromBlock": "0x0", "toBlock": format!("{:#x}", MAX_LOG_BLOCK_RANGE - 1)}]);
    let response = call(&long, "eth_getLogs", too_many).await;
    assert_eq!(response["error"]["code"], -32005);
    assert!(response["error"]["message"].as_str().is_some_and(|m| m.contains("more than")), "{response}");

    let raw = "0x02f86b827a6980843b9aca00850c92a69c0082520894";
    let hash = result(&h, "eth_sendRawTransaction", json!([raw])).await;
    assert_eq!(hash, hex0x(&transaction_hash(&hex::decode(&raw[2..]).unwrap_or_default())));
    assert_eq!(result(&h, "eth_getTransactionReceipt", json!([hash])).await, Value::Null);

    assert_eq!(error_code(&h, "eth_subscribe", json!(["newHeads"])).await, -32601, "needs a WebSocket");
    assert!(h.stats().rpc_calls >= 30, "{:?}", h.stats());
}

#[tokio::test]
async fn eth_get_logs_can_return_about_100_kib() {
    let chain = chain(10);
    let h = spawn(chain).await;
    let (from, to) = chain.log_range_for_size(900, 100 * 1024);
    assert!(from < to && to - from < 200, "{from}..{to}");
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "eth_getLogs",
        "params": [{"fromBlock": format!("{from:#x}"), "toBlock": format!("{to:#x}")}]});
    let (status, text) = post(&h.http_url(), body.to_string(), PATIENCE).await.expect("eth_getLogs");
    assert_eq!(status, StatusCode::OK);
    assert!((100 * 1024..120 * 1024).contains(&text.len()), "{} bytes", text.len());
    let response: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(response["result"], Value::Array(chain.logs(from, to)));
}

#[tokio::test]
async fn batches_echo_ids_exactly_and_skip_notifications() {
    let h = spawn(chain(1)).await;
    let batch = r#"[
        {"jsonrpc":"2.0","id":1,"method":"eth_chainId"},
        {"jsonrpc":"2.0","id":"abc","method":"net_version"},
        {"jsonrpc":"2.0","id":null,"method":"eth_chainId"},
        {"jsonrpc":"2.0","method":"eth_chainId"},
        {"jsonrpc":"2.0","id":1.50,"method":"eth_chainId"},
        {"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"nope"},
        5
    ]"#;
    let (status, text) = post(&h.http_url(), batch.into(), PATIENCE).await.expect("batch");
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains(r#""id":1.50"#), "{text}");
    assert!(text.contains(r#""id":123456789012345678901234567890"#), "{text}");
    let answers: Vec<Value> = serde_json::from_str(&text).expect("array");
    assert_eq!(answers.len(), 6, "the notification gets no answer: {text}");
    assert_eq!(answers[0], json!({"jsonrpc": "2.0", "id": 1, "result": "0x1"}));
    assert_eq!(answers[1], json!({"jsonrpc": "2.0", "id": "abc", "result": "1"}));
    assert_eq!(answers[2]["id"], Value::Null);
    assert_eq!(answers[2]["result"], "0x1");
    assert_eq!(answers[4]["error"]["code"], -32601);
    assert_eq!(answers[5]["error"]["code"], -32600);
    assert_eq!(answers[5]["id"], Value::Null);

    let (_, only_notification) =
        post(&h.http_url(), r#"{"method":"eth_chainId"}"#.into(), PATIENCE).await.expect("post");
    assert_eq!(only_notification, "");
    let (_, empty) = post(&h.http_url(), "[]".into(), PATIENCE).await.expect("post");
    assert_eq!(serde_json::from_str::<Value>(&empty).expect("json")["error"]["code"], -32600);
}

#[tokio::test]
async fn malformed_json_and_unknown_methods_get_standard_errors() {
    let h = spawn(chain(1)).await;
    for garbage in ["{\"id\":1,", "not json", "[{\"id\":1}", ""] {
        let (status, text) = post(&h.http_url(), garbage.into(), PATIENCE).await.expect("post");
        assert_eq!(status, StatusCode::OK);
        let response: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(response["error"]["code"], -32700, "{garbage:?}: {text}");
        assert_eq!(response["id"], Value::Null);
    }
    let response = call(&h, "eth_teleport", json!([])).await;
    assert_eq!(response["error"]["code"], -32601);
    assert_eq!(response["id"], 1);
    assert_eq!(error_code(&h, "eth_getBalance", json!({"address": "0x00"})).await, -32602);
}

#[tokio::test]
async fn any_path_works_and_oversized_bodies_are_refused() {
    let h = spawn(chain(1)).await;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}).to_string();
    let (status, text) = post(&format!("{}v3/some-key", h.http_url()), body, PATIENCE).await.expect("post");
    assert_eq!((status, text.contains("0x1")), (StatusCode::OK, true), "{text}");
    let huge = format!("{{\"id\":1,\"method\":\"eth_chainId\",\"pad\":\"{}\"}}", "x".repeat(2 << 20));
    let (status, _) = post(&h.http_url(), huge, PATIENCE).await.expect("post");
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri = h.http_url().parse().expect("uri");
    let plain_get = tokio::time::timeout(PATIENCE, client.get(uri)).await.expect("in time").expect("get");
    assert!(plain_get.status().is_client_error(), "{}", plain_get.status());
}

#[tokio::test]
async fn second_send_of_a_raw_transaction_is_already_known() {
    let pool = SimTxPool::new();
    let config = SimConfig { txpool: pool.clone(), ..SimConfig::default() };
    let a = SimBackend::spawn_with(chain(1), any_port(), config.clone()).await.expect("spawn");
    let gossip_peer = SimBackend::spawn_with(chain(1), any_port(), config).await.expect("spawn");
    let loner = spawn(chain(1)).await;
    let raw = json!(["0x02f8730180843b9aca00"]);
    let hash = result(&a, "eth_sendRawTransaction", raw.clone()).await;
    assert_eq!(hash.as_str().map(str::len), Some(66));
    let again = call(&a, "eth_sendRawTransaction", raw.clone()).await;
    assert_eq!(again["error"], json!({"code": -32000, "message": "already known"}));
    assert_eq!(error_code(&gossip_peer, "eth_sendRawTransaction", raw.clone()).await, -32000);
    assert_eq!(result(&loner, "eth_sendRawTransaction", raw).await, hash, "own pool: new to it");
    assert_eq!(pool.len(), 1);
    assert_eq!(error_code(&a, "eth_sendRawTransaction", json!(["0xzz"])).await, -32602);
}

#[tokio::test]
async fn down_refuses_connections_and_heal_listens_on_the_same_port() {
    let chain = chain(1);
    let h = spawn(chain).await;
    let addr = h.addr();
    let (mut ws, _) = tokio_tungstenite::connect_async(h.ws_url()).await.expect("ws connect");
    assert!(block_number(&h).await > 0);

    h.apply(Fault::Down).await.expect("down");
    assert_eq!(h.fault(), Fault::Down);
    let refused = TcpStream::connect(addr).await.expect_err("port must refuse");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(post(&h.http_url(), "{}".into(), PATIENCE).await.is_err());
    // The open WebSocket was dropped.
    let closed = tokio::time::timeout(PATIENCE, ws.next()).await.expect("ws must end");
    assert!(matches!(closed, None | Some(Err(_)) | Some(Ok(Message::Close(_)))), "{closed:?}");

    h.apply(Fault::None).await.expect("heal rebinds");
    assert_eq!(h.addr(), addr);
    assert!(block_number(&h).await > 0);
    // And once more: down and up twice in a row works too.
    h.apply(Fault::Down).await.expect("down again");
    h.heal();
    h.ready().await.expect("up again");
    assert!(block_number(&h).await > 0);
}

#[tokio::test]
async fn freeze_holds_requests_until_healed() {
    let h = spawn(chain(1)).await;
    h.apply(Fault::Freeze).await.expect("freeze");
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}).to_string();
    assert_eq!(post(&h.http_url(), body.clone(), Duration::from_millis(300)).await, Err("timeout".into()));

    let seen = h.stats().http_requests;
    let url = h.http_url();
    let held = tokio::spawn(async move { post(&url, body, PATIENCE).await });
    wait_until("the held request to arrive", || h.stats().http_requests > seen).await;
    assert!(!held.is_finished());
    h.heal();
    let (status, text) = held.await.expect("join").expect("answered after heal");
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains(r#""result":"0x1""#), "{text}");
}

#[tokio::test]
async fn slow_delays_every_answer() {
    let h = spawn(chain(1)).await;
    h.apply(Fault::Slow { delay_ms: 300, jitter_ms: 50 }).await.expect("slow");
    let started = Instant::now();
    block_number(&h).await;
    assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
    h.heal();
    block_number(&h).await;
}

#[tokio::test]
async fn errors_fail_the_given_fraction_reproducibly() {
    let h = spawn(chain(1)).await;
    h.apply(Fault::Errors { rate: 1.0 }).await.expect("errors");
    let (mut http_500, mut internal) = (0, 0);
    for _ in 0..20 {
        let body = r#"[{"id":1,"method":"eth_chainId"},{"id":2,"method":"eth_blockNumber"}]"#;
        let (status, text) = post(&h.http_url(), body.into(), PATIENCE).await.expect("post");
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            http_500 += 1;
        } else {
            let answers: Vec<Value> = serde_json::from_str(&text).expect("json");
            assert!(answers.iter().all(|a| a["error"]["code"] == -32603), "{text}");
            internal += 1;
        }
    }
    assert!(http_500 > 0 && internal > 0, "both forms occur: {http_500} / {internal}");
    assert_eq!(h.stats().injected_errors, 20);
    h.heal();
    assert_eq!(result(&h, "eth_chainId", json!([])).await, "0x1");

    // Same seed, same sequential requests: same outcomes.
    let mut patterns = Vec::new();
    for _ in 0..2 {
        let b = spawn(chain(1)).await;
        b.apply(Fault::Errors { rate: 0.5 }).await.expect("errors");
        let mut pattern = String::new();
        for _ in 0..24 {
            let (status, text) =
                post(&b.http_url(), r#"{"id":1,"method":"eth_chainId"}"#.into(), PATIENCE).await.expect("post");
            pattern.push(match (status, text.contains("-32603")) {
                (StatusCode::INTERNAL_SERVER_ERROR, _) => '5',
                (_, true) => 'e',
                _ => '.',
            });
        }
        patterns.push(pattern);
    }
    assert_eq!(patterns[0], patterns[1]);
    assert!(patterns[0].contains('.') && patterns[0].contains('5'), "{}", patterns[0]);
}

#[tokio::test]
async fn stale_lags_behind_and_hides_newer_blocks() {
    let chain = chain(1);
    let h = spawn(chain).await;
    let lag = 100; // 20 s of blocks: the chain cannot catch up within one test step.
    h.apply(Fault::Stale { blocks: lag }).await.expect("stale");
    let before = chain.head_now();
    let reported = block_number(&h).await;
    let after = chain.head_now();
    assert!(before - lag <= reported && reported <= after - lag, "{before} {reported} {after}");
    let tip = format!("{after:#x}");
    assert_eq!(result(&h, "eth_getBlockByNumber", json!([tip, false])).await, Value::Null);
    let tip_hash = hex0x(&chain.block_hash(after));
    assert_eq!(result(&h, "eth_getBlockByHash", json!([tip_hash, false])).await, Value::Null);
    let addr = hex0x(&chain.account_address(0));
    assert_eq!(error_code(&h, "eth_getBalance", json!([addr, tip])).await, -32000);
    let logs =
        result(&h, "eth_getLogs", json!([{"fromBlock": format!("{:#x}", after - lag - 20), "toBlock": tip}])).await;
    let after_logs = chain.head_now();
    let last = logs.as_array().and_then(|l| l.last()).map(|l| qty(&l["blockNumber"])).expect("some logs");
    assert!(last <= after_logs - lag, "{last} {after_logs}");
    h.heal();
    assert!(block_number(&h).await >= after);
}

#[tokio::test]
async fn lie_alters_hashes_and_balances() {
    let chain = chain(1);
    let h = spawn(chain).await;
    let addr = chain.account_address(5);
    let truth_block = result(&h, "eth_getBlockByNumber", json!(["0x10", false])).await;
    h.apply(Fault::Lie).await.expect("lie");
    let lie_block = result(&h, "eth_getBlockByNumber", json!(["0x10", false])).await;
    assert_ne!(lie_block["hash"], truth_block["hash"]);
    assert_ne!(lie_block["parentHash"], truth_block["parentHash"]);
    assert_eq!(lie_block["number"], truth_block["number"]);
    assert_eq!(result(&h, "eth_getBlockByHash", json!([truth_block["hash"], false])).await, Value::Null);
    assert_eq!(result(&h, "eth_getBlockByHash", json!([lie_block["hash"], false])).await, lie_block);
    let balance = qty128(&result(&h, "eth_getBalance", json!([hex0x(&addr), "latest"])).await);
    assert_ne!(balance, chain.balance(&addr));
    h.heal();
    assert_eq!(result(&h, "eth_getBlockByNumber", json!(["0x10", false])).await, truth_block);
    assert_eq!(qty128(&result(&h, "eth_getBalance", json!([hex0x(&addr), "latest"])).await), chain.balance(&addr));
}

#[tokio::test]
async fn censor_hides_an_address_and_rejects_its_transactions() {
    let chain = chain(1);
    let h = spawn(chain).await;
    let victim = chain.account_address(2);
    let topic = format!("0x{}{}", "00".repeat(12), hex::encode(victim));
    let filter = json!([{"fromBlock": "0x64", "toBlock": "0xc8", "topics": [null, topic]}]);
    let visible = result(&h, "eth_getLogs", filter.clone()).await;
    assert!(visible.as_array().is_some_and(|l| !l.is_empty()), "the victim has transfers in 100..=200");
    let raw_to_victim = format!("0x02f86c0180{}80", hex::encode(victim));

    h.apply(Fault::Censor { address: victim }).await.expect("censor");
    assert_eq!(result(&h, "eth_getLogs", filter.clone()).await, json!([]));
    let all = result(&h, "eth_getLogs", json!([{"fromBlock": "0x64", "toBlock": "0xc8"}])).await;
    assert!(!all.to_string().contains(&hex::encode(victim)));
    assert_eq!(qty128(&result(&h, "eth_getBalance", json!([hex0x(&victim), "latest"])).await), 0);
    let other = chain.account_address(3);
    assert_eq!(qty128(&result(&h, "eth_getBalance", json!([hex0x(&other), "latest"])).await), chain.balance(&other));
    let rejected = call(&h, "eth_sendRawTransaction", json!([raw_to_victim])).await;
    assert_eq!(rejected["error"]["code"], -32003, "{rejected}");
    assert!(result(&h, "eth_sendRawTransaction", json!(["0x02f801"])).await.is_string());

    h.heal();
    assert_eq!(result(&h, "eth_getLogs", filter).await, visible);
    assert!(result(&h, "eth_sendRawTransaction", json!([raw_to_victim])).await.is_string());
}

/// Reads WebSocket messages until one satisfies `pick`.
async fn next_matching<S>(ws: &mut S, mut pick: impl FnMut(&Value) -> bool) -> Value
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let read = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(text.as_str()).expect("json message");
                    if pick(&value) {
                        return value;
                    }
                }
                Some(Ok(_)) => {}
                other => panic!("websocket ended: {other:?}"),
            }
        }
    };
    tokio::time::timeout(PATIENCE, read).await.expect("websocket message in time")
}

#[tokio::test]
async fn websocket_answers_calls_and_pushes_new_heads() {
    let chain = chain(77);
    let h = spawn(chain).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(h.ws_url()).await.expect("ws connect");
    let send = |v: Value| Message::Text(v.to_string().into());

    ws.send(send(json!({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"}))).await.expect("send");
    let head = qty(&next_matching(&mut ws, |v| v["id"] == 1).await["result"]);
    ws.send(send(json!([{"id": 2, "method": "eth_chainId"}, {"id": 3, "method": "nope"}]))).await.expect("send");
    let batch = next_matching(&mut ws, Value::is_array).await;
    assert_eq!(batch[0]["result"], "0x4d");
    assert_eq!(batch[1]["error"]["code"], -32601);

    ws.send(send(json!({"jsonrpc": "2.0", "id": 4, "method": "eth_subscribe", "params": ["newHeads"]})))
        .await
        .expect("send");
    let sub = next_matching(&mut ws, |v| v["id"] == 4).await["result"].clone();
    assert!(sub.as_str().is_some_and(|s| s.len() == 34), "{sub}");
    let mut previous = None;
    for _ in 0..2 {
        let note = next_matching(&mut ws, |v| v["method"] == "eth_subscription").await;
        assert_eq!(note["params"]["subscription"], sub);
        let header = &note["params"]["result"];
        let n = qty(&header["number"]);
        assert!(n > head, "{n} > {head}");
        assert_eq!(header["hash"], hex0x(&chain.block_hash(n)));
        assert_eq!(header["parentHash"], hex0x(&chain.block_hash(n - 1)));
        if let Some(p) = previous {
            assert_eq!(n, p + 1, "one notification per block");
        }
        previous = Some(n);
    }
    assert!(h.stats().notifications >= 2);

    ws.send(send(json!({"id": 5, "method": "eth_unsubscribe", "params": [sub]}))).await.expect("send");
    assert_eq!(next_matching(&mut ws, |v| v["id"] == 5).await["result"], true);
    ws.send(send(json!({"id": 6, "method": "eth_unsubscribe", "params": [sub]}))).await.expect("send");
    assert_eq!(next_matching(&mut ws, |v| v["id"] == 6).await["error"]["code"], -32000);
    ws.send(send(json!({"id": 7, "method": "eth_subscribe", "params": ["logs", {}]}))).await.expect("send");
    assert_eq!(next_matching(&mut ws, |v| v["id"] == 7).await["error"]["code"], -32602);
}

#[tokio::test]
async fn shutdown_and_drop_free_the_port() {
    let h = spawn(chain(1)).await;
    let addr = h.addr();
    let clone = h.clone();
    h.shutdown().await;
    assert_eq!(TcpStream::connect(addr).await.expect_err("closed").kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(clone.ready().await.is_err(), "a clone sees the stopped backend");

    let dropped = spawn(chain(1)).await;
    let addr = dropped.addr();
    drop(dropped);
    let deadline = Instant::now() + PATIENCE;
    let mut refused = false;
    while !refused && Instant::now() < deadline {
        refused = TcpStream::connect(addr).await.is_err();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(refused, "dropping the last handle stops the backend");
}
