//! Unit tests of the [`MeshState`] fold: replay rules, trust, reference heads, health derivation,
//! attestations, forgetting and snapshot layout. Fixed times only; no wall clock, no sleeps.

use rpcmesh_protocol::messages::{BlockRef, ChainCapacity, MembershipCert, Observation};
use rpcmesh_protocol::{Identity, MessageHeader};

use super::*;
use crate::config::{TrustConfig, TrustMode};

const NET: &str = "testnet-1";
const T0: u64 = 1_760_000_000_000;
/// Announcement lifetime.
const TTL: u64 = 60_000;
const CHAIN: u64 = 1;
const POLYGON: u64 = 137;
const MAX_LAG: u64 = 5;
const PROBE_FRESH: u64 = 20_000;
const ATT_FRESH: u64 = 30_000;
/// The configured announcement heartbeat: the tests' announcements live three of them.
const HEARTBEAT: u64 = TTL / 3;
const FORGET: u64 = 120_000;
const PROBE_WINDOW: u64 = 60_000;

fn id(n: u8) -> Identity {
    Identity::from_secret_bytes([n; 32])
}

fn settings() -> MeshSettings {
    MeshSettings {
        max_head_lag_blocks: MAX_LAG,
        probe_fresh_ms: PROBE_FRESH,
        attestation_fresh_ms: ATT_FRESH,
        announce_heartbeat_ms: HEARTBEAT,
        forget_after_ms: FORGET,
        probe_window_ms: PROBE_WINDOW,
    }
}

/// A federated state owned by `own`, trusting `peers` explicitly and certificates of `roots`.
fn federated(own: &Identity, peers: &[&Identity], roots: &[&Identity]) -> MeshState {
    let cfg = TrustConfig {
        mode: TrustMode::Federated,
        peers: peers.iter().map(|p| p.peer_id().to_string()).collect(),
        federations: roots.iter().map(|r| r.public_key().to_hex()).collect(),
        ..TrustConfig::default()
    };
    MeshState::new(own.public_key(), TrustPolicy::new(&cfg, own.public_key(), NET), settings())
}

fn open(own: &Identity, roots: &[&Identity]) -> MeshState {
    let cfg = TrustConfig {
        mode: TrustMode::Open,
        federations: roots.iter().map(|r| r.public_key().to_hex()).collect(),
        ..TrustConfig::default()
    };
    MeshState::new(own.public_key(), TrustPolicy::new(&cfg, own.public_key(), NET), settings())
}

fn chain(chain_id: u64, head: Option<u64>) -> ChainCapacity {
    ChainCapacity {
        chain_id,
        head: head.map(|number| BlockRef { number, hash: [number as u8; 32] }),
        max_requests_per_sec: 100,
        utilisation_permille: 10,
        max_concurrent_relays: 8,
        archive: false,
        method_groups: vec!["eth".into()],
        policies: vec![],
    }
}

fn announce(
    signer: &Identity,
    seq: u64,
    at: u64,
    chains: Vec<ChainCapacity>,
    cert: Option<Signed<MembershipCert>>,
) -> Signed<CapacityAnnouncement> {
    announce_for(signer, seq, at, TTL, chains, cert)
}

/// [`announce`] living `ttl` ms.
fn announce_for(
    signer: &Identity,
    seq: u64,
    at: u64,
    ttl: u64,
    chains: Vec<ChainCapacity>,
    cert: Option<Signed<MembershipCert>>,
) -> Signed<CapacityAnnouncement> {
    let header = MessageHeader::new(NET, seq, at, ttl);
    Signed::sign(CapacityAnnouncement::new(header, chains, vec![], cert, "rpcmesh/test".into()), signer)
}

/// An announcement of `CHAIN` only, without certificate.
fn ann(signer: &Identity, seq: u64, at: u64, head: Option<u64>) -> Signed<CapacityAnnouncement> {
    announce(signer, seq, at, vec![chain(CHAIN, head)], None)
}

fn cert(member: &Identity, root: &Identity, from: u64, ttl: u64) -> Signed<MembershipCert> {
    let header = MessageHeader::new(NET, 1, from, ttl);
    Signed::sign(
        MembershipCert { header, member: member.public_key(), operator_name: "Op".into(), vetting: None },
        root,
    )
}

/// `attester`'s attestation about `subject` on `CHAIN`: `ok` of `sent` probes succeeded.
fn attest(attester: &Identity, subject: &Identity, seq: u64, at: u64, sent: u32, ok: u32) -> Signed<HealthAttestation> {
    let body = HealthAttestation {
        header: MessageHeader::new(NET, seq, at, TTL),
        observation: Observation {
            subject: subject.public_key(),
            chain_id: CHAIN,
            window_start_ms: at.saturating_sub(10_000),
            window_end_ms: at,
            probes_sent: sent,
            probes_ok: ok,
            latency_p50_us: 1_000 + seq as u32,
            latency_p95_us: 2_000 + seq as u32,
            observed_head: None,
            reference_head: None,
            head_lag_blocks: None,
        },
    };
    Signed::sign(body, attester)
}

/// Records `ok` successful and `fail` failed probes of `who` on `CHAIN` at `at`.
fn probes(s: &mut MeshState, who: &Identity, ok: usize, fail: usize, head: Option<u64>, at: u64) {
    for i in 0..ok + fail {
        s.apply_probe(&who.public_key(), CHAIN, 500, i < ok, head, at);
    }
}

fn view(snap: &MeshSnapshot, who: &Identity) -> ProviderView {
    snap.provider(&who.public_key()).expect("provider in snapshot").clone()
}

fn chain_view(s: &mut MeshState, who: &Identity, now: u64) -> ChainView {
    view(&s.snapshot(now), who).chain(CHAIN).expect("chain in view").clone()
}

fn health(s: &mut MeshState, who: &Identity, now: u64) -> Health {
    chain_view(s, who, now).health
}

// ---------------------------------------------------------------- announcements

#[test]
fn newer_seq_replaces_announcement() {
    let (me, p) = (id(1), id(2));
    let mut s = federated(&me, &[&p], &[]);
    assert!(s.is_empty());
    assert!(s.apply_announcement(ann(&p, 1, T0, Some(100)), T0 + 5, Source::Gossip));
    assert!(s.apply_announcement(ann(&p, 2, T0 + 1_000, Some(110)), T0 + 1_005, Source::Gossip));
    assert_eq!(s.len(), 1);
    assert_eq!(s.seqs(), vec![(p.public_key(), 2)]);
    let v = view(&s.snapshot(T0 + 2_000), &p);
    assert_eq!((v.seq, v.announced_at_ms, v.received_at_ms), (2, T0 + 1_000, T0 + 1_005));
    assert_eq!(v.expires_at_ms, T0 + 1_000 + TTL);
    assert_eq!(v.chain(CHAIN).unwrap().announced_head, Some(110));
    assert_eq!(v.announcement.body.header.seq, 2);
}

#[test]
fn equal_or_older_seq_is_refused_and_view_unchanged() {
    let (me, p) = (id(1), id(2));
    let mut s = federated(&me, &[&p], &[]);
    assert!(s.apply_announcement(ann(&p, 5, T0, Some(100)), T0, Source::Store));
    let before = view(&s.snapshot(T0 + 10), &p);

    // Replay of the same seq with other content, then an older seq (reordering).
    assert!(!s.apply_announcement(ann(&p, 5, T0 + 500, Some(999)), T0 + 600, Source::Gossip));
    assert!(!s.apply_announcement(ann(&p, 4, T0 + 700, Some(999)), T0 + 800, Source::Gossip));
    assert!(!s.apply_announcement(ann(&p, 0, T0 + 900, None), T0 + 900, Source::Local));

    assert_eq!(s.seqs(), vec![(p.public_key(), 5)]);
    let after = view(&s.snapshot(T0 + 10), &p);
    assert_eq!(after.seq, 5);
    assert_eq!(after.announced_at_ms, before.announced_at_ms);
    assert_eq!(after.received_at_ms, T0);
    assert_eq!(after.source, Source::Store);
    assert_eq!(after.chain(CHAIN).unwrap().announced_head, Some(100));
    assert_eq!(*after.announcement, *before.announcement);
}

#[test]
fn source_is_kept_per_announcement() {
    let (me, a, b) = (id(1), id(2), id(3));
    let mut s = federated(&me, &[&a, &b], &[]);
    assert!(s.apply_announcement(ann(&me, 1, T0, Some(100)), T0, Source::Local));
    assert!(s.apply_announcement(ann(&a, 3, T0, Some(100)), T0, Source::Store));
    assert!(s.apply_announcement(ann(&b, 1, T0, Some(100)), T0, Source::Gossip));
    let snap = s.snapshot(T0);
    assert_eq!(view(&snap, &me).source, Source::Local);
    assert_eq!(view(&snap, &a).source, Source::Store);
    assert_eq!(view(&snap, &b).source, Source::Gossip);

    // A gossiped replay of the stored announcement does not turn it into a gossip one ...
    assert!(!s.apply_announcement(ann(&a, 3, T0 + 1, Some(100)), T0 + 1, Source::Gossip));
    assert_eq!(view(&s.snapshot(T0 + 1), &a).source, Source::Store);
    // ... a newer one does.
    assert!(s.apply_announcement(ann(&a, 4, T0 + 2, Some(101)), T0 + 2, Source::Gossip));
    assert_eq!(view(&s.snapshot(T0 + 2), &a).source, Source::Gossip);
}

#[test]
fn local_observations_survive_newer_announcement() {
    let (me, p) = (id(1), id(2));
    let mut s = federated(&me, &[&p], &[]);
    s.apply_announcement(ann(&p, 1, T0, Some(100)), T0, Source::Gossip);
    // 1 of 4 probes ok; the probe saw head 150.
    probes(&mut s, &p, 1, 3, Some(150), T0 + 100);
    let c = chain_view(&mut s, &p, T0 + 200);
    assert_eq!((c.health, c.success_rate, c.head), (Health::Unhealthy, Some(0.25), Some(150)));

    assert!(s.apply_announcement(ann(&p, 2, T0 + 300, Some(120)), T0 + 300, Source::Gossip));
    let c = chain_view(&mut s, &p, T0 + 400);
    assert_eq!(c.announced_head, Some(120));
    assert_eq!(c.success_rate, Some(0.25), "probe window lost on a newer announcement");
    assert_eq!(c.health, Health::Unhealthy);
    assert_eq!(c.head, Some(150), "probed head lost on a newer announcement");
    assert_eq!(c.latency_p50_us, Some(500));
}

#[test]
fn probe_of_unknown_provider_is_ignored() {
    let (me, p) = (id(1), id(2));
    let mut s = federated(&me, &[&p], &[]);
    probes(&mut s, &p, 0, 10, Some(5_000), T0);
    assert!(s.is_empty(), "a probe must not create a provider");
    s.apply_announcement(ann(&p, 1, T0 + 10, Some(100)), T0 + 10, Source::Gossip);
    let c = chain_view(&mut s, &p, T0 + 20);
    assert_eq!((c.health, c.success_rate, c.head), (Health::Healthy, None, Some(100)));
}

// ---------------------------------------------------------------- trust

#[test]
fn federated_trust_explicit_member_and_untrusted() {
    let (me, explicit, member, stranger, thief, rogue_member) = (id(1), id(2), id(3), id(4), id(5), id(6));
    let (root, rogue_root) = (id(50), id(51));
    let mut s = federated(&me, &[&explicit], &[&root]);
    let c = cert(&member, &root, T0 - 1_000, 3_600_000);
    s.apply_announcement(ann(&me, 1, T0, Some(100)), T0, Source::Local);
    s.apply_announcement(ann(&explicit, 1, T0, Some(100)), T0, Source::Gossip);
    s.apply_announcement(announce(&member, 1, T0, vec![chain(CHAIN, Some(100))], Some(c.clone())), T0, Source::Gossip);
    s.apply_announcement(ann(&stranger, 1, T0, Some(100)), T0, Source::Gossip);
    // A certificate signed by a root not in trust.federations.
    let rogue_cert = cert(&rogue_member, &rogue_root, T0 - 1_000, 3_600_000);
    s.apply_announcement(
        announce(&rogue_member, 1, T0, vec![chain(CHAIN, Some(100))], Some(rogue_cert)),
        T0,
        Source::Gossip,
    );
    // Someone else's valid certificate, replayed by another key.
    s.apply_announcement(announce(&thief, 1, T0, vec![chain(CHAIN, Some(100))], Some(c)), T0, Source::Gossip);

    let now = T0 + 10;
    assert_eq!(s.trust_of(&me.public_key(), now), TrustStatus::Own);
    assert_eq!(s.trust_of(&explicit.public_key(), now), TrustStatus::Explicit);
    assert_eq!(
        s.trust_of(&member.public_key(), now),
        TrustStatus::Member {
            federation: root.public_key().to_hex(),
            operator: "Op".into(),
            expires_at_ms: T0 - 1_000 + 3_600_000,
            vetting: None,
        }
    );
    for (who, why) in
        [(&stranger, "no membership certificate"), (&rogue_member, "not a federation"), (&thief, "another member")]
    {
        match s.trust_of(&who.public_key(), now) {
            TrustStatus::Untrusted { reason } => assert!(reason.contains(why), "{reason:?} vs {why:?}"),
            other => panic!("{why}: {other:?}"),
        }
    }
    // Unknown keys: untrusted unless explicit.
    assert!(!s.trust_of(&id(7).public_key(), now).is_trusted());
    // The snapshot carries the same decisions.
    let snap = s.snapshot(now);
    assert_eq!(view(&snap, &me).trust, TrustStatus::Own);
    assert_eq!(view(&snap, &explicit).trust, TrustStatus::Explicit);
    assert!(view(&snap, &member).trust.is_trusted());
    assert_eq!(view(&snap, &member).operator.as_deref(), Some("Op"));
    assert!(!view(&snap, &stranger).trust.is_trusted());
    assert!(!view(&snap, &thief).trust.is_trusted());
}

#[test]
fn open_mode_trusts_every_provider() {
    let (me, a, member, root) = (id(1), id(2), id(3), id(50));
    let mut s = open(&me, &[&root]);
    s.apply_announcement(ann(&me, 1, T0, Some(100)), T0, Source::Local);
    s.apply_announcement(ann(&a, 1, T0, Some(100)), T0, Source::Gossip);
    let c = cert(&member, &root, T0 - 1_000, 3_600_000);
    s.apply_announcement(announce(&member, 1, T0, vec![chain(CHAIN, Some(100))], Some(c)), T0, Source::Gossip);
    assert_eq!(s.trust_of(&me.public_key(), T0), TrustStatus::Own);
    assert_eq!(s.trust_of(&a.public_key(), T0), TrustStatus::Open);
    assert!(matches!(s.trust_of(&member.public_key(), T0), TrustStatus::Member { .. }));
    assert_eq!(s.trust_of(&id(9).public_key(), T0), TrustStatus::Open, "unknown keys are open too");
    // Open peers count for the reference head: 3 x 100 and 4 x 10_000 -> 10_000.
    assert_eq!(s.reference_heads(T0).get(&CHAIN), Some(&100));
    for n in 4..=7 {
        s.apply_announcement(ann(&id(n), 1, T0, Some(10_000)), T0, Source::Gossip);
    }
    assert_eq!(s.reference_heads(T0).get(&CHAIN), Some(&10_000));
    // ... and as attesters, even unknown ones.
    s.apply_attestation(&attest(&id(9), &a, 1, T0, 10, 0));
    assert_eq!(health(&mut s, &a, T0 + 1), Health::Unhealthy);
}

#[test]
fn maintain_rejudges_trust_when_certificate_expires() {
    let (me, member, other, peer, root) = (id(1), id(2), id(3), id(4), id(50));
    let mut s = federated(&me, &[&peer], &[&root]);
    let cert_expires = T0 + 10_000;
    let c = cert(&member, &root, T0 - 1_000, cert_expires - (T0 - 1_000));
    s.apply_announcement(ann(&me, 1, T0, Some(100)), T0, Source::Local);
    s.apply_announcement(announce(&member, 1, T0, vec![chain(CHAIN, Some(1_000))], Some(c)), T0, Source::Gossip);
    s.apply_announcement(ann(&other, 1, T0, Some(100)), T0, Source::Gossip); // untrusted
    s.apply_announcement(ann(&peer, 1, T0, Some(1_000)), T0, Source::Gossip);
    // The member's attestation about `other` counts while the member is trusted.
    s.apply_attestation(&attest(&member, &other, 1, cert_expires, 10, 0));

    assert!(s.maintain(cert_expires).is_empty());
    assert!(matches!(s.trust_of(&member.public_key(), cert_expires), TrustStatus::Member { .. }));
    // me 100, peer 1_000, member 1_000 -> 1_000 (without the member it would be 100).
    assert_eq!(s.reference_heads(cert_expires).get(&CHAIN), Some(&1_000));
    assert_eq!(health(&mut s, &other, cert_expires), Health::Unhealthy);

    let later = cert_expires + 1;
    assert!(s.maintain(later).is_empty());
    match s.trust_of(&member.public_key(), later) {
        TrustStatus::Untrusted { reason } => assert!(reason.contains("expired"), "{reason}"),
        other => panic!("still trusted after certificate expiry: {other:?}"),
    }
    let snap = s.snapshot(later);
    assert!(!view(&snap, &member).trust.is_trusted());
    assert_eq!(health(&mut s, &other, later), Health::Healthy, "an untrusted attester's attestation counted");
    // Without the member: me 100, peer 1_000 -> 100.
    assert_eq!(s.reference_heads(later), BTreeMap::from([(CHAIN, 100)]));
}

#[test]
fn maintain_trusts_certificate_once_it_becomes_valid() {
    let (me, member, root) = (id(1), id(2), id(50));
    let mut s = federated(&me, &[], &[&root]);
    // Issued 60 s ahead: beyond the 30 s clock skew allowance.
    let c = cert(&member, &root, T0 + 60_000, 3_600_000);
    s.apply_announcement(announce(&member, 1, T0, vec![chain(CHAIN, Some(100))], Some(c)), T0, Source::Gossip);
    assert!(!s.trust_of(&member.public_key(), T0).is_trusted());
    s.maintain(T0 + 59_000);
    assert!(s.trust_of(&member.public_key(), T0 + 59_000).is_trusted(), "within skew of issue time");
}

// ---------------------------------------------------------------- reference heads

#[test]
fn reference_head_ignores_untrusted_and_expired_providers() {
    let (me, a, b, liar, gone) = (id(1), id(2), id(3), id(4), id(5));
    let mut s = federated(&me, &[&a, &b, &gone], &[]);
    let now = T0 + 100_000;
    s.apply_announcement(ann(&a, 1, now, Some(100)), now, Source::Gossip);
    s.apply_announcement(ann(&b, 1, now, Some(101)), now, Source::Gossip);
    s.apply_announcement(ann(&liar, 1, now, Some(1_000_000)), now, Source::Gossip); // untrusted
    s.apply_announcement(ann(&gone, 1, T0, Some(5_000_000)), T0, Source::Gossip); // expires T0 + TTL
    // Counting either the untrusted or the expired one would make it 101.
    assert_eq!(s.reference_heads(now), BTreeMap::from([(CHAIN, 100)]));
    assert_eq!(s.snapshot(now).reference_heads, BTreeMap::from([(CHAIN, 100)]));
    // While the expired one was current it did count (a, b, gone -> 101).
    assert_eq!(s.reference_heads(T0 + TTL).get(&CHAIN), Some(&101));
    assert_eq!(s.reference_heads(T0 + TTL + 1).get(&CHAIN), Some(&100));
}

#[test]
fn reference_head_is_lower_median_for_even_count() {
    let me = id(1);
    let peers: Vec<Identity> = (2..=4).map(id).collect();
    let mut s = federated(&me, &peers.iter().collect::<Vec<_>>(), &[]);
    s.apply_announcement(ann(&me, 1, T0, Some(103)), T0, Source::Local);
    for (p, h) in peers.iter().zip([101, 100, 102]) {
        s.apply_announcement(ann(p, 1, T0, Some(h)), T0, Source::Gossip);
    }
    assert_eq!(s.reference_heads(T0).get(&CHAIN), Some(&101));
    // Two values: the lower one.
    let mut s2 = federated(&me, &[&peers[0]], &[]);
    s2.apply_announcement(ann(&me, 1, T0, Some(7)), T0, Source::Local);
    s2.apply_announcement(ann(&peers[0], 1, T0, Some(9)), T0, Source::Gossip);
    assert_eq!(s2.reference_heads(T0).get(&CHAIN), Some(&7));
}

#[test]
fn one_liar_among_three_trusted_cannot_move_reference_head() {
    let (me, a, b, liar) = (id(1), id(2), id(3), id(4));
    let mut s = federated(&me, &[&a, &b, &liar], &[]);
    s.apply_announcement(ann(&a, 1, T0, Some(100)), T0, Source::Gossip);
    s.apply_announcement(ann(&b, 1, T0, Some(101)), T0, Source::Gossip);
    s.apply_announcement(ann(&liar, 1, T0, Some(10_000)), T0, Source::Gossip);
    assert_eq!(s.reference_heads(T0), BTreeMap::from([(CHAIN, 101)]));
    // The honest ones are not made to look lagging by the liar.
    let snap = s.snapshot(T0);
    assert_eq!(view(&snap, &a).chain(CHAIN).unwrap().lag_blocks, Some(1));
    assert_eq!(view(&snap, &a).chain(CHAIN).unwrap().health, Health::Healthy);
    assert_eq!(view(&snap, &b).chain(CHAIN).unwrap().health, Health::Healthy);
    assert_eq!(view(&snap, &liar).chain(CHAIN).unwrap().lag_blocks, Some(101 - 10_000));
}

#[test]
fn reference_heads_are_per_chain_and_skip_providers_announcing_no_head() {
    let (me, a, b) = (id(1), id(2), id(3));
    let mut s = federated(&me, &[&a, &b], &[]);
    s.apply_announcement(
        announce(&me, 1, T0, vec![chain(CHAIN, Some(100)), chain(POLYGON, Some(5_000))], None),
        T0,
        Source::Local,
    );
    s.apply_announcement(announce(&a, 1, T0, vec![chain(POLYGON, Some(5_002))], None), T0, Source::Gossip);
    s.apply_announcement(ann(&b, 1, T0, None), T0, Source::Gossip);
    // b announces no head on CHAIN (its nodes are down): even a fresh probe of it is history,
    // so it does not count.
    s.apply_probe(&b.public_key(), CHAIN, 500, true, Some(104), T0);
    assert_eq!(s.reference_heads(T0), BTreeMap::from([(CHAIN, 100), (POLYGON, 5_000)]));
    s.apply_announcement(ann(&a, 2, T0, Some(102)), T0, Source::Gossip); // a leaves POLYGON
    // (100, 102) -> lower median 100; b's 104 would have made it 102.
    assert_eq!(s.reference_heads(T0 + 1), BTreeMap::from([(CHAIN, 100), (POLYGON, 5_000)]));
    // A fresh probe of a serving provider does count: a probed at 110 -> (100, 110) -> 100,
    // and with b back at 108: (100, 108, 110) -> 108.
    s.apply_probe(&a.public_key(), CHAIN, 500, true, Some(110), T0 + 2);
    s.apply_announcement(ann(&b, 2, T0 + 3, Some(108)), T0 + 3, Source::Gossip);
    assert_eq!(s.reference_heads(T0 + 4).get(&CHAIN), Some(&108));
}

// ---------------------------------------------------------------- health

#[test]
fn health_expired_after_expires_at() {
    let (me, p) = (id(1), id(2));
    let mut s = federated(&me, &[&p], &[]);
    s.apply_announcement(ann(&p, 1, T0, Some(100)), T0, Source::Gossip);
    let at_expiry = view(&s.snapshot(T0 + TTL), &p);
    assert!(!at_expiry.expired);
    assert_eq!(at_expiry.chain(CHAIN).unwrap().health, Health::Healthy);
    let after = view(&s.snapshot(T0 + TTL + 1), &p);
    assert!(after.expired);
    let c = after.chain(CHAIN).unwrap();
    assert_eq!(c.health, Health::Expired);
    assert!(c.health_reason.contains(&format!("expired at {}", T0 + TTL)), "{}", c.health_reason);
    // Expiry wins over everything, including a head-less chain.
    s.apply_announcement(ann(&p, 2, T0, None), T0, Source::Gossip);
    assert_eq!(health(&mut s, &p, T0 + TTL + 1), Health::Expired);
}

#[test]
fn health_down_when_chain_announces_no_head() {
    let (me, p) = (id(1), id(2));
    let mut s = federated(&me, &[&p], &[]);
    s.apply_announcement(
        announce(&p, 1, T0, vec![chain(CHAIN, None), chain(POLYGON, Some(9))], None),
        T0,
        Source::Gossip,
    );
    // Even our successful probes do not override a head-less announcement.
    probes(&mut s, &p, 5, 0, Some(100), T0);
    let v = view(&s.snapshot(T0 + 1), &p);
    assert_eq!(v.chain(CHAIN).unwrap().health, Health::Down);
    assert_eq!(v.chain(CHAIN).unwrap().announced_head, None);
    assert_eq!(v.chain(CHAIN).unwrap().announced_head_hash, None);
    assert_eq!(v.chain(POLYGON).unwrap().health, Health::Healthy, "only the head-less chain is down");
}

#[test]
fn health_unhealthy_when_our_probes_mostly_fail() {
    let (me, bad, half) = (id(1), id(2), id(3));
    let mut s = federated(&me, &[&bad, &half], &[]);
    s.apply_announcement(ann(&bad, 1, T0, Some(100)), T0, Source::Gossip);
    s.apply_announcement(ann(&half, 1, T0, Some(100)), T0, Source::Gossip);
    probes(&mut s, &bad, 2, 3, Some(100), T0 + 10);
    probes(&mut s, &half, 3, 3, Some(100), T0 + 10);
    let c = chain_view(&mut s, &bad, T0 + 20);
    assert_eq!((c.health, c.success_rate), (Health::Unhealthy, Some(0.4)));
    assert!(c.health_reason.contains("2/5"), "{}", c.health_reason);
    // Exactly half is not "mostly failing".
    let c = chain_view(&mut s, &half, T0 + 20);
    assert_eq!((c.health, c.success_rate), (Health::Healthy, Some(0.5)));
}

#[test]
fn health_unhealthy_from_trusted_attestations_without_probes() {
    let (me, p, x, y) = (id(1), id(2), id(3), id(4));
    let mut s = federated(&me, &[&p, &x, &y], &[]);
    s.apply_announcement(ann(&p, 1, T0, Some(100)), T0, Source::Gossip);
    // x and y are trusted attesters even before they announce themselves.
    assert!(s.apply_attestation(&attest(&x, &p, 1, T0, 10, 1)));
    assert!(s.apply_attestation(&attest(&y, &p, 1, T0, 10, 2)));
    let c = chain_view(&mut s, &p, T0 + 1);
    assert_eq!(c.health, Health::Unhealthy);
    assert_eq!(c.success_rate, Some(3.0 / 20.0));
    assert!(c.health_reason.contains("2 trusted attesters"), "{}", c.health_reason);
    assert_eq!(c.latency_p50_us, Some(1_001));
}

/// `attester`'s round about `subjects` (each as [`attest`] would say it).
fn round(attester: &Identity, subjects: &[(&Identity, u32)], seq: u64, at: u64) -> Signed<AttestationRound> {
    let observations =
        subjects.iter().map(|(subject, ok)| attest(attester, subject, seq, at, 10, *ok).body.observation).collect();
    Signed::sign(AttestationRound { header: MessageHeader::new(NET, seq, at, TTL), observations }, attester)
}

#[test]
fn a_round_counts_as_one_attestation_per_subject_and_is_not_replayed() {
    let (me, p, q, x) = (id(1), id(2), id(5), id(3));
    let mut s = federated(&me, &[&p, &q, &x], &[]);
    s.apply_announcement(ann(&p, 1, T0, Some(100)), T0, Source::Gossip);
    s.apply_announcement(ann(&q, 1, T0, Some(100)), T0, Source::Gossip);
    // One signed round of x: p failing, q fine.
    assert!(s.apply_round(&round(&x, &[(&p, 0), (&q, 10)], 7, T0)));
    assert_eq!(health(&mut s, &p, T0 + 1), Health::Unhealthy);
    let c = chain_view(&mut s, &q, T0 + 1);
    assert_eq!((c.health, c.success_rate), (Health::Healthy, Some(1.0)));
    assert!(c.health_reason.contains("1 trusted attesters"), "{}", c.health_reason);
    // The same round again, or an older one, changes nothing.
    assert!(!s.apply_round(&round(&x, &[(&p, 0), (&q, 10)], 7, T0)));
    assert!(!s.apply_round(&round(&x, &[(&p, 10), (&q, 0)], 6, T0 + 1)));
    assert_eq!(health(&mut s, &p, T0 + 2), Health::Unhealthy);
    // A newer round replaces x's word about the subjects it names, and only those.
    assert!(s.apply_round(&round(&x, &[(&p, 10)], 8, T0 + 3)));
    assert_eq!(health(&mut s, &p, T0 + 4), Health::Healthy);
    assert_eq!(chain_view(&mut s, &q, T0 + 4).success_rate, Some(1.0));
}

#[test]
fn our_fresh_probes_take_precedence_over_attestations() {
    let (me, p, x) = (id(1), id(2), id(3));
    let mut s = federated(&me, &[&p, &x], &[]);
    s.apply_announcement(ann(&p, 1, T0, Some(100)), T0, Source::Gossip);
    s.apply_attestation(&attest(&x, &p, 1, T0, 10, 0));
    assert_eq!(health(&mut s, &p, T0 + 1), Health::Unhealthy);
    probes(&mut s, &p, 4, 0, Some(100), T0 + 2);
    let c = chain_view(&mut s, &p, T0 + 3);
    assert_eq!((c.health, c.success_rate), (Health::Healthy, Some(1.0)));
}

#[test]
fn attestations_from_untrusted_attesters_do_not_count() {
    let (me, p, stranger) = (id(1), id(2), id(3));
    let mut s = federated(&me, &[&p], &[]);
    s.apply_announcement(ann(&p, 1, T0, Some(100)), T0, Source::Gossip);
    s.apply_announcement(ann(&stranger, 1, T0, Some(100)), T0, Source::Gossip);
    assert!(s.apply_attestation(&attest(&stranger, &p, 1, T0, 10, 0)));
    let v = view(&s.snapshot(T0 + 1), &p);
    let c = v.chain(CHAIN).unwrap();
    assert_eq!((c.health, c.success_rate, c.latency_p50_us), (Health::Healthy, None, None));
    // Still listed, marked untrusted.
    assert_eq!(v.attestations.len(), 1);
    assert_eq!(&*v.attestations[0].attester, stranger.peer_id().to_string());
    assert!(!v.attestations[0].attester_trusted);
    assert_eq!(v.attestations[0].probes_ok, 0);
}

#[test]
fn stale_attestations_do_not_count() {
    let (me, p, x) = (id(1), id(2), id(3));
    let mut s = federated(&me, &[&p, &x], &[]);
    s.apply_announcement(announce_ttl(&p, 1, T0, 10 * TTL), T0, Source::Gossip);
    // An attestation is fresh for its own lifetime (its signer's period, stretched or not).
    s.apply_attestation(&attest(&x, &p, 1, T0, 10, 0));
    assert_eq!(health(&mut s, &p, T0 + TTL), Health::Unhealthy);
    let c = chain_view(&mut s, &p, T0 + TTL + 1);
    assert_eq!((c.health, c.success_rate), (Health::Healthy, None));
}

#[test]
fn an_attestation_cannot_stay_fresh_past_the_stretch_cap() {
    let (me, p, x) = (id(1), id(2), id(3));
    let mut s = federated(&me, &[&p, &x], &[]);
    s.apply_announcement(announce_ttl(&p, 1, T0, 10 * 24 * 3600 * 1000), T0, Source::Gossip);
    let mut a = attest(&x, &p, 1, T0, 10, 0).body;
    a.header = MessageHeader::new(NET, 1, T0, 24 * 3600 * 1000);
    s.apply_attestation(&Signed::sign(a, &x));
    let cap = ATT_FRESH * super::MAX_STRETCH;
    assert_eq!(health(&mut s, &p, T0 + cap), Health::Unhealthy);
    assert_eq!(health(&mut s, &p, T0 + cap + 1), Health::Healthy);
}

fn announce_ttl(signer: &Identity, seq: u64, at: u64, ttl: u64) -> Signed<CapacityAnnouncement> {
    announce_for(signer, seq, at, ttl, vec![chain(CHAIN, Some(100))], None)
}

#[test]
fn old_announced_heads_move_on_at_the_learned_block_pace() {
    // Blocks every 1 000 ms, learned from our probes of `fast` (heads 100..=116 over 16 s).
    let (me, fast, quiet) = (id(1), id(2), id(3));
    let mut s = federated(&me, &[&fast, &quiet], &[]);
    s.apply_announcement(ann(&fast, 1, T0, Some(100)), T0, Source::Gossip);
    s.apply_announcement(ann(&quiet, 1, T0, Some(100)), T0, Source::Gossip);
    assert_eq!(s.block_ms(CHAIN), None);
    for i in 0..=16 {
        s.apply_probe(&fast.public_key(), CHAIN, 500, true, Some(100 + i), T0 + i * 1_000);
    }
    assert_eq!(s.block_ms(CHAIN), Some(1_000.0));
    // Within the configured heartbeat an announced head is taken as it is ...
    assert_eq!(chain_view(&mut s, &quiet, T0 + HEARTBEAT).head, Some(100));
    // ... beyond it (a stretched heartbeat) it moves on with the chain, so a provider that
    // announces every 40 s is not judged behind by heads made since.
    let late = T0 + HEARTBEAT + 7_000;
    let v = chain_view(&mut s, &quiet, late);
    assert_eq!(v.head, Some(107));
    assert_eq!(v.health, Health::Healthy);
    // Our fresh probe of it is still the better word: it shows the provider stalled.
    s.apply_probe(&quiet.public_key(), CHAIN, 500, true, Some(100), late);
    let v = chain_view(&mut s, &quiet, late + 1);
    assert_eq!(v.head, Some(100));
}

#[test]
fn block_pace_restarts_after_a_reorg_or_a_long_gap() {
    let (me, p) = (id(1), id(2));
    let mut s = federated(&me, &[&p], &[]);
    s.apply_announcement(ann(&p, 1, T0, Some(100)), T0, Source::Gossip);
    // A head that goes back restarts the span instead of measuring a negative pace.
    s.apply_probe(&p.public_key(), CHAIN, 500, true, Some(100), T0);
    s.apply_probe(&p.public_key(), CHAIN, 500, true, Some(90), T0 + 1_000);
    s.apply_probe(&p.public_key(), CHAIN, 500, true, Some(98), T0 + 9_000);
    assert_eq!(s.block_ms(CHAIN), Some(1_000.0));
    // Fewer than the span's blocks measure nothing; an hour's gap restarts.
    s.apply_probe(&p.public_key(), CHAIN, 500, true, Some(200), T0 + 3_600_000);
    assert_eq!(s.block_ms(CHAIN), Some(1_000.0));
}

#[test]
fn health_lagging_when_lag_exceeds_max() {
    let me = id(1);
    let peers: Vec<Identity> = (2..=5).map(id).collect();
    let mut s = federated(&me, &peers.iter().collect::<Vec<_>>(), &[]);
    s.apply_announcement(ann(&me, 1, T0, Some(100)), T0, Source::Local);
    // Heads 100, 100, 100, 95, 94 -> reference 100.
    for (p, h) in peers.iter().zip([100, 100, 100 - MAX_LAG, 100 - MAX_LAG - 1]) {
        s.apply_announcement(ann(p, 1, T0, Some(h)), T0, Source::Gossip);
    }
    assert_eq!(s.reference_heads(T0).get(&CHAIN), Some(&100));
    let at_limit = chain_view(&mut s, &peers[2], T0);
    assert_eq!((at_limit.health, at_limit.lag_blocks), (Health::Healthy, Some(MAX_LAG as i64)));
    let behind = chain_view(&mut s, &peers[3], T0);
    assert_eq!((behind.health, behind.lag_blocks), (Health::Lagging, Some(MAX_LAG as i64 + 1)));
    assert!(behind.health_reason.contains("6 blocks behind"), "{}", behind.health_reason);
    // A fresh probe head that catches up clears it.
    s.apply_probe(&peers[3].public_key(), CHAIN, 500, true, Some(99), T0 + 1);
    let c = chain_view(&mut s, &peers[3], T0 + 2);
    assert_eq!((c.health, c.head, c.lag_blocks), (Health::Healthy, Some(99), Some(1)));
}

#[test]
fn fresh_probe_head_overrides_an_over_claiming_announcement() {
    // Three trusted providers announce 100; our fresh probes of the third keep seeing 90.
    let (me, a, b, c) = (id(1), id(2), id(3), id(4));
    let mut s = federated(&me, &[&a, &b, &c], &[]);
    for p in [&a, &b, &c] {
        s.apply_announcement(ann(p, 1, T0, Some(100)), T0, Source::Gossip);
    }
    probes(&mut s, &c, 5, 0, Some(90), T0 + 10);
    let v = chain_view(&mut s, &c, T0 + 20);
    assert_eq!((v.head, v.lag_blocks, v.health), (Some(90), Some(10), Health::Lagging));
    // A newer announcement than our last probe is the fresher word again.
    s.apply_announcement(ann(&c, 2, T0 + 30, Some(101)), T0 + 30, Source::Gossip);
    assert_eq!(chain_view(&mut s, &c, T0 + 40).head, Some(101));
}

#[test]
fn apply_attestation_keeps_newest_per_attester_and_chain() {
    let (me, p, x, y) = (id(1), id(2), id(3), id(4));
    let mut s = federated(&me, &[&p, &x, &y], &[]);
    s.apply_announcement(
        announce(&p, 1, T0, vec![chain(CHAIN, Some(100)), chain(POLYGON, Some(100))], None),
        T0,
        Source::Gossip,
    );
    let summary = |s: &mut MeshState, chain_id: u64| -> Vec<(String, u32)> {
        view(&s.snapshot(T0 + 100), &p)
            .attestations
            .iter()
            .filter(|a| a.chain_id == chain_id)
            .map(|a| (a.attester.to_string(), a.probes_ok))
            .collect()
    };
    assert!(s.apply_attestation(&attest(&x, &p, 5, T0, 10, 0)));
    assert!(!s.apply_attestation(&attest(&x, &p, 5, T0 + 1, 10, 10)), "equal seq accepted");
    assert!(!s.apply_attestation(&attest(&x, &p, 4, T0 + 2, 10, 10)), "older seq accepted");
    assert_eq!(summary(&mut s, CHAIN), vec![(x.peer_id().to_string(), 0)]);
    assert_eq!(health(&mut s, &p, T0 + 100), Health::Unhealthy);

    // Another attester and another chain are separate slots.
    assert!(s.apply_attestation(&attest(&y, &p, 1, T0, 10, 10)));
    let mut on_polygon = attest(&x, &p, 1, T0, 10, 10).body;
    on_polygon.observation.chain_id = POLYGON;
    assert!(s.apply_attestation(&Signed::sign(on_polygon, &x)));
    assert_eq!(summary(&mut s, CHAIN).len(), 2);
    assert_eq!(summary(&mut s, POLYGON), vec![(x.peer_id().to_string(), 10)]);

    // A newer seq replaces.
    assert!(s.apply_attestation(&attest(&x, &p, 6, T0 + 3, 10, 9)));
    let mut got = summary(&mut s, CHAIN);
    got.sort();
    let mut want = vec![(x.peer_id().to_string(), 9), (y.peer_id().to_string(), 10)];
    want.sort();
    assert_eq!(got, want);
    let c = chain_view(&mut s, &p, T0 + 100);
    assert_eq!((c.health, c.success_rate), (Health::Healthy, Some(19.0 / 20.0)));
}

// ---------------------------------------------------------------- maintain

#[test]
fn maintain_forgets_long_expired_providers_but_never_self() {
    let (me, p, q, x) = (id(1), id(2), id(3), id(4));
    let mut s = federated(&me, &[&p, &q, &x], &[]);
    s.apply_announcement(ann(&me, 1, T0, Some(100)), T0, Source::Local);
    s.apply_announcement(ann(&p, 1, T0, Some(100)), T0, Source::Gossip);
    s.apply_announcement(ann(&q, 1, T0 + 1_000, Some(100)), T0 + 1_000, Source::Gossip);
    s.apply_attestation(&attest(&x, &p, 1, T0, 10, 0));

    let deadline = T0 + TTL + FORGET;
    assert!(s.maintain(deadline).is_empty(), "forgotten too early");
    assert_eq!(s.len(), 3);
    assert_eq!(s.maintain(deadline + 1), vec![p.public_key()]);
    assert_eq!(s.len(), 2);
    assert!(s.snapshot(deadline + 1).provider(&p.public_key()).is_none());
    assert!(s.maintain(deadline + 1).is_empty(), "forgotten twice");

    // Attestations about a forgotten provider went with it (they are young enough to be kept
    // otherwise: 10 x attestation_fresh_ms).
    assert!(deadline + 2 < T0 + 10 * ATT_FRESH);
    assert!(s.apply_announcement(ann(&p, 2, deadline + 2, Some(100)), deadline + 2, Source::Gossip));
    let v = view(&s.snapshot(deadline + 2), &p);
    assert!(v.attestations.is_empty(), "attestations about a forgotten provider survived");

    assert_eq!(s.maintain(deadline + 1_001), vec![q.public_key()]);

    // This node is never forgotten, however long expired.
    let much_later = deadline + 10 * (TTL + FORGET);
    assert_eq!(s.maintain(much_later), vec![p.public_key()]);
    assert_eq!(s.len(), 1);
    let snap = s.snapshot(much_later);
    assert!(view(&snap, &me).expired);
    assert!(view(&snap, &me).is_self);
}

// ---------------------------------------------------------------- snapshot

#[test]
fn snapshot_lists_self_first_then_by_peer_id() {
    let ids: Vec<Identity> = (1..=7).map(id).collect();
    // Make this node the one with the greatest PeerId so "self first" is not an accident of sorting.
    let own = ids.iter().max_by_key(|i| i.peer_id().to_string()).unwrap();
    let mut s = federated(own, &[], &[]);
    for (n, i) in ids.iter().enumerate() {
        let src = if i.public_key() == own.public_key() { Source::Local } else { Source::Gossip };
        s.apply_announcement(ann(i, n as u64 + 1, T0, Some(100)), T0, src);
    }
    let snap = s.snapshot(T0 + 1);
    assert_eq!(snap.generated_at_ms, T0 + 1);
    assert_eq!(snap.providers.len(), ids.len());
    assert!(snap.providers[0].is_self);
    assert_eq!(snap.providers[0].key, own.public_key());
    assert!(snap.providers[0].connected, "this node is always connected");
    assert!(snap.providers[1..].iter().all(|p| !p.is_self));
    let rest: Vec<&str> = snap.providers[1..].iter().map(|p| p.peer_id.as_str()).collect();
    let mut sorted = rest.clone();
    sorted.sort_unstable();
    assert_eq!(rest, sorted);
}

#[test]
fn snapshot_provider_lookup_and_on_chain_filter() {
    let (me, a, b, c) = (id(1), id(2), id(3), id(4));
    let mut s = federated(&me, &[&a, &b, &c], &[]);
    s.apply_announcement(ann(&me, 1, T0, Some(100)), T0, Source::Local);
    s.apply_announcement(announce(&a, 1, T0, vec![chain(POLYGON, Some(7))], None), T0, Source::Gossip);
    s.apply_announcement(
        announce(&b, 1, T0, vec![chain(CHAIN, Some(100)), chain(POLYGON, Some(8))], None),
        T0,
        Source::Gossip,
    );
    assert!(s.set_connected(b.public_key(), true));
    assert!(!s.set_connected(b.public_key(), true));
    let snap = s.snapshot(T0 + 1);
    for who in [&me, &a, &b] {
        let v = snap.provider(&who.public_key()).expect("lookup");
        assert_eq!(v.key, who.public_key());
        assert_eq!(v.peer_id, who.peer_id().to_string());
        assert_eq!(v.public_key, who.public_key().to_hex());
    }
    assert!(snap.provider(&c.public_key()).is_none());
    assert!(view(&snap, &b).connected);
    assert!(!view(&snap, &a).connected);

    let on_main: Vec<PublicKey> = snap.on_chain(CHAIN).map(|(p, _)| p.key).collect();
    assert_eq!(on_main.len(), 2);
    assert!(on_main.contains(&me.public_key()) && on_main.contains(&b.public_key()));
    assert!(snap.on_chain(CHAIN).all(|(_, cv)| cv.chain_id == CHAIN));
    let mut on_polygon: Vec<(PublicKey, Option<u64>)> =
        snap.on_chain(POLYGON).map(|(p, cv)| (p.key, cv.announced_head)).collect();
    on_polygon.sort();
    let mut want = vec![(a.public_key(), Some(7)), (b.public_key(), Some(8))];
    want.sort();
    assert_eq!(on_polygon, want);
    assert_eq!(snap.on_chain(42).count(), 0);

    assert!(s.set_connected(b.public_key(), false));
    assert!(!view(&s.snapshot(T0 + 2), &b).connected);
}

// ---------------------------------------------------------------- cached views

/// Two states fed the same inputs: `cached` keeps its provider views between snapshots, `fresh`
/// drops them before each one. Their snapshots must read the same at every step, but for
/// `lag_blocks` (health included, so a lag crossing the allowed lag must show at once), which a
/// cached view may carry from before the reference moved for up to [`VIEW_MAX_AGE_MS`]
/// (`reference_moves_rebuild_only_views_whose_health_flips` checks it catches up).
struct Twin {
    cached: MeshState,
    fresh: MeshState,
}

impl Twin {
    fn apply(&mut self, f: impl Fn(&mut MeshState)) {
        f(&mut self.cached);
        f(&mut self.fresh);
    }

    fn check(&mut self, now: u64, step: &str) {
        let cached = without_lags(serde_json::to_value(self.cached.snapshot(now)).expect("snapshot serializes"));
        self.fresh.invalidate_all();
        let fresh = without_lags(serde_json::to_value(self.fresh.snapshot(now)).expect("snapshot serializes"));
        assert_eq!(cached, fresh, "cached snapshot differs from a full rebuild after {step}");
    }
}

fn without_lags(mut snapshot: serde_json::Value) -> serde_json::Value {
    for p in snapshot["providers"].as_array_mut().into_iter().flatten() {
        for c in p["chains"].as_array_mut().into_iter().flatten() {
            c["lag_blocks"] = serde_json::Value::Null;
        }
    }
    snapshot
}

#[test]
fn reference_moves_rebuild_only_views_whose_health_flips() {
    let (me, a, b, c) = (id(1), id(2), id(3), id(4));
    let mut s = federated(&me, &[&a, &b, &c], &[]);
    for p in [&a, &b, &c] {
        s.apply_announcement(ann(p, 1, T0, Some(100)), T0, Source::Gossip);
    }
    let view_of = |snap: &MeshSnapshot, p: &Identity| snap.providers.iter().find(|v| v.key == p.public_key()).cloned();
    let lag_of = |v: &Arc<ProviderView>| v.chain(CHAIN).and_then(|c| c.lag_blocks);
    let first = view_of(&s.snapshot(T0 + 1), &c).expect("c");
    assert_eq!(lag_of(&first), Some(0));
    // a and b move 2 ahead: the reference follows (lower median of 102, 102, 100) and c lags 2,
    // within the allowed lag: its view is kept, its lag caught up by the next rebuild.
    s.apply_announcement(ann(&a, 2, T0 + 10, Some(102)), T0 + 10, Source::Gossip);
    s.apply_announcement(ann(&b, 2, T0 + 10, Some(102)), T0 + 10, Source::Gossip);
    let snap = s.snapshot(T0 + 11);
    assert_eq!(snap.reference_heads.get(&CHAIN), Some(&102));
    let kept = view_of(&snap, &c).expect("c");
    assert!(Arc::ptr_eq(&first, &kept), "a reference move within the allowed lag keeps the view");
    assert_eq!(kept.chain(CHAIN).map(|c| c.health), Some(Health::Healthy));
    let settled = view_of(&s.snapshot(T0 + 1 + VIEW_MAX_AGE_MS), &c).expect("c");
    assert_eq!(lag_of(&settled), Some(2), "the safety-net rebuild catches the lag up");
    // a and b move MAX_LAG + 1 past c: c's health flips in the very next snapshot.
    let far = 100 + MAX_LAG + 1;
    s.apply_announcement(ann(&a, 3, T0 + 20, Some(far)), T0 + 20, Source::Gossip);
    s.apply_announcement(ann(&b, 3, T0 + 20, Some(far)), T0 + 20, Source::Gossip);
    let flipped = view_of(&s.snapshot(T0 + 2 + VIEW_MAX_AGE_MS), &c).expect("c");
    let cv = flipped.chain(CHAIN).expect("chain");
    assert_eq!((cv.health, cv.lag_blocks), (Health::Lagging, Some(MAX_LAG as i64 + 1)));
    // And back: c catches up by its own announcement.
    s.apply_announcement(ann(&c, 2, T0 + 30, Some(far)), T0 + 30, Source::Gossip);
    let back = view_of(&s.snapshot(T0 + 3 + VIEW_MAX_AGE_MS), &c).expect("c");
    assert_eq!(back.chain(CHAIN).map(|c| c.health), Some(Health::Healthy));
}

#[test]
fn cached_snapshot_matches_a_full_rebuild() {
    let (me, p, q, x) = (id(1), id(2), id(3), id(4));
    let mut t = Twin { cached: federated(&me, &[&p, &q], &[]), fresh: federated(&me, &[&p, &q], &[]) };
    t.apply(|s| {
        s.apply_announcement(ann(&me, 1, T0, Some(101)), T0, Source::Local);
        s.apply_announcement(ann(&p, 1, T0, Some(100)), T0, Source::Gossip);
        s.apply_announcement(ann(&q, 1, T0, Some(102)), T0, Source::Gossip);
    });
    t.check(T0 + 1, "announcements");
    t.apply(|s| {
        s.apply_attestation(&attest(&q, &p, 1, T0 + 2, 10, 0));
    });
    t.check(T0 + 3, "an attestation by a trusted attester");
    t.apply(|s| {
        s.apply_attestation(&attest(&x, &q, 1, T0 + 3, 10, 0));
    });
    t.check(T0 + 4, "an attestation by an unknown attester");
    t.apply(|s| probes(s, &q, 3, 1, Some(103), T0 + 10));
    t.check(T0 + 11, "probes");
    t.apply(|s| {
        s.set_connected(p.public_key(), true);
    });
    t.check(T0 + 12, "a connection");
    // An unknown attester announces: its attestations now count as a trusted peer's? No: x is
    // not listed, so only its summary's PeerId source changes. Trust flags must still agree.
    t.apply(|s| {
        s.apply_announcement(ann(&x, 1, T0 + 20, Some(102)), T0 + 20, Source::Gossip);
    });
    t.check(T0 + 21, "an announcement by the attester");
    for now in [T0 + ATT_FRESH + 2, T0 + ATT_FRESH + 3, T0 + PROBE_FRESH + 10, T0 + PROBE_FRESH + 11] {
        t.check(now, "time passing over a freshness edge");
    }
    t.apply(|s| {
        s.apply_announcement(ann(&q, 2, T0 + 40_000, Some(140)), T0 + 40_000, Source::Gossip);
    });
    t.check(T0 + 40_001, "a head that moves the reference");
    // x is untrusted: its expiry moves no reference head, so only its own expiry edge can
    // refresh its view.
    for now in [T0 + TTL, T0 + TTL + 1, T0 + TTL + 20, T0 + TTL + 21, T0 + TTL + 40_000, T0 + TTL + 40_001] {
        t.check(now, "time passing over an expiry");
    }
    t.apply(|s| {
        s.maintain(T0 + TTL + FORGET + 1);
    });
    t.check(T0 + TTL + FORGET + 2, "forgetting");
}

#[test]
fn cached_snapshot_follows_samples_leaving_the_probe_window() {
    // Failed probes leave the window while a later probe keeps our observations fresh: the
    // view must change exactly then, not at the next safety-net rebuild.
    let (me, p) = (id(1), id(2));
    let mut t = Twin { cached: federated(&me, &[&p], &[]), fresh: federated(&me, &[&p], &[]) };
    let long = |s: &mut MeshState| {
        s.apply_announcement(announce_ttl(&p, 1, T0, 10 * PROBE_WINDOW), T0, Source::Gossip);
    };
    t.apply(long);
    t.apply(|s| probes(s, &p, 0, 3, Some(100), T0 + 10));
    t.check(T0 + 11, "failed probes");
    // Within the safety net's 2 s of the next checks, so only exact tracking passes.
    let last = T0 + 10 + PROBE_WINDOW - 500;
    t.apply(|s| probes(s, &p, 1, 0, Some(100), last));
    t.check(last + 1, "a successful probe");
    assert_eq!(health(&mut t.cached, &p, last + 1), Health::Unhealthy, "3 of 4 probes failed");
    for now in [T0 + 10 + PROBE_WINDOW, T0 + 10 + PROBE_WINDOW + 1] {
        t.check(now, "samples leaving the window");
    }
    assert_eq!(health(&mut t.cached, &p, T0 + 10 + PROBE_WINDOW + 1), Health::Healthy);
}

#[test]
fn one_provider_racing_ahead_cannot_speed_the_learned_pace() {
    // Two honest providers make a block a second; a third's probed heads jump 1 000 blocks a
    // second. The chain's pace is the median of the providers': one liar cannot move it, and so
    // cannot push every extrapolated head (and the reference head) ahead of the chain.
    let (me, a, b, liar) = (id(1), id(2), id(3), id(4));
    let mut s = federated(&me, &[&a, &b, &liar], &[]);
    for p in [&a, &b, &liar] {
        s.apply_announcement(ann(p, 1, T0, Some(100)), T0, Source::Gossip);
    }
    for i in 0..=16 {
        let at = T0 + i * 1_000;
        s.apply_probe(&a.public_key(), CHAIN, 500, true, Some(100 + i), at);
        s.apply_probe(&b.public_key(), CHAIN, 500, true, Some(100 + i), at);
        s.apply_probe(&liar.public_key(), CHAIN, 500, true, Some(100 + i * 1_000), at);
    }
    assert_eq!(s.block_ms(CHAIN), Some(1_000.0));
}
