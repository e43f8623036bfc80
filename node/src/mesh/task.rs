//! [`MeshTask`]: the only writer of the mesh state. It folds p2p events, our own messages and
//! probe results into [`MeshState`], persists what it accepts, and publishes an
//! `Arc<MeshSnapshot>` on a `watch` after each batch of inputs (at most one per
//! [`publish_gap`], which grows with the mesh; a change of standings at once).
//!
//! On start it loads the stored announcements and attestations, so a restarted node serves a
//! warm (source `store`) view before it has reconnected.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use libp2p::PeerId;
use rpcmesh_protocol::messages::{AttestationRound, CapacityAnnouncement};
use rpcmesh_protocol::{PublicKey, Signed};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::state::MeshState;
use super::view::{MeshSnapshot, Source, Standing};
use crate::clock::now_ms;
use crate::metrics::NodeMetrics;
use crate::p2p::P2pEvent;
use crate::store::{PeerRecord, Store};

/// Inputs from this node's own tasks.
#[derive(Debug)]
// Moved once through a bounded channel; the announcement variant is the common one, boxing it
// would add an allocation per message to save a few hundred bytes of queue.
#[allow(clippy::large_enum_variant)]
pub enum MeshInput {
    /// Our own announcement, as just published.
    OwnAnnouncement(Signed<CapacityAnnouncement>),
    /// An attestation round we signed (about ourselves and the peers we probed).
    OwnAttestationRound(Signed<AttestationRound>),
    /// One of our probes of a peer.
    Probe {
        /// Provider probed.
        key: PublicKey,
        /// Chain.
        chain_id: u64,
        /// Round-trip time, µs.
        latency_us: u32,
        /// Whether it answered correctly.
        ok: bool,
        /// Head it reported.
        head: Option<u64>,
        /// When, Unix ms.
        at_ms: u64,
    },
    /// Every provider's cordons and reputation, whole (from the evidence task, on each change).
    Standings(Arc<std::collections::HashMap<PublicKey, super::Standing>>),
}

/// Period of maintenance (expiry, trust re-judging, snapshot refresh).
const MAINTENANCE: Duration = Duration::from_secs(1);
/// Period of store pruning.
const PRUNE_EVERY: u32 = 60;
/// Inputs folded before a snapshot is published, at most.
const MAX_BATCH: usize = 256;
/// Snapshots are published at most once per [`publish_gap`]: a burst of gossip (an attestation
/// round of the whole mesh) becomes one snapshot, not one per message. A change after a quiet gap
/// is published at once, and so is a change of standings (a cordon) whatever the gap: routing
/// around a proven liar is never delayed.
///
/// Building a snapshot costs O(providers) (reference heads, stale views, the list), and in a
/// mesh of N providers routine inputs (announcements, attestation rounds, probes) arrive at a
/// rate that grows with N, so a fixed gap made the snapshots' cost per daemon O(N): 14 % of an
/// idle daemon's CPU in a mesh of 100 (`perf record -p`). The gap grows with the mesh instead
/// ([`PUBLISH_GAP_PER_PROVIDER`] each), which keeps that cost flat: about 25 provider views
/// per 100 ms whatever N. The floor is far below every period that feeds the view (probes 1 s,
/// heartbeats 5 s and more); the ceiling is what the view may lag a routine change by.
const MIN_PUBLISH_GAP: Duration = Duration::from_millis(100);
/// Added to the gap per provider held (see [`MIN_PUBLISH_GAP`]).
const PUBLISH_GAP_PER_PROVIDER: Duration = Duration::from_millis(4);
/// The gap never grows beyond this.
const MAX_PUBLISH_GAP: Duration = Duration::from_secs(1);

/// Least time between two routine snapshots with `providers` in the view.
fn publish_gap(providers: usize) -> Duration {
    PUBLISH_GAP_PER_PROVIDER
        .saturating_mul(providers.min(u32::MAX as usize) as u32)
        .clamp(MIN_PUBLISH_GAP, MAX_PUBLISH_GAP)
}

/// The mesh writer task.
pub struct MeshTask {
    state: MeshState,
    store: Store,
    p2p_events: mpsc::Receiver<P2pEvent>,
    inputs: mpsc::Receiver<MeshInput>,
    snapshot: watch::Sender<Arc<MeshSnapshot>>,
    metrics: NodeMetrics,
}

fn key_of(peer: &PeerId) -> Option<PublicKey> {
    PublicKey::from_peer_id(peer).ok()
}

impl MeshTask {
    /// A task over `state`, loading the store's contents into it at once (so the first snapshot
    /// is already warm).
    pub fn new(
        mut state: MeshState,
        store: Store,
        p2p_events: mpsc::Receiver<P2pEvent>,
        inputs: mpsc::Receiver<MeshInput>,
        metrics: NodeMetrics,
    ) -> (Self, watch::Receiver<Arc<MeshSnapshot>>) {
        match store.announcements() {
            Ok(anns) => {
                for a in anns {
                    let key = a.signer;
                    let received = a.body.header.issued_at_ms;
                    state.apply_announcement(a, received, Source::Store);
                    if let Ok(atts) = store.attestations_about(&key) {
                        for att in atts {
                            state.apply_attestation(&att);
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not load stored announcements; starting with an empty view"),
        }
        match store.attestation_rounds() {
            Ok(rounds) => {
                for r in rounds {
                    state.apply_round(&r);
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not load stored attestation rounds"),
        }
        let now = now_ms();
        // Stored announcements were judged at their issue time; judge trust as of now.
        state.maintain(now);
        let (tx, rx) = watch::channel(Arc::new(state.snapshot(now)));
        metrics.known_providers.set(state.len() as i64);
        (Self { state, store, p2p_events, inputs, snapshot: tx, metrics }, rx)
    }

    /// Replaces the evidence standings and publishes a snapshot with them at once (before the
    /// task runs: restored cordons hold from the daemon's first request).
    pub fn seed_standings(&mut self, standings: Arc<HashMap<PublicKey, Standing>>) {
        self.state.set_standings(standings);
        self.publish();
    }

    /// Last accepted announcement `seq` per provider (to seed replay protection).
    pub fn seqs(&self) -> Vec<(PublicKey, u64)> {
        self.state.seqs()
    }

    /// Runs until cancelled; flushes the store on the way out.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(MAINTENANCE);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks: u32 = 0;
        let mut last_publish = Instant::now();
        let mut pending = false;
        loop {
            let gap = publish_gap(self.state.len());
            let mut urgent = false;
            let changed = tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep_until(last_publish + gap), if pending => false,
                Some(ev) = self.p2p_events.recv() => {
                    let mut changed = self.on_p2p(ev);
                    for _ in 0..MAX_BATCH {
                        match self.p2p_events.try_recv() {
                            Ok(ev) => changed |= self.on_p2p(ev),
                            Err(_) => break,
                        }
                    }
                    changed
                }
                Some(input) = self.inputs.recv() => {
                    urgent |= matches!(input, MeshInput::Standings(_));
                    let mut changed = self.on_input(input);
                    for _ in 0..MAX_BATCH {
                        match self.inputs.try_recv() {
                            Ok(input) => {
                                urgent |= matches!(input, MeshInput::Standings(_));
                                changed |= self.on_input(input);
                            }
                            Err(_) => break,
                        }
                    }
                    changed
                }
                _ = tick.tick() => {
                    ticks = ticks.wrapping_add(1);
                    let now = now_ms();
                    for key in self.state.maintain(now) {
                        let _ = self.store.remove_announcement(&key);
                    }
                    if ticks.is_multiple_of(PRUNE_EVERY) {
                        // Pruning scans the store: off the async threads.
                        let store = self.store.clone();
                        tokio::task::spawn_blocking(move || {
                            if let Err(e) = store.prune(now) {
                                tracing::warn!(error = %e, "store prune failed");
                            }
                        });
                    }
                    true
                }
            };
            if changed || pending {
                if urgent || last_publish.elapsed() >= gap {
                    self.publish();
                    last_publish = Instant::now();
                    pending = false;
                } else {
                    pending = true;
                }
            }
        }
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.flush()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "store flush at shutdown failed"),
            Err(e) => tracing::error!(error = %e, "store flush at shutdown panicked"),
        }
    }

    fn publish(&mut self) {
        self.metrics.known_providers.set(self.state.len() as i64);
        self.snapshot.send_replace(Arc::new(self.state.snapshot(now_ms())));
    }

    fn on_p2p(&mut self, ev: P2pEvent) -> bool {
        match ev {
            P2pEvent::Announcement { msg, received_at_ms, .. } => {
                let signed = msg.into_signed();
                if let Err(e) = self.store.put_announcement(&signed) {
                    tracing::warn!(error = %e, "could not persist an announcement");
                }
                self.state.apply_announcement(signed, received_at_ms, Source::Gossip)
            }
            P2pEvent::AttestationRound { msg, .. } => {
                let signed = msg.into_signed();
                if let Err(e) = self.store.put_attestation_round(&signed) {
                    tracing::warn!(error = %e, "could not persist an attestation round");
                }
                self.state.apply_round(&signed)
            }
            P2pEvent::PeerConnected(peer) => key_of(&peer).is_some_and(|k| self.state.set_connected(k, true)),
            P2pEvent::PeerDisconnected(peer) => key_of(&peer).is_some_and(|k| self.state.set_connected(k, false)),
            P2pEvent::PeerIdentified { peer, addrs } => {
                if let Some(k) = key_of(&peer) {
                    let rec =
                        PeerRecord { addrs: addrs.iter().map(ToString::to_string).collect(), last_seen_ms: now_ms() };
                    if let Err(e) = self.store.put_peer(&k, &rec) {
                        tracing::warn!(error = %e, "could not persist a peer address");
                    }
                }
                false
            }
        }
    }

    fn on_input(&mut self, input: MeshInput) -> bool {
        match input {
            MeshInput::OwnAnnouncement(signed) => {
                if let Err(e) = self.store.put_announcement(&signed) {
                    tracing::warn!(error = %e, "could not persist our announcement");
                }
                self.state.apply_announcement(signed, now_ms(), Source::Local)
            }
            MeshInput::OwnAttestationRound(signed) => {
                if let Err(e) = self.store.put_attestation_round(&signed) {
                    tracing::warn!(error = %e, "could not persist our attestation round");
                }
                self.state.apply_round(&signed)
            }
            MeshInput::Probe { key, chain_id, latency_us, ok, head, at_ms } => {
                self.state.apply_probe(&key, chain_id, latency_us, ok, head, at_ms);
                true
            }
            MeshInput::Standings(standings) => {
                self.state.set_standings(standings);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_publish_gap_grows_with_the_mesh_within_its_bounds() {
        assert_eq!(publish_gap(0), MIN_PUBLISH_GAP);
        assert_eq!(publish_gap(25), MIN_PUBLISH_GAP);
        assert_eq!(publish_gap(100), Duration::from_millis(400));
        assert_eq!(publish_gap(10_000), MAX_PUBLISH_GAP);
        assert_eq!(publish_gap(usize::MAX), MAX_PUBLISH_GAP);
    }
}
