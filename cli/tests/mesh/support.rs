//! Shared helpers: daemons, backends, anvil.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rpcmesh_testnet::daemon::{Daemon, DaemonSpec, free_port};
use serde_json::Value;

/// Generous bound for conditions that normally hold within a second or two.
pub const WAIT: Duration = Duration::from_secs(60);

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rpcmesh"))
}

/// Settings that make a mesh converge quickly in tests.
pub fn fast_sets() -> Vec<String> {
    [
        "trust.mode=open",
        "announce.heartbeat_ms=1000",
        "prober.interval_ms=250",
        "prober.peer_interval_ms=500",
        "prober.attest_interval_ms=1000",
    ]
    .map(String::from)
    .to_vec()
}

/// [`fast_sets`] for daemons over simulated backends, which have no real hashes or proofs to
/// verify answers against.
pub fn sim_sets() -> Vec<String> {
    let mut sets = fast_sets();
    sets.push("integrity.mode=off".into());
    sets
}

pub fn spec(
    dir: &std::path::Path,
    name: &str,
    net: &str,
    upstreams: Vec<(u64, String)>,
    bootstrap: Vec<String>,
    sets: Vec<String>,
) -> DaemonSpec {
    DaemonSpec { upstreams, bootstrap, sets, ..DaemonSpec::new(bin(), dir.join(name), net) }
}

pub async fn start(spec: DaemonSpec) -> Daemon {
    let d = Daemon::start(spec).expect("daemon starts");
    d.wait_up(WAIT).await.expect("daemon comes up");
    d
}

pub async fn peers(d: &Daemon) -> Vec<Value> {
    d.admin_json("/peers").await.ok().and_then(|v| v["providers"].as_array().cloned()).unwrap_or_default()
}

pub fn provider<'a>(peers: &'a [Value], peer_id: &str) -> Option<&'a Value> {
    peers.iter().find(|p| p["peer_id"] == peer_id)
}

/// Value of a Prometheus sample whose line starts with `prefix` (0 if absent).
pub fn metric(text: &str, prefix: &str) -> f64 {
    text.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

/// Waits until `cond` holds (polling observable state), panicking after [`WAIT`].
pub async fn wait(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if cond().await {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "timed out after {} s waiting for {what}", WAIT.as_secs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A real anvil node (from scripts/test.sh: RPCMESH_ANVIL, or anvil on PATH).
pub struct Anvil {
    child: Child,
    pub port: u16,
}

impl Anvil {
    /// An anvil mining a block every second.
    pub async fn start(chain_id: u64) -> Anvil {
        Self::start_with(chain_id, &["--block-time", "1"]).await
    }

    /// An anvil with `extra` arguments (mining, history, genesis options).
    pub async fn start_with(chain_id: u64, extra: &[&str]) -> Anvil {
        let path = std::env::var_os("RPCMESH_ANVIL").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("anvil"));
        let port = free_port().unwrap();
        let mut cmd = Command::new(&path);
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string(), "--chain-id", &chain_id.to_string(), "--silent"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt as _;
            cmd.process_group(0);
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start anvil ({}): {e}. Run the tests with ./scripts/test.sh, which installs it.",
                path.display()
            )
        });
        let a = Anvil { child, port };
        let url = a.url();
        wait("anvil to answer", async || block_number(&url).await.is_some()).await;
        a
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        // SAFETY: signals our own child's process group.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// `eth_blockNumber` of a backend.
pub async fn block_number(url: &str) -> Option<u64> {
    let client = rpcmesh_node::upstream::HttpClient::new(1 << 20);
    let uri: hyper::Uri = url.parse().ok()?;
    let v = rpcmesh_node::upstream::rpc_call(
        &client,
        &uri,
        "eth_blockNumber",
        serde_json::json!([]),
        Duration::from_secs(2),
    )
    .await
    .ok()?;
    u64::from_str_radix(v.as_str()?.trim_start_matches("0x"), 16).ok()
}

/// `method(params)` asked of a node (or gateway) directly, its `result` (panics on failure: a
/// test's own setup or truth, not the code under test).
pub async fn direct(url: &str, method: &str, params: Value) -> Value {
    let client = rpcmesh_node::upstream::HttpClient::new(1 << 24);
    let uri: hyper::Uri = url.parse().unwrap();
    rpcmesh_node::upstream::rpc_call(&client, &uri, method, params, Duration::from_secs(5)).await.unwrap()
}

/// A JSON-RPC request body with id 7.
pub fn call_body(method: &str, params: Value) -> String {
    serde_json::json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).to_string()
}

/// Daemons over one anvil serving `chain_id`: A with no node (bootstrap for the rest), then one
/// provider per entry of `providers` (its sets, and a fault its proxy injects from the start),
/// each behind its own fault proxy (returned, index-aligned). Returns once every daemon in
/// `observers` (indexes into the returned nodes) sees every other provider healthy.
pub async fn proxied_mesh(
    dir: &std::path::Path,
    net: &str,
    (anvil, chain_id): (&Anvil, u64),
    a_sets: Vec<String>,
    providers: Vec<(Vec<String>, Option<rpcmesh_testnet::sim::Fault>)>,
    observers: std::ops::Range<usize>,
) -> (Vec<rpcmesh_testnet::fault_proxy::FaultProxyHandle>, Vec<Daemon>) {
    let target: std::net::SocketAddr = format!("127.0.0.1:{}", anvil.port).parse().unwrap();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let a = start(spec(dir, "a", net, vec![], vec![], a_sets)).await;
    let boot = a.p2p_addr().await.unwrap();
    let mut nodes = vec![a];
    let mut proxies = Vec::new();
    for (i, (sets, fault)) in providers.into_iter().enumerate() {
        let proxy = rpcmesh_testnet::fault_proxy::FaultProxy::spawn(target, any).await.unwrap();
        if let Some(f) = fault {
            proxy.set_fault(f);
        }
        let name = format!("p{}", i + 1);
        let chain = vec![(chain_id, proxy.http_url())];
        nodes.push(start(spec(dir, &name, net, chain, vec![boot.clone()], sets)).await);
        proxies.push(proxy);
    }
    let providers: Vec<String> = nodes[1..].iter().map(|n| n.peer_id.clone()).collect();
    for observer in &nodes[observers] {
        let others: Vec<&String> = providers.iter().filter(|id| **id != observer.peer_id).collect();
        wait("the providers to see each other healthy", async || {
            let p = peers(observer).await;
            others.iter().all(|id| provider(&p, id).is_some_and(|v| v["chains"][0]["health"] == "healthy"))
        })
        .await;
    }
    (proxies, nodes)
}
