//! The [`Store`] implementation of [`PgStore`]: single statements inline, the family
//! transactions (from `families`) retried on serialization failures and deadlocks.

use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;

use super::families::{check_tx, revoke_tx, rotate_tx, CREATE_FAMILY};
use super::{is_retryable, pg_err, PgStore, ATTEMPTS};
use crate::store::rules::{jti_outcome, DEAD_FAMILY};
use crate::store::{
    JtiOutcome, Millis, Policy, RevokeOutcome, Rotation, Session, Store, TokenHash, User,
};

#[async_trait]
impl Store for PgStore {
    async fn read_meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT value FROM server_meta WHERE name = $1", &[&name])
            .await
            .map_err(pg_err)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn write_meta(&self, name: &str, value: &[u8], now: Millis) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO server_meta (name, value, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
                &[&name, &value, &now],
            )
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    async fn delete_meta(&self, names: &[&str]) -> Result<()> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM server_meta WHERE name = ANY($1)", &[&names])
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        let client = self.client().await?;
        let st = client
            .prepare_cached("SELECT id, username, password_hash FROM users WHERE username = $1")
            .await
            .map_err(pg_err)?;
        let row = client.query_opt(&st, &[&username]).await.map_err(pg_err)?;
        Ok(row.map(|r| User {
            id: r.get(0),
            username: r.get(1),
            password_hash: r.get(2),
        }))
    }

    async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        now: Millis,
    ) -> Result<Option<i64>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "INSERT INTO users (username, password_hash, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (username) DO NOTHING RETURNING id",
                &[&username, &password_hash, &now],
            )
            .await
            .map_err(pg_err)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn create_family_dpop(
        &self,
        user_id: i64,
        family_id: &str,
        token: &TokenHash,
        jkt: Option<&str>,
        now: Millis,
    ) -> Result<()> {
        let client = self.client().await?;
        let st = client.prepare_cached(CREATE_FAMILY).await.map_err(pg_err)?;
        client
            .execute(&st, &[&family_id, &user_id, &now, &&token[..], &jkt])
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    async fn rotate_dpop(
        &self,
        presented: &TokenHash,
        successors: &[TokenHash],
        proof_jkt: Option<&str>,
        now: Millis,
        policy: &Policy,
    ) -> Result<Rotation> {
        anyhow::ensure!(!successors.is_empty(), "a rotation needs a successor");
        retrying!(self, |c| rotate_tx(
            &c, presented, successors, proof_jkt, now, policy
        ))
    }

    async fn check_dpop(
        &self,
        presented: &TokenHash,
        proof_jkt: Option<&str>,
        now: Millis,
        policy: &Policy,
    ) -> Result<Rotation> {
        retrying!(self, |c| check_tx(&c, presented, proof_jkt, now, policy))
    }

    async fn revoke_family_dpop(
        &self,
        token: &TokenHash,
        proof_jkt: Option<&str>,
        now: Millis,
        reason: &str,
    ) -> Result<RevokeOutcome> {
        retrying!(self, |c| revoke_tx(&c, token, proof_jkt, now, reason))
    }

    async fn use_dpop_jti(
        &self,
        key: &[u8; 32],
        expires_at: Millis,
        now: Millis,
        cap: u64,
    ) -> Result<JtiOutcome> {
        let client = self.client().await?;
        let cap = i64::try_from(cap).unwrap_or(i64::MAX);
        // One statement: the primary key serializes concurrent uses of one key across
        // instances; an expired entry (not pruned yet) is taken over and renumbered. Entries
        // are numbered highest + 1 (two instances may pick the same number: the bound is
        // then exceeded by at most the inserts running at once), and the bound is the span
        // of numbers (two index look-ups), never a COUNT.
        let insert = client
            .prepare_cached(
                "WITH span AS (SELECT max(seq) AS hi, min(seq) AS lo FROM dpop_jti)
                 INSERT INTO dpop_jti (key, expires_at, seq)
                 SELECT $1, $2, coalesce(hi, 0) + 1 FROM span
                 WHERE coalesce(hi - lo + 1, 0) < $4
                 ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at, seq = EXCLUDED.seq
                 WHERE dpop_jti.expires_at <= $3",
            )
            .await
            .map_err(pg_err)?;
        let n = client
            .execute(&insert, &[&&key[..], &expires_at, &now, &cap])
            .await
            .map_err(pg_err)?;
        if n > 0 {
            return Ok(JtiOutcome::Fresh);
        }
        // Not recorded: a live entry, or the bound.
        let outcome = peek(&client, key, now, u64::try_from(cap).unwrap_or(0)).await?;
        Ok(match outcome {
            JtiOutcome::Fresh => JtiOutcome::Full,
            other => other,
        })
    }

    async fn peek_dpop_jti(&self, key: &[u8; 32], now: Millis, cap: u64) -> Result<JtiOutcome> {
        let client = self.client().await?;
        peek(&client, key, now, cap).await
    }

    async fn prune_dpop_jti(&self, now: Millis) -> Result<(usize, u64)> {
        let client = self.client().await?;
        let n = client
            .execute("DELETE FROM dpop_jti WHERE expires_at <= $1", &[&now])
            .await
            .map_err(pg_err)?;
        let left: i64 = client
            .query_one("SELECT COUNT(*) FROM dpop_jti", &[])
            .await
            .map_err(pg_err)?
            .get(0);
        Ok((
            usize::try_from(n).unwrap_or(usize::MAX),
            u64::try_from(left).unwrap_or(0),
        ))
    }

    async fn session(&self, family_id: &str) -> Result<Option<Session>> {
        let client = self.client().await?;
        let st = client
            .prepare_cached(
                "SELECT f.id, f.user_id, u.username, f.revoked_at IS NOT NULL
                 FROM families f JOIN users u ON u.id = f.user_id WHERE f.id = $1",
            )
            .await
            .map_err(pg_err)?;
        let row = client.query_opt(&st, &[&family_id]).await.map_err(pg_err)?;
        Ok(row.map(|r| Session {
            family_id: r.get(0),
            user_id: r.get(1),
            username: r.get(2),
            revoked: r.get(3),
        }))
    }

    async fn prune(&self, now: Millis, policy: &Policy, keep_ms: i64) -> Result<usize> {
        let cutoff = now.saturating_sub(keep_ms);
        let sql = format!("DELETE FROM families WHERE {DEAD_FAMILY}");
        // Deleting a family locks it first, then cascades to its tokens: the same lock order
        // as a rotation.
        let n = retrying!(self, |c| c.execute(
            sql.as_str(),
            &[&cutoff, &policy.session_ttl_ms, &policy.idle_ttl_ms]
        ))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}

/// What recording `key` now would find (see [`jti_outcome`]).
async fn peek(
    client: &deadpool_postgres::Object,
    key: &[u8; 32],
    now: Millis,
    cap: u64,
) -> Result<JtiOutcome> {
    let st = client
        .prepare_cached(
            "SELECT (SELECT expires_at > $2 FROM dpop_jti WHERE key = $1),
                    (SELECT max(seq) FROM dpop_jti) - (SELECT min(seq) FROM dpop_jti) + 1",
        )
        .await
        .map_err(pg_err)?;
    let row = client
        .query_one(&st, &[&&key[..], &now])
        .await
        .map_err(pg_err)?;
    Ok(jti_outcome(row.get(0), row.get(1), cap))
}
