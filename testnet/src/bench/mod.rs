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
pub mod load;
mod mesh;
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
    /// On anvil: only workloads whose name contains one of these words (empty: all).
    pub workloads: Vec<String>,
    /// On anvil: only these path cases, besides direct anvil (empty: all).
    pub paths: Vec<String>,
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
            workloads: Vec::new(),
            paths: Vec::new(),
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
    /// The idle window (no clients, no polls), ms.
    pub idle_window_ms: u64,
    /// CPU of all daemons over the idle window (gossip, probes, attestations), percent of one
    /// core per daemon.
    pub idle_cpu_pct_per_daemon: Option<f64>,
    /// p2p bytes sent per daemon per second over the idle window (libp2p transport counters).
    pub p2p_sent_bytes_per_s_per_daemon: Option<f64>,
    /// p2p bytes received per daemon per second over the idle window.
    pub p2p_received_bytes_per_s_per_daemon: Option<f64>,
    /// Mesh start to every node seeing every provider (a current announcement of each), ms.
    pub seen_after_ms: u64,
    /// Mesh start to every node seeing every provider healthy, ms; `None` when that did not
    /// happen within the bench's ready timeout after `seen_after_ms`.
    pub converged_after_ms: Option<u64>,
    /// Whole machine busy over the idle window, percent of all CPUs (saturation shows here).
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
        let roles = mesh::MeshRoles { failover: i == 0, memory: i + 1 == sizes.len() };
        if let Err(e) = mesh::mesh_section(opts, n, roles, &mut report, &stop).await {
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
