//! Hostile input at the OpenID provider's endpoints (issue #22, "Bad input"): fuzzed
//! authorization requests, token, PAR and revocation bodies, sign-in forms and logout
//! requests get a 4xx (an HTML page where redirecting would be unsafe, RFC 6749 JSON
//! elsewhere), never a 5xx, never a redirect to an unregistered URI, and issue nothing;
//! oversized inputs; and no code, token, password or cookie in the logs of a real run.

mod common;

use std::path::Path;

use common::oidc::{auth_params, pkce, query, register, with, Browser, CLIENT, REDIRECT};
use common::process::ServerProcess;
use common::rng::Rng;
use common::TestServer;
use serde_json::Value;

const JUNK: &[&str] = &[
    "",
    "%",
    "%zz",
    "%00",
    "&",
    "=",
    "==",
    "\u{0}",
    "\u{ff}",
    "é",
    "<script>",
    "\"",
    "'",
    " ",
    "+",
    "#frag",
    "https://evil.example/cb",
    "//evil.example",
    "plain",
    "none",
    "S256",
    "code",
    "token",
    "urn:ietf:params:oauth:request_uri:",
    "openid",
    "login",
];

/// A valid parameter list with one or more fields mutated: dropped, duplicated, emptied,
/// replaced with junk, or lengthened.
fn mutate(rng: &mut Rng, params: &[(String, String)]) -> Vec<(String, String)> {
    let mut p = params.to_vec();
    for _ in 0..1 + rng.below(3) {
        let i = rng.below(p.len().max(1));
        match rng.below(6) {
            0 if !p.is_empty() => {
                p.remove(i);
            }
            1 if !p.is_empty() => {
                let dup = p[i].clone();
                p.push(dup);
            }
            2 if !p.is_empty() => p[i].1 = rng.pick(JUNK).to_string(),
            3 if !p.is_empty() => {
                let junk = *rng.pick(JUNK);
                p[i].1.push_str(junk)
            }
            4 if !p.is_empty() => p[i].1 = p[i].1.repeat(1 + rng.below(40)),
            _ => p.push((rng.pick(JUNK).to_string(), rng.pick(JUNK).to_string())),
        }
    }
    p
}

fn content_type(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_provider_requests_get_4xx_and_issue_nothing() {
    // Bad input, not guessing, is what this test is about: no back-off for its 150 forms.
    let s = TestServer::start(|c| {
        register(c);
        c.login_limits.account.free = 100_000;
        c.login_limits.address.free = 100_000;
    })
    .await;
    let mut rng = Rng(0x5eed_0022);
    let mut browser = Browser::new(&s);
    let valid = auth_params(&pkce());
    let mut cases = 0;
    // /authorize: a redirect only ever goes to the registered URI; errors are HTML pages.
    for _ in 0..300 {
        let p = mutate(&mut rng, &valid);
        let page = browser.authorize(&p).await;
        assert!(page.status < 500, "{p:?}: {}", page.status);
        match page.status {
            303 => assert_eq!(page.redirect_target(), REDIRECT, "{p:?}"),
            200 => assert!(page.body.contains("name=\"csrf_token\""), "{p:?}"),
            _ => {
                assert!(
                    content_type(&page.headers).starts_with("text/html"),
                    "{p:?}"
                );
                assert!(page.location.is_none());
            }
        }
        cases += 1;
    }
    // The form with a valid CSRF token and request but mutated fields never signs in
    // without the password.
    let form = browser.authorize(&valid).await;
    let fields = vec![
        ("csrf_token".to_string(), form.hidden("csrf_token").unwrap()),
        ("request".to_string(), form.hidden("request").unwrap()),
        ("username".to_string(), "demo".to_string()),
        ("password".to_string(), "wrong".to_string()),
    ];
    for _ in 0..150 {
        let f = mutate(&mut rng, &fields);
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let page = browser.post("/authorize/login", &f).await;
        assert!(
            matches!(page.status, 400 | 401 | 403 | 413),
            "{f:?}: {}",
            page.status
        );
        assert!(content_type(&page.headers).starts_with("text/html"));
        cases += 1;
    }
    // /token, /par, /revoke: JSON 4xx.
    let token = [
        ("grant_type", "authorization_code"),
        ("code", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ("redirect_uri", REDIRECT),
        ("client_id", CLIENT),
        ("code_verifier", &"v".repeat(43)),
    ];
    let revoke = [
        ("token", "x"),
        ("token_type_hint", "refresh_token"),
        ("client_id", CLIENT),
    ];
    let owned = |f: &[(&str, &str)]| -> Vec<(String, String)> {
        f.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let seeds = [
        ("/token", owned(&token)),
        ("/par", valid.clone()),
        ("/revoke", owned(&revoke)),
    ];
    let content_types = [
        "application/x-www-form-urlencoded",
        "application/json",
        "text/plain",
        "",
    ];
    for _ in 0..400 {
        let (path, seed) = rng.pick(&seeds);
        let body = query(&mutate(&mut rng, seed));
        let ct = *rng.pick(&content_types);
        let mut req = s.client.post(s.url(path)).body(body.clone());
        if !ct.is_empty() {
            req = req.header("content-type", ct);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        assert!(status < 500, "{path} {ct} {body}: {status}");
        if *path == "/token" {
            assert!(status >= 400, "{body}: nothing issued");
        }
        if status >= 400 {
            let (_, error, _) = common::json_error(r).await;
            assert!(!error.is_empty());
        }
        cases += 1;
    }
    // /logout: never a redirect to an unregistered URI.
    for _ in 0..100 {
        let p = mutate(
            &mut rng,
            &[
                ("client_id".into(), CLIENT.into()),
                (
                    "post_logout_redirect_uri".into(),
                    "https://app.example/bye".into(),
                ),
                ("state".into(), "s".into()),
            ],
        );
        let page = browser.get(&format!("/logout?{}", query(&p))).await;
        assert!(
            page.status < 500 && page.location.is_none(),
            "{p:?}: {}",
            page.status
        );
        cases += 1;
    }
    assert!(cases >= 950, "{cases}");
    // Nothing was issued, and the provider still works.
    assert_eq!(s.scalar("SELECT COUNT(*) FROM families", None).await, 0);
    assert_eq!(
        s.scalar("SELECT COUNT(*) FROM provider_sessions", None)
            .await,
        0
    );
    let pk = pkce();
    let code = browser.sign_in(&auth_params(&pk)).await.redirect_params()["code"].clone();
    common::oidc::token_ok(common::oidc::redeem(&s, &code, &pk, None).await).await;
}

/// POSTs the sign-in form (`csrf`, `request`, demo/demo) with `browser`'s cookies and
/// `Sec-Fetch-Site: site`: the status.
async fn browser_post_from(
    s: &TestServer,
    browser: &Browser,
    site: &str,
    csrf: &str,
    request: &str,
) -> u16 {
    let form = [
        ("csrf_token", csrf),
        ("request", request),
        ("username", "demo"),
        ("password", "demo"),
    ];
    let r = s
        .client
        .post(s.url("/authorize/login"))
        .header("cookie", browser.cookie_header())
        .header("sec-fetch-site", site)
        .form(&form)
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_forged_inputs() {
    let s = TestServer::start(register).await;
    let mut browser = Browser::new(&s);
    let valid = auth_params(&pkce());
    // A state too long to send back: the error goes back without it.
    let long_state = with(&valid, &[("state", Some(&"s".repeat(60_000)))]);
    let page = browser.authorize(&long_state).await;
    assert_eq!(page.status, 303);
    let q = page.redirect_params();
    assert_eq!(
        (q["error"].as_str(), q.get("state")),
        ("invalid_request", None)
    );
    // Past hyper's header limits: refused before any handler, no 5xx.
    let huge = query(&with(&valid, &[("nonce", Some(&"n".repeat(1 << 20)))]));
    let raw = format!("GET /authorize?{huge} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let answer = s
        .raw(raw.as_bytes(), std::time::Duration::from_secs(10))
        .await;
    let head = String::from_utf8_lossy(&answer[..answer.len().min(12)]).into_owned();
    assert!(head.starts_with("HTTP/1.1 4"), "{head:?}");
    // Bodies over 64 KiB: 413.
    let big = "x".repeat(70 * 1024);
    for path in ["/token", "/par", "/revoke"] {
        let r = s
            .client
            .post(s.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("client_id={CLIENT}&token={big}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413, "{path}");
    }
    let form = browser.authorize(&valid).await;
    let (csrf, request) = (
        form.hidden("csrf_token").unwrap(),
        form.hidden("request").unwrap(),
    );
    let page = browser
        .post(
            "/authorize/login",
            &[
                ("csrf_token", &csrf),
                ("request", &request),
                ("username", "demo"),
                ("password", &big),
            ],
        )
        .await;
    assert_eq!(page.status, 413);
    // Without its CSRF token, with another browser's, or without the cookie: 403.
    let creds = [("username", "demo"), ("password", "demo")];
    let page = browser
        .post(
            "/authorize/login",
            &[("request", &request), creds[0], creds[1]],
        )
        .await;
    assert_eq!(page.status, 403);
    let mut other = Browser::new(&s);
    let other_form = other.authorize(&valid).await;
    let page = browser
        .post(
            "/authorize/login",
            &[
                ("csrf_token", &other_form.hidden("csrf_token").unwrap()),
                ("request", &request),
                creds[0],
                creds[1],
            ],
        )
        .await;
    assert_eq!(page.status, 403);
    let mut cookieless = Browser::new(&s);
    let page = cookieless
        .post(
            "/authorize/login",
            &[
                ("csrf_token", &csrf),
                ("request", &request),
                creds[0],
                creds[1],
            ],
        )
        .await;
    assert_eq!(page.status, 403);
    // Posted from another site (Fetch Metadata), even with a good token and cookie: 403.
    for site in ["cross-site", "same-site"] {
        let r = browser_post_from(&s, &browser, site, &csrf, &request).await;
        assert_eq!(r, 403, "{site}");
    }
    // A request sealed for one client cannot be edited to another redirect URI (the token
    // is bound to the sealed request, and the seal to its content).
    let mut parts: Vec<String> = request.split('.').map(str::to_owned).collect();
    parts[1] = parts[1].replace('A', "B");
    let page = browser
        .post(
            "/authorize/login",
            &[
                ("csrf_token", &csrf),
                ("request", &parts.join(".")),
                creds[0],
                creds[1],
            ],
        )
        .await;
    assert_eq!((page.status, page.location.as_deref()), (403, None));
    // Wrong password and unknown user: the same answer.
    let wrong = browser.submit(&form, "demo", "nope").await;
    let unknown = browser.submit(&form, "nobody", "nope").await;
    assert_eq!((wrong.status, unknown.status), (401, 401));
    let alert = |b: &str| {
        b.split("role=\"alert\">")
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(alert(&wrong.body), alert(&unknown.body));
    assert_eq!(
        s.scalar("SELECT COUNT(*) FROM provider_sessions", None)
            .await,
        0
    );
    // The pages: a strict CSP, no framing, no caching, and no CORS.
    let r = s
        .client
        .get(s.url(&format!("/authorize?{}", query(&valid))))
        .header("origin", "http://127.0.0.1:9")
        .send()
        .await
        .unwrap();
    let h = r.headers();
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap()
        .starts_with("default-src 'none'"));
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["cache-control"], "no-store");
    assert!(
        h.get("access-control-allow-origin").is_none(),
        "no CORS on /authorize"
    );
    for path in [
        "/.well-known/openid-configuration",
        "/token",
        "/par",
        "/revoke",
    ] {
        let r = s
            .client
            .request(reqwest::Method::OPTIONS, s.url(path))
            .header("origin", "http://127.0.0.1:9")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "dpop,content-type")
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.headers()["access-control-allow-origin"],
            "http://127.0.0.1:9",
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_tokens_passwords_and_cookies_never_reach_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let client = format!("{CLIENT}={REDIRECT}");
    let server = ServerProcess::start_logging(
        Path::new(env!("CARGO_BIN_EXE_rotafetch-server")),
        db.to_str().unwrap(),
        dir.path(),
        "p",
        &[
            "--client",
            &client,
            "--post-logout",
            &format!("{CLIENT}=https://app.example/bye"),
        ],
        "debug",
    )
    .await;
    let mut browser = Browser::at(&server.base);
    let pk = pkce();
    let form = browser.authorize(&auth_params(&pk)).await;
    let password = "demo";
    browser.submit(&form, "demo", "not-the-password-9f3c").await;
    let back = browser.submit(&form, "demo", password).await;
    let code = back.redirect_params()["code"].clone();
    let http = common::client();
    let body: Value = http
        .post(server.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", CLIENT),
            ("code_verifier", &pk.verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id_token = body["id_token"].as_str().unwrap().to_owned();
    let reuse = http
        .post(server.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", CLIENT),
            ("code_verifier", &pk.verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(reuse.status(), 400);
    browser
        .get(&format!(
            "/logout?id_token_hint={id_token}&post_logout_redirect_uri=https://app.example/bye"
        ))
        .await;
    let log = server.log_text();
    assert!(
        log.contains("authorization code redeemed"),
        "debug logging is on:\n{log}"
    );
    let mut secrets = vec![
        ("code", code.clone()),
        ("code_verifier", pk.verifier.clone()),
        ("wrong password", "not-the-password-9f3c".to_owned()),
        ("id_token", id_token.clone()),
        ("csrf_token", form.hidden("csrf_token").unwrap()),
        ("sealed request", form.hidden("request").unwrap()),
    ];
    for field in ["access_token", "refresh_token"] {
        secrets.push((field, body[field].as_str().unwrap().to_owned()));
    }
    for (name, value) in browser
        .cookies
        .iter()
        .chain(std::iter::once((&"csrf".to_owned(), &String::new())))
    {
        if !value.is_empty() {
            secrets.push(("cookie", format!("{name}={value}")));
        }
    }
    for (what, secret) in secrets {
        assert!(!log.contains(&secret), "{what} leaked into the logs");
    }
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_form_is_throttled_without_telling_users_apart() {
    let s = TestServer::start(register).await;
    let free = rotafetch_server::Config::default()
        .login_limits
        .account
        .free;
    let mut browser = Browser::new(&s);
    let form = browser.authorize(&auth_params(&pkce())).await;
    let alert = |b: &str| {
        b.split("role=\"alert\">")
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap()
            .to_owned()
    };
    // The same answers for a known and an unknown account, then the same back-off.
    for user in ["demo", "nobody"] {
        for _ in 0..free {
            let page = browser.submit(&form, user, "wrong").await;
            assert_eq!(page.status, 401, "{user}");
            assert_eq!(alert(&page.body), "Invalid username or password.");
        }
        let page = browser.submit(&form, user, "wrong").await;
        assert_eq!(
            page.status, 401,
            "the failure past the budget is still checked"
        );
        let throttled = browser.submit(&form, user, "demo").await;
        assert_eq!(
            throttled.status, 429,
            "{user}: backing off, the password is not even checked"
        );
        let retry: u64 = throttled.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=900).contains(&retry), "{retry}");
        assert!(alert(&throttled.body).starts_with("Too many failed attempts."));
        assert!(
            throttled.body.contains("name=\"csrf_token\""),
            "the form stays usable"
        );
    }
    assert_eq!(
        s.scalar("SELECT COUNT(*) FROM provider_sessions", None)
            .await,
        0
    );
    assert!(
        s.metric("rotafetch_logins_total{outcome=\"throttled\"}")
            .await
            >= 2
    );
}
