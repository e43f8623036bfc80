use bincode::{Decode, Encode};

use crate::PROTOCOL_VERSION;

/// Fields every message body starts with.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct MessageHeader {
    /// Protocol version of the body's layout ([`PROTOCOL_VERSION`]).
    pub version: u16,
    /// Which mesh this message belongs to; receivers drop messages of other networks.
    pub network_id: String,
    /// Strictly increasing per signer and message kind; receivers drop any `seq` not newer than
    /// the last one they accepted.
    pub seq: u64,
    /// When the signer created the message, in Unix milliseconds.
    pub issued_at_ms: u64,
    /// After this Unix millisecond the message is void.
    pub expires_at_ms: u64,
}

impl MessageHeader {
    /// A header of the current protocol version valid for `ttl_ms` from `issued_at_ms`.
    pub fn new(network_id: impl Into<String>, seq: u64, issued_at_ms: u64, ttl_ms: u64) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            network_id: network_id.into(),
            seq,
            issued_at_ms,
            expires_at_ms: issued_at_ms.saturating_add(ttl_ms),
        }
    }
}
