//! The transactions about a refresh token: rotation, the non-rotating check and revocation.
//! Each one first locks the token's family row (see the parent module for the concurrency
//! argument), reads the rows, and runs the SQL of what `store::rules` decides.
//!
//! Round trips: statements are pipelined (tokio-postgres sends every request of futures
//! polled together before waiting for the first answer; PostgreSQL runs them in order). A
//! rotation is two: `BEGIN` + lock the family + read the token and its successor, then the
//! write + `COMMIT` (was five: `BEGIN`, lock, read, write, `COMMIT`). The read still runs after
//! the lock is granted, as its own statement, so it sees everything committed before.

use deadpool_postgres::{GenericClient, Object};
use futures_util::future::{try_join, try_join3};
use futures_util::FutureExt as _;

use crate::store::rules::{
    decide_check, decide_revocation, decide_rotation, ChildRow, Decision, FamilyRow, Loaded,
    Revocation, TokenRow,
};
use crate::store::{Millis, Policy, RevokeOutcome, Rotation, TokenHash};

/// A transaction begun on `client` in the same round trip as its first statements. Dropped
/// unfinished (an error, a cancelled request), it queues `ROLLBACK` on the connection without
/// waiting, ahead of anything the connection's next user sends.
struct Open<'c> {
    client: &'c Object,
    done: bool,
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        if !self.done {
            // The first poll sends the message; its answer is not awaited.
            let _ = self.client.batch_execute("ROLLBACK").now_or_never();
        }
    }
}

impl Open<'_> {
    /// Runs `last` (the transaction's last statement) with `COMMIT` right behind it, in one
    /// round trip. On an error the guard's `ROLLBACK` follows (a no-op warning if `COMMIT`
    /// already ended the transaction).
    async fn commit_after<T>(
        mut self,
        last: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, tokio_postgres::Error> {
        let out = try_join(last, self.client.batch_execute("COMMIT")).await;
        self.done = out.is_ok();
        out.map(|(t, ())| t)
    }

    async fn rollback(mut self) -> Result<(), tokio_postgres::Error> {
        let out = self.client.batch_execute("ROLLBACK").await;
        self.done = out.is_ok();
        out
    }
}

/// Begins a transaction, locks the family of `presented`, then reads the token, its
/// successor and the family: one round trip.
async fn lock_and_load<'c>(
    client: &'c Object,
    presented: &TokenHash,
) -> Result<(Open<'c>, Option<Loaded>), tokio_postgres::Error> {
    // A token's family never changes, so the sub-select needs no lock; the family row lock
    // then orders every concurrent decision about this family.
    let lock_family = client
        .prepare_cached(
            "SELECT user_id, created_at, last_rotated_at, revoked_at IS NOT NULL, jkt FROM families
             WHERE id = (SELECT family_id FROM refresh_tokens WHERE hash = $1) FOR UPDATE",
        )
        .await?;
    // Read under the lock: a new statement sees everything committed before we got it.
    let load_token = client
        .prepare_cached(
            "SELECT t.family_id, t.used_at, t.bound, c.hash, c.used_at
             FROM refresh_tokens t LEFT JOIN refresh_tokens c ON c.parent_hash = t.hash
             WHERE t.hash = $1",
        )
        .await?;
    let open = Open {
        client,
        done: false,
    };
    let key: &(dyn tokio_postgres::types::ToSql + Sync) = &&presented[..];
    let ((), f, t) = try_join3(
        client.batch_execute("BEGIN"),
        client.query_opt(&lock_family, &[key]),
        client.query_opt(&load_token, &[key]),
    )
    .await?;
    let (Some(f), Some(t)) = (f, t) else {
        return Ok((open, None));
    };
    let family = FamilyRow {
        user_id: f.get(0),
        created_at: f.get(1),
        last_rotated_at: f.get(2),
        revoked: f.get(3),
        jkt: f.get(4),
    };
    let child = t.get::<_, Option<Vec<u8>>>(3).map(|hash| ChildRow {
        hash,
        used_at: t.get(4),
    });
    let loaded = Loaded {
        token: TokenRow {
            family_id: t.get(0),
            used_at: t.get(1),
            bound: t.get(2),
        },
        family: Some(family),
        child,
    };
    Ok((open, Some(loaded)))
}

/// Revokes family `$1` at `$2` for reason `$3` unless it already is.
const REVOKE: &str = "UPDATE families SET revoked_at = $2, revoke_reason = $3
     WHERE id = $1 AND revoked_at IS NULL";

/// Revokes the family (in the caller's transaction): whether this call revoked it.
pub(super) async fn revoke(
    client: &impl GenericClient,
    family_id: &str,
    now: Millis,
    reason: &str,
) -> Result<bool, tokio_postgres::Error> {
    let st = client.prepare_cached(REVOKE).await?;
    Ok(client.execute(&st, &[&family_id, &now, &reason]).await? > 0)
}

/// [`revoke`] as the last statement of `open`, `COMMIT` behind it in the same round trip.
async fn revoke_and_commit(
    open: Open<'_>,
    family_id: &str,
    now: Millis,
    reason: &str,
) -> Result<bool, tokio_postgres::Error> {
    // Prepared first: a statement still being prepared would let `COMMIT` overtake it.
    let st = open.client.prepare_cached(REVOKE).await?;
    let client = open.client;
    Ok(open
        .commit_after(client.execute(&st, &[&family_id, &now, &reason]))
        .await?
        > 0)
}

/// Creates a family and its first refresh token: `$1` family id, `$2` user id, `$3` now,
/// `$4` token hash, `$5` the DPoP key thumbprint (or NULL).
pub(super) const CREATE_FAMILY: &str = "WITH family AS (
         INSERT INTO families (id, user_id, created_at, last_rotated_at, jkt)
         VALUES ($1, $2, $3, $3, $5) RETURNING id)
     INSERT INTO refresh_tokens (hash, family_id, parent_hash, issued_at, bound)
     SELECT $4, id, NULL, $3, $5::TEXT IS NOT NULL FROM family";

pub(super) async fn rotate_tx(
    client: &Object,
    presented: &TokenHash,
    successors: &[TokenHash],
    proof_jkt: Option<&str>,
    now: Millis,
    policy: &Policy,
) -> Result<Rotation, tokio_postgres::Error> {
    let (open, loaded) = lock_and_load(client, presented).await?;
    // Decided under the family lock; an answer changes nothing.
    match decide_rotation(loaded, proof_jkt, successors, now, policy) {
        Decision::Answer(answer) => {
            open.rollback().await?;
            Ok(answer)
        }
        Decision::Spend(spend) => {
            let write = client
                .prepare_cached(
                    "WITH spent AS (UPDATE refresh_tokens SET used_at = $3 WHERE hash = $1),
                          touched AS (UPDATE families SET last_rotated_at = $3, jkt = $5
                                      WHERE id = $4)
                     INSERT INTO refresh_tokens (hash, family_id, parent_hash, issued_at, bound)
                     VALUES ($2, $4, $1, $3, $5::TEXT IS NOT NULL)",
                )
                .await?;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [
                &&presented[..],
                &&successors[0][..],
                &now,
                &spend.family_id,
                &spend.jkt,
            ];
            open.commit_after(client.execute(&write, &params)).await?;
            Ok(spend.rotated())
        }
        Decision::Revoke(reuse) => {
            let newly_revoked = revoke_and_commit(open, &reuse.family_id, now, "reuse").await?;
            Ok(reuse.outcome(newly_revoked))
        }
    }
}

pub(super) async fn check_tx(
    client: &Object,
    presented: &TokenHash,
    proof_jkt: Option<&str>,
    now: Millis,
    policy: &Policy,
) -> Result<Rotation, tokio_postgres::Error> {
    let (open, loaded) = lock_and_load(client, presented).await?;
    open.rollback().await?;
    Ok(decide_check(loaded, proof_jkt, now, policy))
}

pub(super) async fn revoke_tx(
    client: &Object,
    token: &TokenHash,
    proof_jkt: Option<&str>,
    now: Millis,
    reason: &str,
) -> Result<RevokeOutcome, tokio_postgres::Error> {
    // Same lock order as a rotation: the family row first, then the token.
    let (open, loaded) = lock_and_load(client, token).await?;
    let revocation = decide_revocation(
        loaded.as_ref().map(|l| &l.token),
        loaded.as_ref().and_then(|l| l.family.as_ref()),
        proof_jkt,
    );
    let changed = match &revocation {
        Revocation::Revoke { family_id } => revoke_and_commit(open, family_id, now, reason).await?,
        _ => {
            open.rollback().await?;
            false
        }
    };
    Ok(revocation.outcome(changed))
}
