//! Gateway hot paths: JSON-RPC envelope parsing (method, id, batch split) on every client
//! request, and the cheap classification of every upstream/relay response.
//!
//! Run: `cargo bench -p rpcmesh-node --bench gateway` (add `-- --quick` for a fast pass).
//! See docs/benchmarks.md.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rpcmesh_node::jsonrpc::{self, Call, Item, ResponseKind};
use serde::de::IgnoredAny;

const MIB: usize = 1024 * 1024;

/// `n` hex digits (deterministic, not all one character).
fn hex_digits(n: usize) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    (0..n).map(|i| DIGITS[(i * 7 + i / 16) % 16] as char).collect()
}

fn single_small() -> Bytes {
    Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#)
}

/// 100 mixed reads, as a dapp's multicall-less page load sends them.
fn batch_100() -> Bytes {
    let items: Vec<String> = (0..100)
        .map(|i| match i % 4 {
            0 => format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"eth_blockNumber","params":[]}}"#),
            1 => format!(
                r#"{{"jsonrpc":"2.0","id":{i},"method":"eth_getBalance","params":["0x{}","latest"]}}"#,
                hex_digits(40)
            ),
            2 => format!(
                r#"{{"jsonrpc":"2.0","id":"req-{i}","method":"eth_call","params":[{{"to":"0x{}","data":"0x70a08231000000000000000000000000{}"}},"latest"]}}"#,
                hex_digits(40),
                hex_digits(40)
            ),
            _ => format!(
                r#"{{"jsonrpc":"2.0","id":{i},"method":"eth_getTransactionCount","params":["0x{}","pending"]}}"#,
                hex_digits(40)
            ),
        })
        .collect();
    Bytes::from(format!("[{}]", items.join(",")))
}

/// One `eth_sendRawTransaction` of about 1 MiB (a blob-sized raw transaction).
fn single_1mib() -> Bytes {
    let head = r#"{"jsonrpc":"2.0","id":42,"method":"eth_sendRawTransaction","params":["0x"#;
    let tail = r#""]}"#;
    Bytes::from(format!("{head}{}{tail}", hex_digits(MIB - head.len() - tail.len())))
}

/// About 1 MiB of `eth_call`s with ~1 KiB of calldata each (~1000 elements).
fn batch_1mib() -> Bytes {
    let mut out = String::with_capacity(MIB + 2048);
    out.push('[');
    let mut i = 0;
    while out.len() < MIB - 1200 {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            r#"{{"jsonrpc":"2.0","id":{i},"method":"eth_call","params":[{{"to":"0x{}","data":"0x{}"}},"latest"]}}"#,
            hex_digits(40),
            hex_digits(1000)
        ));
        i += 1;
    }
    out.push(']');
    Bytes::from(out)
}

fn count_requests(call: &Call) -> usize {
    match call {
        Call::Single(Item::Request(_)) => 1,
        Call::Batch(items) => items.iter().filter(|i| matches!(i, Item::Request(_))).count(),
        _ => 0,
    }
}

fn bench_parse(c: &mut Criterion) {
    let cases: [(&str, Bytes, usize); 4] = [
        ("single eth_blockNumber", single_small(), 1),
        ("batch of 100", batch_100(), 100),
        ("single 1MiB eth_sendRawTransaction", single_1mib(), 1),
        ("batch 1MiB", batch_1mib(), 0),
    ];
    let mut g = c.benchmark_group("jsonrpc_parse");
    for (name, body, expected) in &cases {
        let n = count_requests(&jsonrpc::parse(body));
        assert!(n > 0 && (*expected == 0 || n == *expected), "{name}: parsed {n} requests");
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(format!("{name} ({} B, {n} req)", body.len()), |b| b.iter(|| jsonrpc::parse(black_box(body))));
        // Baseline: one validating pass over the same bytes, building nothing.
        g.bench_function(format!("{name} baseline: serde_json IgnoredAny"), |b| {
            b.iter(|| serde_json::from_slice::<IgnoredAny>(black_box(body)).is_ok())
        });
    }
    g.finish();
}

fn bench_response_kind(c: &mut Criterion) {
    let small = br#"{"jsonrpc":"2.0","id":1,"result":"0x1406f40"}"#.to_vec();
    // eth_getLogs-sized success: no "error" key anywhere, the byte-search fast path.
    let large = {
        let head = r#"{"jsonrpc":"2.0","id":1,"result":["0x"#;
        let tail = r#""]}"#;
        format!("{head}{}{tail}", hex_digits(MIB - head.len() - tail.len())).into_bytes()
    };
    let error = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"header not found"}}"#.to_vec();
    // A 1 MiB success whose result mentions "error" (a callTracer trace with a reverted
    // subcall): the byte search hits, so the whole body is parsed.
    let large_with_error_text = {
        let head = r#"{"jsonrpc":"2.0","id":1,"result":{"type":"CALL","error":"execution reverted","input":"0x"#;
        let tail = r#""}}"#;
        format!("{head}{}{tail}", hex_digits(MIB - head.len() - tail.len())).into_bytes()
    };
    assert!(matches!(jsonrpc::response_kind(&small), ResponseKind::Result));
    assert!(matches!(jsonrpc::response_kind(&large), ResponseKind::Result));
    assert!(matches!(jsonrpc::response_kind(&error), ResponseKind::Error(_)));
    assert!(matches!(jsonrpc::response_kind(&large_with_error_text), ResponseKind::Result));

    let mut g = c.benchmark_group("jsonrpc_response_kind");
    for (name, body) in [
        ("small result", &small),
        ("1MiB result", &large),
        ("error", &error),
        ("1MiB result containing \"error\"", &large_with_error_text),
    ] {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(format!("{name} ({} B)", body.len()), |b| b.iter(|| jsonrpc::response_kind(black_box(body))));
    }
    // Baselines on the 1 MiB success body: the same `"error"` search with memchr's SIMD
    // substring finder, and one full validating parse (what the byte search is meant to avoid).
    g.throughput(Throughput::Bytes(large.len() as u64));
    g.bench_function("1MiB result baseline: memchr::memmem::find", |b| {
        b.iter(|| memchr::memmem::find(black_box(&large), b"\"error\""))
    });
    g.bench_function("1MiB result baseline: serde_json IgnoredAny", |b| {
        b.iter(|| serde_json::from_slice::<IgnoredAny>(black_box(&large)).is_ok())
    });
    g.finish();

    // Answer hygiene: the full check every upstream and peer answer passes (shape, id).
    let mut g = c.benchmark_group("jsonrpc_parse_response");
    for (name, body) in [("small result", &small), ("1MiB result", &large), ("error", &error)] {
        assert!(jsonrpc::parse_response(body, b"1").is_ok());
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(format!("{name} ({} B)", body.len()), |b| {
            b.iter(|| jsonrpc::parse_response(black_box(body), b"1"))
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_parse, bench_response_kind
}
criterion_main!(benches);
