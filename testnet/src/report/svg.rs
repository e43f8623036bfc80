//! The three plots, as self-contained SVG text (no scripts, no external fonts or styles).
//!
//! Every plot is 960×440 with the data area on the left and the legend on the right; faults are
//! dashed vertical lines (`class="fault-marker"`, red for inject, green for heal) labelled above
//! the data area; phases are alternating grey bands named at their top. Without data a plot
//! still renders its frame and says "no data".

use std::fmt::Write as _;

use std::collections::{BTreeMap, BTreeSet};

use super::analysis::{GossipSummary, Run};
use super::fmt::{self, xml};
use super::stats::percentile;
use crate::measure::Convergence;
use crate::record::{FaultAction, Outcome, base_kind};

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 440.0;
pub(crate) const LEFT: f64 = 76.0;
pub(crate) const RIGHT: f64 = 770.0;
pub(crate) const TOP: f64 = 92.0;
pub(crate) const BOTTOM: f64 = 392.0;
const LEGEND_X: f64 = 786.0;

/// Above this many correct answers the latency plot draws every k-th one (failed and wrong ones
/// are always all drawn), to keep the file small enough for a browser.
pub const MAX_OK_POINTS: usize = 20_000;

/// Width of the served-by buckets and of the latency percentile lines, ms.
pub const BUCKET_MS: u64 = 1_000;

pub(crate) const OK_COLOR: &str = "#1f77b4";
pub(crate) const ERROR_COLOR: &str = "#d62728";
pub(crate) const WRONG_COLOR: &str = "#ff7f0e";
const INJECT_COLOR: &str = "#c0392b";
const HEAL_COLOR: &str = "#1e8449";
/// Serving-node colours: no red, red means "failed".
const NODE_COLORS: [&str; 10] =
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#393b79"];
const FAILED_COLOR: &str = "#d62728";
const UNKNOWN_COLOR: &str = "#c7c7c7";

/// A linear or log axis mapping data to pixels.
#[derive(Clone, Copy)]
pub(crate) struct Axis {
    pub lo: f64,
    pub hi: f64,
    pub px_lo: f64,
    pub px_hi: f64,
    pub log: bool,
}

impl Axis {
    pub fn map(&self, v: f64) -> f64 {
        let (v, lo, hi) =
            if self.log { (v.max(self.lo).log10(), self.lo.log10(), self.hi.log10()) } else { (v, self.lo, self.hi) };
        let frac = if hi > lo { ((v - lo) / (hi - lo)).clamp(0.0, 1.0) } else { 0.0 };
        self.px_lo + frac * (self.px_hi - self.px_lo)
    }
}

/// A "nice" step (1, 2 or 5 × 10ⁿ) giving at most about `target` intervals over `range`.
fn nice_step(range: f64, target: f64) -> f64 {
    if range <= 0.0 || !range.is_finite() {
        return 1.0;
    }
    let raw = range / target;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// Ticks from 0 to `hi` (inclusive, on the step grid) and the rounded-up top.
pub(crate) fn ticks_to(hi: f64, target: f64) -> (Vec<f64>, f64) {
    let step = nice_step(hi, target);
    let top = (hi / step).ceil().max(1.0) * step;
    let n = (top / step).round() as usize;
    ((0..=n).map(|i| i as f64 * step).collect(), top)
}

/// A tick label: no trailing zeros.
pub(crate) fn num(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

pub(crate) struct Svg {
    pub out: String,
}

impl Svg {
    pub fn new(title: &str) -> Self {
        let mut out = String::with_capacity(64 * 1024);
        let _ = write!(
            out,
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="12" fill="#222">
<title>{t}</title>
<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>
<text x="{LEFT}" y="24" font-size="16" font-weight="bold">{t}</text>
"##,
            t = xml(title)
        );
        Svg { out }
    }

    pub fn raw(&mut self, s: &str) {
        self.out.push_str(s);
        self.out.push('\n');
    }

    pub fn text(&mut self, x: f64, y: f64, anchor: &str, extra: &str, s: &str) {
        let _ = writeln!(self.out, r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}" {extra}>{}</text>"#, xml(s));
    }

    pub fn subtitle(&mut self, s: &str) {
        self.text(LEFT, 42.0, "start", r##"font-size="12" fill="#555""##, s);
    }

    /// Frame, grid lines and tick labels of both axes.
    pub fn axes(&mut self, x: &Axis, x_ticks: &[(f64, String)], y: &Axis, y_ticks: &[(f64, String, bool)]) {
        self.raw(r##"<g stroke="#e3e3e3" stroke-width="1">"##);
        for (v, _, major) in y_ticks {
            let py = y.map(*v);
            let dash = if *major { "" } else { r#" stroke-dasharray="2,3""# };
            let _ = writeln!(self.out, r#"<line x1="{LEFT}" y1="{py:.1}" x2="{RIGHT}" y2="{py:.1}"{dash}/>"#);
        }
        self.raw("</g>");
        for (v, label, major) in y_ticks {
            if *major {
                let py = y.map(*v);
                let _ = writeln!(
                    self.out,
                    r##"<line x1="{:.1}" y1="{py:.1}" x2="{LEFT}" y2="{py:.1}" stroke="#444"/>"##,
                    LEFT - 5.0
                );
                self.text(LEFT - 8.0, py + 4.0, "end", "", label);
            }
        }
        for (v, label) in x_ticks {
            let px = x.map(*v);
            let _ = writeln!(
                self.out,
                r##"<line x1="{px:.1}" y1="{BOTTOM}" x2="{px:.1}" y2="{:.1}" stroke="#444"/>"##,
                BOTTOM + 5.0
            );
            self.text(px, BOTTOM + 19.0, "middle", "", label);
        }
        let _ = writeln!(
            self.out,
            r##"<rect x="{LEFT}" y="{TOP}" width="{:.1}" height="{:.1}" fill="none" stroke="#444"/>"##,
            RIGHT - LEFT,
            BOTTOM - TOP
        );
    }

    pub fn axis_titles(&mut self, x_title: &str, y_title: &str) {
        self.text((LEFT + RIGHT) / 2.0, BOTTOM + 40.0, "middle", r##"fill="#333""##, x_title);
        let cy = (TOP + BOTTOM) / 2.0;
        self.text(20.0, cy, "middle", &format!(r##"transform="rotate(-90 20 {cy:.1})" fill="#333""##), y_title);
    }

    pub fn no_data(&mut self, what: &str) {
        self.text((LEFT + RIGHT) / 2.0, (TOP + BOTTOM) / 2.0, "middle", r##"font-size="20" fill="#999""##, what);
    }

    /// One legend row: a swatch drawn by `swatch(x, y)` and a label.
    pub fn legend_row(&mut self, row: usize, swatch: &str, label: &str) {
        let y = TOP + 8.0 + row as f64 * 20.0;
        let swatch = swatch.replace("{X}", &format!("{LEGEND_X:.1}")).replace("{Y}", &format!("{y:.1}"));
        self.raw(&swatch);
        self.text(LEGEND_X + 26.0, y + 4.0, "start", "", label);
    }

    pub fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }
}

fn legend_rect(color: &str, opacity: f64) -> String {
    format!(
        r#"<rect x="{{X}}" y="{{Y}}" width="18" height="10" transform="translate(0 -5)" fill="{color}" fill-opacity="{opacity}"/>"#
    )
}

pub(crate) fn legend_line(color: &str, dash: &str, width: f64) -> String {
    format!(
        r#"<line x1="0" y1="0" x2="18" y2="0" transform="translate({{X}} {{Y}})" stroke="{color}" stroke-width="{width}" stroke-dasharray="{dash}"/>"#
    )
}

/// The distinguishing end of a PeerId (all ed25519 ones start alike): `…uvwx4`.
fn peer_tail(peer: &str) -> String {
    let chars: Vec<char> = peer.chars().collect();
    if chars.len() <= 8 {
        return peer.to_string();
    }
    std::iter::once('…').chain(chars[chars.len() - 6..].iter().copied()).collect()
}

/// Time axis over the whole run, in seconds.
fn time_axis(run: &Run<'_>) -> (Axis, Vec<(f64, String)>) {
    let secs = (run.duration_ms as f64 / 1000.0).max(1.0);
    let (ticks, top) = ticks_to(secs, 10.0);
    let axis = Axis { lo: 0.0, hi: top, px_lo: LEFT, px_hi: RIGHT, log: false };
    (axis, ticks.into_iter().map(|t| (t, num(t))).collect())
}

/// Phase bands with their names (only when there are several phases).
fn phase_bands(svg: &mut Svg, run: &Run<'_>, x: &Axis) {
    if run.phases.len() < 2 {
        return;
    }
    for (i, (_, start, end)) in run.phases.iter().enumerate() {
        let (x0, x1) = (x.map(*start as f64 / 1000.0), x.map(*end as f64 / 1000.0));
        if i % 2 == 0 && x1 > x0 {
            let _ = writeln!(
                svg.out,
                r##"<rect class="phase" x="{x0:.1}" y="{TOP}" width="{:.1}" height="{:.1}" fill="#f1f1f1"/>"##,
                x1 - x0,
                BOTTOM - TOP
            );
        }
    }
}

fn phase_names(svg: &mut Svg, run: &Run<'_>, x: &Axis) {
    if run.phases.len() < 2 {
        return;
    }
    for (name, start, end) in &run.phases {
        let (x0, x1) = (x.map(*start as f64 / 1000.0), x.map(*end as f64 / 1000.0));
        let room = ((x1 - x0 - 8.0) / 6.0).floor().max(0.0) as usize;
        if room >= 3 {
            let label: String = if name.chars().count() > room {
                name.chars().take(room.saturating_sub(1)).chain(['…']).collect()
            } else {
                name.clone()
            };
            svg.text(
                x0 + 4.0,
                BOTTOM - 6.0,
                "start",
                r##"font-size="11" font-style="italic" fill="#666" stroke="#fff" stroke-width="3" paint-order="stroke""##,
                &label,
            );
        }
    }
}

/// Dashed lines at each fault event, labelled in up to three rows above the data area.
fn fault_markers(svg: &mut Svg, run: &Run<'_>, x: &Axis) {
    let mut row_ends = [f64::MIN; 3];
    for f in &run.faults {
        let px = x.map(f.t_ms as f64 / 1000.0);
        let (color, dash, action) = match f.action {
            FaultAction::Inject => (INJECT_COLOR, "6,4", "inject"),
            FaultAction::Heal => (HEAL_COLOR, "2,3", "heal"),
        };
        let label = match (f.action, f.node) {
            (FaultAction::Inject, Some(n)) => format!("{} n{n}", f.kind.trim()),
            (FaultAction::Inject, None) => f.kind.trim().to_string(),
            (FaultAction::Heal, Some(n)) => format!("heal n{n}"),
            (FaultAction::Heal, None) => match base_kind(&f.kind) {
                "partition" => "heal partition".to_string(),
                _ => "heal all".to_string(),
            },
        };
        let label: String =
            if label.chars().count() > 28 { label.chars().take(27).chain(['…']).collect() } else { label };
        let width = label.chars().count() as f64 * 6.2 + 8.0;
        let row = (0..3)
            .find(|&r| row_ends[r] < px)
            .unwrap_or_else(|| (0..3).min_by(|&a, &b| row_ends[a].total_cmp(&row_ends[b])).unwrap_or(0));
        row_ends[row] = px + width;
        let label_y = TOP - 8.0 - row as f64 * 14.0;
        let _ = writeln!(
            svg.out,
            r#"<line class="fault-marker {action}" x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{BOTTOM}" stroke="{color}" stroke-width="1.5" stroke-dasharray="{dash}"><title>{} at {}</title></line>"#,
            label_y + 3.0,
            xml(&label),
            xml(&fmt::secs(f.t_ms))
        );
        svg.text(px + 3.0, label_y, "start", &format!(r#"font-size="11" fill="{color}""#), &label);
    }
}

fn fault_legend(svg: &mut Svg, run: &Run<'_>, row: &mut usize) {
    if run.faults.iter().any(|f| f.action == FaultAction::Inject) {
        svg.legend_row(*row, &legend_line(INJECT_COLOR, "6,4", 1.5), "fault injected");
        *row += 1;
    }
    if run.faults.iter().any(|f| f.action == FaultAction::Heal) {
        svg.legend_row(*row, &legend_line(HEAL_COLOR, "2,3", 1.5), "fault healed");
        *row += 1;
    }
}

fn phase_legend(svg: &mut Svg, run: &Run<'_>, row: &mut usize) {
    if run.phases.len() >= 2 {
        svg.legend_row(*row, r##"<rect x="{X}" y="{Y}" width="18" height="10" transform="translate(0 -5)" fill="#f1f1f1" stroke="#bbb"/>"##, "phase (alternating)");
        *row += 1;
    }
}

/// Latency of every request over time: log-scale y in ms, one mark per request by outcome,
/// per-second p50 and p99 lines, fault markers and phase bands.
pub fn latency(run: &Run<'_>) -> String {
    let mut svg = Svg::new("Latency over time");
    let (x, x_ticks) = time_axis(run);
    let reqs = &run.requests;
    let lat_ms = |us: u64| (us as f64 / 1000.0).max(0.001);
    let (lo, hi) = reqs.iter().fold((f64::MAX, f64::MIN), |(lo, hi), r| {
        let v = lat_ms(r.latency_us);
        (lo.min(v), hi.max(v))
    });
    let (lo, hi) = if reqs.is_empty() { (1.0, 1000.0) } else { (lo, hi) };
    let lo_dec = lo.log10().floor();
    let hi_dec = hi.log10().ceil().max(lo_dec + 1.0);
    let y = Axis { lo: 10f64.powf(lo_dec), hi: 10f64.powf(hi_dec), px_lo: BOTTOM, px_hi: TOP, log: true };
    let mut y_ticks = Vec::new();
    for d in (lo_dec as i32)..=(hi_dec as i32) {
        let v = 10f64.powi(d);
        let label = if v >= 1000.0 { format!("{} s", num(v / 1000.0)) } else { format!("{} ms", num(v)) };
        y_ticks.push((v, label, true));
        if d < hi_dec as i32 {
            y_ticks.push((2.0 * v, String::new(), false));
            y_ticks.push((5.0 * v, String::new(), false));
        }
    }
    let ok = reqs.iter().filter(|r| r.outcome == Outcome::Ok).count();
    let errors = reqs.iter().filter(|r| r.outcome == Outcome::Error).count();
    let wrong = reqs.len() - ok - errors;
    let stride = ok.div_ceil(MAX_OK_POINTS).max(1);
    svg.subtitle(&format!(
        "{} requests at their send time (log scale); lines: p50 and p99 of each {} s",
        reqs.len(),
        num(BUCKET_MS as f64 / 1000.0)
    ));
    phase_bands(&mut svg, run, &x);
    svg.axes(&x, &x_ticks, &y, &y_ticks);
    svg.axis_titles("time since start (s)", "latency");
    if reqs.is_empty() {
        svg.no_data("no data: no requests recorded");
    }

    let point = |r: &crate::record::Request| (x.map(r.t_ms as f64 / 1000.0), y.map(lat_ms(r.latency_us)));
    // Correct answers: small translucent dots, one path. Each dot is a zero-length stroke with
    // round caps (14 bytes, against 53 for two arcs), and a dot already drawn at the same 0.1 px
    // is skipped: one path paints the union of its parts, so a repeat adds nothing but bytes.
    let mut d = String::new();
    let mut drawn = std::collections::HashSet::new();
    for r in reqs.iter().filter(|r| r.outcome == Outcome::Ok).step_by(stride) {
        let (px, py) = point(r);
        if drawn.insert(((px * 10.0).round() as i64, (py * 10.0).round() as i64)) {
            let _ = write!(d, "M{px:.1} {py:.1}h0");
        }
    }
    if !d.is_empty() {
        let _ = writeln!(
            svg.out,
            r#"<path class="ok" d="{d}" fill="none" stroke="{OK_COLOR}" stroke-opacity="0.45" stroke-width="3.6" stroke-linecap="round"/>"#
        );
    }

    // Per-bucket p50/p99 lines.
    let buckets = run.duration_ms.div_ceil(BUCKET_MS).max(1) as usize;
    let mut per_bucket: Vec<Vec<u64>> = vec![Vec::new(); buckets];
    for r in reqs.iter() {
        let b = ((r.t_ms / BUCKET_MS) as usize).min(buckets - 1);
        per_bucket[b].push(r.latency_us);
    }
    for (p, dash, width) in [(50.0, "", 1.6), (99.0, "5,3", 1.4)] {
        let mut d = String::new();
        let mut pen_down = false;
        for (b, vals) in per_bucket.iter_mut().enumerate() {
            vals.sort_unstable();
            match percentile(vals, p) {
                Some(v) => {
                    let px = x.map((b as f64 + 0.5) * BUCKET_MS as f64 / 1000.0);
                    let _ = write!(d, "{}{px:.1} {:.1}", if pen_down { " L" } else { "M" }, y.map(lat_ms(v)));
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        if !d.is_empty() {
            let _ = writeln!(
                svg.out,
                r##"<path class="p{p}" d="{d}" fill="none" stroke="#222" stroke-width="{width}" stroke-dasharray="{dash}" stroke-linejoin="round"/>"##
            );
        }
    }

    // Failures: red crosses; wrong answers: orange diamonds on top.
    let mut d = String::new();
    for r in reqs.iter().filter(|r| r.outcome == Outcome::Error) {
        let (px, py) = point(r);
        let _ = write!(d, "M{:.1} {:.1}l6 6m0 -6l-6 6", px - 3.0, py - 3.0);
    }
    if !d.is_empty() {
        let _ =
            writeln!(svg.out, r#"<path class="error" d="{d}" stroke="{ERROR_COLOR}" stroke-width="1.6" fill="none"/>"#);
    }
    let mut d = String::new();
    for r in reqs.iter().filter(|r| r.outcome == Outcome::Wrong) {
        let (px, py) = point(r);
        let _ = write!(d, "M{px:.1} {:.1}l5 5l-5 5l-5 -5z", py - 5.0);
    }
    if !d.is_empty() {
        let _ = writeln!(
            svg.out,
            r##"<path class="wrong" d="{d}" fill="{WRONG_COLOR}" stroke="#6b3300" stroke-width="0.6"/>"##
        );
    }

    phase_names(&mut svg, run, &x);
    fault_markers(&mut svg, run, &x);

    let mut row = 0;
    let ok_label = if stride > 1 { format!("ok ({ok}, 1/{stride} drawn)") } else { format!("ok ({ok})") };
    svg.legend_row(
        row,
        &format!(
            r#"<circle cx="{{X}}" cy="{{Y}}" r="3" transform="translate(9 0)" fill="{OK_COLOR}" fill-opacity="0.6"/>"#
        ),
        &ok_label,
    );
    row += 1;
    svg.legend_row(
        row,
        &format!(r#"<path d="M0 0l6 6m0 -6l-6 6" transform="translate({{X}} {{Y}}) translate(6 -3)" stroke="{ERROR_COLOR}" stroke-width="1.6"/>"#),
        &format!("failed ({errors})"),
    );
    row += 1;
    svg.legend_row(
        row,
        &format!(r##"<path d="M0 -5l5 5l-5 5l-5 -5z" transform="translate({{X}} {{Y}}) translate(9 0)" fill="{WRONG_COLOR}" stroke="#6b3300" stroke-width="0.6"/>"##),
        &format!("wrong ({wrong})"),
    );
    row += 1;
    svg.legend_row(row, &legend_line("#222", "", 1.6), "p50 per second");
    row += 1;
    svg.legend_row(row, &legend_line("#222", "5,3", 1.4), "p99 per second");
    row += 1;
    fault_legend(&mut svg, run, &mut row);
    phase_legend(&mut svg, run, &mut row);
    svg.finish()
}

/// Who answered, as a share of each second's requests: stacked areas per serving node, failed
/// requests on top in red.
pub fn served_by(run: &Run<'_>) -> String {
    let mut svg = Svg::new("Served-by share over time");
    let (x, x_ticks) = time_axis(run);
    let y = Axis { lo: 0.0, hi: 100.0, px_lo: BOTTOM, px_hi: TOP, log: false };
    let y_ticks: Vec<(f64, String, bool)> =
        [0.0, 25.0, 50.0, 75.0, 100.0].iter().map(|&v| (v, format!("{v}%"), true)).collect();
    svg.subtitle(&format!(
        "share of requests sent in each {} s by the node that answered (wrong answers count for their node)",
        num(BUCKET_MS as f64 / 1000.0)
    ));
    svg.axes(&x, &x_ticks, &y, &y_ticks);
    svg.axis_titles("time since start (s)", "share of requests");

    // Categories: serving nodes in order, then "unknown server", then "failed".
    let nodes_seen: BTreeSet<usize> =
        run.requests.iter().filter(|r| r.outcome != Outcome::Error).filter_map(|r| run.served_node(r)).collect();
    let mut categories: Vec<(String, &str)> = nodes_seen
        .iter()
        .map(|&n| {
            let peer = run.meta.and_then(|m| m.node_peer_ids.get(n)).map(|p| format!(" ({})", peer_tail(p)));
            (format!("node {n}{}", peer.unwrap_or_default()), NODE_COLORS[n % NODE_COLORS.len()])
        })
        .collect();
    let unknown_idx = categories.len();
    let failed_idx = unknown_idx + 1;
    categories.push(("server unknown".into(), UNKNOWN_COLOR));
    categories.push(("failed".into(), FAILED_COLOR));
    let nodes: Vec<usize> = nodes_seen.iter().copied().collect();

    let buckets = run.duration_ms.div_ceil(BUCKET_MS).max(1) as usize;
    let mut counts = vec![vec![0u64; categories.len()]; buckets];
    for r in &run.requests {
        let b = ((r.t_ms / BUCKET_MS) as usize).min(buckets - 1);
        let c = match (r.outcome, run.served_node(r)) {
            (Outcome::Error, _) => failed_idx,
            (_, Some(n)) => nodes.binary_search(&n).unwrap_or(unknown_idx),
            (_, None) => unknown_idx,
        };
        counts[b][c] += 1;
    }
    let used: Vec<bool> = (0..categories.len()).map(|c| counts.iter().any(|b| b[c] > 0)).collect();

    if run.requests.is_empty() {
        svg.no_data("no data: no requests recorded");
    } else {
        // Stacked step areas: for each category, the band between the cumulative shares below it
        // and including it, flat across each bucket.
        let mut below = vec![0.0f64; buckets];
        for (c, (name, color)) in categories.iter().enumerate() {
            if !used[c] {
                continue;
            }
            let mut top_edge = Vec::with_capacity(buckets * 2);
            let mut bottom_edge = Vec::with_capacity(buckets * 2);
            for (b, bucket) in counts.iter().enumerate() {
                let total: u64 = bucket.iter().sum();
                let share = if total == 0 { 0.0 } else { bucket[c] as f64 * 100.0 / total as f64 };
                let (x0, x1) = (
                    x.map((b as u64 * BUCKET_MS) as f64 / 1000.0),
                    x.map((((b as u64 + 1) * BUCKET_MS).min(run.duration_ms.max(BUCKET_MS))) as f64 / 1000.0),
                );
                let (y0, y1) = (y.map(below[b]), y.map(below[b] + share));
                top_edge.push(format!("{x0:.1},{y1:.1} {x1:.1},{y1:.1}"));
                bottom_edge.push(format!("{x1:.1},{y0:.1} {x0:.1},{y0:.1}"));
                below[b] += share;
            }
            bottom_edge.reverse();
            let _ = writeln!(
                svg.out,
                r#"<polygon class="share" points="{} {}" fill="{color}" fill-opacity="0.85" stroke="{color}" stroke-width="0.5"><title>{}</title></polygon>"#,
                top_edge.join(" "),
                bottom_edge.join(" "),
                xml(name)
            );
        }
        // Seconds without any request: say so rather than show a misleading empty band.
        for (b, bucket) in counts.iter().enumerate() {
            if bucket.iter().sum::<u64>() == 0 {
                let x0 = x.map((b as u64 * BUCKET_MS) as f64 / 1000.0);
                let x1 = x.map(((b as u64 + 1) * BUCKET_MS) as f64 / 1000.0);
                let _ = writeln!(
                    svg.out,
                    r##"<rect class="idle" x="{x0:.1}" y="{TOP}" width="{:.1}" height="{:.1}" fill="#fafafa"/>"##,
                    x1 - x0,
                    BOTTOM - TOP
                );
            }
        }
        let _ = writeln!(
            svg.out,
            r##"<rect x="{LEFT}" y="{TOP}" width="{:.1}" height="{:.1}" fill="none" stroke="#444"/>"##,
            RIGHT - LEFT,
            BOTTOM - TOP
        );
    }
    fault_markers(&mut svg, run, &x);

    let mut row = 0;
    for (c, (name, color)) in categories.iter().enumerate().rev() {
        if used[c] {
            svg.legend_row(row, &legend_rect(color, 0.85), name);
            row += 1;
        }
    }
    if counts.iter().any(|b| b.iter().sum::<u64>() == 0) && !run.requests.is_empty() {
        svg.legend_row(row, r##"<rect x="{X}" y="{Y}" width="18" height="10" transform="translate(0 -5)" fill="#fafafa" stroke="#bbb"/>"##, "no requests");
        row += 1;
    }
    fault_legend(&mut svg, run, &mut row);
    svg.finish()
}

/// Cumulative distribution of gossip delays: each delivery, and per message the time until it
/// had reached every other node (messages that never did keep that curve below 1). The legend
/// quotes the percentiles of `summary`, so plot and report agree.
pub fn gossip_cdf(run: &Run<'_>, summary: &GossipSummary) -> String {
    let mut svg = Svg::new("Gossip propagation (CDF)");
    let expected = summary.expected_observers;
    let mut firsts: BTreeMap<(usize, u64), BTreeMap<usize, u64>> = BTreeMap::new();
    for g in &run.gossip {
        let seen = firsts.entry((g.publisher, g.seq)).or_default();
        if g.observer != g.publisher {
            seen.entry(g.observer).or_insert(g.delay_ms);
        }
    }
    let mut deliveries: Vec<u64> = firsts.values().flat_map(|m| m.values().copied()).collect();
    deliveries.sort_unstable();
    let convergence = Convergence::of(firsts.values().map(|m| Convergence::of_message(m.values().copied(), expected)));
    let converged = convergence.finite_ms.clone();
    let messages = firsts.len();

    let max = deliveries.last().copied().unwrap_or(0).max(1) as f64;
    let (ticks, top) = ticks_to(max, 10.0);
    let x = Axis { lo: 0.0, hi: top, px_lo: LEFT, px_hi: RIGHT, log: false };
    let y = Axis { lo: 0.0, hi: 1.0, px_lo: BOTTOM, px_hi: TOP, log: false };
    let x_ticks: Vec<(f64, String)> = ticks.into_iter().map(|t| (t, num(t))).collect();
    let y_ticks: Vec<(f64, String, bool)> = [0.0, 0.25, 0.5, 0.75, 1.0].iter().map(|&v| (v, num(v), true)).collect();
    svg.subtitle(&format!(
        "publish → accepted: {} deliveries of {} messages, each to up to {} other nodes",
        deliveries.len(),
        messages,
        expected
    ));
    svg.axes(&x, &x_ticks, &y, &y_ticks);
    svg.axis_titles("delay after publish (ms)", "fraction");
    for v in [0.5, 0.99] {
        let py = y.map(v);
        let _ = writeln!(
            svg.out,
            r##"<line class="guide" x1="{LEFT}" y1="{py:.1}" x2="{RIGHT}" y2="{py:.1}" stroke="#999" stroke-dasharray="3,3"/>"##
        );
    }
    if deliveries.is_empty() {
        svg.no_data("no data: no gossip deliveries recorded");
    }
    let step_path = |sorted: &[u64], of: usize| -> String {
        if sorted.is_empty() || of == 0 {
            return String::new();
        }
        let mut d = format!("M{LEFT:.1} {BOTTOM:.1}");
        for (i, v) in sorted.iter().enumerate() {
            let _ = write!(d, " H{:.1} V{:.1}", x.map(*v as f64), y.map((i + 1) as f64 / of as f64));
        }
        let _ = write!(d, " H{RIGHT:.1}");
        d
    };
    let ms = |v: Option<u64>, missing: &str| v.map_or_else(|| missing.to_string(), |v| format!("{v} ms"));
    let series = [
        (
            "deliveries",
            step_path(&deliveries, deliveries.len()),
            OK_COLOR,
            "",
            format!("each delivery ({})", deliveries.len()),
            format!("p50 {}, p99 {}", ms(summary.delivery_p50_ms, "–"), ms(summary.delivery_p99_ms, "–")),
        ),
        (
            "convergence",
            step_path(&converged, messages),
            WRONG_COLOR,
            "6,3",
            format!("reached all ({}/{messages})", converged.len()),
            format!(
                "p50 {}, p99 {}",
                ms(summary.convergence_p50_ms, if messages == 0 { "–" } else { "never" }),
                ms(summary.convergence_p99_ms, if messages == 0 { "–" } else { "never" })
            ),
        ),
    ];
    let mut row = 0;
    for (class, d, color, dash, label, detail) in series {
        if !d.is_empty() {
            let _ = writeln!(
                svg.out,
                r#"<path class="{class}" d="{d}" fill="none" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/>"#
            );
        }
        svg.legend_row(row, &legend_line(color, dash, 2.0), &label);
        svg.text(
            LEGEND_X + 26.0,
            TOP + 8.0 + row as f64 * 20.0 + 18.0,
            "start",
            r##"font-size="11" fill="#555""##,
            &detail,
        );
        row += 2;
    }
    svg.legend_row(row, &legend_line("#999", "3,3", 1.0), "guides: 0.5 and 0.99");
    svg.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps_and_ticks() {
        assert_eq!(nice_step(20.0, 10.0), 2.0);
        assert_eq!(nice_step(7.0, 10.0), 1.0);
        assert_eq!(nice_step(300.0, 10.0), 50.0);
        let (ticks, top) = ticks_to(19.5, 10.0);
        assert_eq!(top, 20.0);
        assert_eq!(ticks.len(), 11);
        assert_eq!(num(0.25), "0.25");
        assert_eq!(num(20.0), "20");
    }

    #[test]
    fn log_axis_maps_decades_evenly() {
        let y = Axis { lo: 0.1, hi: 1000.0, px_lo: 400.0, px_hi: 0.0, log: true };
        assert_eq!(y.map(0.1), 400.0);
        assert_eq!(y.map(1000.0), 0.0);
        assert!((y.map(1.0) - 300.0).abs() < 1e-9);
        assert_eq!(y.map(0.0), 400.0); // clamped, not -inf
    }
}
