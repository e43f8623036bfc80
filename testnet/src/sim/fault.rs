//! Fault kinds a simulated backend can be switched into, and the seeded PRNG behind its random
//! choices (`Slow` jitter, `Errors` draws), so runs are reproducible for a given request order.

use super::chain::Address;

/// Misbehaviour of a running simulated backend, set with [`SimHandle::set_fault`](super::SimHandle::set_fault).
///
/// One fault at a time; setting a new one replaces the old, [`Fault::None`] heals.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Fault {
    /// Healthy: answers promptly and truthfully.
    #[default]
    None,
    /// The listener is closed and open connections (HTTP and WebSocket) are dropped: connecting
    /// is refused. Leaving `Down` binds the same port again.
    Down,
    /// Connections are accepted, requests are read, nothing is answered (HTTP, WebSocket requests
    /// and upgrades, `newHeads` notifications) until the fault changes; held requests are then
    /// served under the new fault.
    Freeze,
    /// Every HTTP request and WebSocket message (and notification burst) is answered after
    /// `delay_ms` plus a uniform random `0..=jitter_ms`.
    Slow {
        /// Fixed delay in milliseconds.
        delay_ms: u64,
        /// Upper bound of the added random delay in milliseconds.
        jitter_ms: u64,
    },
    /// That fraction (0.0..=1.0) of HTTP requests and WebSocket messages fails: over HTTP half of
    /// the failures are a bare HTTP 500, the other half (and all WebSocket ones) a JSON-RPC
    /// `-32603` internal error for every call in the request.
    Errors {
        /// Probability of failure per request or message.
        rate: f64,
    },
    /// A lagging node: reports `head - blocks` as its head; blocks above it are `null`, state
    /// queries at them fail with `-32000 header not found`, logs stop at its head.
    Stale {
        /// How many blocks behind the chain head.
        blocks: u64,
    },
    /// A liar: block hashes (and parent hashes, log block hashes) come from a consistent fake hash
    /// chain, and balances are doubled. Heads, timestamps and logs otherwise match the truth.
    Lie,
    /// A censor of one address: `eth_sendRawTransaction` whose raw bytes contain it fails with
    /// `-32003 transaction rejected`; its balance reads 0 and logs emitted by or mentioning it
    /// (`from`/`to` topics) are left out of `eth_getLogs`.
    Censor {
        /// The censored 20-byte address.
        address: Address,
    },
    /// A node that fails under load: of the requests arriving in each one-second window, those
    /// beyond `max_per_sec` get HTTP 429 with a JSON-RPC `-32005 limit exceeded` for every call.
    /// Fault proxy only: the simulated backend answers normally under it.
    Overload {
        /// Requests per second answered before the rest are refused.
        max_per_sec: u32,
    },
}

impl Fault {
    /// Short lowercase name of the fault kind, for logs and reports.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::Down => "down",
            Fault::Freeze => "freeze",
            Fault::Slow { .. } => "slow",
            Fault::Errors { .. } => "errors",
            Fault::Stale { .. } => "stale",
            Fault::Lie => "lie",
            Fault::Censor { .. } => "censor",
            Fault::Overload { .. } => "overload",
        }
    }

    /// Whether requests are held unanswered under this fault (`Freeze`, and `Down` while its
    /// connections are being dropped).
    pub(crate) fn holds_requests(&self) -> bool {
        matches!(self, Fault::Freeze | Fault::Down)
    }
}

/// SplitMix64: tiny, fast, good enough for fault draws, seeded for reproducibility.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `rate` (clamped to 0..=1; NaN is 0).
    pub fn chance(&mut self, rate: f64) -> bool {
        self.next_f64() < rate
    }

    /// Uniform in `0..=max`.
    pub fn up_to(&mut self, max: u64) -> u64 {
        match max.checked_add(1) {
            Some(span) => self.next_u64() % span,
            None => self.next_u64(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prng_is_seeded_and_bounded() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
            assert!(a.up_to(10) <= 10);
            b.up_to(10);
            let f = a.next_f64();
            b.next_f64();
            assert!((0.0..1.0).contains(&f));
        }
        assert!(a.chance(1.0));
        assert!(!a.chance(0.0));
        assert!(!a.chance(f64::NAN));
        let hits = (0..10_000).filter(|_| a.chance(0.25)).count();
        assert!((2000..3000).contains(&hits), "{hits}");
    }
}
