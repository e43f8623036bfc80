//! The composed libp2p behaviour and its configuration: connection limits, identify, ping,
//! Kademlia (private protocol per network, server mode), gossipsub (application validation,
//! peer scoring), the relay request-response protocol, and optional mDNS.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use libp2p::gossipsub::{
    self, MessageAuthenticity, PeerScoreParams, PeerScoreThresholds, TopicScoreParams, ValidationMode,
};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, allow_block_list, connection_limits, identify, kad, mdns, ping, request_response,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::admission::{AdmissionLabels, AdmissionLimits};
use super::codec::{RELAY_PROTOCOLS, RelayCodec};
use super::topics::Topics;

/// Everything the daemon speaks over libp2p.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Peers this node refuses to talk to (operator bans, testnet partitions).
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    /// Caps on pending and established connections, with places kept for bootstrap and trusted
    /// peers (see [`super::admission`]).
    pub admission: super::admission::Behaviour,
    /// Established connections per peer (the other caps are the admission's).
    pub limits: connection_limits::Behaviour,
    /// Exchanges listen addresses and the network's protocol version.
    pub identify: identify::Behaviour,
    /// Keeps connections alive and measures RTT.
    pub ping: ping::Behaviour,
    /// Peer discovery beyond the bootstrap peers.
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    /// Announcements and attestations.
    pub gossipsub: gossipsub::Behaviour,
    /// Relays (and peer probes).
    pub relay: request_response::Behaviour<RelayCodec>,
    /// Long-lived relay streams (`relay::stream`), driven by the requesting and serving tasks
    /// themselves: the swarm only opens and hands over the streams.
    pub streams: libp2p_stream::Behaviour,
    /// Local-network discovery, off unless `p2p.mdns`.
    pub mdns: Toggle<mdns::tokio::Behaviour>,
}

/// Settings the behaviour is built from.
#[derive(Debug, Clone)]
pub struct BehaviourSettings {
    /// Network id (names protocols and topics).
    pub network_id: String,
    /// Total established connections (`p2p.max_connections`).
    pub max_connections: u32,
    /// Established connections per peer.
    pub max_connections_per_peer: u32,
    /// Incoming connections in handshake from addresses not reserved for bootstrap or trusted
    /// peers (`p2p.max_pending_incoming`).
    pub max_pending_incoming: u32,
    /// Incoming connections in handshake from one IP address (`p2p.max_pending_per_ip`).
    pub max_pending_per_ip: u32,
    /// Established incoming connections from peers that are neither bootstrap nor trusted
    /// (`p2p.max_incoming`).
    pub max_incoming: u32,
    /// Peers always admitted, evicting others if need be (`trust.peers`; bootstrap peers are
    /// added from the bootstrap addresses). Trusted peers learned later come from the mesh view.
    pub reserved_peers: Vec<PeerId>,
    /// Largest gossip message, bytes.
    pub max_gossip_bytes: usize,
    /// Largest relay frame, bytes.
    pub max_relay_frame_bytes: usize,
    /// Relay stream timeout (upper bound; callers enforce their own deadlines).
    pub relay_timeout: Duration,
    /// Enable mDNS.
    pub mdns: bool,
    /// Software version for identify.
    pub agent_version: String,
}

// Gossipsub parameters, chosen so that a daemon's gossip work does not grow with the number of
// peers it is connected to (docs/architecture.md, "Cost per daemon"). Every daemon of a local
// mesh ends up connected to every other (probes rotate through all of them and connections
// idle for minutes), so any parameter proportional to the peer count is proportional to N.

/// Period of libp2p pings on each connection. They only feed the RTT metric (a dead peer is
/// found by our own probes and by gossipsub's scoring), and every daemon pings every peer it is
/// connected to, so the period sets an O(N) cost: 30 s rather than libp2p's 15 s halves it.
pub const PING_INTERVAL: Duration = Duration::from_secs(30);

/// Gossipsub heartbeat: mesh maintenance and IHAVE emission (libp2p's default). Each heartbeat
/// refreshes the score of every connected peer, O(N) per daemon; at 700 ms the heartbeat and
/// its score reports took about 7 % of an idle daemon's CPU in a mesh of 100 (`perf record
/// -p`), for a recovery of missed messages only 0.3 s quicker (delivery is the mesh's push).
pub const GOSSIP_HEARTBEAT: Duration = Duration::from_secs(1);
/// Mesh degree D and its bounds (libp2p's defaults, 6 / 5 / 12): each message crosses each mesh
/// link about once, so a daemon receives about D copies of every message and a message reaches
/// N daemons in about log_D(N) hops (3 hops for 100 daemons, 6 for 10 000).
pub const GOSSIP_MESH_N: usize = 6;
/// Below this many mesh peers a daemon grafts more at its heartbeat.
pub const GOSSIP_MESH_N_LOW: usize = 5;
/// Above this many mesh peers a daemon prunes; it refuses grafts beyond it.
pub const GOSSIP_MESH_N_HIGH: usize = 12;
/// Peers outside the mesh sent IHAVE per heartbeat and topic: a constant. libp2p's default
/// gossip factor (0.25 of all non-mesh peers) would send each heartbeat's message ids to a
/// quarter of the mesh: O(N) control messages per daemon per heartbeat, O(N^2) in the mesh.
pub const GOSSIP_LAZY: usize = 6;
/// IDONTWANT (gossipsub 1.2) is sent to every mesh peer for messages above this size. Ours
/// are a few KiB at most and, on the links they travel, an IDONTWANT costs about as much as
/// the duplicate it would save; above this size (evidence bundles) it pays.
const IDONTWANT_MIN_BYTES: usize = 16 * 1024;
/// Share of the non-mesh peers sent IHAVE per heartbeat beyond `GOSSIP_LAZY`: none (see above).
pub const GOSSIP_FACTOR: f64 = 0.0;
/// Whether the publisher of a message sends it to every subscribed peer rather than its mesh:
/// no, that costs it one send per connected peer, O(N).
pub const GOSSIP_FLOOD_PUBLISH: bool = false;
/// Heartbeats during which a message's id is gossiped (libp2p's default).
pub const GOSSIP_HISTORY: usize = 3;

/// The identify protocol version: peers with another one are on another network.
pub fn protocol_version(network_id: &str) -> String {
    format!("/rpcmesh/{network_id}/1")
}

/// Gossipsub peer-score thresholds. A peer below `graylist_threshold` has everything it sends
/// ignored; one invalid message costs 10 points, squared by count, so three in quick
/// succession graylist a peer and the penalty decays over about a minute.
pub fn score_thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -50.0,
        graylist_threshold: -80.0,
        accept_px_threshold: 10.0,
        opportunistic_graft_threshold: 5.0,
    }
}

fn score_params(topics: &Topics) -> PeerScoreParams {
    let mut params = PeerScoreParams {
        // Every daemon of a local testnet shares 127.0.0.1; co-location is not Sybil evidence there.
        ip_colocation_factor_whitelist: HashSet::from([
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]),
        app_specific_weight: 0.0,
        ..PeerScoreParams::default()
    };
    for topic in topics.all() {
        let tp = TopicScoreParams {
            topic_weight: 1.0,
            time_in_mesh_weight: 0.01,
            time_in_mesh_quantum: Duration::from_secs(1),
            time_in_mesh_cap: 10.0,
            first_message_deliveries_weight: 0.5,
            first_message_deliveries_decay: 0.9,
            first_message_deliveries_cap: 20.0,
            // Our topics carry a few messages per peer per heartbeat: delivery-rate penalties
            // (P3, P3b) would punish honest peers for quiet periods.
            mesh_message_deliveries_weight: 0.0,
            mesh_failure_penalty_weight: 0.0,
            invalid_message_deliveries_weight: -10.0,
            invalid_message_deliveries_decay: 0.97,
            ..TopicScoreParams::default()
        };
        params.topics.insert(topic.hash(), tp);
    }
    params
}

impl Behaviour {
    /// Builds the behaviour for `keypair`, keeping places for the peers of `bootstrap`, and
    /// registering libp2p metrics in `registry`.
    pub fn new(
        keypair: &libp2p::identity::Keypair,
        s: &BehaviourSettings,
        bootstrap: &[Multiaddr],
        topics: &Topics,
        registry: &mut prometheus_client::registry::Registry,
    ) -> Result<Self, String> {
        let peer_id = keypair.public().to_peer_id();
        // Total and pending caps are the admission's: connection_limits would refuse a bootstrap
        // or trusted peer as readily as a stranger.
        let limits = connection_limits::Behaviour::new(
            connection_limits::ConnectionLimits::default()
                .with_max_established_per_peer(Some(s.max_connections_per_peer)),
        );
        let admission_counter = Family::<AdmissionLabels, Counter>::default();
        registry.sub_registry_with_prefix("rpcmesh").register(
            "p2p_admission",
            "p2p connections refused by cap, admitted as a bootstrap or trusted peer's (reserved), or closed to \
             make room for one (evicted)",
            admission_counter.clone(),
        );
        let admission = super::admission::Behaviour::new(
            AdmissionLimits {
                max_pending_incoming: s.max_pending_incoming as usize,
                max_pending_per_ip: s.max_pending_per_ip as usize,
                max_incoming: s.max_incoming as usize,
                max_established: s.max_connections as usize,
            },
            s.reserved_peers.iter().copied(),
            bootstrap,
            admission_counter,
        );
        let identify = identify::Behaviour::new(
            identify::Config::new(protocol_version(&s.network_id), keypair.public())
                .with_agent_version(s.agent_version.clone())
                .with_push_listen_addr_updates(true),
        );
        let ping = ping::Behaviour::new(ping::Config::new().with_interval(PING_INTERVAL));

        let kad_protocol = StreamProtocol::try_from_owned(format!("/rpcmesh/{}/kad/1", s.network_id))
            .map_err(|e| format!("network id makes an invalid protocol name: {e}"))?;
        let mut kad_cfg = kad::Config::new(kad_protocol);
        kad_cfg.set_periodic_bootstrap_interval(Some(Duration::from_secs(120)));
        kad_cfg.set_query_timeout(Duration::from_secs(30));
        let mut kad = kad::Behaviour::with_config(peer_id, kad::store::MemoryStore::new(peer_id), kad_cfg);
        kad.set_mode(Some(kad::Mode::Server));

        let gossip_cfg = gossipsub::ConfigBuilder::default()
            .validate_messages()
            .validation_mode(ValidationMode::Anonymous)
            // Content-addressed ids: the same signed bytes are one message, whoever forwards them.
            .message_id_fn(|m: &gossipsub::Message| {
                gossipsub::MessageId::from(&rpcmesh_protocol::digest::sha256(&m.data)[..20])
            })
            .max_transmit_size(s.max_gossip_bytes + 1024)
            .heartbeat_interval(GOSSIP_HEARTBEAT)
            .duplicate_cache_time(Duration::from_secs(120))
            .mesh_n(GOSSIP_MESH_N)
            .mesh_n_low(GOSSIP_MESH_N_LOW)
            .mesh_n_high(GOSSIP_MESH_N_HIGH)
            .gossip_lazy(GOSSIP_LAZY)
            .gossip_factor(GOSSIP_FACTOR)
            .history_gossip(GOSSIP_HISTORY)
            .flood_publish(GOSSIP_FLOOD_PUBLISH)
            .idontwant_message_size_threshold(IDONTWANT_MIN_BYTES)
            .build()
            .map_err(|e| format!("gossipsub config: {e}"))?;
        // Messages are signed by the application (ed25519 over the body); a second libp2p
        // signature per message would only cost CPU.
        let mut gossipsub = gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, gossip_cfg)
            .map_err(|e| format!("gossipsub: {e}"))?
            // Gossipsub names its families without a prefix (`topic_msg_*`, `heartbeat_duration`):
            // under `libp2p_gossipsub_` they cannot collide with other exporters' names.
            .with_metrics(registry.sub_registry_with_prefix("libp2p_gossipsub"), gossipsub::MetricsConfig::default());
        gossipsub
            .with_peer_score(score_params(topics), score_thresholds())
            .map_err(|e| format!("peer scoring: {e}"))?;
        for topic in topics.all() {
            gossipsub.subscribe(topic).map_err(|e| format!("subscribe {topic}: {e}"))?;
        }

        let relay = request_response::Behaviour::with_codec(
            RelayCodec { max_frame_bytes: s.max_relay_frame_bytes },
            RELAY_PROTOCOLS.map(|p| (p, request_response::ProtocolSupport::Full)),
            request_response::Config::default().with_request_timeout(s.relay_timeout).with_max_concurrent_streams(1024),
        );

        let mdns = if s.mdns {
            Some(mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id).map_err(|e| format!("mdns: {e}"))?)
        } else {
            None
        };
        Ok(Self {
            blocked: allow_block_list::Behaviour::default(),
            admission,
            limits,
            identify,
            ping,
            kad,
            gossipsub,
            relay,
            streams: libp2p_stream::Behaviour::new(),
            mdns: Toggle::from(mdns),
        })
    }
}
