//! The report directory and its signature.
//!
//! ```text
//! DIR/report.json    the report (the signed document), pretty-printed
//! DIR/report.md      the same for people, with the plots
//! DIR/latency.svg    latency percentiles per second of the ramp
//! DIR/errors.svg     failed share per second of the ramp
//! DIR/head_lag.svg   head lag against the references
//! DIR/report.sig     the vetting operator's Signed<VettingSummary>: a format line, then hex
//! ```
//!
//! The report digest is SHA-256 of `report.json`'s canonical form: the JSON parsed and written
//! again with object keys sorted and no whitespace ([`canonical_json`]). Formatting (pretty
//! printing, key order) does not change it; any value does. Checking a report ([`open`]) recomputes
//! it from the file and compares it with the signed one.

use std::io;
use std::path::{Path, PathBuf};

use rpcmesh_protocol::digest::{Digest, sha256};
use rpcmesh_protocol::messages::{VettingSummary, VettingVerdict};
use rpcmesh_protocol::{Identity, MessageHeader, PublicKey, Signed};
use serde_json::Value;

use super::canonical_json;
use super::plot;
use super::report::{VetReport, render_markdown};

/// The report (signed document).
pub const REPORT_JSON: &str = "report.json";
/// The report for people.
pub const REPORT_MD: &str = "report.md";
/// The signed summary.
pub const REPORT_SIG: &str = "report.sig";
/// Latency plot.
pub const LATENCY_SVG: &str = "latency.svg";
/// Error-rate plot.
pub const ERRORS_SVG: &str = "errors.svg";
/// Head-lag plot.
pub const HEAD_LAG_SVG: &str = "head_lag.svg";
/// First line of `report.sig`.
pub const SIG_FILE_HEADER: &str = "rpcmesh-vetting-summary-v1";

/// Why a report directory does not check out.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A file is not what it should be.
    #[error("{path}: {why}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The signature does not verify.
    #[error("{0}: the signature does not verify")]
    BadSignature(PathBuf),
    /// `report.json` is not the report that was signed.
    #[error("{path} was changed after it was signed (digest {found}, signed {signed})")]
    DigestMismatch {
        /// `report.json`.
        path: PathBuf,
        /// Its digest now (hex).
        found: String,
        /// The signed digest (hex).
        signed: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SealError + '_ {
    move |source| SealError::Io { path: path.to_path_buf(), source }
}

/// SHA-256 of the canonical form of the JSON text `json`.
pub fn report_digest(json: &str) -> Result<Digest, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    Ok(sha256(canonical_json(&v).as_bytes()))
}

/// Writes `report.json`, `report.md` and the plots into `dir` (created if needed) and returns
/// the digest of the `report.json` written.
pub fn write_report(dir: &Path, report: &VetReport) -> Result<Digest, SealError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let json_path = dir.join(REPORT_JSON);
    let text = serde_json::to_string_pretty(report)
        .map_err(|e| SealError::Malformed { path: json_path.clone(), why: e.to_string() })?;
    std::fs::write(&json_path, format!("{text}\n")).map_err(io_err(&json_path))?;
    let md = dir.join(REPORT_MD);
    std::fs::write(&md, render_markdown(report)).map_err(io_err(&md))?;
    match &report.load {
        Some(load) => {
            for (name, svg) in [
                (LATENCY_SVG, plot::latency_svg(load)),
                (ERRORS_SVG, plot::errors_svg(load)),
                (HEAD_LAG_SVG, plot::head_lag_svg(load)),
            ] {
                let path = dir.join(name);
                std::fs::write(&path, svg).map_err(io_err(&path))?;
            }
        }
        None => {
            // No ramp ran: plots of an earlier report in the directory must not pass for this one's.
            for name in [LATENCY_SVG, ERRORS_SVG, HEAD_LAG_SVG] {
                let _ = std::fs::remove_file(dir.join(name));
            }
        }
    }
    // The digest of what is on disk, parsed back: exactly what a checker will compute.
    let written = std::fs::read_to_string(&json_path).map_err(io_err(&json_path))?;
    report_digest(&written).map_err(|why| SealError::Malformed { path: json_path, why })
}

/// The verdict of a report as the protocol names it.
pub fn verdict_of(report: &VetReport) -> VettingVerdict {
    match report.verdict.verdict.as_str() {
        "pass" if !report.partial => VettingVerdict::Pass,
        "fail" => VettingVerdict::Fail,
        _ => VettingVerdict::Incomplete,
    }
}

/// Signs the summary of `report` (whose `report.json` has digest `digest`) with `vetter`:
/// issued at the run's end, standing for `valid_for_ms`.
pub fn sign_summary(
    report: &VetReport,
    digest: Digest,
    vetter: &Identity,
    valid_for_ms: u64,
) -> Signed<VettingSummary> {
    let member = report.member.as_deref().and_then(|m| PublicKey::parse(m).ok());
    let mut policy_digest = [0u8; 32];
    // The digest is our own hex; a malformed one (an edited report) signs as zeros.
    let _ = hex::decode_to_slice(&report.policy_digest, &mut policy_digest);
    let header = MessageHeader::new(
        report.network_id.clone(),
        report.finished_at_ms.saturating_mul(1000),
        report.finished_at_ms,
        valid_for_ms,
    );
    let summary = VettingSummary {
        header,
        chain_id: report.chain_id,
        member,
        report_digest: digest,
        policy_name: report.policy.name.clone(),
        policy_digest,
        verdict: verdict_of(report),
    };
    Signed::sign(summary, vetter)
}

/// Writes `report.sig`.
pub fn write_signature(dir: &Path, summary: &Signed<VettingSummary>) -> Result<(), SealError> {
    let path = dir.join(REPORT_SIG);
    std::fs::write(&path, format!("{SIG_FILE_HEADER}\n{}\n", hex::encode(summary.to_bytes()))).map_err(io_err(&path))
}

/// A report directory whose signature and digest check out.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// The report.
    pub report: VetReport,
    /// The signed summary (signature verified, digest matching `report.json`).
    pub summary: Signed<VettingSummary>,
}

/// Reads `dir/report.sig` and `dir/report.json`, verifies the signature, and checks that the
/// report is the one signed.
pub fn open(dir: &Path) -> Result<Sealed, SealError> {
    let sig_path = dir.join(REPORT_SIG);
    let text = std::fs::read_to_string(&sig_path).map_err(io_err(&sig_path))?;
    let malformed = |why: &str| SealError::Malformed { path: sig_path.clone(), why: why.to_string() };
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next() != Some(SIG_FILE_HEADER) {
        return Err(malformed(&format!("not a vetting signature (expected first line {SIG_FILE_HEADER:?})")));
    }
    let bytes = hex::decode(lines.next().ok_or_else(|| malformed("missing the signature line"))?)
        .map_err(|_| malformed("the signature line is not hex"))?;
    let summary = Signed::<VettingSummary>::from_bytes(&bytes).map_err(|e| malformed(&e.to_string()))?;
    summary.verify().map_err(|_| SealError::BadSignature(sig_path.clone()))?;

    let json_path = dir.join(REPORT_JSON);
    let json = std::fs::read_to_string(&json_path).map_err(io_err(&json_path))?;
    let digest = report_digest(&json).map_err(|why| SealError::Malformed { path: json_path.clone(), why })?;
    if digest != summary.body.report_digest {
        return Err(SealError::DigestMismatch {
            path: json_path,
            found: hex::encode(digest),
            signed: hex::encode(summary.body.report_digest),
        });
    }
    let report: VetReport =
        serde_json::from_str(&json).map_err(|e| SealError::Malformed { path: json_path, why: e.to_string() })?;
    Ok(Sealed { report, summary })
}
