//! One measurement definition for percentiles and gossip convergence, used by the bench
//! ([`crate::bench`]), the scenario reports ([`crate::report`]) and the simulator
//! ([`crate::simulate`]), so their figures can be compared. The bench observes gossip by polling
//! `/peers`, which shows only each provider's latest announcement: [`Polled`] tells an
//! announcement replaced between two polls (left out, counted apart) from one that never
//! reached a node (never converged).
//!
//! **Percentiles** are nearest-rank: the p-th percentile of n sorted values is the value at
//! 1-based rank ⌈p/100 · n⌉ (at least 1); always a measured value, never an interpolation.
//!
//! **Gossip convergence** of one message is the time from its publication until the last node
//! that should receive it (every node but the publisher that was up for the whole observation)
//! accepted it. A message that some expected node never accepted **never converged**: it counts
//! as infinitely slow. The [`Convergence`] figures are over *all* messages, the never-converged
//! ones ranked after every finite time: a percentile whose rank falls on one of them is
//! [`Percentile::Never`], not a finite number computed without them. The count of
//! never-converged messages is reported beside the percentiles, and the finite times alone are
//! kept apart ([`Convergence::finite_ms`]) for plots, so no figure silently drops a message.

use serde::Serialize;

/// Nearest-rank percentile of ascending `sorted` values; `p` in (0, 100], two decimals at most
/// (e.g. 99.9). `None` if `sorted` is empty.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    let rank = rank_of(sorted.len() as u64, p)?;
    sorted.get((rank - 1) as usize).copied()
}

/// The 1-based nearest rank of the p-th percentile among `n` values; `None` when `n` is 0.
fn rank_of(n: u64, p: f64) -> Option<u64> {
    if n == 0 {
        return None;
    }
    // Integer arithmetic in basis points, so 95 % of 1000 is exactly rank 950.
    let bp = (p * 100.0).round().clamp(1.0, 10_000.0) as u64;
    Some((bp * n).div_ceil(10_000).clamp(1, n))
}

/// A percentile of a set where some members are infinitely slow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Percentile {
    /// No messages at all.
    #[default]
    NoData,
    /// A finite value (ms in the reports, µs in the simulator).
    At(u64),
    /// The rank falls on a message that never converged.
    Never,
}

impl Percentile {
    /// The finite value, if it is one.
    pub fn value(self) -> Option<u64> {
        match self {
            Self::At(v) => Some(v),
            _ => None,
        }
    }

    /// The same for µs values, shown in ms: `0.8 ms`, `never` or `–`.
    pub fn label_us(self) -> String {
        match self {
            Self::At(v) => format!("{:.1} ms", v as f64 / 1e3),
            Self::Never => "never".into(),
            Self::NoData => "–".into(),
        }
    }

    /// `12 ms`, `never` or `–`.
    pub fn label(self) -> String {
        match self {
            Self::At(v) => format!("{v} ms"),
            Self::Never => "never".into(),
            Self::NoData => "–".into(),
        }
    }
}

/// Convergence of a set of gossip messages; see the module docs for the definition.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Convergence {
    /// Messages measured.
    pub messages: u64,
    /// Messages every expected node accepted.
    pub converged: u64,
    /// Messages some expected node never accepted (infinitely slow).
    pub never_converged: u64,
    /// Convergence times of the converged messages, ascending, ms.
    #[serde(skip)]
    pub finite_ms: Vec<u64>,
}

impl Convergence {
    /// Builds the figures from one entry per message: `Some(ms)` if it converged after `ms`,
    /// `None` if it never did.
    pub fn of(per_message: impl IntoIterator<Item = Option<u64>>) -> Self {
        let mut c = Convergence::default();
        for m in per_message {
            c.messages += 1;
            match m {
                Some(ms) => c.finite_ms.push(ms),
                None => c.never_converged += 1,
            }
        }
        c.finite_ms.sort_unstable();
        c.converged = c.finite_ms.len() as u64;
        c
    }

    /// Convergence time of one message from its per-node acceptance delays (ms after publish,
    /// one per expected node that accepted it): the slowest, or `None` if fewer than
    /// `expected` nodes accepted it (or `expected` is 0: nothing to converge on).
    pub fn of_message(delays: impl IntoIterator<Item = u64>, expected: usize) -> Option<u64> {
        let mut n = 0usize;
        let mut max = 0u64;
        for d in delays {
            n += 1;
            max = max.max(d);
        }
        (expected > 0 && n >= expected).then_some(max)
    }

    /// The p-th percentile over all messages, never-converged ones ranked last.
    pub fn percentile(&self, p: f64) -> Percentile {
        match rank_of(self.messages, p) {
            None => Percentile::NoData,
            Some(rank) => self.finite_ms.get((rank - 1) as usize).map_or(Percentile::Never, |v| Percentile::At(*v)),
        }
    }

    /// Fraction of all messages converged within `ms` (plateaus below 1 when some never did).
    pub fn fraction_within(&self, ms: u64) -> f64 {
        if self.messages == 0 {
            return 0.0;
        }
        self.finite_ms.partition_point(|v| *v <= ms) as f64 / self.messages as f64
    }

    /// Points of the CDF over all messages: `(ms, fraction of all messages converged by then)`,
    /// one per converged message.
    pub fn cdf(&self) -> Vec<(u64, f64)> {
        let n = self.messages.max(1) as f64;
        self.finite_ms.iter().enumerate().map(|(i, v)| (*v, (i + 1) as f64 / n)).collect()
    }
}

/// Gossip convergence of announcements observed by **polling** each node's latest one per
/// publisher (the bench's and the scenario runner's `/peers` polls). A poll shows only the
/// latest announcement of each publisher, so one a node accepted and replaced between two polls
/// is never seen there; counted as never converged it would pass a poll artefact off as a loss.
/// The refinement: a message an expected node never showed, while that node did show a *newer*
/// one of the same publisher, is **hidden** there (it may have been accepted, or lost and
/// superseded: a poll cannot tell), and the message is left out of the figures and counted
/// apart. A message some expected node showed neither it nor anything newer of its publisher
/// never converged; the rest converged at their slowest delay.
#[derive(Clone, Debug, Default)]
pub struct Polled {
    /// `(observer, publisher, seq)` → publish → accept at that observer, ms: the messages
    /// measured (issued inside the observation window).
    pub delays: std::collections::HashMap<(usize, usize, u64), u64>,
    /// `(observer, publisher)` → the newest `seq` that observer ever showed (window or not).
    pub newest: std::collections::HashMap<(usize, usize), u64>,
}

impl Polled {
    /// Records one poll's sight of `publisher`'s announcement `seq` at `observer`; `delay_ms`
    /// when it is one of the measured messages.
    pub fn saw(&mut self, observer: usize, publisher: usize, seq: u64, delay_ms: Option<u64>) {
        let newest = self.newest.entry((observer, publisher)).or_insert(seq);
        *newest = (*newest).max(seq);
        if let Some(d) = delay_ms {
            self.delays.insert((observer, publisher, seq), d);
        }
    }

    /// Adds another observer's sightings.
    pub fn extend(&mut self, other: Polled) {
        for ((o, p), seq) in other.newest {
            let newest = self.newest.entry((o, p)).or_insert(seq);
            *newest = (*newest).max(seq);
        }
        self.delays.extend(other.delays);
    }

    /// Convergence over `nodes` observers (0..nodes, every one but the publisher expected), and
    /// how many messages were hidden somewhere and left out.
    pub fn convergence(&self, nodes: usize) -> (Convergence, u64) {
        let mut messages: std::collections::BTreeMap<(usize, u64), Vec<(usize, u64)>> = Default::default();
        for ((observer, publisher, seq), d) in &self.delays {
            let seen = messages.entry((*publisher, *seq)).or_default();
            // The publisher's own sighting registers the message (nobody else may have it).
            if observer != publisher {
                seen.push((*observer, *d));
            }
        }
        let mut hidden = 0u64;
        let mut per_message = Vec::with_capacity(messages.len());
        for ((publisher, seq), seen) in &messages {
            let (mut missing, mut hidden_here) = (false, false);
            for o in (0..nodes).filter(|o| o != publisher) {
                if seen.iter().any(|(x, _)| *x == o) {
                    continue;
                }
                match self.newest.get(&(o, *publisher)) {
                    Some(newest) if newest > seq => hidden_here = true,
                    _ => missing = true,
                }
            }
            if missing {
                per_message.push(None);
            } else if hidden_here {
                hidden += 1;
            } else {
                per_message.push(Convergence::of_message(seen.iter().map(|(_, d)| *d), nodes.saturating_sub(1)));
            }
        }
        (Convergence::of(per_message), hidden)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 95.0), Some(95));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 99.9), Some(999));
        assert_eq!(percentile(&v, 95.0), Some(950));
        // Small samples: the rank rounds up, so p99 of 10 values is the maximum.
        assert_eq!(percentile(&[10, 20, 30], 50.0), Some(20));
        assert_eq!(percentile(&[10, 20, 30, 40], 50.0), Some(20));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        let ten: Vec<u64> = (1..=10).collect();
        assert_eq!(percentile(&ten, 99.0), Some(10));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn never_converged_messages_are_infinitely_slow() {
        // 10 messages, 2 never converged: p50 is finite, p90 falls on a never-converged one.
        let c = Convergence::of((1..=8).map(|v| Some(v * 10)).chain([None, None]));
        assert_eq!((c.messages, c.converged, c.never_converged), (10, 8, 2));
        assert_eq!(c.percentile(50.0), Percentile::At(50));
        assert_eq!(c.percentile(80.0), Percentile::At(80));
        assert_eq!(c.percentile(90.0), Percentile::Never);
        assert_eq!(c.percentile(99.0).label(), "never");
        assert_eq!(c.fraction_within(1_000), 0.8);
        assert_eq!(c.cdf().last(), Some(&(80, 0.8)));
        assert_eq!(Convergence::default().percentile(50.0), Percentile::NoData);
    }

    #[test]
    fn a_message_converges_when_every_expected_node_accepted_it() {
        assert_eq!(Convergence::of_message([5, 30, 10], 3), Some(30));
        assert_eq!(Convergence::of_message([5, 30], 3), None);
        assert_eq!(Convergence::of_message([], 0), None);
    }

    #[test]
    fn polled_messages_replaced_between_polls_are_left_out_not_lost() {
        // Three nodes; node 0 publishes seqs 1 and 2, node 1 publishes 7.
        let mut p = Polled::default();
        // seq 1: node 1 showed it; node 2 showed only seq 2 (replaced between polls): hidden.
        p.saw(1, 0, 1, Some(10));
        p.saw(2, 0, 2, Some(15));
        p.saw(1, 0, 2, Some(12));
        // seq 7 of node 1: node 0 showed it, node 2 never showed anything of node 1: lost.
        p.saw(0, 1, 7, Some(5));
        let (c, hidden) = p.convergence(3);
        assert_eq!(hidden, 1, "seq 1 hidden at node 2 by seq 2");
        assert_eq!((c.messages, c.converged, c.never_converged), (2, 1, 1));
        assert_eq!(c.finite_ms, vec![15], "seq 2 converged at its slowest node");
        // A newer one shown only after the window (no delay recorded) still hides.
        let mut q = Polled::default();
        q.saw(1, 0, 1, Some(10));
        q.saw(2, 0, 3, None);
        assert_eq!(q.convergence(3).1, 1);
    }
}
