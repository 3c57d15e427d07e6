//! The transactions about a refresh token: rotation, the non-rotating check and revocation.
//! Each one first locks the token's family row (see the parent module for the concurrency
//! argument), reads the rows, and runs the SQL of what `store::rules` decides.

use deadpool_postgres::{Object, Transaction};

use crate::store::rules::{
    decide_check, decide_revocation, decide_rotation, ChildRow, Decision, FamilyRow, Loaded,
    Revocation, TokenRow,
};
use crate::store::{Millis, Policy, RevokeOutcome, Rotation, TokenHash};

/// Locks the family of `presented`, then reads the token, its successor and the family.
async fn lock_and_load(
    tx: &Transaction<'_>,
    presented: &TokenHash,
) -> Result<Option<Loaded>, tokio_postgres::Error> {
    // A token's family never changes, so the sub-select needs no lock; the family row lock
    // then orders every concurrent decision about this family.
    let lock_family = tx
        .prepare_cached(
            "SELECT user_id, created_at, last_rotated_at, revoked_at IS NOT NULL, jkt FROM families
             WHERE id = (SELECT family_id FROM refresh_tokens WHERE hash = $1) FOR UPDATE",
        )
        .await?;
    let Some(f) = tx.query_opt(&lock_family, &[&&presented[..]]).await? else {
        return Ok(None);
    };
    let family = FamilyRow {
        user_id: f.get(0),
        created_at: f.get(1),
        last_rotated_at: f.get(2),
        revoked: f.get(3),
        jkt: f.get(4),
    };
    // Read under the lock: a new statement sees everything committed before we got it.
    let load_token = tx
        .prepare_cached(
            "SELECT t.family_id, t.used_at, t.bound, c.hash, c.used_at
             FROM refresh_tokens t LEFT JOIN refresh_tokens c ON c.parent_hash = t.hash
             WHERE t.hash = $1",
        )
        .await?;
    let Some(t) = tx.query_opt(&load_token, &[&&presented[..]]).await? else {
        return Ok(None);
    };
    let child = t.get::<_, Option<Vec<u8>>>(3).map(|hash| ChildRow {
        hash,
        used_at: t.get(4),
    });
    Ok(Some(Loaded {
        token: TokenRow {
            family_id: t.get(0),
            used_at: t.get(1),
            bound: t.get(2),
        },
        family: Some(family),
        child,
    }))
}

pub(super) async fn revoke(
    tx: &Transaction<'_>,
    family_id: &str,
    now: Millis,
    reason: &str,
) -> Result<bool, tokio_postgres::Error> {
    let n = tx
        .execute(
            "UPDATE families SET revoked_at = $2, revoke_reason = $3
             WHERE id = $1 AND revoked_at IS NULL",
            &[&family_id, &now, &reason],
        )
        .await?;
    Ok(n > 0)
}

/// Creates a family and its first refresh token: `$1` family id, `$2` user id, `$3` now,
/// `$4` token hash, `$5` the DPoP key thumbprint (or NULL).
pub(super) const CREATE_FAMILY: &str = "WITH family AS (
         INSERT INTO families (id, user_id, created_at, last_rotated_at, jkt)
         VALUES ($1, $2, $3, $3, $5) RETURNING id)
     INSERT INTO refresh_tokens (hash, family_id, parent_hash, issued_at, bound)
     SELECT $4, id, NULL, $3, $5::TEXT IS NOT NULL FROM family";

pub(super) async fn rotate_tx(
    client: &mut Object,
    presented: &TokenHash,
    successors: &[TokenHash],
    proof_jkt: Option<&str>,
    now: Millis,
    policy: &Policy,
) -> Result<Rotation, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let loaded = lock_and_load(&tx, presented).await?;
    // Decided under the family lock; an answer changes nothing (rolled back on return).
    let rotation = match decide_rotation(loaded, proof_jkt, successors, now, policy) {
        Decision::Answer(answer) => return Ok(answer),
        Decision::Spend(spend) => {
            let write = tx
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
            tx.execute(&write, &params).await?;
            spend.rotated()
        }
        Decision::Revoke(reuse) => {
            let newly_revoked = revoke(&tx, &reuse.family_id, now, "reuse").await?;
            reuse.outcome(newly_revoked)
        }
    };
    tx.commit().await?;
    Ok(rotation)
}

pub(super) async fn check_tx(
    client: &mut Object,
    presented: &TokenHash,
    proof_jkt: Option<&str>,
    now: Millis,
    policy: &Policy,
) -> Result<Rotation, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let loaded = lock_and_load(&tx, presented).await?;
    tx.rollback().await?;
    Ok(decide_check(loaded, proof_jkt, now, policy))
}

pub(super) async fn revoke_tx(
    client: &mut Object,
    token: &TokenHash,
    proof_jkt: Option<&str>,
    now: Millis,
    reason: &str,
) -> Result<RevokeOutcome, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    // Same lock order as a rotation: the family row first, then the token.
    let loaded = lock_and_load(&tx, token).await?;
    let revocation = decide_revocation(
        loaded.as_ref().map(|l| &l.token),
        loaded.as_ref().and_then(|l| l.family.as_ref()),
        proof_jkt,
    );
    let changed = match &revocation {
        Revocation::Revoke { family_id } => revoke(&tx, family_id, now, reason).await?,
        _ => false,
    };
    tx.commit().await?;
    Ok(revocation.outcome(changed))
}
