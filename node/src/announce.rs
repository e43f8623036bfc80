//! The announcer: publishes this provider's signed [`CapacityAnnouncement`] when something
//! material changes (head bucket, an upstream up or down, utilisation band, addresses) and as
//! a heartbeat. Each announcement expires after `expiry_heartbeats` heartbeats, so a stopped
//! provider drops out of every view on its own.
//!
//! In a mesh larger than `heartbeat × mesh_rate_per_sec` providers the heartbeat stretches
//! ([`stretched`]) and with it the expiry, the head bucket and the least gap between welcomes,
//! so the announcements each daemon verifies per second stay flat as the mesh grows. Changes
//! that decide routing (a head appearing or vanishing, utilisation bands, addresses) are still
//! announced at once; receivers extrapolate the heads of older announcements
//! ([`crate::mesh::MeshState`]).

use std::sync::Arc;
use std::time::Duration;

use rpcmesh_protocol::messages::{BlockRef, CapacityAnnouncement, ChainCapacity, MembershipCert, MessageHeader};
use rpcmesh_protocol::{Identity, Signed};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::clock::{SeqGen, now_ms};
use crate::config::ChainConfig;
use crate::mesh::{MeshInput, MeshSnapshot};
use crate::p2p::{P2pHandle, TopicKind};
use crate::pacer::{Pacer, stretched};
use crate::relay::Capacity;
use crate::upstream::UpstreamSet;

/// Heads are announced when they enter a new bucket of this many blocks (between heartbeats),
/// so a fast chain does not turn every block into a gossip message; routing uses fresher
/// probe data anyway.
pub const HEAD_BUCKET_BLOCKS: u64 = 4;
/// Utilisation bands (permille width) whose crossing is material.
const UTILISATION_BAND: u16 = 250;
/// Spread of heartbeats around their period (±), so restarted meshes do not beat in step.
const HEARTBEAT_JITTER: f64 = 0.1;
/// Least time between announcements triggered by new subscribers.
const MIN_WELCOME_INTERVAL: Duration = Duration::from_millis(250);
/// Software version announced.
pub const SOFTWARE_VERSION: &str = concat!("rpcmesh/", env!("CARGO_PKG_VERSION"));

/// What the announcer needs.
pub struct Announcer {
    /// Signing key.
    pub identity: Arc<Identity>,
    /// Network id.
    pub network_id: String,
    /// Chains served.
    pub chains: Vec<ChainConfig>,
    /// Own upstreams.
    pub upstreams: Arc<UpstreamSet>,
    /// Relay capacity (for utilisation).
    pub capacity: Capacity,
    /// Membership certificate to present.
    pub cert: Option<Signed<MembershipCert>>,
    /// Publishing.
    pub p2p: P2pHandle,
    /// Our own view.
    pub mesh: mpsc::Sender<MeshInput>,
    /// Heartbeat in a mesh of at most `heartbeat × mesh_rate_per_sec` providers.
    pub heartbeat: Duration,
    /// Heartbeats until expiry.
    pub expiry_heartbeats: u32,
    /// Heartbeat announcements the whole mesh may send per second (`announce.mesh_rate_per_sec`).
    pub mesh_rate_per_sec: f64,
    /// The mesh as this node sees it (its size stretches the heartbeat).
    pub view: watch::Receiver<Arc<MeshSnapshot>>,
    /// Sequence numbers.
    pub seq: Arc<SeqGen>,
    /// Declared jurisdiction (`jurisdiction`).
    pub jurisdiction: Option<String>,
}

/// What this node announces that changes (read once, then compared or announced).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Material {
    /// Per chain, in configured order: id, head, utilisation (permille).
    chains: Vec<(u64, Option<BlockRef>, u16)>,
    addrs: Vec<String>,
}

impl Material {
    /// Whether `self` differs materially from `last`: heads count as moved only when they
    /// enter another of `buckets` (a head appearing or vanishing always counts), utilisation
    /// only when it crosses a band.
    fn moved_from(&self, last: &Material, buckets: Buckets) -> bool {
        let bucket = |h: Option<BlockRef>| h.map(|h| h.number.wrapping_add(buckets.phase) / buckets.blocks.max(1));
        self.addrs != last.addrs
            || self.chains.len() != last.chains.len()
            || self.chains.iter().zip(&last.chains).any(|(a, b)| {
                a.0 != b.0 || a.2 / UTILISATION_BAND != b.2 / UTILISATION_BAND || bucket(a.1) != bucket(b.1)
            })
    }
}

/// The head buckets of one provider: `blocks` wide, their edges shifted by `phase` blocks.
///
/// Every provider of a chain follows the same blocks, so with edges at multiples of `blocks`
/// all of them crossed an edge in the same block and announced together: in a mesh of 100 each
/// daemon took 100 announcements (and their copies) within a second every `blocks` blocks, with
/// the machine saturated for seconds and idle in between. A phase drawn from the provider's key
/// spreads the crossings evenly over the bucket; the count per provider is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Buckets {
    blocks: u64,
    phase: u64,
}

impl Buckets {
    /// Buckets of `blocks` with the phase of the provider `key`.
    fn of(key: &rpcmesh_protocol::PublicKey, blocks: u64) -> Buckets {
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&key.0[..8]);
        Buckets { blocks, phase: u64::from_le_bytes(seed) % blocks.max(1) }
    }
}

/// How far the heartbeat is stretched at one moment.
#[derive(Debug, Clone, Copy)]
struct Pace {
    heartbeat: Duration,
    /// `heartbeat` over the configured one, at least 1, rounded up.
    stretch: u32,
}

impl Pace {
    fn head_bucket_blocks(self) -> u64 {
        HEAD_BUCKET_BLOCKS * u64::from(self.stretch)
    }

    /// Least gap between announcements made for newly subscribed peers: a burst of joins
    /// costs one message; in a stretched mesh a quarter heartbeat, so that a mesh-wide join
    /// (every member welcoming every newcomer) stays within a few times the heartbeat budget.
    fn welcome_gap(self) -> Duration {
        if self.stretch <= 1 { MIN_WELCOME_INTERVAL } else { (self.heartbeat / 4).max(MIN_WELCOME_INTERVAL) }
    }
}

impl Announcer {
    fn pace(&self) -> Pace {
        let members = self.view.borrow().mesh_size(self.p2p.connected_count());
        let heartbeat = stretched(self.heartbeat, members, self.mesh_rate_per_sec);
        let stretch = heartbeat.as_secs_f64() / self.heartbeat.as_secs_f64().max(1e-3);
        Pace { heartbeat, stretch: (stretch.ceil() as u32).max(1) }
    }

    /// Reads what changes: cheap, done on every wake-up; an announcement (and its `seq`) is
    /// built only when one is due.
    fn material(&self) -> Material {
        let addrs = self.p2p.status().external_addrs.iter().take(16).map(ToString::to_string).collect();
        let chains = self
            .chains
            .iter()
            .map(|c| (c.id, self.upstreams.head(c.id), self.capacity.utilisation_permille(c.id)))
            .collect();
        Material { chains, addrs }
    }

    fn build(&self, pace: Pace, material: &Material) -> CapacityAnnouncement {
        let chains = self
            .chains
            .iter()
            .zip(&material.chains)
            .map(|(c, &(_, head, utilisation))| ChainCapacity {
                chain_id: c.id,
                head,
                max_requests_per_sec: c.max_requests_per_sec,
                utilisation_permille: utilisation,
                max_concurrent_relays: c.max_concurrent_relays,
                archive: c.archive,
                method_groups: c.method_groups.clone(),
                policies: c.policies.clone(),
            })
            .collect();
        let ttl = pace.heartbeat.as_millis() as u64 * u64::from(self.expiry_heartbeats);
        let header = MessageHeader::new(self.network_id.clone(), self.seq.next(), now_ms(), ttl);
        CapacityAnnouncement::new(header, chains, material.addrs.clone(), self.cert.clone(), SOFTWARE_VERSION.into())
            .with_jurisdiction(self.jurisdiction.clone())
    }

    async fn announce(&self, pace: Pace, material: Material) -> Material {
        let ann = self.build(pace, &material);
        let signed = Signed::sign(ann, &self.identity);
        if let Err(e) = self.p2p.publish(TopicKind::Announcements, signed.to_bytes()).await {
            tracing::warn!(error = %e, "could not publish our announcement");
        }
        let _ = self.mesh.send(crate::mesh::MeshInput::OwnAnnouncement(signed)).await;
        material
    }

    /// Feeds our own upstreams' current heads into our view as observations, so this node's
    /// own entry is as fresh as its upstreams (announced heads move in buckets).
    async fn observe_self(&self) {
        let now = now_ms();
        for c in &self.chains {
            if let Some(u) = self.upstreams.best(c.id) {
                let state = u.state();
                let Some(head) = state.head else { continue };
                let latency_us = state.window.ewma_us().unwrap_or(0);
                let _ = self.mesh.try_send(MeshInput::Probe {
                    key: self.identity.public_key(),
                    chain_id: c.id,
                    latency_us,
                    ok: true,
                    head: Some(head.number),
                    at_ms: now,
                });
            }
        }
    }

    /// Runs until cancelled. `upstream_changed` ticks whenever an upstream's status or head moves.
    pub async fn run(self, mut upstream_changed: watch::Receiver<u64>, cancel: CancellationToken) {
        let mut p2p_status = self.p2p.watch_status();
        let mut heartbeat = Pacer::new(self.heartbeat, HEARTBEAT_JITTER, Duration::ZERO);
        // Utilisation is sampled, not evented: check it a few times per heartbeat.
        let mut sample = tokio::time::interval((self.heartbeat / 5).max(Duration::from_millis(100)));
        let mut pace = self.pace();
        heartbeat.set_period(pace.heartbeat);
        let mut last = self.announce(pace, self.material()).await;
        let mut last_at = tokio::time::Instant::now();
        let mut subscriptions = self.p2p.status().announcement_subscriptions;
        heartbeat.reset();
        loop {
            let mut forced = tokio::select! {
                _ = cancel.cancelled() => return,
                _ = heartbeat.tick() => true,
                r = upstream_changed.changed() => { if r.is_err() { return; } false }
                r = p2p_status.changed() => { if r.is_err() { return; } false }
                _ = sample.tick() => false,
            };
            // A peer just subscribed: tell it who we are now rather than at the next heartbeat.
            // Rate-limited so a burst of joins costs one message, retried by the sampler.
            let subs = p2p_status.borrow().announcement_subscriptions;
            if subs != subscriptions && last_at.elapsed() >= pace.welcome_gap() {
                subscriptions = subs;
                forced = true;
            }
            self.observe_self().await;
            pace = self.pace();
            heartbeat.set_period(pace.heartbeat);
            let now = self.material();
            let buckets = Buckets::of(&self.identity.public_key(), pace.head_bucket_blocks());
            if forced || now.moved_from(&last, buckets) {
                last = self.announce(pace, now).await;
                last_at = tokio::time::Instant::now();
                heartbeat.reset();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn material(head: Option<u64>, band: u16) -> Material {
        let head = head.map(|number| BlockRef { number, hash: [7; 32] });
        Material { chains: vec![(1, head, band * UTILISATION_BAND + 10)], addrs: vec!["/ip4/127.0.0.1/tcp/1".into()] }
    }

    #[test]
    fn heads_move_by_bucket_and_other_changes_at_once() {
        let b = |blocks| Buckets { blocks, phase: 0 };
        let last = material(Some(100), 0);
        assert!(!material(Some(103), 0).moved_from(&last, b(4)), "same bucket of 4");
        assert!(material(Some(104), 0).moved_from(&last, b(4)), "next bucket of 4");
        // A stretched heartbeat widens the bucket: 5 × 4 blocks.
        assert!(!material(Some(119), 0).moved_from(&last, b(20)));
        assert!(material(Some(120), 0).moved_from(&last, b(20)));
        // Whatever the bucket: a head vanishing (upstreams down), a utilisation band, addresses.
        assert!(material(None, 0).moved_from(&last, b(20)));
        assert!(material(Some(100), 1).moved_from(&last, b(20)));
        let mut busier = last.clone();
        busier.chains[0].2 += 100;
        assert!(!busier.moved_from(&last, b(20)), "utilisation within its band");
        let mut moved = material(Some(100), 0);
        moved.addrs.push("/ip4/127.0.0.1/tcp/2".into());
        assert!(moved.moved_from(&last, b(20)));
    }

    #[test]
    fn providers_cross_their_bucket_edges_in_different_blocks() {
        // A phase shifts the edge: with phase 3, 100 + 3 = 103 and 104 + 3 = 107 share a bucket
        // of 4, but 105 + 3 = 108 enters the next one.
        let shifted = Buckets { blocks: 4, phase: 3 };
        let last = material(Some(100), 0);
        assert!(!material(Some(100), 0).moved_from(&last, shifted));
        assert!(material(Some(101), 0).moved_from(&last, shifted), "100 + 3 is the last of its bucket");
        let last = material(Some(101), 0);
        assert!(!material(Some(104), 0).moved_from(&last, shifted));
        assert!(material(Some(105), 0).moved_from(&last, shifted));
        // 100 providers, buckets of 16: their edges land on every phase, no phase has more than
        // a small share of them (uniform keys).
        let mut per_phase = [0u32; 16];
        for i in 0..100u8 {
            let key = rpcmesh_protocol::Identity::from_secret_bytes([i; 32]).public_key();
            let b = Buckets::of(&key, 16);
            assert!(b.phase < 16);
            per_phase[b.phase as usize] += 1;
        }
        assert!(per_phase.iter().filter(|n| **n > 0).count() >= 12, "{per_phase:?}");
        assert!(per_phase.iter().all(|n| *n <= 16), "{per_phase:?}");
    }

    #[test]
    fn a_stretched_pace_widens_the_bucket_and_spaces_welcomes() {
        let base = Pace { heartbeat: Duration::from_secs(2), stretch: 1 };
        assert_eq!((base.head_bucket_blocks(), base.welcome_gap()), (HEAD_BUCKET_BLOCKS, MIN_WELCOME_INTERVAL));
        let large = Pace { heartbeat: Duration::from_secs(20), stretch: 10 };
        assert_eq!(large.head_bucket_blocks(), 10 * HEAD_BUCKET_BLOCKS);
        assert_eq!(large.welcome_gap(), Duration::from_secs(5));
    }
}
