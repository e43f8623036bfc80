//! [`WriteCheck`]: the answer check that turns a filtered refusal of a transaction into a
//! retry on the next operator, and (from a peer) into [`LieKind::Refusal`] evidence.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rpcmesh_protocol::messages::{BlockRef, Evidence, LieKind, MessageHeader};
use tokio::time::Instant;

use super::refusal;
use crate::integrity::{Anchors, EvidenceSink};
use crate::metrics::ServedByLabels;
use crate::router::check::AnswerCheck;
use crate::router::{Answer, AttemptError, Call, Target};

/// Refusals of transactions with no node-level reason: retried elsewhere, reported when a
/// peer's.
pub struct WriteCheck {
    anchors: Arc<Anchors>,
    evidence: Arc<dyn EvidenceSink>,
    refusals: Family<ServedByLabels, Counter>,
}

impl WriteCheck {
    /// A check reporting to `evidence`, anchoring bundles on `anchors`' trusted head.
    pub fn new(
        anchors: Arc<Anchors>,
        evidence: Arc<dyn EvidenceSink>,
        refusals: Family<ServedByLabels, Counter>,
    ) -> Self {
        Self { anchors, evidence, refusals }
    }

    /// Signs nothing itself: hands the bundle to the evidence task, anchored on the trusted head
    /// (a receiver checks the anchor is on its own trusted chain, as for every bundle).
    async fn report(&self, call: &Call<'_>, accused: rpcmesh_protocol::PublicKey, answer: &Answer, deadline: Instant) {
        let Some(receipt) = answer.receipt.as_ref() else { return };
        let head = match self.anchors.head(call.chain_id, deadline).await {
            Ok(h) => h,
            Err(why) => {
                tracing::debug!(chain_id = call.chain_id, %why, "no trusted head to anchor a refusal on");
                return;
            }
        };
        let trusted = &head.header;
        self.evidence.report(Evidence {
            header: MessageHeader::new(String::new(), 0, 0, 0),
            accused,
            chain_id: call.chain_id,
            kind: LieKind::Refusal,
            request: call.req.upstream_body().to_vec(),
            response: answer.body.to_vec(),
            receipt: (**receipt).clone(),
            anchor: BlockRef { number: trusted.header.number(), hash: trusted.header.hash().0 },
            material: vec![trusted.json.to_vec()],
        });
    }
}

impl AnswerCheck for WriteCheck {
    type Ticket = ();

    async fn check<'a>(
        &'a self,
        call: &'a Call<'a>,
        target: Target,
        answer: Answer,
        _: (),
        deadline: Instant,
    ) -> Result<Answer, AttemptError> {
        if !call.is_send() {
            return Ok(answer);
        }
        let Some(e) = answer.error().filter(|e| refusal::is_filtered(e)).cloned() else { return Ok(answer) };
        let served_by = match target {
            Target::Own(_) => "own",
            Target::Peer(_) => "peer",
        };
        self.refusals.get_or_create(&ServedByLabels { served_by: served_by.into() }).inc();
        tracing::warn!(chain_id = call.chain_id, ?target, code = e.code, message = %e.message, "transaction refused without a node-level reason: sent to the next operator");
        if let Target::Peer(accused) = target {
            self.report(call, accused, &answer, deadline).await;
        }
        Err(AttemptError::Filtered(e))
    }
}
