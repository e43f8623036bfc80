//! A local testnet: N `rpcmesh` daemons as separate processes on 127.0.0.1, each with its own
//! backend, a generated federation (root key and membership certificates), bootstrap wiring
//! and free ports. Backends are simulated nodes ([`crate::sim`], in this process) or, with
//! `anvil`, one anvil per chain that every provider reaches through its own fault proxy
//! ([`crate::fault_proxy`], in this process), so every fault kind works on both backends.
//!
//! Daemons and anvils run in their own process groups and die with this process
//! (PR_SET_PDEATHSIG), so neither a crash nor `kill -9` of the runner leaves an orphan.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::daemon::{Daemon, DaemonSpec, free_port, wait_for};
use crate::fault_proxy::{FaultProxy, FaultProxyConfig, FaultProxyHandle};
use crate::federation::Federation;
use crate::sim::{Fault, SimBackend, SimChain, SimHandle};

/// Which backend every provider gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendKind {
    /// Simulated nodes, one per provider and chain (cheap: dozens of providers).
    Sim,
    /// One real anvil per chain; each provider reaches it through its own fault proxy.
    Anvil {
        /// The anvil binary.
        path: PathBuf,
    },
}

/// What to start.
#[derive(Debug, Clone)]
pub struct TestnetSpec {
    /// Number of daemons.
    pub nodes: usize,
    /// Chain ids every provider serves.
    pub chains: Vec<u64>,
    /// Backend kind.
    pub backend: BackendKind,
    /// Working directory (homes, logs, federation, state file).
    pub dir: PathBuf,
    /// The `rpcmesh` binary.
    pub bin: PathBuf,
    /// Network id of the testnet.
    pub network_id: String,
    /// Block time of simulated chains and anvil, ms.
    pub block_time_ms: u64,
    /// Extra `--set` overrides for every daemon.
    pub sets: Vec<String>,
    /// Give node 0's gateway 127.0.0.1:8545 when that port is free.
    pub prefer_8545: bool,
    /// With the anvil backend: daemons reach anvil directly instead of through their fault
    /// proxies (no faults can be injected; benchmarks, where the proxy would be an extra hop).
    pub direct_anvil: bool,
}

/// What one daemon gets beyond the [`TestnetSpec`] every daemon shares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeExtras {
    /// `--set` overrides after [`TestnetSpec::sets`] (so they win).
    pub sets: Vec<String>,
    /// Policies it declares on every chain it serves (its `[[chain]] policies`), e.g.
    /// `filters:address-list:<sha256>`.
    pub policies: Vec<String>,
}

/// Settings that make a local mesh react in about a second instead of production's seconds.
pub const TESTNET_SETS: &[&str] = &[
    "announce.heartbeat_ms=2000",
    "prober.interval_ms=500",
    "prober.peer_interval_ms=1000",
    "prober.attest_interval_ms=5000",
    "routing.eject_ms=2000",
    // Every daemon of a local testnet connects from 127.0.0.1: the per-address handshake cap
    // (8, for hosts behind one NAT) turned away most of a 100-daemon testnet joining at once.
    "p2p.max_pending_per_ip=1024",
];

/// One node as the table and the state file show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Index.
    pub index: usize,
    /// PeerId.
    pub peer_id: String,
    /// JSON-RPC over HTTP.
    pub http: String,
    /// JSON-RPC over WebSocket.
    pub ws: String,
    /// Admin API.
    pub admin: String,
    /// Backend description.
    pub backend: String,
    /// Daemon PID.
    pub pid: Option<u32>,
    /// Home directory.
    pub home: PathBuf,
}

/// The state file `DIR/testnet.json`: how `down`, `fault` and scenario runs find a testnet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestnetState {
    /// Runner PID.
    pub runner_pid: u32,
    /// Runner control API (`http://127.0.0.1:PORT`).
    pub control: String,
    /// Network id.
    pub network_id: String,
    /// Chains.
    pub chains: Vec<u64>,
    /// Nodes.
    pub nodes: Vec<NodeInfo>,
}

/// Name of the state file.
pub const STATE_FILE: &str = "testnet.json";

impl TestnetState {
    /// Reads `dir/testnet.json`.
    pub fn load(dir: &Path) -> Result<TestnetState, String> {
        let path = dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "no running testnet in {} ({e}); start one with `rpcmesh testnet up --dir {}`",
                dir.display(),
                dir.display()
            )
        })?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

enum NodeBackend {
    Sim(SimHandle),
    Proxy(FaultProxyHandle),
    /// anvil itself, no proxy between (see [`TestnetSpec::direct_anvil`]).
    Direct(std::net::SocketAddr),
}

struct AnvilChain {
    child: Child,
    chain: u64,
    port: u16,
}

/// A running testnet.
pub struct Testnet {
    spec: TestnetSpec,
    /// Daemons, by index.
    pub daemons: Vec<Daemon>,
    backends: Vec<BTreeMap<u64, NodeBackend>>,
    anvils: Vec<AnvilChain>,
    faults: BTreeMap<usize, String>,
    partition: Option<Vec<Vec<usize>>>,
    /// Simulated chains (truth for wrong-answer detection), by chain id.
    pub sim_chains: BTreeMap<u64, SimChain>,
    federation: Federation,
}

fn kill_group(child: &Child, sig: i32) {
    // SAFETY: signals a process group this runner created.
    unsafe {
        libc::kill(-(child.id() as i32), sig);
    }
}

pub(crate) fn spawn_in_group(cmd: &mut Command) -> std::io::Result<Child> {
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    crate::daemon::own_group_dying_with_parent(cmd);
    cmd.spawn()
}

impl NodeBackend {
    fn url(&self) -> String {
        match self {
            NodeBackend::Sim(h) => h.http_url(),
            NodeBackend::Proxy(h) => h.http_url(),
            NodeBackend::Direct(a) => format!("http://{a}"),
        }
    }

    fn describe(&self) -> String {
        match self {
            NodeBackend::Sim(h) => format!("sim {}", h.addr()),
            NodeBackend::Proxy(h) => format!("anvil :{} via proxy :{}", h.target().port(), h.addr().port()),
            NodeBackend::Direct(a) => format!("anvil :{} direct", a.port()),
        }
    }

    async fn apply(&mut self, fault: Fault) -> Result<(), String> {
        match self {
            NodeBackend::Sim(h) => h.apply(fault).await.map_err(|e| e.to_string()),
            NodeBackend::Proxy(h) => h.apply(fault).await.map_err(|e| e.to_string()),
            NodeBackend::Direct(a) => Err(format!("anvil :{} is reached without a fault proxy", a.port())),
        }
    }

    async fn shutdown(self) {
        match self {
            NodeBackend::Sim(h) => h.shutdown().await,
            NodeBackend::Proxy(h) => h.shutdown().await,
            NodeBackend::Direct(_) => {}
        }
    }
}

impl Testnet {
    /// Starts every backend and daemon and waits until each daemon's admin API answers.
    pub async fn up(spec: TestnetSpec) -> Result<Testnet, String> {
        Self::up_with(spec, &BTreeMap::new()).await
    }

    /// [`Testnet::up`] with per-node settings (by node index) on top of the shared ones.
    pub async fn up_with(spec: TestnetSpec, extras: &BTreeMap<usize, NodeExtras>) -> Result<Testnet, String> {
        if spec.nodes == 0 || spec.chains.is_empty() {
            return Err("a testnet needs at least one node and one chain".into());
        }
        std::fs::create_dir_all(&spec.dir).map_err(|e| format!("creating {}: {e}", spec.dir.display()))?;
        // Federation: a root key and one certificate per node.
        let federation = Federation::init(&spec.bin, &spec.dir.join("federation"))?;

        let mut testnet = Testnet {
            spec: spec.clone(),
            daemons: Vec::new(),
            backends: Vec::new(),
            anvils: Vec::new(),
            faults: BTreeMap::new(),
            partition: None,
            sim_chains: BTreeMap::new(),
            federation: federation.clone(),
        };
        // Backends.
        let mut anvil_ports: BTreeMap<u64, u16> = BTreeMap::new();
        if let BackendKind::Anvil { path } = &spec.backend {
            for &chain in &spec.chains {
                let port = free_port().map_err(|e| e.to_string())?;
                let secs = (spec.block_time_ms / 1000).max(1).to_string();
                let child = spawn_in_group(Command::new(path).args([
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                    "--chain-id",
                    &chain.to_string(),
                    "--block-time",
                    &secs,
                    "--silent",
                ]))
                .map_err(|e| format!("starting anvil ({}): {e}; install it or pass --anvil PATH", path.display()))?;
                testnet.anvils.push(AnvilChain { child, chain, port });
                anvil_ports.insert(chain, port);
            }
        } else {
            for &chain in &spec.chains {
                testnet.sim_chains.insert(chain, SimChain::with_history(chain, spec.block_time_ms, 1_000));
            }
        }
        for i in 0..spec.nodes {
            let mut per_node = BTreeMap::new();
            for &chain in &spec.chains {
                let backend = match &spec.backend {
                    BackendKind::Sim => {
                        let sc = testnet.sim_chains[&chain];
                        let addr = "127.0.0.1:0".parse().map_err(|e: std::net::AddrParseError| e.to_string())?;
                        NodeBackend::Sim(SimBackend::spawn(sc, addr).await.map_err(|e| format!("sim backend: {e}"))?)
                    }
                    BackendKind::Anvil { .. } if spec.direct_anvil => {
                        NodeBackend::Direct(std::net::SocketAddr::from(([127, 0, 0, 1], anvil_ports[&chain])))
                    }
                    BackendKind::Anvil { .. } => {
                        let target = std::net::SocketAddr::from(([127, 0, 0, 1], anvil_ports[&chain]));
                        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
                        // A seed per provider and chain: their `errors`/`slow` draws differ.
                        let base = FaultProxyConfig::default().seed;
                        let config =
                            FaultProxyConfig { seed: base ^ ((i as u64) << 32) ^ chain, ..FaultProxyConfig::default() };
                        let proxy = FaultProxy::spawn_with(target, addr, config)
                            .await
                            .map_err(|e| format!("fault proxy for anvil :{}: {e}", target.port()))?;
                        NodeBackend::Proxy(proxy)
                    }
                };
                per_node.insert(chain, backend);
            }
            testnet.backends.push(per_node);
        }
        if !testnet.anvils.is_empty() {
            for (chain, port) in &anvil_ports {
                let url = format!("http://127.0.0.1:{port}");
                wait_for(Duration::from_secs(30), &format!("anvil of chain {chain}"), || async { rpc_ok(&url).await })
                    .await?;
            }
        }

        // Daemons: node 0 first (the bootstrap), the rest in parallel.
        let p2p_ports: Vec<u16> =
            (0..spec.nodes).map(|_| free_port()).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
        let mut specs = Vec::new();
        for i in 0..spec.nodes {
            let mut sets: Vec<String> = TESTNET_SETS.iter().map(|s| s.to_string()).collect();
            sets.push(federation.trust_set());
            if matches!(spec.backend, BackendKind::Sim) {
                // Simulated chains have no real hashes, roots or proofs to verify against.
                sets.push("integrity.mode=off".into());
            }
            sets.extend(spec.sets.iter().cloned());
            if let Some(extra) = extras.get(&i) {
                sets.extend(extra.sets.iter().cloned());
            }
            let bootstrap = if i == 0 { vec![] } else { vec![format!("/ip4/127.0.0.1/tcp/{}", p2p_ports[0])] };
            let rpc_port =
                (i == 0 && spec.prefer_8545 && std::net::TcpListener::bind("127.0.0.1:8545").is_ok()).then_some(8545);
            let upstreams = spec.chains.iter().map(|c| (*c, testnet.backends[i][c].url())).collect();
            specs.push(DaemonSpec {
                upstreams,
                bootstrap,
                sets,
                p2p_port: Some(p2p_ports[i]),
                rpc_port,
                ..DaemonSpec::new(spec.bin.clone(), spec.dir.join(format!("node{i}")), spec.network_id.clone())
            });
        }
        // Every home is written (`rpcmesh init`, a certificate each) before the first daemon
        // starts: two subprocesses per node are quick on an idle machine, and slow on one that
        // runs the daemons started so far (100 of them took minutes that way).
        for (i, s) in specs.into_iter().enumerate() {
            let mut d = Daemon::init(s)?;
            if let Some(extra) = extras.get(&i).filter(|e| !e.policies.is_empty()) {
                crate::daemon::declare_policies(d.home(), &extra.policies)?;
            }
            federation.admit(&mut d, &format!("testnet-provider-{i}"), &spec.network_id, "30d")?;
            testnet.daemons.push(d);
        }
        for d in &mut testnet.daemons {
            d.launch()?;
        }
        for d in &testnet.daemons {
            d.wait_up(Duration::from_secs(60)).await?;
        }
        Ok(testnet)
    }

    /// Node descriptions.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.daemons
            .iter()
            .enumerate()
            .map(|(i, d)| NodeInfo {
                index: i,
                peer_id: d.peer_id.clone(),
                http: format!("http://{}/", d.gateway_addr),
                ws: format!("ws://{}/", d.gateway_addr),
                admin: d.admin_url.clone(),
                backend: self.backends[i].values().map(NodeBackend::describe).collect::<Vec<_>>().join(", "),
                pid: d.pid(),
                home: d.home().to_path_buf(),
            })
            .collect()
    }

    /// URL of the anvil serving `chain` (anvil backend).
    pub fn anvil_url(&self, chain: u64) -> Option<String> {
        self.anvils.iter().find(|a| a.chain == chain).map(|a| format!("http://127.0.0.1:{}", a.port))
    }

    /// The testnet's federation (to admit more daemons).
    pub fn federation(&self) -> &Federation {
        &self.federation
    }

    /// The spec it was started with.
    pub fn spec(&self) -> &TestnetSpec {
        &self.spec
    }

    /// Faults in force, by node.
    pub fn faults(&self) -> &BTreeMap<usize, String> {
        &self.faults
    }

    /// Injects `fault` (text form, see [`crate::faults::parse_fault`]) into node `k`'s backends.
    pub async fn fault(&mut self, k: usize, spec: &str) -> Result<(), String> {
        let fault = crate::faults::parse_fault(spec)?;
        let backends = self.backends.get_mut(k).ok_or_else(|| format!("no node {k}"))?;
        for b in backends.values_mut() {
            b.apply(fault.clone()).await?;
        }
        if fault == Fault::None {
            self.faults.remove(&k);
        } else {
            self.faults.insert(k, spec.to_string());
        }
        Ok(())
    }

    /// Splits the mesh: nodes only talk to nodes of their own group (unlisted nodes form a
    /// group of their own).
    pub async fn partition(&mut self, groups: &[Vec<usize>]) -> Result<(), String> {
        let n = self.daemons.len();
        for g in groups {
            if let Some(bad) = g.iter().find(|i| **i >= n) {
                return Err(format!("no node {bad} (the testnet has {n})"));
            }
        }
        let group_of = |i: usize| groups.iter().position(|g| g.contains(&i));
        for i in 0..n {
            let blocked: Vec<String> = (0..n)
                .filter(|&j| j != i && (group_of(j) != group_of(i) || group_of(i).is_none()))
                .map(|j| self.daemons[j].peer_id.clone())
                .collect();
            self.set_blocked(i, blocked).await?;
        }
        self.partition = Some(groups.to_vec());
        Ok(())
    }

    /// Removes any partition.
    pub async fn heal_partition(&mut self) -> Result<(), String> {
        for i in 0..self.daemons.len() {
            self.set_blocked(i, vec![]).await?;
        }
        self.partition = None;
        Ok(())
    }

    async fn set_blocked(&self, i: usize, peers: Vec<String>) -> Result<(), String> {
        let d = &self.daemons[i];
        let url = format!("{}/blocked", d.admin_url);
        let token = d.admin_token()?;
        rpcmesh_node::admin::client::put_json(
            &url,
            &serde_json::json!({ "peers": peers }),
            Some(&token),
            Duration::from_secs(10),
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    /// Stops node `k` (SIGTERM) and starts it again with its persisted state.
    pub async fn restart(&mut self, k: usize) -> Result<(), String> {
        let d = self.daemons.get_mut(k).ok_or_else(|| format!("no node {k}"))?;
        d.stop(Duration::from_secs(15));
        d.restart()?;
        d.wait_up(Duration::from_secs(60)).await?;
        if let Some(groups) = self.partition.clone() {
            self.partition(&groups).await?;
        }
        Ok(())
    }

    /// One line: how many providers each node sees, how many are healthy, faults in force.
    pub async fn status_line(&self) -> String {
        let n = self.daemons.len();
        let mut sees = Vec::with_capacity(n);
        let mut healthy = 0usize;
        for d in &self.daemons {
            match d.admin_json("/peers?brief=true").await {
                Ok(v) => {
                    let providers = v["providers"].as_array().cloned().unwrap_or_default();
                    sees.push(providers.iter().filter(|p| p["expired"] == false).count());
                    if let Some(me) = providers.iter().find(|p| p["is_self"] == true)
                        && me["chains"].as_array().is_some_and(|c| c.iter().all(|c| c["health"] == "healthy"))
                    {
                        healthy += 1;
                    }
                }
                Err(_) => sees.push(0),
            }
        }
        let min = sees.iter().min().copied().unwrap_or(0);
        let faults: Vec<String> = self.faults.iter().map(|(k, f)| format!("node{k}={f}")).collect();
        format!(
            "{n} nodes | every node sees ≥{min}/{n} providers | {healthy}/{n} self-healthy | faults: {}{}",
            if faults.is_empty() { "none".into() } else { faults.join(" ") },
            if self.partition.is_some() { " | partitioned" } else { "" }
        )
    }

    /// Stops every daemon (SIGTERM, then SIGKILL), backend and anvil.
    pub async fn down(mut self) {
        self.stop_all().await;
    }

    /// What [`Testnet::down`] does, through a shared reference (the runner's control API holds
    /// the testnet too): every daemon gets SIGTERM and up to 10 s to flush its store, then the
    /// backends and anvils stop.
    pub async fn stop_all(&mut self) {
        for d in &mut self.daemons {
            d.signal(libc::SIGTERM);
        }
        for d in &mut self.daemons {
            d.stop(Duration::from_secs(10));
        }
        for per_node in std::mem::take(&mut self.backends) {
            for (_, b) in per_node {
                b.shutdown().await;
            }
        }
        for a in &mut self.anvils {
            kill_group(&a.child, libc::SIGKILL);
            let _ = a.child.wait();
        }
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        // Simulated backends and fault proxies stop when their handles drop.
        for a in &mut self.anvils {
            kill_group(&a.child, libc::SIGKILL);
            let _ = a.child.wait();
        }
    }
}

async fn rpc_ok(url: &str) -> bool {
    let client = rpcmesh_node::upstream::HttpClient::new(1 << 20);
    let Ok(uri) = url.parse() else { return false };
    rpcmesh_node::upstream::rpc_call(&client, &uri, "eth_chainId", serde_json::json!([]), Duration::from_secs(2))
        .await
        .is_ok()
}

/// The table `testnet up` prints.
pub fn render_table(nodes: &[NodeInfo]) -> String {
    let mut s = format!("{:<5} {:<54} {:<28} {:<26} {:<26} {}\n", "NODE", "PEER ID", "HTTP", "WS", "ADMIN", "BACKEND");
    for n in nodes {
        s.push_str(&format!(
            "{:<5} {:<54} {:<28} {:<26} {:<26} {}\n",
            n.index, n.peer_id, n.http, n.ws, n.admin, n.backend
        ));
    }
    s
}

/// Parses `0,1,2:3,4` into groups.
pub fn parse_groups(s: &str) -> Result<Vec<Vec<usize>>, String> {
    s.split(':')
        .map(|g| {
            g.split(',')
                .filter(|x| !x.trim().is_empty())
                .map(|x| x.trim().parse::<usize>().map_err(|_| format!("{x:?} in {s:?} is not a node index")))
                .collect()
        })
        .collect()
}

/// Reads a JSON value from a node's admin API.
pub async fn admin(node: &NodeInfo, path: &str) -> Result<Value, String> {
    let body = rpcmesh_node::admin::client::get_ok(&format!("{}{path}", node.admin), Duration::from_secs(5))
        .await
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}
