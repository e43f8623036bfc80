//! Pacing of the extra requests the router makes on its own initiative: hedges (a bounded
//! share of requests) and repeated asks of a provider that answered `Busy` (a growing,
//! jittered backoff).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// One hedge, in thousandths of a token (integers keep the bucket a single atomic).
const TOKEN: u32 = 1000;
/// Earned per request that may be hedged: hedges stay at about 10% of requests in the long run,
/// so under a burst, when every provider is slow at once, hedging cannot double the load.
const EARN_PER_REQUEST: u32 = TOKEN / 10;
/// Most hedges saved up: a short run of slow answers on a quiet node is still hedged at once.
const BURST: u32 = 10 * TOKEN;

/// Token bucket bounding how many requests get a hedge: each request earns a tenth of a hedge,
/// each hedge spends a whole one, at most [`BURST`] thousandths are saved. Starts full.
#[derive(Debug)]
pub struct HedgeBudget {
    milli: AtomicU32,
}

impl Default for HedgeBudget {
    fn default() -> Self {
        Self { milli: AtomicU32::new(BURST) }
    }
}

impl HedgeBudget {
    /// Credits one request that may be hedged.
    pub fn earn(&self) {
        // Err means the bucket is already full: nothing to add.
        let _ = self.milli.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| {
            (m < BURST).then(|| (m + EARN_PER_REQUEST).min(BURST))
        });
    }

    /// Takes one hedge if the budget allows it.
    pub fn try_spend(&self) -> bool {
        self.milli.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| m.checked_sub(TOKEN)).is_ok()
    }

    /// Returns a hedge that was taken but could not be sent (no candidate left).
    pub fn refund(&self) {
        let _ = self.milli.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| Some((m + TOKEN).min(BURST)));
    }
}

/// First wait before asking a busy provider again.
pub const BUSY_BACKOFF_MIN: Duration = Duration::from_millis(1);
/// Longest wait between two asks of a busy provider: a permit usually frees within a relay's
/// round trip, and a longer wait only adds latency to a request that is going to be served.
pub const BUSY_BACKOFF_MAX: Duration = Duration::from_millis(20);

/// The wait before the `round`-th repeated ask (0-based) of a busy provider: doubling from
/// [`BUSY_BACKOFF_MIN`] up to [`BUSY_BACKOFF_MAX`], drawn from the upper half of that value so
/// requests refused together do not come back together.
pub fn busy_backoff(round: u32) -> Duration {
    let full = BUSY_BACKOFF_MIN.saturating_mul(1u32 << round.min(16)).min(BUSY_BACKOFF_MAX);
    let half = full / 2;
    half + (full - half).mul_f64(crate::pacer::unit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hedges_are_a_burst_then_one_in_ten_requests() {
        let b = HedgeBudget::default();
        for _ in 0..10 {
            assert!(b.try_spend(), "the initial burst");
        }
        assert!(!b.try_spend(), "burst spent");
        let mut hedged = 0;
        for _ in 0..1000 {
            b.earn();
            if b.try_spend() {
                hedged += 1;
            }
        }
        assert_eq!(hedged, 100, "one hedge per ten requests");
        // A refund gives back exactly what was taken, never more than the burst.
        for _ in 0..200 {
            b.earn();
        }
        b.refund();
        let mut n = 0;
        while b.try_spend() {
            n += 1;
        }
        assert_eq!(n, 10);
    }

    #[test]
    fn busy_backoff_grows_and_is_capped() {
        for _ in 0..100 {
            let first = busy_backoff(0);
            assert!(first >= BUSY_BACKOFF_MIN / 2 && first <= BUSY_BACKOFF_MIN, "{first:?}");
            let second = busy_backoff(1);
            assert!(second >= BUSY_BACKOFF_MIN && second <= BUSY_BACKOFF_MIN * 2, "{second:?}");
            for round in [5, 10, 31, 1000] {
                let d = busy_backoff(round);
                assert!(d >= BUSY_BACKOFF_MAX / 2 && d <= BUSY_BACKOFF_MAX, "round {round}: {d:?}");
            }
        }
    }
}
