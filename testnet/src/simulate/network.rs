//! The simulated network: regions with one-way latency distributions between them, random
//! loss, partitions between groups of regions, and nodes up or down. No sockets, no bandwidth
//! limit, no queueing: a transmission takes its drawn latency whatever else is in flight.

use super::clock::{Micros, Rng};

/// One-way latency between two regions: the median, and the spread of a log-normal jitter
/// around it (`sigma` 0 = always the median).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Median one-way latency, µs.
    pub median_us: f64,
    /// Standard deviation of ln(latency / median).
    pub sigma: f64,
}

impl Latency {
    /// One draw, µs (at least 1).
    pub fn draw(&self, rng: &mut Rng) -> Micros {
        let v = if self.sigma > 0.0 { self.median_us * (self.sigma * rng.normal()).exp() } else { self.median_us };
        (v.round() as Micros).max(1)
    }
}

/// Where nodes are and what links them.
#[derive(Debug, Clone)]
pub struct Network {
    /// Region index of each node.
    region: Vec<u8>,
    /// Latency by (from region, to region).
    latency: Vec<Vec<Latency>>,
    /// Probability that one transmission is lost.
    loss: f64,
    /// Partition group of each region while a partition holds; `None` when healed.
    groups: Option<Vec<u8>>,
    /// Whether each node is up.
    up: Vec<bool>,
}

impl Network {
    /// `region[i]` is node i's region; `latency[a][b]` the latency from region a to region b.
    pub fn new(region: Vec<u8>, latency: Vec<Vec<Latency>>, loss: f64) -> Self {
        let up = vec![true; region.len()];
        Self { region, latency, loss, groups: None, up }
    }

    /// Nodes.
    pub fn len(&self) -> usize {
        self.region.len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.region.is_empty()
    }

    /// Region of `node`.
    pub fn region(&self, node: usize) -> usize {
        self.region[node] as usize
    }

    /// Splits the regions into groups (`group[r]` for region r) that cannot reach each other.
    pub fn partition(&mut self, group: Vec<u8>) {
        self.groups = Some(group);
    }

    /// Ends the partition.
    pub fn heal(&mut self) {
        self.groups = None;
    }

    /// Takes `node` down or brings it back.
    pub fn set_up(&mut self, node: usize, up: bool) {
        self.up[node] = up;
    }

    /// Whether `node` is up.
    pub fn is_up(&self, node: usize) -> bool {
        self.up[node]
    }

    /// Whether `a` can reach `b` now (both up, same side of any partition).
    pub fn reachable(&self, a: usize, b: usize) -> bool {
        self.up[a]
            && self.up[b]
            && self.groups.as_ref().is_none_or(|g| g[self.region[a] as usize] == g[self.region[b] as usize])
    }

    /// The delay of one transmission from `a` to `b`, or `None` if it does not arrive (lost,
    /// partitioned, or an end is down).
    pub fn transmit(&self, a: usize, b: usize, rng: &mut Rng) -> Option<Micros> {
        if !self.reachable(a, b) || rng.chance(self.loss) {
            return None;
        }
        Some(self.latency[self.region[a] as usize][self.region[b] as usize].draw(rng))
    }

    /// A round trip `a` → `b` → `a` without loss (requests are retried by their transport).
    pub fn round_trip(&self, a: usize, b: usize, rng: &mut Rng) -> Option<Micros> {
        if !self.reachable(a, b) {
            return None;
        }
        let (ra, rb) = (self.region[a] as usize, self.region[b] as usize);
        Some(self.latency[ra][rb].draw(rng) + self.latency[rb][ra].draw(rng))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_regions(loss: f64) -> Network {
        let near = Latency { median_us: 1_000.0, sigma: 0.0 };
        let far = Latency { median_us: 40_000.0, sigma: 0.0 };
        Network::new(vec![0, 0, 1], vec![vec![near, far], vec![far, near]], loss)
    }

    #[test]
    fn latency_follows_regions() {
        let net = two_regions(0.0);
        let mut rng = Rng::new(1);
        assert_eq!(net.transmit(0, 1, &mut rng), Some(1_000));
        assert_eq!(net.transmit(0, 2, &mut rng), Some(40_000));
        assert_eq!(net.round_trip(2, 0, &mut rng), Some(80_000));
    }

    #[test]
    fn jitter_is_log_normal_around_the_median() {
        let l = Latency { median_us: 10_000.0, sigma: 0.3 };
        let mut rng = Rng::new(3);
        let mut v: Vec<Micros> = (0..10_001).map(|_| l.draw(&mut rng)).collect();
        v.sort_unstable();
        let median = v[5_000] as f64;
        assert!((median - 10_000.0).abs() < 500.0, "median {median}");
        assert!(v[0] > 0 && v[10_000] > 15_000, "spread {}..{}", v[0], v[10_000]);
    }

    #[test]
    fn partitions_loss_and_down_nodes_stop_transmissions() {
        let mut net = two_regions(0.0);
        let mut rng = Rng::new(2);
        net.partition(vec![0, 1]);
        assert_eq!(net.transmit(0, 2, &mut rng), None);
        assert!(net.transmit(0, 1, &mut rng).is_some());
        net.heal();
        assert!(net.transmit(0, 2, &mut rng).is_some());
        net.set_up(1, false);
        assert!(!net.reachable(0, 1) && !net.is_up(1));
        assert_eq!(net.round_trip(0, 1, &mut rng), None);

        let lossy = two_regions(0.25);
        let arrived = (0..10_000).filter(|_| lossy.transmit(0, 1, &mut rng).is_some()).count();
        assert!((7_200..7_800).contains(&arrived), "{arrived} of 10000 arrived at 25 % loss");
    }
}
