//! The judgement of one bundle: pure (time passed in through the context), so every verdict is
//! unit-tested. Cheapest checks first: protocol rules (sizes, receipt binding, two signatures),
//! then the anchor, then the lie itself.

use rpcmesh_protocol::Verdict;
use rpcmesh_protocol::messages::Evidence;
use rpcmesh_protocol::validate::{ValidationContext, Verified, decode_and_validate};

use super::EvidenceHooks;

/// What this node concludes about a bundle.
#[derive(Debug)]
pub enum Judgement {
    /// Valid and re-proven: store, cordon, forward.
    Proven(Verified<Evidence>),
    /// Valid by the protocol's rules, but this node cannot prove or disprove the lie (`Ignore`).
    Unproven {
        /// The bundle.
        bundle: Verified<Evidence>,
        /// Short stable code (metrics): `no_trusted_chain`, `anchor_unknown`, `no_judge`.
        code: &'static str,
    },
    /// Not evidence: invalid or not proven (`Reject`), or stale (`Ignore`).
    Refused {
        /// The gossip verdict.
        verdict: Verdict,
        /// Short stable code (metrics): a `ValidationError::code`, `anchor_off_chain`, `not_proven`.
        code: &'static str,
        /// Why, in words.
        reason: String,
    },
}

impl Judgement {
    /// The gossip verdict.
    pub fn verdict(&self) -> Verdict {
        match self {
            Self::Proven(_) => Verdict::Accept,
            Self::Unproven { .. } => Verdict::Ignore,
            Self::Refused { verdict, .. } => *verdict,
        }
    }
}

/// Judges encoded `Signed<Evidence>` bytes.
pub fn judge_bundle(bytes: &[u8], ctx: &ValidationContext, hooks: &EvidenceHooks) -> Judgement {
    match decode_and_validate::<Evidence>(bytes, ctx) {
        Ok(bundle) => judge_verified(bundle, hooks),
        Err(e) => Judgement::Refused { verdict: e.verdict(), code: e.code(), reason: e.to_string() },
    }
}

/// Judges a bundle that passed the protocol's rules: anchor, then the lie.
pub fn judge_verified(bundle: Verified<Evidence>, hooks: &EvidenceHooks) -> Judgement {
    let e = bundle.body();
    let Some(chain) = &hooks.trusted_chain else {
        return Judgement::Unproven { bundle, code: "no_trusted_chain" };
    };
    match chain.contains(e.chain_id, &e.anchor) {
        None => return Judgement::Unproven { bundle, code: "anchor_unknown" },
        Some(false) => {
            return Judgement::Refused {
                verdict: Verdict::Reject,
                code: "anchor_off_chain",
                reason: format!(
                    "anchor block {} 0x{} is not on this node's trusted chain {}",
                    e.anchor.number,
                    hex::encode(e.anchor.hash),
                    e.chain_id
                ),
            };
        }
        Some(true) => {}
    }
    let Some(recheck) = &hooks.recheck else {
        return Judgement::Unproven { bundle, code: "no_judge" };
    };
    match recheck.recheck(e) {
        Ok(()) => Judgement::Proven(bundle),
        Err(why) => Judgement::Refused {
            verdict: Verdict::Reject,
            code: "not_proven",
            reason: format!("the {} lie does not re-prove from the material: {why}", e.kind.as_str()),
        },
    }
}
