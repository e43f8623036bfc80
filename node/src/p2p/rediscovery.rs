//! When to ask the DHT again for peers: a node whose Kademlia bootstrap found nobody, or too
//! few peers to form a gossip mesh, asks again after a growing delay instead of waiting for
//! the periodic bootstrap (minutes).
//!
//! Why it matters: a node joining a mesh knows only its bootstrap peers, and its first query
//! goes to them. When many nodes join at once (a 100-daemon testnet, a region coming back
//! after an outage) that first query can time out at a busy bootstrap peer; such a node then
//! stayed connected to its bootstrap peer alone for two minutes, received gossip through that
//! one link, and was probed as unreachable by the rest of the mesh.

use std::time::{Duration, Instant};

/// First delay before asking again.
pub const RETRY_MIN: Duration = Duration::from_secs(1);
/// Longest delay between retries (a node in a mesh smaller than [`MIN_PEERS`] + 1 keeps asking
/// at this pace: one small query a minute).
pub const RETRY_MAX: Duration = Duration::from_secs(60);
/// Fewer connected peers than this after a query: ask again. Gossipsub's lower mesh degree:
/// below it a node cannot fill its mesh.
pub const MIN_PEERS: usize = super::behaviour::GOSSIP_MESH_N_LOW;

/// The retry schedule (pure: time is passed in).
#[derive(Debug)]
pub struct Rediscovery {
    backoff: Duration,
    next: Option<Instant>,
}

impl Default for Rediscovery {
    fn default() -> Self {
        Self { backoff: RETRY_MIN, next: None }
    }
}

impl Rediscovery {
    /// A bootstrap query ended at `now` with `successes` peers answering; `connected` peers now.
    pub fn query_done(&mut self, now: Instant, successes: u32, connected: usize) {
        if successes == 0 || connected < MIN_PEERS {
            self.next = Some(now + self.backoff);
            self.backoff = (self.backoff * 2).min(RETRY_MAX);
        } else {
            *self = Self::default();
        }
    }

    /// Whether a retry is due at `now` (consumed: the next one waits for the query's end).
    pub fn due(&mut self, now: Instant) -> bool {
        if self.next.is_some_and(|t| now >= t) {
            self.next = None;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_query_is_retried_with_a_growing_delay_until_enough_peers_answer() {
        let t0 = Instant::now();
        let mut r = Rediscovery::default();
        assert!(!r.due(t0), "nothing to retry before a query ended");
        r.query_done(t0, 0, 1);
        assert!(!r.due(t0 + RETRY_MIN - Duration::from_millis(1)));
        assert!(r.due(t0 + RETRY_MIN));
        assert!(!r.due(t0 + RETRY_MIN), "one retry per ended query");
        // Answered, but still too few peers: again, after twice the delay.
        let t1 = t0 + RETRY_MIN;
        r.query_done(t1, 3, MIN_PEERS - 1);
        assert!(!r.due(t1 + RETRY_MIN));
        assert!(r.due(t1 + 2 * RETRY_MIN));
        for _ in 0..10 {
            r.query_done(t1, 0, 1);
        }
        assert!(!r.due(t1 + RETRY_MAX - Duration::from_millis(1)), "the delay is capped, not shorter");
        assert!(r.due(t1 + RETRY_MAX));
        // Enough peers: no retry, and the next failure starts from the first delay again.
        r.query_done(t1, 5, MIN_PEERS);
        assert!(!r.due(t1 + RETRY_MAX * 10));
        r.query_done(t1, 0, 0);
        assert!(r.due(t1 + RETRY_MIN));
    }
}
