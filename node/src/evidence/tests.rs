//! The evidence task driven by a script: a fake p2p loop (records publishes and verdicts), a
//! fake mesh (records standings), stub hooks, a real store in a temporary directory.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use rpcmesh_protocol::digest::sha256;
use rpcmesh_protocol::messages::{BlockRef, Evidence, LieKind, MessageHeader, Receipt};
use rpcmesh_protocol::validate::Limits;
use rpcmesh_protocol::{Identity, PublicKey, Signed};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::mesh::{MeshInput, Standing};
use crate::metrics::NodeMetrics;
use crate::p2p::{Command, InboundGossip, P2pHandle, P2pStatus};
use crate::store::{CordonRecord, Store, StoreConfig};

const NET: &str = "evidence-unit";
const CHAIN: u64 = 1;
const ANCHOR: BlockRef = BlockRef { number: 100, hash: [7; 32] };
const STEP: Duration = Duration::from_secs(10);

fn id(n: u8) -> Identity {
    Identity::from_secret_bytes([n; 32])
}

/// `accused` answered `requester` a balance of `answer`; the receipt binds both bytes.
fn finding(accused: &Identity, requester: &Identity, answer: &str) -> Evidence {
    let request = br#"{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0x00000000000000000000000000000000000000aa","0x64"]}"#.to_vec();
    let response = format!(r#"{{"jsonrpc":"2.0","id":1,"result":"{answer}"}}"#).into_bytes();
    let receipt = Receipt {
        header: MessageHeader::new(NET, 5, crate::clock::now_ms(), 2_000),
        requester: requester.public_key(),
        chain_id: CHAIN,
        request_digest: sha256(&request),
        response_digest: sha256(&response),
        head: Some(100),
    };
    Evidence {
        header: MessageHeader::new(NET, 0, 0, 1),
        accused: accused.public_key(),
        chain_id: CHAIN,
        kind: LieKind::State,
        request,
        response,
        receipt: Signed::sign(receipt, accused),
        anchor: ANCHOR,
        material: vec![b"{}".to_vec()],
    }
}

fn signed_by(reporter: &Identity, mut e: Evidence) -> Vec<u8> {
    e.header = MessageHeader::new(NET, crate::clock::now_ms() * 1000, crate::clock::now_ms(), 60_000);
    Signed::sign(e, reporter).to_bytes()
}

/// Trusted chain of the stub: `ANCHOR` is on it, any other hash at its height is not, other
/// heights are unknown.
struct Chain;
impl TrustedChain for Chain {
    fn contains(&self, chain_id: u64, block: &BlockRef) -> Option<bool> {
        (chain_id == CHAIN && block.number == ANCHOR.number).then_some(block.hash == ANCHOR.hash)
    }
}

/// The stub judge: a "0x0" answer is honest, anything else a proven lie.
fn stub_hooks() -> EvidenceHooks {
    let recheck = |e: &Evidence| -> Result<(), String> {
        if e.response.windows(5).any(|w| w == b"\"0x0\"") { Err("the proof agrees".into()) } else { Ok(()) }
    };
    EvidenceHooks { trusted_chain: Some(Arc::new(Chain)), recheck: Some(Arc::new(recheck)) }
}

struct Rig {
    handle: EvidenceHandle,
    inbound: mpsc::Sender<InboundGossip>,
    commands: mpsc::Receiver<Command>,
    mesh: mpsc::Receiver<MeshInput>,
    metrics: NodeMetrics,
    cancel: CancellationToken,
    done: tokio::task::JoinHandle<()>,
    store: Store,
}

impl Rig {
    fn start(me: &Identity, dir: &std::path::Path, hooks: EvidenceHooks) -> Rig {
        let store = Store::open(dir, StoreConfig::default()).unwrap();
        let (cmd_tx, commands) = mpsc::channel(64);
        let (_status_tx, status_rx) = watch::channel(P2pStatus::default());
        let p2p = P2pHandle::new(
            me.peer_id(),
            cmd_tx,
            status_rx,
            crate::p2p::StreamControl(libp2p_stream::Behaviour::new().new_control()),
        );
        let (mesh_tx, mesh) = mpsc::channel(64);
        let (inbound, inbound_rx) = mpsc::channel(8);
        let metrics = NodeMetrics::default();
        let settings = EvidenceSettings {
            network_id: NET.into(),
            limits: Limits::default(),
            cordon_ms: 3_600_000,
            retention_ms: 7 * 24 * 3_600_000,
            max_evidence: 100,
            max_filtered_subjects: 2,
        };
        let (handle, task) = EvidenceTask::new(
            Arc::new(me.clone()),
            settings,
            store.clone(),
            p2p,
            mesh_tx,
            hooks,
            inbound_rx,
            metrics.clone(),
        )
        .unwrap();
        let cancel = CancellationToken::new();
        let done = tokio::spawn(task.run(cancel.clone()));
        Rig { handle, inbound, commands, mesh, metrics, cancel, done, store }
    }

    async fn stop(self) {
        self.cancel.cancel();
        self.done.await.unwrap();
    }

    /// The next p2p command.
    async fn next_command(&mut self) -> Command {
        tokio::time::timeout(STEP, self.commands.recv()).await.unwrap().unwrap()
    }

    async fn verdict(&mut self) -> MessageAcceptance {
        match self.next_command().await {
            Command::ReportValidation { acceptance, .. } => acceptance,
            other => panic!("expected a verdict, got {other:?}"),
        }
    }

    /// The latest standings the mesh received (waits for one).
    async fn standings(&mut self) -> Arc<HashMap<PublicKey, Standing>> {
        let mut last = None;
        let first = tokio::time::timeout(STEP, self.mesh.recv()).await.unwrap().unwrap();
        if let MeshInput::Standings(s) = first {
            last = Some(s);
        }
        while let Ok(MeshInput::Standings(s)) = self.mesh.try_recv() {
            last = Some(s);
        }
        last.expect("standings")
    }

    async fn gossip(&self, data: Vec<u8>) {
        let msg = InboundGossip {
            id: MessageId::from(sha256(&data)[..20].to_vec()),
            from: PeerId::random(),
            data,
            received_at_ms: crate::clock::now_ms(),
        };
        self.inbound.send(msg).await.unwrap();
    }

    fn count(&self, outcome: &str, reason: &str) -> u64 {
        self.metrics
            .evidence
            .get_or_create(&crate::metrics::EvidenceLabels { outcome: outcome.into(), reason: reason.into() })
            .get()
    }
}

fn cordoned(s: &HashMap<PublicKey, Standing>, who: &Identity) -> bool {
    s.get(&who.public_key()).is_some_and(|s| s.cordon(CHAIN).is_some())
}

#[tokio::test]
async fn own_report_is_signed_kept_cordoned_and_published() {
    let dir = tempfile::tempdir().unwrap();
    let (me, liar) = (id(3), id(2));
    let mut rig = Rig::start(&me, dir.path(), stub_hooks());
    assert!(rig.standings().await.is_empty());
    let handle = rig.handle.clone();
    let report = tokio::spawn(async move { handle.report(finding(&liar, &id(3), "0x1")).await });
    let data = match rig.next_command().await {
        Command::Publish { kind, data, reply } => {
            assert_eq!(kind, crate::p2p::TopicKind::Evidence);
            reply.send(Ok(())).unwrap();
            data
        }
        other => panic!("expected a publish, got {other:?}"),
    };
    let outcome = report.await.unwrap().unwrap();
    assert!(outcome.verified && outcome.published);
    // What went out is valid evidence signed by this node.
    let signed = Signed::<Evidence>::from_bytes(&data).unwrap();
    assert_eq!(signed.signer, me.public_key());
    signed.verify().unwrap();
    let s = rig.standings().await;
    assert!(cordoned(&s, &id(2)));
    assert_eq!(s[&id(2).public_key()].proven_lies, 1);
    let list = rig.handle.list().await.unwrap();
    assert_eq!(list.len(), 1);
    assert!(list[0].own && list[0].verified && list[0].cordoning);
    assert_eq!(list[0].method, "eth_getBalance");
    let detail = rig.handle.show(outcome.id).await.unwrap().unwrap();
    assert_eq!(detail.signed_hex, hex::encode(&data));
    assert_eq!(detail.decoded["kind"], "state");
    assert_eq!(rig.count("reported", ""), 1);
    rig.stop().await;
}

#[tokio::test]
async fn a_report_the_judge_disproves_is_refused_and_nothing_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = Rig::start(&id(3), dir.path(), stub_hooks());
    rig.standings().await;
    let err = rig.handle.report(finding(&id(2), &id(3), "0x0")).await.unwrap_err();
    assert!(matches!(err, EvidenceError::Invalid(_)), "{err}");
    let mut off = finding(&id(2), &id(3), "0x1");
    off.anchor.hash = [8; 32];
    assert!(matches!(rig.handle.report(off).await, Err(EvidenceError::Invalid(_))));
    assert!(rig.handle.list().await.unwrap().is_empty());
    assert!(rig.commands.try_recv().is_err(), "nothing published");
    rig.stop().await;
}

#[tokio::test]
async fn gossip_verdicts_follow_the_judgement() {
    let dir = tempfile::tempdir().unwrap();
    let (reporter, liar) = (id(1), id(2));
    let mut rig = Rig::start(&id(3), dir.path(), stub_hooks());
    rig.standings().await;

    // Proven: accepted, kept, cordoned.
    let good = signed_by(&reporter, finding(&liar, &reporter, "0x1"));
    rig.gossip(good.clone()).await;
    assert_eq!(rig.verdict().await, MessageAcceptance::Accept);
    assert!(cordoned(&*rig.standings().await, &liar));
    // The same bytes again: known, ignored.
    rig.gossip(good).await;
    assert_eq!(rig.verdict().await, MessageAcceptance::Ignore);
    assert_eq!(rig.count("ignored", "duplicate"), 1);

    // Forged receipt signature, digest mismatch, a lie the material disproves, an anchor off
    // the trusted chain: rejected (the forwarder is penalised).
    let mut forged = finding(&liar, &reporter, "0x2");
    forged.receipt.signature[0] ^= 1;
    let mut mismatch = finding(&liar, &reporter, "0x3");
    mismatch.response = br#"{"jsonrpc":"2.0","id":1,"result":"0x4"}"#.to_vec();
    let honest = finding(&liar, &reporter, "0x0");
    let mut off_chain = finding(&liar, &reporter, "0x5");
    off_chain.anchor.hash = [9; 32];
    for (e, code) in [
        (forged, "bad_signature"),
        (mismatch, "invalid_field"),
        (honest, "not_proven"),
        (off_chain, "anchor_off_chain"),
    ] {
        rig.gossip(signed_by(&reporter, e)).await;
        assert_eq!(rig.verdict().await, MessageAcceptance::Reject, "{code}");
        assert_eq!(rig.count("rejected", code), 1, "{code}");
    }

    // An anchor this node cannot place: ignored, not rejected, not kept.
    let mut unknown = finding(&liar, &reporter, "0x6");
    unknown.anchor.number = 5;
    rig.gossip(signed_by(&reporter, unknown)).await;
    assert_eq!(rig.verdict().await, MessageAcceptance::Ignore);
    assert_eq!(rig.count("ignored", "anchor_unknown"), 1);
    assert_eq!(rig.handle.list().await.unwrap().len(), 1);
    rig.stop().await;
}

#[tokio::test]
async fn without_a_judge_gossip_is_ignored_and_own_reports_are_unverified() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = Rig::start(&id(3), dir.path(), EvidenceHooks::default());
    rig.standings().await;
    rig.gossip(signed_by(&id(1), finding(&id(2), &id(1), "0x1"))).await;
    assert_eq!(rig.verdict().await, MessageAcceptance::Ignore);
    assert_eq!(rig.count("ignored", "no_trusted_chain"), 1);
    let handle = rig.handle.clone();
    let report = tokio::spawn(async move { handle.report(finding(&id(2), &id(3), "0x1")).await });
    if let Command::Publish { reply, .. } = rig.next_command().await {
        reply.send(Ok(())).unwrap();
    }
    let outcome = report.await.unwrap().unwrap();
    assert!(!outcome.verified);
    // Our own integrity layer found it: cordoned here, but it counts as no proven lie.
    let s = rig.standings().await;
    assert!(cordoned(&s, &id(2)));
    assert_eq!(s[&id(2).public_key()].proven_lies, 0);
    rig.stop().await;
}

#[tokio::test]
async fn cordons_survive_restarts_and_a_clear_survives_too() {
    let dir = tempfile::tempdir().unwrap();
    let (reporter, liar) = (id(1), id(2));
    let good = signed_by(&reporter, finding(&liar, &reporter, "0x1"));
    {
        let mut rig = Rig::start(&id(3), dir.path(), stub_hooks());
        rig.standings().await;
        rig.gossip(good.clone()).await;
        assert_eq!(rig.verdict().await, MessageAcceptance::Accept);
        rig.standings().await;
        rig.stop().await;
    }
    {
        let mut rig = Rig::start(&id(3), dir.path(), stub_hooks());
        let s = rig.standings().await;
        assert!(cordoned(&s, &liar), "the cordon came back from the store");
        assert_eq!(rig.metrics.cordons_active.get(), 1);
        assert_eq!(rig.handle.clear(liar.public_key(), None).await.unwrap(), vec![CHAIN]);
        assert!(!cordoned(&*rig.standings().await, &liar));
        // The cleared bundle replayed: recognised, not applied again.
        rig.gossip(good).await;
        assert_eq!(rig.verdict().await, MessageAcceptance::Ignore);
        rig.stop().await;
    }
    let mut rig = Rig::start(&id(3), dir.path(), stub_hooks());
    let s = rig.standings().await;
    assert!(!cordoned(&s, &liar), "the clear held across the restart");
    assert_eq!(s[&liar.public_key()].proven_lies, 1, "the evidence stays on record");
    assert_eq!(rig.handle.list().await.unwrap().len(), 1);
    rig.stop().await;
}

#[tokio::test]
async fn lapsed_cordons_are_dropped_at_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        let rec = CordonRecord {
            since_ms: 1,
            until_ms: 2,
            evidence_id: 0,
            kind: "state".into(),
            reporter: id(1).public_key(),
        };
        store.put_cordon(&id(2).public_key(), CHAIN, &rec).unwrap();
    }
    let mut rig = Rig::start(&id(3), dir.path(), stub_hooks());
    assert!(rig.standings().await.is_empty());
    assert!(rig.store.cordons().unwrap().is_empty());
    rig.stop().await;
}

#[test]
fn the_book_extends_expires_and_counts_distinct_lies() {
    let (a, r) = (id(2).public_key(), id(1).public_key());
    let rec = |since, until, ev| CordonRecord {
        since_ms: since,
        until_ms: until,
        evidence_id: ev,
        kind: "state".into(),
        reporter: r,
    };
    let mut book = CordonBook::default();
    assert!(book.cordon(a, 1, rec(10, 100, 1)));
    assert!(!book.cordon(a, 1, rec(20, 50, 2)), "a shorter cordon changes nothing");
    assert!(book.cordon(a, 1, rec(30, 200, 3)));
    let cur = book.get(&a, 1).unwrap();
    assert_eq!((cur.since_ms, cur.until_ms, cur.evidence_id), (10, 200, 3));
    assert!(book.cordon(a, 137, rec(30, 150, 4)));
    assert_eq!(book.expire(150), vec![(a, 137)]);
    assert_eq!(book.active(), 1);
    assert!(book.record_lie(a, [1; 32]));
    assert!(!book.record_lie(a, [1; 32]), "one lie seen by two reporters counts once");
    assert!(book.record_lie(a, [2; 32]));
    let s = book.standings(|_| "why".into());
    assert_eq!(s[&a].proven_lies, 2);
    assert_eq!(s[&a].cordons.len(), 1);
    assert_eq!(book.clear(&a, Some(1)), vec![1]);
    assert_eq!(book.active(), 0);
}
