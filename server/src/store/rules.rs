//! The rules that decide about a refresh token, as pure functions of the rows a store read
//! under the family's lock (time passed in). Each store loads the presented token, its
//! family and the token's successor, asks [`decide_rotation`] or [`decide_revocation`], and
//! runs the SQL of the answer: the rotation logic exists once, here.
//!
//! The rules, in the order they apply:
//! 1. an unknown token, or a token whose family is gone: `Unknown`;
//! 2. a dead family: `Revoked` (logout, reuse) or `Expired` (session or idle lifetime);
//! 3. the DPoP binding ([`dpop_mismatch`]): a bound family refuses a request without a proof
//!    by its key, changing nothing;
//! 4. an unspent token: rotate (spend it, store the successor, bind the family to the
//!    proof's key if it was unbound), or report it `Valid` when only checking;
//! 5. a spent token: the grace rule ([`grace_applies`]) answers again with the same
//!    successor; otherwise it is reuse and the family is revoked.

use super::{JtiOutcome, Millis, Policy, RevokeOutcome, RotateOutcome, Rotation, TokenHash};

/// A refresh token row: its family and when it was spent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub family_id: String,
    pub used_at: Option<Millis>,
    /// Issued while its family was DPoP-bound (a sender-constrained token).
    pub bound: bool,
}

/// A family row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyRow {
    pub user_id: i64,
    pub created_at: Millis,
    pub last_rotated_at: Millis,
    pub revoked: bool,
    /// The DPoP key thumbprint the family is bound to.
    pub jkt: Option<String>,
}

/// The stored successor (child) of the presented token: its hash and when it was spent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildRow {
    pub hash: Vec<u8>,
    pub used_at: Option<Millis>,
}

/// What a store read about the presented token, under its family's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub token: TokenRow,
    /// `None` if the family row is gone (pruned).
    pub family: Option<FamilyRow>,
    pub child: Option<ChildRow>,
}

/// What the store must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Change nothing; answer this.
    Answer(Rotation),
    /// Spend the presented token, store its successor (bound if `jkt` is set) and stamp the
    /// family rotated now, bound to `jkt`; then answer [`Spend::rotated`].
    Spend(Spend),
    /// Revoke the family for reuse; then answer [`Reuse::outcome`].
    Revoke(Reuse),
}

/// A rotation to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spend {
    pub family_id: String,
    pub user_id: i64,
    /// The family's binding from this rotation on.
    pub jkt: Option<String>,
}

impl Spend {
    /// The answer once the rotation is written.
    pub fn rotated(self) -> Rotation {
        Rotation {
            outcome: RotateOutcome::Rotated {
                user_id: self.user_id,
                family_id: self.family_id,
            },
            jkt: self.jkt,
            successor: 0,
        }
    }
}

/// A reuse to act on: the family to revoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reuse {
    pub family_id: String,
    pub jkt: Option<String>,
}

impl Reuse {
    /// The answer once the revocation ran; `newly_revoked`: it changed the family.
    pub fn outcome(self, newly_revoked: bool) -> Rotation {
        Rotation {
            outcome: RotateOutcome::Reused {
                family_id: self.family_id,
                newly_revoked,
            },
            jkt: self.jkt,
            successor: 0,
        }
    }
}

/// What a logout must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// Nothing (unknown token).
    Unchanged,
    /// Refused: the family is DPoP-bound and the request did not prove its key.
    DpopMismatch,
    /// Revoke this family (a no-op for one revoked before).
    Revoke { family_id: String },
}

impl Revocation {
    /// The answer once the revocation ran (`changed`: it changed the family).
    pub fn outcome(&self, changed: bool) -> RevokeOutcome {
        match self {
            Revocation::DpopMismatch => RevokeOutcome::DpopMismatch,
            Revocation::Revoke { .. } if changed => RevokeOutcome::Revoked,
            _ => RevokeOutcome::Unchanged,
        }
    }
}

/// `Some(outcome)` if the family can no longer be used (revoked or expired).
pub fn dead(family: &FamilyRow, now: Millis, policy: &Policy) -> Option<RotateOutcome> {
    if family.revoked {
        return Some(RotateOutcome::Revoked);
    }
    let expired = now >= family.created_at.saturating_add(policy.session_ttl_ms)
        || now >= family.last_rotated_at.saturating_add(policy.idle_ttl_ms);
    expired.then_some(RotateOutcome::Expired)
}

/// The grace rule: a token spent at `used_at` may be answered again with its successor if
/// that is recent enough and the stored child is still unused and one of `successors` (the
/// successor as each refresh key derives it). Returns which one.
pub fn grace_applies(
    used_at: Millis,
    child: Option<&ChildRow>,
    successors: &[TokenHash],
    now: Millis,
    policy: &Policy,
) -> Option<usize> {
    // `now` is taken before the transaction waits for its lock, and instances' clocks differ
    // a little: a `used_at` slightly after `now` means "just now", not "outside the window".
    let elapsed = now.saturating_sub(used_at).max(0);
    let within_window = policy.reuse_grace_ms > 0 && elapsed <= policy.reuse_grace_ms;
    let child = child.filter(|c| within_window && c.used_at.is_none())?;
    successors
        .iter()
        .position(|s| child.hash.as_slice() == &s[..])
}

/// The DPoP binding rule, decided under the family lock before anything is spent: true if
/// the request must be refused with `DpopMismatch` (nothing changed, no reuse, no revocation).
///
/// A bound family requires a proof by its key (`proof_jkt == family.jkt`). Without one, the
/// request is refused when the presented token is unspent or was itself issued bound. The
/// one exception is a spent token issued *before* the family was bound (the token a refresh
/// with a proof spent to bind an unbound family): it was a plain bearer token, so presenting
/// it again stays ordinary reuse (it revokes the family). Otherwise a thief who stole an
/// unbound token could bind the family to their own key and so disarm reuse detection.
pub fn dpop_mismatch(token: &TokenRow, family: &FamilyRow, proof_jkt: Option<&str>) -> bool {
    !key_ok(family, proof_jkt) && (token.used_at.is_none() || token.bound)
}

/// Whether the request proved the family's key (always true for an unbound family). The
/// grace rule never answers a bound family without it.
pub fn key_ok(family: &FamilyRow, proof_jkt: Option<&str>) -> bool {
    family.jkt.is_none() || family.jkt.as_deref() == proof_jkt
}

/// Rules 1-3: the live token, family and child, or the answer that changes nothing.
fn screen(
    loaded: Option<Loaded>,
    proof_jkt: Option<&str>,
    now: Millis,
    policy: &Policy,
) -> Result<(TokenRow, FamilyRow, Option<ChildRow>), Rotation> {
    let answer = |outcome, jkt| {
        Err(Rotation {
            outcome,
            jkt,
            successor: 0,
        })
    };
    let Some(Loaded {
        token,
        family: Some(family),
        child,
    }) = loaded
    else {
        return answer(RotateOutcome::Unknown, None);
    };
    if let Some(outcome) = dead(&family, now, policy) {
        return answer(outcome, None);
    }
    if dpop_mismatch(&token, &family, proof_jkt) {
        let outcome = RotateOutcome::DpopMismatch {
            family_id: token.family_id,
        };
        return answer(outcome, family.jkt);
    }
    Ok((token, family, child))
}

/// The decision about presenting a refresh token (`loaded`: `None` if the token is unknown)
/// with a proof by `proof_jkt`, whose successor is `successors[0]` (and, as older or newer
/// refresh keys derive it, the others).
pub fn decide_rotation(
    loaded: Option<Loaded>,
    proof_jkt: Option<&str>,
    successors: &[TokenHash],
    now: Millis,
    policy: &Policy,
) -> Decision {
    let (token, family, child) = match screen(loaded, proof_jkt, now, policy) {
        Ok(live) => live,
        Err(answer) => return Decision::Answer(answer),
    };
    let (user_id, family_id) = (family.user_id, token.family_id);
    let Some(used_at) = token.used_at else {
        // A rotation with a proof binds an unbound family from here on.
        return Decision::Spend(Spend {
            family_id,
            user_id,
            jkt: family.jkt.or_else(|| proof_jkt.map(str::to_owned)),
        });
    };
    let grace = grace_applies(used_at, child.as_ref(), successors, now, policy);
    if let Some(successor) = grace.filter(|_| key_ok(&family, proof_jkt)) {
        let outcome = RotateOutcome::Grace { user_id, family_id };
        return Decision::Answer(Rotation {
            outcome,
            jkt: family.jkt,
            successor,
        });
    }
    Decision::Revoke(Reuse {
        family_id,
        jkt: family.jkt,
    })
}

/// What presenting a token reports without changing anything (the non-rotating test fault):
/// `Valid` for a usable unspent token, `Reused` (without acting) for a spent one, else what
/// [`decide_rotation`] would answer.
pub fn decide_check(
    loaded: Option<Loaded>,
    proof_jkt: Option<&str>,
    now: Millis,
    policy: &Policy,
) -> Rotation {
    let (token, family, _) = match screen(loaded, proof_jkt, now, policy) {
        Ok(live) => live,
        Err(answer) => return answer,
    };
    let family_id = token.family_id;
    let outcome = match token.used_at {
        None => RotateOutcome::Valid {
            user_id: family.user_id,
            family_id,
        },
        Some(_) => RotateOutcome::Reused {
            family_id,
            newly_revoked: false,
        },
    };
    Rotation {
        outcome,
        jkt: family.jkt,
        successor: 0,
    }
}

/// The decision about a logout presenting `token` (in `family`; either `None` if unknown).
pub fn decide_revocation(
    token: Option<&TokenRow>,
    family: Option<&FamilyRow>,
    proof_jkt: Option<&str>,
) -> Revocation {
    let Some(token) = token else {
        return Revocation::Unchanged;
    };
    if family.is_some_and(|f| dpop_mismatch(token, f, proof_jkt)) {
        return Revocation::DpopMismatch;
    }
    Revocation::Revoke {
        family_id: token.family_id.clone(),
    }
}

/// The replay-cache rule: a key recorded and unexpired (`live`) is a replay; otherwise the
/// cache is full when its entries span `cap` entry numbers (`span`: highest - lowest + 1;
/// entries are numbered as recorded, so this bounds the rows without counting them).
pub fn jti_outcome(live: Option<bool>, span: Option<i64>, cap: u64) -> JtiOutcome {
    if live == Some(true) {
        return JtiOutcome::Replayed;
    }
    let span = u64::try_from(span.unwrap_or(0)).unwrap_or(0);
    if span >= cap {
        JtiOutcome::Full
    } else {
        JtiOutcome::Fresh
    }
}

/// The `WHERE` condition (on `families`) of a family that ended before `$1` (cutoff), with
/// `$2` = session TTL and `$3` = idle TTL in milliseconds. Placeholders are rewritten per
/// backend.
pub const DEAD_FAMILY: &str = "(revoked_at IS NOT NULL AND revoked_at < $1)
     OR created_at + $2 < $1
     OR last_rotated_at + $3 < $1";

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        session_ttl_ms: 10_000,
        idle_ttl_ms: 5_000,
        reuse_grace_ms: 1_000,
    };
    const NEXT: TokenHash = [2; 32];

    fn family(jkt: Option<&str>) -> FamilyRow {
        FamilyRow {
            user_id: 7,
            created_at: 0,
            last_rotated_at: 0,
            revoked: false,
            jkt: jkt.map(str::to_owned),
        }
    }

    fn token(used_at: Option<Millis>, bound: bool) -> TokenRow {
        TokenRow {
            family_id: "f".into(),
            used_at,
            bound,
        }
    }

    fn loaded(token: TokenRow, family: FamilyRow, child: Option<ChildRow>) -> Option<Loaded> {
        Some(Loaded {
            token,
            family: Some(family),
            child,
        })
    }

    fn unused_child() -> Option<ChildRow> {
        Some(ChildRow {
            hash: NEXT.to_vec(),
            used_at: None,
        })
    }

    fn decide(l: Option<Loaded>, jkt: Option<&str>, now: Millis) -> Decision {
        decide_rotation(l, jkt, &[NEXT], now, &POLICY)
    }

    fn check(l: Option<Loaded>, now: Millis) -> RotateOutcome {
        decide_check(l, None, now, &POLICY).outcome
    }

    fn outcome(d: Decision) -> RotateOutcome {
        match d {
            Decision::Answer(r) => r.outcome,
            other => panic!("expected an answer, got {other:?}"),
        }
    }

    #[test]
    fn unknown_and_dead_families_change_nothing() {
        assert_eq!(outcome(decide(None, None, 0)), RotateOutcome::Unknown);
        let orphan = Some(Loaded {
            token: token(None, false),
            family: None,
            child: None,
        });
        assert_eq!(outcome(decide(orphan, None, 0)), RotateOutcome::Unknown);
        let revoked = FamilyRow {
            revoked: true,
            ..family(None)
        };
        let l = loaded(token(None, false), revoked, None);
        assert_eq!(outcome(decide(l, None, 0)), RotateOutcome::Revoked);
        // Idle for 5 s, or 10 s old although rotated recently: expired.
        let l = loaded(token(None, false), family(None), None);
        assert_eq!(outcome(decide(l, None, 5_000)), RotateOutcome::Expired);
        let recent = FamilyRow {
            last_rotated_at: 9_000,
            ..family(None)
        };
        let l = loaded(token(None, false), recent, None);
        assert_eq!(outcome(decide(l, None, 10_000)), RotateOutcome::Expired);
    }

    #[test]
    fn an_unspent_token_rotates_and_a_proof_binds_the_family() {
        let l = loaded(token(None, false), family(None), None);
        let d = decide(l.clone(), None, 100);
        assert_eq!(
            d,
            Decision::Spend(Spend {
                family_id: "f".into(),
                user_id: 7,
                jkt: None
            })
        );
        let Decision::Spend(s) = decide(l.clone(), Some("k"), 100) else {
            panic!("rotation expected");
        };
        assert_eq!(s.jkt.as_deref(), Some("k"));
        assert_eq!(s.rotated().jkt.as_deref(), Some("k"));
        let valid = check(l, 100);
        assert_eq!(
            valid,
            RotateOutcome::Valid {
                user_id: 7,
                family_id: "f".into()
            }
        );
    }

    #[test]
    fn grace_needs_the_window_the_same_unused_successor_and_the_key() {
        let spent = |at| token(Some(at), false);
        let grace = RotateOutcome::Grace {
            user_id: 7,
            family_id: "f".into(),
        };
        let l = loaded(spent(100), family(None), unused_child());
        assert_eq!(outcome(decide(l.clone(), None, 1_100)), grace);
        // A retry whose clock read before the first use: "just now".
        assert_eq!(outcome(decide(l.clone(), None, 50)), grace);
        let reuse = Decision::Revoke(Reuse {
            family_id: "f".into(),
            jkt: None,
        });
        assert_eq!(decide(l.clone(), None, 1_101), reuse);
        let used_child = Some(ChildRow {
            hash: NEXT.to_vec(),
            used_at: Some(200),
        });
        let l2 = loaded(spent(100), family(None), used_child);
        assert_eq!(decide(l2, None, 300), reuse);
        let other_child = Some(ChildRow {
            hash: vec![3; 32],
            used_at: None,
        });
        let l3 = loaded(spent(100), family(None), other_child);
        assert_eq!(decide(l3, None, 300), reuse);
        let no_grace = Policy {
            reuse_grace_ms: 0,
            ..POLICY
        };
        let d = decide_rotation(l.clone(), None, &[NEXT], 100, &no_grace);
        assert_eq!(d, reuse);
        // A successor an older refresh key derived: grace, answered with that one.
        let d = decide_rotation(l.clone(), None, &[[5; 32], NEXT], 1_000, &POLICY);
        let Decision::Answer(r) = d else {
            panic!("grace expected")
        };
        assert_eq!((r.outcome, r.successor), (grace.clone(), 1));
        // Checking a spent token reports reuse without acting.
        assert!(matches!(
            check(l, 300),
            RotateOutcome::Reused {
                newly_revoked: false,
                ..
            }
        ));
    }

    #[test]
    fn bound_families_refuse_requests_without_their_key() {
        let bound = family(Some("k"));
        let mismatch = RotateOutcome::DpopMismatch {
            family_id: "f".into(),
        };
        for jkt in [None, Some("other")] {
            // Unspent, or spent but issued bound: refused, nothing changes.
            let l = loaded(token(None, true), bound.clone(), None);
            let Decision::Answer(r) = decide(l, jkt, 100) else {
                panic!("refusal expected");
            };
            assert_eq!((r.outcome, r.jkt.as_deref()), (mismatch.clone(), Some("k")));
            let l = loaded(token(Some(50), true), bound.clone(), unused_child());
            assert_eq!(outcome(decide(l, jkt, 100)), mismatch);
            // The bearer token spent to bind the family: ordinary reuse, never grace.
            let l = loaded(token(Some(50), false), bound.clone(), unused_child());
            assert!(matches!(decide(l, jkt, 100), Decision::Revoke(_)));
        }
        let l = loaded(token(Some(50), true), bound.clone(), unused_child());
        assert!(matches!(
            outcome(decide(l, Some("k"), 100)),
            RotateOutcome::Grace { .. }
        ));
        let l = loaded(token(None, true), bound, None);
        let Decision::Spend(s) = decide(l, Some("k"), 100) else {
            panic!("rotation expected");
        };
        assert_eq!(s.jkt.as_deref(), Some("k"), "stays bound to its key");
    }

    #[test]
    fn the_replay_cache_refuses_live_keys_and_a_full_span() {
        assert_eq!(jti_outcome(None, None, 3), JtiOutcome::Fresh, "empty");
        assert_eq!(
            jti_outcome(Some(false), Some(2), 3),
            JtiOutcome::Fresh,
            "expired: reused"
        );
        assert_eq!(jti_outcome(Some(true), Some(1), 3), JtiOutcome::Replayed);
        assert_eq!(jti_outcome(None, Some(3), 3), JtiOutcome::Full);
        assert_eq!(
            jti_outcome(Some(true), Some(9), 3),
            JtiOutcome::Replayed,
            "a replay first"
        );
    }

    #[test]
    fn logout_of_a_bound_family_needs_its_key() {
        let (t, bound) = (token(None, true), family(Some("k")));
        assert_eq!(decide_revocation(None, None, None), Revocation::Unchanged);
        let revoke = Revocation::Revoke {
            family_id: "f".into(),
        };
        assert_eq!(decide_revocation(Some(&t), Some(&bound), Some("k")), revoke);
        assert_eq!(
            decide_revocation(Some(&t), Some(&bound), None),
            Revocation::DpopMismatch
        );
        assert_eq!(
            decide_revocation(Some(&t), Some(&family(None)), None),
            revoke
        );
        assert_eq!(revoke.outcome(true), RevokeOutcome::Revoked);
        assert_eq!(revoke.outcome(false), RevokeOutcome::Unchanged);
        assert_eq!(
            Revocation::DpopMismatch.outcome(false),
            RevokeOutcome::DpopMismatch
        );
    }
}
