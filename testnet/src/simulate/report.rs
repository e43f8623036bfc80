//! The simulation's report: `report.json` (every figure), `report.md` (the figures a paper
//! would quote, with what was real and what was modelled), and three plots drawn with the
//! scenario reports' SVG helpers: `convergence_cdf.svg`, `traffic.svg`, `answers.svg`.

use std::fmt::Write as _;

use serde::Serialize;

use super::clock::Micros;
use super::gossip::NEVER;
use super::world::{Answer, Kind, Outcome};
use crate::measure::{Convergence, Percentile, percentile};
use crate::report::svg::{
    Axis, BOTTOM, ERROR_COLOR, LEFT, OK_COLOR, RIGHT, Svg, TOP, WRONG_COLOR, legend_line, num, ticks_to,
};

/// Convergence of one message kind, µs.
#[derive(Debug, Clone, Serialize)]
pub struct KindFigures {
    /// `announcement`, `attestation` or `evidence`.
    pub kind: &'static str,
    /// Messages published.
    pub published: u64,
    /// Of which spread hop by hop and measured.
    pub tracked: u64,
    /// Tracked messages every up node accepted.
    pub converged: u64,
    /// Tracked messages some up node never accepted (infinitely slow).
    pub never_converged: u64,
    /// Convergence percentiles over all tracked messages (never-converged ranked last), µs.
    pub convergence_p50_us: Percentile,
    /// p90.
    pub convergence_p90_us: Percentile,
    /// p99.
    pub convergence_p99_us: Percentile,
    /// Slowest finite convergence, µs.
    pub convergence_max_us: Option<u64>,
    /// Delivery (publish → accepted at one node) p50, µs, over sampled deliveries.
    pub delivery_p50_us: Option<u64>,
    /// Delivery p99, µs.
    pub delivery_p99_us: Option<u64>,
}

/// Per-node traffic, per second of simulated time (announcements and attestations scaled from
/// the tracked share; evidence counted in full).
#[derive(Debug, Clone, Serialize)]
pub struct TrafficFigures {
    /// Data messages sent per node per second: mean over nodes.
    pub sent_msgs_mean: f64,
    /// Same, the busiest node.
    pub sent_msgs_max: f64,
    /// Data messages received per node per second (duplicates included): mean.
    pub received_msgs_mean: f64,
    /// Same, 99th percentile over nodes.
    pub received_msgs_p99: f64,
    /// Bytes sent per node per second: mean.
    pub sent_bytes_mean: f64,
    /// Bytes received per node per second: mean.
    pub received_bytes_mean: f64,
    /// IHAVE/IWANT ids sent per node per second: mean.
    pub control_ids_mean: f64,
    /// Share of received copies that were duplicates.
    pub duplicate_share: f64,
}

/// Client answers.
#[derive(Debug, Clone, Serialize)]
pub struct AnswerFigures {
    /// Requests.
    pub requests: u64,
    /// Correct.
    pub ok: u64,
    /// Lies that reached clients.
    pub wrong: u64,
    /// Censored answers that reached clients.
    pub censored: u64,
    /// No answer within the attempts.
    pub failed: u64,
    /// `ok / requests`.
    pub share_correct: Option<f64>,
    /// Lies caught by a check (retried elsewhere, evidence spread).
    pub lies_caught: u64,
}

/// One liar.
#[derive(Debug, Clone, Serialize)]
pub struct LiarFigures {
    /// Node index.
    pub node: usize,
    /// First detection, ms after start.
    pub detected_at_ms: Option<f64>,
    /// Detection → the last up daemon (other than the liar's) cordoned it, ms; `None` if some never did.
    pub mesh_wide_after_ms: Option<f64>,
    /// Daemons that cordoned it.
    pub cordoned_by: usize,
    /// Daemons up at the end that never cordoned it.
    pub not_cordoned: usize,
}

/// Forged flood figures.
#[derive(Debug, Clone, Serialize)]
pub struct ForgeFigures {
    /// Forged copies sent.
    pub sent: u64,
    /// Validated by the receiving peer (rejected or ignored).
    pub validated: u64,
    /// Dropped unread (sender graylisted).
    pub dropped_graylisted: u64,
    /// Forwarded: always 0 (validation precedes forwarding).
    pub forwarded: u64,
    /// Per forger: flood start → every peer graylisted it, ms (`None`: never).
    pub isolated_after_ms: Vec<Option<f64>>,
}

/// Everything `report.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    /// Scenario name.
    pub scenario: String,
    /// Its description.
    pub description: String,
    /// Seed.
    pub seed: u64,
    /// Providers.
    pub providers: usize,
    /// Observer daemons (real mesh view and routing).
    pub observers: usize,
    /// Liars, censors.
    pub liars: usize,
    /// Censors.
    pub censors: usize,
    /// Simulated seconds measured.
    pub simulated_s: f64,
    /// Share of announcements and attestations spread hop by hop.
    pub track_share: f64,
    /// Encoded bytes of an announcement and of an attestation.
    pub message_bytes: (u64, u64),
    /// Events processed.
    pub events: u64,
    /// Wall-clock time of the run, s.
    pub wall_s: f64,
    /// Peak resident memory of the process, MiB (VmHWM).
    pub peak_rss_mib: Option<f64>,
    /// Per message kind.
    pub gossip: Vec<KindFigures>,
    /// Traffic per node.
    pub traffic: TrafficFigures,
    /// Client answers.
    pub answers: AnswerFigures,
    /// Liars.
    pub liar_detection: Vec<LiarFigures>,
    /// Forged floods.
    pub forge: Option<ForgeFigures>,
}

fn label(k: Kind) -> &'static str {
    match k {
        Kind::Announcement => "announcement",
        Kind::Attestation => "attestation",
        Kind::Evidence => "evidence",
    }
}

/// The figures of `out`.
pub fn figures(sc: &super::scenario::SimScenario, out: &Outcome, wall_s: f64, peak_rss_mib: Option<f64>) -> SimReport {
    let secs = out.duration_us as f64 / 1e6;
    let gossip = [Kind::Announcement, Kind::Attestation, Kind::Evidence]
        .into_iter()
        .map(|k| {
            let c = Convergence::of(out.convergence.get(&k).cloned().unwrap_or_default());
            let mut d = out.deliveries.get(&k).cloned().unwrap_or_default();
            d.sort_unstable();
            KindFigures {
                kind: label(k),
                published: out.published.get(&k).copied().unwrap_or(0),
                tracked: c.messages,
                converged: c.converged,
                never_converged: c.never_converged,
                convergence_p50_us: c.percentile(50.0),
                convergence_p90_us: c.percentile(90.0),
                convergence_p99_us: c.percentile(99.0),
                convergence_max_us: c.finite_ms.last().copied(),
                delivery_p50_us: percentile(&d, 50.0),
                delivery_p99_us: percentile(&d, 99.0),
            }
        })
        .collect();
    let n = out.providers as f64;
    let scale = 1.0 / out.track_share.max(f64::MIN_POSITIVE);
    let t = &out.traffic;
    let e = &out.evidence_traffic;
    let per_node = |a: &[u64], b: &[u64]| -> Vec<f64> {
        a.iter().zip(b).map(|(x, y)| (*x as f64 * scale + *y as f64) / secs).collect()
    };
    let sent = per_node(&t.sent, &e.sent);
    let mut received = per_node(&t.received, &e.received);
    received.sort_by(f64::total_cmp);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / n;
    let total_received: u64 = t.received.iter().sum::<u64>() + e.received.iter().sum::<u64>();
    let traffic = TrafficFigures {
        sent_msgs_mean: mean(&sent),
        sent_msgs_max: sent.iter().copied().fold(0.0, f64::max),
        received_msgs_mean: mean(&received),
        received_msgs_p99: received
            .get(((received.len() as f64 * 0.99).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(0.0),
        sent_bytes_mean: mean(&per_node(&t.sent_bytes, &e.sent_bytes)),
        received_bytes_mean: mean(&per_node(&t.received_bytes, &e.received_bytes)),
        control_ids_mean: mean(&per_node(&t.control_ids, &e.control_ids)),
        duplicate_share: if total_received == 0 {
            0.0
        } else {
            (t.duplicates + e.duplicates) as f64 / total_received as f64
        },
    };
    let [ok, wrong, censored, failed] = out.answers;
    let requests = ok + wrong + censored + failed;
    let answers = AnswerFigures {
        requests,
        ok,
        wrong,
        censored,
        failed,
        share_correct: (requests > 0).then(|| ok as f64 / requests as f64),
        lies_caught: out.lies_caught,
    };
    let liar_detection = out
        .liars
        .iter()
        .map(|l| {
            let others: Vec<Micros> =
                l.cordoned_at.iter().enumerate().filter(|(v, _)| *v != l.node).map(|(_, t)| *t).collect();
            let cordoned_by = others.iter().filter(|t| **t != NEVER).count();
            let not = others.len() - cordoned_by;
            let mesh_wide = match (l.detected_at, not) {
                (Some(d), 0) => others.iter().max().map(|m| (m - d) as f64 / 1e3),
                _ => None,
            };
            LiarFigures {
                node: l.node,
                detected_at_ms: l.detected_at.map(|d| d as f64 / 1e3),
                mesh_wide_after_ms: mesh_wide,
                cordoned_by,
                not_cordoned: not,
            }
        })
        .collect();
    let forge = (!out.forge.isolated_at.is_empty()).then(|| {
        let start = out.marks.iter().find(|(_, m)| m.starts_with("forge")).map_or(0, |(t, _)| *t);
        ForgeFigures {
            sent: out.forge.sent,
            validated: out.forge.validated,
            dropped_graylisted: out.forge.dropped_graylisted,
            forwarded: out.forge.forwarded,
            isolated_after_ms: out
                .forge
                .isolated_at
                .iter()
                .map(|t| t.map(|t| t.saturating_sub(start) as f64 / 1e3))
                .collect(),
        }
    });
    SimReport {
        scenario: sc.name.clone(),
        description: sc.description.clone(),
        seed: sc.seed,
        providers: out.providers,
        observers: out.observers.len(),
        liars: out.roles.iter().filter(|r| **r == super::world::Role::Liar).count(),
        censors: out.roles.iter().filter(|r| **r == super::world::Role::Censor).count(),
        simulated_s: secs,
        track_share: out.track_share,
        message_bytes: out.sizes,
        events: out.events,
        wall_s,
        peak_rss_mib,
        gossip,
        traffic,
        answers,
        liar_detection,
        forge,
    }
}

fn ms(us: Option<u64>) -> String {
    us.map_or_else(|| "–".into(), |v| format!("{:.1} ms", v as f64 / 1e3))
}

fn pct(p: Percentile) -> String {
    match p {
        Percentile::At(v) => format!("{:.1} ms", v as f64 / 1e3),
        Percentile::Never => "never".into(),
        Percentile::NoData => "–".into(),
    }
}

/// `report.md`.
pub fn markdown(sc: &super::scenario::SimScenario, r: &SimReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Simulation: {}\n", r.scenario);
    if !r.description.is_empty() {
        let _ = writeln!(s, "{}\n", r.description.trim());
    }
    let g = &sc.gossip;
    let _ = writeln!(
        s,
        "**Setup.** {} providers ({} liars, {} censors), {} observer daemons, {} connections each, \
         regions {:?}, loss {}, jitter σ {}; seed {}; {} s simulated. Gossipsub D={} D_lo={} D_hi={} \
         gossip_lazy={} gossip_factor={} heartbeat {} ms, flood publish {}; announcements every {} ms, \
         one attestation round ({} observations) per {} ms (the configured {} ms and {} ms stretched for the mesh \
         size, at most {}/s and {}/s mesh-wide); clients: {} req/s per observer, verify `{}`.\n",
        r.providers,
        r.liars,
        r.censors,
        r.observers,
        sc.mesh.connections.unwrap_or(64).min(r.providers - 1),
        sc.region_names(),
        sc.mesh.loss,
        sc.mesh.jitter,
        r.seed,
        r.simulated_s,
        g.mesh_n,
        g.mesh_n_low,
        g.mesh_n_high,
        g.gossip_lazy,
        g.gossip_factor,
        g.heartbeat_ms,
        g.flood_publish,
        g.announce_period_us(r.providers) / 1_000,
        g.observations_per_round,
        g.attest_period_us(r.providers) / 1_000,
        g.announce_heartbeat_ms,
        g.attest_interval_ms,
        g.mesh_rate_per_sec,
        g.mesh_rounds_per_sec,
        sc.load.rate,
        sc.load.verify
    );
    let _ = writeln!(
        s,
        "**Run.** {} events in {:.1} s wall time, peak memory {}; {:.2} % of announcements and attestation rounds \
         spread hop by hop (the rest reach observers with delays drawn from those; traffic scaled by the share). \
         Messages: announcement {} B, attestation round {} B (the real encodings).\n",
        r.events,
        r.wall_s,
        r.peak_rss_mib.map_or_else(|| "unknown".into(), |m| format!("{m:.0} MiB")),
        r.track_share * 100.0,
        r.message_bytes.0,
        r.message_bytes.1
    );
    s.push_str("## Gossip convergence\n\n");
    s.push_str("| kind | published | measured | converged | never converged | p50 | p90 | p99 | max | delivery p50 / p99 |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for k in &r.gossip {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |",
            k.kind,
            k.published,
            k.tracked,
            k.converged,
            k.never_converged,
            pct(k.convergence_p50_us),
            pct(k.convergence_p90_us),
            pct(k.convergence_p99_us),
            ms(k.convergence_max_us),
            ms(k.delivery_p50_us),
            ms(k.delivery_p99_us)
        );
    }
    s.push_str(
        "\nConvergence of a message: publish → accepted by the last node that was up at publication \
         (`testnet/src/measure.rs`, the scenario reports' definition). A message some up node never accepted \
         (partitioned, lost) is infinitely slow: counted as *never converged* and ranked last, so a \
         percentile reads \"never\" when its rank falls on one.\n\n",
    );
    let t = &r.traffic;
    s.push_str("## Traffic per node\n\n| | per node per second |\n|---|---|\n");
    let _ = writeln!(s, "| data messages sent (mean / busiest) | {:.1} / {:.1} |", t.sent_msgs_mean, t.sent_msgs_max);
    let _ = writeln!(
        s,
        "| data messages received, duplicates included (mean / p99) | {:.1} / {:.1} |",
        t.received_msgs_mean, t.received_msgs_p99
    );
    let _ = writeln!(s, "| bytes sent / received (mean) | {:.0} / {:.0} |", t.sent_bytes_mean, t.received_bytes_mean);
    let _ = writeln!(s, "| IHAVE/IWANT message ids sent (mean) | {:.1} |", t.control_ids_mean);
    let _ = writeln!(s, "| duplicates among received copies | {:.1} % |\n", t.duplicate_share * 100.0);
    let a = &r.answers;
    s.push_str("## Client requests\n\n| requests | correct | wrong | censored | failed | share correct | lies caught by checks |\n|---|---|---|---|---|---|---|\n");
    let _ = writeln!(
        s,
        "| {} | {} | {} | {} | {} | {} | {} |\n",
        a.requests,
        a.ok,
        a.wrong,
        a.censored,
        a.failed,
        a.share_correct.map_or_else(|| "–".into(), |v| format!("{:.3} %", v * 100.0)),
        a.lies_caught
    );
    if !r.liar_detection.is_empty() {
        s.push_str("## Liars: time to cordon\n\n");
        let detected: Vec<&LiarFigures> = r.liar_detection.iter().filter(|l| l.detected_at_ms.is_some()).collect();
        let mut wide: Vec<u64> =
            detected.iter().filter_map(|l| l.mesh_wide_after_ms.map(|v| (v * 1e3) as u64)).collect();
        wide.sort_unstable();
        let c = Convergence::of(detected.iter().map(|l| l.mesh_wide_after_ms.map(|v| (v * 1e3) as u64)));
        let _ = writeln!(
            s,
            "{} of {} liars detected (a client's answer from them checked and proven wrong). Detection → \
             cordoned by every other daemon up at the time: p50 {}, p99 {}, max {} ({} never mesh-wide).\n",
            detected.len(),
            r.liar_detection.len(),
            pct(c.percentile(50.0)),
            pct(c.percentile(99.0)),
            ms(wide.last().copied()),
            c.never_converged
        );
        s.push_str("| liar | detected at | mesh-wide after | cordoned by | not cordoned |\n|---|---|---|---|---|\n");
        for l in r.liar_detection.iter().take(20) {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                l.node,
                l.detected_at_ms.map_or_else(|| "never".into(), |v| format!("{:.0} ms", v)),
                l.mesh_wide_after_ms.map_or_else(|| "never".into(), |v| format!("{v:.1} ms")),
                l.cordoned_by,
                l.not_cordoned
            );
        }
        if r.liar_detection.len() > 20 {
            let _ = writeln!(s, "\n({} more in report.json)", r.liar_detection.len() - 20);
        }
        s.push('\n');
    }
    if let Some(f) = &r.forge {
        s.push_str("## Forged messages\n\n");
        let isolated: Vec<String> =
            f.isolated_after_ms.iter().map(|v| v.map_or_else(|| "never".into(), |v| format!("{v:.0} ms"))).collect();
        let _ = writeln!(
            s,
            "{} forged copies sent to peers: {} validated (and refused), {} dropped unread by peers that had \
             graylisted the sender, {} forwarded. Flood start → every peer of a forger graylisted it: {}.\n",
            f.sent,
            f.validated,
            f.dropped_graylisted,
            f.forwarded,
            isolated.join(", ")
        );
    }
    s.push_str(MODEL_NOTES);
    s.push_str("\n![convergence](convergence_cdf.svg)\n\n![traffic](traffic.svg)\n\n![answers](answers.svg)\n");
    s
}

/// What is real and what is modelled, printed in every report.
pub const MODEL_NOTES: &str = "## What ran and what was modelled\n\n\
- **Real code** on the observer daemons: `MeshState` (announcements folded, trust judged by the real \
  `TrustPolicy` from an explicit peer list, health and reference heads, snapshot), \
  `CordonBook` (cordons from evidence), `router::table::build` and `router::plan::plan` (eligibility, \
  ranking), and the real encoded sizes of announcements and attestations.\n\
- **Modelled**: gossipsub with the scenario's parameters (mesh push, flood publish if set, IHAVE/IWANT, duplicates, per-hop validation time) \
  on a static mesh repaired after churn and partitions; network latency, jitter and loss; liars caught by \
  a check with the `sample`/`strict` probability; evidence spread as a gossip message judged at each hop; \
  forged messages refused at the first hop with the daemon's peer-score parameters.\n\
- **Not modelled**: signatures (no message is signed or verified: a fixed per-hop validation time \
  stands for it; one certificate is signed, for its encoded size; trust is by explicit listing, since \
  judging a certificate costs a verification), CPU contention and queueing, bandwidth, connection \
  set-up, kad discovery, attestations folded into the observers' views, breakers and hedging, \
  the gossipsub score beyond invalid messages.\n";

/// Plots.
pub fn plots(r: &SimReport, out: &Outcome) -> [(String, String); 3] {
    [
        ("convergence_cdf.svg".into(), convergence_svg(out)),
        ("traffic.svg".into(), traffic_svg(r, out)),
        ("answers.svg".into(), answers_svg(out)),
    ]
}

fn convergence_svg(out: &Outcome) -> String {
    let mut svg = Svg::new("Gossip convergence (CDF over all measured messages)");
    let series: Vec<(&str, Convergence, &str)> =
        [(Kind::Announcement, OK_COLOR), (Kind::Attestation, "#2ca02c"), (Kind::Evidence, WRONG_COLOR)]
            .into_iter()
            .map(|(k, c)| (label(k), Convergence::of(out.convergence.get(&k).cloned().unwrap_or_default()), c))
            .filter(|(_, c, _)| c.messages > 0)
            .collect();
    let max_ms = series.iter().filter_map(|(_, c, _)| c.finite_ms.last()).max().copied().unwrap_or(1) as f64 / 1e3;
    let (ticks, top) = ticks_to(max_ms.max(0.1), 10.0);
    let x = Axis { lo: 0.0, hi: top, px_lo: LEFT, px_hi: RIGHT, log: false };
    let y = Axis { lo: 0.0, hi: 1.0, px_lo: BOTTOM, px_hi: TOP, log: false };
    let xt: Vec<(f64, String)> = ticks.into_iter().map(|t| (t, num(t))).collect();
    let yt: Vec<(f64, String, bool)> = [0.0, 0.25, 0.5, 0.75, 1.0].iter().map(|&v| (v, num(v), true)).collect();
    svg.subtitle("publish → accepted by every node up at publication; never-converged messages keep a curve below 1");
    svg.axes(&x, &xt, &y, &yt);
    svg.axis_titles("convergence time (ms)", "fraction of messages");
    if series.is_empty() {
        svg.no_data("no data: no message was measured");
    }
    for (row, (name, c, color)) in series.iter().enumerate() {
        let mut d = format!("M{LEFT:.1} {BOTTOM:.1}");
        for (v, f) in c.cdf() {
            let _ = write!(d, " H{:.1} V{:.1}", x.map(v as f64 / 1e3), y.map(f));
        }
        let _ = write!(d, " H{RIGHT:.1}");
        let _ = writeln!(svg.out, r#"<path class="{name}" d="{d}" fill="none" stroke="{color}" stroke-width="1.5"/>"#);
        svg.legend_row(
            row,
            &legend_line(color, "", 2.0),
            &format!("{name}: p99 {} ({} never)", pct(c.percentile(99.0)), c.never_converged),
        );
    }
    svg.finish()
}

fn marks(svg: &mut Svg, x: &Axis, out: &Outcome) {
    for (t, label) in &out.marks {
        let px = x.map(*t as f64 / 1e6);
        let _ = writeln!(
            svg.out,
            r##"<line class="fault-marker" x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{BOTTOM}" stroke="#c0392b" stroke-dasharray="5,3"/>"##
        );
        svg.text(px, TOP - 6.0, "middle", r##"font-size="10" fill="#c0392b""##, label);
    }
}

fn time_axis(out: &Outcome) -> (Axis, Vec<(f64, String)>) {
    let secs = (out.duration_us as f64 / 1e6).max(1.0);
    let (ticks, top) = ticks_to(secs, 10.0);
    (Axis { lo: 0.0, hi: top, px_lo: LEFT, px_hi: RIGHT, log: false }, ticks.into_iter().map(|t| (t, num(t))).collect())
}

fn traffic_svg(r: &SimReport, out: &Outcome) -> String {
    let mut svg = Svg::new("Gossip messages received per node per second");
    let scale = 1.0 / out.track_share.max(f64::MIN_POSITIVE);
    let n = out.providers as f64;
    let secs = (out.duration_us / 1_000_000) as usize;
    let per_s: Vec<f64> = (0..secs)
        .map(|s| {
            let a = out.traffic.received_per_second.get(s).copied().unwrap_or(0) as f64 * scale;
            let e = out.evidence_traffic.received_per_second.get(s).copied().unwrap_or(0) as f64;
            (a + e) / n
        })
        .collect();
    let (x, xt) = time_axis(out);
    let hi = per_s.iter().copied().fold(1.0, f64::max);
    let (yticks, top) = ticks_to(hi, 6.0);
    let y = Axis { lo: 0.0, hi: top, px_lo: BOTTOM, px_hi: TOP, log: false };
    let yt: Vec<(f64, String, bool)> = yticks.into_iter().map(|v| (v, num(v), true)).collect();
    svg.subtitle(&format!(
        "every copy (duplicates included); mean {:.1} msg/s and {:.0} B/s per node",
        r.traffic.received_msgs_mean, r.traffic.received_bytes_mean
    ));
    svg.axes(&x, &xt, &y, &yt);
    svg.axis_titles("simulated time (s)", "messages / node / s");
    let mut d = String::new();
    for (s, v) in per_s.iter().enumerate() {
        let _ = write!(d, "{}{:.1} {:.1}", if s == 0 { "M" } else { " L" }, x.map(s as f64 + 0.5), y.map(*v));
    }
    let _ = writeln!(svg.out, r#"<path class="received" d="{d}" fill="none" stroke="{OK_COLOR}" stroke-width="1.5"/>"#);
    svg.legend_row(0, &legend_line(OK_COLOR, "", 2.0), "received per node");
    marks(&mut svg, &x, out);
    svg.finish()
}

fn answers_svg(out: &Outcome) -> String {
    let mut svg = Svg::new("Client requests answered correctly, per second");
    let secs = (out.duration_us / 1_000_000) as usize;
    let (x, xt) = time_axis(out);
    let y = Axis { lo: 0.0, hi: 1.0, px_lo: BOTTOM, px_hi: TOP, log: false };
    let yt: Vec<(f64, String, bool)> = [0.0, 0.25, 0.5, 0.75, 1.0].iter().map(|&v| (v, num(v), true)).collect();
    svg.subtitle("share of each second's requests per outcome; red lines: timeline events");
    svg.axes(&x, &xt, &y, &yt);
    svg.axis_titles("simulated time (s)", "share of requests");
    let series = [
        (Answer::Ok, OK_COLOR, "correct"),
        (Answer::Wrong, WRONG_COLOR, "wrong"),
        (Answer::Censored, "#9467bd", "censored"),
        (Answer::Failed, ERROR_COLOR, "failed"),
    ];
    let mut any = false;
    for (row, (a, color, name)) in series.iter().enumerate() {
        let mut d = String::new();
        for s in 0..secs {
            let b = out.answers_per_second.get(s).copied().unwrap_or([0; 4]);
            let total: u64 = b.iter().sum();
            if total == 0 {
                continue;
            }
            any = true;
            let v = b[*a as usize] as f64 / total as f64;
            let _ = write!(d, "{}{:.1} {:.1}", if d.is_empty() { "M" } else { " L" }, x.map(s as f64 + 0.5), y.map(v));
        }
        if !d.is_empty() {
            let _ =
                writeln!(svg.out, r#"<path class="{name}" d="{d}" fill="none" stroke="{color}" stroke-width="1.5"/>"#);
            svg.legend_row(row, &legend_line(color, "", 2.0), name);
        }
    }
    if !any {
        svg.no_data("no data: no client requests");
    }
    marks(&mut svg, &x, out);
    svg.finish()
}
