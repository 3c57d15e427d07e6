//! Session families and their refresh tokens: login, rotation, checks, revocation, session
//! lookup and pruning. The decisions are `store::rules`'s; every multi-statement change is one
//! `BEGIN IMMEDIATE` transaction.

use anyhow::Result;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::SqliteDb;
use crate::store::rules::{
    decide_check, decide_revocation, decide_rotation, ChildRow, Decision, FamilyRow, Loaded,
    Revocation, TokenRow, DEAD_FAMILY,
};
use crate::store::{Millis, Policy, RevokeOutcome, Rotation, Session, TokenHash};

/// The presented token, its successor (if stored) and its family.
fn load(conn: &Connection, hash: &TokenHash) -> rusqlite::Result<Option<Loaded>> {
    let row = conn
        .query_row(
            "SELECT t.family_id, t.used_at, t.bound, c.hash, c.used_at
             FROM refresh_tokens t LEFT JOIN refresh_tokens c ON c.parent_hash = t.hash
             WHERE t.hash = ?1",
            params![&hash[..]],
            |r| {
                let token = TokenRow {
                    family_id: r.get(0)?,
                    used_at: r.get(1)?,
                    bound: r.get(2)?,
                };
                let child = match r.get::<_, Option<Vec<u8>>>(3)? {
                    Some(hash) => Some(ChildRow {
                        hash,
                        used_at: r.get(4)?,
                    }),
                    None => None,
                };
                Ok((token, child))
            },
        )
        .optional()?;
    let Some((token, child)) = row else {
        return Ok(None);
    };
    let family = conn
        .query_row(
            "SELECT user_id, created_at, last_rotated_at, revoked_at IS NOT NULL, jkt
             FROM families WHERE id = ?1",
            params![token.family_id],
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
        .optional()?;
    Ok(Some(Loaded {
        token,
        family,
        child,
    }))
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
        successors: &[TokenHash],
        proof_jkt: Option<&str>,
        now: Millis,
        policy: &Policy,
    ) -> Result<Rotation> {
        anyhow::ensure!(!successors.is_empty(), "a rotation needs a successor");
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let loaded = load(&tx, presented)?;
        let rotation = match decide_rotation(loaded, proof_jkt, successors, now, policy) {
            Decision::Answer(answer) => return Ok(answer),
            Decision::Spend(spend) => {
                tx.execute(
                    "UPDATE refresh_tokens SET used_at = ?2 WHERE hash = ?1",
                    params![&presented[..], now],
                )?;
                tx.execute(
                    "INSERT INTO refresh_tokens (hash, family_id, parent_hash, issued_at, bound)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        &successors[0][..],
                        spend.family_id,
                        &presented[..],
                        now,
                        spend.jkt.is_some()
                    ],
                )?;
                tx.execute(
                    "UPDATE families SET last_rotated_at = ?2, jkt = ?3 WHERE id = ?1",
                    params![spend.family_id, now, spend.jkt],
                )?;
                spend.rotated()
            }
            Decision::Revoke(reuse) => {
                let newly_revoked = revoke(&tx, &reuse.family_id, now, "reuse")?;
                reuse.outcome(newly_revoked)
            }
        };
        tx.commit()?;
        Ok(rotation)
    }

    pub fn check(
        &self,
        presented: &TokenHash,
        proof_jkt: Option<&str>,
        now: Millis,
        policy: &Policy,
    ) -> Result<Rotation> {
        let loaded = load(&self.lock(), presented)?;
        Ok(decide_check(loaded, proof_jkt, now, policy))
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
        let loaded = load(&tx, token)?;
        let revocation = decide_revocation(
            loaded.as_ref().map(|l| &l.token),
            loaded.as_ref().and_then(|l| l.family.as_ref()),
            proof_jkt,
        );
        let changed = match &revocation {
            Revocation::Revoke { family_id } => revoke(&tx, family_id, now, reason)?,
            _ => false,
        };
        tx.commit()?;
        Ok(revocation.outcome(changed))
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
