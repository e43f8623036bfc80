//! Verified answers: the integrity layer of the request path.
//!
//! ```text
//!  attempts ──► answer check (IntegrityCheck, check.rs) ──► forward
//!                 │ claim.rs   what the request asks (method family, block, account)
//!                 │ judge.rs   pure: answer vs trusted material → verified level | lie | unverifiable
//!                 │ anchor.rs  trusted headers per chain: quorum of operators, parent links
//!                 └ source.rs  material (headers, proofs, receipts) from other operators
//! ```
//!
//! Trust flows from block hashes a quorum of distinct eligible operators agree on (this node's
//! own node is one operator and is checked like any other) down through `parentHash` links,
//! header fields, receipts and state proofs ([`rpcmesh_eth`]). A proven lie from a peer becomes
//! an [`Evidence`] bundle handed to an [`EvidenceSink`]; [`judge::recheck`] re-proves a bundle
//! from its own bytes, so receivers convict by the reporter's rules.
//!
//! Modes ([`crate::router::VerifyMode`]): `off`, `sample` (default), `strict`. Simulated
//! backends of testnets do not produce real hashes and run with integrity off.

pub mod anchor;
pub mod check;
pub mod claim;
pub mod equivocation;
pub mod judge;
pub mod source;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rpcmesh_protocol::messages::{BlockRef, Evidence};

pub use self::anchor::Anchors;
pub use self::check::IntegrityCheck;
pub use self::source::Source;
use crate::config::IntegrityConfig;
use crate::metrics::{CheckLabels, NodeMetrics};
use crate::router::Targets;

/// Where proven lies go (signed, stored, gossiped and acted on by the evidence task). The
/// evidence's header is filled by the sink (it owns the signing key and sequence numbers).
pub trait EvidenceSink: Send + Sync {
    /// Takes one unsigned bundle; must not block.
    fn report(&self, evidence: Evidence);
}

impl crate::evidence::TrustedChain for Anchors {
    fn contains(&self, chain_id: u64, block: &BlockRef) -> Option<bool> {
        Anchors::contains(self, chain_id, block)
    }
}

/// The trusted chain for the evidence task, which starts before the integrity layer exists:
/// cannot tell (`None`) until [`AnchorSlot::fill`].
#[derive(Default)]
pub struct AnchorSlot(std::sync::OnceLock<Arc<Anchors>>);

impl AnchorSlot {
    /// Makes `anchors` the trusted chain (once).
    pub fn fill(&self, anchors: Arc<Anchors>) {
        let _ = self.0.set(anchors);
    }
}

impl crate::evidence::TrustedChain for AnchorSlot {
    fn contains(&self, chain_id: u64, block: &BlockRef) -> Option<bool> {
        self.0.get()?.contains(chain_id, block)
    }

    fn establish(&self, chain_id: u64, number: u64) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            let Some(anchors) = self.0.get() else { return };
            let deadline = tokio::time::Instant::now() + ESTABLISH_TIMEOUT;
            if let Err(why) = anchors.at(chain_id, number, deadline).await {
                tracing::debug!(chain_id, number, %why, "could not establish a trusted header for evidence");
            }
        })
    }
}

/// How long the evidence task may wait for a quorum on an anchor it has no header for.
pub const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(3);

/// Proven lies go to the evidence task (signed, stored, cordoned, gossiped); never blocks the
/// request path: a full queue drops the bundle with a warning.
impl EvidenceSink for crate::evidence::EvidenceHandle {
    fn report(&self, evidence: Evidence) {
        if let Err(e) = self.try_report(evidence) {
            tracing::warn!(error = %e, "evidence bundle dropped");
        }
    }
}

/// The integrity layer's metric handles.
#[derive(Debug, Clone, Default)]
pub struct IntegrityMetrics {
    checks: Family<CheckLabels, Counter>,
    too_wide: Counter,
}

/// Methods the check has its own label for (the label set stays bounded).
const LABELLED: &[&str] = &[
    "eth_getBlockByNumber",
    "eth_getBlockByHash",
    "eth_getTransactionByHash",
    "eth_getTransactionReceipt",
    "eth_getBlockReceipts",
    "eth_getLogs",
    "eth_getBalance",
    "eth_getTransactionCount",
    "eth_getCode",
    "eth_getStorageAt",
    "eth_blockNumber",
    "eth_chainId",
    "eth_call",
    "eth_estimateGas",
];

impl IntegrityMetrics {
    /// Handles into the node's families.
    pub fn new(m: &NodeMetrics) -> Self {
        Self { checks: m.integrity_checks.clone(), too_wide: m.integrity_ranges_too_wide.clone() }
    }

    fn checked(&self, method: &str, outcome: &str) {
        let method = LABELLED.iter().find(|m| **m == method).copied().unwrap_or("other");
        self.checks.get_or_create(&CheckLabels { method: method.into(), outcome: outcome.into() }).inc();
    }

    fn too_wide(&self) {
        self.too_wide.inc();
    }
}

/// The layer as launched: the check for the request path and the trusted chain for evidence.
pub struct Integrity {
    /// The answer check.
    pub check: IntegrityCheck,
    /// Trusted headers (shared with evidence receivers).
    pub anchors: Arc<Anchors>,
    /// Attach the router to it once built.
    pub source: Arc<Source>,
}

/// Builds the layer over the production forward.
pub fn build(
    cfg: &IntegrityConfig,
    targets: Targets,
    evidence: Arc<dyn EvidenceSink>,
    metrics: IntegrityMetrics,
    store: Option<crate::store::Store>,
) -> Integrity {
    let source = Source::new(targets);
    let anchors = Anchors::new(
        source.clone(),
        anchor::Settings {
            quorum: cfg.quorum,
            head_fresh: Duration::from_millis(cfg.head_fresh_ms),
            capacity: cfg.trusted_headers,
        },
    );
    let anchors = Arc::new(match store {
        Some(store) => anchors.with_store(store),
        None => anchors,
    });
    let check = IntegrityCheck::new(
        anchors.clone(),
        source.clone(),
        check::CheckSettings {
            sample_permille: cfg.sample_permille,
            max_log_blocks: cfg.max_log_blocks,
            head_slack_blocks: cfg.head_slack_blocks,
            max_lag_blocks: cfg.max_lag_blocks,
        },
        evidence,
        metrics,
    );
    Integrity { check, anchors, source }
}
