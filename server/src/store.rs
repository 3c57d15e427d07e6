//! Persistence behind a small [`Store`] trait.
//!
//! The only implementation today is [`SqliteStore`] (one connection behind a mutex, WAL mode,
//! every multi-statement change in a `BEGIN IMMEDIATE` transaction). The trait is deliberately
//! synchronous and coarse-grained — each method is one atomic unit of work — so that a
//! PostgreSQL backend (`SELECT ... FOR UPDATE` inside a transaction) can be slotted in later
//! without touching the HTTP layer.
//!
//! The store never sees a refresh token in plaintext: only SHA-256 hashes.

use std::fmt;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

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
}

/// Storage operations used by the server. Every method is atomic.
pub trait Store: Send + Sync + 'static {
    /// Returns the persisted secret called `name`, storing `candidate` first if there is none.
    fn get_or_init_secret(&self, name: &str, candidate: &[u8], now: Millis) -> Result<Vec<u8>>;
    fn user_by_name(&self, username: &str) -> Result<Option<User>>;
    /// Creates a user; returns `None` if the username is taken.
    fn create_user(&self, username: &str, password_hash: &str, now: Millis) -> Result<Option<i64>>;
    /// Starts a new session family whose first refresh token hashes to `token`.
    fn create_family(
        &self,
        user_id: i64,
        family_id: &str,
        token: &TokenHash,
        now: Millis,
    ) -> Result<()>;
    /// Spends `presented` and stores `successor` as its child, or applies the grace / reuse
    /// rules if `presented` is already spent. One transaction.
    fn rotate(
        &self,
        presented: &TokenHash,
        successor: &TokenHash,
        now: Millis,
        policy: &Policy,
    ) -> Result<RotateOutcome>;
    /// Like [`Store::rotate`] but never changes anything: reports `Valid` for a usable unspent
    /// token (used by the non-rotating test fault).
    fn check(&self, presented: &TokenHash, now: Millis, policy: &Policy) -> Result<RotateOutcome>;
    /// Revokes the family `token` belongs to. Returns true if it was not revoked before.
    fn revoke_family_of(&self, token: &TokenHash, now: Millis, reason: &str) -> Result<bool>;
    /// Looks up a session family with its user.
    fn session(&self, family_id: &str) -> Result<Option<Session>>;
    /// Deletes families (and their tokens) that ended more than `keep_ms` ago. Returns the
    /// number of families removed.
    fn prune(&self, now: Millis, policy: &Policy, keep_ms: i64) -> Result<usize>;
}

const MIGRATIONS: &[&str] = &[
    // 1: initial schema
    "CREATE TABLE users (
        id            INTEGER PRIMARY KEY,
        username      TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_at    INTEGER NOT NULL
    );
    CREATE TABLE server_secrets (
        name       TEXT PRIMARY KEY,
        value      BLOB NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE families (
        id              TEXT PRIMARY KEY,
        user_id         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at      INTEGER NOT NULL,
        last_rotated_at INTEGER NOT NULL,
        revoked_at      INTEGER,
        revoke_reason   TEXT
    );
    CREATE TABLE refresh_tokens (
        hash        BLOB PRIMARY KEY,
        family_id   TEXT NOT NULL REFERENCES families(id) ON DELETE CASCADE,
        parent_hash BLOB UNIQUE,
        issued_at   INTEGER NOT NULL,
        used_at     INTEGER
    );
    CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);",
];

/// SQLite implementation of [`Store`].
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` (`":memory:"` for a private in-memory
    /// database) and applies pending migrations.
    pub fn open(path: &str) -> Result<Self> {
        let conn = if path == ":memory:" {
            Connection::open_in_memory()?
        } else {
            Connection::open(Path::new(path)).with_context(|| format!("opening database {path}"))?
        };
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // journal_mode returns a row; in-memory databases answer "memory".
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
        let store = SqliteStore {
            conn: Mutex::new(conn),
        };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&self) -> Result<()> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let version = usize::try_from(version).unwrap_or(0);
        if version > MIGRATIONS.len() {
            anyhow::bail!(
                "database schema version {version} is newer than this server supports ({})",
                MIGRATIONS.len()
            );
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            tx.execute_batch(sql)
                .with_context(|| format!("applying migration {}", i + 1))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tracing::info!(version = i + 1, "applied database migration");
        }
        tx.commit()?;
        Ok(())
    }

    /// The schema version recorded in the database.
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .lock()
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-applied transaction behind
        // (rusqlite rolls back on drop), so a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct TokenRow {
    family_id: String,
    used_at: Option<Millis>,
}

struct FamilyRow {
    user_id: i64,
    created_at: Millis,
    last_rotated_at: Millis,
    revoked: bool,
}

fn load_token(conn: &Connection, hash: &TokenHash) -> rusqlite::Result<Option<TokenRow>> {
    conn.query_row(
        "SELECT family_id, used_at FROM refresh_tokens WHERE hash = ?1",
        params![&hash[..]],
        |r| {
            Ok(TokenRow {
                family_id: r.get(0)?,
                used_at: r.get(1)?,
            })
        },
    )
    .optional()
}

fn load_family(conn: &Connection, id: &str) -> rusqlite::Result<Option<FamilyRow>> {
    conn.query_row(
        "SELECT user_id, created_at, last_rotated_at, revoked_at IS NOT NULL
         FROM families WHERE id = ?1",
        params![id],
        |r| {
            Ok(FamilyRow {
                user_id: r.get(0)?,
                created_at: r.get(1)?,
                last_rotated_at: r.get(2)?,
                revoked: r.get(3)?,
            })
        },
    )
    .optional()
}

fn family_expired(f: &FamilyRow, now: Millis, policy: &Policy) -> bool {
    now >= f.created_at.saturating_add(policy.session_ttl_ms)
        || now >= f.last_rotated_at.saturating_add(policy.idle_ttl_ms)
}

/// The presented token and its family, if the family is still live; otherwise why not.
fn load_live(
    conn: &Connection,
    presented: &TokenHash,
    now: Millis,
    policy: &Policy,
) -> rusqlite::Result<Result<(TokenRow, FamilyRow), RotateOutcome>> {
    let Some(token) = load_token(conn, presented)? else {
        return Ok(Err(RotateOutcome::Unknown));
    };
    let Some(family) = load_family(conn, &token.family_id)? else {
        return Ok(Err(RotateOutcome::Unknown));
    };
    if family.revoked {
        return Ok(Err(RotateOutcome::Revoked));
    }
    if family_expired(&family, now, policy) {
        return Ok(Err(RotateOutcome::Expired));
    }
    Ok(Ok((token, family)))
}

fn revoke(conn: &Connection, family_id: &str, now: Millis, reason: &str) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE families SET revoked_at = ?2, revoke_reason = ?3
         WHERE id = ?1 AND revoked_at IS NULL",
        params![family_id, now, reason],
    )?;
    Ok(n > 0)
}

impl Store for SqliteStore {
    fn get_or_init_secret(&self, name: &str, candidate: &[u8], now: Millis) -> Result<Vec<u8>> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT OR IGNORE INTO server_secrets (name, value, created_at) VALUES (?1, ?2, ?3)",
            params![name, candidate, now],
        )?;
        let value: Vec<u8> = tx.query_row(
            "SELECT value FROM server_secrets WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok(value)
    }

    fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        Ok(self
            .lock()
            .query_row(
                "SELECT id, username, password_hash FROM users WHERE username = ?1",
                params![username],
                |r| {
                    Ok(User {
                        id: r.get(0)?,
                        username: r.get(1)?,
                        password_hash: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    fn create_user(&self, username: &str, password_hash: &str, now: Millis) -> Result<Option<i64>> {
        let conn = self.lock();
        let n = conn.execute(
            "INSERT OR IGNORE INTO users (username, password_hash, created_at) VALUES (?1, ?2, ?3)",
            params![username, password_hash, now],
        )?;
        Ok((n > 0).then(|| conn.last_insert_rowid()))
    }

    fn create_family(
        &self,
        user_id: i64,
        family_id: &str,
        token: &TokenHash,
        now: Millis,
    ) -> Result<()> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO families (id, user_id, created_at, last_rotated_at) VALUES (?1, ?2, ?3, ?3)",
            params![family_id, user_id, now],
        )?;
        tx.execute(
            "INSERT INTO refresh_tokens (hash, family_id, parent_hash, issued_at) VALUES (?1, ?2, NULL, ?3)",
            params![&token[..], family_id, now],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn rotate(
        &self,
        presented: &TokenHash,
        successor: &TokenHash,
        now: Millis,
        policy: &Policy,
    ) -> Result<RotateOutcome> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (token, family) = match load_live(&tx, presented, now, policy)? {
            Ok(live) => live,
            Err(outcome) => return Ok(outcome),
        };
        let outcome = match token.used_at {
            None => {
                tx.execute(
                    "UPDATE refresh_tokens SET used_at = ?2 WHERE hash = ?1",
                    params![&presented[..], now],
                )?;
                tx.execute(
                    "INSERT INTO refresh_tokens (hash, family_id, parent_hash, issued_at)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![&successor[..], token.family_id, &presented[..], now],
                )?;
                tx.execute(
                    "UPDATE families SET last_rotated_at = ?2 WHERE id = ?1",
                    params![token.family_id, now],
                )?;
                RotateOutcome::Rotated {
                    user_id: family.user_id,
                    family_id: token.family_id,
                }
            }
            Some(used_at) => {
                let child: Option<(Vec<u8>, Option<Millis>)> = tx
                    .query_row(
                        "SELECT hash, used_at FROM refresh_tokens WHERE parent_hash = ?1",
                        params![&presented[..]],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                let within_window = policy.reuse_grace_ms > 0
                    && now >= used_at
                    && now - used_at <= policy.reuse_grace_ms;
                let child_unused =
                    matches!(&child, Some((hash, None)) if hash.as_slice() == &successor[..]);
                if within_window && child_unused {
                    RotateOutcome::Grace {
                        user_id: family.user_id,
                        family_id: token.family_id,
                    }
                } else {
                    let newly_revoked = revoke(&tx, &token.family_id, now, "reuse")?;
                    RotateOutcome::Reused {
                        family_id: token.family_id,
                        newly_revoked,
                    }
                }
            }
        };
        tx.commit()?;
        Ok(outcome)
    }

    fn check(&self, presented: &TokenHash, now: Millis, policy: &Policy) -> Result<RotateOutcome> {
        let conn = self.lock();
        let (token, family) = match load_live(&conn, presented, now, policy)? {
            Ok(live) => live,
            Err(outcome) => return Ok(outcome),
        };
        if token.used_at.is_some() {
            // Report without acting; the caller treats this as an invalid grant.
            return Ok(RotateOutcome::Reused {
                family_id: token.family_id,
                newly_revoked: false,
            });
        }
        Ok(RotateOutcome::Valid {
            user_id: family.user_id,
            family_id: token.family_id,
        })
    }

    fn revoke_family_of(&self, token: &TokenHash, now: Millis, reason: &str) -> Result<bool> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let Some(row) = load_token(&tx, token)? else {
            return Ok(false);
        };
        let changed = revoke(&tx, &row.family_id, now, reason)?;
        tx.commit()?;
        Ok(changed)
    }

    fn session(&self, family_id: &str) -> Result<Option<Session>> {
        Ok(self
            .lock()
            .query_row(
                "SELECT f.id, f.user_id, u.username, f.revoked_at IS NOT NULL
                 FROM families f JOIN users u ON u.id = f.user_id WHERE f.id = ?1",
                params![family_id],
                |r| {
                    Ok(Session {
                        family_id: r.get(0)?,
                        user_id: r.get(1)?,
                        username: r.get(2)?,
                        revoked: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    fn prune(&self, now: Millis, policy: &Policy, keep_ms: i64) -> Result<usize> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let cutoff = now.saturating_sub(keep_ms);
        let dead = "SELECT id FROM families WHERE
                (revoked_at IS NOT NULL AND revoked_at < ?1)
             OR created_at + ?2 < ?1
             OR last_rotated_at + ?3 < ?1";
        tx.execute(
            &format!("DELETE FROM refresh_tokens WHERE family_id IN ({dead})"),
            params![cutoff, policy.session_ttl_ms, policy.idle_ttl_ms],
        )?;
        let n = tx.execute(
            &format!("DELETE FROM families WHERE id IN ({dead})"),
            params![cutoff, policy.session_ttl_ms, policy.idle_ttl_ms],
        )?;
        tx.commit()?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        session_ttl_ms: 10_000,
        idle_ttl_ms: 5_000,
        reuse_grace_ms: 1_000,
    };

    fn h(n: u8) -> TokenHash {
        [n; 32]
    }

    fn setup() -> (SqliteStore, i64) {
        let s = SqliteStore::open(":memory:").unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let uid = s.create_user("u", "hash", 0).unwrap().unwrap();
        assert_eq!(s.create_user("u", "hash", 0).unwrap(), None);
        s.create_family(uid, "f", &h(1), 0).unwrap();
        (s, uid)
    }

    #[test]
    fn rotate_grace_reuse() {
        let (s, uid) = setup();
        let rotated = RotateOutcome::Rotated {
            user_id: uid,
            family_id: "f".into(),
        };
        assert_eq!(s.rotate(&h(1), &h(2), 100, &POLICY).unwrap(), rotated);
        assert_eq!(
            s.rotate(&h(1), &h(2), 600, &POLICY).unwrap(),
            RotateOutcome::Grace {
                user_id: uid,
                family_id: "f".into()
            }
        );
        assert_eq!(
            s.rotate(&h(9), &h(10), 600, &POLICY).unwrap(),
            RotateOutcome::Unknown
        );
        assert_eq!(
            s.rotate(&h(1), &h(2), 1_200, &POLICY).unwrap(),
            RotateOutcome::Reused {
                family_id: "f".into(),
                newly_revoked: true
            }
        );
        assert_eq!(
            s.rotate(&h(2), &h(3), 1_300, &POLICY).unwrap(),
            RotateOutcome::Revoked
        );
        assert!(s.session("f").unwrap().unwrap().revoked);
        assert!(!s.revoke_family_of(&h(2), 1_400, "logout").unwrap());
    }

    #[test]
    fn expiry_and_prune() {
        let (s, _) = setup();
        assert_eq!(
            s.rotate(&h(1), &h(2), 5_000, &POLICY).unwrap(),
            RotateOutcome::Expired
        );
        assert!(matches!(
            s.check(&h(1), 4_000, &POLICY).unwrap(),
            RotateOutcome::Valid { .. }
        ));
        assert_eq!(s.prune(4_000, &POLICY, 0).unwrap(), 0);
        assert_eq!(s.prune(6_000, &POLICY, 0).unwrap(), 1);
        assert_eq!(s.session("f").unwrap(), None);
        assert_eq!(
            s.rotate(&h(1), &h(2), 6_000, &POLICY).unwrap(),
            RotateOutcome::Unknown
        );
    }

    #[test]
    fn secrets_are_created_once() {
        let (s, _) = setup();
        let a = s.get_or_init_secret("k", &[1; 32], 0).unwrap();
        let b = s.get_or_init_secret("k", &[2; 32], 0).unwrap();
        assert_eq!(a, vec![1; 32]);
        assert_eq!(a, b);
    }
}
