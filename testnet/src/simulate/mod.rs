//! `rpcmesh testnet simulate`: a discrete-event simulation of a large mesh (10 000 providers and
//! more) on one machine, running the daemon's real mesh view, trust, cordon book and route
//! planning under a simulated clock and network.
//!
//! ```text
//!  scenario (TOML) ──► world: EventQueue (simulated µs clock, seeded Rng)
//!                        ├─ providers publish announcements / attestations on schedule
//!                        │    └─► gossip::Spreader over network::Network (latency, loss, partitions)
//!                        ├─ observer daemons: real MeshState + CordonBook + router plan
//!                        │    ◄── announcements at their arrival, probes, evidence
//!                        ├─ clients on the observers' gateways ──► liars caught ──► evidence spread
//!                        └─ timeline: churn, partitions, forged floods
//!                      ──► report: report.json, report.md, convergence_cdf.svg, traffic.svg, answers.svg
//! ```
//!
//! Single-threaded and a function of the scenario's seed: the same file gives the same report
//! (wall time and memory aside). See [`report::MODEL_NOTES`] for what is real and what is modelled.

pub mod clock;
pub mod gossip;
pub mod network;
pub mod report;
pub mod scenario;
pub mod world;

use std::path::Path;
use std::time::Instant;

pub use report::SimReport;
pub use scenario::SimScenario;

/// Runs `sc` and writes its report into `out`; `progress(simulated µs, total µs)` is called about
/// once per simulated second.
pub fn simulate(sc: &SimScenario, out: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<SimReport, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let started = Instant::now();
    let outcome = world::run(sc, progress);
    let wall_s = started.elapsed().as_secs_f64();
    let report = report::figures(sc, &outcome, wall_s, peak_rss_mib());
    let write = |name: &str, text: &str| {
        std::fs::write(out.join(name), text).map_err(|e| format!("writing {}: {e}", out.join(name).display()))
    };
    let json = serde_json::to_string_pretty(&report).map_err(|e| format!("encoding report.json: {e}"))?;
    write("report.json", &json)?;
    write("report.md", &report::markdown(sc, &report))?;
    for (name, svg) in report::plots(&report, &outcome) {
        write(&name, &svg)?;
    }
    Ok(report)
}

/// Peak resident memory of this process (Linux `VmHWM`), MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(verify: &str, extra: &str) -> SimScenario {
        let text = format!(
            r#"
name = "small"
duration = "12s"
seed = 42
[mesh]
providers = 60
observers = 6
connections = 16
regions = [{{ name = "a", share = 1 }}, {{ name = "b", share = 1 }}]
latency = [{{ from = "a", to = "b", ms = 30 }}]
default_latency_ms = 5
jitter = 0.2
liars = 0.2
[gossip]
announce_heartbeat_ms = 2000
attest_interval_ms = 5000
# Budgets that leave 60 providers at the configured periods (enough messages to measure).
mesh_rate_per_sec = 30
mesh_rounds_per_sec = 12
observations_per_round = 2
track_share = 1.0
[load]
rate = 40
verify = "{verify}"
{extra}
"#
        );
        SimScenario::parse(&text).expect("valid scenario")
    }

    fn run(sc: &SimScenario) -> (world::Outcome, SimReport) {
        let out = world::run(sc, &mut |_, _| {});
        let r = report::figures(sc, &out, 0.0, None);
        (out, r)
    }

    #[test]
    fn converges_and_cordons_every_liar_mesh_wide() {
        let sc = small("strict", "");
        let (_, r) = run(&sc);
        let ann = &r.gossip[0];
        assert!(ann.tracked > 200, "{} announcements measured", ann.tracked);
        assert_eq!(ann.never_converged, 0, "no loss, no partition: every announcement reaches every node");
        assert!(ann.convergence_p99_us.value().is_some_and(|v| v < 500_000), "{:?}", ann.convergence_p99_us);
        assert_eq!(r.liars, 12);
        assert_eq!(r.answers.wrong, 0, "strict mode: every lie is caught before it reaches a client");
        assert!(r.answers.lies_caught > 0);
        let detected: Vec<_> = r.liar_detection.iter().filter(|l| l.detected_at_ms.is_some()).collect();
        assert!(!detected.is_empty(), "some liar was routed to and caught");
        for l in detected {
            assert_eq!(l.not_cordoned, 0, "liar {} cordoned by every other daemon", l.node);
            assert!(l.mesh_wide_after_ms.is_some());
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_figures() {
        let sc = small("sample", "");
        let (_, a) = run(&sc);
        let (_, b) = run(&sc);
        let json = |r: &SimReport| serde_json::to_string(&(&r.gossip, &r.answers, &r.liar_detection)).expect("json");
        assert_eq!(json(&a), json(&b));
    }

    #[test]
    fn a_partition_leaves_messages_unconverged_and_forgers_are_graylisted() {
        let sc = small(
            "off",
            r#"
[[timeline]]
at = "4s"
partition = "a:b"
[[timeline]]
at = "8s"
heal_partition = true
[[timeline]]
at = "2s"
forge = { forgers = 2, rate = 20 }
"#,
        );
        let (_, r) = run(&sc);
        assert!(r.gossip[0].never_converged > 0, "announcements during the partition never reach the other side");
        let f = r.forge.as_ref().expect("forge figures");
        assert_eq!(f.forwarded, 0);
        assert!(f.dropped_graylisted > 0 && f.isolated_after_ms.iter().all(|t| t.is_some()), "{f:?}");
        assert!(r.answers.wrong > 0, "verify off: lies reach clients");
    }

    #[test]
    fn writes_the_report_files() {
        let dir = std::env::temp_dir().join(format!("rpcmesh-sim-{}", std::process::id()));
        let mut sc = small("sample", "");
        sc.duration = std::time::Duration::from_secs(4);
        let r = simulate(&sc, &dir, &mut |_, _| {}).expect("simulate");
        for f in ["report.md", "report.json", "convergence_cdf.svg", "traffic.svg", "answers.svg"] {
            assert!(dir.join(f).is_file(), "{f} written");
        }
        let md = std::fs::read_to_string(dir.join("report.md")).expect("report.md");
        assert!(md.contains("## Gossip convergence") && md.contains("What ran and what was modelled"));
        assert!(r.traffic.received_msgs_mean > 0.0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
