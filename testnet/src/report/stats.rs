//! Percentiles and request counts.
//!
//! Percentiles are **nearest-rank**: the p-th percentile of n sorted values is the value at
//! 1-based rank ⌈p/100 · n⌉ (at least 1). It is always one of the measured values, never an
//! interpolation, and the p100 is the maximum. No data gives no percentile (`None`).

use serde::Serialize;

use crate::record::{Outcome, Request};

pub use crate::measure::percentile;

/// Counts and latency percentiles of a set of requests.
///
/// Latencies cover **all** requests, failed and wrong ones included: a client waited that long
/// whatever came back.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RequestStats {
    /// Requests sent.
    pub requests: u64,
    /// Correct answers.
    pub ok: u64,
    /// Failures (no answer, or an error the truth would not give).
    pub error: u64,
    /// Answers that disagree with the chain's truth.
    pub wrong: u64,
    /// Fraction answered correctly, `ok / requests`; `None` without requests.
    pub availability: Option<f64>,
    /// Median latency, µs.
    pub p50_us: Option<u64>,
    /// 95th percentile latency, µs.
    pub p95_us: Option<u64>,
    /// 99th percentile latency, µs.
    pub p99_us: Option<u64>,
    /// Slowest request, µs.
    pub max_us: Option<u64>,
}

impl RequestStats {
    /// Counts and percentiles of `requests`.
    pub fn of<'a>(requests: impl IntoIterator<Item = &'a Request>) -> Self {
        let mut stats = RequestStats::default();
        let mut latencies = Vec::new();
        for r in requests {
            stats.requests += 1;
            match r.outcome {
                Outcome::Ok => stats.ok += 1,
                Outcome::Error => stats.error += 1,
                Outcome::Wrong => stats.wrong += 1,
            }
            latencies.push(r.latency_us);
        }
        latencies.sort_unstable();
        stats.p50_us = percentile(&latencies, 50.0);
        stats.p95_us = percentile(&latencies, 95.0);
        stats.p99_us = percentile(&latencies, 99.0);
        stats.max_us = latencies.last().copied();
        stats.availability = (stats.requests > 0).then(|| stats.ok as f64 / stats.requests as f64);
        stats
    }
}

/// p50 and p99 (nearest-rank) of unsorted values, plus the maximum.
pub(crate) fn p50_p99_max(mut values: Vec<u64>) -> (Option<u64>, Option<u64>, Option<u64>) {
    values.sort_unstable();
    (percentile(&values, 50.0), percentile(&values, 99.0), values.last().copied())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Transport;

    #[test]
    fn request_stats() {
        let req = |latency_us, outcome| Request {
            t_ms: 0,
            latency_us,
            gateway: 0,
            transport: Transport::Http,
            method: "m".into(),
            outcome,
            served_by: None,
            served_by_node: None,
            attempts: 1,
            detail: None,
            subject: None,
            verify: None,
        };
        let rs = [req(300, Outcome::Ok), req(100, Outcome::Error), req(200, Outcome::Wrong), req(400, Outcome::Ok)];
        let s = RequestStats::of(&rs);
        assert_eq!((s.requests, s.ok, s.error, s.wrong), (4, 2, 1, 1));
        assert_eq!((s.p50_us, s.p95_us, s.p99_us, s.max_us), (Some(200), Some(400), Some(400), Some(400)));
        assert_eq!(s.availability, Some(0.5));
        assert_eq!(RequestStats::of(&[]).availability, None);
    }
}
