//! Outlier ejection per provider: after `eject_after` consecutive failures a provider sits out
//! for `eject_for`, doubled on each re-ejection (capped), then gets one probation request
//! (half-open): success closes the breaker, failure ejects it again.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Longest ejection.
const MAX_EJECT: Duration = Duration::from_secs(60);
/// Weight of the newest latency sample.
const EWMA_ALPHA: f64 = 0.2;

/// State of one provider as the router sees it.
#[derive(Debug, Clone, Default)]
pub struct Breaker {
    consecutive_failures: u32,
    ejections: u32,
    ejected_until: Option<Instant>,
    probation_in_flight: bool,
    /// EWMA of successful attempt latency, µs.
    pub ewma_us: Option<f64>,
    /// Successes and failures, decayed.
    pub recent_ok: f64,
    /// Failures, decayed.
    pub recent_err: f64,
}

/// Whether a provider may be tried now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: normal.
    Open,
    /// Half-open: one probation request allowed.
    Probation,
    /// Ejected.
    Ejected,
}

impl Breaker {
    /// Whether this provider may take a request at `now` (does not reserve the probation slot).
    pub fn admission(&self, now: Instant) -> Admission {
        match self.ejected_until {
            Some(until) if now < until => Admission::Ejected,
            Some(_) if self.probation_in_flight => Admission::Ejected,
            Some(_) => Admission::Probation,
            None => Admission::Open,
        }
    }

    /// Reserves the probation slot (call when sending during `Probation`).
    pub fn start_probation(&mut self) {
        self.probation_in_flight = true;
    }

    /// Frees the probation slot of an attempt that ended without an outcome (cancelled).
    pub fn release_probation(&mut self) {
        self.probation_in_flight = false;
    }

    /// Records a success.
    pub fn success(&mut self, latency: Duration) {
        self.consecutive_failures = 0;
        self.ejected_until = None;
        self.ejections = 0;
        self.probation_in_flight = false;
        let x = latency.as_micros() as f64;
        self.ewma_us = Some(self.ewma_us.map_or(x, |p| p + EWMA_ALPHA * (x - p)));
        self.recent_ok = self.recent_ok * 0.95 + 1.0;
        self.recent_err *= 0.95;
    }

    /// Records a failure; returns whether the provider was (re-)ejected.
    pub fn failure(&mut self, now: Instant, eject_after: u32, eject_for: Duration) -> bool {
        self.consecutive_failures += 1;
        self.recent_err = self.recent_err * 0.95 + 1.0;
        self.recent_ok *= 0.95;
        let probation_failed = self.probation_in_flight;
        self.probation_in_flight = false;
        if probation_failed || self.consecutive_failures >= eject_after.max(1) {
            let factor = 1u32 << self.ejections.min(6);
            self.ejected_until = Some(now + (eject_for * factor).min(MAX_EJECT));
            self.ejections += 1;
            self.consecutive_failures = 0;
            return true;
        }
        false
    }

    /// Recent error fraction (0 with no history).
    pub fn error_rate(&self) -> f64 {
        let total = self.recent_ok + self.recent_err;
        if total < 0.5 { 0.0 } else { self.recent_err / total }
    }

    /// When ejected, until when.
    pub fn ejected_until(&self) -> Option<Instant> {
        self.ejected_until
    }
}

/// One provider's breaker, shared by every request routed to it. Locked only to read or update
/// a few numbers (never across an `.await`), so contention stays per provider, not global.
#[derive(Debug, Default)]
pub struct BreakerCell(Mutex<Breaker>);

impl BreakerCell {
    fn lock(&self) -> std::sync::MutexGuard<'_, Breaker> {
        // Plain numbers: a panic while held cannot leave them inconsistent.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the state.
    pub fn get(&self) -> Breaker {
        self.lock().clone()
    }

    /// Admission now, with the latency estimate and error rate, in one lock.
    pub fn peek(&self, now: Instant) -> (Admission, Option<f64>, f64) {
        let b = self.lock();
        (b.admission(now), b.ewma_us, b.error_rate())
    }

    /// Whether the provider may take a request now; reserves the probation slot if half-open.
    pub fn admit(&self, now: Instant) -> bool {
        let mut b = self.lock();
        match b.admission(now) {
            Admission::Open => true,
            Admission::Probation => {
                b.start_probation();
                true
            }
            Admission::Ejected => false,
        }
    }

    /// Records an outcome; returns whether the provider was (re-)ejected.
    pub fn record(&self, now: Instant, latency: Duration, ok: bool, eject_after: u32, eject_for: Duration) -> bool {
        let mut b = self.lock();
        if ok {
            b.success(latency);
            false
        } else {
            b.failure(now, eject_after, eject_for)
        }
    }

    /// Frees the probation slot of an attempt that ended without an outcome.
    pub fn release_probation(&self) {
        self.lock().release_probation();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ejects_then_half_opens_then_closes() {
        let mut b = Breaker::default();
        let t0 = Instant::now();
        let d = Duration::from_millis(100);
        assert!(!b.failure(t0, 3, d));
        assert!(!b.failure(t0, 3, d));
        assert!(b.failure(t0, 3, d));
        assert_eq!(b.admission(t0), Admission::Ejected);
        let later = t0 + d + Duration::from_millis(1);
        assert_eq!(b.admission(later), Admission::Probation);
        b.start_probation();
        assert_eq!(b.admission(later), Admission::Ejected, "one probation at a time");
        // A failed probation ejects again, for twice as long.
        assert!(b.failure(later, 3, d));
        assert_eq!(b.admission(later + d + Duration::from_millis(1)), Admission::Ejected);
        let much_later = later + 2 * d + Duration::from_millis(1);
        assert_eq!(b.admission(much_later), Admission::Probation);
        b.start_probation();
        b.success(Duration::from_millis(2));
        assert_eq!(b.admission(much_later), Admission::Open);
        assert!(b.error_rate() > 0.0);
    }
}
