//! Validation rules: each rejection reason, and the verdict it maps to.

use rpcmesh_protocol::messages::*;
use rpcmesh_protocol::replay::SeqTracker;
use rpcmesh_protocol::validate::*;
use rpcmesh_protocol::{Signed, ValidationError};

use crate::samples::*;

fn ctx() -> ValidationContext {
    ValidationContext::new(NET, T0 + 1_000)
}

fn signed_ann(f: impl FnOnce(&mut CapacityAnnouncement)) -> Vec<u8> {
    let mut a = announcement(&identity(1), true);
    f(&mut a);
    Signed::sign(a, &identity(1)).to_bytes()
}

#[test]
fn valid_announcement_passes() {
    let v = decode_and_validate::<CapacityAnnouncement>(&signed_ann(|_| {}), &ctx()).unwrap();
    assert_eq!(v.signer(), identity(1).public_key());
}

#[test]
fn bad_signature_is_rejected() {
    let mut s = Signed::sign(announcement(&identity(1), false), &identity(1));
    s.signer = identity(9).public_key();
    let err = decode_and_validate::<CapacityAnnouncement>(&s.to_bytes(), &ctx()).unwrap_err();
    assert!(matches!(err, ValidationError::Signature(_)), "{err}");
    assert_eq!(err.verdict(), Verdict::Reject);
}

#[test]
fn wrong_network_is_rejected() {
    let err =
        decode_and_validate::<CapacityAnnouncement>(&signed_ann(|a| a.header.network_id = "other".into()), &ctx())
            .unwrap_err();
    assert!(matches!(err, ValidationError::WrongNetwork { .. }), "{err}");
    assert_eq!(err.verdict(), Verdict::Reject);
}

#[test]
fn expired_is_ignored() {
    let mut c = ctx();
    c.now_ms = T0 + 15_001;
    let err = decode_and_validate::<CapacityAnnouncement>(&signed_ann(|_| {}), &c).unwrap_err();
    assert!(matches!(err, ValidationError::Expired { ago_ms: 1 }), "{err}");
    assert_eq!(err.verdict(), Verdict::Ignore);
}

#[test]
fn from_future_beyond_skew_fails() {
    let mut c = ctx();
    c.now_ms = T0 - 30_001;
    let err = decode_and_validate::<CapacityAnnouncement>(&signed_ann(|_| {}), &c).unwrap_err();
    assert!(matches!(err, ValidationError::FromFuture { .. }), "{err}");
    c.now_ms = T0 - 29_000;
    decode_and_validate::<CapacityAnnouncement>(&signed_ann(|_| {}), &c).unwrap();
}

#[test]
fn lifetime_limits() {
    let err = decode_and_validate::<CapacityAnnouncement>(
        &signed_ann(|a| a.header.expires_at_ms = a.header.issued_at_ms),
        &ctx(),
    )
    .unwrap_err();
    assert!(matches!(err, ValidationError::BadLifetime { .. }), "{err}");
    let err = decode_and_validate::<CapacityAnnouncement>(
        &signed_ann(|a| a.header.expires_at_ms = a.header.issued_at_ms + 25 * 3600 * 1000),
        &ctx(),
    )
    .unwrap_err();
    assert!(matches!(err, ValidationError::BadLifetime { .. }), "{err}");
}

#[test]
fn oversized_is_rejected_before_decoding() {
    let mut c = ctx();
    c.limits.max_gossip_bytes = 100;
    let err = decode_and_validate::<CapacityAnnouncement>(&signed_ann(|_| {}), &c).unwrap_err();
    assert!(matches!(err, ValidationError::Oversized { limit: 100, .. }), "{err}");
    assert_eq!(err.verdict(), Verdict::Reject);
}

#[test]
fn too_many_chains_is_rejected() {
    let err = decode_and_validate::<CapacityAnnouncement>(
        &signed_ann(|a| {
            let proto = a.chains[0].clone();
            a.chains = (0..65).map(|i| ChainCapacity { chain_id: i, ..proto.clone() }).collect();
            a.membership_cert = None;
        }),
        &ctx(),
    )
    .unwrap_err();
    assert!(matches!(err, ValidationError::Field { field: "chains", .. }), "{err}");
}

#[test]
fn duplicate_chain_and_bad_fields_are_rejected() {
    for (name, f) in [
        (
            "dup chain",
            Box::new(|a: &mut CapacityAnnouncement| a.chains[1].chain_id = 1) as Box<dyn Fn(&mut CapacityAnnouncement)>,
        ),
        ("utilisation", Box::new(|a: &mut CapacityAnnouncement| a.chains[0].utilisation_permille = 1001)),
        (
            "method group",
            Box::new(|a: &mut CapacityAnnouncement| a.chains[0].method_groups.push("Eth Namespace".into())),
        ),
        ("addr", Box::new(|a: &mut CapacityAnnouncement| a.listen_addrs.push("127.0.0.1:4001".into()))),
    ] {
        let err = decode_and_validate::<CapacityAnnouncement>(&signed_ann(f), &ctx()).unwrap_err();
        assert!(matches!(err, ValidationError::Field { .. }), "{name}: {err}");
        assert_eq!(err.verdict(), Verdict::Reject, "{name}");
    }
}

#[test]
fn certificate_for_someone_else_is_rejected() {
    let err = decode_and_validate::<CapacityAnnouncement>(
        &signed_ann(|a| a.membership_cert = Some(cert(&identity(5), &identity(200)))),
        &ctx(),
    )
    .unwrap_err();
    assert!(matches!(err, ValidationError::Certificate(_)), "{err}");
}

#[test]
fn forged_certificate_is_rejected() {
    let mut forged = cert(&identity(1), &identity(200));
    forged.body.operator_name = "Someone Else".into();
    let err = decode_and_validate::<CapacityAnnouncement>(&signed_ann(|a| a.membership_cert = Some(forged)), &ctx())
        .unwrap_err();
    assert!(matches!(err, ValidationError::Certificate(_)), "{err}");
}

#[test]
fn attestation_consistency_rules() {
    let sign = |a: HealthAttestation| Signed::sign(a, &identity(1)).to_bytes();
    decode_and_validate::<HealthAttestation>(&sign(attestation(&identity(2))), &ctx()).unwrap();
    let mut a = attestation(&identity(2));
    a.observation.probes_ok = 11;
    assert!(decode_and_validate::<HealthAttestation>(&sign(a), &ctx()).is_err());
    let mut a = attestation(&identity(2));
    a.observation.head_lag_blocks = Some(5);
    assert!(decode_and_validate::<HealthAttestation>(&sign(a), &ctx()).is_err());
    let mut a = attestation(&identity(2));
    a.observation.latency_p50_us = a.observation.latency_p95_us + 1;
    assert!(decode_and_validate::<HealthAttestation>(&sign(a), &ctx()).is_err());
}

#[test]
fn attestation_round_rules() {
    let sign = |r: AttestationRound| Signed::sign(r, &identity(1)).to_bytes();
    let round = || attestation_round([&identity(2), &identity(3)]);
    let v = decode_and_validate::<AttestationRound>(&sign(round()), &ctx()).unwrap();
    // Each observation reads as an attestation under the round's header.
    let atts: Vec<HealthAttestation> = v.body().attestations().collect();
    assert_eq!(atts.len(), 2);
    assert_eq!(atts[0], HealthAttestation { header: round().header, ..attestation(&identity(2)) });
    assert!(atts.iter().all(|a| a.header == round().header));

    let reject = |f: &dyn Fn(&mut AttestationRound)| {
        let mut r = round();
        f(&mut r);
        let err = decode_and_validate::<AttestationRound>(&sign(r), &ctx()).unwrap_err();
        assert_eq!(err.verdict(), Verdict::Reject, "{err}");
    };
    // Empty, two about the same (subject, chain), one inconsistent observation, over the limit.
    reject(&|r| r.observations.clear());
    reject(&|r| r.observations[1] = r.observations[0].clone());
    reject(&|r| r.observations[1].probes_ok = r.observations[1].probes_sent + 1);
    reject(&|r| r.observations[0].head_lag_blocks = Some(5));
    let max = Limits::default().max_round_observations;
    reject(&|r| {
        let first = r.observations[0].clone();
        r.observations = (0..=max as u64).map(|c| Observation { chain_id: c, ..first.clone() }).collect();
    });
    // The same subject on two chains is two observations.
    let mut r = round();
    r.observations[1].subject = r.observations[0].subject;
    decode_and_validate::<AttestationRound>(&sign(r), &ctx()).unwrap();

    // A forged round (another key's signature under the attester's name) is rejected.
    let mut forged = Signed::sign(round(), &identity(1));
    forged.signer = identity(9).public_key();
    let err = decode_and_validate::<AttestationRound>(&forged.to_bytes(), &ctx()).unwrap_err();
    assert_eq!(err.verdict(), Verdict::Reject, "{err}");
    // A round is not an attestation: the domain tags differ.
    let as_round = Signed::sign(round(), &identity(1)).to_bytes();
    assert!(decode_and_validate::<HealthAttestation>(&as_round, &ctx()).is_err());
}

#[test]
fn replayed_seq_is_stale_and_ignored() {
    let mut seqs = SeqTracker::new(16);
    let v = decode_and_validate::<CapacityAnnouncement>(&signed_ann(|_| {}), &ctx()).unwrap();
    seqs.check_and_accept(v.signer(), v.body().header.seq).unwrap();
    let again = decode_and_validate::<CapacityAnnouncement>(&signed_ann(|_| {}), &ctx()).unwrap();
    let err = seqs.check_and_accept(again.signer(), again.body().header.seq).unwrap_err();
    assert_eq!(err.verdict(), Verdict::Ignore);
}

#[test]
fn relay_request_limits() {
    let ok = rpcmesh_protocol::encoding::to_bytes(&relay_request());
    decode_relay::<RelayRequest>(&ok, &ctx()).unwrap();
    let mut big = relay_request();
    big.body = vec![b' '; 1025];
    let mut c = ctx();
    c.limits.max_relay_body_bytes = 1024;
    assert!(decode_relay::<RelayRequest>(&rpcmesh_protocol::encoding::to_bytes(&big), &c).is_err());
    let mut zero = relay_request();
    zero.timeout_ms = 0;
    assert!(decode_relay::<RelayRequest>(&rpcmesh_protocol::encoding::to_bytes(&zero), &ctx()).is_err());
}

#[test]
fn relay_response_with_tampered_receipt_is_rejected() {
    let mut resp = relay_response(&identity(1), &identity(2));
    decode_relay::<RelayResponse>(&rpcmesh_protocol::encoding::to_bytes(&resp), &ctx()).unwrap();
    if let Some(r) = resp.receipt.as_mut() {
        r.body.head = Some(1);
    }
    assert!(decode_relay::<RelayResponse>(&rpcmesh_protocol::encoding::to_bytes(&resp), &ctx()).is_err());
}

#[test]
fn tiny_inputs_with_huge_declared_lengths_fail_cheaply() {
    // Regression (found by fuzzing): a 10-byte input declaring a 64 MiB vector.
    let evil = [0x01, 0x00, 0xf6, 0xff, 0xff, 0x03, 0x00, 0x00, 0x00, 0x00];
    assert!(rpcmesh_protocol::encoding::from_bytes::<RelayRequest>(&evil).is_err());
    assert!(Signed::<CapacityAnnouncement>::from_bytes(&evil).is_err());
}

#[test]
fn certificate_error_verdict_follows_the_inner_error() {
    let mut other_net = cert(&identity(1), &identity(200));
    other_net.body.header.version = 99;
    let err = decode_and_validate::<CapacityAnnouncement>(&signed_ann(|a| a.membership_cert = Some(other_net)), &ctx())
        .unwrap_err();
    assert!(matches!(err, ValidationError::Certificate(_)), "{err}");
    assert_eq!(err.verdict(), Verdict::Ignore);
}

#[test]
fn relay_deadline_tolerates_clock_skew_but_gossip_expiry_does_not() {
    let bytes = rpcmesh_protocol::encoding::to_bytes(&relay_request());
    let mut c = ctx();
    c.now_ms = T0 + 2_000 + 3_000; // the server's clock runs 3 s ahead of the deadline
    decode_relay::<RelayRequest>(&bytes, &c).unwrap();
    c.now_ms = T0 + 2_000 + 30_001;
    assert!(matches!(decode_relay::<RelayRequest>(&bytes, &c), Err(ValidationError::Expired { .. })));
}

#[test]
fn relay_response_receipt_must_cover_the_body_and_exchange() {
    let ok = relay_response(&identity(1), &identity(2));
    decode_relay::<RelayResponse>(&rpcmesh_protocol::encoding::to_bytes(&ok), &ctx()).unwrap();
    let req_body = relay_request().body;
    check_receipt_binds(&ok, &req_body, &identity(2).public_key(), 1).unwrap();
    assert!(check_receipt_binds(&ok, &req_body, &identity(3).public_key(), 1).is_err());
    assert!(check_receipt_binds(&ok, b"other", &identity(2).public_key(), 1).is_err());
    assert!(check_receipt_binds(&ok, &req_body, &identity(2).public_key(), 137).is_err());

    let mut swapped_body = ok.clone();
    swapped_body.body = br#"{"jsonrpc":"2.0","id":1,"result":"0x0"}"#.to_vec();
    assert!(decode_relay::<RelayResponse>(&rpcmesh_protocol::encoding::to_bytes(&swapped_body), &ctx()).is_err());
    let mut missing = ok.clone();
    missing.receipt = None;
    assert!(decode_relay::<RelayResponse>(&rpcmesh_protocol::encoding::to_bytes(&missing), &ctx()).is_err());
    let mut busy = ok;
    busy.status = RelayStatus::Busy;
    assert!(decode_relay::<RelayResponse>(&rpcmesh_protocol::encoding::to_bytes(&busy), &ctx()).is_err());
    busy.receipt = None;
    decode_relay::<RelayResponse>(&rpcmesh_protocol::encoding::to_bytes(&busy), &ctx()).unwrap();
}

#[test]
fn head_lag_requires_both_heads() {
    let mut a = attestation(&identity(2));
    a.observation.observed_head = None;
    assert!(decode_and_validate::<HealthAttestation>(&Signed::sign(a, &identity(1)).to_bytes(), &ctx()).is_err());
}

#[test]
fn non_canonical_peer_id_is_refused() {
    // Same key, protobuf fields in another order: a different PeerId string for one key.
    let key = identity(1).public_key();
    let mut pb = vec![0x12, 0x20];
    pb.extend_from_slice(&key.0);
    pb.extend_from_slice(&[0x08, 0x01]);
    let mut mh = vec![0x00, pb.len() as u8];
    mh.extend_from_slice(&pb);
    let peer = libp2p_identity::PeerId::from_bytes(&mh).unwrap();
    assert!(rpcmesh_protocol::PublicKey::from_peer_id(&peer).is_err());
    assert_eq!(rpcmesh_protocol::PublicKey::from_peer_id(&key.to_peer_id()).unwrap(), key);
}

#[test]
fn deferred_relay_response_decoding_applies_every_rule_but_the_signature() {
    let enc = rpcmesh_protocol::encoding::to_bytes;
    let decode = |r: &RelayResponse| decode_relay_response_signature_deferred(&enc(r), &ctx());
    let ok = relay_response(&identity(1), &identity(2));
    assert_eq!(decode(&ok).unwrap(), ok);

    // A forged signature passes the deferred decode; the receipt then fails its own check.
    let mut forged = ok.clone();
    if let Some(r) = forged.receipt.as_mut() {
        r.signature[0] ^= 1;
    }
    assert!(decode_relay::<RelayResponse>(&enc(&forged), &ctx()).is_err());
    let decoded = decode(&forged).unwrap();
    assert!(decoded.receipt.as_ref().is_some_and(|r| r.verify().is_err()));

    // Everything else is still enforced.
    let mut swapped_body = ok.clone();
    swapped_body.body = br#"{"jsonrpc":"2.0","id":1,"result":"0x0"}"#.to_vec();
    assert!(decode(&swapped_body).is_err());
    let mut missing = ok.clone();
    missing.receipt = None;
    assert!(decode(&missing).is_err());
    let mut other_seq = ok.clone();
    other_seq.header.seq += 1;
    assert!(decode(&other_seq).is_err());
    let mut other_net = ok;
    other_net.header.network_id = "elsewhere".into();
    assert!(decode(&other_net).is_err());
}

#[test]
fn a_header_is_read_from_the_front_of_a_message() {
    let request = relay_request();
    let bytes = rpcmesh_protocol::encoding::to_bytes(&request);
    let header = rpcmesh_protocol::encoding::from_prefix::<rpcmesh_protocol::MessageHeader>(&bytes).unwrap();
    assert_eq!(header, request.header);
    // The whole-message decoder refuses what the prefix decoder ignores.
    assert!(rpcmesh_protocol::encoding::from_bytes::<rpcmesh_protocol::MessageHeader>(&bytes).is_err());
    assert!(rpcmesh_protocol::encoding::from_prefix::<rpcmesh_protocol::MessageHeader>(&bytes[..3]).is_err());
}

#[test]
fn relay_refusals_echo_the_request_seq_and_only_read_its_header() {
    use rpcmesh_protocol::encoding;
    let request = encoding::to_bytes(&RelayRequest {
        header: MessageHeader::new("net", 41, 1_000, 5_000),
        chain_id: 1,
        timeout_ms: 5_000,
        body: b"{}".to_vec(),
        trace: None,
    });
    // A request whose body is cut off still has a readable header.
    let cut = &request[..request.len() - 1];
    for raw in [&request[..], cut] {
        let r = encoding::from_bytes::<RelayResponse>(&RelayResponse::refusal(
            raw,
            "net",
            RelayStatus::Busy,
            "at capacity",
            2_000,
        ))
        .unwrap();
        assert_eq!((r.header.seq, r.status, r.body.as_slice()), (41, RelayStatus::Busy, &b"at capacity"[..]));
        assert!(r.receipt.is_none());
    }
    let junk = RelayResponse::refusal(b"junk", "net", RelayStatus::Refused, "no", 2_000);
    assert_eq!(encoding::from_bytes::<RelayResponse>(&junk).unwrap().header.seq, 0);
    assert_eq!(RelayStatus::NotServingChain.label(), "not_serving_chain");
}

fn signed_evidence(f: impl FnOnce(&mut Evidence)) -> Vec<u8> {
    let mut e = evidence(&identity(1), &identity(2));
    f(&mut e);
    Signed::sign(e, &identity(1)).to_bytes()
}

fn evidence_error(f: impl FnOnce(&mut Evidence)) -> ValidationError {
    decode_and_validate::<Evidence>(&signed_evidence(f), &ctx()).unwrap_err()
}

#[test]
fn valid_evidence_passes() {
    let v = decode_and_validate::<Evidence>(&signed_evidence(|_| {}), &ctx()).unwrap();
    assert_eq!(v.signer(), identity(1).public_key());
    assert_eq!(v.body().accused, identity(2).public_key());
}

#[test]
fn evidence_receipt_must_be_the_accused_own_statement_about_these_bytes() {
    // Every binding failure is a Reject: an honest forwarder checked the same before passing it on.
    let cases: Vec<(&str, ValidationError)> = vec![
        ("receipt.response_digest", evidence_error(|e| e.response.push(b' '))),
        ("receipt.request_digest", evidence_error(|e| e.request[0] = b'[')),
        ("receipt.chain_id", evidence_error(|e| e.chain_id = 137)),
        // A receipt signed by someone else cannot accuse the named provider.
        ("receipt.signer", evidence_error(|e| e.accused = identity(3).public_key())),
        (
            "receipt.header",
            evidence_error(|e| {
                e.receipt = {
                    let mut r = e.receipt.body.clone();
                    r.header.network_id = "other".into();
                    Signed::sign(r, &identity(2))
                }
            }),
        ),
        (
            "receipt.header.issued_at_ms",
            evidence_error(|e| {
                e.receipt = {
                    let mut r = e.receipt.body.clone();
                    r.header.issued_at_ms = T0 + 31_000;
                    Signed::sign(r, &identity(2))
                }
            }),
        ),
        ("accused", {
            let mut e = evidence(&identity(1), &identity(2));
            e.receipt = Signed::sign(e.receipt.body.clone(), &identity(1));
            e.accused = identity(1).public_key();
            decode_and_validate::<Evidence>(&Signed::sign(e, &identity(1)).to_bytes(), &ctx()).unwrap_err()
        }),
        ("material[]", evidence_error(|e| e.material.push(vec![]))),
    ];
    for (name, err) in cases {
        assert!(matches!(&err, ValidationError::Field { field, .. } if *field == name), "{name}: {err}");
        assert_eq!(err.verdict(), Verdict::Reject, "{name}");
    }
}

#[test]
fn evidence_with_a_forged_receipt_signature_is_rejected() {
    let err = evidence_error(|e| e.receipt.signature[0] ^= 1);
    assert!(matches!(err, ValidationError::Signature(_)), "{err}");
    assert_eq!(err.verdict(), Verdict::Reject);
    // The reporter's own signature is checked too.
    let mut s = Signed::sign(evidence(&identity(1), &identity(2)), &identity(1));
    s.signature[5] ^= 1;
    let err = decode_and_validate::<Evidence>(&s.to_bytes(), &ctx()).unwrap_err();
    assert!(matches!(err, ValidationError::Signature(_)), "{err}");
}

#[test]
fn evidence_size_limits() {
    let l = Limits::default();
    let err = evidence_error(|e| {
        e.request = vec![b' '; l.max_evidence_request_bytes + 1];
    });
    assert!(matches!(err, ValidationError::Field { field: "request", .. }), "{err}");
    let err = evidence_error(|e| e.material = vec![vec![1]; l.max_evidence_material_items + 1]);
    assert!(matches!(err, ValidationError::Field { field: "material", .. }), "{err}");
    // A block's receipts (MiBs) fit; more than the whole-message cap does not, checked before decoding.
    let big = signed_evidence(|e| e.material.push(vec![b'x'; 2 * 1024 * 1024]));
    decode_and_validate::<Evidence>(&big, &ctx()).unwrap();
    let huge = vec![0u8; l.max_evidence_bytes + 1];
    let err = decode_and_validate::<Evidence>(&huge, &ctx()).unwrap_err();
    assert!(matches!(err, ValidationError::Oversized { .. }), "{err}");
}

#[test]
fn evidence_header_rules_apply() {
    let err = evidence_error(|e| e.header.network_id = "other".into());
    assert!(matches!(err, ValidationError::WrongNetwork { .. }), "{err}");
    let mut c = ctx();
    c.now_ms = T0 + 24 * 3600 * 1000 + 1;
    let err = decode_and_validate::<Evidence>(&signed_evidence(|_| {}), &c).unwrap_err();
    assert_eq!(err.verdict(), Verdict::Ignore, "{err}");
    let err = evidence_error(|e| e.header.expires_at_ms = e.header.issued_at_ms + 24 * 3600 * 1000 + 1);
    assert!(matches!(err, ValidationError::BadLifetime { .. }), "{err}");
}

#[test]
fn evidence_binding_can_be_checked_without_signatures() {
    // The node re-checks stored bundles this way; the result agrees with full validation.
    let e = evidence(&identity(1), &identity(2));
    check_evidence_binding(&e, Some(&identity(1).public_key()), &ctx()).unwrap();
    let mut bad = e.clone();
    bad.response.push(b'!');
    assert!(check_evidence_binding(&bad, None, &ctx()).is_err());
}
