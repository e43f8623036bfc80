//! The provider's own upstream nodes: a pooled client, per-upstream health, and the prober
//! task that keeps that health current.
//!
//! Every call through [`Upstream::forward`] (client traffic, relays) and every probe feeds the
//! same [`LatencyWindow`], so health reflects real traffic, not only probes.

mod client;
mod prober;
mod rpc;
mod window;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Uri;
use rpcmesh_protocol::messages::BlockRef;
use serde::Serialize;

pub use client::{HttpClient, HttpReply, TransportError};
pub use prober::{ProberSettings, run_prober, run_ws_heads};
pub use rpc::{RpcCallError, rpc_call};
pub use window::{LatencyWindow, Sample, WindowStats, percentile};

use crate::clock::now_ms;

/// What an upstream is fit for right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum UpstreamStatus {
    /// Not probed yet.
    Starting,
    /// Answering, on the right chain, synced.
    Healthy,
    /// Answering but still syncing.
    Syncing,
    /// Reports another chain id: never served.
    WrongChain {
        /// The chain id it reported.
        reported: u64,
    },
    /// Not answering.
    Down {
        /// The last error.
        reason: String,
    },
}

impl UpstreamStatus {
    /// Whether requests may be sent to it.
    pub fn is_usable(&self) -> bool {
        matches!(self, Self::Healthy)
    }
}

/// Mutable health of one upstream.
#[derive(Debug, Clone)]
pub struct UpstreamState {
    /// Current status.
    pub status: UpstreamStatus,
    /// Latest head seen.
    pub head: Option<BlockRef>,
    /// When the head last advanced, Unix ms.
    pub head_changed_at_ms: u64,
    /// Recent calls.
    pub window: LatencyWindow,
    /// Failures since the last success.
    pub consecutive_failures: u32,
}

/// One configured upstream node of one chain.
#[derive(Debug)]
pub struct Upstream {
    /// Chain it must serve.
    pub chain_id: u64,
    /// JSON-RPC over HTTP.
    pub http: Uri,
    /// WebSocket URL, if configured.
    pub ws: Option<String>,
    client: HttpClient,
    state: Mutex<UpstreamState>,
}

/// A read-only copy of an upstream's health, for status pages and announcements.
#[derive(Debug, Clone, Serialize)]
pub struct UpstreamReport {
    /// The HTTP URL.
    pub url: String,
    /// Status.
    #[serde(flatten)]
    pub status: UpstreamStatus,
    /// Head block number.
    pub head: Option<u64>,
    /// Head block hash (0x-hex).
    pub head_hash: Option<String>,
    /// Window statistics.
    pub window: WindowStats,
    /// EWMA latency, µs.
    pub ewma_us: Option<u32>,
    /// Failures since the last success.
    pub consecutive_failures: u32,
}

impl Upstream {
    /// An upstream not yet probed.
    pub fn new(chain_id: u64, http: Uri, ws: Option<String>, client: HttpClient, window_ms: u64) -> Self {
        Self {
            chain_id,
            http,
            ws,
            client,
            state: Mutex::new(UpstreamState {
                status: UpstreamStatus::Starting,
                head: None,
                head_changed_at_ms: 0,
                window: LatencyWindow::new(512, window_ms),
                consecutive_failures: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, UpstreamState> {
        // A panic while holding this lock cannot leave the plain-data state inconsistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the current state.
    pub fn state(&self) -> UpstreamState {
        self.lock().clone()
    }

    /// What routing reads per request, in one short lock and without copying the latency window:
    /// whether it may serve, its head number, and its latency estimate (µs).
    pub fn routing_view(&self) -> (bool, Option<u64>, Option<u32>) {
        let s = self.lock();
        (s.status.is_usable(), s.head.map(|h| h.number), s.window.ewma_us())
    }

    /// Current status.
    pub fn status(&self) -> UpstreamStatus {
        self.lock().status.clone()
    }

    /// Latest head.
    pub fn head(&self) -> Option<BlockRef> {
        self.lock().head
    }

    /// Report for status pages.
    pub fn report(&self) -> UpstreamReport {
        let s = self.lock();
        UpstreamReport {
            url: self.http.to_string(),
            status: s.status.clone(),
            head: s.head.map(|h| h.number),
            head_hash: s.head.map(|h| format!("0x{}", hex::encode(h.hash))),
            window: s.window.stats(now_ms()),
            ewma_us: s.window.ewma_us(),
            consecutive_failures: s.consecutive_failures,
        }
    }

    /// Records the outcome of a call made through this upstream.
    pub fn observe(&self, latency: Duration, ok: bool) {
        let mut s = self.lock();
        s.window.record(Sample { at_ms: now_ms(), latency_us: latency.as_micros().min(u32::MAX as u128) as u32, ok });
        if ok {
            s.consecutive_failures = 0;
        } else {
            s.consecutive_failures += 1;
        }
    }

    /// Updates status; returns whether it changed.
    pub(crate) fn set_status(&self, status: UpstreamStatus) -> bool {
        let mut s = self.lock();
        if s.status == status {
            return false;
        }
        s.status = status;
        true
    }

    /// Updates the head; returns whether it changed.
    pub(crate) fn set_head(&self, head: BlockRef) -> bool {
        let mut s = self.lock();
        if s.head == Some(head) {
            return false;
        }
        s.head = Some(head);
        s.head_changed_at_ms = now_ms();
        true
    }

    /// Sends a raw JSON-RPC body and returns the raw answer, recording latency and outcome.
    /// HTTP 5xx and 429 count as failures; the caller decides about JSON-RPC errors inside.
    pub async fn forward(&self, body: Bytes, timeout: Duration) -> Result<HttpReply, TransportError> {
        let start = Instant::now();
        let result = self.client.post_json(&self.http, body, timeout).await;
        let ok = matches!(&result, Ok(r) if r.status < 500 && r.status != 429);
        self.observe(start.elapsed(), ok);
        result
    }

    /// The client, for probe calls that should not count as traffic.
    pub(crate) fn client(&self) -> &HttpClient {
        &self.client
    }
}

/// All upstreams of the daemon, by chain.
#[derive(Debug, Default)]
pub struct UpstreamSet {
    /// `(chain id, its upstreams)` in configuration order.
    pub chains: Vec<(u64, Vec<Arc<Upstream>>)>,
}

impl UpstreamSet {
    /// Upstreams of `chain_id`.
    pub fn for_chain(&self, chain_id: u64) -> &[Arc<Upstream>] {
        self.chains.iter().find(|(id, _)| *id == chain_id).map(|(_, u)| u.as_slice()).unwrap_or(&[])
    }

    /// The best usable upstream of a chain: healthy, highest head, then lowest latency.
    pub fn best(&self, chain_id: u64) -> Option<&Arc<Upstream>> {
        // One short lock per upstream and no copy of its latency window: this runs per relay.
        self.for_chain(chain_id)
            .iter()
            .filter_map(|u| {
                let (usable, head, ewma_us) = u.routing_view();
                usable.then_some((u, (head.unwrap_or(0), std::cmp::Reverse(ewma_us.unwrap_or(u32::MAX)))))
            })
            .max_by_key(|(_, rank)| *rank)
            .map(|(u, _)| u)
    }

    /// The chain's head as the best usable upstream sees it.
    pub fn head(&self, chain_id: u64) -> Option<BlockRef> {
        self.best(chain_id).and_then(|u| u.head())
    }
}
