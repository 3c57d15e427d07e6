//! The failure matrix (issue #4): every refresh fault the reference server can inject, storage
//! that throws or holds junk, loop guards, races (logout or abort during a refresh, two clients
//! on one key) and the token's confinement to allowed origins. Each test asserts what the
//! caller got (the `AuthError` code), whether `signout` fired, and what storage holds after.
//!
//! Runs in headless Chromium against the real server started by `scripts/with-server.sh
//! --access-ttl 2 --reuse-grace 5 --test-faults` (`make test-browser`). The README's
//! Reliability section lists every case with its expected outcome.
#![cfg(target_arch = "wasm32")]

use js_sys::{Array, Function, Object, Promise, Reflect};
use rotafetch::{AuthClient, AuthEvent, ErrorCode, FetchError, Options, SignoutReason};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

mod common;
use common::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen(inline_js = r#"
export function pageOrigin() { return location.origin; }
// Replaces Storage.prototype[method] with one that throws; returns the restore function.
export function breakStorage(method, name) {
  const orig = Storage.prototype[method];
  Storage.prototype[method] = function () { throw new DOMException("broken by the test", name); };
  return () => { Storage.prototype[method] = orig; };
}
export function captureConsole() {
  const seen = [];
  const saved = {};
  for (const k of ["log", "info", "warn", "error", "debug", "trace"]) {
    saved[k] = console[k];
    console[k] = (...a) => { seen.push(a.map(String).join(" ")); saved[k].apply(console, a); };
  }
  return () => { Object.assign(console, saved); return seen.join("\n"); };
}
// Wraps the global fetch and records the URL and Authorization header of every request.
// Requests to `passOrigin` go to the network; every other origin (some of which cannot even
// resolve here) gets a synthetic response with `status`, so "was a header attached?" can be
// checked for any URL.
export function recordFetch(passOrigin, status) {
  const orig = globalThis.fetch;
  const seen = [];
  globalThis.fetch = (input, init) => {
    const req = new Request(input, init);
    seen.push({ url: req.url, auth: req.headers.get("authorization") || "" });
    if (new URL(req.url).origin === passOrigin) return orig(req);
    return Promise.resolve(new Response("{}", { status, headers: { "WWW-Authenticate": "Bearer" } }));
  };
  return {
    restore() { globalThis.fetch = orig; },
    take() { const s = seen.slice(); seen.length = 0; return JSON.stringify(s); },
  };
}
export function errorMessage(e) { return String(e && e.message) + " " + String(e); }
"#)]
extern "C" {
    #[wasm_bindgen(js_name = pageOrigin)]
    fn page_origin() -> String;
    #[wasm_bindgen(js_name = breakStorage)]
    fn break_storage(method: &str, name: &str) -> Function;
    #[wasm_bindgen(js_name = captureConsole)]
    fn capture_console() -> Function;
    #[wasm_bindgen(js_name = recordFetch)]
    fn record_fetch(pass_origin: &str, status: u16) -> Recorder;
    #[wasm_bindgen(js_name = errorMessage)]
    fn error_message(e: &JsValue) -> String;

    type Recorder;
    #[wasm_bindgen(method)]
    fn restore(this: &Recorder);
    #[wasm_bindgen(method)]
    fn take(this: &Recorder) -> String;
}

// ---- Shared helpers (a copy of the few tests/browser.rs uses) ----

/// One test at a time (see `common::serial`), each starting from an empty fault queue (a
/// failed test cannot leave faults behind for the next).
async fn serial() -> Serial {
    let s = common::serial().await;
    clear_faults().await;
    s
}

/// Refreshes `rt` directly at the server; the successor.
async fn refresh_raw(rt: &str) -> String {
    let r = post_json("/auth/refresh", &format!(r#"{{"refresh_token":"{rt}"}}"#)).await;
    assert_eq!(status(&r), 200, "refresh: {}", get_str(&r, "text"));
    get_str(&obj(&get_str(&r, "text")), "refresh_token")
}

/// A snapshot of the refresh counters, to assert on differences.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Counts {
    rotated: f64,
    grace: f64,
    reused: f64,
    revoked: f64,
    api_401: f64,
    api_200: f64,
}

async fn counts() -> Counts {
    Counts {
        rotated: metric(ROTATED).await,
        grace: metric(GRACE).await,
        reused: metric(REUSED).await,
        revoked: metric(REVOKED).await,
        api_401: metric(API_401).await,
        api_200: metric(API_200).await,
    }
}

impl core::ops::Sub for Counts {
    type Output = Counts;
    fn sub(self, o: Counts) -> Counts {
        Counts {
            rotated: self.rotated - o.rotated,
            grace: self.grace - o.grace,
            reused: self.reused - o.reused,
            revoked: self.revoked - o.revoked,
            api_401: self.api_401 - o.api_401,
            api_200: self.api_200 - o.api_200,
        }
    }
}

/// Refresh faults still queued at the server.
async fn faults_remaining() -> f64 {
    let r = raw("GET", &url("/test/faults"), JsValue::UNDEFINED, None, None)
        .await
        .unwrap();
    get(&obj(&get_str(&r, "text")), "remaining")
        .as_f64()
        .unwrap()
}

/// Polls `cond` every 20 ms for at most `ms`.
async fn wait_for(what: &str, ms: u32, mut cond: impl FnMut() -> bool) {
    let start = js_sys::Date::now();
    while !cond() {
        assert!(
            js_sys::Date::now() - start < f64::from(ms),
            "timed out waiting for {what}"
        );
        sleep(20).await;
    }
}

/// Waits until at most `left` refresh faults are queued (a refresh has reached the server).
async fn wait_until_faults_left(left: f64) {
    let start = js_sys::Date::now();
    while faults_remaining().await > left {
        assert!(
            js_sys::Date::now() - start < 10_000.0,
            "the refresh never reached the server"
        );
        sleep(20).await;
    }
}

/// An access token the server refuses and that carries no `exp` (so no refresh before
/// sending: the first call gets a 401 and refreshes).
const REFUSED: &str = "not-a-valid-access-token";

/// A client holding a real refresh token and a refused access token.
async fn client_with_refused_access(o: Options) -> (AuthClient, String, Events) {
    let c = AuthClient::new(o).unwrap();
    let (_, rt) = login_raw().await;
    c.set_tokens(tokens(REFUSED, &rt)).unwrap();
    let events = record(&c);
    (c, rt, events)
}

async fn fetch(c: &AuthClient, path: &str) -> Result<web_sys::Response, FetchError> {
    c.fetch_with(&url(path).into(), &JsValue::UNDEFINED).await
}

/// The call's `AuthError` code (panics if the call did not fail with one).
async fn fetch_code(c: &AuthClient, path: &str, case: &str) -> ErrorCode {
    match fetch(c, path).await {
        Err(FetchError::Auth(e)) => e.code(),
        Err(FetchError::Js(e)) => panic!("{case}: expected an AuthError, got {e:?}"),
        Ok(r) => panic!("{case}: expected an AuthError, got HTTP {}", r.status()),
    }
}

async fn fetch_status(c: &AuthClient, path: &str) -> u16 {
    match fetch(c, path).await {
        Ok(r) => r.status(),
        Err(e) => panic!("expected a response, got {e:?}"),
    }
}

fn stored_field(key: &str, field: &str) -> Option<String> {
    stored(key).map(|s| get_str(&obj(&s), field))
}

fn stored_rt(key: &str) -> Option<String> {
    stored_field(key, "rt")
}

/// Waits until the client's access token is due for a refresh (2 s tokens: after 1 s).
async fn wait_until_due(c: &AuthClient) {
    let exp = c.expires_at().expect("a JWT with exp");
    let due = exp - 1000.0 + 100.0;
    wait_for("the token to be due", 5000, || js_sys::Date::now() >= due).await;
}

/// The outcome of a call started in the background: the HTTP status, or the `AuthError` code
/// (`"js-error"` when `fetch` itself threw).
type Slot = Rc<RefCell<Option<Result<u16, &'static str>>>>;

fn spawn_fetch(c: &AuthClient, init: JsValue) -> Slot {
    let slot: Slot = Rc::default();
    let (c, s) = (c.clone(), slot.clone());
    wasm_bindgen_futures::spawn_local(async move {
        let r = match c.fetch_with(&url("/api/me").into(), &init).await {
            Ok(r) => Ok(r.status()),
            Err(FetchError::Auth(e)) => Err(e.code().as_str()),
            Err(FetchError::Js(_)) => Err("js-error"),
        };
        *s.borrow_mut() = Some(r);
    });
    slot
}

// ---- Refresh faults: transient → refresh_failed, tokens kept, no signout, next call works ----

/// One transient refresh fault: the call fails with `refresh_failed`, no signout, the stored
/// refresh token is unchanged, the server did not rotate; once the server is healthy the next
/// call refreshes with the kept token and succeeds.
async fn transient_case(key: &str, fault: &str, refresh_timeout_ms: u32) {
    let mut o = options(key);
    o.refresh_timeout_ms = refresh_timeout_ms;
    let (c, rt, events) = client_with_refused_access(o).await;
    faults(&format!(r#"{{"refresh":[{fault}]}}"#)).await;
    let n0 = counts().await;
    assert_eq!(
        fetch_code(&c, "/api/me", fault).await,
        ErrorCode::RefreshFailed,
        "{fault}"
    );
    assert!(signouts(&events).is_empty(), "{fault}: no signout");
    assert!(c.authenticated(), "{fault}: still signed in");
    assert_eq!(
        stored_rt(key).as_deref(),
        Some(rt.as_str()),
        "{fault}: refresh token kept"
    );
    assert_eq!(stored_field(key, "at").as_deref(), Some(REFUSED));
    let d = counts().await - n0;
    assert_eq!((d.rotated, d.grace, d.reused), (0.0, 0.0, 0.0), "{fault}");
    assert_eq!(faults_remaining().await, 0.0, "{fault}: the fault was used");
    // Healthy again: the kept refresh token works.
    assert_eq!(fetch_status(&c, "/api/me").await, 200, "{fault}: recovers");
    let d = counts().await - n0;
    assert_eq!((d.rotated, d.reused), (1.0, 0.0), "{fault}");
    let next = stored_rt(key).unwrap();
    assert_ne!(next, rt, "{fault}: the successor is stored");
    assert!(signouts(&events).is_empty(), "{fault}: no signout");
}

#[wasm_bindgen_test]
async fn fault_500_is_transient() {
    let _serial = serial().await;
    transient_case("f-500", r#"{"kind":"status","status":500}"#, 10_000).await;
}

#[wasm_bindgen_test]
async fn fault_502_is_transient() {
    let _serial = serial().await;
    transient_case("f-502", r#"{"kind":"status","status":502}"#, 10_000).await;
}

#[wasm_bindgen_test]
async fn fault_503_is_transient() {
    let _serial = serial().await;
    transient_case("f-503", r#"{"kind":"status","status":503}"#, 10_000).await;
}

#[wasm_bindgen_test]
async fn fault_504_is_transient() {
    let _serial = serial().await;
    transient_case("f-504", r#"{"kind":"status","status":504}"#, 10_000).await;
}

#[wasm_bindgen_test]
async fn fault_429_is_transient() {
    let _serial = serial().await;
    transient_case("f-429", r#"{"kind":"status","status":429}"#, 10_000).await;
}

#[wasm_bindgen_test]
async fn fault_408_and_misrouted_404_are_transient() {
    let _serial = serial().await;
    transient_case("f-408", r#"{"kind":"status","status":408}"#, 10_000).await;
    transient_case("f-404", r#"{"kind":"status","status":404}"#, 10_000).await;
}

#[wasm_bindgen_test]
async fn fault_dropped_connection_is_transient() {
    let _serial = serial().await;
    transient_case("f-drop", r#"{"kind":"drop"}"#, 10_000).await;
}

#[wasm_bindgen_test]
async fn fault_hang_past_the_timeout_is_transient() {
    let _serial = serial().await;
    let start = js_sys::Date::now();
    transient_case("f-hang", r#"{"kind":"hang","ms":10000}"#, 1500).await;
    // The call gave up after refreshTimeoutMs (1.5 s), not after the server's 10 s.
    let took = js_sys::Date::now() - start;
    assert!(
        took < 8000.0,
        "the refresh timeout bounded the call: {took} ms"
    );
}

#[wasm_bindgen_test]
async fn fault_malformed_json_is_transient() {
    let _serial = serial().await;
    transient_case("f-malformed", r#"{"kind":"malformed_json"}"#, 10_000).await;
}

#[wasm_bindgen_test]
async fn fault_non_json_200_is_transient() {
    let _serial = serial().await;
    transient_case("f-nonjson", r#"{"kind":"non_json"}"#, 10_000).await;
}

#[wasm_bindgen_test]
async fn fault_json_without_access_token_is_transient() {
    let _serial = serial().await;
    transient_case("f-noaccess", r#"{"kind":"no_access_token"}"#, 10_000).await;
}

#[wasm_bindgen_test]
async fn fault_10_mb_body_is_transient() {
    let _serial = serial().await;
    transient_case("f-huge", r#"{"kind":"huge_body"}"#, 10_000).await;
}

#[wasm_bindgen_test]
async fn fault_several_in_a_row_then_recovery() {
    let _serial = serial().await;
    // Five different transient faults on five consecutive calls; the token survives them all.
    let (c, rt, events) = client_with_refused_access(options("f-row")).await;
    faults(r#"{"refresh":[{"kind":"status","status":503},{"kind":"drop"},{"kind":"non_json"},{"kind":"status","status":429},{"kind":"malformed_json"}]}"#).await;
    for i in 0..5 {
        assert_eq!(
            fetch_code(&c, "/api/me", "row").await,
            ErrorCode::RefreshFailed,
            "call {i}"
        );
        assert_eq!(stored_rt("f-row").as_deref(), Some(rt.as_str()));
    }
    assert_eq!(fetch_status(&c, "/api/me").await, 200);
    assert!(signouts(&events).is_empty());
}

// ---- Refresh faults that succeed in a way ----

#[wasm_bindgen_test]
async fn fault_response_without_refresh_token_keeps_the_old_one() {
    let _serial = serial().await;
    let (c, rt, events) = client_with_refused_access(options("f-norotate")).await;
    faults(r#"{"refresh":[{"kind":"no_refresh_token"}]}"#).await;
    let n0 = counts().await;
    assert_eq!(fetch_status(&c, "/api/me").await, 200);
    assert_eq!(
        stored_rt("f-norotate").as_deref(),
        Some(rt.as_str()),
        "a server that does not rotate: the old refresh token stays"
    );
    assert_ne!(stored_field("f-norotate", "at").as_deref(), Some(REFUSED));
    assert!(signouts(&events).is_empty());
    let d = counts().await - n0;
    assert_eq!((d.rotated, d.grace, d.reused), (0.0, 0.0, 0.0));
    // And it still works for the next (normal, rotating) refresh.
    c.refresh().await.unwrap();
    assert_ne!(stored_rt("f-norotate").unwrap(), rt);
    assert_eq!((counts().await - n0).rotated, 1.0);
}

#[wasm_bindgen_test]
async fn fault_lost_response_recovers_through_grace_without_signout() {
    let _serial = serial().await;
    let (c, rt, events) = client_with_refused_access(options("f-lost")).await;
    faults(r#"{"refresh":[{"kind":"lost_response"}]}"#).await;
    let n0 = counts().await;
    assert_eq!(
        fetch_code(&c, "/api/me", "lost_response").await,
        ErrorCode::RefreshFailed
    );
    let d = counts().await - n0;
    assert_eq!(d.rotated, 1.0, "the server did rotate");
    assert_eq!(
        stored_rt("f-lost").as_deref(),
        Some(rt.as_str()),
        "the client never heard of the successor: it keeps the old token"
    );
    assert!(c.authenticated());
    // The next call (well inside the 5 s grace) presents the spent token and gets the
    // successor the lost response carried.
    assert_eq!(fetch_status(&c, "/api/me").await, 200);
    let d = counts().await - n0;
    assert_eq!((d.grace, d.reused, d.revoked), (1.0, 0.0, 0.0), "{d:?}");
    let successor = stored_rt("f-lost").unwrap();
    assert_ne!(successor, rt);
    assert!(signouts(&events).is_empty(), "no signout");
    // The successor is a normal, unspent token.
    c.refresh().await.unwrap();
    let d = counts().await - n0;
    assert_eq!((d.rotated, d.reused), (2.0, 0.0));
    assert_ne!(stored_rt("f-lost").unwrap(), successor);
}

// ---- Rejections → refresh_rejected, storage cleared, signout ----

async fn rejected_case(key: &str, c: AuthClient, events: Events, expect_error: Option<&str>) {
    assert!(stored(key).is_some());
    assert_eq!(
        fetch_code(&c, "/api/me", key).await,
        ErrorCode::RefreshRejected,
        "{key}"
    );
    assert_eq!(signouts(&events), vec![SignoutReason::Rejected], "{key}");
    let error = events.borrow().iter().find_map(|e| match e {
        AuthEvent::Signout { error, .. } => Some(error.clone()),
        _ => None,
    });
    assert_eq!(error.flatten().as_deref(), expect_error, "{key}");
    assert_eq!(stored(key), None, "{key}: storage cleared");
    assert!(!c.authenticated());
    // Signed out: the next call goes out without a token and its 401 is the caller's.
    let n0 = counts().await;
    assert_eq!(fetch_status(&c, "/api/me").await, 401);
    assert_eq!((counts().await - n0).rotated, 0.0);
    assert_eq!(
        signouts(&events).len(),
        1,
        "{key}: exactly one signout event"
    );
}

#[wasm_bindgen_test]
async fn fault_400_401_403_are_rejections() {
    let _serial = serial().await;
    for (status, key, error) in [
        (400, "f-400", "invalid_request"),
        (401, "f-401", "invalid_request"),
        (403, "f-403", "invalid_request"),
    ] {
        let (c, _, events) = client_with_refused_access(options(key)).await;
        faults(&format!(
            r#"{{"refresh":[{{"kind":"status","status":{status}}}]}}"#
        ))
        .await;
        rejected_case(key, c, events, Some(error)).await;
    }
}

#[wasm_bindgen_test]
async fn a_reused_refresh_token_is_rejected_and_the_family_revoked() {
    let _serial = serial().await;
    // rt1 was rotated to rt2 and rt2 was used: presenting rt1 again is reuse, outside grace.
    let c = AuthClient::new(options("f-reuse")).unwrap();
    let (_, rt1) = login_raw().await;
    let rt2 = refresh_raw(&rt1).await;
    let _rt3 = refresh_raw(&rt2).await;
    c.set_tokens(tokens(REFUSED, &rt1)).unwrap();
    let events = record(&c);
    let n0 = counts().await;
    rejected_case("f-reuse", c, events, Some("invalid_grant")).await;
    let d = counts().await - n0;
    assert_eq!((d.reused, d.revoked), (1.0, 1.0));
}

#[wasm_bindgen_test]
async fn an_unknown_refresh_token_is_rejected() {
    let _serial = serial().await;
    let c = AuthClient::new(options("f-unknown")).unwrap();
    c.set_tokens(tokens(REFUSED, "never-issued-refresh-token"))
        .unwrap();
    let events = record(&c);
    rejected_case("f-unknown", c, events, Some("invalid_grant")).await;
}

// ---- Storage faults ----

#[wasm_bindgen_test]
async fn storage_set_item_throwing_mid_session_loses_nothing() {
    let _serial = serial().await;
    let (c, rt, events) = client_with_refused_access(options("f-quota")).await;
    let restore = break_storage("setItem", "QuotaExceededError");
    let n0 = counts().await;
    let r = fetch(&c, "/api/me").await;
    let again = fetch(&c, "/api/me").await;
    restore.call0(&JsValue::NULL).unwrap();
    assert_eq!(r.unwrap().status(), 200, "the refresh worked in memory");
    assert_eq!(again.unwrap().status(), 200);
    assert!(c.authenticated());
    assert!(signouts(&events).is_empty());
    assert_eq!((counts().await - n0).rotated, 1.0);
    // What a reload finds: a second client on the key (the page's session survives through
    // the cross-tab hand-over store) must not present the spent token as if it were current.
    let stale = stored_rt("f-quota");
    let mut o = Options::new(url("/auth/refresh"));
    o.storage_key = "f-quota".into();
    let reload = AuthClient::new(o).unwrap();
    let reload_events = record(&reload);
    if reload.authenticated() {
        let st = fetch_status(&reload, "/api/me").await;
        let d = counts().await - n0;
        assert_eq!(
            (st, d.reused, d.revoked),
            (200, 0.0, 0.0),
            "reload after a quota error: stale={}",
            stale.as_deref() == Some(rt.as_str())
        );
        assert!(signouts(&reload_events).is_empty());
    }
    // The original client is unaffected either way.
    assert_eq!(fetch_status(&c, "/api/me").await, 200);
}

#[wasm_bindgen_test]
async fn storage_get_item_throwing_falls_back_to_memory() {
    let _serial = serial().await;
    let _ = local_storage().remove_item("f-getitem");
    let restore = break_storage("getItem", "SecurityError");
    let made = AuthClient::new(options("f-getitem"));
    let c = match made {
        Ok(c) => c,
        Err(e) => {
            restore.call0(&JsValue::NULL).unwrap();
            panic!("constructing with a throwing getItem failed: {e:?}");
        }
    };
    let login = c
        .login(
            &url("/auth/login"),
            &obj(r#"{"username":"demo","password":"demo"}"#),
        )
        .await;
    let refreshed = c.refresh().await;
    let r = fetch(&c, "/api/me").await;
    restore.call0(&JsValue::NULL).unwrap();
    login.unwrap();
    refreshed.unwrap();
    assert_eq!(r.unwrap().status(), 200);
    assert!(c.authenticated());
    assert_eq!(
        stored("f-getitem"),
        None,
        "storage unusable: the session lives in memory"
    );
}

#[wasm_bindgen_test]
async fn storage_corrupt_or_foreign_values_mean_signed_out_then_login_works() {
    let _serial = serial().await;
    let junk = [
        "{not json",
        "",
        "null",
        "42",
        "[1,2,3]",
        r#""a string""#,
        r#"{"token":"abc"}"#,
        r#"{"v":2,"rt":"r","at":"a"}"#,
        r#"{"v":1,"rt":"r"}"#,
        r#"{"v":1,"rt":"has space","at":"a"}"#,
        r#"{"v":1,"rt":"","at":"a"}"#,
        r#"{"v":"1","rt":"r","at":"a"}"#,
        r#"{"v":1,"rt":"r","at":"a","exp":"#,
    ];
    for (i, value) in junk.iter().enumerate() {
        let key = format!("f-junk-{i}");
        local_storage().set_item(&key, value).unwrap();
        let mut o = Options::new(url("/auth/refresh"));
        o.storage_key = key.clone();
        let c = AuthClient::new(o).unwrap();
        assert!(!c.authenticated(), "{value}");
        assert_eq!(stored(&key), None, "cleared: {value}");
        assert_eq!(fetch_status(&c, "/api/me").await, 401, "{value}");
        if i == 0 {
            // A signed-out client signs in normally afterwards.
            c.login(
                &url("/auth/login"),
                &obj(r#"{"username":"demo","password":"demo"}"#),
            )
            .await
            .unwrap();
            assert_eq!(fetch_status(&c, "/api/me").await, 200);
            assert!(stored(&key).is_some());
        }
    }
    // A value of another app under a different key is never touched.
    local_storage().set_item("f-foreign-other", "mine").unwrap();
    let _ = AuthClient::new(options("f-foreign")).unwrap();
    assert_eq!(stored("f-foreign-other").as_deref(), Some("mine"));
}

// ---- Loop guards ----

#[wasm_bindgen_test]
async fn loop_guard_each_call_refreshes_and_replays_at_most_once() {
    let _serial = serial().await;
    // No minimum interval: a server that 401s everything still costs each call at most one
    // refresh and one replay.
    let mut o = options("f-loop0");
    o.min_refresh_interval_ms = 0;
    let (c, _, events) = client_with_refused_access(o).await;
    faults(r#"{"api_always_401":true}"#).await;
    let n0 = counts().await;
    for i in 1..=3 {
        assert_eq!(fetch_status(&c, "/api/me").await, 401);
        let d = counts().await - n0;
        assert_eq!(d.rotated, f64::from(i), "call {i}: one refresh");
        assert_eq!(d.api_401, f64::from(2 * i), "call {i}: one replay");
    }
    clear_faults().await;
    assert!(signouts(&events).is_empty());
    assert_eq!(fetch_status(&c, "/api/me").await, 200);
}

#[wasm_bindgen_test]
async fn loop_guard_minimum_interval_stops_the_storm_and_is_configurable() {
    let _serial = serial().await;
    for (key, min) in [("f-loop-default", None), ("f-loop-300", Some(300u32))] {
        let mut o = options(key);
        if let Some(m) = min {
            o.min_refresh_interval_ms = m;
        }
        let interval = f64::from(min.unwrap_or(1000));
        let (c, _, _) = client_with_refused_access(o).await;
        faults(r#"{"api_always_401":true}"#).await;
        let n0 = counts().await;
        let before_first = js_sys::Date::now();
        assert_eq!(fetch_status(&c, "/api/me").await, 401);
        let refreshed_at = js_sys::Date::now();
        let d = counts().await - n0;
        assert_eq!(
            (d.rotated, d.api_401),
            (1.0, 2.0),
            "{key}: one refresh, one replay"
        );
        // Two more calls straight away: returned as they are, no refresh. (Asserted only if
        // they surely ran inside the interval; a very slow machine may not manage that.)
        assert_eq!(fetch_status(&c, "/api/me").await, 401);
        assert_eq!(fetch_status(&c, "/api/me").await, 401);
        let d = counts().await - n0;
        if js_sys::Date::now() - before_first < interval {
            assert_eq!(
                (d.rotated, d.api_401),
                (1.0, 4.0),
                "{key}: no refresh inside the interval"
            );
        }
        // Once the interval has passed, a 401 may refresh again (once).
        wait_for("the interval to pass", 5000, || {
            js_sys::Date::now() - refreshed_at > interval + 50.0
        })
        .await;
        // Once the interval has passed, the next call refreshes again, once: on its 401, or
        // before sending if its (now real, 2 s) access token is already due.
        let before = counts().await;
        assert_eq!(fetch_status(&c, "/api/me").await, 401);
        let d = counts().await - before;
        assert_eq!(d.rotated, 1.0, "{key}: one refresh again");
        assert!(
            d.api_401 == 1.0 || d.api_401 == 2.0,
            "{key}: at most one replay: {d:?}"
        );
        clear_faults().await;
    }
}

#[wasm_bindgen_test]
async fn a_two_second_token_with_default_leeway_does_not_loop() {
    let _serial = serial().await;
    // Default options (leeway 10 s, capped at half of the 2 s lifetime): a call every 50 ms
    // for 3.5 s refreshes about once a second and never wastes a 401.
    let c = AuthClient::new(options("f-2s")).unwrap();
    c.login(
        &url("/auth/login"),
        &obj(r#"{"username":"demo","password":"demo"}"#),
    )
    .await
    .unwrap();
    let n0 = counts().await;
    let start = js_sys::Date::now();
    let mut calls = 0.0;
    while js_sys::Date::now() - start < 3500.0 {
        assert_eq!(fetch_status(&c, "/api/me").await, 200);
        calls += 1.0;
        sleep(50).await;
    }
    let elapsed = js_sys::Date::now() - start;
    let d = counts().await - n0;
    assert_eq!(d.api_401, 0.0, "no 401");
    assert_eq!(d.api_200, calls);
    assert!(d.rotated >= 2.0, "kept fresh: {} refreshes", d.rotated);
    assert!(
        d.rotated <= 1.0 + (elapsed / 1000.0).ceil(),
        "at most about one refresh per second: {} in {elapsed} ms ({calls} calls)",
        d.rotated
    );
}

// ---- Races ----

#[wasm_bindgen_test]
async fn logout_during_a_refresh_is_final() {
    let _serial = serial().await;
    let (c, rt, events) = client_with_refused_access(options("f-logout-race")).await;
    faults(r#"{"refresh":[{"kind":"delay","ms":1500}]}"#).await;
    let n0 = counts().await;
    let call = spawn_fetch(&c, JsValue::UNDEFINED);
    wait_until_faults_left(0.0).await;
    assert!(call.borrow().is_none(), "the refresh is in flight");
    c.logout().await;
    wait_for("the call to settle", 10_000, || call.borrow().is_some()).await;
    let outcome = *call.borrow();
    assert!(
        matches!(outcome, Some(Err("not_authenticated")) | Some(Ok(401))),
        "the call does not succeed with a session that was logged out: {outcome:?}"
    );
    assert!(!c.authenticated());
    assert_eq!(
        stored("f-logout-race"),
        None,
        "the late refresh result did not resurrect the session"
    );
    // Give any late write a chance to show up, then look again.
    sleep(300).await;
    assert_eq!(stored("f-logout-race"), None);
    assert!(!c.authenticated());
    assert_eq!(signouts(&events), vec![SignoutReason::Logout]);
    assert!(
        !events
            .borrow()
            .iter()
            .any(|e| matches!(e, AuthEvent::Refresh { .. })),
        "no refresh event after logout"
    );
    // The server revoked the family: neither the old token nor its successor works.
    let d = counts().await - n0;
    assert_eq!(d.revoked, 1.0, "{d:?}");
    let r = post_json("/auth/refresh", &format!(r#"{{"refresh_token":"{rt}"}}"#)).await;
    assert_eq!(status(&r), 400);
    assert_eq!(fetch_status(&c, "/api/me").await, 401);
}

#[wasm_bindgen_test]
async fn abort_during_a_refresh_does_not_lose_its_result() {
    let _serial = serial().await;
    let (c, rt, events) = client_with_refused_access(options("f-abort")).await;
    faults(r#"{"refresh":[{"kind":"delay","ms":1500}]}"#).await;
    let n0 = counts().await;
    let ctl = web_sys::AbortController::new().unwrap();
    let init = Object::new();
    Reflect::set(&init, &"signal".into(), &ctl.signal()).unwrap();
    let call = spawn_fetch(&c, init.into());
    wait_until_faults_left(0.0).await;
    ctl.abort();
    wait_for("the aborted call", 1000, || call.borrow().is_some()).await;
    assert_eq!(*call.borrow(), Some(Err("aborted")));
    // The refresh itself goes on: the server rotates and the successor is stored.
    wait_for("the refresh to land", 10_000, || {
        stored_rt("f-abort").is_some_and(|s| s != rt)
    })
    .await;
    let d = counts().await - n0;
    assert_eq!((d.rotated, d.reused), (1.0, 0.0));
    assert!(signouts(&events).is_empty());
    assert_eq!(fetch_status(&c, "/api/me").await, 200);
    let d = counts().await - n0;
    assert_eq!((d.reused, d.revoked), (0.0, 0.0));
}

#[wasm_bindgen_test]
async fn abort_while_another_call_waits_on_a_hanging_refresh() {
    let _serial = serial().await;
    let mut o = options("f-abort-hang");
    o.refresh_timeout_ms = 1500;
    let (c, rt, events) = client_with_refused_access(o).await;
    // Two hangs queued: whether the second call joins the first refresh (the usual case) or
    // its 401 arrives late and starts its own, that refresh hangs too.
    faults(r#"{"refresh":[{"kind":"hang","ms":10000},{"kind":"hang","ms":10000}]}"#).await;
    let ctl = web_sys::AbortController::new().unwrap();
    let init = Object::new();
    Reflect::set(&init, &"signal".into(), &ctl.signal()).unwrap();
    let aborted = spawn_fetch(&c, init.into());
    let other = spawn_fetch(&c, JsValue::UNDEFINED);
    wait_until_faults_left(1.0).await;
    ctl.abort();
    wait_for("the aborted call", 1000, || aborted.borrow().is_some()).await;
    // Aborted while waiting for the refresh, or (if its own 401 had not arrived yet) the
    // browser's AbortError from fetch itself.
    let a = *aborted.borrow();
    assert!(matches!(a, Some(Err("aborted" | "js-error"))), "{a:?}");
    wait_for("the timeout", 10_000, || other.borrow().is_some()).await;
    assert_eq!(*other.borrow(), Some(Err("refresh_failed")));
    clear_faults().await;
    assert_eq!(stored_rt("f-abort-hang").as_deref(), Some(rt.as_str()));
    assert!(signouts(&events).is_empty());
    assert_eq!(fetch_status(&c, "/api/me").await, 200);
}

#[wasm_bindgen_test]
async fn two_clients_on_one_key_refresh_once() {
    let _serial = serial().await;
    let a = AuthClient::new(options("f-two")).unwrap();
    a.login(
        &url("/auth/login"),
        &obj(r#"{"username":"demo","password":"demo"}"#),
    )
    .await
    .unwrap();
    let mut o = Options::new(url("/auth/refresh"));
    o.storage_key = "f-two".into();
    o.logout_url = Some(url("/auth/logout"));
    let b = AuthClient::new(o).unwrap();
    assert!(b.authenticated(), "b reads a's session");
    let (ea, eb) = (record(&a), record(&b));
    wait_until_due(&a).await;
    let n0 = counts().await;
    let calls: Vec<Promise> = (0..20)
        .map(|i| {
            let c = if i % 2 == 0 { a.clone() } else { b.clone() };
            wasm_bindgen_futures::future_to_promise(async move {
                let r = c
                    .fetch_with(&url("/api/me").into(), &JsValue::UNDEFINED)
                    .await
                    .map_err(|e| JsValue::from_str(&format!("{e:?}")))?;
                Ok(JsValue::from(r.status()))
            })
        })
        .collect();
    let statuses = JsFuture::from(Promise::all(&calls.into_iter().collect::<Array>()))
        .await
        .unwrap();
    let statuses: Vec<f64> = Array::from(&statuses)
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(statuses, vec![200.0; 20]);
    let d = counts().await - n0;
    assert_eq!(
        (d.rotated, d.grace, d.reused, d.api_401),
        (1.0, 0.0, 0.0, 0.0),
        "one refresh for both clients: {d:?}"
    );
    assert!(signouts(&ea).is_empty() && signouts(&eb).is_empty());
    // Logout through one client: the other finds the session gone at its next refresh and
    // signs out without presenting a revoked token as reuse.
    a.logout().await;
    let n1 = counts().await;
    let e = b.refresh().await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotAuthenticated);
    assert!(!b.authenticated());
    assert_eq!(signouts(&eb), vec![SignoutReason::OtherTab]);
    let d = counts().await - n1;
    assert_eq!((d.rotated, d.reused), (0.0, 0.0));
    assert_eq!(stored("f-two"), None);
}

// ---- Security: where the token goes, and where it never appears ----

struct Seen {
    url: String,
    auth: String,
}

fn seen(rec: &Recorder) -> Vec<Seen> {
    let list = obj(&rec.take());
    Array::from(&list)
        .iter()
        .map(|e| Seen {
            url: get_str(&e, "url"),
            auth: get_str(&e, "auth"),
        })
        .collect()
}

#[wasm_bindgen_test]
async fn the_token_never_leaves_the_allowed_origins() {
    let _serial = serial().await;
    let (c, _) = signed_in("f-origins").await;
    let port: u16 = server().rsplit(':').next().unwrap().parse().unwrap();
    let other_port = if port == 65535 { 1 } else { port + 1 };
    let rec = record_fetch(server(), 401);
    let n0 = counts().await;
    let foreign = [
        format!("http://localhost:{port}/api/me"),
        format!("http://127.0.0.1:{other_port}/api/me"),
        "http://127.0.0.1/api/me".to_string(),
        format!("https://127.0.0.1:{port}/api/me"),
        format!("http://sub.127.0.0.1.nip.io:{port}/api/me"),
        format!("http://127.0.0.1.nip.io:{port}/api/me"),
        format!("http://[::1]:{port}/api/me"),
        "//evil.example/x".to_string(),
        "https://evil.example/api/me".to_string(),
    ];
    let mut results = Vec::new();
    for u in &foreign {
        let r = c.fetch_with(&u.into(), &JsValue::UNDEFINED).await;
        results.push(r.map(|r| r.status()).map_err(|e| format!("{e:?}")));
    }
    // A Request object aimed elsewhere, too.
    let req = web_sys::Request::new_with_str("http://evil.example/req").unwrap();
    let r = c.fetch(req).await.map(|r| r.status());
    // A URL with credentials cannot even become a Request: it fails as fetch would.
    let creds = c
        .fetch_with(
            &format!("http://127.0.0.1:{port}@evil.example/api/me").into(),
            &JsValue::UNDEFINED,
        )
        .await;
    let d = counts().await - n0;
    let allowed = fetch_status(&c, "/api/me").await;
    let log = seen(&rec);
    rec.restore();
    assert!(matches!(creds, Err(FetchError::Js(_))), "{creds:?}");
    for (u, r) in foreign.iter().zip(&results) {
        assert_eq!(
            r.as_ref().ok(),
            Some(&401),
            "{u}: the foreign 401 is the caller's"
        );
    }
    assert_eq!(r.ok(), Some(401));
    assert_eq!(d.rotated, 0.0, "foreign 401s never trigger a refresh");
    assert_eq!(allowed, 200, "the allowed origin gets the token");
    let (ours, theirs): (Vec<&Seen>, Vec<&Seen>) =
        log.iter().partition(|s| s.url.starts_with(&url("/")));
    assert_eq!(
        theirs.len(),
        foreign.len() + 1,
        "one request each, no refresh"
    );
    for s in &theirs {
        assert_eq!(s.auth, "", "{} got an Authorization header", s.url);
    }
    assert!(theirs.iter().any(|s| s.url == "http://evil.example/x"));
    let me = ours.iter().find(|s| s.url == url("/api/me")).unwrap();
    assert!(
        me.auth.starts_with("Bearer ey"),
        "the allowed origin got the JWT"
    );
}

#[wasm_bindgen_test]
async fn explicit_allowed_origins_are_exact_scheme_host_and_port() {
    let _serial = serial().await;
    let mut o = options("f-allow");
    o.allowed_origins = Some(vec![
        "https://api.example".to_string(),
        server().to_string(),
    ]);
    let c = AuthClient::new(o).unwrap();
    // An opaque access token (no expiry): nothing here talks to the real server.
    let at = "opaque-access-token-1234";
    c.set_tokens(tokens(at, "opaque-refresh-token")).unwrap();
    let rec = record_fetch(server(), 200);
    let page = page_origin();
    let cases = [
        ("https://api.example/x", true),
        ("https://API.EXAMPLE:443/x", true),
        ("http://api.example/x", false),
        ("https://api.example:8443/x", false),
        ("https://sub.api.example/x", false),
        ("https://api.example.evil/x", false),
        ("https://evilapi.example/x", false),
    ];
    for (u, _) in &cases {
        let r = c.fetch_with(&(*u).into(), &JsValue::UNDEFINED).await;
        assert_eq!(r.map(|r| r.status()).ok(), Some(200), "{u}");
    }
    // The page's own origin (the test runner, another port) is not in this list.
    let r = c
        .fetch_with(&format!("{page}/x").into(), &JsValue::UNDEFINED)
        .await;
    assert!(r.is_ok());
    let log = seen(&rec);
    rec.restore();
    assert_eq!(log.len(), cases.len() + 1);
    for ((u, gets), s) in cases.iter().zip(&log) {
        assert_eq!(!s.auth.is_empty(), *gets, "{u} ({})", s.url);
        if *gets {
            assert_eq!(s.auth, format!("Bearer {at}"));
        }
    }
    assert_eq!(
        log.last().unwrap().auth,
        "",
        "page origin {page} not allowed here"
    );
}

#[wasm_bindgen_test]
async fn tokens_never_appear_in_console_errors_or_events() {
    let _serial = serial().await;
    let stop = capture_console();
    let mut messages = Vec::new();
    let mut secrets = Vec::new();
    for (i, fault) in [
        r#"{"kind":"status","status":500}"#,
        r#"{"kind":"status","status":429}"#,
        r#"{"kind":"drop"}"#,
        r#"{"kind":"malformed_json"}"#,
        r#"{"kind":"non_json"}"#,
        r#"{"kind":"no_access_token"}"#,
        r#"{"kind":"huge_body"}"#,
        r#"{"kind":"lost_response"}"#,
        r#"{"kind":"status","status":400}"#,
    ]
    .iter()
    .enumerate()
    {
        let key = format!("f-secret-{i}");
        let (c, rt, events) = client_with_refused_access(options(&key)).await;
        secrets.push(rt);
        faults(&format!(r#"{{"refresh":[{fault}]}}"#)).await;
        match fetch(&c, "/api/me").await {
            Err(FetchError::Auth(e)) => messages.push(format!("{e:?} {e} {}", e.message())),
            other => panic!("{fault}: expected an AuthError, got {other:?}"),
        }
        messages.push(format!("{:?}", events.borrow()));
        if let Some(s) = stored(&key) {
            secrets.push(get_str(&obj(&s), "at"));
        }
    }
    // The JS façade's AuthError (message and toString) for a rejected refresh.
    let (at, rt) = login_raw().await;
    let rt2 = refresh_raw(&rt).await;
    let _ = refresh_raw(&rt2).await;
    let _ = local_storage().remove_item("f-secret-js");
    let js = rotafetch::js::JsAuthClient::new(obj(&format!(
        r#"{{"refreshUrl": "{}", "storageKey": "f-secret-js", "leewaySeconds": 0}}"#,
        url("/auth/refresh")
    )))
    .unwrap();
    js.set_tokens(obj(&format!(
        r#"{{"access_token":"{at}","refresh_token":"{rt}"}}"#
    )))
    .unwrap();
    // `rt` was spent and its successor used: reuse, rejected.
    let e = JsFuture::from(js.refresh()).await.unwrap_err();
    messages.push(error_message(&e));
    secrets.push(at);
    secrets.push(rt);
    let console = stop.call0(&JsValue::NULL).unwrap().as_string().unwrap();
    assert!(messages.len() >= 19);
    for m in messages.iter().chain([&console]) {
        for s in &secrets {
            if s.len() > 8 {
                assert!(!m.contains(s.as_str()), "a token leaked into: {m}");
            }
        }
    }
}
