//! An in-process libp2p peer that publishes whatever bytes a test wants on the mesh topics:
//! the same p2p stack as the daemon, driven directly.

use std::time::Duration;

use rpcmesh_node::p2p::{self, BehaviourSettings, P2pHandle, P2pSettings, TopicKind};
use rpcmesh_protocol::messages::{CapacityAnnouncement, ChainCapacity, MessageHeader};
use rpcmesh_protocol::validate::Limits;
use rpcmesh_protocol::{Identity, Signed};
use tokio_util::sync::CancellationToken;

pub struct Attacker {
    pub identity: Identity,
    pub p2p: P2pHandle,
    cancel: CancellationToken,
}

impl Drop for Attacker {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Attacker {
    pub async fn connect(network_id: &str, bootstrap: &str) -> Attacker {
        let identity = Identity::generate();
        let settings = P2pSettings {
            behaviour: BehaviourSettings {
                network_id: network_id.into(),
                // One connection: the attacker talks to its bootstrap peer only, so anything a
                // third node receives was forwarded by that peer.
                max_connections: 1,
                max_connections_per_peer: 1,
                max_pending_incoming: 16,
                max_pending_per_ip: 16,
                max_incoming: 16,
                reserved_peers: vec![],
                max_gossip_bytes: 64 * 1024,
                max_relay_frame_bytes: 1 << 20,
                relay_timeout: Duration::from_secs(5),
                mdns: false,
                agent_version: "attacker".into(),
            },
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
            bootstrap: vec![bootstrap.parse().unwrap()],
            external: vec![],
            loopback_only: true,
            idle_timeout: Duration::from_secs(60),
            backoff_max: Duration::from_secs(1),
            limits: Limits::default(),
            initial_peers: vec![],
            initial_seqs: vec![],
        };
        let (events_tx, mut events_rx) = tokio::sync::mpsc::channel(1024);
        let (relay_tx, mut relay_rx) = tokio::sync::mpsc::channel(16);
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = rpcmesh_node::metrics::NodeMetrics::register(&mut registry);
        let (p2p, event_loop) = p2p::build(&identity, settings, events_tx, relay_tx, metrics, &mut registry).unwrap();
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move { event_loop.run(c).await });
        // Drain what the mesh sends us; the attacker does not care.
        tokio::spawn(async move { while events_rx.recv().await.is_some() {} });
        tokio::spawn(async move { while relay_rx.recv().await.is_some() {} });
        Attacker { identity, p2p, cancel }
    }

    /// An announcement body with our own choice of header fields.
    pub fn announcement(
        network_id: &str,
        seq: u64,
        issued_at_ms: u64,
        ttl_ms: u64,
        version: &str,
    ) -> CapacityAnnouncement {
        CapacityAnnouncement::new(
            MessageHeader::new(network_id, seq, issued_at_ms, ttl_ms),
            vec![ChainCapacity {
                chain_id: 1,
                head: None,
                max_requests_per_sec: 1,
                utilisation_permille: 0,
                max_concurrent_relays: 1,
                archive: false,
                method_groups: vec!["eth".into()],
                policies: vec![],
            }],
            vec![],
            None,
            version.into(),
        )
    }

    pub async fn publish(&self, signed: &Signed<CapacityAnnouncement>) {
        self.p2p.publish(TopicKind::Announcements, signed.to_bytes()).await.unwrap();
    }
}
