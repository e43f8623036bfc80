//! Shipped scenarios, shortened, as tests: the CLI runs them end to end and the recorded
//! requests must show zero failed and zero wrong answers.

use std::process::Command;

use rpcmesh_testnet::record::{Outcome, Record, read_records};

use crate::support::bin;

fn run(name: &str, duration: &str) {
    let dir = tempfile::tempdir().unwrap();
    let scenario =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testnet/scenarios").join(format!("{name}.toml"));
    let out = dir.path().join("run");
    let result = Command::new(bin())
        .args(["testnet", "run"])
        .arg(&scenario)
        .args(["--duration", duration, "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(result.status.success(), "scenario {name} failed:\n{}", String::from_utf8_lossy(&result.stderr));
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    let records = read_records(&out.join("records.jsonl")).unwrap();
    let requests: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Request(q) => Some(q),
            _ => None,
        })
        .collect();
    assert!(requests.len() > 100, "{name}: only {} requests recorded", requests.len());
    let bad: Vec<_> = requests.iter().filter(|q| q.outcome != Outcome::Ok).collect();
    assert!(bad.is_empty(), "{name}: {} failed or wrong requests, first: {:?}\n{report}", bad.len(), bad.first());
    assert!(records.iter().any(|r| matches!(r, Record::Fault(_))), "{name}: the timeline's fault was recorded");
    for svg in ["latency.svg", "served_by.svg", "gossip_cdf.svg"] {
        let text = std::fs::read_to_string(out.join(svg)).unwrap();
        assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"), "{svg}");
    }
    // While node 0's node was broken, other providers served its clients.
    assert!(requests.iter().any(|q| q.served_by_node.is_some_and(|n| n != 0)), "{name}: nobody but node 0 served");
}

/// The verified-answers scenario on anvil: a node lying in every way reaches no strict client,
/// on its own daemon's gateway included.
#[test]
fn lying_provider_in_strict_mode_has_no_wrong_answer() {
    run("lying-provider-strict", "14s");
}

#[test]
fn provider_outage_scenario_has_no_failed_request() {
    run("provider-outage", "16s");
}

#[test]
fn frozen_provider_scenario_has_no_failed_request() {
    run("frozen-provider", "16s");
}

#[test]
fn every_shipped_scenario_parses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testnet/scenarios");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            rpcmesh_testnet::scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert_eq!(n, 10, "ten shipped scenarios");
}
