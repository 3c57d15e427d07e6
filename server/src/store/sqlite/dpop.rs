//! The DPoP proof replay cache (`dpop_jti`). Entries are numbered by their `rowid`, so the
//! bound is checked with two index look-ups (`min`/`max(rowid)`), never a `COUNT`.

use anyhow::Result;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::SqliteDb;
use crate::store::rules::jti_outcome;
use crate::store::{JtiOutcome, Millis};

/// What recording `key` now would find.
fn state(conn: &Connection, key: &[u8; 32], now: Millis, cap: u64) -> rusqlite::Result<JtiOutcome> {
    let live: Option<bool> = conn
        .query_row(
            "SELECT expires_at > ?2 FROM dpop_jti WHERE key = ?1",
            params![&key[..], now],
            |r| r.get(0),
        )
        .optional()?;
    // Two sub-selects: each is SQLite's min/max optimization (one b-tree descent).
    let span: Option<i64> = conn.query_row(
        "SELECT (SELECT max(rowid) FROM dpop_jti) - (SELECT min(rowid) FROM dpop_jti) + 1",
        [],
        |r| r.get(0),
    )?;
    Ok(jti_outcome(live, span, cap))
}

impl SqliteDb {
    pub fn use_dpop_jti(
        &self,
        key: &[u8; 32],
        expires_at: Millis,
        now: Millis,
        cap: u64,
    ) -> Result<JtiOutcome> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let outcome = state(&tx, key, now, cap)?;
        if outcome == JtiOutcome::Fresh {
            // An expired entry of the same key (not pruned yet) is replaced.
            tx.execute(
                "INSERT OR REPLACE INTO dpop_jti (key, expires_at) VALUES (?1, ?2)",
                params![&key[..], expires_at],
            )?;
            tx.commit()?;
        }
        Ok(outcome)
    }

    pub fn peek_dpop_jti(&self, key: &[u8; 32], now: Millis, cap: u64) -> Result<JtiOutcome> {
        Ok(state(&self.lock(), key, now, cap)?)
    }

    pub fn prune_dpop_jti(&self, now: Millis) -> Result<(usize, u64)> {
        let conn = self.lock();
        let n = conn.execute("DELETE FROM dpop_jti WHERE expires_at <= ?1", params![now])?;
        let left: i64 = conn.query_row("SELECT COUNT(*) FROM dpop_jti", [], |r| r.get(0))?;
        Ok((n, u64::try_from(left).unwrap_or(0)))
    }
}
