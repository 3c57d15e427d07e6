//! Checking a username and password: the one entry point for every sign-in surface
//! (`POST /auth/login` today; an OpenID provider's sign-in form calls the same
//! [`AppState::check_password`]). Attempts are throttled per account and per client address
//! ([`crate::throttle`]) before any password is hashed, and concurrent argon2 hashes are
//! bounded by a semaphore sized to memory ([`HashGate`]). Every refusal reads the same for
//! a wrong user and a wrong password.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Semaphore;

use super::*;
use crate::store::User;
use crate::throttle::{LoginThrottle, Outcome, Ticket};

/// Memory one argon2id hash takes with the default parameters (m = 19 MiB, OWASP's).
pub const HASH_MEMORY_MIB: u64 = 19;

/// Why a sign-in was refused.
#[derive(Debug)]
pub enum SignInError {
    /// Unknown user or wrong password (never says which).
    InvalidCredentials,
    /// The account or the address is backing off: retry after this many seconds.
    Throttled { retry_after_secs: u64 },
    /// Every password-hash slot stayed busy for the whole wait: retry shortly.
    Busy,
    /// The store failed (unavailable: 503; else 500).
    Store(anyhow::Error),
    /// Anything else that went wrong on the server.
    Internal(String),
}

impl From<SignInError> for ApiError {
    /// The JSON answers: 401 `invalid_credentials`, 429 or 503 `temporarily_unavailable`
    /// with `Retry-After`.
    fn from(e: SignInError) -> ApiError {
        match e {
            SignInError::InvalidCredentials => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "invalid username or password",
            ),
            SignInError::Throttled { retry_after_secs } => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                format!("too many failed sign-in attempts; retry in {retry_after_secs} s"),
            )
            .retry_after(retry_after_secs),
            SignInError::Busy => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "too many sign-ins at once; retry shortly",
            )
            .retry_after(1),
            SignInError::Store(e) => ApiError::store(e),
            SignInError::Internal(e) => ApiError::internal(e),
        }
    }
}

/// Bounds the password hashes running at once: `permits` slots (the memory budget divided by
/// [`HASH_MEMORY_MIB`]); a hash waits at most `wait` for a slot, else the sign-in is answered
/// 503. Hashes run on the blocking pool, which the SQLite store shares: the bound keeps a
/// flood of logins from starving refreshes and API calls.
#[derive(Debug)]
pub struct HashGate {
    slots: Semaphore,
    permits: usize,
    wait: Duration,
    in_flight: AtomicU64,
    peak: AtomicU64,
    waited: AtomicU64,
    refused: AtomicU64,
    hashed: AtomicU64,
}

/// The gate's counters (for `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GateStats {
    pub permits: u64,
    pub in_flight: u64,
    /// The most hashes that ever ran at once.
    pub peak: u64,
    /// Hashes that had to wait for a slot.
    pub waited: u64,
    /// Sign-ins refused (503) because no slot came free in time.
    pub refused: u64,
    /// Hashes computed.
    pub hashed: u64,
}

impl HashGate {
    /// A gate for `memory_mib` of hash memory (at least one slot).
    pub fn new(memory_mib: u64, wait: Duration) -> Self {
        let permits = usize::try_from((memory_mib / HASH_MEMORY_MIB).max(1)).unwrap_or(1);
        HashGate {
            slots: Semaphore::new(permits),
            permits,
            wait,
            in_flight: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            waited: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            hashed: AtomicU64::new(0),
        }
    }

    /// Runs `f` (a password hash) on the blocking pool once a slot is free, if `admit` (run
    /// once the slot is held) agrees.
    pub async fn run<T: Send + 'static>(
        &self,
        admit: impl FnOnce() -> Result<(), SignInError>,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, SignInError> {
        let permit = match self.slots.try_acquire() {
            Ok(p) => p,
            Err(_) => {
                inc(&self.waited);
                match tokio::time::timeout(self.wait, self.slots.acquire()).await {
                    Ok(Ok(p)) => p,
                    _ => {
                        inc(&self.refused);
                        return Err(SignInError::Busy);
                    }
                }
            }
        };
        admit()?;
        inc(&self.hashed);
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
        let out = tokio::task::spawn_blocking(f).await;
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        drop(permit);
        out.map_err(|e| SignInError::Internal(e.to_string()))
    }

    pub fn stats(&self) -> GateStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        GateStats {
            permits: self.permits as u64,
            in_flight: g(&self.in_flight),
            peak: g(&self.peak),
            waited: g(&self.waited),
            refused: g(&self.refused),
            hashed: g(&self.hashed),
        }
    }
}

impl AppState {
    fn throttle(&self) -> std::sync::MutexGuard<'_, LoginThrottle> {
        self.0.throttle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks `username` and `password` for a sign-in from `client`: the user, or why not.
    /// Throttled per account and address (checked before waiting for a hash slot and again
    /// once it holds one), the hash bounded by the gate; an unknown user costs the same hash
    /// as a wrong password. Counted in `/metrics`.
    pub async fn check_password(
        &self,
        username: &str,
        password: &str,
        client: IpAddr,
    ) -> Result<User, SignInError> {
        let m = &self.0.metrics;
        let checked = match self.admit(username, client) {
            Ok(ticket) => {
                let checked = self.verify(username, password, client).await;
                let outcome = match &checked {
                    Ok(_) => Outcome::Success,
                    Err(SignInError::InvalidCredentials) => Outcome::Failure,
                    Err(_) => Outcome::Undecided,
                };
                self.throttle().settle(ticket, outcome, now_ms());
                checked
            }
            Err(e) => Err(e),
        };
        match &checked {
            Ok(_) => inc(&m.logins_success),
            Err(SignInError::InvalidCredentials) => {
                inc(&m.logins_invalid_credentials);
                tracing::info!("sign-in failed: invalid credentials");
            }
            Err(SignInError::Throttled { retry_after_secs }) => {
                inc(&m.logins_throttled);
                tracing::info!(
                    retry_after = retry_after_secs,
                    "sign-in refused: backing off"
                );
            }
            Err(SignInError::Busy) => inc(&m.logins_busy),
            Err(_) => {}
        }
        checked
    }

    fn admit(&self, username: &str, client: IpAddr) -> Result<Ticket, SignInError> {
        self.throttle()
            .check(username, client, now_ms())
            .map_err(|t| SignInError::Throttled {
                retry_after_secs: t.retry_after_secs,
            })
    }

    async fn verify(
        &self,
        username: &str,
        password: &str,
        client: IpAddr,
    ) -> Result<User, SignInError> {
        let user = self
            .0
            .store
            .user_by_name(username)
            .await
            .map_err(SignInError::Store)?;
        let (st, password) = (self.clone(), password.to_owned());
        // Checked again with the slot held: guesses that waited see the failures recorded
        // meanwhile.
        let admit = || self.admit(username, client).map(drop);
        let user = self
            .0
            .hash_gate
            .run(admit, move || {
                let hash = user.as_ref().map_or(&st.0.dummy_hash, |u| &u.password_hash);
                let ok = verify_password(&password, hash);
                user.filter(|_| ok)
            })
            .await?;
        user.ok_or(SignInError::InvalidCredentials)
    }

    /// The gate's counters and the throttle's remembered keys, for `/metrics`.
    pub(super) fn signin_stats(&self) -> (GateStats, (usize, usize)) {
        (self.0.hash_gate.stats(), self.throttle().len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_gate_bounds_hashes_and_refuses_after_the_wait() {
        let gate = std::sync::Arc::new(HashGate::new(
            2 * HASH_MEMORY_MIB,
            Duration::from_millis(50),
        ));
        assert_eq!(gate.stats().permits, 2);
        // Two slow hashes hold both slots; a third waits 50 ms, then is refused.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let mut held = Vec::new();
        for _ in 0..2 {
            let (g, rx) = (gate.clone(), rx.clone());
            held.push(tokio::spawn(async move {
                g.run(
                    || Ok(()),
                    move || {
                        let _ = rx.lock().unwrap().recv();
                    },
                )
                .await
            }));
        }
        while gate.stats().in_flight < 2 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            gate.run(|| Ok(()), || ()).await,
            Err(SignInError::Busy)
        ));
        tx.send(()).unwrap();
        tx.send(()).unwrap();
        for h in held {
            h.await.unwrap().unwrap();
        }
        assert_eq!(gate.run(|| Ok(()), || 7).await.unwrap(), 7);
        let refused = gate
            .run(|| Err(SignInError::InvalidCredentials), || 8)
            .await;
        assert!(matches!(refused, Err(SignInError::InvalidCredentials)));
        let s = gate.stats();
        assert_eq!((s.peak, s.waited, s.refused, s.in_flight), (2, 1, 1, 0));
        assert_eq!(
            gate.slots.available_permits(),
            2,
            "an admit refusal frees its slot"
        );
        assert_eq!(HashGate::new(0, Duration::ZERO).stats().permits, 1);
    }
}
