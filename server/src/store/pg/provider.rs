//! The OpenID provider's rows (pushed requests, codes, provider sessions) in PostgreSQL, and
//! [`ProviderStore`] for [`PgStore`]. A `request_uri` or a code is decided on under its row
//! lock (`SELECT ... FOR UPDATE`): presented on two instances at once, the second waits,
//! then sees the first one's committed use. A redemption locks the code row, then (reuse)
//! the family row; nothing locks a family before a code, so this cannot deadlock with the
//! family transactions.

use std::time::Duration;

use anyhow::{Context, Result};
use async_trait::async_trait;
use deadpool_postgres::Object;

use super::families::{revoke, CREATE_FAMILY};
use super::{is_retryable, pg_err, PgStore, ATTEMPTS};
use crate::oidc::authorize::AuthRequest;
use crate::oidc::code::{self, CodeGrant, CodeRow, Decision, Presented};
use crate::oidc::par::{self, ParRow};
use crate::oidc::session::ProviderSession;
use crate::store::provider::{
    NewFamily, ProviderStore, Redemption, END_SESSION, LOAD_CODE, LOAD_PAR, LOAD_SESSION,
    PROVIDER_KEEP_MS, PRUNE, PUT_CODE, PUT_PAR, PUT_SESSION, SPEND_CODE, SPEND_PAR,
};
use crate::store::Millis;

/// A load that locks the row it reads.
fn for_update(q: &str) -> String {
    format!("{q} FOR UPDATE")
}

async fn take_par_tx(
    client: &mut Object,
    handle: &[u8; 32],
    client_id: &str,
    now: Millis,
) -> Result<Result<String, &'static str>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let row = tx.query_opt(&for_update(LOAD_PAR), &[&&handle[..]]).await?;
    let state = row.as_ref().map(|r| ParRow {
        client_id: r.get(0),
        expires_at: r.get(1),
        used: r.get(2),
    });
    if let Err(why) = par::take(state.as_ref(), client_id, now) {
        return Ok(Err(why));
    }
    tx.execute(SPEND_PAR, &[&&handle[..], &now]).await?;
    tx.commit().await?;
    Ok(Ok(row.map(|r| r.get(3)).unwrap_or_default()))
}

async fn redeem_tx(
    client: &mut Object,
    hash: &[u8; 32],
    p: &Presented,
    family: NewFamily<'_>,
    now: Millis,
) -> Result<Redemption, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let lock = tx.prepare_cached(&for_update(LOAD_CODE)).await?;
    let Some(r) = tx.query_opt(&lock, &[&&hash[..]]).await? else {
        return Ok(Redemption::Unknown);
    };
    let row = CodeRow {
        grant: CodeGrant {
            client_id: r.get(0),
            redirect_uri: r.get(1),
            code_challenge: r.get(2),
            dpop_jkt: r.get(3),
            nonce: r.get(4),
            scope: r.get(5),
            user_id: r.get(6),
            session_id: r.get(7),
            auth_time: r.get(8),
        },
        expires_at: r.get(9),
        used: r.get(10),
        family_id: r.get(11),
    };
    let outcome = match code::decide(&row, p, now) {
        Decision::Refuse(why) => return Ok(Redemption::Refused(why)),
        Decision::Reuse => {
            let newly_revoked = match &row.family_id {
                Some(f) => revoke(&tx, f, now, "code reuse").await?,
                None => false,
            };
            Redemption::Reused {
                family_id: row.family_id,
                newly_revoked,
            }
        }
        Decision::Redeem => {
            let jkt = code::session_binding(&row.grant, p.proof_jkt.as_deref());
            let create = tx.prepare_cached(CREATE_FAMILY).await?;
            tx.execute(
                &create,
                &[
                    &family.family_id,
                    &row.grant.user_id,
                    &now,
                    &&family.token[..],
                    &jkt,
                ],
            )
            .await?;
            tx.execute(SPEND_CODE, &[&&hash[..], &now, &family.family_id])
                .await?;
            Redemption::Redeemed {
                grant: row.grant,
                jkt,
            }
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

#[async_trait]
impl ProviderStore for PgStore {
    async fn put_par(
        &self,
        handle: &[u8; 32],
        request: &AuthRequest,
        expires_at: Millis,
    ) -> Result<()> {
        let json = serde_json::to_string(request)?;
        let client = self.client().await?;
        client
            .execute(
                PUT_PAR,
                &[&&handle[..], &request.client_id, &json, &expires_at],
            )
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    async fn take_par(
        &self,
        handle: &[u8; 32],
        client_id: &str,
        now: Millis,
    ) -> Result<Result<AuthRequest, &'static str>> {
        match retrying!(self, |c| take_par_tx(&mut c, handle, client_id, now))? {
            Ok(json) => Ok(Ok(
                serde_json::from_str(&json).context("stored pushed request")?
            )),
            Err(why) => Ok(Err(why)),
        }
    }

    async fn put_code(&self, hash: &[u8; 32], g: &CodeGrant, expires_at: Millis) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                PUT_CODE,
                &[
                    &&hash[..],
                    &g.client_id,
                    &g.redirect_uri,
                    &g.code_challenge,
                    &g.dpop_jkt,
                    &g.nonce,
                    &g.scope,
                    &g.user_id,
                    &g.session_id,
                    &g.auth_time,
                    &expires_at,
                ],
            )
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    async fn redeem_code(
        &self,
        hash: &[u8; 32],
        presented: &Presented,
        family: NewFamily<'_>,
        now: Millis,
    ) -> Result<Redemption> {
        retrying!(self, |c| redeem_tx(&mut c, hash, presented, family, now))
    }

    async fn create_provider_session(
        &self,
        s: &ProviderSession,
        secret_hash: &[u8; 32],
        expires_at: Millis,
    ) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                PUT_SESSION,
                &[
                    &s.id,
                    &&secret_hash[..],
                    &s.user_id,
                    &s.auth_time,
                    &expires_at,
                ],
            )
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    async fn provider_session(
        &self,
        secret_hash: &[u8; 32],
        now: Millis,
    ) -> Result<Option<ProviderSession>> {
        let client = self.client().await?;
        let row = client
            .query_opt(LOAD_SESSION, &[&&secret_hash[..], &now])
            .await
            .map_err(pg_err)?;
        Ok(row.map(|r| ProviderSession {
            id: r.get(0),
            user_id: r.get(1),
            auth_time: r.get(2),
        }))
    }

    async fn end_provider_session(&self, secret_hash: &[u8; 32], now: Millis) -> Result<bool> {
        let client = self.client().await?;
        let n = client
            .execute(END_SESSION, &[&&secret_hash[..], &now])
            .await
            .map_err(pg_err)?;
        Ok(n > 0)
    }

    async fn revoke_family_by_id(
        &self,
        family_id: &str,
        now: Millis,
        reason: &str,
    ) -> Result<bool> {
        retrying!(self, |c| async {
            let tx = c.transaction().await?;
            let changed = revoke(&tx, family_id, now, reason).await?;
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>(changed)
        })
    }

    async fn prune_provider(&self, now: Millis) -> Result<usize> {
        let client = self.client().await?;
        let mut n = 0;
        for (sql, keep) in PRUNE {
            let cutoff = if keep { now - PROVIDER_KEEP_MS } else { now };
            n += client.execute(sql, &[&cutoff]).await.map_err(pg_err)?;
        }
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}
