//! Running a scenario: bring up the testnet, wait until the mesh converged, then drive the
//! load, apply the timeline, record everything, and write the report. Interrupted runs
//! (Ctrl-C) still write a partial report.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::load::{LoopSpec, PeerIndex, SEND_TO_WATCHED, SENDERS, Sender, parse_address, run_loop};
use super::truth::Truth;
use super::{Event, Scenario};
use crate::net::{BackendKind, NodeInfo, Testnet, TestnetSpec};
use crate::record::{
    CordonChange, FaultAction, FaultEvent, GossipDelivery, LabelChange, Meta, NodePolicies, Phase, Record,
    RecordWriter, SentTransaction, Transport, ViewChange,
};

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Output directory (report, records, testnet homes).
    pub out: PathBuf,
    /// The `rpcmesh` binary.
    pub bin: PathBuf,
    /// anvil binary for `backend = "anvil"`.
    pub anvil: PathBuf,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// Longest wait for the mesh to converge before the measured run.
const WARMUP_TIMEOUT: Duration = Duration::from_secs(120);
/// Period of view polling.
const VIEW_POLL: Duration = Duration::from_millis(250);

/// Runs `scenario`; stops early (writing a partial report) when `stop` is cancelled. Returns the
/// path of the report.
pub async fn run_scenario(scenario: &Scenario, opts: &RunOptions, stop: CancellationToken) -> Result<PathBuf, String> {
    std::fs::create_dir_all(&opts.out).map_err(|e| format!("creating {}: {e}", opts.out.display()))?;
    let backend = match scenario.topology.backend.as_str() {
        "anvil" => BackendKind::Anvil { path: opts.anvil.clone() },
        _ => BackendKind::Sim,
    };
    let spec = TestnetSpec {
        nodes: scenario.topology.nodes,
        chains: scenario.topology.chains.clone(),
        backend: backend.clone(),
        dir: opts.out.join("testnet"),
        bin: opts.bin.clone(),
        network_id: format!("rpcmesh-scenario-{}", scenario.name),
        block_time_ms: scenario.topology.block_time_ms,
        sets: scenario.topology.sets.clone(),
        prefer_8545: false,
        direct_anvil: false,
    };
    if opts.progress {
        eprintln!("starting {} daemons for scenario {:?}...", spec.nodes, scenario.name);
    }
    let extras = scenario.topology.extras()?;
    let mut testnet = Testnet::up_with(spec, &extras).await?;
    let nodes = testnet.nodes();
    let result = measured_run(scenario, opts, &mut testnet, &nodes, &backend, stop).await;
    testnet.down().await;
    result
}

async fn converged(nodes: &[NodeInfo]) -> bool {
    for n in nodes {
        let Ok(v) = crate::net::admin(n, "/peers").await else { return false };
        let providers = v["providers"].as_array().cloned().unwrap_or_default();
        let healthy = providers
            .iter()
            .filter(|p| {
                p["expired"] == false
                    && p["chains"].as_array().is_some_and(|c| c.iter().all(|c| c["health"] == "healthy"))
            })
            .count();
        if healthy < nodes.len() {
            return false;
        }
    }
    true
}

async fn measured_run(
    scenario: &Scenario,
    opts: &RunOptions,
    testnet: &mut Testnet,
    nodes: &[NodeInfo],
    backend: &BackendKind,
    stop: CancellationToken,
) -> Result<PathBuf, String> {
    // Warm-up: every node sees every provider healthy.
    let warm_deadline = Instant::now() + WARMUP_TIMEOUT;
    while !converged(nodes).await {
        if Instant::now() > warm_deadline {
            return Err("the mesh did not converge within 120 s of start".into());
        }
        if stop.is_cancelled() {
            return Err("interrupted during warm-up".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let records_path = opts.out.join(crate::record::RECORDS_FILE);
    let mut writer = RecordWriter::create(&records_path).map_err(|e| e.to_string())?.flush_each_line(false);
    let started_unix = rpcmesh_node::clock::now_ms();
    let meta = Meta {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        nodes: nodes.len(),
        chains: scenario.topology.chains.clone(),
        backend: scenario.topology.backend.clone(),
        started_at_unix_ms: started_unix,
        duration_ms: scenario.duration.as_millis() as u64,
        node_peer_ids: nodes.iter().map(|n| n.peer_id.clone()).collect(),
        interrupted: false,
        node_policies: scenario
            .topology
            .extras()?
            .into_iter()
            .filter(|(_, e)| !e.policies.is_empty())
            .map(|(node, e)| NodePolicies { node, policies: e.policies })
            .collect(),
    };
    writer.write(&Record::Meta(meta.clone())).map_err(|e| e.to_string())?;

    let chain = scenario.topology.chains[0];
    let truth = match backend {
        BackendKind::Sim => Truth::Sim(testnet.sim_chains[&chain]),
        BackendKind::Anvil { .. } => Truth::Direct(Box::new(super::truth::Direct {
            url: testnet.anvil_url(chain).ok_or("no anvil for the first chain")?.parse().map_err(|e| format!("{e}"))?,
            client: rpcmesh_node::upstream::HttpClient::new(16 << 20),
            chain_id: chain,
        })),
    };
    let watched = scenario.load.watched.as_deref().and_then(parse_address);
    let reads_at = scenario.load.reads_at()?;
    if let (BackendKind::Anvil { .. }, Some(w)) = (backend, &watched) {
        give_a_nonce(&truth, w).await?;
    }
    if let BackendKind::Anvil { .. } = backend {
        // anvil's genesis header carries the empty state root whatever its funded accounts: no
        // state proof verifies at block 0. Load starts once the chain is past it, as any real
        // chain is.
        crate::daemon::wait_for(GENESIS_WAIT, "the chain to mine its first block", || async {
            truth.head().await.is_some_and(|h| h >= 1)
        })
        .await?;
    }
    writer.write(&Record::Phase(Phase { t_ms: 0, name: "baseline".into() })).map_err(|e| e.to_string())?;
    let start = Instant::now();
    // The wall clock at `start`: the daemons' times (gossip receipt, cordon start) are Unix ms
    // and become run times against this. `started_unix` is earlier by the set-up above (up to
    // the wait for anvil's first block), so it would skew them.
    let start_unix = rpcmesh_node::clock::now_ms();
    let peers: PeerIndex = Arc::new(nodes.iter().map(|n| (n.peer_id.clone(), n.index)).collect());
    let (tx, mut rx) = mpsc::channel::<Record>(8192);
    let load_stop = CancellationToken::new();
    let mut loops = Vec::new();
    let mut seed = 1u64;
    // One sender per loop that sends, round robin over anvil's dev accounts (the watched one
    // excluded); loops beyond their number share them, taking turns.
    let sends = scenario.load.methods.iter().any(|m| m.method == SEND_TO_WATCHED);
    let senders: Vec<Sender> = SENDERS
        .iter()
        .filter(|a| watched.as_deref() != Some(**a))
        .map(|a| Sender { address: a.to_string(), turn: Arc::default() })
        .collect();
    let mut next_sender = 0usize;
    for &g in &scenario.load.gateways {
        let addr = nodes[g].http.trim_start_matches("http://").trim_end_matches('/').to_string();
        for i in 0..scenario.load.concurrency.max(1) {
            let transport = match scenario.load.transport.as_str() {
                "ws" => Transport::Ws,
                "both" if i % 2 == 1 => Transport::Ws,
                _ => Transport::Http,
            };
            seed += 1;
            let spec = LoopSpec {
                gateway: g,
                addr: addr.clone(),
                transport,
                rate: scenario.load.rate,
                methods: scenario.load.methods.clone(),
                timeout: Duration::from_millis(scenario.load.timeout_ms),
                seed,
                verify: scenario.load.verify.clone(),
                watched: watched.clone(),
                reads_at,
                sender: (sends && !senders.is_empty()).then(|| {
                    next_sender += 1;
                    senders[(next_sender - 1) % senders.len()].clone()
                }),
            };
            loops.push(tokio::spawn(run_loop(
                spec,
                truth.clone(),
                peers.clone(),
                start,
                tx.clone(),
                load_stop.clone(),
            )));
        }
    }
    let observer = tokio::spawn(observe(
        nodes.to_vec(),
        scenario.topology.chains.clone(),
        start,
        start_unix,
        tx.clone(),
        load_stop.clone(),
    ));
    // Sent transactions are held back until the end of the run, when whether they were mined
    // is known.
    let mut sent: Vec<SentTransaction> = Vec::new();

    let mut timeline: Vec<Event> = scenario.timeline.clone();
    timeline.sort_by_key(|e| e.at);
    let mut next_event = 0usize;
    let mut interrupted = false;
    let mut progress_tick = tokio::time::interval(Duration::from_millis(500));
    let end = start + scenario.duration;
    let (mut total, mut ok, mut wrong) = (0u64, 0u64, 0u64);
    loop {
        let next_at = timeline.get(next_event).map(|e| start + e.at).unwrap_or(end).min(end);
        tokio::select! {
            _ = stop.cancelled() => { interrupted = true; break; }
            Some(rec) = rx.recv() => {
                if let Record::Transaction(t) = rec {
                    sent.push(t);
                    continue;
                }
                if let Record::Request(r) = &rec {
                    total += 1;
                    match r.outcome {
                        crate::record::Outcome::Ok => ok += 1,
                        crate::record::Outcome::Wrong => wrong += 1,
                        _ => {}
                    }
                }
                writer.write(&rec).map_err(|e| e.to_string())?;
            }
            _ = tokio::time::sleep_until(next_at.into()) => {
                if Instant::now() >= end {
                    break;
                }
                if let Some(e) = timeline.get(next_event) {
                    for rec in apply(testnet, e, start).await {
                        writer.write(&rec).map_err(|e| e.to_string())?;
                    }
                    next_event += 1;
                }
            }
            _ = progress_tick.tick(), if opts.progress => {
                let elapsed = start.elapsed().min(scenario.duration);
                let frac = elapsed.as_secs_f64() / scenario.duration.as_secs_f64().max(0.001);
                let bar: String = (0..30).map(|i| if (i as f64) < frac * 30.0 { '#' } else { '.' }).collect();
                let avail = if total == 0 { 100.0 } else { ok as f64 * 100.0 / total as f64 };
                eprint!(
                    "\r\x1b[2K[{bar}] {:>5.1}s/{:.0}s ETA {:>5.1}s | {total} requests, {avail:.2}% ok, {wrong} wrong",
                    elapsed.as_secs_f64(),
                    scenario.duration.as_secs_f64(),
                    (scenario.duration - elapsed).as_secs_f64()
                );
                let _ = std::io::stderr().flush();
            }
        }
    }
    load_stop.cancel();
    for l in loops {
        let _ = l.await;
    }
    let _ = observer.await;
    drop(tx);
    while let Some(rec) = rx.recv().await {
        match rec {
            Record::Transaction(t) => sent.push(t),
            rec => writer.write(&rec).map_err(|e| e.to_string())?,
        }
    }
    if !sent.is_empty() {
        if opts.progress {
            eprintln!("\nwaiting for the chain to mine the {} transactions sent...", sent.len());
        }
        let wait =
            Duration::from_millis(scenario.topology.block_time_ms.saturating_mul(MINING_BLOCKS)).max(MINING_WAIT);
        settle(&truth, &mut sent, wait).await;
        for t in sent {
            writer.write(&Record::Transaction(t)).map_err(|e| e.to_string())?;
        }
    }
    // Heal what the timeline left broken, so the teardown is clean.
    for (k, _) in testnet.faults().clone() {
        let _ = testnet.fault(k, "heal").await;
    }
    let _ = testnet.heal_partition().await;
    let mut final_meta = meta;
    final_meta.started_at_unix_ms = start_unix;
    final_meta.duration_ms = start.elapsed().as_millis() as u64;
    final_meta.interrupted = interrupted;
    writer.write(&Record::Meta(final_meta)).map_err(|e| e.to_string())?;
    writer.flush().map_err(|e| e.to_string())?;
    drop(writer);
    if opts.progress {
        eprintln!();
    }
    crate::report::write_report_from_dir(&opts.out).map_err(|e| format!("writing the report: {e}"))?;
    Ok(opts.out.join("report.md"))
}

/// Applies one timeline event; returns the records to write.
async fn apply(testnet: &mut Testnet, e: &Event, start: Instant) -> Vec<Record> {
    let t_ms = start.elapsed().as_millis() as u64;
    let mut out = Vec::new();
    if let Some(name) = &e.phase {
        out.push(Record::Phase(Phase { t_ms, name: name.clone() }));
    }
    let mut fault = |node: Option<usize>, kind: String, action: FaultAction| {
        out.push(Record::Fault(FaultEvent { t_ms, node, kind, action }));
    };
    if let (Some(f), Some(k)) = (&e.fault, e.node) {
        let previous = testnet.faults().get(&k).cloned();
        match testnet.fault(k, f).await {
            Ok(()) if f == "heal" => fault(Some(k), previous.unwrap_or_else(|| "heal".into()), FaultAction::Heal),
            Ok(()) => fault(Some(k), f.clone(), FaultAction::Inject),
            Err(err) => tracing::warn!(node = k, fault = %f, error = %err, "fault not applied"),
        }
    } else if let Some(groups) = &e.partition {
        match crate::net::parse_groups(groups) {
            Ok(g) => match testnet.partition(&g).await {
                Ok(()) => fault(None, format!("partition {groups}"), FaultAction::Inject),
                Err(err) => tracing::warn!(error = %err, "partition not applied"),
            },
            Err(err) => tracing::warn!(error = %err, "bad partition"),
        }
    } else if e.heal_partition {
        if testnet.heal_partition().await.is_ok() {
            fault(None, "partition".into(), FaultAction::Heal);
        }
    } else if let Some(k) = e.restart {
        fault(Some(k), "restart".into(), FaultAction::Inject);
        if let Err(err) = testnet.restart(k).await {
            tracing::warn!(node = k, error = %err, "restart failed");
        }
        let t_ms = start.elapsed().as_millis() as u64;
        out.push(Record::Fault(FaultEvent { t_ms, node: Some(k), kind: "restart".into(), action: FaultAction::Heal }));
    }
    out
}

/// Sends one transaction from the watched account to itself, straight to anvil, and waits
/// until it is mined: a watched account with nonce 0 and no code reads the same whether a node
/// filters it or not, so only its balance would tell. Accounts anvil cannot sign for are left
/// as they are.
async fn give_a_nonce(truth: &Truth, watched: &str) -> Result<(), String> {
    let accounts = truth.ask("eth_accounts", serde_json::json!([])).await?;
    let unlocked = accounts
        .as_array()
        .is_some_and(|a| a.iter().filter_map(Value::as_str).any(|a| a.eq_ignore_ascii_case(watched)));
    let nonce = truth.ask("eth_getTransactionCount", serde_json::json!([watched, "latest"])).await?;
    if !unlocked || nonce.as_str().is_some_and(|n| n != "0x0") {
        return Ok(());
    }
    let call = serde_json::json!([{ "from": watched, "to": watched, "value": "0x0" }]);
    let hash = truth.ask("eth_sendTransaction", call).await?;
    crate::daemon::wait_for(GENESIS_WAIT, "the watched account's first transaction to be mined", || async {
        truth.ask("eth_getTransactionReceipt", serde_json::json!([hash])).await.is_ok_and(|r| !r.is_null())
    })
    .await
}

/// Fills in where the chain mined each sent transaction: receipts asked from the chain's node
/// directly, until every transaction has one or `wait` passed (then the rest count as not
/// mined).
async fn settle(truth: &Truth, sent: &mut [SentTransaction], wait: Duration) {
    let block_of = |receipt: &Value| {
        receipt["blockNumber"].as_str().and_then(|n| u64::from_str_radix(n.trim_start_matches("0x"), 16).ok())
    };
    let pending = std::sync::Mutex::new(sent);
    let _ = crate::daemon::wait_for(wait, "the sent transactions to be mined", || async {
        let hashes: Vec<(usize, String)> = {
            let sent = pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            sent.iter().enumerate().filter(|(_, t)| t.mined_block.is_none()).map(|(i, t)| (i, t.hash.clone())).collect()
        };
        for (i, hash) in hashes {
            let Ok(receipt) = truth.ask("eth_getTransactionReceipt", serde_json::json!([hash])).await else {
                return false;
            };
            let Some(block) = block_of(&receipt) else { return false };
            pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)[i].mined_block = Some(block);
        }
        true
    })
    .await;
}

/// The `filters` labels a `/peers` entry shows on `chain`: whether there is one, and what it
/// names. Labels past their `until_ms` (when the entry says so) do not count.
fn filters_label(provider: &Value, chain: u64, now_ms: Option<u64>) -> Option<Vec<String>> {
    let labels: Vec<&Value> = provider["filters"]
        .as_array()?
        .iter()
        .filter(|f| f["chain_id"].as_u64() == Some(chain))
        .filter(|f| match (f["until_ms"].as_u64(), now_ms) {
            (Some(until), Some(now)) => until > now,
            _ => true,
        })
        .collect();
    if labels.is_empty() {
        return None;
    }
    let mut subjects: Vec<String> = labels
        .iter()
        .flat_map(|f| f["subjects"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    subjects.sort();
    subjects.dedup();
    Some(subjects)
}

/// A cordon as a `/peers` entry shows it on one chain (the fields the records keep).
#[derive(Clone, Debug, PartialEq)]
struct CordonSeen {
    kind: String,
    since_ms: Option<u64>,
    reporter: Option<String>,
    evidence_id: Option<u64>,
    reason: String,
}

impl CordonSeen {
    /// Whether `other` is the same cordon: the kind and start identify it; a later bundle that
    /// only extends it (new evidence id, later end) is not a change worth a record.
    fn same(&self, other: &CordonSeen) -> bool {
        self.kind == other.kind && self.since_ms == other.since_ms
    }
}

/// The cordon a `/peers` entry shows on `chain`, if any. Cordons past their `until_ms` (when the
/// entry says so) do not count, as for labels.
fn cordon_of(provider: &Value, chain: u64, now_ms: Option<u64>) -> Option<CordonSeen> {
    let c = provider["cordons"].as_array()?.iter().find(|c| {
        c["chain_id"].as_u64() == Some(chain)
            && match (c["until_ms"].as_u64(), now_ms) {
                (Some(until), Some(now)) => until > now,
                _ => true,
            }
    })?;
    Some(CordonSeen {
        kind: c["kind"].as_str().unwrap_or("?").to_string(),
        since_ms: c["since_ms"].as_u64(),
        reporter: c["reporter"].as_str().map(str::to_string),
        evidence_id: c["evidence_id"].as_u64(),
        reason: c["reason"].as_str().unwrap_or("").to_string(),
    })
}

/// Polls every node's view: records health changes, gossip deliveries, `filters` labels and
/// cordons.
async fn observe(
    nodes: Vec<NodeInfo>,
    chains: Vec<u64>,
    start: Instant,
    started_unix: u64,
    out: mpsc::Sender<Record>,
    stop: CancellationToken,
) {
    let index: HashMap<String, usize> = nodes.iter().map(|n| (n.peer_id.clone(), n.index)).collect();
    let mut health: HashMap<(usize, usize), String> = HashMap::new();
    let mut seen: HashSet<(usize, usize, u64)> = HashSet::new();
    // (observer, subject, chain) → the label's subjects, while labelled.
    let mut labels: HashMap<(usize, usize, u64), Vec<String>> = HashMap::new();
    // (observer, subject, chain) → the cordon, while cordoned. Like `labels`, bounded by
    // nodes² × chains whatever the length of the run.
    let mut cordons: HashMap<(usize, usize, u64), CordonSeen> = HashMap::new();
    let mut tick = tokio::time::interval(VIEW_POLL);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        for n in &nodes {
            let Ok(v) = crate::net::admin(n, "/peers").await else { continue };
            let providers: Vec<Value> = v["providers"].as_array().cloned().unwrap_or_default();
            let t_ms = start.elapsed().as_millis() as u64;
            let now_ms = v["generated_at_ms"].as_u64();
            // Labels of every provider, the observer's own node included: a daemon verifies
            // its own node's answers too.
            for p in &providers {
                let Some(&subject) = index.get(p["peer_id"].as_str().unwrap_or("")) else { continue };
                for &chain in &chains {
                    let key = (n.index, subject, chain);
                    let now = filters_label(p, chain, now_ms);
                    if labels.get(&key) == now.as_ref() {
                        continue;
                    }
                    let record = LabelChange {
                        t_ms,
                        observer: n.index,
                        subject,
                        chain_id: chain,
                        labelled: now.is_some(),
                        subjects: now.clone().unwrap_or_default(),
                    };
                    match now {
                        Some(s) => labels.insert(key, s),
                        None => labels.remove(&key),
                    };
                    let _ = out.send(Record::Label(record)).await;
                }
                // Cordons likewise, the observer's own node included: evidence against it
                // from others reaches it too.
                for &chain in &chains {
                    let key = (n.index, subject, chain);
                    let now = cordon_of(p, chain, now_ms);
                    let unchanged = match (cordons.get(&key), &now) {
                        (Some(before), Some(now)) => before.same(now),
                        (None, None) => true,
                        _ => false,
                    };
                    if unchanged {
                        continue;
                    }
                    let record = match &now {
                        Some(c) => CordonChange {
                            t_ms,
                            observer: n.index,
                            subject,
                            chain_id: chain,
                            cordoned: true,
                            kind: c.kind.clone(),
                            reporter: c.reporter.as_deref().and_then(|r| index.get(r).copied()),
                            evidence_id: c.evidence_id,
                            began_t_ms: c.since_ms.and_then(|since| since.checked_sub(started_unix)),
                            reason: c.reason.clone(),
                        },
                        None => CordonChange {
                            t_ms,
                            observer: n.index,
                            subject,
                            chain_id: chain,
                            cordoned: false,
                            kind: String::new(),
                            reporter: None,
                            evidence_id: None,
                            began_t_ms: None,
                            reason: String::new(),
                        },
                    };
                    match now {
                        Some(c) => cordons.insert(key, c),
                        None => cordons.remove(&key),
                    };
                    let _ = out.send(Record::Cordon(record)).await;
                }
            }
            for subject in 0..nodes.len() {
                if subject == n.index {
                    continue;
                }
                let entry = providers.iter().find(|p| index.get(p["peer_id"].as_str().unwrap_or("")) == Some(&subject));
                let h = match entry {
                    None => "missing".to_string(),
                    Some(p) if p["expired"] == true => "expired".into(),
                    Some(p) => p["chains"][0]["health"].as_str().unwrap_or("missing").to_string(),
                };
                if health.get(&(n.index, subject)) != Some(&h) {
                    health.insert((n.index, subject), h.clone());
                    let _ = out.send(Record::View(ViewChange { t_ms, observer: n.index, subject, health: h })).await;
                }
                if let Some(p) = entry
                    && p["source"] == "gossip"
                    && let (Some(seq), Some(recv), Some(issued)) =
                        (p["seq"].as_u64(), p["received_at_ms"].as_u64(), p["announced_at_ms"].as_u64())
                    && recv >= started_unix
                    && seen.insert((n.index, subject, seq))
                {
                    let _ = out
                        .send(Record::Gossip(GossipDelivery {
                            t_ms: recv.saturating_sub(started_unix),
                            publisher: subject,
                            seq,
                            observer: n.index,
                            delay_ms: recv.saturating_sub(issued),
                        }))
                        .await;
                }
            }
        }
    }
}

/// Loads a scenario file.
pub fn load(path: &Path) -> Result<Scenario, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Scenario::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Longest wait for an anvil chain to mine its first block.
const GENESIS_WAIT: Duration = Duration::from_secs(30);
/// After the load stopped, transactions not mined within this many block times count as not
/// mined (a transaction in the pool is mined in the next block on anvil) ...
const MINING_BLOCKS: u64 = 5;
/// ... or within this long, whichever is longer.
const MINING_WAIT: Duration = Duration::from_secs(5);
