//! [`SqliteStore`]: the async [`Store`] implementation, running [`SqliteDb`] on tokio's
//! blocking pool.

use std::sync::Arc;

use anyhow::{Context, Result};
use async_trait::async_trait;

use super::SqliteDb;
use crate::store::{
    JtiOutcome, Millis, Policy, RevokeOutcome, Rotation, Session, Store, TokenHash, User,
};

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

    pub(super) async fn run<T: Send + 'static>(
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
    async fn read_meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let name = name.to_owned();
        self.run(move |db| db.read_meta(&name)).await
    }

    async fn write_meta(&self, name: &str, value: &[u8], now: Millis) -> Result<()> {
        let (name, value) = (name.to_owned(), value.to_vec());
        self.run(move |db| db.write_meta(&name, &value, now)).await
    }

    async fn delete_meta(&self, names: &[&str]) -> Result<()> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        self.run(move |db| {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            db.delete_meta(&names)
        })
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
        successors: &[TokenHash],
        proof_jkt: Option<&str>,
        now: Millis,
        policy: &Policy,
    ) -> Result<Rotation> {
        let (p, s, policy) = (*presented, successors.to_vec(), *policy);
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

    async fn peek_dpop_jti(&self, key: &[u8; 32], now: Millis, cap: u64) -> Result<JtiOutcome> {
        let key = *key;
        self.run(move |db| db.peek_dpop_jti(&key, now, cap)).await
    }

    async fn prune_dpop_jti(&self, now: Millis) -> Result<(usize, u64)> {
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
