//! The report of a scenario run: `report.md` with tables and plain findings, three SVG plots,
//! and the raw records beside them.
//!
//! ```text
//! DIR/records.jsonl   raw data, one record per line (see crate::record)
//! DIR/report.md       setup, summary, per-phase, per-gateway, per-fault, verified-answers,
//!                     censorship and gossip tables, the wrong answers, the plots, and "What
//!                     this shows"
//! DIR/latency.svg     latency of every request over time (log y), fault markers, phase bands
//! DIR/served_by.svg   share of each second's requests per serving node (and failed), stacked
//! DIR/gossip_cdf.svg  CDF of gossip delivery delays and of full convergence per message
//! ```
//!
//! Everything is computed from the records alone ([`summarize`], [`render_markdown`] and the
//! `*_svg` functions are pure); only [`write_report`] and [`write_report_from_dir`] touch files.
//! The numbers are reported as measured, bad ones included: a lie or a censorship that got through
//! shows up as wrong answers and is said so in plain words.
//!
//! Definitions (also printed in the report):
//! - Availability = correct answers / requests, shown rounded down (never "100%" unless all were).
//! - Latency percentiles are nearest-rank over all requests (failed and wrong included); see
//!   [`stats::percentile`].
//! - A fault lasts from its injection to its heal (or replacement, or the end of the run); see
//!   [`crate::record`]. Its *detection* is the first view change of the faulty node to anything but
//!   `healthy` by any observer within that window (for a `censor` fault its first `filters` label,
//!   for a `lie` fault its first cordon, when there is one); *routed around* is, for each gateway that was
//!   using the faulty node just before the injection (its last correct answer before it, or any
//!   within [`USING_LOOKBACK_MS`]), the completion of the first correct answer from another node to
//!   a request sent in the window; the *longest stall* is the largest gap between consecutive
//!   correct answers (window start and end included) on any gateway that sent requests in it.
//! - Gossip *delivery* is publish → accepted at one node; *convergence* is publish → accepted at
//!   every other node, per message, as [`crate::measure`] defines it (the simulator's too): a
//!   message some node never accepted is infinitely slow, so a percentile may read "never".
//! - Censorship (censored answers, time to label, transactions to watched addresses): see
//!   [`CensorSummary`] and [`TransactionSummary`].
//! - Verified answers (wrong answers per gateway and verify mode, time to detection and to
//!   mesh-wide cordon of a lying node): see [`LieSummary`].

mod analysis;
mod censorship;
pub mod fmt;
mod lies;
mod markdown;
pub mod stats;
/// Also the drawing primitives of the vetting report's plots (`crate::vet`).
pub(crate) mod svg;

use std::io;
use std::path::Path;

pub use analysis::{
    CORDONED, Detection, ErrorCount, FALSE_ALARM_GRACE_MS, FILTERS_LABEL, FaultSummary, GatewayRouting, GatewaySummary,
    GossipSummary, MAX_LISTED_WRONG, ObserverGossip, PhaseSummary, ReportSummary, Stall, USING_LOOKBACK_MS,
};
pub use censorship::{CensorSummary, LabelTime, TransactionSummary};
pub use lies::{CordonTime, LieGateway, LieSummary};
pub use stats::RequestStats;
pub use svg::{BUCKET_MS, MAX_OK_POINTS};

use crate::record::{self, RECORDS_FILE, Record};
use analysis::Run;

/// File name of the Markdown report.
pub const REPORT_MD: &str = "report.md";
/// File name of the latency plot.
pub const LATENCY_SVG: &str = "latency.svg";
/// File name of the served-by plot.
pub const SERVED_BY_SVG: &str = "served_by.svg";
/// File name of the gossip CDF plot.
pub const GOSSIP_SVG: &str = "gossip_cdf.svg";

/// Computes the headline numbers and findings of a run.
pub fn summarize(records: &[Record]) -> ReportSummary {
    analysis::summarize(&Run::new(records), 0)
}

/// Renders `report.md` for a summary; `raw_lines` is the line count of `records.jsonl`.
pub fn render_markdown(summary: &ReportSummary, raw_lines: usize) -> String {
    markdown::render(summary, raw_lines)
}

/// The latency-over-time plot.
pub fn latency_svg(records: &[Record]) -> String {
    svg::latency(&Run::new(records))
}

/// The served-by-share-over-time plot.
pub fn served_by_svg(records: &[Record]) -> String {
    svg::served_by(&Run::new(records))
}

/// The gossip propagation CDF plot.
pub fn gossip_cdf_svg(records: &[Record]) -> String {
    let run = Run::new(records);
    svg::gossip_cdf(&run, &analysis::summarize(&run, 0).gossip)
}

/// Writes `report.md` and the three plots into `dir` (created if needed), and `records.jsonl`
/// from `records` if the directory has none yet (an existing one is kept as the raw data).
pub fn write_report(dir: &Path, records: &[Record]) -> io::Result<ReportSummary> {
    std::fs::create_dir_all(dir)?;
    let raw = dir.join(RECORDS_FILE);
    if !raw.exists() {
        record::write_records(&raw, records)?;
    }
    write_all(dir, records, 0, records.len())
}

/// Rebuilds the report from `dir/records.jsonl` (malformed lines are skipped, counted and
/// mentioned in the report).
pub fn write_report_from_dir(dir: &Path) -> io::Result<ReportSummary> {
    let parsed = record::read_records_counted(&dir.join(RECORDS_FILE))?;
    let lines = parsed.records.len() + parsed.malformed;
    write_all(dir, &parsed.records, parsed.malformed, lines)
}

fn write_all(dir: &Path, records: &[Record], malformed: usize, raw_lines: usize) -> io::Result<ReportSummary> {
    let run = Run::new(records);
    let summary = analysis::summarize(&run, malformed);
    std::fs::write(dir.join(LATENCY_SVG), svg::latency(&run))?;
    std::fs::write(dir.join(SERVED_BY_SVG), svg::served_by(&run))?;
    std::fs::write(dir.join(GOSSIP_SVG), svg::gossip_cdf(&run, &summary.gossip))?;
    std::fs::write(dir.join(REPORT_MD), markdown::render(&summary, raw_lines))?;
    Ok(summary)
}
