//! The OpenID provider's rows (pushed requests, codes, provider sessions) in SQLite, and
//! [`ProviderStore`] for [`SqliteStore`]. Decisions are [`crate::oidc`]'s, taken inside a
//! `BEGIN IMMEDIATE` transaction.

use anyhow::{Context, Result};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::families::{insert_family, revoke};
use super::{SqliteDb, SqliteStore};
use crate::oidc::authorize::AuthRequest;
use crate::oidc::code::{self, CodeGrant, CodeRow, Decision, Presented};
use crate::oidc::par::{self, ParRow};
use crate::oidc::session::ProviderSession;
use crate::store::provider::{
    NewFamily, ProviderStore, Redemption, END_SESSION, LOAD_CODE, LOAD_PAR, LOAD_SESSION,
    PROVIDER_KEEP_MS, PRUNE, PUT_CODE, PUT_PAR, PUT_SESSION, SPEND_CODE, SPEND_PAR,
};
use crate::store::{Millis, TokenHash};

/// The shared SQL with SQLite's `?n` placeholders.
fn sql(q: &str) -> String {
    q.replace('$', "?")
}

fn load_par(conn: &Connection, handle: &[u8; 32]) -> rusqlite::Result<Option<(ParRow, String)>> {
    conn.query_row(&sql(LOAD_PAR), params![&handle[..]], |r| {
        let row = ParRow {
            client_id: r.get(0)?,
            expires_at: r.get(1)?,
            used: r.get(2)?,
        };
        Ok((row, r.get(3)?))
    })
    .optional()
}

fn load_code(conn: &Connection, hash: &[u8; 32]) -> rusqlite::Result<Option<CodeRow>> {
    conn.query_row(&sql(LOAD_CODE), params![&hash[..]], |r| {
        Ok(CodeRow {
            grant: CodeGrant {
                client_id: r.get(0)?,
                redirect_uri: r.get(1)?,
                code_challenge: r.get(2)?,
                dpop_jkt: r.get(3)?,
                nonce: r.get(4)?,
                scope: r.get(5)?,
                user_id: r.get(6)?,
                session_id: r.get(7)?,
                auth_time: r.get(8)?,
            },
            expires_at: r.get(9)?,
            used: r.get(10)?,
            family_id: r.get(11)?,
        })
    })
    .optional()
}

impl SqliteDb {
    pub fn put_par(
        &self,
        handle: &[u8; 32],
        request: &AuthRequest,
        expires_at: Millis,
    ) -> Result<()> {
        self.lock().execute(
            &sql(PUT_PAR),
            params![
                &handle[..],
                request.client_id,
                serde_json::to_string(request)?,
                expires_at
            ],
        )?;
        Ok(())
    }

    pub fn take_par(
        &self,
        handle: &[u8; 32],
        client_id: &str,
        now: Millis,
    ) -> Result<Result<AuthRequest, &'static str>> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row = load_par(&tx, handle)?;
        let (state, request) = match row {
            Some((state, request)) => (Some(state), request),
            None => (None, String::new()),
        };
        if let Err(why) = par::take(state.as_ref(), client_id, now) {
            return Ok(Err(why));
        }
        tx.execute(&sql(SPEND_PAR), params![&handle[..], now])?;
        tx.commit()?;
        Ok(Ok(
            serde_json::from_str(&request).context("stored pushed request")?
        ))
    }

    pub fn put_code(&self, hash: &[u8; 32], g: &CodeGrant, expires_at: Millis) -> Result<()> {
        self.lock().execute(
            &sql(PUT_CODE),
            params![
                &hash[..],
                g.client_id,
                g.redirect_uri,
                g.code_challenge,
                g.dpop_jkt,
                g.nonce,
                g.scope,
                g.user_id,
                g.session_id,
                g.auth_time,
                expires_at
            ],
        )?;
        Ok(())
    }

    pub fn redeem_code(
        &self,
        hash: &[u8; 32],
        p: &Presented,
        family_id: &str,
        token: &TokenHash,
        now: Millis,
    ) -> Result<Redemption> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let Some(row) = load_code(&tx, hash)? else {
            return Ok(Redemption::Unknown);
        };
        let outcome = match code::decide(&row, p, now) {
            Decision::Refuse(why) => return Ok(Redemption::Refused(why)),
            Decision::Reuse => {
                let newly_revoked = match &row.family_id {
                    Some(f) => revoke(&tx, f, now, "code reuse")?,
                    None => false,
                };
                Redemption::Reused {
                    family_id: row.family_id,
                    newly_revoked,
                }
            }
            Decision::Redeem => {
                let jkt = code::session_binding(&row.grant, p.proof_jkt.as_deref());
                insert_family(
                    &tx,
                    row.grant.user_id,
                    family_id,
                    token,
                    jkt.as_deref(),
                    now,
                )?;
                tx.execute(&sql(SPEND_CODE), params![&hash[..], now, family_id])?;
                Redemption::Redeemed {
                    grant: row.grant,
                    jkt,
                }
            }
        };
        tx.commit()?;
        Ok(outcome)
    }

    pub fn create_provider_session(
        &self,
        s: &ProviderSession,
        secret_hash: &[u8; 32],
        expires_at: Millis,
    ) -> Result<()> {
        self.lock().execute(
            &sql(PUT_SESSION),
            params![s.id, &secret_hash[..], s.user_id, s.auth_time, expires_at],
        )?;
        Ok(())
    }

    pub fn provider_session(
        &self,
        secret_hash: &[u8; 32],
        now: Millis,
    ) -> Result<Option<ProviderSession>> {
        Ok(self
            .lock()
            .query_row(&sql(LOAD_SESSION), params![&secret_hash[..], now], |r| {
                Ok(ProviderSession {
                    id: r.get(0)?,
                    user_id: r.get(1)?,
                    auth_time: r.get(2)?,
                })
            })
            .optional()?)
    }

    pub fn end_provider_session(&self, secret_hash: &[u8; 32], now: Millis) -> Result<bool> {
        let n = self
            .lock()
            .execute(&sql(END_SESSION), params![&secret_hash[..], now])?;
        Ok(n > 0)
    }

    pub fn revoke_family_by_id(&self, family_id: &str, now: Millis, reason: &str) -> Result<bool> {
        Ok(revoke(&self.lock(), family_id, now, reason)?)
    }

    pub fn prune_provider(&self, now: Millis) -> Result<usize> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut n = 0;
        for (query, keep) in PRUNE {
            let cutoff = if keep { now - PROVIDER_KEEP_MS } else { now };
            n += tx.execute(&sql(query), params![cutoff])?;
        }
        tx.commit()?;
        Ok(n)
    }
}

#[async_trait]
impl ProviderStore for SqliteStore {
    async fn put_par(
        &self,
        handle: &[u8; 32],
        request: &AuthRequest,
        expires_at: Millis,
    ) -> Result<()> {
        let (handle, request) = (*handle, request.clone());
        self.run(move |db| db.put_par(&handle, &request, expires_at))
            .await
    }

    async fn take_par(
        &self,
        handle: &[u8; 32],
        client_id: &str,
        now: Millis,
    ) -> Result<Result<AuthRequest, &'static str>> {
        let (handle, client_id) = (*handle, client_id.to_owned());
        self.run(move |db| db.take_par(&handle, &client_id, now))
            .await
    }

    async fn put_code(&self, hash: &[u8; 32], grant: &CodeGrant, expires_at: Millis) -> Result<()> {
        let (hash, grant) = (*hash, grant.clone());
        self.run(move |db| db.put_code(&hash, &grant, expires_at))
            .await
    }

    async fn redeem_code(
        &self,
        hash: &[u8; 32],
        presented: &Presented,
        family: NewFamily<'_>,
        now: Millis,
    ) -> Result<Redemption> {
        let (hash, p) = (*hash, presented.clone());
        let (family_id, token) = (family.family_id.to_owned(), *family.token);
        self.run(move |db| db.redeem_code(&hash, &p, &family_id, &token, now))
            .await
    }

    async fn create_provider_session(
        &self,
        session: &ProviderSession,
        secret_hash: &[u8; 32],
        expires_at: Millis,
    ) -> Result<()> {
        let (s, hash) = (session.clone(), *secret_hash);
        self.run(move |db| db.create_provider_session(&s, &hash, expires_at))
            .await
    }

    async fn provider_session(
        &self,
        secret_hash: &[u8; 32],
        now: Millis,
    ) -> Result<Option<ProviderSession>> {
        let hash = *secret_hash;
        self.run(move |db| db.provider_session(&hash, now)).await
    }

    async fn end_provider_session(&self, secret_hash: &[u8; 32], now: Millis) -> Result<bool> {
        let hash = *secret_hash;
        self.run(move |db| db.end_provider_session(&hash, now))
            .await
    }

    async fn revoke_family_by_id(
        &self,
        family_id: &str,
        now: Millis,
        reason: &str,
    ) -> Result<bool> {
        let (family_id, reason) = (family_id.to_owned(), reason.to_owned());
        self.run(move |db| db.revoke_family_by_id(&family_id, now, &reason))
            .await
    }

    async fn prune_provider(&self, now: Millis) -> Result<usize> {
        self.run(move |db| db.prune_provider(now)).await
    }
}
