//! Deterministic sample messages and proptest strategies for every kind.

use proptest::collection::vec;
use proptest::prelude::*;
use rpcmesh_protocol::messages::*;
use rpcmesh_protocol::{Identity, PublicKey, Signed};

pub const NET: &str = "rpcmesh-test";
pub const T0: u64 = 1_760_000_000_000;

pub fn identity(n: u8) -> Identity {
    Identity::from_secret_bytes([n; 32])
}

pub fn header(seq: u64) -> MessageHeader {
    MessageHeader::new(NET, seq, T0, 15_000)
}

pub fn cert(member: &Identity, root: &Identity) -> Signed<MembershipCert> {
    let body = MembershipCert {
        header: MessageHeader::new(NET, 1, T0 - 1000, 90 * 24 * 3600 * 1000),
        member: member.public_key(),
        operator_name: "Example Operator GmbH".into(),
        vetting: Some(Box::new(Signed::sign(vetting_summary(member), &identity(201)))),
    };
    Signed::sign(body, root)
}

/// A passing vetting summary of `member`, as `rpcmesh federation vet --member` signs it.
pub fn vetting_summary(member: &Identity) -> VettingSummary {
    VettingSummary {
        header: MessageHeader::new(NET, 1_760_000_000_000_000, T0 - 5000, 30 * 24 * 3600 * 1000),
        chain_id: 1,
        member: Some(member.public_key()),
        report_digest: rpcmesh_protocol::digest::sha256(b"{\"report\":1}"),
        policy_name: "rpcmesh-default-v1".into(),
        policy_digest: rpcmesh_protocol::digest::sha256(b"{\"policy\":1}"),
        verdict: VettingVerdict::Pass,
    }
}

pub fn announcement(signer: &Identity, with_cert: bool) -> CapacityAnnouncement {
    CapacityAnnouncement {
        header: header(42),
        chains: vec![
            ChainCapacity {
                chain_id: 1,
                head: Some(BlockRef { number: 21_000_000, hash: [0xab; 32] }),
                max_requests_per_sec: 500,
                utilisation_permille: 120,
                max_concurrent_relays: 64,
                archive: true,
                method_groups: vec!["eth".into(), "net".into(), "web3".into(), "debug".into(), "trace".into()],
                policies: vec![],
            },
            ChainCapacity {
                chain_id: 137,
                head: None,
                max_requests_per_sec: 200,
                utilisation_permille: 0,
                max_concurrent_relays: 16,
                archive: false,
                method_groups: vec!["eth".into()],
                policies: vec!["filters transactions by sanctions list".into()],
            },
        ],
        listen_addrs: vec!["/ip4/127.0.0.1/tcp/4001".into(), "/ip4/127.0.0.1/udp/4001/quic-v1".into()],
        membership_cert: with_cert.then(|| cert(signer, &identity(200))),
        software_version: "rpcmesh/0.1.0".into(),
        jurisdiction: Some("DE".into()),
    }
}

pub fn attestation(subject: &Identity) -> HealthAttestation {
    HealthAttestation {
        header: header(7),
        observation: Observation {
            subject: subject.public_key(),
            chain_id: 1,
            window_start_ms: T0 - 10_000,
            window_end_ms: T0,
            probes_sent: 10,
            probes_ok: 9,
            latency_p50_us: 850,
            latency_p95_us: 2_400,
            observed_head: Some(21_000_000),
            reference_head: Some(21_000_002),
            head_lag_blocks: Some(2),
        },
    }
}

/// A round of two observations: `subjects[0]` on chain 1 (as [`attestation`]) and `subjects[1]`
/// on chain 137.
pub fn attestation_round(subjects: [&Identity; 2]) -> AttestationRound {
    let first = attestation(subjects[0]).observation;
    let second = Observation {
        subject: subjects[1].public_key(),
        chain_id: 137,
        probes_ok: 0,
        observed_head: None,
        reference_head: None,
        head_lag_blocks: None,
        ..first.clone()
    };
    AttestationRound { header: header(8), observations: vec![first, second] }
}

pub fn receipt(requester: &Identity) -> Receipt {
    Receipt {
        header: header(9001),
        requester: requester.public_key(),
        chain_id: 1,
        request_digest: rpcmesh_protocol::digest::sha256(br#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber"}"#),
        response_digest: rpcmesh_protocol::digest::sha256(br#"{"jsonrpc":"2.0","id":1,"result":"0x1406f40"}"#),
        head: Some(21_000_000),
    }
}

pub const EVIDENCE_REQUEST: &[u8] =
    br#"{"jsonrpc":"2.0","id":7,"method":"eth_getBalance","params":["0x00000000000000000000000000000000000000aa","0x1406f40"]}"#;
pub const EVIDENCE_RESPONSE: &[u8] = br#"{"jsonrpc":"2.0","id":7,"result":"0xde0b6b3a7640000"}"#;

/// `accused`'s receipt for [`EVIDENCE_REQUEST`] / [`EVIDENCE_RESPONSE`], asked by `requester`.
pub fn evidence_receipt(requester: &Identity, accused: &Identity) -> Signed<Receipt> {
    let body = Receipt {
        header: MessageHeader::new(NET, 9002, T0 - 2_000, 2_000),
        requester: requester.public_key(),
        chain_id: 1,
        request_digest: rpcmesh_protocol::digest::sha256(EVIDENCE_REQUEST),
        response_digest: rpcmesh_protocol::digest::sha256(EVIDENCE_RESPONSE),
        head: Some(21_000_000),
    };
    Signed::sign(body, accused)
}

/// `reporter`'s claim that `accused` lied about a balance (the proof is a stand-in: the protocol
/// does not judge material, the node does).
pub fn evidence(reporter: &Identity, accused: &Identity) -> Evidence {
    Evidence {
        header: MessageHeader::new(NET, 77, T0, 24 * 3600 * 1000),
        accused: accused.public_key(),
        chain_id: 1,
        kind: LieKind::State,
        request: EVIDENCE_REQUEST.to_vec(),
        response: EVIDENCE_RESPONSE.to_vec(),
        receipt: evidence_receipt(reporter, accused),
        anchor: BlockRef { number: 21_000_000, hash: [0xab; 32] },
        material: vec![br#"{"number":"0x1406f40"}"#.to_vec(), br#"{"balance":"0x0","accountProof":[]}"#.to_vec()],
    }
}

pub fn relay_request() -> RelayRequest {
    RelayRequest {
        header: MessageHeader::new(NET, 9001, T0, 2_000),
        chain_id: 1,
        timeout_ms: 2_000,
        body: br#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber"}"#.to_vec(),
        trace: None,
    }
}

pub fn relay_response(server: &Identity, requester: &Identity) -> RelayResponse {
    RelayResponse {
        header: MessageHeader::new(NET, 9001, T0, 2_000),
        status: RelayStatus::Ok,
        body: br#"{"jsonrpc":"2.0","id":1,"result":"0x1406f40"}"#.to_vec(),
        receipt: Some(Signed::sign(receipt(requester), server)),
    }
}

// ---- proptest strategies ----

fn arb_text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!(".{{0,{max}}}")).expect("valid regex")
}

pub fn arb_header() -> impl Strategy<Value = MessageHeader> {
    (any::<u16>(), arb_text(16), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
        |(version, network_id, seq, issued_at_ms, expires_at_ms)| MessageHeader {
            version,
            network_id,
            seq,
            issued_at_ms,
            expires_at_ms,
        },
    )
}

pub fn arb_key() -> impl Strategy<Value = PublicKey> {
    any::<[u8; 32]>().prop_map(PublicKey)
}

fn arb_chain() -> impl Strategy<Value = ChainCapacity> {
    (
        any::<u64>(),
        proptest::option::of((any::<u64>(), any::<[u8; 32]>()).prop_map(|(number, hash)| BlockRef { number, hash })),
        (any::<u32>(), any::<u16>(), any::<u32>(), any::<bool>()),
        vec("[a-z]{1,8}", 0..4),
        vec(arb_text(24), 0..3),
    )
        .prop_map(
            |(
                chain_id,
                head,
                (max_requests_per_sec, utilisation_permille, max_concurrent_relays, archive),
                method_groups,
                policies,
            )| {
                ChainCapacity {
                    chain_id,
                    head,
                    max_requests_per_sec,
                    utilisation_permille,
                    max_concurrent_relays,
                    archive,
                    method_groups,
                    policies,
                }
            },
        )
}

pub fn arb_vetting_summary() -> impl Strategy<Value = VettingSummary> {
    (
        arb_header(),
        any::<u64>(),
        proptest::option::of(arb_key()),
        (any::<[u8; 32]>(), arb_text(24), any::<[u8; 32]>()),
        prop_oneof![Just(VettingVerdict::Pass), Just(VettingVerdict::Fail), Just(VettingVerdict::Incomplete)],
    )
        .prop_map(|(header, chain_id, member, (report_digest, policy_name, policy_digest), verdict)| {
            VettingSummary { header, chain_id, member, report_digest, policy_name, policy_digest, verdict }
        })
}

pub fn arb_cert_body() -> impl Strategy<Value = MembershipCert> {
    (arb_header(), arb_key(), arb_text(24), proptest::option::of(arb_vetting_summary())).prop_map(
        |(header, member, operator_name, vetting)| MembershipCert {
            header,
            member,
            operator_name,
            vetting: vetting.map(|v| Box::new(Signed::sign(v, &identity(201)))),
        },
    )
}

pub fn arb_announcement() -> impl Strategy<Value = CapacityAnnouncement> {
    (
        arb_header(),
        vec(arb_chain(), 0..4),
        vec("/ip4/[0-9.]{1,15}/tcp/[0-9]{1,5}", 0..3),
        proptest::option::of(arb_cert_body()),
        arb_text(16),
        proptest::option::of("[A-Z]{2}(-[A-Z0-9]{1,3})?"),
    )
        .prop_map(|(header, chains, listen_addrs, cert, software_version, jurisdiction)| CapacityAnnouncement {
            header,
            chains,
            listen_addrs,
            membership_cert: cert.map(|c| Signed::sign(c, &identity(200))),
            software_version,
            jurisdiction,
        })
}

pub fn arb_attestation() -> impl Strategy<Value = HealthAttestation> {
    (
        arb_header(),
        arb_key(),
        any::<u64>(),
        (any::<u64>(), any::<u64>()),
        (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()),
        (any::<Option<u64>>(), any::<Option<u64>>(), any::<Option<i64>>()),
    )
        .prop_map(
            |(
                header,
                subject,
                chain_id,
                (window_start_ms, window_end_ms),
                (probes_sent, probes_ok, latency_p50_us, latency_p95_us),
                (observed_head, reference_head, head_lag_blocks),
            )| {
                HealthAttestation {
                    header,
                    observation: Observation {
                        subject,
                        chain_id,
                        window_start_ms,
                        window_end_ms,
                        probes_sent,
                        probes_ok,
                        latency_p50_us,
                        latency_p95_us,
                        observed_head,
                        reference_head,
                        head_lag_blocks,
                    },
                }
            },
        )
}

pub fn arb_attestation_round() -> impl Strategy<Value = AttestationRound> {
    (arb_header(), prop::collection::vec(arb_attestation(), 0..8)).prop_map(|(header, atts)| AttestationRound {
        header,
        observations: atts.into_iter().map(|a| a.observation).collect(),
    })
}

pub fn arb_receipt() -> impl Strategy<Value = Receipt> {
    (arb_header(), arb_key(), any::<u64>(), any::<[u8; 32]>(), any::<[u8; 32]>(), any::<Option<u64>>()).prop_map(
        |(header, requester, chain_id, request_digest, response_digest, head)| Receipt {
            header,
            requester,
            chain_id,
            request_digest,
            response_digest,
            head,
        },
    )
}

pub fn arb_lie_kind() -> impl Strategy<Value = LieKind> {
    prop_oneof![
        Just(LieKind::Header),
        Just(LieKind::Block),
        Just(LieKind::Transaction),
        Just(LieKind::Receipt),
        Just(LieKind::Logs),
        Just(LieKind::LogOmitted),
        Just(LieKind::State),
        Just(LieKind::Head),
        Just(LieKind::Disagreement),
        Just(LieKind::Refusal),
        Just(LieKind::Equivocation),
    ]
}

pub fn arb_evidence() -> impl Strategy<Value = Evidence> {
    (
        arb_header(),
        arb_key(),
        any::<u64>(),
        arb_lie_kind(),
        (vec(any::<u8>(), 0..128), vec(any::<u8>(), 0..256)),
        arb_receipt(),
        (any::<u64>(), any::<[u8; 32]>()),
        vec(vec(any::<u8>(), 0..64), 0..4),
    )
        .prop_map(|(header, accused, chain_id, kind, (request, response), receipt, (number, hash), material)| {
            Evidence {
                header,
                accused,
                chain_id,
                kind,
                request,
                response,
                receipt: Signed::sign(receipt, &identity(4)),
                anchor: BlockRef { number, hash },
                material,
            }
        })
}

pub fn arb_status() -> impl Strategy<Value = RelayStatus> {
    prop_oneof![
        Just(RelayStatus::Ok),
        Just(RelayStatus::Busy),
        Just(RelayStatus::NotServingChain),
        Just(RelayStatus::UpstreamError),
        Just(RelayStatus::Refused),
        Just(RelayStatus::Timeout),
    ]
}

pub fn arb_relay_request() -> impl Strategy<Value = RelayRequest> {
    let trace =
        proptest::option::of(
            (any::<[u8; 16]>(), any::<[u8; 8]>(), any::<u8>())
                .prop_map(|(trace_id, parent_span_id, flags)| TraceContext { trace_id, parent_span_id, flags }),
        );
    (arb_header(), any::<u64>(), any::<u32>(), vec(any::<u8>(), 0..256), trace).prop_map(
        |(header, chain_id, timeout_ms, body, trace)| RelayRequest { header, chain_id, timeout_ms, body, trace },
    )
}

pub fn arb_relay_response() -> impl Strategy<Value = RelayResponse> {
    (arb_header(), arb_status(), vec(any::<u8>(), 0..256), proptest::option::of(arb_receipt())).prop_map(
        |(header, status, body, receipt)| RelayResponse {
            header,
            status,
            body,
            receipt: receipt.map(|r| Signed::sign(r, &identity(3))),
        },
    )
}
