//! Session families and their refresh tokens: login, rotation with the grace and reuse
//! rules, checks, revocation, session lookup and pruning. Every multi-statement change is one
//! `BEGIN IMMEDIATE` transaction.

use anyhow::Result;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::SqliteDb;
use crate::store::{
    check_outcome, dpop_mismatch, grace_applies, key_ok, mismatch_rotation, FamilyRow, Millis,
    Policy, RevokeOutcome, RotateOutcome, Rotation, Session, TokenHash, TokenRow, DEAD_FAMILY,
};

fn load_token(conn: &Connection, hash: &TokenHash) -> rusqlite::Result<Option<TokenRow>> {
    conn.query_row(
        "SELECT family_id, used_at, bound FROM refresh_tokens WHERE hash = ?1",
        params![&hash[..]],
        |r| {
            Ok(TokenRow {
                family_id: r.get(0)?,
                used_at: r.get(1)?,
                bound: r.get(2)?,
            })
        },
    )
    .optional()
}

fn load_family(conn: &Connection, id: &str) -> rusqlite::Result<Option<FamilyRow>> {
    conn.query_row(
        "SELECT user_id, created_at, last_rotated_at, revoked_at IS NOT NULL, jkt
         FROM families WHERE id = ?1",
        params![id],
        |r| {
            Ok(FamilyRow {
                user_id: r.get(0)?,
                created_at: r.get(1)?,
                last_rotated_at: r.get(2)?,
                revoked: r.get(3)?,
                jkt: r.get(4)?,
            })
        },
    )
    .optional()
}

/// The presented token and its family, if the family is still live; otherwise why not.
fn load_live(
    conn: &Connection,
    presented: &TokenHash,
    now: Millis,
    policy: &Policy,
) -> rusqlite::Result<Result<(TokenRow, FamilyRow), RotateOutcome>> {
    let Some(token) = load_token(conn, presented)? else {
        return Ok(Err(RotateOutcome::Unknown));
    };
    let Some(family) = load_family(conn, &token.family_id)? else {
        return Ok(Err(RotateOutcome::Unknown));
    };
    if let Some(dead) = family.dead(now, policy) {
        return Ok(Err(dead));
    }
    Ok(Ok((token, family)))
}

pub(super) fn revoke(
    conn: &Connection,
    family_id: &str,
    now: Millis,
    reason: &str,
) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE families SET revoked_at = ?2, revoke_reason = ?3
         WHERE id = ?1 AND revoked_at IS NULL",
        params![family_id, now, reason],
    )?;
    Ok(n > 0)
}

/// Inserts a new family and its first refresh token (inside the caller's transaction).
pub(super) fn insert_family(
    conn: &Connection,
    user_id: i64,
    family_id: &str,
    token: &TokenHash,
    jkt: Option<&str>,
    now: Millis,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO families (id, user_id, created_at, last_rotated_at, jkt)
         VALUES (?1, ?2, ?3, ?3, ?4)",
        params![family_id, user_id, now, jkt],
    )?;
    conn.execute(
        "INSERT INTO refresh_tokens (hash, family_id, parent_hash, issued_at, bound)
         VALUES (?1, ?2, NULL, ?3, ?4)",
        params![&token[..], family_id, now, jkt.is_some()],
    )?;
    Ok(())
}

/// A rotation outcome of a family that could not be used (no binding to report).
fn unbound(outcome: RotateOutcome) -> Rotation {
    Rotation { outcome, jkt: None }
}

impl SqliteDb {
    pub fn create_family(
        &self,
        user_id: i64,
        family_id: &str,
        token: &TokenHash,
        jkt: Option<&str>,
        now: Millis,
    ) -> Result<()> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        insert_family(&tx, user_id, family_id, token, jkt, now)?;
        tx.commit()?;
        Ok(())
    }

    pub fn rotate(
        &self,
        presented: &TokenHash,
        successor: &TokenHash,
        proof_jkt: Option<&str>,
        now: Millis,
        policy: &Policy,
    ) -> Result<Rotation> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (token, family) = match load_live(&tx, presented, now, policy)? {
            Ok(live) => live,
            Err(outcome) => return Ok(unbound(outcome)),
        };
        if let Some(refused) = mismatch_rotation(&token, &family, proof_jkt) {
            return Ok(refused);
        }
        let mut jkt = family.jkt.clone();
        let outcome = match token.used_at {
            None => {
                // A rotation with a proof binds an unbound family from here on.
                jkt = jkt.or_else(|| proof_jkt.map(str::to_owned));
                tx.execute(
                    "UPDATE refresh_tokens SET used_at = ?2 WHERE hash = ?1",
                    params![&presented[..], now],
                )?;
                tx.execute(
                    "INSERT INTO refresh_tokens (hash, family_id, parent_hash, issued_at, bound)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        &successor[..],
                        token.family_id,
                        &presented[..],
                        now,
                        jkt.is_some()
                    ],
                )?;
                tx.execute(
                    "UPDATE families SET last_rotated_at = ?2, jkt = ?3 WHERE id = ?1",
                    params![token.family_id, now, jkt],
                )?;
                RotateOutcome::Rotated {
                    user_id: family.user_id,
                    family_id: token.family_id,
                }
            }
            Some(used_at) => {
                let child: Option<(Vec<u8>, Option<Millis>)> = tx
                    .query_row(
                        "SELECT hash, used_at FROM refresh_tokens WHERE parent_hash = ?1",
                        params![&presented[..]],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                let child = child.as_ref().map(|(hash, used)| (hash.as_slice(), *used));
                if key_ok(&family, proof_jkt)
                    && grace_applies(used_at, child, successor, now, policy)
                {
                    RotateOutcome::Grace {
                        user_id: family.user_id,
                        family_id: token.family_id,
                    }
                } else {
                    let newly_revoked = revoke(&tx, &token.family_id, now, "reuse")?;
                    RotateOutcome::Reused {
                        family_id: token.family_id,
                        newly_revoked,
                    }
                }
            }
        };
        tx.commit()?;
        Ok(Rotation { outcome, jkt })
    }

    pub fn check(
        &self,
        presented: &TokenHash,
        proof_jkt: Option<&str>,
        now: Millis,
        policy: &Policy,
    ) -> Result<Rotation> {
        let conn = self.lock();
        let (token, family) = match load_live(&conn, presented, now, policy)? {
            Ok(live) => live,
            Err(outcome) => return Ok(unbound(outcome)),
        };
        if let Some(refused) = mismatch_rotation(&token, &family, proof_jkt) {
            return Ok(refused);
        }
        let outcome = check_outcome(token, &family);
        Ok(Rotation {
            outcome,
            jkt: family.jkt,
        })
    }

    pub fn revoke_family_of(
        &self,
        token: &TokenHash,
        proof_jkt: Option<&str>,
        now: Millis,
        reason: &str,
    ) -> Result<RevokeOutcome> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let Some(row) = load_token(&tx, token)? else {
            return Ok(RevokeOutcome::Unchanged);
        };
        if let Some(family) = load_family(&tx, &row.family_id)? {
            if dpop_mismatch(&row, &family, proof_jkt) {
                return Ok(RevokeOutcome::DpopMismatch);
            }
        }
        let changed = revoke(&tx, &row.family_id, now, reason)?;
        tx.commit()?;
        Ok(if changed {
            RevokeOutcome::Revoked
        } else {
            RevokeOutcome::Unchanged
        })
    }

    pub fn session(&self, family_id: &str) -> Result<Option<Session>> {
        Ok(self
            .lock()
            .query_row(
                "SELECT f.id, f.user_id, u.username, f.revoked_at IS NOT NULL
                 FROM families f JOIN users u ON u.id = f.user_id WHERE f.id = ?1",
                params![family_id],
                |r| {
                    Ok(Session {
                        family_id: r.get(0)?,
                        user_id: r.get(1)?,
                        username: r.get(2)?,
                        revoked: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    pub fn prune(&self, now: Millis, policy: &Policy, keep_ms: i64) -> Result<usize> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let cutoff = now.saturating_sub(keep_ms);
        let dead = format!(
            "SELECT id FROM families WHERE {}",
            DEAD_FAMILY.replace('$', "?")
        );
        tx.execute(
            &format!("DELETE FROM refresh_tokens WHERE family_id IN ({dead})"),
            params![cutoff, policy.session_ttl_ms, policy.idle_ttl_ms],
        )?;
        let n = tx.execute(
            &format!("DELETE FROM families WHERE id IN ({dead})"),
            params![cutoff, policy.session_ttl_ms, policy.idle_ttl_ms],
        )?;
        tx.commit()?;
        Ok(n)
    }
}
