//! Property tests: round trips, tamper detection, and decoders that never panic.

use proptest::prelude::*;
use rpcmesh_protocol::encoding;
use rpcmesh_protocol::messages::*;
use rpcmesh_protocol::{Signed, SignedBody};

use crate::samples::*;

/// Signs, encodes, decodes, and checks equality and signature.
fn round_trip<T: SignedBody + PartialEq + std::fmt::Debug>(body: T) {
    let signed = Signed::sign(body, &identity(1));
    let bytes = signed.to_bytes();
    let back = Signed::<T>::from_bytes(&bytes).expect("decodes");
    assert_eq!(back, signed);
    back.verify().expect("verifies");
    assert_eq!(back.to_bytes(), bytes, "re-encoding is canonical");
}

/// Flipping any bit pattern of any byte must make decode-then-verify fail.
fn tamper_fails<T: SignedBody + std::fmt::Debug>(body: T, index: prop::sample::Index, mask: u8) {
    let signed = Signed::sign(body, &identity(1));
    let mut bytes = signed.to_bytes();
    let i = index.index(bytes.len());
    bytes[i] ^= mask;
    if let Ok(decoded) = Signed::<T>::from_bytes(&bytes) {
        assert!(decoded.verify().is_err(), "flipping byte {i} with {mask:#04x} still verified");
    }
}

fn config() -> ProptestConfig {
    ProptestConfig { cases: 128, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn announcement_round_trips(a in arb_announcement()) { round_trip(a) }
    #[test]
    fn attestation_round_trips(a in arb_attestation()) { round_trip(a) }
    #[test]
    fn cert_round_trips(c in arb_cert_body()) { round_trip(c) }
    #[test]
    fn vetting_summary_round_trips(v in arb_vetting_summary()) { round_trip(v) }
    #[test]
    fn receipt_round_trips(r in arb_receipt()) { round_trip(r) }

    #[test]
    fn relay_messages_round_trip(req in arb_relay_request(), resp in arb_relay_response()) {
        let bytes = encoding::to_bytes(&req);
        prop_assert_eq!(encoding::from_bytes::<RelayRequest>(&bytes).unwrap(), req);
        let bytes = encoding::to_bytes(&resp);
        prop_assert_eq!(encoding::from_bytes::<RelayResponse>(&bytes).unwrap(), resp);
    }

    #[test]
    fn tampered_announcement_fails(a in arb_announcement(), i in any::<prop::sample::Index>(), m in 1u8..=255) { tamper_fails(a, i, m) }
    #[test]
    fn tampered_attestation_fails(a in arb_attestation(), i in any::<prop::sample::Index>(), m in 1u8..=255) { tamper_fails(a, i, m) }
    #[test]
    fn attestation_round_round_trips(r in arb_attestation_round()) { round_trip(r) }
    #[test]
    fn tampered_attestation_round_fails(r in arb_attestation_round(), i in any::<prop::sample::Index>(), m in 1u8..=255) { tamper_fails(r, i, m) }
    #[test]
    fn tampered_cert_fails(c in arb_cert_body(), i in any::<prop::sample::Index>(), m in 1u8..=255) { tamper_fails(c, i, m) }
    #[test]
    fn tampered_vetting_summary_fails(v in arb_vetting_summary(), i in any::<prop::sample::Index>(), m in 1u8..=255) { tamper_fails(v, i, m) }
    #[test]
    fn tampered_receipt_fails(r in arb_receipt(), i in any::<prop::sample::Index>(), m in 1u8..=255) { tamper_fails(r, i, m) }

    #[test]
    fn evidence_round_trips(e in arb_evidence()) { round_trip(e) }
    #[test]
    fn tampered_evidence_fails(e in arb_evidence(), i in any::<prop::sample::Index>(), m in 1u8..=255) { tamper_fails(e, i, m) }

    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Signed::<CapacityAnnouncement>::from_bytes(&bytes);
        let _ = Signed::<HealthAttestation>::from_bytes(&bytes);
        let _ = Signed::<AttestationRound>::from_bytes(&bytes);
        let _ = Signed::<MembershipCert>::from_bytes(&bytes);
        let _ = Signed::<VettingSummary>::from_bytes(&bytes);
        let _ = Signed::<Receipt>::from_bytes(&bytes);
        let _ = Signed::<Evidence>::from_bytes(&bytes);
        let _ = encoding::from_bytes::<RelayRequest>(&bytes);
        let _ = encoding::from_bytes::<RelayResponse>(&bytes);
    }

    #[test]
    fn truncated_valid_messages_never_decode(a in arb_announcement(), cut in any::<prop::sample::Index>()) {
        let bytes = Signed::sign(a, &identity(1)).to_bytes();
        let n = cut.index(bytes.len());
        prop_assert!(Signed::<CapacityAnnouncement>::from_bytes(&bytes[..n]).is_err());
    }
}

#[test]
fn flipping_every_byte_of_each_sample_fails_verification() {
    // Exhaustive over positions for one sample of each kind (the proptests sample positions).
    fn all<T: SignedBody>(body: T) {
        let bytes = Signed::sign(body, &identity(1)).to_bytes();
        for i in 0..bytes.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= mask;
                if let Ok(d) = Signed::<T>::from_bytes(&b) {
                    assert!(d.verify().is_err(), "{} byte {i} mask {mask:#x}", T::KIND);
                }
            }
        }
    }
    all(announcement(&identity(1), true));
    all(attestation(&identity(2)));
    all(cert(&identity(1), &identity(200)).body);
    all(vetting_summary(&identity(1)));
    all(receipt(&identity(2)));
    all(evidence(&identity(1), &identity(2)));
}

#[test]
fn signature_for_one_kind_does_not_verify_as_another() {
    // Same bytes, different domain tag: a receipt signature must not pass as an announcement's.
    let signed = Signed::sign(receipt(&identity(2)), &identity(1));
    let sig = signed.signature;
    let ann = announcement(&identity(1), false);
    let forged = Signed { body: ann, signer: identity(1).public_key(), signature: sig };
    assert!(forged.verify().is_err());
}

#[test]
fn batch_verification_agrees_with_single() {
    let mut msgs: Vec<_> = (1..=16u8).map(|n| Signed::sign(attestation(&identity(n)), &identity(n))).collect();
    rpcmesh_protocol::signed::verify_batch(&msgs).unwrap();
    msgs[7].body.observation.probes_ok = 0;
    assert!(rpcmesh_protocol::signed::verify_batch(&msgs).is_err());
    assert!(msgs[7].verify().is_err());
}

proptest! {
    #![proptest_config(config())]

    /// Validation of arbitrary evidence never panics, and anything it accepts really binds the
    /// accused's signed receipt to the bytes it carries.
    #[test]
    fn evidence_validation_is_total_and_sound(e in arb_evidence(), now in any::<u64>()) {
        let signed = Signed::sign(e, &identity(1));
        let ctx = rpcmesh_protocol::ValidationContext::new(signed.body.header.network_id.clone(), now);
        if let Ok(v) = rpcmesh_protocol::validate::decode_and_validate::<Evidence>(&signed.to_bytes(), &ctx) {
            let b = v.body();
            prop_assert_eq!(b.receipt.signer, b.accused);
            prop_assert_eq!(b.receipt.body.response_digest, rpcmesh_protocol::digest::sha256(&b.response));
            prop_assert!(b.receipt.verify().is_ok());
        }
    }
}
