//! `rpcmesh testnet ...`: local testnets for research and end-to-end tests.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use rpcmesh_testnet::control;
use rpcmesh_testnet::net::{BackendKind, TestnetSpec, render_table};
use rpcmesh_testnet::runner::{self, Runner};

use crate::Failure;

/// Arguments of `rpcmesh testnet`.
#[derive(Debug, Args)]
pub struct TestnetArgs {
    #[command(subcommand)]
    command: TestnetCommand,
}

/// Backend of every provider.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Backend {
    /// Simulated nodes following one deterministic chain (cheap: dozens of providers)
    Sim,
    /// One real anvil per chain, reached by each provider through its own forwarder
    Anvil,
}

#[derive(Debug, Clone, Args)]
struct DirArg {
    /// Testnet directory (homes, logs, federation, testnet.json)
    #[arg(long, value_name = "DIR", default_value = ".rpcmesh-testnet")]
    dir: PathBuf,
}

#[derive(Debug, Clone, Args)]
struct UpArgs {
    /// Number of daemons
    #[arg(long, default_value_t = 4)]
    nodes: usize,
    /// Chain ids every provider serves
    #[arg(long, value_delimiter = ',', default_value = "1")]
    chains: Vec<u64>,
    /// Backend of every provider
    #[arg(long, value_enum, default_value_t = Backend::Sim)]
    backend: Backend,
    /// anvil binary for --backend anvil [default: $RPCMESH_ANVIL, else anvil on PATH]
    #[arg(long, value_name = "PATH")]
    anvil: Option<PathBuf>,
    /// Block time of the chains, ms
    #[arg(long, default_value_t = 1000)]
    block_time_ms: u64,
    #[command(flatten)]
    dir: DirArg,
    /// Leave the testnet running in the background; stop it with `rpcmesh testnet down`
    #[arg(long)]
    detach: bool,
    /// Any daemon config key for every node, e.g. --set routing.hedge=false (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Write DIR/prometheus.yml scraping every daemon's /metrics, and run `prometheus` on it
    /// when it is on PATH (stopped with the testnet)
    #[arg(long)]
    prometheus: bool,
    /// Internal: the background runner of --detach
    #[arg(long, hide = true)]
    runner: bool,
}

#[derive(Debug, Clone, Args)]
struct BenchArgs {
    /// Output directory [default: ./bench-runs/<unix time>]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Measured window of each latency cell
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    cell: String,
    /// Warm-up of each latency cell (split between its rounds)
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    warmup: String,
    /// Client concurrencies of the latency cells
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// Rounds per latency cell, interleaved across the paths (the cell's time is split between them)
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Mesh sizes for gossip convergence (the smallest also runs failover, the largest memory)
    #[arg(long, value_delimiter = ',', default_value = "10,30")]
    mesh_sizes: Vec<usize>,
    /// How long gossip is observed per mesh
    #[arg(long, value_name = "DURATION", default_value = "20s")]
    gossip_window: String,
    /// Sections to run: latency (direct vs daemon vs relay), mesh (gossip, failover, memory)
    #[arg(long, value_delimiter = ',', default_value = "latency,mesh", value_parser = ["latency", "mesh"])]
    sections: Vec<String>,
    /// Config override for every daemon the bench starts (repeatable), e.g. runtime.worker_threads=1
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Backend of the latency section: sim, or one seeded anvil with every integrity mode
    /// (off, sample, strict) side by side and nginx as a baseline when installed
    #[arg(long, value_enum, default_value_t = Backend::Sim)]
    backend: Backend,
    /// anvil binary for --backend anvil [default: $RPCMESH_ANVIL, else anvil on PATH]
    #[arg(long, value_name = "PATH")]
    anvil: Option<PathBuf>,
    /// The rpcmesh binary the daemons run [default: this one]: to measure another build (an
    /// earlier commit) with this bench, in the same conditions
    #[arg(long, value_name = "PATH")]
    daemon_bin: Option<PathBuf>,
    /// With --backend anvil: only the workloads whose name contains one of these words
    /// (e.g. `full,eth_blockNumber`) [default: all]
    #[arg(long, value_delimiter = ',', value_name = "WORDS")]
    workloads: Vec<String>,
    /// With --backend anvil: only these paths, by case (`a`, `n`, `b off`, `c strict`, `k cache`,
    /// …); direct anvil (`a`) is always measured, as the baseline [default: all]
    #[arg(long, value_delimiter = ',', value_name = "CASES")]
    paths: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum TestnetCommand {
    /// Start a local testnet (runs until Ctrl-C, or in the background with --detach)
    Up(UpArgs),
    /// Stop a testnet started with --detach
    Down {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Inject a fault into one provider's node:
    /// down | freeze | slow=200ms[±50ms] | errors=0.3 | stale=5 | lie[=KIND,…] | censor=ADDRESS | heal
    /// (lie KINDs: hash, balance, nonce, code, storage, proof, header, tx, receipt, log-data,
    /// log-omit, call; `lie` alone: all of them)
    Fault {
        #[command(flatten)]
        dir: DirArg,
        /// Node index
        #[arg(long)]
        node: usize,
        /// The fault
        fault: String,
    },
    /// Split the mesh into groups that cannot talk to each other, e.g. --groups 0,1,2:3,4
    Partition {
        #[command(flatten)]
        dir: DirArg,
        /// Groups of node indexes separated by ':'
        #[arg(long, value_name = "GROUPS", conflicts_with = "heal")]
        groups: Option<String>,
        /// Remove the partition
        #[arg(long)]
        heal: bool,
    },
    /// Restart one daemon (SIGTERM, then start with its persisted state)
    Restart {
        #[command(flatten)]
        dir: DirArg,
        /// Node index
        #[arg(long)]
        node: usize,
    },
    /// Run a scenario (topology, load, timeline of faults) and write a report with plots
    Run {
        /// The scenario file (see testnet/scenarios/)
        scenario: PathBuf,
        /// Output directory [default: ./scenario-runs/<name>-<unix time>]
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Run for this long instead, scaling the timeline to fit (e.g. 12s for a quick run)
        #[arg(long, value_name = "DURATION")]
        duration: Option<String>,
        /// anvil binary for scenarios with backend = "anvil" [default: $RPCMESH_ANVIL, else anvil]
        #[arg(long, value_name = "PATH")]
        anvil: Option<PathBuf>,
    },
    /// Measure the daemon on this machine: latency and req/s of direct vs local daemon vs relay,
    /// failover gap, gossip convergence, RSS and CPU; writes DIR/bench.md and DIR/bench.json
    Bench(BenchArgs),
    /// Simulate a large mesh (10 000 providers and more) with the daemon's real mesh view, trust,
    /// cordons and routing on a simulated clock and network; writes a report with plots
    Simulate(super::simulate::SimulateArgs),
    /// Forward TCP from one local address to another (a provider's killable path to a shared
    /// node: kill or SIGSTOP this process to take that provider's node down or freeze it)
    Forward {
        /// Address to accept on
        #[arg(long, value_name = "HOST:PORT")]
        listen: SocketAddr,
        /// Address to forward to
        #[arg(long, value_name = "HOST:PORT")]
        to: SocketAddr,
    },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

/// Runs `rpcmesh testnet`.
pub fn run(args: TestnetArgs) -> Result<(), Failure> {
    match args.command {
        TestnetCommand::Up(up) if up.detach => detach(&up),
        TestnetCommand::Up(up) => runtime()?.block_on(foreground(up)),
        TestnetCommand::Down { dir } => runtime()?.block_on(down(&dir.dir)),
        TestnetCommand::Fault { dir, node, fault } => {
            runtime()?
                .block_on(control::call(&dir.dir, "/fault", serde_json::json!({ "node": node, "fault": fault })))
                .map_err(anyhow::Error::msg)?;
            eprintln!("node {node}: {fault}");
            Ok(())
        }
        TestnetCommand::Partition { dir, groups, heal } => {
            let rt = runtime()?;
            match (groups, heal) {
                (Some(g), false) => {
                    rt.block_on(control::call(&dir.dir, "/partition", serde_json::json!({ "groups": g })))
                        .map_err(anyhow::Error::msg)?;
                    eprintln!("partitioned: {g}");
                }
                (None, true) => {
                    rt.block_on(control::call(&dir.dir, "/heal-partition", serde_json::json!({})))
                        .map_err(anyhow::Error::msg)?;
                    eprintln!("partition healed");
                }
                _ => return Err(Failure::Usage(anyhow::anyhow!("pass --groups 0,1:2,3 or --heal"))),
            }
            Ok(())
        }
        TestnetCommand::Restart { dir, node } => {
            runtime()?
                .block_on(control::call(&dir.dir, "/restart", serde_json::json!({ "node": node })))
                .map_err(anyhow::Error::msg)?;
            eprintln!("node {node} restarted");
            Ok(())
        }
        TestnetCommand::Run { scenario, out, duration, anvil } => {
            runtime()?.block_on(run_scenario(scenario, out, duration, anvil))
        }
        TestnetCommand::Bench(args) => runtime()?.block_on(bench(args)),
        TestnetCommand::Simulate(args) => super::simulate::run(args),
        TestnetCommand::Forward { listen, to } => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("runtime")?;
            rt.block_on(rpcmesh_testnet::forward::run(listen, to))
                .with_context(|| format!("forwarding {listen} to {to}"))?;
            Ok(())
        }
    }
}

/// The anvil binary: `--anvil`, else `$RPCMESH_ANVIL`, else `anvil` on `PATH`.
fn anvil_path(flag: Option<&PathBuf>) -> PathBuf {
    flag.cloned()
        .or_else(|| std::env::var_os("RPCMESH_ANVIL").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("anvil"))
}

fn spec(up: &UpArgs) -> anyhow::Result<TestnetSpec> {
    let backend = match up.backend {
        Backend::Sim => BackendKind::Sim,
        Backend::Anvil => BackendKind::Anvil { path: anvil_path(up.anvil.as_ref()) },
    };
    Ok(TestnetSpec {
        nodes: up.nodes,
        chains: up.chains.clone(),
        backend,
        dir: std::path::absolute(&up.dir.dir).context("resolving --dir")?,
        bin: std::env::current_exe().context("locating the rpcmesh binary")?,
        network_id: "rpcmesh-testnet".into(),
        block_time_ms: up.block_time_ms,
        sets: up.set.clone(),
        prefer_8545: true,
        direct_anvil: false,
    })
}

async fn foreground(up: UpArgs) -> Result<(), Failure> {
    let spec = spec(&up)?;
    let dir = spec.dir.clone();
    eprintln!(
        "starting {} daemons ({:?} backend, chains {:?}) in {}",
        spec.nodes,
        up.backend,
        spec.chains,
        dir.display()
    );
    let runner = Runner::start(spec).await.map_err(|e| Failure::Runtime(anyhow::anyhow!(e)))?;
    let nodes = runner.state().nodes.clone();
    // Before testnet.json: `up --detach` reports the testnet up once that file exists.
    let prometheus =
        if up.prometheus { crate::cmd::testnet_prometheus::start(&dir, runner.state()).await? } else { None };
    runner.publish().map_err(anyhow::Error::msg)?;

    println!("{}", render_table(&nodes));
    println!(
        "try: curl -s -X POST {} -H 'content-type: application/json' -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"eth_blockNumber\",\"params\":[]}}'",
        nodes[0].http
    );
    if up.runner {
        println!("testnet running; stop it with: rpcmesh testnet down --dir {}", dir.display());
    } else {
        println!(
            "testnet running; Ctrl-C stops it (fault injection: rpcmesh testnet fault --dir {} --node 1 down)",
            dir.display()
        );
    }
    let _ = std::io::stdout().flush();

    let interactive = !up.runner && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let signal = shutdown_signal();
    tokio::pin!(signal);
    let control = runner.control().clone();
    loop {
        tokio::select! {
            _ = &mut signal => break,
            _ = control.shutdown.notified() => break,
            _ = tick.tick() => {
                if interactive {
                    let line = control.testnet.lock().await.status_line().await;
                    eprint!("\r\x1b[2K{line}");
                }
            }
        }
    }
    if interactive {
        eprintln!();
    }
    eprintln!("stopping the testnet...");
    runner.stop().await;
    if let Some(p) = prometheus {
        p.stop(Duration::from_secs(10));
    }
    eprintln!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// `up --detach`: the same command as a background runner (`--runner`), returned from once it
/// is up.
fn detach(up: &UpArgs) -> Result<(), Failure> {
    let spec = spec(up)?;
    let mut args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--detach").collect();
    args.push("--runner".into());
    let state =
        runner::detach(&spec.bin, &args, &spec.dir, spec.nodes).map_err(|e| Failure::Runtime(anyhow::anyhow!(e)))?;
    println!("{}", render_table(&state.nodes));
    if up.prometheus {
        crate::cmd::testnet_prometheus::print_detached(&spec.dir);
    }
    println!(
        "testnet running in the background (runner pid {}); stop it with: rpcmesh testnet down --dir {}",
        state.runner_pid,
        spec.dir.display()
    );
    Ok(())
}

async fn down(dir: &Path) -> Result<(), Failure> {
    runner::down(dir).await.map_err(anyhow::Error::msg)?;
    eprintln!("testnet in {} stopped", dir.display());
    Ok(())
}

async fn run_scenario(
    path: PathBuf,
    out: Option<PathBuf>,
    duration: Option<String>,
    anvil: Option<PathBuf>,
) -> Result<(), Failure> {
    use rpcmesh_testnet::scenario;
    let mut sc = scenario::load(&path).map_err(|e| Failure::Usage(anyhow::anyhow!(e)))?;
    if let Some(d) = duration {
        let d = scenario::parse_duration(&d).map_err(|e| Failure::Usage(anyhow::anyhow!("--duration: {e}")))?;
        let factor = d.as_secs_f64() / sc.duration.as_secs_f64().max(0.001);
        for e in &mut sc.timeline {
            e.at = e.at.mul_f64(factor);
        }
        sc.duration = d;
    }
    let out = match out {
        Some(o) => o,
        None => PathBuf::from("scenario-runs").join(format!("{}-{}", sc.name, rpcmesh_node::clock::now_ms() / 1000)),
    };
    let opts = scenario::RunOptions {
        out: std::path::absolute(&out).context("resolving --out")?,
        bin: std::env::current_exe().context("locating the rpcmesh binary")?,
        anvil: anvil
            .or_else(|| std::env::var_os("RPCMESH_ANVIL").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("anvil")),
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let s2 = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        eprintln!("\ninterrupted: writing a partial report...");
        s2.cancel();
    });
    eprintln!(
        "scenario {} ({} nodes, {:?}), output in {}",
        sc.name,
        sc.topology.nodes,
        sc.duration,
        opts.out.display()
    );
    let report = scenario::run_scenario(&sc, &opts, stop).await.map_err(anyhow::Error::msg)?;
    println!("{}", report.display());
    Ok(())
}

async fn bench(args: BenchArgs) -> Result<(), Failure> {
    use rpcmesh_testnet::bench::{BENCH_JSON, BENCH_MD, BenchOptions, run_bench};
    use rpcmesh_testnet::scenario::parse_duration;
    let duration =
        |flag: &str, v: &str| parse_duration(v).map_err(|e| Failure::Usage(anyhow::anyhow!("--{flag}: {e}")));
    if args.concurrency.contains(&0) {
        return Err(Failure::Usage(anyhow::anyhow!("--concurrency: every value must be at least 1")));
    }
    if args.mesh_sizes.iter().any(|n| *n < 2) {
        return Err(Failure::Usage(anyhow::anyhow!("--mesh-sizes: a mesh needs at least 2 nodes")));
    }
    let out = match args.out {
        Some(o) => o,
        None => PathBuf::from("bench-runs").join(format!("{}", rpcmesh_node::clock::now_ms() / 1000)),
    };
    let mut opts = BenchOptions::new(
        std::path::absolute(&out).context("resolving --out")?,
        match &args.daemon_bin {
            Some(bin) => std::path::absolute(bin).context("resolving --daemon-bin")?,
            None => std::env::current_exe().context("locating the rpcmesh binary")?,
        },
    );
    opts.cell = duration("cell", &args.cell)?;
    opts.warmup = duration("warmup", &args.warmup)?;
    opts.gossip_window = duration("gossip-window", &args.gossip_window)?;
    opts.concurrency = args.concurrency;
    opts.rounds = args.rounds.max(1);
    opts.latency = args.sections.iter().any(|s| s == "latency");
    opts.mesh = args.sections.iter().any(|s| s == "mesh");
    opts.mesh_sizes = args.mesh_sizes;
    opts.daemon_sets = args.sets;
    opts.workloads = args.workloads;
    opts.paths = args.paths;
    opts.anvil = match args.backend {
        Backend::Sim => None,
        Backend::Anvil => Some(anvil_path(args.anvil.as_ref())),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let s2 = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        eprintln!("\ninterrupted: stopping the bench and writing a partial report...");
        s2.cancel();
    });
    eprintln!("bench: output in {}", opts.out.display());
    let report = run_bench(&opts, stop).await.map_err(anyhow::Error::msg)?;
    println!("{}", opts.out.join(BENCH_MD).display());
    println!("{}", opts.out.join(BENCH_JSON).display());
    if !report.errors.is_empty() {
        return Err(Failure::Runtime(anyhow::anyhow!("some sections failed: {}", report.errors.join("; "))));
    }
    Ok(())
}
