//! The SQLite schema and its migrations (tracked in `PRAGMA user_version`).

use anyhow::{Context, Result};
use rusqlite::TransactionBehavior;

use super::SqliteDb;

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
    // 3: keys out of the database: the table keeps only bookkeeping (the key registry)
    "ALTER TABLE server_secrets RENAME TO server_meta;",
    // 4: the OpenID provider: pushed requests, authorization codes, provider sessions
    "CREATE TABLE par_requests (
        hash       BLOB PRIMARY KEY,
        client_id  TEXT NOT NULL,
        request    TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at    INTEGER
    );
    CREATE INDEX par_requests_expires ON par_requests(expires_at);
    CREATE TABLE provider_sessions (
        id          TEXT PRIMARY KEY,
        secret_hash BLOB NOT NULL UNIQUE,
        user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        auth_time   INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        ended_at    INTEGER
    );
    CREATE INDEX provider_sessions_expires ON provider_sessions(expires_at);
    CREATE TABLE auth_codes (
        hash           BLOB PRIMARY KEY,
        client_id      TEXT NOT NULL,
        redirect_uri   TEXT NOT NULL,
        code_challenge TEXT NOT NULL,
        dpop_jkt       TEXT,
        nonce          TEXT,
        scope          TEXT NOT NULL,
        user_id        INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        session_id     TEXT NOT NULL,
        auth_time      INTEGER NOT NULL,
        expires_at     INTEGER NOT NULL,
        used_at        INTEGER,
        family_id      TEXT
    );
    CREATE INDEX auth_codes_expires ON auth_codes(expires_at);",
];

impl SqliteDb {
    pub(super) fn migrate(&self) -> Result<()> {
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
}
