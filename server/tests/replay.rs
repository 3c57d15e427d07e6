//! The DPoP replay cache under attack (issue 25): made-up proofs (a fresh key each, no
//! credential) record nothing, so they cannot fill the cache and switch DPoP off for
//! everyone; an address whose proofs keep failing is refused before the store; the
//! acceptance window is short (iat at most 5 s ahead, entries at most 60 s); a replayed
//! refresh proof spends nothing. On both stores.

mod common;

use std::time::Duration;

use common::dpop::*;
use common::{json_error, Backend, TestServer};
use rotafetch_server::throttle::Budget;
use serde_json::json;

async fn jti_rows(s: &TestServer) -> i64 {
    s.scalar("SELECT COUNT(*) FROM dpop_jti", None).await
}

async fn logout_with(s: &TestServer, token: &str, proof: String) -> u16 {
    let r = s
        .client
        .post(s.url("/auth/logout"))
        .header("DPoP", proof)
        .json(&json!({ "refresh_token": token }))
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

/// `free` failed proofs per address, then a back-off from `base_ms`, at most a minute,
/// forgotten a minute after the latest.
fn proof_budget(free: u32, base_ms: i64) -> Budget {
    Budget {
        free,
        base_ms,
        max_ms: 60_000,
        forget_ms: 60_000,
    }
}

async fn made_up_proofs_cannot_fill_the_replay_cache(b: Backend) {
    let s = TestServer::start_on(b, |c| c.dpop_jti_cap = 5).await;
    let (logout, refresh, me) = (
        s.url("/auth/logout"),
        s.url("/auth/refresh"),
        s.url("/api/me"),
    );
    for _ in 0..8 {
        // The hole at 4538bdb: an empty logout with a self-made proof stored its jti.
        assert_eq!(
            logout_with(&s, "", Key::es256().proof("POST", &logout)).await,
            204
        );
        let r = s
            .refresh_dpop("made-up-token", Some(Key::es256().proof("POST", &refresh)))
            .await;
        assert_eq!(refused(r).await, (400, "invalid_grant".to_owned()));
        let r = s
            .me_with("DPoP made.up.token", Some(Key::eddsa().proof("GET", &me)))
            .await;
        assert_eq!(r.status(), 401);
    }
    // Wrong passwords with proofs: the proof is never recorded either.
    for _ in 0..4 {
        let r = s
            .client
            .post(s.url("/auth/login"))
            .header("DPoP", Key::es256().proof("POST", &s.url("/auth/login")))
            .json(&json!({"username": "demo", "password": "guess"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    assert_eq!(jti_rows(&s).await, 0, "nothing lasting");
    // A real DPoP user is served as ever: the cache (bound 5) has room.
    let key = Key::es256();
    let t = s.login_bound(&key).await;
    assert_eq!(s.me_dpop(&t.access, &key).await.status(), 200);
    s.refresh_bound(&t.refresh, &key).await;
    assert_eq!(jti_rows(&s).await, 3);
    let m = s.metrics().await;
    assert_eq!(m["rotafetch_dpop_proofs_total{outcome=\"accepted\"}"], 3);
    assert_eq!(m["rotafetch_dpop_proofs_total{outcome=\"cache_full\"}"], 0);
}

async fn failing_proofs_from_one_address_back_off_before_the_store(b: Backend) {
    let s = TestServer::start_on(b, |c| {
        c.proof_budget = proof_budget(10, 30_000);
    })
    .await;
    let plain = s.login_ok().await;
    let url = s.url("/auth/refresh");
    let mut answers = Vec::new();
    for _ in 0..15 {
        let r = s
            .refresh_dpop("made-up-token", Some(Key::es256().proof("POST", &url)))
            .await;
        let retry = header(&r, "retry-after");
        answers.push((refused(r).await, retry));
    }
    let invalid = ((400, "invalid_grant".to_owned()), None);
    assert_eq!(answers[..11], vec![invalid; 11][..]);
    for (answer, retry) in &answers[11..] {
        assert_eq!(*answer, (429, "temporarily_unavailable".to_owned()));
        let secs: u64 = retry.as_deref().unwrap().parse().unwrap();
        assert!((1..=30).contains(&secs), "{secs}");
    }
    let m = s.metrics().await;
    // The store saw the 11 that were admitted, not the 4 refused unread.
    assert_eq!(m["rotafetch_refresh_total{outcome=\"invalid\"}"], 11);
    assert_eq!(m["rotafetch_dpop_proofs_total{outcome=\"throttled\"}"], 4);
    // Requests without a proof from that address are not held back.
    s.refresh_ok(&plain.refresh).await;
    let (status, ..) = json_error(
        s.me_with(
            "DPoP x.y.z",
            Some(Key::es256().proof("GET", &s.url("/api/me"))),
        )
        .await,
    )
    .await;
    assert_eq!(
        status, 429,
        "a resource request with a proof is refused unread too"
    );
    // At the token endpoints a throttled proof is refused before the body is read: a
    // request whose announced body never comes is answered at once, not after the 10 s
    // body timeout.
    for path in ["/auth/refresh", "/auth/logout", "/token", "/par"] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: 100\r\nDPoP: x.y.z\r\n\r\n",
            s.addr
        );
        let out = s.raw(head.as_bytes(), Duration::from_secs(4)).await;
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with("HTTP/1.1 429"), "{path}: {out}");
    }
}

async fn the_replay_window_is_short(b: Backend) {
    let s = TestServer::start_on(b, |_| {}).await;
    let key = Key::es256();
    let url = s.url("/auth/login");
    let with_iat = |iat_offset| {
        let o = Opts {
            iat_offset,
            ..Opts::default()
        };
        key.proof_with("POST", &url, &o)
    };
    for offset in [7, 60, -56, -120] {
        let r = s.login_dpop(Some(with_iat(offset))).await;
        let (status, error, desc) = json_error(r).await;
        assert_eq!(
            (status, error.as_str()),
            (400, "invalid_dpop_proof"),
            "{offset}"
        );
        assert!(desc.contains("iat"), "{desc}");
    }
    for offset in [4, -40] {
        bound_ok(s.login_dpop(Some(with_iat(offset))).await, &key).await;
    }
    // No entry outlives its proof by more than the window: at most 60 s from now.
    let latest = s.scalar("SELECT MAX(expires_at) FROM dpop_jti", None).await;
    let now_ms = now() * 1000;
    assert!(latest <= now_ms + 60_000 + 1_000, "{latest} vs {now_ms}");
    assert!(latest >= now_ms + 50_000, "{latest} vs {now_ms}");
}

async fn a_replayed_refresh_proof_spends_nothing(b: Backend) {
    let s = TestServer::start_on(b, |_| {}).await;
    let key = Key::eddsa();
    let t = s.login_bound(&key).await;
    let proof = key.proof("POST", &s.url("/auth/refresh"));
    let t2 = bound_ok(s.refresh_dpop(&t.refresh, Some(proof.clone())).await, &key).await;
    // The same proof with the next (unspent) token: refused before anything is spent.
    let r = s.refresh_dpop(&t2.refresh, Some(proof)).await;
    let (status, error, desc) = json_error(r).await;
    assert_eq!((status, error.as_str()), (400, "invalid_dpop_proof"));
    assert!(desc.contains("jti"), "{desc}");
    assert_eq!(s.successor_rows(&t2.refresh).await, 0, "not spent");
    s.refresh_bound(&t2.refresh, &key).await;
    assert_eq!(s.metric("rotafetch_families_revoked_total").await, 0);
}

/// A throttled answer is held for the throttle delay (`--throttle-delay-ms`): a client that
/// keeps sending on one connection gets at most one 429 per delay, however fast it sends,
/// and its refusals take the server a timer each, not a core. Other answers are not held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_answers_are_held_for_the_delay() {
    let delay = Duration::from_millis(1500);
    let s = TestServer::start(|c| {
        c.throttle_delay = delay;
        c.proof_budget = proof_budget(0, 60_000);
    })
    .await;
    let plain = s.login_ok().await;
    let url = s.url("/auth/refresh");
    let failed = s
        .refresh_dpop("made-up-token", Some(Key::eddsa().proof("POST", &url)))
        .await;
    assert_eq!(failed.status(), 400, "the first failure is answered");
    // One client, one keep-alive connection, three requests in a row: each 429 comes no
    // sooner than the delay (tokio's sleep never ends early).
    let start = std::time::Instant::now();
    for i in 1..=3u32 {
        let r = s
            .refresh_dpop("made-up-token", Some(Key::eddsa().proof("POST", &url)))
            .await;
        assert_eq!(r.status(), 429);
        assert!(r.headers().contains_key("retry-after"));
        assert!(start.elapsed() >= delay * i, "answer {i} came early");
    }
    assert_eq!(s.metric("rotafetch_http_throttled_held_total").await, 3);
    // Requests that are not throttled are not held: a plain refresh from the same address
    // leaves the counter where it was.
    s.refresh_ok(&plain.refresh).await;
    assert_eq!(s.metric("rotafetch_http_throttled_held_total").await, 3);
    assert_eq!(
        s.metric("rotafetch_dpop_proofs_total{outcome=\"throttled\"}")
            .await,
        3
    );
}

on_both_backends!(
    made_up_proofs_cannot_fill_the_replay_cache,
    failing_proofs_from_one_address_back_off_before_the_store,
    the_replay_window_is_short,
    a_replayed_refresh_proof_spends_nothing,
);
