//! The gateway under provider failure: one anvil is the chain; three providers reach it
//! through their own killable forwarders; a client drives requests through provider A while
//! A's node is killed, and while it is frozen. No client request may fail.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rpcmesh_testnet::daemon::{Daemon, free_port};
use serde_json::Value;

use crate::support::*;

/// A `rpcmesh testnet forward` process: a provider's private path to the shared anvil.
pub struct Forwarder {
    child: Option<Child>,
    pub port: u16,
    target: u16,
}

impl Forwarder {
    pub fn start(target: u16) -> Forwarder {
        let mut f = Forwarder { child: None, port: free_port().unwrap(), target };
        f.spawn();
        f
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(bin());
        cmd.args([
            "testnet",
            "forward",
            "--listen",
            &format!("127.0.0.1:{}", self.port),
            "--to",
            &format!("127.0.0.1:{}", self.target),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        {
            use std::os::unix::process::CommandExt as _;
            cmd.process_group(0);
        }
        self.child = Some(cmd.spawn().unwrap());
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: signals our own child's process group.
            unsafe {
                libc::kill(-(c.id() as i32), sig);
            }
        }
    }

    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
    }

    pub fn thaw(&self) {
        self.signal(libc::SIGCONT);
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.thaw();
        self.kill();
    }
}

/// A JSON-RPC client over HTTP that reports who served each answer.
pub struct RpcClient {
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    url: String,
}

pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub served_by: String,
    /// `x-rpcmesh-verified`.
    pub verified: String,
    /// `x-rpcmesh-cache`.
    pub cache: String,
}

impl RpcClient {
    pub fn new(gateway_addr: &str) -> RpcClient {
        Self::at(format!("http://{gateway_addr}/"))
    }

    /// A client of exactly `url` (e.g. `http://127.0.0.1:8545/31337`).
    pub fn at(url: String) -> RpcClient {
        RpcClient { client: Client::builder(TokioExecutor::new()).build_http(), url }
    }

    pub async fn call_raw(&self, body: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = hyper::Request::post(&self.url).header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = tokio::time::timeout(
            Duration::from_secs(30),
            self.client.request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap()),
        )
        .await
        .expect("the gateway answers within 30 s")
        .expect("the gateway accepts the request");
        let status = resp.status().as_u16();
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let served_by = header("x-rpcmesh-served-by");
        let verified = header("x-rpcmesh-verified");
        let cache = header("x-rpcmesh-cache");
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Answer { status, body, served_by, verified, cache }
    }

    pub async fn call(&self, method: &str, params: Value) -> Answer {
        let body = serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }).to_string();
        self.call_raw(&body, &[]).await
    }
}

/// Sends `n` reads; returns who served them. Panics on any failed request.
async fn drive(client: &RpcClient, n: usize, phase: &str) -> Vec<String> {
    let mut served = Vec::with_capacity(n);
    for i in 0..n {
        let a = if i % 2 == 0 {
            client.call("eth_blockNumber", serde_json::json!([])).await
        } else {
            client
                .call("eth_getBalance", serde_json::json!(["0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266", "latest"]))
                .await
        };
        assert_eq!(a.status, 200, "{phase}: request {i} failed: {}", a.body);
        assert!(a.body.get("result").is_some(), "{phase}: request {i} failed: {}", a.body);
        served.push(a.served_by);
    }
    served
}

/// One anvil (chain 31337, a block a second); providers A, B, C each reach it through their own
/// forwarder; A bootstraps B and C.
pub struct Mesh {
    /// Homes of the daemons.
    pub dir: tempfile::TempDir,
    /// The chain.
    pub anvil: Anvil,
    /// A's, B's and C's paths to it.
    pub forwarders: Vec<Forwarder>,
    /// A, B, C.
    pub nodes: Vec<Daemon>,
}

/// Starts the mesh and waits until A sees B and C healthy.
pub async fn three_providers(net: &str) -> Mesh {
    let dir = tempfile::tempdir().unwrap();
    let anvil = Anvil::start(31337).await;
    let forwarders: Vec<Forwarder> = (0..3).map(|_| Forwarder::start(anvil.port)).collect();
    let a = start(spec(dir.path(), "a", net, vec![(31337, forwarders[0].url())], vec![], fast_sets())).await;
    let boot = a.p2p_addr().await.unwrap();
    let mut nodes = vec![a];
    for (i, f) in forwarders.iter().enumerate().skip(1) {
        nodes.push(
            start(spec(dir.path(), &format!("p{i}"), net, vec![(31337, f.url())], vec![boot.clone()], fast_sets()))
                .await,
        );
    }
    // A routes to B and C only once it sees them healthy.
    let a = &nodes[0];
    let others: Vec<String> = nodes[1..].iter().map(|n| n.peer_id.clone()).collect();
    wait("A to see B and C healthy", async || {
        let p = peers(a).await;
        others.iter().all(|id| provider(&p, id).is_some_and(|v| v["chains"][0]["health"] == "healthy"))
    })
    .await;
    Mesh { dir, anvil, forwarders, nodes }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_failed_request_when_the_upstream_is_killed_or_frozen() {
    let mut m = three_providers("gw-failover").await;
    let a_id = m.nodes[0].peer_id.clone();
    let others: HashSet<String> = m.nodes[1..].iter().map(|n| n.peer_id.clone()).collect();
    let client = RpcClient::new(&m.nodes[0].gateway_addr);

    let before = drive(&client, 40, "healthy").await;
    // Its own upstream first; a hedge may still let a peer win a read the loaded machine made
    // slow, so most, not all, come from A.
    let own = before.iter().filter(|s| **s == a_id).count();
    assert!(
        own * 4 >= before.len() * 3,
        "A serves from its own upstream while healthy ({own} of {}): {before:?}",
        before.len()
    );

    // Killed: connections refused at once.
    m.forwarders[0].kill();
    let killed = drive(&client, 120, "upstream killed").await;
    assert!(killed.iter().all(|s| others.contains(s)), "B or C serve while A's node is down: {killed:?}");
    // Every relayed answer came with a signed receipt that A verified and recorded.
    let receipts = m.nodes[0].admin_json("/receipts?limit=1000").await.unwrap();
    let receipts = receipts["receipts"].as_array().unwrap();
    assert!(receipts.len() >= 120, "A recorded {} receipts for 120 relayed answers", receipts.len());
    for r in receipts {
        assert!(others.contains(r["provider"].as_str().unwrap()), "{r}");
        let bytes = hex::decode(r["signed"].as_str().unwrap()).unwrap();
        let signed = rpcmesh_protocol::Signed::<rpcmesh_protocol::messages::Receipt>::from_bytes(&bytes).unwrap();
        signed.verify().unwrap();
        assert_eq!(signed.body.requester.to_peer_id().to_string(), a_id);
    }

    // Back: A serves again once its prober sees it healthy and the breaker lets it back in.
    m.forwarders[0].restart();
    wait("A to serve from its own upstream again", async || drive(&client, 1, "recovering").await[0] == a_id).await;

    // Frozen: connections hang; hedges and retries route around it.
    m.forwarders[0].freeze();
    let frozen = drive(&client, 120, "upstream frozen").await;
    assert!(
        frozen.iter().filter(|s| others.contains(*s)).count() >= 100,
        "B or C serve while A's node is frozen: {frozen:?}"
    );
    m.forwarders[0].thaw();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_off_serves_only_from_own_upstreams() {
    let mut m = three_providers("gw-failover-off").await;
    let client = RpcClient::new(&m.nodes[0].gateway_addr);
    m.forwarders[0].kill();
    // Failover on (default): served by a peer.
    let on = client.call("eth_blockNumber", serde_json::json!([])).await;
    assert!(on.body.get("result").is_some(), "{}", on.body);
    // Off for this request: only own upstreams, which are down -> a JSON-RPC error, no peer.
    let off = client
        .call_raw(
            r#"{"jsonrpc":"2.0","id":5,"method":"eth_blockNumber","params":[]}"#,
            &[("x-rpcmesh-failover", "off")],
        )
        .await;
    assert_eq!(off.body["id"], 5);
    assert_eq!(off.body["error"]["code"], -32002, "{}", off.body);
    assert!(off.served_by.is_empty());
}

/// A live newHeads subscription and request/response over one WebSocket to A, while A's node
/// is killed and then frozen: no error, no duplicate head, no missing head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_subscription_survives_a_killed_and_a_frozen_upstream() {
    use futures::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;

    let mut m = three_providers("gw-ws").await;
    let a_id = m.nodes[0].peer_id.clone();
    let url = format!("ws://{}/", m.nodes[0].gateway_addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.expect("websocket connects");
    ws.send(Message::text(r#"{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}"#)).await.unwrap();

    let mut sub_id = String::new();
    let mut heads: Vec<u64> = Vec::new();
    let mut answers = 0usize;
    let mut next_id = 100u64;
    // Phases: healthy, killed, frozen; each lasts until 3 more heads arrived.
    for phase in 0..3 {
        match phase {
            1 => m.forwarders[0].kill(),
            2 => {
                m.forwarders[0].restart();
                m.forwarders[0].freeze();
            }
            _ => {}
        }
        let target = heads.len() + 3;
        while heads.len() < target {
            next_id += 1;
            let call = format!(r#"{{"jsonrpc":"2.0","id":{next_id},"method":"eth_blockNumber","params":[]}}"#);
            ws.send(Message::text(call)).await.unwrap();
            let msg =
                tokio::time::timeout(WAIT, ws.next()).await.expect("a message within the deadline").unwrap().unwrap();
            let Message::Text(text) = msg else { continue };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            assert!(v.get("error").is_none(), "phase {phase}: error over the websocket: {v}");
            if v["id"] == 1 {
                sub_id = v["result"].as_str().unwrap().to_string();
            } else if v["method"] == "eth_subscription" {
                assert_eq!(v["params"]["subscription"], sub_id.as_str());
                let n =
                    u64::from_str_radix(v["params"]["result"]["number"].as_str().unwrap().trim_start_matches("0x"), 16)
                        .unwrap();
                if let Some(prev) = heads.last() {
                    assert_eq!(n, prev + 1, "phase {phase}: heads must be consecutive, got {n} after {prev}");
                }
                heads.push(n);
            } else {
                assert!(v.get("result").is_some(), "{v}");
                answers += 1;
            }
        }
        // Who served the last answer and the subscription's latest head, asked on the session:
        // A's own node while it is healthy, a peer once it was killed.
        let asked = format!(r#"{{"jsonrpc":"2.0","id":"who","method":"rpcmesh_servedBy","params":[{next_id}]}}"#);
        ws.send(Message::text(asked)).await.unwrap();
        let who = loop {
            let msg = tokio::time::timeout(WAIT, ws.next()).await.expect("an answer").unwrap().unwrap();
            let Message::Text(text) = msg else { continue };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            if v["id"] == "who" {
                break v["result"].clone();
            }
            if v["method"] == "eth_subscription" {
                let n =
                    u64::from_str_radix(v["params"]["result"]["number"].as_str().unwrap().trim_start_matches("0x"), 16)
                        .unwrap();
                heads.push(n);
            }
        };
        let answer_by = who["answers"][0]["servedBy"][0].as_str().unwrap_or_default().to_string();
        let head_by = who["subscriptions"][sub_id.as_str()].as_str().unwrap_or_default().to_string();
        assert_eq!(who["answers"][0]["id"], next_id, "{who}");
        match phase {
            0 => assert_eq!((answer_by.as_str(), head_by.as_str()), (a_id.as_str(), a_id.as_str()), "{who}"),
            1 => assert!(
                !answer_by.is_empty() && answer_by != a_id && !head_by.is_empty() && head_by != a_id,
                "served by peers while A's node is down: {who}"
            ),
            _ => {}
        }
    }
    m.forwarders[0].thaw();
    assert!(answers > 0);
    assert!(heads.len() >= 9);
}

/// newPendingTransactions over A's gateway: a transaction sent through the mesh is notified,
/// also after A's own node went down and the filter moved to a peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_transactions_subscription_moves_with_failover() {
    use futures::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;

    let mut m = three_providers("gw-pending").await;
    let url = format!("ws://{}/", m.nodes[0].gateway_addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.expect("websocket connects");
    ws.send(Message::text(r#"{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newPendingTransactions"]}"#))
        .await
        .unwrap();
    let client = RpcClient::new(&m.nodes[0].gateway_addr);
    // Signed by anvil's unlocked dev account directly (the gateway refuses account methods),
    // sent raw through the mesh as a wallet would.
    let signer = RpcClient::new(&format!("127.0.0.1:{}", m.anvil.port));
    let send = async || {
        let signed = signer
            .call(
                "eth_signTransaction",
                serde_json::json!([{
                    "from": "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266",
                    "to": "0x70997970c51812dc3a010c7d01b50e0d4c4db467",
                    "value": "0x1",
                    "gas": "0x5208"
                }]),
            )
            .await;
        let raw = signed.body["result"].as_str().unwrap_or_else(|| panic!("sign failed: {}", signed.body)).to_string();
        let a = client.call("eth_sendRawTransaction", serde_json::json!([raw])).await;
        a.body["result"].as_str().unwrap_or_else(|| panic!("send failed: {}", a.body)).to_string()
    };
    let mut sub = String::new();
    for phase in 0..2 {
        if phase == 1 {
            m.forwarders[0].kill();
        }
        // Transactions are sent until one is notified: the filter may be made between sends.
        let mut sent: Vec<String> = Vec::new();
        let deadline = std::time::Instant::now() + WAIT;
        'found: loop {
            assert!(std::time::Instant::now() < deadline, "phase {phase}: no pending-transaction notification");
            sent.push(send().await);
            let until = tokio::time::Instant::now() + Duration::from_millis(1500);
            while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(until, ws.next()).await {
                let Message::Text(t) = msg else { continue };
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                assert!(v.get("error").is_none(), "{v}");
                if v["id"] == 1 {
                    sub = v["result"].as_str().unwrap().to_string();
                } else if v["method"] == "eth_subscription" {
                    assert_eq!(v["params"]["subscription"], sub.as_str());
                    if sent.iter().any(|h| v["params"]["result"] == h.as_str()) {
                        break 'found;
                    }
                }
            }
        }
    }
}
