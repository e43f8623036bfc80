//! Sections 2-4 of the bench: meshes of sim-backed daemons. Per mesh size: the mesh's start
//! and convergence, its idle cost (CPU, p2p bytes, machine busy) over a window in which nothing
//! polls the daemons, gossip delivery and convergence, then (smallest mesh) failover and
//! (largest mesh) memory and CPU of node 0 under load.

use super::*;
/// Memory of every daemon of a mesh at the start and the end of the idle gossip observation.
struct IdleMemory {
    before: Vec<Option<procfs::Memory>>,
    after: Vec<Option<procfs::Memory>>,
    minutes: f64,
}

/// After the mesh converged, time for the start-up burst to pass before the idle window.
const IDLE_SETTLE: Duration = Duration::from_secs(30);
/// The idle window: no client, no poll; daemon CPU, machine busy and p2p bytes over it. A
/// minute: at 100 daemons, 15 s windows read anywhere from 57 % to 80 % machine busy, as
/// announcement and attestation traffic comes and goes; a minute read within a few points.
const IDLE_WINDOW: Duration = Duration::from_secs(60);

/// Every daemon's p2p bytes so far, `(sent, received)`, from its `/metrics` (the libp2p
/// transport's metered bytes: TCP and QUIC after Noise and Yamux framing). `None` for a daemon
/// that did not answer.
async fn p2p_bytes(nodes: &[NodeInfo]) -> Vec<Option<(u64, u64)>> {
    let mut out = Vec::with_capacity(nodes.len());
    for n in nodes {
        let url = format!("{}/metrics", n.admin);
        let body = rpcmesh_node::admin::client::get_ok(&url, Duration::from_secs(5)).await.ok();
        out.push(body.map(|b| bandwidth_totals(&String::from_utf8_lossy(&b))));
    }
    out
}

/// Sums the `*bandwidth_bytes_total` counters of an OpenMetrics text by direction:
/// `(outbound, inbound)`.
fn bandwidth_totals(text: &str) -> (u64, u64) {
    let mut totals = (0u64, 0u64);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name_labels, value)) = line.rsplit_once(' ') else { continue };
        let Some((name, labels)) = name_labels.split_once('{') else { continue };
        if !name.ends_with("bandwidth_bytes_total") {
            continue;
        }
        let Ok(v) = value.trim().parse::<f64>() else { continue };
        if labels.contains("direction=\"Outbound\"") {
            totals.0 += v as u64;
        } else if labels.contains("direction=\"Inbound\"") {
            totals.1 += v as u64;
        }
    }
    totals
}

/// What a mesh is used for beyond gossip and its idle cost.
#[derive(Clone, Copy, Debug)]
pub(super) struct MeshRoles {
    /// Run the failover tests (section 3).
    pub(super) failover: bool,
    /// Run memory and CPU under load (section 4).
    pub(super) memory: bool,
}

pub(super) async fn mesh_section(
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

/// How far the mesh has come: every node sees every provider with a current announcement
/// (`seen`), and sees every one of them healthy too (`healthy`).
#[derive(Debug, Clone, Copy, Default)]
struct Coverage {
    seen: bool,
    healthy: bool,
}

async fn coverage(nodes: &[NodeInfo]) -> Coverage {
    let mut all = Coverage { seen: true, healthy: true };
    for n in nodes {
        let Ok(v) = crate::net::admin(n, "/peers?brief=true").await else { return Coverage::default() };
        let current: Vec<&serde_json::Value> =
            v["providers"].as_array().into_iter().flatten().filter(|p| p["expired"] == false).collect();
        let healthy = current
            .iter()
            .filter(|p| p["chains"].as_array().is_some_and(|c| c.iter().all(|c| c["health"] == "healthy")))
            .count();
        all.seen &= current.len() >= nodes.len();
        all.healthy &= healthy >= nodes.len();
        if !all.seen {
            break;
        }
    }
    all
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
    // The floor is "every node sees every provider"; healthy everywhere (probes and
    // attestations in) is reported beside it, and the idle window starts after it, or after
    // READY_TIMEOUT if a loaded machine keeps a few providers flapping.
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut seen_after_ms = None;
    let (seen_after_ms, converged_after_ms) = loop {
        let c = coverage(&nodes).await;
        let now_ms = started.elapsed().as_millis() as u64;
        if c.seen {
            seen_after_ms.get_or_insert(now_ms);
        }
        let timed_out = Instant::now() > deadline;
        match seen_after_ms {
            // Healthy everywhere implies seen everywhere, in the same poll.
            Some(seen) if c.healthy => break (seen, Some(now_ms)),
            Some(seen) if timed_out => break (seen, None),
            None if timed_out => {
                return Err(format!("the {n}-node mesh did not converge within {} s", READY_TIMEOUT.as_secs()));
            }
            _ => {}
        }
        if stop.is_cancelled() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    progress(&format!(
        "mesh of {n}: every node saw every provider after {seen_after_ms} ms, all healthy {}; settling, then the idle window",
        converged_after_ms
            .map_or(format!("not within {} s more", READY_TIMEOUT.as_secs()), |ms| format!("after {ms} ms"))
    ));

    // Idle cost: a window in which nothing polls the daemons (a poll of every node is work that
    // grows with the mesh), after the start-up burst (welcome announcements, first probes).
    let idle_before: Vec<Option<procfs::Memory>> = pids.iter().map(|p| procfs::memory(*p)).collect();
    tokio::time::sleep(IDLE_SETTLE).await;
    let bytes0 = p2p_bytes(&nodes).await;
    let (cpu0, busy0, t0) = (procfs::cpu_time_of(&pids), procfs::machine_busy(), Instant::now());
    tokio::time::sleep(IDLE_WINDOW).await;
    let (cpu1, busy1, idle_elapsed) = (procfs::cpu_time_of(&pids), procfs::machine_busy(), t0.elapsed());
    let bytes1 = p2p_bytes(&nodes).await;
    let idle_pct = cpu1.saturating_sub(cpu0).as_secs_f64() * 100.0 / idle_elapsed.as_secs_f64() / n.max(1) as f64;
    let machine_busy_pct = procfs::machine_busy_pct(busy0, busy1, idle_elapsed);
    // Counted over the daemons whose counters were read both times (a read is a poll outside
    // the window; the window itself is timed between the CPU reads).
    let (sent, received, counted) = bytes0.iter().zip(&bytes1).fold((0u64, 0u64, 0usize), |acc, pair| match pair {
        (Some(a), Some(b)) => (acc.0 + b.0.saturating_sub(a.0), acc.1 + b.1.saturating_sub(a.1), acc.2 + 1),
        _ => acc,
    });
    let per_daemon = |bytes: u64| (counted > 0).then(|| bytes as f64 / idle_elapsed.as_secs_f64() / counted as f64);
    progress(&format!(
        "mesh of {n}: idle {:.2} % of a core per daemon, machine {} busy, p2p {:.0} B/s sent per daemon; observing gossip",
        idle_pct,
        machine_busy_pct.map_or("–".into(), |v| format!("{v:.0} %")),
        per_daemon(sent).unwrap_or(0.0)
    ));

    // Gossip.
    let t0 = Instant::now();
    let deliveries = observe_gossip(&nodes, opts.gossip_window).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let idle_after: Vec<Option<procfs::Memory>> = pids.iter().map(|p| procfs::memory(*p)).collect();
    let minutes = (elapsed + (IDLE_SETTLE + idle_elapsed).as_secs_f64()) / 60.0;
    let idle = IdleMemory { before: idle_before, after: idle_after, minutes };
    let stats = gossip_stats(&deliveries, n);
    progress(&format!(
        "mesh of {n}: {} announcements ({} reached every node, {} never, {} hidden by a newer one), convergence p50 {} p99 {}",
        stats.messages,
        stats.messages_complete,
        stats.never_converged,
        stats.hidden,
        stats.convergence_p50.label(),
        stats.convergence_p99.label()
    ));
    report.gossip.push(GossipResult {
        nodes: n,
        window_ms: opts.gossip_window.as_millis() as u64,
        stats,
        idle_window_ms: idle_elapsed.as_millis() as u64,
        idle_cpu_pct_per_daemon: Some(idle_pct),
        p2p_sent_bytes_per_s_per_daemon: per_daemon(sent),
        p2p_received_bytes_per_s_per_daemon: per_daemon(received),
        seen_after_ms,
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
/// delivery per (observer, publisher, seq) of announcements issued in the window, and the newest
/// `seq` each node showed of each publisher (an announcement replaced between two polls is told
/// apart from one that never arrived by it).
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
            let mut seen = Deliveries::default();
            tokio::time::sleep(offset).await;
            while Instant::now() < end {
                if let Ok(v) = crate::net::admin(&node, "/peers?brief=true").await {
                    for p in v["providers"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
                        if p["source"] != "gossip" {
                            continue;
                        }
                        let publisher = p["peer_id"].as_str().and_then(|id| index.get(id)).copied();
                        let fields = (p["seq"].as_u64(), p["received_at_ms"].as_u64(), p["announced_at_ms"].as_u64());
                        if let (Some(publisher), (Some(seq), Some(recv), Some(issued))) = (publisher, fields) {
                            let measured = (from_ms..until_ms).contains(&issued);
                            seen.saw(node.index, publisher, seq, measured.then(|| recv.saturating_sub(issued)));
                        }
                    }
                }
                tokio::time::sleep(GOSSIP_POLL).await;
            }
            seen
        }));
    }
    let mut all = Deliveries::default();
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
    let providers_known = crate::net::admin(node0, "/peers?brief=true")
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

#[cfg(test)]
mod tests {
    use super::bandwidth_totals;

    #[test]
    fn bandwidth_is_summed_by_direction() {
        let text = "# TYPE libp2p_bandwidth_bytes counter\n\
            libp2p_bandwidth_bytes_total{protocols=\"/ip4/tcp\",direction=\"Outbound\"} 1000\n\
            libp2p_bandwidth_bytes_total{protocols=\"/ip4/udp/quic-v1\",direction=\"Outbound\"} 24\n\
            libp2p_bandwidth_bytes_total{protocols=\"/ip4/tcp\",direction=\"Inbound\"} 900\n\
            rpcmesh_other_bytes_total{direction=\"Outbound\"} 5\n";
        assert_eq!(bandwidth_totals(text), (1024, 900));
        assert_eq!(bandwidth_totals(""), (0, 0));
    }
}
