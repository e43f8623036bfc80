//! Operator safety across daemons: what a peer may have this node's upstream do is this node's
//! operator's decision, and what the upstream answers is checked before it is signed.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};

use crate::failover::{Forwarder, RpcClient};
use crate::support::*;

/// What the corrupting upstream cuts short: an answer of this method is truncated JSON.
const CORRUPTED_METHOD: &str = "eth_getCode";
const ACCOUNT: &str = "0x00000000000000000000000000000000000000aa";
/// anvil's first unlocked dev account.
const DEV: &str = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266";

/// An HTTP upstream in front of anvil that answers [`CORRUPTED_METHOD`] with truncated JSON
/// (HTTP 200) and passes everything else through: a node healthy to every probe, with one bad
/// answer.
async fn corrupting_upstream(anvil: &Anvil) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let target: hyper::Uri = anvil.url().parse().unwrap();
    let client = rpcmesh_node::upstream::HttpClient::new(1 << 20);
    let handler = async move |State((client, target)): State<(rpcmesh_node::upstream::HttpClient, hyper::Uri)>,
                              body: Bytes|
                -> (axum::http::StatusCode, Bytes) {
        if body.windows(CORRUPTED_METHOD.len()).any(|w| w == CORRUPTED_METHOD.as_bytes()) {
            return (axum::http::StatusCode::OK, Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"result":"0x60"#));
        }
        match client.post_json(&target, body, Duration::from_secs(5)).await {
            Ok(r) => {
                (axum::http::StatusCode::from_u16(r.status).unwrap_or(axum::http::StatusCode::BAD_GATEWAY), r.body)
            }
            Err(_) => (axum::http::StatusCode::BAD_GATEWAY, Bytes::new()),
        }
    };
    let app = axum::Router::new().route("/", post(handler)).with_state((client, target));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, task)
}

async fn balance(anvil: &Anvil) -> Value {
    let client = rpcmesh_node::upstream::HttpClient::new(1 << 20);
    let uri: hyper::Uri = anvil.url().parse().unwrap();
    rpcmesh_node::upstream::rpc_call(
        &client,
        &uri,
        "eth_getBalance",
        json!([ACCOUNT, "latest"]),
        Duration::from_secs(5),
    )
    .await
    .unwrap()
}

/// A's operator lets anything through its own gateway (a dev rig); B serves A over the relay.
/// B relays only the public surface plus what it granted A (`eth_accounts`): A's clients get -32601
/// naming B's settings for the rest, and B's node is not touched. A truncated answer of B's
/// node is an upstream error at B, never a signed receipt at A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_relays_only_what_its_operator_allows_and_never_signs_a_malformed_answer() {
    let dir = tempfile::tempdir().unwrap();
    let net = "safety-relay";
    let anvil = Anvil::start(31337).await;
    let mut fwd = Forwarder::start(anvil.port);
    let (b_upstream, _proxy) = corrupting_upstream(&anvil).await;

    let mut lax = fast_sets();
    lax.extend(["gateway.allow_methods=*".to_string(), "gateway.deny_methods=[]".to_string()]);
    let a = start(spec(dir.path(), "a", net, vec![(31337, fwd.url())], vec![], lax)).await;
    let boot = a.p2p_addr().await.unwrap();
    let mut b_sets = fast_sets();
    b_sets.push(format!(r#"relay.grants=[{{ peer = "{}", allow_methods = ["eth_accounts"] }}]"#, a.peer_id));
    let b = start(spec(dir.path(), "b", net, vec![(31337, format!("http://{b_upstream}"))], vec![boot], b_sets)).await;
    wait("A to see B healthy", async || {
        provider(&peers(&a).await, &b.peer_id).is_some_and(|v| v["chains"][0]["health"] == "healthy")
    })
    .await;

    // A's node goes down: everything A's clients ask goes to B.
    fwd.kill();
    let client = RpcClient::new(&a.gateway_addr);
    let r = client.call("eth_blockNumber", json!([])).await;
    assert!(r.body.get("result").is_some(), "the public surface is relayed: {}", r.body);
    assert_eq!(r.served_by, b.peer_id);

    let before = balance(&anvil).await;
    // The unlocked-account methods are in the `eth` namespace every provider announces, so A
    // relays them; B's policy is what stops them.
    for (method, params) in [
        ("eth_sendTransaction", json!([{ "from": DEV, "to": ACCOUNT, "value": "0x1" }])),
        ("eth_sign", json!([DEV, "0xdeadbeef"])),
        ("eth_signTransaction", json!([{ "from": DEV, "to": ACCOUNT, "value": "0x1" }])),
    ] {
        let r = client.call(method, params).await;
        assert_eq!(r.body["error"]["code"], -32601, "{method}: {}", r.body);
        let msg = r.body["error"]["message"].as_str().unwrap_or("");
        assert!(msg.contains(method) && msg.contains("relay.allow_methods"), "{method}: {msg}");
    }
    assert_eq!(balance(&anvil).await, before, "B's node must not have run a refused method");
    let refused = metric(&b.metrics().await.unwrap(), "rpcmesh_relays_total{direction=\"inbound\",status=\"refused\"}");
    assert!(refused >= 3.0, "B refused the relays: {refused}");

    // Granted to A by B's operator.
    let r = client.call("eth_accounts", json!([])).await;
    assert!(r.body["result"].to_string().contains(DEV), "granted method: {}", r.body);
    assert_eq!(r.served_by, b.peer_id);

    // B's node answers truncated JSON: B reports an upstream error and signs nothing.
    let receipts = |v: Value| v["receipts"].as_array().map(Vec::len).unwrap_or(0);
    let signed_before = receipts(a.admin_json("/receipts?limit=1000").await.unwrap());
    let r = client.call(CORRUPTED_METHOD, json!([ACCOUNT, "latest"])).await;
    assert_eq!(r.body["error"]["code"], -32002, "{}", r.body);
    let upstream_errors =
        metric(&b.metrics().await.unwrap(), "rpcmesh_relays_total{direction=\"inbound\",status=\"upstream_error\"}");
    assert!(upstream_errors >= 1.0, "B judged its node's answer malformed");
    assert_eq!(
        receipts(a.admin_json("/receipts?limit=1000").await.unwrap()),
        signed_before,
        "no receipt was signed for the malformed answer"
    );
}

/// One admin request with explicit headers; the status and body.
async fn admin_request(
    base: &str,
    method: hyper::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use http_body_util::{BodyExt as _, Full};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let mut req = hyper::Request::builder().method(method).uri(format!("{base}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(bytes::Bytes::from(body.to_string()))).unwrap();
    let resp = tokio::time::timeout(WAIT, client.request(req)).await.expect("admin answers").expect("admin reachable");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The admin API: mutating endpoints need the token `rpcmesh init` wrote (0600); a foreign
/// Host (DNS rebinding) is refused; the node cannot block itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_needs_its_token_to_change_anything_and_refuses_foreign_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(spec(dir.path(), "a", "safety-admin", vec![], vec![], fast_sets())).await;
    let token_path = d.home().join("admin.token");
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&token_path).expect("init wrote a token").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the token file is private");
    }
    let token = d.admin_token().unwrap();
    let bearer = format!("Bearer {token}");
    let json = ("content-type", "application/json");
    let other = rpcmesh_protocol::Identity::generate().peer_id().to_string();
    let put = |headers: Vec<(&'static str, String)>, peers: &[&str]| {
        let base = d.admin_url.clone();
        let body = json!({ "peers": peers }).to_string();
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            admin_request(&base, hyper::Method::PUT, "/blocked", &h, &body).await
        }
    };

    let (status, body) = put(vec![(json.0, json.1.into())], &[&other]).await;
    assert_eq!(status, 401, "no token: {body}");
    let (status, _) = put(vec![(json.0, json.1.into()), ("authorization", "Bearer wrong".into())], &[&other]).await;
    assert_eq!(status, 401, "wrong token");
    let (status, body) = put(vec![(json.0, json.1.into()), ("authorization", bearer.clone())], &[&d.peer_id]).await;
    assert_eq!(status, 400, "the node's own PeerId: {body}");
    assert!(body.contains("own PeerId"), "{body}");
    let (status, body) = put(vec![(json.0, json.1.into()), ("authorization", bearer.clone())], &[&other]).await;
    assert_eq!(status, 200, "{body}");
    let blocked = d.admin_json("/blocked").await.unwrap();
    assert_eq!(blocked["peers"], json!([other]));

    // Reads on loopback need no token; a foreign Host is refused whatever the token.
    let (status, _) = admin_request(&d.admin_url, hyper::Method::GET, "/status", &[], "").await;
    assert_eq!(status, 200);
    let rebinding = [("host", "attacker.example:8546"), ("authorization", bearer.as_str())];
    let (status, body) = admin_request(&d.admin_url, hyper::Method::GET, "/status", &rebinding, "").await;
    assert_eq!(status, 421, "{body}");
    let status = d.admin_json("/status").await.unwrap();
    assert_eq!(status["warnings"], json!([]), "nothing exposed beyond loopback");
}

/// 64 half-open sockets (TCP connect, then silence) from one host to A's p2p port: a new peer
/// from another address still connects at once instead of waiting for their handshakes to
/// time out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_sockets_do_not_lock_new_peers_out() {
    const HALF_OPEN: usize = 64;
    const PROMPTLY: Duration = Duration::from_secs(4);
    let dir = tempfile::tempdir().unwrap();
    let net = "safety-p2p";
    let a = start(spec(dir.path(), "a", net, vec![], vec![], fast_sets())).await;
    let boot = a.p2p_addr().await.unwrap();
    let port: u16 = boot.split('/').nth(4).and_then(|p| p.parse().ok()).expect("tcp port in the multiaddr");
    // The attacker: another loopback address, as another host would be.
    let mut held = Vec::new();
    for _ in 0..HALF_OPEN {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        held.push(s.connect(SocketAddr::from(([127, 0, 0, 1], port))).await.expect("connect"));
    }
    let b = start(spec(dir.path(), "b", net, vec![], vec![boot], fast_sets())).await;
    let up = std::time::Instant::now();
    loop {
        let status = a.admin_json("/status").await.unwrap();
        let peers = status["peers"].as_array().cloned().unwrap_or_default();
        if peers.iter().any(|p| p == b.peer_id.as_str()) {
            break;
        }
        assert!(up.elapsed() < PROMPTLY, "B not connected to A {PROMPTLY:?} after it came up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(held);
}

/// Half-open sockets (TCP connect, then silence) from `hosts` loopback addresses, `per_host`
/// each, kept open: a socket A closes (its handshake timed out, or it was refused) is opened
/// again on the next tick, so the flood holds A's pending slots for as long as it runs. Bounded:
/// at most `hosts * per_host` sockets, at most that many connects per tick.
fn half_open_flood(port: u16, hosts: u8, per_host: usize) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let target = SocketAddr::from(([127, 0, 0, 1], port));
        let mut held: Vec<Option<tokio::net::TcpStream>> = (0..usize::from(hosts) * per_host).map(|_| None).collect();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            for (i, slot) in held.iter_mut().enumerate() {
                let mut buf = [0u8; 64];
                let closed = match slot {
                    None => true,
                    Some(s) => match s.try_read(&mut buf) {
                        // A closed it (a listener sends nothing before the dialer's first message).
                        Ok(0) => true,
                        Ok(_) => false,
                        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                    },
                };
                if !closed {
                    continue;
                }
                let host = 2 + (i / per_host) as u8;
                let Ok(s) = tokio::net::TcpSocket::new_v4() else { continue };
                if s.bind(SocketAddr::from(([127, 0, 0, host], 0))).is_err() {
                    continue;
                }
                *slot = s.connect(target).await.ok();
            }
        }
    })
}

/// A's caps are full of strangers: `p2p.max_incoming` = `p2p.max_connections` = 3, taken by
/// in-process libp2p peers, and `p2p.max_pending_incoming` = 8, held by half-open sockets from
/// four other loopback addresses. B, a bootstrap peer of A that A also trusts, comes up and
/// still connects at once: its address is reserved before the handshake, and once its PeerId is
/// known a stranger's connection is closed to make room. A fourth stranger stays out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_and_trusted_peers_connect_while_strangers_fill_the_caps() {
    const STRANGERS: usize = 4;
    const CAP: usize = 3;
    const PROMPTLY: Duration = Duration::from_secs(10);
    let dir = tempfile::tempdir().unwrap();
    let net = "safety-reserved";
    // B first, not running: A's config names its PeerId and address.
    let b_port = rpcmesh_testnet::daemon::free_port().unwrap();
    let mut b_spec = spec(dir.path(), "b", net, vec![], vec![], fast_sets());
    b_spec.p2p_port = Some(b_port);
    let mut b = rpcmesh_testnet::daemon::Daemon::init(b_spec).expect("init B");
    let b_addr = format!("/ip4/127.0.0.1/tcp/{b_port}/p2p/{}", b.peer_id);
    let mut a_sets = fast_sets();
    a_sets.extend([
        format!("p2p.max_incoming={CAP}"),
        format!("p2p.max_connections={CAP}"),
        "p2p.max_pending_incoming=8".into(),
        format!("trust.peers=[\"{}\"]", b.peer_id),
    ]);
    let a = start(spec(dir.path(), "a", net, vec![], vec![b_addr], a_sets)).await;
    let a_addr = a.p2p_addr().await.unwrap();
    let port: u16 = a_addr.split('/').nth(4).and_then(|p| p.parse().ok()).expect("tcp port in the multiaddr");
    let admission = async |outcome: &str| {
        let text = a.metrics().await.unwrap_or_default();
        metric(&text, &format!("rpcmesh_p2p_admission_total{{outcome=\"{outcome}\"}}"))
    };
    let connected = async || {
        let status = a.admin_json("/status").await.unwrap_or_default();
        status["peers"].as_array().cloned().unwrap_or_default()
    };

    // Strangers fill the established places; the fourth is refused (and keeps redialling, about
    // once a second).
    let strangers: Vec<crate::attacker::Attacker> = {
        let mut v = Vec::new();
        for _ in 0..STRANGERS {
            v.push(crate::attacker::Attacker::connect(net, &a_addr).await);
        }
        v
    };
    wait("3 strangers connected to A", async || connected().await.len() == CAP).await;
    wait("a fourth stranger refused", async || admission("refused_incoming").await >= 1.0).await;
    // Half-open sockets from 127.0.0.2..=5 fill the pending slots of unreserved addresses.
    let flood = half_open_flood(port, 4, 8);
    wait("half-open sockets refused over p2p.max_pending_incoming", async || admission("refused_pending").await >= 1.0)
        .await;

    // B comes up: it dials A and A redials it; either way it gets in at once.
    b.run_args = vec!["--set".into(), format!("p2p.bootstrap=[\"{a_addr}\"]")];
    b.launch().expect("B starts");
    let up = std::time::Instant::now();
    loop {
        let peers = connected().await;
        if peers.iter().any(|p| p == b.peer_id.as_str()) {
            break;
        }
        assert!(up.elapsed() < PROMPTLY, "B not connected to A {PROMPTLY:?} after it started: {peers:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A stranger made room, and A is back within its cap with B among its peers.
    wait("a stranger's connection closed for B", async || admission("evicted").await >= 1.0).await;
    wait("A at its cap with B", async || {
        let peers = connected().await;
        peers.len() == CAP && peers.iter().any(|p| p == b.peer_id.as_str())
    })
    .await;
    assert!(admission("reserved").await >= 1.0);
    assert!(admission("refused_pending").await >= 1.0, "the flood was still being refused");
    flood.abort();
    drop(strangers);
}
