//! Per-chain routing tables, rebuilt once per mesh snapshot rather than per request: for every
//! peer announcing a chain, what the snapshot decides about it (trust, expiry, health, lag), its
//! latency prior, utilisation, and a handle to its breaker. A request only adds what changes
//! per request (method namespace, failover switch, breaker state, own upstream health).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use rpcmesh_protocol::PublicKey;
use tokio::sync::watch;

use super::breaker::BreakerCell;
use super::forward::Target;
use crate::mesh::{Health, MeshSnapshot, ProviderView};
use crate::upstream::UpstreamStatus;

/// Why a candidate may not serve a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Ineligible {
    /// Own upstream not healthy.
    UpstreamStatus(UpstreamStatus),
    /// More blocks behind the median head of trusted providers than allowed.
    Behind {
        /// Blocks.
        blocks: i64,
    },
    /// Failover is off for this request: only own upstreams serve.
    FailoverOff,
    /// Not trusted.
    Untrusted,
    /// Its announcement expired.
    Expired,
    /// The mesh judges it not healthy.
    Health {
        /// Health.
        health: Health,
        /// Why, as the mesh says.
        reason: Arc<str>,
    },
    /// It does not announce the method's namespace.
    Namespace,
    /// Its breaker ejected it after consecutive failures.
    Ejected,
    /// Proven evidence of a wrong answer on this chain: not routed to until an operator clears
    /// it or it lapses.
    Cordoned {
        /// Lie kind.
        kind: Arc<str>,
        /// Evidence record id.
        evidence_id: u64,
        /// When it lapses, Unix ms.
        until_ms: u64,
    },
    /// It announces a policy the request (or `censorship.avoid`) avoids.
    Avoided {
        /// The matching announced policy.
        policy: Arc<str>,
    },
    /// It was proven to filter an account (or method) this request is about.
    Filters {
        /// The subject.
        subject: Arc<str>,
        /// The evidence record behind the label.
        evidence_id: u64,
    },
}

impl fmt::Display for Ineligible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UpstreamStatus(s) => write!(f, "upstream status {s:?}"),
            Self::Behind { blocks } => write!(f, "{blocks} blocks behind the median head"),
            Self::FailoverOff => f.write_str("failover is off: only own upstreams serve"),
            Self::Untrusted => f.write_str("not trusted"),
            Self::Expired => f.write_str("announcement expired"),
            Self::Health { health, reason } => write!(f, "{}", format!("health {health:?}: {reason}").to_lowercase()),
            Self::Namespace => f.write_str("namespace not served"),
            Self::Ejected => f.write_str("ejected after consecutive failures"),
            Self::Cordoned { kind, evidence_id, until_ms } => {
                write!(f, "cordoned: proven {kind} lie (evidence {evidence_id}) until {until_ms} (Unix ms)")
            }
            Self::Avoided { policy } => write!(f, "avoided: announces policy {policy}"),
            Self::Filters { subject, evidence_id } => {
                write!(f, "filters {subject} (proven, evidence {evidence_id})")
            }
        }
    }
}

/// Latency assumed for a provider we know nothing about, µs (pessimistic, so measured ones win).
pub const UNKNOWN_LATENCY_US: f64 = 50_000.0;

/// One peer on one chain, as of one snapshot.
#[derive(Debug, Clone)]
pub struct PeerEntry {
    /// Its key.
    pub key: PublicKey,
    /// Its PeerId, encoded once per snapshot (named in `x-rpcmesh-served-by`).
    pub peer_id: Arc<str>,
    /// Everything the mesh knows about it.
    pub view: Arc<ProviderView>,
    /// Reasons from the snapshot alone; empty if it may serve.
    pub reasons: Vec<Ineligible>,
    /// Namespaces it announces for the chain.
    pub method_groups: Arc<[String]>,
    /// Latency from probes/attestations, µs, and where it came from.
    pub prior_latency: Option<(f64, &'static str)>,
    /// Announced utilisation, 0..1.
    pub utilisation: f64,
    /// At its announced capacity: ranked after every candidate with headroom.
    pub saturated: bool,
    /// Head lag vs the reference head, blocks.
    pub lag_blocks: Option<i64>,
    /// Its breaker on this chain.
    pub breaker: Arc<BreakerCell>,
    /// Policies it announces for the chain.
    pub policies: Arc<[String]>,
    /// What it was proven to filter on the chain (addresses and methods), if anything.
    pub filters: Option<Arc<Filtered>>,
}

/// A filter label as routing needs it.
#[derive(Debug, Clone, Default)]
pub struct Filtered {
    /// Filtered accounts.
    pub addresses: Vec<rpcmesh_eth::Address>,
    /// Filtered methods (labels without an account).
    pub methods: Vec<String>,
    /// The evidence record behind the label.
    pub evidence_id: u64,
}

impl Filtered {
    /// The first subject of a request (its method, or an account it is about) this label names.
    pub fn hit(&self, method: &str, touched: &[rpcmesh_eth::Address]) -> Option<String> {
        if self.methods.iter().any(|m| m == method) {
            return Some(method.to_string());
        }
        touched.iter().find(|a| self.addresses.contains(a)).map(crate::censorship::subject_of)
    }
}

impl PeerEntry {
    /// Whether it announces `namespace`.
    pub fn serves(&self, namespace: &str) -> bool {
        self.method_groups.iter().any(|g| g == namespace)
    }
}

/// The peers of one chain.
#[derive(Debug, Clone, Default)]
pub struct ChainTable {
    /// Every peer announcing the chain (this node excluded), in snapshot order.
    pub peers: Vec<PeerEntry>,
}

/// All chains' tables, for one snapshot.
#[derive(Debug, Default)]
pub struct Tables {
    snapshot: Arc<MeshSnapshot>,
    chains: HashMap<u64, ChainTable>,
    /// Chains on which some peer carries a filter label.
    filtered_chains: Vec<u64>,
}

impl Tables {
    /// The snapshot these tables were built from.
    pub fn snapshot(&self) -> &Arc<MeshSnapshot> {
        &self.snapshot
    }

    /// The table of `chain_id` (empty if no peer announces it).
    pub fn chain(&self, chain_id: u64) -> Option<&ChainTable> {
        self.chains.get(&chain_id)
    }

    /// Whether some peer of `chain_id` carries a filter label.
    pub fn any_filters(&self, chain_id: u64) -> bool {
        self.filtered_chains.contains(&chain_id)
    }
}

/// Breakers by (chain, target), kept across snapshots so a provider's history survives them.
#[derive(Debug, Default)]
pub struct Breakers {
    cells: Mutex<HashMap<(u64, Target), Arc<BreakerCell>>>,
}

impl Breakers {
    /// The cell of `(chain_id, target)`, created on first use.
    pub fn cell(&self, chain_id: u64, target: Target) -> Arc<BreakerCell> {
        let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        cells.entry((chain_id, target)).or_default().clone()
    }

    /// Forgets the breakers of peers no longer in the mesh (their cells are no table's).
    fn retain_peers(&self, keep: impl Fn(&PublicKey) -> bool) {
        let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        cells.retain(|(_, t), _| match t {
            Target::Own(_) => true,
            Target::Peer(k) => keep(k),
        });
    }
}

/// Builds the tables of one snapshot.
pub fn build(snapshot: Arc<MeshSnapshot>, breakers: &Breakers, max_lag: u64) -> Tables {
    let mut chains: HashMap<u64, ChainTable> = HashMap::new();
    let mut filtered_chains = Vec::new();
    for p in snapshot.providers.iter().filter(|p| !p.is_self) {
        let peer_id: Arc<str> = Arc::from(p.peer_id.as_str());
        for c in &p.chains {
            let mut reasons = Vec::new();
            if !p.trust.is_trusted() {
                reasons.push(Ineligible::Untrusted);
            }
            if p.expired {
                reasons.push(Ineligible::Expired);
            }
            if c.health != Health::Healthy {
                reasons.push(Ineligible::Health { health: c.health, reason: Arc::from(c.health_reason.as_str()) });
            }
            if let Some(l) = c.lag_blocks.filter(|l| *l > max_lag as i64) {
                reasons.push(Ineligible::Behind { blocks: l });
            }
            if let Some(cordon) = snapshot.cordon(&p.key, c.chain_id) {
                reasons.push(Ineligible::Cordoned {
                    kind: Arc::from(cordon.kind.as_str()),
                    evidence_id: cordon.evidence_id,
                    until_ms: cordon.until_ms,
                });
            }
            let filters = snapshot.standing(&p.key).and_then(|s| s.filter(c.chain_id)).map(|f| {
                filtered_chains.push(c.chain_id);
                let (addresses, methods): (Vec<_>, Vec<_>) =
                    f.subjects.iter().partition(|s| crate::censorship::parse_address(s).is_some());
                Arc::new(Filtered {
                    addresses: addresses.iter().filter_map(|s| crate::censorship::parse_address(s)).collect(),
                    methods: methods.into_iter().cloned().collect(),
                    evidence_id: f.evidence_id,
                })
            });
            let source = if p.attestations.is_empty() { "probes" } else { "probes/attestations" };
            chains.entry(c.chain_id).or_default().peers.push(PeerEntry {
                key: p.key,
                peer_id: peer_id.clone(),
                view: p.clone(),
                reasons,
                method_groups: Arc::from(c.method_groups.as_slice()),
                prior_latency: c.latency_p50_us.map(|x| (f64::from(x), source)),
                utilisation: f64::from(c.utilisation_permille.min(1000)) / 1000.0,
                saturated: c.utilisation_permille >= 1000,
                lag_blocks: c.lag_blocks,
                breaker: breakers.cell(c.chain_id, Target::Peer(p.key)),
                policies: Arc::from(c.policies.as_slice()),
                filters,
            });
        }
    }
    filtered_chains.sort_unstable();
    filtered_chains.dedup();
    breakers.retain_peers(|k| snapshot.provider(k).is_some());
    Tables { snapshot, chains, filtered_chains }
}

/// The tables of the latest snapshot, rebuilt by the first request that sees a new one.
pub struct TableCache {
    mesh: watch::Receiver<Arc<MeshSnapshot>>,
    current: Mutex<Arc<Tables>>,
    max_lag: u64,
}

impl TableCache {
    /// A cache over the mesh's snapshots.
    pub fn new(mesh: watch::Receiver<Arc<MeshSnapshot>>, max_lag: u64) -> Self {
        Self { mesh, current: Mutex::new(Arc::new(Tables::default())), max_lag }
    }

    /// The tables of the current snapshot.
    pub fn get(&self, breakers: &Breakers) -> Arc<Tables> {
        let snap = self.mesh.borrow().clone();
        {
            let cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
            if Arc::ptr_eq(cur.snapshot(), &snap) {
                return cur.clone();
            }
        }
        // Built outside the lock: two requests racing on a fresh snapshot both build (the same
        // tables); neither waits on the other.
        let tables = Arc::new(build(snap, breakers, self.max_lag));
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = tables.clone();
        tables
    }
}
