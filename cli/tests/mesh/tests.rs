use std::time::Duration;

use rpcmesh_node::clock::now_ms;
use rpcmesh_node::p2p::TopicKind;
use rpcmesh_protocol::{Identity, Signed};
use rpcmesh_testnet::sim::{SimBackend, SimChain};
use serde_json::Value;

use crate::attacker::Attacker;
use crate::support::*;

fn sim_addr() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Providers A, B and C, each on its own simulated node of one chain, B and C bootstrapped from
/// A, announcing every `heartbeat_ms`. The backends serve as long as the returned array lives.
async fn three_sim_providers(
    dir: &std::path::Path,
    net: &str,
    heartbeat_ms: u64,
) -> (
    [rpcmesh_testnet::sim::SimHandle; 3],
    rpcmesh_testnet::daemon::Daemon,
    rpcmesh_testnet::daemon::Daemon,
    rpcmesh_testnet::daemon::Daemon,
) {
    let chain = SimChain::with_history(1, 1000, 100);
    let sims = [
        SimBackend::spawn(chain, sim_addr()).await.unwrap(),
        SimBackend::spawn(chain, sim_addr()).await.unwrap(),
        SimBackend::spawn(chain, sim_addr()).await.unwrap(),
    ];
    let mut sets = sim_sets();
    sets.push(format!("announce.heartbeat_ms={heartbeat_ms}"));
    let a = start(spec(dir, "a", net, vec![(1, sims[0].http_url())], vec![], sets.clone())).await;
    let boot = a.p2p_addr().await.unwrap();
    let b = start(spec(dir, "b", net, vec![(1, sims[1].http_url())], vec![boot.clone()], sets.clone())).await;
    let c = start(spec(dir, "c", net, vec![(1, sims[2].http_url())], vec![boot], sets)).await;
    (sims, a, b, c)
}

/// Five daemons on loopback, each with its own backend (node 0: a real anvil; the others:
/// simulated nodes of chain 1, two of them also chain 137), all bootstrapped from node 0.
/// Every node's view must list all five providers with the right chains and current heads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_see_all_providers_with_chains_and_heads() {
    let dir = tempfile::tempdir().unwrap();
    let net = "mesh-five";
    let anvil = Anvil::start(31337).await;
    let chain1 = SimChain::with_history(1, 1000, 1_000);
    let chain137 = SimChain::with_history(137, 1000, 5_000);
    let mut sims = Vec::new();
    for _ in 0..4 {
        sims.push(SimBackend::spawn(chain1, sim_addr()).await.unwrap());
    }
    let polygon_a = SimBackend::spawn(chain137, sim_addr()).await.unwrap();
    let polygon_b = SimBackend::spawn(chain137, sim_addr()).await.unwrap();

    let node0 = start(spec(dir.path(), "n0", net, vec![(31337, anvil.url())], vec![], sim_sets())).await;
    let boot = node0.p2p_addr().await.unwrap();
    let mut nodes = vec![node0];
    for (i, sim) in sims.iter().enumerate() {
        let mut ups = vec![(1, sim.http_url())];
        if i == 2 {
            ups.push((137, polygon_a.http_url()));
        }
        if i == 3 {
            ups.push((137, polygon_b.http_url()));
        }
        nodes.push(start(spec(dir.path(), &format!("n{}", i + 1), net, ups, vec![boot.clone()], sim_sets())).await);
    }
    let expected_chains: Vec<Vec<u64>> = vec![vec![31337], vec![1], vec![1], vec![1, 137], vec![1, 137]];

    for observer in &nodes {
        wait("every node to see five current providers with their chains and heads", async || {
            let peers = peers(observer).await;
            let anvil_head = block_number(&anvil.url()).await.unwrap_or(0);
            let truth = |chain: u64| match chain {
                31337 => anvil_head,
                1 => chain1.head_now(),
                _ => chain137.head_now(),
            };
            peers.len() == 5
                && nodes.iter().zip(&expected_chains).all(|(n, chains)| {
                    let Some(p) = provider(&peers, &n.peer_id) else { return false };
                    let got: Vec<u64> =
                        p["chains"].as_array().unwrap().iter().map(|c| c["chain_id"].as_u64().unwrap()).collect();
                    p["expired"] == false
                        && got == *chains
                        && p["chains"].as_array().unwrap().iter().all(|c| {
                            let head = c["announced_head"].as_u64().unwrap_or(0);
                            let t = truth(c["chain_id"].as_u64().unwrap());
                            // Heads are announced per bucket of 4 blocks plus the heartbeat.
                            head + 8 >= t && head <= t + 1
                        })
                })
        })
        .await;
    }
}

/// A forged, a replayed, an expired and a wrong-network announcement are each refused by the
/// node that receives them and never reach a third node; repeat offenders are graylisted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_gossip_is_rejected_and_never_forwarded() {
    let dir = tempfile::tempdir().unwrap();
    let net = "mesh-attack";
    let chain = SimChain::with_history(1, 1000, 100);
    let sim_a = SimBackend::spawn(chain, sim_addr()).await.unwrap();
    let sim_b = SimBackend::spawn(chain, sim_addr()).await.unwrap();
    let a = start(spec(dir.path(), "a", net, vec![(1, sim_a.http_url())], vec![], sim_sets())).await;
    let a_addr = a.p2p_addr().await.unwrap();
    let b = start(spec(dir.path(), "b", net, vec![(1, sim_b.http_url())], vec![a_addr.clone()], sim_sets())).await;
    wait("B to see A", async || provider(&peers(&b).await, &a.peer_id).is_some()).await;

    // The attacker talks to A only.
    let x = Attacker::connect(net, &a_addr).await;
    let x_peer = x.identity.peer_id().to_string();
    wait("A to be subscribed as seen by the attacker", async || {
        x.p2p.topic_peers(TopicKind::Announcements).await.unwrap().iter().any(|p| p.to_string() == a.peer_id)
    })
    .await;

    let sign = |seq: u64, issued: u64, ttl: u64, version: &str, network: &str| {
        Signed::sign(Attacker::announcement(network, seq, issued, ttl, version), &x.identity)
    };
    let b_sees = async |seq: u64| provider(&peers(&b).await, &x_peer).is_some_and(|p| p["seq"].as_u64() == Some(seq));
    let a_metric = async |reason: &str, outcome: &str| {
        metric(
            &a.metrics().await.unwrap_or_default(),
            &format!(
                "rpcmesh_gossip_messages_total{{kind=\"announcements\",outcome=\"{outcome}\",reason=\"{reason}\"}}"
            ),
        )
    };

    // A valid announcement propagates A -> B.
    x.publish(&sign(10, now_ms(), 30_000, "attacker/valid-10", net)).await;
    wait("B to see the attacker's seq 10", async || b_sees(10).await).await;
    x.publish(&sign(11, now_ms(), 30_000, "attacker/valid-11", net)).await;
    wait("B to see seq 11", async || b_sees(11).await).await;

    // Replayed (older seq, fresh bytes so gossip dedup cannot hide it).
    x.publish(&sign(10, now_ms(), 30_000, "attacker/replayed", net)).await;
    wait("A to ignore the stale seq", async || a_metric("stale_seq", "ignore").await >= 1.0).await;
    // Expired.
    x.publish(&sign(12, now_ms() - 120_000, 15_000, "attacker/expired", net)).await;
    wait("A to ignore the expired one", async || a_metric("expired", "ignore").await >= 1.0).await;
    // Another network.
    x.publish(&sign(13, now_ms(), 30_000, "attacker/other-net", "some-other-net")).await;
    wait("A to reject the wrong network", async || a_metric("wrong_network", "reject").await >= 1.0).await;
    // Forged: claims to come from a key that did not sign it.
    let victim = Identity::generate();
    let mut forged = sign(14, now_ms(), 30_000, "attacker/forged", net);
    forged.signer = victim.public_key();
    x.publish(&forged).await;
    wait("A to reject the bad signature", async || a_metric("bad_signature", "reject").await >= 1.0).await;

    // A marker published after all of them, on the same path: once B has it, B has had every
    // chance to receive the bad ones.
    x.publish(&sign(15, now_ms(), 30_000, "attacker/valid-15", net)).await;
    wait("B to see seq 15", async || b_sees(15).await).await;
    let b_peers = peers(&b).await;
    let xp = provider(&b_peers, &x_peer).unwrap();
    assert_eq!(xp["software_version"], "attacker/valid-15");
    assert!(provider(&b_peers, &victim.peer_id().to_string()).is_none(), "the forged announcement reached B");
    let b_metrics = b.metrics().await.unwrap();
    for outcome in ["reject", "ignore"] {
        let n =
            metric(&b_metrics, &format!("rpcmesh_gossip_messages_total{{kind=\"announcements\",outcome=\"{outcome}\""));
        assert_eq!(n, 0.0, "B received {n} invalid announcements (outcome {outcome}): A forwarded them");
    }
    assert!(metric(&b_metrics, "rpcmesh_gossip_messages_total{kind=\"announcements\",outcome=\"accept\"") >= 3.0);

    // Keep sending invalid messages: A's score for the attacker falls below the graylist threshold.
    for seq in 16..20 {
        let mut f = sign(seq, now_ms(), 30_000, "attacker/forged", net);
        f.signer = victim.public_key();
        x.publish(&f).await;
    }
    let graylist = rpcmesh_node::p2p::score_thresholds().graylist_threshold;
    wait("A to graylist the attacker", async || {
        provider(&peers(&a).await, &x_peer).and_then(|p| p["gossip_score"].as_f64()).is_some_and(|s| s < graylist)
    })
    .await;
}

/// A node that stops is marked expired in the others' views.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_node_expires_in_other_views() {
    let dir = tempfile::tempdir().unwrap();
    let (_sims, a, b, mut c) = three_sim_providers(dir.path(), "mesh-expire", 500).await;
    for n in [&a, &b] {
        wait("C to be current in A's and B's views", async || {
            provider(&peers(n).await, &c.peer_id).is_some_and(|p| p["expired"] == false && p["connected"] == true)
        })
        .await;
    }
    c.kill();
    for n in [&a, &b] {
        wait("C to be expired, disconnected and unhealthy", async || {
            provider(&peers(n).await, &c.peer_id).is_some_and(|p| {
                p["expired"] == true && p["connected"] == false && p["chains"][0]["health"] == "expired"
            })
        })
        .await;
    }
}

/// SIGTERM stops a daemon cleanly (exit 0); restarted while every peer is gone, it serves
/// its persisted view at once, before it could reconnect to anyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_serves_its_persisted_view_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // Long-lived announcements, so the persisted ones are still current after the restart.
    let (_sims, mut a, mut b, mut c) = three_sim_providers(dir.path(), "mesh-restart", 20_000).await;
    wait("B to see A and C", async || {
        let p = peers(&b).await;
        provider(&p, &a.peer_id).is_some() && provider(&p, &c.peer_id).is_some()
    })
    .await;

    a.kill();
    c.kill();
    assert_eq!(b.stop(Duration::from_secs(30)), Some(0), "SIGTERM must stop the daemon with exit code 0\n{}", b.log());
    let restarted_at = now_ms();
    b.restart().unwrap();
    b.wait_up(WAIT).await.unwrap();
    let first = peers(&b).await;
    let status = b.admin_json("/status").await.unwrap();
    assert_eq!(status["connected_peers"], 0, "nobody is left to reconnect to");
    for other in [&a, &c] {
        let p = provider(&first, &other.peer_id)
            .unwrap_or_else(|| panic!("restarted B lacks {} in {first:#?}", other.peer_id));
        assert_eq!(p["source"], "store", "{p:#}");
        assert_eq!(p["expired"], false, "{p:#}");
        assert!(p["received_at_ms"].as_u64().unwrap() < restarted_at);
        assert_eq!(p["chains"][0]["chain_id"], 1);
    }
}

/// An upstream that reports another chain id is never used, with a clear status and log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_on_the_wrong_chain_is_marked_unusable() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimBackend::spawn(SimChain::with_history(1, 1000, 10), sim_addr()).await.unwrap();
    let d = start(spec(dir.path(), "w", "mesh-wrong", vec![(5, sim.http_url())], vec![], sim_sets())).await;
    wait("the upstream to be marked wrong_chain", async || {
        d.admin_json("/status").await.is_ok_and(|s: Value| {
            s["chains"][0]["upstreams"][0]["state"] == "wrong_chain" && s["chains"][0]["upstreams"][0]["reported"] == 1
        })
    })
    .await;
    assert!(d.log().contains("reports a different chain id"), "{}", d.log());
    let ready =
        rpcmesh_node::admin::client::get(&format!("{}/ready", d.admin_url), Duration::from_secs(5)).await.unwrap();
    assert_eq!(ready.0, 503);
}

/// With a `ws` URL on its upstream, the daemon follows the head over `newHeads`: here HTTP
/// polling is made rare (10 min), so only the subscription can move the head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_head_follows_newheads_over_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let anvil = Anvil::start(31337).await;
    let mut sets = fast_sets();
    sets.push("prober.interval_ms=600000".into());
    let mut d = rpcmesh_testnet::daemon::Daemon::init(spec(
        dir.path(),
        "ws",
        "mesh-ws",
        vec![(31337, anvil.url())],
        vec![],
        sets,
    ))
    .unwrap();
    let config = d.home().join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let with_ws = text.replace(
        &format!("{{ http = \"{}\" }}", anvil.url()),
        &format!("{{ http = \"{}\", ws = \"ws://127.0.0.1:{}\" }}", anvil.url(), anvil.port),
    );
    assert_ne!(text, with_ws, "the upstream line was rewritten");
    std::fs::write(&config, with_ws).unwrap();
    d.launch().unwrap();
    d.wait_up(WAIT).await.unwrap();
    let head = async || {
        d.admin_json("/status").await.ok().and_then(|s: Value| s["chains"][0]["upstreams"][0]["head"].as_u64())
    };
    let mut first = None;
    wait("a first head", async || {
        first = head().await;
        first.is_some()
    })
    .await;
    let first = first.unwrap();
    wait("the head to advance 3 blocks without HTTP polls", async || head().await.is_some_and(|h| h >= first + 3))
        .await;
}
