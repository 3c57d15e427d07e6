//! The PostgreSQL store, for several server instances sharing one database.
//!
//! Concurrency: every operation that decides something about a refresh token (rotation, the
//! grace answer, reuse detection, revocation) is one READ COMMITTED transaction that first
//! locks the token's family row with `SELECT ... FOR UPDATE`. All changes to a family and its
//! tokens happen under that lock, so two instances presenting the same token at the same
//! moment are serialized by PostgreSQL: the second one waits, then reads the first one's
//! committed result (a fresh snapshot per statement) and applies the grace or reuse rule.
//! Locks are always taken family first, then tokens (pruning deletes families, cascading to
//! their tokens), so these transactions cannot deadlock each other; a serialization failure
//! or deadlock reported anyway is retried a few times.
//!
//! Failures to reach the database become [`Unavailable`] (HTTP 503). The pool drops the
//! connections that have closed (a stopped or restarted PostgreSQL ends them, and the driver
//! notices at once) and opens new ones as needed, so it recovers by itself once PostgreSQL is
//! back. It does not send a check query before handing a connection out (deadpool's `Fast`
//! recycling): that was one more round trip on every request.
//!
//! This module holds the pool, the error mapping and the retry rule; the schema is in
//! `schema`, the family transactions (rotation, grace, reuse, revocation) in `families` and
//! the [`Store`] methods themselves in `store_impl`.
//!
//! [`Store`]: super::Store

use std::time::Duration;

use anyhow::{Context, Result};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use super::Unavailable;

/// Connections per server instance.
const POOL_SIZE: usize = 16;
/// How long a request waits for a connection (or for a new one to be opened) before it is
/// answered 503.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts for a transaction that PostgreSQL aborted as a serialization failure or deadlock.
const ATTEMPTS: u32 = 5;

/// The PostgreSQL implementation of [`Store`]. `Debug` shows no connection details.
pub struct PgStore {
    pool: Pool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

/// Maps a driver error: lost or refused connections become [`Unavailable`]; anything else
/// (a bug, a constraint) stays an internal error. The text never contains the connection URL.
fn pg_err(e: tokio_postgres::Error) -> anyhow::Error {
    if is_connection_error(&e) {
        // With its causes (a TLS handshake says why the certificate was refused).
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        anyhow::Error::new(Unavailable(text))
    } else {
        anyhow::Error::new(e)
    }
}

fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    if let Some(code) = e.code() {
        let code = code.code();
        // 08: connection exception; 57P0x: shutting down / cannot connect now; 53300: too
        // many connections.
        return code.starts_with("08") || code.starts_with("57P") || code == "53300";
    }
    e.is_closed() || {
        let mut source = std::error::Error::source(e);
        let mut io = false;
        while let Some(s) = source {
            io |= s.is::<std::io::Error>();
            source = s.source();
        }
        io
    }
}

fn is_retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// Runs `$body` (an expression using the pooled client `$c`) and retries it on a
/// serialization failure or deadlock, with a short pause.
macro_rules! retrying {
    ($self:ident, |$c:ident| $body:expr) => {{
        let mut attempt = 1;
        loop {
            #[allow(unused_mut)]
            let mut $c = $self.client().await?;
            match $body.await {
                Err(e) if is_retryable(&e) && attempt < ATTEMPTS => {
                    tracing::debug!(attempt, "transaction aborted by PostgreSQL; retrying");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
                }
                other => break other.map_err(pg_err),
            }
        }
    }};
}

// Declared after `retrying!`, which `store_impl` uses.
mod families;
mod provider;
mod schema;
mod store_impl;
mod tls;

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/db`; TLS with
    /// `?sslmode=verify-full&sslrootcert=FILE`, see `tls`) and applies pending migrations,
    /// serialized with any other instance starting at the same time.
    pub async fn connect(url: &str) -> Result<Self> {
        let (url, tls) = tls::split_url(url)?;
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid PostgreSQL URL: {e}"))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(POOL_TIMEOUT);
        }
        // A cut network (no reset) fails the connection after 10 s of unacknowledged data
        // instead of hanging requests for the kernel's default of minutes.
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("rotafetch-server");
        }
        let recycling = || ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match tls {
            tls::Tls::Off => Manager::from_config(config, NoTls, recycling()),
            tls::Tls::Verified { roots } => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                let connector = tls::connector(roots.as_deref())?;
                Manager::from_config(config, connector, recycling())
            }
        };
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .build()
            .context("building the PostgreSQL pool")?;
        let store = PgStore { pool };
        store.migrate().await.context("PostgreSQL migrations")?;
        Ok(store)
    }

    async fn client(&self) -> Result<Object> {
        self.pool.get().await.map_err(|e| {
            let detail = match e {
                deadpool_postgres::PoolError::Backend(e) => return pg_err(e),
                other => other.to_string(),
            };
            anyhow::Error::new(Unavailable(detail))
        })
    }
}
