//! The response cache on a real anvil: settled blocks and hash-pinned answers come from the
//! cache on the second ask, an answer about the head lasts only while the head does, and a
//! reorganisation (`anvil_reorg`) never leaves a replaced block served.

use serde_json::{Value, json};

use crate::failover::{Answer, RpcClient};
use crate::support::*;

const CHAIN: u64 = 31337;
const RICH: &str = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266";
const OTHER: &str = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";

async fn ask(client: &RpcClient, method: &str, params: Value) -> Answer {
    let body = json!({"jsonrpc": "2.0", "id": 3, "method": method, "params": params}).to_string();
    let a = client.call_raw(&body, &[]).await;
    assert_eq!(a.status, 200, "{method}: {}", a.body);
    assert!(a.body.get("result").is_some(), "{method}: {}", a.body);
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_answers_hold_only_while_the_chain_says_so() {
    let dir = tempfile::tempdir().unwrap();
    // Automine: blocks only when the test mines them.
    let anvil = Anvil::start_with(CHAIN, &[]).await;
    for _ in 0..10 {
        direct(&anvil.url(), "evm_mine", json!([])).await;
    }
    let mut sets = fast_sets();
    sets.extend(["cache.enabled=true", "cache.final_depth_blocks=2", "cache.head_ttl_ms=600000"].map(String::from));
    let d = start(spec(dir.path(), "c", "cache", vec![(CHAIN, anvil.url())], vec![], sets)).await;
    let up = format!("rpcmesh_upstream_head_block{{chain=\"{CHAIN}\",upstream=\"0\"}}");
    wait("the upstream's head to be known", async || metric(&d.metrics().await.unwrap_or_default(), &up) == 10.0).await;
    let client = RpcClient::new(&d.gateway_addr);

    // Settled history (block 7 with the head at 10, two blocks deep) and a hash-pinned block.
    let first = ask(&client, "eth_getBlockByNumber", json!(["0x7", false])).await;
    assert_eq!(first.cache, "miss");
    let again = ask(&client, "eth_getBlockByNumber", json!(["0x7", false])).await;
    assert_eq!((again.cache.as_str(), &again.body["result"]), ("hit", &first.body["result"]));
    assert_eq!(again.body["id"], 3, "the asker's own id");
    let old_hash = first.body["result"]["hash"].clone();
    assert_eq!(ask(&client, "eth_getBlockByHash", json!([old_hash, false])).await.cache, "miss");
    assert_eq!(ask(&client, "eth_getBlockByHash", json!([old_hash, false])).await.cache, "hit");

    // About the head: reused while the head stays, not once it moved.
    let n = ask(&client, "eth_blockNumber", json!([])).await;
    assert_eq!(ask(&client, "eth_blockNumber", json!([])).await.cache, "hit");
    direct(&anvil.url(), "evm_mine", json!([])).await;
    wait("the new head to be seen", async || metric(&d.metrics().await.unwrap_or_default(), &up) == 11.0).await;
    let moved = ask(&client, "eth_blockNumber", json!([])).await;
    assert_eq!(moved.cache, "miss");
    assert_ne!(moved.body["result"], n.body["result"]);

    // A reorganisation five blocks deep (with a transaction, so the new blocks differ) replaces
    // block 7: the cache must drop it once the daemon sees the new head.
    let tx = json!({ "from": RICH, "to": OTHER, "value": "0x1" });
    direct(&anvil.url(), "anvil_reorg", json!([5, [[tx, 0]]])).await;
    let new7 = direct(&anvil.url(), "eth_getBlockByNumber", json!(["0x7", false])).await;
    assert_ne!(new7["hash"], old_hash, "anvil replaced block 7");
    let evicted = "rpcmesh_cache_reorg_evictions_total";
    let mut served = Vec::new();
    wait("the cache to see the reorganisation", async || {
        let a = ask(&client, "eth_getBlockByNumber", json!(["0x7", false])).await;
        served.push(a.body["result"]["hash"].clone());
        metric(&d.metrics().await.unwrap_or_default(), evicted) >= 1.0 && a.body["result"]["hash"] == new7["hash"]
    })
    .await;
    assert!(served.iter().all(|h| *h == old_hash || *h == new7["hash"]), "{served:?}");
    let after = ask(&client, "eth_getBlockByNumber", json!(["0x7", false])).await;
    assert_eq!(
        (after.cache.as_str(), &after.body["result"]["hash"]),
        ("hit", &new7["hash"]),
        "cached again, the new block"
    );
    // The hash-pinned answer still holds: that block's content never changes.
    assert_eq!(ask(&client, "eth_getBlockByHash", json!([old_hash, false])).await.cache, "hit");

    let text = d.metrics().await.unwrap();
    assert!(
        metric(&text, &format!("rpcmesh_cache_requests_total{{chain=\"{CHAIN}\",outcome=\"hit\"}}")) >= 4.0,
        "{text}"
    );
    assert!(metric(&text, "rpcmesh_cache_bytes") > 0.0, "{text}");
}
