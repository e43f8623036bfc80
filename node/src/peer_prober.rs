//! The peer prober: measures other providers through the relay protocol and signs health
//! attestations about them, and about this node's own upstreams.
//!
//! Probe load is bounded regardless of mesh size: every `peer_interval` each chain gets at
//! most `peer_sample` probes (the least recently probed trusted providers first, so the sample
//! rotates through the mesh). Per node that is `chains × peer_sample / peer_interval` probes
//! per second (1.5/s with defaults), and at most `chains × (2 × peer_sample + 1)` observations
//! per `attest_interval`, whatever the number of providers, all signed and gossiped as one
//! [`AttestationRound`]: one message and one signature per node per round. In a mesh of more
//! than `attest_interval × mesh_rounds_per_sec` providers the period stretches
//! ([`stretched`]), so the rounds each daemon verifies per second stay flat as the mesh grows;
//! each round's lifetime (three periods) tells receivers how long it stays fresh.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rpcmesh_protocol::messages::{AttestationRound, MessageHeader, Observation, RelayStatus};
use rpcmesh_protocol::{Identity, PublicKey, Signed};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::clock::{SeqGen, now_ms};
use crate::mesh::{MeshInput, MeshSnapshot};
use crate::p2p::{P2pHandle, TopicKind};
use crate::pacer::{Pacer, stretched};
use crate::relay::RelayClient;
use crate::upstream::{LatencyWindow, Sample, UpstreamSet};

/// Spread of probe and attestation rounds around their period (±).
const JITTER: f64 = 0.1;

/// JSON-RPC body of a probe.
const PROBE_BODY: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#;

/// Settings of the peer prober.
#[derive(Debug, Clone)]
pub struct PeerProberSettings {
    /// Network id.
    pub network_id: String,
    /// Probe period.
    pub peer_interval: Duration,
    /// Providers probed per chain per period.
    pub peer_sample: usize,
    /// Probe timeout.
    pub timeout: Duration,
    /// Attestation period in a mesh of at most `attest_interval × mesh_rounds_per_sec` providers.
    pub attest_interval: Duration,
    /// Rounds the whole mesh may sign per second (`prober.mesh_rounds_per_sec`).
    pub mesh_rounds_per_sec: f64,
    /// Window summarised per attestation.
    pub window: Duration,
}

struct Series {
    window: LatencyWindow,
    last_probe_ms: u64,
    head: Option<u64>,
}

/// The prober task.
pub struct PeerProber {
    /// Signing key.
    pub identity: Arc<Identity>,
    /// Settings.
    pub settings: PeerProberSettings,
    /// Relays.
    pub relay: RelayClient,
    /// Publishing.
    pub p2p: P2pHandle,
    /// The mesh.
    pub mesh: watch::Receiver<Arc<MeshSnapshot>>,
    /// Results into the mesh.
    pub mesh_tx: mpsc::Sender<MeshInput>,
    /// Own upstreams (self-attestations).
    pub upstreams: Arc<UpstreamSet>,
    /// Attestation sequence numbers.
    pub seq: Arc<SeqGen>,
}

type ProbeResult = (PublicKey, u64, u32, bool, Option<u64>, u64);

fn parse_head(body: &[u8]) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let s = v.get("result")?.as_str()?.strip_prefix("0x")?;
    u64::from_str_radix(s, 16).ok()
}

/// One round of `observations` under one header, or `None` when there is nothing to attest.
/// Beyond what receivers accept in one round (64 chains × 7 could exceed it) the first are
/// kept: `observations` come own upstreams first, then peers most recently probed first.
fn round_of(header: MessageHeader, mut observations: Vec<Observation>) -> Option<AttestationRound> {
    if observations.is_empty() {
        return None;
    }
    observations.truncate(rpcmesh_protocol::validate::Limits::default().max_round_observations);
    Some(AttestationRound { header, observations })
}

impl PeerProber {
    /// Runs until cancelled.
    pub async fn run(self, cancel: CancellationToken) {
        let own = self.identity.public_key();
        let mut series: HashMap<(PublicKey, u64), Series> = HashMap::new();
        let (done_tx, mut done_rx) = mpsc::channel::<ProbeResult>(256);
        let mut probe_tick = Pacer::new(self.settings.peer_interval, JITTER, Duration::ZERO);
        // The first attestation waits for probes to have filled a window.
        let mut attest_tick = Pacer::new(self.settings.attest_interval, JITTER, self.settings.attest_interval / 2);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = probe_tick.tick() => self.launch_probes(own, &mut series, &done_tx),
                Some((key, chain, latency_us, ok, head, at_ms)) = done_rx.recv() => {
                    let window = self.settings.window.as_millis() as u64;
                    let s = series.entry((key, chain)).or_insert_with(|| Series { window: LatencyWindow::new(256, window), last_probe_ms: 0, head: None });
                    s.window.record(Sample { at_ms, latency_us, ok });
                    if head.is_some() {
                        s.head = head;
                    }
                    let _ = self.mesh_tx.try_send(MeshInput::Probe { key, chain_id: chain, latency_us, ok, head, at_ms });
                }
                _ = attest_tick.tick() => {
                    let period = self.attest_period();
                    attest_tick.set_period(period);
                    self.attest(own, &mut series, period).await;
                }
            }
        }
    }

    fn launch_probes(
        &self,
        own: PublicKey,
        series: &mut HashMap<(PublicKey, u64), Series>,
        done: &mpsc::Sender<ProbeResult>,
    ) {
        let snap = self.mesh.borrow().clone();
        let now = now_ms();
        let mut by_chain: HashMap<u64, Vec<(u64, PublicKey)>> = HashMap::new();
        for p in snap.providers.iter().filter(|p| p.key != own && !p.expired && p.trust.is_trusted()) {
            for c in &p.chains {
                let last = series.get(&(p.key, c.chain_id)).map(|s| s.last_probe_ms).unwrap_or(0);
                by_chain.entry(c.chain_id).or_default().push((last, p.key));
            }
        }
        for (chain, mut candidates) in by_chain {
            candidates.sort_unstable();
            for (_, key) in candidates.into_iter().take(self.settings.peer_sample) {
                let window = self.settings.window.as_millis() as u64;
                series
                    .entry((key, chain))
                    .or_insert_with(|| Series { window: LatencyWindow::new(256, window), last_probe_ms: 0, head: None })
                    .last_probe_ms = now;
                let relay = self.relay.clone();
                let done = done.clone();
                let timeout = self.settings.timeout;
                tokio::spawn(async move {
                    let result = relay.call(key, chain, PROBE_BODY.to_vec(), timeout).await;
                    let at = now_ms();
                    let (latency_us, ok, head) = match result {
                        Ok(o) if o.status == RelayStatus::Ok => {
                            let head = parse_head(&o.body);
                            (o.elapsed.as_micros().min(u32::MAX as u128) as u32, head.is_some(), head)
                        }
                        // A provider that does not trust us refuses our relays: that says nothing
                        // about its health, so it is neither a success nor a failure.
                        Ok(o) if o.status == RelayStatus::Refused => return,
                        Ok(o) => {
                            tracing::debug!(peer = %key.to_peer_id(), chain, status = ?o.status, "peer probe answered without a result");
                            (o.elapsed.as_micros().min(u32::MAX as u128) as u32, false, None)
                        }
                        Err(e) => {
                            tracing::debug!(peer = %key.to_peer_id(), chain, error = %e, "peer probe failed");
                            (timeout.as_micros().min(u32::MAX as u128) as u32, false, None)
                        }
                    };
                    let _ = done.send((key, chain, latency_us, ok, head, at)).await;
                });
            }
        }
    }

    /// The round period for the mesh as it is now.
    fn attest_period(&self) -> Duration {
        let members = self.mesh.borrow().mesh_size(self.p2p.connected_count());
        stretched(self.settings.attest_interval, members, self.settings.mesh_rounds_per_sec)
    }

    async fn attest(&self, own: PublicKey, series: &mut HashMap<(PublicKey, u64), Series>, period: Duration) {
        let now = now_ms();
        let window_ms = self.settings.window.as_millis() as u64;
        let snap = self.mesh.borrow().clone();
        let ttl = (period.as_millis() as u64 * 3).max(1);
        let mut out: Vec<Observation> = Vec::new();
        let per_chain_cap = 2 * self.settings.peer_sample;
        let mut count: HashMap<u64, usize> = HashMap::new();
        // This node's own upstreams first: a round cut to what receivers accept keeps them.
        for (chain, ups) in &self.upstreams.chains {
            let Some(u) = ups.iter().find(|u| u.status().is_usable()).or(ups.first()) else { continue };
            let st = u.state();
            let stats = st.window.stats(now);
            if stats.sent == 0 {
                continue;
            }
            let reference = snap.reference_heads.get(chain).copied();
            out.push(observation(own, *chain, stats, st.head.map(|h| h.number), reference, now, window_ms));
        }
        // Most recently probed first, so the cap keeps the freshest evidence.
        let mut keys: Vec<_> = series
            .iter()
            .filter(|(_, s)| now.saturating_sub(s.last_probe_ms) <= window_ms)
            .map(|(k, s)| (*k, s.last_probe_ms))
            .collect();
        keys.sort_by_key(|(k, last)| (std::cmp::Reverse(*last), *k));
        for ((key, chain), _) in keys {
            let n = count.entry(chain).or_default();
            if *n >= per_chain_cap {
                continue;
            }
            let Some(s) = series.get(&(key, chain)) else { continue };
            let stats = s.window.stats(now);
            if stats.sent == 0 {
                continue;
            }
            *n += 1;
            out.push(observation(key, chain, stats, s.head, snap.reference_heads.get(&chain).copied(), now, window_ms));
        }
        series.retain(|_, s| now.saturating_sub(s.last_probe_ms) <= window_ms * 2);
        let header = MessageHeader::new(self.settings.network_id.clone(), self.seq.next(), now, ttl);
        let Some(round) = round_of(header, out) else { return };
        let signed = Signed::sign(round, &self.identity);
        if let Err(e) = self.p2p.publish(TopicKind::Attestations, signed.to_bytes()).await {
            tracing::debug!(error = %e, "could not publish an attestation round");
        }
        let _ = self.mesh_tx.send(MeshInput::OwnAttestationRound(signed)).await;
    }
}

/// What this node's probes of `subject` on `chain_id` showed over the window ending `now`.
fn observation(
    subject: PublicKey,
    chain_id: u64,
    stats: crate::upstream::WindowStats,
    observed_head: Option<u64>,
    reference_head: Option<u64>,
    now: u64,
    window_ms: u64,
) -> Observation {
    let head_lag_blocks = match (observed_head, reference_head) {
        (Some(o), Some(r)) => Some(r as i64 - o as i64),
        _ => None,
    };
    Observation {
        subject,
        chain_id,
        window_start_ms: now.saturating_sub(window_ms),
        window_end_ms: now,
        probes_sent: stats.sent,
        probes_ok: stats.ok,
        latency_p50_us: stats.p50_us,
        latency_p95_us: stats.p95_us.max(stats.p50_us),
        observed_head,
        reference_head: head_lag_blocks.and(reference_head),
        head_lag_blocks,
    }
}
