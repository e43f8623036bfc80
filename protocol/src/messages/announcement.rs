use bincode::{Decode, Encode};

use super::{MembershipCert, MessageHeader};
use crate::signed::{Signed, SignedBody};

/// A block by number and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub struct BlockRef {
    /// Block number.
    pub number: u64,
    /// Block hash.
    pub hash: [u8; 32],
}

/// What a provider offers on one chain.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ChainCapacity {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The provider's current head on this chain; `None` while its upstreams are down.
    pub head: Option<BlockRef>,
    /// Requests per second the provider accepts for this chain from the mesh.
    pub max_requests_per_sec: u32,
    /// Current utilisation of that capacity, in permille (0..=1000).
    pub utilisation_permille: u16,
    /// Relays it serves at once before answering "busy".
    pub max_concurrent_relays: u32,
    /// Whether it keeps full historical state.
    pub archive: bool,
    /// JSON-RPC method namespaces it serves, as lower-case tokens (`eth`, `net`, `debug`, `trace`...).
    pub method_groups: Vec<String>,
    /// Free-text disclosures of what it filters or alters (e.g. "filters transactions by sanctions list").
    pub policies: Vec<String>,
}

/// A provider's signed statement of what it serves, gossiped on change and as a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct CapacityAnnouncement {
    /// Common header.
    pub header: MessageHeader,
    /// One entry per chain served.
    pub chains: Vec<ChainCapacity>,
    /// libp2p multiaddrs the provider can be dialled at, as text.
    pub listen_addrs: Vec<String>,
    /// The provider's federation membership, if it has one.
    pub membership_cert: Option<Signed<MembershipCert>>,
    /// Software name and version, e.g. `rpcmesh/0.1.0`.
    pub software_version: String,
    /// Where the operator declares it is subject to law (an ISO 3166-1 alpha-2 code such as
    /// `DE`, or a short region name): transactions are broadcast to operators in different
    /// jurisdictions first, so one regulator's filter does not stop them.
    pub jurisdiction: Option<String>,
}

impl CapacityAnnouncement {
    /// Builds an announcement.
    pub fn new(
        header: MessageHeader,
        chains: Vec<ChainCapacity>,
        listen_addrs: Vec<String>,
        membership_cert: Option<Signed<MembershipCert>>,
        software_version: String,
    ) -> Self {
        Self { header, chains, listen_addrs, membership_cert, software_version, jurisdiction: None }
    }

    /// The same announcement declaring `jurisdiction`.
    pub fn with_jurisdiction(mut self, jurisdiction: Option<String>) -> Self {
        self.jurisdiction = jurisdiction;
        self
    }

    /// The entry for `chain_id`, if served.
    pub fn chain(&self, chain_id: u64) -> Option<&ChainCapacity> {
        self.chains.iter().find(|c| c.chain_id == chain_id)
    }
}

impl SignedBody for CapacityAnnouncement {
    const DOMAIN: &'static [u8] = b"rpcmesh/v1/capacity-announcement\0";
    const KIND: &'static str = "capacity-announcement";
}
