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
    /// A liar in every way of [`LieKind`] at once (`lie`). The simulated backend models two of
    /// them: block hashes (and parent hashes, log block hashes) come from a consistent fake hash
    /// chain, and balances are doubled; heads, timestamps and logs otherwise match the truth. The
    /// fault proxy in front of a real node models every kind
    /// ([`crate::fault_proxy`]).
    Lie,
    /// A liar in the listed ways only (`lie=balance,storage`), so a test can aim at one check of
    /// the integrity layer at a time. The simulated backend acts on [`LieKind::Hash`] and
    /// [`LieKind::Balance`] and answers the rest truthfully; the fault proxy acts on every kind.
    /// All kinds at once is [`Fault::Lie`] (what [`crate::faults::parse_fault`] gives).
    LieAbout {
        /// What the node lies about.
        kinds: LieKinds,
    },
    /// A censor of one address: `eth_sendRawTransaction` whose raw bytes contain it fails with
    /// `-32003 transaction rejected`; its balance reads 0 and logs emitted by or mentioning it
    /// (`from`/`to` topics) are left out of `eth_getLogs`. The fault proxy in front of a real
    /// node also empties its nonce, code and storage and refuses calls to or from it
    /// ([`crate::fault_proxy`]).
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
            Fault::Lie | Fault::LieAbout { .. } => "lie",
            Fault::Censor { .. } => "censor",
            Fault::Overload { .. } => "overload",
        }
    }

    /// What a lying fault lies about: every kind for [`Fault::Lie`], `None` for faults that do
    /// not lie.
    pub fn lies(&self) -> Option<LieKinds> {
        match self {
            Fault::Lie => Some(LieKinds::ALL),
            Fault::LieAbout { kinds } => Some(*kinds),
            _ => None,
        }
    }

    /// Whether requests are held unanswered under this fault (`Freeze`, and `Down` while its
    /// connections are being dropped).
    pub(crate) fn holds_requests(&self) -> bool {
        matches!(self, Fault::Freeze | Fault::Down)
    }
}

/// One way a node can lie: one answer the integrity layer can check and must catch. Lies never
/// touch `eth_chainId`, `net_version`, `eth_blockNumber` or block numbers, so the liar looks
/// healthy to every probe that does not check content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LieKind {
    /// `hash`: block hashes come from a consistent fake chain (`hash`, `parentHash`, and
    /// `blockHash` in transactions, receipts and logs); the liar answers for its fake hashes.
    Hash,
    /// `balance`: `eth_getBalance` answers twice the balance (1 ether for an empty account).
    Balance,
    /// `nonce`: `eth_getTransactionCount` answers one more.
    Nonce,
    /// `code`: `eth_getCode` answers altered bytecode (`0x00` for an account without code).
    Code,
    /// `storage`: `eth_getStorageAt` answers the word with its lowest bit flipped.
    Storage,
    /// `proof`: `eth_getProof` answers the balance, nonce and storage values the other state
    /// lies tell, with the true proof nodes: an answer its own proof refutes.
    Proof,
    /// `header`: blocks carry an altered `stateRoot` under their true `hash`.
    Header,
    /// `tx`: transactions (by hash, by block and index, and inside full blocks) carry an altered
    /// `value` under their true `hash`.
    Tx,
    /// `receipt`: receipts (`eth_getTransactionReceipt`, `eth_getBlockReceipts`) have their
    /// `status` flipped.
    Receipt,
    /// `log-data`: every log of `eth_getLogs` has altered `data`.
    LogData,
    /// `log-omit`: `eth_getLogs` leaves out the last log it would return.
    LogOmit,
    /// `call`: `eth_call` returns altered bytes (nothing can prove this one; only a second
    /// provider can contradict it).
    Call,
}

impl LieKind {
    /// Every kind, in the order of their names in specs and messages.
    pub const ALL: [LieKind; 12] = [
        LieKind::Hash,
        LieKind::Balance,
        LieKind::Nonce,
        LieKind::Code,
        LieKind::Storage,
        LieKind::Proof,
        LieKind::Header,
        LieKind::Tx,
        LieKind::Receipt,
        LieKind::LogData,
        LieKind::LogOmit,
        LieKind::Call,
    ];

    /// Its name in fault specs (`lie=NAME,NAME`).
    pub fn name(self) -> &'static str {
        match self {
            LieKind::Hash => "hash",
            LieKind::Balance => "balance",
            LieKind::Nonce => "nonce",
            LieKind::Code => "code",
            LieKind::Storage => "storage",
            LieKind::Proof => "proof",
            LieKind::Header => "header",
            LieKind::Tx => "tx",
            LieKind::Receipt => "receipt",
            LieKind::LogData => "log-data",
            LieKind::LogOmit => "log-omit",
            LieKind::Call => "call",
        }
    }

    /// The kind named `name` in a fault spec.
    pub fn from_name(name: &str) -> Option<LieKind> {
        LieKind::ALL.into_iter().find(|k| k.name() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of [`LieKind`]s; `Copy`, so a fault stays cheap to pass around and compare.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct LieKinds(u16);

impl LieKinds {
    /// No lie at all.
    pub const NONE: LieKinds = LieKinds(0);
    /// Every kind (what [`Fault::Lie`] lies about).
    pub const ALL: LieKinds = LieKinds((1 << LieKind::ALL.len()) - 1);

    /// Whether `kind` is in the set.
    pub fn contains(self, kind: LieKind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// The set with `kind` added.
    #[must_use]
    pub fn with(self, kind: LieKind) -> LieKinds {
        LieKinds(self.0 | kind.bit())
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The kinds in the set, in [`LieKind::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = LieKind> {
        LieKind::ALL.into_iter().filter(move |k| self.contains(*k))
    }
}

impl From<LieKind> for LieKinds {
    fn from(kind: LieKind) -> Self {
        LieKinds::NONE.with(kind)
    }
}

impl FromIterator<LieKind> for LieKinds {
    fn from_iter<I: IntoIterator<Item = LieKind>>(iter: I) -> Self {
        iter.into_iter().fold(LieKinds::NONE, LieKinds::with)
    }
}

/// As in a fault spec: `balance,storage`.
impl std::fmt::Display for LieKinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.iter().map(LieKind::name).collect();
        f.write_str(&names.join(","))
    }
}

impl std::fmt::Debug for LieKinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LieKinds({self})")
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
    fn lie_kinds_are_a_set_with_stable_names() {
        assert_eq!(LieKinds::ALL.iter().collect::<Vec<_>>(), LieKind::ALL);
        for kind in LieKind::ALL {
            assert_eq!(LieKind::from_name(kind.name()), Some(kind));
            assert!(LieKinds::ALL.contains(kind) && !LieKinds::NONE.contains(kind));
        }
        let two: LieKinds = [LieKind::Storage, LieKind::Balance, LieKind::Storage].into_iter().collect();
        assert_eq!(two.to_string(), "balance,storage");
        assert!(!two.contains(LieKind::Nonce) && !two.is_empty() && LieKinds::NONE.is_empty());
        assert_eq!(Fault::Lie.lies(), Some(LieKinds::ALL));
        assert_eq!(Fault::LieAbout { kinds: two }.lies(), Some(two));
        assert_eq!(Fault::LieAbout { kinds: two }.name(), "lie");
        assert_eq!(Fault::Down.lies(), None);
    }

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
