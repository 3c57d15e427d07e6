//! Connections per client address: at most `cap` open at once from one address (an IPv6
//! client's /64 counts as one, as in [`crate::throttle`]), so that one host cannot take the
//! whole connection bound (`--max-connections`) for itself, and a throttled client cannot
//! widen its way past the held 429s by opening more connections. Trusted proxies are not
//! counted (every client behind them shares their address). Pure: no sockets, no time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::throttle::address_key;

/// Open connections per address, bounded by `cap` (0: no bound).
#[derive(Debug)]
pub struct PerAddress {
    cap: u32,
    exempt: Arc<[IpAddr]>,
    open: Arc<Mutex<HashMap<u128, u32>>>,
}

/// One counted connection: gives its place back when dropped.
#[derive(Debug)]
pub struct Place {
    key: Option<u128>,
    open: Arc<Mutex<HashMap<u128, u32>>>,
}

impl PerAddress {
    pub fn new(cap: usize, exempt: &[IpAddr]) -> Self {
        PerAddress {
            cap: u32::try_from(cap).unwrap_or(u32::MAX),
            exempt: exempt.iter().map(|a| a.to_canonical()).collect(),
            open: Arc::default(),
        }
    }

    /// A place for one more connection from `addr`, or `None` when the address has `cap`
    /// open already.
    pub fn admit(&self, addr: IpAddr) -> Option<Place> {
        let place = |key| Place {
            key,
            open: self.open.clone(),
        };
        if self.cap == 0 || self.exempt.contains(&addr.to_canonical()) {
            return Some(place(None));
        }
        let key = address_key(addr);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(place(Some(key)))
    }

    /// Addresses with a connection open.
    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_gets_cap_places_and_each_drop_gives_one_back() {
        let p = PerAddress::new(2, &[]);
        let a = p.admit(ip("192.0.2.1")).unwrap();
        let b = p.admit(ip("192.0.2.1")).unwrap();
        assert!(p.admit(ip("192.0.2.1")).is_none(), "at the cap");
        assert!(
            p.admit(ip("192.0.2.2")).is_some(),
            "another address has its own"
        );
        drop(a);
        let c = p.admit(ip("192.0.2.1")).expect("a place came back");
        drop((b, c));
        assert_eq!(p.addresses(), 0, "nothing kept once all are closed");
    }

    #[test]
    fn an_ipv6_host_counts_as_its_64_and_mapped_ipv4_as_ipv4() {
        let p = PerAddress::new(1, &[]);
        let _a = p.admit(ip("2001:db8:1:2::1")).unwrap();
        assert!(p.admit(ip("2001:db8:1:2::ffff")).is_none(), "same /64");
        assert!(p.admit(ip("2001:db8:1:3::1")).is_some(), "another /64");
        let _v4 = p.admit(ip("192.0.2.9")).unwrap();
        assert!(p.admit(ip("::ffff:192.0.2.9")).is_none(), "the same host");
    }

    #[test]
    fn trusted_proxies_and_a_zero_cap_are_not_counted() {
        let p = PerAddress::new(1, &[ip("10.0.0.1")]);
        let held: Vec<_> = (0..5).map(|_| p.admit(ip("10.0.0.1")).unwrap()).collect();
        assert_eq!(p.addresses(), 0);
        drop(held);
        let off = PerAddress::new(0, &[]);
        let held: Vec<_> = (0..5)
            .map(|_| off.admit(ip("192.0.2.1")).unwrap())
            .collect();
        assert_eq!((held.len(), off.addresses()), (5, 0));
    }
}
