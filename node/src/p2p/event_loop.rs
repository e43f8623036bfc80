//! [`P2pEventLoop`]: the one task that owns the libp2p `Swarm`.
//!
//! It validates gossip inline (decode, signature, header, limits, seq: microseconds, pure) and
//! reports every verdict to gossipsub, so only valid messages propagate and invalid senders
//! lose score. Accepted messages go to the node with `try_send`: the loop never waits on a
//! consumer; if the node is saturated the message is `Ignore`d and counted. Inbound relays
//! go to the relay server the same way (full: answered `Busy` at once).
//!
//! Cancel-safety: the `select!` arms are a command receive, a swarm event, a timer tick and
//! the cancellation token; all are cancel-safe.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use libp2p::gossipsub::{self, MessageAcceptance};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, identify, kad, mdns};
use rpcmesh_protocol::messages::{AttestationRound, CapacityAnnouncement, MessageHeader, RelayResponse, RelayStatus};
use rpcmesh_protocol::replay::SeqTracker;
use rpcmesh_protocol::validate::{
    Limits, ValidationContext, ValidationError, Verdict, Verified, decode_and_validate, validate_header,
};
use rpcmesh_protocol::{Identity, PublicKey};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::behaviour::{Behaviour, BehaviourEvent, BehaviourSettings, protocol_version};
use super::handle::{Command, P2pError, P2pHandle, P2pStatus};
use super::topics::{TopicKind, Topics};
use super::transport::{self, is_dialable, is_loopback};
use crate::clock::now_ms;
use crate::metrics::NodeMetrics;

/// Signers whose last `seq` is remembered, per kind.
const SEQ_TRACKER_CAPACITY: usize = 100_000;
/// Bound of the command channel.
const COMMAND_QUEUE: usize = 1024;
/// Stored peers dialled at start.
const MAX_INITIAL_DIALS: usize = 16;
/// First reconnect delay towards a bootstrap peer.
const BOOTSTRAP_BACKOFF_MIN: Duration = Duration::from_millis(500);

/// What the swarm tells the node.
#[derive(Debug)]
// Moved once through a bounded channel; the announcement variant is the common one, boxing it
// would add an allocation per message to save a few hundred bytes of queue.
#[allow(clippy::large_enum_variant)]
pub enum P2pEvent {
    /// A valid, fresh capacity announcement.
    Announcement {
        /// The message.
        msg: Verified<CapacityAnnouncement>,
        /// The peer that forwarded it.
        from: PeerId,
        /// When it arrived, Unix ms.
        received_at_ms: u64,
    },
    /// A valid, fresh attestation round (every observation checked, one signature).
    AttestationRound {
        /// The message.
        msg: Verified<AttestationRound>,
        /// The peer that forwarded it.
        from: PeerId,
        /// When it arrived, Unix ms.
        received_at_ms: u64,
    },
    /// First connection to a peer established.
    PeerConnected(PeerId),
    /// Last connection to a peer closed.
    PeerDisconnected(PeerId),
    /// A peer of our network told us its addresses (for the address book).
    PeerIdentified {
        /// The peer.
        peer: PeerId,
        /// Its dialable listen addresses.
        addrs: Vec<Multiaddr>,
    },
}

/// A gossip message handed on before its verdict: the consumer judges it and answers with
/// [`P2pHandle::report_validation`] (within gossipsub's cache window, a few heartbeats). Only the
/// size and the header were checked here.
#[derive(Debug)]
pub struct InboundGossip {
    /// Gossipsub's id of the message (needed for the verdict).
    pub id: gossipsub::MessageId,
    /// The peer that forwarded it (scored by the verdict).
    pub from: PeerId,
    /// The message bytes.
    pub data: Vec<u8>,
    /// When it arrived, Unix ms.
    pub received_at_ms: u64,
}

/// An inbound relay request for the relay server.
#[derive(Debug)]
pub struct InboundRelay {
    /// Requesting peer (authenticated by the connection).
    pub peer: PeerId,
    /// Encoded `RelayRequest`.
    pub request: Vec<u8>,
    /// Where the answer goes (via [`P2pHandle::respond`]).
    pub channel: ResponseChannel<Vec<u8>>,
}

/// Everything the event loop needs.
#[derive(Debug, Clone)]
pub struct P2pSettings {
    /// Behaviour settings.
    pub behaviour: BehaviourSettings,
    /// Listen addresses.
    pub listen: Vec<Multiaddr>,
    /// Bootstrap peers (re-dialled with backoff while disconnected).
    pub bootstrap: Vec<Multiaddr>,
    /// Addresses to announce in addition to confirmed ones.
    pub external: Vec<Multiaddr>,
    /// Refuse every non-loopback address.
    pub loopback_only: bool,
    /// Idle connection timeout.
    pub idle_timeout: Duration,
    /// Longest reconnect backoff towards bootstrap peers.
    pub backoff_max: Duration,
    /// Protocol limits used to validate gossip.
    pub limits: Limits,
    /// Peers from the stored address book, most recent first.
    pub initial_peers: Vec<(PeerId, Vec<Multiaddr>)>,
    /// Last accepted announcement `seq` per provider, from the store.
    pub initial_seqs: Vec<(PublicKey, u64)>,
}

struct BootstrapPeer {
    addr: Multiaddr,
    peer: Option<PeerId>,
    next_attempt: Instant,
    backoff: Duration,
}

/// Owner of the swarm. Run with [`P2pEventLoop::run`].
pub struct P2pEventLoop {
    swarm: Swarm<Behaviour>,
    topics: Topics,
    settings: P2pSettings,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<P2pEvent>,
    inbound_relays: mpsc::Sender<InboundRelay>,
    status: watch::Sender<P2pStatus>,
    metrics: NodeMetrics,
    announcement_seqs: SeqTracker<PublicKey>,
    /// Last round `seq` per attester (a round covers all its subjects and chains).
    attestation_seqs: SeqTracker<PublicKey>,
    pending_relays: HashMap<OutboundRequestId, oneshot::Sender<Result<Vec<u8>, P2pError>>>,
    bootstrap: Vec<BootstrapPeer>,
    rediscovery: super::rediscovery::Rediscovery,
    connected: HashSet<PeerId>,
    announcement_subscriptions: u64,
    libp2p_metrics: libp2p::metrics::Metrics,
    /// Where evidence goes to be judged; without a consumer the topic is ignored.
    evidence: Option<mpsc::Sender<InboundGossip>>,
}

/// Builds the swarm and its loop. The loop does nothing until [`P2pEventLoop::run`].
pub fn build(
    identity: &Identity,
    settings: P2pSettings,
    events: mpsc::Sender<P2pEvent>,
    inbound_relays: mpsc::Sender<InboundRelay>,
    metrics: NodeMetrics,
    registry: &mut prometheus_client::registry::Registry,
) -> Result<(P2pHandle, P2pEventLoop), String> {
    let keypair = identity.to_libp2p_keypair();
    let peer_id = keypair.public().to_peer_id();
    let topics = Topics::new(&settings.behaviour.network_id);
    let transport =
        transport::build(&keypair, settings.loopback_only, registry).map_err(|e| format!("transport: {e}"))?;
    let behaviour = Behaviour::new(&keypair, &settings.behaviour, &settings.bootstrap, &topics, registry)?;
    let streams = super::handle::StreamControl(behaviour.streams.new_control());
    let libp2p_metrics = libp2p::metrics::Metrics::new(registry);
    let swarm = Swarm::new(
        transport,
        behaviour,
        peer_id,
        libp2p::swarm::Config::with_tokio_executor()
            .with_idle_connection_timeout(settings.idle_timeout)
            // A stream for a single protocol (every relay opens one) carries its first frame
            // with the protocol proposal instead of waiting a round trip for the
            // acceptance. Peers are rpcmesh daemons speaking the same protocols; a refusal still
            // fails the stream, as it would have.
            .with_substream_upgrade_protocol_override(libp2p::core::upgrade::Version::V1Lazy),
    );
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let (status_tx, status_rx) = watch::channel(P2pStatus::default());
    let mut announcement_seqs = SeqTracker::new(SEQ_TRACKER_CAPACITY);
    for (key, seq) in &settings.initial_seqs {
        announcement_seqs.accept(*key, *seq);
    }
    let now = Instant::now();
    let bootstrap = settings
        .bootstrap
        .iter()
        .map(|addr| BootstrapPeer {
            peer: peer_of(addr),
            addr: addr.clone(),
            next_attempt: now,
            backoff: BOOTSTRAP_BACKOFF_MIN,
        })
        .collect();
    let event_loop = P2pEventLoop {
        swarm,
        topics,
        settings,
        commands: rx,
        events,
        inbound_relays,
        status: status_tx,
        metrics,
        announcement_seqs,
        attestation_seqs: SeqTracker::new(SEQ_TRACKER_CAPACITY),
        pending_relays: HashMap::new(),
        bootstrap,
        rediscovery: Default::default(),
        connected: HashSet::new(),
        announcement_subscriptions: 0,
        libp2p_metrics,
        evidence: None,
    };
    Ok((P2pHandle::new(peer_id, tx, status_rx, streams), event_loop))
}

fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

impl P2pEventLoop {
    /// Hands evidence-topic messages to `consumer` (after the cheap checks: size and header),
    /// which must report each verdict with [`P2pHandle::report_validation`]. Without one, the
    /// topic is ignored.
    pub fn with_evidence(mut self, consumer: mpsc::Sender<InboundGossip>) -> Self {
        self.evidence = Some(consumer);
        self
    }

    fn allowed(&self, addr: &Multiaddr) -> bool {
        is_dialable(addr) && (!self.settings.loopback_only || is_loopback(addr))
    }

    /// Starts listening and dialling; fails if no listen address could be bound.
    fn start(&mut self) -> Result<(), String> {
        let mut listening = 0;
        for addr in self.settings.listen.clone() {
            match self.swarm.listen_on(addr.clone()) {
                Ok(_) => listening += 1,
                Err(e) => tracing::warn!(%addr, error = %e, "cannot listen"),
            }
        }
        if listening == 0 && !self.settings.listen.is_empty() {
            return Err("could not listen on any p2p.listen address".into());
        }
        for addr in self.settings.external.clone() {
            if self.allowed(&addr) {
                self.swarm.add_external_address(addr);
            }
        }
        let initial: Vec<_> = self.settings.initial_peers.iter().take(MAX_INITIAL_DIALS).cloned().collect();
        for (peer, addrs) in initial {
            let allowed: Vec<Multiaddr> = addrs.into_iter().filter(|a| self.allowed(a)).collect();
            for addr in allowed {
                self.swarm.behaviour_mut().kad.add_address(&peer, addr);
            }
            let _ = self.swarm.dial(peer);
        }
        self.publish_status();
        Ok(())
    }

    /// Runs until `cancel` fires or every handle is dropped.
    pub async fn run(mut self, cancel: CancellationToken) -> Result<(), String> {
        self.start()?;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => break,
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = tick.tick() => {
                    self.redial_bootstrap();
                    if !self.connected.is_empty() && self.rediscovery.due(Instant::now()) {
                        let _ = self.swarm.behaviour_mut().kad.bootstrap();
                    }
                }
            }
        }
        for (_, reply) in self.pending_relays.drain() {
            let _ = reply.send(Err(P2pError::Shutdown));
        }
        Ok(())
    }

    fn redial_bootstrap(&mut self) {
        let now = Instant::now();
        let mut to_dial = Vec::new();
        for b in &mut self.bootstrap {
            let connected = b.peer.is_some_and(|p| self.connected.contains(&p));
            let blocked = b.peer.is_some_and(|p| self.swarm.behaviour().blocked.blocked_peers().contains(&p));
            if connected || blocked || now < b.next_attempt {
                continue;
            }
            b.next_attempt = now + b.backoff;
            b.backoff = (b.backoff * 2).min(self.settings.backoff_max.max(BOOTSTRAP_BACKOFF_MIN));
            to_dial.push(b.addr.clone());
        }
        for addr in to_dial {
            if !self.allowed(&addr) {
                tracing::warn!(%addr, "bootstrap address not allowed (p2p.loopback_only or undialable)");
                continue;
            }
            if let Some(peer) = peer_of(&addr) {
                self.swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
            }
            if let Err(e) = self.swarm.dial(addr.clone()) {
                tracing::debug!(%addr, error = %e, "bootstrap dial failed");
            }
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Publish { kind, data, reply } => {
                let topic = self.topics.topic(kind).clone();
                let result = match self.swarm.behaviour_mut().gossipsub.publish(topic, data) {
                    Ok(_) | Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => Ok(()),
                    Err(gossipsub::PublishError::Duplicate) => Ok(()),
                    Err(e) => Err(P2pError::Publish(e.to_string())),
                };
                if result.is_ok() {
                    self.metrics
                        .gossip_published
                        .get_or_create(&crate::metrics::GossipLabels {
                            kind: kind.label().into(),
                            outcome: "published".into(),
                            reason: String::new(),
                        })
                        .inc();
                }
                let _ = reply.send(result);
            }
            Command::Relay { peer, request, reply } => {
                let id = self.swarm.behaviour_mut().relay.send_request(&peer, request);
                self.pending_relays.insert(id, reply);
            }
            Command::Respond { channel, response } => {
                if self.swarm.behaviour_mut().relay.send_response(channel, response).is_err() {
                    tracing::debug!("relay response dropped: the requester went away");
                }
            }
            Command::Dial { addr } => {
                if self.allowed(&addr) {
                    let _ = self.swarm.dial(addr);
                }
            }
            Command::TopicPeers { kind, reply } => {
                let hash = self.topics.topic(kind).hash();
                let peers = self
                    .swarm
                    .behaviour()
                    .gossipsub
                    .all_peers()
                    .filter(|(_, topics)| topics.contains(&&hash))
                    .map(|(p, _)| *p)
                    .collect();
                let _ = reply.send(peers);
            }
            Command::SetBlocked { peers } => {
                let wanted: HashSet<PeerId> = peers.into_iter().collect();
                let current: Vec<PeerId> = self.swarm.behaviour().blocked.blocked_peers().iter().copied().collect();
                for p in current.iter().filter(|p| !wanted.contains(p)) {
                    self.swarm.behaviour_mut().blocked.unblock_peer(*p);
                }
                for p in wanted {
                    self.swarm.behaviour_mut().blocked.block_peer(p);
                }
                self.publish_status();
            }
            Command::ReportValidation { id, source, acceptance } => self.report(&id, &source, acceptance),
            Command::SetTrusted { peers } => self.swarm.behaviour_mut().admission.set_trusted(peers),
            Command::PeerScores { reply } => {
                let gs = &self.swarm.behaviour().gossipsub;
                let scores = self.connected.iter().filter_map(|p| gs.peer_score(p).map(|s| (*p, s))).collect();
                let _ = reply.send(scores);
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        {
            use libp2p::metrics::Recorder as _;
            match &event {
                SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => self.libp2p_metrics.record(e),
                SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => self.libp2p_metrics.record(e),
                SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => self.libp2p_metrics.record(e),
                _ => {}
            }
            self.libp2p_metrics.record(&event);
        }
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.on_gossip(propagation_source, message_id, message),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { topic, .. }))
                if self.topics.kind_of(&topic) == Some(TopicKind::Announcements) =>
            {
                self.announcement_subscriptions += 1;
                self.publish_status();
            }
            SwarmEvent::Behaviour(BehaviourEvent::Relay(e)) => self.on_relay(e),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                self.on_identify(peer_id, info)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in found {
                    if self.allowed(&addr) {
                        self.swarm.behaviour_mut().kad.add_address(&peer, addr);
                        let _ = self.swarm.dial(peer);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                result: kad::QueryResult::Bootstrap(_),
                stats,
                step,
                ..
            })) if step.last => {
                self.rediscovery.query_done(Instant::now(), stats.num_successes(), self.connected.len());
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::RoutingUpdated { peer, .. }))
                if !self.connected.contains(&peer)
                    && self.connected.len() < self.settings.behaviour.max_connections as usize / 2 =>
            {
                let _ = self.swarm.dial(peer);
            }
            SwarmEvent::ConnectionEstablished { peer_id, num_established, .. } if num_established.get() == 1 => {
                self.connected.insert(peer_id);
                self.metrics.connected_peers.set(self.connected.len() as i64);
                for b in &mut self.bootstrap {
                    if b.peer == Some(peer_id) {
                        b.backoff = BOOTSTRAP_BACKOFF_MIN;
                    }
                }
                if self.connected.len() == 1 {
                    let _ = self.swarm.behaviour_mut().kad.bootstrap();
                }
                self.publish_status();
                let _ = self.events.try_send(P2pEvent::PeerConnected(peer_id));
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                self.connected.remove(&peer_id);
                self.metrics.connected_peers.set(self.connected.len() as i64);
                self.publish_status();
                let _ = self.events.try_send(P2pEvent::PeerDisconnected(peer_id));
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                self.publish_status();
            }
            SwarmEvent::ExternalAddrConfirmed { .. } | SwarmEvent::ExpiredListenAddr { .. } => self.publish_status(),
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(?peer_id, %error, "outgoing connection failed");
            }
            _ => {}
        }
    }

    fn publish_status(&self) {
        let listen: Vec<Multiaddr> = self.swarm.listeners().cloned().collect();
        let mut external: Vec<Multiaddr> = self.swarm.external_addresses().cloned().collect();
        if external.is_empty() {
            external = listen.iter().filter(|a| self.allowed(a)).cloned().collect();
        }
        let connected = self.connected.iter().copied().collect();
        self.status.send_replace(P2pStatus {
            listen_addrs: listen,
            external_addrs: external,
            connected,
            blocked: self.swarm.behaviour().blocked.blocked_peers().iter().copied().collect(),
            announcement_subscriptions: self.announcement_subscriptions,
        });
    }

    fn on_identify(&mut self, peer: PeerId, info: identify::Info) {
        if info.protocol_version != protocol_version(&self.settings.behaviour.network_id) {
            tracing::debug!(%peer, theirs = %info.protocol_version, "peer is on another network; disconnecting");
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        }
        let addrs: Vec<Multiaddr> = info.listen_addrs.into_iter().filter(|a| self.allowed(a)).collect();
        for addr in &addrs {
            self.swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
        }
        if !addrs.is_empty() {
            let _ = self.events.try_send(P2pEvent::PeerIdentified { peer, addrs });
        }
    }

    fn on_relay(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    if let Err(e) = self.inbound_relays.try_send(InboundRelay { peer, request, channel }) {
                        // Saturated: answer at once so the requester fails over without waiting.
                        let (channel, request) = match e {
                            mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r) => {
                                (r.channel, r.request)
                            }
                        };
                        self.metrics.relay("inbound", "busy");
                        let busy = RelayResponse::refusal(
                            &request,
                            &self.settings.behaviour.network_id,
                            RelayStatus::Busy,
                            "relay queue full",
                            now_ms(),
                        );
                        let _ = self.swarm.behaviour_mut().relay.send_response(channel, busy);
                    }
                }
                request_response::Message::Response { request_id, response } => {
                    if let Some(reply) = self.pending_relays.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
                if let Some(reply) = self.pending_relays.remove(&request_id) {
                    let _ = reply.send(Err(P2pError::Relay { peer, reason: error.to_string() }));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound relay failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn on_gossip(&mut self, source: PeerId, id: gossipsub::MessageId, message: gossipsub::Message) {
        let Some(kind) = self.topics.kind_of(&message.topic) else {
            self.report(&id, &source, MessageAcceptance::Reject);
            return;
        };
        let ctx = ValidationContext {
            network_id: self.settings.behaviour.network_id.clone(),
            now_ms: now_ms(),
            limits: self.settings.limits.clone(),
        };
        let received_at_ms = ctx.now_ms;
        let outcome: Result<P2pEvent, ValidationError> = match kind {
            TopicKind::Announcements => {
                decode_and_validate::<CapacityAnnouncement>(&message.data, &ctx).and_then(|msg| {
                    self.announcement_seqs.check(&msg.signer(), msg.body().header.seq)?;
                    Ok(P2pEvent::Announcement { msg, from: source, received_at_ms })
                })
            }
            TopicKind::Attestations => decode_and_validate::<AttestationRound>(&message.data, &ctx).and_then(|msg| {
                self.attestation_seqs.check(&msg.signer(), msg.body().header.seq)?;
                Ok(P2pEvent::AttestationRound { msg, from: source, received_at_ms })
            }),
            TopicKind::Evidence => {
                self.on_evidence(source, id, message.data, &ctx);
                return;
            }
        };
        match outcome {
            Ok(event) => {
                let seq_key = match &event {
                    P2pEvent::Announcement { msg, .. } => Some((msg.signer(), false, msg.body().header.seq)),
                    P2pEvent::AttestationRound { msg, .. } => Some((msg.signer(), true, msg.body().header.seq)),
                    _ => None,
                };
                match self.events.try_send(event) {
                    Ok(()) => {
                        // Record the seq only once the node took the message, so a dropped or
                        // rejected copy cannot burn it.
                        match seq_key {
                            Some((signer, false, seq)) => self.announcement_seqs.accept(signer, seq),
                            Some((signer, true, seq)) => self.attestation_seqs.accept(signer, seq),
                            None => {}
                        }
                        self.metrics.gossip(kind.label(), "accept", "");
                        self.report(&id, &source, MessageAcceptance::Accept);
                    }
                    Err(_) => {
                        self.metrics.gossip(kind.label(), "dropped", "node_busy");
                        self.report(&id, &source, MessageAcceptance::Ignore);
                    }
                }
            }
            Err(e) => {
                let acceptance = match e.verdict() {
                    Verdict::Reject => MessageAcceptance::Reject,
                    Verdict::Ignore | Verdict::Accept => MessageAcceptance::Ignore,
                };
                let outcome = if acceptance == MessageAcceptance::Reject { "reject" } else { "ignore" };
                self.metrics.gossip(kind.label(), outcome, e.code());
                tracing::debug!(%source, kind = kind.label(), error = %e, outcome, "gossip message not accepted");
                self.report(&id, &source, acceptance);
            }
        }
    }

    /// Cheap checks inline (size, header: version, network, lifetime, expiry, skew), the rest in
    /// the consumer. Counted here only when judged here; the consumer counts its own verdicts.
    fn on_evidence(&mut self, source: PeerId, id: gossipsub::MessageId, data: Vec<u8>, ctx: &ValidationContext) {
        let label = TopicKind::Evidence.label();
        let Some(consumer) = self.evidence.clone() else {
            self.metrics.gossip(label, "ignore", "no_consumer");
            self.report(&id, &source, MessageAcceptance::Ignore);
            return;
        };
        let limit = ctx.limits.max_evidence_bytes;
        let checked = if data.len() > limit {
            Err(ValidationError::Oversized { size: data.len(), limit })
        } else {
            rpcmesh_protocol::encoding::from_prefix::<MessageHeader>(&data)
                .map_err(ValidationError::from)
                .and_then(|h| validate_header(&h, ctx, ctx.limits.max_gossip_ttl_ms, 0))
        };
        if let Err(e) = checked {
            let acceptance =
                if e.verdict() == Verdict::Reject { MessageAcceptance::Reject } else { MessageAcceptance::Ignore };
            let outcome = if acceptance == MessageAcceptance::Reject { "reject" } else { "ignore" };
            self.metrics.gossip(label, outcome, e.code());
            self.report(&id, &source, acceptance);
            return;
        }
        let inbound = InboundGossip { id: id.clone(), from: source, data, received_at_ms: ctx.now_ms };
        if consumer.try_send(inbound).is_err() {
            self.metrics.gossip(label, "dropped", "node_busy");
            self.report(&id, &source, MessageAcceptance::Ignore);
        }
    }

    fn report(&mut self, id: &gossipsub::MessageId, source: &PeerId, acceptance: MessageAcceptance) {
        self.swarm.behaviour_mut().gossipsub.report_message_validation_result(id, source, acceptance);
    }
}
