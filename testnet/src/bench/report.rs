//! `bench.md`: the tables of a bench run and the floors of the performance issue, met or missed.

use std::fmt::Write as _;

use super::{BenchReport, Cell, Floor};

/// Floors from the performance issue (compared, never asserted).
const FLOOR_B_ADDED_P50_US: f64 = 30.0;
const FLOOR_B_RPS_RATIO: f64 = 0.70;
const FLOOR_C_ADDED_P50_US: f64 = 150.0;
const FLOOR_KILLED_STALL_US: u64 = 50_000;
const FLOOR_FROZEN_STALL_US: u64 = 1_000_000;
const FLOOR_GOSSIP_P99_MS: u64 = 500;
const FLOOR_GOSSIP_NODES: usize = 30;
const FLOOR_RSS_BYTES: u64 = 40_000_000;
/// Issue 16 (scale): at `FLOOR_SCALE_NODES` daemons on this machine, the machine idle busy at most
/// this share, every node seeing every provider within this long of the start, convergence p99 at
/// most this, and idle CPU per daemon at most this multiple of the `FLOOR_SCALE_BASE_NODES` mesh's.
const FLOOR_SCALE_NODES: usize = 100;
const FLOOR_SCALE_BASE_NODES: usize = 10;
const FLOOR_SCALE_BUSY_PCT: f64 = 70.0;
const FLOOR_SCALE_SEES_ALL_MS: u64 = 60_000;
const FLOOR_SCALE_P99_MS: u64 = 1_000;
const FLOOR_SCALE_CPU_RATIO: f64 = 1.5;
/// Issue 11: `sample` mode keeps at least this share of the local hop's `off` throughput.
const FLOOR_SAMPLE_RPS_RATIO: f64 = 0.90;
/// Issue 15: a cached `eth_getBlockByNumber` against the node asked directly, req/s.
const FLOOR_CACHE_VS_DIRECT: f64 = 3.0;
/// Issue 10, against nginx in front of the same node (`eth_blockNumber`): local hop req/s at
/// c=1 and at the highest concurrency, relay hop req/s at the highest concurrency.
const FLOOR_B_VS_NGINX_C1: f64 = 1.2;
const FLOOR_B_VS_NGINX_HIGH: f64 = 1.0;
const FLOOR_C_VS_NGINX_HIGH: f64 = 0.5;

fn find<'a>(r: &'a BenchReport, workload: &str, c: usize, case: &str) -> Option<&'a Cell> {
    r.cells.iter().find(|x| x.workload == workload && x.concurrency == c && x.case == case)
}

/// A latency in µs as `850 µs` or `12.3 ms`.
fn lat(us: Option<u64>) -> String {
    match us {
        None => "–".into(),
        Some(v) if v < 10_000 => format!("{v} µs"),
        Some(v) => format!("{:.1} ms", v as f64 / 1000.0),
    }
}

/// A signed difference in µs.
fn added(us: f64) -> String {
    if us.abs() < 10_000.0 { format!("{us:+.0} µs") } else { format!("{:+.1} ms", us / 1000.0) }
}

fn ratio(x: f64, base: f64) -> String {
    if base > 0.0 { format!("{:.2}×", x / base) } else { "–".into() }
}

fn mb(kib: Option<u64>) -> String {
    kib.map_or("–".into(), |k| format!("{:.1} MB", k as f64 * 1024.0 / 1e6))
}

fn opt_ms(v: Option<u64>) -> String {
    v.map_or("–".into(), |x| format!("{x} ms"))
}

fn met(m: Option<bool>) -> &'static str {
    match m {
        Some(true) => "**met**",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

/// Added p50 of `case` over (a) at concurrency `c`, µs, with both p50s.
fn added_p50(r: &BenchReport, w: &str, c: usize, case: &str) -> Option<(f64, u64, u64)> {
    let a = find(r, w, c, "a")?.latency.p50_us?;
    let x = find(r, w, c, case)?.latency.p50_us?;
    Some((x as f64 - a as f64, a, x))
}

/// Whether a convergence percentile meets `floor_ms`: a never-converged rank misses it; no
/// data is not measured.
fn p99_met(p: crate::measure::Percentile, floor_ms: u64) -> Option<bool> {
    match p {
        crate::measure::Percentile::At(v) => Some(v <= floor_ms),
        crate::measure::Percentile::Never => Some(false),
        crate::measure::Percentile::NoData => None,
    }
}

/// The scale floors (issue 16), when the 100-daemon mesh ran.
fn scale_floors(r: &BenchReport) -> Vec<Floor> {
    let Some(big) = r.gossip.iter().find(|g| g.nodes == FLOOR_SCALE_NODES) else { return Vec::new() };
    let n = FLOOR_SCALE_NODES;
    let base = r.gossip.iter().find(|g| g.nodes == FLOOR_SCALE_BASE_NODES);
    let cpu = big.idle_cpu_pct_per_daemon.zip(base.and_then(|b| b.idle_cpu_pct_per_daemon));
    vec![
        Floor {
            name: format!("machine busy while {n} daemons idle"),
            target: format!("≤ {FLOOR_SCALE_BUSY_PCT:.0} %"),
            measured: big.machine_busy_pct.map_or("–".into(), |v| format!("{v:.0} %")),
            met: big.machine_busy_pct.map(|v| v <= FLOOR_SCALE_BUSY_PCT),
        },
        Floor {
            name: format!("every node sees every provider, {n} daemons"),
            target: format!("≤ {} s after the start", FLOOR_SCALE_SEES_ALL_MS / 1000),
            measured: format!(
                "{:.1} s (all healthy everywhere: {})",
                big.seen_after_ms as f64 / 1000.0,
                big.converged_after_ms
                    .map_or("not within the ready timeout".into(), |ms| format!("{:.1} s", ms as f64 / 1000.0))
            ),
            met: Some(big.seen_after_ms <= FLOOR_SCALE_SEES_ALL_MS),
        },
        Floor {
            name: format!("announcement convergence p99 at {n} daemons"),
            target: format!("≤ {FLOOR_SCALE_P99_MS} ms"),
            measured: format!(
                "{} ({} of {} announcements reached every node, {} never, {} hidden by a newer one)",
                big.stats.convergence_p99.label(),
                big.stats.messages_complete,
                big.stats.messages,
                big.stats.never_converged,
                big.stats.hidden
            ),
            met: p99_met(big.stats.convergence_p99, FLOOR_SCALE_P99_MS),
        },
        Floor {
            name: format!("idle CPU per daemon, {n} vs {FLOOR_SCALE_BASE_NODES} daemons"),
            target: format!("≤ {FLOOR_SCALE_CPU_RATIO}×"),
            measured: cpu.map_or("–".into(), |(b, s)| format!("{} ({b:.2} % vs {s:.2} % of a core)", ratio(b, s))),
            met: cpu.map(|(b, s)| s > 0.0 && b / s <= FLOOR_SCALE_CPU_RATIO),
        },
    ]
}

/// The floors of the performance issue, evaluated on `r`.
pub fn floors(r: &BenchReport) -> Vec<Floor> {
    let mut out = Vec::new();
    let workloads: Vec<String> = {
        let mut w: Vec<String> = r.cells.iter().filter(|c| c.case == "a").map(|c| c.workload.clone()).collect();
        w.dedup();
        w
    };
    let lowest = r.settings.concurrency.iter().copied().min().unwrap_or(1);
    let highest = r.settings.concurrency.iter().copied().max().unwrap_or(64);
    if r.anvil.is_some() {
        out.extend(anvil_floors(r, &workloads, highest));
    }
    for w in workloads.iter().filter(|_| r.anvil.is_none()) {
        for (case, limit) in [("b", FLOOR_B_ADDED_P50_US), ("c", FLOOR_C_ADDED_P50_US)] {
            let m = added_p50(r, w, 1, case);
            out.push(Floor {
                name: format!("({case}) added p50 over direct at c=1, {w}"),
                target: format!("≤ {limit:.0} µs"),
                measured: m.map_or("–".into(), |(d, a, x)| format!("{} (direct {a} µs, ({case}) {x} µs)", added(d))),
                met: m.map(|(d, _, _)| d <= limit),
            });
        }
        let rps = find(r, w, 64, "a").zip(find(r, w, 64, "b")).map(|(a, b)| (b.req_per_sec, a.req_per_sec));
        out.push(Floor {
            name: format!("(b) req/s at c=64 vs direct, {w}"),
            target: format!("≥ {:.0} %", FLOOR_B_RPS_RATIO * 100.0),
            measured: rps.map_or("–".into(), |(b, a)| {
                format!("{:.0} % ({b:.0} vs {a:.0} req/s)", if a > 0.0 { b * 100.0 / a } else { 0.0 })
            }),
            met: rps.map(|(b, a)| a > 0.0 && b / a >= FLOOR_B_RPS_RATIO),
        });
    }
    if lowest != 1 || highest != 64 {
        out.push(Floor {
            name: "concurrency 1 and 64".into(),
            target: "measured".into(),
            measured: format!("concurrencies run: {:?}", r.settings.concurrency),
            met: None,
        });
    }
    for (fault, name, limit) in
        [("down", "upstream killed", FLOOR_KILLED_STALL_US), ("freeze", "upstream frozen", FLOOR_FROZEN_STALL_US)]
    {
        let f = r.failover.iter().find(|f| f.fault == fault);
        out.push(Floor {
            name: format!("{name}: failed requests and longest stall"),
            target: format!("0 failed, stall ≤ {}", lat(Some(limit))),
            measured: f.map_or("–".into(), |f| {
                format!(
                    "{} failed of {}, stall {}{} at +{:.0} ms (switch-over {})",
                    f.failed,
                    f.requests,
                    lat(Some(f.longest_stall_us)),
                    if f.stall_censored { " (until the end of the run)" } else { "" },
                    f.longest_stall_at_ms,
                    lat(Some(f.transition_stall_us)),
                )
            }),
            met: f.map(|f| f.failed == 0 && f.longest_stall_us <= limit),
        });
    }
    let g = r.gossip.iter().find(|g| g.nodes == FLOOR_GOSSIP_NODES);
    out.push(Floor {
        name: format!("gossip convergence p99 at {FLOOR_GOSSIP_NODES} nodes"),
        target: format!("≤ {FLOOR_GOSSIP_P99_MS} ms"),
        measured: g.map_or("–".into(), |g| {
            format!(
                "{} (p50 {}, {} announcements, {} never converged)",
                g.stats.convergence_p99.label(),
                g.stats.convergence_p50.label(),
                g.stats.messages_complete,
                g.stats.never_converged
            )
        }),
        met: g.and_then(|g| p99_met(g.stats.convergence_p99, FLOOR_GOSSIP_P99_MS)),
    });
    out.extend(scale_floors(r));
    let m = r.memory.iter().find(|m| m.setup.starts_with(&format!("{FLOOR_GOSSIP_NODES}-node")));
    out.push(Floor {
        name: format!("daemon RSS under load, {FLOOR_GOSSIP_NODES}-node mesh"),
        target: format!("≤ {} MB", FLOOR_RSS_BYTES / 1_000_000),
        measured: m.map_or("–".into(), |m| {
            format!(
                "{} peak ({} providers known; idle {})",
                mb(m.load_rss_max_kib),
                m.providers_known,
                mb(m.idle.map(|x| x.rss_kib))
            )
        }),
        met: m.and_then(|m| m.load_rss_max_kib).map(|k| k * 1024 <= FLOOR_RSS_BYTES),
    });
    out
}

/// `x` over `base` req/s as a floor row.
fn rps_floor(r: &BenchReport, name: String, w: &str, c: usize, (x, base): (&str, &str), limit: f64) -> Floor {
    let pair = find(r, w, c, x).zip(find(r, w, c, base)).map(|(x, b)| (x.req_per_sec, b.req_per_sec));
    Floor {
        name,
        target: format!("≥ {limit:.2}×"),
        measured: pair.map_or("–".into(), |(x, b)| format!("{} ({x:.0} vs {b:.0} req/s)", ratio(x, b))),
        met: pair.map(|(x, b)| b > 0.0 && x / b >= limit),
    }
}

/// Floors of issues 10 and 11 on the anvil run.
fn anvil_floors(r: &BenchReport, workloads: &[String], highest: usize) -> Vec<Floor> {
    let mut out = Vec::new();
    for w in workloads {
        out.push(rps_floor(
            r,
            format!("(b) sample vs (b) off req/s at c={highest}, {w}"),
            w,
            highest,
            ("b sample", "b off"),
            FLOOR_SAMPLE_RPS_RATIO,
        ));
    }
    // The cache's floor is read on a full block (what clients ask again and again, and what costs
    // a node real work); the nearly empty block beside it shows the other end: a node answering
    // in about one HTTP round trip, where the load generator's own CPU bounds any server.
    for (blocks, note) in [
        (super::anvil::FULL_BLOCK, ""),
        ("eth_getBlockByNumber n,false", " (a 2 kB block: bounded by the load generator's own CPU)"),
    ] {
        if find(r, blocks, highest, "k cache").is_some() {
            out.push(rps_floor(
                r,
                format!("(k) response cache vs direct anvil req/s at c={highest}, {blocks}{note}"),
                blocks,
                highest,
                ("k cache", "a"),
                FLOOR_CACHE_VS_DIRECT,
            ));
        }
    }
    let w = "eth_blockNumber";
    if find(r, w, 1, "n").is_some() || find(r, w, highest, "n").is_some() {
        out.push(rps_floor(
            r,
            format!("(b) off vs nginx req/s at c=1, {w}"),
            w,
            1,
            ("b off", "n"),
            FLOOR_B_VS_NGINX_C1,
        ));
        out.push(rps_floor(
            r,
            format!("(b) off vs nginx req/s at c={highest} (issue: c=64), {w}"),
            w,
            highest,
            ("b off", "n"),
            FLOOR_B_VS_NGINX_HIGH,
        ));
        out.push(rps_floor(
            r,
            format!("(c) off vs nginx req/s at c={highest} (issue: c=64), {w}"),
            w,
            highest,
            ("c off", "n"),
            FLOOR_C_VS_NGINX_HIGH,
        ));
    }
    for (case, limit) in [("b off", FLOOR_B_ADDED_P50_US), ("c off", FLOOR_C_ADDED_P50_US)] {
        let m = added_p50(r, w, 1, case);
        out.push(Floor {
            name: format!("({case}) added p50 over direct anvil at c=1, {w}"),
            target: format!("≤ {limit:.0} µs"),
            measured: m.map_or("–".into(), |(d, a, x)| format!("{} (direct {a} µs, ({case}) {x} µs)", added(d))),
            met: m.map(|(d, _, _)| d <= limit),
        });
    }
    out
}

/// Integrity outcomes of a cell summed over methods, e.g. `proof 120, none 2400`.
fn outcomes(c: &Cell) -> String {
    let mut by: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for (k, v) in &c.integrity_checks {
        let outcome = k.rsplit('/').next().unwrap_or(k);
        *by.entry(outcome).or_insert(0) += v;
    }
    if by.is_empty() {
        return "–".into();
    }
    by.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}

/// Section 1 of an anvil run: every path and mode side by side.
fn render_anvil(s: &mut String, r: &BenchReport, run: &super::anvil::AnvilRun) {
    let _ = writeln!(
        s,
        "## 1. Verified answers: cost per mode on anvil\n\n\
         One anvil ({}), {} providers B0… reaching it directly, and a daemon A with no node. \
         (a) client → anvil; (n) client → nginx → anvil; (b) client → B0 → its anvil \
         (`x-rpcmesh-failover: off`); (c) client → A → libp2p relay → B → anvil. (b) and (c) run in \
         each mode of `x-rpcmesh-verify`: `off`, `sample`, `strict`. Every request has its own \
         JSON-RPC id (a daemon samples by a keyed hash of the request). `routing.hedge=false`. \
         *vs direct*, *vs nginx*, *vs off*: req/s ratio to (a), to (n), to the same path in mode \
         `off`; *p50/p99 vs off* likewise. Daemon CPU is every daemon ((b): the providers, whose \
         peers serve material; (c): A and the providers) per 1000 answers; for (n), nginx's master \
         and workers. *Checks*: change of `rpcmesh_integrity_checks_total` on the path's gateway \
         over the cell (warm-up included), by outcome (`none`: checked without material; \
         `header`/`proof`/`quorum`: verified that far; `unverifiable`/`lie`: failed).\n\nnginx: {}.",
        run.anvil,
        run.providers,
        if run.nginx.is_empty() { "not measured" } else { &run.nginx },
    );
    if let Some(sd) = &run.seeded {
        let _ = writeln!(
            s,
            "\nSeeded directly on anvil: contract {} (every call emits one log), {} calls; \
             `eth_getBalance` of {}; `eth_getBlockByNumber` block {}; receipt of {}; `eth_getLogs` \
             blocks {}..={} by the contract's address ({} logs). *mix*: each client sends the five in turn. \
             *full block*: `eth_getBlockByNumber(n, true)` of block {}, {} calls to the contract in one \
             block, {} bytes with full transaction objects (about a mainnet block).",
            sd.contract,
            sd.transactions,
            sd.balance_of,
            sd.block,
            sd.receipt_of,
            sd.logs_range.0,
            sd.logs_range.1,
            sd.logs,
            sd.full_block,
            sd.full_block_txs,
            sd.full_block_bytes
        );
    }
    let mut workloads: Vec<&str> = r.cells.iter().filter(|c| c.case == "a").map(|c| c.workload.as_str()).collect();
    workloads.dedup();
    for w in workloads {
        let _ = writeln!(
            s,
            "\n### {w}\n\n| c | path | mode | req/s | vs direct | vs nginx | vs off | p50 | p50 vs off | p99 \
             | p99 vs off | failed | daemon CPU ms/1k | checks |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for c in r.cells.iter().filter(|c| c.workload == w) {
            let (path, mode) = c.case.split_once(' ').unwrap_or((c.case.as_str(), ""));
            let rel = |other: Option<&Cell>| other.map_or("–".into(), |o| ratio(c.req_per_sec, o.req_per_sec));
            let off = (!mode.is_empty()).then(|| find(r, w, c.concurrency, &format!("{path} off"))).flatten();
            let lat_ratio =
                |x: Option<u64>, y: Option<u64>| x.zip(y).map_or("–".into(), |(x, y)| ratio(x as f64, y as f64));
            let _ = writeln!(
                s,
                "| {} | ({path}) {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {}{} | {} | {} |",
                c.concurrency,
                c.path,
                if mode.is_empty() { "–" } else { mode },
                c.req_per_sec,
                rel(find(r, w, c.concurrency, "a")),
                rel(find(r, w, c.concurrency, "n")),
                if mode.is_empty() { "–".into() } else { rel(off) },
                lat(c.latency.p50_us),
                if mode.is_empty() {
                    "–".into()
                } else {
                    lat_ratio(c.latency.p50_us, off.and_then(|o| o.latency.p50_us))
                },
                lat(c.latency.p99_us),
                if mode.is_empty() {
                    "–".into()
                } else {
                    lat_ratio(c.latency.p99_us, off.and_then(|o| o.latency.p99_us))
                },
                c.failed,
                if c.served_unexpected > 0 {
                    format!(" ({} served elsewhere)", c.served_unexpected)
                } else {
                    String::new()
                },
                c.daemon_cpu_ms_per_1k.map_or("–".into(), |v| format!("{v:.1}")),
                outcomes(c),
            );
        }
    }
    let errors: Vec<String> = r
        .cells
        .iter()
        .filter(|c| !c.first_errors.is_empty())
        .map(|c| format!("- {} c={} ({}): {}", c.workload, c.concurrency, c.case, c.first_errors[0].replace('\n', " ")))
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(s, "\nFirst error of each cell with failures:\n\n{}", errors.join("\n"));
    }
    let _ = writeln!(
        s,
        "\n### Integrity counters after the run\n\n`rpcmesh_integrity_checks_total` (method/outcome) and \
         `rpcmesh_integrity_ranges_too_wide_total` from each daemon's admin `/metrics`, readiness checks \
         included.\n\n| daemon | counters |\n|---|---|"
    );
    for d in &run.counters {
        let list: Vec<String> = d.counters.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(s, "| {} | {} |", d.daemon, if list.is_empty() { "–".into() } else { list.join(", ") });
    }
    s.push('\n');
}

/// Renders `bench.md`.
pub fn render_markdown(r: &BenchReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# rpcmesh bench\n");
    let _ = writeln!(
        s,
        "Machine: {} CPUs (`nproc`), {}; 1-minute load average {} at the start, {} at the end. Started {}, \
         took {:.0} s{}. Backend: {}. Latency cells: {} ms warm-up, then {} ms measured, split into {} rounds interleaved with \
         the other paths.\n",
        r.machine.cpus,
        r.machine.cpu_model,
        r.loadavg.0.map_or("?".into(), |l| format!("{l:.2}")),
        r.loadavg.1.map_or("?".into(), |l| format!("{l:.2}")),
        crate::report::fmt::utc(r.started_at_unix_ms),
        r.duration_ms as f64 / 1000.0,
        if r.interrupted { " (**interrupted**: partial results)" } else { "" },
        r.settings.backend,
        r.settings.warmup_ms,
        r.settings.cell_ms,
        r.settings.rounds,
    );
    if !r.settings.daemon_sets.is_empty() {
        let _ = writeln!(s, "Every daemon ran with `--set {}`.\n", r.settings.daemon_sets.join(" --set "));
    }
    if !r.errors.is_empty() {
        let _ = writeln!(s, "**Sections that failed:**\n");
        for e in &r.errors {
            let _ = writeln!(s, "- {}", e.replace('\n', " "));
        }
        s.push('\n');
    }

    let _ = writeln!(s, "## Floors\n\n| floor | target | measured | |\n|---|---|---|---|");
    for f in &r.floors {
        let _ = writeln!(s, "| {} | {} | {} | {} |", f.name, f.target, f.measured, met(f.met));
    }
    s.push('\n');

    if let Some(run) = &r.anvil {
        render_anvil(&mut s, r, run);
    } else {
        render_pair(&mut s, r);
    }
    render_mesh(&mut s, r);
    s
}

/// Section 1 on simulated backends.
fn render_pair(s: &mut String, r: &BenchReport) {
    let _ = writeln!(
        s,
        "## 1. Latency and throughput\n\n\
         (a) client → sim backend directly (the floor); (b) client → daemon B → its own upstream (that \
         same backend; `x-rpcmesh-failover: off`); (c) client → daemon A (no upstream) → libp2p relay → \
         daemon B → the same backend. `routing.hedge=false`. Closed loop: each of *c* clients has one \
         keep-alive connection and one request in flight. req/s counts correct answers; latencies are \
         exact nearest-rank percentiles over every request sent in the window. \"vs (a)\" is the ratio to \
         the direct path at the same concurrency; \"added\" is the difference. CPU is the daemons on \
         the path (A + B for (c)) per 1000 answers; the bench process (client + sim backend) is shown \
         separately. *Other CPU*: what the rest of the machine used meanwhile, in percent of all CPUs \
         (other processes, idle daemons): a high value means a noisy cell."
    );
    if let Some((from, to)) = r.settings.logs_range {
        let _ = writeln!(s, "\n`eth_getLogs` range: blocks {from}..={to} (unfiltered).");
    }
    let mut workloads: Vec<&str> = r.cells.iter().filter(|c| c.case != "b30").map(|c| c.workload.as_str()).collect();
    workloads.dedup();
    for w in workloads {
        let _ = writeln!(
            s,
            "\n### {w}\n\n| c | path | req/s | vs (a) | p50 | added p50 | p50 vs (a) | p99 | added p99 | p99 vs (a) \
             | failed | resp. bytes | daemon CPU ms/1k | bench CPU ms/1k | peak daemon RSS | other CPU |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for c in r.cells.iter().filter(|c| c.workload == w && c.case != "b30") {
            let a = find(r, w, c.concurrency, "a");
            let (rps_r, p50_add, p50_r, p99_add, p99_r) = match (a, c.case.as_str()) {
                (Some(a), "b" | "c" | "f") => {
                    let d = |x: Option<u64>, y: Option<u64>| {
                        x.zip(y).map(|(x, y)| (x as f64 - y as f64, x as f64, y as f64))
                    };
                    let p50 = d(c.latency.p50_us, a.latency.p50_us);
                    let p99 = d(c.latency.p99_us, a.latency.p99_us);
                    (
                        ratio(c.req_per_sec, a.req_per_sec),
                        p50.map_or("–".into(), |v| added(v.0)),
                        p50.map_or("–".into(), |v| ratio(v.1, v.2)),
                        p99.map_or("–".into(), |v| added(v.0)),
                        p99.map_or("–".into(), |v| ratio(v.1, v.2)),
                    )
                }
                _ => ("1×".into(), "".into(), "".into(), "".into(), "".into()),
            };
            let rss: Vec<String> = c.daemon_rss_max_kib.iter().map(|k| mb(Some(*k))).collect();
            let _ = writeln!(
                s,
                "| {} | ({}) {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {}{} | {} | {} | {} | {} | {} |",
                c.concurrency,
                c.case,
                c.path,
                c.req_per_sec,
                rps_r,
                lat(c.latency.p50_us),
                p50_add,
                p50_r,
                lat(c.latency.p99_us),
                p99_add,
                p99_r,
                c.failed,
                if c.served_unexpected > 0 {
                    format!(" ({} served elsewhere)", c.served_unexpected)
                } else {
                    String::new()
                },
                c.mean_response_bytes,
                c.daemon_cpu_ms_per_1k.map_or("–".into(), |v| format!("{v:.1}")),
                c.bench_cpu_ms_per_1k.map_or("–".into(), |v| format!("{v:.1}")),
                if rss.is_empty() { "–".into() } else { rss.join(" + ") },
                c.other_cpu_pct.map_or("–".into(), |v| format!("{v:.0} %")),
            );
        }
    }
    let errors: Vec<String> = r
        .cells
        .iter()
        .filter(|c| !c.first_errors.is_empty())
        .map(|c| format!("- {} c={} ({}): {}", c.workload, c.concurrency, c.case, c.first_errors[0].replace('\n', " ")))
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(s, "\nFirst error of each cell with failures:\n\n{}", errors.join("\n"));
    }
    if let Some(n) = &r.no_upstream_daemon {
        let _ = writeln!(
            s,
            "\nDaemon without any upstream (A): {}. {}",
            if n.runs { "runs" } else { "**does not run**" },
            n.detail.replace('\n', " ")
        );
    }
}

/// Sections 2-4 and the footer.
fn render_mesh(s: &mut String, r: &BenchReport) {
    let _ = writeln!(
        s,
        "\n## 2. Failover gap\n\n\
         Node 0 of a mesh with default settings (hedging on) serves {} client loops of `eth_blockNumber` \
         at {} req/s each on its gateway; its own backend is then killed (`down`: connections refused \
         and dropped) or frozen (`freeze`: accepts, never answers) for the window, then healed. *Longest \
         stall*: over requests sent in the window, the longest time from a request's send until its \
         client loop got a correct answer (a failed request stalls its loop until a later success). \
         *Switch-over*: the same over requests sent in the first second after the injection. *Baseline*: \
         the same figure over the {} s before the fault.\n\n\
         | fault | mesh | window | requests | failed | longest stall (sent at) | switch-over stall | baseline stall | p50 / p99 / max in window | first answer from a peer after | served by peers | machine busy |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|",
        super::FAILOVER_LOOPS,
        super::FAILOVER_RATE,
        super::FAILOVER_BASELINE.as_secs()
    );
    for f in &r.failover {
        let _ = writeln!(
            s,
            "| {} | {} nodes | {} ms | {} | {} (whole run {}) | {}{} (+{:.0} ms) | {} | {} | {} / {} / {} | {} | {} | {} |",
            f.fault,
            f.nodes,
            f.window_ms,
            f.requests,
            f.failed,
            f.failed_whole_run,
            lat(Some(f.longest_stall_us)),
            if f.stall_censored { " (censored)" } else { "" },
            f.longest_stall_at_ms,
            lat(Some(f.transition_stall_us)),
            lat(Some(f.baseline_stall_us)),
            lat(f.latency.p50_us),
            lat(f.latency.p99_us),
            lat(f.latency.max_us),
            f.first_peer_answer_ms.map_or("–".into(), |v| format!("{v:.1} ms")),
            f.served_by_peers,
            f.machine_busy_pct.map_or("–".into(), |v| format!("{v:.0} %")),
        );
    }

    let _ = writeln!(
        s,
        "\n## 3. Gossip convergence\n\n\
         Every node's `/peers` is polled every {} ms; each capacity announcement seen at a node gives \
         `received_at_ms − announced_at_ms` (publish → accepted by that node's p2p loop, one machine \
         clock). *Convergence* of an announcement is its slowest delivery (heartbeats plus material \
         changes), by the one definition of the testnet crate's `measure` module that the scenario \
         reports and the simulator use: an announcement some node showed neither it nor a newer one of \
         its publisher never converged and ranks after every finite time (`never`); one a node may \
         have accepted and replaced between two polls (it showed a newer one) is left out and counted \
         as hidden. *Idle*: a window after the mesh \
         converged (and settled) with no client and no poll of any daemon: daemon CPU per daemon, p2p \
         bytes sent per daemon per second (libp2p transport counters read before and after), and \
         *machine busy* (all processes, the bench's simulated backends included, percent of all CPUs). \
         *Memory per daemon*: median `VmRSS` over the daemons at the end of the observation (private \
         `RssAnon` in brackets; the rest is the shared executable).\n\n\
         | nodes | announcements (reached all / never / hidden / seen) | delivery p50 / p99 | convergence p50 / p99 / max | every node sees every provider / all healthy, after start | idle CPU per daemon | p2p bytes/s per daemon (sent) | memory per daemon | machine busy (idle) |\n\
         |---|---|---|---|---|---|---|---|---|",
        super::GOSSIP_POLL.as_millis()
    );
    for g in &r.gossip {
        let _ = writeln!(
            s,
            "| {} | {} / {} / {} / {} | {} / {} | {} / {} / {} | {:.1} s / {} | {} | {} | {} ({}) | {} |",
            g.nodes,
            g.stats.messages_complete,
            g.stats.never_converged,
            g.stats.hidden,
            g.stats.messages,
            opt_ms(g.stats.delivery_p50_ms),
            opt_ms(g.stats.delivery_p99_ms),
            g.stats.convergence_p50.label(),
            g.stats.convergence_p99.label(),
            opt_ms(g.stats.convergence_max_ms),
            g.seen_after_ms as f64 / 1000.0,
            g.converged_after_ms.map_or("–".into(), |ms| format!("{:.1} s", ms as f64 / 1000.0)),
            g.idle_cpu_pct_per_daemon.map_or("–".into(), |v| format!("{v:.2} % of a core")),
            g.p2p_sent_bytes_per_s_per_daemon.map_or("–".into(), |v| format!("{:.1} kB/s", v / 1000.0)),
            mb(g.idle_rss_median_kib),
            mb(g.idle_anon_median_kib),
            g.machine_busy_pct.map_or("–".into(), |v| format!("{v:.0} %")),
        );
    }

    let _ = writeln!(
        s,
        "\n## 4. Memory and CPU\n\n\
         RSS is `VmRSS` from `/proc/PID/status` (sampled every 100 ms under load): private memory \
         (`RssAnon`) plus file pages (`RssFile`, mostly the executable's code, which all daemons of \
         a machine share). MB = 10⁶ bytes. *Growth*: change of `RssAnon` while the mesh ran without \
         clients during the gossip observation.\n\n\
         | setup | daemon | providers known | idle RSS (anon + file) | idle RSS, all daemons (median / max) | idle anon growth | idle CPU | peak RSS under load | after load (anon + file), VmHWM | load |\n\
         |---|---|---|---|---|---|---|---|---|---|"
    );
    let mem = |m: &Option<super::procfs::Memory>| {
        m.map_or("–".into(), |m| {
            format!("{} ({} + {})", mb(Some(m.rss_kib)), mb(Some(m.anon_kib)), mb(Some(m.file_kib)))
        })
    };
    for m in &r.memory {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {}, {} | {} |",
            m.setup,
            m.node,
            m.providers_known,
            mem(&m.idle),
            if m.idle_rss_median_all_kib.is_some() {
                format!("{} / {}", mb(m.idle_rss_median_all_kib), mb(m.idle_rss_max_all_kib))
            } else {
                "–".into()
            },
            m.idle_anon_growth_kib_per_min.map_or("–".into(), |g| format!("{:+.1} MB/min", g * 1024.0 / 1e6)),
            m.idle_cpu_pct.map_or("–".into(), |v| format!("{v:.1} % of a core")),
            mb(m.load_rss_max_kib),
            mem(&m.after_load),
            mb(m.after_load.map(|x| x.hwm_kib)),
            m.load
        );
    }
    let loaded: Vec<&Cell> = r.cells.iter().filter(|c| c.case == "b30").collect();
    if !loaded.is_empty() {
        let _ = writeln!(
            s,
            "\nNode 0 of the large mesh under that load:\n\n| workload | c | req/s | p50 | p99 | failed | daemon CPU ms/1k | peak RSS |\n|---|---|---|---|---|---|---|---|"
        );
        for c in loaded {
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {} | {} | {} | {} | {} |",
                c.workload,
                c.concurrency,
                c.req_per_sec,
                lat(c.latency.p50_us),
                lat(c.latency.p99_us),
                c.failed,
                c.daemon_cpu_ms_per_1k.map_or("–".into(), |v| format!("{v:.1}")),
                mb(c.daemon_rss_max_kib.first().copied())
            );
        }
    }
    let _ = writeln!(s, "\nRaw numbers: `bench.json`. Reproduce: `rpcmesh testnet bench --out DIR`.");
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::analysis::Latency;
    use super::super::anvil::{AnvilRun, DaemonCounters};
    use super::super::{BenchReport, Cell, Machine, Settings};
    use super::*;

    fn cell(workload: &str, c: usize, case: &str, rps: f64, p50_us: u64) -> Cell {
        Cell {
            workload: workload.into(),
            concurrency: c,
            case: case.into(),
            path: format!("path {case}"),
            requests: 100,
            ok: 100,
            failed: 0,
            req_per_sec: rps,
            latency: Latency { p50_us: Some(p50_us), p90_us: None, p99_us: Some(p50_us * 2), max_us: None },
            mean_response_bytes: 10,
            served_unexpected: 0,
            daemon_cpu_ms: None,
            daemon_cpu_ms_per_1k: None,
            bench_cpu_ms_per_1k: None,
            daemon_rss_max_kib: Vec::new(),
            other_cpu_pct: None,
            first_errors: Vec::new(),
            integrity_checks: BTreeMap::from([("eth_blockNumber/quorum".to_string(), 7)]),
        }
    }

    fn anvil_report() -> BenchReport {
        let w = "eth_blockNumber";
        let cells = vec![
            cell(w, 1, "a", 10_000.0, 50),
            cell(w, 1, "n", 5_000.0, 100),
            cell(w, 1, "b off", 4_000.0, 150),
            cell(w, 1, "b sample", 3_000.0, 160),
            cell(w, 1, "c off", 1_000.0, 600),
        ];
        BenchReport {
            started_at_unix_ms: 0,
            duration_ms: 0,
            machine: Machine { cpus: 2, cpu_model: "test".into() },
            loadavg: (None, None),
            settings: Settings {
                warmup_ms: 0,
                cell_ms: 0,
                concurrency: vec![1],
                rounds: 1,
                mesh_sizes: Vec::new(),
                gossip_window_ms: 0,
                backend: "anvil".into(),
                logs_range: None,
                daemon_sets: Vec::new(),
            },
            no_upstream_daemon: None,
            cells,
            failover: Vec::new(),
            gossip: Vec::new(),
            memory: Vec::new(),
            floors: Vec::new(),
            errors: Vec::new(),
            interrupted: false,
            anvil: Some(AnvilRun {
                anvil: "anvil 1.7.1".into(),
                providers: 3,
                seeded: None,
                nginx: "not measured: nginx is not installed".into(),
                counters: vec![DaemonCounters {
                    daemon: "B0".into(),
                    counters: BTreeMap::from([("eth_getBalance/proof".to_string(), 3)]),
                }],
            }),
        }
    }

    #[test]
    fn anvil_floors_compare_modes_and_nginx() {
        let r = anvil_report();
        let f = floors(&r);
        let sample = f.iter().find(|x| x.name.starts_with("(b) sample vs (b) off")).expect("sample floor");
        assert_eq!(sample.met, Some(false), "0.75× is under 0.90×: {sample:?}");
        let nginx = f.iter().find(|x| x.name.starts_with("(b) off vs nginx req/s at c=1")).expect("nginx floor");
        assert_eq!(nginx.met, Some(false));
        assert!(nginx.measured.starts_with("0.80×"), "{nginx:?}");
        assert!(!f.iter().any(|x| x.name.starts_with("(b) added p50")), "no sim-pair floors on anvil");
    }

    #[test]
    fn anvil_section_shows_modes_side_by_side() {
        let md = render_markdown(&anvil_report());
        assert!(md.contains("## 1. Verified answers: cost per mode on anvil"));
        assert!(md.contains("nginx: not measured: nginx is not installed."));
        assert!(md.contains("| 1 | (b) path b sample | sample | 3000 | 0.30× | 0.60× | 0.75× |"), "{md}");
        assert!(md.contains("quorum 7"));
        assert!(md.contains("| B0 | eth_getBalance/proof 3 |"));
        assert!(!md.contains("## 1. Latency and throughput"));
    }
}
