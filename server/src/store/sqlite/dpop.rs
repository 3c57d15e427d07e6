//! The DPoP proof replay cache (`dpop_jti`).

use anyhow::Result;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::SqliteDb;
use crate::store::{JtiOutcome, Millis};

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
}
