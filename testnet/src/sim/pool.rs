//! The transactions a simulated backend has accepted, for geth's `already known` answer.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use super::chain::Hash32;

/// How many transaction hashes a pool remembers; the oldest are forgotten first.
pub const TXPOOL_CAPACITY: usize = 65_536;

/// Hashes of raw transactions accepted by `eth_sendRawTransaction`.
///
/// Each backend gets its own pool by default. Give several backends clones of one pool
/// ([`SimConfig::txpool`](super::SimConfig::txpool)) to model instant gossip: a transaction sent
/// to one is then `already known` to all. Bounded by [`TXPOOL_CAPACITY`].
#[derive(Clone, Debug, Default)]
pub struct SimTxPool {
    inner: Arc<Mutex<PoolInner>>,
}

#[derive(Debug, Default)]
struct PoolInner {
    known: HashSet<Hash32>,
    order: VecDeque<Hash32>,
}

impl SimTxPool {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of remembered transactions.
    pub fn len(&self) -> usize {
        self.lock().known.len()
    }

    /// Whether no transaction is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the transaction with this hash was accepted (and not yet forgotten).
    pub fn contains(&self, hash: &Hash32) -> bool {
        self.lock().known.contains(hash)
    }

    /// Remembers `hash`; false if it was already known.
    pub(crate) fn insert(&self, hash: Hash32) -> bool {
        let mut inner = self.lock();
        if !inner.known.insert(hash) {
            return false;
        }
        inner.order.push_back(hash);
        while inner.order.len() > TXPOOL_CAPACITY {
            if let Some(old) = inner.order.pop_front() {
                inner.known.remove(&old);
            }
        }
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolInner> {
        // The critical sections cannot panic half-way; a poisoned lock still holds a valid set.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_and_forgets_oldest() {
        let pool = SimTxPool::new();
        assert!(pool.insert([1; 32]));
        assert!(!pool.insert([1; 32]));
        assert!(pool.contains(&[1; 32]));
        for i in 0..TXPOOL_CAPACITY {
            let mut h = [0u8; 32];
            h[..8].copy_from_slice(&(i as u64).to_be_bytes());
            h[31] = 2;
            pool.insert(h);
        }
        assert_eq!(pool.len(), TXPOOL_CAPACITY);
        assert!(!pool.contains(&[1; 32]));
    }
}
