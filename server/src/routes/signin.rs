//! Checking a username and password: the one entry point for every sign-in surface
//! (`POST /auth/login` today; an OpenID provider's sign-in form calls the same
//! [`AppState::check_password`]). Attempts are throttled per account and per client address
//! ([`crate::throttle`]) before any password is hashed, and concurrent argon2 hashes are
//! bounded by memory and by the cores ([`HashGate`], [`hash_slots`]) and run on their own
//! threads. Every refusal reads the same for a wrong user and a wrong password.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Semaphore;

use super::*;
use crate::store::User;
use crate::throttle::{LoginThrottle, Outcome, Ticket};

/// Memory one argon2id hash takes with the default parameters (m = 19 MiB, OWASP's).
pub const HASH_MEMORY_MIB: u64 = 19;

/// The default for `--hash-threads`: one core fewer than `cores`, at least one. An argon2
/// hash keeps a core busy for tens of milliseconds; leaving a core free keeps refreshes and
/// API calls answered at their usual pace while sign-ins (or a guessing flood) queue.
pub fn default_hash_threads(cores: usize) -> usize {
    cores.saturating_sub(1).max(1)
}

/// The number of password hashes that may run at once: the memory budget in 19 MiB slots,
/// at most `threads` (the CPU bound), at least one.
pub fn hash_slots(memory_mib: u64, threads: usize) -> usize {
    let by_memory = usize::try_from(memory_mib / HASH_MEMORY_MIB).unwrap_or(usize::MAX);
    by_memory.min(threads).max(1)
}

/// [`default_hash_threads`] of this machine's available parallelism.
pub fn default_hash_threads_here() -> usize {
    default_hash_threads(std::thread::available_parallelism().map_or(1, |n| n.get()))
}

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

/// Bounds the password hashes running at once: `permits` slots ([`hash_slots`]); a hash
/// waits at most `wait` for a slot, else the sign-in is answered 503. Hashes run on `permits`
/// threads of their own (never on tokio's blocking pool, which the SQLite store uses), so a
/// flood of sign-ins takes at most those cores and never delays a refresh's SQL.
#[derive(Debug)]
pub struct HashGate {
    slots: Semaphore,
    pool: HashPool,
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
    /// A gate for `memory_mib` of hash memory and at most `threads` hashes at once (at least
    /// one slot).
    pub fn new(memory_mib: u64, threads: usize, wait: Duration) -> Self {
        let permits = hash_slots(memory_mib, threads);
        HashGate {
            slots: Semaphore::new(permits),
            pool: HashPool::new(permits),
            permits,
            wait,
            in_flight: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            waited: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            hashed: AtomicU64::new(0),
        }
    }

    /// Runs `f` (a password hash) on the gate's threads once a slot is free, if `admit` (run
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
        let out = self.pool.run(f).await;
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        drop(permit);
        out
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

type Job = Box<dyn FnOnce() + Send>;

/// `n` threads named `password-hash` that run the jobs sent to them; they end when the pool
/// is dropped. The gate's semaphore keeps at most `n` jobs in flight, so none waits here.
#[derive(Debug)]
struct HashPool {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl HashPool {
    fn new(n: usize) -> Self {
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for _ in 0..n {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name("password-hash".into())
                .spawn(move || loop {
                    // The lock is held only while taking a job, not while running it.
                    let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => break,
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("cannot start a password-hash thread: {e}");
            }
        }
        HashPool { jobs }
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, SignInError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // Caught so that a panicking hash answers 500 and the thread keeps serving.
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(out);
        });
        self.jobs
            .send(job)
            .map_err(|_| SignInError::Internal("no password-hash thread".into()))?;
        match rx.await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(_)) => Err(SignInError::Internal("password hash panicked".into())),
            Err(_) => Err(SignInError::Internal("no password-hash thread".into())),
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
            8,
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
        assert_eq!(HashGate::new(0, 8, Duration::ZERO).stats().permits, 1);
        assert_eq!(HashGate::new(256, 0, Duration::ZERO).stats().permits, 1);
    }

    #[test]
    fn hashes_are_bounded_by_memory_and_by_the_cores() {
        // Memory alone: 256 MiB / 19 MiB = 13.
        assert_eq!(hash_slots(256, 64), 13);
        // The cores bound it below that; never zero.
        assert_eq!(hash_slots(256, 1), 1);
        assert_eq!(hash_slots(256, 0), 1);
        assert_eq!(hash_slots(18, 4), 1);
        assert_eq!(hash_slots(u64::MAX, 7), 7);
        // One core left for everything else, at least one hash.
        assert_eq!(
            [1, 2, 4, 16].map(default_hash_threads),
            [1, 1, 3, 15],
            "cores 1, 2, 4, 16"
        );
        assert_eq!(default_hash_threads(0), 1);
        assert!(default_hash_threads_here() >= 1);
    }

    #[tokio::test]
    async fn a_panicking_hash_is_an_internal_error_and_the_thread_lives_on() {
        let gate = HashGate::new(HASH_MEMORY_MIB, 1, Duration::from_secs(5));
        let out = gate.run(|| Ok(()), || -> u8 { panic!("boom") }).await;
        assert!(matches!(out, Err(SignInError::Internal(_))));
        assert_eq!(gate.run(|| Ok(()), || 9).await.unwrap(), 9);
        let name = gate
            .run(
                || Ok(()),
                || std::thread::current().name().map(str::to_owned),
            )
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("password-hash"));
    }
}
