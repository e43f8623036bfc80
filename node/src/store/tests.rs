//! Unit tests that need to reach under the API: schema versions and damaged values written
//! straight into sled's trees. The behaviour seen through the API is tested in `tests/it/store.rs`.

use proptest::prelude::*;
use rpcmesh_protocol::messages::{MessageHeader, Observation};
use rpcmesh_protocol::{Identity, Signed};

use super::*;

fn open(dir: &Path) -> Store {
    Store::open(dir, StoreConfig::default()).unwrap()
}

fn announcement(id: &Identity, seq: u64, expires_at_ms: u64) -> Signed<CapacityAnnouncement> {
    let mut header = MessageHeader::new("unit", seq, 1_000, 1);
    header.expires_at_ms = expires_at_ms;
    Signed::sign(CapacityAnnouncement::new(header, vec![], vec![], None, "rpcmesh/test".into()), id)
}

#[test]
fn a_new_store_records_the_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let raw = store.inner.meta.get(SCHEMA_KEY).unwrap().unwrap();
    assert_eq!(raw.as_ref(), SCHEMA_VERSION.to_be_bytes());
    drop(store);
    open(dir.path());
}

#[test]
fn a_newer_schema_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.inner.meta.insert(SCHEMA_KEY, &(SCHEMA_VERSION + 1).to_be_bytes()).unwrap();
    drop(store);
    let err = Store::open(dir.path(), StoreConfig::default()).unwrap_err();
    match &err {
        StoreError::NewerSchema { path, found, supported } => {
            assert_eq!(path, dir.path());
            assert_eq!((*found, *supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("Upgrade rpcmesh"), "{msg}");
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
    assert!(msg.contains(&format!("schema version {}", SCHEMA_VERSION + 1)), "{msg}");
}

#[test]
fn a_malformed_or_unknown_schema_version_is_corruption() {
    for raw in [&b"\x01"[..], &0u32.to_be_bytes()[..]] {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.inner.meta.insert(SCHEMA_KEY, raw).unwrap();
        drop(store);
        let err = Store::open(dir.path(), StoreConfig::default()).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("move the directory aside"), "{err}");
    }
}

#[test]
fn records_without_a_schema_version_are_not_ours() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.put_peer(&PublicKey([1; 32]), &PeerRecord { addrs: vec![], last_seen_ms: 1 }).unwrap();
    store.inner.meta.remove(SCHEMA_KEY).unwrap();
    drop(store);
    let err = Store::open(dir.path(), StoreConfig::default()).unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt { what, .. } if what.contains("no schema version")), "{err:?}");
}

#[test]
fn damaged_values_are_errors_for_single_reads_and_skipped_by_bulk_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let garbage: &[u8] = b"\xff\x00garbage";
    let (good, bad) = (Identity::from_secret_bytes([1; 32]), Identity::from_secret_bytes([2; 32]));
    let inner = &store.inner;

    inner.meta.insert(IDENTITY_KEY, garbage).unwrap();
    assert!(matches!(store.identity(), Err(StoreError::Corrupt { .. })));

    assert!(store.put_announcement(&announcement(&good, 1, u64::MAX)).unwrap());
    inner.announcements.insert(bad.public_key().0, garbage).unwrap();
    let err = store.announcement(&bad.public_key()).unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt { what, .. } if what.contains("announcements entry")), "{err:?}");
    assert_eq!(store.announcements().unwrap().len(), 1);

    inner.peers.insert([3; 32], garbage).unwrap();
    inner.peers.insert(b"short key", encoding::to_bytes(&PeerRecord { addrs: vec![], last_seen_ms: 0 })).unwrap();
    store
        .put_peer(&PublicKey([4; 32]), &PeerRecord { addrs: vec!["/ip4/1.2.3.4/tcp/1".into()], last_seen_ms: 5 })
        .unwrap();
    assert_eq!(store.peers().unwrap().iter().map(|(k, _)| *k).collect::<Vec<_>>(), vec![PublicKey([4; 32])]);

    inner.evidence.insert(7u64.to_be_bytes(), garbage).unwrap();
    assert!(store.evidence().unwrap().is_empty());

    let subject = PublicKey([9; 32]);
    inner.attestations.insert([&subject.0[..], &[0; 48]].concat(), garbage).unwrap();
    assert!(store.attestations_about(&subject).unwrap().is_empty());

    // prune removes the damaged announcement; a new one may also simply replace a damaged one.
    let stats = store.prune(0).unwrap();
    assert_eq!(stats.corrupt_removed, 1);
    assert_eq!(store.announcement(&bad.public_key()).unwrap(), None);
    inner.announcements.insert(bad.public_key().0, garbage).unwrap();
    assert!(store.put_announcement(&announcement(&bad, 1, u64::MAX)).unwrap());
    assert_eq!(store.announcement(&bad.public_key()).unwrap().unwrap().body.header.seq, 1);
}

#[test]
fn an_orphaned_time_index_entry_is_pruned_without_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreConfig { attestation_ttl_ms: 10, ..StoreConfig::default() }).unwrap();
    store.inner.attestations_by_time.insert(b"\0\0\0", &[][..]).unwrap();
    store.inner.attestations_by_time.insert([0u8; ATT_INDEX_KEY_LEN], &[][..]).unwrap();
    assert_eq!(store.prune(1_000).unwrap().attestations_expired, 2);
    assert!(store.inner.attestations_by_time.is_empty());
}

fn attestation(attester: &Identity, subject: [u8; 32], issued_at_ms: u64, chain_id: u64) -> Signed<HealthAttestation> {
    let body = HealthAttestation {
        header: MessageHeader::new("unit", 1, issued_at_ms, 1),
        observation: Observation {
            subject: PublicKey(subject),
            chain_id,
            window_start_ms: 0,
            window_end_ms: 0,
            probes_sent: 0,
            probes_ok: 0,
            latency_p50_us: 0,
            latency_p95_us: 0,
            observed_head: None,
            reference_head: None,
            head_lag_blocks: None,
        },
    };
    Signed::sign(body, attester)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Byte order of the keys is (subject, issued_at, attester, chain) order, and the time
    /// index orders by issue time first: what range scans and pruning rely on.
    #[test]
    fn key_order_is_field_order(
        a in (any::<[u8; 32]>(), any::<u64>(), 0u8..3, any::<u64>()),
        b in (any::<[u8; 32]>(), any::<u64>(), 0u8..3, any::<u64>()),
    ) {
        let ids = [1u8, 2, 3].map(|s| Identity::from_secret_bytes([s; 32]));
        let (ka, kb) = (
            attestation_key(&attestation(&ids[usize::from(a.2)], a.0, a.1, a.3)),
            attestation_key(&attestation(&ids[usize::from(b.2)], b.0, b.1, b.3)),
        );
        let fields = |x: &([u8; 32], u64, u8, u64)| (x.0, x.1, ids[usize::from(x.2)].public_key().0, x.3);
        prop_assert_eq!(ka.cmp(&kb), fields(&a).cmp(&fields(&b)));
        let (ia, ib) = (attestation_index_key(&ka), attestation_index_key(&kb));
        prop_assert_eq!(ia.cmp(&ib), (a.1, ka).cmp(&(b.1, kb)));
        prop_assert_eq!(&ia[8..], &ka[..]);
    }
}

fn evidence_at(at_ms: u64, n: u8) -> EvidenceRecord {
    EvidenceRecord {
        at_ms,
        accused: Identity::from_secret_bytes([n; 32]).public_key(),
        kind: "state".into(),
        detail: EVIDENCE_VERIFIED.into(),
        data: vec![n],
    }
}

#[test]
fn cordons_survive_a_reopen_and_clear_per_chain_or_all() {
    let dir = tempfile::tempdir().unwrap();
    let a = Identity::from_secret_bytes([1; 32]).public_key();
    let b = Identity::from_secret_bytes([2; 32]).public_key();
    let rec = |id| CordonRecord { since_ms: 1, until_ms: 2, evidence_id: id, kind: "state".into(), reporter: b };
    {
        let store = open(dir.path());
        store.put_cordon(&a, 1, &rec(1)).unwrap();
        store.put_cordon(&a, 137, &rec(2)).unwrap();
        store.put_cordon(&b, 1, &rec(3)).unwrap();
        store.flush().unwrap();
    }
    let store = open(dir.path());
    let ids = |s: &Store| s.cordons().unwrap().into_iter().map(|(_, _, r)| r.evidence_id).collect::<Vec<_>>();
    assert_eq!(ids(&store).len(), 3);
    store.remove_cordons(&a, Some(137)).unwrap();
    assert_eq!(store.cordons().unwrap().iter().filter(|(k, _, _)| *k == a).count(), 1);
    store.remove_cordons(&a, None).unwrap();
    assert_eq!(ids(&store), vec![3]);
}

#[test]
fn evidence_is_pruned_by_age_and_read_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let ids: Vec<u64> = (0..5).map(|i| store.put_evidence(&evidence_at(100 + i, i as u8)).unwrap()).collect();
    assert_eq!(store.evidence_by_id(ids[2]).unwrap().unwrap().data, vec![2]);
    assert_eq!(store.prune_evidence_before(103).unwrap(), 3);
    assert!(store.evidence_by_id(ids[2]).unwrap().is_none());
    assert_eq!(store.evidence().unwrap().len(), 2);
    assert_eq!(store.prune_evidence_before(0).unwrap(), 0);
}

#[test]
fn trusted_headers_survive_a_reopen_newest_first_per_chain_and_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        for n in 0..(TRUSTED_HEADERS_KEPT as u64 + 300) {
            store.put_trusted_header(1, n, format!("{{\"n\":{n}}}").as_bytes()).unwrap();
        }
        store.put_trusted_header(137, 5, b"{}").unwrap();
        store.flush().unwrap();
    }
    let store = open(dir.path());
    let all = store.trusted_headers(usize::MAX).unwrap();
    let chain1: Vec<u64> = all.iter().filter(|(c, _, _)| *c == 1).map(|(_, n, _)| *n).collect();
    assert!(chain1.len() <= TRUSTED_HEADERS_KEPT + 256, "pruned as it grew: {}", chain1.len());
    assert_eq!(chain1.first(), Some(&(TRUSTED_HEADERS_KEPT as u64 + 299)), "newest first");
    assert!(chain1.windows(2).all(|w| w[0] > w[1]));
    assert_eq!(all.iter().filter(|(c, _, _)| *c == 137).count(), 1);
    let few = store.trusted_headers(3).unwrap();
    assert_eq!(few.iter().filter(|(c, _, _)| *c == 1).count(), 3, "at most max per chain");
    assert_eq!(
        few.iter().find(|(c, _, _)| *c == 1).map(|(_, _, j)| j.clone()),
        Some(format!("{{\"n\":{}}}", TRUSTED_HEADERS_KEPT + 299).into_bytes())
    );
}

#[test]
fn a_damaged_settings_file_is_corruption_with_advice() {
    let damaged: [&[u8]; 3] = [
        // Not UTF-8: sled would blame "a sled version earlier than 0.29".
        b"segment_size: 524288\nuse_compression: false\nversion: 0.34\n\xff\xfe\x00\x00\x00\x00",
        // Another segment size: sled would ask to "change it back".
        b"segment_size: 12\nuse_compression: false\nversion: 0.34\nXXXX",
        // Garbage.
        b"garbage\x00\x01 that is long enough",
    ];
    for conf in damaged {
        let dir = tempfile::tempdir().unwrap();
        drop(open(dir.path()));
        std::fs::write(dir.path().join("conf"), conf).unwrap();
        let err = Store::open(dir.path(), StoreConfig::default()).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        let msg = err.to_string();
        for advice in ["move the directory aside", "rebuilds its view of the mesh", "evidence", "cordons", "are lost"] {
            assert!(msg.contains(advice), "{advice:?} missing from: {msg}");
        }
        assert!(!msg.contains("earlier than 0.29") || msg.contains("damaged"), "{msg}");
    }
}
