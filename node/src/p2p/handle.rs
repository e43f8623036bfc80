//! [`P2pHandle`]: the clone-able front of the p2p event loop. Every method sends a
//! [`Command`] over a bounded channel; a closed channel means the loop has stopped.

use std::time::Duration;

use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::request_response::ResponseChannel;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot, watch};

use super::topics::TopicKind;

/// Why a p2p operation failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum P2pError {
    /// The event loop has stopped (daemon shutting down).
    #[error("the p2p event loop has stopped")]
    Shutdown,
    /// Publishing failed (no peers on the topic is not an error: see [`P2pHandle::publish`]).
    #[error("publish failed: {0}")]
    Publish(String),
    /// A relay could not be delivered or answered.
    #[error("relay to {peer} failed: {reason}")]
    Relay {
        /// The peer asked.
        peer: PeerId,
        /// What went wrong (dial failure, timeout, connection closed, unsupported protocol).
        reason: String,
    },
    /// The caller's deadline passed first.
    #[error("relay to {0} timed out")]
    Timeout(PeerId),
}

/// Instructions to the event loop.
#[derive(Debug)]
pub enum Command {
    /// Publish signed bytes on a topic.
    Publish {
        /// Topic.
        kind: TopicKind,
        /// The encoded signed message.
        data: Vec<u8>,
        /// Outcome.
        reply: oneshot::Sender<Result<(), P2pError>>,
    },
    /// Send a relay request and await the response bytes.
    Relay {
        /// Serving peer.
        peer: PeerId,
        /// Encoded `RelayRequest`.
        request: Vec<u8>,
        /// Encoded `RelayResponse`, or why not.
        reply: oneshot::Sender<Result<Vec<u8>, P2pError>>,
    },
    /// Answer an inbound relay.
    Respond {
        /// The channel the request came with.
        channel: ResponseChannel<Vec<u8>>,
        /// Encoded `RelayResponse`.
        response: Vec<u8>,
    },
    /// Dial an address.
    Dial {
        /// Address (with `/p2p/<id>` if known).
        addr: Multiaddr,
    },
    /// Peers known to be subscribed to a topic.
    TopicPeers {
        /// Topic.
        kind: TopicKind,
        /// Their PeerIds.
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    /// Replaces the set of blocked peers (connections to them are closed and refused).
    SetBlocked {
        /// The peers.
        peers: Vec<PeerId>,
    },
    /// The verdict on a gossip message the loop handed on unjudged (evidence, whose re-check is
    /// too heavy for the loop). Gossipsub forwards it on `Accept` and lowers `source`'s score on
    /// `Reject`; it holds the message for a few heartbeats only, so a late verdict is dropped.
    ReportValidation {
        /// The message.
        id: MessageId,
        /// The peer it came from.
        source: PeerId,
        /// The verdict.
        acceptance: MessageAcceptance,
    },
    /// Replaces the trusted peers (from the mesh view) whose connections are admitted into the
    /// places kept for them, with the addresses they announce.
    SetTrusted {
        /// The peers and their announced listen addresses.
        peers: Vec<(PeerId, Vec<Multiaddr>)>,
    },
    /// Gossipsub scores of connected peers.
    PeerScores {
        /// `(peer, score)` pairs.
        reply: oneshot::Sender<Vec<(PeerId, f64)>>,
    },
}

/// What the node can read about the swarm at any time, without asking the loop.
#[derive(Debug, Clone, Default)]
pub struct P2pStatus {
    /// Addresses the swarm listens on.
    pub listen_addrs: Vec<Multiaddr>,
    /// Addresses confirmed reachable by others, plus configured external ones.
    pub external_addrs: Vec<Multiaddr>,
    /// Peers with at least one established connection.
    pub connected: Vec<PeerId>,
    /// Peers blocked by the operator.
    pub blocked: Vec<PeerId>,
    /// Counts peers subscribing to the announcement topic; the announcer re-announces when it
    /// moves, so a newcomer learns the mesh at once instead of after a heartbeat.
    pub announcement_subscriptions: u64,
}

/// Clone-able front of the p2p event loop.
#[derive(Debug, Clone)]
pub struct P2pHandle {
    local_peer_id: PeerId,
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<P2pStatus>,
    streams: StreamControl,
}

/// Opens and accepts protocol streams without the event loop in the data path
/// (`libp2p_stream::Control`).
#[derive(Clone)]
pub struct StreamControl(pub libp2p_stream::Control);

impl std::fmt::Debug for StreamControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamControl")
    }
}

impl P2pHandle {
    pub(crate) fn new(
        local_peer_id: PeerId,
        commands: mpsc::Sender<Command>,
        status: watch::Receiver<P2pStatus>,
        streams: StreamControl,
    ) -> Self {
        Self { local_peer_id, commands, status, streams }
    }

    /// Opens and accepts streams of our own protocols (the relay streams).
    pub fn stream_control(&self) -> libp2p_stream::Control {
        self.streams.0.clone()
    }

    /// This node's PeerId.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// Current swarm status.
    pub fn status(&self) -> P2pStatus {
        self.status.borrow().clone()
    }

    /// Peers with at least one established connection, without copying the status.
    pub fn connected_count(&self) -> usize {
        self.status.borrow().connected.len()
    }

    /// A receiver that changes whenever the status does.
    pub fn watch_status(&self) -> watch::Receiver<P2pStatus> {
        self.status.clone()
    }

    async fn send(&self, cmd: Command) -> Result<(), P2pError> {
        self.commands.send(cmd).await.map_err(|_| P2pError::Shutdown)
    }

    /// Publishes signed bytes. Having no peer on the topic yet is not an error: the next
    /// heartbeat publishes again.
    pub async fn publish(&self, kind: TopicKind, data: Vec<u8>) -> Result<(), P2pError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Publish { kind, data, reply }).await?;
        rx.await.map_err(|_| P2pError::Shutdown)?
    }

    /// Sends a relay request and waits at most `timeout` for the response bytes.
    pub async fn relay(&self, peer: PeerId, request: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, P2pError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Relay { peer, request, reply }).await?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(P2pError::Shutdown),
            Err(_) => Err(P2pError::Timeout(peer)),
        }
    }

    /// Answers an inbound relay.
    pub async fn respond(&self, channel: ResponseChannel<Vec<u8>>, response: Vec<u8>) -> Result<(), P2pError> {
        self.send(Command::Respond { channel, response }).await
    }

    /// Dials an address.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), P2pError> {
        self.send(Command::Dial { addr }).await
    }

    /// Peers known to be subscribed to a topic (a publish reaches them).
    pub async fn topic_peers(&self, kind: TopicKind) -> Result<Vec<PeerId>, P2pError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::TopicPeers { kind, reply }).await?;
        rx.await.map_err(|_| P2pError::Shutdown)
    }

    /// Blocks exactly `peers` (unblocking any other): their connections are closed and refused.
    pub async fn set_blocked(&self, peers: Vec<PeerId>) -> Result<(), P2pError> {
        self.send(Command::SetBlocked { peers }).await
    }

    /// Keeps places for exactly these trusted `peers` (besides `trust.peers` and the bootstrap
    /// peers, always kept): their connections are admitted over `p2p.max_incoming` and
    /// `p2p.max_pending_incoming`, closing a stranger's when `p2p.max_connections` is reached.
    pub async fn set_trusted(&self, peers: Vec<(PeerId, Vec<Multiaddr>)>) -> Result<(), P2pError> {
        self.send(Command::SetTrusted { peers }).await
    }

    /// Reports the verdict on a message received as [`InboundGossip`](super::InboundGossip).
    pub async fn report_validation(
        &self,
        id: MessageId,
        source: PeerId,
        acceptance: MessageAcceptance,
    ) -> Result<(), P2pError> {
        self.send(Command::ReportValidation { id, source, acceptance }).await
    }

    /// Gossipsub scores of connected peers.
    pub async fn peer_scores(&self) -> Result<Vec<(PeerId, f64)>, P2pError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::PeerScores { reply }).await?;
        rx.await.map_err(|_| P2pError::Shutdown)
    }
}
