//! Gossip topic names, derived from the network id so meshes never mix.

use libp2p::gossipsub::{IdentTopic, TopicHash};

/// What a gossip topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicKind {
    /// Signed capacity announcements.
    Announcements,
    /// Signed attestation rounds (one per attester per round, [`AttestationRound`]).
    ///
    /// [`AttestationRound`]: rpcmesh_protocol::messages::AttestationRound
    Attestations,
    /// Reserved for evidence of misbehaviour (receipts of wrong answers); subscribed, unused.
    Evidence,
}

impl TopicKind {
    /// Every kind.
    pub const ALL: [TopicKind; 3] = [TopicKind::Announcements, TopicKind::Attestations, TopicKind::Evidence];

    /// Short label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Announcements => "announcements",
            Self::Attestations => "attestations",
            Self::Evidence => "evidence",
        }
    }

    /// The kind's part of the topic name. Attestations travel as rounds on their own topic
    /// name, so a daemon that still gossips single attestations (`attestations/1`) is not on
    /// it, rather than being scored down for every message.
    fn topic_name(self) -> &'static str {
        match self {
            Self::Attestations => "attestation-rounds",
            other => other.label(),
        }
    }
}

/// The topics of one network.
#[derive(Debug, Clone)]
pub struct Topics {
    topics: [(TopicKind, IdentTopic); 3],
}

impl Topics {
    /// `rpcmesh/<network_id>/<kind>/1` for each kind (`announcements`, `attestation-rounds`,
    /// `evidence`).
    pub fn new(network_id: &str) -> Self {
        let t = |k: TopicKind| (k, IdentTopic::new(format!("rpcmesh/{network_id}/{}/1", k.topic_name())));
        Self { topics: TopicKind::ALL.map(t) }
    }

    /// The topic of a kind.
    pub fn topic(&self, kind: TopicKind) -> &IdentTopic {
        // ALL covers every variant, so the search always succeeds.
        &self.topics.iter().find(|(k, _)| *k == kind).unwrap_or(&self.topics[0]).1
    }

    /// The kind of a received topic, if it is one of ours.
    pub fn kind_of(&self, hash: &TopicHash) -> Option<TopicKind> {
        self.topics.iter().find(|(_, t)| &t.hash() == hash).map(|(k, _)| *k)
    }

    /// All topics.
    pub fn all(&self) -> impl Iterator<Item = &IdentTopic> {
        self.topics.iter().map(|(_, t)| t)
    }
}
