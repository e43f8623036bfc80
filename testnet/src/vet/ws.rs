//! The WebSocket check: `eth_subscribe("newHeads")` on `--ws`, followed while the load ramp runs
//! and afterwards until [`MIN_HEADS`] heads arrived or the wait ends. Healthy: the subscription is
//! accepted, at least [`MIN_HEADS`] heads arrive, numbers rise by one (no gaps), and each head's
//! `parentHash` is the previous head's `hash`.

use std::time::{Duration, Instant};

use futures::{SinkExt as _, StreamExt as _};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::target::{quantity, redact_url, short};

/// Heads that make the check conclusive.
pub const MIN_HEADS: u64 = 3;
/// Gaps and mismatches listed; more are not listed (the check has failed by then anyway).
const MAX_LISTED: usize = 100;
/// Deadline to connect and have the subscription accepted.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The WebSocket section of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebSocket {
    /// The URL (redacted).
    pub url: String,
    /// Heads received.
    pub heads: u64,
    /// First head number.
    pub first: Option<u64>,
    /// Last head number.
    pub last: Option<u64>,
    /// Jumps in the numbers: `(from, to)` with `to > from + 1`, or going back.
    pub gaps: Vec<(u64, u64)>,
    /// Head numbers whose `parentHash` is not the previous head's hash.
    pub parent_mismatches: Vec<u64>,
    /// Why the subscription failed or ended, if it did.
    pub error: Option<String>,
    /// How long it listened, ms.
    pub listened_ms: u64,
}

impl WebSocket {
    /// Whether the check passed.
    pub fn is_healthy(&self) -> bool {
        self.error.is_none() && self.heads >= MIN_HEADS && self.gaps.is_empty() && self.parent_mismatches.is_empty()
    }

    /// In words.
    pub fn describe(&self) -> String {
        let mut s = format!("{} heads in {} s", self.heads, self.listened_ms / 1000);
        if let (Some(a), Some(b)) = (self.first, self.last) {
            s.push_str(&format!(" (blocks {a}..={b})"));
        }
        if !self.gaps.is_empty() {
            s.push_str(&format!(", {} gaps", self.gaps.len()));
        }
        if !self.parent_mismatches.is_empty() {
            s.push_str(&format!(", {} parent hash mismatches", self.parent_mismatches.len()));
        }
        if self.heads < MIN_HEADS && self.error.is_none() {
            s.push_str(&format!(", fewer than {MIN_HEADS}"));
        }
        if let Some(e) = &self.error {
            s.push_str(&format!("; {e}"));
        }
        s
    }
}

/// Follows newHeads on `url` until `until` passes with enough heads, `give_up` passes, or
/// `cancel`.
pub async fn run(url: &str, until: Instant, give_up: Instant, cancel: &CancellationToken) -> WebSocket {
    let started = Instant::now();
    let mut out = WebSocket {
        url: redact_url(url),
        heads: 0,
        first: None,
        last: None,
        gaps: vec![],
        parent_mismatches: vec![],
        error: None,
        listened_ms: 0,
    };
    let result = tokio::select! {
        () = cancel.cancelled() => Ok(()),
        r = follow(url, until, give_up, &mut out) => r,
    };
    if let Err(e) = result {
        out.error = Some(short(&e, 300));
    }
    out.listened_ms = started.elapsed().as_millis() as u64;
    out
}

async fn follow(url: &str, until: Instant, give_up: Instant, out: &mut WebSocket) -> Result<(), String> {
    let (mut ws, _) = tokio::time::timeout(SUBSCRIBE_TIMEOUT, tokio_tungstenite::connect_async(url))
        .await
        .map_err(|_| "connecting timed out".to_string())?
        .map_err(|e| format!("connecting: {e}"))?;
    ws.send(Message::text(r#"{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}"#))
        .await
        .map_err(|e| e.to_string())?;
    let mut subscribed = false;
    let mut previous: Option<(u64, String)> = None;
    let subscribe_by = Instant::now() + SUBSCRIBE_TIMEOUT;
    loop {
        let enough = out.heads >= MIN_HEADS;
        let deadline = if !subscribed {
            subscribe_by.min(give_up)
        } else if enough {
            until
        } else {
            give_up.max(until)
        };
        let now = Instant::now();
        if now >= deadline {
            if !subscribed {
                return Err("no answer to eth_subscribe".into());
            }
            let _ = ws.close(None).await;
            return Ok(());
        }
        let msg = match tokio::time::timeout(deadline - now, ws.next()).await {
            Err(_) => continue,
            Ok(None) => return Err("the server closed the WebSocket".into()),
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(Some(Ok(m))) => m,
        };
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(_) => return Err("the server closed the WebSocket".into()),
            _ => continue,
        };
        let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else { continue };
        if v.get("id") == Some(&Value::from(1)) {
            if let Some(e) = v.get("error") {
                return Err(format!("eth_subscribe refused: {e}"));
            }
            subscribed = true;
            continue;
        }
        let Some(head) = v.pointer("/params/result") else { continue };
        let (Some(number), Some(hash)) =
            (head.get("number").and_then(quantity), head.get("hash").and_then(Value::as_str))
        else {
            continue;
        };
        subscribed = true;
        out.heads += 1;
        out.first.get_or_insert(number);
        out.last = Some(number);
        if let Some((prev_n, prev_hash)) = &previous {
            let parent_ok =
                head.get("parentHash").and_then(Value::as_str).is_none_or(|p| p.eq_ignore_ascii_case(prev_hash));
            if number != prev_n + 1 {
                if out.gaps.len() < MAX_LISTED {
                    out.gaps.push((*prev_n, number));
                }
            } else if !parent_ok && out.parent_mismatches.len() < MAX_LISTED {
                out.parent_mismatches.push(number);
            }
        }
        previous = Some((number, hash.to_string()));
    }
}
