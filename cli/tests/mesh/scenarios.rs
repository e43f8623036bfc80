//! Shipped scenarios, shortened, as tests: the CLI runs them end to end and the recorded
//! requests must show zero failed and zero wrong answers (a liar in sample mode: none once it is
//! cordoned, see its test).

use std::path::PathBuf;
use std::process::Command;

use rpcmesh_testnet::record::{Outcome, Record, Request, read_records};
use rpcmesh_testnet::report::{LieSummary, ReportSummary, fmt};

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

/// Runs a shipped scenario and checks that every request was answered correctly; returns the run.
fn run(name: &str, duration: &str) -> Ran {
    let ran = execute(name, duration);
    let Ran { records, report, out, .. } = &ran;
    let requests = requests(records);
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
    ran
}

/// The one lie fault of a run's summary, on node 1.
fn the_lie<'a>(name: &str, summary: &'a ReportSummary, report: &str) -> &'a LieSummary {
    let [l] = summary.lies.as_slice() else { panic!("{name}: one lie fault\n{report}") };
    assert_eq!(l.node, 1, "{name}");
    l
}

/// The liar is cordoned by every daemon but its own (see `LieSummary`), and the report says
/// when: returns that time, ms after the injection.
fn cordoned_mesh_wide(name: &str, l: &LieSummary, report: &str) -> u64 {
    let Some(everywhere) = l.cordoned_everywhere_ms() else {
        panic!("{name}: node 1 was not cordoned by every other daemon: {:?}\n{report}", l.cordons)
    };
    assert_eq!(l.others().count(), 3, "{name}: daemons 0, 2 and 3 count for the mesh-wide cordon");
    assert!(report.contains("## Verified answers"), "{name}: the report has the verified-answers section");
    let said = format!("Every other daemon (3) had cordoned it {} after the injection", fmt::duration(everywhere));
    assert!(report.contains(&said), "{name}: the report says \"{said}\"\n{report}");
    everywhere
}

/// The verified-answers scenario on anvil: a node lying in every way reaches no strict client,
/// on its own daemon's gateway included, and once a daemon that relays to it (node 3, whose own
/// node is down) caught it, every other daemon cordons it.
#[test]
fn lying_provider_in_strict_mode_has_no_wrong_answer() {
    let name = "lying-provider-strict";
    let ran = run(name, "14s");
    let summary = rpcmesh_testnet::report::summarize(&ran.records);
    let l = the_lie(name, &summary, &ran.report);
    cordoned_mesh_wide(name, l, &ran.report);
}

/// Sample mode (the default) on anvil: node 1's node lies about account state. Wrong answers may
/// reach clients until a sampled check catches it; then every daemon cordons it, and:
/// - through the gateways of the daemons other than the liar's own, no request **sent** after
///   the mesh-wide cordon (the first poll at which every one of them showed it) gets a wrong
///   answer; one sent before it and answered after it was in flight, routed before every
///   daemon knew, and is not held against it;
/// - the liar's own daemon serves from its own node, to which no cordon applies: what stops the
///   lies there is that it checks every answer of a node it caught once. At about 50 lie-able
///   answers a second and a 5 % sample it catches its node within a second or two, so its last
///   wrong answer must come within 10 s of the injection.
#[test]
fn lying_provider_in_sample_mode_is_caught_and_cordoned_mesh_wide() {
    let name = "lying-provider-sample";
    let ran = execute(name, "30s");
    let report = &ran.report;
    let summary = rpcmesh_testnet::report::summarize(&ran.records);
    let l = the_lie(name, &summary, report);
    let everywhere = cordoned_mesh_wide(name, l, report);
    let all = requests(&ran.records);
    assert!(all.len() > 1000, "{name}: only {} requests recorded", all.len());
    let failed: Vec<_> = all.iter().filter(|q| q.outcome == Outcome::Error).collect();
    assert!(failed.is_empty(), "{name}: {} failed requests, first: {:?}\n{report}", failed.len(), failed.first());

    // The count of wrong answers before the first detection is reported (requests, wrong, and
    // sent before the first cordon are adjacent columns of the summary row).
    let t = l.total();
    assert!(l.detected_ms().is_some_and(|d| d <= everywhere), "{name}: {:?}", l.detection());
    assert!(t.wrong_before_detection <= t.wrong);
    let row = format!("| {} | {} | {} |", t.requests, t.wrong, t.wrong_before_detection);
    assert!(report.contains(&row), "{name}: the wrong answers before detection ({row}) are in the report\n{report}");

    // After the mesh-wide cordon, checked on the raw records, not only on the summary.
    let cut_ms = l.injected_at_ms + everywhere;
    let late: Vec<_> = all
        .iter()
        .filter(|q| q.gateway != l.node && q.t_ms >= cut_ms && q.t_ms < l.end_ms)
        .filter(|q| q.outcome == Outcome::Wrong)
        .collect();
    assert!(
        late.is_empty(),
        "{name}: {} wrong answers after the mesh-wide cordon, first {:?}\n{report}",
        late.len(),
        late.first()
    );
    assert_eq!(l.others_total().wrong_after_cordon, 0, "{name}");
    let sent_after = all.iter().filter(|q| q.gateway != l.node && q.t_ms >= cut_ms && q.t_ms < l.end_ms).count();
    assert!(sent_after >= 100, "{name}: only {sent_after} requests after the mesh-wide cordon");
    let own = all.iter().filter(|q| q.gateway == l.node && q.outcome == Outcome::Wrong).map(|q| q.t_ms).max();
    if let Some(last) = own {
        assert!(
            last < l.injected_at_ms + 10_000,
            "{name}: node 1's own gateway served a wrong answer {} ms after the injection\n{report}",
            last - l.injected_at_ms
        );
    }
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
    let (mut n, mut sims) = (0, 0);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if path.extension().is_some_and(|e| e == "toml") {
            if name.starts_with("sim-") {
                let text = std::fs::read_to_string(&path).unwrap();
                rpcmesh_testnet::simulate::SimScenario::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
                sims += 1;
            } else {
                rpcmesh_testnet::scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
    }
    assert_eq!(n, 13, "thirteen shipped scenarios");
    assert_eq!(sims, 4, "four shipped simulation scenarios");
    rpcmesh_testnet::scenario::load(&dir.join("validate/mesh-20.toml")).unwrap_or_else(|e| panic!("{e}"));
}
