//! Vetting a candidate through the mesh: [`MeshTarget`] sends every request of the battery to a
//! running daemon's admin route `POST /relay/{peer}/{chain}`, which relays it over libp2p to
//! exactly the candidate's daemon, which passes it to its own node. The candidate is tested as
//! the federation will use it, through its relay, and needs to expose nothing but its p2p port.
//!
//! What changes against `--endpoint` (and what the report says about it, in [`ThroughMesh`]):
//! - Every answer comes with the candidate's signed relay receipt; the `relay_receipts`
//!   criterion requires one that verifies on every answer.
//! - The candidate's relay policy (`relay.allow_methods`) decides which methods the mesh may
//!   use: a method it refuses is its policy, listed as such, never a failure of its node. Its
//!   relay also refuses malformed requests before the node sees them, so the parse-error and
//!   empty-batch conformance checks are "not tested through the mesh".
//! - A relay carries requests and batches, not subscriptions: the WebSocket check is "not
//!   tested through the mesh".
//! - The load ramp is bounded by the capacity the candidate announces ([`bound_load`]); its
//!   `busy` answers are counted as such.
//! - Latencies include the hop to the local daemon, the libp2p round trip and the candidate's
//!   daemon; the relay's own round trip is reported beside them.
//!
//! [`MeshTarget::call`] never retries and holds one std mutex only to count (no await inside).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use rpcmesh_node::admin::relay::{MAX_RELAY_TIMEOUT_MS, RelayAnswer};
use rpcmesh_node::upstream::{HttpClient, TransportError};
use rpcmesh_protocol::PublicKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::target::{MAX_ANSWER_BYTES, RpcTarget, TargetError, redact_url, short};
use crate::report::stats::percentile;

/// Most relays in flight through the admin API at once: it accepts 64 connections
/// (`ADMIN_MAX_CONNECTIONS`), and the operator's own calls and a metrics scraper need a few.
pub const MESH_MAX_IN_FLIGHT: usize = 48;
/// Rate of the ramp when neither `--rate` nor an announcement gives one, requests/s (as for
/// `--endpoint`).
pub const DEFAULT_RATE: u32 = 50;
/// Time the daemon gets beyond the relay's own timeout to answer the admin request: the relay's
/// `timeout` status, not this client's, should end a slow request.
const ADMIN_MARGIN: Duration = Duration::from_secs(2);
/// Distinct refusals kept for the report (more are only counted).
const MAX_REFUSALS: usize = 20;
/// Relay round trips kept for the percentiles: a 60 s ramp at 1000 req/s; later ones are not
/// sampled.
const MAX_RELAY_SAMPLES: usize = 100_000;
/// Bytes an admin answer may add to the candidate's answer (envelope and receipt).
const ENVELOPE_BYTES: usize = 64 * 1024;

/// Why the route through the mesh cannot be used (nothing about the candidate is known yet).
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// The candidate is not a PeerId.
    #[error("{0:?} is not a PeerId: {1}")]
    NotAPeer(String, String),
    /// The admin API could not be read.
    #[error("{0}")]
    Admin(String),
    /// The admin API refused the token.
    #[error(
        "the admin API at {0} refused the relay route (HTTP {1}): give --home the vetting daemon's home, whose \
         admin.token_file holds its token"
    )]
    Token(String, u16),
    /// The candidate is the daemon it would be reached through.
    #[error("{0} is the daemon at --via itself: vet its own node with --endpoint")]
    Itself(String),
}

/// What the candidate announces for the chain, as the vetting daemon's mesh view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announced {
    /// Capacity offered to the mesh, requests/s.
    pub max_requests_per_sec: u32,
    /// Relays served at once before it answers busy.
    pub max_concurrent_relays: u32,
    /// Whether it says it keeps full history.
    pub archive: bool,
    /// Method groups it says it serves.
    pub method_groups: Vec<String>,
    /// How the vetting daemon trusts it (`unknown`, `member`, ...): a candidate is usually not
    /// trusted yet, which does not stop the relay (the candidate decides whom it serves).
    pub trust: String,
    /// Whether the vetting daemon was connected to it when the run started.
    pub connected: bool,
}

/// A request the candidate's relay refused, and how often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// What was asked: the method, or the batch's methods, or `malformed request`.
    pub request: String,
    /// The candidate's reason.
    pub reason: String,
    /// By its relay method policy (its choice), as opposed to its relay's request checks.
    pub by_policy: bool,
    /// How many times.
    pub count: u64,
}

/// The report's section on how the candidate was reached (present only through the mesh).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThroughMesh {
    /// The candidate's PeerId.
    pub candidate: String,
    /// PeerId of the daemon that relayed (the vetting operator's node).
    pub via: String,
    /// Its admin API (redacted).
    pub via_admin: String,
    /// What the candidate announced for the chain, if the vetting daemon knew it.
    pub announced: Option<Announced>,
    /// Requests answered by the candidate's node (relay status `ok`).
    pub relayed: u64,
    /// Of those, answers whose signed receipt verified.
    pub receipts_verified: u64,
    /// Answers whose receipt did not verify.
    pub receipts_failed: u64,
    /// Answers without a receipt.
    pub receipts_missing: u64,
    /// Every outcome by relay status (`ok`, `busy`, `refused`, `upstream_error`, `timeout`,
    /// `not_serving_chain`) or local failure (`unreachable`: the peer could not be reached;
    /// `admin_error`: the local admin API failed).
    pub statuses: BTreeMap<String, u64>,
    /// What the candidate's relay refused.
    pub refusals: Vec<Refusal>,
    /// Median relay round trip (libp2p and the candidate's daemon and node), µs.
    pub relay_p50_us: Option<u64>,
    /// 95th percentile relay round trip, µs.
    pub relay_p95_us: Option<u64>,
    /// Parts of the battery that cannot go through a relay, and why.
    pub not_tested: Vec<String>,
    /// What to keep in mind reading the figures.
    pub caveats: Vec<String>,
}

impl ThroughMesh {
    /// Answers relayed without a verified receipt.
    pub fn unreceipted(&self) -> u64 {
        self.receipts_failed + self.receipts_missing
    }

    /// Answers the candidate refused as busy.
    pub fn busy(&self) -> u64 {
        self.statuses.get("busy").copied().unwrap_or(0)
    }
}

/// The ramp's rate and concurrency when going through the mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBounds {
    /// Top rate, requests/s.
    pub rate_per_sec: u32,
    /// Most requests in flight.
    pub max_in_flight: usize,
    /// What was lowered and why, for the report's caveats.
    pub notes: Vec<String>,
}

/// The ramp bounded by the candidate's relay capacity: the rate is `--rate` (default: the
/// announced `max_requests_per_sec`) but at most that; requests in flight are at most its
/// `max_concurrent_relays` (more would be answered busy by design) and [`MESH_MAX_IN_FLIGHT`].
/// Testing above the announced capacity would measure the capacity guard, not the node.
pub fn bound_load(rate: Option<u32>, max_in_flight: usize, announced: Option<&Announced>) -> LoadBounds {
    let mut notes = Vec::new();
    let announced_rate = announced.map(|a| a.max_requests_per_sec).filter(|r| *r > 0);
    let rate_per_sec = match (rate, announced_rate) {
        (Some(r), Some(a)) if r > a => {
            notes.push(format!("--rate {r} lowered to the {a} req/s the candidate announces"));
            a
        }
        (Some(r), _) => r,
        (None, Some(a)) => a,
        (None, None) => {
            notes.push(format!(
                "the candidate's capacity is not known to the vetting daemon: ramp to {DEFAULT_RATE} req/s"
            ));
            DEFAULT_RATE
        }
    };
    let mut bound = max_in_flight.min(MESH_MAX_IN_FLIGHT);
    if let Some(a) = announced.filter(|a| a.max_concurrent_relays > 0)
        && (a.max_concurrent_relays as usize) < bound
    {
        bound = a.max_concurrent_relays as usize;
        notes
            .push(format!("at most {bound} requests in flight: the {bound} concurrent relays the candidate announces"));
    }
    if bound < max_in_flight && bound == MESH_MAX_IN_FLIGHT {
        notes.push(format!("at most {bound} requests in flight through the admin API"));
    }
    LoadBounds { rate_per_sec, max_in_flight: bound.max(1), notes }
}

#[derive(Debug, Default)]
struct Stats {
    relayed: u64,
    receipts_verified: u64,
    receipts_failed: u64,
    receipts_missing: u64,
    statuses: BTreeMap<String, u64>,
    refusals: Vec<Refusal>,
    relay_us: Vec<u64>,
}

impl Stats {
    fn count(&mut self, status: &str) {
        *self.statuses.entry(status.to_string()).or_default() += 1;
    }

    fn refused(&mut self, request: String, reason: &str, by_policy: bool) {
        let reason = short(reason, 300);
        if let Some(r) = self.refusals.iter_mut().find(|r| r.request == request && r.reason == reason) {
            r.count += 1;
        } else if self.refusals.len() < MAX_REFUSALS {
            self.refusals.push(Refusal { request, reason, by_policy, count: 1 });
        }
    }
}

/// A candidate reached through a daemon's relay; see the module docs.
#[derive(Debug)]
pub struct MeshTarget {
    uri: hyper::Uri,
    token: Option<String>,
    client: HttpClient,
    /// The relay's timeout, as asked of the daemon.
    relay_timeout: Duration,
    candidate: String,
    via: String,
    via_admin: String,
    network_id: String,
    announced: Option<Announced>,
    caveats: Vec<String>,
    stats: Mutex<Stats>,
}

impl MeshTarget {
    /// Reaches `candidate` (a PeerId or public key) on `chain_id` through the daemon whose admin
    /// API is at `admin` (`token`: its admin token, which the relay route requires). Reads the
    /// daemon's identity and its view of the candidate, and checks the token; the candidate itself
    /// is first asked by the battery. Requests time out after `timeout` (at most
    /// [`MAX_RELAY_TIMEOUT_MS`]); at most `max_in_flight` are sent at once.
    pub async fn connect(
        admin: &str,
        token: Option<String>,
        candidate: &str,
        chain_id: u64,
        timeout: Duration,
        max_in_flight: usize,
    ) -> Result<Self, MeshError> {
        let key = PublicKey::parse(candidate).map_err(|e| MeshError::NotAPeer(candidate.into(), e.to_string()))?;
        let candidate = key.to_peer_id().to_string();
        let admin = admin.trim_end_matches('/').to_string();
        let get = async |path: &str| -> Result<Value, MeshError> {
            let url = format!("{admin}{path}");
            let body = rpcmesh_node::admin::client::get_ok_with_token(&url, token.as_deref(), Duration::from_secs(10))
                .await
                .map_err(|e| MeshError::Admin(e.to_string()))?;
            serde_json::from_slice(&body).map_err(|e| MeshError::Admin(format!("{url} did not answer JSON: {e}")))
        };
        let status = get("/status").await?;
        let field = |k: &str| status.get(k).and_then(Value::as_str).map(str::to_string);
        let (Some(via), Some(network_id)) = (field("peer_id"), field("network_id")) else {
            return Err(MeshError::Admin(format!("{admin}/status lacks peer_id or network_id")));
        };
        if via == candidate {
            return Err(MeshError::Itself(candidate));
        }
        let peers = get(&format!("/peers?chain={chain_id}")).await?;
        let announced = announced(&peers, &candidate, chain_id);

        let relay_timeout = timeout.min(Duration::from_millis(MAX_RELAY_TIMEOUT_MS));
        let url = format!("{admin}/relay/{candidate}/{chain_id}?timeout_ms={}", relay_timeout.as_millis());
        let uri: hyper::Uri = url.parse().map_err(|e| MeshError::Admin(format!("{}: {e}", redact_url(&url))))?;
        let client = HttpClient::with_max_in_flight(MAX_ANSWER_BYTES + ENVELOPE_BYTES, max_in_flight.max(1));
        // The route answers an empty body 400 once the token passed, 401 when it did not: the
        // token is checked without relaying anything.
        let probe = client
            .post_json_bearer(&uri, Bytes::new(), token.as_deref(), Duration::from_secs(10))
            .await
            .map_err(|e| MeshError::Admin(format!("{}: {e}", redact_url(&admin))))?;
        match probe.status {
            400 => {}
            401 | 403 => return Err(MeshError::Token(redact_url(&admin), probe.status)),
            404 | 405 => {
                return Err(MeshError::Admin(format!(
                    "{} has no relay route (HTTP {}): the daemon predates vetting through the mesh",
                    redact_url(&admin),
                    probe.status
                )));
            }
            s => {
                let text = short(&String::from_utf8_lossy(&probe.body), 200);
                return Err(MeshError::Admin(format!("{} answered HTTP {s}: {text}", redact_url(&admin))));
            }
        }
        let mut caveats = vec![
            format!(
                "Reached through the mesh: each request went to the admin API of {via}, which relayed it over \
                 libp2p to {candidate}, whose daemon passed it to its own node. Latencies include the local hop, \
                 the libp2p round trip and the candidate's daemon (the relay round trip alone is reported), so a \
                 candidate far from the vetting daemon looks slower than its node is."
            ),
            "Methods the candidate's relay policy refuses are its choice of what it serves the mesh, listed under \
             refusals, not failures of its node; a required method group it refuses still fails, as the mesh \
             cannot use it."
                .to_string(),
        ];
        if timeout > relay_timeout {
            caveats.push(format!("request timeout lowered to the relay route's {MAX_RELAY_TIMEOUT_MS} ms"));
        }
        Ok(Self {
            uri,
            token,
            client,
            relay_timeout,
            candidate,
            via,
            via_admin: redact_url(&admin),
            network_id,
            announced,
            caveats,
            stats: Mutex::default(),
        })
    }

    /// The candidate's PeerId.
    pub fn candidate(&self) -> &str {
        &self.candidate
    }

    /// PeerId of the daemon that relays.
    pub fn via(&self) -> &str {
        &self.via
    }

    /// The network the relaying daemon is in (the candidate is vetted in it).
    pub fn network_id(&self) -> &str {
        &self.network_id
    }

    /// What the candidate announced, if the daemon knows it.
    pub fn announced(&self) -> Option<&Announced> {
        self.announced.as_ref()
    }

    /// Adds a note to the report's caveats (a bound applied to the ramp, say).
    pub fn add_caveat(&mut self, note: String) {
        self.caveats.push(note);
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The candidate's announced capacity on `chain_id` in a `/peers` answer.
fn announced(peers: &Value, candidate: &str, chain_id: u64) -> Option<Announced> {
    let p = peers
        .get("providers")?
        .as_array()?
        .iter()
        .find(|p| p.get("peer_id").and_then(Value::as_str) == Some(candidate))?;
    let c =
        p.get("chains")?.as_array()?.iter().find(|c| c.get("chain_id").and_then(Value::as_u64) == Some(chain_id))?;
    let num = |k: &str| c.get(k).and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
    Some(Announced {
        max_requests_per_sec: num("max_requests_per_sec"),
        max_concurrent_relays: num("max_concurrent_relays"),
        archive: c.get("archive").and_then(Value::as_bool).unwrap_or(false),
        method_groups: c
            .get("method_groups")
            .and_then(Value::as_array)
            .map(|g| g.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default(),
        trust: p.pointer("/trust/kind").and_then(Value::as_str).unwrap_or("unknown").to_string(),
        connected: p.get("connected").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// How a refused request is named in the report: its method, a batch's methods, or
/// `malformed request`.
fn request_label(body: &[u8]) -> String {
    let method = |v: &Value| v.get("method").and_then(Value::as_str).map(|m| short(m, 60));
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) if items.is_empty() => "empty batch".into(),
        Ok(Value::Array(items)) => {
            let mut methods: Vec<String> = items.iter().filter_map(method).collect();
            methods.dedup();
            methods.truncate(3);
            format!("batch of {}: {}", items.len(), methods.join(", "))
        }
        Ok(v) => method(&v).unwrap_or_else(|| "malformed request".into()),
        Err(_) => "malformed request".into(),
    }
}

impl RpcTarget for MeshTarget {
    async fn call(&self, body: Bytes) -> Result<Bytes, TargetError> {
        let http_timeout = self.relay_timeout + ADMIN_MARGIN;
        let reply =
            match self.client.post_json_bearer(&self.uri, body.clone(), self.token.as_deref(), http_timeout).await {
                Ok(r) => r,
                Err(TransportError::Timeout(ms)) => {
                    self.stats().count("timeout");
                    return Err(TargetError::Timeout(ms));
                }
                Err(e) => {
                    self.stats().count("admin_error");
                    return Err(TargetError::Transport(format!("the vetting daemon's admin API: {e}")));
                }
            };
        let admin_error = |reply_body: &[u8]| {
            let v: Option<Value> = serde_json::from_slice(reply_body).ok();
            v.as_ref()
                .and_then(|v| v.get("error"))
                .and_then(Value::as_str)
                .map_or_else(|| short(&String::from_utf8_lossy(reply_body), 200), |e| short(e, 300))
        };
        match reply.status {
            200 => {}
            504 => {
                self.stats().count("timeout");
                return Err(TargetError::Timeout(self.relay_timeout.as_millis() as u64));
            }
            502 => {
                self.stats().count("unreachable");
                return Err(TargetError::Transport(format!("through the mesh: {}", admin_error(&reply.body))));
            }
            s => {
                self.stats().count("admin_error");
                let why = admin_error(&reply.body);
                return Err(TargetError::Transport(format!("the vetting daemon's admin API answered HTTP {s}: {why}")));
            }
        }
        let answer: RelayAnswer = serde_json::from_slice(&reply.body).map_err(|e| {
            self.stats().count("admin_error");
            TargetError::Transport(format!("the vetting daemon's relay route answered something else: {e}"))
        })?;
        let mut stats = self.stats();
        stats.count(&answer.status);
        if answer.status != "ok" {
            let reason = answer.reason.unwrap_or_default();
            if answer.status == "refused" {
                stats.refused(request_label(&body), &reason, answer.method_refused);
            }
            return Err(TargetError::Relay { status: answer.status, reason, method_refused: answer.method_refused });
        }
        stats.relayed += 1;
        match &answer.receipt {
            Some(r) if r.verified => stats.receipts_verified += 1,
            Some(_) => stats.receipts_failed += 1,
            None => stats.receipts_missing += 1,
        }
        if stats.relay_us.len() < MAX_RELAY_SAMPLES {
            stats.relay_us.push(answer.relay_us);
        }
        drop(stats);
        match answer.answer {
            Some(raw) => Ok(Bytes::from(raw.get().to_owned())),
            None => Err(TargetError::Transport(
                answer.reason.unwrap_or_else(|| "the candidate's answer is not JSON".into()),
            )),
        }
    }

    fn describe(&self) -> String {
        format!("peer {} through the mesh via {}", self.candidate, self.via)
    }

    fn through_mesh(&self) -> Option<ThroughMesh> {
        let stats = self.stats();
        let mut relay_us = stats.relay_us.clone();
        relay_us.sort_unstable();
        Some(ThroughMesh {
            candidate: self.candidate.clone(),
            via: self.via.clone(),
            via_admin: self.via_admin.clone(),
            announced: self.announced.clone(),
            relayed: stats.relayed,
            receipts_verified: stats.receipts_verified,
            receipts_failed: stats.receipts_failed,
            receipts_missing: stats.receipts_missing,
            statuses: stats.statuses.clone(),
            refusals: stats.refusals.clone(),
            relay_p50_us: percentile(&relay_us, 50.0),
            relay_p95_us: percentile(&relay_us, 95.0),
            not_tested: vec![
                "websocket: eth_subscribe needs a WebSocket to the node; a relay carries requests and batches, \
                 not subscriptions (vet the candidate's --ws with --endpoint)"
                    .into(),
            ],
            caveats: self.caveats.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announced(rps: u32, relays: u32) -> Announced {
        Announced {
            max_requests_per_sec: rps,
            max_concurrent_relays: relays,
            archive: false,
            method_groups: vec![],
            trust: "unknown".into(),
            connected: true,
        }
    }

    #[test]
    fn the_ramp_stays_within_the_announced_capacity() {
        let b = bound_load(None, 512, Some(&announced(40, 64)));
        assert_eq!((b.rate_per_sec, b.max_in_flight), (40, MESH_MAX_IN_FLIGHT));
        let b = bound_load(Some(100), 512, Some(&announced(40, 4)));
        assert_eq!((b.rate_per_sec, b.max_in_flight), (40, 4));
        assert!(b.notes.iter().any(|n| n.contains("--rate 100 lowered")), "{:?}", b.notes);
        assert!(b.notes.iter().any(|n| n.contains("4 concurrent relays")), "{:?}", b.notes);
        let b = bound_load(Some(10), 8, Some(&announced(40, 64)));
        assert_eq!((b.rate_per_sec, b.max_in_flight), (10, 8));
        assert!(b.notes.is_empty(), "{:?}", b.notes);
        let b = bound_load(None, 512, None);
        assert_eq!(b.rate_per_sec, DEFAULT_RATE);
    }

    #[test]
    fn refused_requests_are_named_by_method() {
        assert_eq!(request_label(br#"{"jsonrpc":"2.0","id":1,"method":"txpool_status"}"#), "txpool_status");
        assert_eq!(
            request_label(br#"[{"method":"eth_chainId"},{"method":"eth_chainId"},{"method":"debug_x"}]"#),
            "batch of 3: eth_chainId, debug_x"
        );
        assert_eq!(request_label(b"[]"), "empty batch");
        assert_eq!(request_label(br#"{"jsonrpc":"2.0","id":3,"method":"eth_chainId""#), "malformed request");
    }

    #[test]
    fn refusals_are_grouped_and_bounded() {
        let mut s = Stats::default();
        for i in 0..MAX_REFUSALS + 5 {
            s.refused(format!("m{i}"), "no", true);
            s.refused(format!("m{i}"), "no", true);
        }
        assert_eq!(s.refusals.len(), MAX_REFUSALS);
        assert!(s.refusals.iter().all(|r| r.count == 2));
    }

    #[test]
    fn a_peers_answer_gives_the_announcement() {
        let peers = serde_json::json!({ "providers": [
            { "peer_id": "other", "chains": [] },
            { "peer_id": "cand", "connected": true, "trust": { "kind": "unknown" },
              "chains": [{ "chain_id": 1, "max_requests_per_sec": 500, "max_concurrent_relays": 64,
                           "archive": true, "method_groups": ["eth", "net"] }] },
        ]});
        let a = super::announced(&peers, "cand", 1).expect("found");
        assert_eq!((a.max_requests_per_sec, a.max_concurrent_relays, a.archive), (500, 64, true));
        assert_eq!(a.method_groups, ["eth", "net"]);
        assert!(super::announced(&peers, "cand", 2).is_none());
        assert!(super::announced(&peers, "nobody", 1).is_none());
    }
}
