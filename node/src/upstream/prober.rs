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
