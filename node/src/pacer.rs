//! [`Pacer`]: a periodic timer with a random phase and jitter.
//!
//! Daemons started together (a testnet, a restart wave after an upgrade) would otherwise run
//! their periodic rounds in lock step: every daemon attests at the same instant, so each one
//! receives the whole mesh's attestations at once and stalls client requests for that burst.

use std::time::Duration;

use tokio::time::Instant;

/// Fires about every `period`, each gap drawn uniformly from `period × (1 ± jitter)`.
#[derive(Debug)]
pub struct Pacer {
    period: Duration,
    jitter: f64,
    next: Instant,
}

impl Pacer {
    /// A pacer whose first tick comes after a uniformly random fraction of `period` (plus
    /// `min_first`), so that daemons started together fall out of phase at once.
    pub fn new(period: Duration, jitter: f64, min_first: Duration) -> Self {
        let phase = period.mul_f64(unit());
        Self { period, jitter: jitter.clamp(0.0, 1.0), next: Instant::now() + min_first + phase }
    }

    /// Waits for the next tick. Cancel-safe: dropping the future before it completes leaves
    /// the schedule unchanged.
    pub async fn tick(&mut self) {
        tokio::time::sleep_until(self.next).await;
        // Late ticks (a busy runtime) are not made up for: the gap restarts from now.
        let floor = Instant::now().checked_sub(self.period / 2).unwrap_or(self.next);
        self.next = self.next.max(floor) + self.gap();
    }

    /// Changes the period from the next gap on (the tick already scheduled stays, unless the
    /// new period ends before it: a shrinking mesh is not left waiting on a long gap).
    pub fn set_period(&mut self, period: Duration) {
        if period == self.period {
            return;
        }
        self.period = period;
        let soonest = Instant::now() + period.mul_f64(1.0 + self.jitter);
        self.next = self.next.min(soonest);
    }

    /// Restarts the period from now (something equivalent to a tick just happened).
    pub fn reset(&mut self) {
        self.next = Instant::now() + self.gap();
    }

    fn gap(&self) -> Duration {
        self.period.mul_f64(1.0 + self.jitter * (2.0 * unit() - 1.0))
    }
}

/// The period of a message every member of a mesh sends periodically: `base`, stretched so the
/// `members` together send at most `mesh_rate_per_sec` per second.
///
/// Every daemon accepts every member's periodic messages, so with a fixed period the messages
/// each daemon handles grow with the mesh. Stretching the period with the member count keeps
/// that rate at `mesh_rate_per_sec` once the mesh is larger than `base × mesh_rate_per_sec`
/// members, and leaves smaller meshes at `base`. Members count their own view of the mesh, so
/// their periods agree to within what they know.
pub fn stretched(base: Duration, members: usize, mesh_rate_per_sec: f64) -> Duration {
    if !(mesh_rate_per_sec.is_finite() && mesh_rate_per_sec > 0.0) {
        return base;
    }
    base.max(Duration::from_secs_f64(members as f64 / mesh_rate_per_sec))
}

/// A uniform draw from [0, 1), for jitter (also of the router's busy backoff). Falls back to
/// the clock's nanoseconds if the OS source fails: the point is dephasing, not secrecy.
pub(crate) fn unit() -> f64 {
    let bits = getrandom::u64().unwrap_or_else(|_| {
        u64::from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos())
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
    });
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_in_the_unit_interval_and_vary() {
        let draws: Vec<f64> = (0..1000).map(|_| unit()).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((0.4..0.6).contains(&mean), "mean {mean} of 1000 uniform draws");
    }

    #[test]
    fn gaps_stay_within_the_jitter() {
        let p = Pacer::new(Duration::from_millis(1000), 0.1, Duration::ZERO);
        for _ in 0..1000 {
            let g = p.gap();
            assert!(g >= Duration::from_millis(900) && g <= Duration::from_millis(1100), "{g:?}");
        }
    }

    #[test]
    fn gaps_keep_the_average_period() {
        let p = Pacer::new(Duration::from_millis(100), 0.1, Duration::ZERO);
        let mean = (0..1000).map(|_| p.gap()).sum::<Duration>() / 1000;
        assert!(mean >= Duration::from_millis(98) && mean <= Duration::from_millis(102), "{mean:?}");
    }

    #[test]
    fn small_meshes_keep_the_base_period_and_large_ones_share_the_rate() {
        let base = Duration::from_secs(2);
        assert_eq!(stretched(base, 10, 5.0), base);
        assert_eq!(stretched(base, 100, 5.0), Duration::from_secs(20));
        // The mesh-wide rate is held at the budget: 10 000 members, one message each per 2000 s.
        assert_eq!(stretched(base, 10_000, 5.0), Duration::from_secs(2_000));
        assert_eq!(stretched(base, 100, 0.0), base, "no budget: the base period");
        assert_eq!(stretched(base, 100, f64::NAN), base);
    }

    #[tokio::test(start_paused = true)]
    async fn a_shorter_period_pulls_the_next_tick_in() {
        let mut p = Pacer::new(Duration::from_secs(100), 0.0, Duration::ZERO);
        p.reset();
        p.set_period(Duration::from_secs(1));
        let start = Instant::now();
        p.tick().await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test]
    async fn first_tick_waits_at_least_min_first() {
        let start = Instant::now();
        let mut p = Pacer::new(Duration::from_millis(10), 0.1, Duration::from_millis(20));
        p.tick().await;
        assert!(start.elapsed() >= Duration::from_millis(20));
    }
}
