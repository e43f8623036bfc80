//! Latency and error statistics over a sliding window of recent calls.

use std::collections::VecDeque;

/// One observed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// When it completed, Unix ms.
    pub at_ms: u64,
    /// How long it took, µs.
    pub latency_us: u32,
    /// Whether it succeeded.
    pub ok: bool,
}

/// Summary of a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WindowStats {
    /// Calls in the window.
    pub sent: u32,
    /// Successful calls.
    pub ok: u32,
    /// Median latency of successful calls, µs.
    pub p50_us: u32,
    /// 95th percentile latency of successful calls, µs.
    pub p95_us: u32,
}

/// The last `capacity` samples no older than `window_ms`, plus an EWMA of latency.
#[derive(Debug, Clone)]
pub struct LatencyWindow {
    samples: VecDeque<Sample>,
    capacity: usize,
    window_ms: u64,
    ewma_us: Option<f64>,
}

/// Weight of the newest sample in the EWMA: ~ the last 10 samples dominate.
const EWMA_ALPHA: f64 = 0.2;

impl LatencyWindow {
    /// A window of at most `capacity` samples and `window_ms` age.
    pub fn new(capacity: usize, window_ms: u64) -> Self {
        Self {
            samples: VecDeque::with_capacity(capacity.min(1024)),
            capacity: capacity.max(1),
            window_ms,
            ewma_us: None,
        }
    }

    /// Records a call.
    pub fn record(&mut self, s: Sample) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(s);
        if s.ok {
            let x = f64::from(s.latency_us);
            self.ewma_us = Some(match self.ewma_us {
                Some(prev) => prev + EWMA_ALPHA * (x - prev),
                None => x,
            });
        }
    }

    /// EWMA of successful latencies, µs.
    pub fn ewma_us(&self) -> Option<u32> {
        self.ewma_us.map(|v| v as u32)
    }

    /// Stats over samples completed after `now_ms - window_ms`.
    pub fn stats(&self, now_ms: u64) -> WindowStats {
        let since = now_ms.saturating_sub(self.window_ms);
        let mut lat: Vec<u32> = Vec::new();
        let mut sent = 0u32;
        for s in self.samples.iter().filter(|s| s.at_ms >= since) {
            sent += 1;
            if s.ok {
                lat.push(s.latency_us);
            }
        }
        lat.sort_unstable();
        WindowStats { sent, ok: lat.len() as u32, p50_us: percentile(&lat, 50), p95_us: percentile(&lat, 95) }
    }

    /// When the oldest sample counted at `now_ms` leaves the window (the first instant at which
    /// [`Self::stats`] reads differently with no new sample), if any is counted.
    pub fn next_exit_ms(&self, now_ms: u64) -> Option<u64> {
        let since = now_ms.saturating_sub(self.window_ms);
        self.samples.iter().filter(|s| s.at_ms >= since).map(|s| s.at_ms.saturating_add(self.window_ms)).min()
    }

    /// Error fraction over the window (0 when empty).
    pub fn error_rate(&self, now_ms: u64) -> f64 {
        let s = self.stats(now_ms);
        if s.sent == 0 { 0.0 } else { f64::from(s.sent - s.ok) / f64::from(s.sent) }
    }
}

/// Nearest-rank percentile of sorted values (0 when empty).
pub fn percentile(sorted: &[u32], p: u32) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (u64::from(p) * sorted.len() as u64).div_ceil(100).max(1) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_window_age() {
        let mut w = LatencyWindow::new(100, 1_000);
        for i in 1..=100u32 {
            w.record(Sample { at_ms: 10_000, latency_us: i, ok: true });
        }
        let s = w.stats(10_500);
        assert_eq!((s.sent, s.ok, s.p50_us, s.p95_us), (100, 100, 50, 95));
        assert_eq!(w.stats(11_001).sent, 0);
        w.record(Sample { at_ms: 11_000, latency_us: 0, ok: false });
        assert_eq!(w.samples.len(), 100);
        assert!(w.error_rate(11_000) > 0.0);
    }
}
