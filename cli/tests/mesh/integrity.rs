//! Verified answers end to end: one anvil is the chain; provider B's node lies in every way the
//! fault proxy knows (`lie`: block hashes and header fields, transactions, receipts, log data and
//! omitted logs, balances, nonces, code, storage, proofs, `eth_call`), C and D are honest, A has
//! no node. A client asking in strict mode — through A, or through the liar's own
//! daemon B — never gets a wrong answer, and each answer says how it was verified.

use rpcmesh_testnet::daemon::Daemon;
use rpcmesh_testnet::fault_proxy::FaultProxyHandle;
use rpcmesh_testnet::sim::Fault;
use serde_json::{Value, json};

use crate::failover::{Answer, RpcClient};
use crate::support::*;

const CHAIN: u64 = 31337;
/// anvil's first dev account: 10 000 ETH, never spends in this test.
const RICH: &str = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266";
const STRICT: (&str, &str) = ("x-rpcmesh-verify", "strict");

struct Mesh {
    _dir: tempfile::TempDir,
    anvil: Anvil,
    proxies: Vec<FaultProxyHandle>,
    nodes: Vec<Daemon>,
}

/// A (no node), B (lying node), C and D (honest), all seeing each other healthy.
async fn mesh(net: &str) -> Mesh {
    let dir = tempfile::tempdir().unwrap();
    let anvil = Anvil::start(CHAIN).await;
    let providers = vec![(fast_sets(), Some(Fault::Lie)), (fast_sets(), None), (fast_sets(), None)];
    let (proxies, nodes) = proxied_mesh(dir.path(), net, (&anvil, CHAIN), fast_sets(), providers, 0..2).await;
    Mesh { _dir: dir, anvil, proxies, nodes }
}

async fn strict(client: &RpcClient, method: &str, params: Value) -> Answer {
    client.call_raw(&call_body(method, params), &[STRICT]).await
}

fn result(a: &Answer, what: &str) -> Value {
    assert_eq!(a.status, 200, "{what}: {}", a.body);
    assert_eq!(a.body["id"], 7, "{what}: {}", a.body);
    a.body.get("result").cloned().unwrap_or_else(|| panic!("{what} failed: {}", a.body))
}

/// Reads that the liar falsifies, asked in strict mode through `client`: every answer is the
/// chain's own, and says how it was verified.
async fn every_strict_answer_is_true(m: &Mesh, client: &RpcClient, via: &str) {
    let liar = m.nodes[1].peer_id.clone();
    let balance = direct(&m.anvil.url(), "eth_getBalance", json!([RICH, "latest"])).await;
    for i in 0..12 {
        let a = strict(client, "eth_getBalance", json!([RICH, "latest"])).await;
        assert_eq!(result(&a, "balance"), balance, "{via}: balance {i} is the chain's");
        assert_eq!(a.verified, "proof", "{via}: balance {i} was proven");
        assert_ne!(a.served_by, liar, "{via}: the liar's answer never reaches the client");

        let n = block_number(&m.anvil.url()).await.unwrap().saturating_sub(1);
        let tag = format!("{n:#x}");
        let truth = direct(&m.anvil.url(), "eth_getBlockByNumber", json!([tag, false])).await;
        let a = strict(client, "eth_getBlockByNumber", json!([tag, false])).await;
        assert_eq!(result(&a, "block")["hash"], truth["hash"], "{via}: block {n} is the chain's");
        assert_eq!(a.verified, "header", "{via}: block {n} was checked against the trusted chain");
    }
}

/// A contract creation whose constructor emits one log (`LOG0` of the word 42) and leaves no code.
const EMIT_LOG: &str = "0x602a60005260206000a000";

/// Sends the creation from the rich account directly to anvil; returns the mined receipt.
async fn mined_log_transaction(anvil: &Anvil) -> Value {
    let tx = direct(&anvil.url(), "eth_sendTransaction", json!([{ "from": RICH, "data": EMIT_LOG, "gas": "0x30000" }]))
        .await;
    let mut receipt = Value::Null;
    wait("the log transaction to be mined", async || {
        receipt = direct(&anvil.url(), "eth_getTransactionReceipt", json!([tx.clone()])).await;
        !receipt.is_null()
    })
    .await;
    // Two more blocks: the trusted head (refreshed at most every second) is past it.
    let mined = u64::from_str_radix(receipt["blockNumber"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    wait("two blocks on top of it", async || block_number(&anvil.url()).await.is_some_and(|n| n >= mined + 2)).await;
    receipt
}

/// Every other verifiable read the liar falsifies, in strict mode: the chain's own answer, marked
/// verified.
async fn every_kind_of_strict_answer_is_true(m: &Mesh, client: &RpcClient, receipt: &Value, via: &str) {
    let liar = m.nodes[1].peer_id.clone();
    let block = receipt["blockNumber"].clone();
    let tx = receipt["transactionHash"].clone();
    let reads: Vec<(&str, Value, &str)> = vec![
        ("eth_getTransactionByHash", json!([tx]), "header"),
        ("eth_getTransactionReceipt", json!([tx]), "header"),
        ("eth_getBlockReceipts", json!([block]), "header"),
        ("eth_getBlockByNumber", json!([block, true]), "header"),
        ("eth_getLogs", json!([{ "fromBlock": block, "toBlock": block }]), "header"),
        ("eth_getTransactionCount", json!([RICH, block]), "proof"),
        ("eth_getCode", json!([RICH, block]), "proof"),
        ("eth_getStorageAt", json!([RICH, "0x0", block]), "proof"),
        ("eth_call", json!([{ "to": RICH, "data": "0x" }, block]), "quorum"),
        ("eth_estimateGas", json!([{ "from": RICH, "to": RICH, "value": "0x1" }, block]), "quorum"),
    ];
    for (method, params, level) in reads {
        let truth = direct(&m.anvil.url(), method, params.clone()).await;
        let a = strict(client, method, params).await;
        assert_eq!(result(&a, method), truth, "{via}: {method} is the chain's own answer");
        assert_eq!(a.verified, level, "{via}: {method} verified");
        assert_ne!(a.served_by, liar, "{via}: {method}: the liar's answer never reaches the client");
    }
}

/// Sample mode through the liar's own daemon: its node's wrong balances reach clients until a
/// sampled check catches one; from then on every answer of that node is checked and none passes.
/// Returns how many wrong answers got through first. At `latest` (never rewritten in sample mode)
/// a sampled answer is compared with the proven balance at the trusted head, and on a difference
/// the node is asked again at that head, where its lie is proven.
async fn sample_mode_stops_the_liar_at_its_first_catch(m: &Mesh, via_liar: &RpcClient, block: &Value) -> usize {
    let b = &m.nodes[1];
    let params = json!([RICH, block]);
    let balance = direct(&m.anvil.url(), "eth_getBalance", params.clone()).await;
    let sample = [("x-rpcmesh-verify", "sample")];
    let caught = async || {
        let text = b.metrics().await.unwrap_or_default();
        metric(&text, "rpcmesh_integrity_checks_total{method=\"eth_getBalance\",outcome=\"lie_state\"}") >= 1.0
    };
    let mut wrong = 0;
    // At a 5 % sample, 1000 answers all unsampled has odds of 1 in 10^22.
    for _ in 0..1000 {
        let a = via_liar.call_raw(&call_body("eth_getBalance", params.clone()), &sample).await;
        if result(&a, "sampled balance") != balance {
            wrong += 1;
        }
        if caught().await {
            break;
        }
    }
    assert!(caught().await, "a sampled check caught the lying node within 1000 answers");
    for i in 0..30 {
        let a = via_liar.call_raw(&call_body("eth_getBalance", params.clone()), &sample).await;
        assert_eq!(result(&a, "balance after the catch"), balance, "answer {i} after the catch is the chain's");
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_provider_is_stopped_in_sample_mode_and_never_reaches_a_strict_client() {
    let mut m = mesh("integrity-strict").await;
    let liar = m.nodes[1].peer_id.clone();
    let receipt = mined_log_transaction(&m.anvil).await;
    assert_eq!(receipt["logs"].as_array().map(Vec::len), Some(1), "the constructor emitted its log: {receipt}");
    let via_a = RpcClient::at(format!("http://{}/{CHAIN}", m.nodes[0].gateway_addr));
    let via_b = RpcClient::at(format!("http://{}/{CHAIN}", m.nodes[1].gateway_addr));
    let wrong = sample_mode_stops_the_liar_at_its_first_catch(&m, &via_b, &json!("latest")).await;
    eprintln!("sample mode: {wrong} wrong answer(s) reached the client before the first catch");

    every_strict_answer_is_true(&m, &via_a, "through a daemon without a node").await;
    every_kind_of_strict_answer_is_true(&m, &via_a, &receipt, "through a daemon without a node").await;
    // The liar's own daemon does not believe its own node either.
    every_strict_answer_is_true(&m, &via_b, "through the liar's own daemon").await;
    every_kind_of_strict_answer_is_true(&m, &via_b, &receipt, "through the liar's own daemon").await;

    // The checks are counted, lies by kind.
    let metrics = m.nodes[1].metrics().await.unwrap();
    assert!(metric(&metrics, "rpcmesh_integrity_checks_total{method=\"eth_getBalance\",outcome=\"proof\"}") >= 12.0);
    assert!(
        metric(&metrics, "rpcmesh_integrity_checks_total{method=\"eth_getBalance\",outcome=\"lie_state\"}") >= 1.0,
        "B caught its own node's wrong balance: {metrics}"
    );

    // The evidence reaches C and D, which never asked the liar, and each cordons it on its own
    // re-check.
    // A routes to whoever is fastest: slow the honest nodes down until A has asked the liar and
    // caught it (its relayed answers come with the liar's signed receipts).
    for p in &m.proxies[1..] {
        p.set_fault(Fault::Slow { delay_ms: 300, jitter_ms: 0 });
    }
    let a = &m.nodes[0];
    wait("A to catch the liar's relayed answer and report it", async || {
        let _ = strict(&via_a, "eth_getBalance", json!([RICH, "latest"])).await;
        let text = a.metrics().await.unwrap_or_default();
        metric(&text, "rpcmesh_evidence_total{outcome=\"reported\"") >= 1.0
    })
    .await;
    for p in &m.proxies[1..] {
        p.heal();
    }
    for observer in &m.nodes[2..] {
        wait("the liar cordoned by a provider that never asked it", async || {
            let p = peers(observer).await;
            provider(&p, &liar).is_some_and(|v| v["cordons"].as_array().is_some_and(|c| !c.is_empty()))
        })
        .await;
        let evidence = observer.admin_json("/evidence").await.unwrap();
        let list = evidence["evidence"].as_array().cloned().unwrap_or_default();
        assert!(
            list.iter().any(|e| e["accused"] == liar.as_str() && e["verified"] == true),
            "{}: verified evidence against the liar: {evidence}",
            observer.peer_id
        );
    }

    // The liar's own daemon holds the mesh's proof against itself: after a restart (its
    // suspicions, kept in memory, are gone; the cordon is in its store) every answer of its own
    // node is checked in full, so none of its sample-mode answers is the node's lie.
    wait("the liar to hold the cordon on itself", async || {
        let p = peers(&m.nodes[1]).await;
        provider(&p, &liar).is_some_and(|v| v["cordons"].as_array().is_some_and(|c| !c.is_empty()))
    })
    .await;
    m.nodes[1].stop(WAIT);
    m.nodes[1].restart().expect("restart the liar's daemon");
    m.nodes[1].wait_up(WAIT).await.expect("the liar's daemon is back");
    // From its first answer, not once its evidence task has run: a strict read could pass
    // before that, while sample mode still trusted the node (a CI failure).
    let p = peers(&m.nodes[1]).await;
    assert!(
        provider(&p, &liar).is_some_and(|v| v["cordons"].as_array().is_some_and(|c| !c.is_empty())),
        "the restarted daemon holds its stored cordon from the start: {p:?}"
    );
    let balance = direct(&m.anvil.url(), "eth_getBalance", json!([RICH, "latest"])).await;
    wait("the restarted daemon to answer strict reads again", async || {
        let a = strict(&via_b, "eth_getBalance", json!([RICH, "latest"])).await;
        a.status == 200 && a.body.get("result") == Some(&balance)
    })
    .await;
    for i in 0..30 {
        let a = via_b
            .call_raw(&call_body("eth_getBalance", json!([RICH, "latest"])), &[("x-rpcmesh-verify", "sample")])
            .await;
        assert_eq!(result(&a, "balance from the cordoned daemon"), balance, "sample answer {i} of the restarted liar");
    }

    // A mode that does not exist is refused before anything is routed.
    let a = via_a.call_raw(&call_body("eth_blockNumber", json!([])), &[("x-rpcmesh-verify", "paranoid")]).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.body["id"], 7, "{}", a.body);
}

/// A liar that no client's request ever reaches is still caught: C's canary rounds audit every
/// operator (its head block and a proven balance) whatever the watch list, so C proves B's lie on
/// its own and cordons it, and the evidence cordons B at D too. No client request is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_liar_no_client_asks_is_caught_by_the_canary_audit() {
    let dir = tempfile::tempdir().unwrap();
    let anvil = Anvil::start(CHAIN).await;
    let mut auditing = fast_sets();
    auditing.push("censorship.canary_interval_secs=1".into());
    let providers = vec![(fast_sets(), Some(Fault::Lie)), (auditing, None), (fast_sets(), None)];
    let (_proxies, nodes) =
        proxied_mesh(dir.path(), "integrity-audit", (&anvil, CHAIN), fast_sets(), providers, 2..4).await;
    let liar = nodes[1].peer_id.clone();
    for observer in &nodes[2..] {
        wait("the liar cordoned without a client request", async || {
            let p = peers(observer).await;
            provider(&p, &liar).is_some_and(|v| v["cordons"].as_array().is_some_and(|c| !c.is_empty()))
        })
        .await;
    }
    let text = nodes[2].metrics().await.unwrap_or_default();
    assert!(
        metric(&text, "rpcmesh_censorship_canary_checks_total{probe=\"audit\",outcome=\"proven_wrong\"}") >= 1.0,
        "C's audit proved it: {}",
        text.lines().filter(|l| l.contains("canary")).collect::<Vec<_>>().join("\n")
    );
}
