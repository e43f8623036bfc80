//! Evidence of wrong answers: signing this node's own findings, judging bundles from gossip,
//! keeping them, and cordoning the accused.
//!
//! ```text
//!  integrity layer ──report(Evidence)──► EvidenceHandle ─┐          (admin: list/show/clear)
//!                                                        ▼
//!  p2p loop ──InboundGossip (size+header checked)──► EvidenceTask ──verdict──► p2p (gossipsub scores)
//!                                                        │ judge (blocking pool): protocol rules,
//!                                                        │ anchor on our trusted chain, lie re-proven
//!                                                        ├──► store (evidence + cordons trees)
//!                                                        └──► mesh (Standings) ──► router tables
//! ```
//!
//! - A bundle is **proven** when it passes the protocol rules (the accused's signed receipt binds
//!   the request and response bytes), its anchor is on this node's own [`TrustedChain`], and the
//!   [`Recheck`] hook re-proves the lie from the material. Proven bundles from gossip are stored,
//!   cordon the accused on that chain and are forwarded (`Accept`); bundles that break a rule or
//!   whose lie does not re-prove are `Reject`ed (the forwarder loses gossip score); bundles this
//!   node cannot judge yet (no judge wired, anchor not known yet) are `Ignore`d.
//! - A **cordon** keeps the accused out of routing on that chain until it lapses
//!   (`integrity.cordon_secs`) or an operator clears it. Cordons are their own store records,
//!   so a clear survives restarts while the evidence stays on record; a cleared bundle seen again
//!   does not cordon again.
//! - **Reputation**: the number of distinct wrong answers proven against a provider, from the
//!   stored evidence. Shown in `/peers`; open trust mode may weigh it.
//!
//! The task is the only writer of cordons and evidence. Its `select!` arms (command receive,
//! inbound receive, timer, cancellation) are cancel-safe; a judgement runs to completion on
//! the blocking pool before the next input is taken.

mod book;
mod judge;
mod task;
#[cfg(test)]
mod tests;

pub use book::CordonBook;
pub use judge::{Judgement, judge_bundle};
pub use task::{
    COMMAND_QUEUE, EvidenceCommand, EvidenceDetail, EvidenceError, EvidenceHandle, EvidenceSettings, EvidenceSummary,
    EvidenceTask, INBOUND_QUEUE, ReportOutcome, decoded_json,
};

use std::sync::Arc;

use rpcmesh_protocol::messages::{BlockRef, Evidence};

/// This node's own verified view of a chain, as the integrity layer keeps it.
pub trait TrustedChain: Send + Sync {
    /// Whether `block` (number and hash) is on this node's trusted chain for `chain_id`:
    /// `Some(false)` when the trusted chain has another hash at that height, `None` when this
    /// node cannot tell yet (no anchor for the chain, height outside the verified window).
    /// A `None` makes a bundle `Ignore`d, never `Reject`ed: an honest forwarder may know more.
    fn contains(&self, chain_id: u64, block: &BlockRef) -> Option<bool>;

    /// Tries to make the trusted chain reach block `number` (a quorum of operators asked), so a
    /// bundle about a block this node never needed can still be judged. Default: nothing.
    fn establish(&self, chain_id: u64, number: u64) -> futures::future::BoxFuture<'_, ()> {
        let _ = (chain_id, number);
        Box::pin(std::future::ready(()))
    }
}

/// Re-proves a bundle's lie from its material (pure, deterministic, CPU only): `Ok` when the
/// response contradicts the material anchored at `evidence.anchor`, else why not. The integrity
/// layer's `judge::recheck` is the implementation; any `Fn(&Evidence) -> Result<(), E>` with a
/// displayable `E` is one.
pub trait Recheck: Send + Sync {
    /// `Ok(())` if the lie is proven.
    fn recheck(&self, evidence: &Evidence) -> Result<(), String>;
}

impl<F, E> Recheck for F
where
    F: Fn(&Evidence) -> Result<(), E> + Send + Sync,
    E: std::fmt::Display,
{
    fn recheck(&self, evidence: &Evidence) -> Result<(), String> {
        self(evidence).map_err(|e| e.to_string())
    }
}

/// What the evidence task judges with. Without a hook, bundles from gossip are `Ignore`d
/// (this node cannot prove them) and this node's own reports are kept as unverified.
#[derive(Clone, Default)]
pub struct EvidenceHooks {
    /// The trusted chain the anchor must be on.
    pub trusted_chain: Option<Arc<dyn TrustedChain>>,
    /// The lie re-check.
    pub recheck: Option<Arc<dyn Recheck>>,
}

impl std::fmt::Debug for EvidenceHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvidenceHooks")
            .field("trusted_chain", &self.trusted_chain.is_some())
            .field("recheck", &self.recheck.is_some())
            .finish()
    }
}
