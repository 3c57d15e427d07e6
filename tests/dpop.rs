//! DPoP (RFC 9449) in a real browser against the reference server, which `make test-browser`
//! starts with `--dpop-nonce --dpop-nonce-period 5`: every DPoP token request meets a nonce
//! challenge first, and a nonce goes stale within seconds, so the API's challenge can be
//! waited for. Issue #16's proofs: the session binds to the browser's key and API calls carry
//! proofs (other origins get neither token nor proof); a stolen refresh token is useless
//! without the key (and the browser session carries on); a replayed proof is refused; the
//! API's nonce challenge is answered with the body replayed, a second one returned without a
//! refresh; the standard form refresh (`refresh_format: OAuth2`) with proofs and the token
//! endpoint's challenge; sign-out deletes the key; a bearer answer is refused.
#![cfg(target_arch = "wasm32")]

use rotafetch::{AuthClient, ErrorCode, Options};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

mod common;
use common::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen(inline_js = r#"
const db = () => new Promise((res, rej) => {
  const r = indexedDB.open("rotafetch", 1);
  r.onupgradeneeded = () => r.result.createObjectStore("kv");
  r.onsuccess = () => res(r.result);
  r.onerror = rej;
});
// The DPoP key stored for `key`: {x (its public JWK's x), extractable (the private key's)}, or null.
export async function storedKey(key) {
  const d = await db();
  const v = await new Promise((res, rej) => {
    const q = d.transaction("kv", "readonly").objectStore("kv").get("dpop:" + key);
    q.onsuccess = () => res(q.result);
    q.onerror = rej;
  });
  d.close();
  if (!v) return null;
  const jwk = await crypto.subtle.exportKey("jwk", v.publicKey);
  return { x: jwk.x, extractable: v.privateKey.extractable };
}
export async function newPair() {
  return crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
}
// A POST from outside rotafetch: `proof(nonce)` makes the DPoP header (or undefined for none);
// a nonce challenge is answered once. {status, error}.
export async function postWith(url, body, proof) {
  let nonce;
  for (let i = 0; ; i++) {
    const headers = { "Content-Type": "application/json" };
    const p = await proof(nonce);
    if (p) headers.DPoP = p;
    const r = await fetch(url, { method: "POST", headers, body });
    const error = (await r.json().catch(() => ({}))).error;
    nonce = r.headers.get("dpop-nonce") ?? nonce;
    if (i == 0 && error == "use_dpop_nonce") continue;
    return { status: r.status, error };
  }
}
// Resolves once the server's DPoP-Nonce (on every response) has changed twice: a nonce taken
// before is then stale. Bounded (30 s).
export async function nonceRotatedTwice(url) {
  const seen = new Set(), deadline = Date.now() + 30000;
  while (seen.size < 3) {
    if (Date.now() > deadline) throw new Error("the server's nonce did not rotate");
    seen.add((await fetch(url)).headers.get("dpop-nonce"));
    if (seen.size < 3) await new Promise((r) => setTimeout(r, 200));
  }
}
// Hides `window.indexedDB` (a page without it); returns the function that puts it back.
export function hideIndexedDb() {
  const had = Object.getOwnPropertyDescriptor(window, "indexedDB");
  Object.defineProperty(window, "indexedDB", { value: undefined, configurable: true });
  return () => { delete window.indexedDB; if (had) Object.defineProperty(window, "indexedDB", had); };
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = hideIndexedDb)]
    fn hide_indexed_db() -> js_sys::Function;
    #[wasm_bindgen(js_name = storedKey)]
    async fn stored_key(key: &str) -> JsValue;
    #[wasm_bindgen(js_name = newPair)]
    async fn new_pair() -> JsValue;
    #[wasm_bindgen(js_name = postWith)]
    async fn post_with(url: &str, body: &str, proof: &js_sys::Function) -> JsValue;
    #[wasm_bindgen(js_name = nonceRotatedTwice, catch)]
    async fn nonce_rotated_twice(url: &str) -> Result<JsValue, JsValue>;
}

#[wasm_bindgen(module = "/js/plumbing.js")]
extern "C" {
    /// The crate's own signer, for a thief's key.
    #[wasm_bindgen(js_name = dpopSign)]
    async fn dpop_sign(
        pair: &JsValue,
        htm: &str,
        htu: &str,
        nonce: &JsValue,
        access: &JsValue,
    ) -> JsValue;
}

const USE_NONCE: &str = r#"rotafetch_dpop_proofs_total{outcome="use_nonce"}"#;
const REPLAYED: &str = r#"rotafetch_dpop_proofs_total{outcome="replayed"}"#;
const MISMATCH: &str = r#"rotafetch_refresh_total{outcome="dpop_mismatch"}"#;

fn dpop_options(key: &str) -> Options {
    let mut o = options(key);
    o.dpop = true;
    o
}

async fn dpop_signed_in(key: &str) -> AuthClient {
    let c = AuthClient::new(dpop_options(key)).unwrap();
    c.login(
        &url("/auth/login"),
        &obj(r#"{"username":"demo","password":"demo"}"#),
    )
    .await
    .unwrap();
    c
}

/// The stored record's refresh and access tokens.
fn stored_tokens(key: &str) -> (String, String) {
    let record = obj(&stored(key).expect("a stored session"));
    (get_str(&record, "rt"), get_str(&record, "at"))
}

async fn get_me(c: &AuthClient) -> u16 {
    let req = web_sys::Request::new_with_str(&url("/api/me")).unwrap();
    c.fetch(req).await.unwrap().status()
}

#[wasm_bindgen_test]
async fn a_dpop_session_is_bound_to_the_browsers_key_and_its_calls_carry_proofs() {
    let _s = serial().await;
    let nonce_challenges = metric(USE_NONCE).await;
    let c = dpop_signed_in("t-dpop-bound").await;
    // The login met the server's nonce challenge and answered it.
    assert!(metric(USE_NONCE).await > nonce_challenges);
    // One key, non-extractable, in IndexedDB.
    let key = stored_key("t-dpop-bound").await;
    assert!(!key.is_null(), "the key is stored");
    assert_eq!(get(&key, "extractable"), JsValue::FALSE);
    // The access token is bound (cnf.jkt) ...
    let (_, at) = stored_tokens("t-dpop-bound");
    let claims = obj(&String::from_utf8(base64url(at.split('.').nth(1).unwrap())).unwrap());
    assert!(get(&get(&claims, "cnf"), "jkt").is_string(), "cnf.jkt");
    // ... so the API takes it with a proof (rotafetch's) and refuses it as a bearer token.
    assert_eq!(get_me(&c).await, 200);
    let bearer = raw("GET", &url("/api/me"), JsValue::UNDEFINED, None, Some(&at))
        .await
        .unwrap();
    assert_eq!(status(&bearer), 401);
    assert!(get_str(&bearer, "wwwAuthenticate").starts_with("DPoP"));
    // A refresh keeps the binding and the same key.
    c.refresh().await.unwrap();
    assert_eq!(get_me(&c).await, 200);
    let again = stored_key("t-dpop-bound").await;
    assert_eq!(get_str(&again, "x"), get_str(&key, "x"));
    c.logout().await;
}

/// Every `rotafetch_dpop_proofs_total` series, summed: how many proofs the server checked.
async fn proofs_checked() -> f64 {
    let mut n = 0.0;
    for outcome in ["accepted", "invalid", "replayed", "use_nonce", "cache_full"] {
        n += metric(&format!(
            r#"rotafetch_dpop_proofs_total{{outcome="{outcome}"}}"#
        ))
        .await;
    }
    n
}

#[wasm_bindgen_test]
async fn other_origins_get_neither_the_token_nor_a_proof() {
    let _s = serial().await;
    let c = dpop_signed_in("t-dpop-origin").await;
    let checked = proofs_checked().await;
    let (status, challenge) = me_at_another_origin(&c).await;
    assert_eq!(status, 401, "sent without a token");
    assert!(
        !challenge.contains("error="),
        "nothing was presented: {challenge}"
    );
    assert_eq!(proofs_checked().await, checked, "and no proof");
    // The allowed origin gets both.
    assert_eq!(get_me(&c).await, 200);
    assert!(proofs_checked().await > checked);
    c.logout().await;
}

fn base64url(s: &str) -> Vec<u8> {
    let std = s.replace('-', "+").replace('_', "/");
    let padded = format!("{std}{}", "=".repeat((4 - std.len() % 4) % 4));
    let bin = web_sys::window().unwrap().atob(&padded).unwrap();
    bin.chars().map(|c| c as u8).collect()
}

#[wasm_bindgen_test]
async fn a_stolen_refresh_token_is_useless_without_the_key_and_the_session_carries_on() {
    let _s = serial().await;
    let c = dpop_signed_in("t-dpop-stolen").await;
    let (rt, _) = stored_tokens("t-dpop-stolen");
    let body = format!(r#"{{"refresh_token":"{rt}"}}"#);
    let refresh = url("/auth/refresh");
    let mismatches = metric(MISMATCH).await;
    // Without a proof.
    let none = Closure::<dyn Fn(JsValue) -> js_sys::Promise>::new(|_| {
        js_sys::Promise::resolve(&JsValue::UNDEFINED)
    });
    let r = post_with(&refresh, &body, none.as_ref().unchecked_ref()).await;
    assert_eq!(
        (status(&r), get_str(&r, "error").as_str()),
        (400, "invalid_grant")
    );
    // With a proof by another key.
    let thief = new_pair().await;
    let target = refresh.clone();
    let other = Closure::<dyn Fn(JsValue) -> js_sys::Promise>::new(move |nonce: JsValue| {
        let (thief, target) = (thief.clone(), target.clone());
        wasm_bindgen_futures::future_to_promise(async move {
            Ok(dpop_sign(&thief, "POST", &target, &nonce, &JsValue::UNDEFINED).await)
        })
    });
    let r = post_with(&refresh, &body, other.as_ref().unchecked_ref()).await;
    assert_eq!(
        (status(&r), get_str(&r, "error").as_str()),
        (400, "invalid_grant")
    );
    assert!(metric(MISMATCH).await >= mismatches + 2.0, "counted");
    // Nothing was spent or revoked: the browser's own refresh works, and so does the API.
    assert!(c.authenticated());
    c.refresh().await.unwrap();
    assert_eq!(get_me(&c).await, 200);
    c.logout().await;
}

/// Any RFC 9449 server, not only rotafetch's JSON form: the standard form-encoded refresh
/// (`refresh_format: OAuth2`, with `client_id`) carries the proof, and the token endpoint's
/// nonce challenge is answered with the form body sent again.
#[wasm_bindgen_test]
async fn the_standard_form_refresh_carries_proofs_and_answers_the_token_endpoints_nonce() {
    let _s = serial().await;
    let mut o = dpop_options("t-dpop-oauth2");
    o.refresh_format = rotafetch::RefreshFormat::OAuth2;
    o.client_id = Some("demo-app".into());
    let c = AuthClient::new(o).unwrap();
    c.login(
        &url("/auth/login"),
        &obj(r#"{"username":"demo","password":"demo"}"#),
    )
    .await
    .unwrap();
    let key = stored_key("t-dpop-oauth2").await;
    let jkt = |at: &str| {
        let claims = obj(&String::from_utf8(base64url(at.split('.').nth(1).unwrap())).unwrap());
        get_str(&get(&claims, "cnf"), "jkt")
    };
    let (rt0, at0) = stored_tokens("t-dpop-oauth2");
    for round in 0..2 {
        // The nonce the client holds goes stale: the refresh meets the challenge.
        nonce_rotated_twice(&url("/metrics")).await.unwrap();
        let (challenges, mismatches) = (metric(USE_NONCE).await, metric(MISMATCH).await);
        c.refresh().await.unwrap();
        assert!(
            metric(USE_NONCE).await > challenges,
            "round {round}: a challenge was met"
        );
        assert_eq!(
            metric(MISMATCH).await,
            mismatches,
            "round {round}: the proof matched"
        );
        assert_eq!(get_me(&c).await, 200, "round {round}");
    }
    let (rt2, at2) = stored_tokens("t-dpop-oauth2");
    assert_ne!(rt2, rt0, "rotated");
    assert_eq!(jkt(&at2), jkt(&at0), "still bound to the same key");
    assert_eq!(
        get_str(&stored_key("t-dpop-oauth2").await, "x"),
        get_str(&key, "x")
    );
    c.logout().await;
}

#[wasm_bindgen_test]
async fn a_replayed_proof_is_refused() {
    let _s = serial().await;
    let c = dpop_signed_in("t-dpop-replay").await;
    let (rt, _) = stored_tokens("t-dpop-replay");
    let refresh = url("/auth/refresh");
    // The app's own request with the client's proof (dpopProof), sent twice.
    let proof = c.dpop_proof("POST", &refresh).await.unwrap();
    let replayed = metric(REPLAYED).await;
    let same = Closure::<dyn Fn(JsValue) -> js_sys::Promise>::new(move |_| {
        js_sys::Promise::resolve(&JsValue::from_str(&proof))
    });
    let body = format!(r#"{{"refresh_token":"{rt}"}}"#);
    let first = post_with(&refresh, &body, same.as_ref().unchecked_ref()).await;
    assert_eq!(status(&first), 200, "{}", get_str(&first, "error"));
    let second = post_with(&refresh, &body, same.as_ref().unchecked_ref()).await;
    assert_eq!(
        (status(&second), get_str(&second, "error").as_str()),
        (400, "invalid_dpop_proof")
    );
    assert!(metric(REPLAYED).await > replayed);
    drop(c);
}

#[wasm_bindgen_test]
async fn the_apis_nonce_challenge_is_answered_with_the_body_replayed() {
    let _s = serial().await;
    let c = dpop_signed_in("t-dpop-api-nonce").await;
    assert_eq!(get_me(&c).await, 200);
    // The nonce the client holds goes stale.
    nonce_rotated_twice(&url("/metrics")).await.unwrap();
    let challenges = metric(USE_NONCE).await;
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(&JsValue::from_str("the body, replayed"));
    let res = c
        .fetch_with(&JsValue::from_str(&url("/api/echo")), &init)
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let echo = JsFuture::from(res.json().unwrap()).await.unwrap();
    let sent = web_sys::window()
        .unwrap()
        .btoa("the body, replayed")
        .unwrap();
    assert_eq!(
        get_str(&echo, "body_base64"),
        sent,
        "the replay carried the body"
    );
    assert!(metric(USE_NONCE).await > challenges, "a challenge was met");
    assert!(
        c.authenticated(),
        "a nonce challenge is not a token failure"
    );
    c.logout().await;
}

/// A call answers one nonce challenge. A second one (a nonce gone stale again while the replay
/// waited, under load, for a connection) goes back to the caller as it is: a nonce challenge
/// is never a token failure, so no refresh and no sign-out.
#[wasm_bindgen_test]
async fn a_second_nonce_challenge_is_returned_not_taken_for_a_token_failure() {
    let _s = serial().await;
    let c = dpop_signed_in("t-dpop-twice").await;
    assert_eq!(get_me(&c).await, 200);
    let (rotated, api_401) = (metric(ROTATED).await, metric(API_401).await);
    faults(r#"{"api_nonce_challenges":2}"#).await;
    assert_eq!(
        get_me(&c).await,
        401,
        "the second challenge is the caller's"
    );
    assert_eq!(metric(API_401).await - api_401, 2.0, "one replay, no more");
    assert_eq!(metric(ROTATED).await, rotated, "no refresh");
    assert!(c.authenticated(), "no sign-out");
    faults(r#"{"api_nonce_challenges":1}"#).await;
    assert_eq!(get_me(&c).await, 200, "one challenge is answered");
    assert_eq!(metric(API_401).await - api_401, 3.0);
    assert_eq!(metric(ROTATED).await, rotated);
    clear_faults().await;
    c.logout().await;
}

#[wasm_bindgen_test]
async fn sign_out_deletes_the_key_and_the_next_session_gets_a_new_one() {
    let _s = serial().await;
    let c = dpop_signed_in("t-dpop-signout").await;
    let first = stored_key("t-dpop-signout").await;
    assert!(!first.is_null());
    c.logout().await;
    assert!(
        stored_key("t-dpop-signout").await.is_null(),
        "deleted at logout"
    );
    let c = dpop_signed_in("t-dpop-signout").await;
    let second = stored_key("t-dpop-signout").await;
    assert_ne!(get_str(&second, "x"), get_str(&first, "x"), "a new key");
    assert_eq!(get_me(&c).await, 200);
    c.logout().await;
}

#[wasm_bindgen_test]
async fn with_dpop_a_bearer_token_is_refused_and_without_it_no_proof_is_made_for_the_app() {
    let _s = serial().await;
    let c = AuthClient::new(dpop_options("t-dpop-bearer")).unwrap();
    let (at, rt) = login_raw().await; // a bearer session (no proof)
    let mut t = tokens(&at, &rt);
    t.token_type = Some("Bearer".into());
    let e = c.set_tokens(t).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidConfig);
    assert!(e.message().contains("DPoP"), "{}", e.message());
    assert!(!c.authenticated());
    let plain = AuthClient::new(options("t-dpop-off")).unwrap();
    let e = plain.dpop_proof("GET", &url("/api/me")).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidConfig);
}

#[wasm_bindgen_test]
async fn dpop_without_indexeddb_is_a_clear_error_at_construction_never_a_bearer_fallback() {
    let _s = serial().await;
    let restore = hide_indexed_db();
    let made = AuthClient::new(dpop_options("t-dpop-noidb"));
    restore.call0(&JsValue::NULL).unwrap();
    let e = made.err().expect("refused");
    assert_eq!(e.code(), ErrorCode::InvalidConfig);
    assert!(e.message().contains("dpop"), "{}", e.message());
    // Without the option, the same page works as before.
    let restore = hide_indexed_db();
    let plain = AuthClient::new(options("t-dpop-noidb"));
    restore.call0(&JsValue::NULL).unwrap();
    assert!(plain.is_ok());
}
