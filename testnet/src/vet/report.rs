//! The vetting report: [`VetReport`] (written as `report.json`, the signed document) and its
//! Markdown rendering (`report.md`), which points at the three plots of [`super::plot`].

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::conformance::Conformance;
use super::correctness::{Correctness, Pinned, ReadOutcome};
use super::coverage::Coverage;
use super::load::Load;
use super::mesh::ThroughMesh;
use super::policy::{Outcome, Policy, Verdict};
use super::seal::{ERRORS_SVG, HEAD_LAG_SVG, LATENCY_SVG, REPORT_SIG};
use super::ws::WebSocket;
use crate::report::fmt::{md_cell, opt_latency_ms, utc};

/// The `format` of reports this version writes.
pub const REPORT_FORMAT: &str = "rpcmesh-vet-report/1";

/// How the run was set up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Top rate of the ramp, requests/s.
    pub rate_per_sec: u32,
    /// Length of the ramp, ms.
    pub duration_ms: u64,
    /// Timeout of one request, ms.
    pub request_timeout_ms: u64,
    /// Blocks below the head to pin reads at (when no block is given).
    pub confirmations: u64,
    /// Blocks pinned with `--block`.
    pub blocks: Vec<u64>,
    /// The WebSocket URL (redacted), if given.
    pub ws: Option<String>,
    /// Widest `eth_getLogs` range probed, blocks.
    pub logs_range_max: u64,
    /// Largest batch probed, calls.
    pub batch_max: u64,
    /// Most requests in flight during the ramp.
    pub max_in_flight: usize,
}

/// What the battery found before the tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preflight {
    /// The candidate's `eth_chainId`.
    pub candidate_chain_id: Option<u64>,
    /// The head the run pinned against (references' median, else the candidate's).
    pub head: Option<u64>,
    /// Why the candidate could not be tested, if it could not.
    pub error: Option<String>,
}

/// A whole vetting report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VetReport {
    /// [`REPORT_FORMAT`].
    pub format: String,
    /// Interrupted (Ctrl-C): some tests did not run, and the verdict is at best `incomplete`.
    pub partial: bool,
    /// The candidate, as named in reports (credentials redacted).
    pub candidate: String,
    /// The references, likewise.
    pub references: Vec<String>,
    /// Chain vetted on.
    pub chain_id: u64,
    /// The mesh the candidate is vetted for.
    pub network_id: String,
    /// The candidate's PeerId, when named.
    pub member: Option<String>,
    /// The vetting operator's PeerId (the key that signs `report.sig`).
    pub vetter: Option<String>,
    /// Start, Unix ms.
    pub started_at_ms: u64,
    /// End, Unix ms.
    pub finished_at_ms: u64,
    /// Settings.
    pub settings: Settings,
    /// The policy judged against.
    pub policy: Policy,
    /// Its digest (hex).
    pub policy_digest: String,
    /// Preflight.
    pub preflight: Preflight,
    /// Pinned blocks.
    pub pinned: Vec<Pinned>,
    /// Correctness, if it ran.
    pub correctness: Option<Correctness>,
    /// Coverage, if it ran.
    pub coverage: Option<Coverage>,
    /// Error conformance, if it ran.
    pub conformance: Option<Conformance>,
    /// Load ramp, if it ran.
    pub load: Option<Load>,
    /// WebSocket check, if `--ws` was given and it ran.
    pub websocket: Option<WebSocket>,
    /// How the candidate was reached, when it was reached through the mesh (`--peer`). Absent
    /// from reports of candidates tested directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh: Option<ThroughMesh>,
    /// The verdict.
    pub verdict: Verdict,
}

fn code(out: &mut String, v: &Value) {
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    let text = if text.len() > 1500 {
        format!("{}… (cut; full answer in report.json)", &text[..floor(&text, 1500)])
    } else {
        text
    };
    let _ = writeln!(out, "```json\n{text}\n```");
}

fn floor(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Renders `report.md`.
pub fn render_markdown(r: &VetReport) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# Vetting report: {}\n", r.verdict.verdict.to_uppercase());
    if r.partial {
        let _ = writeln!(
            w,
            "> **Partial report**: the run was interrupted; tests that did not run are marked \"not run\", and the verdict cannot be a pass.\n"
        );
    }
    if !r.verdict.failed.is_empty() {
        let _ = writeln!(w, "Failed criteria: **{}**.\n", r.verdict.failed.join("**, **"));
    }
    let _ = writeln!(w, "| | |\n|---|---|");
    let _ = writeln!(w, "| candidate | `{}` |", md_cell(&r.candidate));
    if let Some(m) = &r.mesh {
        let _ = writeln!(
            w,
            "| reached | through the mesh: relayed by daemon `{}` (admin {}) over libp2p to `{}`'s daemon and its own node |",
            m.via,
            md_cell(&m.via_admin),
            m.candidate
        );
    }
    let _ = writeln!(w, "| chain | {} |", r.chain_id);
    let refs = if r.references.is_empty() {
        "none (nothing to compare answers with)".to_string()
    } else {
        r.references.iter().map(|x| format!("`{}`", md_cell(x))).collect::<Vec<_>>().join(", ")
    };
    let _ = writeln!(w, "| references | {refs} |");
    let _ = writeln!(w, "| network | {} |", md_cell(&r.network_id));
    let _ = writeln!(w, "| member | {} |", r.member.as_deref().unwrap_or("not named"));
    let _ = writeln!(w, "| vetted by | {} |", r.vetter.as_deref().unwrap_or("unsigned"));
    let _ = writeln!(
        w,
        "| policy | {} (digest `{}`) |",
        md_cell(&r.policy.name),
        &r.policy_digest[..r.policy_digest.len().min(16)]
    );
    let _ = writeln!(w, "| started | {} |", utc(r.started_at_ms));
    let _ = writeln!(w, "| finished | {} |", utc(r.finished_at_ms));
    let s = &r.settings;
    let _ = writeln!(
        w,
        "| settings | ramp to {} req/s over {} s, request timeout {} ms, pinned {} |\n",
        s.rate_per_sec,
        s.duration_ms as f64 / 1000.0,
        s.request_timeout_ms,
        if s.blocks.is_empty() {
            format!("{} blocks below the head", s.confirmations)
        } else {
            format!("blocks {:?}", s.blocks)
        }
    );

    let _ = writeln!(w, "## Verdict\n\n| criterion | required | measured | result |\n|---|---|---|---|");
    for c in &r.verdict.criteria {
        let result = match c.outcome {
            Outcome::Pass => "pass",
            Outcome::Fail => "**FAIL**",
            Outcome::NotRun => "not run",
        };
        let _ = writeln!(w, "| `{}` | {} | {} | {result} |", c.name, md_cell(&c.required), md_cell(&c.measured));
    }
    if let Some(e) = &r.preflight.error {
        let _ = writeln!(w, "\nThe candidate could not be tested: {}", md_cell(e));
    }

    let _ = writeln!(w, "\n## Correctness\n");
    for p in &r.pinned {
        let _ = writeln!(
            w,
            "- pinned block {} `{}`: {} transactions read, addresses {}",
            p.number,
            p.hash,
            p.txs.len(),
            p.addresses.join(", ")
        );
    }
    match &r.correctness {
        None => {
            let _ = writeln!(w, "Not run.");
        }
        Some(c) => {
            let count = |o: ReadOutcome| c.reads.iter().filter(|x| x.outcome == o).count();
            let _ = writeln!(
                w,
                "\n{} reads: {} match, {} differ, {} unanswered, {} below the candidate's state depth, {} not compared. Integrity checks: {} failed.\n",
                c.reads.len(),
                count(ReadOutcome::Match),
                count(ReadOutcome::Differs),
                count(ReadOutcome::Unanswered),
                count(ReadOutcome::BelowStateDepth),
                count(ReadOutcome::NotCompared),
                c.reads.iter().filter(|x| x.verification_failed).count()
            );
            let _ = writeln!(w, "| # | method | params | outcome | integrity | note |\n|---|---|---|---|---|---|");
            for (i, x) in c.reads.iter().enumerate() {
                let outcome = serde_json::to_value(x.outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                let _ = writeln!(
                    w,
                    "| {} | `{}` | `{}` | {} | {} | {} |",
                    i + 1,
                    x.method,
                    md_cell(&super::target::short(&x.params.to_string(), 100)),
                    outcome,
                    md_cell(&x.verification),
                    md_cell(x.note.as_deref().unwrap_or(""))
                );
            }
            let bad: Vec<_> = c
                .reads
                .iter()
                .enumerate()
                .filter(|(_, x)| {
                    matches!(x.outcome, ReadOutcome::Differs | ReadOutcome::Unanswered) || x.verification_failed
                })
                .collect();
            if !bad.is_empty() {
                let _ = writeln!(w, "\n### Differences\n");
                for (i, x) in bad {
                    let _ = writeln!(w, "#### Read {}: `{}`\n", i + 1, x.method);
                    let request = serde_json::json!({ "jsonrpc": "2.0", "method": x.method, "params": x.params });
                    let _ = writeln!(w, "Request:");
                    code(w, &request);
                    if !x.differing_fields.is_empty() {
                        let _ = writeln!(
                            w,
                            "Differing fields: {}\n",
                            x.differing_fields.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
                        );
                    }
                    if x.verification_failed {
                        let _ = writeln!(w, "Integrity check: {}\n", x.verification);
                    }
                    let _ = writeln!(w, "Candidate's answer:");
                    code(w, &x.candidate);
                    let _ = writeln!(w, "Reference's answer:");
                    code(w, x.reference.as_ref().unwrap_or(&Value::Null));
                }
            }
        }
    }

    let _ = writeln!(w, "\n## Coverage\n");
    match &r.coverage {
        None => {
            let _ = writeln!(w, "Not run.");
        }
        Some(c) => {
            let _ = writeln!(w, "| group | method | answers | answer |\n|---|---|---|---|");
            for g in &c.method_groups {
                let _ = writeln!(w, "| {} | `{}` | {} | {} |", g.group, g.method, yes(g.answers), md_cell(&g.answer));
            }
            let _ = writeln!(w, "\n- archive depth: {} ({} probes)", c.archive.describe(), c.archive.probes);
            let _ = writeln!(w, "- `eth_getLogs` range: {}", c.logs_range.describe());
            let _ = writeln!(w, "- batch size: {}", c.batch.describe());
            for (what, refusal) in [("logs range", &c.logs_range.refusal), ("batch", &c.batch.refusal)] {
                if let Some(e) = refusal {
                    let _ = writeln!(w, "- {what} refusal: {}", md_cell(e));
                }
            }
        }
    }

    let _ = writeln!(w, "\n## Error conformance\n");
    match &r.conformance {
        None => {
            let _ = writeln!(w, "Not run.");
        }
        Some(c) => {
            let _ = writeln!(w, "| check | expected | passed | answer | note |\n|---|---|---|---|---|");
            for k in &c.checks {
                let _ = writeln!(
                    w,
                    "| `{}` | {} | {} | `{}` | {} |",
                    k.name,
                    md_cell(&k.expected),
                    if k.not_tested.is_some() { "not tested" } else { yes(k.passed) },
                    md_cell(&k.answer),
                    md_cell(k.not_tested.as_deref().or(k.note.as_deref()).unwrap_or(""))
                );
            }
        }
    }

    let _ = writeln!(w, "\n## Load\n");
    match &r.load {
        None => {
            let _ = writeln!(w, "Not run.");
        }
        Some(l) => {
            let _ = writeln!(
                w,
                "Open-loop ramp to {} req/s over {} s{}; method mix: {}.\n",
                l.rate_per_sec,
                l.duration_ms as f64 / 1000.0,
                if l.completed { "" } else { " (**interrupted**)" },
                l.mix.iter().map(|(m, wt)| format!("{m} {wt}%")).collect::<Vec<_>>().join(", ")
            );
            let _ = writeln!(
                w,
                "| step | offered req/s | sent | ok | failed | dropped | p50 ms | p95 ms | p99 ms | held |\n|---|---|---|---|---|---|---|---|---|---|"
            );
            for (i, s) in l.steps.iter().enumerate() {
                let _ = writeln!(
                    w,
                    "| {} | {} | {}/{} | {} | {} | {} | {} | {} | {} | {} |",
                    i + 1,
                    s.target_rps,
                    s.sent,
                    s.scheduled,
                    s.ok,
                    s.errors,
                    s.dropped,
                    opt_latency_ms(s.p50_us),
                    opt_latency_ms(s.p95_us),
                    opt_latency_ms(s.p99_us),
                    yes(s.held)
                );
            }
            let t = &l.total;
            let _ = writeln!(
                w,
                "\nRate held: **{} req/s**. Errors start at: {}. Over the ramp: {} requests, {} failed, p50 {} ms, p95 {} ms, p99 {} ms.",
                l.held_rate_per_sec,
                l.errors_start_at_rps.map_or_else(|| "no step".to_string(), |x| format!("{x} req/s")),
                t.requests,
                t.errors,
                opt_latency_ms(t.p50_us),
                opt_latency_ms(t.p95_us),
                opt_latency_ms(t.p99_us)
            );
            if r.mesh.is_some() {
                let _ = writeln!(
                    w,
                    "Answered busy by the candidate's relay (at its announced capacity; counted as failed): {}.",
                    t.busy
                );
            }
            match l.max_head_lag_blocks() {
                Some(lag) => {
                    let _ = writeln!(
                        w,
                        "Head lag: at most {lag} blocks behind the references ({} samples).",
                        l.head_lag.len()
                    );
                }
                None => {
                    let _ = writeln!(w, "Head lag: not measured (no reference, or no head answered).");
                }
            }
            if !l.first_errors.is_empty() {
                let _ = writeln!(w, "\nFirst errors:\n");
                for e in &l.first_errors {
                    let _ = writeln!(w, "- {}", md_cell(e));
                }
            }
            let _ = writeln!(
                w,
                "\n![latency over the ramp]({LATENCY_SVG})\n\n![error rate over the ramp]({ERRORS_SVG})\n\n![head lag]({HEAD_LAG_SVG})"
            );
        }
    }

    let _ = writeln!(w, "\n## WebSocket\n");
    match (&r.websocket, &r.settings.ws) {
        (None, None) if r.mesh.is_some() => {
            let _ =
                writeln!(w, "Not tested through the mesh: a relay carries requests and batches, not subscriptions.");
        }
        (Some(ws), _) => {
            let _ = writeln!(
                w,
                "`{}`: {} — {}.",
                md_cell(&ws.url),
                ws.describe(),
                if ws.is_healthy() { "healthy" } else { "**not healthy**" }
            );
        }
        (None, None) => {
            let _ = writeln!(w, "No `--ws` given.");
        }
        (None, Some(_)) => {
            let _ = writeln!(w, "Not run.");
        }
    }

    if let Some(m) = &r.mesh {
        through_mesh(w, m);
    }

    let _ = writeln!(
        w,
        "\n## Signature\n\n`{REPORT_SIG}` holds the vetting operator's signed summary of this report: the SHA-256 of \
         `report.json` in canonical form (keys sorted, no whitespace), the policy's name and digest, the verdict, \
         the time, the chain and the network. `rpcmesh federation admit --vetting-report DIR` checks the signature \
         and the digest before embedding the summary in a membership certificate; editing `report.json` breaks it."
    );
    out
}

/// The "Through the mesh" section.
fn through_mesh(w: &mut String, m: &ThroughMesh) {
    let _ = writeln!(w, "\n## Through the mesh\n");
    let _ = writeln!(
        w,
        "The candidate `{}` was reached through daemon `{}` (admin {}): every request was relayed over libp2p to the \
         candidate's daemon, which passed it to its own node.\n",
        m.candidate,
        m.via,
        md_cell(&m.via_admin)
    );
    match &m.announced {
        Some(a) => {
            let _ = writeln!(
                w,
                "- announced on this chain: {} req/s, {} concurrent relays, archive {}, method groups {}; the vetting \
                 daemon's trust in it: `{}`, {}",
                a.max_requests_per_sec,
                a.max_concurrent_relays,
                yes(a.archive),
                if a.method_groups.is_empty() { "none".to_string() } else { a.method_groups.join(", ") },
                md_cell(&a.trust),
                if a.connected { "connected" } else { "not connected when the run started" }
            );
        }
        None => {
            let _ = writeln!(w, "- announced: not known to the vetting daemon (no announcement for this chain)");
        }
    }
    let _ = writeln!(
        w,
        "- answers relayed: {}; with a verified signed receipt: {}, failing verification: {}, without: {}",
        m.relayed, m.receipts_verified, m.receipts_failed, m.receipts_missing
    );
    let statuses: Vec<String> = m.statuses.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(w, "- relay outcomes: {}", if statuses.is_empty() { "none".into() } else { statuses.join(", ") });
    let _ = writeln!(
        w,
        "- relay round trip (libp2p, the candidate's daemon and node): p50 {} ms, p95 {} ms",
        opt_latency_ms(m.relay_p50_us),
        opt_latency_ms(m.relay_p95_us)
    );
    if !m.refusals.is_empty() {
        let _ = writeln!(w, "\nRefused by the candidate's relay (its policy, not failures of its node):\n");
        let _ = writeln!(w, "| request | by | times | reason |\n|---|---|---|---|");
        for f in &m.refusals {
            let _ = writeln!(
                w,
                "| `{}` | {} | {} | {} |",
                md_cell(&f.request),
                if f.by_policy { "method policy" } else { "request check" },
                f.count,
                md_cell(&f.reason)
            );
        }
    }
    if !m.not_tested.is_empty() {
        let _ = writeln!(w, "\nNot tested through the mesh:\n");
        for t in &m.not_tested {
            let _ = writeln!(w, "- {}", md_cell(t));
        }
    }
    if !m.caveats.is_empty() {
        let _ = writeln!(w, "\nCaveats:\n");
        for c in &m.caveats {
            let _ = writeln!(w, "- {}", md_cell(c));
        }
    }
}
