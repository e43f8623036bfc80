//! [`EvidenceTask`] (the owner of evidence and cordons) and [`EvidenceHandle`] (its clonable front).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use libp2p::gossipsub::MessageAcceptance;
use rpcmesh_protocol::digest::{Digest, sha256};
use rpcmesh_protocol::messages::{Evidence, MessageHeader};
use rpcmesh_protocol::validate::{Limits, ValidationContext};
use rpcmesh_protocol::{Identity, PublicKey, Signed, Verdict};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::judge::{Judgement, judge_bundle};
use super::{CordonBook, EvidenceHooks};
use crate::clock::{SeqGen, now_ms};
use crate::mesh::MeshInput;
use crate::metrics::NodeMetrics;
use crate::p2p::{InboundGossip, P2pHandle, TopicKind};
use crate::store::{
    CordonRecord, EVIDENCE_UNVERIFIED, EVIDENCE_VERIFIED, EvidenceRecord, FilterRecord, Store, StoreError,
};

/// Bound of the command channel (reports from the integrity layer, admin requests).
pub const COMMAND_QUEUE: usize = 256;
/// Bound of the channel from the p2p loop. Evidence is rare; a full queue means a flood, whose
/// excess is `Ignore`d by the loop.
pub const INBOUND_QUEUE: usize = 64;
/// How often lapsed cordons are dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Store pruning (evidence past retention) runs every this many sweeps (one minute).
const PRUNE_EVERY_SWEEPS: u32 = 12;

/// What the task needs to know.
#[derive(Debug, Clone)]
pub struct EvidenceSettings {
    /// Network id (signed into reports, required of received bundles).
    pub network_id: String,
    /// Protocol limits (sizes, skew).
    pub limits: Limits,
    /// How long a cordon lasts unless cleared, ms (`integrity.cordon_secs`).
    pub cordon_ms: u64,
    /// Evidence recorded longer ago than this is dropped from the store, ms. At least
    /// `limits.max_gossip_ttl_ms`, so a bundle is remembered (and not re-applied after an
    /// operator's clear) for as long as it could be replayed.
    pub retention_ms: u64,
    /// Most evidence records the store keeps (`store.max_evidence`; the listing follows it).
    pub max_evidence: usize,
    /// Distinct filtered subjects before a filtering provider is cordoned
    /// (`censorship.max_filtered_subjects`).
    pub max_filtered_subjects: usize,
}

/// Why an evidence operation failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EvidenceError {
    /// The task has stopped (daemon shutting down).
    #[error("the evidence task has stopped")]
    Shutdown,
    /// The task's queue is full (only from [`EvidenceHandle::try_report`]).
    #[error("the evidence task is busy")]
    Busy,
    /// The bundle breaks a protocol rule or does not re-prove: it was not signed out.
    #[error("not evidence: {0}")]
    Invalid(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(String),
}

impl From<StoreError> for EvidenceError {
    fn from(e: StoreError) -> Self {
        Self::Store(e.to_string())
    }
}

/// What became of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportOutcome {
    /// Evidence record id.
    pub id: u64,
    /// Whether this node's own judge re-proved it (false when no judge is wired).
    pub verified: bool,
    /// Whether it was handed to gossipsub.
    pub published: bool,
}

/// One bundle in `GET /evidence`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvidenceSummary {
    /// Evidence record id.
    pub id: u64,
    /// PeerId of the accused provider.
    pub accused: String,
    /// Chain.
    pub chain_id: u64,
    /// The JSON-RPC method of the request (`?` if unreadable).
    pub method: String,
    /// Lie kind.
    pub kind: String,
    /// When the reporter signed it, Unix ms.
    pub issued_at_ms: u64,
    /// When this node recorded it, Unix ms.
    pub recorded_at_ms: u64,
    /// PeerId of the reporter.
    pub reporter: String,
    /// Whether this node re-proved it.
    pub verified: bool,
    /// Whether this node is the reporter.
    pub own: bool,
    /// Whether its accused is cordoned on its chain because of this very bundle.
    pub cordoning: bool,
}

/// One bundle in full (`GET /evidence/{id}`).
#[derive(Debug, Clone, Serialize)]
pub struct EvidenceDetail {
    /// The summary.
    #[serde(flatten)]
    pub summary: EvidenceSummary,
    /// The canonical `Signed<Evidence>` bytes, hex: what anyone can re-check.
    pub signed_hex: String,
    /// The same, decoded.
    pub decoded: Value,
}

/// Instructions to the task.
#[derive(Debug)]
pub enum EvidenceCommand {
    /// Sign, keep, cordon and publish this node's finding.
    Report {
        /// The finding (its header is replaced).
        evidence: Box<Evidence>,
        /// Outcome, if anyone waits.
        reply: Option<oneshot::Sender<Result<ReportOutcome, EvidenceError>>>,
    },
    /// Every kept bundle, oldest first.
    List {
        /// The summaries.
        reply: oneshot::Sender<Vec<EvidenceSummary>>,
    },
    /// One bundle in full.
    Show {
        /// Record id.
        id: u64,
        /// The bundle, `None` if unknown.
        reply: oneshot::Sender<Result<Option<EvidenceDetail>, EvidenceError>>,
    },
    /// An operator lifts cordons.
    Clear {
        /// The provider.
        accused: PublicKey,
        /// One chain, or all.
        chain_id: Option<u64>,
        /// The chains cleared.
        reply: oneshot::Sender<Result<Vec<u64>, EvidenceError>>,
    },
}

/// Clone-able front of the evidence task.
#[derive(Debug, Clone)]
pub struct EvidenceHandle {
    commands: mpsc::Sender<EvidenceCommand>,
}

impl EvidenceHandle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> EvidenceCommand) -> Result<T, EvidenceError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.map_err(|_| EvidenceError::Shutdown)?;
        rx.await.map_err(|_| EvidenceError::Shutdown)
    }

    /// Signs `evidence` as this node (its header is replaced: fresh `seq`, now, the longest
    /// gossip lifetime), judges it like any receiver would, then stores it, cordons the accused
    /// on its chain and publishes it. Refused (nothing kept or sent) if it breaks a protocol
    /// rule, its anchor is off this node's trusted chain, or the re-check disproves it.
    pub async fn report(&self, evidence: Evidence) -> Result<ReportOutcome, EvidenceError> {
        self.ask(|tx| EvidenceCommand::Report { evidence: Box::new(evidence), reply: Some(tx) }).await?
    }

    /// [`Self::report`] without waiting (for the request path): `Busy` if the queue is full.
    pub fn try_report(&self, evidence: Evidence) -> Result<(), EvidenceError> {
        self.commands.try_send(EvidenceCommand::Report { evidence: Box::new(evidence), reply: None }).map_err(|e| {
            match e {
                mpsc::error::TrySendError::Full(_) => EvidenceError::Busy,
                mpsc::error::TrySendError::Closed(_) => EvidenceError::Shutdown,
            }
        })
    }

    /// Every kept bundle, oldest first.
    pub async fn list(&self) -> Result<Vec<EvidenceSummary>, EvidenceError> {
        self.ask(|reply| EvidenceCommand::List { reply }).await
    }

    /// One bundle in full.
    pub async fn show(&self, id: u64) -> Result<Option<EvidenceDetail>, EvidenceError> {
        self.ask(|reply| EvidenceCommand::Show { id, reply }).await?
    }

    /// Lifts the cordons of `accused` on `chain_id` (all chains if `None`); returns the chains.
    pub async fn clear(&self, accused: PublicKey, chain_id: Option<u64>) -> Result<Vec<u64>, EvidenceError> {
        self.ask(|reply| EvidenceCommand::Clear { accused, chain_id, reply }).await?
    }
}

/// The owner of evidence and cordons; see the [module docs](super).
pub struct EvidenceTask {
    identity: Arc<Identity>,
    seq: SeqGen,
    settings: EvidenceSettings,
    store: Store,
    p2p: P2pHandle,
    mesh: mpsc::Sender<MeshInput>,
    hooks: EvidenceHooks,
    /// Anchors established on demand for gossiped bundles (each costs a quorum of requests).
    establish_budget: EstablishBudget,
    book: CordonBook,
    /// Summaries of the stored bundles, by id.
    index: BTreeMap<u64, EvidenceSummary>,
    /// SHA-256 of each stored bundle's bytes → its id: a bundle seen again is not applied again.
    known: HashMap<Digest, u64>,
    commands: mpsc::Receiver<EvidenceCommand>,
    inbound: mpsc::Receiver<InboundGossip>,
    metrics: NodeMetrics,
}

fn text(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(s) => Value::String(s.to_string()),
        Err(_) => Value::String(format!("0x{}", hex::encode(bytes))),
    }
}

fn header_json(h: &MessageHeader) -> Value {
    json!({
        "version": h.version,
        "network_id": h.network_id,
        "seq": h.seq,
        "issued_at_ms": h.issued_at_ms,
        "expires_at_ms": h.expires_at_ms,
    })
}

/// The decoded form of a bundle shown by `GET /evidence/{id}`.
pub fn decoded_json(s: &Signed<Evidence>) -> Value {
    let e = &s.body;
    let r = &e.receipt;
    json!({
        "reporter": s.signer.to_peer_id().to_string(),
        "header": header_json(&e.header),
        "accused": e.accused.to_peer_id().to_string(),
        "chain_id": e.chain_id,
        "kind": e.kind.as_str(),
        "request": text(&e.request),
        "response": text(&e.response),
        "receipt": {
            "signer": r.signer.to_peer_id().to_string(),
            "header": header_json(&r.body.header),
            "requester": r.body.requester.to_peer_id().to_string(),
            "chain_id": r.body.chain_id,
            "request_digest": hex::encode(r.body.request_digest),
            "response_digest": hex::encode(r.body.response_digest),
            "head": r.body.head,
            "signature": hex::encode(r.signature),
        },
        "anchor": { "number": e.anchor.number, "hash": format!("0x{}", hex::encode(e.anchor.hash)) },
        "material": e.material.iter().map(|m| text(m)).collect::<Vec<_>>(),
        "signature": hex::encode(s.signature),
    })
}

fn summary_of(id: u64, s: &Signed<Evidence>, recorded_at_ms: u64, verified: bool, own: PublicKey) -> EvidenceSummary {
    EvidenceSummary {
        id,
        accused: s.body.accused.to_peer_id().to_string(),
        chain_id: s.body.chain_id,
        method: crate::jsonrpc::method_of(&s.body.request).unwrap_or_else(|| "?".into()),
        kind: s.body.kind.as_str().into(),
        issued_at_ms: s.body.header.issued_at_ms,
        recorded_at_ms,
        reporter: s.signer.to_peer_id().to_string(),
        verified,
        own: s.signer == own,
        cordoning: false,
    }
}

impl EvidenceTask {
    /// A task over `store`'s evidence and cordons (loaded now: cordons still in force apply from
    /// the first snapshot on; lapsed ones are removed). `inbound` is the receiving end of the
    /// channel given to [`P2pEventLoop::with_evidence`](crate::p2p::P2pEventLoop::with_evidence).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        identity: Arc<Identity>,
        settings: EvidenceSettings,
        store: Store,
        p2p: P2pHandle,
        mesh: mpsc::Sender<MeshInput>,
        hooks: EvidenceHooks,
        inbound: mpsc::Receiver<InboundGossip>,
        metrics: NodeMetrics,
    ) -> Result<(EvidenceHandle, EvidenceTask), StoreError> {
        let (tx, commands) = mpsc::channel(COMMAND_QUEUE);
        let own = identity.public_key();
        let mut task = EvidenceTask {
            identity,
            seq: SeqGen::default(),
            settings,
            store,
            p2p,
            mesh,
            hooks,
            establish_budget: EstablishBudget::default(),
            book: CordonBook::default(),
            index: BTreeMap::new(),
            known: HashMap::new(),
            commands,
            inbound,
            metrics,
        };
        let (index, known, book) = (&mut task.index, &mut task.known, &mut task.book);
        task.store.for_each_evidence(|id, rec| {
            let Ok(signed) = Signed::<Evidence>::from_bytes(&rec.data) else {
                tracing::warn!(id, "skipping a stored evidence record that is not a bundle");
                return;
            };
            let verified = rec.detail == EVIDENCE_VERIFIED;
            if verified {
                book.record_lie(signed.body.accused, sha256(&signed.body.receipt.to_bytes()));
            }
            known.insert(sha256(&rec.data), id);
            index.insert(id, summary_of(id, &signed, rec.at_ms, verified, own));
        })?;
        let now = now_ms();
        for (accused, chain_id, rec) in task.store.cordons()? {
            if rec.until_ms <= now {
                task.store.remove_cordons(&accused, Some(chain_id))?;
            } else {
                task.book.cordon(accused, chain_id, rec);
            }
        }
        for (accused, chain_id, rec) in task.store.filters()? {
            if rec.until_ms <= now {
                task.store.remove_filters(&accused, Some(chain_id))?;
            } else {
                let max = task.settings.max_filtered_subjects;
                task.book.label(accused, chain_id, rec, max);
            }
        }
        task.refresh_cordoning();
        task.metrics.cordons_active.set(task.book.active() as i64);
        task.metrics.censorship_labels_active.set(task.book.active_labels() as i64);
        Ok((EvidenceHandle { commands: tx }, task))
    }

    /// Runs until cancelled; flushes the store on the way out.
    pub async fn run(mut self, cancel: CancellationToken) {
        self.publish_standings().await;
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sweeps: u32 = 0;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(cmd) = self.commands.recv() => self.on_command(cmd).await,
                Some(msg) = self.inbound.recv() => self.on_inbound(msg).await,
                _ = sweep.tick() => {
                    sweeps = sweeps.wrapping_add(1);
                    self.sweep(sweeps.is_multiple_of(PRUNE_EVERY_SWEEPS)).await;
                }
            }
        }
        self.flush().await;
    }

    fn ctx(&self) -> ValidationContext {
        ValidationContext {
            network_id: self.settings.network_id.clone(),
            now_ms: now_ms(),
            limits: self.settings.limits.clone(),
        }
    }

    async fn on_command(&mut self, cmd: EvidenceCommand) {
        match cmd {
            EvidenceCommand::Report { evidence, reply } => {
                let r = self.report(*evidence).await;
                if let Err(e) = &r {
                    tracing::warn!(error = %e, "own evidence not reported");
                }
                if let Some(reply) = reply {
                    let _ = reply.send(r);
                }
            }
            EvidenceCommand::List { reply } => {
                let _ = reply.send(self.index.values().cloned().collect());
            }
            EvidenceCommand::Show { id, reply } => {
                let _ = reply.send(self.show(id));
            }
            EvidenceCommand::Clear { accused, chain_id, reply } => {
                let r = self.clear(accused, chain_id).await;
                let _ = reply.send(r);
            }
        }
    }

    async fn report(&mut self, mut evidence: Evidence) -> Result<ReportOutcome, EvidenceError> {
        let ctx = self.ctx();
        evidence.header = MessageHeader::new(
            self.settings.network_id.clone(),
            self.seq.next(),
            ctx.now_ms,
            self.settings.limits.max_gossip_ttl_ms,
        );
        let signed = Signed::sign(evidence, &self.identity);
        let bytes = signed.to_bytes();
        let (judgement, bytes, digest) = self.judge(bytes, ctx).await?;
        let verified = match judgement {
            Judgement::Proven(_) => true,
            Judgement::Unproven { code, .. } => {
                tracing::info!(code, "reporting evidence this node cannot re-prove itself");
                false
            }
            Judgement::Refused { reason, .. } => return Err(EvidenceError::Invalid(reason)),
        };
        let id = self.keep(&signed, bytes.clone(), digest, verified).await?;
        let published = match self.p2p.publish(TopicKind::Evidence, bytes).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, id, "could not publish evidence");
                false
            }
        };
        self.metrics.evidence("reported", if verified { "" } else { "unverified" });
        tracing::warn!(
            id,
            accused = %signed.body.accused.to_peer_id(),
            chain = signed.body.chain_id,
            kind = signed.body.kind.as_str(),
            "reported a provider's wrong answer; it is cordoned (or, for a filter, labelled) on this chain"
        );
        Ok(ReportOutcome { id, verified, published })
    }

    /// Judges on the blocking pool (decoding, hashing and re-proving MiBs must not hold a
    /// runtime thread). Returns the bytes back and their digest.
    async fn judge(
        &self,
        bytes: Vec<u8>,
        ctx: ValidationContext,
    ) -> Result<(Judgement, Vec<u8>, Digest), EvidenceError> {
        let hooks = self.hooks.clone();
        tokio::task::spawn_blocking(move || {
            let digest = sha256(&bytes);
            (judge_bundle(&bytes, &ctx, &hooks), bytes, digest)
        })
        .await
        .map_err(|e| EvidenceError::Invalid(format!("the judge panicked: {e}")))
    }

    async fn on_inbound(&mut self, msg: InboundGossip) {
        self.metrics.evidence("received", "");
        let InboundGossip { id, from, data, .. } = msg;
        let digest_first = sha256(&data);
        if self.known.contains_key(&digest_first) {
            self.verdict(id, from, Verdict::Ignore, "duplicate").await;
            return;
        }
        let ctx = self.ctx();
        let Ok((mut judgement, mut bytes, mut digest)) = self.judge(data, ctx.clone()).await else {
            self.verdict(id, from, Verdict::Ignore, "judge_failed").await;
            return;
        };
        // A bundle about a block this node never needed: ask the quorum for that block once
        // (bounded in rate: each costs a few requests), then judge again.
        if let Judgement::Unproven { bundle, code: "anchor_unknown" } = &judgement
            && let Some(chain) = self.hooks.trusted_chain.clone()
            && self.establish_budget.take()
        {
            let (chain_id, number) = (bundle.body().chain_id, bundle.body().anchor.number);
            chain.establish(chain_id, number).await;
            match self.judge(bytes, ctx).await {
                Ok(again) => (judgement, bytes, digest) = again,
                Err(_) => {
                    self.verdict(id, from, Verdict::Ignore, "judge_failed").await;
                    return;
                }
            }
        }
        match judgement {
            Judgement::Proven(bundle) if bundle.signer() == self.identity.public_key() => {
                self.verdict(id, from, Verdict::Ignore, "own").await;
            }
            Judgement::Proven(bundle) => {
                let signed = bundle.into_signed();
                match self.keep(&signed, bytes, digest, true).await {
                    Ok(ev_id) => {
                        tracing::warn!(
                            id = ev_id,
                            accused = %signed.body.accused.to_peer_id(),
                            chain = signed.body.chain_id,
                            kind = signed.body.kind.as_str(),
                            reporter = %signed.signer.to_peer_id(),
                            "accepted proven evidence; the accused is cordoned (or, for a filter, labelled) on this chain"
                        );
                        self.verdict(id, from, Verdict::Accept, "").await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not keep proven evidence");
                        self.verdict(id, from, Verdict::Ignore, "store").await;
                    }
                }
            }
            Judgement::Unproven { code, .. } => self.verdict(id, from, Verdict::Ignore, code).await,
            Judgement::Refused { verdict, code, reason } => {
                tracing::info!(%from, code, %reason, "evidence refused");
                self.verdict(id, from, verdict, code).await;
            }
        }
    }

    async fn verdict(&self, id: libp2p::gossipsub::MessageId, from: libp2p::PeerId, v: Verdict, code: &str) {
        let (acceptance, outcome) = match v {
            Verdict::Accept => (MessageAcceptance::Accept, "accepted"),
            Verdict::Reject => (MessageAcceptance::Reject, "rejected"),
            Verdict::Ignore => (MessageAcceptance::Ignore, "ignored"),
        };
        self.metrics.evidence(outcome, code);
        let gossip_outcome = match v {
            Verdict::Accept => "accept",
            Verdict::Reject => "reject",
            Verdict::Ignore => "ignore",
        };
        self.metrics.gossip(TopicKind::Evidence.label(), gossip_outcome, code);
        if let Err(e) = self.p2p.report_validation(id, from, acceptance).await {
            tracing::debug!(error = %e, "could not report an evidence verdict");
        }
    }

    /// Stores a bundle, counts the lie (if verified), cordons the accused and tells the mesh.
    async fn keep(
        &mut self,
        signed: &Signed<Evidence>,
        bytes: Vec<u8>,
        digest: Digest,
        verified: bool,
    ) -> Result<u64, EvidenceError> {
        let now = now_ms();
        let e = &signed.body;
        let rec = EvidenceRecord {
            at_ms: now,
            accused: e.accused,
            kind: e.kind.as_str().into(),
            detail: if verified { EVIDENCE_VERIFIED } else { EVIDENCE_UNVERIFIED }.into(),
            data: bytes,
        };
        let id = self.store.put_evidence(&rec)?;
        self.known.insert(digest, id);
        self.index.insert(id, summary_of(id, signed, now, verified, self.identity.public_key()));
        if verified {
            self.book.record_lie(e.accused, sha256(&e.receipt.to_bytes()));
        }
        let until_ms = now.saturating_add(self.settings.cordon_ms);
        // Censorship (an empty answer proven wrong, omitted logs, a refused transaction) labels
        // the provider with what it filters; it keeps serving the rest. Past the subject limit
        // it is cordoned like a liar.
        let mut cordon_it = true;
        if let Some(subjects) = crate::censorship::filtered_subjects(e) {
            let label = FilterRecord { since_ms: now, until_ms, evidence_id: id, subjects, reporter: signed.signer };
            let max = self.settings.max_filtered_subjects;
            let (changed, n) = self.book.label(e.accused, e.chain_id, label, max);
            if changed && let Some(rec) = self.book.label_of(&e.accused, e.chain_id) {
                self.store.put_filter(&e.accused, e.chain_id, rec)?;
            }
            cordon_it = n > max;
            if cordon_it {
                tracing::warn!(accused = %e.accused.to_peer_id(), chain_id = e.chain_id, max, "a provider filters more subjects than censorship.max_filtered_subjects: cordoned");
            }
        }
        let cordon = CordonRecord {
            since_ms: now,
            until_ms,
            evidence_id: id,
            kind: e.kind.as_str().into(),
            reporter: signed.signer,
        };
        if cordon_it
            && self.book.cordon(e.accused, e.chain_id, cordon)
            && let Some(rec) = self.book.get(&e.accused, e.chain_id)
        {
            self.store.put_cordon(&e.accused, e.chain_id, rec)?;
            if e.accused == self.identity.public_key() {
                tracing::error!(
                    chain_id = e.chain_id,
                    evidence_id = id,
                    kind = e.kind.as_str(),
                    "the mesh holds proof that this node's own upstream lied: peers route around it, and its answers are now checked in full before they reach this node's clients; see `rpcmesh evidence show` and fix the node"
                );
            }
        }
        self.flush().await;
        self.after_change().await;
        Ok(id)
    }

    fn show(&self, id: u64) -> Result<Option<EvidenceDetail>, EvidenceError> {
        let Some(rec) = self.store.evidence_by_id(id)? else { return Ok(None) };
        let signed = Signed::<Evidence>::from_bytes(&rec.data)
            .map_err(|e| EvidenceError::Store(format!("evidence {id} is not a bundle: {e}")))?;
        let summary = match self.index.get(&id) {
            Some(s) => s.clone(),
            None => summary_of(id, &signed, rec.at_ms, rec.detail == EVIDENCE_VERIFIED, self.identity.public_key()),
        };
        Ok(Some(EvidenceDetail { summary, signed_hex: hex::encode(&rec.data), decoded: decoded_json(&signed) }))
    }

    async fn clear(&mut self, accused: PublicKey, chain_id: Option<u64>) -> Result<Vec<u64>, EvidenceError> {
        let cleared = self.book.clear(&accused, chain_id);
        self.store.remove_cordons(&accused, chain_id)?;
        self.store.remove_filters(&accused, chain_id)?;
        self.flush().await;
        tracing::info!(accused = %accused.to_peer_id(), chains = ?cleared, "cordons cleared by the operator");
        self.after_change().await;
        Ok(cleared)
    }

    async fn sweep(&mut self, prune: bool) {
        let now = now_ms();
        let mut gone = self.book.expire(now);
        for (k, c) in &gone {
            if let Err(e) = self.store.remove_cordons(k, Some(*c)) {
                tracing::warn!(error = %e, "could not remove a lapsed cordon");
            }
        }
        for (k, c) in self.book.expire_labels(now) {
            if let Err(e) = self.store.remove_filters(&k, Some(c)) {
                tracing::warn!(error = %e, "could not remove a lapsed filter label");
            }
            gone.push((k, c));
        }
        if prune {
            let retention = self.settings.retention_ms.max(self.settings.limits.max_gossip_ttl_ms);
            let cutoff = now.saturating_sub(retention);
            let store = self.store.clone();
            match tokio::task::spawn_blocking(move || store.prune_evidence_before(cutoff)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "evidence prune failed"),
                Err(e) => tracing::warn!(error = %e, "evidence prune panicked"),
            }
            self.index.retain(|_, s| s.recorded_at_ms >= cutoff);
            // The store's count bound (applied by the mesh task's prune) drops the oldest ids.
            while self.index.len() > self.settings.max_evidence {
                self.index.pop_first();
            }
            let live: std::collections::HashSet<u64> = self.index.keys().copied().collect();
            self.known.retain(|_, id| live.contains(id));
        }
        if !gone.is_empty() {
            self.after_change().await;
        }
    }

    async fn flush(&self) {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.flush()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "evidence store flush failed"),
            Err(e) => tracing::warn!(error = %e, "evidence store flush panicked"),
        }
    }

    /// Marks which bundles hold a cordon.
    fn refresh_cordoning(&mut self) {
        for s in self.index.values_mut() {
            s.cordoning = false;
        }
        let ids: Vec<u64> = self.book.iter().map(|(_, _, r)| r.evidence_id).collect();
        for id in ids {
            if let Some(s) = self.index.get_mut(&id) {
                s.cordoning = true;
            }
        }
    }

    async fn after_change(&mut self) {
        self.refresh_cordoning();
        self.metrics.cordons_active.set(self.book.active() as i64);
        self.metrics.censorship_labels_active.set(self.book.active_labels() as i64);
        self.publish_standings().await;
    }

    /// The cordons, labels and proven lies as the mesh view shows them. `launch` seeds the mesh
    /// with the restored ones before anything serves: a restarted daemon whose own upstream the
    /// mesh cordoned must distrust it from its first request, not from the evidence task's
    /// first run (a strict read could already pass while sample mode still trusted the liar).
    pub fn standings(&self) -> Arc<HashMap<PublicKey, crate::mesh::Standing>> {
        let index = &self.index;
        self.book.standings(|rec| {
            let method = index.get(&rec.evidence_id).map(|s| s.method.as_str()).unwrap_or("?");
            format!("proven {} lie answering {method} (evidence {})", rec.kind, rec.evidence_id)
        })
    }

    async fn publish_standings(&self) {
        let standings = self.standings();
        if self.mesh.send(MeshInput::Standings(standings)).await.is_err() {
            tracing::debug!("the mesh task has stopped; standings not delivered");
        }
    }
}

/// Most anchors established on demand per [`ESTABLISH_WINDOW`]: a flood of bundles about
/// unknown blocks cannot turn this node into a request amplifier.
pub const MAX_ESTABLISH_PER_WINDOW: u32 = 20;
/// The window of [`MAX_ESTABLISH_PER_WINDOW`].
pub const ESTABLISH_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug, Default)]
struct EstablishBudget {
    window_start: Option<std::time::Instant>,
    used: u32,
}

impl EstablishBudget {
    fn take(&mut self) -> bool {
        let now = std::time::Instant::now();
        if self.window_start.is_none_or(|s| now.duration_since(s) >= ESTABLISH_WINDOW) {
            self.window_start = Some(now);
            self.used = 0;
        }
        if self.used >= MAX_ESTABLISH_PER_WINDOW {
            return false;
        }
        self.used += 1;
        true
    }
}
