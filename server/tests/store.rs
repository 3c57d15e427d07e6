//! The `Store` trait itself, on both backends: rotation, grace, reuse, expiry, pruning and
//! server-wide values, with explicit clocks.

mod common;

use std::sync::Arc;

use common::{pg, Backend};
use rotafetch_server::store::{self, Policy, RotateOutcome, Store, TokenHash};

const POLICY: Policy = Policy {
    session_ttl_ms: 10_000,
    idle_ttl_ms: 5_000,
    reuse_grace_ms: 1_000,
};

fn h(n: u8) -> TokenHash {
    [n; 32]
}

/// A fresh store with user "u" (returned id) and family "f" whose first token is h(1).
async fn setup(b: Backend) -> (Arc<dyn Store>, i64) {
    let db = match b {
        Backend::Sqlite => ":memory:".to_owned(),
        Backend::Postgres => pg::shared().create_db().await,
    };
    let s = store::open(&db).await.unwrap();
    let uid = s.create_user("u", "hash", 0).await.unwrap().unwrap();
    assert_eq!(s.create_user("u", "hash", 0).await.unwrap(), None);
    assert_eq!(s.user_by_name("u").await.unwrap().unwrap().id, uid);
    s.create_family(uid, "f", &h(1), 0).await.unwrap();
    (s, uid)
}

async fn rotate_grace_reuse(b: Backend) {
    let (s, uid) = setup(b).await;
    let rotate = |p: u8, now| {
        let s = s.clone();
        async move { s.rotate(&h(p), &h(p + 1), now, &POLICY).await.unwrap() }
    };
    let grace = RotateOutcome::Grace {
        user_id: uid,
        family_id: "f".into(),
    };
    assert_eq!(
        rotate(1, 100).await,
        RotateOutcome::Rotated {
            user_id: uid,
            family_id: "f".into()
        }
    );
    // A request whose clock read 90 but that got the lock after the rotation at 100 (or
    // another instance's clock, a little behind): grace, not reuse.
    assert_eq!(rotate(1, 90).await, grace);
    assert_eq!(rotate(1, 600).await, grace);
    assert_eq!(rotate(9, 600).await, RotateOutcome::Unknown);
    // `check` reports a spent token without acting.
    assert_eq!(
        s.check(&h(1), 700, &POLICY).await.unwrap(),
        RotateOutcome::Reused {
            family_id: "f".into(),
            newly_revoked: false
        }
    );
    assert!(!s.session("f").await.unwrap().unwrap().revoked);
    assert_eq!(
        rotate(1, 1_200).await,
        RotateOutcome::Reused {
            family_id: "f".into(),
            newly_revoked: true
        }
    );
    assert_eq!(rotate(2, 1_300).await, RotateOutcome::Revoked);
    let session = s.session("f").await.unwrap().unwrap();
    assert!(session.revoked);
    assert_eq!((session.user_id, session.username.as_str()), (uid, "u"));
    assert!(!s.revoke_family_of(&h(2), 1_400, "logout").await.unwrap());
}

async fn grace_ends_when_the_successor_is_used(b: Backend) {
    let (s, _) = setup(b).await;
    assert!(matches!(
        s.rotate(&h(1), &h(2), 100, &POLICY).await.unwrap(),
        RotateOutcome::Rotated { .. }
    ));
    assert!(matches!(
        s.rotate(&h(2), &h(3), 200, &POLICY).await.unwrap(),
        RotateOutcome::Rotated { .. }
    ));
    assert!(matches!(
        s.rotate(&h(1), &h(2), 300, &POLICY).await.unwrap(),
        RotateOutcome::Reused {
            newly_revoked: true,
            ..
        }
    ));
    assert!(s.session("f").await.unwrap().unwrap().revoked);
}

async fn expiry_and_prune(b: Backend) {
    let (s, uid) = setup(b).await;
    assert_eq!(
        s.rotate(&h(1), &h(2), 5_000, &POLICY).await.unwrap(),
        RotateOutcome::Expired
    );
    assert!(matches!(
        s.check(&h(1), 4_000, &POLICY).await.unwrap(),
        RotateOutcome::Valid { .. }
    ));
    // A second, logged-out family: pruned once the revocation is older than `keep`.
    s.create_family(uid, "g", &h(50), 3_000).await.unwrap();
    assert!(s.revoke_family_of(&h(50), 3_500, "logout").await.unwrap());
    assert_eq!(s.prune(4_000, &POLICY, 1_000).await.unwrap(), 0);
    assert_eq!(s.prune(4_600, &POLICY, 1_000).await.unwrap(), 1);
    assert_eq!(s.session("g").await.unwrap(), None);
    assert!(s.session("f").await.unwrap().is_some());
    assert_eq!(s.prune(6_000, &POLICY, 0).await.unwrap(), 1);
    assert_eq!(s.session("f").await.unwrap(), None);
    // Its tokens went with it.
    assert_eq!(
        s.rotate(&h(1), &h(2), 6_000, &POLICY).await.unwrap(),
        RotateOutcome::Unknown
    );
}

async fn meta_values_are_written_replaced_and_deleted(b: Backend) {
    let (s, _) = setup(b).await;
    assert_eq!(s.read_meta("k").await.unwrap(), None);
    s.write_meta("k", &[1; 4], 0).await.unwrap();
    s.write_meta("k", &[2; 4], 0).await.unwrap();
    s.write_meta("j", b"x", 0).await.unwrap();
    assert_eq!(s.read_meta("k").await.unwrap(), Some(vec![2; 4]));
    s.delete_meta(&["k", "absent"]).await.unwrap();
    assert_eq!(s.read_meta("k").await.unwrap(), None);
    assert_eq!(s.read_meta("j").await.unwrap(), Some(b"x".to_vec()));
}

on_both_backends!(
    rotate_grace_reuse,
    grace_ends_when_the_successor_is_used,
    expiry_and_prune,
    meta_values_are_written_replaced_and_deleted,
);
