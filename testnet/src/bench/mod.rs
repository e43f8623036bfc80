//! `rpcmesh testnet bench`: system figures of the daemon, measured in one run on this machine and
//! compared side by side with a baseline measured in the same run.
//!
//! Sections, in order (each on its own local testnet, sim backends, loopback only, torn down after):
//!
//! 1. **Latency and throughput** (`testnet-pair`): one daemon *B* with its own sim backend, and a
//!    relay-only daemon *A* with no upstream at all, trusted through the testnet's federation.
//!    For `eth_blockNumber` and a ~100 KiB `eth_getLogs` answer, at each concurrency, three paths:
//!    (a) client → B's backend directly (the floor), (b) client → B's gateway → B's own backend
//!    (`x-rpcmesh-failover: off`, so only the own upstream may serve), (c) client → A's gateway →
//!    libp2p relay → B → B's backend; and, at the lowest and highest concurrency, (f) client → a
//!    bare TCP forwarder process → the backend, the cost of any extra process hop. All paths end
//!    at the same backend. Both daemons run with `routing.hedge=false`. Each cell is measured in
//!    rounds interleaved with the other paths (a, f, b, c, a, f, …) so that other load on the
//!    machine falls on every path alike. Per cell: req/s, exact p50/p90/p99, daemon CPU per 1k
//!    requests (`/proc/PID/stat`), peak daemon RSS, other CPU on the machine, and a check of
//!    `x-rpcmesh-served-by` on every answer.
//! 2. **Gossip convergence** at each mesh size (default 10 and 30 nodes, default settings): every
//!    node's `/peers` is polled and each announcement's `received_at_ms - announced_at_ms` (same
//!    machine clock) is one delivery; convergence is the slowest delivery of an announcement that
//!    every other node accepted.
//! 3. **Failover gap** (smallest mesh, default settings: hedging on): paced client loops on node
//!    0's gateway while node 0's own backend is killed (`down`: connections refused and dropped),
//!    healed, then frozen (`freeze`: accepts, never answers). Failed requests and the longest
//!    client-visible stall (see [`analysis::longest_stall`]) in the fault window.
//! 4. **Memory and CPU with 30 peers known** (largest mesh): every daemon's idle RSS, then node 0's
//!    RSS and CPU while its gateway is loaded at the highest concurrency.
//!
//! Output: `DIR/bench.md` (tables and the floors met or missed), `DIR/bench.json` (every
//! number), `DIR/failover-*.csv` (every request of the failover runs), plus the testnets' homes
//! and daemon logs under `DIR/testnet-*`. See `docs/performance.md`.

pub mod analysis;
pub mod anvil;
pub mod http1;
pub mod load;
pub mod procfs;
mod report;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use self::analysis::{Deliveries, GossipStats, Latency, gossip_stats, longest_stall};
use self::load::{SERVED_NONE, Sample, Target, Window, closed_loop, once, paced};
use crate::daemon::{Daemon, DaemonSpec};
use crate::net::{BackendKind, NodeInfo, TESTNET_SETS, Testnet, TestnetSpec};
use crate::sim::SimChain;

pub use report::render_markdown;

/// File name of the Markdown report.
pub const BENCH_MD: &str = "bench.md";
/// File name of the JSON results.
pub const BENCH_JSON: &str = "bench.json";

/// Chain every bench testnet serves.
const CHAIN: u64 = 1;
/// Block time of the simulated chain.
const BLOCK_TIME_MS: u64 = 1000;
/// Target size of the `eth_getLogs` answer.
pub const LOGS_TARGET_BYTES: usize = 100 * 1024;
/// Client timeout per request in the latency cells (above the daemon's 10 s request budget).
const CELL_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for a testnet to serve or converge before a section gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Failover load: client loops and requests per second per loop.
const FAILOVER_LOOPS: usize = 4;
const FAILOVER_RATE: f64 = 100.0;
/// Failover timeline: load before the fault, fault duration, load after the heal.
const FAILOVER_BASELINE: Duration = Duration::from_secs(3);
const FAILOVER_WINDOW: Duration = Duration::from_secs(5);
const FAILOVER_AFTER: Duration = Duration::from_secs(1);
/// Gossip observation: poll period of each node's `/peers`, and the tail of the window in which
/// new announcements are no longer counted (so every node had time to receive them).
const GOSSIP_POLL: Duration = Duration::from_millis(1000);
const GOSSIP_TAIL: Duration = Duration::from_secs(3);
/// RSS sampling period during load.
const RSS_SAMPLE: Duration = Duration::from_millis(100);

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Output directory.
    pub out: PathBuf,
    /// The `rpcmesh` binary (daemons are started from it).
    pub bin: PathBuf,
    /// Warm-up of each latency cell (not measured).
    pub warmup: Duration,
    /// Measured window of each latency cell.
    pub cell: Duration,
    /// Client concurrencies of the latency cells.
    pub concurrency: Vec<usize>,
    /// Each latency cell is measured in this many rounds, interleaved with the other paths of
    /// the same workload and concurrency (warm-up and window split between them).
    pub rounds: usize,
    /// Mesh sizes for gossip convergence; the smallest also runs the failover tests, the
    /// largest the memory-with-peers test.
    pub mesh_sizes: Vec<usize>,
    /// How long gossip is observed per mesh.
    pub gossip_window: Duration,
    /// Run section 1 (latency and throughput).
    pub latency: bool,
    /// Run the mesh sections (gossip, failover, memory).
    pub mesh: bool,
    /// Config overrides (`KEY=VALUE`, as `rpcmesh run --set`) for every daemon the bench starts,
    /// after its own: to measure a setting (e.g. `runtime.worker_threads=1`) against the defaults.
    pub daemon_sets: Vec<String>,
    /// Run section 1 on a real anvil (this binary) instead of simulated backends, with every
    /// integrity mode side by side ([`anvil`]). The mesh sections stay on simulated backends.
    pub anvil: Option<PathBuf>,
}

impl BenchOptions {
    /// The defaults of `rpcmesh testnet bench` writing to `out`.
    pub fn new(out: PathBuf, bin: PathBuf) -> Self {
        BenchOptions {
            out,
            bin,
            warmup: Duration::from_secs(1),
            cell: Duration::from_secs(5),
            concurrency: vec![1, 16, 64],
            rounds: 5,
            mesh_sizes: vec![10, 30],
            gossip_window: Duration::from_secs(20),
            latency: true,
            mesh: true,
            daemon_sets: Vec::new(),
            anvil: None,
        }
    }
}

/// The machine the bench ran on.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Logical CPUs available (`nproc`).
    pub cpus: usize,
    /// CPU model from `/proc/cpuinfo`.
    pub cpu_model: String,
}

/// Settings of the run.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// Warm-up per latency cell, ms.
    pub warmup_ms: u64,
    /// Measured window per latency cell, ms.
    pub cell_ms: u64,
    /// Concurrencies.
    pub concurrency: Vec<usize>,
    /// Interleaved rounds per latency cell.
    pub rounds: usize,
    /// Mesh sizes.
    pub mesh_sizes: Vec<usize>,
    /// Gossip observation window, ms.
    pub gossip_window_ms: u64,
    /// Backend used everywhere.
    pub backend: String,
    /// The `eth_getLogs` block range used (inclusive).
    pub logs_range: Option<(u64, u64)>,
    /// Config overrides given to every daemon (`--set`), beyond the bench's own.
    pub daemon_sets: Vec<String>,
}

/// One latency/throughput measurement.
#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    /// `eth_blockNumber` or `eth_getLogs 100KiB`.
    pub workload: String,
    /// Client concurrency.
    pub concurrency: usize,
    /// `a`, `b`, `c` (the paths of section 1) or `b30` (node 0 of the 30-node mesh).
    pub case: String,
    /// What the path is.
    pub path: String,
    /// Requests sent in the measured window.
    pub requests: u64,
    /// Correct answers.
    pub ok: u64,
    /// Failed requests (no answer, HTTP error, JSON-RPC error).
    pub failed: u64,
    /// Correct answers per second.
    pub req_per_sec: f64,
    /// Latency of every request sent in the window.
    pub latency: Latency,
    /// Mean response body size, bytes.
    pub mean_response_bytes: u64,
    /// Answers whose `x-rpcmesh-served-by` was not the expected server (daemon paths).
    pub served_unexpected: u64,
    /// CPU time of the daemons on the path during the window, ms.
    pub daemon_cpu_ms: Option<f64>,
    /// That per 1000 correct answers, ms.
    pub daemon_cpu_ms_per_1k: Option<f64>,
    /// CPU of the bench process (client + sim backend) per 1000 correct answers, ms.
    pub bench_cpu_ms_per_1k: Option<f64>,
    /// Peak RSS of each daemon on the path during the cell, KiB.
    pub daemon_rss_max_kib: Vec<u64>,
    /// CPU used by everything else on the machine during the window (other processes, idle
    /// daemons), percent of all CPUs: a noise indicator.
    pub other_cpu_pct: Option<f64>,
    /// A few of the errors.
    pub first_errors: Vec<String>,
    /// Change of `rpcmesh_integrity_checks_total` (`method/outcome`) on the path's gateway daemon
    /// over the cell's rounds, warm-up included (anvil backend only).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub integrity_checks: BTreeMap<String, u64>,
}

/// Whether a daemon configured without any upstream runs (it must, to be a pure relay client).
#[derive(Clone, Debug, Serialize)]
pub struct NoUpstreamCheck {
    /// It started, stayed up and answered.
    pub runs: bool,
    /// What was seen.
    pub detail: String,
}

/// One failover measurement.
#[derive(Clone, Debug, Serialize)]
pub struct FailoverResult {
    /// `down` (upstream killed) or `freeze`.
    pub fault: String,
    /// Mesh size.
    pub nodes: usize,
    /// Client loops and their rate.
    pub loops: usize,
    /// Requests per second per loop.
    pub rate_per_loop: f64,
    /// Fault window (inject → heal), ms.
    pub window_ms: u64,
    /// Requests sent in the fault window.
    pub requests: u64,
    /// Of those, failed.
    pub failed: u64,
    /// Failed requests over the whole run (baseline, fault, after the heal).
    pub failed_whole_run: u64,
    /// Longest client-visible stall of a request sent in the fault window, µs.
    pub longest_stall_us: u64,
    /// The stall ran until the end of the run (no later success on that client).
    pub stall_censored: bool,
    /// When the request that stalled longest was sent, ms after the injection.
    pub longest_stall_at_ms: f64,
    /// Longest stall of requests sent in the first second after the injection (the switch-over
    /// itself), µs.
    pub transition_stall_us: u64,
    /// The same figure over the baseline window before the fault (what is normal here), µs.
    pub baseline_stall_us: u64,
    /// Latency of requests sent in the fault window.
    pub latency: Latency,
    /// Latency before the fault.
    pub baseline_latency: Latency,
    /// First correct answer served by a peer, after the injection, ms.
    pub first_peer_answer_ms: Option<f64>,
    /// Answers in the fault window served by peers.
    pub served_by_peers: u64,
    /// Whole machine busy during the run (baseline, fault, after), percent of all CPUs.
    pub machine_busy_pct: Option<f64>,
    /// A few of the errors.
    pub first_errors: Vec<String>,
}

/// Gossip at one mesh size.
#[derive(Clone, Debug, Serialize)]
pub struct GossipResult {
    /// Mesh size.
    pub nodes: usize,
    /// Observation window, ms.
    pub window_ms: u64,
    /// Delivery and convergence.
    #[serde(flatten)]
    pub stats: GossipStats,
    /// CPU of all daemons while idle (gossip, probes, attestations), percent of one core per daemon.
    pub idle_cpu_pct_per_daemon: Option<f64>,
    /// Mesh start to every node seeing every provider healthy, ms.
    pub converged_after_ms: u64,
    /// Whole machine busy during the observation, percent of all CPUs (saturation shows here).
    pub machine_busy_pct: Option<f64>,
    /// Median over the daemons at the end of the observation: `VmRSS` and its private part
    /// (`RssAnon`), KiB.
    pub idle_rss_median_kib: Option<u64>,
    /// See `idle_rss_median_kib`.
    pub idle_anon_median_kib: Option<u64>,
}

/// Median (nearest rank, as every other percentile of the bench) of the values present.
fn median_of(values: impl Iterator<Item = u64>) -> Option<u64> {
    let mut v: Vec<u64> = values.collect();
    v.sort_unstable();
    crate::report::stats::percentile(&v, 50.0)
}

/// Memory of one daemon.
#[derive(Clone, Debug, Serialize)]
pub struct MemoryResult {
    /// Setup, e.g. `30-node mesh`.
    pub setup: String,
    /// Providers in the node's view (itself included).
    pub providers_known: usize,
    /// Which daemon.
    pub node: String,
    /// Before load.
    pub idle: Option<procfs::Memory>,
    /// Median idle `VmRSS` over every daemon of the setup, KiB.
    pub idle_rss_median_all_kib: Option<u64>,
    /// Largest idle `VmRSS` over every daemon of the setup, KiB.
    pub idle_rss_max_all_kib: Option<u64>,
    /// Growth of the idle daemon's private memory (`RssAnon`) while the mesh ran without
    /// clients, KiB per minute.
    pub idle_anon_growth_kib_per_min: Option<f64>,
    /// The daemon's CPU while idle (no clients), percent of one core.
    pub idle_cpu_pct: Option<f64>,
    /// Peak `VmRSS` sampled during load, KiB.
    pub load_rss_max_kib: Option<u64>,
    /// After the load.
    pub after_load: Option<procfs::Memory>,
    /// The load.
    pub load: String,
}

/// A floor from the performance issue, met or missed.
#[derive(Clone, Debug, Serialize)]
pub struct Floor {
    /// What is compared.
    pub name: String,
    /// The floor.
    pub target: String,
    /// What was measured.
    pub measured: String,
    /// `Some(true)` met, `Some(false)` missed, `None` not measured.
    pub met: Option<bool>,
}

/// Everything a bench run measured.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Start, Unix ms.
    pub started_at_unix_ms: u64,
    /// Wall time of the whole run, ms.
    pub duration_ms: u64,
    /// The machine.
    pub machine: Machine,
    /// 1-minute load average when the run started and ended (other work on the machine shows here).
    pub loadavg: (Option<f64>, Option<f64>),
    /// Settings.
    pub settings: Settings,
    /// Does a daemon with no upstream run.
    pub no_upstream_daemon: Option<NoUpstreamCheck>,
    /// Section 1, plus the 30-peer load cells (`case = "b30"`).
    pub cells: Vec<Cell>,
    /// Section 3.
    pub failover: Vec<FailoverResult>,
    /// Section 2.
    pub gossip: Vec<GossipResult>,
    /// Sections 1 and 4.
    pub memory: Vec<MemoryResult>,
    /// The floors.
    pub floors: Vec<Floor>,
    /// Sections that failed, with why.
    pub errors: Vec<String>,
    /// Stopped early (Ctrl-C).
    pub interrupted: bool,
    /// Section 1 ran on anvil: what was seeded, nginx, the integrity counters.
    pub anvil: Option<anvil::AnvilRun>,
}

fn progress(msg: &str) {
    use std::io::Write as _;
    // Not `eprintln!`: it panics when stderr cannot be written (e.g. a log file on a full disk),
    // which would end the run and lose the report.
    let _ = writeln!(std::io::stderr(), "[bench] {msg}");
}

fn us(d: Duration) -> u64 {
    d.as_micros() as u64
}

/// Runs every section, writes `bench.md` and `bench.json` into `opts.out`, and returns the results.
/// A failing section is recorded in [`BenchReport::errors`] and the others still run; `stop`
/// ends the run early with a partial report.
pub async fn run_bench(opts: &BenchOptions, stop: CancellationToken) -> Result<BenchReport, String> {
    std::fs::create_dir_all(&opts.out).map_err(|e| format!("creating {}: {e}", opts.out.display()))?;
    let started = Instant::now();
    let (cpus, cpu_model) = procfs::machine();
    let mut report = BenchReport {
        started_at_unix_ms: crate::sim::now_ms(),
        duration_ms: 0,
        machine: Machine { cpus, cpu_model },
        loadavg: (procfs::loadavg(), None),
        settings: Settings {
            warmup_ms: opts.warmup.as_millis() as u64,
            cell_ms: opts.cell.as_millis() as u64,
            concurrency: opts.concurrency.clone(),
            rounds: opts.rounds,
            mesh_sizes: opts.mesh_sizes.clone(),
            gossip_window_ms: opts.gossip_window.as_millis() as u64,
            backend: match &opts.anvil {
                Some(_) => "anvil (one, seeded; section 1) and sim (mesh sections)".into(),
                None => "sim (in the bench process, one per provider)".into(),
            },
            logs_range: None,
            daemon_sets: opts.daemon_sets.clone(),
        },
        no_upstream_daemon: None,
        cells: Vec::new(),
        failover: Vec::new(),
        gossip: Vec::new(),
        memory: Vec::new(),
        floors: Vec::new(),
        errors: Vec::new(),
        interrupted: false,
        anvil: None,
    };
    let latency = match (&opts.anvil, opts.latency) {
        (_, false) => Ok(()),
        (Some(path), true) => anvil::section(opts, path, &mut report, &stop).await,
        (None, true) => pair_section(opts, &mut report, &stop).await,
    };
    if let Err(e) = latency {
        progress(&format!("latency section failed: {e}"));
        report.errors.push(format!("latency section: {e}"));
    }
    let mut sizes = if opts.mesh { opts.mesh_sizes.clone() } else { Vec::new() };
    sizes.sort_unstable();
    sizes.dedup();
    for (i, &n) in sizes.iter().enumerate() {
        if stop.is_cancelled() {
            break;
        }
        let roles = MeshRoles { failover: i == 0, memory: i + 1 == sizes.len() };
        if let Err(e) = mesh_section(opts, n, roles, &mut report, &stop).await {
            progress(&format!("{n}-node mesh section failed: {e}"));
            report.errors.push(format!("{n}-node mesh: {e}"));
        }
    }
    report.interrupted = stop.is_cancelled();
    report.floors = report::floors(&report);
    report.duration_ms = started.elapsed().as_millis() as u64;
    report.loadavg.1 = procfs::loadavg();
    write_outputs(&opts.out, &report)?;
    Ok(report)
}

fn write_outputs(out: &Path, report: &BenchReport) -> Result<(), String> {
    let json = serde_json::to_vec_pretty(report).map_err(|e| e.to_string())?;
    std::fs::write(out.join(BENCH_JSON), json).map_err(|e| format!("writing {BENCH_JSON}: {e}"))?;
    std::fs::write(out.join(BENCH_MD), render_markdown(report)).map_err(|e| format!("writing {BENCH_MD}: {e}"))?;
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Workloads and targets

/// A request body sent over and over.
#[derive(Clone, Debug)]
struct Workload {
    name: &'static str,
    body: Bytes,
}

fn block_number_body() -> Bytes {
    Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#)
}

/// `eth_blockNumber`, and an `eth_getLogs` over a fixed past range whose answer is ~100 KiB.
fn workloads(chain: &SimChain) -> (Vec<Workload>, (u64, u64)) {
    let to = chain.head_now().saturating_sub(20);
    let (from, to) = chain.log_range_for_size(to, LOGS_TARGET_BYTES);
    let logs = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"eth_getLogs","params":[{{"fromBlock":"0x{from:x}","toBlock":"0x{to:x}"}}]}}"#
    );
    (
        vec![
            Workload { name: "eth_blockNumber", body: block_number_body() },
            Workload { name: "eth_getLogs 100KiB", body: Bytes::from(logs) },
        ],
        (from, to),
    )
}

fn gateway_addr(n: &NodeInfo) -> Result<SocketAddr, String> {
    n.http
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .map_err(|e| format!("gateway address of node {} ({}): {e}", n.index, n.http))
}

/// The sim backend's address from the node's description (`sim 127.0.0.1:PORT`).
fn backend_addr(n: &NodeInfo) -> Result<SocketAddr, String> {
    n.backend
        .strip_prefix("sim ")
        .and_then(|a| a.split(',').next())
        .and_then(|a| a.trim().parse().ok())
        .ok_or_else(|| format!("node {} has no sim backend ({})", n.index, n.backend))
}

/// Waits until `target` gives `streak` correct answers in a row, served by `expect` if given.
async fn wait_serving(target: &Target, expect: Option<i16>, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut streak = 0;
    let mut last = String::new();
    while streak < 5 {
        match once(target).await {
            Ok(served) if expect.is_none_or(|e| e == served) => streak += 1,
            Ok(served) => {
                streak = 0;
                last = format!("served by {served}, expected {expect:?}");
            }
            Err(e) => {
                streak = 0;
                last = e;
            }
        }
        if Instant::now() > deadline {
            return Err(format!("{} did not serve within {} s: {last}", target.addr, timeout.as_secs()));
        }
        if streak == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// One latency cell

struct CellSpec<'a> {
    workload: &'a Workload,
    concurrency: usize,
    case: &'static str,
    path: String,
    target: Target,
    /// Daemons on the path (CPU, RSS).
    pids: Vec<u32>,
    /// Expected `served` index (daemon paths).
    expect: Option<i16>,
}

/// One measured round of a cell.
#[derive(Default)]
struct Round {
    samples: Vec<Sample>,
    window: Duration,
    daemon_cpu: Duration,
    bench_cpu: Option<Duration>,
    /// Everything else on the machine.
    other_cpu: Option<Duration>,
    rss: Vec<u64>,
    first_errors: Vec<String>,
}

async fn run_round(spec: &CellSpec<'_>, warmup: Duration, measure: Duration) -> Round {
    let window = Window::from_now(warmup, measure);
    let sampler_stop = CancellationToken::new();
    let sampler = spawn_rss_sampler(spec.pids.clone(), sampler_stop.clone());
    let target = spec.target.clone();
    let concurrency = spec.concurrency;
    let load = tokio::spawn(async move { closed_loop(&target, concurrency, window).await });
    let me = std::process::id();
    tokio::time::sleep_until(window.measure_from.into()).await;
    let (d0, b0, m0) = (procfs::cpu_time_of(&spec.pids), procfs::cpu_time(me), procfs::machine_busy());
    tokio::time::sleep_until(window.measure_until.into()).await;
    let (d1, b1, m1) = (procfs::cpu_time_of(&spec.pids), procfs::cpu_time(me), procfs::machine_busy());
    let result = load.await.unwrap_or_default();
    sampler_stop.cancel();
    let rss = sampler.await.unwrap_or_default();
    let daemon_cpu = d1.saturating_sub(d0);
    let bench_cpu = b0.zip(b1).map(|(a, b)| b.saturating_sub(a));
    let other_cpu = m0
        .zip(m1)
        .zip(bench_cpu)
        .map(|((m0, m1), bench)| m1.saturating_sub(m0).saturating_sub(bench).saturating_sub(daemon_cpu));
    Round {
        samples: result.samples,
        window: result.window,
        daemon_cpu,
        bench_cpu,
        other_cpu,
        rss,
        first_errors: result.first_errors,
    }
}

/// Merges the rounds of one cell (samples pooled, CPU and time summed, RSS the peak).
fn finish_cell(spec: &CellSpec<'_>, rounds: Vec<Round>) -> Cell {
    let mut s: Vec<Sample> = Vec::new();
    let (mut window, mut daemon_cpu) = (Duration::ZERO, Duration::ZERO);
    let (mut bench_cpu, mut other_cpu) = (Some(Duration::ZERO), Some(Duration::ZERO));
    let mut rss = vec![0u64; spec.pids.len()];
    let mut first_errors = Vec::new();
    for r in rounds {
        s.extend(r.samples);
        window += r.window;
        daemon_cpu += r.daemon_cpu;
        bench_cpu = bench_cpu.zip(r.bench_cpu).map(|(a, b)| a + b);
        other_cpu = other_cpu.zip(r.other_cpu).map(|(a, b)| a + b);
        for (m, x) in rss.iter_mut().zip(r.rss) {
            *m = (*m).max(x);
        }
        first_errors.extend(r.first_errors);
    }
    first_errors.truncate(3);
    let ok = s.iter().filter(|x| x.ok).count() as u64;
    let secs = window.as_secs_f64().max(1e-9);
    let per_1k = |cpu: Duration| (ok > 0).then(|| cpu.as_secs_f64() * 1000.0 * 1000.0 / ok as f64);
    let daemon_cpu = (!spec.pids.is_empty()).then_some(daemon_cpu);
    Cell {
        workload: spec.workload.name.into(),
        concurrency: spec.concurrency,
        case: spec.case.into(),
        path: spec.path.clone(),
        requests: s.len() as u64,
        ok,
        failed: s.len() as u64 - ok,
        req_per_sec: ok as f64 / secs,
        latency: Latency::of(&s),
        mean_response_bytes: if s.is_empty() {
            0
        } else {
            s.iter().map(|x| u64::from(x.bytes)).sum::<u64>() / s.len() as u64
        },
        served_unexpected: spec.expect.map_or(0, |e| s.iter().filter(|x| x.ok && x.served != e).count() as u64),
        daemon_cpu_ms: daemon_cpu.map(|d| d.as_secs_f64() * 1000.0),
        daemon_cpu_ms_per_1k: daemon_cpu.and_then(per_1k),
        bench_cpu_ms_per_1k: bench_cpu.and_then(per_1k),
        daemon_rss_max_kib: rss,
        other_cpu_pct: other_cpu.map(|o| procfs::pct_of_machine(o, window)),
        first_errors,
        integrity_checks: BTreeMap::new(),
    }
}

/// One cell in a single round.
async fn run_cell(spec: CellSpec<'_>, warmup: Duration, measure: Duration) -> Cell {
    let round = run_round(&spec, warmup, measure).await;
    finish_cell(&spec, vec![round])
}

fn spawn_rss_sampler(pids: Vec<u32>, stop: CancellationToken) -> tokio::task::JoinHandle<Vec<u64>> {
    tokio::spawn(async move {
        let mut max = vec![0u64; pids.len()];
        loop {
            for (m, pid) in max.iter_mut().zip(&pids) {
                if let Some((rss, _)) = procfs::memory_kib(*pid) {
                    *m = (*m).max(rss);
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(RSS_SAMPLE) => {}
            }
        }
        max
    })
}

fn cell_line(c: &Cell) -> String {
    let ms = |v: Option<u64>| v.map_or("-".into(), |x| format!("{:.3}", x as f64 / 1000.0));
    format!(
        "{:<20} c={:<3} ({}) {:>9.0} req/s  p50 {} ms  p99 {} ms  failed {}  daemon CPU {} ms/1k",
        c.workload,
        c.concurrency,
        c.case,
        c.req_per_sec,
        ms(c.latency.p50_us),
        ms(c.latency.p99_us),
        c.failed,
        c.daemon_cpu_ms_per_1k.map_or("-".into(), |v| format!("{v:.1}"))
    )
}

// ------------------------------------------------------------------------------------------------
// Section 1: latency and throughput, (a) direct, (b) local daemon, (c) relay

async fn pair_section(opts: &BenchOptions, report: &mut BenchReport, stop: &CancellationToken) -> Result<(), String> {
    let spec = TestnetSpec {
        nodes: 1,
        chains: vec![CHAIN],
        backend: BackendKind::Sim,
        dir: opts.out.join("testnet-pair"),
        bin: opts.bin.clone(),
        network_id: "rpcmesh-bench-pair".into(),
        block_time_ms: BLOCK_TIME_MS,
        sets: std::iter::once("routing.hedge=false".to_string()).chain(opts.daemon_sets.iter().cloned()).collect(),
        prefer_8545: false,
        direct_anvil: false,
    };
    progress("latency: starting daemon B (own sim backend) and relay-only daemon A (no upstream)");
    let testnet = Testnet::up(spec).await?;
    let result = pair_measure(opts, &testnet, report, stop).await;
    testnet.down().await;
    result
}

/// Starts a daemon with no upstream, admitted to `testnet`'s federation and bootstrapped from
/// node 0, with the testnet's settings.
async fn start_relay_only(testnet: &Testnet) -> Result<Daemon, String> {
    let spec = testnet.spec();
    let b = testnet.daemons.first().ok_or("the testnet has no daemon")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let bootstrap = loop {
        match b.p2p_addr().await {
            Ok(a) => break a,
            Err(e) if Instant::now() > deadline => return Err(format!("daemon B does not listen on TCP: {e}")),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let mut sets: Vec<String> = TESTNET_SETS.iter().map(|s| s.to_string()).collect();
    sets.push(testnet.federation().trust_set());
    if matches!(spec.backend, crate::net::BackendKind::Sim) {
        sets.push("integrity.mode=off".into());
    }
    sets.extend(spec.sets.iter().cloned());
    let mut d = Daemon::init(DaemonSpec {
        bootstrap: vec![bootstrap],
        sets,
        ..DaemonSpec::new(spec.bin.clone(), spec.dir.join("relay-only"), spec.network_id.clone())
    })?;
    testnet.federation().admit(&mut d, "bench-relay-only", &spec.network_id, "30d")?;
    d.launch()?;
    Ok(d)
}

/// A daemon with its own node (`upstream` on `chain_id`) and the response cache on, joined to the
/// testnet: the path whose repeated reads the cache answers (killed when dropped).
async fn start_cached(testnet: &Testnet, chain_id: u64, upstream: String) -> Result<Daemon, String> {
    let spec = testnet.spec();
    let b = testnet.daemons.first().ok_or("the testnet has no daemon")?;
    let bootstrap = b.p2p_addr().await.map_err(|e| format!("daemon B does not listen on TCP: {e}"))?;
    let mut sets: Vec<String> = TESTNET_SETS.iter().map(|s| s.to_string()).collect();
    sets.push(testnet.federation().trust_set());
    sets.extend(spec.sets.iter().cloned());
    sets.push("cache.enabled=true".into());
    let mut d = Daemon::init(DaemonSpec {
        bootstrap: vec![bootstrap],
        upstreams: vec![(chain_id, upstream)],
        sets,
        ..DaemonSpec::new(spec.bin.clone(), spec.dir.join("cached"), spec.network_id.clone())
    })?;
    testnet.federation().admit(&mut d, "bench-cached", &spec.network_id, "30d")?;
    d.launch()?;
    Ok(d)
}

/// A `rpcmesh testnet forward` process in front of a backend: the reference cost of one bare
/// extra process hop (TCP copy, no HTTP). Killed when dropped.
struct Forwarder {
    child: std::process::Child,
    pid: u32,
    addr: SocketAddr,
}

impl Forwarder {
    fn start(bin: &Path, to: SocketAddr) -> Result<Forwarder, String> {
        let port = crate::daemon::free_port().map_err(|e| e.to_string())?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut cmd = Command::new(bin);
        cmd.args(["testnet", "forward", "--listen", &addr.to_string(), "--to", &to.to_string()]);
        let child = crate::net::spawn_in_group(&mut cmd).map_err(|e| format!("starting the forwarder: {e}"))?;
        Ok(Forwarder { pid: child.id(), child, addr })
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_tail(d: &Daemon, lines: usize) -> String {
    let log = d.log();
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

async fn pair_measure(
    opts: &BenchOptions,
    testnet: &Testnet,
    report: &mut BenchReport,
    stop: &CancellationToken,
) -> Result<(), String> {
    let nodes = testnet.nodes();
    let b = nodes.first().ok_or("no node")?;
    let b_pid = b.pid.ok_or("daemon B has no pid")?;
    let chain = testnet.sim_chains.get(&CHAIN).copied().ok_or("no sim chain")?;
    let (workloads, range) = workloads(&chain);
    report.settings.logs_range = Some(range);

    let mut a = start_relay_only(testnet).await?;
    let a_up = a.wait_up(Duration::from_secs(30)).await;
    let a_pid = a.pid();
    let a_addr: SocketAddr = a.gateway_addr.parse().map_err(|e| format!("gateway of A: {e}"))?;
    let known = Arc::new(vec![b.peer_id.clone(), a.peer_id.clone()]);
    let target = |addr: SocketAddr, headers: Vec<(&'static str, &'static str)>, body: Bytes| Target {
        headers,
        ..Target::fixed(addr, body, CELL_TIMEOUT, known.clone())
    };
    let direct = target(backend_addr(b)?, vec![], block_number_body());
    let local = target(gateway_addr(b)?, vec![("x-rpcmesh-failover", "off")], block_number_body());
    let relay = target(a_addr, vec![], block_number_body());
    wait_serving(&direct, None, READY_TIMEOUT).await?;
    wait_serving(&local, Some(0), READY_TIMEOUT).await?;
    let relay_ready = match a_up {
        Ok(()) => wait_serving(&relay, Some(0), READY_TIMEOUT).await,
        Err(e) => Err(e),
    };
    report.no_upstream_daemon = Some(match &relay_ready {
        Ok(()) => NoUpstreamCheck {
            runs: true,
            detail: "configured with no [[chain]] and no upstream: started, stayed up and served every request \
                     through the relay to B"
                .into(),
        },
        Err(e) => NoUpstreamCheck { runs: false, detail: format!("{e}; log tail:\n{}", log_tail(&a, 15)) },
    });
    if let Err(e) = &relay_ready {
        report.errors.push(format!("relay-only daemon A: {e}; case (c) not measured"));
    }
    progress("latency: all paths serve; measuring");

    let (b_idle, a_idle) = (procfs::memory(b_pid), a_pid.and_then(procfs::memory));
    let forwarder = Forwarder::start(&opts.bin, backend_addr(b)?)?;
    let forward = target(forwarder.addr, vec![], block_number_body());
    wait_serving(&forward, None, Duration::from_secs(10)).await?;
    let (c_min, c_max) =
        (opts.concurrency.iter().copied().min().unwrap_or(1), opts.concurrency.iter().copied().max().unwrap_or(1));
    let rounds = opts.rounds.max(1);
    let (warmup, measure) = (opts.warmup / rounds as u32, opts.cell / rounds as u32);
    for w in &workloads {
        for &c in &opts.concurrency {
            let mut specs = Vec::new();
            for case in ["a", "f", "b", "c"] {
                if case == "f" && c != c_min && c != c_max {
                    continue;
                }
                specs.push(match case {
                    "a" => CellSpec {
                        workload: w,
                        concurrency: c,
                        case: "a",
                        path: "client → backend".into(),
                        target: Target { body: w.body.clone(), ..direct.clone() },
                        pids: vec![],
                        expect: None,
                    },
                    "f" => CellSpec {
                        workload: w,
                        concurrency: c,
                        case: "f",
                        path: "client → TCP forwarder process → backend (reference)".into(),
                        target: Target { body: w.body.clone(), ..forward.clone() },
                        pids: vec![forwarder.pid],
                        expect: None,
                    },
                    "b" => CellSpec {
                        workload: w,
                        concurrency: c,
                        case: "b",
                        path: "client → daemon → own upstream".into(),
                        target: Target { body: w.body.clone(), ..local.clone() },
                        pids: vec![b_pid],
                        expect: Some(0),
                    },
                    _ => {
                        let Some(a_pid) = a_pid.filter(|_| relay_ready.is_ok()) else { continue };
                        CellSpec {
                            workload: w,
                            concurrency: c,
                            case: "c",
                            path: "client → daemon A → relay → daemon B → upstream".into(),
                            target: Target { body: w.body.clone(), ..relay.clone() },
                            pids: vec![a_pid, b_pid],
                            expect: Some(0),
                        }
                    }
                });
            }
            // Interleaved rounds: a, f, b, c, a, f, b, c, ... so that whatever else the machine
            // does meanwhile falls on every path alike.
            let mut runs: Vec<Vec<Round>> = specs.iter().map(|_| Vec::new()).collect();
            for _ in 0..rounds {
                for (spec, runs) in specs.iter().zip(runs.iter_mut()) {
                    if stop.is_cancelled() {
                        a.kill();
                        return Ok(());
                    }
                    runs.push(run_round(spec, warmup, measure).await);
                }
            }
            for (spec, runs) in specs.iter().zip(runs) {
                let cell = finish_cell(spec, runs);
                progress(&cell_line(&cell));
                report.cells.push(cell);
            }
        }
    }
    let peak = |case: &str, i: usize| {
        report.cells.iter().filter(|c| c.case == case).filter_map(|c| c.daemon_rss_max_kib.get(i).copied()).max()
    };
    let pair_memory = |node: &str, idle, load_rss_max_kib, after_load, load: &str| MemoryResult {
        setup: "pair (section 1)".into(),
        providers_known: 2,
        node: node.into(),
        idle,
        idle_rss_median_all_kib: None,
        idle_rss_max_all_kib: None,
        idle_anon_growth_kib_per_min: None,
        idle_cpu_pct: None,
        load_rss_max_kib,
        after_load,
        load: load.into(),
    };
    let b_mem = pair_memory(
        "B (own upstream; serves (b) and the relays of (c))",
        b_idle,
        peak("b", 0).max(peak("c", 1)),
        procfs::memory(b_pid),
        "the (b) and (c) cells",
    );
    report.memory.push(b_mem);
    if let Some(a_pid) = a_pid {
        let a_mem = pair_memory(
            "A (no upstream; relays everything)",
            a_idle,
            peak("c", 0),
            procfs::memory(a_pid),
            "the (c) cells",
        );
        report.memory.push(a_mem);
    }
    drop(forwarder);
    a.stop(Duration::from_secs(10));
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Sections 2-4: meshes

/// Memory of every daemon of a mesh at the start and the end of the idle gossip observation.
struct IdleMemory {
    before: Vec<Option<procfs::Memory>>,
    after: Vec<Option<procfs::Memory>>,
    minutes: f64,
}

#[derive(Clone, Copy, Debug)]
struct MeshRoles {
    failover: bool,
    memory: bool,
}

async fn mesh_section(
    opts: &BenchOptions,
    n: usize,
    roles: MeshRoles,
    report: &mut BenchReport,
    stop: &CancellationToken,
) -> Result<(), String> {
    let spec = TestnetSpec {
        nodes: n,
        chains: vec![CHAIN],
        backend: BackendKind::Sim,
        dir: opts.out.join(format!("testnet-{n}")),
        bin: opts.bin.clone(),
        network_id: format!("rpcmesh-bench-{n}"),
        block_time_ms: BLOCK_TIME_MS,
        sets: opts.daemon_sets.clone(),
        prefer_8545: false,
        direct_anvil: false,
    };
    progress(&format!("mesh of {n}: starting (default settings)"));
    let started = Instant::now();
    let mut testnet = Testnet::up(spec).await?;
    let result = mesh_measure(opts, &mut testnet, started, roles, report, stop).await;
    for (k, _) in testnet.faults().clone() {
        let _ = testnet.fault(k, "heal").await;
    }
    testnet.down().await;
    result
}

/// Every node sees every provider, current and healthy.
async fn converged(nodes: &[NodeInfo]) -> bool {
    for n in nodes {
        let Ok(v) = crate::net::admin(n, "/peers").await else { return false };
        let healthy = v["providers"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| {
                        p["expired"] == false
                            && p["chains"].as_array().is_some_and(|c| c.iter().all(|c| c["health"] == "healthy"))
                    })
                    .count()
            })
            .unwrap_or(0);
        if healthy < nodes.len() {
            return false;
        }
    }
    true
}

async fn mesh_measure(
    opts: &BenchOptions,
    testnet: &mut Testnet,
    started: Instant,
    roles: MeshRoles,
    report: &mut BenchReport,
    stop: &CancellationToken,
) -> Result<(), String> {
    let nodes = testnet.nodes();
    let n = nodes.len();
    let pids: Vec<u32> = nodes.iter().filter_map(|x| x.pid).collect();
    let deadline = Instant::now() + READY_TIMEOUT;
    while !converged(&nodes).await {
        if Instant::now() > deadline {
            return Err(format!("the {n}-node mesh did not converge within {} s", READY_TIMEOUT.as_secs()));
        }
        if stop.is_cancelled() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let converged_after_ms = started.elapsed().as_millis() as u64;
    progress(&format!("mesh of {n}: converged after {converged_after_ms} ms; observing gossip"));

    // Gossip (and the idle cost of the mesh meanwhile).
    let idle_before: Vec<Option<procfs::Memory>> = pids.iter().map(|p| procfs::memory(*p)).collect();
    let (cpu0, busy0) = (procfs::cpu_time_of(&pids), procfs::machine_busy());
    let t0 = Instant::now();
    let deliveries = observe_gossip(&nodes, opts.gossip_window).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let idle_cpu = procfs::cpu_time_of(&pids).saturating_sub(cpu0);
    let idle_pct = idle_cpu.as_secs_f64() * 100.0 / elapsed / n.max(1) as f64;
    let machine_busy_pct = procfs::machine_busy_pct(busy0, procfs::machine_busy(), t0.elapsed());
    let idle_after: Vec<Option<procfs::Memory>> = pids.iter().map(|p| procfs::memory(*p)).collect();
    let idle = IdleMemory { before: idle_before, after: idle_after, minutes: elapsed / 60.0 };
    let stats = gossip_stats(&deliveries, n);
    progress(&format!(
        "mesh of {n}: {} announcements ({} reached every node), convergence p50 {:?} ms p99 {:?} ms",
        stats.messages, stats.messages_complete, stats.convergence_p50_ms, stats.convergence_p99_ms
    ));
    report.gossip.push(GossipResult {
        nodes: n,
        window_ms: opts.gossip_window.as_millis() as u64,
        stats,
        idle_cpu_pct_per_daemon: Some(idle_pct),
        converged_after_ms,
        machine_busy_pct,
        idle_rss_median_kib: median_of(idle.after.iter().flatten().map(|m| m.rss_kib)),
        idle_anon_median_kib: median_of(idle.after.iter().flatten().map(|m| m.anon_kib)),
    });

    if roles.memory && !stop.is_cancelled() {
        memory_with_peers(opts, testnet, &nodes, &idle, report).await?;
    }
    if roles.failover {
        for fault in ["down", "freeze"] {
            if stop.is_cancelled() {
                break;
            }
            progress(&format!("mesh of {n}: failover, node 0's upstream {fault}"));
            let r = failover(testnet, &nodes, fault, &opts.out).await?;
            progress(&format!(
                "  {} requests in the fault window, {} failed, longest stall {:.1} ms at +{:.0} ms \
                 (switch-over {:.1} ms, baseline {:.1} ms)",
                r.requests,
                r.failed,
                r.longest_stall_us as f64 / 1000.0,
                r.longest_stall_at_ms,
                r.transition_stall_us as f64 / 1000.0,
                r.baseline_stall_us as f64 / 1000.0
            ));
            report.failover.push(r);
        }
    }
    Ok(())
}

/// Polls every node's `/peers` every [`GOSSIP_POLL`] (staggered) for `window` and collects one
/// delivery per (observer, publisher, seq) of announcements issued in the window.
async fn observe_gossip(nodes: &[NodeInfo], window: Duration) -> Deliveries {
    let index: Arc<HashMap<String, usize>> = Arc::new(nodes.iter().map(|n| (n.peer_id.clone(), n.index)).collect());
    let from_ms = crate::sim::now_ms();
    let until_ms = from_ms + window.saturating_sub(GOSSIP_TAIL).as_millis() as u64;
    let end = Instant::now() + window;
    let mut tasks = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let node = node.clone();
        let index = index.clone();
        let offset = GOSSIP_POLL.mul_f64(i as f64 / nodes.len().max(1) as f64);
        tasks.push(tokio::spawn(async move {
            let mut seen = Deliveries::new();
            tokio::time::sleep(offset).await;
            while Instant::now() < end {
                if let Ok(v) = crate::net::admin(&node, "/peers").await {
                    for p in v["providers"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
                        if p["source"] != "gossip" {
                            continue;
                        }
                        let publisher = p["peer_id"].as_str().and_then(|id| index.get(id)).copied();
                        let fields = (p["seq"].as_u64(), p["received_at_ms"].as_u64(), p["announced_at_ms"].as_u64());
                        if let (Some(publisher), (Some(seq), Some(recv), Some(issued))) = (publisher, fields)
                            && (from_ms..until_ms).contains(&issued)
                        {
                            seen.insert((node.index, publisher, seq), recv.saturating_sub(issued));
                        }
                    }
                }
                tokio::time::sleep(GOSSIP_POLL).await;
            }
            seen
        }));
    }
    let mut all = Deliveries::new();
    for t in tasks {
        if let Ok(seen) = t.await {
            all.extend(seen);
        }
    }
    all
}

/// Section 4: idle RSS of every daemon, then node 0 under load at the highest concurrency.
async fn memory_with_peers(
    opts: &BenchOptions,
    testnet: &Testnet,
    nodes: &[NodeInfo],
    idle: &IdleMemory,
    report: &mut BenchReport,
) -> Result<(), String> {
    let n = nodes.len();
    let node0 = nodes.first().ok_or("no node")?;
    let pid0 = node0.pid.ok_or("node 0 has no pid")?;
    let mut idle_rss: Vec<u64> = idle.after.iter().flatten().map(|m| m.rss_kib).collect();
    idle_rss.sort_unstable();
    let growth = match (idle.before.first(), idle.after.first()) {
        (Some(Some(a)), Some(Some(b))) if idle.minutes > 0.0 => {
            Some((b.anon_kib as f64 - a.anon_kib as f64) / idle.minutes)
        }
        _ => None,
    };
    let providers_known = crate::net::admin(node0, "/peers")
        .await
        .ok()
        .and_then(|v| v["providers"].as_array().map(Vec::len))
        .unwrap_or(0);
    // Node 0's own background CPU (gossip, probes, snapshots), to read the loaded cells against.
    let (c0, t0) = (procfs::cpu_time(pid0), Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_cpu_pct = c0
        .zip(procfs::cpu_time(pid0))
        .map(|(a, b)| b.saturating_sub(a).as_secs_f64() * 100.0 / t0.elapsed().as_secs_f64());
    let idle0 = procfs::memory(pid0);
    let chain = testnet.sim_chains.get(&CHAIN).copied().ok_or("no sim chain")?;
    let (workloads, _) = workloads(&chain);
    let c = opts.concurrency.iter().copied().max().unwrap_or(64);
    let known = Arc::new(nodes.iter().map(|x| x.peer_id.clone()).collect::<Vec<_>>());
    let addr = gateway_addr(node0)?;
    progress(&format!("mesh of {n}: node 0 ({providers_known} providers known) under load, c={c}"));
    let mut load_max = None;
    for w in &workloads {
        let target = Target::fixed(addr, w.body.clone(), CELL_TIMEOUT, known.clone());
        let spec = CellSpec {
            workload: w,
            concurrency: c,
            case: "b30",
            path: format!("client → daemon → own upstream, {n}-node mesh"),
            target,
            pids: vec![pid0],
            expect: Some(0),
        };
        let cell = run_cell(spec, opts.warmup, opts.cell).await;
        progress(&cell_line(&cell));
        load_max = load_max.max(cell.daemon_rss_max_kib.first().copied());
        report.cells.push(cell);
    }
    report.memory.push(MemoryResult {
        setup: format!("{n}-node mesh (section 4)"),
        providers_known,
        node: "node 0".into(),
        idle: idle0,
        idle_rss_median_all_kib: crate::report::stats::percentile(&idle_rss, 50.0),
        idle_rss_max_all_kib: idle_rss.last().copied(),
        idle_anon_growth_kib_per_min: growth,
        idle_cpu_pct,
        load_rss_max_kib: load_max,
        after_load: procfs::memory(pid0),
        load: format!("c={c} on its gateway: eth_blockNumber, then eth_getLogs 100KiB"),
    });
    Ok(())
}

/// Section 3: paced load on node 0's gateway while node 0's own backend suffers `fault`.
async fn failover(
    testnet: &mut Testnet,
    nodes: &[NodeInfo],
    fault: &str,
    out: &Path,
) -> Result<FailoverResult, String> {
    let node0 = nodes.first().ok_or("no node")?;
    let known = Arc::new(nodes.iter().map(|x| x.peer_id.clone()).collect::<Vec<_>>());
    let target = Target::fixed(gateway_addr(node0)?, block_number_body(), CELL_TIMEOUT, known);
    // Start from the state the test is about: node 0 serving from its own upstream.
    let own_only = Target { headers: vec![("x-rpcmesh-failover", "off")], ..target.clone() };
    wait_serving(&own_only, Some(0), Duration::from_secs(30)).await?;

    let start = Instant::now();
    let busy0 = procfs::machine_busy();
    let stop = CancellationToken::new();
    let load = {
        let (t, s) = (target.clone(), stop.clone());
        tokio::spawn(async move { paced(&t, FAILOVER_LOOPS, FAILOVER_RATE, start, s).await })
    };
    tokio::time::sleep(FAILOVER_BASELINE).await;
    let injected = us(start.elapsed());
    let applied = testnet.fault(0, fault).await;
    if applied.is_ok() {
        tokio::time::sleep(FAILOVER_WINDOW).await;
    }
    let healed = us(start.elapsed());
    let heal = testnet.fault(0, "heal").await;
    tokio::time::sleep(FAILOVER_AFTER).await;
    stop.cancel();
    let (samples, first_errors) = load.await.map_err(|e| e.to_string())?;
    let run_end = us(start.elapsed());
    let machine_busy_pct = procfs::machine_busy_pct(busy0, procfs::machine_busy(), start.elapsed());
    applied?;
    heal?;
    write_samples(&out.join(format!("failover-{fault}.csv")), &samples, injected, healed)?;
    // Let node 0 take its own upstream back before whatever runs next.
    let _ = wait_serving(&own_only, Some(0), Duration::from_secs(30)).await;

    let in_window: Vec<&Sample> = samples.iter().filter(|s| (injected..healed).contains(&s.sent_us)).collect();
    let baseline_from = injected.saturating_sub(us(FAILOVER_BASELINE));
    let before: Vec<&Sample> = samples.iter().filter(|s| (baseline_from..injected).contains(&s.sent_us)).collect();
    let (stall, censored, stall_at) = longest_stall(&samples, injected, healed, run_end);
    let (transition_stall, _, _) = longest_stall(&samples, injected, (injected + 1_000_000).min(healed), run_end);
    let (baseline_stall, _, _) = longest_stall(&samples, baseline_from, injected, injected);
    let by_peer = |s: &Sample| s.ok && s.served != 0 && s.served != SERVED_NONE;
    Ok(FailoverResult {
        fault: fault.into(),
        nodes: nodes.len(),
        loops: FAILOVER_LOOPS,
        rate_per_loop: FAILOVER_RATE,
        window_ms: (healed - injected) / 1000,
        requests: in_window.len() as u64,
        failed: in_window.iter().filter(|s| !s.ok).count() as u64,
        failed_whole_run: samples.iter().filter(|s| !s.ok).count() as u64,
        longest_stall_us: stall,
        stall_censored: censored,
        longest_stall_at_ms: stall_at.saturating_sub(injected) as f64 / 1000.0,
        transition_stall_us: transition_stall,
        baseline_stall_us: baseline_stall,
        latency: Latency::of(in_window.iter().copied()),
        baseline_latency: Latency::of(before.iter().copied()),
        first_peer_answer_ms: samples
            .iter()
            .filter(|s| s.sent_us >= injected && by_peer(s))
            .map(|s| (s.sent_us + s.latency_us - injected) as f64 / 1000.0)
            .reduce(f64::min),
        served_by_peers: in_window.iter().filter(|s| by_peer(s)).count() as u64,
        machine_busy_pct,
        first_errors,
    })
}

/// Raw failover samples: one line per request (`served`: node index, -1 none, -2 unknown).
fn write_samples(path: &Path, samples: &[Sample], injected_us: u64, healed_us: u64) -> Result<(), String> {
    use std::fmt::Write as _;
    let mut s = format!(
        "# fault injected at {injected_us} us, healed at {healed_us} us\nworker,sent_us,latency_us,ok,served\n"
    );
    for x in samples {
        let _ = writeln!(s, "{},{},{},{},{}", x.worker, x.sent_us, x.latency_us, x.ok, x.served);
    }
    std::fs::write(path, s).map_err(|e| format!("writing {}: {e}", path.display()))
}
