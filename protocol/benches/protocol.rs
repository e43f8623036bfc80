//! Hot paths of the protocol crate: signing, strict verification, batch verification,
//! canonical encoding/decoding and `decode_and_validate` (the gossip entry point).
//!
//! Run: `cargo bench -p rpcmesh-protocol` (add `-- --quick` for a fast pass, or a filter such
//! as `-- sign/`). See docs/benchmarks.md.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rpcmesh_protocol::encoding;
use rpcmesh_protocol::messages::{
    BlockRef, CapacityAnnouncement, ChainCapacity, HealthAttestation, MembershipCert, MessageHeader, Observation,
    Receipt, RelayRequest, RelayResponse, RelayStatus,
};
use rpcmesh_protocol::signed::{self, Signed, SignedBody};
use rpcmesh_protocol::validate::{self, Validate, ValidationContext};
use rpcmesh_protocol::{Identity, digest};

const NET: &str = "rpcmesh-bench";
const T0: u64 = 1_760_000_000_000;
/// Body size of the relay request/response benches.
const RELAY_BODY: usize = 100 * 1024;
/// Messages in the batch-verification bench.
const BATCH: usize = 64;

fn identity(n: u8) -> Identity {
    Identity::from_secret_bytes([n; 32])
}

fn header(seq: u64) -> MessageHeader {
    MessageHeader::new(NET, seq, T0, 15_000)
}

fn ctx() -> ValidationContext {
    ValidationContext::new(NET, T0 + 500)
}

fn cert(member: &Identity, root: &Identity) -> Signed<MembershipCert> {
    let body = MembershipCert {
        header: MessageHeader::new(NET, 1, T0 - 1000, 90 * 24 * 3600 * 1000),
        member: member.public_key(),
        operator_name: "Example Operator GmbH".into(),
        vetting: None,
    };
    Signed::sign(body, root)
}

/// Two chains and an embedded membership certificate: a typical federated provider.
fn announcement(signer: &Identity) -> CapacityAnnouncement {
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
                head: Some(BlockRef { number: 65_000_000, hash: [0xcd; 32] }),
                max_requests_per_sec: 200,
                utilisation_permille: 0,
                max_concurrent_relays: 16,
                archive: false,
                method_groups: vec!["eth".into(), "net".into()],
                policies: vec!["filters transactions by sanctions list".into()],
            },
        ],
        listen_addrs: vec!["/ip4/192.0.2.10/tcp/4001".into(), "/ip4/192.0.2.10/udp/4001/quic-v1".into()],
        membership_cert: Some(cert(signer, &identity(200))),
        software_version: "rpcmesh/0.1.0".into(),
        jurisdiction: None,
    }
}

fn attestation(seq: u64, subject: &Identity) -> HealthAttestation {
    HealthAttestation {
        header: header(seq),
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

fn receipt(requester: &Identity, request: &[u8], response: &[u8]) -> Receipt {
    Receipt {
        header: header(9001),
        requester: requester.public_key(),
        chain_id: 1,
        request_digest: digest::sha256(request),
        response_digest: digest::sha256(response),
        head: Some(21_000_000),
    }
}

/// A JSON-RPC-shaped body of exactly `len` bytes (a hex-heavy payload, like real traffic).
fn json_body(len: usize, prefix: &str) -> Vec<u8> {
    let suffix = "\"]}";
    let mut s = String::with_capacity(len);
    s.push_str(prefix);
    while s.len() < len - suffix.len() {
        s.push_str("deadbeef");
    }
    s.truncate(len - suffix.len());
    s.push_str(suffix);
    s.into_bytes()
}

fn relay_request() -> RelayRequest {
    RelayRequest {
        header: MessageHeader::new(NET, 9001, T0, 2_000),
        chain_id: 1,
        timeout_ms: 2_000,
        body: json_body(RELAY_BODY, r#"{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":["0x"#),
        trace: None,
    }
}

fn relay_response(server: &Identity, requester: &Identity, request: &RelayRequest) -> RelayResponse {
    let body = json_body(RELAY_BODY, r#"{"jsonrpc":"2.0","id":1,"result":["0x"#);
    let receipt = Signed::sign(receipt(requester, &request.body, &body), server);
    RelayResponse {
        header: MessageHeader::new(NET, 9001, T0, 2_000),
        status: RelayStatus::Ok,
        body,
        receipt: Some(receipt),
    }
}

/// sign, verify (strict) and decode_and_validate for one signed kind.
fn signed_kind<T: SignedBody + Validate>(c: &mut Criterion, name: &str, body: T, signer: &Identity) {
    let signed = Signed::sign(body.clone(), signer);
    let bytes = signed.to_bytes();
    let ctx = ctx();
    assert!(signed.verify().is_ok(), "{name}: sample does not verify");
    assert!(validate::decode_and_validate::<T>(&bytes, &ctx).is_ok(), "{name}: sample does not validate");

    let mut g = c.benchmark_group(format!("signed/{name}"));
    g.throughput(Throughput::Elements(1));
    // The clone is part of the setup, not the measurement.
    g.bench_function("sign", |b| {
        b.iter_batched(|| body.clone(), |body| Signed::sign(body, signer), BatchSize::SmallInput)
    });
    g.bench_function("verify", |b| b.iter(|| black_box(&signed).verify()));
    g.bench_function(format!("decode_and_validate ({} B)", bytes.len()), |b| {
        b.iter(|| validate::decode_and_validate::<T>(black_box(&bytes), &ctx))
    });
    g.finish();
}

fn bench_signed(c: &mut Criterion) {
    let me = identity(1);
    let peer = identity(2);
    let request = relay_request();
    signed_kind(c, "capacity_announcement", announcement(&me), &me);
    signed_kind(c, "health_attestation", attestation(7, &peer), &me);
    signed_kind(
        c,
        "membership_cert",
        MembershipCert {
            header: MessageHeader::new(NET, 1, T0 - 1000, 90 * 24 * 3600 * 1000),
            member: me.public_key(),
            operator_name: "Example Operator GmbH".into(),
            vetting: None,
        },
        &identity(200),
    );
    signed_kind(c, "receipt", receipt(&peer, &request.body, b"{}"), &me);
}

/// 64 attestations from 64 different attesters: ed25519 batch verification vs one by one.
fn bench_batch(c: &mut Criterion) {
    let subject = identity(250);
    let msgs: Vec<Signed<HealthAttestation>> = (0..BATCH)
        .map(|i| {
            let attester = identity(i as u8 + 1);
            Signed::sign(attestation(i as u64 + 1, &subject), &attester)
        })
        .collect();
    assert!(signed::verify_batch(&msgs).is_ok());

    let mut g = c.benchmark_group("verify_64_attestations");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("verify_batch", |b| b.iter(|| signed::verify_batch(black_box(&msgs))));
    g.bench_function("verify_each", |b| {
        b.iter(|| black_box(&msgs).iter().map(Signed::verify).collect::<Result<Vec<()>, _>>())
    });
    g.finish();
}

/// Canonical encode and decode (no signature or validation work).
fn codec<T: bincode::Encode + bincode::Decode<()>>(c: &mut Criterion, name: &str, value: &T) {
    let bytes = encoding::to_bytes(value);
    assert!(encoding::from_bytes::<T>(&bytes).is_ok(), "{name}: does not round-trip");
    let mut g = c.benchmark_group(format!("codec/{name}"));
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function(format!("encode ({} B)", bytes.len()), |b| b.iter(|| encoding::to_bytes(black_box(value))));
    g.bench_function(format!("decode ({} B)", bytes.len()), |b| {
        b.iter(|| encoding::from_bytes::<T>(black_box(&bytes)))
    });
    g.finish();
}

fn bench_codec(c: &mut Criterion) {
    let me = identity(1);
    let peer = identity(2);
    let request = relay_request();
    let response = relay_response(&me, &peer, &request);
    codec(c, "capacity_announcement", &Signed::sign(announcement(&me), &me));
    codec(c, "health_attestation", &Signed::sign(attestation(7, &peer), &me));
    codec(c, "membership_cert", &cert(&me, &identity(200)));
    codec(c, "receipt", &Signed::sign(receipt(&peer, &request.body, &response.body), &me));
    codec(c, "relay_request_100KiB", &request);
    codec(c, "relay_response_100KiB", &response);

    // What a relay server / client runs on each exchange: decode + header + body rules
    // (for the response: SHA-256 of the body and strict verification of the receipt).
    let ctx = ctx();
    let req_bytes = encoding::to_bytes(&request);
    let resp_bytes = encoding::to_bytes(&response);
    assert!(validate::decode_relay::<RelayRequest>(&req_bytes, &ctx).is_ok());
    assert!(validate::decode_relay::<RelayResponse>(&resp_bytes, &ctx).is_ok());
    let mut g = c.benchmark_group("decode_relay");
    g.throughput(Throughput::Bytes(req_bytes.len() as u64));
    g.bench_function("relay_request_100KiB", |b| {
        b.iter(|| validate::decode_relay::<RelayRequest>(black_box(&req_bytes), &ctx))
    });
    g.throughput(Throughput::Bytes(resp_bytes.len() as u64));
    g.bench_function("relay_response_100KiB", |b| {
        b.iter(|| validate::decode_relay::<RelayResponse>(black_box(&resp_bytes), &ctx))
    });
    g.finish();
}

/// Short enough that the whole suite runs in about a minute on 2 cores; `--quick` is shorter.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_signed, bench_batch, bench_codec
}
criterion_main!(benches);
