//! The SQLite store: [`SqliteDb`] does the (synchronous) work on one connection behind a
//! mutex; [`SqliteStore`] runs it on tokio's blocking pool behind the async [`Store`] trait.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{
    check_outcome, dpop_mismatch, grace_applies, key_ok, FamilyRow, JtiOutcome, Millis, Policy,
    RevokeOutcome, RotateOutcome, Rotation, Session, Store, TokenHash, TokenRow, User, DEAD_FAMILY,
};

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
    // 2: DPoP: family binding, bound tokens, the proof replay cache
    "ALTER TABLE families ADD COLUMN jkt TEXT;
    ALTER TABLE refresh_tokens ADD COLUMN bound INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE dpop_jti (
        key        BLOB PRIMARY KEY,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX dpop_jti_expires ON dpop_jti(expires_at);",
];

/// The synchronous SQLite database behind [`SqliteStore`].
pub struct SqliteDb {
    conn: Mutex<Connection>,
}

impl fmt::Debug for SqliteDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteDb").finish_non_exhaustive()
    }
}

impl SqliteDb {
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
        let store = SqliteDb {
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

fn load_token(conn: &Connection, hash: &TokenHash) -> rusqlite::Result<Option<TokenRow>> {
    conn.query_row(
        "SELECT family_id, used_at, bound FROM refresh_tokens WHERE hash = ?1",
        params![&hash[..]],
        |r| {
            Ok(TokenRow {
                family_id: r.get(0)?,
                used_at: r.get(1)?,
                bound: r.get(2)?,
            })
        },
    )
    .optional()
}

fn load_family(conn: &Connection, id: &str) -> rusqlite::Result<Option<FamilyRow>> {
    conn.query_row(
        "SELECT user_id, created_at, last_rotated_at, revoked_at IS NOT NULL, jkt
         FROM families WHERE id = ?1",
        params![id],
        |r| {
            Ok(FamilyRow {
                user_id: r.get(0)?,
                created_at: r.get(1)?,
                last_rotated_at: r.get(2)?,
                revoked: r.get(3)?,
                jkt: r.get(4)?,
            })
        },
    )
    .optional()
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
    if let Some(dead) = family.dead(now, policy) {
        return Ok(Err(dead));
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

impl SqliteDb {
    pub fn get_or_init_secret(&self, name: &str, candidate: &[u8], now: Millis) -> Result<Vec<u8>> {
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

    pub fn user_by_name(&self, username: &str) -> Result<Option<User>> {
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

    pub fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        now: Millis,
    ) -> Result<Option<i64>> {
        let conn = self.lock();
        let n = conn.execute(
            "INSERT OR IGNORE INTO users (username, password_hash, created_at) VALUES (?1, ?2, ?3)",
            params![username, password_hash, now],
        )?;
        Ok((n > 0).then(|| conn.last_insert_rowid()))
    }

    pub fn create_family(
        &self,
        user_id: i64,
        family_id: &str,
        token: &TokenHash,
        jkt: Option<&str>,
        now: Millis,
    ) -> Result<()> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO families (id, user_id, created_at, last_rotated_at, jkt)
             VALUES (?1, ?2, ?3, ?3, ?4)",
            params![family_id, user_id, now, jkt],
        )?;
        tx.execute(
            "INSERT INTO refresh_tokens (hash, family_id, parent_hash, issued_at, bound)
             VALUES (?1, ?2, NULL, ?3, ?4)",
            params![&token[..], family_id, now, jkt.is_some()],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn rotate(
        &self,
        presented: &TokenHash,
        successor: &TokenHash,
        proof_jkt: Option<&str>,
        now: Millis,
        policy: &Policy,
    ) -> Result<Rotation> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (token, family) = match load_live(&tx, presented, now, policy)? {
            Ok(live) => live,
            Err(outcome) => return Ok(unbound(outcome)),
        };
        if dpop_mismatch(&token, &family, proof_jkt) {
            return Ok(Rotation {
                outcome: RotateOutcome::DpopMismatch {
                    family_id: token.family_id,
                },
                jkt: family.jkt,
            });
        }
        let mut jkt = family.jkt.clone();
        let outcome = match token.used_at {
            None => {
                // A rotation with a proof binds an unbound family from here on.
                jkt = jkt.or_else(|| proof_jkt.map(str::to_owned));
                tx.execute(
                    "UPDATE refresh_tokens SET used_at = ?2 WHERE hash = ?1",
                    params![&presented[..], now],
                )?;
                tx.execute(
                    "INSERT INTO refresh_tokens (hash, family_id, parent_hash, issued_at, bound)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        &successor[..],
                        token.family_id,
                        &presented[..],
                        now,
                        jkt.is_some()
                    ],
                )?;
                tx.execute(
                    "UPDATE families SET last_rotated_at = ?2, jkt = ?3 WHERE id = ?1",
                    params![token.family_id, now, jkt],
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
                let child = child.as_ref().map(|(hash, used)| (hash.as_slice(), *used));
                if key_ok(&family, proof_jkt)
                    && grace_applies(used_at, child, successor, now, policy)
                {
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
        Ok(Rotation { outcome, jkt })
    }

    pub fn check(
        &self,
        presented: &TokenHash,
        proof_jkt: Option<&str>,
        now: Millis,
        policy: &Policy,
    ) -> Result<Rotation> {
        let conn = self.lock();
        let (token, family) = match load_live(&conn, presented, now, policy)? {
            Ok(live) => live,
            Err(outcome) => return Ok(unbound(outcome)),
        };
        if dpop_mismatch(&token, &family, proof_jkt) {
            return Ok(Rotation {
                outcome: RotateOutcome::DpopMismatch {
                    family_id: token.family_id,
                },
                jkt: family.jkt,
            });
        }
        let outcome = check_outcome(token, &family);
        Ok(Rotation {
            outcome,
            jkt: family.jkt,
        })
    }

    pub fn revoke_family_of(
        &self,
        token: &TokenHash,
        proof_jkt: Option<&str>,
        now: Millis,
        reason: &str,
    ) -> Result<RevokeOutcome> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let Some(row) = load_token(&tx, token)? else {
            return Ok(RevokeOutcome::Unchanged);
        };
        if let Some(family) = load_family(&tx, &row.family_id)? {
            if dpop_mismatch(&row, &family, proof_jkt) {
                return Ok(RevokeOutcome::DpopMismatch);
            }
        }
        let changed = revoke(&tx, &row.family_id, now, reason)?;
        tx.commit()?;
        Ok(if changed {
            RevokeOutcome::Revoked
        } else {
            RevokeOutcome::Unchanged
        })
    }

    pub fn use_dpop_jti(
        &self,
        key: &[u8; 32],
        expires_at: Millis,
        now: Millis,
        cap: u64,
    ) -> Result<JtiOutcome> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let live: Option<bool> = tx
            .query_row(
                "SELECT expires_at > ?2 FROM dpop_jti WHERE key = ?1",
                params![&key[..], now],
                |r| r.get(0),
            )
            .optional()?;
        if live == Some(true) {
            return Ok(JtiOutcome::Replayed);
        }
        let count: i64 = tx.query_row(
            "SELECT COUNT(*) FROM dpop_jti WHERE expires_at > ?1",
            params![now],
            |r| r.get(0),
        )?;
        if u64::try_from(count).unwrap_or(0) >= cap {
            return Ok(JtiOutcome::Full);
        }
        tx.execute(
            "INSERT OR REPLACE INTO dpop_jti (key, expires_at) VALUES (?1, ?2)",
            params![&key[..], expires_at],
        )?;
        tx.commit()?;
        Ok(JtiOutcome::Fresh)
    }

    pub fn prune_dpop_jti(&self, now: Millis) -> Result<usize> {
        Ok(self
            .lock()
            .execute("DELETE FROM dpop_jti WHERE expires_at <= ?1", params![now])?)
    }

    pub fn session(&self, family_id: &str) -> Result<Option<Session>> {
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

    pub fn prune(&self, now: Millis, policy: &Policy, keep_ms: i64) -> Result<usize> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let cutoff = now.saturating_sub(keep_ms);
        let dead = format!(
            "SELECT id FROM families WHERE {}",
            DEAD_FAMILY.replace('$', "?")
        );
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

/// A rotation outcome of a family that could not be used (no binding to report).
fn unbound(outcome: RotateOutcome) -> Rotation {
    Rotation { outcome, jkt: None }
}

/// The SQLite implementation of [`Store`]: a [`SqliteDb`] used from tokio's blocking pool.
#[derive(Clone, Debug)]
pub struct SqliteStore(Arc<SqliteDb>);

impl SqliteStore {
    /// Opens `path` like [`SqliteDb::open`], off the async threads.
    pub async fn open(path: &str) -> Result<Self> {
        let path = path.to_owned();
        let db = tokio::task::spawn_blocking(move || SqliteDb::open(&path)).await??;
        Ok(SqliteStore(Arc::new(db)))
    }

    /// The synchronous database underneath.
    pub fn db(&self) -> &SqliteDb {
        &self.0
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&SqliteDb) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.0.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .context("SQLite task failed")?
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn get_or_init_secret(
        &self,
        name: &str,
        candidate: &[u8],
        now: Millis,
    ) -> Result<Vec<u8>> {
        let (name, candidate) = (name.to_owned(), candidate.to_vec());
        self.run(move |db| db.get_or_init_secret(&name, &candidate, now))
            .await
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        let username = username.to_owned();
        self.run(move |db| db.user_by_name(&username)).await
    }

    async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        now: Millis,
    ) -> Result<Option<i64>> {
        let (username, hash) = (username.to_owned(), password_hash.to_owned());
        self.run(move |db| db.create_user(&username, &hash, now))
            .await
    }

    async fn create_family_dpop(
        &self,
        user_id: i64,
        family_id: &str,
        token: &TokenHash,
        jkt: Option<&str>,
        now: Millis,
    ) -> Result<()> {
        let (family_id, token) = (family_id.to_owned(), *token);
        let jkt = jkt.map(str::to_owned);
        self.run(move |db| db.create_family(user_id, &family_id, &token, jkt.as_deref(), now))
            .await
    }

    async fn rotate_dpop(
        &self,
        presented: &TokenHash,
        successor: &TokenHash,
        proof_jkt: Option<&str>,
        now: Millis,
        policy: &Policy,
    ) -> Result<Rotation> {
        let (p, s, policy) = (*presented, *successor, *policy);
        let jkt = proof_jkt.map(str::to_owned);
        self.run(move |db| db.rotate(&p, &s, jkt.as_deref(), now, &policy))
            .await
    }

    async fn check_dpop(
        &self,
        presented: &TokenHash,
        proof_jkt: Option<&str>,
        now: Millis,
        policy: &Policy,
    ) -> Result<Rotation> {
        let (p, policy) = (*presented, *policy);
        let jkt = proof_jkt.map(str::to_owned);
        self.run(move |db| db.check(&p, jkt.as_deref(), now, &policy))
            .await
    }

    async fn revoke_family_dpop(
        &self,
        token: &TokenHash,
        proof_jkt: Option<&str>,
        now: Millis,
        reason: &str,
    ) -> Result<RevokeOutcome> {
        let (token, reason) = (*token, reason.to_owned());
        let jkt = proof_jkt.map(str::to_owned);
        self.run(move |db| db.revoke_family_of(&token, jkt.as_deref(), now, &reason))
            .await
    }

    async fn use_dpop_jti(
        &self,
        key: &[u8; 32],
        expires_at: Millis,
        now: Millis,
        cap: u64,
    ) -> Result<JtiOutcome> {
        let key = *key;
        self.run(move |db| db.use_dpop_jti(&key, expires_at, now, cap))
            .await
    }

    async fn prune_dpop_jti(&self, now: Millis) -> Result<usize> {
        self.run(move |db| db.prune_dpop_jti(now)).await
    }

    async fn session(&self, family_id: &str) -> Result<Option<Session>> {
        let family_id = family_id.to_owned();
        self.run(move |db| db.session(&family_id)).await
    }

    async fn prune(&self, now: Millis, policy: &Policy, keep_ms: i64) -> Result<usize> {
        let policy = *policy;
        self.run(move |db| db.prune(now, &policy, keep_ms)).await
    }
}
