//! DPoP (RFC 9449) end to end: real ES256 (p256) and EdDSA (ed25519-dalek) proofs against the
//! in-process server over loopback, on SQLite and on PostgreSQL.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use common::dpop::*;
use common::{json_error, Backend, TestServer};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------

async fn login_and_refresh_bind_the_family_to_the_key(b: Backend) {
    let s = TestServer::start_on(b, |_| {}).await;
    let key = Key::es256();
    let t1 = s.login_bound(&key).await;
    let c1 = jwt_claims(&t1.access);
    let t2 = s.refresh_bound(&t1.refresh, &key).await;
    assert_ne!(t2.refresh, t1.refresh, "rotated");
    assert_eq!(s.successor_rows(&t1.refresh).await, 1, "spent exactly once");
    assert_eq!(jwt_claims(&t2.access)["sid"], c1["sid"], "same family");
    // A lost response: the retry with the key (inside the 10 s grace window) gets the same
    // successor; without the key it is a mismatch, not grace and not reuse.
    let again = s.refresh_bound(&t1.refresh, &key).await;
    assert_eq!(again.refresh, t2.refresh);
    let (st, err) = refused(s.refresh_dpop(&t1.refresh, None).await).await;
    assert_eq!((st, err.as_str()), (400, "invalid_grant"));
    let t3 = s.refresh_bound(&t2.refresh, &key).await;
    assert_eq!(s.me_dpop(&t3.access, &key).await.status(), 200);
    assert_eq!(
        s.scalar("SELECT COUNT(*) FROM families WHERE jkt IS NOT NULL", None)
            .await,
        1
    );
    let m = s.metrics().await;
    assert_eq!(m["rotafetch_refresh_total{outcome=\"rotated\"}"], 2);
    assert_eq!(m["rotafetch_refresh_total{outcome=\"grace\"}"], 1);
    assert_eq!(m["rotafetch_refresh_total{outcome=\"dpop_mismatch\"}"], 1);
    assert_eq!(m["rotafetch_refresh_total{outcome=\"reused\"}"], 0);
    assert_eq!(m["rotafetch_dpop_proofs_total{outcome=\"accepted\"}"], 5);

    // Without a proof, login stays exactly as before: an unbound Bearer session.
    let r = s.login_dpop(None).await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert!(jwt_claims(body["access_token"].as_str().unwrap())
        .get("cnf")
        .is_none());
}

async fn refresh_without_the_key_is_refused_without_revocation(b: Backend) {
    let s = TestServer::start_on(b, |c| c.reuse_grace_secs = 0).await;
    let key = Key::es256();
    let thief = Key::es256();
    let t1 = s.login_bound(&key).await;
    let refresh_url = s.url("/auth/refresh");

    // The thief has the refresh token but not the key.
    let (st, err) = refused(s.refresh_dpop(&t1.refresh, None).await).await;
    assert_eq!((st, err.as_str()), (400, "invalid_grant"));
    let r = s
        .refresh_dpop(&t1.refresh, Some(thief.proof("POST", &refresh_url)))
        .await;
    let (st, err, desc) = json_error(r).await;
    assert_eq!((st, err.as_str()), (400, "invalid_grant"));
    assert!(desc.contains("key"), "{desc}");
    assert_eq!(s.successor_rows(&t1.refresh).await, 0, "token not spent");
    let m = s.metrics().await;
    assert_eq!(m["rotafetch_refresh_total{outcome=\"dpop_mismatch\"}"], 2);
    assert_eq!(
        m["rotafetch_dpop_key_mismatch_total{endpoint=\"refresh\"}"],
        2
    );
    assert_eq!(m["rotafetch_refresh_total{outcome=\"reused\"}"], 0);
    assert_eq!(m["rotafetch_families_revoked_total"], 0);

    // The rightful holder still refreshes with the very same token.
    let t2 = s.refresh_bound(&t1.refresh, &key).await;
    assert_eq!(s.me_dpop(&t2.access, &key).await.status(), 200);

    // The now spent token without the key: still a mismatch, not reuse (no sign-out).
    let (st, err) = refused(s.refresh_dpop(&t1.refresh, None).await).await;
    assert_eq!((st, err.as_str()), (400, "invalid_grant"));
    let (st, err) = refused(
        s.refresh_dpop(&t1.refresh, Some(thief.proof("POST", &refresh_url)))
            .await,
    )
    .await;
    assert_eq!((st, err.as_str()), (400, "invalid_grant"));
    // Nor can the thief log the user out.
    let r = s
        .client
        .post(s.url("/auth/logout"))
        .json(&json!({"refresh_token": t2.refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused(r).await, (400, "invalid_grant".to_owned()));
    let m = s.metrics().await;
    assert_eq!(m["rotafetch_refresh_total{outcome=\"dpop_mismatch\"}"], 4);
    assert_eq!(
        m["rotafetch_dpop_key_mismatch_total{endpoint=\"logout\"}"],
        1
    );
    assert_eq!(m["rotafetch_refresh_total{outcome=\"reused\"}"], 0);
    assert_eq!(m["rotafetch_families_revoked_total"], 0);
    let t3 = s.refresh_bound(&t2.refresh, &key).await;

    // The key holder re-presenting a spent token is ordinary reuse.
    let r = s
        .refresh_dpop(&t2.refresh, Some(key.proof("POST", &refresh_url)))
        .await;
    let (st, err, desc) = json_error(r).await;
    assert_eq!((st, err.as_str()), (400, "invalid_grant"));
    assert!(desc.contains("reuse"), "{desc}");
    assert_eq!(s.metric("rotafetch_families_revoked_total").await, 1);
    let r = s
        .refresh_dpop(&t3.refresh, Some(key.proof("POST", &refresh_url)))
        .await;
    assert_eq!(refused(r).await, (400, "invalid_grant".to_owned()));
}

async fn logout_of_a_bound_session_needs_the_key(b: Backend) {
    let s = TestServer::start_on(b, |_| {}).await;
    let key = Key::eddsa();
    let t = s.login_bound(&key).await;
    let r = s
        .client
        .post(s.url("/auth/logout"))
        .header("DPoP", key.proof("POST", &s.url("/auth/logout")))
        .json(&json!({"refresh_token": t.refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(s.metric("rotafetch_families_revoked_total").await, 1);
    let wa = challenge(s.me_dpop(&t.access, &key).await).await;
    assert!(wa.contains("revoked"), "{wa}");
}

async fn invalid_proofs_are_refused_and_spend_nothing(b: Backend) {
    let s = TestServer::start_on(b, |_| {}).await;
    let key = Key::es256();
    let t = s.login_bound(&key).await;
    let url = s.url("/auth/refresh");
    let other_port = format!("http://127.0.0.1:{}/auth/refresh", s.addr.port() ^ 1);
    let bad: Vec<(&str, String)> = vec![
        ("htm", key.proof("GET", &url)),
        ("htu path", key.proof("POST", &s.url("/auth/login"))),
        ("htu port", key.proof("POST", &other_port)),
        (
            "htu host",
            key.proof("POST", "http://localhost.invalid/auth/refresh"),
        ),
        (
            "stale iat",
            key.proof_with(
                "POST",
                &url,
                &Opts {
                    iat_offset: -300,
                    ..Opts::default()
                },
            ),
        ),
        (
            "future iat",
            key.proof_with(
                "POST",
                &url,
                &Opts {
                    iat_offset: 300,
                    ..Opts::default()
                },
            ),
        ),
        (
            "typ",
            key.proof_with(
                "POST",
                &url,
                &Opts {
                    typ: Some("JWT"),
                    ..Opts::default()
                },
            ),
        ),
        (
            "private jwk",
            key.proof_with(
                "POST",
                &url,
                &Opts {
                    leak_private: true,
                    ..Opts::default()
                },
            ),
        ),
        (
            "signature",
            key.proof_with(
                "POST",
                &url,
                &Opts {
                    bad_signature: true,
                    ..Opts::default()
                },
            ),
        ),
        (
            "no jti",
            key.proof_with(
                "POST",
                &url,
                &Opts {
                    no_jti: true,
                    ..Opts::default()
                },
            ),
        ),
        ("garbage", "not.a.jwt".to_owned()),
        ("empty", String::new()),
    ];
    for (what, proof) in &bad {
        let r = s.refresh_dpop(&t.refresh, Some(proof.clone())).await;
        assert_eq!(
            refused(r).await,
            (400, "invalid_dpop_proof".to_owned()),
            "{what}"
        );
    }
    // An HS256 "proof" and a key that does not match its alg.
    let hs = format!(
        "{}.{}.{}",
        B64URL.encode(
            json!({"typ":"dpop+jwt","alg":"HS256","jwk":{"kty":"oct","k":"AAAA"}}).to_string()
        ),
        B64URL.encode(json!({"jti":"x","htm":"POST","htu":url,"iat":now()}).to_string()),
        B64URL.encode([0u8; 32])
    );
    let r = s.refresh_dpop(&t.refresh, Some(hs)).await;
    assert_eq!(refused(r).await, (400, "invalid_dpop_proof".to_owned()));
    // Two DPoP headers.
    let r = s
        .client
        .post(&url)
        .header("DPoP", key.proof("POST", &url))
        .header("DPoP", key.proof("POST", &url))
        .json(&json!({"refresh_token": t.refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused(r).await, (400, "invalid_dpop_proof".to_owned()));
    // Login with a bad proof creates nothing.
    let r = s
        .login_dpop(Some(key.proof("PUT", &s.url("/auth/login"))))
        .await;
    assert_eq!(refused(r).await, (400, "invalid_dpop_proof".to_owned()));
    assert_eq!(s.scalar("SELECT COUNT(*) FROM families", None).await, 1);

    assert_eq!(s.successor_rows(&t.refresh).await, 0, "nothing spent");
    let m = s.metrics().await;
    assert_eq!(
        m["rotafetch_dpop_proofs_total{outcome=\"invalid\"}"],
        bad.len() as u64 + 3
    );
    assert_eq!(m["rotafetch_families_revoked_total"], 0);

    // Within the window (wide margins), with a normalized htu and a query: accepted.
    let o = Opts {
        iat_offset: -40,
        ..Opts::default()
    };
    let t2 = bound_ok(
        s.refresh_dpop(&t.refresh, Some(key.proof_with("POST", &url, &o)))
            .await,
        &key,
    )
    .await;
    let odd = format!(
        "HTTP://127.0.0.1:{}/auth/./refresh?ignored=1#frag",
        s.addr.port()
    );
    let o = Opts {
        iat_offset: 4,
        ..Opts::default()
    };
    let t3 = bound_ok(
        s.refresh_dpop(&t2.refresh, Some(key.proof_with("POST", &odd, &o)))
            .await,
        &key,
    )
    .await;

    // Replay: the same proof (same jti) a second time is refused.
    let proof = key.proof("POST", &url);
    let t4 = bound_ok(s.refresh_dpop(&t3.refresh, Some(proof.clone())).await, &key).await;
    let r = s.refresh_dpop(&t4.refresh, Some(proof)).await;
    let (st, err, desc) = json_error(r).await;
    assert_eq!((st, err.as_str()), (400, "invalid_dpop_proof"));
    assert!(desc.contains("jti"), "{desc}");
    // The same jti in a new proof by the same key is a replay too.
    let o = Opts {
        jti: Some("fixed-jti".into()),
        ..Opts::default()
    };
    let t5 = bound_ok(
        s.refresh_dpop(&t4.refresh, Some(key.proof_with("POST", &url, &o)))
            .await,
        &key,
    )
    .await;
    let r = s
        .refresh_dpop(&t5.refresh, Some(key.proof_with("POST", &url, &o)))
        .await;
    assert_eq!(refused(r).await, (400, "invalid_dpop_proof".to_owned()));
    assert_eq!(
        s.metric("rotafetch_dpop_proofs_total{outcome=\"replayed\"}")
            .await,
        2
    );
    s.refresh_bound(&t5.refresh, &key).await;
}

async fn eddsa_proofs_work_end_to_end(b: Backend) {
    let s = TestServer::start_on(b, |_| {}).await;
    let key = Key::eddsa();
    let t1 = s.login_bound(&key).await;
    let t2 = s.refresh_bound(&t1.refresh, &key).await;
    assert_eq!(s.me_dpop(&t2.access, &key).await.status(), 200);
    // An ES256 key cannot take over an EdDSA-bound session.
    let r = s
        .refresh_dpop(
            &t2.refresh,
            Some(Key::es256().proof("POST", &s.url("/auth/refresh"))),
        )
        .await;
    assert_eq!(refused(r).await, (400, "invalid_grant".to_owned()));
}

async fn api_accepts_bound_tokens_only_with_dpop_and_a_proof(b: Backend) {
    let s = TestServer::start_on(b, |_| {}).await;
    let key = Key::es256();
    let t = s.login_bound(&key).await;
    let me = s.url("/api/me");

    let r = s.me_dpop(&t.access, &key).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["username"], "demo");

    // As a bearer token: refused, with a DPoP challenge.
    let wa = challenge(s.me(&t.access).await).await;
    assert!(wa.starts_with("DPoP "), "{wa}");
    assert!(wa.contains(r#"error="invalid_token""#), "{wa}");
    assert!(wa.contains(r#"algs="ES256 EdDSA""#), "{wa}");
    // Bearer with a valid proof: still refused.
    let o = Opts {
        ath: Some(ath(&t.access)),
        ..Opts::default()
    };
    let r = s
        .me_with(
            &format!("Bearer {}", t.access),
            Some(key.proof_with("GET", &me, &o)),
        )
        .await;
    assert!(challenge(r).await.starts_with("DPoP "));
    // DPoP scheme without a proof.
    let wa = challenge(s.me_with(&format!("DPoP {}", t.access), None).await).await;
    assert!(wa.contains(r#"error="invalid_dpop_proof""#), "{wa}");
    // Wrong ath, no ath, wrong method, another key.
    for (what, proof) in [
        (
            "wrong ath",
            key.proof_with(
                "GET",
                &me,
                &Opts {
                    ath: Some(ath("other")),
                    ..Opts::default()
                },
            ),
        ),
        ("no ath", key.proof("GET", &me)),
        ("htm", key.proof_with("POST", &me, &o)),
        ("other key", Key::es256().proof_with("GET", &me, &o)),
    ] {
        let wa = challenge(s.me_with(&format!("DPoP {}", t.access), Some(proof)).await).await;
        assert!(wa.starts_with("DPoP "), "{what}: {wa}");
        assert!(wa.contains(r#"error="invalid_dpop_proof""#), "{what}: {wa}");
    }
    // A replayed proof.
    let proof = key.proof_with("GET", &me, &o);
    let r = s
        .me_with(&format!("DPoP {}", t.access), Some(proof.clone()))
        .await;
    assert_eq!(r.status(), 200);
    let r = s.me_with(&format!("DPoP {}", t.access), Some(proof)).await;
    assert!(challenge(r).await.contains("invalid_dpop_proof"));
    // POST with a query string: htu is compared without it.
    let proof = key.proof_with("POST", &s.url("/api/echo"), &o);
    let r = s
        .client
        .post(s.url("/api/echo?x=1"))
        .header("authorization", format!("DPoP {}", t.access))
        .header("DPoP", proof)
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        s.metric("rotafetch_dpop_key_mismatch_total{endpoint=\"api\"}")
            .await,
        4,
        "bearer, bearer+proof, no proof, other key"
    );

    // Unbound tokens: Bearer as before; the DPoP scheme is refused.
    let plain = s.login_ok().await;
    assert_eq!(s.me(&plain.access).await.status(), 200);
    let r = s
        .me_with(
            &format!("DPoP {}", plain.access),
            Some(key.proof_with(
                "GET",
                &me,
                &Opts {
                    ath: Some(ath(&plain.access)),
                    ..Opts::default()
                },
            )),
        )
        .await;
    let wa = challenge(r).await;
    assert!(
        wa.starts_with("DPoP ") && wa.contains("invalid_token"),
        "{wa}"
    );
}

async fn nonces_are_required_when_enabled(b: Backend) {
    let s = TestServer::start_on(b, |c| c.dpop_nonce = true).await;
    let key = Key::es256();
    let login_url = s.url("/auth/login");

    let r = s.login_dpop(Some(key.proof("POST", &login_url))).await;
    let nonce = header(&r, "dpop-nonce").expect("DPoP-Nonce on use_dpop_nonce");
    assert_eq!(refused(r).await, (400, "use_dpop_nonce".to_owned()));
    let r = s
        .login_dpop(Some(key.proof_with(
            "POST",
            &login_url,
            &Opts {
                nonce: Some("stale-or-made-up".into()),
                ..Opts::default()
            },
        )))
        .await;
    assert_eq!(refused(r).await, (400, "use_dpop_nonce".to_owned()));

    let with_nonce = |n: &str| Opts {
        nonce: Some(n.to_owned()),
        ..Opts::default()
    };
    let r = s
        .login_dpop(Some(key.proof_with(
            "POST",
            &login_url,
            &with_nonce(&nonce),
        )))
        .await;
    let fresh = header(&r, "dpop-nonce").expect("DPoP-Nonce on success");
    let t = bound_ok(r, &key).await;

    // Refresh: the same dance.
    let refresh_url = s.url("/auth/refresh");
    let r = s
        .refresh_dpop(&t.refresh, Some(key.proof("POST", &refresh_url)))
        .await;
    assert!(header(&r, "dpop-nonce").is_some());
    assert_eq!(refused(r).await, (400, "use_dpop_nonce".to_owned()));
    assert_eq!(s.successor_rows(&t.refresh).await, 0);
    let t = bound_ok(
        s.refresh_dpop(
            &t.refresh,
            Some(key.proof_with("POST", &refresh_url, &with_nonce(&fresh))),
        )
        .await,
        &key,
    )
    .await;

    // The API: 401 with a use_dpop_nonce challenge, then 200.
    let me = s.url("/api/me");
    let auth = format!("DPoP {}", t.access);
    let o = Opts {
        ath: Some(ath(&t.access)),
        ..Opts::default()
    };
    let r = s.me_with(&auth, Some(key.proof_with("GET", &me, &o))).await;
    let nonce = header(&r, "dpop-nonce").expect("DPoP-Nonce on 401");
    let wa = challenge(r).await;
    assert!(
        wa.starts_with("DPoP ") && wa.contains(r#"error="use_dpop_nonce""#),
        "{wa}"
    );
    let o = Opts {
        nonce: Some(nonce.clone()),
        ..o
    };
    let r = s.me_with(&auth, Some(key.proof_with("GET", &me, &o))).await;
    assert!(header(&r, "dpop-nonce").is_some());
    assert_eq!(r.status(), 200);

    // Without a proof, login is unaffected by nonces (an unbound Bearer session).
    assert_eq!(s.login_dpop(None).await.status(), 200);

    // A second instance on the same database accepts this instance's nonce.
    let s2 = TestServer::start_beside(&s, |c| c.dpop_nonce = true).await;
    let r = s2
        .login_dpop(Some(key.proof_with(
            "POST",
            &s2.url("/auth/login"),
            &with_nonce(&nonce),
        )))
        .await;
    bound_ok(r, &key).await;
    assert!(
        s.metric("rotafetch_dpop_proofs_total{outcome=\"use_nonce\"}")
            .await
            >= 4
    );
}

async fn replay_cache_is_shared_by_instances_and_bounded(b: Backend) {
    // Both instances are reached under one public URL (as behind a load balancer).
    let public = "http://auth.test.invalid:8443";
    let s1 = TestServer::start_on(b, |c| {
        c.public_url = Some(public.into());
        c.dpop_jti_cap = 3;
    })
    .await;
    let s2 = TestServer::start_beside(&s1, |c| {
        c.public_url = Some(public.into());
        c.dpop_jti_cap = 3;
    })
    .await;
    let key = Key::es256();
    let login_url = format!("{public}/auth/login");
    let proof = key.proof("POST", &login_url);
    bound_ok(s1.login_dpop(Some(proof.clone())).await, &key).await;
    let (st, err, desc) = json_error(s2.login_dpop(Some(proof)).await).await;
    assert_eq!((st, err.as_str()), (400, "invalid_dpop_proof"), "{desc}");
    // The proof's URL must be the public one.
    let r = s1
        .login_dpop(Some(key.proof("POST", &s1.url("/auth/login"))))
        .await;
    assert_eq!(refused(r).await, (400, "invalid_dpop_proof".to_owned()));

    // The cap counts unexpired entries of all instances: 3 accepted, then 503.
    bound_ok(
        s2.login_dpop(Some(key.proof("POST", &login_url))).await,
        &key,
    )
    .await;
    bound_ok(
        s1.login_dpop(Some(key.proof("POST", &login_url))).await,
        &key,
    )
    .await;
    let (st, err) = refused(s2.login_dpop(Some(key.proof("POST", &login_url))).await).await;
    assert_eq!((st, err.as_str()), (503, "temporarily_unavailable"));
    assert_eq!(
        s2.metric("rotafetch_dpop_proofs_total{outcome=\"cache_full\"}")
            .await,
        1
    );
    assert_eq!(s1.scalar("SELECT COUNT(*) FROM dpop_jti", None).await, 3);
    // Proof-less requests are unaffected.
    assert_eq!(s2.login_dpop(None).await.status(), 200);
}

async fn cors_allows_the_dpop_header_and_exposes_the_nonce(b: Backend) {
    let s = TestServer::start_on(b, |c| c.dpop_nonce = true).await;
    let origin = "http://127.0.0.1:5173";
    for path in ["/auth/login", "/auth/refresh", "/api/me"] {
        let r = s
            .client
            .request(reqwest::Method::OPTIONS, s.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type, dpop",
            )
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        let allowed = header(&r, "access-control-allow-headers")
            .unwrap()
            .to_ascii_lowercase();
        assert!(allowed.contains("dpop"), "{allowed}");
    }
    let r = s
        .client
        .post(s.url("/auth/login"))
        .header("origin", origin)
        .json(&json!({"username": "demo", "password": "demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(header(&r, "dpop-nonce").is_some());
    let exposed = header(&r, "access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        exposed.contains("dpop-nonce") && exposed.contains("www-authenticate"),
        "{exposed}"
    );
}

async fn unbound_families_keep_reuse_detection(b: Backend) {
    let s = TestServer::start_on(b, |c| c.reuse_grace_secs = 0).await;
    // Exactly as before DPoP.
    let t1 = s.login_ok().await;
    let t2 = s.refresh_ok(&t1.refresh).await;
    let (st, err, desc) = json_error(s.refresh(&t1.refresh).await).await;
    assert_eq!((st, err.as_str()), (400, "invalid_grant"));
    assert_eq!(desc, "refresh token reuse detected; session revoked");
    assert_eq!(s.me(&t2.access).await.status(), 401);
    assert_eq!(s.metric("rotafetch_families_revoked_total").await, 1);

    // A thief who stole an unbound token and binds the family to their own key by refreshing
    // with a proof does not disarm reuse detection: the victim presenting the spent (bearer)
    // token still revokes the family.
    let victim = s.login_ok().await;
    let thief = Key::es256();
    let stolen = s.refresh_bound(&victim.refresh, &thief).await;
    let (st, err, desc) = json_error(s.refresh(&victim.refresh).await).await;
    assert_eq!((st, err.as_str()), (400, "invalid_grant"));
    assert_eq!(desc, "refresh token reuse detected; session revoked");
    assert_eq!(s.metric("rotafetch_families_revoked_total").await, 2);
    let r = s
        .refresh_dpop(
            &stolen.refresh,
            Some(thief.proof("POST", &s.url("/auth/refresh"))),
        )
        .await;
    let (st, _, desc) = json_error(r).await;
    assert_eq!((st, desc.as_str()), (400, "session revoked"));
    assert_eq!(
        s.metric("rotafetch_refresh_total{outcome=\"dpop_mismatch\"}")
            .await,
        0
    );
}

on_both_backends!(
    login_and_refresh_bind_the_family_to_the_key,
    refresh_without_the_key_is_refused_without_revocation,
    logout_of_a_bound_session_needs_the_key,
    invalid_proofs_are_refused_and_spend_nothing,
    eddsa_proofs_work_end_to_end,
    api_accepts_bound_tokens_only_with_dpop_and_a_proof,
    nonces_are_required_when_enabled,
    replay_cache_is_shared_by_instances_and_bounded,
    cors_allows_the_dpop_header_and_exposes_the_nonce,
    unbound_families_keep_reuse_detection,
);
