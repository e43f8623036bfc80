//! Censorship end to end on one anvil: B's node filters a watched address without saying so
//! (its balance reads 0, transactions to it are refused), C's node filters it and says so
//! (`filters:address-list:…` in its announced policies), D and E are honest, A has no node.
//! Canaries label B and C mesh-wide before any client asks about the address; a client of any
//! gateway (B's own included) gets the true balance and its transaction to the address is
//! accepted and mined; disclosed policies are shown and avoided on request or by config.

use rpcmesh_testnet::daemon::Daemon;
use rpcmesh_testnet::fault_proxy::FaultProxyHandle;
use serde_json::{Value, json};

use crate::failover::{Answer, RpcClient};
use crate::support::*;

const CHAIN: u64 = 31337;
/// anvil's dev account #9 (10 000 ETH): the watched address the filters act on.
const WATCHED: &str = "0xa0ee7a142d267c1f36714e4a8f75612f20a79720";
/// anvil's dev account #1: sends to the watched address.
const SENDER: &str = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";
/// What C declares it filters (sha256 of its list, as an operator would announce it).
const DECLARED: &str = "filters:address-list:5f1c0ffee";

struct Mesh {
    _dir: tempfile::TempDir,
    anvil: Anvil,
    _proxies: Vec<FaultProxyHandle>,
    nodes: Vec<Daemon>,
}

fn sets(extra: &[&str]) -> Vec<String> {
    let mut s = fast_sets();
    s.push(format!("censorship.watch=[\"{WATCHED}\"]"));
    s.push("censorship.canary_interval_secs=2".into());
    s.extend(extra.iter().map(|e| e.to_string()));
    s
}

/// A (no node), B (undisclosed filter), C (disclosed filter), D and E (honest; E avoids
/// `filters:*` by config).
async fn mesh(net: &str) -> Mesh {
    let dir = tempfile::tempdir().unwrap();
    let anvil = Anvil::start(CHAIN).await;
    let censor = rpcmesh_testnet::faults::parse_fault(&format!("censor={WATCHED}")).unwrap();
    let declared = format!("chain.{CHAIN}.policies=[\"{DECLARED}\"]");
    let providers = vec![
        (sets(&[]), Some(censor.clone())),
        (sets(&[&declared]), Some(censor)),
        (sets(&[]), None),
        (sets(&["censorship.avoid=[\"filters:*\"]"]), None),
    ];
    let (proxies, nodes) = proxied_mesh(dir.path(), net, (&anvil, CHAIN), sets(&[]), providers, 0..5).await;
    Mesh { _dir: dir, anvil, _proxies: proxies, nodes }
}

fn result(a: &Answer, what: &str) -> Value {
    assert_eq!(a.status, 200, "{what}: {}", a.body);
    a.body.get("result").cloned().unwrap_or_else(|| panic!("{what} failed: {}", a.body))
}

/// The filter label `observer` holds on `accused` for the chain, if any.
async fn label(observer: &Daemon, accused: &str) -> Option<Value> {
    let p = peers(observer).await;
    let v = provider(&p, accused)?;
    v["filters"].as_array()?.iter().find(|f| f["chain_id"] == CHAIN).cloned()
}

async fn explain(d: &Daemon, query: &str) -> Vec<Value> {
    let v = d.admin_json(&format!("/explain?chain={CHAIN}&method=eth_getBalance{query}")).await.unwrap();
    v["candidates"].as_array().cloned().unwrap_or_default()
}

fn reasons_of<'a>(candidates: &'a [Value], peer: &str) -> Vec<&'a str> {
    candidates
        .iter()
        .filter(|c| c["peer_id"] == peer)
        .flat_map(|c| c["reasons"].as_array().into_iter().flatten().filter_map(Value::as_str))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_are_labelled_mesh_wide_by_canaries_and_never_reach_a_client() {
    let m = mesh("censorship").await;
    let (b, c) = (m.nodes[1].peer_id.clone(), m.nodes[2].peer_id.clone());

    // No client has asked about the address yet: canaries prove both filters, and every daemon
    // labels both providers with it (from its own canaries or from gossiped evidence).
    for observer in &m.nodes {
        for accused in [&b, &c] {
            if observer.peer_id == *accused {
                continue;
            }
            wait("a filter label on the censoring provider", async || {
                label(observer, accused)
                    .await
                    .is_some_and(|l| l["subjects"].as_array().is_some_and(|s| s.contains(&json!(WATCHED))))
            })
            .await;
        }
    }
    // Labelled, not cordoned: they still serve everything else.
    let seen_by_a = peers(&m.nodes[0]).await;
    for accused in [&b, &c] {
        let v = provider(&seen_by_a, accused).unwrap();
        assert_eq!(v["cordons"], json!([]), "a filter is a label, not a cordon: {v}");
    }
    // Both ways a canary proves a filter are on record as verified evidence: the zero balance
    // (a state read proven wrong by another operator's proof) and the refused dry transaction.
    wait("state and refusal evidence against the undisclosed filter", async || {
        let v = m.nodes[0].admin_json("/evidence").await.unwrap_or_default();
        let list = v["evidence"].as_array().cloned().unwrap_or_default();
        let has =
            |kind: &str| list.iter().any(|e| e["accused"] == b.as_str() && e["kind"] == kind && e["verified"] == true);
        has("state") && has("refusal")
    })
    .await;
    let about = explain(&m.nodes[0], &format!("&address={WATCHED}")).await;
    assert!(reasons_of(&about, &b).iter().any(|r| r.starts_with("filters 0xa0ee")), "{about:?}");
    assert!(explain(&m.nodes[0], "").await.iter().any(|x| x["peer_id"] == b && x["eligible"] == true));

    // Reads about the watched address are always verified: the true balance on every gateway,
    // the censoring provider's own included, in the default (sample) mode.
    let truth = direct(&m.anvil.url(), "eth_getBalance", json!([WATCHED, "latest"])).await;
    assert_ne!(truth, json!("0x0"));
    for (i, node) in m.nodes.iter().enumerate() {
        let client = RpcClient::at(format!("http://{}/{CHAIN}", node.gateway_addr));
        for _ in 0..5 {
            let a = client.call_raw(&call_body("eth_getBalance", json!([WATCHED, "latest"])), &[]).await;
            // A block may pass between the two reads; the balance of an idle account does not change.
            assert_eq!(
                result(&a, "watched balance"),
                truth,
                "gateway {i}: the filtered balance never reaches a client"
            );
            assert_eq!(a.verified, "proof", "gateway {i}: a watched read is proven whatever the mode");
            assert_ne!(a.served_by, b, "gateway {i}");
            assert_ne!(a.served_by, c, "gateway {i}");
        }
    }

    // A transaction to the watched address through the undisclosed censor's own gateway: its
    // node refuses it, another operator takes it, and it is mined.
    let raw = direct(
        &m.anvil.url(),
        "eth_signTransaction",
        json!([{ "from": SENDER, "to": WATCHED, "value": "0x1", "gas": "0x5208" }]),
    )
    .await;
    let via_b = RpcClient::at(format!("http://{}/{CHAIN}", m.nodes[1].gateway_addr));
    let a = via_b.call_raw(&call_body("eth_sendRawTransaction", json!([raw])), &[]).await;
    let hash = result(&a, "transaction to the watched address");
    let mut receipt = Value::Null;
    wait("the transaction to be mined", async || {
        receipt = direct(&m.anvil.url(), "eth_getTransactionReceipt", json!([hash.clone()])).await;
        !receipt.is_null()
    })
    .await;
    assert_eq!(receipt["status"], "0x1", "{receipt}");
    let text = m.nodes[1].metrics().await.unwrap();
    assert!(
        metric(&text, "rpcmesh_censorship_refusals_total{served_by=\"own\"}") >= 1.0,
        "B counted its own node's refusal: {text}"
    );

    // The canaries' dry transactions were refused by honest nodes for lack of funds (and so
    // never mined), by the filters for another reason.
    let text = m.nodes[0].metrics().await.unwrap();
    assert!(
        metric(&text, "rpcmesh_censorship_canary_checks_total{probe=\"write\",outcome=\"honest\"}") >= 1.0,
        "{text}"
    );
    assert!(metric(&text, "rpcmesh_censorship_labels_active") >= 2.0, "{text}");

    // Disclosure: C's policy is announced; E avoids it by config, any gateway on request.
    let seen = peers(&m.nodes[3]).await;
    assert_eq!(provider(&seen, &c).unwrap()["chains"][0]["policies"], json!([DECLARED]));
    assert!(reasons_of(&explain(&m.nodes[4], "").await, &c).iter().any(|r| r.contains(DECLARED)));
    let via_d = RpcClient::at(format!("http://{}/{CHAIN}", m.nodes[3].gateway_addr));
    for _ in 0..10 {
        let a = via_d.call_raw(&call_body("eth_blockNumber", json!([])), &[("x-rpcmesh-avoid", "filters")]).await;
        result(&a, "block number avoiding filters");
        assert_ne!(a.served_by, c);
    }
    // C's own gateway, asked to avoid filters, does not use its own (declared) node.
    let via_c = RpcClient::at(format!("http://{}/{CHAIN}", m.nodes[2].gateway_addr));
    for _ in 0..5 {
        let a = via_c.call_raw(&call_body("eth_blockNumber", json!([])), &[("x-rpcmesh-avoid", "filters")]).await;
        result(&a, "block number at the filter's own gateway");
        assert_ne!(a.served_by, c, "its own declared node is avoided too");
    }
    let bad = via_d.call_raw(&call_body("eth_blockNumber", json!([])), &[("x-rpcmesh-avoid", "a b")]).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
}
