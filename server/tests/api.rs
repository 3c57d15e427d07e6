//! End-to-end tests over real HTTP against an in-process server with a SQLite file.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{concurrent_refreshes, json_error, raw_post, Backend, TestServer};
use serde_json::{json, Value};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn www_authenticate(r: &reqwest::Response) -> String {
    r.headers()
        .get("www-authenticate")
        .expect("WWW-Authenticate header")
        .to_str()
        .unwrap()
        .to_owned()
}

async fn login_success_wrong_password_unknown_user(b: Backend) {
    let s = TestServer::start_on(b, |_| {}).await;
    let r = s.login("demo", "demo").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 60);
    let refresh = body["refresh_token"].as_str().unwrap();
    assert_eq!(refresh.len(), 43, "256-bit base64url token");
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(access.split('.').count(), 3);

    let me: Value = s.me(access).await.json().await.unwrap();
    assert_eq!(me["username"], "demo");
    assert!(me["sub"].is_string());
    assert!(me["sid"].is_string());

    let (st, err, _) = json_error(s.login("demo", "wrong").await).await;
    assert_eq!((st, err.as_str()), (401, "invalid_credentials"));
    let (st, err, _) = json_error(s.login("nobody", "demo").await).await;
    assert_eq!((st, err.as_str()), (401, "invalid_credentials"));

    let m = s.metrics().await;
    assert_eq!(m["rotafetch_logins_total{outcome=\"success\"}"], 1);
    assert_eq!(
        m["rotafetch_logins_total{outcome=\"invalid_credentials\"}"],
        2
    );
}

async fn rotation_chain_of_50(b: Backend) {
    let s = TestServer::start_on(b, |c| c.reuse_grace_secs = 0).await;
    let mut t = s.login_ok().await;
    let mut seen = HashSet::new();
    seen.insert(t.refresh.clone());
    let sid: Value = s.me(&t.access).await.json().await.unwrap();
    for _ in 0..50 {
        let next = s.refresh_ok(&t.refresh).await;
        assert!(
            seen.insert(next.refresh.clone()),
            "refresh tokens never repeat"
        );
        let me: Value = s.me(&next.access).await.json().await.unwrap();
        assert_eq!(me["sid"], sid["sid"], "same session family");
        t = next;
    }
    assert_eq!(
        s.metric("rotafetch_refresh_total{outcome=\"rotated\"}")
            .await,
        50
    );
    assert_eq!(
        s.metric("rotafetch_refresh_total{outcome=\"reused\"}")
            .await,
        0
    );
}

async fn reuse_revokes_the_whole_family(b: Backend) {
    let s = TestServer::start_on(b, |c| c.reuse_grace_secs = 0).await;
    let t1 = s.login_ok().await;
    let other = s.login_ok().await; // an unrelated session must survive
    let t2 = s.refresh_ok(&t1.refresh).await;
    assert_eq!(s.me(&t2.access).await.status(), 200);

    let (st, err, desc) = json_error(s.refresh(&t1.refresh).await).await;
    assert_eq!((st, err.as_str()), (400, "invalid_grant"));
    assert_eq!(desc, "refresh token reuse detected; session revoked");

    // The family's newest refresh token is dead ...
    let (st, err, desc) = json_error(s.refresh(&t2.refresh).await).await;
    assert_eq!(
        (st, err.as_str(), desc.as_str()),
        (400, "invalid_grant", "session revoked")
    );
    // ... and so is its still-unexpired access token.
    let r = s.me(&t2.access).await;
    assert_eq!(r.status(), 401);
    let wa = www_authenticate(&r);
    assert!(wa.starts_with("Bearer "), "{wa}");
    assert!(wa.contains(r#"error="invalid_token""#), "{wa}");
    assert!(wa.contains("revoked"), "{wa}");
    let (_, err, _) = json_error(r).await;
    assert_eq!(err, "invalid_token");

    assert_eq!(s.me(&other.access).await.status(), 200);
    s.refresh_ok(&other.refresh).await;

    let m = s.metrics().await;
    assert_eq!(m["rotafetch_refresh_total{outcome=\"reused\"}"], 1);
    assert_eq!(m["rotafetch_refresh_total{outcome=\"invalid\"}"], 1);
    assert_eq!(m["rotafetch_families_revoked_total"], 1);
    assert_eq!(m["rotafetch_api_requests_total{status=\"401\"}"], 1);
}

async fn grace_returns_the_same_successor_until_it_is_used(b: Backend) {
    let s = TestServer::start_on(b, |c| c.reuse_grace_secs = 30).await;
    let t1 = s.login_ok().await;
    let t2 = s.refresh_ok(&t1.refresh).await;
    // Lost response: the client retries with the spent token.
    let again = s.refresh_ok(&t1.refresh).await;
    assert_eq!(
        again.refresh, t2.refresh,
        "same successor inside the window"
    );
    assert_ne!(again.access, t2.access, "fresh access token");
    assert_eq!(s.me(&again.access).await.status(), 200);
    assert_eq!(s.successor_rows(&t1.refresh).await, 1);
    assert_eq!(
        s.metric("rotafetch_refresh_total{outcome=\"grace\"}").await,
        1
    );

    // Once the successor was used, the parent is a reuse even inside the window.
    let t3 = s.refresh_ok(&t2.refresh).await;
    let (st, err, desc) = json_error(s.refresh(&t1.refresh).await).await;
    assert_eq!((st, err.as_str()), (400, "invalid_grant"));
    assert!(desc.contains("reuse"), "{desc}");
    let (_, _, desc) = json_error(s.refresh(&t3.refresh).await).await;
    assert_eq!(desc, "session revoked");
    assert_eq!(s.me(&t3.access).await.status(), 401);
}

async fn grace_window_closes(b: Backend) {
    let s = TestServer::start_on(b, |c| c.reuse_grace_secs = 1).await;
    let t1 = s.login_ok().await;
    let t2 = s.refresh_ok(&t1.refresh).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (st, _, desc) = json_error(s.refresh(&t1.refresh).await).await;
    assert_eq!(st, 400);
    assert_eq!(desc, "refresh token reuse detected; session revoked");
    assert_eq!(s.me(&t2.access).await.status(), 401);
}

async fn grace_zero_disables_grace(b: Backend) {
    let s = TestServer::start_on(b, |c| c.reuse_grace_secs = 0).await;
    let t1 = s.login_ok().await;
    s.refresh_ok(&t1.refresh).await;
    let (st, _, desc) = json_error(s.refresh(&t1.refresh).await).await;
    assert_eq!(st, 400);
    assert!(desc.contains("reuse"));
    assert_eq!(
        s.metric("rotafetch_refresh_total{outcome=\"grace\"}").await,
        0
    );
}

async fn concurrent_refreshes_inside_grace_share_one_successor(b: Backend) {
    let s = TestServer::start_on(b, |c| c.reuse_grace_secs = 60).await;
    for n in [20, 50] {
        let t = s.login_ok().await;
        let results = concurrent_refreshes(&s, &t.refresh, n).await;
        let successors: HashSet<String> = results
            .iter()
            .map(|(st, body)| {
                assert_eq!(*st, 200, "{body}");
                body["refresh_token"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(
            successors.len(),
            1,
            "all {n} responses carry the same successor"
        );
        assert_eq!(
            s.successor_rows(&t.refresh).await,
            1,
            "exactly one successor row"
        );
        let successor = successors.into_iter().next().unwrap();
        s.refresh_ok(&successor).await;
    }
    let m = s.metrics().await;
    assert_eq!(m["rotafetch_refresh_total{outcome=\"rotated\"}"], 2 + 2);
    assert_eq!(m["rotafetch_refresh_total{outcome=\"grace\"}"], 19 + 49);
}

async fn concurrent_refreshes_without_grace_exactly_one_wins(b: Backend) {
    let s = TestServer::start_on(b, |c| c.reuse_grace_secs = 0).await;
    let t = s.login_ok().await;
    let results = concurrent_refreshes(&s, &t.refresh, 20).await;
    let ok: Vec<_> = results.iter().filter(|(st, _)| *st == 200).collect();
    assert_eq!(ok.len(), 1, "{results:?}");
    for (st, body) in results.iter().filter(|(st, _)| *st != 200) {
        assert_eq!(*st, 400);
        assert_eq!(body["error"], "invalid_grant");
    }
    assert_eq!(s.successor_rows(&t.refresh).await, 1);
    // The losers' reuse revoked the family.
    let winner = ok[0].1["refresh_token"].as_str().unwrap();
    let (_, _, desc) = json_error(s.refresh(winner).await).await;
    assert_eq!(desc, "session revoked");
}

async fn refresh_request_formats(b: Backend) {
    let s = TestServer::start_on(b, |_| {}).await;
    let t = s.login_ok().await;
    let form = |body: String| {
        s.client
            .post(s.url("/auth/refresh"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };
    // RFC 6749 §6 form, with an ignored client_id.
    let r = form(format!(
        "grant_type=refresh_token&refresh_token={}&client_id=web",
        t.refresh
    ))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let t2 = common::tokens(r.json().await.unwrap());
    // JSON with an explicit grant_type, charset parameter in the content type.
    let r = s
        .client
        .post(s.url("/auth/refresh"))
        .header("content-type", "application/json; charset=utf-8")
        .body(json!({"grant_type": "refresh_token", "refresh_token": t2.refresh}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t3 = common::tokens(r.json().await.unwrap());

    let r = form(format!("grant_type=password&refresh_token={}", t3.refresh))
        .send()
        .await
        .unwrap();
    let (st, err, _) = json_error(r).await;
    assert_eq!((st, err.as_str()), (400, "unsupported_grant_type"));
    let r = form("grant_type=refresh_token".into())
        .send()
        .await
        .unwrap();
    let (st, err, _) = json_error(r).await;
    assert_eq!((st, err.as_str()), (400, "invalid_request"));
    let r = s
        .client
        .post(s.url("/auth/refresh"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (st, err, _) = json_error(r).await;
    assert_eq!((st, err.as_str()), (400, "invalid_request"));
    let (st, err, desc) = json_error(s.refresh("not-a-token").await).await;
    assert_eq!(
        (st, err.as_str(), desc.as_str()),
        (400, "invalid_grant", "refresh token unknown")
    );
    // t3 is untouched by the rejected requests.
    s.refresh_ok(&t3.refresh).await;
    assert_eq!(
        s.metric("rotafetch_refresh_total{outcome=\"invalid\"}")
            .await,
        4
    );
}

async fn expired_access_token_is_refused(b: Backend) {
    let s = TestServer::start_on(b, |c| c.access_ttl_secs = 1).await;
    let t = s.login_ok().await;
    let r = s.client.get(s.url("/api/me")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(www_authenticate(&r), r#"Bearer realm="rotafetch""#);
    json_error(r).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let r = s.me(&t.access).await;
    assert_eq!(r.status(), 401);
    let wa = www_authenticate(&r);
    assert!(wa.contains(r#"error="invalid_token""#), "{wa}");
    assert!(wa.contains("expired"), "{wa}");
    let (_, err, desc) = json_error(r).await;
    assert_eq!(
        (err.as_str(), desc.as_str()),
        ("invalid_token", "access token expired")
    );
    // The refresh token still works and yields a usable access token.
    let t2 = s.refresh_ok(&t.refresh).await;
    assert_eq!(s.me(&t2.access).await.status(), 200);
    // Garbage and forged tokens.
    let r = s.me("garbage").await;
    assert_eq!(r.status(), 401);
    assert!(www_authenticate(&r).contains("invalid_token"));
    let mut forged = t2.access.clone();
    forged.pop();
    forged.push(if t2.access.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(s.me(&forged).await.status(), 401);
}

async fn idle_and_absolute_session_expiry(b: Backend) {
    let s = TestServer::start_on(b, |c| c.idle_ttl_secs = 1).await;
    let t = s.login_ok().await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (st, err, desc) = json_error(s.refresh(&t.refresh).await).await;
    assert_eq!(
        (st, err.as_str(), desc.as_str()),
        (400, "invalid_grant", "refresh token expired")
    );
    drop(s);
    let s = TestServer::start_on(b, |c| c.session_ttl_secs = 2).await;
    let mut t = s.login_ok().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    // Rotating keeps the idle timer happy, but the absolute lifetime still ends the session.
    loop {
        let r = s.refresh(&t.refresh).await;
        if r.status() == 200 {
            t = common::tokens(r.json().await.unwrap());
            assert!(Instant::now() < deadline, "session never expired");
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let (_, _, desc) = json_error(r).await;
        assert_eq!(desc, "refresh token expired");
        break;
    }
    assert!(
        s.metric("rotafetch_refresh_total{outcome=\"expired\"}")
            .await
            >= 1
    );
}

async fn logout_revokes_family_and_is_idempotent(b: Backend) {
    let s = TestServer::start_on(b, |_| {}).await;
    let t1 = s.login_ok().await;
    let t2 = s.refresh_ok(&t1.refresh).await;
    let logout = |body: String, ct: &'static str| {
        s.client
            .post(s.url("/auth/logout"))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let r = logout(
        json!({"refresh_token": t2.refresh}).to_string(),
        "application/json",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 204);
    let (_, err, desc) = json_error(s.refresh(&t2.refresh).await).await;
    assert_eq!(
        (err.as_str(), desc.as_str()),
        ("invalid_grant", "session revoked")
    );
    // Even the grace rule does not resurrect a revoked family.
    let (_, _, desc) = json_error(s.refresh(&t1.refresh).await).await;
    assert_eq!(desc, "session revoked");
    let r = s.me(&t2.access).await;
    assert_eq!(r.status(), 401);
    assert!(www_authenticate(&r).contains("invalid_token"));

    let r = logout(
        format!("refresh_token={}", t2.refresh),
        "application/x-www-form-urlencoded",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 204, "idempotent");
    let r = logout(
        json!({"refresh_token": "unknown"}).to_string(),
        "application/json",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 204, "unknown token");
    let (st, err, _) = json_error(logout("{}".into(), "application/json").await.unwrap()).await;
    assert_eq!((st, err.as_str()), (400, "invalid_request"));
    assert_eq!(s.metric("rotafetch_families_revoked_total").await, 1);
}

async fn restart_with_the_same_database_keeps_sessions(b: Backend) {
    let s = TestServer::start_on(b, |_| {}).await;
    let t = s.login_ok().await;
    let jwks1: Value = s.get_json("/.well-known/jwks.json").await;

    let s = s.restart(|_| {}).await;
    let jwks2: Value = s.get_json("/.well-known/jwks.json").await;
    assert_eq!(jwks1, jwks2, "signing key persisted");
    assert_eq!(
        s.me(&t.access).await.status(),
        200,
        "old access token accepted"
    );
    let t2 = s.refresh_ok(&t.refresh).await;
    // The grace rule survives the restart too (successor derivation key persisted).
    let again = s.refresh_ok(&t.refresh).await;
    assert_eq!(again.refresh, t2.refresh);
    // Only one demo user even though both starts asked for it.
    assert_eq!(s.scalar("SELECT COUNT(*) FROM users", None).await, 1);
    if b == Backend::Postgres {
        let version = s.scalar("SELECT version FROM rotafetch_schema", None).await;
        assert_eq!(version, 4, "migration 4: the OpenID provider");
        return;
    }
    let conn = rusqlite::Connection::open(&s.db).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 4, "migration 4: the OpenID provider");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_database() {
    let s = TestServer::start(|c| c.db = ":memory:".into()).await;
    let t = s.login_ok().await;
    s.refresh_ok(&t.refresh).await;
}

async fn hostile_inputs_get_json_4xx(b: Backend) {
    let s = TestServer::start_on(b, |_| {}).await;
    let t = s.login_ok().await;
    let big = vec![b'{'; 1024 * 1024];
    let big_token = json!({ "refresh_token": "a".repeat(100 * 1024) }).to_string();
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("application/json", b"{\"username\": ".to_vec()),
        ("application/json", b"[1,2,3]".to_vec()),
        (
            "application/json",
            b"{\"username\": 5, \"refresh_token\": 7}".to_vec(),
        ),
        ("application/json", b"{}".to_vec()),
        ("application/json", b"".to_vec()),
        ("application/json", vec![0xff, 0xfe, 0x00, 0x80, b'{']),
        (
            "application/json",
            b"{\"refresh_token\": \"\xff\xfe\"}".to_vec(),
        ),
        (
            "application/x-www-form-urlencoded",
            vec![0xff, 0xfe, b'=', 0x80],
        ),
        ("application/xml", b"<x/>".to_vec()),
        ("multipart/form-data; boundary=x", b"--x--".to_vec()),
        ("application/json", big.clone()),
        ("application/json", big_token.into_bytes()),
    ];
    for path in [
        "/auth/login",
        "/auth/refresh",
        "/auth/logout",
        "/test/faults",
    ] {
        for (ct, body) in &bodies {
            let r = s
                .client
                .post(s.url(path))
                .header("content-type", *ct)
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            if path == "/auth/logout" && status == 204 {
                // A well-formed logout with an unknown token is fine.
                continue;
            }
            if path == "/test/faults" && status == 200 {
                // `{}` is a valid (empty) fault plan.
                assert_eq!(body, b"{}");
                continue;
            }
            let (st, _, _) = json_error(r).await;
            assert!(
                (400..500).contains(&st),
                "{path} {ct} {:?}: {st}",
                String::from_utf8_lossy(&body[..body.len().min(40)])
            );
        }
    }
    // 1 MB body on /auth/* → 413 specifically.
    let r = s
        .client
        .post(s.url("/auth/refresh"))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(json_error(r).await.0, 413);
    // /api/echo: 1 MiB is fine, 1 MiB + 1 is not.
    let ok = vec![7u8; 1024 * 1024];
    let r = s
        .client
        .post(s.url("/api/echo"))
        .bearer_auth(&t.access)
        .body(ok.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echoed: Value = r.json().await.unwrap();
    assert_eq!(echoed["body_base64"], b64(&ok));
    let mut too_big = ok.clone();
    too_big.push(0);
    let r = s
        .client
        .post(s.url("/api/echo"))
        .bearer_auth(&t.access)
        .body(too_big)
        .send()
        .await
        .unwrap();
    assert_eq!(json_error(r).await.0, 413);
    // Hostile Authorization headers.
    for value in [
        "Bearer".to_string(),
        "Bearer ".to_string(),
        "Basic dXNlcjpwYXNz".to_string(),
        format!("Bearer {}", "x".repeat(60 * 1024)),
        "Bearer a.b.c".to_string(),
        format!("Bearer {}", t.access.replace('.', "")),
    ] {
        let r = s
            .client
            .get(s.url("/api/me"))
            .header("authorization", value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.headers().contains_key("www-authenticate"));
        json_error(r).await;
    }
    // Non-UTF-8 header bytes, raw.
    let req = b"GET /api/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n";
    let out = s.raw(req, Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    // A 1 MB header: refused by the HTTP layer (4xx or closed), never a 5xx.
    let mut req = b"GET /api/me HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    req.extend(std::iter::repeat_n(b'a', 1024 * 1024));
    req.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    let out = s.raw(&req, Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(out.is_empty() || text.starts_with("HTTP/1.1 4"), "{text}");
    // Wrong methods and unknown paths are JSON too.
    let r = s.client.get(s.url("/auth/refresh")).send().await.unwrap();
    assert_eq!(json_error(r).await.0, 405);
    let r = s
        .client
        .get(s.url("/api/echo"))
        .bearer_auth(&t.access)
        .send()
        .await
        .unwrap();
    assert_eq!(json_error(r).await.0, 405);
    let r = s.client.get(s.url("/nope.html")).send().await.unwrap();
    assert_eq!(json_error(r).await.0, 404);
    // The server is still healthy and nothing was a 5xx.
    s.refresh_ok(&t.refresh).await;
    let m = s.metrics().await;
    assert!(m.keys().all(|k| !k.contains("status=\"5")), "{m:?}");
}

async fn metrics_format_and_counters(b: Backend) {
    let s = TestServer::start_on(b, |c| c.reuse_grace_secs = 30).await;
    let text = s.get_text("/metrics").await;
    for series in [
        "rotafetch_logins_total{outcome=\"success\"} 0",
        "rotafetch_logins_total{outcome=\"invalid_credentials\"} 0",
        "rotafetch_refresh_total{outcome=\"rotated\"} 0",
        "rotafetch_refresh_total{outcome=\"grace\"} 0",
        "rotafetch_refresh_total{outcome=\"reused\"} 0",
        "rotafetch_refresh_total{outcome=\"invalid\"} 0",
        "rotafetch_refresh_total{outcome=\"expired\"} 0",
        "rotafetch_families_revoked_total 0",
        "rotafetch_api_requests_total{status=\"200\"} 0",
        "rotafetch_api_requests_total{status=\"401\"} 0",
    ] {
        assert!(
            text.lines().any(|l| l == series),
            "missing {series}:\n{text}"
        );
    }
    for name in [
        "rotafetch_logins_total",
        "rotafetch_refresh_total",
        "rotafetch_families_revoked_total",
        "rotafetch_api_requests_total",
    ] {
        assert!(text.contains(&format!("# HELP {name} ")));
        assert!(text.contains(&format!("# TYPE {name} counter")));
    }

    let t1 = s.login_ok().await;
    s.login("demo", "x").await;
    let t2 = s.refresh_ok(&t1.refresh).await;
    s.refresh_ok(&t1.refresh).await; // grace
    s.refresh(&"z".repeat(43)).await; // invalid
    s.me(&t2.access).await;
    s.me("nope").await;
    s.refresh_ok(&t2.refresh).await;
    s.refresh(&t1.refresh).await; // reused
    let m = s.metrics().await;
    let expect = [
        ("rotafetch_logins_total{outcome=\"success\"}", 1),
        ("rotafetch_logins_total{outcome=\"invalid_credentials\"}", 1),
        ("rotafetch_refresh_total{outcome=\"rotated\"}", 2),
        ("rotafetch_refresh_total{outcome=\"grace\"}", 1),
        ("rotafetch_refresh_total{outcome=\"reused\"}", 1),
        ("rotafetch_refresh_total{outcome=\"invalid\"}", 1),
        ("rotafetch_refresh_total{outcome=\"expired\"}", 0),
        ("rotafetch_families_revoked_total", 1),
        ("rotafetch_api_requests_total{status=\"200\"}", 1),
        ("rotafetch_api_requests_total{status=\"401\"}", 1),
    ];
    for (k, v) in expect {
        assert_eq!(m[k], v, "{k}");
    }
}

// ---------------------------------------------------------------------------------------------
// faults

async fn fault_api_state_and_routing(b: Backend) {
    let s = TestServer::start_on(b, |_| {}).await;
    s.set_faults(json!({"refresh": [{"kind": "drop"}, {"kind": "status", "status": 500}]}))
        .await;
    let state: Value = s.get_json("/test/faults").await;
    assert_eq!(state["remaining"], 2);
    assert_eq!(state["api_always_401"], false);
    // POST replaces.
    s.set_faults(json!({"refresh": [{"kind": "non_json"}]}))
        .await;
    let state: Value = s.get_json("/test/faults").await;
    assert_eq!(state["remaining"], 1);
    let r = s.client.delete(s.url("/test/faults")).send().await.unwrap();
    assert!(r.status().is_success());
    let state: Value = s.get_json("/test/faults").await;
    assert_eq!(state["remaining"], 0);
    // Bad plans.
    for bad in [
        json!({"refresh": [{"kind": "explode"}]}),
        json!({"refresh": [{"kind": "status", "status": 200}]}),
        json!({"refresh": "drop"}),
    ] {
        let r = s
            .client
            .post(s.url("/test/faults"))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(json_error(r).await.0, 400, "{bad}");
    }

    // Keep-alive is off in test-fault mode (browsers retry dropped requests on reused
    // connections).
    let out = s
        .raw(
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            Duration::from_secs(10),
        )
        .await;
    let text = String::from_utf8_lossy(&out).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(text.contains("connection: close"), "{text}");

    // Without --test-faults the endpoints do not exist.
    let plain = TestServer::start_on(b, |c| c.test_faults = false).await;
    let r = plain
        .client
        .post(plain.url("/test/faults"))
        .json(&json!({"refresh": [{"kind": "drop"}]}))
        .send()
        .await
        .unwrap();
    assert!(r.status() == 404 || r.status() == 405, "{}", r.status());
    let t = plain.login_ok().await;
    plain.refresh_ok(&t.refresh).await;
}

async fn test_redirects_go_only_to_this_server_or_loopback_and_the_401_endpoint_reports_authorization(
    b: Backend,
) {
    let s = TestServer::start_on(b, |_| {}).await;
    let no_follow = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = |to: &str| {
        let mut u = reqwest::Url::parse(&s.url("/test/redirect")).unwrap();
        u.query_pairs_mut().append_pair("to", to);
        no_follow.get(u).send()
    };
    for to in [
        "/test/unauthorized",
        "/api/me?x=1",
        "http://localhost:9/test/unauthorized",
        "http://127.0.0.1:1",
        "http://[::1]:8080/x#y",
    ] {
        let r = redirect(to).await.unwrap();
        assert_eq!(r.status(), 307, "{to}");
        assert_eq!(r.headers()["location"], to);
    }
    for to in [
        "https://evil.example/",
        "//evil.example/x",
        "http://127.0.0.1.evil.example/",
        "http://localhost:80@evil.example/",
        "javascript:alert(1)",
        "/\\evil.example/",
        "/\t/evil.example/",
        "/\n/evil.example/",
        "http://localhost:9\\@evil.example/",
        "/ok path with spaces",
        "",
        "x",
    ] {
        let r = redirect(to).await.unwrap();
        assert_eq!(r.status(), 400, "{to:?}");
        assert!(r.headers().get("location").is_none());
    }

    let r = s
        .client
        .get(s.url("/test/unauthorized"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["authorization_received"], false);
    let r = s
        .client
        .post(s.url("/test/unauthorized"))
        .bearer_auth("anything")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["authorization_received"], true);

    // Without --test-faults neither exists.
    let plain = TestServer::start_on(b, |c| c.test_faults = false).await;
    for path in ["/test/redirect?to=%2F", "/test/unauthorized"] {
        let r = plain.client.get(plain.url(path)).send().await.unwrap();
        assert!(
            r.status() == 404 || r.status() == 405,
            "{path}: {}",
            r.status()
        );
    }
}

async fn fault_status_and_bodies_leave_the_token_alone(b: Backend) {
    let s = TestServer::start_on(b, |_| {}).await;
    let t = s.login_ok().await;
    s.set_faults(json!({"refresh": [
        {"kind": "status", "status": 503},
        {"kind": "status", "status": 429},
        {"kind": "status", "status": 400},
        {"kind": "malformed_json"},
        {"kind": "non_json"},
        {"kind": "no_access_token"},
        {"kind": "huge_body"},
    ]}))
    .await;
    for expected in [503u16, 429, 400] {
        let (st, _, desc) = json_error(s.refresh(&t.refresh).await).await;
        assert_eq!(st, expected);
        assert!(desc.contains("injected"));
    }
    let r = s.refresh(&t.refresh).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.text().await.unwrap(), r#"{"access_token": "x", "#);
    let r = s.refresh(&t.refresh).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(r.text().await.unwrap(), "<html>ok</html>");
    let r = s.refresh(&t.refresh).await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({"token_type": "Bearer", "expires_in": 60}));
    let r = s.refresh(&t.refresh).await;
    assert_eq!(r.status(), 200);
    let bytes = r.bytes().await.unwrap();
    assert!(bytes.len() >= 10 * 1024 * 1024, "{}", bytes.len());
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(v["access_token"].as_str().unwrap().starts_with("aaaa"));

    // Queue drained: normal behaviour, and the token was never spent.
    let t2 = s.refresh_ok(&t.refresh).await;
    assert_ne!(t2.refresh, t.refresh);
    let m = s.metrics().await;
    assert_eq!(m["rotafetch_refresh_total{outcome=\"rotated\"}"], 1);
    assert_eq!(m["rotafetch_refresh_total{outcome=\"invalid\"}"], 0);
}

async fn fault_drop_and_hang_close_without_a_response(b: Backend) {
    let s = TestServer::start_on(b, |_| {}).await;
    let t = s.login_ok().await;
    s.set_faults(json!({"refresh": [{"kind": "drop"}, {"kind": "hang", "ms": 800}]}))
        .await;
    let req = raw_post(
        "/auth/refresh",
        &json!({"refresh_token": t.refresh}).to_string(),
    );
    let out = s.raw(&req, Duration::from_secs(10)).await;
    assert!(
        out.is_empty(),
        "no status line: {:?}",
        String::from_utf8_lossy(&out)
    );

    let start = Instant::now();
    let out = s.raw(&req, Duration::from_secs(20)).await;
    let elapsed = start.elapsed();
    assert!(out.is_empty(), "{:?}", String::from_utf8_lossy(&out));
    assert!(elapsed >= Duration::from_millis(750), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");

    // reqwest sees a network error.
    s.set_faults(json!({"refresh": [{"kind": "drop"}]})).await;
    let err = s
        .client
        .post(s.url("/auth/refresh"))
        .json(&json!({"refresh_token": t.refresh}))
        .send()
        .await;
    assert!(err.is_err());
    // The token was never touched.
    s.refresh_ok(&t.refresh).await;
    assert_eq!(
        s.metric("rotafetch_refresh_total{outcome=\"rotated\"}")
            .await,
        1
    );
}

async fn fault_lost_response_then_grace_retry(b: Backend) {
    let s = TestServer::start_on(b, |c| c.reuse_grace_secs = 30).await;
    let t = s.login_ok().await;
    s.set_faults(json!({"refresh": [{"kind": "lost_response"}]}))
        .await;
    let req = raw_post(
        "/auth/refresh",
        &json!({"refresh_token": t.refresh}).to_string(),
    );
    let out = s.raw(&req, Duration::from_secs(10)).await;
    assert!(out.is_empty(), "{:?}", String::from_utf8_lossy(&out));
    assert_eq!(s.successor_rows(&t.refresh).await, 1, "it really rotated");
    assert_eq!(
        s.metric("rotafetch_refresh_total{outcome=\"rotated\"}")
            .await,
        1
    );
    let retry = s.refresh_ok(&t.refresh).await;
    let again = s.refresh_ok(&t.refresh).await;
    assert_eq!(retry.refresh, again.refresh);
    assert_eq!(s.successor_rows(&t.refresh).await, 1);
    assert_eq!(
        s.metric("rotafetch_refresh_total{outcome=\"grace\"}").await,
        2
    );
    s.refresh_ok(&retry.refresh).await;
}

async fn fault_no_refresh_token_and_delay(b: Backend) {
    let s = TestServer::start_on(b, |_| {}).await;
    let t = s.login_ok().await;
    s.set_faults(json!({"refresh": [{"kind": "no_refresh_token"}, {"kind": "delay", "ms": 600}]}))
        .await;
    let r = s.refresh(&t.refresh).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert_eq!(body["token_type"], "Bearer");
    let access = body["access_token"].as_str().unwrap();
    let me: Value = s.me(access).await.json().await.unwrap();
    let me0: Value = s.me(&t.access).await.json().await.unwrap();
    assert_eq!(me["sid"], me0["sid"], "same family");
    assert_eq!(s.successor_rows(&t.refresh).await, 0, "not rotated");

    let start = Instant::now();
    let t2 = s.refresh_ok(&t.refresh).await; // still valid; delayed, then normal
    assert!(start.elapsed() >= Duration::from_millis(550));
    assert_ne!(t2.refresh, t.refresh);
    let m = s.metrics().await;
    assert_eq!(m["rotafetch_refresh_total{outcome=\"rotated\"}"], 1);
}

async fn fault_api_always_401(b: Backend) {
    let s = TestServer::start_on(b, |_| {}).await;
    let t = s.login_ok().await;
    s.set_faults(json!({"api_always_401": true})).await;
    let r = s.me(&t.access).await;
    assert_eq!(r.status(), 401);
    assert!(www_authenticate(&r).contains(r#"error="invalid_token""#));
    json_error(r).await;
    let r = s
        .client
        .post(s.url("/api/echo"))
        .bearer_auth(&t.access)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    s.client.delete(s.url("/test/faults")).send().await.unwrap();
    assert_eq!(s.me(&t.access).await.status(), 200);
    // The injected 401s are API responses like any other: counted.
    let m = s.metrics().await;
    assert_eq!(m["rotafetch_api_requests_total{status=\"401\"}"], 2);
    assert_eq!(m["rotafetch_api_requests_total{status=\"200\"}"], 1);
}

// ---------------------------------------------------------------------------------------------
// CORS, echo, JWKS, static files, Debug

async fn cors_default_allows_loopback_origins_only(b: Backend) {
    let s = TestServer::start_on(b, |_| {}).await;
    let preflight = |origin: &'static str, path: &'static str| {
        s.client
            .request(reqwest::Method::OPTIONS, s.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    for origin in ["http://127.0.0.1:12345", "http://localhost:5173"] {
        for path in ["/auth/refresh", "/api/echo", "/metrics", "/test/faults"] {
            let r = preflight(origin, path).await.unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            assert_eq!(r.headers()["access-control-allow-origin"], origin);
            let methods = r.headers()["access-control-allow-methods"]
                .to_str()
                .unwrap();
            for m in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
                assert!(methods.contains(m), "{methods}");
            }
            let headers = r.headers()["access-control-allow-headers"]
                .to_str()
                .unwrap()
                .to_ascii_lowercase();
            assert!(headers.contains("authorization") && headers.contains("content-type"));
        }
    }
    for origin in [
        "http://evil.example",
        "http://127.0.0.1.evil.example",
        "https://127.0.0.1:3000",
    ] {
        let r = preflight(origin, "/auth/refresh").await.unwrap();
        assert!(
            r.headers().get("access-control-allow-origin").is_none(),
            "{origin}"
        );
    }
    // Actual request: 401 with exposed WWW-Authenticate.
    let r = s
        .client
        .get(s.url("/api/me"))
        .header("origin", "http://127.0.0.1:12345")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://127.0.0.1:12345"
    );
    assert!(r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .contains("www-authenticate"));
}

async fn cors_explicit_origins(b: Backend) {
    let s = TestServer::start_on(b, |c| c.cors_origins = vec!["https://app.example".into()]).await;
    let r = s
        .client
        .get(s.url("/metrics"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let r = s
        .client
        .get(s.url("/metrics"))
        .header("origin", "http://127.0.0.1:12345")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

async fn echo_returns_exact_bytes(b: Backend) {
    let s = TestServer::start_on(b, |_| {}).await;
    let t = s.login_ok().await;
    let binary: Vec<u8> = (0..=255u8).chain([0, 0xff, 0xc3, 0x28]).collect();
    let multipart = b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01\xff\xfe\r\n--XyZ--\r\n".to_vec();
    let cases: Vec<(reqwest::Method, Option<&str>, Vec<u8>)> = vec![
        (
            reqwest::Method::POST,
            Some("application/octet-stream"),
            binary.clone(),
        ),
        (
            reqwest::Method::POST,
            Some("multipart/form-data; boundary=XyZ"),
            multipart.clone(),
        ),
        (
            reqwest::Method::PUT,
            Some("application/json"),
            b"{\"not\": \"parsed\"".to_vec(),
        ),
        (
            reqwest::Method::PATCH,
            Some("text/plain"),
            "héllo".as_bytes().to_vec(),
        ),
        (reqwest::Method::DELETE, None, Vec::new()),
    ];
    for (method, ct, body) in cases {
        let mut rb = s
            .client
            .request(method.clone(), s.url("/api/echo"))
            .bearer_auth(&t.access)
            .body(body.clone());
        if let Some(ct) = ct {
            rb = rb.header("content-type", ct);
        }
        let r = rb.send().await.unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["method"], method.as_str());
        assert_eq!(
            v["content_type"],
            ct.map(Value::from).unwrap_or(Value::Null)
        );
        let got = base64::engine::general_purpose::STANDARD
            .decode(v["body_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(got, body);
    }
    let r = s
        .client
        .post(s.url("/api/echo"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Unauthenticated and oversized: still a clean 401 (the body is drained, no reset).
    let r = s
        .client
        .post(s.url("/api/echo"))
        .body(vec![1u8; 3 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(json_error(r).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_files() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let root = dir.path();
    std::fs::create_dir_all(root.join("www")).unwrap();
    std::fs::write(root.join("www/index.html"), "<h1>rotafetch</h1>").unwrap();
    std::fs::create_dir_all(root.join("pkg")).unwrap();
    std::fs::write(root.join("pkg/rotafetch_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(root.join("pkg/rotafetch.js"), "export {}").unwrap();
    std::fs::create_dir_all(root.join("ex")).unwrap();
    std::fs::write(root.join("ex/index.html"), "example").unwrap();
    let ex = root.join("ex");
    let s = TestServer::start_in(dir.clone(), move |c| {
        c.statics = vec![
            ("/examples".into(), ex),
            ("/missing".into(), "/definitely/not/here".into()),
        ];
    })
    .await;
    let get = |p: &'static str| s.client.get(s.url(p)).send();
    let r = get("/").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.text().await.unwrap(), "<h1>rotafetch</h1>");
    let r = get("/pkg/rotafetch_bg.wasm").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/wasm");
    let r = get("/pkg/rotafetch.js").await.unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("javascript"));
    let r = get("/examples/").await.unwrap();
    assert_eq!(r.text().await.unwrap(), "example");
    assert_eq!(json_error(get("/missing/x").await.unwrap()).await.0, 404);
    assert_eq!(
        json_error(get("/../Cargo.toml").await.unwrap()).await.0,
        404
    );

    // Missing www/pkg directories do not crash anything.
    let s2 = TestServer::start(|c| {
        c.www = Some("/definitely/not/here".into());
        c.pkg = Some("/definitely/not/here/either".into());
    })
    .await;
    let r = s2.client.get(s2.url("/")).send().await.unwrap();
    assert_eq!(json_error(r).await.0, 404);
    s2.login_ok().await;
}

on_both_backends!(
    login_success_wrong_password_unknown_user,
    rotation_chain_of_50,
    reuse_revokes_the_whole_family,
    grace_returns_the_same_successor_until_it_is_used,
    grace_window_closes,
    grace_zero_disables_grace,
    concurrent_refreshes_inside_grace_share_one_successor,
    concurrent_refreshes_without_grace_exactly_one_wins,
    refresh_request_formats,
    expired_access_token_is_refused,
    idle_and_absolute_session_expiry,
    logout_revokes_family_and_is_idempotent,
    restart_with_the_same_database_keeps_sessions,
    hostile_inputs_get_json_4xx,
    metrics_format_and_counters,
    fault_api_state_and_routing,
    test_redirects_go_only_to_this_server_or_loopback_and_the_401_endpoint_reports_authorization,
    fault_status_and_bodies_leave_the_token_alone,
    fault_drop_and_hang_close_without_a_response,
    fault_lost_response_then_grace_retry,
    fault_no_refresh_token_and_delay,
    fault_api_always_401,
    cors_default_allows_loopback_origins_only,
    cors_explicit_origins,
    echo_returns_exact_bytes,
);
