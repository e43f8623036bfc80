//! The fault proxy in front of a real anvil: every fault kind changes behaviour as documented in
//! `rpcmesh_testnet::fault_proxy`, and heal restores it.
//!
//! Each test starts its own anvil (`$RPCMESH_ANVIL`, else the copy under `/tmp/anv`) on a free
//! port in its own process group, killed by PID when the test ends. Anvil mines only when asked
//! (`anvil_mine`) or on a transaction, so heads do not move under an assertion. Tests wait on
//! events with deadlines and never sleep to synchronize.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rpcmesh_node::upstream::{HttpClient, TransportError};
use rpcmesh_testnet::fault_proxy::{FaultProxy, FaultProxyConfig, FaultProxyHandle, fake_hash};
use rpcmesh_testnet::sim::Fault;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound for anything that should happen promptly, even on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);

/// Anvil's first dev account (unlocked, 10 000 ETH).
const DEV: &str = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266";

fn anvil_bin() -> PathBuf {
    std::env::var_os("RPCMESH_ANVIL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/anv/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"))
}

/// A running anvil, SIGKILLed (by PID, its own process group) on drop.
struct Anvil {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Anvil {
    fn drop(&mut self) {
        // SAFETY: signals the process group this test created (anvil is its leader).
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

impl Anvil {
    async fn start() -> Anvil {
        use std::os::unix::process::CommandExt as _;
        let port = rpcmesh_testnet::daemon::free_port().expect("free port");
        let child = Command::new(anvil_bin())
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--silent"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting anvil ({}): {e}; set RPCMESH_ANVIL", anvil_bin().display()));
        let anvil = Anvil { child, addr: SocketAddr::from(([127, 0, 0, 1], port)) };
        let url = anvil.url();
        let deadline = Instant::now() + PATIENCE;
        loop {
            if try_call(&url, "eth_chainId", json!([]), Duration::from_secs(2)).await.is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "anvil did not answer within {PATIENCE:?}");
            // Polling a process that has no readiness event: pace the polls.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anvil
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    async fn call(&self, method: &str, params: Value) -> Value {
        result(&call(&self.url(), method, params).await)
    }

    /// Deploys a contract whose constructor runs `init` (a transaction, so a block), returns its
    /// address and block number.
    async fn deploy(&self, init: &str) -> (String, u64) {
        let tx = self.call("eth_sendTransaction", json!([{ "from": DEV, "data": init, "gas": "0x100000" }])).await;
        // Anvil mines the transaction moments after accepting it.
        let deadline = Instant::now() + PATIENCE;
        let receipt = loop {
            let receipt = self.call("eth_getTransactionReceipt", json!([tx])).await;
            if !receipt.is_null() {
                break receipt;
            }
            assert!(Instant::now() < deadline, "transaction {tx} not mined within {PATIENCE:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        assert_eq!(receipt["status"], "0x1", "{receipt}");
        (receipt["contractAddress"].as_str().unwrap().to_string(), quantity(&receipt["blockNumber"]))
    }

    async fn mine(&self, blocks: u64) {
        self.call("anvil_mine", json!([format!("{blocks:#x}")])).await;
    }
}

fn client() -> HttpClient {
    HttpClient::new(16 << 20)
}

async fn post(url: &str, body: impl Into<String>, timeout: Duration) -> Result<(u16, Bytes), TransportError> {
    let uri = url.parse().unwrap();
    client().post_json(&uri, Bytes::from(body.into()), timeout).await.map(|r| (r.status, r.body))
}

async fn try_call(url: &str, method: &str, params: Value, timeout: Duration) -> Result<Value, String> {
    let body = json!({ "jsonrpc": "2.0", "id": 7, "method": method, "params": params }).to_string();
    let (status, body) = post(url, body, timeout).await.map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("HTTP {status}"));
    }
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}

/// The whole response object of `method(params)`.
async fn call(url: &str, method: &str, params: Value) -> Value {
    try_call(url, method, params, PATIENCE).await.unwrap_or_else(|e| panic!("{method}: {e}"))
}

fn result(response: &Value) -> Value {
    assert!(response.get("error").is_none(), "unexpected error: {response}");
    response["result"].clone()
}

fn quantity(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().expect("quantity").trim_start_matches("0x"), 16).expect("quantity")
}

fn big(v: &Value) -> u128 {
    u128::from_str_radix(v.as_str().expect("quantity").trim_start_matches("0x"), 16).expect("quantity")
}

async fn proxy(anvil: &Anvil) -> FaultProxyHandle {
    FaultProxy::spawn(anvil.addr, SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("spawn proxy")
}

/// Init code whose constructor emits one LOG0 and returns no code.
const LOG0_INIT: &str = "0x60006000a000";

/// Init code whose constructor sets storage slot 0 to 42 and returns the runtime code
/// `0x600160005500` (`slot0 = 1`).
const STORED_INIT: &str = "0x602a60005560068060106000396000f3600160005500";

/// Init code whose constructor emits one LOG1 with `address` (left-padded) as its topic.
fn log1_init(address: &str) -> String {
    format!("0x73{}60006000a100", address.trim_start_matches("0x"))
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn none_forwards_bytes_untouched() {
    let anvil = Anvil::start().await;
    let proxy = proxy(&anvil).await;
    for body in [
        r#"{"jsonrpc":"2.0","id":"x-1","method":"eth_chainId","params":[]}"#,
        r#"[{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]},{"jsonrpc":"2.0","id":[2],"method":"eth_blockNumber","params":[]}]"#,
        r#"{"jsonrpc":"2.0","id":3,"method":"no_such_method","params":[]}"#,
        "not json",
    ] {
        let direct = post(&anvil.url(), body, PATIENCE).await.unwrap();
        let proxied = post(&proxy.http_url(), body, PATIENCE).await.unwrap();
        assert_eq!(proxied, direct, "{body}");
    }
    // Bounded body.
    let huge = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":["{}"]}}"#, "a".repeat(2 << 20));
    assert_eq!(post(&proxy.http_url(), huge, PATIENCE).await.unwrap().0, 413);
    assert!(proxy.stats().upstream_requests >= 4);
}

#[tokio::test]
async fn down_refuses_then_heal_rebinds_the_same_port() {
    let anvil = Anvil::start().await;
    let proxy = proxy(&anvil).await;
    let addr = proxy.addr();
    // A keep-alive connection that has been served.
    let mut open = TcpStream::connect(addr).await.unwrap();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#;
    let request = format!(
        "POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    open.write_all(request.as_bytes()).await.unwrap();
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(PATIENCE, open.read(&mut buf)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("0x7a69"));

    proxy.apply(Fault::Down).await.unwrap();
    let refused = TcpStream::connect(addr).await.expect_err("connect while down");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    // The open connection was dropped.
    let read = tokio::time::timeout(PATIENCE, open.read(&mut buf)).await.expect("open connection closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    proxy.apply(Fault::None).await.unwrap();
    assert_eq!(proxy.addr(), addr);
    assert_eq!(result(&call(&format!("http://{addr}/"), "eth_chainId", json!([])).await), "0x7a69");
}

#[tokio::test]
async fn freeze_holds_requests_until_heal() {
    let anvil = Anvil::start().await;
    let proxy = proxy(&anvil).await;
    proxy.apply(Fault::Freeze).await.unwrap();
    let frozen = try_call(&proxy.http_url(), "eth_chainId", json!([]), Duration::from_millis(300)).await;
    assert!(frozen.unwrap_err().contains("timed out"));

    let before = proxy.stats().http_requests;
    let url = proxy.http_url();
    let held = tokio::spawn(async move { call(&url, "eth_chainId", json!([])).await });
    wait_until("the held request to arrive", || proxy.stats().http_requests > before).await;
    assert!(!held.is_finished());
    proxy.apply(Fault::None).await.unwrap();
    let answer = tokio::time::timeout(PATIENCE, held).await.expect("answered after heal").unwrap();
    assert_eq!(result(&answer), "0x7a69");
}

#[tokio::test]
async fn slow_delays_every_answer() {
    let anvil = Anvil::start().await;
    let proxy = proxy(&anvil).await;
    proxy.apply(Fault::Slow { delay_ms: 400, jitter_ms: 100 }).await.unwrap();
    for _ in 0..3 {
        let start = Instant::now();
        assert_eq!(result(&call(&proxy.http_url(), "eth_chainId", json!([])).await), "0x7a69");
        assert!(start.elapsed() >= Duration::from_millis(400), "{:?}", start.elapsed());
    }
    proxy.apply(Fault::None).await.unwrap();
    assert_eq!(result(&call(&proxy.http_url(), "eth_chainId", json!([])).await), "0x7a69");
}

#[tokio::test]
async fn errors_at_rate_one_fail_every_request() {
    let anvil = Anvil::start().await;
    let proxy = proxy(&anvil).await;
    proxy.apply(Fault::Errors { rate: 1.0 }).await.unwrap();
    let (mut http500, mut internal) = (0, 0);
    let batch = r#"[{"jsonrpc":"2.0","id":"a","method":"eth_chainId"},{"jsonrpc":"2.0","method":"eth_chainId"},{"jsonrpc":"2.0","id":2,"method":"eth_blockNumber"}]"#;
    for _ in 0..20 {
        let (status, body) = post(&proxy.http_url(), batch, PATIENCE).await.unwrap();
        if status == 500 {
            http500 += 1;
            continue;
        }
        assert_eq!(status, 200);
        let answers: Value = serde_json::from_slice(&body).unwrap();
        let answers = answers.as_array().unwrap();
        assert_eq!(answers.len(), 2, "the notification gets no answer: {answers:?}");
        assert_eq!(answers[0]["id"], "a");
        assert_eq!(answers[1]["id"], 2);
        assert!(answers.iter().all(|a| a["error"]["code"] == -32603), "{answers:?}");
        internal += 1;
    }
    assert!(http500 > 0 && internal > 0, "both kinds of failure: {http500} HTTP 500, {internal} -32603");
    assert_eq!(proxy.stats().injected_errors, 20);
    proxy.apply(Fault::None).await.unwrap();
    assert_eq!(result(&call(&proxy.http_url(), "eth_chainId", json!([])).await), "0x7a69");
}

#[tokio::test]
async fn stale_lags_the_head() {
    let anvil = Anvil::start().await;
    let proxy = proxy(&anvil).await;
    let url = proxy.http_url();
    // Blocks 1, 2, 3 each hold one log; then 10 empty blocks: head 13.
    for _ in 0..3 {
        anvil.deploy(LOG0_INIT).await;
    }
    anvil.mine(10).await;
    assert_eq!(quantity(&anvil.call("eth_blockNumber", json!([])).await), 13);
    let all_logs = json!([{ "fromBlock": "0x0" }]);
    assert_eq!(anvil.call("eth_getLogs", all_logs.clone()).await.as_array().unwrap().len(), 3);

    proxy.apply(Fault::Stale { blocks: 12 }).await.unwrap();
    assert_eq!(quantity(&result(&call(&url, "eth_blockNumber", json!([])).await)), 1);
    let latest = result(&call(&url, "eth_getBlockByNumber", json!(["latest", false])).await);
    let block1 = anvil.call("eth_getBlockByNumber", json!(["0x1", false])).await;
    assert_eq!(latest["number"], "0x1");
    assert_eq!(latest["hash"], block1["hash"]);
    assert_eq!(result(&call(&url, "eth_getBlockByNumber", json!(["0x2", false])).await), Value::Null);
    let block5 = anvil.call("eth_getBlockByNumber", json!(["0x5", false])).await;
    assert_eq!(result(&call(&url, "eth_getBlockByHash", json!([block5["hash"], false])).await), Value::Null);
    // State at its head, not the chain's: the dev account paid gas in blocks 2 and 3 too.
    let balance = result(&call(&url, "eth_getBalance", json!([DEV, "latest"])).await);
    assert_eq!(balance, anvil.call("eth_getBalance", json!([DEV, "0x1"])).await);
    assert_ne!(balance, anvil.call("eth_getBalance", json!([DEV, "latest"])).await);
    assert_eq!(result(&call(&url, "eth_getTransactionCount", json!([DEV])).await), "0x1");
    let above = call(&url, "eth_getBalance", json!([DEV, "0x5"])).await;
    assert_eq!(above["error"]["code"], -32000, "{above}");
    assert_eq!(above["error"]["message"], "header not found");
    let call_above = call(&url, "eth_call", json!([{ "to": DEV }, { "blockNumber": "0x5" }])).await;
    assert_eq!(call_above["error"]["code"], -32000, "{call_above}");
    // Logs stop at its head.
    let logs = result(&call(&url, "eth_getLogs", all_logs.clone()).await);
    assert_eq!(logs.as_array().unwrap().len(), 1, "{logs}");
    assert_eq!(logs[0]["blockNumber"], "0x1");
    let later = result(&call(&url, "eth_getLogs", json!([{ "fromBlock": "0x2", "toBlock": "0x3" }])).await);
    assert_eq!(later, json!([]));
    // Batches are answered per call, ids untouched, notifications unanswered.
    let batch = r#"[{"jsonrpc":"2.0","id":"b","method":"eth_blockNumber"},{"jsonrpc":"2.0","method":"eth_blockNumber"},{"jsonrpc":"2.0","id":{"k":1},"method":"eth_chainId","params":[]},{"jsonrpc":"2.0","id":9,"method":"eth_getBlockByNumber","params":["0x9",false]}]"#;
    let (status, body) = post(&url, batch, PATIENCE).await.unwrap();
    assert_eq!(status, 200);
    let answers: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        answers,
        json!([
            { "jsonrpc": "2.0", "id": "b", "result": "0x1" },
            { "jsonrpc": "2.0", "id": { "k": 1 }, "result": "0x7a69" },
            { "jsonrpc": "2.0", "id": 9, "result": null },
        ])
    );

    proxy.apply(Fault::None).await.unwrap();
    assert_eq!(quantity(&result(&call(&url, "eth_blockNumber", json!([])).await)), 13);
    assert_eq!(result(&call(&url, "eth_getLogs", all_logs).await).as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn lie_alters_hashes_and_balances_consistently() {
    let anvil = Anvil::start().await;
    let proxy = proxy(&anvil).await;
    let url = proxy.http_url();
    anvil.deploy(LOG0_INIT).await; // block 1 with a log
    anvil.deploy(LOG0_INIT).await; // block 2 with a log: the one `lie` (log-omit) leaves out
    anvil.mine(2).await; // head 4
    let truth = anvil.call("eth_getBlockByNumber", json!(["latest", false])).await;
    let parent = anvil.call("eth_getBlockByNumber", json!(["0x3", false])).await;
    let balance = big(&anvil.call("eth_getBalance", json!([DEV, "latest"])).await);

    proxy.apply(Fault::Lie).await.unwrap();
    let lie = result(&call(&url, "eth_getBlockByNumber", json!(["latest", false])).await);
    assert_eq!(lie["number"], truth["number"]);
    assert_eq!(lie["timestamp"], truth["timestamp"]);
    assert_ne!(lie["hash"], truth["hash"]);
    assert_ne!(lie["parentHash"], truth["parentHash"]);
    assert_eq!(fake_hash(lie["hash"].as_str().unwrap()).unwrap(), truth["hash"]);
    // A consistent fake chain: the parent's fake hash is the child's fake parentHash.
    let lie_parent = result(&call(&url, "eth_getBlockByNumber", json!(["0x3", false])).await);
    assert_eq!(lie["parentHash"], lie_parent["hash"]);
    assert_ne!(lie_parent["hash"], parent["hash"]);
    // The liar knows its own hashes, not the true ones.
    let by_hash = result(&call(&url, "eth_getBlockByHash", json!([lie["hash"], false])).await);
    assert_eq!(by_hash["hash"], lie["hash"]);
    assert_eq!(result(&call(&url, "eth_getBlockByHash", json!([truth["hash"], false])).await), Value::Null);
    assert_eq!(big(&result(&call(&url, "eth_getBalance", json!([DEV, "latest"])).await)), balance * 2);
    let logs = result(&call(&url, "eth_getLogs", json!([{ "fromBlock": "0x0" }])).await);
    let block1 = anvil.call("eth_getBlockByNumber", json!(["0x1", false])).await;
    assert_eq!(fake_hash(logs[0]["blockHash"].as_str().unwrap()).unwrap(), block1["hash"]);
    assert_eq!(result(&call(&url, "eth_chainId", json!([])).await), "0x7a69");

    proxy.apply(Fault::None).await.unwrap();
    assert_eq!(result(&call(&url, "eth_getBlockByNumber", json!(["latest", false])).await)["hash"], truth["hash"]);
    assert_eq!(big(&result(&call(&url, "eth_getBalance", json!([DEV, "latest"])).await)), balance);
}

#[tokio::test]
async fn censor_hides_an_address() {
    let anvil = Anvil::start().await;
    let proxy = proxy(&anvil).await;
    let url = proxy.http_url();
    let target = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"; // anvil's second dev account
    let (by_topic, _) = anvil.deploy(&log1_init(target)).await; // a log naming the target
    let (emitter, _) = anvil.deploy(LOG0_INIT).await; // a log emitted by `emitter`
    let (stored, _) = anvil.deploy(STORED_INIT).await; // code and a storage word
    let all_logs = json!([{ "fromBlock": "0x0" }]);
    assert_eq!(anvil.call("eth_getLogs", all_logs.clone()).await.as_array().unwrap().len(), 2);
    // The dev account's nonce is 3 after the deployments: the other transfer is sent first.
    let sign =
        |to: &str, nonce: &str| json!([{ "from": DEV, "to": to, "value": "0x1", "gas": "0x5208", "nonce": nonce }]);
    let to_other = anvil.call("eth_signTransaction", sign("0x1111111111111111111111111111111111111111", "0x3")).await;
    let to_target = anvil.call("eth_signTransaction", sign(target, "0x4")).await;

    let mut address = [0u8; 20];
    hex::decode_to_slice(target.trim_start_matches("0x"), &mut address).unwrap();
    proxy.apply(Fault::Censor { address }).await.unwrap();
    assert_eq!(big(&result(&call(&url, "eth_getBalance", json!([target, "latest"])).await)), 0);
    assert!(big(&result(&call(&url, "eth_getBalance", json!([DEV, "latest"])).await)) > 0);
    let rejected = call(&url, "eth_sendRawTransaction", json!([to_target])).await;
    assert_eq!(rejected["error"]["code"], -32003, "{rejected}");
    assert_eq!(rejected["error"]["message"], "transaction rejected");
    let logs = result(&call(&url, "eth_getLogs", all_logs.clone()).await);
    assert_eq!(logs.as_array().unwrap().len(), 1, "{logs}");
    assert_eq!(logs[0]["address"].as_str().unwrap(), emitter.to_lowercase());
    // Censoring the emitter hides its own log.
    let mut emitter_bytes = [0u8; 20];
    hex::decode_to_slice(emitter.trim_start_matches("0x"), &mut emitter_bytes).unwrap();
    proxy.apply(Fault::Censor { address: emitter_bytes }).await.unwrap();
    let logs = result(&call(&url, "eth_getLogs", all_logs.clone()).await);
    assert_eq!(logs.as_array().unwrap().len(), 1, "{logs}");
    assert_eq!(logs[0]["address"].as_str().unwrap(), by_topic.to_lowercase());
    // A censored contract: its code and storage read empty, calls to it are refused, its proof
    // stays honest (a daemon checks reads with other operators' proofs).
    let mut stored_bytes = [0u8; 20];
    hex::decode_to_slice(stored.trim_start_matches("0x"), &mut stored_bytes).unwrap();
    proxy.apply(Fault::Censor { address: stored_bytes }).await.unwrap();
    assert_eq!(anvil.call("eth_getCode", json!([stored, "latest"])).await, "0x600160005500");
    assert_eq!(result(&call(&url, "eth_getCode", json!([stored, "latest"])).await), "0x");
    let zero = format!("0x{}", "0".repeat(64));
    assert_ne!(anvil.call("eth_getStorageAt", json!([stored, "0x0", "latest"])).await, zero);
    assert_eq!(result(&call(&url, "eth_getStorageAt", json!([stored, "0x0", "latest"])).await), zero);
    for method in ["eth_call", "eth_estimateGas"] {
        let refused = call(&url, method, json!([{ "from": DEV, "to": stored }, "latest"])).await;
        assert_eq!(refused["error"]["code"], -32003, "{method}: {refused}");
    }
    let proof = json!([stored, [zero], "latest"]);
    assert_eq!(result(&call(&url, "eth_getProof", proof.clone()).await), anvil.call("eth_getProof", proof).await);
    // Censoring the sender: its nonce reads 0 and calls from it are refused.
    let mut dev = [0u8; 20];
    hex::decode_to_slice(DEV.trim_start_matches("0x"), &mut dev).unwrap();
    proxy.apply(Fault::Censor { address: dev }).await.unwrap();
    assert_ne!(anvil.call("eth_getTransactionCount", json!([DEV, "latest"])).await, "0x0");
    assert_eq!(result(&call(&url, "eth_getTransactionCount", json!([DEV, "latest"])).await), "0x0");
    let refused = call(&url, "eth_estimateGas", json!([{ "from": DEV, "to": target }])).await;
    assert_eq!(refused["error"]["code"], -32003, "{refused}");
    proxy.apply(Fault::Censor { address: emitter_bytes }).await.unwrap();
    // Other transactions go through.
    let hash = result(&call(&url, "eth_sendRawTransaction", json!([to_other])).await);
    assert!(hash.as_str().is_some_and(|h| h.len() == 66), "{hash}");

    proxy.apply(Fault::None).await.unwrap();
    assert!(big(&result(&call(&url, "eth_getBalance", json!([target, "latest"])).await)) > 0);
    assert_eq!(result(&call(&url, "eth_getLogs", all_logs).await).as_array().unwrap().len(), 2);
    let accepted = result(&call(&url, "eth_sendRawTransaction", json!([to_target])).await);
    assert!(accepted.as_str().is_some_and(|h| h.len() == 66), "{accepted}");
}

#[tokio::test]
async fn connections_are_bounded() {
    let anvil = Anvil::start().await;
    let config = FaultProxyConfig { max_connections: 2, ..FaultProxyConfig::default() };
    let proxy = FaultProxy::spawn_with(anvil.addr, SocketAddr::from(([127, 0, 0, 1], 0)), config).await.unwrap();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#;
    let request = format!(
        "POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut buf = [0u8; 4096];
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let n = tokio::time::timeout(PATIENCE, s.read(&mut buf)).await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).contains("0x7a69"));
        open.push(s);
    }
    let mut third = TcpStream::connect(proxy.addr()).await.unwrap();
    let read = tokio::time::timeout(PATIENCE, third.read(&mut buf)).await.expect("third connection closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert_eq!(proxy.stats().rejected_connections, 1);
    drop(open);
}

/// One lie per verifiable answer (`lie=KIND`), each caught by `rpcmesh-eth`.
#[path = "fault_proxy/lies.rs"]
mod lies;
