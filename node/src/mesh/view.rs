//! The read side of the mesh: an immutable [`MeshSnapshot`] that routing, the admin API and
//! the prober read without locks (one `Arc` clone per reader).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rpcmesh_protocol::messages::CapacityAnnouncement;
use rpcmesh_protocol::{PublicKey, Signed};
use serde::Serialize;

use crate::trust::TrustStatus;

/// Where a provider's latest announcement came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Received over gossip in this run.
    Gossip,
    /// Loaded from the store at start, not yet refreshed.
    Store,
    /// This node's own.
    Local,
}

/// Derived health of a provider on one chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Answering and within the allowed lag.
    Healthy,
    /// Answering but behind the reference head by more than allowed.
    Lagging,
    /// Failing probes.
    Unhealthy,
    /// Announces the chain without a head: its upstreams are down.
    Down,
    /// Its announcement expired: gone or partitioned away.
    Expired,
}

/// A provider on one chain.
#[derive(Debug, Clone, Serialize)]
pub struct ChainView {
    /// Chain id.
    pub chain_id: u64,
    /// Head in its announcement.
    pub announced_head: Option<u64>,
    /// Hash of that head (0x-hex).
    pub announced_head_hash: Option<String>,
    /// Freshest head known: the more recent of our probes and the announcement.
    pub head: Option<u64>,
    /// Blocks behind the reference head (median of trusted providers); negative when ahead. As
    /// of the view's build: a moved reference rebuilds the view at once only when the lag
    /// crosses the allowed lag, otherwise within two seconds.
    pub lag_blocks: Option<i64>,
    /// Derived health.
    pub health: Health,
    /// Why that health.
    pub health_reason: String,
    /// Median latency: our probes when we have them, else the median of trusted attestations, µs.
    pub latency_p50_us: Option<u32>,
    /// 95th percentile latency, µs.
    pub latency_p95_us: Option<u32>,
    /// Fraction of successful probes in the window (ours, else attested).
    pub success_rate: Option<f64>,
    /// Announced utilisation, permille.
    pub utilisation_permille: u16,
    /// Announced capacity, requests/s.
    pub max_requests_per_sec: u32,
    /// Announced concurrent relays.
    pub max_concurrent_relays: u32,
    /// Archive node.
    pub archive: bool,
    /// Method groups served.
    pub method_groups: Vec<String>,
    /// Policy disclosures.
    pub policies: Vec<String>,
}

/// Summary of one attester's latest attestation about a provider.
#[derive(Debug, Clone, Serialize)]
pub struct AttestationSummary {
    /// Attester PeerId.
    pub attester: std::sync::Arc<str>,
    /// Whether the attester is trusted (only trusted attestations count for health).
    pub attester_trusted: bool,
    /// Chain.
    pub chain_id: u64,
    /// When it was issued, Unix ms.
    pub issued_at_ms: u64,
    /// Probes in its window.
    pub probes_sent: u32,
    /// Successful probes.
    pub probes_ok: u32,
    /// Median latency, µs.
    pub latency_p50_us: u32,
    /// p95 latency, µs.
    pub latency_p95_us: u32,
    /// Observed head lag, blocks.
    pub head_lag_blocks: Option<i64>,
}

/// Everything known about one provider.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderView {
    /// PeerId.
    pub peer_id: String,
    /// ed25519 public key, hex.
    pub public_key: String,
    /// This node.
    pub is_self: bool,
    /// Trust decision.
    pub trust: TrustStatus,
    /// Connected over libp2p right now.
    pub connected: bool,
    /// Announcement sequence number.
    pub seq: u64,
    /// Announcement issue time, Unix ms.
    pub announced_at_ms: u64,
    /// When this node received it, Unix ms.
    pub received_at_ms: u64,
    /// Announcement expiry, Unix ms.
    pub expires_at_ms: u64,
    /// Whether it has expired.
    pub expired: bool,
    /// Where it came from.
    pub source: Source,
    /// Advertised libp2p addresses.
    pub listen_addrs: Vec<String>,
    /// Software version.
    pub software_version: String,
    /// Operator name from its membership certificate.
    pub operator: Option<String>,
    /// Declared jurisdiction, if any.
    pub jurisdiction: Option<String>,
    /// Per chain.
    pub chains: Vec<ChainView>,
    /// Latest attestation of each attester about it.
    pub attestations: Vec<AttestationSummary>,
    /// The signed announcement itself.
    #[serde(skip)]
    pub announcement: Arc<Signed<CapacityAnnouncement>>,
    /// Key, for lookups.
    #[serde(skip)]
    pub key: PublicKey,
}

impl ProviderView {
    /// The view of one chain.
    pub fn chain(&self, chain_id: u64) -> Option<&ChainView> {
        self.chains.iter().find(|c| c.chain_id == chain_id)
    }
}

/// A provider not routed to on one chain because of proven evidence (see `node::evidence`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CordonView {
    /// The chain.
    pub chain_id: u64,
    /// Lie kind (`state`, `receipt`, ...).
    pub kind: String,
    /// Why, in words (method and evidence id).
    pub reason: String,
    /// When it began, Unix ms.
    pub since_ms: u64,
    /// When it lapses unless cleared earlier, Unix ms.
    pub until_ms: u64,
    /// PeerId of the reporter who signed the evidence.
    pub reporter: String,
    /// The evidence record (`GET /evidence/{id}`).
    pub evidence_id: u64,
}

/// What proven evidence says about one provider: its active cordons and how many of its wrong
/// answers were proven (a reputation counter: open trust mode may weigh it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Standing {
    /// Active cordons, by chain.
    pub cordons: Vec<CordonView>,
    /// Distinct wrong answers proven against it (evidence kept in the store).
    pub proven_lies: u32,
    /// Chains on which it was proven to filter, with what: it stays routable for everything
    /// else.
    pub filters: Vec<FilterView>,
}

/// A provider proven to filter on one chain (censorship evidence): requests about its subjects
/// go to other providers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilterView {
    /// Chain.
    pub chain_id: u64,
    /// What it filters: lower-case 0x addresses, or method names.
    pub subjects: Vec<String>,
    /// When first proven, Unix ms.
    pub since_ms: u64,
    /// When it lapses unless proven again, Unix ms.
    pub until_ms: u64,
    /// PeerId of who signed the latest evidence.
    pub reporter: String,
    /// The latest evidence record (`GET /evidence/{id}`).
    pub evidence_id: u64,
}

impl Standing {
    /// The cordon on `chain_id`, if any.
    pub fn cordon(&self, chain_id: u64) -> Option<&CordonView> {
        self.cordons.iter().find(|c| c.chain_id == chain_id)
    }

    /// The filter label on `chain_id`, if any.
    pub fn filter(&self, chain_id: u64) -> Option<&FilterView> {
        self.filters.iter().find(|c| c.chain_id == chain_id)
    }
}

/// The whole mesh as this node sees it at one moment.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MeshSnapshot {
    /// When it was built, Unix ms.
    pub generated_at_ms: u64,
    /// Reference head per chain: median head of trusted, current providers.
    pub reference_heads: BTreeMap<u64, u64>,
    /// Providers, this node first, then by PeerId. Shared between snapshots: a provider no
    /// input touched keeps its view.
    pub providers: Vec<Arc<ProviderView>>,
    /// Position of each provider in `providers`; shared between snapshots while the set of
    /// providers stays the same.
    #[serde(skip)]
    index: Arc<HashMap<PublicKey, usize>>,
    /// Cordons and reputation by provider (also for providers not in the view). Shared between
    /// snapshots: it changes only when evidence does.
    #[serde(skip)]
    pub standings: Arc<HashMap<PublicKey, Standing>>,
}

impl MeshSnapshot {
    /// Builds the lookup index.
    pub fn new(generated_at_ms: u64, reference_heads: BTreeMap<u64, u64>, providers: Vec<Arc<ProviderView>>) -> Self {
        let index = Arc::new(providers.iter().enumerate().map(|(i, p)| (p.key, i)).collect());
        Self::indexed(generated_at_ms, reference_heads, providers, index)
    }

    /// A snapshot over `providers` with their `index` already built (`index[key]` is the
    /// position of `key`'s view in `providers`).
    pub(crate) fn indexed(
        generated_at_ms: u64,
        reference_heads: BTreeMap<u64, u64>,
        providers: Vec<Arc<ProviderView>>,
        index: Arc<HashMap<PublicKey, usize>>,
    ) -> Self {
        debug_assert!(providers.iter().enumerate().all(|(i, p)| index.get(&p.key) == Some(&i)));
        Self { generated_at_ms, reference_heads, providers, index, standings: Arc::default() }
    }

    /// Attaches the evidence standings (cordons, reputation).
    pub fn with_standings(mut self, standings: Arc<HashMap<PublicKey, Standing>>) -> Self {
        self.standings = standings;
        self
    }

    /// The mesh size that periodic messages share their budget over ([`crate::pacer::stretched`]):
    /// the providers with current announcements, this node included, or the `connected_peers`
    /// plus this node if more. While a mesh joins, connections come before announcements:
    /// counting them keeps a newcomer's welcomes and first periods from being those of a small
    /// mesh (a 100-daemon testnet started at once did not converge in 120 s when only the view
    /// counted).
    pub fn mesh_size(&self, connected_peers: usize) -> usize {
        self.providers.iter().filter(|p| !p.expired).count().max(connected_peers + 1)
    }

    /// What evidence says about `key`, if anything.
    pub fn standing(&self, key: &PublicKey) -> Option<&Standing> {
        self.standings.get(key)
    }

    /// The active cordon of `key` on `chain_id`, if any.
    pub fn cordon(&self, key: &PublicKey, chain_id: u64) -> Option<&CordonView> {
        self.standings.get(key).and_then(|s| s.cordon(chain_id))
    }

    /// A provider by key.
    pub fn provider(&self, key: &PublicKey) -> Option<&ProviderView> {
        self.index.get(key).map(|&i| &*self.providers[i])
    }

    /// Providers announcing `chain_id`.
    pub fn on_chain(&self, chain_id: u64) -> impl Iterator<Item = (&ProviderView, &ChainView)> {
        self.providers.iter().filter_map(move |p| p.chain(chain_id).map(|c| (&**p, c)))
    }
}
