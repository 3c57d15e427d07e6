//! The provider's part of the `Store` trait on both backends, with explicit clocks: pushed
//! requests (one use, expiry, client), codes (refusals spend nothing, a redemption starts a
//! family, a reuse with what redeemed it revokes it), provider sessions and pruning.

mod common;

use std::sync::Arc;

use common::{pg, Backend};
use rotafetch_server::oidc::authorize::{AuthRequest, Prompt};
use rotafetch_server::oidc::code::{s256, CodeGrant, Presented};
use rotafetch_server::oidc::session::ProviderSession;
use rotafetch_server::store::provider::{NewFamily, Redemption, PROVIDER_KEEP_MS};
use rotafetch_server::store::{self, Policy, RotateOutcome, Store};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const POLICY: Policy = Policy {
    session_ttl_ms: 1_000_000,
    idle_ttl_ms: 1_000_000,
    reuse_grace_ms: 0,
};

async fn open(b: Backend) -> (Arc<dyn Store>, i64) {
    let db = match b {
        Backend::Sqlite => ":memory:".to_owned(),
        Backend::Postgres => pg::shared().create_db().await,
    };
    let s = store::open(&db).await.unwrap();
    let uid = s.create_user("u", "hash", 0).await.unwrap().unwrap();
    (s, uid)
}

fn request() -> AuthRequest {
    AuthRequest {
        client_id: "app".into(),
        redirect_uri: "https://app.example/cb".into(),
        state: Some("st".into()),
        scope: "openid".into(),
        code_challenge: s256(VERIFIER),
        nonce: Some("n".into()),
        prompt: Prompt::Login,
        max_age: Some(30),
        dpop_jkt: Some(s256("key")),
    }
}

async fn pushed_requests_are_taken_once(b: Backend) {
    let (s, _) = open(b).await;
    let (h1, h2) = ([1; 32], [2; 32]);
    s.put_par(&h1, &request(), 1_060).await.unwrap();
    s.put_par(&h2, &request(), 1_060).await.unwrap();
    let take = |h, client: &'static str, now| {
        let s = s.clone();
        async move { s.take_par(&h, client, now).await.unwrap() }
    };
    assert!(take(h1, "other", 1_000).await.is_err(), "another client");
    assert_eq!(
        take(h1, "app", 1_000).await,
        Ok(request()),
        "the refusal spent nothing"
    );
    assert_eq!(
        take(h1, "app", 1_001).await,
        Err("request_uri was already used")
    );
    assert_eq!(take(h2, "app", 1_060).await, Err("request_uri expired"));
    assert_eq!(
        take([3; 32], "app", 1_000).await,
        Err("request_uri unknown")
    );
    assert_eq!(s.prune_provider(1_060).await.unwrap(), 2);
    assert_eq!(take(h1, "app", 1_000).await, Err("request_uri unknown"));
}

async fn codes_redeem_once_and_reuse_revokes(b: Backend) {
    let (s, uid) = open(b).await;
    let grant = CodeGrant {
        client_id: "app".into(),
        redirect_uri: "https://app.example/cb".into(),
        code_challenge: s256(VERIFIER),
        dpop_jkt: Some("jkt".into()),
        nonce: None,
        scope: "openid".into(),
        user_id: uid,
        session_id: "sess".into(),
        auth_time: 900,
    };
    s.put_code(&[1; 32], &grant, 1_060).await.unwrap();
    let good = Presented {
        client_id: "app".into(),
        redirect_uri: "https://app.example/cb".into(),
        code_verifier: VERIFIER.into(),
        proof_jkt: Some("jkt".into()),
    };
    let redeem = |p: Presented, fam: &'static str, tok: u8, now| {
        let s = s.clone();
        async move {
            let family = NewFamily {
                family_id: fam,
                token: &[tok; 32],
            };
            s.redeem_code(&[1; 32], &p, family, now).await.unwrap()
        }
    };
    // Refusals leave the code as it was.
    let no_key = Presented {
        proof_jkt: None,
        ..good.clone()
    };
    assert!(
        matches!(redeem(no_key, "f0", 10, 1_000).await, Redemption::Refused(d) if d.contains("DPoP"))
    );
    let bad_verifier = Presented {
        code_verifier: "x".repeat(43),
        ..good.clone()
    };
    assert!(matches!(
        redeem(bad_verifier, "f0", 10, 1_000).await,
        Redemption::Refused(_)
    ));
    assert_eq!(
        redeem(good.clone(), "f1", 11, 1_000).await,
        Redemption::Redeemed {
            grant: grant.clone(),
            jkt: Some("jkt".into())
        }
    );
    // The family exists, bound, with its first token.
    let rotated = s
        .rotate_dpop(&[11; 32], &[[12; 32]], Some("jkt"), 1_001, &POLICY)
        .await
        .unwrap();
    assert_eq!(rotated.jkt.as_deref(), Some("jkt"));
    assert!(matches!(rotated.outcome, RotateOutcome::Rotated { .. }));
    // A second use without what redeemed it (another client, no key): refused, and nothing
    // is revoked; with it: refused, and the family is revoked.
    let wrong_client = Presented {
        client_id: "other".into(),
        ..good.clone()
    };
    assert!(matches!(
        redeem(wrong_client, "f2", 13, 1_002).await,
        Redemption::Refused(_)
    ));
    let no_key = Presented {
        proof_jkt: None,
        ..good.clone()
    };
    assert!(matches!(
        redeem(no_key, "f2", 13, 1_002).await,
        Redemption::Refused(_)
    ));
    assert!(!s.session("f1").await.unwrap().unwrap().revoked);
    assert_eq!(
        redeem(good.clone(), "f2", 13, 1_002).await,
        Redemption::Reused {
            family_id: Some("f1".into()),
            newly_revoked: true
        }
    );
    assert!(s.session("f1").await.unwrap().unwrap().revoked);
    assert!(s.session("f2").await.unwrap().is_none(), "nothing issued");
    assert_eq!(
        redeem(good.clone(), "f3", 14, 1_003).await,
        Redemption::Reused {
            family_id: Some("f1".into()),
            newly_revoked: false
        }
    );
    assert_eq!(
        s.redeem_code(
            &[9; 32],
            &good,
            NewFamily {
                family_id: "f4",
                token: &[15; 32]
            },
            1_000
        )
        .await
        .unwrap(),
        Redemption::Unknown
    );
    // An unredeemed code expires; used codes are kept for reuse detection, then pruned.
    s.put_code(&[2; 32], &grant, 1_060).await.unwrap();
    assert_eq!(
        s.redeem_code(
            &[2; 32],
            &good,
            NewFamily {
                family_id: "f5",
                token: &[16; 32]
            },
            1_060
        )
        .await
        .unwrap(),
        Redemption::Refused("authorization code expired")
    );
    assert_eq!(
        s.prune_provider(1_060 + PROVIDER_KEEP_MS - 1)
            .await
            .unwrap(),
        0
    );
    assert_eq!(s.prune_provider(1_060 + PROVIDER_KEEP_MS).await.unwrap(), 2);
}

async fn provider_sessions_live_end_and_expire(b: Backend) {
    let (s, uid) = open(b).await;
    let sess = ProviderSession {
        id: "sid".into(),
        user_id: uid,
        auth_time: 1_000,
    };
    s.create_provider_session(&sess, &[1; 32], 5_000)
        .await
        .unwrap();
    s.create_provider_session(
        &ProviderSession {
            id: "sid2".into(),
            ..sess.clone()
        },
        &[2; 32],
        5_000,
    )
    .await
    .unwrap();
    assert_eq!(
        s.provider_session(&[1; 32], 4_999).await.unwrap(),
        Some(sess.clone())
    );
    assert_eq!(
        s.provider_session(&[1; 32], 5_000).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(s.provider_session(&[3; 32], 1_000).await.unwrap(), None);
    assert!(s.end_provider_session(&[1; 32], 2_000).await.unwrap());
    assert!(
        !s.end_provider_session(&[1; 32], 2_001).await.unwrap(),
        "ended once"
    );
    assert_eq!(s.provider_session(&[1; 32], 2_002).await.unwrap(), None);
    assert_eq!(
        s.provider_session(&[2; 32], 2_002)
            .await
            .unwrap()
            .unwrap()
            .id,
        "sid2"
    );
    // The ended one goes an hour after it ended, the other an hour after it expired.
    assert_eq!(s.prune_provider(2_000 + PROVIDER_KEEP_MS).await.unwrap(), 1);
    assert_eq!(s.prune_provider(5_000 + PROVIDER_KEEP_MS).await.unwrap(), 1);
    // Revocation by family id (an access token's session).
    s.create_family(uid, "fam", &[7; 32], 0).await.unwrap();
    assert!(s
        .revoke_family_by_id("fam", 10, "revocation")
        .await
        .unwrap());
    assert!(!s
        .revoke_family_by_id("fam", 11, "revocation")
        .await
        .unwrap());
    assert!(!s
        .revoke_family_by_id("nope", 11, "revocation")
        .await
        .unwrap());
}

on_both_backends!(
    pushed_requests_are_taken_once,
    codes_redeem_once_and_reuse_revokes,
    provider_sessions_live_end_and_expire,
);
