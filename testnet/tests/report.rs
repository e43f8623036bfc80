//! The report from synthetic records: exact headline numbers, the Markdown tables and the plain
//! findings (bad news included), the SVG plots, the JSONL round trip, and the empty and partial
//! cases.
//!
//! The scenario (5 nodes, 20 s, one request every 20 ms alternating between gateways 0 and 1):
//! - gateway 0 uses node 3, gateway 1 uses node 2; latencies 1.0–1.9 ms;
//! - one timeout at 2 s;
//! - node 3 `down` from 5 s to 10 s: gateway 0's requests fail (50 ms) until 6 s, then node 4
//!   answers (2 ms); node 1 notices at 6.5 s, nodes 0 and 4 later;
//! - node 2 `lie` from 13 s to 15 s, undetected: one wrong answer at 14.02 s;
//! - 20 gossip messages, one of which never reaches node 3;
//! - a false alarm: node 2 marks node 4 `lagging` at 17 s.

use std::path::{Path, PathBuf};

use rpcmesh_testnet::record::{
    FaultAction, FaultEvent, GossipDelivery, Meta, Outcome, Phase, Record, RecordWriter, Request, Transport,
    ViewChange, parse_records, read_records, read_records_counted, write_records,
};
use rpcmesh_testnet::report::{self, GatewayRouting, Stall};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rpcmesh-report-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn meta(interrupted: bool) -> Record {
    Record::Meta(Meta {
        scenario: "failover".into(),
        description: "Node 3 goes down, then node 2 lies.".into(),
        nodes: 5,
        chains: vec![1],
        backend: "sim".into(),
        started_at_unix_ms: 1_735_689_600_000,
        duration_ms: 20_000,
        node_peer_ids: (0..5).map(|i| format!("12D3KooWpeer{i}xxxxxxxxxxxxxxxxxxxx")).collect(),
        interrupted,
        node_policies: Default::default(),
    })
}

fn fault(t_ms: u64, node: usize, kind: &str, action: FaultAction) -> Record {
    Record::Fault(FaultEvent { t_ms, node: Some(node), kind: kind.into(), action })
}

fn view(t_ms: u64, observer: usize, subject: usize, health: &str) -> Record {
    Record::View(ViewChange { t_ms, observer, subject, health: health.into() })
}

fn requests() -> Vec<Record> {
    (0..1000u64)
        .map(|i| {
            let t_ms = i * 20;
            let gateway = (i % 2) as usize;
            let normal = 1000 + (i % 10) * 100;
            let (outcome, latency_us, node, detail) = match (gateway, t_ms) {
                (0, 2000) => (Outcome::Error, 50_000, None, Some("timeout")),
                (0, t) if t < 5000 => (Outcome::Ok, normal, Some(3), None),
                (0, t) if t < 6000 => (Outcome::Error, 50_000, None, Some("connection refused")),
                (0, _) => (Outcome::Ok, 2000, Some(4), None),
                (_, 14_020) => (Outcome::Wrong, normal, Some(2), Some("block hash 0xdead, truth 0xbeef")),
                _ => (Outcome::Ok, normal, Some(2), None),
            };
            Record::Request(Request {
                t_ms,
                latency_us,
                gateway,
                transport: if i % 5 == 0 { Transport::Ws } else { Transport::Http },
                method: "eth_getBlockByNumber".into(),
                outcome,
                served_by: node.map(|n| format!("12D3KooWpeer{n}xxxxxxxxxxxxxxxxxxxx")),
                served_by_node: node,
                attempts: 1,
                detail: detail.map(str::to_string),
                subject: None,
                verify: None,
            })
        })
        .collect()
}

fn gossip() -> Vec<Record> {
    let mut out = Vec::new();
    for publisher in 0..5usize {
        for seq in 1..=4u64 {
            let published = seq * 4000 + publisher as u64 * 100;
            let observers: Vec<usize> = (0..5).filter(|&o| o != publisher).collect();
            for (k, &observer) in observers.iter().enumerate() {
                if publisher == 4 && seq == 4 && k == 3 {
                    continue; // never reaches node 3
                }
                let delay_ms = if k < 3 { 10 * (k as u64 + 1) } else { 40 + 10 * seq };
                out.push(Record::Gossip(GossipDelivery {
                    t_ms: published + delay_ms,
                    publisher,
                    seq,
                    observer,
                    delay_ms,
                }));
            }
        }
    }
    out
}

fn scenario(interrupted: bool) -> Vec<Record> {
    let mut records = vec![
        meta(interrupted),
        Record::Phase(Phase { t_ms: 0, name: "baseline".into() }),
        Record::Phase(Phase { t_ms: 5000, name: "fault".into() }),
        Record::Phase(Phase { t_ms: 10_000, name: "recovery".into() }),
        view(1000, 1, 3, "healthy"),
        view(1000, 0, 3, "healthy"),
        view(1000, 4, 3, "healthy"),
        view(1000, 2, 4, "healthy"),
        fault(5000, 3, "down", FaultAction::Inject),
        view(6500, 1, 3, "down"),
        view(7000, 0, 3, "unhealthy"),
        view(8000, 4, 3, "down"),
        fault(10_000, 3, "down", FaultAction::Heal),
        view(11_000, 1, 3, "healthy"),
        view(11_500, 0, 3, "healthy"),
        view(12_000, 4, 3, "healthy"),
        fault(13_000, 2, "lie", FaultAction::Inject),
        fault(15_000, 2, "lie", FaultAction::Heal),
        view(17_000, 2, 4, "lagging"),
    ];
    records.extend(requests());
    records.extend(gossip());
    records
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn report_summary_numbers_are_exact() {
    let s = report::summarize(&scenario(false));
    let o = &s.overall;
    assert_eq!((o.requests, o.ok, o.error, o.wrong), (1000, 973, 26, 1));
    assert_eq!(o.availability, Some(0.973));
    // Sorted latencies (µs × count): 1000×24 1100×100 1200×25 1300×100 1400×25 1500×100 1600×25
    // 1700×100 1800×25 1900×100 2000×350 50000×26: ranks 500, 950, 990.
    assert_eq!((o.p50_us, o.p95_us, o.p99_us, o.max_us), (Some(1800), Some(2000), Some(50_000), Some(50_000)));
    assert_eq!(s.duration_ms, 20_000);
    assert!(!s.interrupted);

    // (name, [start, end, requests, failed, wrong], [p50, p95, p99] µs)
    type PhaseRow<'a> = (&'a str, [u64; 5], [Option<u64>; 3]);
    let phases: Vec<PhaseRow> = s
        .phases
        .iter()
        .map(|p| {
            let st = &p.stats;
            (
                p.name.as_str(),
                [p.start_ms, p.end_ms, st.requests, st.error, st.wrong],
                [st.p50_us, st.p95_us, st.p99_us],
            )
        })
        .collect();
    assert_eq!(
        phases,
        [
            ("baseline", [0, 5000, 250, 1, 0], [Some(1500), Some(1900), Some(1900)]),
            ("fault", [5000, 10_000, 250, 25, 0], [Some(1900), Some(50_000), Some(50_000)]),
            ("recovery", [10_000, 20_000, 500, 0, 1], [Some(1900), Some(2000), Some(2000)]),
        ]
    );
    assert_eq!(s.phases[1].stats.availability, Some(0.9));

    let g: Vec<(usize, u64, u64, u64)> = s.gateways.iter().map(|g| (g.gateway, g.http, g.ws, g.stats.error)).collect();
    assert_eq!(g, [(0, 400, 100, 26), (1, 400, 100, 0)]);

    assert_eq!(s.faults.len(), 2);
    let down = &s.faults[0];
    assert_eq!(
        (down.kind.as_str(), down.node, down.injected_at_ms, down.healed_at_ms),
        ("down", Some(3), 5000, Some(10_000))
    );
    let d = down.detection.as_ref().expect("down is detected");
    assert_eq!((d.after_ms, d.observer, d.subject, d.health.as_str()), (1500, 1, 3, "down"));
    assert_eq!(down.observers_detecting, 3);
    // Gateway 0's first correct answer from node 4: sent at 6 s, 2 ms → 1002 ms after the injection.
    assert_eq!(down.routing, [GatewayRouting { gateway: 0, after_ms: Some(1002) }]);
    assert_eq!(down.route_around_ms(), Some(Some(1002)));
    assert_eq!(down.longest_stall, Some(Stall { ms: 1002, gateway: 0 }));
    assert_eq!((down.stats.requests, down.stats.error, down.stats.wrong, down.served_by_faulty), (250, 25, 0, 0));

    let lie = &s.faults[1];
    assert_eq!(
        (lie.kind.as_str(), lie.node, lie.injected_at_ms, lie.healed_at_ms),
        ("lie", Some(2), 13_000, Some(15_000))
    );
    assert_eq!(lie.detection, None);
    assert_eq!(lie.routing, [GatewayRouting { gateway: 1, after_ms: None }]);
    assert_eq!(lie.route_around_ms(), Some(None));
    // Gateway 1: correct answers end at 13.9819 s, then the wrong one, then 14.0613 s.
    assert_eq!(lie.longest_stall, Some(Stall { ms: 79, gateway: 1 }));
    assert_eq!((lie.stats.requests, lie.stats.error, lie.stats.wrong, lie.served_by_faulty), (100, 0, 1, 50));

    assert_eq!(s.wrong_answers.len(), 1);
    assert_eq!(s.wrong_answers[0].t_ms, 14_020);
    assert_eq!(s.wrong_outside_faults, 0);
    let errors: Vec<(&str, u64)> = s.top_errors.iter().map(|e| (e.detail.as_str(), e.count)).collect();
    assert_eq!(errors, [("connection refused", 25), ("timeout", 1)]);

    let gs = &s.gossip;
    assert_eq!((gs.messages, gs.deliveries, gs.expected_observers, gs.fully_delivered), (20, 79, 4, 19));
    assert_eq!((gs.delivery_p50_ms, gs.delivery_p99_ms, gs.delivery_max_ms), (Some(20), Some(80), Some(80)));
    // Convergence over 20 messages: 50×5 60×5 70×5 80×4, one never: p50 = rank 10, p99 = rank 20.
    assert_eq!((gs.convergence_p50_ms, gs.convergence_p99_ms), (Some(60), None));
    let node3 = gs.per_observer.iter().find(|o| o.observer == 3).expect("observer 3");
    assert_eq!((node3.deliveries, node3.missed), (15, 1));
    assert_eq!(gs.per_observer.len(), 5);

    assert_eq!(s.view_changes, 11);
    assert_eq!(s.false_alarms.len(), 1);
    assert_eq!((s.false_alarms[0].observer, s.false_alarms[0].subject, s.false_alarms[0].t_ms), (2, 4, 17_000));
}

#[test]
fn report_findings_tell_the_truth() {
    let s = report::summarize(&scenario(false));
    let expected = [
        "1000 requests: 97.3% answered correctly, 26 failed, 1 wrong; p99 latency 50.0 ms.",
        "`down` on node 3 (5 s → 10 s): first marked `down` by node 1 after 1.5 s; 3 nodes noticed during the fault.",
        "Gateway 0 that used node 3 got a correct answer from another node after at most 1.002 s.",
        "During the fault 250 requests were sent: 25 failed, 0 wrong, 0 served by node 3; the longest time without a correct answer was 1.002 s (gateway 0).",
        "`lie` on node 2 (13 s → 15 s): no node marked node 2 as not healthy while the fault lasted (2 s): rpcmesh did not detect this fault.",
        "Gateway 1 that used node 2 never got a correct answer from another node during the fault.",
        "1 wrong answer was served while node 2 lied: rpcmesh did not detect the lying provider.",
        "In phase 'fault' availability was 90% and p99 latency 50.0 ms, against 99.6% and 1.90 ms in 'baseline'.",
        "Gossip: 19 of 20 messages reached all 4 other nodes; half were everywhere within 60 ms, but more than 1% never were.",
        "Nodes were marked not healthy 1 time with no fault on them (first: node 2 marked node 4 `lagging` at 17 s).",
    ];
    for line in expected {
        assert!(s.findings.iter().any(|f| f.contains(line)), "missing finding:\n{line}\nin:\n{:#?}", s.findings);
    }
    // One paragraph per fault, after the overall line.
    assert_eq!(s.findings.len(), 6, "{:#?}", s.findings);
    assert!(s.findings[2].starts_with("`lie` on node 2"));
    assert!(
        s.findings[2]
            .ends_with("1 wrong answer was served while node 2 lied: rpcmesh did not detect the lying provider.")
    );
    for f in &s.findings {
        assert!(f.ends_with('.'), "{f}");
    }
}

#[test]
fn report_files_are_written_with_tables_and_plots() {
    let dir = scratch("full");
    let records = scenario(false);
    let summary = report::write_report(&dir, &records).expect("write report");
    assert_eq!(summary.overall.requests, 1000);

    let md = read(&dir.join("report.md"));
    assert!(md.starts_with("# rpcmesh testnet report: failover\n"));
    assert!(!md.contains("Partial report"));
    assert!(md.contains("Node 3 goes down, then node 2 lies."));
    assert!(md.contains("| Started | 2025-01-01 00:00:00 UTC |"));
    assert!(md.contains("| 3 | `12D3KooWpeer3xxxxxxxxxxxxxxxxxxxx` |"));
    // Summary table.
    assert!(md.contains("| 1000 | 973 | 26 | 1 | 97.3% | 1.80 | 2.00 | 50.0 | 50.0 |"), "{md}");
    // Per phase.
    assert!(md.contains("| baseline | 0 s | 5 s | 250 | 99.6% | 1 | 0 | 1.50 | 1.90 | 1.90 |"), "{md}");
    assert!(md.contains("| fault | 5 s | 10 s | 250 | 90% | 25 | 0 | 1.90 | 50.0 | 50.0 |"), "{md}");
    assert!(md.contains("| recovery | 10 s | 20 s | 500 | 99.8% | 0 | 1 | 1.90 | 2.00 | 2.00 |"), "{md}");
    // Per fault.
    assert!(
        md.contains(
            "| `down` | 3 | 5 s | 10 s | 1.5 s (node 1 saw `down`) | 1.002 s | 1.002 s (gw 0) | 250 | 25 | 0 | 0 |"
        ),
        "{md}"
    );
    assert!(
        md.contains("| `lie` | 2 | 13 s | 15 s | not detected | not routed around (gateway 1) | 79 ms (gw 1) | 100 | 0 | 1 | 50 |"),
        "{md}"
    );
    // Gossip.
    assert!(md.contains("| 20 | 19 (95%) | 0 | 79 | 20 | 80 | 80 | 60 | not reached |"), "{md}");
    assert!(md.contains("| 3 | 15 | 1 | 30 | 70 | 70 |"), "{md}");
    // Wrong answers, listed with what was wrong.
    assert!(md.contains("| 14.02 s | 1 | `eth_getBlockByNumber` | node 2 | block hash 0xdead, truth 0xbeef |"), "{md}");
    assert!(md.contains("| 25 | connection refused |"));
    // Plots and findings.
    for img in [
        "![Latency over time](latency.svg)",
        "![Served-by share over time](served_by.svg)",
        "![Gossip propagation CDF](gossip_cdf.svg)",
    ] {
        assert!(md.contains(img), "missing {img}");
    }
    let shows = md.find("## What this shows").expect("findings section");
    assert!(md[shows..].contains("\n- `lie` on node 2 (13 s → 15 s): no node marked node 2 as not healthy"));
    assert!(
        md[shows..]
            .contains(" 1 wrong answer was served while node 2 lied: rpcmesh did not detect the lying provider.\n")
    );
    assert!(md.trim_end().ends_with(&format!("Raw data: [records.jsonl](records.jsonl) ({} lines)", records.len())));

    // The raw data is written beside the report, and reads back identical.
    assert_eq!(read_records(&dir.join("records.jsonl")).expect("read records"), records);

    for (file, markers) in [("latency.svg", 4), ("served_by.svg", 4), ("gossip_cdf.svg", 0)] {
        let svg = read(&dir.join(file));
        assert_well_formed(&svg, file);
        assert_eq!(svg.matches("class=\"fault-marker").count(), markers, "{file}");
    }
    let latency = read(&dir.join("latency.svg"));
    assert_eq!(latency.matches("class=\"fault-marker inject\"").count(), 2);
    assert!(
        latency.contains(">down n3</text>")
            && latency.contains(">heal n3</text>")
            && latency.contains(">lie n2</text>")
    );
    assert!(
        latency.contains(">ok (973)</text>")
            && latency.contains(">failed (26)</text>")
            && latency.contains(">wrong (1)</text>")
    );
    assert_eq!(latency.matches("class=\"phase\"").count(), 2); // bands on phases 1 and 3
    assert!(latency.contains(">1 ms</text>") && latency.contains(">100 ms</text>"), "log-scale decade ticks");
    let served = read(&dir.join("served_by.svg"));
    for name in ["node 2", "node 3", "node 4", "failed"] {
        assert!(served.contains(&format!("<title>{name}")), "served_by.svg lacks {name}");
    }
    assert!(served.contains(">100%</text>"));
    let cdf = read(&dir.join("gossip_cdf.svg"));
    assert!(cdf.contains(">each delivery (79)<") && cdf.contains(">reached all (19/20)<"));
    assert!(cdf.contains(">p50 20 ms, p99 80 ms<") && cdf.contains(">p50 60 ms, p99 never<"));

    // Rebuilding from the directory gives the same numbers.
    let again = report::write_report_from_dir(&dir).expect("rebuild");
    assert_eq!(again, summary);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Tags balance (ignoring self-closing ones and the text in between), one root `<svg>`.
fn assert_well_formed(svg: &str, name: &str) {
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{name} start");
    assert!(svg.trim_end().ends_with("</svg>"), "{name} end");
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    while let Some(open) = rest.find('<') {
        let close = rest[open..].find('>').unwrap_or_else(|| panic!("{name}: unclosed tag")) + open;
        let tag = &rest[open + 1..close];
        assert!(!rest[..open].contains('>'), "{name}: stray '>' in text");
        if let Some(end) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(end.trim()), "{name}: mismatched </{end}>");
        } else if !tag.ends_with('/') {
            let tag_name = tag.split_whitespace().next().unwrap_or_default().to_string();
            stack.push(tag_name);
        }
        rest = &rest[close + 1..];
    }
    assert!(stack.is_empty(), "{name}: unclosed {stack:?}");
    assert!(!svg.contains("NaN") && !svg.contains("inf"), "{name}: non-finite coordinates");
}

#[test]
fn report_of_nothing_still_renders() {
    let dir = scratch("empty");
    let s = report::write_report(&dir, &[]).expect("write empty report");
    assert_eq!(s.overall.requests, 0);
    assert_eq!(s.overall.availability, None);
    assert!(s.faults.is_empty());
    let md = read(&dir.join("report.md"));
    assert!(md.contains("No client requests were recorded"));
    assert!(md.contains("No faults were injected."));
    assert!(md.contains("No gossip deliveries were recorded."));
    assert!(md.contains("| 0 | 0 | 0 | 0 | n/a | – | – | – | – |"), "{md}");
    assert!(md.contains("Raw data: [records.jsonl](records.jsonl) (0 lines)"));
    for file in ["latency.svg", "served_by.svg", "gossip_cdf.svg"] {
        let svg = read(&dir.join(file));
        assert_well_formed(&svg, file);
        assert!(svg.contains(">no data"), "{file} says no data");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn report_of_an_interrupted_run_says_partial() {
    let dir = scratch("partial");
    // The runner wrote a meta at the start; the final one (last wins) says it was interrupted.
    let mut records = scenario(false);
    records.retain(|r| r.t_ms().is_none_or(|t| t < 8000));
    let mut last = meta(true);
    if let Record::Meta(m) = &mut last {
        m.duration_ms = 8000;
    }
    records.push(last);
    let s = report::write_report(&dir, &records).expect("write report");
    assert!(s.interrupted);
    assert_eq!(s.duration_ms, 8000);
    let md = read(&dir.join("report.md"));
    assert!(md.contains("> **Partial report: the run was interrupted** after 8 s."), "{md}");
    assert!(s.findings[0].starts_with("The run was interrupted after 8 s"));
    // The down fault never healed within the data: its window runs to the end.
    assert_eq!((s.faults[0].healed_at_ms, s.faults[0].end_ms), (None, 8000));
    assert!(md.contains("| – (ended 8 s) |"), "{md}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn report_records_round_trip_through_jsonl() {
    let dir = scratch("jsonl");
    let path = dir.join("records.jsonl");
    let records = scenario(false);
    write_records(&path, &records).expect("write");
    assert_eq!(read_records(&path).expect("read"), records);

    // Appending with a per-line flush, then a torn line from a killed writer.
    {
        let mut w = RecordWriter::append(&path).expect("append").flush_each_line(true);
        w.write(&fault(19_000, 1, "slow=200ms", FaultAction::Inject)).expect("write");
        assert_eq!(w.lines_written(), 1);
    }
    std::fs::write(&path, format!("{}{{\"type\":\"request\",\"t_ms\":1", read(&path))).expect("tear");
    let parsed = read_records_counted(&path).expect("read");
    assert_eq!(parsed.records.len(), records.len() + 1);
    assert_eq!(parsed.malformed, 1);
    assert_eq!(parsed.first_malformed_line, Some(records.len() + 2));
    assert_eq!(parse_records(b"").records.len(), 0);

    let s = report::write_report_from_dir(&dir).expect("report from dir");
    assert_eq!(s.malformed_lines, 1);
    assert!(s.findings.iter().any(|f| f == "1 line of the records file could not be read and was skipped."));
    assert!(read(&dir.join("report.md")).contains(&format!("({} lines)", records.len() + 2)));
    let _ = std::fs::remove_dir_all(&dir);
}
