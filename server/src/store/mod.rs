//! Persistence behind a small async [`Store`] trait, with two implementations:
//!
//! * [`SqliteStore`] (`sqlite/`): one file, one connection behind a mutex, every
//!   multi-statement change in a `BEGIN IMMEDIATE` transaction, run on the blocking pool. The
//!   embedded default: one server process.
//! * [`PgStore`] (`pg/`): PostgreSQL through a connection pool; every rotation, grace answer,
//!   reuse detection and revocation is one transaction that first locks the family row
//!   (`SELECT ... FOR UPDATE`), so any number of server processes can share one database.
//!
//! Each trait method is one atomic unit of work. The rules that decide about a refresh token
//! (rotation, grace, reuse, DPoP binding, expiry) live once, in the pure [`rules`] module: a
//! store reads the rows under the family's lock, asks [`rules::decide_rotation`] and runs the
//! SQL of the answer. The store never sees a refresh token in plaintext: only SHA-256 hashes.

mod pg;
pub mod provider;
pub mod rules;
mod sqlite;

use std::fmt;
use std::sync::Arc;

use anyhow::Result;
use async_trait::async_trait;

pub use pg::PgStore;
pub use provider::ProviderStore;
pub use sqlite::{SqliteDb, SqliteStore};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// A SHA-256 hash of a refresh token.
pub type TokenHash = [u8; 32];

/// Lifetimes that govern whether a refresh token may be used, all in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Absolute lifetime of a session family, counted from login.
    pub session_ttl_ms: i64,
    /// Maximum time between two rotations of a family.
    pub idle_ttl_ms: i64,
    /// How long after its first use a spent token may still be answered with its (unused)
    /// successor. 0 disables the grace rule.
    pub reuse_grace_ms: i64,
}

/// A user row. `Debug` redacts the password hash.
#[derive(Clone)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

/// The state of a session family as seen by the API layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub family_id: String,
    pub user_id: i64,
    pub username: String,
    pub revoked: bool,
}

/// Result of presenting a refresh token to [`Store::rotate`] / [`Store::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The token was unspent; it is now spent and its successor was stored.
    Rotated { user_id: i64, family_id: String },
    /// The token was spent moments ago and its successor is still unused: answer with the
    /// same successor again (the client probably lost the first response).
    Grace { user_id: i64, family_id: String },
    /// [`Store::check`] only: the token is valid and was left untouched.
    Valid { user_id: i64, family_id: String },
    /// No such token.
    Unknown,
    /// The token's family was revoked (logout or an earlier reuse).
    Revoked,
    /// The family outlived `session_ttl` or sat idle longer than `idle_ttl`.
    Expired,
    /// A spent token was presented outside the grace rule: the family is now revoked.
    /// `newly_revoked` is false when it had already been revoked concurrently.
    Reused {
        family_id: String,
        newly_revoked: bool,
    },
    /// The family is DPoP-bound and the request carried no proof, or a proof by another key:
    /// nothing was changed (not spent, not counted as reuse, not revoked).
    DpopMismatch { family_id: String },
}

/// What [`Store::rotate_dpop`] / [`Store::check_dpop`] report: the outcome and the family's
/// DPoP binding (the key thumbprint) after the operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub outcome: RotateOutcome,
    pub jkt: Option<String>,
    /// Which of the successors passed to [`Store::rotate_dpop`] the answer carries: 0, but
    /// for a grace answer whose stored successor an older refresh key derived.
    pub successor: usize,
}

/// What [`Store::revoke_family_dpop`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// The family was live and is now revoked.
    Revoked,
    /// Unknown token or a family revoked before: nothing to do.
    Unchanged,
    /// The family is DPoP-bound and the request did not prove possession of its key.
    DpopMismatch,
}

/// What [`Store::use_dpop_jti`] / [`Store::peek_dpop_jti`] found (see
/// [`rules::jti_outcome`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JtiOutcome {
    /// First use: recorded.
    Fresh,
    /// Seen before and not yet expired: a replay.
    Replayed,
    /// The cache holds about `cap` entries already: not recorded, refuse the proof.
    Full,
}

/// Storage operations used by the server. Every method is atomic.
#[async_trait]
pub trait Store: ProviderStore + Send + Sync + 'static {
    /// A server-wide value by name (table `server_meta`): since schema 3 only bookkeeping
    /// that is not secret, such as the key registry; the keys an older version kept there
    /// are read once to move them out (see `keys::load`).
    async fn read_meta(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// Sets a server-wide value (inserted or replaced).
    async fn write_meta(&self, name: &str, value: &[u8], now: Millis) -> Result<()>;
    /// Deletes these server-wide values (absent names are ignored).
    async fn delete_meta(&self, names: &[&str]) -> Result<()>;
    async fn user_by_name(&self, username: &str) -> Result<Option<User>>;
    /// Creates a user; returns `None` if the username is taken.
    async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        now: Millis,
    ) -> Result<Option<i64>>;
    /// Starts a new (unbound) session family whose first refresh token hashes to `token`.
    async fn create_family(
        &self,
        user_id: i64,
        family_id: &str,
        token: &TokenHash,
        now: Millis,
    ) -> Result<()> {
        self.create_family_dpop(user_id, family_id, token, None, now)
            .await
    }
    /// Starts a new session family, DPoP-bound to the key thumbprint `jkt` if given.
    async fn create_family_dpop(
        &self,
        user_id: i64,
        family_id: &str,
        token: &TokenHash,
        jkt: Option<&str>,
        now: Millis,
    ) -> Result<()>;
    /// [`Store::rotate_dpop`] without a proof.
    async fn rotate(
        &self,
        presented: &TokenHash,
        successor: &TokenHash,
        now: Millis,
        policy: &Policy,
    ) -> Result<RotateOutcome> {
        Ok(self
            .rotate_dpop(
                presented,
                std::slice::from_ref(successor),
                None,
                now,
                policy,
            )
            .await?
            .outcome)
    }
    /// Spends `presented` and stores `successors[0]` as its child, or applies the grace /
    /// reuse rules if `presented` is already spent: the grace rule answers again when the
    /// stored child is any of `successors` (the successor as derived by each refresh key, the
    /// current one first; see [`Rotation::successor`]). One transaction, under the family's
    /// lock.
    ///
    /// `proof_jkt` is the thumbprint of a verified DPoP proof's key. The binding rule
    /// ([`rules::dpop_mismatch`]) is applied first: a bound family refuses a request without the
    /// right key with `DpopMismatch` and changes nothing. A rotation with a proof binds an
    /// unbound family (the successor is then a bound token).
    async fn rotate_dpop(
        &self,
        presented: &TokenHash,
        successors: &[TokenHash],
        proof_jkt: Option<&str>,
        now: Millis,
        policy: &Policy,
    ) -> Result<Rotation>;
    /// [`Store::check_dpop`] without a proof.
    async fn check(
        &self,
        presented: &TokenHash,
        now: Millis,
        policy: &Policy,
    ) -> Result<RotateOutcome> {
        Ok(self.check_dpop(presented, None, now, policy).await?.outcome)
    }
    /// Like [`Store::rotate_dpop`] but never changes anything: reports `Valid` for a usable
    /// unspent token (used by the non-rotating test fault).
    async fn check_dpop(
        &self,
        presented: &TokenHash,
        proof_jkt: Option<&str>,
        now: Millis,
        policy: &Policy,
    ) -> Result<Rotation>;
    /// Revokes the family `token` belongs to. Returns true if it was not revoked before.
    /// A DPoP-bound family is not revoked without a proof (see [`Store::revoke_family_dpop`]).
    async fn revoke_family_of(&self, token: &TokenHash, now: Millis, reason: &str) -> Result<bool> {
        Ok(self.revoke_family_dpop(token, None, now, reason).await? == RevokeOutcome::Revoked)
    }
    /// Revokes the family `token` belongs to, unless the binding rule
    /// ([`rules::dpop_mismatch`]) refuses a request whose proof (`proof_jkt`) is missing or by
    /// another key.
    async fn revoke_family_dpop(
        &self,
        token: &TokenHash,
        proof_jkt: Option<&str>,
        now: Millis,
        reason: &str,
    ) -> Result<RevokeOutcome>;
    /// Records a DPoP proof's replay key until `expires_at` unless it is already recorded
    /// and unexpired (`Replayed`) or the cache is at its bound (`Full`: the entries span
    /// `cap` entry numbers; no `COUNT`, two index look-ups). Atomic across instances sharing
    /// the database.
    async fn use_dpop_jti(
        &self,
        key: &[u8; 32],
        expires_at: Millis,
        now: Millis,
        cap: u64,
    ) -> Result<JtiOutcome>;
    /// What [`Store::use_dpop_jti`] would answer, recording nothing (`Fresh`: it would
    /// record).
    async fn peek_dpop_jti(&self, key: &[u8; 32], now: Millis, cap: u64) -> Result<JtiOutcome>;
    /// Deletes expired replay-cache entries; returns how many, and how many remain.
    async fn prune_dpop_jti(&self, now: Millis) -> Result<(usize, u64)>;
    /// Looks up a session family with its user.
    async fn session(&self, family_id: &str) -> Result<Option<Session>>;
    /// Deletes families (and their tokens) that ended more than `keep_ms` ago. Returns the
    /// number of families removed.
    async fn prune(&self, now: Millis, policy: &Policy, keep_ms: i64) -> Result<usize>;
}

/// The database could not be reached (connection refused or lost, pool exhausted, server
/// shutting down). The request may be retried; nothing was decided. The HTTP layer answers
/// 503 `temporarily_unavailable`.
#[derive(Debug)]
pub struct Unavailable(pub String);

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "database unavailable: {}", self.0)
    }
}

impl std::error::Error for Unavailable {}

/// True if `err` (or anything in its chain) is [`Unavailable`].
pub fn is_unavailable(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.is::<Unavailable>())
}

/// True for `postgres://` and `postgresql://` database URLs.
pub fn is_postgres_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// Opens the store `db` names: a PostgreSQL URL, or else a SQLite file (`":memory:"` for a
/// private in-memory database). Applies pending migrations.
pub async fn open(db: &str) -> Result<Arc<dyn Store>> {
    Ok(if is_postgres_url(db) {
        Arc::new(PgStore::connect(db).await?)
    } else {
        Arc::new(SqliteStore::open(db).await?)
    })
}

/// `db` with any password in a PostgreSQL URL replaced by `***` (for logs).
pub fn redact_db(db: &str) -> String {
    if !is_postgres_url(db) {
        return db.to_owned();
    }
    let (scheme, rest) = db.split_once("://").unwrap_or(("", db));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let redacted_tail = redact_query_password(tail);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let pw = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{pw}@{host}{redacted_tail}")
        }
        None => format!("{scheme}://{authority}{redacted_tail}"),
    }
}

fn redact_query_password(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let params: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_owned(),
        })
        .collect();
    format!("{path}?{}", params.join("&"))
}

#[cfg(test)]
mod tests {
    use super::redact_db;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_db("postgres://u:s3cret@h:5432/db?sslmode=disable"),
            "postgres://u:***@h:5432/db?sslmode=disable"
        );
        assert_eq!(redact_db("postgresql://u@h/db"), "postgresql://u@h/db");
        assert_eq!(
            redact_db("postgres://h/db?user=u&password=s3cret"),
            "postgres://h/db?user=u&password=***"
        );
        assert_eq!(redact_db("target/demo.db"), "target/demo.db");
        assert!(!redact_db("postgres://a:p@ss@h/db").contains("ss@h/db?"));
        assert!(!redact_db("postgres://a:p@ss@h/db").contains("p@"));
    }
}
