//! Numbers from raw samples: latency summaries of a cell, client-visible stalls around a fault,
//! gossip delivery and convergence.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::load::Sample;
use crate::measure::Percentile;
use crate::report::stats::percentile;

/// Latency percentiles (nearest rank, exact) of a set of samples, µs.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_us: Option<u64>,
    /// 90th percentile.
    pub p90_us: Option<u64>,
    /// 99th percentile.
    pub p99_us: Option<u64>,
    /// Slowest.
    pub max_us: Option<u64>,
}

impl Latency {
    /// Percentiles of every sample's latency (failed ones included: the client waited that long).
    pub fn of<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> Self {
        let mut v: Vec<u64> = samples.into_iter().map(|s| s.latency_us).collect();
        v.sort_unstable();
        Latency {
            p50_us: percentile(&v, 50.0),
            p90_us: percentile(&v, 90.0),
            p99_us: percentile(&v, 99.0),
            max_us: v.last().copied(),
        }
    }
}

/// The longest time a client waited for a correct answer, over requests sent in `[from_us, to_us)`.
///
/// For each such request: from its send until the first correct answer *on the same client loop*
/// completes, at or after that request (a failed request therefore stalls its client until a
/// later one succeeds). A loop with no later success is counted until `run_end_us`.
/// Returns `(stall_us, censored, sent_us)`: `censored` says the longest stall ran to the end of the
/// run; `sent_us` is when the request that waited longest was sent.
pub fn longest_stall(samples: &[Sample], from_us: u64, to_us: u64, run_end_us: u64) -> (u64, bool, u64) {
    let mut by_worker: HashMap<u16, Vec<&Sample>> = HashMap::new();
    for s in samples {
        by_worker.entry(s.worker).or_default().push(s);
    }
    let mut worst = (0u64, false, from_us);
    for list in by_worker.values_mut() {
        list.sort_by_key(|s| s.sent_us);
        // Walking backwards: the completion time of the next success at or after index i.
        let mut next_ok_end: Option<u64> = None;
        for s in list.iter().rev() {
            if s.ok {
                next_ok_end = Some(s.sent_us + s.latency_us);
            }
            if s.sent_us < from_us || s.sent_us >= to_us {
                continue;
            }
            let (end, censored) = match next_ok_end {
                Some(e) => (e, false),
                None => (run_end_us.max(s.sent_us + s.latency_us), true),
            };
            let stall = end - s.sent_us;
            if stall > worst.0 {
                worst = (stall, censored, s.sent_us);
            }
        }
    }
    worst
}

/// Announcements seen by polling the nodes (see [`crate::measure::Polled`]).
pub type Deliveries = crate::measure::Polled;

/// Gossip figures from deliveries, by the one definition of [`crate::measure`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct GossipStats {
    /// Deliveries observed (one announcement accepted by one node).
    pub deliveries: usize,
    /// Distinct announcements observed at one node at least.
    pub messages: usize,
    /// Announcements observed at every other node.
    pub messages_complete: usize,
    /// Announcements some node showed neither them nor a newer one of their publisher: never
    /// converged, ranked after every finite time.
    pub never_converged: u64,
    /// Announcements replaced by a newer one before some node's poll could show them: left out.
    pub hidden: u64,
    /// Publish → accept at one node, median, ms.
    pub delivery_p50_ms: Option<u64>,
    /// Publish → accept at one node, 99th percentile, ms.
    pub delivery_p99_ms: Option<u64>,
    /// Publish → accepted by every other node, median over announcements.
    pub convergence_p50: Percentile,
    /// Publish → accepted by every other node, 99th percentile over announcements.
    pub convergence_p99: Percentile,
    /// Slowest convergence of the converged announcements, ms.
    pub convergence_max_ms: Option<u64>,
}

/// Delivery and convergence percentiles of `deliveries` in a mesh of `nodes`.
pub fn gossip_stats(deliveries: &Deliveries, nodes: usize) -> GossipStats {
    let mut all: Vec<u64> = deliveries.delays.values().copied().collect();
    all.sort_unstable();
    let (convergence, hidden) = deliveries.convergence(nodes);
    let messages = deliveries.delays.keys().map(|(_, publisher, seq)| (*publisher, *seq)).collect::<HashSet<_>>();
    GossipStats {
        deliveries: all.len(),
        messages: messages.len(),
        messages_complete: convergence.converged as usize,
        never_converged: convergence.never_converged,
        hidden,
        delivery_p50_ms: percentile(&all, 50.0),
        delivery_p99_ms: percentile(&all, 99.0),
        convergence_p50: convergence.percentile(50.0),
        convergence_p99: convergence.percentile(99.0),
        convergence_max_ms: convergence.finite_ms.last().copied(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(worker: u16, sent_us: u64, latency_us: u64, ok: bool) -> Sample {
        Sample { worker, sent_us, latency_us, ok, served: 0, bytes: 0 }
    }

    #[test]
    fn stall_spans_failures_until_the_next_success() {
        let samples = vec![
            s(0, 0, 10, true),
            s(0, 100, 50, false), // fails at 150
            s(0, 160, 500, true), // succeeds at 660: the request sent at 100 stalled 560
            s(1, 100, 20, true),
            s(1, 1_000, 30, false), // no later success: censored to the run end
        ];
        assert_eq!(longest_stall(&samples, 50, 900, 2_000), (560, false, 100));
        assert_eq!(longest_stall(&samples, 50, 2_000, 2_000), (1_000, true, 1_000));
        assert_eq!(longest_stall(&samples, 0, 50, 2_000), (10, false, 0));
        assert_eq!(longest_stall(&[], 0, 50, 2_000), (0, false, 0));
    }

    #[test]
    fn convergence_needs_every_observer() {
        let mut d = Deliveries::default();
        // 3 nodes: message (0, 1) reached both others, (0, 2) only one and nothing newer of
        // node 0 was ever seen at node 2: it never converged, ranked last.
        d.saw(1, 0, 1, Some(10));
        d.saw(2, 0, 1, Some(30));
        d.saw(1, 0, 2, Some(5));
        let g = gossip_stats(&d, 3);
        assert_eq!((g.deliveries, g.messages, g.messages_complete, g.never_converged), (3, 2, 1, 1));
        assert_eq!(g.convergence_p50, Percentile::At(30));
        assert_eq!(g.convergence_p99, Percentile::Never);
        assert_eq!(g.delivery_p50_ms, Some(10));
    }
}
