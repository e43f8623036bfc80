//! The vetting report's three plots, drawn with the testnet report's SVG primitives
//! (`crate::report::svg`): latency over the ramp, error rate over the ramp, head lag. Every plot
//! marks the ramp's steps with their offered rate; without data it still draws its frame.

use std::fmt::Write as _;

use super::load::Load;
use crate::report::svg::{
    Axis, BOTTOM, ERROR_COLOR, LEFT, OK_COLOR, RIGHT, Svg, TOP, WRONG_COLOR, legend_line, num, ticks_to,
};

/// One line of a plot: `(x seconds, y)` points; a `None` y lifts the pen.
struct Series {
    label: String,
    color: &'static str,
    dash: &'static str,
    points: Vec<(f64, Option<f64>)>,
}

enum YScale {
    /// Log scale in ms over whole decades.
    LogMs,
    /// Linear from `lo` to the data's top (at least `min_top`), with a unit suffix.
    Linear { lo: f64, min_top: f64, unit: &'static str },
}

fn time_axis(load: &Load) -> (Axis, Vec<(f64, String)>) {
    let secs = (load.duration_ms as f64 / 1000.0).max(1.0);
    let (ticks, top) = ticks_to(secs, 10.0);
    (Axis { lo: 0.0, hi: top, px_lo: LEFT, px_hi: RIGHT, log: false }, ticks.into_iter().map(|t| (t, num(t))).collect())
}

fn plot(load: &Load, title: &str, subtitle: &str, y_title: &str, scale: YScale, series: &[Series]) -> String {
    let mut svg = Svg::new(title);
    svg.subtitle(subtitle);
    let (x, x_ticks) = time_axis(load);
    let values: Vec<f64> = series.iter().flat_map(|s| s.points.iter().filter_map(|p| p.1)).collect();
    let (y, y_ticks) = match scale {
        YScale::LogMs => {
            let lo = values.iter().copied().fold(f64::MAX, f64::min).max(0.001);
            let hi = values.iter().copied().fold(f64::MIN, f64::max);
            let (lo, hi) = if values.is_empty() { (1.0, 1000.0) } else { (lo, hi.max(lo)) };
            let lo_dec = lo.log10().floor();
            let hi_dec = hi.log10().ceil().max(lo_dec + 1.0);
            let mut ticks = Vec::new();
            for d in (lo_dec as i32)..=(hi_dec as i32) {
                let v = 10f64.powi(d);
                let label = if v >= 1000.0 { format!("{} s", num(v / 1000.0)) } else { format!("{} ms", num(v)) };
                ticks.push((v, label, true));
            }
            (Axis { lo: 10f64.powf(lo_dec), hi: 10f64.powf(hi_dec), px_lo: BOTTOM, px_hi: TOP, log: true }, ticks)
        }
        YScale::Linear { lo, min_top, unit } => {
            let hi = values.iter().copied().fold(min_top, f64::max);
            let (ticks, top) = ticks_to(hi - lo, 8.0);
            let ticks = ticks.into_iter().map(|t| (t + lo, format!("{}{unit}", num(t + lo)), true)).collect();
            (Axis { lo, hi: top + lo, px_lo: BOTTOM, px_hi: TOP, log: false }, ticks)
        }
    };
    svg.axes(&x, &x_ticks, &y, &y_ticks);
    svg.axis_titles("time since the ramp started (s)", y_title);
    if values.is_empty() {
        svg.no_data("no data");
    }
    // Step boundaries, labelled with the offered rate.
    for s in &load.steps {
        let px = x.map(s.start_ms as f64 / 1000.0);
        let _ = writeln!(
            svg.out,
            r##"<line class="step" x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{BOTTOM}" stroke="#bbb" stroke-dasharray="2,3"/>"##
        );
        svg.text(px + 3.0, TOP - 6.0, "start", r##"font-size="11" fill="#666""##, &format!("{}/s", s.target_rps));
    }
    let mut row = 0;
    for s in series {
        let mut d = String::new();
        let mut pen = false;
        for &(t, v) in &s.points {
            match v {
                Some(v) => {
                    let _ = write!(d, "{}{:.1} {:.1}", if pen { " L" } else { "M" }, x.map(t), y.map(v));
                    pen = true;
                }
                None => pen = false,
            }
        }
        if !d.is_empty() {
            let _ = writeln!(
                svg.out,
                r#"<path d="{d}" fill="none" stroke="{}" stroke-width="1.8" stroke-dasharray="{}" stroke-linejoin="round"/>"#,
                s.color, s.dash
            );
            for &(t, v) in &s.points {
                if let Some(v) = v {
                    let _ = writeln!(
                        svg.out,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{}"/>"#,
                        x.map(t),
                        y.map(v),
                        s.color
                    );
                }
            }
        }
        svg.legend_row(row, &legend_line(s.color, s.dash, 1.8), &s.label);
        row += 1;
    }
    svg.legend_row(row, &legend_line("#bbb", "2,3", 1.0), "ramp step (offered rate)");
    svg.finish()
}

/// Latency percentiles per second of the ramp (log scale).
pub fn latency_svg(load: &Load) -> String {
    let at = |f: fn(&super::load::Second) -> Option<u64>| {
        load.seconds.iter().map(|s| (s.t_s as f64 + 0.5, f(s).map(|us| us as f64 / 1000.0))).collect()
    };
    let series = [
        Series { label: "p50".into(), color: OK_COLOR, dash: "", points: at(|s| s.p50_us) },
        Series { label: "p95".into(), color: WRONG_COLOR, dash: "", points: at(|s| s.p95_us) },
        Series { label: "p99".into(), color: ERROR_COLOR, dash: "5,3", points: at(|s| s.p99_us) },
    ];
    let subtitle = format!("{} requests; percentiles of the requests sent in each second", load.total.requests);
    plot(load, "Latency over the ramp", &subtitle, "latency", YScale::LogMs, &series)
}

/// Failed share per second of the ramp.
pub fn errors_svg(load: &Load) -> String {
    let points = load
        .seconds
        .iter()
        .map(|s| (s.t_s as f64 + 0.5, (s.sent > 0).then(|| 100.0 * s.errors as f64 / s.sent as f64)))
        .collect();
    let series = [Series { label: "failed requests".into(), color: ERROR_COLOR, dash: "", points }];
    let subtitle = format!(
        "{} of {} requests failed; errors start at {}",
        load.total.errors,
        load.total.requests,
        load.errors_start_at_rps.map_or_else(|| "no step".to_string(), |r| format!("{r} req/s"))
    );
    plot(
        load,
        "Error rate over the ramp",
        &subtitle,
        "failed (%)",
        YScale::Linear { lo: 0.0, min_top: 5.0, unit: "%" },
        &series,
    )
}

/// Head lag samples against the references' median head.
pub fn head_lag_svg(load: &Load) -> String {
    let points: Vec<(f64, Option<f64>)> =
        load.head_lag.iter().map(|s| (s.t_ms as f64 / 1000.0, s.lag.map(|l| l as f64))).collect();
    let lo = points.iter().filter_map(|p| p.1).fold(0.0, f64::min);
    let series = [Series { label: "blocks behind".into(), color: OK_COLOR, dash: "", points }];
    let subtitle = if load.head_lag.is_empty() {
        "no samples".to_string()
    } else {
        format!("reference median head − candidate head, sampled every second ({} samples)", load.head_lag.len())
    };
    plot(load, "Head lag during the ramp", &subtitle, "blocks", YScale::Linear { lo, min_top: 3.0, unit: "" }, &series)
}
