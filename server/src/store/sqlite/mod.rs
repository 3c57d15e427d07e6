//! The SQLite store: [`SqliteDb`] does the (synchronous) work on one connection behind a
//! mutex; [`SqliteStore`] runs it on tokio's blocking pool behind the async [`Store`] trait.
//!
//! This module opens the database and holds users and server-wide values (`server_meta`); the schema is in
//! `schema`, the session families (login, rotation, grace, revocation, pruning) in
//! `families`, the DPoP replay cache in `dpop`, the log's checkpoints (off the serving
//! connection) in `checkpoint` and [`SqliteStore`] in `store_impl`.
//!
//! [`Store`]: super::Store

use std::fmt;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{Millis, User};

mod checkpoint;
mod dpop;
mod families;
mod provider;
mod schema;
mod store_impl;

pub use store_impl::SqliteStore;

/// The synchronous SQLite database behind [`SqliteStore`].
pub struct SqliteDb {
    conn: Mutex<Connection>,
    /// A file database's checkpointing thread (none in memory); stops when the database drops.
    _checkpointer: Option<checkpoint::Checkpointer>,
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
        let in_memory = path == ":memory:";
        let conn = if in_memory {
            Connection::open_in_memory()?
        } else {
            Connection::open(Path::new(path)).with_context(|| format!("opening database {path}"))?
        };
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // journal_mode returns a row; in-memory databases answer "memory".
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
        // The log is checkpointed by a thread of its own (see `checkpoint`), not by a request.
        conn.pragma_update(None, "wal_autocheckpoint", checkpoint::BACKSTOP_PAGES)?;
        let checkpointer = if in_memory {
            None
        } else {
            Some(checkpoint::Checkpointer::start(Path::new(path))?)
        };
        let store = SqliteDb {
            conn: Mutex::new(conn),
            _checkpointer: checkpointer,
        };
        store.migrate()?;
        Ok(store)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-applied transaction behind
        // (rusqlite rolls back on drop), so a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

// Users and server-wide values.
impl SqliteDb {
    pub fn read_meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .lock()
            .query_row(
                "SELECT value FROM server_meta WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn write_meta(&self, name: &str, value: &[u8], now: Millis) -> Result<()> {
        self.lock().execute(
            "INSERT INTO server_meta (name, value, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            params![name, value, now],
        )?;
        Ok(())
    }

    pub fn delete_meta(&self, names: &[&str]) -> Result<()> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for name in names {
            tx.execute("DELETE FROM server_meta WHERE name = ?1", params![name])?;
        }
        tx.commit()?;
        Ok(())
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
}
