//! Federated trust: members route to and serve each other; a valid peer outside the
//! federation is never routed to, and its relays are refused.

use serde_json::Value;

use rpcmesh_testnet::federation::Federation;

use crate::failover::{Forwarder, RpcClient};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outsider_is_never_routed_to_and_its_relays_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let net = "trust-fed";
    let anvil = Anvil::start(31337).await;
    let mut fwd: Vec<Forwarder> = (0..3).map(|_| Forwarder::start(anvil.port)).collect();

    let federation = Federation::init(&bin(), dir.path()).unwrap();
    assert_eq!(federation.id.len(), 64, "federation init prints the root public key alone: {:?}", federation.id);

    let mut sets: Vec<String> = fast_sets().into_iter().filter(|s| !s.starts_with("trust.mode")).collect();
    sets.push(federation.trust_set());
    let init = |name: &str, f: &Forwarder, boot: Vec<String>| {
        rpcmesh_testnet::daemon::Daemon::init(spec(dir.path(), name, net, vec![(31337, f.url())], boot, sets.clone()))
            .unwrap()
    };
    let admit = |d: &mut rpcmesh_testnet::daemon::Daemon, name: &str| federation.admit(d, name, net, "1d").unwrap();

    let mut a = init("a", &fwd[0], vec![]);
    admit(&mut a, "Alpha Nodes");
    a.launch().unwrap();
    a.wait_up(WAIT).await.unwrap();
    let boot = a.p2p_addr().await.unwrap();
    let mut b = init("b", &fwd[1], vec![boot.clone()]);
    admit(&mut b, "Beta RPC");
    b.launch().unwrap();
    let mut x = init("x", &fwd[2], vec![boot]);
    x.launch().unwrap();
    b.wait_up(WAIT).await.unwrap();
    x.wait_up(WAIT).await.unwrap();

    let trust_kind =
        |peers: &[Value], id: &str| provider(peers, id).map(|p| p["trust"]["kind"].as_str().unwrap_or("").to_string());
    wait("A to see B as a member and X as untrusted, healthy", async || {
        let p = peers(&a).await;
        trust_kind(&p, &b.peer_id).as_deref() == Some("member")
            && trust_kind(&p, &x.peer_id).as_deref() == Some("untrusted")
            && provider(&p, &b.peer_id).is_some_and(|v| v["chains"][0]["health"] == "healthy")
            && provider(&p, &b.peer_id).is_some_and(|v| v["operator"] == "Beta RPC")
    })
    .await;
    wait("X to see A and B as members", async || {
        let p = peers(&x).await;
        trust_kind(&p, &a.peer_id).as_deref() == Some("member")
            && trust_kind(&p, &b.peer_id).as_deref() == Some("member")
    })
    .await;

    // X's node goes down: X asks A and B over the relay; both refuse it.
    fwd[2].kill();
    let xc = RpcClient::new(&x.gateway_addr);
    let r = xc.call("eth_blockNumber", serde_json::json!([])).await;
    assert_eq!(r.body["error"]["code"], -32002, "X must not be served by the federation: {}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("refused"), "{}", r.body);
    let refused = |t: String| metric(&t, "rpcmesh_relays_total{direction=\"inbound\",status=\"refused\"}");
    let total = refused(a.metrics().await.unwrap()) + refused(b.metrics().await.unwrap());
    assert!(total >= 1.0, "A or B must have refused X's relay");

    // A's node goes down: B serves A's clients; X, although healthy, is never chosen.
    fwd[2].restart();
    fwd[0].kill();
    let ac = RpcClient::new(&a.gateway_addr);
    for _ in 0..20 {
        let r = ac.call("eth_blockNumber", serde_json::json!([])).await;
        assert!(r.body.get("result").is_some(), "{}", r.body);
        assert_eq!(r.served_by, b.peer_id);
    }
    let explain = a.admin_json("/explain?chain=31337").await.unwrap();
    let xc = explain["candidates"].as_array().unwrap().iter().find(|c| c["peer_id"] == x.peer_id.as_str()).unwrap();
    assert_eq!(xc["eligible"], false);
    assert!(xc["reasons"].to_string().contains("not trusted"), "{xc}");

    // B goes away too: A has no trusted provider left and answers an error rather than use X.
    b.kill();
    wait("A to route nowhere", async || {
        ac.call("eth_blockNumber", serde_json::json!([])).await.body["error"]["code"] == -32002
    })
    .await;
    for _ in 0..10 {
        let r = ac.call("eth_blockNumber", serde_json::json!([])).await;
        assert_ne!(r.served_by, x.peer_id, "A routed to the outsider");
        assert_eq!(r.body["error"]["code"], -32002, "{}", r.body);
    }
}
