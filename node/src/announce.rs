//! The announcer: publishes this provider's signed [`CapacityAnnouncement`] when something
//! material changes (head bucket, an upstream up or down, utilisation band, addresses) and as
//! a heartbeat. Each announcement expires after `expiry_heartbeats` heartbeats, so a stopped
//! provider drops out of every view on its own.

use std::sync::Arc;
use std::time::Duration;

use rpcmesh_protocol::messages::{BlockRef, CapacityAnnouncement, ChainCapacity, MembershipCert, MessageHeader};
use rpcmesh_protocol::{Identity, Signed};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::clock::{SeqGen, now_ms};
use crate::config::ChainConfig;
use crate::mesh::MeshInput;
use crate::p2p::{P2pHandle, TopicKind};
use crate::pacer::Pacer;
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
    /// Heartbeat.
    pub heartbeat: Duration,
    /// Heartbeats until expiry.
    pub expiry_heartbeats: u32,
    /// Sequence numbers.
    pub seq: Arc<SeqGen>,
    /// Declared jurisdiction (`jurisdiction`).
    pub jurisdiction: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Material {
    chains: Vec<(u64, Option<u64>, u16)>,
    addrs: Vec<String>,
}

impl Announcer {
    fn build(&self) -> (CapacityAnnouncement, Material) {
        let addrs: Vec<String> = self.p2p.status().external_addrs.iter().take(16).map(ToString::to_string).collect();
        let mut material = Material { chains: Vec::new(), addrs: addrs.clone() };
        let chains = self
            .chains
            .iter()
            .map(|c| {
                let head: Option<BlockRef> = self.upstreams.head(c.id);
                let utilisation = self.capacity.utilisation_permille(c.id);
                material.chains.push((
                    c.id,
                    head.map(|h| h.number / HEAD_BUCKET_BLOCKS),
                    utilisation / UTILISATION_BAND,
                ));
                ChainCapacity {
                    chain_id: c.id,
                    head,
                    max_requests_per_sec: c.max_requests_per_sec,
                    utilisation_permille: utilisation,
                    max_concurrent_relays: c.max_concurrent_relays,
                    archive: c.archive,
                    method_groups: c.method_groups.clone(),
                    policies: c.policies.clone(),
                }
            })
            .collect();
        let ttl = self.heartbeat.as_millis() as u64 * u64::from(self.expiry_heartbeats);
        let header = MessageHeader::new(self.network_id.clone(), self.seq.next(), now_ms(), ttl);
        let ann = CapacityAnnouncement::new(header, chains, addrs, self.cert.clone(), SOFTWARE_VERSION.into())
            .with_jurisdiction(self.jurisdiction.clone());
        (ann, material)
    }

    async fn announce(&self) -> Material {
        let (ann, material) = self.build();
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
        let mut last = self.announce().await;
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
            if subs != subscriptions && last_at.elapsed() >= MIN_WELCOME_INTERVAL {
                subscriptions = subs;
                forced = true;
            }
            self.observe_self().await;
            if forced || self.build().1 != last {
                last = self.announce().await;
                last_at = tokio::time::Instant::now();
                heartbeat.reset();
            }
        }
    }
}
