//! Wall-clock helpers and sequence numbers for signed messages.

use std::sync::atomic::{AtomicU64, Ordering};

/// Unix time in milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Unix time in microseconds.
pub fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// Strictly increasing sequence numbers that also increase across restarts: each is at least
/// the current time in microseconds, so a restarted daemon never reuses a `seq` its peers saw,
/// without having to persist a counter.
#[derive(Debug, Default)]
pub struct SeqGen {
    last: AtomicU64,
}

impl SeqGen {
    /// A generator that will never return `floor` or less.
    pub fn starting_after(floor: u64) -> Self {
        Self { last: AtomicU64::new(floor) }
    }

    /// The next sequence number.
    pub fn next(&self) -> u64 {
        let now = now_us();
        let mut cur = self.last.load(Ordering::Relaxed);
        loop {
            let next = now.max(cur + 1);
            match self.last.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return next,
                Err(actual) => cur = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_is_strictly_increasing_and_time_based() {
        let g = SeqGen::starting_after(0);
        let a = g.next();
        let b = g.next();
        assert!(b > a);
        assert!(a >= now_us() - 10_000_000);
        let g = SeqGen::starting_after(u64::MAX / 2);
        assert_eq!(g.next(), u64::MAX / 2 + 1);
    }
}
