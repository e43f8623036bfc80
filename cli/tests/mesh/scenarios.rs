//! Shipped scenarios, shortened, as tests: the CLI runs them end to end and the recorded
//! requests must show zero failed and zero wrong answers.

use std::path::PathBuf;
use std::process::Command;

use rpcmesh_testnet::record::{Outcome, Record, Request, read_records};

use crate::support::bin;

/// A finished scenario run: its records, its report, and its directory (removed on drop).
struct Ran {
    records: Vec<Record>,
    report: String,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

/// Runs a shipped scenario shortened to `duration` through the CLI.
fn execute(name: &str, duration: &str) -> Ran {
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
    Ran { records, report, out, _dir: dir }
}

fn requests(records: &[Record]) -> Vec<&Request> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Request(q) => Some(q),
            _ => None,
        })
        .collect()
}

fn run(name: &str, duration: &str) {
    let Ran { records, report, out, _dir } = execute(name, duration);
    let requests = requests(&records);
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

/// The censorship checks of a censoring scenario's run: no client got a censored read about
/// the watched address or a wrong or failed answer, and every transaction sent to it was
/// accepted and mined. Returns the run's summary.
fn assert_no_censorship_reached_clients(name: &str, ran: &Ran) -> rpcmesh_testnet::report::ReportSummary {
    let summary = rpcmesh_testnet::report::summarize(&ran.records);
    let report = &ran.report;
    let [c] = summary.censorship.as_slice() else { panic!("{name}: one censoring fault\n{report}") };
    assert_eq!(c.node, 1, "{name}");
    assert!(c.about.requests >= 20, "{name}: only {} requests about the watched address\n{report}", c.about.requests);
    assert_eq!(c.censored_answers, 0, "{name}: censored answers reached clients\n{report}");
    let bad: Vec<_> = requests(&ran.records).into_iter().filter(|q| q.outcome != Outcome::Ok).collect();
    assert!(bad.is_empty(), "{name}: {} failed or wrong requests, first: {:?}\n{report}", bad.len(), bad.first());
    let total = summary.transactions.iter().find(|t| t.gateway.is_none()).expect("transactions were sent");
    assert!(total.sent >= 5, "{name}: only {} transactions sent\n{report}", total.sent);
    assert_eq!((total.accepted, total.refused), (total.sent, 0), "{name}: refused transactions\n{report}");
    assert_eq!(total.mined, total.sent, "{name}: transactions not mined\n{report}");
    summary
}

/// Issue 12 on anvil: node 1's node filters a watched address without saying so. No client of
/// node 0 or of node 1's own daemon gets a censored read or a refused transaction, and every
/// daemon labels node 1 `filters` (canaries every 5 s) well within the run.
#[test]
fn undisclosed_censorship_reaches_no_client_and_is_labelled_mesh_wide() {
    let name = "censoring-provider-undisclosed";
    let ran = execute(name, "30s");
    let summary = assert_no_censorship_reached_clients(name, &ran);
    let c = &summary.censorship[0];
    assert!(
        c.labelled_everywhere_ms().is_some(),
        "{name}: not every daemon labelled node 1 `filters`: {:?}\n{}",
        c.labels,
        ran.report
    );
    let watched = "0xa0ee7a142d267c1f36714e4a8f75612f20a79720";
    for l in &c.labels {
        assert!(l.subjects.iter().any(|s| s.eq_ignore_ascii_case(watched)), "{name}: label names {:?}", l.subjects);
    }
}

/// Issue 12 on anvil: node 1 declares its filter and every gateway avoids declared filters, so
/// node 1's node serves no client request, on its own daemon's gateway included.
#[test]
fn disclosed_filter_is_never_routed_to() {
    let name = "censoring-provider-disclosed";
    let ran = execute(name, "20s");
    let summary = assert_no_censorship_reached_clients(name, &ran);
    let c = &summary.censorship[0];
    assert_eq!(c.declared.len(), 1, "{name}: node 1's declared policy is in the records");
    assert!(c.served_known >= 50, "{name}: only {} answers name their server", c.served_known);
    let by_censor: Vec<_> = requests(&ran.records).into_iter().filter(|q| q.served_by_node == Some(1)).collect();
    assert!(by_censor.is_empty(), "{name}: node 1 served {} requests, first {:?}", by_censor.len(), by_censor.first());
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
    assert_eq!(n, 12, "twelve shipped scenarios");
}
