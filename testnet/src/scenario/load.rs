//! The scenario's clients: closed- or open-loop request loops over HTTP or WebSocket against
//! chosen gateways, each request judged against the truth and recorded. They send with the
//! testnet's load engine ([`crate::load`]), as the bench does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::MethodWeight;
use super::truth::Truth;
use crate::load::{Client, Pace, Schedule};
use crate::record::{Outcome, Record, Request, SentTransaction, Transport};

/// The load's own "method": a transfer of 1 wei to the watched address, signed by anvil
/// (`eth_signTransaction` for one of its unlocked dev accounts, asked directly, not through the
/// mesh) and sent with `eth_sendRawTransaction` through the gateway. Recorded as
/// `eth_sendRawTransaction`, plus a [`SentTransaction`].
pub const SEND_TO_WATCHED: &str = "send_to_watched";

/// Methods the load generator knows how to parameterise and judge.
pub const SUPPORTED_METHODS: &[&str] = &[
    "eth_blockNumber",
    "eth_chainId",
    "eth_getBalance",
    "eth_getTransactionCount",
    "eth_getCode",
    "eth_getBlockByNumber",
    "eth_getLogs",
    SEND_TO_WATCHED,
];

/// Anvil's first dev accounts (used with `--backend anvil`): the accounts read. They never send,
/// so their state does not move under a read.
const ANVIL_ACCOUNTS: &[&str] = &[
    "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266",
    "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
    "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc",
];

/// Anvil's dev accounts #3 to #8 (unlocked, funded): the senders of [`SEND_TO_WATCHED`], apart
/// from the accounts read and from #9, which scenarios watch.
pub const SENDERS: &[&str] = &[
    "0x90f79bf6eb2c4f870365e785982e1f101e93b906",
    "0x15d34aaf54267db7d7c367839aaf71a00a2c6a65",
    "0x9965507d1a55bcc2695c58ba16fb37d819b0a4dc",
    "0x976ea74026e726554db657fa54763abd0c3a0aa9",
    "0x14dc79964da2c08b23698b3d3cc7ca32193d9955",
    "0x23618e81e3f5cdf7f54c3d65f7fbc0abf5b21e8f",
];

/// Methods whose first parameter is the account they read.
const ACCOUNT_READS: &[&str] = &["eth_getBalance", "eth_getTransactionCount", "eth_getCode"];

/// `0x` + 40 hex digits, lowercased; `None` if `s` is not an address.
pub fn parse_address(s: &str) -> Option<String> {
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    (digits.len() == 40 && digits.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("0x{}", digits.to_ascii_lowercase()))
}

/// A sender of transactions, shared by the loops that use it: its turn is held from asking
/// its nonce until the gateway answered, so two loops never sign the same nonce.
#[derive(Clone)]
pub struct Sender {
    /// Its address (lowercase).
    pub address: String,
    /// Held while one of its transactions is signed and sent.
    pub turn: Arc<tokio::sync::Mutex<()>>,
}

/// Blocks below the head an account read asks at with [`ReadsAt::Number`]: a block every
/// provider within the router's lag allowance already has.
pub const READ_DEPTH: u64 = 2;

/// Which block the account reads (`eth_getBalance`, `eth_getTransactionCount`, `eth_getCode`)
/// ask at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadsAt {
    /// `latest`, as most clients ask.
    #[default]
    Latest,
    /// A block number [`READ_DEPTH`] below the head, as a client reading settled state asks.
    /// A daemon in `sample` mode can prove such a read; a `latest` read it cannot, since in that
    /// mode it never rewrites a request to pin it to a block.
    Number,
}

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
    /// The watched address (lowercase), if any: account reads ask about it one time in two and
    /// [`SEND_TO_WATCHED`] sends to it.
    pub watched: Option<String>,
    /// Who signs this loop's [`SEND_TO_WATCHED`] transactions.
    pub sender: Option<Sender>,
    /// The block account reads ask at.
    pub reads_at: ReadsAt,
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

fn params(method: &str, rng: &mut Rng, truth: &Truth, head: u64, watched: Option<&str>, reads_at: ReadsAt) -> Value {
    match method {
        m if ACCOUNT_READS.contains(&m) => {
            let pick = rng.next();
            let addr = match (truth, watched) {
                (_, Some(w)) if pick.is_multiple_of(2) => w.to_string(),
                (Truth::Sim(c), _) => format!("0x{}", hex::encode(c.account_address((pick / 2 % 8) as usize))),
                (Truth::Direct(_), _) => ANVIL_ACCOUNTS[(pick / 2 % ANVIL_ACCOUNTS.len() as u64) as usize].to_string(),
            };
            match reads_at {
                ReadsAt::Latest => json!([addr, "latest"]),
                ReadsAt::Number => json!([addr, format!("0x{:x}", head.saturating_sub(READ_DEPTH))]),
            }
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
    let addr = match spec.addr.parse() {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(gateway = spec.gateway, addr = %spec.addr, error = %e, "the load cannot reach this gateway");
            return;
        }
    };
    let mut client = Client::new(addr, spec.transport, spec.timeout);
    if let Some(v) = &spec.verify {
        client = client.header(VERIFY_HEADER, v.as_str());
    }
    let mut next_id: u64 = 1;
    let mut schedule = Schedule::new(Pace::from_rate(spec.rate), 0.0);
    while schedule.wait(&stop).await {
        let picked = pick(&mut rng, &spec.methods).to_string();
        let head = truth.head().await.unwrap_or(0);
        // A transfer holds its sender's turn until the gateway answered (see `Sender`).
        let mut transfer: Option<(Transfer, tokio::sync::OwnedMutexGuard<()>)> = None;
        let (method, p) = if picked == SEND_TO_WATCHED {
            match prepare_transfer(&spec, &truth).await {
                Ok((t, turn)) => {
                    let p = json!([t.raw]);
                    transfer = Some((t, turn));
                    ("eth_sendRawTransaction".to_string(), p)
                }
                Err(why) => {
                    // The load's own failure (anvil asked directly), not the mesh's: no request
                    // was sent, none is recorded.
                    tracing::warn!(gateway = spec.gateway, error = %why, "the load could not sign a transaction");
                    continue;
                }
            }
        } else {
            let p = params(&picked, &mut rng, &truth, head, spec.watched.as_deref(), spec.reads_at);
            (picked, p)
        };
        let subject = match &transfer {
            Some((t, _)) => Some(t.to.clone()),
            None if ACCOUNT_READS.contains(&method.as_str()) => {
                p.get(0).and_then(Value::as_str).and_then(parse_address)
            }
            None => None,
        };
        next_id += 1;
        let body = json!({ "jsonrpc": "2.0", "id": next_id, "method": method, "params": p }).to_string();
        let t_ms = start.elapsed().as_millis() as u64;
        let sent = Instant::now();
        let answer = client.call(body.as_bytes(), next_id).await.and_then(|resp| {
            let served = resp.served_by.map(|s| String::from_utf8_lossy(s).into_owned()).filter(|s| !s.is_empty());
            if resp.status != 200 && serde_json::from_slice::<Value>(&resp.body).is_err() {
                return Err(format!("HTTP {}: {}", resp.status, String::from_utf8_lossy(&resp.body).trim()));
            }
            let v: Value = serde_json::from_slice(&resp.body).map_err(|e| format!("not JSON: {e}"))?;
            Ok((v, served, resp.attempts))
        });
        let latency_us = sent.elapsed().as_micros() as u64;
        let (outcome, detail, served_by, attempts) = match answer {
            Ok((v, served, attempts)) => {
                if let Some(e) = v.get("error") {
                    (Outcome::Error, Some(format!("JSON-RPC error {e}")), served, attempts)
                } else if let Some(result) = v.get("result") {
                    let (o, d) = match &transfer {
                        Some((t, _)) => judge_sent(result, &t.hash),
                        None => truth.judge(&method, &p, result, head).await,
                    };
                    (o, d, served, attempts)
                } else {
                    (Outcome::Error, Some(format!("no result: {v}")), served, attempts)
                }
            }
            Err(e) => (Outcome::Error, Some(e), None, 0),
        };
        let served_by_node = served_by.as_ref().and_then(|s| peers.get(s).copied());
        if let Some((t, turn)) = transfer {
            drop(turn);
            let sent = Record::Transaction(SentTransaction {
                t_ms,
                gateway: spec.gateway,
                from: t.from,
                to: t.to,
                hash: t.hash,
                accepted: outcome == Outcome::Ok,
                detail: (outcome != Outcome::Ok).then(|| detail.clone().unwrap_or_default()),
                mined_block: None,
            });
            if out.send(sent).await.is_err() {
                break;
            }
        }
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
            subject,
            verify: spec.verify.clone(),
        });
        if out.send(rec).await.is_err() {
            break;
        }
    }
}

/// A signed transfer to the watched address.
struct Transfer {
    from: String,
    to: String,
    /// The signed transaction, `0x…`.
    raw: String,
    /// Its hash, `0x…` lowercase.
    hash: String,
}

/// Signs a transfer of 1 wei from the loop's sender to the watched address: the sender's
/// pending nonce and the signature come from the chain's node itself (anvil holds the dev
/// accounts' keys), so the load needs no signing code. Returns the sender's turn, held until
/// the transaction was sent.
async fn prepare_transfer(
    spec: &LoopSpec,
    truth: &Truth,
) -> Result<(Transfer, tokio::sync::OwnedMutexGuard<()>), String> {
    let (Some(sender), Some(to)) = (&spec.sender, &spec.watched) else {
        return Err(format!("{SEND_TO_WATCHED} needs load.watched and an anvil dev account to send from"));
    };
    let turn = sender.turn.clone().lock_owned().await;
    let nonce = truth.ask("eth_getTransactionCount", json!([sender.address, "pending"])).await?;
    let call = json!([{ "from": sender.address, "to": to, "value": "0x1", "nonce": nonce }]);
    let raw = truth.ask("eth_signTransaction", call).await?;
    let raw = raw.as_str().ok_or_else(|| format!("eth_signTransaction answered {raw}, not bytes"))?.to_string();
    let bytes = hex::decode(raw.trim_start_matches("0x")).map_err(|e| format!("eth_signTransaction: {e}"))?;
    let hash = format!("0x{}", hex::encode(alloy_primitives::keccak256(&bytes)));
    Ok((Transfer { from: sender.address.clone(), to: to.clone(), raw, hash }, turn))
}

/// Judges a gateway's answer to `eth_sendRawTransaction`: the transaction's own hash.
fn judge_sent(result: &Value, hash: &str) -> (Outcome, Option<String>) {
    match result.as_str() {
        Some(h) if h.eq_ignore_ascii_case(hash) => (Outcome::Ok, None),
        _ => (Outcome::Wrong, Some(format!("transaction hash {result}, truth {hash}"))),
    }
}
