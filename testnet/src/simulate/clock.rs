//! The simulated clock and event queue, and a small seeded random generator: everything that
//! makes a run a function of its seed.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Simulated time, microseconds since the start of the run.
pub type Micros = u64;

/// One scheduled event.
struct Scheduled<E> {
    at: Micros,
    /// Insertion order: events at the same instant run in the order they were scheduled.
    seq: u64,
    event: E,
}

impl<E> PartialEq for Scheduled<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<E> Eq for Scheduled<E> {}
impl<E> PartialOrd for Scheduled<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Scheduled<E> {
    /// Reversed: the max-heap pops the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A discrete-event queue with its clock: [`EventQueue::pop`] moves the clock to the event's
/// time. Time never goes backwards: an event scheduled in the past runs now.
pub struct EventQueue<E> {
    heap: BinaryHeap<Scheduled<E>>,
    now: Micros,
    seq: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self { heap: BinaryHeap::new(), now: 0, seq: 0 }
    }
}

impl<E> EventQueue<E> {
    /// The current simulated time.
    pub fn now(&self) -> Micros {
        self.now
    }

    /// Schedules `event` at `at` (or now, if `at` is in the past).
    pub fn at(&mut self, at: Micros, event: E) {
        self.seq += 1;
        self.heap.push(Scheduled { at: at.max(self.now), seq: self.seq, event });
    }

    /// Schedules `event` `after` from now.
    pub fn after(&mut self, after: Micros, event: E) {
        self.at(self.now.saturating_add(after), event);
    }

    /// The next event at or before `until`, moving the clock to it; `None` (clock at `until`)
    /// when there is none.
    pub fn pop_until(&mut self, until: Micros) -> Option<E> {
        if self.heap.peek().is_some_and(|s| s.at <= until) {
            let s = self.heap.pop()?;
            self.now = s.at;
            return Some(s.event);
        }
        self.now = self.now.max(until);
        None
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no event waits.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// The simulation's random draws: [`SplitMix64`](crate::sim::SplitMix64) (the fault injector's
/// generator; not for keys) with the distributions the simulator needs. One per run, from its seed.
#[derive(Debug, Clone)]
pub struct Rng(crate::sim::SplitMix64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(crate::sim::SplitMix64::new(seed ^ 0x9E37_79B9_7F4A_7C15))
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0.next_f64()
    }

    /// Uniform in [0, n); 0 when `n` is 0.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { ((self.next_u64() as u128 * n as u128) >> 64) as usize }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// A standard normal deviate (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// `k` distinct indices of `0..n` (all of them if `k >= n`), in random order.
    pub fn sample(&mut self, n: usize, k: usize) -> Vec<usize> {
        if k >= n {
            let mut all: Vec<usize> = (0..n).collect();
            self.shuffle(&mut all);
            return all;
        }
        let mut out: Vec<usize> = Vec::with_capacity(k);
        while out.len() < k {
            let i = self.below(n);
            if !out.contains(&i) {
                out.push(i);
            }
        }
        out
    }

    /// Fisher–Yates.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_pop_in_time_order_then_insertion_order() {
        let mut q = EventQueue::default();
        q.at(30, "c");
        q.at(10, "a");
        q.at(10, "b");
        q.at(50, "e");
        assert_eq!(q.pop_until(100), Some("a"));
        assert_eq!(q.now(), 10);
        assert_eq!(q.pop_until(100), Some("b"));
        // Scheduling in the past runs at the current instant, after what is already due then.
        q.at(5, "late");
        assert_eq!(q.pop_until(100), Some("late"));
        assert_eq!(q.now(), 10);
        assert_eq!(q.pop_until(100), Some("c"));
        q.after(5, "d");
        assert_eq!(q.pop_until(100), Some("d"));
        assert_eq!(q.now(), 35);
        // Nothing due before 40: the clock moves to 40 and the event waits.
        assert_eq!(q.pop_until(40), None);
        assert_eq!((q.now(), q.len()), (40, 1));
        assert_eq!(q.pop_until(100), Some("e"));
        assert!(q.is_empty());
    }

    #[test]
    fn rng_is_a_function_of_its_seed() {
        let a: Vec<u64> = (0..5)
            .map({
                let mut r = Rng::new(7);
                move |_| r.next_u64()
            })
            .collect();
        let mut r = Rng::new(7);
        assert_eq!(a, (0..5).map(|_| r.next_u64()).collect::<Vec<_>>());
        let mut r = Rng::new(1);
        assert!((0..1000).all(|_| r.below(10) < 10));
        let s = r.sample(20, 5);
        assert_eq!(s.len(), 5);
        assert!(s.iter().all(|i| *i < 20) && s.iter().collect::<std::collections::HashSet<_>>().len() == 5);
        let mean = (0..10_000).map(|_| r.unit()).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
    }
}
