//! `rpcmesh federation vet`: a battery of tests against a candidate provider's JSON-RPC endpoint,
//! judged against a policy, written as a signed report.
//!
//! A run ([`run`]) goes through, in order:
//! 1. **preflight**: every reference and the candidate answer `eth_chainId` with the chain; the
//!    head is the references' median (else the candidate's); blocks are pinned
//!    ([`correctness::pin`]);
//! 2. [`correctness`]: the pinned reads against the references, and the [`verify`] seam;
//! 3. [`coverage`]: method groups, archive depth, `eth_getLogs` range, batch size;
//! 4. [`conformance`]: error codes and id echo;
//! 5. [`load`]: the ramp with head-lag samples, and beside it the [`ws`] newHeads check;
//! 6. the verdict against the [`policy`].
//!
//! The battery talks to endpoints through [`RpcTarget`]: [`HttpTarget`] for a candidate's
//! endpoint and the references, [`MeshTarget`] for a candidate reached through the mesh (a local
//! daemon's `POST /relay/{peer}/{chain}` to the candidate's daemon and its own node; see
//! [`mesh`] for what that changes: receipts, refusals by the candidate's relay policy, the ramp
//! bounded by its announced capacity, no WebSocket). Such a report carries a
//! [`ThroughMesh`](mesh::ThroughMesh) section and the `relay_receipts` criterion.
//!
//! Cancelling (Ctrl-C in the CLI) stops the test running, skips the rest, and returns a report
//! marked `partial` whose verdict is `fail` (if a criterion already failed) or `incomplete`.
//! [`seal`] writes the report directory and signs its digest.

pub mod conformance;
pub mod correctness;
pub mod coverage;
pub mod deep;
pub mod load;
pub mod mesh;
pub mod plot;
pub mod policy;
pub mod progress;
pub mod report;
pub mod seal;
pub mod target;
pub mod verify;
pub mod ws;

use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

pub use mesh::MeshTarget;
pub use policy::{Criterion, Outcome, Policy, Verdict, judge};
pub use progress::{NoProgress, Phase, Progress, ProgressSink};
pub use report::{Preflight, Settings, VetReport};
pub use target::{HttpTarget, RpcTarget, TargetError};

pub use progress::Tracker;
use target::{Rpc, quantity};

/// How long the WebSocket check may keep waiting for its first heads after the ramp (a chain
/// with 12 s blocks needs about 36 s for three).
pub const WS_TAIL: Duration = Duration::from_secs(45);

/// What to run.
#[derive(Debug, Clone)]
pub struct VetConfig {
    /// Chain to vet on.
    pub chain_id: u64,
    /// The mesh the candidate is vetted for (goes into the report and the signature).
    pub network_id: String,
    /// The candidate's PeerId, if named.
    pub member: Option<String>,
    /// The candidate's WebSocket URL.
    pub ws_url: Option<String>,
    /// Settings (recorded in the report).
    pub settings: Settings,
    /// The policy.
    pub policy: Policy,
}

/// Why a run could not start: the references are unusable, so nothing could be judged.
#[derive(Debug, thiserror::Error)]
pub enum VetError {
    /// A reference failed or is on another chain.
    #[error("reference {reference}: {why}")]
    Reference {
        /// The reference (redacted).
        reference: String,
        /// What went wrong.
        why: String,
    },
}

/// Unix milliseconds now.
fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// JSON text with object keys sorted and no whitespace: the form digests are taken of.
pub fn canonical_json(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = Map::new();
                for k in keys {
                    out.insert(k.clone(), sorted(&m[k]));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(v).to_string()
}

/// SHA-256 (hex) of [`canonical_json`].
pub fn digest_hex(v: &Value) -> String {
    hex::encode(rpcmesh_protocol::digest::sha256(canonical_json(v).as_bytes()))
}

/// `fut`, unless `cancel` fires first.
async fn unless_cancelled<T>(cancel: &CancellationToken, fut: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        () = cancel.cancelled() => None,
        v = fut => Some(v),
    }
}

/// Runs the battery against `candidate`, comparing with `references`. Progress goes to
/// `progress`; `cancel` interrupts (the report is then partial).
pub async fn run<C: RpcTarget, R: RpcTarget>(
    config: &VetConfig,
    candidate: &C,
    references: &[R],
    progress: &dyn ProgressSink,
    cancel: &CancellationToken,
) -> Result<VetReport, VetError> {
    let started_at_ms = now_ms();
    let tracker = Tracker::new(progress, Duration::from_millis(config.settings.duration_ms));
    tracker.note(Phase::Preflight, "asking for chain ids and heads");
    let ids = AtomicU64::new(1);
    let chain = config.chain_id;

    // References must be usable: without them nothing can be compared.
    let mut heads = Vec::new();
    for r in references {
        let rpc = Rpc::new(r, &ids);
        let fail = |why: String| VetError::Reference { reference: r.describe(), why };
        let id = rpc.call("eth_chainId", &json!([])).await.map_err(|e| fail(e.to_string()))?;
        if quantity(&id) != Some(chain) {
            return Err(fail(format!("answers chain id {id}, not {chain}")));
        }
        let head = rpc.call("eth_blockNumber", &json!([])).await.map_err(|e| fail(e.to_string()))?;
        heads.push(quantity(&head).ok_or_else(|| fail(format!("eth_blockNumber answered {head}")))?);
    }

    let mut report = VetReport {
        format: report::REPORT_FORMAT.into(),
        partial: false,
        candidate: candidate.describe(),
        references: references.iter().map(RpcTarget::describe).collect(),
        chain_id: chain,
        network_id: config.network_id.clone(),
        member: config.member.clone(),
        vetter: None,
        started_at_ms,
        finished_at_ms: started_at_ms,
        settings: config.settings.clone(),
        policy: config.policy.clone(),
        policy_digest: config.policy.digest_hex(),
        preflight: Preflight::default(),
        pinned: vec![],
        correctness: None,
        coverage: None,
        conformance: None,
        load: None,
        websocket: None,
        mesh: None,
        verdict: Verdict { verdict: "incomplete".into(), criteria: vec![], failed: vec![] },
    };

    let cand = Rpc::new(candidate, &ids);
    match preflight(cand, chain).await {
        Ok(head) => {
            report.preflight.candidate_chain_id = Some(chain);
            heads.sort_unstable();
            // The references' median head: one reference ahead must not move the pins.
            report.preflight.head = Some(if heads.is_empty() { head } else { heads[(heads.len() - 1) / 2] });
        }
        Err((chain_seen, why)) => {
            report.preflight.candidate_chain_id = chain_seen;
            report.preflight.error = Some(why);
        }
    }

    if let (Some(head), None) = (report.preflight.head, &report.preflight.error) {
        let s = &config.settings;
        let pinned = match references.first() {
            Some(r) => correctness::pin(Rpc::new(r, &ids), head, s.confirmations, &s.blocks)
                .await
                .map_err(|e| VetError::Reference { reference: r.describe(), why: format!("pinning blocks: {e}") })?,
            None => match correctness::pin(cand, head, s.confirmations, &s.blocks).await {
                Ok(p) => p,
                Err(e) => {
                    report.preflight.error = Some(format!("pinning blocks on the candidate: {e}"));
                    vec![]
                }
            },
        };
        report.pinned = pinned;
        if report.preflight.error.is_none() {
            run_tests(config, candidate, references, head, &mut report, &tracker, cancel).await;
        }
    }

    report.mesh = candidate.through_mesh().map(|mut m| {
        for k in report.conformance.iter().flat_map(|c| &c.checks) {
            if let Some(why) = &k.not_tested {
                m.not_tested.push(format!("error conformance check {}: {why}", k.name));
            }
        }
        m
    });
    report.partial = cancel.is_cancelled();
    report.finished_at_ms = now_ms();
    report.verdict = judge(&report, &config.policy, config.settings.rate_per_sec);
    Ok(report)
}

/// The candidate's head, or what it answered for a chain id and why it cannot be tested.
async fn preflight<C: RpcTarget>(cand: Rpc<'_, C>, chain: u64) -> Result<u64, (Option<u64>, String)> {
    let id = cand.call("eth_chainId", &json!([])).await.map_err(|e| (None, format!("eth_chainId: {e}")))?;
    let seen = quantity(&id);
    if seen != Some(chain) {
        return Err((seen, format!("the candidate answers chain id {id}, not {chain}")));
    }
    let head = cand.call("eth_blockNumber", &json!([])).await.map_err(|e| (seen, format!("eth_blockNumber: {e}")))?;
    quantity(&head).ok_or((seen, format!("eth_blockNumber answered {head}")))
}

async fn run_tests<C: RpcTarget, R: RpcTarget>(
    config: &VetConfig,
    candidate: &C,
    references: &[R],
    head: u64,
    report: &mut VetReport,
    tracker: &Tracker<'_>,
    cancel: &CancellationToken,
) {
    let s = &config.settings;
    let pinned = report.pinned.first().cloned();
    let reads = correctness::reads(&report.pinned, head);
    report.correctness =
        unless_cancelled(cancel, correctness::run(candidate, references, reads, &report.pinned, tracker)).await;
    let probes = coverage::Probes { head, logs_range_max: s.logs_range_max, batch_max: s.batch_max };
    report.coverage = unless_cancelled(cancel, coverage::run(candidate, pinned.as_ref(), probes, tracker)).await;
    if let (Some(c), Some(cov)) = (&mut report.correctness, &report.coverage) {
        c.attribute_to_archive(cov.archive.oldest_state_block);
    }
    report.conformance =
        unless_cancelled(cancel, conformance::run(candidate, config.policy.strict_error_codes, tracker)).await;
    if cancel.is_cancelled() {
        return;
    }

    let load_settings = load::LoadSettings {
        rate_per_sec: s.rate_per_sec,
        duration: Duration::from_millis(s.duration_ms),
        max_in_flight: s.max_in_flight,
        max_error_rate: config.policy.max_error_rate,
    };
    let load_end = Instant::now() + load_settings.duration;
    let ws_check = async {
        match &config.ws_url {
            Some(url) => {
                let r = ws::run(url, load_end, load_end + WS_TAIL, cancel).await;
                Some(r)
            }
            None => None,
        }
    };
    let ramp = async {
        let l = load::run(candidate, references, pinned.as_ref(), load_settings, tracker, cancel).await;
        if config.ws_url.is_some() && !cancel.is_cancelled() {
            tracker.note(Phase::WebSocket, "waiting for newHeads");
        }
        l
    };
    let (l, w) = tokio::join!(ramp, ws_check);
    report.load = Some(l);
    report.websocket = w;
}
