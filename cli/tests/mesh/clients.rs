//! Real client libraries through the gateway: cli/tests/clients/suite.mjs runs viem and ethers
//! v6 against provider A's gateway and against anvil directly, and compares reads, a signed
//! transfer and its receipt, a contract deploy + transaction + eth_call + logs, batches, error
//! codes and a newHeads subscription. Once with A's own node up, once with it killed, so every
//! answer comes from B or C over the libp2p relay.

use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::failover::{Mesh, RpcClient, three_providers};

/// Upper bound for one run of the suite (it takes about 25 s).
const SUITE_TIMEOUT: Duration = Duration::from_secs(120);

/// Where suite.mjs and its node_modules are (scripts/test.sh exports RPCMESH_TEST_CLIENTS_DIR).
fn clients_dir() -> PathBuf {
    std::env::var_os("RPCMESH_TEST_CLIENTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients"))
}

struct SuiteRun {
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

impl SuiteRun {
    fn report(&self) -> String {
        format!(
            "the client run {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            match self.status {
                Some(s) => format!("exited with {s}"),
                None => "was killed at its timeout".to_string(),
            },
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }

    fn passed(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// The summary line suite.mjs prints last.
    fn summary(&self) -> Value {
        self.stdout.lines().rev().find_map(|l| serde_json::from_str(l).ok()).unwrap_or(Value::Null)
    }
}

/// Runs `node suite.mjs <gateway http> <anvil http> <gateway ws | ->`, killed by its PID after
/// [`SUITE_TIMEOUT`].
async fn run_suite(m: &Mesh, ws: bool, tag: &str) -> SuiteRun {
    let dir = clients_dir();
    assert!(
        dir.join("node_modules/viem").is_dir() && dir.join("node_modules/ethers").is_dir(),
        "the client libraries are not installed in {}: run the tests with ./scripts/test.sh (npm ci there)",
        dir.display()
    );
    let gw = &m.nodes[0].gateway_addr;
    let mut cmd = Command::new("node");
    cmd.current_dir(&dir).arg(dir.join("suite.mjs")).arg(format!("http://{gw}/")).arg(m.anvil.url()).arg(if ws {
        format!("ws://{gw}/")
    } else {
        "-".into()
    });
    run_bounded(cmd, &m.dir.path().join(format!("suite-{tag}")), SUITE_TIMEOUT).await
}

/// Runs `cmd` in its own process group, stdout and stderr to `base`.out/.err, killed by its
/// group after `timeout`.
async fn run_bounded(mut cmd: Command, base: &std::path::Path, timeout: Duration) -> SuiteRun {
    let (out_path, err_path) = (base.with_extension("out"), base.with_extension("err"));
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    {
        use std::os::unix::process::CommandExt as _;
        cmd.process_group(0);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {:?}: {e}", cmd.get_program()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() >= deadline {
            // SAFETY: signals the process group of our own child.
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
            }
            let _ = child.wait();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    SuiteRun {
        status,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viem_and_ethers_through_the_gateway_match_anvil() {
    let m = three_providers("gw-clients").await;
    let run = run_suite(&m, true, "healthy").await;
    assert!(run.passed(), "{}", run.report());
    println!("{}", run.stdout.trim_end());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viem_and_ethers_through_peers_match_anvil_when_the_own_node_is_down() {
    let mut m = three_providers("gw-clients-peers").await;
    let a_id = m.nodes[0].peer_id.clone();
    m.forwarders[0].kill();
    // From now on A's gateway can only answer through B and C.
    let client = RpcClient::new(&m.nodes[0].gateway_addr);
    let probe = client.call("eth_blockNumber", serde_json::json!([])).await;
    assert!(probe.body.get("result").is_some(), "{}", probe.body);
    assert!(!probe.served_by.is_empty() && probe.served_by != a_id, "served by a peer: {:?}", probe.served_by);

    let run = run_suite(&m, false, "peers").await;
    assert!(run.passed(), "{}", run.report());
    println!("{}", run.stdout.trim_end());
    // The raw batch check notes who served it: never A itself.
    let summary = run.summary();
    let batch = summary["checks"].as_array().and_then(|c| c.iter().find(|c| c[0] == "raw.batch")).cloned();
    let note = batch.as_ref().and_then(|c| c[2].as_str()).unwrap_or("");
    assert!(
        note.starts_with("served by ") && !note.contains(&a_id),
        "the batch was served by a peer, not A ({a_id}): {batch:?}"
    );
}

/// web3.py (from PyPI; scripts/test.sh installs it into .tools/py and exports
/// RPCMESH_TEST_PYTHONPATH): `eth_subscribe("newPendingTransactions", True)` through the
/// gateway gets full transaction objects, which its subscription manager decodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web3py_full_pending_transaction_subscription_through_the_gateway() {
    let pythonpath = std::env::var_os("RPCMESH_TEST_PYTHONPATH").unwrap_or_else(|| {
        panic!(
            "web3.py is not installed for the tests: run them with ./scripts/test.sh (it installs it into .tools/py)"
        )
    });
    let m = three_providers("gw-web3py").await;
    let gw = &m.nodes[0].gateway_addr;
    let mut cmd = Command::new("python3");
    cmd.arg(clients_dir().join("pending_full.py"))
        .arg(format!("ws://{gw}/"))
        .arg(format!("http://{gw}/"))
        .arg(m.anvil.url())
        .env("PYTHONPATH", &pythonpath);
    let run = run_bounded(cmd, &m.dir.path().join("web3py"), Duration::from_secs(90)).await;
    assert!(run.passed(), "{}", run.report());
    let out = run.stdout;
    println!("{}", out.trim_end());
}
