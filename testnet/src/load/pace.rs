//! When a load loop sends: back to back (closed loop) or at a fixed rate. Either way a loop waits
//! for its answer before its next send, as a real client does; at a fixed rate, a loop behind
//! schedule (a slow answer) sends at once and does not burst to catch up, so a slow server sees
//! the offered rate at most, never a flood after a stall.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often a loop sends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// Back to back: the next request as soon as the answer is in.
    Closed,
    /// This many requests per second (a non-positive rate is treated as one per 1000 s).
    Rate(f64),
}

impl Pace {
    /// `rate` requests/s, or back to back when it is 0 (the scenario files' convention).
    pub fn from_rate(rate: f64) -> Pace {
        if rate > 0.0 { Pace::Rate(rate) } else { Pace::Closed }
    }
}

/// One loop's send times.
#[derive(Debug)]
pub struct Schedule {
    interval: Option<Duration>,
    next_at: Instant,
}

impl Schedule {
    /// A schedule starting now, its first send `offset` (0..1) of an interval late: loops given
    /// offsets `i / loops` spread their sends over one interval instead of sending together.
    pub fn new(pace: Pace, offset: f64) -> Schedule {
        let interval = match pace {
            Pace::Closed => None,
            Pace::Rate(r) => Some(Duration::from_secs_f64(1.0 / r.max(0.001))),
        };
        let delay = interval.map_or(Duration::ZERO, |i| i.mul_f64(offset.clamp(0.0, 1.0)));
        Schedule { interval, next_at: Instant::now() + delay }
    }

    /// Waits until the next send is due; `false` when `stop` fired first.
    pub async fn wait(&mut self, stop: &CancellationToken) -> bool {
        if stop.is_cancelled() {
            return false;
        }
        let Some(interval) = self.interval else { return true };
        let now = Instant::now();
        if self.next_at > now {
            tokio::select! {
                _ = stop.cancelled() => return false,
                _ = tokio::time::sleep_until(self.next_at) => {}
            }
        }
        self.next_at = self.next_at.max(Instant::now()) + interval;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_paced_loop_sends_at_its_rate_and_does_not_burst_after_a_stall() {
        let stop = CancellationToken::new();
        let t0 = Instant::now();
        let mut s = Schedule::new(Pace::Rate(10.0), 0.5);
        assert!(s.wait(&stop).await);
        assert_eq!(t0.elapsed(), Duration::from_millis(50), "half an interval late");
        assert!(s.wait(&stop).await);
        assert_eq!(t0.elapsed(), Duration::from_millis(150));
        // A 1 s answer: the next send is at once, the one after a whole interval later.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(s.wait(&stop).await);
        assert_eq!(t0.elapsed(), Duration::from_millis(1150));
        assert!(s.wait(&stop).await);
        assert_eq!(t0.elapsed(), Duration::from_millis(1250));
        stop.cancel();
        assert!(!s.wait(&stop).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_loop_never_waits_until_stopped() {
        let stop = CancellationToken::new();
        let t0 = Instant::now();
        let mut s = Schedule::new(Pace::from_rate(0.0), 0.9);
        for _ in 0..3 {
            assert!(s.wait(&stop).await);
        }
        assert_eq!(t0.elapsed(), Duration::ZERO);
        stop.cancel();
        assert!(!s.wait(&stop).await);
    }
}
