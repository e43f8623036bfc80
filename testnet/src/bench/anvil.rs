//! Section 1 on a real anvil (`rpcmesh testnet bench --backend anvil`): what verified answers
//! cost, per integrity mode, side by side in one run.
//!
//! One anvil (interval mining) is seeded first, directly: a contract whose every call emits a
//! log, then [`SEED_BLOCKS`] blocks of [`SEED_TXS_PER_BLOCK`] calls. [`PROVIDERS`] daemons
//! (B0, B1, …) reach that anvil directly (no fault proxy); a daemon A with no node reaches them
//! over the libp2p relay. Workloads are the answers the integrity layer checks differently:
//! `eth_blockNumber` (quorum head), `eth_getBalance(latest)` (pinned, account proof),
//! `eth_getBlockByNumber(n,false)` (header hash and link to the trusted chain),
//! `eth_getTransactionReceipt` (block receipts vs `receiptsRoot`), `eth_getLogs` over the seeded
//! range (every block's receipts), a mix of the five, and `eth_getBlockByNumber(n,true)` of one
//! block of [`FULL_BLOCK_TXS`] calls (the answer a response cache is for). Every request carries its own JSON-RPC
//! id ([`super::load::Target::fresh_ids`]) so that `sample` mode samples as it does for real
//! clients.
//!
//! Paths, measured in interleaved rounds per workload and concurrency: (a) client → anvil;
//! (n) client → nginx (keep-alive reverse proxy, its own process group) → anvil, when `nginx`
//! is installed; (b) client → B0 → its anvil (`x-rpcmesh-failover: off`) and (c) client → A →
//! relay → B → anvil, each in modes `off`, `sample` and `strict` (header `x-rpcmesh-verify`).
//! Material for checks (headers, proofs, receipts) comes from the other providers, so the daemon
//! CPU of (b) and (c) counts every daemon. Each daemon cell also records the change of the path's
//! gateway's `rpcmesh_integrity_checks_total` over its rounds (warm-up included); every daemon's
//! integrity counters are scraped once more after the run.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::load::Target;
use super::{
    BenchOptions, BenchReport, CELL_TIMEOUT, CHAIN, CellSpec, READY_TIMEOUT, Round, Workload, cell_line, finish_cell,
    gateway_addr, progress, run_round, start_relay_only, wait_serving,
};
use crate::daemon::free_port;
use crate::net::{BackendKind, Testnet, TestnetSpec};

/// Providers over the one anvil: with 3, a quorum of 2 still holds with one of them lying
/// (`integrity::anchor::quorum_of`), as a strict client needs.
pub const PROVIDERS: usize = 3;
/// Block time of the anvil, ms (anvil's interval mining takes whole seconds).
const ANVIL_BLOCK_TIME_MS: u64 = 1000;
/// Blocks mined while seeding, each with [`SEED_TXS_PER_BLOCK`] log-emitting calls.
pub const SEED_BLOCKS: usize = 8;
/// Calls per seeded block.
pub const SEED_TXS_PER_BLOCK: usize = 5;
/// Transactions of the one full block seeded for `eth_getBlockByNumber(n, true)`: about what an
/// Ethereum mainnet block holds (150 to 250 in 2025-2026), so that a cache's gain is measured
/// on the answer dapps and indexers ask for again and again, not only on a nearly empty block.
pub const FULL_BLOCK_TXS: usize = 200;
/// Timeout of one seeding RPC call.
const SEED_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest seeding answer read, bytes.
const SEED_MAX_BODY_BYTES: usize = 4 << 20;
/// The strict path must serve within this long after the mesh is up (trusted head by quorum).
const STRICT_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long nginx gets to listen.
const NGINX_START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long nginx gets to exit after SIGTERM before its group is killed.
const NGINX_STOP_GRACE: Duration = Duration::from_secs(3);
/// nginx's idle keep-alive connections to anvil per worker.
const NGINX_UPSTREAM_KEEPALIVE: usize = 64;

/// Init code of the seeded contract: returns the runtime `CALLDATACOPY(0, 0, CALLDATASIZE);
/// LOG1(0, CALLDATASIZE, CALLER); STOP` (12 bytes).
const LOGGER_INIT_CODE: &str = "0x600c600c600039600c6000f336600060003733366000a100";

/// Integrity modes measured on the daemon paths, in this order.
pub const MODES: [&str; 3] = ["off", "sample", "strict"];

/// What the seeding put on the chain, and what the workloads ask for.
#[derive(Clone, Debug, Serialize)]
pub struct Seeded {
    /// Address of the log-emitting contract.
    pub contract: String,
    /// Calls sent to it.
    pub transactions: usize,
    /// Account of `eth_getBalance(latest)` (the sender of every seeded transaction).
    pub balance_of: String,
    /// Block of `eth_getBlockByNumber(n, false)` (the last seeded block with transactions).
    pub block: u64,
    /// Transaction of `eth_getTransactionReceipt`.
    pub receipt_of: String,
    /// `eth_getLogs` range (inclusive), filtered by the contract's address.
    pub logs_range: (u64, u64),
    /// Logs in that answer.
    pub logs: usize,
    /// Block of `eth_getBlockByNumber(n, true)`: [`FULL_BLOCK_TXS`] calls in one block.
    pub full_block: u64,
    /// Transactions in it, as anvil answers.
    pub full_block_txs: usize,
    /// Size of that answer (full transaction objects), bytes.
    pub full_block_bytes: usize,
}

/// The integrity counters of one daemon after the run.
#[derive(Clone, Debug, Serialize)]
pub struct DaemonCounters {
    /// `A`, `B0`, `B1`, …
    pub daemon: String,
    /// `method/outcome` of `rpcmesh_integrity_checks_total`, and `ranges_too_wide`.
    pub counters: BTreeMap<String, u64>,
}

/// The anvil run beside the cells.
#[derive(Clone, Debug, Serialize)]
pub struct AnvilRun {
    /// `anvil --version`, first line.
    pub anvil: String,
    /// Providers (daemons with the anvil as their node).
    pub providers: usize,
    /// What was seeded.
    pub seeded: Option<Seeded>,
    /// nginx as measured (`nginx -v`, settings), or why there is no (n) path.
    pub nginx: String,
    /// Every daemon's integrity counters after the run.
    pub counters: Vec<DaemonCounters>,
}

/// The `rpcmesh_integrity_*` counters in a Prometheus text: `method/outcome` for
/// `rpcmesh_integrity_checks_total`, `ranges_too_wide` for the other. Malformed lines are skipped.
pub fn integrity_counters(text: &str) -> BTreeMap<String, u64> {
    let label = |line: &str, key: &str| -> Option<String> {
        let from = line.find(&format!("{key}=\""))? + key.len() + 2;
        let len = line.get(from..)?.find('"')?;
        line.get(from..from + len).map(str::to_string)
    };
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("rpcmesh_integrity_")) {
        let Some(value) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else { continue };
        let key = if line.starts_with("rpcmesh_integrity_checks_total{") {
            match (label(line, "method"), label(line, "outcome")) {
                (Some(m), Some(o)) => format!("{m}/{o}"),
                _ => continue,
            }
        } else if line.starts_with("rpcmesh_integrity_ranges_too_wide") {
            "ranges_too_wide".to_string()
        } else {
            continue;
        };
        *out.entry(key).or_insert(0) += value.max(0.0) as u64;
    }
    out
}

/// `after - before`, counters that did not change left out.
fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v.saturating_sub(before.get(k).copied().unwrap_or(0));
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

async fn scrape(admin_url: &str) -> BTreeMap<String, u64> {
    match rpcmesh_node::admin::client::get_ok(&format!("{admin_url}/metrics"), Duration::from_secs(5)).await {
        Ok(body) => integrity_counters(&String::from_utf8_lossy(&body)),
        Err(_) => BTreeMap::new(),
    }
}

// ------------------------------------------------------------------------------------------------
// Seeding

struct Rpc {
    client: rpcmesh_node::upstream::HttpClient,
    uri: hyper::Uri,
}

impl Rpc {
    fn new(url: &str) -> Result<Rpc, String> {
        Ok(Rpc {
            client: rpcmesh_node::upstream::HttpClient::new(SEED_MAX_BODY_BYTES),
            uri: url.parse().map_err(|e| format!("anvil URL {url}: {e}"))?,
        })
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, String> {
        rpcmesh_node::upstream::rpc_call(&self.client, &self.uri, method, params, SEED_CALL_TIMEOUT)
            .await
            .map_err(|e| format!("{method} on anvil: {e}"))
    }

    async fn str(&self, method: &str, params: Value) -> Result<String, String> {
        let v = self.call(method, params).await?;
        v.as_str().map(str::to_string).ok_or_else(|| format!("{method}: not a string: {v}"))
    }

    /// The receipt of `tx`, mining a block first if it is still pending.
    async fn receipt(&self, tx: &str) -> Result<Value, String> {
        for _ in 0..2 {
            let r = self.call("eth_getTransactionReceipt", json!([tx])).await?;
            if !r.is_null() {
                return Ok(r);
            }
            self.call("evm_mine", json!([])).await?;
        }
        Err(format!("no receipt for {tx} after mining"))
    }
}

fn quantity(v: &Value, what: &str) -> Result<u64, String> {
    v.as_str()
        .and_then(|h| h.strip_prefix("0x"))
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .ok_or_else(|| format!("{what}: not a quantity: {v}"))
}

/// Deploys the logging contract and mines [`SEED_BLOCKS`] blocks of calls to it, directly on
/// anvil (dev accounts are unlocked: `eth_sendTransaction`).
async fn seed(url: &str) -> Result<Seeded, String> {
    let rpc = Rpc::new(url)?;
    let accounts = rpc.call("eth_accounts", json!([])).await?;
    let from = accounts.get(0).and_then(Value::as_str).ok_or("anvil has no dev account")?.to_string();
    let deploy = rpc.str("eth_sendTransaction", json!([{ "from": from, "data": LOGGER_INIT_CODE }])).await?;
    rpc.call("evm_mine", json!([])).await?;
    let contract = rpc
        .receipt(&deploy)
        .await?
        .get("contractAddress")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or("the seed contract was not created")?;
    let mut txs = Vec::with_capacity(SEED_BLOCKS * SEED_TXS_PER_BLOCK);
    for b in 0..SEED_BLOCKS {
        for i in 0..SEED_TXS_PER_BLOCK {
            let data = format!("0x{:064x}{:064x}", b, i);
            let tx = rpc.str("eth_sendTransaction", json!([{ "from": from, "to": contract, "data": data }])).await?;
            txs.push(tx);
        }
        rpc.call("evm_mine", json!([])).await?;
    }
    let (mut first, mut last, mut last_tx) = (u64::MAX, 0u64, String::new());
    for tx in &txs {
        let r = rpc.receipt(tx).await?;
        if r.get("status").and_then(Value::as_str) != Some("0x1") {
            return Err(format!("seed transaction {tx} failed: {r}"));
        }
        let n = quantity(&r["blockNumber"], "receipt blockNumber")?;
        first = first.min(n);
        if n >= last {
            last = n;
            last_tx = tx.clone();
        }
    }
    let filter = json!([{ "fromBlock": format!("{first:#x}"), "toBlock": format!("{last:#x}"), "address": contract }]);
    let logs = rpc.call("eth_getLogs", filter).await?.as_array().map_or(0, Vec::len);
    let (full_block, full_block_txs, full_block_bytes) = seed_full_block(&rpc, &from, &contract).await?;
    Ok(Seeded {
        contract,
        transactions: txs.len(),
        balance_of: from,
        block: last,
        receipt_of: last_tx,
        logs_range: (first, last),
        logs,
        full_block,
        full_block_txs,
        full_block_bytes,
    })
}

/// Mines one block of [`FULL_BLOCK_TXS`] calls to the contract: interval mining is paused while
/// they are sent (else the pool would be cut into several blocks) and resumed after. Returns the
/// block, its transaction count and the size of its full answer.
async fn seed_full_block(rpc: &Rpc, from: &str, contract: &str) -> Result<(u64, usize, usize), String> {
    rpc.call("evm_setIntervalMining", json!([0])).await?;
    let mut last = String::new();
    let sent = async {
        for i in 0..FULL_BLOCK_TXS {
            let data = format!("0x{:064x}", 0xf0_0000 + i);
            last = rpc.str("eth_sendTransaction", json!([{ "from": from, "to": contract, "data": data }])).await?;
        }
        rpc.call("evm_mine", json!([])).await.map(drop)
    }
    .await;
    rpc.call("evm_setIntervalMining", json!([ANVIL_BLOCK_TIME_MS / 1000])).await?;
    sent?;
    let block = quantity(&rpc.receipt(&last).await?["blockNumber"], "receipt blockNumber")?;
    let answer = rpc.call("eth_getBlockByNumber", json!([format!("{block:#x}"), true])).await?;
    let txs = answer.get("transactions").and_then(Value::as_array).map_or(0, Vec::len);
    Ok((block, txs, answer.to_string().len()))
}

/// The workloads over what was seeded: five small answers, their mix, and one full block.
fn workloads(s: &Seeded) -> Vec<Workload> {
    let body = |method: &str, params: String| {
        Bytes::from(format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#))
    };
    let (from, to) = s.logs_range;
    let one: Vec<Workload> = vec![
        Workload { name: "eth_blockNumber", body: super::block_number_body() },
        Workload {
            name: "eth_getBalance latest",
            body: body("eth_getBalance", format!(r#"["{}","latest"]"#, s.balance_of)),
        },
        Workload {
            name: "eth_getBlockByNumber n,false",
            body: body("eth_getBlockByNumber", format!(r#"["{:#x}",false]"#, s.block)),
        },
        Workload {
            name: "eth_getTransactionReceipt",
            body: body("eth_getTransactionReceipt", format!(r#"["{}"]"#, s.receipt_of)),
        },
        Workload {
            name: "eth_getLogs seeded range",
            body: body(
                "eth_getLogs",
                format!(r#"[{{"fromBlock":"{from:#x}","toBlock":"{to:#x}","address":"{}"}}]"#, s.contract),
            ),
        },
    ];
    let mix = Workload { name: MIX, body: Bytes::new() };
    let full =
        Workload { name: FULL_BLOCK, body: body("eth_getBlockByNumber", format!(r#"["{:#x}",true]"#, s.full_block)) };
    one.into_iter().chain([mix, full]).collect()
}

/// Name of the full-block workload (kept out of the mix, which stays the five small answers).
pub const FULL_BLOCK: &str = "eth_getBlockByNumber full block,true";

/// Name of the mixed workload: each worker sends the five others in turn.
pub const MIX: &str = "mix of the five";

// ------------------------------------------------------------------------------------------------
// nginx

/// An nginx keep-alive reverse proxy in front of one address, in its own process group.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    version: String,
}

/// `nginx` on `PATH`, else in `/usr/sbin` (Debian's place, not on every user's `PATH`).
fn nginx_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
}

impl Nginx {
    fn start(dir: &Path, to: SocketAddr) -> Result<Nginx, String> {
        let bin = nginx_binary()
            .ok_or("nginx is not installed (not on PATH nor in /usr/sbin); scripts/bench-anvil.sh installs it")?;
        let version = Command::new(&bin)
            .arg("-v")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stderr).trim().trim_start_matches("nginx version: ").to_string())
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        std::fs::create_dir_all(dir.join("tmp")).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let port = free_port().map_err(|e| e.to_string())?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process on;\nworker_processes auto;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n  \
             fastcgi_temp_path {d}/tmp/fastcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n  \
             keepalive_requests 1000000;\n  \
             upstream node {{ server {to}; keepalive {NGINX_UPSTREAM_KEEPALIVE}; keepalive_requests 1000000; }}\n  \
             server {{\n    listen {addr};\n    location / {{\n      proxy_pass http://node;\n      \
             proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n    }}\n  }}\n}}\n"
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).map_err(|e| format!("writing {}: {e}", conf_path.display()))?;
        let mut cmd = Command::new(&bin);
        cmd.arg("-p").arg(dir).arg("-c").arg(&conf_path);
        let child = crate::net::spawn_in_group(&mut cmd).map_err(|e| format!("starting {}: {e}", bin.display()))?;
        let mut nginx = Nginx { child, addr, version };
        // Listening means the workers are forked (their PIDs are then in the group).
        let deadline = Instant::now() + NGINX_START_TIMEOUT;
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            if Instant::now() > deadline || matches!(nginx.child.try_wait(), Ok(Some(_))) {
                let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                return Err(format!("nginx did not listen on {addr}: {}", log.trim()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(nginx)
    }

    fn describe(&self) -> String {
        format!(
            "{} on {}: worker_processes auto, keep-alive to anvil ({NGINX_UPSTREAM_KEEPALIVE} idle connections \
             per worker), access log off",
            self.version, self.addr
        )
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let group = -(self.child.id() as i32);
        // SAFETY: signals the process group this bench created for nginx (master and workers).
        unsafe {
            libc::kill(group, libc::SIGTERM);
        }
        let deadline = Instant::now() + NGINX_STOP_GRACE;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above; workers left behind go with the group.
        unsafe {
            libc::kill(group, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------------------------------------
// The section

/// `anvil --version`, first line.
fn anvil_version(path: &Path) -> String {
    Command::new(path)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_string))
        .unwrap_or_else(|| format!("{} (version unknown)", path.display()))
}

/// Section 1 on anvil: see the module docs.
pub(super) async fn section(
    opts: &BenchOptions,
    anvil: &Path,
    report: &mut BenchReport,
    stop: &CancellationToken,
) -> Result<(), String> {
    let spec = TestnetSpec {
        nodes: PROVIDERS,
        chains: vec![CHAIN],
        backend: BackendKind::Anvil { path: anvil.to_path_buf() },
        dir: opts.out.join("testnet-anvil"),
        bin: opts.bin.clone(),
        network_id: "rpcmesh-bench-anvil".into(),
        block_time_ms: ANVIL_BLOCK_TIME_MS,
        sets: std::iter::once("routing.hedge=false".to_string()).chain(opts.daemon_sets.iter().cloned()).collect(),
        prefer_8545: false,
        direct_anvil: true,
    };
    report.anvil = Some(AnvilRun {
        anvil: anvil_version(anvil),
        providers: PROVIDERS,
        seeded: None,
        nginx: String::new(),
        counters: Vec::new(),
    });
    progress(&format!("latency on anvil: starting anvil, {PROVIDERS} providers over it and a daemon A with no node"));
    let testnet = Testnet::up(spec).await?;
    let result = measure(opts, &testnet, report, stop).await;
    testnet.down().await;
    result
}

/// One path of the section.
struct PathSpec {
    case: &'static str,
    path: &'static str,
    addr: SocketAddr,
    headers: Vec<(&'static str, &'static str)>,
    pids: Vec<u32>,
    expect: Option<i16>,
    /// Admin API of the daemon that checks answers on this path.
    gateway_admin: Option<String>,
}

async fn measure(
    opts: &BenchOptions,
    testnet: &Testnet,
    report: &mut BenchReport,
    stop: &CancellationToken,
) -> Result<(), String> {
    let url = testnet.anvil_url(CHAIN).ok_or("the testnet has no anvil")?;
    let anvil_addr: SocketAddr =
        url.trim_start_matches("http://").parse().map_err(|e| format!("anvil address {url}: {e}"))?;
    progress("latency on anvil: seeding the chain (contract, log-emitting calls)");
    let seeded = seed(&url).await?;
    progress(&format!(
        "  {} calls in blocks {}..={} ({} logs); receipt of {}",
        seeded.transactions, seeded.logs_range.0, seeded.logs_range.1, seeded.logs, seeded.receipt_of
    ));
    progress(&format!(
        "  full block {}: {} transactions, {} bytes with full transaction objects",
        seeded.full_block, seeded.full_block_txs, seeded.full_block_bytes
    ));
    report.settings.logs_range = Some(seeded.logs_range);
    let all = workloads(&seeded);
    let mix: Arc<[Bytes]> =
        all.iter().filter(|w| w.name != MIX && w.name != FULL_BLOCK).map(|w| w.body.clone()).collect();
    let workloads: Vec<Workload> = all
        .into_iter()
        .filter(|w| opts.workloads.is_empty() || opts.workloads.iter().any(|word| w.name.contains(word.as_str())))
        .collect();
    if let Some(run) = report.anvil.as_mut() {
        run.seeded = Some(seeded);
    }

    let nodes = testnet.nodes();
    let b0 = nodes.first().ok_or("no provider")?;
    let b_pids: Vec<u32> = nodes.iter().filter_map(|n| n.pid).collect();
    let mut a = start_relay_only(testnet).await?;
    a.wait_up(Duration::from_secs(30)).await?;
    let a_pid = a.pid().ok_or("daemon A has no pid")?;
    let a_addr: SocketAddr = a.gateway_addr.parse().map_err(|e| format!("gateway of A: {e}"))?;
    let mut k = super::start_cached(testnet, CHAIN, url.clone()).await?;
    k.wait_up(Duration::from_secs(30)).await?;
    let k_pid = k.pid().ok_or("daemon K has no pid")?;
    let k_addr: SocketAddr = k.gateway_addr.parse().map_err(|e| format!("gateway of K: {e}"))?;
    let mut known: Vec<String> = nodes.iter().map(|n| n.peer_id.clone()).collect();
    known.push(a.peer_id.clone());
    known.push(k.peer_id.clone());
    let known = Arc::new(known);

    let nginx = match Nginx::start(&opts.out.join("nginx"), anvil_addr) {
        Ok(n) => Some(n),
        Err(e) => {
            progress(&format!("  no nginx path: {e}"));
            if let Some(run) = report.anvil.as_mut() {
                run.nginx = format!("not measured: {e}");
            }
            None
        }
    };

    let mut paths = vec![PathSpec {
        case: "a",
        path: "client → anvil",
        addr: anvil_addr,
        headers: vec![],
        pids: vec![],
        expect: None,
        gateway_admin: None,
    }];
    if let Some(n) = &nginx {
        paths.push(PathSpec {
            case: "n",
            path: "client → nginx → anvil",
            addr: n.addr,
            headers: vec![],
            pids: super::procfs::group_members(n.child.id()),
            expect: None,
            gateway_admin: None,
        });
    }
    let mut all_pids = vec![a_pid];
    all_pids.extend(&b_pids);
    for (mode, b_case, c_case) in
        [("off", "b off", "c off"), ("sample", "b sample", "c sample"), ("strict", "b strict", "c strict")]
    {
        paths.push(PathSpec {
            case: b_case,
            path: "client → B0 → own anvil",
            addr: gateway_addr(b0)?,
            headers: vec![("x-rpcmesh-failover", "off"), ("x-rpcmesh-verify", mode)],
            pids: b_pids.clone(),
            expect: Some(0),
            gateway_admin: Some(b0.admin.clone()),
        });
        paths.push(PathSpec {
            case: c_case,
            path: "client → A (no node) → relay → B → anvil",
            addr: a_addr,
            headers: vec![("x-rpcmesh-verify", mode)],
            pids: all_pids.clone(),
            expect: None,
            gateway_admin: Some(a.admin_url.clone()),
        });
    }
    paths.push(PathSpec {
        case: "k cache",
        path: "client → K (response cache on) → own anvil",
        addr: k_addr,
        headers: vec![("x-rpcmesh-failover", "off"), ("x-rpcmesh-verify", "off")],
        pids: vec![k_pid],
        expect: None,
        gateway_admin: Some(k.admin_url.clone()),
    });
    paths.retain(|p| p.case == "a" || opts.paths.is_empty() || opts.paths.iter().any(|c| c == p.case));
    let target_of = |p: &PathSpec, w: &Workload| Target {
        headers: p.headers.clone(),
        mix: if w.name == MIX { mix.clone() } else { Arc::from([]) },
        fresh_ids: true,
        ..Target::fixed(
            p.addr,
            if w.name == MIX { mix.first().cloned().unwrap_or_default() } else { w.body.clone() },
            CELL_TIMEOUT,
            known.clone(),
        )
    };

    // Every path and mode serves every workload before anything is measured (strict needs the
    // providers to see one another and a trusted head by quorum).
    for p in &paths {
        for w in workloads.iter().filter(|w| w.name != MIX) {
            let timeout = if p.case.ends_with("strict") { STRICT_READY_TIMEOUT } else { READY_TIMEOUT };
            if let Err(e) = wait_serving(&target_of(p, w), p.expect, timeout).await {
                report.errors.push(format!("({}) {} does not serve {}: {e}", p.case, p.path, w.name));
            }
            if stop.is_cancelled() {
                a.kill();
                k.kill();
                return Ok(());
            }
        }
    }
    progress("latency on anvil: every path serves; measuring");

    let rounds = opts.rounds.max(1);
    let (warmup, window) = (opts.warmup / rounds as u32, opts.cell / rounds as u32);
    for w in &workloads {
        for &c in &opts.concurrency {
            let specs: Vec<CellSpec<'_>> = paths
                .iter()
                .map(|p| CellSpec {
                    workload: w,
                    concurrency: c,
                    case: p.case,
                    path: p.path.into(),
                    target: target_of(p, w),
                    pids: p.pids.clone(),
                    expect: p.expect,
                })
                .collect();
            let mut runs: Vec<Vec<Round>> = specs.iter().map(|_| Vec::new()).collect();
            let mut checks: Vec<BTreeMap<String, u64>> = specs.iter().map(|_| BTreeMap::new()).collect();
            for _ in 0..rounds {
                for ((spec, p), (runs, checks)) in specs.iter().zip(&paths).zip(runs.iter_mut().zip(checks.iter_mut()))
                {
                    if stop.is_cancelled() {
                        a.kill();
                        k.kill();
                        return Ok(());
                    }
                    let before = match &p.gateway_admin {
                        Some(url) => scrape(url).await,
                        None => BTreeMap::new(),
                    };
                    runs.push(run_round(spec, warmup, window).await);
                    if let Some(url) = &p.gateway_admin {
                        for (k, v) in delta(&before, &scrape(url).await) {
                            *checks.entry(k).or_insert(0) += v;
                        }
                    }
                }
            }
            for ((spec, runs), checks) in specs.iter().zip(runs).zip(checks) {
                let mut cell = finish_cell(spec, runs);
                cell.integrity_checks = checks;
                progress(&cell_line(&cell));
                report.cells.push(cell);
            }
        }
    }

    let mut counters = vec![DaemonCounters { daemon: "A (no node)".into(), counters: scrape(&a.admin_url).await }];
    for n in &nodes {
        counters.push(DaemonCounters { daemon: format!("B{}", n.index), counters: scrape(&n.admin).await });
    }
    if let Some(run) = report.anvil.as_mut() {
        run.counters = counters;
        if let Some(n) = &nginx {
            run.nginx = n.describe();
        }
    }
    drop(nginx);
    a.stop(Duration::from_secs(10));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_from_prometheus_text() {
        let text = "# HELP rpcmesh_integrity_checks Answers checked\n\
                    # TYPE rpcmesh_integrity_checks counter\n\
                    rpcmesh_integrity_checks_total{method=\"eth_getBalance\",outcome=\"proof\"} 12\n\
                    rpcmesh_integrity_checks_total{outcome=\"none\",method=\"eth_blockNumber\"} 3\n\
                    rpcmesh_integrity_checks_total{method=\"eth_getLogs\"} 4\n\
                    rpcmesh_integrity_ranges_too_wide_total 2\n\
                    rpcmesh_relay_requests_total 99\n\
                    rpcmesh_integrity_checks_total{method=\"x\",outcome=\"y\"} NaNx\n";
        let c = integrity_counters(text);
        assert_eq!(c.get("eth_getBalance/proof"), Some(&12));
        assert_eq!(c.get("eth_blockNumber/none"), Some(&3));
        assert_eq!(c.get("ranges_too_wide"), Some(&2));
        assert_eq!(c.len(), 3, "{c:?}");
        let later =
            integrity_counters("rpcmesh_integrity_checks_total{method=\"eth_getBalance\",outcome=\"proof\"} 20\n");
        assert_eq!(delta(&c, &later), BTreeMap::from([("eth_getBalance/proof".to_string(), 8)]));
    }

    #[test]
    fn workloads_ask_for_what_was_seeded() {
        let s = Seeded {
            contract: "0x5fbdb2315678afecb367f032d93f642f64180aa3".into(),
            transactions: 40,
            balance_of: "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266".into(),
            block: 9,
            receipt_of: format!("0x{}", "ab".repeat(32)),
            logs_range: (2, 9),
            logs: 40,
            full_block: 11,
            full_block_txs: FULL_BLOCK_TXS,
            full_block_bytes: 150_000,
        };
        let w = workloads(&s);
        assert_eq!(w.len(), 7);
        assert_eq!(w[5].name, MIX);
        assert_eq!(w[6].name, FULL_BLOCK);
        assert!(String::from_utf8_lossy(&w[6].body).contains(r#"["0xb",true]"#));
        for w in &w[..5] {
            let v: Value = serde_json::from_slice(&w.body).unwrap();
            assert_eq!(v["id"], 1, "{}: fresh ids replace an id of 1", w.name);
        }
        assert!(String::from_utf8_lossy(&w[4].body).contains(r#""fromBlock":"0x2","toBlock":"0x9""#));
    }
}
