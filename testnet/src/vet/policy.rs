//! The vetting policy: the thresholds a candidate must meet, read from TOML, and the verdict of
//! a finished (or interrupted) run against them.
//!
//! The shipped default is `default-policy.toml` beside this file ([`DEFAULT_POLICY_TOML`], printed
//! by `rpcmesh federation vet --print-default-policy`). Every criterion has a stable name
//! ([`Criterion::name`]) that the report, the exit message and tests use.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::digest_hex;
use super::report::VetReport;

/// The default policy as shipped, with comments.
pub const DEFAULT_POLICY_TOML: &str = include_str!("default-policy.toml");

/// Method groups the coverage section probes.
pub const METHOD_GROUPS: [&str; 6] = ["eth", "net", "web3", "debug", "trace", "txpool"];

/// Thresholds a candidate must meet. See `default-policy.toml` for each key's meaning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Name written in the report and the certificate.
    pub name: String,
    /// Lowest rate to hold, requests/s; `None`: the rate under test.
    #[serde(default)]
    pub min_rate_per_sec: Option<u32>,
    /// Highest p95 latency over the ramp, ms.
    pub max_p95_ms: u64,
    /// Highest failed share over the ramp, 0..1.
    pub max_error_rate: f64,
    /// Most blocks behind the references' median head.
    pub max_head_lag_blocks: u64,
    /// Most differing or unanswered correctness reads.
    pub max_correctness_differences: u64,
    /// Method groups that must answer.
    pub required_method_groups: Vec<String>,
    /// Whether old state must answer.
    pub require_archive: bool,
    /// Widest `eth_getLogs` range that must answer, blocks.
    pub min_logs_range_blocks: u64,
    /// Largest batch that must be answered in full, calls.
    pub min_batch_size: u64,
    /// Whether a WebSocket must be given and work.
    pub require_websocket: bool,
    /// Whether the error conformance checks must pass.
    pub require_error_conformance: bool,
    /// Whether a parse error must be exactly -32700.
    pub strict_error_codes: bool,
}

/// Why a policy file is not usable.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Not TOML, an unknown or missing key, a wrong type.
    #[error("{0}")]
    Parse(String),
    /// Parsed, but a value is out of range.
    #[error("{key}: {why}")]
    Invalid {
        /// The offending key.
        key: &'static str,
        /// What is wrong with it.
        why: String,
    },
}

impl Policy {
    /// Parses and checks a policy.
    pub fn from_toml(text: &str) -> Result<Self, PolicyError> {
        let policy: Policy = toml::from_str(text).map_err(|e| PolicyError::Parse(e.to_string()))?;
        policy.check()?;
        Ok(policy)
    }

    /// The shipped default.
    pub fn shipped_default() -> Self {
        // The shipped file is checked by a unit test; a broken one cannot reach a release.
        Self::from_toml(DEFAULT_POLICY_TOML).unwrap_or_else(|e| panic!("default-policy.toml: {e}"))
    }

    fn check(&self) -> Result<(), PolicyError> {
        let bad = |key, why: &str| Err(PolicyError::Invalid { key, why: why.to_string() });
        if self.name.trim().is_empty() || self.name.len() > 128 {
            return bad("name", "must be 1..=128 bytes");
        }
        if !(0.0..=1.0).contains(&self.max_error_rate) {
            return bad("max_error_rate", "must be between 0 and 1");
        }
        if self.min_rate_per_sec == Some(0) {
            return bad("min_rate_per_sec", "must be positive (leave it out to use the rate under test)");
        }
        for g in &self.required_method_groups {
            if !METHOD_GROUPS.contains(&g.as_str()) {
                return bad(
                    "required_method_groups",
                    &format!("unknown group {g:?}; use {}", METHOD_GROUPS.join(", ")),
                );
            }
        }
        Ok(())
    }

    /// SHA-256 of the policy's canonical JSON (hex). Comments and key order in the file do not
    /// change it; any threshold does.
    pub fn digest_hex(&self) -> String {
        digest_hex(&serde_json::to_value(self).unwrap_or(Value::Null))
    }
}

/// One judged criterion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Criterion {
    /// Stable name: `reachable`, `correctness`, `method_groups`, `archive`, `logs_range`,
    /// `batch_size`, `websocket`, `error_conformance`, `rate_held`, `p95_latency`, `error_rate`,
    /// `head_lag`, and through the mesh `relay_receipts`.
    pub name: String,
    /// What the policy asks, in words.
    pub required: String,
    /// What was measured, in words.
    pub measured: String,
    /// Met, not met, or not judged (the test did not run: an interrupted run, or one that
    /// stopped because the candidate was unreachable).
    pub outcome: Outcome,
}

/// A criterion's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Met.
    Pass,
    /// Not met.
    Fail,
    /// Not judged: the test it needs did not run.
    NotRun,
}

/// The verdict of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// `pass`, `fail` or `incomplete` (interrupted: the report is partial).
    pub verdict: String,
    /// Every criterion, in policy order.
    pub criteria: Vec<Criterion>,
    /// Names of the criteria not met.
    pub failed: Vec<String>,
}

/// Judges `report` against `policy`. `rate_under_test` is the ramp's top rate.
pub fn judge(report: &VetReport, policy: &Policy, rate_under_test: u32) -> Verdict {
    let mut criteria = Vec::new();
    let mut add = |name: &str, required: String, measured: String, outcome: Outcome| {
        criteria.push(Criterion { name: name.into(), required, measured, outcome });
    };
    let pass_if = |ok: bool| if ok { Outcome::Pass } else { Outcome::Fail };
    let not_run = || "not measured".to_string();

    // Reachable on the right chain.
    let pre = &report.preflight;
    add(
        "reachable",
        format!("answers eth_chainId with {}", report.chain_id),
        match (&pre.candidate_chain_id, &pre.error) {
            (Some(id), _) => format!("chain {id}"),
            (None, Some(e)) => e.clone(),
            (None, None) => not_run(),
        },
        pass_if(pre.candidate_chain_id == Some(report.chain_id)),
    );

    // Correctness.
    match &report.correctness {
        Some(c) if c.compared > 0 || !c.references_used => {
            let differences = c.differences() as u64;
            let measured = if c.references_used {
                format!("{differences} of {} compared reads differ or go unanswered", c.compared)
            } else {
                "no reference endpoint: nothing compared".to_string()
            };
            add(
                "correctness",
                format!("at most {} differing reads", policy.max_correctness_differences),
                measured,
                pass_if(differences <= policy.max_correctness_differences),
            );
        }
        Some(_) => add(
            "correctness",
            format!("at most {} differing reads", policy.max_correctness_differences),
            "no read could be compared (the references answered none)".into(),
            Outcome::Fail,
        ),
        None => add("correctness", "pinned reads agree with the references".into(), not_run(), Outcome::NotRun),
    }

    // Coverage.
    let cov = report.coverage.as_ref();
    let groups_required = policy.required_method_groups.join(", ");
    match cov {
        Some(c) => {
            let missing: Vec<&str> = policy
                .required_method_groups
                .iter()
                .filter(|g| !c.method_groups.iter().any(|m| &m.group == *g && m.answers))
                .map(String::as_str)
                .collect();
            let answering: Vec<&str> = c.method_groups.iter().filter(|m| m.answers).map(|m| m.group.as_str()).collect();
            // Through the mesh, a group the candidate's relay policy refuses is its choice: said
            // so, and still missing for the mesh.
            let by_policy: Vec<&str> =
                c.method_groups.iter().filter(|m| m.refused_by_policy).map(|m| m.group.as_str()).collect();
            let policy_note = if by_policy.is_empty() {
                String::new()
            } else {
                format!("; not relayed by the candidate's policy: {}", by_policy.join(", "))
            };
            let measured = if missing.is_empty() {
                format!("answering: {}{policy_note}", answering.join(", "))
            } else {
                format!("missing: {} (answering: {}){policy_note}", missing.join(", "), answering.join(", "))
            };
            add("method_groups", groups_required, measured, pass_if(missing.is_empty()));
            add(
                "archive",
                if policy.require_archive { "state of block 1 answers".into() } else { "not required".into() },
                c.archive.describe(),
                pass_if(!policy.require_archive || c.archive.is_archive()),
            );
            add(
                "logs_range",
                format!("eth_getLogs over at least {} blocks", policy.min_logs_range_blocks),
                c.logs_range.describe(),
                pass_if(c.logs_range.meets(policy.min_logs_range_blocks)),
            );
            add(
                "batch_size",
                format!("batches of at least {} calls", policy.min_batch_size),
                c.batch.describe(),
                pass_if(c.batch.meets(policy.min_batch_size)),
            );
        }
        None => {
            add("method_groups", groups_required, not_run(), Outcome::NotRun);
            add("archive", format!("required: {}", policy.require_archive), not_run(), Outcome::NotRun);
            add("logs_range", format!("at least {} blocks", policy.min_logs_range_blocks), not_run(), Outcome::NotRun);
            add("batch_size", format!("at least {} calls", policy.min_batch_size), not_run(), Outcome::NotRun);
        }
    }

    // WebSocket.
    let ws_required = if policy.require_websocket {
        "required: newHeads arrive without gaps".to_string()
    } else {
        "if given: newHeads arrive without gaps".to_string()
    };
    match (&report.websocket, &report.settings.ws) {
        // A relay carries no subscriptions: not tested, which passes only when not required
        // (required, the verdict stays incomplete rather than failed).
        (None, None) if report.mesh.is_some() => add(
            "websocket",
            ws_required,
            "not tested through the mesh (a relay carries no subscriptions)".into(),
            if policy.require_websocket { Outcome::NotRun } else { Outcome::Pass },
        ),
        (Some(ws), _) => {
            // Interrupted before enough heads arrived, with nothing wrong so far: not judged.
            let cut_short =
                report.partial && ws.error.is_none() && ws.gaps.is_empty() && ws.parent_mismatches.is_empty();
            let outcome = match (ws.is_healthy(), cut_short) {
                (true, _) => Outcome::Pass,
                (false, true) => Outcome::NotRun,
                (false, false) => Outcome::Fail,
            };
            add("websocket", ws_required, ws.describe(), outcome);
        }
        (None, None) => add("websocket", ws_required, "no --ws given".into(), pass_if(!policy.require_websocket)),
        (None, Some(_)) => add("websocket", ws_required, not_run(), Outcome::NotRun),
    }

    // Error conformance.
    let conf_required = if policy.require_error_conformance {
        format!("every check passes{}", if policy.strict_error_codes { " (strict codes)" } else { "" })
    } else {
        "not required".to_string()
    };
    match &report.conformance {
        Some(c) => {
            let failed: Vec<&str> = c.checks.iter().filter(|k| k.failed()).map(|k| k.name.as_str()).collect();
            let untested: Vec<&str> =
                c.checks.iter().filter(|k| k.not_tested.is_some()).map(|k| k.name.as_str()).collect();
            let tested = c.checks.len() - untested.len();
            let mut measured = if failed.is_empty() {
                format!("{tested} of {tested} checks pass")
            } else {
                format!("failed: {}", failed.join(", "))
            };
            if !untested.is_empty() {
                measured.push_str(&format!("; not tested through the mesh: {}", untested.join(", ")));
            }
            let outcome = match (policy.require_error_conformance, failed.is_empty(), tested) {
                (false, _, _) => Outcome::Pass,
                (true, false, _) => Outcome::Fail,
                // Nothing could be tested: no pass can be claimed.
                (true, true, 0) => Outcome::NotRun,
                (true, true, _) => Outcome::Pass,
            };
            add("error_conformance", conf_required, measured, outcome);
        }
        None => add("error_conformance", conf_required, not_run(), Outcome::NotRun),
    }

    // Load. An interrupted ramp proves no pass, but a threshold already broken is a failure.
    let min_rate = policy.min_rate_per_sec.unwrap_or(rate_under_test);
    match &report.load {
        Some(l) if !l.steps.is_empty() => {
            let judged = |ok: bool| match (ok, l.completed) {
                (false, _) => Outcome::Fail,
                (true, true) => Outcome::Pass,
                (true, false) => Outcome::NotRun,
            };
            let held = l.held_rate_per_sec;
            let errors_note = match l.errors_start_at_rps {
                Some(r) => format!("; errors start at {r} req/s"),
                None => String::new(),
            };
            let rate_ok = if l.completed {
                held >= min_rate
            } else {
                // Steps sent in full before the interruption that broke the error limit.
                !l.steps.iter().any(|s| s.sent == s.scheduled && !s.held && s.target_rps <= min_rate)
            };
            add(
                "rate_held",
                format!("{min_rate} req/s"),
                format!(
                    "{held} req/s held (ramp to {rate_under_test}{}){errors_note}",
                    if l.completed { "" } else { ", interrupted" }
                ),
                judged(rate_ok),
            );
            let p95_ms = l.total.p95_us.map(|us| us.div_ceil(1000));
            add(
                "p95_latency",
                format!("at most {} ms", policy.max_p95_ms),
                p95_ms.map_or_else(|| "no answers".into(), |ms| format!("{ms} ms")),
                judged(p95_ms.is_none_or(|ms| ms <= policy.max_p95_ms)),
            );
            let rate = l.total.error_rate();
            add(
                "error_rate",
                format!("at most {}", percent(policy.max_error_rate)),
                format!("{} ({} of {})", percent(rate), l.total.errors, l.total.requests),
                judged(rate <= policy.max_error_rate),
            );
            match l.max_head_lag_blocks() {
                Some(lag) => add(
                    "head_lag",
                    format!("at most {} blocks behind the references", policy.max_head_lag_blocks),
                    format!("at most {lag} blocks behind"),
                    judged(lag <= policy.max_head_lag_blocks as i64),
                ),
                None if report.references.is_empty() => {
                    add("head_lag", "needs a --reference".into(), "not measured".into(), Outcome::Pass)
                }
                None => add(
                    "head_lag",
                    format!("at most {} blocks behind the references", policy.max_head_lag_blocks),
                    "no head could be compared".into(),
                    judged(false),
                ),
            }
        }
        _ => {
            add("rate_held", format!("{min_rate} req/s"), not_run(), Outcome::NotRun);
            add("p95_latency", format!("at most {} ms", policy.max_p95_ms), not_run(), Outcome::NotRun);
            add("error_rate", format!("at most {}", percent(policy.max_error_rate)), not_run(), Outcome::NotRun);
            add("head_lag", format!("at most {} blocks", policy.max_head_lag_blocks), not_run(), Outcome::NotRun);
        }
    }

    // Through the mesh: every relayed answer must carry the candidate's verified signed receipt,
    // which is what makes a wrong answer from it evidence.
    if let Some(m) = &report.mesh {
        let required = "every answer relayed carries a receipt signed by the candidate".to_string();
        let measured = format!(
            "{} of {} answers with a verified receipt ({} failed verification, {} without)",
            m.receipts_verified, m.relayed, m.receipts_failed, m.receipts_missing
        );
        let outcome = match (m.relayed, m.unreceipted()) {
            (_, n) if n > 0 => Outcome::Fail,
            (0, _) => Outcome::NotRun,
            _ => Outcome::Pass,
        };
        add("relay_receipts", required, measured, outcome);
    }

    let failed: Vec<String> = criteria.iter().filter(|c| c.outcome == Outcome::Fail).map(|c| c.name.clone()).collect();
    let verdict = if !failed.is_empty() {
        // A failure seen before an interruption is a failure all the same.
        "fail"
    } else if report.partial || criteria.iter().any(|c| c.outcome == Outcome::NotRun) {
        "incomplete"
    } else {
        "pass"
    };
    Verdict { verdict: verdict.into(), criteria, failed }
}

fn percent(x: f64) -> String {
    let s = format!("{:.2}", x * 100.0);
    format!("{}%", s.trim_end_matches('0').trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_default_parses_and_has_a_stable_digest() {
        let p = Policy::shipped_default();
        assert_eq!(p.name, "rpcmesh-default-v1");
        assert_eq!(p.min_rate_per_sec, None);
        assert_eq!(p.digest_hex(), Policy::shipped_default().digest_hex());
        let mut q = p.clone();
        q.max_p95_ms += 1;
        assert_ne!(p.digest_hex(), q.digest_hex());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let text = format!("{DEFAULT_POLICY_TOML}\nmax_p59_ms = 3\n");
        assert!(Policy::from_toml(&text).unwrap_err().to_string().contains("max_p59_ms"));
        let text = DEFAULT_POLICY_TOML.replace("max_error_rate = 0.01", "max_error_rate = 2.0");
        assert!(Policy::from_toml(&text).unwrap_err().to_string().contains("max_error_rate"));
        let text = DEFAULT_POLICY_TOML.replace("[\"eth\", \"net\", \"web3\"]", "[\"eth\", \"parity\"]");
        assert!(Policy::from_toml(&text).unwrap_err().to_string().contains("parity"));
    }

    /// A report of a run through the mesh in which only preflight and conformance ran.
    fn through_mesh(checks: Vec<crate::vet::conformance::Check>, relayed: u64, verified: u64) -> VetReport {
        use crate::vet::mesh::ThroughMesh;
        use crate::vet::report::{Preflight, REPORT_FORMAT, Settings};
        let policy = Policy::shipped_default();
        VetReport {
            format: REPORT_FORMAT.into(),
            partial: false,
            candidate: "peer".into(),
            references: vec![],
            chain_id: 1,
            network_id: "net".into(),
            member: None,
            vetter: None,
            started_at_ms: 0,
            finished_at_ms: 0,
            settings: Settings {
                rate_per_sec: 1,
                duration_ms: 1000,
                request_timeout_ms: 1000,
                confirmations: 0,
                blocks: vec![],
                ws: None,
                logs_range_max: 1,
                batch_max: 1,
                max_in_flight: 1,
            },
            policy_digest: policy.digest_hex(),
            policy,
            preflight: Preflight { candidate_chain_id: Some(1), head: Some(1), error: None },
            pinned: vec![],
            correctness: None,
            coverage: None,
            conformance: Some(crate::vet::conformance::Conformance { strict: false, checks }),
            load: None,
            websocket: None,
            mesh: Some(ThroughMesh {
                candidate: "peer".into(),
                via: "us".into(),
                via_admin: "http://127.0.0.1:8546/".into(),
                announced: None,
                relayed,
                receipts_verified: verified,
                receipts_failed: relayed - verified,
                receipts_missing: 0,
                statuses: Default::default(),
                refusals: vec![],
                relay_p50_us: None,
                relay_p95_us: None,
                not_tested: vec![],
                caveats: vec![],
            }),
            verdict: Verdict { verdict: "incomplete".into(), criteria: vec![], failed: vec![] },
        }
    }

    fn check(name: &str, passed: bool, not_tested: bool) -> crate::vet::conformance::Check {
        crate::vet::conformance::Check {
            name: name.into(),
            request: String::new(),
            expected: String::new(),
            answer: String::new(),
            passed,
            note: None,
            not_tested: not_tested.then(|| "refused by its relay".to_string()),
        }
    }

    fn outcome(v: &Verdict, name: &str) -> (Outcome, String) {
        let c = v.criteria.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no {name}"));
        (c.outcome, c.measured.clone())
    }

    #[test]
    fn through_the_mesh_what_a_relay_cannot_carry_is_not_tested_rather_than_failed() {
        let report =
            through_mesh(vec![check("method_not_found", true, false), check("parse_error", false, true)], 5, 5);
        let mut policy = Policy::shipped_default();
        let v = judge(&report, &policy, 1);
        let (conformance, measured) = outcome(&v, "error_conformance");
        assert_eq!(conformance, Outcome::Pass);
        assert_eq!(measured, "1 of 1 checks pass; not tested through the mesh: parse_error");
        let (ws, measured) = outcome(&v, "websocket");
        assert_eq!(ws, Outcome::Pass);
        assert!(measured.contains("not tested through the mesh"), "{measured}");
        assert_eq!(outcome(&v, "relay_receipts").0, Outcome::Pass);
        // Required, an untested WebSocket leaves the verdict incomplete, not failed.
        policy.require_websocket = true;
        let v = judge(&report, &policy, 1);
        assert_eq!(outcome(&v, "websocket").0, Outcome::NotRun);
        assert!(!v.failed.contains(&"websocket".to_string()));
        // A check the node failed still fails; nothing tested at all is not a pass.
        let failing =
            through_mesh(vec![check("invalid_params", false, false), check("empty_batch", false, true)], 5, 5);
        assert_eq!(outcome(&judge(&failing, &policy, 1), "error_conformance").0, Outcome::Fail);
        let untested = through_mesh(vec![check("empty_batch", false, true)], 5, 5);
        assert_eq!(outcome(&judge(&untested, &policy, 1), "error_conformance").0, Outcome::NotRun);
    }

    #[test]
    fn through_the_mesh_every_answer_needs_a_verified_receipt() {
        let v = judge(&through_mesh(vec![], 10, 9), &Policy::shipped_default(), 1);
        let (receipts, measured) = outcome(&v, "relay_receipts");
        assert_eq!(receipts, Outcome::Fail);
        assert_eq!(measured, "9 of 10 answers with a verified receipt (1 failed verification, 0 without)");
        assert!(v.failed.contains(&"relay_receipts".to_string()));
        let direct = VetReport { mesh: None, ..through_mesh(vec![], 10, 9) };
        assert!(judge(&direct, &Policy::shipped_default(), 1).criteria.iter().all(|c| c.name != "relay_receipts"));
    }

    #[test]
    fn percents() {
        assert_eq!(percent(0.01), "1%");
        assert_eq!(percent(0.125), "12.5%");
        assert_eq!(percent(0.0), "0%");
    }
}
