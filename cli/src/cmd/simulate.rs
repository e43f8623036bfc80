//! `rpcmesh testnet simulate`: a discrete-event simulation of a large mesh (see
//! `rpcmesh_testnet::simulate`); writes report.md, report.json and plots.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use rpcmesh_testnet::simulate::{SimScenario, simulate};

use crate::Failure;

/// Arguments of `rpcmesh testnet simulate`.
#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// The simulation scenario (testnet/scenarios/sim-*.toml)
    scenario: PathBuf,
    /// Output directory [default: ./sim-runs/<name>-<unix time>]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Seed instead of the scenario's
    #[arg(long)]
    seed: Option<u64>,
    /// Providers instead of the scenario's
    #[arg(long)]
    providers: Option<usize>,
    /// Simulated duration instead of the scenario's (e.g. 10s)
    #[arg(long, value_name = "DURATION")]
    duration: Option<String>,
}

/// Runs the simulation.
pub fn run(args: SimulateArgs) -> Result<(), Failure> {
    let text = std::fs::read_to_string(&args.scenario)
        .with_context(|| format!("reading {}", args.scenario.display()))
        .map_err(Failure::Usage)?;
    let mut sc =
        SimScenario::parse(&text).map_err(|e| Failure::Usage(anyhow::anyhow!("{}: {e}", args.scenario.display())))?;
    if let Some(seed) = args.seed {
        sc.seed = seed;
    }
    if let Some(p) = args.providers {
        sc.mesh.providers = p;
    }
    if let Some(d) = &args.duration {
        sc.duration = rpcmesh_testnet::scenario::parse_duration(d)
            .map_err(|e| Failure::Usage(anyhow::anyhow!("--duration: {e}")))?;
    }
    // The overrides obey the file's rules (a 0 s run reported NaN rates).
    sc.check().map_err(|e| Failure::Usage(anyhow::anyhow!("{e} (with --providers/--duration applied)")))?;
    let out = args.out.unwrap_or_else(|| {
        PathBuf::from("sim-runs").join(format!("{}-{}", sc.name, rpcmesh_node::clock::now_ms() / 1000))
    });
    let tty = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let mut progress = |now: u64, total: u64| {
        let line = format!(
            "simulated {:.0} of {:.0} s ({:.0} s wall)",
            now as f64 / 1e6,
            total as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );
        if tty {
            eprint!("\r\x1b[2K{line}");
            let _ = std::io::stderr().flush();
        } else if (now / 1_000_000).is_multiple_of(10) {
            // A log line every 10 simulated seconds when stderr is not a terminal.
            eprintln!("{line}");
        }
    };
    let report = simulate(&sc, &out, &mut progress).map_err(anyhow::Error::msg)?;
    if tty {
        eprintln!();
    }
    let ann = report.gossip.first();
    println!(
        "{}: {} providers, {} s simulated in {:.1} s wall, peak memory {}",
        report.scenario,
        report.providers,
        report.simulated_s,
        report.wall_s,
        report.peak_rss_mib.map_or_else(|| "unknown".into(), |m| format!("{m:.0} MiB"))
    );
    if let Some(a) = ann {
        println!(
            "announcements: convergence p50 {} p99 {} ({} of {} never converged)",
            a.convergence_p50_us.label_us(),
            a.convergence_p99_us.label_us(),
            a.never_converged,
            a.tracked
        );
    }
    println!(
        "per node: {:.1} messages/s received, {:.0} B/s; requests correct {}",
        report.traffic.received_msgs_mean,
        report.traffic.received_bytes_mean,
        report.answers.share_correct.map_or_else(|| "–".into(), |v| format!("{:.3} %", v * 100.0))
    );
    println!("report: {}", out.join("report.md").display());
    Ok(())
}
