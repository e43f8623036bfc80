//! Token-bucket quotas: one bucket per API key with a quota, one per client address for calls
//! without a key (`gateway.per_ip_requests_per_sec`). A call is one JSON-RPC request; a batch
//! costs one token per item, so splitting work into batches buys nothing.
//!
//! A bucket holds up to `burst` tokens and refills at `rate` per second. A request of `n` calls is
//! admitted when the bucket holds `min(n, burst)` tokens and then takes all `n`, possibly going
//! into debt: a batch larger than the burst is served once the bucket is full, and the client
//! then waits until the debt is repaid. A refused request takes nothing and is told how long to
//! wait (`retry-after`, whole seconds, at least 1).
//!
//! Per-address buckets are bounded in memory ([`MAX_IP_BUCKETS`]): at the cap, buckets that
//! refilled (equivalent to new ones) are dropped first, then the least recently used, down to
//! three quarters of the cap, so the sweep costs O(1) per new address amortized. An evicted
//! address starts again with a full bucket: under an address flood the quota weakens, memory
//! does not grow. IPv6 clients are counted per /64, the block one host usually holds.
//!
//! Time comes from `tokio::time::Instant` (paused-clock tests). Locks are std mutexes held for a
//! few arithmetic operations, never across an await.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Most client addresses (IPv6: /64 blocks) with a bucket at once: ~64 bytes each, so a few MB at
/// most, whatever the number of addresses a flood comes from.
pub const MAX_IP_BUCKETS: usize = 65_536;

/// A rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_sec: f64,
    /// Most tokens held.
    pub burst: f64,
}

impl Rate {
    /// `per_sec` calls a second with `burst` at once (0: one second's worth).
    pub fn new(per_sec: u32, burst: u32) -> Self {
        let burst = if burst == 0 { per_sec } else { burst };
        Self { per_sec: f64::from(per_sec.max(1)), burst: f64::from(burst.max(1)) }
    }
}

/// One token bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn full(rate: Rate, now: Instant) -> Self {
        Self { tokens: rate.burst, last: now }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_sec).min(rate.burst);
        self.last = now;
    }

    /// Takes `calls` tokens, or says how long to wait before asking again.
    pub fn take(&mut self, rate: Rate, calls: u32, now: Instant) -> Result<(), Duration> {
        self.refill(rate, now);
        let needed = f64::from(calls).min(rate.burst);
        if self.tokens >= needed {
            self.tokens -= f64::from(calls);
            return Ok(());
        }
        Err(Duration::from_secs_f64((needed - self.tokens) / rate.per_sec))
    }

    /// Whether the bucket has refilled completely by `now` (then it is as good as a new one).
    fn is_full(&self, rate: Rate, now: Instant) -> bool {
        self.tokens + now.saturating_duration_since(self.last).as_secs_f64() * rate.per_sec >= rate.burst
    }
}

/// A bucket behind a lock, for one API key.
#[derive(Debug)]
pub struct KeyQuota {
    rate: Rate,
    bucket: Mutex<Bucket>,
}

impl KeyQuota {
    /// A full bucket of `rate`.
    pub fn new(rate: Rate) -> Self {
        Self { rate, bucket: Mutex::new(Bucket::full(rate, Instant::now())) }
    }

    /// Charges `calls`; `Err(wait)` when over quota.
    pub fn charge(&self, calls: u32) -> Result<(), Duration> {
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        b.take(self.rate, calls, Instant::now())
    }
}

/// Buckets per client address, at most [`MAX_IP_BUCKETS`].
#[derive(Debug)]
pub struct IpQuota {
    rate: Rate,
    cap: usize,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl IpQuota {
    /// Per-address buckets of `rate`, at most [`MAX_IP_BUCKETS`].
    pub fn new(rate: Rate) -> Self {
        Self::with_cap(rate, MAX_IP_BUCKETS)
    }

    fn with_cap(rate: Rate, cap: usize) -> Self {
        Self { rate, cap: cap.max(4), buckets: Mutex::new(HashMap::new()) }
    }

    /// Charges `calls` to `ip`'s bucket; `Err(wait)` when over quota.
    pub fn charge(&self, ip: IpAddr, calls: u32) -> Result<(), Duration> {
        let now = Instant::now();
        let key = client_block(ip);
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(&key) && map.len() >= self.cap {
            self.sweep(&mut map, now);
        }
        map.entry(key).or_insert_with(|| Bucket::full(self.rate, now)).take(self.rate, calls, now)
    }

    /// Addresses with a bucket now.
    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no address has a bucket.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops refilled buckets, then the least recently used, down to 3/4 of the cap.
    fn sweep(&self, map: &mut HashMap<IpAddr, Bucket>, now: Instant) {
        let rate = self.rate;
        map.retain(|_, b| !b.is_full(rate, now));
        let target = self.cap - self.cap / 4;
        if map.len() <= target {
            return;
        }
        let mut lasts: Vec<Instant> = map.values().map(|b| b.last).collect();
        let excess = map.len() - target;
        // The `excess`-th oldest use: everything used at or before it goes.
        let (_, cutoff, _) = lasts.select_nth_unstable(excess - 1);
        let cutoff = *cutoff;
        map.retain(|_, b| b.last > cutoff);
    }
}

/// The address a quota is kept for: IPv4 as is, IPv6 by its /64 (IPv4-mapped IPv6 as IPv4).
pub fn client_block(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// `retry-after` seconds for a wait: rounded up, at least 1 (0 would invite a busy loop).
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn a_bucket_allows_its_burst_then_its_rate() {
        let rate = Rate::new(2, 4);
        let mut b = Bucket::full(rate, Instant::now());
        for _ in 0..4 {
            assert!(b.take(rate, 1, Instant::now()).is_ok());
        }
        let wait = b.take(rate, 1, Instant::now()).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(retry_after_secs(wait), 1);
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(b.take(rate, 1, Instant::now()).is_ok());
        assert!(b.take(rate, 1, Instant::now()).is_err());
        // Refill stops at the burst.
        tokio::time::advance(100 * SEC).await;
        assert!(b.take(rate, 4, Instant::now()).is_ok());
        assert!(b.take(rate, 1, Instant::now()).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn batches_cost_one_token_per_item_and_big_ones_go_into_debt() {
        let rate = Rate::new(1, 3);
        let mut b = Bucket::full(rate, Instant::now());
        assert!(b.take(rate, 2, Instant::now()).is_ok());
        // One token left: a batch of 2 waits for the second.
        assert_eq!(b.take(rate, 2, Instant::now()), Err(SEC));
        tokio::time::advance(2 * SEC).await;
        // Full again (3): a batch of 10 is served and leaves a debt of 7.
        assert!(b.take(rate, 10, Instant::now()).is_ok());
        let wait = b.take(rate, 1, Instant::now()).unwrap_err();
        assert_eq!(wait, 8 * SEC);
        assert_eq!(retry_after_secs(wait), 8);
        // A refused request takes nothing.
        assert_eq!(b.take(rate, 1, Instant::now()).unwrap_err(), 8 * SEC);
    }

    #[test]
    fn zero_burst_is_one_seconds_worth() {
        assert_eq!(Rate::new(5, 0), Rate { per_sec: 5.0, burst: 5.0 });
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn addresses_have_their_own_buckets_and_v6_counts_per_64() {
        let q = IpQuota::new(Rate::new(1, 1));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(q.charge(a, 1).is_ok());
        assert!(q.charge(a, 1).is_err());
        assert!(q.charge(b, 1).is_ok());
        let v6a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert!(q.charge(v6a, 1).is_ok());
        assert!(q.charge(v6b, 1).is_err(), "same /64, same bucket");
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert!(q.charge(mapped, 1).is_err(), "IPv4-mapped is the IPv4 address");
    }

    #[tokio::test(start_paused = true)]
    async fn address_buckets_stay_under_the_cap() {
        let cap = 100;
        let q = IpQuota::with_cap(Rate::new(1, 5), cap);
        for i in 0..10 * cap as u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            // Each address drains its bucket: nothing refills, eviction is by age.
            assert!(q.charge(ip, 5).is_ok(), "a new address starts full");
            assert!(q.len() <= cap, "{} buckets", q.len());
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        // The most recent address is still remembered as drained.
        let last = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + 10 * cap as u32 - 1));
        assert!(q.charge(last, 1).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn refilled_buckets_are_dropped_before_used_ones() {
        let q = IpQuota::with_cap(Rate::new(1, 5), 4);
        let ip = |n: u8| IpAddr::from([10, 0, 0, n]);
        for n in 1..=3 {
            assert!(q.charge(ip(n), 1).is_ok());
        }
        // 1..=3 refill completely; 4 is then used.
        tokio::time::advance(10 * SEC).await;
        assert!(q.charge(ip(4), 1).is_ok());
        // At the cap: the refilled ones go, 4 stays (with 4 tokens, not 5).
        assert!(q.charge(ip(5), 1).is_ok());
        assert_eq!(q.len(), 2);
        assert!(q.charge(ip(4), 5).is_err());
    }
}
