//! The own-upstream prober: one task per upstream.
//!
//! At start and every [`CHAIN_RECHECK`] it checks `eth_chainId` against the configured chain (a
//! mismatch makes the upstream unusable, loudly). Every interval it reads the latest block
//! (number and hash in one call) and, less often, `eth_syncing`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rpcmesh_protocol::messages::BlockRef;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::rpc::{parse_hash, parse_quantity};
use super::{Upstream, UpstreamStatus, rpc_call};

/// How often the chain id is re-checked (a node behind a load balancer can be swapped).
const CHAIN_RECHECK: Duration = Duration::from_secs(30);
/// `eth_syncing` is asked every this many probes.
const SYNCING_EVERY: u32 = 10;
/// Consecutive failed probes before an upstream is marked down.
const DOWN_AFTER_FAILURES: u32 = 2;

/// Prober timing.
#[derive(Debug, Clone, Copy)]
pub struct ProberSettings {
    /// Time between probes.
    pub interval: Duration,
    /// Timeout of one probe call.
    pub timeout: Duration,
}

/// Probes `upstream` until `cancel` fires; pokes `changed` when status or head changes.
pub async fn run_prober(
    upstream: Arc<Upstream>,
    settings: ProberSettings,
    changed: watch::Sender<u64>,
    cancel: CancellationToken,
) {
    let mut ticker = tokio::time::interval(settings.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_chain_check: Option<Instant> = None;
    let mut n: u32 = 0;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let mut any_change = false;
        if last_chain_check.is_none_or(|t| t.elapsed() >= CHAIN_RECHECK) {
            match check_chain_id(&upstream, settings.timeout).await {
                Ok(true) => last_chain_check = Some(Instant::now()),
                Ok(false) => {
                    last_chain_check = Some(Instant::now());
                    changed.send_modify(|v| *v += 1);
                    continue;
                }
                Err(reason) => {
                    upstream.observe(Duration::ZERO, false);
                    any_change |= fail(&upstream, reason);
                    if any_change {
                        changed.send_modify(|v| *v += 1);
                    }
                    continue;
                }
            }
        }
        if matches!(upstream.status(), UpstreamStatus::WrongChain { .. }) {
            continue;
        }
        n = n.wrapping_add(1);
        let start = Instant::now();
        match latest_block(&upstream, settings.timeout).await {
            Ok(head) => {
                upstream.observe(start.elapsed(), true);
                any_change |= upstream.set_head(head);
                let syncing = if n % SYNCING_EVERY == 1 {
                    is_syncing(&upstream, settings.timeout).await
                } else {
                    matches!(upstream.status(), UpstreamStatus::Syncing)
                };
                let status = if syncing { UpstreamStatus::Syncing } else { UpstreamStatus::Healthy };
                if upstream.set_status(status.clone()) {
                    tracing::info!(upstream = %upstream.http, chain = upstream.chain_id, ?status, "upstream status changed");
                    any_change = true;
                }
            }
            Err(reason) => {
                upstream.observe(start.elapsed(), false);
                any_change |= fail(&upstream, reason);
            }
        }
        if any_change {
            changed.send_modify(|v| *v += 1);
        }
    }
}

/// Marks a failure; after enough in a row the upstream is down. Returns whether status changed.
fn fail(upstream: &Upstream, reason: String) -> bool {
    let failures = upstream.state().consecutive_failures;
    if failures >= DOWN_AFTER_FAILURES || matches!(upstream.status(), UpstreamStatus::Starting) {
        let changed = upstream.set_status(UpstreamStatus::Down { reason: reason.clone() });
        if changed {
            tracing::warn!(upstream = %upstream.http, chain = upstream.chain_id, %reason, "upstream down");
        }
        return changed;
    }
    false
}

/// `Ok(true)` when the chain id matches, `Ok(false)` when it does not (status set).
async fn check_chain_id(upstream: &Upstream, timeout: Duration) -> Result<bool, String> {
    let v = rpc_call(upstream.client(), &upstream.http, "eth_chainId", json!([]), timeout)
        .await
        .map_err(|e| e.to_string())?;
    let reported = parse_quantity(&v).ok_or_else(|| format!("eth_chainId returned {v}"))?;
    if reported != upstream.chain_id {
        if upstream.set_status(UpstreamStatus::WrongChain { reported }) {
            tracing::error!(
                upstream = %upstream.http,
                configured = upstream.chain_id,
                reported,
                "upstream reports a different chain id; it will not be used (fix [[chain]] id or the upstream URL)"
            );
        }
        return Ok(false);
    }
    if matches!(upstream.status(), UpstreamStatus::WrongChain { .. }) {
        upstream.set_status(UpstreamStatus::Starting);
    }
    Ok(true)
}

async fn latest_block(upstream: &Upstream, timeout: Duration) -> Result<BlockRef, String> {
    let v = rpc_call(upstream.client(), &upstream.http, "eth_getBlockByNumber", json!(["latest", false]), timeout)
        .await
        .map_err(|e| e.to_string())?;
    let number = v.get("number").and_then(parse_quantity).ok_or("latest block has no number")?;
    let hash = v.get("hash").and_then(parse_hash).ok_or("latest block has no hash")?;
    Ok(BlockRef { number, hash })
}

async fn is_syncing(upstream: &Upstream, timeout: Duration) -> bool {
    match rpc_call(upstream.client(), &upstream.http, "eth_syncing", json!([]), timeout).await {
        Ok(Value::Bool(b)) => b,
        Ok(Value::Object(_)) => true,
        _ => false,
    }
}

/// Longest wait between reconnects of the `newHeads` subscription.
const WS_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Follows `upstream`'s head over its WebSocket (`eth_subscribe("newHeads")`) when it has
/// one: heads arrive when blocks do instead of at the next poll. The HTTP prober keeps
/// judging health; this only makes the head fresher. Reconnects with backoff until `cancel`.
pub async fn run_ws_heads(upstream: Arc<Upstream>, changed: watch::Sender<u64>, cancel: CancellationToken) {
    let Some(url) = upstream.ws.clone() else { return };
    let mut backoff = Duration::from_millis(500);
    loop {
        let result = tokio::select! {
            _ = cancel.cancelled() => return,
            r = follow_heads(&upstream, &url, &changed) => r,
        };
        if let Err(e) = result {
            tracing::debug!(upstream = %url, error = %e, "newHeads subscription ended; reconnecting");
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(WS_BACKOFF_MAX);
    }
}

async fn follow_heads(upstream: &Upstream, url: &str, changed: &watch::Sender<u64>) -> Result<(), String> {
    use futures::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    let (mut ws, _) = tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(url))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    ws.send(Message::text(r#"{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}"#))
        .await
        .map_err(|e| e.to_string())?;
    while let Some(msg) = ws.next().await {
        let text = match msg.map_err(|e| e.to_string())? {
            Message::Text(t) => t,
            Message::Close(_) => return Err("closed by the upstream".into()),
            _ => continue,
        };
        let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else { continue };
        if let Some(err) = v.get("error") {
            return Err(format!("eth_subscribe refused: {err}"));
        }
        let Some(head) = v.pointer("/params/result") else { continue };
        let (Some(number), Some(hash)) =
            (head.get("number").and_then(parse_quantity), head.get("hash").and_then(parse_hash))
        else {
            continue;
        };
        // Only advance: a lagging notification must not move the head back.
        if upstream.head().is_none_or(|h| number > h.number) && upstream.set_head(BlockRef { number, hash }) {
            changed.send_modify(|v| *v += 1);
        }
    }
    Err("stream ended".into())
}
