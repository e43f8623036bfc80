//! The scenario's clients: closed- or open-loop request loops over HTTP or WebSocket against
//! chosen gateways, each request judged against the truth and recorded.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::MethodWeight;
use super::truth::Truth;
use crate::record::{Outcome, Record, Request, Transport};

/// Methods the load generator knows how to parameterise and judge.
pub const SUPPORTED_METHODS: &[&str] =
    &["eth_blockNumber", "eth_chainId", "eth_getBalance", "eth_getBlockByNumber", "eth_getLogs"];

/// Anvil's first dev accounts (used with `--backend anvil`).
const ANVIL_ACCOUNTS: &[&str] = &[
    "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266",
    "0x70997970c51812dc3a010c7d01b50e0d4c4db467",
    "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc",
];

/// The request header choosing how far answers are verified.
const VERIFY_HEADER: &str = "x-rpcmesh-verify";

/// One client loop's parameters.
pub struct LoopSpec {
    /// Gateway node index.
    pub gateway: usize,
    /// Gateway address `host:port`.
    pub addr: String,
    /// HTTP or WebSocket.
    pub transport: Transport,
    /// Requests per second (0: closed loop).
    pub rate: f64,
    /// Method mix.
    pub methods: Vec<MethodWeight>,
    /// Client timeout per request.
    pub timeout: Duration,
    /// PRNG seed.
    pub seed: u64,
    /// `x-rpcmesh-verify` to send, if any.
    pub verify: Option<String>,
}

/// splitmix64: a small deterministic PRNG.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn pick<'a>(rng: &mut Rng, methods: &'a [MethodWeight]) -> &'a str {
    let total: u64 = methods.iter().map(|m| u64::from(m.weight.max(1))).sum();
    let mut x = rng.next() % total.max(1);
    for m in methods {
        let w = u64::from(m.weight.max(1));
        if x < w {
            return &m.method;
        }
        x -= w;
    }
    "eth_blockNumber"
}

fn params(method: &str, rng: &mut Rng, truth: &Truth, head: u64) -> Value {
    match method {
        "eth_getBalance" => {
            let addr = match truth {
                Truth::Sim(c) => format!("0x{}", hex::encode(c.account_address((rng.next() % 8) as usize))),
                Truth::Direct(_) => ANVIL_ACCOUNTS[(rng.next() % ANVIL_ACCOUNTS.len() as u64) as usize].to_string(),
            };
            json!([addr, "latest"])
        }
        "eth_getBlockByNumber" => {
            let n = head.saturating_sub(2 + rng.next() % 8);
            json!([format!("0x{n:x}"), false])
        }
        "eth_getLogs" => {
            let to = head.saturating_sub(2);
            json!([{ "fromBlock": format!("0x{:x}", to.saturating_sub(3)), "toBlock": format!("0x{to:x}") }])
        }
        _ => json!([]),
    }
}

/// Maps PeerIds to node indexes.
pub type PeerIndex = Arc<HashMap<String, usize>>;

/// Runs one client loop until `stop`, sending records to `out`.
pub async fn run_loop(
    spec: LoopSpec,
    truth: Truth,
    peers: PeerIndex,
    start: Instant,
    out: mpsc::Sender<Record>,
    stop: CancellationToken,
) {
    let mut rng = Rng(spec.seed);
    let http: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let url = format!("http://{}/", spec.addr);
    let mut ws = None;
    let mut next_id: u64 = 1;
    let interval = (spec.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / spec.rate));
    let mut next_at = Instant::now();
    while !stop.is_cancelled() {
        if let Some(iv) = interval {
            next_at += iv;
            let now = Instant::now();
            if next_at > now {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(next_at - now) => {}
                }
            }
        }
        let method = pick(&mut rng, &spec.methods).to_string();
        let head = truth.head().await.unwrap_or(0);
        let p = params(&method, &mut rng, &truth, head);
        next_id += 1;
        let body = json!({ "jsonrpc": "2.0", "id": next_id, "method": method, "params": p }).to_string();
        let t_ms = start.elapsed().as_millis() as u64;
        let sent = Instant::now();
        let answer: Result<(Value, Option<String>, u32), String> = match spec.transport {
            Transport::Http => {
                let mut req = hyper::Request::post(&url).header("content-type", "application/json");
                if let Some(v) = &spec.verify {
                    req = req.header(VERIFY_HEADER, v.as_str());
                }
                let req = req.body(Full::new(Bytes::from(body))).map_err(|e| e.to_string());
                match req {
                    Ok(req) => match tokio::time::timeout(spec.timeout, async {
                        let resp = http.request(req).await.map_err(|e| e.to_string())?;
                        let served =
                            resp.headers().get("x-rpcmesh-served-by").and_then(|v| v.to_str().ok()).map(str::to_string);
                        let attempts = resp
                            .headers()
                            .get("x-rpcmesh-attempts")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        let bytes = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
                        let v: Value = serde_json::from_slice(&bytes).map_err(|e| format!("not JSON: {e}"))?;
                        Ok((v, served.filter(|s| !s.is_empty()), attempts))
                    })
                    .await
                    {
                        Ok(r) => r,
                        Err(_) => Err(format!("client timeout after {} ms", spec.timeout.as_millis())),
                    },
                    Err(e) => Err(e),
                }
            }
            Transport::Ws => ws_call(&mut ws, &spec.addr, spec.verify.as_deref(), &body, next_id, spec.timeout)
                .await
                .map(|v| (v, None, 0)),
        };
        let latency_us = sent.elapsed().as_micros() as u64;
        let (outcome, detail, served_by, attempts) = match answer {
            Ok((v, served, attempts)) => {
                if let Some(e) = v.get("error") {
                    (Outcome::Error, Some(format!("JSON-RPC error {e}")), served, attempts)
                } else if let Some(result) = v.get("result") {
                    let (o, d) = truth.judge(&method, &p, result, head).await;
                    (o, d, served, attempts)
                } else {
                    (Outcome::Error, Some(format!("no result: {v}")), served, attempts)
                }
            }
            Err(e) => {
                ws = None;
                (Outcome::Error, Some(e), None, 0)
            }
        };
        let served_by_node = served_by.as_ref().and_then(|s| peers.get(s).copied());
        let rec = Record::Request(Request {
            t_ms,
            latency_us,
            gateway: spec.gateway,
            transport: spec.transport,
            method,
            outcome,
            served_by,
            served_by_node,
            attempts,
            detail,
        });
        if out.send(rec).await.is_err() {
            break;
        }
    }
}

type WsConn = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_call(
    conn: &mut Option<WsConn>,
    addr: &str,
    verify: Option<&str>,
    body: &str,
    id: u64,
    timeout: Duration,
) -> Result<Value, String> {
    use tokio_tungstenite::tungstenite::Message;
    let fut = async {
        if conn.is_none() {
            use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
            let mut req = format!("ws://{addr}/").into_client_request().map_err(|e| e.to_string())?;
            if let Some(v) = verify {
                let value = v.parse().map_err(|_| format!("bad {VERIFY_HEADER} value {v:?}"))?;
                req.headers_mut().insert(VERIFY_HEADER, value);
            }
            let (c, _) = tokio_tungstenite::connect_async(req).await.map_err(|e| e.to_string())?;
            *conn = Some(c);
        }
        let c = conn.as_mut().ok_or("no connection")?;
        c.send(Message::text(body.to_string())).await.map_err(|e| e.to_string())?;
        loop {
            match c.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).map_err(|e| e.to_string())?;
                    if v.get("id").and_then(Value::as_u64) == Some(id) {
                        return Ok(v);
                    }
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("websocket closed".into()),
            }
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(format!("client timeout after {} ms", timeout.as_millis())),
    }
}
