//! What an operator's Prometheus scrapes: a live daemon over anvil serves a few requests (an
//! answer, a refused method, a batch with an unknown method, one over WebSocket) and `/metrics`
//! then has the request families with their types, counters that moved, and no family outside
//! the `rpcmesh_` and `libp2p_` prefixes.

use std::collections::HashMap;

use futures::{SinkExt as _, StreamExt as _};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::failover::RpcClient;
use crate::support::*;

const CHAIN: u64 = 31337;

/// `# TYPE name type` lines: family name to type.
fn types(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_string(), kind.to_string()))
        .collect()
}

/// Name of every sample line and every `# TYPE`/`# HELP`/`# UNIT` line.
fn names(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.is_empty() && *l != "# EOF")
        .filter_map(|l| match l.strip_prefix("# ") {
            Some(meta) => meta.split(' ').nth(1),
            None => l.split(['{', ' ']).next(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_daemon_exports_request_metrics_under_its_prefixes_only() {
    let dir = tempfile::tempdir().unwrap();
    let anvil = Anvil::start(CHAIN).await;
    let d = start(spec(dir.path(), "m", "metrics", vec![(CHAIN, anvil.url())], vec![], fast_sets())).await;
    let up = format!("rpcmesh_upstream_up{{chain=\"{CHAIN}\",upstream=\"0\"}}");
    wait("the upstream to be probed healthy", async || metric(&d.metrics().await.unwrap_or_default(), &up) == 1.0)
        .await;

    let client = RpcClient::new(&d.gateway_addr);
    let r = client.call("eth_blockNumber", json!([])).await;
    assert!(r.body.get("result").is_some(), "{}", r.body);
    let r = client.call("eth_sign", json!(["0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266", "0xdeadbeef"])).await;
    assert_eq!(r.body["error"]["code"], -32601, "eth_sign is refused by default: {}", r.body);
    let batch = json!([
        { "jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": [] },
        { "jsonrpc": "2.0", "id": 2, "method": "rpcmesh_noSuchMethod", "params": [] },
    ]);
    let r = client.call_raw(&batch.to_string(), &[]).await;
    assert_eq!(r.body.as_array().map(Vec::len), Some(2), "{}", r.body);

    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/", d.gateway_addr)).await.expect("websocket connects");
    ws.send(Message::text(r#"{"jsonrpc":"2.0","id":7,"method":"eth_blockNumber","params":[]}"#)).await.unwrap();
    let answer = ws.next().await.expect("an answer").expect("a message");
    assert!(answer.to_text().unwrap_or("").contains("\"result\""), "{answer:?}");

    let text = d.metrics().await.unwrap();
    let t = types(&text);
    for (family, kind) in [
        ("rpcmesh_requests", "counter"),
        ("rpcmesh_request_duration_seconds", "histogram"),
        ("rpcmesh_request_attempts", "histogram"),
        ("rpcmesh_request_hedges", "counter"),
        ("rpcmesh_request_failovers", "counter"),
        ("rpcmesh_request_busy_retries", "counter"),
        ("rpcmesh_target_duration_seconds", "histogram"),
        ("rpcmesh_upstream_up", "gauge"),
        ("rpcmesh_upstream_latency_seconds", "gauge"),
        ("rpcmesh_upstream_head_block", "gauge"),
        ("rpcmesh_upstream_consecutive_failures", "gauge"),
    ] {
        assert_eq!(t.get(family).map(String::as_str), Some(kind), "# TYPE of {family} in:\n{text}");
    }
    assert!(t.keys().any(|f| f.starts_with("libp2p_gossipsub_")), "gossipsub's families are under libp2p_gossipsub_");

    let requests = |method: &str, outcome: &str, served_by: &str| {
        let l = format!(
            "rpcmesh_requests_total{{chain=\"{CHAIN}\",method=\"{method}\",outcome=\"{outcome}\",served_by=\"{served_by}\"}}"
        );
        metric(&text, &l)
    };
    assert_eq!(requests("eth_blockNumber", "ok", "own"), 2.0, "HTTP and WebSocket:\n{text}");
    assert_eq!(requests("eth_sign", "caller_error", "none"), 1.0);
    assert_eq!(requests("eth_chainId", "ok", "own"), 1.0);
    assert_eq!(requests("other", "caller_error", "none"), 1.0, "an unknown method is `other`");
    let calls = |transport: &str| {
        metric(&text, &format!("rpcmesh_request_duration_seconds_count{{chain=\"{CHAIN}\",transport=\"{transport}\"}}"))
    };
    assert_eq!(calls("http"), 3.0, "a batch is one call");
    assert_eq!(calls("ws"), 1.0);
    assert!(metric(&text, "rpcmesh_target_duration_seconds_count{kind=\"own\"}") >= 3.0);
    assert!(metric(&text, &format!("rpcmesh_request_attempts_count{{chain=\"{CHAIN}\"}}")) >= 3.0);
    assert!(text.contains(&format!("rpcmesh_upstream_head_block{{chain=\"{CHAIN}\",upstream=\"0\"}}")));

    let unprefixed: Vec<&str> =
        names(&text).into_iter().filter(|n| !n.starts_with("rpcmesh_") && !n.starts_with("libp2p_")).collect();
    assert!(unprefixed.is_empty(), "families outside rpcmesh_/libp2p_: {unprefixed:?}");
}
