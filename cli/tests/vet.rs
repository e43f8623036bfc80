//! `rpcmesh federation vet` and `admit --vetting-report` against real anvil nodes, healthy and
//! behind the testnet's fault proxy: the default policy passes a healthy node; a liar, a slow
//! node, a node that fails under the ramp and a node without archive state each fail, naming the
//! criterion; admit embeds a passing report and refuses a failed, incomplete or edited one.
//! Through the mesh (`--peer`): a candidate daemon is vetted by its PeerId from a member's daemon,
//! over the relay, and admitted with that report.
//!
//! Every test starts its own anvil (own process group, killed by PID on drop) and fault proxy
//! (in this process). Thresholds are set so outcomes do not depend on the machine's speed: a
//! 300 ms delay against a 100 ms p95 limit, 5 requests/s allowed against a ramp from 10/s.
//! Ramps are 3 s long at 20-30 requests/s.

#[path = "mesh/support.rs"]
#[allow(dead_code)]
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use rpcmesh_protocol::Identity;
use rpcmesh_protocol::messages::VettingVerdict;
use rpcmesh_testnet::fault_proxy::{FaultProxy, FaultProxyHandle};
use rpcmesh_testnet::sim::Fault;
use serde_json::{Value, json};
use support::{Anvil, WAIT, bin};
use tokio::io::AsyncBufReadExt as _;

const CHAIN: u64 = 31337;
/// Anvil's first dev account (unlocked).
const DEV: &str = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266";
/// Anvil's second dev account.
const DEV2: &str = "0x70997970c51812dc3a010c7d01b50e0d4c4db467";
/// Init code whose constructor emits one LOG0 and returns no code.
const LOG0_INIT: &str = "0x60006000a000";
/// Network id of the healthy run and of its federation.
const NET: &str = "vet-mesh";
/// Genesis time of the deterministic chains (two anvils with equal blocks).
const T0: u64 = 1_700_000_000;

async fn rpc(url: &str, method: &str, params: Value) -> Value {
    let client = rpcmesh_node::upstream::HttpClient::new(16 << 20);
    let uri: hyper::Uri = url.parse().expect("url");
    rpcmesh_node::upstream::rpc_call(&client, &uri, method, params, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"))
}

/// Sends the seed transactions (a contract creation that logs, a transfer) and waits until both
/// are mined: the pinned reads then have transactions, a contract and a log.
async fn seed(url: &str) {
    let txs = [
        json!({ "from": DEV, "data": LOG0_INIT, "gas": "0x100000" }),
        json!({ "from": DEV, "to": DEV2, "value": "0xde0b6b3a7640000" }),
    ];
    for tx in txs {
        let hash = rpc(url, "eth_sendTransaction", json!([tx])).await;
        support::wait("the seed transaction to be mined", async || {
            !rpc(url, "eth_getTransactionReceipt", json!([hash])).await.is_null()
        })
        .await;
    }
}

/// The same chain on every anvil started with `--timestamp T0` and no block time: each block's
/// timestamp is set before it is mined, then 32 empty blocks 12 s apart.
async fn seed_deterministic(url: &str) {
    for (i, tx) in [
        json!({ "from": DEV, "data": LOG0_INIT, "gas": "0x100000" }),
        json!({ "from": DEV, "to": DEV2, "value": "0xde0b6b3a7640000" }),
    ]
    .into_iter()
    .enumerate()
    {
        rpc(url, "evm_setNextBlockTimestamp", json!([T0 + 12 * (i as u64 + 1)])).await;
        let hash = rpc(url, "eth_sendTransaction", json!([tx])).await;
        // Mined before the next timestamp is set, or that block would take it.
        support::wait("the seed transaction to be mined", async || {
            !rpc(url, "eth_getTransactionReceipt", json!([hash])).await.is_null()
        })
        .await;
    }
    rpc(url, "anvil_mine", json!(["0x20", "0xc"])).await;
}

async fn proxy(anvil: &Anvil, fault: Fault) -> FaultProxyHandle {
    let target = SocketAddr::from(([127, 0, 0, 1], anvil.port));
    let p = FaultProxy::spawn(target, SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("proxy");
    p.apply(fault).await.expect("fault in effect");
    p
}

/// A vetting operator's key file in `dir`.
fn vetter_key(dir: &Path) -> PathBuf {
    let path = dir.join("vetter.key");
    Identity::generate().save(&path, true).expect("key");
    path
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn rpcmesh(args: &[&str]) -> Run {
    let out = tokio::process::Command::new(bin()).args(args).stdin(Stdio::null()).output().await.expect("runs");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// Runs `federation vet` with a 3 s ramp to 20 requests/s (unless `extra` says otherwise) into
/// `dir/report`, and returns the run and the report.
async fn vet(dir: &Path, candidate: &str, extra: &[&str]) -> (Run, Value) {
    let key = vetter_key(dir);
    let out = dir.join("report");
    let (key, out) = (key.display().to_string(), out.display().to_string());
    let mut args = vec![
        "federation",
        "vet",
        "--endpoint",
        candidate,
        "--chain",
        "31337",
        "--key",
        &key,
        "--out",
        &out,
        "--confirmations",
        "0",
        "--batch-max",
        "64",
        "--timeout",
        "5s",
    ];
    if !extra.contains(&"--duration") {
        args.extend(["--duration", "3s"]);
    }
    if !extra.contains(&"--rate") {
        args.extend(["--rate", "20"]);
    }
    args.extend(extra);
    let run = rpcmesh(&args).await;
    let report = std::fs::read_to_string(dir.join("report/report.json"))
        .map(|t| serde_json::from_str(&t).expect("report.json is JSON"))
        .unwrap_or_else(|e| panic!("no report.json ({e}); stdout {} stderr {}", run.stdout, run.stderr));
    (run, report)
}

fn failed(report: &Value) -> Vec<String> {
    report["verdict"]["failed"].as_array().into_iter().flatten().filter_map(Value::as_str).map(String::from).collect()
}

/// A policy file: the shipped default with `from` replaced by `to`.
fn policy(dir: &Path, from: &str, to: &str) -> String {
    let text = rpcmesh_testnet::vet::policy::DEFAULT_POLICY_TOML;
    assert!(text.contains(from), "{from}");
    let path = dir.join("policy.toml");
    std::fs::write(&path, text.replace(from, to)).expect("policy");
    path.display().to_string()
}

async fn admit(dir: &Path, report: &Path, extra: &[&str]) -> Run {
    let root = dir.join("root.key");
    Identity::generate().save(&root, true).expect("root key");
    let member = Identity::generate().peer_id().to_string();
    let (root, report, cert) =
        (root.display().to_string(), report.display().to_string(), dir.join("member.cert").display().to_string());
    let mut args = vec![
        "federation",
        "admit",
        "--root",
        &root,
        "--member",
        &member,
        "--name",
        "Candidate Ltd",
        "--out",
        &cert,
        "--vetting-report",
        &report,
    ];
    args.extend(extra);
    rpcmesh(&args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_anvil_passes_the_default_policy_and_is_admitted_with_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let anvil = Anvil::start(CHAIN).await;
    seed(&anvil.url()).await;
    let ws = format!("ws://127.0.0.1:{}", anvil.port);
    let args = ["--reference", &anvil.url(), "--ws", &ws, "--network-id", NET];
    let (run, report) = vet(dir.path(), &anvil.url(), &args).await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(report["verdict"]["verdict"], "pass", "{}", report["verdict"]);
    assert_eq!(report["partial"], false);
    assert!(run.stdout.starts_with("PASS"), "{}", run.stdout);
    for f in ["report.md", "report.json", "report.sig", "latency.svg", "errors.svg", "head_lag.svg"] {
        assert!(dir.path().join("report").join(f).is_file(), "{f}");
    }
    let md = std::fs::read_to_string(dir.path().join("report/report.md")).unwrap();
    assert!(md.starts_with("# Vetting report: PASS"), "{md}");
    // Every section ran and found what a healthy anvil has.
    assert!(report["correctness"]["compared"].as_u64().unwrap() >= 15, "{}", report["correctness"]);
    assert!(report["pinned"][0]["txs"].as_array().is_some_and(|t| !t.is_empty()), "{}", report["pinned"]);
    let oldest = report["coverage"]["archive"]["oldest_state_block"].as_u64();
    assert!(oldest.is_some_and(|b| b <= 1), "archive: {}", report["coverage"]["archive"]);
    assert!(report["websocket"]["heads"].as_u64().unwrap() >= 3, "{}", report["websocket"]);
    assert_eq!(report["load"]["held_rate_per_sec"], 20);
    // Receipts, logs and state reads were proven against the pinned block's header.
    let reads = report["correctness"]["reads"].as_array().unwrap();
    let verified = |method: &str, how: &str| {
        reads.iter().any(|r| r["method"] == method && r["verification"] == format!("verified ({how})").as_str())
    };
    assert!(verified("eth_getBlockReceipts", "receipts root"), "{}", report["correctness"]);
    assert!(verified("eth_getTransactionReceipt", "receipt in the block's receipts root"));
    assert!(verified("eth_getLogs", "logs in the block's receipts"));
    for m in ["eth_getBalance", "eth_getTransactionCount", "eth_getCode", "eth_getStorageAt"] {
        assert!(verified(m, "proof against the state root"), "{m}: {}", report["correctness"]);
    }

    // Admitted with the report: the certificate carries the vetter's signed summary.
    let admitted = admit(dir.path(), &dir.path().join("report"), &["--network-id", NET]).await;
    assert_eq!(admitted.code, Some(0), "{}", admitted.stderr);
    let cert = rpcmesh_node::trust::cert_file::load(&dir.path().join("member.cert")).expect("certificate");
    let vetting = cert.body.vetting.as_ref().expect("a vetting summary");
    vetting.verify().expect("the vetter's signature");
    assert_eq!(vetting.body.verdict, VettingVerdict::Pass);
    assert_eq!(vetting.body.chain_id, CHAIN);
    let info = rpcmesh_node::trust::VettingInfo::of(&cert.body).expect("shown by /peers");
    assert_eq!((info.policy.as_str(), info.verdict), ("rpcmesh-default-v1", "pass"));
    assert_eq!(Some(&Value::String(info.vetter.clone())), report.get("vetter"));

    // A member admitted with it shows its vetting in the /peers of another member.
    shown_in_peers(dir.path(), &anvil, &dir.path().join("report")).await;

    // An edited report no longer matches its signature.
    let path = dir.path().join("report/report.json");
    let edited =
        std::fs::read_to_string(&path).unwrap().replacen("\"held_rate_per_sec\": 20", "\"held_rate_per_sec\": 2000", 1);
    std::fs::write(&path, edited).unwrap();
    let refused = admit(dir.path(), &dir.path().join("report"), &["--force", "--network-id", NET]).await;
    assert_eq!(refused.code, Some(1));
    assert!(refused.stderr.contains("changed after it was signed"), "{}", refused.stderr);
}

/// Two daemons of one federation: B admitted with the vetting report in `report`, A without.
/// A's `/peers` and `rpcmesh peers` show when, how and against which policy B was vetted.
async fn shown_in_peers(dir: &Path, anvil: &Anvil, report: &Path) {
    use rpcmesh_testnet::daemon::Daemon;
    use rpcmesh_testnet::federation::Federation;
    use support::{fast_sets, peers, provider, spec, wait};

    let federation = Federation::init(&bin(), &dir.join("federation")).expect("federation");
    let mut sets: Vec<String> = fast_sets().into_iter().filter(|s| !s.starts_with("trust.mode")).collect();
    sets.push(federation.trust_set());
    let upstream = vec![(CHAIN, anvil.url())];
    let mut a = Daemon::init(spec(dir, "a", NET, upstream.clone(), vec![], sets.clone())).expect("init a");
    federation.admit(&mut a, "Alpha Nodes", NET, "1d").expect("admit a");
    a.launch().expect("launch a");
    a.wait_up(WAIT).await.expect("a up");
    let mut b =
        Daemon::init(spec(dir, "b", NET, upstream, vec![a.p2p_addr().await.expect("addr")], sets)).expect("init b");
    let cert = b.home().join("member.cert");
    let (root, cert_s, report_s) =
        (federation.root_key.display().to_string(), cert.display().to_string(), report.display().to_string());
    let admitted = rpcmesh(&[
        "federation",
        "admit",
        "--root",
        &root,
        "--member",
        &b.peer_id,
        "--name",
        "Beta RPC",
        "--network-id",
        NET,
        "--valid-for",
        "1d",
        "--out",
        &cert_s,
        "--vetting-report",
        &report_s,
        "--force",
    ])
    .await;
    assert_eq!(admitted.code, Some(0), "{}", admitted.stderr);
    b.run_args = vec!["--set".into(), format!("trust.membership_cert={cert_s}")];
    b.launch().expect("launch b");
    b.wait_up(WAIT).await.expect("b up");
    wait("A to show B as a vetted member", async || {
        let p = peers(&a).await;
        provider(&p, &b.peer_id).is_some_and(|v| {
            let vetting = &v["trust"]["vetting"];
            v["trust"]["kind"] == "member"
                && vetting["verdict"] == "pass"
                && vetting["policy"] == "rpcmesh-default-v1"
                && vetting["chain_id"] == CHAIN
                && vetting["vetted_at_ms"].as_u64().is_some()
        }) && provider(&p, &a.peer_id).is_some_and(|v| v["trust"].get("vetting").is_none())
    })
    .await;
    let table = rpcmesh(&["peers", "--admin", &a.admin_url]).await;
    assert_eq!(table.code, Some(0), "{}", table.stderr);
    let row = table.stdout.lines().find(|l| l.contains("member")).unwrap_or_else(|| panic!("{}", table.stdout));
    assert!(row.contains("pass ") && row.ends_with("rpcmesh-default-v1"), "{}", table.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_endpoint_fails_correctness_and_admit_refuses_it_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let anvil = Anvil::start(CHAIN).await;
    seed(&anvil.url()).await;
    let liar = proxy(&anvil, Fault::Lie).await;
    let (run, report) = vet(dir.path(), &liar.http_url(), &["--reference", &anvil.url()]).await;
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    assert!(failed(&report).contains(&"correctness".to_string()), "{}", report["verdict"]);
    assert!(run.stdout.contains("failed correctness"), "{}", run.stdout);
    // The differences are listed with the request and both answers.
    let reads = report["correctness"]["reads"].as_array().unwrap();
    let block = reads
        .iter()
        .find(|r| r["method"] == "eth_getBlockByNumber" && r["outcome"] == "differs")
        .expect("a differing block");
    assert!(block["differing_fields"].as_array().unwrap().iter().any(|f| f == "$.hash"), "{block}");
    assert_ne!(block["candidate"]["hash"], block["reference"]["hash"]);
    assert!(reads.iter().any(|r| r["method"] == "eth_getBalance" && r["outcome"] == "differs"));
    let md = std::fs::read_to_string(dir.path().join("report/report.md")).unwrap();
    assert!(md.contains("### Differences") && md.contains("Candidate's answer") && md.contains("Reference's answer"));

    let refused = admit(dir.path(), &dir.path().join("report"), &[]).await;
    assert_eq!(refused.code, Some(1));
    assert!(refused.stderr.contains("failed policy rpcmesh-default-v1 (correctness"), "{}", refused.stderr);
    assert!(!dir.path().join("member.cert").exists());
    let forced = admit(dir.path(), &dir.path().join("report"), &["--force"]).await;
    assert_eq!(forced.code, Some(0), "{}", forced.stderr);
    let cert = rpcmesh_node::trust::cert_file::load(&dir.path().join("member.cert")).expect("certificate");
    assert_eq!(cert.body.vetting.expect("summary").body.verdict, VettingVerdict::Fail);
    liar.shutdown().await;
}

/// No reference at all: a candidate whose balances are wrong (its headers, receipts and proofs
/// honest) is caught by its own proofs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_balance_liar_is_caught_by_its_own_proofs_without_a_reference() {
    let dir = tempfile::tempdir().unwrap();
    let anvil = Anvil::start(CHAIN).await;
    seed(&anvil.url()).await;
    let fault = rpcmesh_testnet::faults::parse_fault("lie=balance").unwrap();
    let liar = proxy(&anvil, fault).await;
    let (run, report) = vet(dir.path(), &liar.http_url(), &[]).await;
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    assert!(failed(&report).contains(&"correctness".to_string()), "{}", report["verdict"]);
    let reads = report["correctness"]["reads"].as_array().unwrap();
    let balance = reads.iter().find(|r| r["method"] == "eth_getBalance").expect("a balance read");
    assert_eq!(balance["verification_failed"], true, "{balance}");
    assert_eq!(balance["outcome"], "not_compared", "no reference: caught by the proof alone");
    let nonce = reads.iter().find(|r| r["method"] == "eth_getTransactionCount").expect("a nonce read");
    assert_eq!(nonce["verification"], "verified (proof against the state root)", "{nonce}");
    liar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_endpoint_fails_the_p95_latency() {
    let dir = tempfile::tempdir().unwrap();
    let anvil = Anvil::start(CHAIN).await;
    seed(&anvil.url()).await;
    let slow = proxy(&anvil, Fault::Slow { delay_ms: 300, jitter_ms: 0 }).await;
    let policy = policy(dir.path(), "max_p95_ms = 500", "max_p95_ms = 100");
    let (run, report) = vet(dir.path(), &slow.http_url(), &["--reference", &anvil.url(), "--policy", &policy]).await;
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    assert!(failed(&report).contains(&"p95_latency".to_string()), "{}", report["verdict"]);
    assert!(report["load"]["total"]["p95_us"].as_u64().unwrap() >= 300_000);
    slow.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_fails_under_the_ramp_fails_the_rate_held() {
    let dir = tempfile::tempdir().unwrap();
    let anvil = Anvil::start(CHAIN).await;
    seed(&anvil.url()).await;
    let limited = proxy(&anvil, Fault::Overload { max_per_sec: 5 }).await;
    let (run, report) = vet(dir.path(), &limited.http_url(), &["--reference", &anvil.url(), "--rate", "30"]).await;
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    let failed = failed(&report);
    assert!(failed.contains(&"rate_held".to_string()) && failed.contains(&"error_rate".to_string()), "{failed:?}");
    let load = &report["load"];
    assert!(load["held_rate_per_sec"].as_u64().unwrap() < 30, "{load}");
    assert!(load["errors_start_at_rps"].as_u64().is_some(), "{load}");
    assert!(load["first_errors"][0].as_str().unwrap().contains("-32005"), "{}", load["first_errors"]);
    limited.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_without_archive_state_fails_the_archive_criterion() {
    let dir = tempfile::tempdir().unwrap();
    let genesis = T0.to_string();
    let full = Anvil::start_with(CHAIN, &["--timestamp", &genesis]).await;
    let pruned = Anvil::start_with(CHAIN, &["--timestamp", &genesis, "--prune-history", "4"]).await;
    seed_deterministic(&full.url()).await;
    seed_deterministic(&pruned.url()).await;
    let head = rpc(&full.url(), "eth_getBlockByNumber", json!(["latest", false])).await;
    assert_eq!(head, rpc(&pruned.url(), "eth_getBlockByNumber", json!(["latest", false])).await, "equal chains");

    let policy = policy(dir.path(), "require_archive = false", "require_archive = true");
    let args = ["--reference", &full.url(), "--policy", &policy, "--block", "1"];
    let (run, report) = vet(dir.path(), &pruned.url(), &args).await;
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    let failed = failed(&report);
    assert!(failed.contains(&"archive".to_string()), "{}", report["verdict"]);
    assert!(!failed.contains(&"correctness".to_string()), "{}", report["correctness"]);
    let oldest = report["coverage"]["archive"]["oldest_state_block"].as_u64().expect("some state");
    assert!(oldest > 1, "{}", report["coverage"]["archive"]);
    // The pinned state reads it cannot answer are the archive criterion's, not differences.
    let reads = report["correctness"]["reads"].as_array().unwrap();
    assert!(reads.iter().any(|r| r["outcome"] == "below_state_depth"), "{}", report["correctness"]);
    assert!(reads.iter().any(|r| r["method"] == "eth_getBlockByHash" && r["outcome"] == "match"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_writes_a_partial_report_that_admit_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let anvil = Anvil::start(CHAIN).await;
    seed(&anvil.url()).await;
    let key = vetter_key(dir.path()).display().to_string();
    let out = dir.path().join("report").display().to_string();
    let mut child = tokio::process::Command::new(bin())
        .args(["federation", "vet", "--endpoint", &anvil.url(), "--chain", "31337", "--key", &key, "--out", &out])
        .args(["--reference", &anvil.url(), "--confirmations", "0", "--duration", "60s", "--rate", "10"])
        .args(["--batch-max", "64"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    // Plain progress lines (stderr is not a terminal): wait for the ramp to start.
    let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut seen = Vec::new();
    tokio::time::timeout(WAIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            let started = line.starts_with("vet: load");
            seen.push(line);
            if started {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the ramp did not start: {seen:?}"));
    let pid = child.id().expect("running") as i32;
    // SAFETY: signals the child this test started, by PID.
    unsafe {
        libc::kill(pid, libc::SIGINT);
    }
    let drain = tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let status = tokio::time::timeout(WAIT, child.wait()).await.expect("exits after Ctrl-C").expect("status");
    let _ = drain.await;
    assert_eq!(status.code(), Some(1));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report/report.json")).unwrap()).unwrap();
    assert_eq!(report["partial"], true);
    assert_eq!(report["verdict"]["verdict"], "incomplete", "{}", report["verdict"]);
    assert_eq!(report["load"]["completed"], false);
    assert!(dir.path().join("report/report.sig").is_file());

    let refused = admit(dir.path(), &dir.path().join("report"), &[]).await;
    assert_eq!(refused.code, Some(1));
    assert!(refused.stderr.contains("incomplete"), "{}", refused.stderr);
}

/// A member daemon A of a new federation and a candidate daemon B that trusts the federation (so
/// it serves A's relays) but has no certificate yet, over the node at `b_node` (A's is `anvil`),
/// announcing 30 req/s and 8 concurrent relays; returned once A sees B's announcement.
async fn member_and_candidate(
    dir: &Path,
    anvil: &Anvil,
    b_node: &str,
) -> (rpcmesh_testnet::federation::Federation, rpcmesh_testnet::daemon::Daemon, rpcmesh_testnet::daemon::Daemon) {
    use rpcmesh_testnet::daemon::Daemon;
    use rpcmesh_testnet::federation::Federation;
    use support::{fast_sets, peers, provider, spec, wait};

    let federation = Federation::init(&bin(), &dir.join("federation")).expect("federation");
    let mut sets: Vec<String> = fast_sets().into_iter().filter(|s| !s.starts_with("trust.mode")).collect();
    sets.push(federation.trust_set());
    let mut a = Daemon::init(spec(dir, "a", NET, vec![(CHAIN, anvil.url())], vec![], sets.clone())).expect("init a");
    federation.admit(&mut a, "Alpha Nodes", NET, "1d").expect("admit a");
    a.launch().expect("launch a");
    a.wait_up(WAIT).await.expect("a up");
    sets.push(format!("chain.{CHAIN}.max_requests_per_sec=30"));
    sets.push(format!("chain.{CHAIN}.max_concurrent_relays=8"));
    let bootstrap = vec![a.p2p_addr().await.expect("addr")];
    let mut b = Daemon::init(spec(dir, "b", NET, vec![(CHAIN, b_node.to_string())], bootstrap, sets)).expect("init b");
    b.launch().expect("launch b");
    b.wait_up(WAIT).await.expect("b up");
    // Ready: its node answered a probe, so B relays to it.
    wait("B to be ready", async || b.admin_json("/ready").await.is_ok_and(|v| v["ready"] == true)).await;
    wait("A to see B's announcement on the chain", async || {
        provider(&peers(&a).await, &b.peer_id).is_some_and(|v| {
            v["connected"] == true
                && v["chains"].as_array().is_some_and(|c| c.iter().any(|c| c["max_requests_per_sec"] == 30))
        })
    })
    .await;
    (federation, a, b)
}

/// `federation vet --peer` from A's home into `dir/report` with a 3 s ramp (`--rate 100`, above
/// what B announces, unless `extra` has a `--rate`): the run and the report.
async fn vet_through(
    dir: &Path,
    a: &rpcmesh_testnet::daemon::Daemon,
    peer: &str,
    reference: &str,
    extra: &[&str],
) -> (Run, Value) {
    let home = a.home().display().to_string();
    let out = dir.join("report").display().to_string();
    #[rustfmt::skip]
    let mut args = vec![
        "federation", "vet", "--peer", peer, "--via", &a.admin_url, "--home", &home,
        "--chain", "31337", "--reference", reference, "--out", &out,
        "--duration", "3s", "--confirmations", "0", "--batch-max", "64", "--timeout", "5s",
    ];
    if !extra.contains(&"--rate") {
        args.extend(["--rate", "100"]);
    }
    args.extend(extra);
    let run = rpcmesh(&args).await;
    let report = std::fs::read_to_string(dir.join("report/report.json"))
        .map(|t| serde_json::from_str(&t).expect("report.json is JSON"))
        .unwrap_or_else(|e| {
            panic!("no report.json ({e}); stdout {} stderr {}\n--- a ---\n{}", run.stdout, run.stderr, a.log())
        });
    (run, report)
}

/// Vetting through the mesh: B (see [`member_and_candidate`]) is vetted by its PeerId from A's
/// home, through A's relay route: the ramp is lowered to B's announced capacity, every answer
/// carries B's verified receipt, what B's relay policy refuses is reported as its policy, and the
/// parts a relay cannot carry are "not tested through the mesh". The report admits B and only B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_is_vetted_through_the_mesh_by_its_peer_id_and_admitted() {
    let dir = tempfile::tempdir().unwrap();
    let anvil = Anvil::start(CHAIN).await;
    seed(&anvil.url()).await;
    let (federation, a, b) = member_and_candidate(dir.path(), &anvil, &anvil.url()).await;

    // The relay route: the admin token is required; the answer is B's node's, verbatim, with B's
    // verified receipt; the daemon's own PeerId is refused.
    let route = format!("{}/relay/{}/{CHAIN}", a.admin_url, b.peer_id);
    let call = json!({ "jsonrpc": "2.0", "id": 7, "method": "eth_chainId", "params": [] });
    let t = Duration::from_secs(10);
    let no_token = rpcmesh_node::admin::client::post_json(&route, &call, None, t).await;
    assert!(matches!(no_token, Err(rpcmesh_node::admin::client::AdminClientError::Status { status: 401, .. })));
    let token = a.admin_token().expect("token");
    let body = rpcmesh_node::admin::client::post_json(&route, &call, Some(&token), t).await.expect("relayed");
    let relayed: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(relayed["status"], "ok", "{relayed}");
    assert_eq!(relayed["answer"], json!({ "jsonrpc": "2.0", "id": 7, "result": "0x7a69" }), "{relayed}");
    assert_eq!(relayed["receipt"]["verified"], true, "{relayed}");
    let own = format!("{}/relay/{}/{CHAIN}", a.admin_url, a.peer_id);
    let refused = rpcmesh_node::admin::client::post_json(&own, &call, Some(&token), t).await;
    assert!(matches!(refused, Err(rpcmesh_node::admin::client::AdminClientError::Status { status: 400, .. })));

    let out = dir.path().join("report");
    let out_s = out.display().to_string();
    let (run, report) = vet_through(dir.path(), &a, &b.peer_id, &anvil.url(), &[]).await;
    assert_eq!(run.code, Some(0), "{}\n{}\n{}", run.stdout, run.stderr, report["verdict"]);
    assert_eq!(report["verdict"]["verdict"], "pass", "{}", report["verdict"]);
    assert!(run.stderr.contains("--rate 100 lowered to the 30 req/s"), "{}", run.stderr);

    // Who was reached, through whom, and as which member of which network; signed by A's key.
    let mesh = &report["mesh"];
    assert_eq!(mesh["candidate"], b.peer_id.as_str());
    assert_eq!(mesh["via"], a.peer_id.as_str());
    assert_eq!(report["member"], b.peer_id.as_str());
    assert_eq!(report["network_id"], NET);
    assert_eq!(report["vetter"], a.peer_id.as_str());
    assert_eq!(mesh["announced"]["max_concurrent_relays"], 8, "{mesh}");

    // Every relayed answer carried B's verified receipt.
    let relayed = mesh["relayed"].as_u64().expect("relayed");
    assert!(relayed >= 50, "{mesh}");
    assert_eq!(mesh["receipts_verified"].as_u64(), Some(relayed), "{mesh}");
    assert_eq!(mesh["statuses"]["ok"].as_u64(), Some(relayed), "{mesh}");
    let criterion = |name: &str| {
        report["verdict"]["criteria"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(criterion("relay_receipts")["outcome"], "pass", "{}", report["verdict"]);

    // The ramp stayed within B's announced capacity.
    assert_eq!(report["load"]["rate_per_sec"], 30);
    assert_eq!(report["settings"]["max_in_flight"], 8);
    assert_eq!(report["load"]["held_rate_per_sec"], 30, "{}", report["load"]);
    assert_eq!(report["load"]["total"]["busy"], 0, "{}", report["load"]["total"]);

    // B's relay policy (the default: eth, net, web3) is reported as its policy, not as failures.
    let groups = report["coverage"]["method_groups"].as_array().unwrap();
    let group = |g: &str| groups.iter().find(|x| x["group"] == g).cloned().unwrap_or_default();
    assert_eq!(group("txpool")["refused_by_policy"], true, "{groups:?}");
    assert_eq!(group("eth")["answers"], true);
    assert!(criterion("method_groups")["measured"].as_str().unwrap().contains("not relayed by the candidate's policy"));
    let refusals = mesh["refusals"].as_array().unwrap();
    assert!(refusals.iter().any(|r| r["request"] == "txpool_status" && r["by_policy"] == true), "{refusals:?}");
    assert!(report["coverage"]["batch"]["largest_ok"].as_u64().unwrap() >= 50, "{}", report["coverage"]["batch"]);

    // Malformed JSON and the empty batch never reach B's node: not tested, not failed.
    let checks = report["conformance"]["checks"].as_array().unwrap();
    let check = |n: &str| checks.iter().find(|c| c["name"] == n).cloned().unwrap_or_default();
    for n in ["parse_error", "empty_batch"] {
        assert!(check(n)["not_tested"].as_str().is_some_and(|t| t.contains("before its node saw it")), "{checks:?}");
    }
    for n in ["method_not_found", "invalid_params", "id_echo", "batch_ids"] {
        assert_eq!(check(n)["passed"], true, "{n}: {checks:?}");
    }
    assert_eq!(criterion("error_conformance")["outcome"], "pass");
    let ws = criterion("websocket");
    assert_eq!(ws["outcome"], "pass");
    assert!(ws["measured"].as_str().unwrap().contains("not tested through the mesh"), "{ws}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for says in
        ["# Vetting report: PASS", "| reached | through the mesh", "## Through the mesh", "Caveats", "relay round trip"]
    {
        assert!(md.contains(says), "{says}: {md}");
    }

    // The report admits B, and no other member.
    let refused = admit(dir.path(), &out, &["--network-id", NET]).await;
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    assert!(refused.stderr.contains(&format!("it vetted member {}", b.peer_id)), "{}", refused.stderr);
    let (root, cert) = (federation.root_key.display().to_string(), dir.path().join("b.cert").display().to_string());
    #[rustfmt::skip]
    let admitted = rpcmesh(&[
        "federation", "admit", "--root", &root, "--member", &b.peer_id, "--name", "Beta RPC",
        "--network-id", NET, "--out", &cert, "--vetting-report", &out_s,
    ])
    .await;
    assert_eq!(admitted.code, Some(0), "{}", admitted.stderr);
    let cert = rpcmesh_node::trust::cert_file::load(Path::new(&cert)).expect("certificate");
    assert_eq!(cert.body.vetting.expect("summary").body.verdict, VettingVerdict::Pass);
}

/// Through the mesh, a candidate whose node is slow fails the latency criterion by name, and the
/// relay round trip in the report shows the time is spent beyond the vetting daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_candidate_fails_the_p95_latency_through_the_mesh() {
    let dir = tempfile::tempdir().unwrap();
    let anvil = Anvil::start(CHAIN).await;
    seed(&anvil.url()).await;
    let slow = proxy(&anvil, Fault::Slow { delay_ms: 300, jitter_ms: 0 }).await;
    let (_federation, a, b) = member_and_candidate(dir.path(), &anvil, &slow.http_url()).await;
    let policy = policy(dir.path(), "max_p95_ms = 500", "max_p95_ms = 100");
    // 10 req/s of 300 ms requests keep 3 in flight, within the 8 relays B announces.
    let (run, report) =
        vet_through(dir.path(), &a, &b.peer_id, &anvil.url(), &["--policy", &policy, "--rate", "10"]).await;
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(failed(&report), ["p95_latency"], "{}", report["verdict"]);
    assert!(run.stdout.contains("failed p95_latency"), "{}", run.stdout);
    assert!(report["mesh"]["relay_p50_us"].as_u64().unwrap() >= 300_000, "{}", report["mesh"]);
    drop((a, b));
    slow.shutdown().await;
}

#[tokio::test]
async fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let key = vetter_key(dir.path()).display().to_string();
    let bad_policy = policy(dir.path(), "max_p95_ms = 500", "max_p59_ms = 500");
    for (args, says) in [
        (vec!["--endpoint", "http://127.0.0.1:1"], "--chain"),
        (
            vec![
                "--peer",
                "12D3KooWEf4Uomw9joW32DrmmvPavixz3KfHXuJxyPe31UWexdKF",
                "--chain",
                "1",
                "--ws",
                "ws://127.0.0.1:1",
            ],
            "cannot be used with",
        ),
        (vec!["--peer", "not-a-peer", "--chain", "1"], "--peer"),
        (vec!["--chain", "1"], "--endpoint URL"),
        (vec!["--endpoint", "https://node.example/v3/SECRET", "--chain", "1"], "https is not supported"),
        (vec!["--endpoint", "http://127.0.0.1:1", "--chain", "1", "--policy", &bad_policy], "max_p59_ms"),
        (vec!["--endpoint", "http://127.0.0.1:1", "--chain", "1", "--rate", "0"], "--rate"),
    ] {
        let mut all = vec!["federation", "vet", "--key", &key];
        all.extend(args.iter().copied());
        let run = rpcmesh(&all).await;
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("SECRET"), "a key in a URL is never printed: {}", run.stderr);
    }
    let printed = rpcmesh(&["federation", "vet", "--print-default-policy"]).await;
    assert_eq!(printed.code, Some(0));
    rpcmesh_testnet::vet::Policy::from_toml(&printed.stdout).expect("the printed policy parses");
}
