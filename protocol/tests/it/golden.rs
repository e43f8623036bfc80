//! Golden vectors: the exact wire bytes of one deterministic message of each kind, checked in
//! as hex under `protocol/tests/vectors/`. A failing test here means the wire format changed:
//! that needs a protocol version bump, not a vector update. To regenerate deliberately, run with
//! `RPCMESH_UPDATE_GOLDEN=1`.

use std::path::PathBuf;

use rpcmesh_protocol::Signed;
use rpcmesh_protocol::encoding;
use rpcmesh_protocol::messages::*;

use crate::samples::*;

fn check(name: &str, bytes: &[u8]) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors").join(format!("{name}.hex"));
    let hex_now = hex_lines(bytes);
    if std::env::var_os("RPCMESH_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &hex_now).unwrap();
        return;
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(stored, hex_now, "wire format of {name} drifted from {}", path.display());
}

/// 64 hex characters per line, so a diff shows where bytes moved.
fn hex_lines(bytes: &[u8]) -> String {
    let h = hex::encode(bytes);
    let mut out = String::new();
    for chunk in h.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out
}

fn read_vector(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors").join(format!("{name}.hex"));
    let text: String = std::fs::read_to_string(path).unwrap().split_whitespace().collect();
    hex::decode(text).unwrap()
}

#[test]
fn capacity_announcement_vector() {
    let signed = Signed::sign(announcement(&identity(1), true), &identity(1));
    check("capacity_announcement", &signed.to_bytes());
    let back = Signed::<CapacityAnnouncement>::from_bytes(&read_vector("capacity_announcement")).unwrap();
    back.verify().unwrap();
    assert_eq!(back, signed);
}

#[test]
fn health_attestation_vector() {
    let signed = Signed::sign(attestation(&identity(2)), &identity(1));
    check("health_attestation", &signed.to_bytes());
    Signed::<HealthAttestation>::from_bytes(&read_vector("health_attestation")).unwrap().verify().unwrap();
}

#[test]
fn attestation_round_vector() {
    let signed = Signed::sign(attestation_round([&identity(2), &identity(3)]), &identity(1));
    check("attestation_round", &signed.to_bytes());
    let back = Signed::<AttestationRound>::from_bytes(&read_vector("attestation_round")).unwrap();
    back.verify().unwrap();
    assert_eq!(back, signed);
}

#[test]
fn membership_cert_vector() {
    let signed = cert(&identity(1), &identity(200));
    check("membership_cert", &signed.to_bytes());
    let back = Signed::<MembershipCert>::from_bytes(&read_vector("membership_cert")).unwrap();
    back.verify().unwrap();
    // The embedded vetting summary is signed by the vetting operator, and the root's signature
    // covers it: both verify from the stored bytes.
    back.body.vetting.as_ref().expect("a vetted certificate").verify().unwrap();
    assert_eq!(back, signed);
}

#[test]
fn vetting_summary_vector() {
    let signed = Signed::sign(vetting_summary(&identity(1)), &identity(201));
    check("vetting_summary", &signed.to_bytes());
    let back = Signed::<VettingSummary>::from_bytes(&read_vector("vetting_summary")).unwrap();
    back.verify().unwrap();
    assert_eq!(back, signed);
}

#[test]
fn receipt_vector() {
    let signed = Signed::sign(receipt(&identity(2)), &identity(1));
    check("receipt", &signed.to_bytes());
    Signed::<Receipt>::from_bytes(&read_vector("receipt")).unwrap().verify().unwrap();
}

#[test]
fn evidence_vector() {
    let signed = Signed::sign(evidence(&identity(1), &identity(2)), &identity(1));
    check("evidence", &signed.to_bytes());
    let back = Signed::<Evidence>::from_bytes(&read_vector("evidence")).unwrap();
    back.verify().unwrap();
    // The accused's receipt inside verifies on its own: it is what makes the bundle evidence.
    back.body.receipt.verify().unwrap();
    assert_eq!(back.body.receipt.signer, identity(2).public_key());
    assert_eq!(back, signed);
}

#[test]
fn relay_request_vector() {
    check("relay_request", &encoding::to_bytes(&relay_request()));
    assert_eq!(encoding::from_bytes::<RelayRequest>(&read_vector("relay_request")).unwrap(), relay_request());
}

#[test]
fn relay_response_vector() {
    let resp = relay_response(&identity(1), &identity(2));
    check("relay_response", &encoding::to_bytes(&resp));
    assert_eq!(encoding::from_bytes::<RelayResponse>(&read_vector("relay_response")).unwrap(), resp);
}

#[test]
fn identity_vector() {
    // The key derivations are part of the wire contract too: a PeerId must never change.
    let id = identity(1);
    let text = format!("public_key {}\npeer_id {}\n", id.public_key().to_hex(), id.peer_id());
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/identity.txt");
    if std::env::var_os("RPCMESH_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    assert_eq!(std::fs::read_to_string(path).unwrap(), text);
}
