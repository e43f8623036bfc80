//! libp2p networking. Only [`P2pEventLoop`] touches the `Swarm`; everything else holds a
//! [`P2pHandle`].
//!
//! Data out: [`P2pEvent`]s (validated gossip, connections, identified addresses),
//! [`InboundRelay`]s, and evidence as [`InboundGossip`] (judged by its consumer, which answers
//! with [`P2pHandle::report_validation`]), all on bounded channels the loop never waits on.

mod admission;
mod behaviour;
mod codec;
pub(crate) use codec::read_len;
mod event_loop;
mod handle;
mod rediscovery;
mod topics;
pub mod transport;

pub use admission::MAX_PENDING_PER_IP;
pub use behaviour::{
    BehaviourSettings, GOSSIP_FACTOR, GOSSIP_FLOOD_PUBLISH, GOSSIP_HEARTBEAT, GOSSIP_HISTORY, GOSSIP_LAZY,
    GOSSIP_MESH_N, GOSSIP_MESH_N_HIGH, GOSSIP_MESH_N_LOW, protocol_version, score_thresholds,
};
pub use codec::{RELAY_PROTOCOL, RELAY_PROTOCOL_V1, RELAY_PROTOCOLS, RelayCodec};
pub use event_loop::{InboundGossip, InboundRelay, P2pEvent, P2pEventLoop, P2pSettings, build};
pub use handle::{Command, P2pError, P2pHandle, P2pStatus, StreamControl};
pub use topics::{TopicKind, Topics};
