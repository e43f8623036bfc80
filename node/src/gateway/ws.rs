//! JSON-RPC over WebSocket on the gateway's paths: every request/response method goes through
//! the router like HTTP; `eth_subscribe` is served by the gateway itself.
//!
//! Subscriptions are synthesized from polls routed through the mesh (`newHeads` from the
//! latest block, `logs` from `eth_getLogs` over each new block range), so a subscription is
//! as available as the mesh: when the provider serving it fails, the next poll fails over and
//! the client keeps its subscription id, sees no error, and gets no duplicate head; a gap of
//! missed blocks is filled from the blocks in between (up to [`MAX_BACKFILL`]).
//! `newPendingTransactions` is served from a pending-transaction filter on one provider (a
//! mempool is per provider): polled with `eth_getFilterChanges`; when that provider fails, a new
//! filter is made on the next best one under the same subscription id, and hashes already sent
//! are not sent again (a few transactions may be missed during the switch).
//!
//! Who served each answer and each subscription's latest data is told on demand: the client
//! calls `rpcmesh_servedBy` on the session (see [`super::served_log`]); nothing is added to
//! answers or notifications.
//!
//! A message being received is bounded like a request body: its bytes are charged against the
//! gateway's body budget as they arrive (the connection fails when it is spent) and it must be
//! complete within the body timeout, or the session is closed (see [`crate::serve::ReadMeter`]).
//!
//! Access: the key (if any) is checked at the upgrade; each message is then charged against the
//! key's or the address's quota like an HTTP request (its compute units, a batch the sum of its
//! items'), and answered with a JSON-RPC -32005 error when over it (the session stays open).
//! Subscription polls are the gateway's own work and are not charged: a subscription costs its
//! `eth_subscribe`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

use super::Gateway;
use super::access::ApiKey;
use super::body::{calls_in, ids_of_call};
use super::respond::GatewayError;
use super::served_log::{self, ServedLog, SubscriptionSources};
use crate::jsonrpc::{self, Call, INVALID_PARAMS, Item, LIMIT_EXCEEDED, METHOD_NOT_FOUND, Request};
use crate::router::RouteOptions;
use crate::router::{Target, VerifyMode};

/// Poll period of synthesized subscriptions.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Most missed blocks filled in after a gap (older ones are skipped).
pub const MAX_BACKFILL: u64 = 64;
/// Pending transaction hashes remembered to avoid sending one twice after a provider switch.
const PENDING_DEDUP: usize = 10_000;
/// Subscriptions per connection.
const MAX_SUBSCRIPTIONS: usize = 64;
/// Outgoing messages queued per connection; when full, producers wait (backpressure on the
/// subscription pollers and on request handling of that connection only).
const OUTBOX: usize = 1024;
/// Bytes of outgoing messages queued per connection (a message larger than this waits for an
/// empty queue): what a slow reader can make the daemon hold, besides the message being sent.
const OUTBOX_BYTES: usize = 4 * 1024 * 1024;
/// Longest a message may take to be written to the client: one that does not read is
/// disconnected, not buffered for.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Pings a client may send per [`PING_WINDOW`]; more is a flood (each ping asks for a pong the
/// daemon must hold until the client reads it), and the connection is closed.
const MAX_PINGS_PER_WINDOW: u32 = 50;
/// See [`MAX_PINGS_PER_WINDOW`].
const PING_WINDOW: Duration = Duration::from_secs(10);
/// Frame buffer of the WebSocket writer, bytes.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;
/// Hard cap of the WebSocket writer's buffer (the message being written plus control frames),
/// bytes: above the largest answer an upstream may give (`relay.max_body_bytes`, 32 MiB by
/// default), so only a client that stopped reading reaches it, and is then disconnected.
const MAX_WRITE_BUFFER_BYTES: usize = 64 * 1024 * 1024;
/// Largest accepted WebSocket message.
const MAX_MESSAGE_BYTES: usize = 5 * 1024 * 1024;
/// Initial read buffer of a session, bytes (it grows for a larger message). The library's default
/// (128 KiB) made every idle session cost ~130 KB: 4096 idle sessions held 565 MB.
const READ_BUFFER_BYTES: usize = 4 * 1024;

static NEXT_SUB: AtomicU64 = AtomicU64::new(1);

/// What a session serves, and to whom.
pub struct Session {
    /// The chain of the upgrade's path.
    pub chain: u64,
    /// Routing options from the upgrade's headers.
    pub opts: RouteOptions,
    /// The API key checked at the upgrade.
    pub key: Option<Arc<ApiKey>>,
    /// The client's address (its quota when there is no key).
    pub ip: std::net::IpAddr,
    /// The connection's reads, to bound the message being received.
    pub meter: Option<crate::serve::ReadMeter>,
}

/// Accepts the upgrade and serves the connection; `slot` (the connection's place under
/// `gateway.max_connections`) is held until the session ends.
pub fn upgrade(
    gw: Gateway,
    s: Session,
    up: WebSocketUpgrade,
    slot: Option<crate::serve::ConnectionPermit>,
) -> Response {
    up.max_message_size(MAX_MESSAGE_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        .on_upgrade(move |socket| async move {
            session(gw, s, socket).await;
            drop(slot);
        })
}

/// The outgoing queue of one connection, bounded in messages ([`OUTBOX`]) and bytes
/// ([`OUTBOX_BYTES`]): a full queue makes its producers wait.
#[derive(Clone)]
struct Outbox {
    tx: mpsc::Sender<(Bytes, OwnedSemaphorePermit)>,
    bytes: Arc<Semaphore>,
}

impl Outbox {
    /// Queues `msg`; `false` once the connection is gone.
    async fn send(&self, msg: Bytes) -> bool {
        let n = u32::try_from(msg.len().clamp(1, OUTBOX_BYTES)).unwrap_or(u32::MAX);
        let Ok(permit) = self.bytes.clone().acquire_many_owned(n).await else { return false };
        self.tx.send((msg, permit)).await.is_ok()
    }
}

/// Counts a client's pings in fixed windows.
struct PingBudget {
    window_start: tokio::time::Instant,
    count: u32,
}

impl PingBudget {
    /// Whether one more ping at `now` is within [`MAX_PINGS_PER_WINDOW`].
    fn allow(&mut self, now: tokio::time::Instant) -> bool {
        if now.duration_since(self.window_start) >= PING_WINDOW {
            self.window_start = now;
            self.count = 0;
        }
        self.count += 1;
        self.count <= MAX_PINGS_PER_WINDOW
    }
}

/// How often a session looks at its unfinished message: a quarter of the body timeout, so one
/// is closed within 1.25 timeouts of its first byte.
fn unfinished_check_period(timeout: Duration) -> Duration {
    (timeout / 4).clamp(Duration::from_millis(50), Duration::from_millis(2500))
}

async fn session(gw: Gateway, s: Session, socket: WebSocket) {
    // A message being received is bounded by the shared body budget and the body timeout.
    let message_timeout = gw.inner.body_timeout;
    if let Some(m) = &s.meter {
        m.watch(gw.inner.body_budget.clone());
    }
    let period = unfinished_check_period(message_timeout);
    let mut unfinished_check = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    unfinished_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<(Bytes, OwnedSemaphorePermit)>(OUTBOX);
    let outbox = Outbox { tx: out_tx, bytes: Arc::new(Semaphore::new(OUTBOX_BYTES)) };
    let mut writer = tokio::spawn(async move {
        // The permit is released once the message left the queue and was written.
        while let Some((msg, _permit)) = out_rx.recv().await {
            let text = String::from_utf8_lossy(&msg).into_owned();
            match tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Text(text.into()))).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => {
                    tracing::debug!("websocket client does not read; disconnecting it");
                    return;
                }
            }
        }
        let _ = tokio::time::timeout(SEND_TIMEOUT, sink.close()).await;
    });
    let mut writer_done = false;
    let mut pings = PingBudget { window_start: tokio::time::Instant::now(), count: 0 };
    let mut subs: HashMap<String, JoinHandle<()>> = HashMap::new();
    let mut served = ServedLog::default();
    loop {
        let msg = tokio::select! {
            m = stream.next() => match m {
                Some(Ok(m)) => {
                    if let Some(meter) = &s.meter {
                        meter.message_done();
                    }
                    m
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "websocket session ends on a read error");
                    break;
                }
                None => break,
            },
            _ = unfinished_check.tick(), if s.meter.is_some() => {
                let since = s.meter.as_ref().and_then(|m| m.unfinished_since());
                if since.is_some_and(|t| t.elapsed() >= message_timeout) {
                    tracing::debug!(?message_timeout, "websocket message not completed within the body timeout; closing the session");
                    break;
                }
                continue;
            }
            // The writer gave up on the client (or failed): the session is over.
            _ = &mut writer, if !writer_done => {
                writer_done = true;
                break;
            }
        };
        let body = match msg {
            Message::Text(t) => Bytes::from(t.as_str().to_owned()),
            Message::Binary(b) => b,
            Message::Close(_) => break,
            Message::Ping(_) if !pings.allow(tokio::time::Instant::now()) => {
                tracing::debug!("websocket ping flood; disconnecting the client");
                break;
            }
            _ => continue,
        };
        let started = tokio::time::Instant::now();
        let answer = handle_message(&gw, &s, &body, &mut subs, &mut served, &outbox).await;
        gw.metrics().call(s.chain, "ws", started.elapsed());
        if let Some(a) = answer
            && !outbox.send(a).await
        {
            break;
        }
        let sources = served.subscriptions();
        subs.retain(|id, h| {
            let live = !h.is_finished();
            if !live {
                sources.forget(id);
            }
            live
        });
    }
    for (_, h) in subs {
        h.abort();
    }
    drop(outbox);
    if writer_done {
        return;
    }
    // Bounded: the writer gives up on a client that does not read within SEND_TIMEOUT.
    let _ = writer.await;
}

async fn handle_message(
    gw: &Gateway,
    s: &Session,
    body: &Bytes,
    subs: &mut HashMap<String, JoinHandle<()>>,
    served: &mut ServedLog,
    out: &Outbox,
) -> Option<Bytes> {
    let (chain, opts) = (s.chain, s.opts.clone());
    let call = jsonrpc::parse(body);
    // As over HTTP: a batch over `gateway.max_batch_len` is refused whole and costs at most that.
    let max_batch_len = gw.inner.max_batch_len;
    let calls = calls_in(&call).min(u32::try_from(max_batch_len).unwrap_or(u32::MAX).max(1));
    let units = gw.inner.access.units(&call, max_batch_len);
    if let Err(denied) = gw.inner.access.charge(s.key.as_deref(), s.ip, calls, units) {
        return Some(GatewayError::from(denied).body(&ids_of_call(&call)));
    }
    // Subscriptions are only handled as single requests; batches go through the router.
    if let Call::Single(Item::Request(req)) = &call
        && req.method == served_log::METHOD
    {
        return Some(result(req, &served.result(&params(req))));
    }
    if let Call::Single(Item::Request(req)) = &call
        && matches!(req.method.as_str(), "eth_subscribe" | "eth_unsubscribe")
    {
        if let Some(k) = s.key.as_deref().filter(|k| !k.allows(&req.method)) {
            gw.inner.access.count(Some(k), "method_refused", 1);
            let msg = k.refusal(&req.method);
            return Some(jsonrpc::error_response(req.id.as_deref().unwrap_or(b"null"), METHOD_NOT_FOUND, &msg));
        }
        return Some(if req.method == "eth_subscribe" {
            subscribe(gw, chain, opts, req, subs, served.subscriptions(), out)
        } else {
            unsubscribe(req, subs, &served.subscriptions())
        });
    }
    let id = match &call {
        Call::Single(Item::Request(r)) => Some(r.id.as_deref().unwrap_or(b"null").to_vec()),
        _ => None,
    };
    let d = gw.dispatch_call(chain, call, opts, s.key.as_deref()).await;
    // A WebSocket answer has no headers, and an extra member in a JSON-RPC response breaks
    // strict clients: who served it is kept for `rpcmesh_servedBy` (single requests; a batch's
    // elements under their own ids is not worth the copy), logged and counted, never added.
    let verified = d.verified.map_or("none", |v| v.label());
    if let Some(id) = id {
        served.record(Some(&id), d.served_by.clone(), d.attempts, verified);
    }
    tracing::debug!(
        served_by = %d.served_by.join(","),
        attempts = d.attempts,
        verified,
        "websocket answer"
    );
    d.body
}

fn params(req: &Request) -> Vec<Value> {
    serde_json::from_slice::<Value>(&req.raw)
        .ok()
        .and_then(|v| v.get("params").and_then(Value::as_array).cloned())
        .unwrap_or_default()
}

fn result(req: &Request, value: &Value) -> Bytes {
    let id = req.id.as_deref().unwrap_or(b"null");
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id);
    out.extend_from_slice(b",\"result\":");
    out.extend_from_slice(value.to_string().as_bytes());
    out.push(b'}');
    Bytes::from(out)
}

fn subscribe(
    gw: &Gateway,
    chain: u64,
    opts: RouteOptions,
    req: &Request,
    subs: &mut HashMap<String, JoinHandle<()>>,
    sources: Arc<SubscriptionSources>,
    out: &Outbox,
) -> Bytes {
    let id = req.id.as_deref().unwrap_or(b"null");
    let p = params(req);
    let kind = p.first().and_then(Value::as_str).unwrap_or("");
    if subs.len() >= MAX_SUBSCRIPTIONS {
        return jsonrpc::error_response(
            id,
            LIMIT_EXCEEDED,
            &format!("at most {MAX_SUBSCRIPTIONS} subscriptions per connection"),
        );
    }
    let sub_id = format!("0x{:016x}", NEXT_SUB.fetch_add(1, Ordering::Relaxed) ^ 0x9e37_79b9_7f4a_7c15);
    let poller = Poller { gw: gw.clone(), chain, opts, sub_id: sub_id.clone(), out: out.clone(), sources };
    let handle = match kind {
        "newHeads" => tokio::spawn(poller.run(Feed::Heads)),
        "logs" => {
            let filter = p.get(1).cloned().unwrap_or_else(|| json!({}));
            if !filter.is_object() {
                return jsonrpc::error_response(id, INVALID_PARAMS, "logs subscription filter must be an object");
            }
            tokio::spawn(poller.run(Feed::Logs(filter)))
        }
        // `true` (geth's and anvil's extension, which web3.py's subscription manager uses): full
        // transaction objects instead of hashes.
        "newPendingTransactions" => {
            let full = match p.get(1) {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return jsonrpc::error_response(
                        id,
                        INVALID_PARAMS,
                        "newPendingTransactions takes an optional boolean (true: full transactions)",
                    );
                }
            };
            tokio::spawn(poller.run_pending(full))
        }
        other => {
            return jsonrpc::error_response(
                id,
                INVALID_PARAMS,
                &format!("unknown subscription {other:?}; use newHeads, logs or newPendingTransactions"),
            );
        }
    };
    subs.insert(sub_id.clone(), handle);
    result(req, &Value::String(sub_id))
}

fn unsubscribe(req: &Request, subs: &mut HashMap<String, JoinHandle<()>>, sources: &SubscriptionSources) -> Bytes {
    let p = params(req);
    let sub = p.first().and_then(Value::as_str);
    let removed = sub.and_then(|s| subs.remove(s)).map(|h| h.abort()).is_some();
    if let Some(s) = sub.filter(|_| removed) {
        sources.forget(s);
    }
    result(req, &Value::Bool(removed))
}

enum Feed {
    Heads,
    Logs(Value),
}

struct Poller {
    gw: Gateway,
    chain: u64,
    opts: RouteOptions,
    sub_id: String,
    out: Outbox,
    /// Where the provider of each poll is recorded for `rpcmesh_servedBy`.
    sources: Arc<SubscriptionSources>,
}

impl Poller {
    async fn call(&self, method: &str, params: Value) -> Option<Value> {
        let req = Request::internal(method, &params.to_string());
        let routed = self.gw.inner.router.route(self.chain, &req, &self.opts).await;
        if let Some(by) = &routed.served_by {
            self.sources.record(&self.sub_id, by.clone());
        }
        let mut v: Value = serde_json::from_slice(&routed.body).ok()?;
        v.get_mut("result").map(Value::take).filter(|r| !r.is_null())
    }

    async fn notify(&self, result: Value) -> bool {
        let msg = json!({ "jsonrpc": "2.0", "method": "eth_subscription", "params": { "subscription": self.sub_id, "result": result } });
        self.out.send(Bytes::from(msg.to_string())).await
    }

    /// Calls `method` on exactly `target`; `Err` when the target failed or answered an error.
    async fn call_on(&self, target: &Target, method: &str, params: Value) -> Result<Value, String> {
        let req = Request::internal(method, &params.to_string());
        let body = self
            .gw
            .inner
            .router
            .call_target(self.chain, *target, &req, VerifyMode::Off)
            .await
            .map_err(|e| e.to_string())?;
        self.sources.record(&self.sub_id, self.gw.inner.router.served_by(self.chain, *target));
        let mut v: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        if let Some(e) = v.get("error") {
            return Err(format!("error {e}"));
        }
        v.get_mut("result").map(Value::take).ok_or_else(|| "no result".to_string())
    }

    /// Pending transaction hashes (or, `full`, the transactions themselves, read from the same
    /// provider) from a filter on one provider, moved to another when it fails.
    async fn run_pending(self, full: bool) {
        let mut filter: Option<(Target, String)> = None;
        let mut failed: Vec<Target> = Vec::new();
        let mut sent: VecDeque<String> = VecDeque::new();
        let mut sent_set: HashSet<String> = HashSet::new();
        let mut ticker = tokio::time::interval(POLL_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if filter.is_none() {
                let router = &self.gw.inner.router;
                let target = router
                    .best_target(self.chain, "eth_newPendingTransactionFilter", self.opts.failover, &failed)
                    .or_else(|| {
                        failed.clear();
                        router.best_target(self.chain, "eth_newPendingTransactionFilter", self.opts.failover, &[])
                    });
                let Some(target) = target else { continue };
                match self.call_on(&target, "eth_newPendingTransactionFilter", json!([])).await {
                    Ok(Value::String(id)) => filter = Some((target, id)),
                    _ => {
                        failed.push(target);
                        continue;
                    }
                }
            }
            let Some((target, id)) = filter.clone() else { continue };
            match self.call_on(&target, "eth_getFilterChanges", json!([id])).await {
                Ok(Value::Array(hashes)) => {
                    for h in hashes {
                        let Some(h) = h.as_str().map(str::to_string) else { continue };
                        if !sent_set.insert(h.clone()) {
                            continue;
                        }
                        let item = if full {
                            // A transaction gone from the pool before it was read is skipped, as
                            // a node's own full subscription would not have seen it either.
                            match self.call_on(&target, "eth_getTransactionByHash", json!([h])).await {
                                Ok(tx) if tx.is_object() => tx,
                                _ => continue,
                            }
                        } else {
                            Value::String(h.clone())
                        };
                        if !self.notify(item).await {
                            return;
                        }
                        sent.push_back(h);
                        if sent.len() > PENDING_DEDUP
                            && let Some(old) = sent.pop_front()
                        {
                            sent_set.remove(&old);
                        }
                    }
                }
                _ => {
                    // The provider failed or forgot the filter: make one elsewhere.
                    failed.push(target);
                    filter = None;
                }
            }
        }
    }

    async fn block(&self, n: u64) -> Option<Value> {
        self.call("eth_getBlockByNumber", json!([format!("0x{n:x}"), false])).await
    }

    async fn run(self, feed: Feed) {
        let mut last: Option<(u64, String)> = None;
        let mut recent: VecDeque<String> = VecDeque::new();
        let mut ticker = tokio::time::interval(POLL_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(latest) = self.call("eth_getBlockByNumber", json!(["latest", false])).await else { continue };
            let Some(n) = latest.get("number").and_then(quantity) else { continue };
            let hash = latest.get("hash").and_then(Value::as_str).unwrap_or_default().to_string();
            let from = match &last {
                None => n,
                Some((ln, lh)) if n == *ln && hash == *lh => continue,
                // Behind what we already sent (a lagging provider answered): wait for a fresher one.
                Some((ln, _)) if n < *ln => continue,
                Some((ln, _)) if n == *ln => n, // same height, new hash: a reorg
                Some((ln, _)) => (ln + 1).max(n.saturating_sub(MAX_BACKFILL - 1)),
            };
            match &feed {
                Feed::Heads => {
                    for k in from..=n {
                        let block = if k == n { Some(latest.clone()) } else { self.block(k).await };
                        let Some(block) = block else { break };
                        let h = block.get("hash").and_then(Value::as_str).unwrap_or_default().to_string();
                        if recent.contains(&h) {
                            continue;
                        }
                        if !self.notify(header(block)).await {
                            return;
                        }
                        recent.push_back(h);
                        if recent.len() > 2 * MAX_BACKFILL as usize {
                            recent.pop_front();
                        }
                    }
                }
                Feed::Logs(filter) => {
                    let mut f = filter.clone();
                    if let Some(obj) = f.as_object_mut() {
                        obj.remove("fromBlock");
                        obj.remove("toBlock");
                        obj.remove("blockHash");
                        obj.insert("fromBlock".into(), json!(format!("0x{from:x}")));
                        obj.insert("toBlock".into(), json!(format!("0x{n:x}")));
                    }
                    let Some(logs) = self.call("eth_getLogs", json!([f])).await else { continue };
                    for log in logs.as_array().cloned().unwrap_or_default() {
                        if !self.notify(log).await {
                            return;
                        }
                    }
                }
            }
            last = Some((n, hash));
        }
    }
}

fn quantity(v: &Value) -> Option<u64> {
    u64::from_str_radix(v.as_str()?.strip_prefix("0x")?, 16).ok()
}

/// A block as a `newHeads` header: the block without its body fields.
fn header(mut block: Value) -> Value {
    if let Some(obj) = block.as_object_mut() {
        for k in ["transactions", "uncles", "size", "totalDifficulty", "withdrawals"] {
            obj.remove(k);
        }
    }
    block
}
