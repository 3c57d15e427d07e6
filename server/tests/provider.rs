//! The OpenID provider over real HTTP, on SQLite and PostgreSQL: discovery, the sign-in
//! form and provider session, the code exchange and its rules, ID tokens checked against
//! the JWKS, DPoP-bound codes, PAR, revocation, end session and CORS.

mod common;

use common::dpop::{jwt_claims, Key};
use common::oidc::{
    auth_params, exchange, pkce, query, redeem, register, token_ok, with, Browser, CLIENT, OTHER,
    OTHER_REDIRECT, POST_LOGOUT, REDIRECT,
};
use common::{json_error, Backend, TestServer};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

async fn start(b: Backend) -> TestServer {
    TestServer::start_on(b, register).await
}

/// Verifies an ID token the way a relying party does: its `kid` in the JWKS, RS256, `iss`,
/// `aud`, `exp`.
async fn verified_id_token(s: &TestServer, token: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    let jwks: jsonwebtoken::jwk::JwkSet = s.get_json("/.well-known/jwks.json").await;
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid in the JWKS");
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[CLIENT]);
    v.set_issuer(&[&s.base]);
    v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &v)
        .unwrap()
        .claims
}

async fn sign_in_redeem_and_use_the_session(b: Backend) {
    let s = start(b).await;
    let meta: Value = s.get_json("/.well-known/openid-configuration").await;
    assert_eq!(meta["issuer"], s.base);
    assert_eq!(meta["token_endpoint"], s.url("/token"));
    let same: Value = s.get_json("/.well-known/oauth-authorization-server").await;
    assert_eq!(meta, same);

    let mut browser = Browser::new(&s);
    let pk = pkce();
    let form = browser.authorize(&auth_params(&pk)).await;
    assert_eq!(form.status, 200);
    assert!(form
        .body
        .contains("<label for=\"password\">Password</label>"));
    let back = browser.submit(&form, "demo", "demo").await;
    assert_eq!(back.redirect_target(), REDIRECT);
    let q = back.redirect_params();
    assert_eq!(
        (q["state"].as_str(), q["iss"].as_str()),
        ("st-1", s.base.as_str())
    );
    let body = token_ok(redeem(&s, &q["code"], &pk, None).await).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "openid");
    let id = verified_id_token(&s, body["id_token"].as_str().unwrap()).await;
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(id["sub"], jwt_claims(access)["sub"]);
    assert_eq!(id["nonce"], "n-1");
    assert!(id["auth_time"].as_u64().unwrap() <= id["iat"].as_u64().unwrap());
    assert!(id["sid"].is_string() && id["sid"] != jwt_claims(access)["sid"]);
    assert_eq!(s.me(access).await.status(), 200);

    // The refresh grant at /token is /auth/refresh's rotation.
    let refresh = body["refresh_token"].as_str().unwrap();
    let rotated = token_ok(
        exchange(
            &s,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh),
                ("client_id", CLIENT),
            ],
            None,
        )
        .await,
    )
    .await;
    s.refresh_ok(rotated["refresh_token"].as_str().unwrap())
        .await;

    // The provider session answers the next request without the form ...
    let pk2 = pkce();
    let again = browser.authorize(&auth_params(&pk2)).await;
    assert_eq!(again.status, 303, "{}", again.body);
    let body2 = token_ok(redeem(&s, &again.redirect_params()["code"], &pk2, None).await).await;
    let id2 = verified_id_token(&s, body2["id_token"].as_str().unwrap()).await;
    assert_eq!(
        (&id2["sid"], &id2["auth_time"]),
        (&id["sid"], &id["auth_time"])
    );
    // ... unless prompt=login or max_age=0 asks for the password again.
    for change in [("prompt", Some("login")), ("max_age", Some("0"))] {
        let forced = browser
            .authorize(&with(&auth_params(&pkce()), &[change]))
            .await;
        assert_eq!(forced.status, 200, "{change:?}");
    }
    // Another browser has no session: prompt=none is login_required, with state and iss.
    let none = Browser::new(&s)
        .authorize(&with(&auth_params(&pkce()), &[("prompt", Some("none"))]))
        .await;
    let q = none.redirect_params();
    assert_eq!(
        (q["error"].as_str(), q["state"].as_str()),
        ("login_required", "st-1")
    );
    assert_eq!(q["iss"], s.base);
    assert_eq!(
        s.metric("rotafetch_authorization_codes_total{outcome=\"redeemed\"}")
            .await,
        2
    );
}

async fn codes_are_single_use_short_lived_and_bound_to_the_request(b: Backend) {
    let s = start(b).await;
    let mut browser = Browser::new(&s);
    let pk = pkce();
    let code = browser.sign_in(&auth_params(&pk)).await.redirect_params()["code"].clone();
    let refused = |fields: Vec<(&'static str, String)>| {
        let s = &s;
        async move {
            let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            json_error(exchange(s, &f, None).await).await
        }
    };
    let base = |code: &str, verifier: &str| {
        vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code.to_string()),
            ("redirect_uri", REDIRECT.to_string()),
            ("client_id", CLIENT.to_string()),
            ("code_verifier", verifier.to_string()),
        ]
    };
    let set = |mut f: Vec<(&'static str, String)>, k: &'static str, v: &str| {
        f.retain(|(n, _)| *n != k);
        f.push((k, v.to_string()));
        f
    };
    // Refusals that leave the code redeemable.
    let wrong_verifier = pkce().verifier;
    for (fields, want) in [
        (
            set(base(&code, &pk.verifier), "code_verifier", &wrong_verifier),
            "code_verifier",
        ),
        (
            set(
                base(&code, &pk.verifier),
                "redirect_uri",
                &format!("{REDIRECT}/"),
            ),
            "redirect_uri",
        ),
        (
            set(base(&code, &pk.verifier), "client_id", OTHER),
            "another client",
        ),
    ] {
        let (status, error, d) = refused(fields).await;
        assert_eq!((status, error.as_str()), (400, "invalid_grant"), "{d}");
        assert!(d.contains(want), "{d}");
    }
    // Malformed requests.
    let mut dup = base(&code, &pk.verifier);
    dup.push(("code", code.clone()));
    for (fields, want) in [
        (dup, (400, "invalid_request")),
        (
            set(base(&code, &pk.verifier), "code_verifier", "short"),
            (400, "invalid_request"),
        ),
        (
            set(base(&code, &pk.verifier), "client_id", "nobody"),
            (401, "invalid_client"),
        ),
        (
            set(base(&code, &pk.verifier), "grant_type", "password"),
            (400, "unsupported_grant_type"),
        ),
        (
            set(base(&code, &pk.verifier), "code", "unknown"),
            (400, "invalid_grant"),
        ),
        (
            set(base(&code, &pk.verifier), "code", &"c".repeat(300)),
            (400, "invalid_grant"),
        ),
        (
            base(&code, &pk.verifier)[1..].to_vec(),
            (400, "invalid_request"),
        ),
    ] {
        let (status, error, _) = refused(fields).await;
        assert_eq!((status, error.as_str()), want);
    }
    // The code still works once; a second use revokes the session it started.
    let body = token_ok(redeem(&s, &code, &pk, None).await).await;
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(s.me(access).await.status(), 200);
    // A replay without the verifier (a code leaked from a URL) revokes nothing ...
    let leaked = set(base(&code, &pk.verifier), "code_verifier", &wrong_verifier);
    assert_eq!(refused(leaked).await.1, "invalid_grant");
    assert_eq!(s.me(access).await.status(), 200);
    // ... a replay with it (the client redeeming twice) revokes the session.
    let (status, error, d) = json_error(redeem(&s, &code, &pk, None).await).await;
    assert_eq!((status, error.as_str()), (400, "invalid_grant"));
    assert!(d.contains("already used"), "{d}");
    assert_eq!(
        s.me(access).await.status(),
        401,
        "the first redemption's session is revoked"
    );
    assert_eq!(
        s.refresh(body["refresh_token"].as_str().unwrap())
            .await
            .status(),
        400
    );
    assert_eq!(
        s.metric("rotafetch_authorization_codes_total{outcome=\"reused\"}")
            .await,
        1
    );

    // A code of another client; an expired code.
    let pk_other = pkce();
    let other_params = with(
        &auth_params(&pk_other),
        &[
            ("client_id", Some(OTHER)),
            ("redirect_uri", Some(OTHER_REDIRECT)),
        ],
    );
    let other_code = browser.authorize(&other_params).await.redirect_params()["code"].clone();
    let (_, error, d) = json_error(redeem(&s, &other_code, &pk_other, None).await).await;
    assert_eq!(error, "invalid_grant");
    assert!(
        d.contains("another client") || d.contains("redirect_uri"),
        "{d}"
    );
    let pk3 = pkce();
    let late = browser
        .authorize(&auth_params(&pk3))
        .await
        .redirect_params()["code"]
        .clone();
    let hash = rotafetch_server::oidc::code::hash(&late);
    s.scalar(
        "UPDATE auth_codes SET expires_at = 0 WHERE hash = $1 RETURNING 1",
        Some(hash),
    )
    .await;
    let (_, error, d) = json_error(redeem(&s, &late, &pk3, None).await).await;
    assert_eq!(
        (error.as_str(), d.as_str()),
        ("invalid_grant", "authorization code expired")
    );
}

async fn dpop_bound_codes_need_their_key(b: Backend) {
    let s = TestServer::start_on(b, |c| {
        register(c);
        c.dpop_nonce = true;
    })
    .await;
    let (key, thief) = (Key::es256(), Key::es256());
    let pk = pkce();
    let params = with(&auth_params(&pk), &[("dpop_jkt", Some(&key.thumbprint()))]);
    let code = Browser::new(&s).sign_in(&params).await.redirect_params()["code"].clone();
    let token_url = s.url("/token");
    let (status, error, _) = json_error(redeem(&s, &code, &pk, None).await).await;
    assert_eq!(
        (status, error.as_str()),
        (400, "invalid_grant"),
        "no proof: refused, not spent"
    );
    // With nonces on, the first proof learns the nonce.
    let r = redeem(&s, &code, &pk, Some(thief.proof("POST", &token_url))).await;
    let nonce = r.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    assert_eq!(json_error(r).await.1, "use_dpop_nonce");
    let with_nonce = |k: &Key| {
        let o = common::dpop::Opts {
            nonce: Some(nonce.clone()),
            ..Default::default()
        };
        k.proof_with("POST", &token_url, &o)
    };
    let (_, error, d) = json_error(redeem(&s, &code, &pk, Some(with_nonce(&thief))).await).await;
    assert_eq!(error, "invalid_grant");
    assert!(d.contains("does not match"), "{d}");
    let proof = with_nonce(&key);
    let body = token_ok(redeem(&s, &code, &pk, Some(proof.clone())).await).await;
    assert_eq!(body["token_type"], "DPoP");
    // The proof that redeemed the code is spent: replayed at /token, it is refused.
    let refresh = body["refresh_token"].as_str().unwrap();
    let replay = exchange(
        &s,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        Some(proof),
    )
    .await;
    assert_eq!(json_error(replay).await.1, "invalid_dpop_proof");
    assert_eq!(
        jwt_claims(body["access_token"].as_str().unwrap())["cnf"]["jkt"],
        key.thumbprint()
    );
    // The session stays bound: a refresh without the key is refused.
    let (_, error, _) = json_error(s.refresh(body["refresh_token"].as_str().unwrap()).await).await;
    assert_eq!(error, "invalid_grant");
}

async fn pushed_requests(b: Backend) {
    let s = start(b).await;
    let key = Key::es256();
    let pk = pkce();
    let push = |fields: Vec<(String, String)>, proof: Option<String>| {
        let s = &s;
        async move {
            let mut req = s
                .client
                .post(s.url("/par"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(common::oidc::query(&fields));
            if let Some(p) = proof {
                req = req.header("DPoP", p);
            }
            req.send().await.unwrap()
        }
    };
    // A proof at PAR binds the code to its key.
    let r = push(auth_params(&pk), Some(key.proof("POST", &s.url("/par")))).await;
    assert_eq!(r.status(), 201);
    let pushed: Value = r.json().await.unwrap();
    assert_eq!(pushed["expires_in"], 60);
    let request_uri = pushed["request_uri"].as_str().unwrap().to_owned();
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"));
    let front = vec![
        ("client_id".to_string(), CLIENT.to_string()),
        ("request_uri".to_string(), request_uri.clone()),
    ];
    let mut browser = Browser::new(&s);
    let back = browser.sign_in(&front).await;
    let q = back.redirect_params();
    assert_eq!(q["state"], "st-1", "the pushed state comes back");
    let (_, error, _) = json_error(redeem(&s, &q["code"], &pk, None).await).await;
    assert_eq!(error, "invalid_grant", "bound by the proof at PAR");
    let body = token_ok(
        redeem(
            &s,
            &q["code"],
            &pk,
            Some(key.proof("POST", &s.url("/token"))),
        )
        .await,
    )
    .await;
    assert_eq!(body["token_type"], "DPoP");
    // One use; unknown, expired and other clients' handles: error pages, no redirect.
    let page = browser.authorize(&front).await;
    assert_eq!((page.status, page.location.as_deref()), (400, None));
    assert!(page.body.contains("already used"), "{}", page.body);
    let other_client = with(&front, &[("client_id", Some(OTHER))]);
    let fresh: Value = push(auth_params(&pkce()), None).await.json().await.unwrap();
    let fresh_front = with(&front, &[("request_uri", fresh["request_uri"].as_str())]);
    let other_client = with(
        &other_client,
        &[("request_uri", fresh["request_uri"].as_str())],
    );
    let page = browser.authorize(&other_client).await;
    assert_eq!((page.status, page.location.as_deref()), (400, None));
    s.scalar(
        "UPDATE par_requests SET expires_at = 0 WHERE used_at IS NULL RETURNING 1",
        None,
    )
    .await;
    let page = browser.authorize(&fresh_front).await;
    assert!(
        page.status == 400 && page.body.contains("expired"),
        "{}",
        page.body
    );
    let unknown = with(
        &front,
        &[(
            "request_uri",
            Some(&format!(
                "urn:ietf:params:oauth:request_uri:{}",
                "A".repeat(43)
            )),
        )],
    );
    assert_eq!(browser.authorize(&unknown).await.status, 400);
    // Bad pushes: JSON errors.
    for (fields, want) in [
        (
            with(&auth_params(&pk), &[("client_id", Some("nobody"))]),
            (401, "invalid_client"),
        ),
        (
            with(
                &auth_params(&pk),
                &[("redirect_uri", Some("https://evil.example/cb"))],
            ),
            (400, "invalid_request"),
        ),
        (
            with(
                &auth_params(&pk),
                &[("code_challenge_method", Some("plain"))],
            ),
            (400, "invalid_request"),
        ),
        (
            with(&auth_params(&pk), &[("request_uri", Some(&request_uri))]),
            (400, "invalid_request"),
        ),
        (
            with(
                &auth_params(&pk),
                &[("dpop_jkt", Some(&Key::es256().thumbprint()))],
            ),
            (201, ""),
        ),
    ] {
        let proof = (want.0 == 201).then(|| key.proof("POST", &s.url("/par")));
        let r = push(fields, proof).await;
        if want.0 == 201 {
            let (status, error, _) = json_error(r).await;
            assert_eq!(
                (status, error.as_str()),
                (400, "invalid_dpop_proof"),
                "dpop_jkt != proof key"
            );
        } else {
            let (status, error, _) = json_error(r).await;
            assert_eq!((status, error.as_str()), want);
        }
    }
}

/// A new session through the provider session of `browser` (signed in already).
async fn session(s: &TestServer, browser: &mut Browser) -> Value {
    let pk = pkce();
    let code = browser.authorize(&auth_params(&pk)).await.redirect_params()["code"].clone();
    token_ok(redeem(s, &code, &pk, None).await).await
}

async fn revocation(b: Backend) {
    let s = start(b).await;
    let mut browser = Browser::new(&s);
    browser.sign_in(&auth_params(&pkce())).await;
    let revoke = |fields: Vec<(&'static str, String)>, proof: Option<String>| {
        let s = &s;
        async move {
            let mut req = s
                .client
                .post(s.url("/revoke"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(
                    url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(&fields)
                        .finish(),
                );
            if let Some(p) = proof {
                req = req.header("DPoP", p);
            }
            req.send().await.unwrap()
        }
    };
    // A refresh token revokes its family.
    let t = session(&s, &mut browser).await;
    let (access, refresh) = (
        t["access_token"].as_str().unwrap(),
        t["refresh_token"].as_str().unwrap(),
    );
    let r = revoke(
        vec![
            ("token", refresh.into()),
            ("token_type_hint", "refresh_token".into()),
            ("client_id", CLIENT.into()),
        ],
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(s.refresh(refresh).await.status(), 400);
    assert_eq!(s.me(access).await.status(), 401);
    // An access token revokes its session's family.
    let t = session(&s, &mut browser).await;
    let r = revoke(
        vec![
            ("token", t["access_token"].as_str().unwrap().into()),
            ("client_id", CLIENT.into()),
        ],
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        s.refresh(t["refresh_token"].as_str().unwrap())
            .await
            .status(),
        400
    );
    // Unknown tokens: 200. Missing token / unknown client: errors.
    assert_eq!(
        revoke(
            vec![("token", "nope".into()), ("client_id", CLIENT.into())],
            None
        )
        .await
        .status(),
        200
    );
    let (status, error, _) =
        json_error(revoke(vec![("client_id", CLIENT.into())], None).await).await;
    assert_eq!((status, error.as_str()), (400, "invalid_request"));
    let (status, error, _) = json_error(
        revoke(
            vec![("token", "x".into()), ("client_id", "nobody".into())],
            None,
        )
        .await,
    )
    .await;
    assert_eq!((status, error.as_str()), (401, "invalid_client"));
    // A DPoP-bound session needs a proof by its key.
    let key = Key::es256();
    let bound = token_ok(
        s.client
            .post(s.url("/auth/login"))
            .header("DPoP", key.proof("POST", &s.url("/auth/login")))
            .json(&serde_json::json!({"username":"demo","password":"demo"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let refresh = bound["refresh_token"].as_str().unwrap();
    let fields = vec![("token", refresh.to_string()), ("client_id", CLIENT.into())];
    let (status, error, _) = json_error(revoke(fields.clone(), None).await).await;
    assert_eq!((status, error.as_str()), (400, "invalid_grant"));
    assert_eq!(
        revoke(fields, Some(key.proof("POST", &s.url("/revoke"))))
            .await
            .status(),
        200
    );
    assert_eq!(
        s.metric("rotafetch_dpop_key_mismatch_total{endpoint=\"revoke\"}")
            .await,
        1
    );
}

async fn end_session(b: Backend) {
    let s = start(b).await;
    let mut browser = Browser::new(&s);
    let pk = pkce();
    let code = browser.sign_in(&auth_params(&pk)).await.redirect_params()["code"].clone();
    let id_token = token_ok(redeem(&s, &code, &pk, None).await).await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Unregistered post-logout URI: a page, no redirect, still signed in.
    let bad = browser
        .get(&format!(
            "/logout?id_token_hint={id_token}&post_logout_redirect_uri=https://evil.example/"
        ))
        .await;
    assert_eq!((bad.status, bad.location.as_deref()), (400, None));
    assert_eq!(browser.authorize(&auth_params(&pkce())).await.status, 303);
    // A valid hint: signed out, sent to the registered URI with state.
    let out = browser
        .get(&format!(
            "/logout?id_token_hint={id_token}&post_logout_redirect_uri={POST_LOGOUT}&state=bye-1"
        ))
        .await;
    assert_eq!(out.status, 303);
    assert_eq!(
        out.location.as_deref(),
        Some(&*format!("{POST_LOGOUT}?state=bye-1"))
    );
    let none = browser
        .authorize(&with(&auth_params(&pkce()), &[("prompt", Some("none"))]))
        .await;
    assert_eq!(none.redirect_params()["error"], "login_required");
    // Without a hint the user confirms (CSRF-protected form) first.
    browser.sign_in(&auth_params(&pkce())).await;
    let confirm = browser
        .get(&format!(
            "/logout?client_id={CLIENT}&post_logout_redirect_uri={POST_LOGOUT}"
        ))
        .await;
    assert_eq!(confirm.status, 200);
    let csrf = confirm.hidden("csrf_token").unwrap();
    let forged = browser
        .post(
            "/logout",
            &[
                ("client_id", CLIENT),
                ("post_logout_redirect_uri", POST_LOGOUT),
            ],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert_eq!(
        browser.authorize(&auth_params(&pkce())).await.status,
        303,
        "still signed in"
    );
    let done = browser
        .post(
            "/logout",
            &[
                ("csrf_token", &csrf),
                ("client_id", CLIENT),
                ("post_logout_redirect_uri", POST_LOGOUT),
            ],
        )
        .await;
    assert_eq!(done.location.as_deref(), Some(POST_LOGOUT));
    assert_eq!(
        browser.authorize(&auth_params(&pkce())).await.status,
        200,
        "the form again"
    );
    let forged_hint = browser.get("/logout?id_token_hint=e30.e30.x").await;
    assert_eq!(forged_hint.status, 400);
}

/// Two tabs of a fresh browser (no cookie yet) render the sign-in form at the same moment,
/// then both sign in: each form has its own cookie, so neither tab's `Set-Cookie` spoils
/// the other's form (with one CSRF cookie per browser, the first tab's form was refused).
async fn two_tabs_of_a_fresh_browser_sign_in_at_once(b: Backend) {
    let s = start(b).await;
    let mut browser = Browser::new(&s);
    let tabs = [pkce(), pkce()];
    let paths: Vec<String> = tabs
        .iter()
        .map(|pk| format!("/authorize?{}", query(&auth_params(pk))))
        .collect();
    let forms = browser.get_at_once(&paths).await;
    let set_cookie = |p: &common::oidc::Page| p.headers.get("set-cookie").cloned();
    for form in &forms {
        assert_eq!(form.status, 200, "{}", form.body);
    }
    assert_ne!(
        set_cookie(&forms[0]),
        set_cookie(&forms[1]),
        "a cookie each"
    );
    assert_eq!(browser.cookies.len(), 2, "{:?}", browser.cookies.keys());
    let backs = browser.submit_at_once(&forms).await;
    for (back, pk) in backs.iter().zip(&tabs) {
        assert_eq!(back.status, 303, "{}", back.body);
        token_ok(redeem(&s, &back.redirect_params()["code"], pk, None).await).await;
    }
    // Done forms drop their cookies; the provider session stays.
    let names: Vec<&String> = browser.cookies.keys().collect();
    assert_eq!(names, ["rotafetch_session"]);
    // A failed attempt shows the form again with the same cookie: the first form and the
    // new one are both good, and the browser gains no cookie per attempt.
    let mut other = Browser::new(&s);
    let form = other.authorize(&auth_params(&pkce())).await;
    let wrong = other.submit(&form, "demo", "wrong").await;
    assert_eq!((wrong.status, other.cookies.len()), (401, 1));
    let pk = pkce();
    let fresh = other.authorize(&auth_params(&pk)).await;
    assert_eq!(other.cookies.len(), 2);
    assert_eq!(other.submit(&form, "demo", "demo").await.status, 303);
    assert_eq!(other.submit(&fresh, "demo", "demo").await.status, 303);
}

/// The testing layer's refresh faults apply to the refresh grant at `/token` (an SDK given
/// an `issuer` refreshes there), form or JSON, and never to the authorization code grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_faults_apply_to_the_refresh_grant_at_token() {
    let s = start(Backend::Sqlite).await;
    let pk = pkce();
    let back = Browser::new(&s).sign_in(&auth_params(&pk)).await;
    let plan = [
        json!({"kind": "status", "status": 503}),
        json!({"kind": "no_refresh_token"}),
        json!({"kind": "status", "status": 500}),
    ];
    s.set_faults(json!({ "refresh": plan })).await;
    let remaining = || async { s.get_json::<Value>("/test/faults").await["remaining"].clone() };
    // The code grant is untouched: every fault still waits for a refresh.
    let body = token_ok(redeem(&s, &back.redirect_params()["code"], &pk, None).await).await;
    assert_eq!(remaining().await, 3);
    let refresh = body["refresh_token"].as_str().unwrap();
    let grant = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh),
        ("client_id", CLIENT),
    ];
    let (st, err, desc) = json_error(exchange(&s, &grant, None).await).await;
    assert_eq!(
        (st, err.as_str()),
        (503, "temporarily_unavailable"),
        "{desc}"
    );
    assert!(desc.contains("injected fault"), "{desc}");
    // no_refresh_token: an access token without rotation (the refresh token stays good).
    let checked = token_ok(exchange(&s, &grant, None).await).await;
    assert!(checked.get("refresh_token").is_none() && checked["access_token"].is_string());
    // A JSON body at /token is the refresh grant too.
    let r = s
        .client
        .post(s.url("/token"))
        .json(&json!({ "refresh_token": refresh }))
        .send()
        .await
        .unwrap();
    assert_eq!(json_error(r).await.0, 500);
    assert_eq!(remaining().await, 0);
    // The queue is empty: the real rotation.
    let rotated = token_ok(exchange(&s, &grant, None).await).await;
    assert_ne!(rotated["refresh_token"].as_str(), Some(refresh));
}

on_both_backends!(
    two_tabs_of_a_fresh_browser_sign_in_at_once,
    sign_in_redeem_and_use_the_session,
    codes_are_single_use_short_lived_and_bound_to_the_request,
    dpop_bound_codes_need_their_key,
    pushed_requests,
    revocation,
    end_session,
);
