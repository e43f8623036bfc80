//! Open connections per client address (IPv6: per /64, the block one host usually holds), so
//! that one host cannot fill the server's connection cap by itself.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::gateway::quota::client_block;

/// Counts of open connections by address, within a limit.
#[derive(Debug, Clone)]
pub struct AddressCap {
    limit: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// An address already holds as many connections as it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressFull;

/// One connection's place under its address's limit, given back when dropped.
#[derive(Debug)]
pub struct AddressGuard {
    address: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl AddressCap {
    /// At most `limit` connections per address; 0: no limit.
    pub fn new(limit: usize) -> Self {
        Self { limit, open: Arc::default() }
    }

    /// A place for a connection from `ip`: `Ok(None)` without a limit, `Err` when the
    /// address has `limit` open already.
    pub fn admit(&self, ip: IpAddr) -> Result<Option<AddressGuard>, AddressFull> {
        if self.limit == 0 {
            return Ok(None);
        }
        let address = client_block(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(address).or_insert(0);
        if *n >= self.limit {
            return Err(AddressFull);
        }
        *n += 1;
        Ok(Some(AddressGuard { address, open: self.open.clone() }))
    }

    /// Addresses with a connection open (memory is one entry per such address).
    pub fn addresses(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for AddressGuard {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_limit_and_places_come_back() {
        let cap = AddressCap::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let (g1, g2) = (cap.admit(a).unwrap(), cap.admit(a).unwrap());
        assert!(cap.admit(a).is_err());
        assert!(cap.admit(b).unwrap().is_some(), "another address is not affected");
        drop(g1);
        let g3 = cap.admit(a).unwrap();
        drop((g2, g3));
        assert_eq!(cap.addresses(), 0, "no entry is kept for an address without connections");
    }

    #[test]
    fn ipv6_is_counted_per_64_and_zero_means_no_limit() {
        let cap = AddressCap::new(1);
        let _g = cap.admit("2001:db8::1".parse().unwrap()).unwrap();
        assert!(cap.admit("2001:db8::2".parse().unwrap()).is_err(), "same /64");
        assert!(cap.admit("2001:db8:0:1::1".parse().unwrap()).unwrap().is_some());
        assert!(AddressCap::new(0).admit("10.0.0.1".parse().unwrap()).unwrap().is_none());
    }
}
