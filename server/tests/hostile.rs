//! Issue #4, server side: 50 concurrent refreshes of one token never mint a second successor,
//! and hostile input at every endpoint (fuzzed bodies, odd methods and paths, path traversal,
//! malformed HTTP, hostile fault plans) gets a 4xx (JSON where the handlers answer), never a
//! 5xx or a panic. Complements `hostile_inputs_get_json_4xx` in tests/api.rs.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::rng::Rng;
use common::{concurrent_refreshes, json_error, TestServer};
use serde_json::{json, Value};

/// Sends `body` and asserts the answer is not a 5xx, and a JSON error if it is a 4xx.
async fn assert_not_5xx(s: &TestServer, method: &str, path: &str, ct: &str, body: Vec<u8>) -> u16 {
    let preview = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
    let mut req = s
        .client
        .request(method.parse().unwrap(), s.url(path))
        .body(body);
    if !ct.is_empty() {
        req = req.header("content-type", ct);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    assert!(status < 500, "{method} {path} {ct} {preview:?}: {status}");
    if status >= 400 {
        let (_, error, _) = json_error(r).await;
        assert!(!error.is_empty());
    }
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_refreshes_mint_one_successor_with_or_without_grace() {
    for grace in [0, 5] {
        let s = TestServer::start(|c| c.reuse_grace_secs = grace).await;
        let t = s.login_ok().await;
        let results = concurrent_refreshes(&s, &t.refresh, 50).await;
        let ok: Vec<&Value> = results
            .iter()
            .filter(|(st, _)| *st == 200)
            .map(|(_, b)| b)
            .collect();
        let successors: HashSet<&str> = ok
            .iter()
            .map(|b| b["refresh_token"].as_str().unwrap())
            .collect();
        assert_eq!(successors.len(), 1, "grace {grace}: one successor");
        assert_eq!(s.successor_rows(&t.refresh).await, 1, "grace {grace}");
        for (st, body) in results.iter().filter(|(st, _)| *st != 200) {
            assert_eq!(*st, 400, "grace {grace}: {body}");
            assert_eq!(body["error"], "invalid_grant");
        }
        let m = s.metrics().await;
        let count = |o: &str| m[&format!("rotafetch_refresh_total{{outcome=\"{o}\"}}")];
        assert_eq!(count("rotated"), 1, "grace {grace}");
        if grace == 0 {
            // Without grace, exactly one wins; the rest is reuse and revokes the family.
            assert_eq!(ok.len(), 1);
            // The first loser detects reuse and revokes the family; later ones find it revoked.
            assert!(count("reused") >= 1);
            assert_eq!(count("reused") + count("invalid"), 49);
            let winner = successors.into_iter().next().unwrap();
            let (st, _, desc) = json_error(s.refresh(winner).await).await;
            assert_eq!((st, desc.as_str()), (400, "session revoked"));
        } else {
            // Inside grace, every one gets the same successor, which then works normally.
            assert_eq!(ok.len(), 50);
            assert_eq!(count("grace"), 49);
            let successor = successors.into_iter().next().unwrap().to_owned();
            let next = s.refresh_ok(&successor).await;
            assert_ne!(next.refresh, successor);
            // The original token is now spent and its successor used: reuse.
            let (st, error, _) = json_error(s.refresh(&t.refresh).await).await;
            assert_eq!((st, error.as_str()), (400, "invalid_grant"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_bodies_at_every_endpoint_get_4xx_json_never_5xx() {
    let s = TestServer::start(|c| c.reuse_grace_secs = 5).await;
    let t = s.login_ok().await;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let content_types = [
        "application/json",
        "application/json; charset=utf-8",
        "application/x-www-form-urlencoded",
        "text/plain",
        "application/merge-patch+json",
        "",
        "application/octet-stream",
        "multipart/form-data; boundary=zz",
        "application/json; charset=ütf-8",
        "application/x-www-form-urlencoded; charset=latin1",
    ];
    let seeds: Vec<Vec<u8>> = vec![
        br#"{"username":"demo","password":"demo"}"#.to_vec(),
        format!(r#"{{"refresh_token":"{}"}}"#, "Z".repeat(43)).into_bytes(),
        b"grant_type=refresh_token&refresh_token=abc&client_id=x".to_vec(),
        br#"{"refresh":[{"kind":"status","status":503}],"api_always_401":false}"#.to_vec(),
        b"username=demo&password=demo".to_vec(),
    ];
    let specials: Vec<Vec<u8>> = vec![
        "[".repeat(10_000).into_bytes(),
        "{\"a\":".repeat(5_000).into_bytes(),
        br#"{"refresh_token":"\ud800"}"#.to_vec(),
        br#"{"refresh_token":"a\u0000b"}"#.to_vec(),
        br#"{"refresh_token":1e999}"#.to_vec(),
        br#"{"refresh_token":"a","refresh_token":"b"}"#.to_vec(),
        br#"{"username":"demo","password":"demo","username":"root"}"#.to_vec(),
        br#"{"username":null,"password":null}"#.to_vec(),
        br#"{"username":["demo"],"password":{"$ne":""}}"#.to_vec(),
        b"refresh_token=a&refresh_token=b".to_vec(),
        b"refresh_token=%zz%ff&grant_type=%00".to_vec(),
        b"grant_type=password&username=demo&password=demo".to_vec(),
        b"=&&==&".to_vec(),
        b"\xef\xbb\xbf{\"refresh_token\":\"x\"}".to_vec(),
        format!(
            r#"{{"username":"demo","password":"{}"}}"#,
            "p".repeat(60_000)
        )
        .into_bytes(),
        format!(
            r#"{{"username":"{}","password":"demo"}}"#,
            "ü".repeat(30_000)
        )
        .into_bytes(),
        vec![b' '; 64 * 1024],
        vec![0u8; 64 * 1024 + 1],
    ];
    let paths = ["/auth/login", "/auth/refresh", "/auth/logout"];
    let mut cases = 0;
    for path in paths {
        for body in &specials {
            let ct = *rng.pick(&content_types);
            assert_not_5xx(&s, "POST", path, ct, body.clone()).await;
            assert_not_5xx(&s, "POST", path, "application/json", body.clone()).await;
            cases += 2;
        }
        for _ in 0..200 {
            let ct = *rng.pick(&content_types);
            let body = match rng.below(4) {
                0 => rng.bytes(300),
                // A valid-looking body, mutated: truncated, a byte flipped, junk spliced in.
                _ => {
                    let mut b = rng.pick(&seeds).clone();
                    for _ in 0..1 + rng.below(3) {
                        let at = rng.below(b.len() + 1);
                        match rng.below(3) {
                            0 => b.truncate(at),
                            1 if at < b.len() => b[at] = rng.next() as u8,
                            _ => {
                                let junk = *rng.pick(&[
                                    &b"\""[..],
                                    b"\\",
                                    b"{",
                                    b"]",
                                    b"%",
                                    b"&",
                                    b"\xff",
                                    b"\x00",
                                    b"\\u0000",
                                    b"1e308",
                                ]);
                                b.splice(at..at, junk.iter().copied());
                            }
                        }
                    }
                    b
                }
            };
            assert_not_5xx(&s, "POST", path, ct, body).await;
            cases += 1;
        }
    }
    // /api/*: random Authorization headers and bodies.
    for _ in 0..150 {
        let n = rng.below(200);
        let value: String = (0..n)
            .map(|_| (0x20 + rng.below(0x5f) as u8) as char)
            .collect();
        let scheme = *rng.pick(&["Bearer ", "bearer ", "Basic ", "", "Bearer  ", "DPoP "]);
        let r = s
            .client
            .get(s.url("/api/me"))
            .header("authorization", format!("{scheme}{value}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{scheme}{value}");
        json_error(r).await;
        cases += 1;
    }
    for _ in 0..50 {
        let ct = *rng.pick(&content_types);
        let body = rng.bytes(2000);
        let mut req = s
            .client
            .post(s.url("/api/echo"))
            .bearer_auth(&t.access)
            .body(body.clone());
        if !ct.is_empty() {
            req = req.header("content-type", ct);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200, "echo takes any bytes");
        let v: Value = r.json().await.unwrap();
        assert!(v["body_base64"].is_string());
        cases += 1;
    }
    // /test/faults last (a valid plan would inject faults into the refreshes above); the
    // queue is cleared after every accepted plan.
    for _ in 0..150 {
        let ct = *rng.pick(&content_types);
        let mut b = rng.pick(&seeds).clone();
        let at = rng.below(b.len() + 1);
        b.splice(at..at, rng.bytes(4));
        if assert_not_5xx(&s, "POST", "/test/faults", ct, b).await < 300 {
            s.client.delete(s.url("/test/faults")).send().await.unwrap();
        }
        cases += 1;
    }
    assert!(cases >= 1000, "{cases} cases");
    // Still healthy, and nothing was ever a 5xx.
    let t2 = s.login_ok().await;
    s.refresh_ok(&t2.refresh).await;
    assert_eq!(s.me(&t2.access).await.status(), 200);
    let m = s.metrics().await;
    assert!(m.keys().all(|k| !k.contains("status=\"5")), "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_fault_plans_are_refused_and_change_nothing() {
    let s = TestServer::start(|_| {}).await;
    let long = format!(
        r#"{{"refresh":[{}]}}"#,
        vec![r#"{"kind":"drop"}"#; 5000].join(",")
    );
    let plans: Vec<String> = vec![
        r#"{"refresh":[{"kind":"nope"}]}"#.into(),
        r#"{"refresh":[{"kind":"status","status":200}]}"#.into(),
        r#"{"refresh":[{"kind":"status","status":399}]}"#.into(),
        r#"{"refresh":[{"kind":"status","status":600}]}"#.into(),
        r#"{"refresh":[{"kind":"status","status":-1}]}"#.into(),
        r#"{"refresh":[{"kind":"status","status":"500"}]}"#.into(),
        r#"{"refresh":[{"kind":"status"}]}"#.into(),
        r#"{"refresh":[{"kind":"hang","ms":-5}]}"#.into(),
        r#"{"refresh":[{"kind":"hang","ms":1e30}]}"#.into(),
        r#"{"refresh":[{"kind":"delay","ms":"x"}]}"#.into(),
        r#"{"refresh":[{}]}"#.into(),
        r#"{"refresh":[null]}"#.into(),
        r#"{"refresh":{"kind":"drop"}}"#.into(),
        r#"{"refresh":"drop"}"#.into(),
        r#"{"api_always_401":"yes"}"#.into(),
        r#"[{"kind":"drop"}]"#.into(),
        "null".into(),
        long,
    ];
    for plan in &plans {
        let r = s
            .client
            .post(s.url("/test/faults"))
            .header("content-type", "application/json")
            .body(plan.clone())
            .send()
            .await
            .unwrap();
        let (st, _, _) = json_error(r).await;
        assert!(
            (400..500).contains(&st),
            "{}: {st}",
            &plan[..plan.len().min(60)]
        );
    }
    let state: Value = s.get_json("/test/faults").await;
    assert_eq!(state["remaining"], 0, "{state}");
    assert_eq!(state["api_always_401"], false);
    let t = s.login_ok().await;
    s.refresh_ok(&t.refresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_methods_and_paths_are_4xx_json() {
    let s = TestServer::start(|_| {}).await;
    let t = s.login_ok().await;
    let long = format!("/{}", "a".repeat(4000));
    let paths = [
        "/auth/login",
        "/auth/refresh",
        "/auth/logout",
        "/api/me",
        "/api/echo",
        "/.well-known/jwks.json",
        "/metrics",
        "/test/faults",
        "/auth/refresh/",
        "/auth//refresh",
        "/AUTH/REFRESH",
        "/auth/refresh%00",
        "/auth/refresh;x=1",
        "/api/me?x=%ff%fe&y=%zz",
        "/metrics?format=%00",
        "/%00",
        "/%ff",
        "/pkg/",
        "/pkg/%2e%2e/%2e%2e/etc/passwd",
        "/pkg/..%2f..%2fCargo.toml",
        "/ünïcode",
        long.as_str(),
    ];
    let methods = [
        "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "HEAD", "PROPFIND",
    ];
    let mut seen = 0;
    let mut bad = Vec::new();
    for path in paths {
        for method in methods {
            let mut req = s
                .client
                .request(method.parse().unwrap(), s.url(path))
                .header("content-type", "application/json")
                .body("{}");
            if path.starts_with("/api/") {
                req = req.bearer_auth(&t.access);
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            if status >= 500 {
                bad.push(format!("{method} {path}: {status}"));
            } else if status >= 400 && method != "HEAD" {
                json_error(r).await;
            }
            seen += 1;
        }
    }
    assert!(bad.is_empty(), "5xx answers: {bad:#?}");
    assert_eq!(seen, paths.len() * methods.len());
    let m = s.metrics().await;
    assert!(m.keys().all(|k| !k.contains("status=\"5")), "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_traversal_never_leaves_the_static_roots() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    std::fs::create_dir_all(dir.path().join("www")).unwrap();
    std::fs::create_dir_all(dir.path().join("pkg")).unwrap();
    std::fs::write(dir.path().join("www/index.html"), "<p>ok</p>").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "TOP-SECRET-FILE").unwrap();
    let s = TestServer::start_in(dir, |_| {}).await;
    for target in [
        "/../secret.txt",
        "/pkg/../../secret.txt",
        "/pkg/%2e%2e/%2e%2e/secret.txt",
        "/pkg/..%2f..%2fsecret.txt",
        "/pkg/%2e%2e%2f%2e%2e%2fsecret.txt",
        "/%2e%2e/secret.txt",
        "/..\\secret.txt",
        "/pkg/..\\..\\secret.txt",
        "//secret.txt",
        "/pkg//../../secret.txt",
        "/index.html/../../secret.txt",
        "/pkg/%252e%252e/secret.txt",
    ] {
        let req = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let out = s.raw(req.as_bytes(), Duration::from_secs(10)).await;
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains("TOP-SECRET"), "{target} leaked the file");
        assert!(
            text.starts_with("HTTP/1.1 4") || text.starts_with("HTTP/1.1 3") || out.is_empty(),
            "{target}: {}",
            &text[..text.len().min(200)]
        );
    }
    let r = s.client.get(s.url("/index.html")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the static root itself still works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http_is_refused_without_a_5xx() {
    let s = TestServer::start(|_| {}).await;
    let long_uri = format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let requests: Vec<Vec<u8>> = vec![
        b"GARBAGE\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\n\r\n".to_vec(),
        b"\x00\x01\x02\x03\r\n\r\n".to_vec(),
        b"POST /auth/refresh HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\nConnection: close\r\n\r\n".to_vec(),
        b"POST /auth/refresh HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\nConnection: close\r\n\r\nabcde".to_vec(),
        b"POST /auth/refresh HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\nConnection: close\r\n\r\n".to_vec(),
        b"POST /auth/refresh HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nabc\r\n0\r\n\r\n".to_vec(),
        b"POST /auth/refresh HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n".to_vec(),
        b"POST /auth/refresh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{\"refresh_token\":".to_vec(),
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nBroken Header\r\nConnection: close\r\n\r\n".to_vec(),
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Nul: a\x00b\r\nConnection: close\r\n\r\n".to_vec(),
        b"POST http://evil.example/auth/refresh HTTP/1.1\r\nHost: evil.example\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_vec(),
        b"GET /metrics HTTP/1.0\r\n\r\n".to_vec(),
        b"POST /auth/refresh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Type: text/html\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_vec(),
        long_uri.into_bytes(),
    ];
    for req in &requests {
        // A request that promises more body than it sends is left waiting: give up after 3 s.
        let out = s.raw(req, Duration::from_secs(3)).await;
        let text = String::from_utf8_lossy(&out);
        let preview = String::from_utf8_lossy(&req[..req.len().min(80)]);
        assert!(
            !text.starts_with("HTTP/1.1 5") && !text.starts_with("HTTP/1.0 5"),
            "{preview:?}: {text}"
        );
    }
    // Still healthy, and nothing was a 5xx.
    let t = s.login_ok().await;
    s.refresh_ok(&t.refresh).await;
    let m = s.metrics().await;
    assert!(m.keys().all(|k| !k.contains("status=\"5")), "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_descriptions_never_echo_the_presented_token() {
    let s = TestServer::start(|_| {}).await;
    let secret = "SECRET-HOSTILE-TOKEN-0123456789abcdef";
    let t = s.login_ok().await;
    let bodies = [
        json!({ "refresh_token": secret }).to_string(),
        json!({ "refresh_token": t.access }).to_string(),
        json!({ "refresh_token": secret, "grant_type": "bogus" }).to_string(),
    ];
    for path in ["/auth/refresh", "/auth/login"] {
        for b in &bodies {
            let r = s
                .client
                .post(s.url(path))
                .header("content-type", "application/json")
                .body(b.clone())
                .send()
                .await
                .unwrap();
            let text = r.text().await.unwrap();
            assert!(
                !text.contains(secret) && !text.contains(&t.access),
                "{path}: {text}"
            );
        }
    }
    for value in [format!("Bearer {secret}"), format!("Bearer {}x", t.access)] {
        let r = s
            .client
            .get(s.url("/api/me"))
            .header("authorization", &value)
            .send()
            .await
            .unwrap();
        let challenge = r
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = r.text().await.unwrap();
        for out in [&challenge, &text] {
            assert!(!out.contains(secret) && !out.contains(&t.access), "{out}");
        }
    }
}
