//! The transactions that decide about a refresh token: rotation (with the grace and reuse
//! rules), the non-rotating check and revocation. Each one first locks the token's family row
//! (see the parent module for the concurrency argument).

use deadpool_postgres::Object;

use crate::store::{
    check_outcome, dpop_mismatch, grace_applies, key_ok, mismatch_rotation, FamilyRow, Millis,
    Policy, RevokeOutcome, RotateOutcome, Rotation, TokenHash, TokenRow,
};

/// Locks the family of `presented` and returns the token and the family, if the family is
/// still live; otherwise why not.
async fn lock_live(
    tx: &deadpool_postgres::Transaction<'_>,
    presented: &TokenHash,
    now: Millis,
    policy: &Policy,
) -> Result<Result<(TokenRow, FamilyRow), RotateOutcome>, tokio_postgres::Error> {
    // A token's family never changes, so the sub-select needs no lock; the family row lock
    // then orders every concurrent decision about this family.
    let lock_family = tx
        .prepare_cached(
            "SELECT user_id, created_at, last_rotated_at, revoked_at IS NOT NULL, jkt FROM families
             WHERE id = (SELECT family_id FROM refresh_tokens WHERE hash = $1) FOR UPDATE",
        )
        .await?;
    let Some(f) = tx.query_opt(&lock_family, &[&&presented[..]]).await? else {
        return Ok(Err(RotateOutcome::Unknown));
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
        .prepare_cached("SELECT family_id, used_at, bound FROM refresh_tokens WHERE hash = $1")
        .await?;
    let Some(t) = tx.query_opt(&load_token, &[&&presented[..]]).await? else {
        return Ok(Err(RotateOutcome::Unknown));
    };
    let token = TokenRow {
        family_id: t.get(0),
        used_at: t.get(1),
        bound: t.get(2),
    };
    if let Some(dead) = family.dead(now, policy) {
        return Ok(Err(dead));
    }
    Ok(Ok((token, family)))
}

pub(super) async fn revoke(
    client: &deadpool_postgres::Transaction<'_>,
    family_id: &str,
    now: Millis,
    reason: &str,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
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

/// A rotation outcome of a family that could not be used (no binding to report).
fn unbound(outcome: RotateOutcome) -> Rotation {
    Rotation { outcome, jkt: None }
}

pub(super) async fn rotate_tx(
    client: &mut Object,
    presented: &TokenHash,
    successor: &TokenHash,
    proof_jkt: Option<&str>,
    now: Millis,
    policy: &Policy,
) -> Result<Rotation, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let (token, family) = match lock_live(&tx, presented, now, policy).await? {
        Ok(live) => live,
        Err(outcome) => return Ok(unbound(outcome)),
    };
    // Decided under the family lock, before anything is spent (rolled back on return).
    if let Some(refused) = mismatch_rotation(&token, &family, proof_jkt) {
        return Ok(refused);
    }
    let mut jkt = family.jkt.clone();
    let outcome = match token.used_at {
        None => {
            // A rotation with a proof binds an unbound family from here on.
            jkt = jkt.or_else(|| proof_jkt.map(str::to_owned));
            let spend = tx
                .prepare_cached(
                    "WITH spent AS (UPDATE refresh_tokens SET used_at = $3 WHERE hash = $1),
                          touched AS (UPDATE families SET last_rotated_at = $3, jkt = $5
                                      WHERE id = $4)
                     INSERT INTO refresh_tokens (hash, family_id, parent_hash, issued_at, bound)
                     VALUES ($2, $4, $1, $3, $5::TEXT IS NOT NULL)",
                )
                .await?;
            tx.execute(
                &spend,
                &[
                    &&presented[..],
                    &&successor[..],
                    &now,
                    &token.family_id,
                    &jkt,
                ],
            )
            .await?;
            RotateOutcome::Rotated {
                user_id: family.user_id,
                family_id: token.family_id,
            }
        }
        Some(used_at) => {
            let child = tx
                .prepare_cached("SELECT hash, used_at FROM refresh_tokens WHERE parent_hash = $1")
                .await?;
            let child = tx.query_opt(&child, &[&&presented[..]]).await?;
            let child = child
                .as_ref()
                .map(|r| (r.get::<_, &[u8]>(0), r.get::<_, Option<i64>>(1)));
            if key_ok(&family, proof_jkt) && grace_applies(used_at, child, successor, now, policy) {
                RotateOutcome::Grace {
                    user_id: family.user_id,
                    family_id: token.family_id,
                }
            } else {
                let newly_revoked = revoke(&tx, &token.family_id, now, "reuse").await?;
                RotateOutcome::Reused {
                    family_id: token.family_id,
                    newly_revoked,
                }
            }
        }
    };
    tx.commit().await?;
    Ok(Rotation { outcome, jkt })
}

pub(super) async fn check_tx(
    client: &mut Object,
    presented: &TokenHash,
    proof_jkt: Option<&str>,
    now: Millis,
    policy: &Policy,
) -> Result<Rotation, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let rotation = match lock_live(&tx, presented, now, policy).await? {
        Ok((token, family)) => match mismatch_rotation(&token, &family, proof_jkt) {
            Some(refused) => refused,
            None => {
                let jkt = family.jkt.clone();
                Rotation {
                    outcome: check_outcome(token, &family),
                    jkt,
                }
            }
        },
        Err(outcome) => unbound(outcome),
    };
    tx.rollback().await?;
    Ok(rotation)
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
    let Some(f) = tx
        .query_opt(
            "SELECT id, jkt FROM families
             WHERE id = (SELECT family_id FROM refresh_tokens WHERE hash = $1) FOR UPDATE",
            &[&&token[..]],
        )
        .await?
    else {
        return Ok(RevokeOutcome::Unchanged);
    };
    let family_id: String = f.get(0);
    let jkt: Option<String> = f.get(1);
    if jkt.is_some() {
        let t = tx
            .query_one(
                "SELECT used_at, bound FROM refresh_tokens WHERE hash = $1",
                &[&&token[..]],
            )
            .await?;
        let row = TokenRow {
            family_id: family_id.clone(),
            used_at: t.get(0),
            bound: t.get(1),
        };
        let family = FamilyRow {
            user_id: 0,
            created_at: 0,
            last_rotated_at: 0,
            revoked: false,
            jkt,
        };
        if dpop_mismatch(&row, &family, proof_jkt) {
            return Ok(RevokeOutcome::DpopMismatch);
        }
    }
    let changed = revoke(&tx, &family_id, now, reason).await?;
    tx.commit().await?;
    Ok(if changed {
        RevokeOutcome::Revoked
    } else {
        RevokeOutcome::Unchanged
    })
}
