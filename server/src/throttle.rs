//! Sign-in throttling, pure (time passed in): failure budgets per account and per client
//! address with exponential back-off, in bounded maps; and which address a request comes
//! from.
//!
//! An attempt is checked before its password is (and checked again right before the hash
//! runs); a failure is charged to both the account and the address; a success forgets the
//! account's failures; an attempt the server could not decide (database down, too busy)
//! costs nothing. Once a key has more than its `free` failures, each further failure closes
//! it for `base`, `2 × base`, `4 × base`, … (at most `max`): attempts are refused without
//! checking the password until it opens again. The back-off doubles per *opening*, not per
//! failure: failures of attempts that were already under way when the key closed (a burst
//! sent in parallel, at most the number of hashes that run at once) land while it is closed
//! and are not counted, so one burst of wrong guesses cannot lock an account for the
//! maximum; the real user waits one step. A key's failures are forgotten `forget` after the
//! latest counted one. Unknown accounts are counted like real ones, so the answers never
//! tell a wrong user from a wrong password.

use std::net::IpAddr;
use std::num::NonZeroUsize;

use lru::LruCache;
use sha2::{Digest, Sha256};

use crate::store::Millis;

/// A failure budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Failures allowed before any back-off.
    pub free: u32,
    /// The first back-off, doubled with every further failure.
    pub base_ms: i64,
    /// The longest back-off.
    pub max_ms: i64,
    /// Failures are forgotten this long after the latest one.
    pub forget_ms: i64,
}

/// The budgets and the bound on remembered keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub account: Budget,
    pub address: Budget,
    /// Keys remembered per kind (least recently seen forgotten first).
    pub capacity: usize,
}

impl Default for Limits {
    /// 5 failures per account, then 1 s, 2 s, … up to 15 min (Keycloak's brute-force
    /// detection waits 1 min, at most 15 min); 20 per address (one address guessing many
    /// accounts), then the same back-off; forgotten an hour after the latest failure;
    /// 100 000 keys of each kind (about 10 MB at most).
    fn default() -> Self {
        let budget = |free| Budget {
            free,
            base_ms: 1_000,
            max_ms: 15 * 60 * 1000,
            forget_ms: 3600 * 1000,
        };
        Limits {
            account: budget(5),
            address: budget(20),
            capacity: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    /// Failures counted.
    count: u32,
    /// When the latest counted failure happened.
    last: Millis,
    /// Closed until then (a time in the past: open).
    closed_until: Millis,
}

impl Budget {
    /// `f` after a failure at `now`: not counted while closed; past `free`, it closes the key
    /// for the next back-off step.
    fn failed(&self, f: Option<Failures>, now: Millis) -> Failures {
        let f = f.unwrap_or(Failures {
            count: 0,
            last: now,
            closed_until: Millis::MIN,
        });
        if now < f.closed_until {
            return f;
        }
        let count = f.count.saturating_add(1);
        let closed_until = match count.checked_sub(self.free).filter(|n| *n > 0) {
            Some(step) => {
                let wait = self.base_ms.saturating_mul(1i64 << (step - 1).min(40));
                now.saturating_add(wait.min(self.max_ms))
            }
            None => Millis::MIN,
        };
        Failures {
            count,
            last: now,
            closed_until,
        }
    }

    fn forgotten(&self, f: &Failures, now: Millis) -> bool {
        now.saturating_sub(f.last) >= self.forget_ms
    }
}

/// The address key: an IPv4 address, or the /64 an IPv6 address is in (one host usually
/// has a whole /64).
pub(crate) fn address_key(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(u32::from(v4)),
            None => u128::from(v6) & !((1u128 << 64) - 1) | (1 << 32),
        },
    }
}

/// The account key: 16 bytes of SHA-256 of the name (bounded, whatever its length).
fn account_key(account: &str) -> [u8; 16] {
    let mut key = [0; 16];
    key.copy_from_slice(&Sha256::digest(account.as_bytes())[..16]);
    key
}

/// An admitted attempt, to settle with [`LoginThrottle::settle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    account: [u8; 16],
    address: u128,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Right password: the account's failures are forgotten.
    Success,
    /// Wrong user or wrong password: charged to the account and the address.
    Failure,
    /// Not decided (store unavailable, server busy): costs nothing.
    Undecided,
}

/// A refused attempt: retry after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after_secs: u64,
}

/// Failures and back-off per key, for one [`Budget`], remembering at most `capacity` keys
/// (the least recently seen forgotten first).
#[derive(Debug)]
pub struct Backoff<K: std::hash::Hash + Eq> {
    budget: Budget,
    map: LruCache<K, Failures>,
}

impl<K: std::hash::Hash + Eq> Backoff<K> {
    pub fn new(budget: Budget, capacity: usize) -> Self {
        let cap = NonZeroUsize::new(capacity.max(1)).expect("at least 1");
        Backoff {
            budget,
            map: LruCache::new(cap),
        }
    }

    /// The live failures of `key` (forgotten ones dropped).
    fn live(&mut self, key: &K, now: Millis) -> Option<Failures> {
        let f = *self.map.get(key)?;
        if self.budget.forgotten(&f, now) {
            self.map.pop(key);
            return None;
        }
        Some(f)
    }

    /// Until when `key` backs off, if it does at `now`.
    pub fn blocked_until(&mut self, key: &K, now: Millis) -> Option<Millis> {
        let f = self.live(key, now)?;
        Some(f.closed_until).filter(|until| *until > now)
    }

    /// Charges a failure to `key` (not counted while it is closed).
    pub fn fail(&mut self, key: K, now: Millis) {
        let prior = self.live(&key, now);
        let f = self.budget.failed(prior, now);
        self.map.put(key, f);
    }

    /// Forgets `key`'s failures.
    pub fn forget(&mut self, key: &K) {
        self.map.pop(key);
    }

    /// Keys remembered.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// `Err(Throttled)` while `until` (the latest of the back-offs that apply) is after `now`.
fn verdict(until: Option<Millis>, now: Millis) -> Result<(), Throttled> {
    match until.filter(|u| *u > now) {
        Some(until) => {
            let ms = u64::try_from(until - now).unwrap_or(0);
            Err(Throttled {
                retry_after_secs: ms.div_ceil(1000),
            })
        }
        None => Ok(()),
    }
}

/// The sign-in throttle: an account budget and an address budget. Memory is bounded by
/// [`Limits::capacity`].
#[derive(Debug)]
pub struct LoginThrottle {
    accounts: Backoff<[u8; 16]>,
    addresses: Backoff<u128>,
}

impl LoginThrottle {
    pub fn new(limits: Limits) -> Self {
        LoginThrottle {
            accounts: Backoff::new(limits.account, limits.capacity),
            addresses: Backoff::new(limits.address, limits.capacity),
        }
    }

    /// Admits an attempt at `account` from `addr`, or refuses it while either backs off.
    pub fn check(&mut self, account: &str, addr: IpAddr, now: Millis) -> Result<Ticket, Throttled> {
        let ticket = Ticket {
            account: account_key(account),
            address: address_key(addr),
        };
        let until = [
            self.accounts.blocked_until(&ticket.account, now),
            self.addresses.blocked_until(&ticket.address, now),
        ];
        verdict(until.into_iter().flatten().max(), now).map(|()| ticket)
    }

    /// Settles an admitted attempt that ended at `now`.
    pub fn settle(&mut self, ticket: Ticket, outcome: Outcome, now: Millis) {
        match outcome {
            Outcome::Failure => {
                self.accounts.fail(ticket.account, now);
                self.addresses.fail(ticket.address, now);
            }
            Outcome::Success => self.accounts.forget(&ticket.account),
            Outcome::Undecided => {}
        }
    }

    /// Remembered keys: (accounts, addresses).
    pub fn len(&self) -> (usize, usize) {
        (self.accounts.len(), self.addresses.len())
    }

    /// True if nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }
}

/// Per-address budget of DPoP proofs that did not check out (invalid, replayed, or with a
/// credential that failed): a flood of made-up proofs from one address is refused before
/// its signatures are verified or the store is asked.
#[derive(Debug)]
pub struct ProofThrottle(Backoff<u128>);

impl ProofThrottle {
    /// 50 failed proofs per address, then 1 s, doubling, at most 60 s; forgotten a minute
    /// after the latest.
    pub const DEFAULT: Budget = Budget {
        free: 50,
        base_ms: 1_000,
        max_ms: 60_000,
        forget_ms: 60_000,
    };

    pub fn new(budget: Budget, capacity: usize) -> Self {
        ProofThrottle(Backoff::new(budget, capacity))
    }

    /// Whether a proof from `addr` may be looked at now.
    pub fn check(&mut self, addr: IpAddr, now: Millis) -> Result<(), Throttled> {
        verdict(self.0.blocked_until(&address_key(addr), now), now)
    }

    /// A proof from `addr` did not check out.
    pub fn fail(&mut self, addr: IpAddr, now: Millis) {
        self.0.fail(address_key(addr), now);
    }

    /// Addresses remembered.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The client's address: the connection's peer, or, when the peer is one of `trusted`
/// proxies, the right-most address of `X-Forwarded-For` (`forwarded`) that is not a trusted
/// proxy (the left-most ones are whatever the client claimed).
pub fn client_addr(peer: IpAddr, forwarded: Option<&str>, trusted: &[IpAddr]) -> IpAddr {
    let canonical = |a: IpAddr| a.to_canonical();
    if !trusted.contains(&canonical(peer)) {
        return peer;
    }
    let Some(list) = forwarded else {
        return peer;
    };
    let mut last = peer;
    for hop in list.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(a) if trusted.contains(&canonical(a)) => last = a,
            Ok(a) => return a,
            Err(_) => return last,
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    fn limits() -> Limits {
        let budget = |free| Budget {
            free,
            base_ms: 1_000,
            max_ms: 8_000,
            forget_ms: 60_000,
        };
        Limits {
            account: budget(3),
            address: budget(6),
            capacity: 100,
        }
    }

    fn fail(t: &mut LoginThrottle, account: &str, addr: IpAddr, now: Millis) -> Result<(), u64> {
        let ticket = t
            .check(account, addr, now)
            .map_err(|e| e.retry_after_secs)?;
        t.settle(ticket, Outcome::Failure, now);
        Ok(())
    }

    #[test]
    fn an_account_backs_off_exponentially_after_its_free_failures() {
        let mut t = LoginThrottle::new(limits());
        for _ in 0..3 {
            fail(&mut t, "alice", A, 0).unwrap();
        }
        // The 4th failure (1 over) blocks for 1 s, the 5th for 2 s, then 4, 8, 8 (max).
        let mut now = 0;
        for wait in [1_000, 2_000, 4_000, 8_000, 8_000] {
            fail(&mut t, "alice", A, now).unwrap();
            assert_eq!(fail(&mut t, "alice", A, now + wait - 1), Err(1));
            // Another address is held back too: the budget is the account's.
            assert!(fail(&mut t, "alice", B, now + wait - 1).is_err());
            now += wait;
        }
        // Other accounts are unaffected (until the address's own budget runs out).
        fail(&mut t, "bob", B, 0).unwrap();
        // Forgotten a minute after the latest failure.
        fail(&mut t, "alice", A, now).unwrap();
        fail(&mut t, "alice", B, now + 60_000).unwrap();
        assert!(t.check("alice", A, now + 60_000).is_ok());
    }

    #[test]
    fn an_address_guessing_many_accounts_backs_off_and_unknown_users_count_alike() {
        let mut t = LoginThrottle::new(limits());
        for i in 0..6 {
            fail(&mut t, &format!("user{i}"), A, 0).unwrap();
        }
        fail(&mut t, "user6", A, 0).unwrap();
        assert_eq!(fail(&mut t, "user7", A, 500), Err(1));
        fail(&mut t, "user7", B, 500).unwrap();
        // A real and a made-up name get exactly the same treatment: the throttle never
        // asks whether the account exists.
        let mut t = LoginThrottle::new(limits());
        for (name, addr) in [("real", A), ("made-up", B)] {
            for _ in 0..4 {
                fail(&mut t, name, addr, 0).unwrap();
            }
            assert_eq!(fail(&mut t, name, addr, 999), Err(1));
        }
    }

    #[test]
    fn success_forgets_the_account_and_undecided_attempts_cost_nothing() {
        let mut t = LoginThrottle::new(limits());
        for _ in 0..3 {
            fail(&mut t, "alice", A, 0).unwrap();
        }
        let ticket = t.check("alice", A, 0).unwrap();
        t.settle(ticket, Outcome::Success, 0);
        for _ in 0..4 {
            fail(&mut t, "alice", A, 0).unwrap();
        }
        assert!(
            fail(&mut t, "alice", A, 0).is_err(),
            "back-off after 3 + 1 more"
        );
        // Ten undecided attempts (the database was down) cost nothing; neither do checks or
        // parallel successes (many tabs signing in to one account at once).
        let mut t = LoginThrottle::new(limits());
        let tickets: Vec<_> = (0..10).map(|_| t.check("carol", A, 0).unwrap()).collect();
        for ticket in tickets {
            t.settle(ticket, Outcome::Undecided, 0);
        }
        let tickets: Vec<_> = (0..10).map(|_| t.check("carol", A, 0).unwrap()).collect();
        for ticket in tickets {
            t.settle(ticket, Outcome::Success, 0);
        }
        assert!(t.is_empty());
    }

    #[test]
    fn a_burst_of_parallel_failures_closes_an_account_for_one_step_only() {
        let mut t = LoginThrottle::new(limits());
        // 16 guesses admitted at once (before any failed), then all fail together.
        let tickets: Vec<_> = (0..16).map(|_| t.check("alice", A, 0).unwrap()).collect();
        for ticket in tickets {
            t.settle(ticket, Outcome::Failure, 10);
        }
        // 3 free + 1 that closes it for 1 s; the 12 that landed while closed are not counted.
        assert_eq!(t.check("alice", B, 1_009).unwrap_err().retry_after_secs, 1);
        assert!(
            t.check("alice", B, 1_010).is_ok(),
            "the real user waits one step"
        );
        // The next failure doubles the back-off (2 s), the one after 4 s.
        fail(&mut t, "alice", B, 1_010).unwrap();
        assert_eq!(fail(&mut t, "alice", B, 3_009), Err(1));
        fail(&mut t, "alice", B, 3_010).unwrap();
        assert_eq!(fail(&mut t, "alice", B, 7_009), Err(1));
    }

    #[test]
    fn memory_is_bounded_by_the_capacity() {
        let mut t = LoginThrottle::new(limits());
        for i in 0..1_000u32 {
            let addr = IpAddr::V4(std::net::Ipv4Addr::from(i));
            fail(&mut t, &format!("user{i}"), addr, 0).unwrap();
        }
        assert_eq!(t.len(), (100, 100));
    }

    #[test]
    fn ipv6_addresses_are_throttled_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(address_key(mapped), address_key(A));
        assert_ne!(address_key("::a00:1".parse().unwrap()), address_key(A));
    }

    #[test]
    fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
        let proxy: IpAddr = "10.9.9.9".parse().unwrap();
        let trusted = [proxy];
        let xff = Some("6.6.6.6, 1.2.3.4");
        assert_eq!(
            client_addr(A, xff, &trusted),
            A,
            "an untrusted peer's header is ignored"
        );
        assert_eq!(
            client_addr(proxy, xff, &trusted),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_addr(proxy, Some("1.2.3.4, 10.9.9.9"), &trusted),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_addr(proxy, None, &trusted), proxy);
        assert_eq!(client_addr(proxy, Some("junk, 10.9.9.9"), &trusted), proxy);
    }
}
