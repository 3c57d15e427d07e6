//! Browser tests: real headless Chromium (wasm-bindgen-test), the real reference server on
//! loopback (started by `scripts/with-server.sh` with `--access-ttl 2 --test-faults`, its
//! address compiled in as `ROTAFETCH_SERVER`). Each test uses its own storage key, and reads
//! the server's `/metrics` before and after to count refreshes and 401s.
#![cfg(target_arch = "wasm32")]

use js_sys::{Array, Function, Object, Promise, Reflect};
use rotafetch::js::JsAuthClient;
use rotafetch::{AuthClient, AuthEvent, ErrorCode, Options, SignoutReason, Source};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

mod common;
use common::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen(inline_js = r#"
export function formData() {
  const f = new FormData();
  f.append("name", "rotafetch ✓");
  f.append("file", new Blob([new Uint8Array([0, 1, 2, 253, 254, 255])], { type: "application/octet-stream" }), "bytes.bin");
  return f;
}
export function bytes() { const b = new Uint8Array(256); for (let i = 0; i < 256; i++) b[i] = i; return b; }
export function b64(text) { return btoa(unescape(encodeURIComponent(text))); }
export function b64bytes(u8) { let s = ""; for (const b of u8) s += String.fromCharCode(b); return btoa(s); }
export function b64decode(s) { return atob(s); }
export async function bodyOf(v) { return new Uint8Array(await new Response(v).arrayBuffer()); }
// Holds back the response of requests whose URL contains `slow=1` until release() is called.
// (The server answers at once; only delivery to rotafetch is delayed.)
export function gateSlowResponses() {
  const orig = globalThis.fetch;
  let release; const gate = new Promise(r => release = r);
  globalThis.fetch = async (input, init) => {
    const res = await orig(input, init);
    const url = typeof input === "string" ? input : input.url;
    if (url.includes("slow=1")) await gate;
    return res;
  };
  return () => { release(); globalThis.fetch = orig; };
}
// Chromium cannot upload a ReadableStream over HTTP/1.1; a request with one is answered with
// the server's real 401 for an unauthenticated GET of the same URL instead.
export function answerStreamsWithServer401() {
  const orig = globalThis.fetch;
  globalThis.fetch = (input, init) => {
    const url = typeof input === "string" ? input : input.url;
    if (url.includes("stream=1")) return orig(url);
    return orig(input, init);
  };
  return () => { globalThis.fetch = orig; };
}
export function streamInit() {
  const body = new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode("streamed")); c.close(); } });
  return { method: "POST", body, duplex: "half" };
}
export function breakSetItem() {
  const orig = Storage.prototype.setItem;
  Storage.prototype.setItem = function () { throw new DOMException("full", "QuotaExceededError"); };
  return () => { Storage.prototype.setItem = orig; };
}
export function captureConsole() {
  const seen = [];
  const saved = {};
  for (const k of ["log", "info", "warn", "error", "debug"]) {
    saved[k] = console[k];
    console[k] = (...a) => { seen.push(a.map(String).join(" ")); saved[k].apply(console, a); };
  }
  return () => { Object.assign(console, saved); return seen.join("\n"); };
}
export function idbValue(key) {
  return new Promise((res, rej) => {
    const r = indexedDB.open("rotafetch");
    r.onerror = () => rej(r.error);
    r.onsuccess = () => {
      const q = r.result.transaction("kv", "readonly").objectStore("kv").get(key);
      q.onsuccess = () => { res(q.result ?? null); r.result.close(); };
      q.onerror = () => rej(q.error);
    };
  });
}
// Adds <base href>; returns the function that removes it.
export function setBase(href) { const b = document.createElement("base"); b.href = href; document.head.append(b); return () => b.remove(); }
// Holds the Web Lock `name` (as another tab would); resolves, once granted, the function that
// releases it; `null` where the engine has no Web Locks.
export function holdLock(name) {
  if (!navigator.locks) return Promise.resolve(null);
  return new Promise((granted) => navigator.locks.request(name, () => new Promise((release) => granted(release))));
}
// How many requests wait for the Web Lock `name`.
export async function waitingFor(name) {
  return (await navigator.locks.query()).pending.filter((l) => l.name === name).length;
}
export function errorInfo(e) {
  return { isError: e instanceof Error, name: e && e.name, code: e && e.code, message: e && e.message,
           proto: Object.getPrototypeOf(e) && Object.getPrototypeOf(e).constructor && Object.getPrototypeOf(e).constructor.name };
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = formData)]
    fn form_data() -> JsValue;
    fn bytes() -> JsValue;
    fn b64(text: &str) -> String;
    fn b64bytes(u8: &JsValue) -> String;
    #[wasm_bindgen(js_name = bodyOf)]
    async fn body_of(v: &JsValue) -> JsValue;
    #[wasm_bindgen(js_name = gateSlowResponses)]
    fn gate_slow_responses() -> Function;
    #[wasm_bindgen(js_name = answerStreamsWithServer401)]
    fn answer_streams_with_server_401() -> Function;
    #[wasm_bindgen(js_name = streamInit)]
    fn stream_init() -> JsValue;
    #[wasm_bindgen(js_name = breakSetItem)]
    fn break_set_item() -> Function;
    #[wasm_bindgen(js_name = captureConsole)]
    fn capture_console() -> Function;
    #[wasm_bindgen(js_name = idbValue, catch)]
    async fn idb_value(key: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = errorInfo)]
    fn error_info(e: &JsValue) -> JsValue;
    #[wasm_bindgen(js_name = holdLock)]
    async fn hold_lock(name: &str) -> JsValue;
    #[wasm_bindgen(js_name = waitingFor)]
    async fn waiting_for(name: &str) -> JsValue;
    #[wasm_bindgen(js_name = setBase)]
    fn set_base(href: &str) -> Function;
}

/// Polls `cond` every 20 ms for at most `ms`.
async fn wait_for(what: &str, ms: u32, mut cond: impl FnMut() -> bool) {
    let mut waited = 0;
    while !cond() {
        assert!(waited < ms, "timed out waiting for {what}");
        sleep(20).await;
        waited += 20;
    }
}

/// A client holding a real refresh token and an access token the server refuses (so the
/// first call gets a 401; it carries no `exp`, so there is no refresh before sending).
async fn client_with_refused_access(key: &str) -> (AuthClient, String) {
    let c = AuthClient::new(options(key)).unwrap();
    let (_, rt) = login_raw().await;
    c.set_tokens(tokens("not-a-valid-access-token", &rt))
        .unwrap();
    (c, rt)
}

async fn fetch(
    c: &AuthClient,
    path: &str,
    init: &JsValue,
) -> Result<web_sys::Response, rotafetch::FetchError> {
    c.fetch_with(&url(path).into(), init).await
}

async fn text(r: &web_sys::Response) -> String {
    JsFuture::from(r.text().unwrap())
        .await
        .unwrap()
        .as_string()
        .unwrap()
}

fn stored_rt(key: &str) -> Option<String> {
    stored(key).map(|s| get_str(&obj(&s), "rt"))
}

/// Waits until the client's access token is due for a refresh (2 s tokens: after 1 s).
async fn wait_until_due(c: &AuthClient) {
    let exp = c.expires_at().expect("a JWT with exp");
    // Leeway is capped at half the 2 s lifetime: due 1 s before expiry; 100 ms margin.
    let due = exp - 1000.0 + 100.0;
    wait_for("the token to be due", 5000, || js_sys::Date::now() >= due).await;
}

fn all(promises: Vec<Promise>) -> JsFuture {
    JsFuture::from(Promise::all(&promises.into_iter().collect::<Array>()))
}

#[wasm_bindgen_test]
async fn fifty_concurrent_calls_after_expiry_cause_one_refresh() {
    let _serial = serial().await;
    let c = AuthClient::new(options("t-fifty")).unwrap();
    c.login(
        &url("/auth/login"),
        &obj(r#"{"username":"demo","password":"demo"}"#),
    )
    .await
    .unwrap();
    assert!(c.authenticated());
    wait_until_due(&c).await;
    let (rot0, u0, ok0) = (
        metric(ROTATED).await,
        metric(API_401).await,
        metric(API_200).await,
    );
    let calls: Vec<Promise> = (0..50)
        .map(|_| {
            let c = c.clone();
            wasm_bindgen_futures::future_to_promise(async move {
                let r = fetch(&c, "/api/me", &JsValue::UNDEFINED).await.unwrap();
                Ok(JsValue::from(r.status()))
            })
        })
        .collect();
    let statuses = all(calls).await.unwrap();
    let statuses: Vec<f64> = Array::from(&statuses)
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(statuses, vec![200.0; 50]);
    assert_eq!(metric(ROTATED).await - rot0, 1.0, "exactly one refresh");
    assert_eq!(
        metric(API_401).await - u0,
        0.0,
        "no wasted 401: refreshed before sending"
    );
    assert_eq!(metric(API_200).await - ok0, 50.0);
}

#[wasm_bindgen_test]
async fn json_post_is_replayed_byte_identical_after_a_401() {
    let _serial = serial().await;
    let (c, rt) = client_with_refused_access("t-json").await;
    let (rot0, u0) = (metric(ROTATED).await, metric(API_401).await);
    let body = r#"{"hello":"wörld","n":[1,2,3]}"#;
    let init =
        obj(r#"{"method":"PUT","headers":{"Content-Type":"application/json","X-Trace":"abc"}}"#);
    Reflect::set(&init, &"body".into(), &body.into()).unwrap();
    let r = fetch(&c, "/api/echo", &init).await.unwrap();
    assert_eq!(r.status(), 200);
    let echo = obj(&text(&r).await);
    assert_eq!(get_str(&echo, "method"), "PUT");
    assert_eq!(get_str(&echo, "content_type"), "application/json");
    assert_eq!(get_str(&echo, "body_base64"), b64(body));
    assert_eq!(metric(ROTATED).await - rot0, 1.0);
    assert_eq!(metric(API_401).await - u0, 1.0, "one 401, then one replay");
    assert_ne!(
        stored_rt("t-json").unwrap(),
        rt,
        "the rotated refresh token is stored"
    );
}

#[wasm_bindgen_test]
async fn form_data_is_replayed_byte_identical_after_a_401() {
    let _serial = serial().await;
    // Reference: the same FormData sent directly with a valid token.
    let (access, _) = login_raw().await;
    let direct = raw("POST", &url("/api/echo"), form_data(), None, Some(&access))
        .await
        .unwrap();
    let direct = obj(&get_str(&direct, "text"));

    let (c, _) = client_with_refused_access("t-form").await;
    let init = Object::new();
    Reflect::set(&init, &"method".into(), &"POST".into()).unwrap();
    Reflect::set(&init, &"body".into(), &form_data()).unwrap();
    let r = fetch(&c, "/api/echo", &init).await.unwrap();
    assert_eq!(r.status(), 200);
    let echo = obj(&text(&r).await);
    let boundary = |ct: &str| ct.split("boundary=").nth(1).unwrap().to_string();
    let (ct_a, ct_b) = (
        get_str(&echo, "content_type"),
        get_str(&direct, "content_type"),
    );
    assert!(ct_a.starts_with("multipart/form-data; boundary="), "{ct_a}");
    // Same bytes once each multipart boundary (random per serialization) is normalised.
    let decode = |e: &JsValue, b: &str| {
        js_sys::global()
            .unchecked_into::<web_sys::Window>()
            .atob(&get_str(e, "body_base64"))
            .unwrap()
            .replace(b, "BOUNDARY")
    };
    let replayed = decode(&echo, &boundary(&ct_a));
    assert!(replayed.contains("rotafetch") && replayed.contains("bytes.bin"));
    assert_eq!(replayed, decode(&direct, &boundary(&ct_b)));
}

#[wasm_bindgen_test]
async fn blob_arraybuffer_and_urlsearchparams_bodies_are_replayed() {
    let _serial = serial().await;
    let bodies: Vec<(JsValue, &str)> = vec![
        (
            web_sys::Blob::new_with_u8_array_sequence(&Array::of1(&bytes()))
                .unwrap()
                .into(),
            "",
        ),
        (js_sys::Uint8Array::new(&bytes()).buffer().into(), ""),
        (
            web_sys::UrlSearchParams::new_with_str("a=1&b=x y&c=%E2%9C%93")
                .unwrap()
                .into(),
            "application/x-www-form-urlencoded;charset=UTF-8",
        ),
    ];
    for (i, (body, ct)) in bodies.into_iter().enumerate() {
        let key = ["t-blob", "t-ab", "t-usp"][i];
        let (c, _) = client_with_refused_access(key).await;
        let expected = b64bytes(&body_of(&body).await);
        let init = Object::new();
        Reflect::set(&init, &"method".into(), &"POST".into()).unwrap();
        Reflect::set(&init, &"body".into(), &body).unwrap();
        let r = fetch(&c, "/api/echo", &init).await.unwrap();
        assert_eq!(r.status(), 200, "{key}");
        let echo = obj(&text(&r).await);
        assert_eq!(get_str(&echo, "body_base64"), expected, "{key}");
        if !ct.is_empty() {
            assert_eq!(get_str(&echo, "content_type"), ct, "{key}");
        }
    }
}

#[wasm_bindgen_test]
async fn a_rejected_refresh_signs_out_and_clears_storage() {
    let _serial = serial().await;
    let c = AuthClient::new(options("t-reject")).unwrap();
    c.set_tokens(tokens("not-valid-access", "not-a-real-refresh-token"))
        .unwrap();
    assert!(stored("t-reject").is_some());
    let events = record(&c);
    let err = match fetch(&c, "/api/me", &JsValue::UNDEFINED).await {
        Err(rotafetch::FetchError::Auth(e)) => e,
        other => panic!("expected refresh_rejected, got {other:?}"),
    };
    assert_eq!(err.code(), ErrorCode::RefreshRejected);
    assert!(!err.message().contains("not-a-real-refresh-token"));
    assert_eq!(signouts(&events), vec![SignoutReason::Rejected]);
    assert!(matches!(
        &events.borrow()[0],
        AuthEvent::Signout { error: Some(e), .. } if e == "invalid_grant"
    ));
    assert_eq!(stored("t-reject"), None, "storage cleared");
    assert!(!c.authenticated());
    // Signed out: later calls go out unauthenticated and the 401 comes back as it is.
    let r = fetch(&c, "/api/me", &JsValue::UNDEFINED).await.unwrap();
    assert_eq!(r.status(), 401);
}

#[wasm_bindgen_test]
async fn transient_refresh_failures_keep_the_tokens() {
    let _serial = serial().await;
    let (c, rt) = signed_in("t-transient").await;
    let events = record(&c);
    faults(r#"{"refresh":[{"kind":"status","status":503},{"kind":"drop"},{"kind":"status","status":429},{"kind":"status","status":500}]}"#).await;
    for _ in 0..4 {
        let e = c.refresh().await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::RefreshFailed, "{e:?}");
        assert_eq!(
            stored_rt("t-transient").as_deref(),
            Some(rt.as_str()),
            "refresh token kept"
        );
        assert!(c.authenticated());
    }
    assert!(
        signouts(&events).is_empty(),
        "no signout on transient failures"
    );
    // The server is healthy again: the kept token still works.
    let rot0 = metric(ROTATED).await;
    c.refresh().await.unwrap();
    assert_eq!(metric(ROTATED).await - rot0, 1.0);
    assert_ne!(stored_rt("t-transient").unwrap(), rt);
    let r = fetch(&c, "/api/me", &JsValue::UNDEFINED).await.unwrap();
    assert_eq!(r.status(), 200);
    clear_faults().await;
}

#[wasm_bindgen_test]
async fn a_failing_refresh_during_a_call_rejects_it_then_a_later_call_recovers() {
    let _serial = serial().await;
    let (c, _) = client_with_refused_access("t-503-call").await;
    faults(r#"{"refresh":[{"kind":"status","status":503}]}"#).await;
    let err = match fetch(&c, "/api/me", &JsValue::UNDEFINED).await {
        Err(rotafetch::FetchError::Auth(e)) => e,
        other => panic!("expected refresh_failed, got {other:?}"),
    };
    assert_eq!(err.code(), ErrorCode::RefreshFailed);
    assert!(c.authenticated());
    let r = fetch(&c, "/api/me", &JsValue::UNDEFINED).await.unwrap();
    assert_eq!(r.status(), 200);
}

/// `/test/redirect?to=…` (a 307) with `to` encoded.
fn redirect_to(to: &str) -> String {
    let mut p = "/test/redirect?to=".to_string();
    p.push_str(&String::from(js_sys::encode_uri_component(to)));
    p
}

#[wasm_bindgen_test]
async fn a_401_after_a_redirect_to_another_origin_is_returned_without_a_refresh() {
    let _serial = serial().await;
    let (c, rt) = signed_in("t-redirect").await;
    let rot0 = metric(ROTATED).await;
    // The allowed origin redirects to another one (localhost vs 127.0.0.1), which answers 401.
    let other = server().replace("127.0.0.1", "localhost");
    let r = fetch(
        &c,
        &redirect_to(&format!("{other}/test/unauthorized")),
        &JsValue::UNDEFINED,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.redirected() && r.url().starts_with(&other), "{}", r.url());
    // Whether the token goes along is the engine's doing. Chromium, Firefox and WebKit all
    // drop `Authorization` at a redirect to another origin (Fetch standard); WebKit first
    // asks that origin's CORS preflight (`Origin: null`) to allow `authorization`. rotafetch
    // sends exactly what a plain `fetch` with the header sends.
    let plain = raw(
        "GET",
        &url(&redirect_to(&format!("{other}/test/unauthorized"))),
        JsValue::UNDEFINED,
        None,
        Some("probe"),
    )
    .await
    .unwrap();
    let engine_forwards = get(&obj(&get_str(&plain, "text")), "authorization_received");
    assert_eq!(
        engine_forwards,
        JsValue::FALSE,
        "the engine forwarded the header"
    );
    assert_eq!(
        get(&obj(&text(&r).await), "authorization_received"),
        engine_forwards,
    );
    assert_eq!(
        metric(ROTATED).await,
        rot0,
        "a 401 from another origin triggers no refresh, whether or not the engine forwarded"
    );
    assert_eq!(stored_rt("t-redirect").as_deref(), Some(rt.as_str()));

    // `Redirects::Error`: the authenticated call fails at the redirect in every engine, so the
    // token cannot follow it even where an engine would forward it; the session is untouched.
    let mut o = options("t-redirect-error");
    o.redirects = rotafetch::Redirects::Error;
    let (strict, strict_rt) = signed_in_with(o).await;
    let to_other = redirect_to(&format!("{other}/test/unauthorized"));
    match fetch(&strict, &to_other, &JsValue::UNDEFINED).await {
        Err(rotafetch::FetchError::Js(e)) => assert!(e.is_instance_of::<js_sys::TypeError>()),
        other => panic!(
            "a redirect must fail the call: {:?}",
            other.map(|r| r.status())
        ),
    }
    // A call that chose its own mode keeps it; one to another origin is not touched at all.
    let manual = obj(r#"{"redirect":"manual"}"#);
    let r = fetch(&strict, &to_other, &manual).await.unwrap();
    assert_eq!(get_str(r.as_ref(), "type"), "opaqueredirect");
    assert_eq!(metric(ROTATED).await, rot0);
    assert_eq!(
        stored_rt("t-redirect-error").as_deref(),
        Some(strict_rt.as_str())
    );

    // A redirect within the origin keeps the token: that 401 is about it (one refresh, one
    // replay, whose 401 is passed through).
    let r = fetch(&c, &redirect_to("/test/unauthorized"), &JsValue::UNDEFINED)
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        get(&obj(&text(&r).await), "authorization_received"),
        JsValue::TRUE
    );
    assert_eq!(metric(ROTATED).await - rot0, 1.0);
    assert_ne!(stored_rt("t-redirect").as_deref(), Some(rt.as_str()));
}

#[wasm_bindgen_test]
async fn other_origins_never_get_the_token() {
    let _serial = serial().await;
    let (c, _) = signed_in("t-origin").await;
    let rot0 = metric(ROTATED).await;
    let (status, challenge) = me_at_another_origin(&c).await;
    assert_eq!(status, 401, "sent without a token");
    assert!(
        !challenge.contains("invalid_token"),
        "no token was presented: {challenge}"
    );
    assert_eq!(
        metric(ROTATED).await,
        rot0,
        "a foreign 401 never triggers a refresh"
    );
    let r = fetch(&c, "/api/me", &JsValue::UNDEFINED).await.unwrap();
    assert_eq!(r.status(), 200, "the allowed origin gets it");
}

#[wasm_bindgen_test]
async fn a_stale_401_is_replayed_without_another_refresh() {
    let _serial = serial().await;
    let (c, _) = client_with_refused_access("t-stale").await;
    let release = gate_slow_responses();
    let rot0 = metric(ROTATED).await;
    let slow = {
        let c = c.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let r = fetch(&c, "/api/me?slow=1", &JsValue::UNDEFINED)
                .await
                .unwrap();
            Ok(JsValue::from(r.status()))
        })
    };
    // A second call with the same refused token: 401, refresh, replay.
    let r = fetch(&c, "/api/me", &JsValue::UNDEFINED).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(metric(ROTATED).await - rot0, 1.0);
    // Now the first call's 401 arrives: the token it carried was replaced meanwhile.
    release.call0(&JsValue::NULL).unwrap();
    assert_eq!(JsFuture::from(slow).await.unwrap(), 200);
    assert_eq!(metric(ROTATED).await - rot0, 1.0, "no second refresh");
}

#[wasm_bindgen_test]
async fn abort_while_waiting_for_the_refresh_leaves_the_refresh_alone() {
    let _serial = serial().await;
    let (c, _) = client_with_refused_access("t-abort").await;
    faults(r#"{"refresh":[{"kind":"delay","ms":1500}]}"#).await;
    let rot0 = metric(ROTATED).await;
    let ctl = web_sys::AbortController::new().unwrap();
    let init = Object::new();
    Reflect::set(&init, &"signal".into(), &ctl.signal()).unwrap();
    let done = Rc::new(RefCell::new(None::<Result<u16, ErrorCode>>));
    let spawn = |init: JsValue, slot: Rc<RefCell<Option<Result<u16, ErrorCode>>>>| {
        let c = c.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let r = match fetch(&c, "/api/me", &init).await {
                Ok(r) => Ok(r.status()),
                Err(rotafetch::FetchError::Auth(e)) => Err(e.code()),
                Err(rotafetch::FetchError::Js(_)) => Err(ErrorCode::RefreshFailed),
            };
            *slot.borrow_mut() = Some(r);
        });
    };
    let other = Rc::new(RefCell::new(None));
    spawn(init.into(), done.clone());
    spawn(JsValue::UNDEFINED, other.clone());
    // Wait until the refresh is at the server (the delay fault was taken), then abort.
    let mut waited = 0;
    loop {
        let r = raw("GET", &url("/test/faults"), JsValue::UNDEFINED, None, None)
            .await
            .unwrap();
        if get_str(&r, "text").contains("\"remaining\":0") || waited > 5000 {
            break;
        }
        sleep(20).await;
        waited += 20;
    }
    assert!(
        other.borrow().is_none() && done.borrow().is_none(),
        "both wait on the refresh"
    );
    ctl.abort();
    wait_for("the aborted call to settle", 500, || {
        done.borrow().is_some()
    })
    .await;
    assert_eq!(*done.borrow(), Some(Err(ErrorCode::Aborted)));
    assert!(
        other.borrow().is_none(),
        "the shared refresh is still running"
    );
    wait_for("the other call", 5000, || other.borrow().is_some()).await;
    assert_eq!(*other.borrow(), Some(Ok(200)));
    assert_eq!(metric(ROTATED).await - rot0, 1.0);
}

#[wasm_bindgen_test]
async fn refresh_before_sending_wastes_no_401() {
    let _serial = serial().await;
    let (c, _) = signed_in("t-presend").await;
    let events = record(&c);
    wait_until_due(&c).await;
    let (rot0, u0) = (metric(ROTATED).await, metric(API_401).await);
    let r = fetch(&c, "/api/me", &JsValue::UNDEFINED).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(metric(ROTATED).await - rot0, 1.0);
    assert_eq!(metric(API_401).await - u0, 0.0);
    assert!(matches!(
        events.borrow().as_slice(),
        [AuthEvent::Refresh {
            source: Source::ThisTab,
            expires_at: Some(_)
        }]
    ));
}

#[wasm_bindgen_test]
async fn a_second_401_is_returned_and_the_loop_guard_holds() {
    let _serial = serial().await;
    let (c, _) = signed_in("t-loop").await;
    faults(r#"{"api_always_401":true}"#).await;
    let (rot0, u0) = (metric(ROTATED).await, metric(API_401).await);
    let r = fetch(&c, "/api/me", &JsValue::UNDEFINED).await.unwrap();
    assert_eq!(r.status(), 401, "the replay's 401 goes back to the caller");
    assert_eq!(metric(ROTATED).await - rot0, 1.0, "one refresh");
    assert_eq!(metric(API_401).await - u0, 2.0, "the call and one replay");
    // Straight after a refresh, another 401 is returned without a refresh storm.
    for _ in 0..5 {
        let r = fetch(&c, "/api/me", &JsValue::UNDEFINED).await.unwrap();
        assert_eq!(r.status(), 401);
    }
    assert_eq!(
        metric(ROTATED).await - rot0,
        1.0,
        "the minimum interval stops the storm"
    );
    assert_eq!(metric(API_401).await - u0, 7.0);
    clear_faults().await;
}

/// Issue #14: a session handed over right after a refresh (`setTokens`, `login`) is not
/// the refresh's product, so the loop guard must not hold back its first refresh.
#[wasm_bindgen_test]
async fn a_new_session_right_after_a_refresh_still_refreshes() {
    let _serial = serial().await;
    let (c, _) = signed_in("t-new-session").await;
    let rot0 = metric(ROTATED).await;
    c.refresh().await.unwrap();
    // The 401 path: at once, another session whose access token the server refuses.
    let (_, rt) = login_raw().await;
    c.set_tokens(tokens("not-a-valid-access-token", &rt))
        .unwrap();
    let u0 = metric(API_401).await;
    let body = r#"{"new":"session"}"#;
    let init = obj(r#"{"method":"POST","headers":{"Content-Type":"application/json"}}"#);
    Reflect::set(&init, &"body".into(), &body.into()).unwrap();
    let r = fetch(&c, "/api/echo", &init).await.unwrap();
    assert_eq!(r.status(), 200, "one refresh and a replay, not the 401");
    assert_eq!(get_str(&obj(&text(&r).await), "body_base64"), b64(body));
    assert_eq!(
        metric(ROTATED).await - rot0,
        2.0,
        "c.refresh() and the 401's"
    );
    assert_eq!(metric(API_401).await - u0, 1.0);
    let after_401 = stored_rt("t-new-session").unwrap();
    assert_ne!(after_401, rt, "the new session's rotation is stored");
    // The refresh-before-send path: right after that refresh, a session whose access token
    // is already due (`expires_in: 0`) is refreshed before sending.
    let (at, rt) = login_raw().await;
    let mut due = tokens(&at, &rt);
    due.expires_in = Some(0.0);
    c.set_tokens(due).unwrap();
    let r = fetch(&c, "/api/me", &JsValue::UNDEFINED).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        metric(ROTATED).await - rot0,
        3.0,
        "refreshed before sending"
    );
    assert_ne!(stored_rt("t-new-session").unwrap(), rt);
    // The guard's own purpose (a 401 on the token a refresh just produced is returned) is
    // `a_second_401_is_returned_and_the_loop_guard_holds`.
}

#[wasm_bindgen_test]
async fn logout_signs_out_here_and_at_the_server() {
    let _serial = serial().await;
    let c = AuthClient::new(options("t-logout")).unwrap();
    let (at, rt) = login_raw().await;
    c.set_tokens(tokens(&at, &rt)).unwrap();
    let events = record(&c);
    c.logout().await;
    assert!(!c.authenticated());
    assert_eq!(stored("t-logout"), None);
    assert_eq!(signouts(&events), vec![SignoutReason::Logout]);
    let r = post_json("/auth/refresh", &format!(r#"{{"refresh_token":"{rt}"}}"#)).await;
    assert_eq!(status(&r), 400, "the server revoked the family");
    let r = raw("GET", &url("/api/me"), JsValue::UNDEFINED, None, Some(&at))
        .await
        .unwrap();
    assert_eq!(status(&r), 401, "and refuses its access token");
}

#[wasm_bindgen_test]
async fn oauth2_form_refresh_and_per_tab_storages() {
    let _serial = serial().await;
    for (key, storage) in [
        ("t-oauth-local", rotafetch::StorageKind::Local),
        ("t-oauth-session", rotafetch::StorageKind::Session),
        ("t-oauth-memory", rotafetch::StorageKind::Memory),
    ] {
        let mut o = options(key);
        o.refresh_format = rotafetch::RefreshFormat::OAuth2;
        o.client_id = Some("demo-app".into());
        o.storage = storage;
        let (c, _) = signed_in_with(o).await;
        c.refresh().await.unwrap();
        let r = fetch(&c, "/api/me", &JsValue::UNDEFINED).await.unwrap();
        assert_eq!(r.status(), 200, "{key}");
        assert_eq!(
            stored(key).is_some(),
            storage == rotafetch::StorageKind::Local,
            "{key}: only local storage writes localStorage"
        );
    }
}

#[wasm_bindgen_test]
async fn corrupt_or_foreign_stored_data_means_signed_out() {
    let _serial = serial().await;
    for junk in [
        "{not json",
        r#"{"foo":1}"#,
        r#""a string""#,
        r#"{"v":1,"rt":5,"at":"x"}"#,
    ] {
        local_storage().set_item("t-corrupt", junk).unwrap();
        let mut o = Options::new(url("/auth/refresh"));
        o.storage_key = "t-corrupt".into();
        let c = AuthClient::new(o).unwrap();
        assert!(!c.authenticated(), "{junk}");
        assert_eq!(stored("t-corrupt"), None, "cleared: {junk}");
    }
}

#[wasm_bindgen_test]
async fn storage_that_throws_falls_back_to_memory() {
    let _serial = serial().await;
    let restore = break_set_item();
    let c = AuthClient::new(options("t-quota")).unwrap();
    let r = c
        .login(
            &url("/auth/login"),
            &obj(r#"{"username":"demo","password":"demo"}"#),
        )
        .await;
    restore.call0(&JsValue::NULL).unwrap();
    r.unwrap();
    assert!(c.authenticated());
    c.refresh().await.unwrap();
    let r = fetch(&c, "/api/me", &JsValue::UNDEFINED).await.unwrap();
    assert_eq!(r.status(), 200);
}

#[wasm_bindgen_test]
async fn a_stream_body_that_needs_a_replay_is_refused_not_emptied() {
    let _serial = serial().await;
    let (c, _) = client_with_refused_access("t-stream").await;
    let restore = answer_streams_with_server_401();
    let r = fetch(&c, "/api/me?stream=1", &stream_init()).await;
    restore.call0(&JsValue::NULL).unwrap();
    match r {
        Err(rotafetch::FetchError::Auth(e)) => assert_eq!(e.code(), ErrorCode::BodyNotReplayable),
        Ok(r) => panic!(
            "expected body_not_replayable, got HTTP {} from {}",
            r.status(),
            r.url()
        ),
        other => panic!("expected body_not_replayable, got {other:?}"),
    }
}

#[wasm_bindgen_test]
async fn the_cross_tab_hand_over_store_holds_the_rotated_session() {
    let _serial = serial().await;
    let (c, rt) = signed_in("t-idb").await;
    c.refresh().await.unwrap();
    // IndexedDB (what the next lock holder reads) and localStorage agree on the new session.
    let in_idb = idb_value("t-idb")
        .await
        .unwrap()
        .as_string()
        .expect("written to IndexedDB");
    assert_eq!(Some(in_idb), stored("t-idb"));
    assert_ne!(stored_rt("t-idb").unwrap(), rt);
    c.logout().await;
    assert!(
        idb_value("t-idb").await.unwrap().is_null(),
        "cleared on logout"
    );
}

// ---- The seam between the Rust core and the JS driver ----

/// A question the core does not have (a number no `Question` has: an old driver, or one of
/// another build) is a thrown `Error` that names it, never an answer: the driver once read the
/// `undefined` of an unknown question as "return the 401". Asked through the driver's own
/// typed handle on the core (`ask_`).
#[wasm_bindgen_test]
fn a_question_the_core_does_not_have_throws_an_error_naming_it() {
    use rotafetch::seam::Question;
    let c = AuthClient::new(options("t-seam")).unwrap();
    let ask_fn: Function = get(c.driver_object(), "ask_").unchecked_into();
    let ask = |q: u8, arg: Option<JsValue>| {
        let mut args = Array::of1(&q.into());
        args.extend(arg);
        ask_fn.apply(&JsValue::NULL, &args)
    };
    let generation = ask(Question::Generation as u8, None).unwrap();
    assert!(generation.as_f64().is_some());
    assert_eq!(
        ask(Question::Access as u8, None).unwrap(),
        JsValue::UNDEFINED
    );
    for n in [22, 99, 255] {
        let e = ask(n, Some(url("/api/me").into())).expect_err("no such question");
        let info = error_info(&e);
        assert_eq!(get(&info, "isError"), JsValue::TRUE, "{n}");
        let message = get_str(&info, "message");
        assert!(
            message.ends_with(&format!("has no question {n}")),
            "{message}"
        );
    }
    // The throws left the core usable (nothing stayed borrowed).
    assert!(ask(Question::Generation as u8, None)
        .unwrap()
        .as_f64()
        .is_some());
    assert!(!c.authenticated());
}

/// `logout()` while this tab's refresh waits for the cross-tab lock (another tab holds it):
/// the refresh ends once it gets the lock, without refreshing and without taking the session
/// back from the hand-over store, and the tab stays signed out. (The refresh used to read the
/// session's generation after the lock, so the sign-out went unnoticed: the tab refreshed,
/// stayed signed in after `logout()`, and its listeners got `refresh` instead of `signout`.)
#[wasm_bindgen_test]
async fn a_logout_while_a_refresh_waits_for_the_lock_ends_that_refresh() {
    let _serial = serial().await;
    let (c, _) = signed_in("t-queued").await;
    let events = record(&c);
    let lock = "rotafetch:t-queued";
    let Some(release) = hold_lock(lock).await.dyn_into::<Function>().ok() else {
        console_log!("no Web Locks in this engine: nothing to queue behind");
        return;
    };
    wait_until_due(&c).await;
    let rot0 = metric(ROTATED).await;
    let waiting = || async { waiting_for(lock).await.as_f64().unwrap_or(0.0) };
    let call = {
        let c = c.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let r = fetch(&c, "/api/me", &JsValue::UNDEFINED).await;
            Ok(JsValue::from(r.err().and_then(|e| match e {
                rotafetch::FetchError::Auth(a) => Some(a.code().as_str().to_owned()),
                rotafetch::FetchError::Js(_) => None,
            })))
        })
    };
    let queued = |n: f64| async move {
        for _ in 0..250 {
            if waiting().await >= n {
                break;
            }
            sleep(20).await;
        }
        waiting().await
    };
    assert_eq!(queued(1.0).await, 1.0, "the refresh queued for the lock");
    let logout = {
        let c = c.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            c.logout().await;
            Ok(JsValue::UNDEFINED)
        })
    };
    assert_eq!(queued(2.0).await, 2.0, "the logout queued behind it");
    assert!(!c.authenticated(), "signed out before the lock");
    release.call0(&JsValue::NULL).unwrap();
    let code = JsFuture::from(call).await.unwrap();
    JsFuture::from(logout).await.unwrap();
    assert_eq!(code.as_string().as_deref(), Some("not_authenticated"));
    assert!(!c.authenticated(), "still signed out after logout()");
    assert_eq!(metric(ROTATED).await, rot0, "no refresh after logout()");
    assert_eq!(signouts(&events), vec![SignoutReason::Logout]);
    let refreshed = events
        .borrow()
        .iter()
        .any(|e| matches!(e, AuthEvent::Refresh { .. }));
    assert!(!refreshed, "{:?}", events.borrow());
}

// ---- The JS façade, as JS calls it ----

fn js_client(options: &str) -> Result<JsAuthClient, JsValue> {
    JsAuthClient::new(obj(options))
}

#[wasm_bindgen_test]
fn invalid_options_throw_a_typed_auth_error_naming_the_option() {
    let cases = [
        (r#"{}"#, "refreshUrl"),
        (r#"{"refreshUrl": 5}"#, "refreshUrl"),
        (r#"{"refreshUrl": "ftp://x/refresh"}"#, "refreshUrl"),
        (
            r#"{"refreshUrl": "/r", "leewaySeconds": -1}"#,
            "leewaySeconds",
        ),
        (
            r#"{"refreshUrl": "/r", "refreshTimeoutMs": 0}"#,
            "refreshTimeoutMs",
        ),
        (r#"{"refreshUrl": "/r", "storage": "cookie"}"#, "storage"),
        (
            r#"{"refreshUrl": "/r", "refreshFormat": "xml"}"#,
            "refreshFormat",
        ),
        (
            r#"{"refreshUrl": "/r", "allowedOrigins": ["https://x.example/path"]}"#,
            "allowedOrigins",
        ),
        (
            r#"{"refreshUrl": "/r", "allowedOrigins": "https://x.example"}"#,
            "allowedOrigins",
        ),
        (r#"{"refreshUrl": "/r", "crossTab": "yes"}"#, "crossTab"),
        (r#"{"refreshUrl": "/r", "redirect": "manual"}"#, "redirect"),
        (r#"{"refreshUrl": "/r", "refreshURL": "/r"}"#, "refreshURL"),
        (r#"{"refreshUrl": "/r", "storageKey": ""}"#, "storageKey"),
        // Sign-in by redirect's options.
        (
            r#"{"issuer": "http://id.example.com", "clientId": "c", "redirectUri": "/"}"#,
            "issuer",
        ),
        (
            r#"{"issuer": "https://id.example.com?x", "clientId": "c"}"#,
            "issuer",
        ),
        (
            r#"{"issuer": "https://id.example.com", "redirectUri": "/"}"#,
            "clientId",
        ),
        (
            r#"{"issuer": "https://id.example.com", "clientId": "c", "redirectUri": "https://elsewhere.example/cb"}"#,
            "redirectUri",
        ),
        (r#"{"issuer": 7, "clientId": "c"}"#, "issuer"),
        (r#"{"clientId": "c", "redirectUri": "/"}"#, "refreshUrl"),
    ];
    for (opts, name) in cases {
        let err = js_client(opts)
            .err()
            .unwrap_or_else(|| panic!("accepted {opts}"));
        let info = error_info(&err);
        assert_eq!(get(&info, "isError"), JsValue::TRUE, "{opts}");
        assert_eq!(get_str(&info, "name"), "AuthError");
        assert_eq!(get_str(&info, "code"), "invalid_config");
        assert_eq!(get_str(&info, "proto"), "AuthError", "instanceof AuthError");
        assert!(
            get_str(&info, "message").contains(name),
            "{opts}: {}",
            get_str(&info, "message")
        );
    }
    assert!(js_client(
        r#"{"refreshUrl": "/auth/refresh", "allowedOrigins": ["https://api.example.com/"]}"#
    )
    .is_ok());
}

#[wasm_bindgen_test]
async fn js_facade_fetch_events_and_errors() {
    let _serial = serial().await;
    let _ = local_storage().remove_item("t-js");
    let c = js_client(&format!(
        r#"{{"refreshUrl": "{}", "storageKey": "t-js", "leewaySeconds": 10}}"#,
        url("/auth/refresh")
    ))
    .unwrap();
    let refreshes = Rc::new(RefCell::new(Vec::<JsValue>::new()));
    let r2 = refreshes.clone();
    let listener = Closure::<dyn Fn(JsValue)>::new(move |d: JsValue| r2.borrow_mut().push(d));
    let off = c
        .on(
            "refresh".into(),
            listener.as_ref().unchecked_ref::<Function>().clone(),
        )
        .unwrap();
    assert!(c.on("nope".into(), Function::new_no_args("")).is_err());
    let (at, rt) = login_raw().await;
    c.set_tokens(obj(&format!(
        r#"{{"accessToken":"{at}","refreshToken":"{rt}","expiresIn":2}}"#
    )))
    .unwrap();
    assert!(c.authenticated());
    assert!(c.expires_at().is_some());
    JsFuture::from(c.refresh()).await.unwrap();
    let res: web_sys::Response = JsFuture::from(c.fetch(url("/api/me").into(), JsValue::UNDEFINED))
        .await
        .unwrap()
        .unchecked_into();
    assert_eq!(res.status(), 200);
    assert_eq!(refreshes.borrow().len(), 1);
    assert_eq!(get_str(&refreshes.borrow()[0], "source"), "this-tab");
    assert!(get(&refreshes.borrow()[0], "expiresAt").as_f64().is_some());
    off.call0(&JsValue::NULL).unwrap();
    JsFuture::from(c.refresh()).await.unwrap();
    assert_eq!(refreshes.borrow().len(), 1, "off() removed the listener");
    // A network error of fetch itself comes back as fetch's own TypeError.
    let err = JsFuture::from(c.fetch("http://127.0.0.1:9/".into(), JsValue::UNDEFINED))
        .await
        .unwrap_err();
    assert_eq!(get_str(&error_info(&err), "name"), "TypeError");
    // setTokens with junk is a typed error.
    let err = c.set_tokens(obj(r#"{"access_token": 5}"#)).unwrap_err();
    assert_eq!(get_str(&error_info(&err), "code"), "invalid_config");
    drop(listener);
}

#[wasm_bindgen_test]
async fn tokens_never_reach_console_or_error_messages() {
    let _serial = serial().await;
    let stop = capture_console();
    let secret_rt = "SECRET-REFRESH-TOKEN-123";
    let c = AuthClient::new(options("t-secret")).unwrap();
    c.set_tokens(tokens("SECRET-ACCESS-TOKEN-456", secret_rt))
        .unwrap();
    let mut messages = Vec::new();
    if let Err(rotafetch::FetchError::Auth(e)) = fetch(&c, "/api/me", &JsValue::UNDEFINED).await {
        messages.push(format!("{e:?} {e}"));
    }
    let js = js_client(&format!(
        r#"{{"refreshUrl": "{}", "storageKey": "t-secret2"}}"#,
        url("/auth/refresh")
    ))
    .unwrap();
    js.set_tokens(obj(
        r#"{"access_token":"SECRET-ACCESS-TOKEN-456","refresh_token":"SECRET-REFRESH-TOKEN-123"}"#,
    ))
    .unwrap();
    if let Err(e) = JsFuture::from(js.refresh()).await {
        messages.push(get_str(&error_info(&e), "message"));
    }
    let console = stop.call0(&JsValue::NULL).unwrap().as_string().unwrap();
    assert_eq!(messages.len(), 2, "both refreshes were rejected");
    for m in messages.iter().chain([&console]) {
        assert!(!m.contains("SECRET"), "token leaked: {m}");
    }
}

/// In the browser the JWT payload is decoded by `atob` (not the `base64` crate the native
/// tests exercise): URL-safe alphabet, with or without padding, non-ASCII claims text; the
/// standard alphabet and garbage are not read (the token stays an opaque bearer token).
#[wasm_bindgen_test]
async fn jwt_payloads_are_decoded_in_the_browser() {
    let _serial = serial().await;
    let now = (js_sys::Date::now() / 1000.0).floor();
    let to_url = |s: String| s.replace('+', "-").replace('/', "_");
    // Filler chosen so the payload's standard base64 holds both '+' and '/'.
    let filler = (0..64)
        .map(|i| "?>~ü".repeat(i % 4 + 1))
        .find(|f| {
            let p = b64(&format!(
                r#"{{"x":"{f}","iat":{now},"exp":{}}}"#,
                now + 600.0
            ));
            p.contains('+') && p.contains('/')
        })
        .expect("a filler whose base64 holds + and /");
    let payload = format!(
        r#"{{"name":"José ✓","x":"{filler}","iat":{now},"exp":{}}}"#,
        now + 600.0
    );
    let std_b64 = b64(&payload);
    assert!(std_b64.contains('+') || std_b64.contains('/'));
    let cases = [
        (to_url(std_b64.trim_end_matches('=').to_string()), true),
        (to_url(std_b64.clone()), true),
        (std_b64.clone(), false),
        ("!!!".to_string(), false),
        (
            to_url(std_b64.trim_end_matches('=').to_string()) + "===",
            false,
        ),
    ];
    for (i, (segment, readable)) in cases.into_iter().enumerate() {
        let c = AuthClient::new(options("t-jwt")).unwrap();
        c.set_tokens(tokens(&format!("eyJhbGciOiJFZERTQSJ9.{segment}.sig"), "rt"))
            .unwrap();
        match c.expires_at() {
            // 600 s from arrival, whatever the clocks say; wide margin for a slow machine.
            Some(at) => {
                assert!(readable, "case {i}: read a payload it must not");
                let left = at - js_sys::Date::now();
                assert!((590_000.0..=600_500.0).contains(&left), "case {i}: {left}");
            }
            None => assert!(!readable, "case {i}: could not read {segment}"),
        }
        c.logout().await;
    }
}

/// The façade's `fetch` starts the request synchronously and enters a Rust future only after a
/// 401 (or for a refresh before sending). Through the JS API: the replay after a 401, a body
/// replayed, a stream that cannot be, fetch's own failures as they are, other origins untouched.
#[wasm_bindgen_test]
async fn js_facade_fetch_replays_after_a_401_and_passes_failures_through() {
    let _serial = serial().await;
    let c = js_client(&format!(
        r#"{{"refreshUrl": "{}", "storageKey": "t-js401", "minRefreshIntervalMs": 0}}"#,
        url("/auth/refresh")
    ))
    .unwrap();
    let refused = |rt: &str| {
        c.set_tokens(obj(&format!(
            r#"{{"access_token":"not-a-valid-access-token","refresh_token":"{rt}"}}"#
        )))
        .unwrap()
    };
    let call = |input: JsValue, init: JsValue| JsFuture::from(c.fetch(input, init));
    let response = |v: JsValue| v.unchecked_into::<web_sys::Response>();

    // A GET: 401, one refresh, the same request replayed with the new token.
    refused(&login_raw().await.1);
    let rot0 = metric(ROTATED).await;
    let r = response(
        call(url("/api/me").into(), JsValue::UNDEFINED)
            .await
            .unwrap(),
    );
    assert_eq!(r.status(), 200);
    assert_eq!(metric(ROTATED).await - rot0, 1.0);
    // A POST: its body replayed byte for byte.
    refused(&login_raw().await.1);
    let init = obj(r#"{"method":"POST","body":"rotafetch ✓"}"#);
    let r = response(call(url("/api/echo").into(), init).await.unwrap());
    assert_eq!(r.status(), 200);
    assert_eq!(
        get_str(&obj(&text(&r).await), "body_base64"),
        b64("rotafetch ✓")
    );
    // A stream body that would need a replay: a typed AuthError, never an empty body.
    refused(&login_raw().await.1);
    let restore = answer_streams_with_server_401();
    let err = call(url("/api/me?stream=1").into(), stream_init()).await;
    restore.call0(&JsValue::NULL).unwrap();
    assert_eq!(
        get_str(&error_info(&err.unwrap_err()), "code"),
        "body_not_replayable"
    );
    // fetch's own failures come back as they are: an abort...
    let ctl = web_sys::AbortController::new().unwrap();
    ctl.abort();
    let init = Object::new();
    Reflect::set(&init, &"signal".into(), &ctl.signal()).unwrap();
    let err = call(url("/api/me").into(), init.into()).await.unwrap_err();
    assert_eq!(get_str(&error_info(&err), "name"), "AbortError");
    // ...and a URL `new Request` refuses.
    let err = call("http://[bad".into(), JsValue::UNDEFINED)
        .await
        .unwrap_err();
    assert_eq!(get_str(&error_info(&err), "name"), "TypeError");
    // Another origin gets no token: the server's own 401 comes back, and no refresh.
    let rot1 = metric(ROTATED).await;
    let other = server().replace("127.0.0.1", "localhost");
    let r = response(
        call(format!("{other}/api/me").into(), JsValue::UNDEFINED)
            .await
            .unwrap(),
    );
    assert_eq!(r.status(), 401);
    assert_eq!(metric(ROTATED).await, rot1);
}

/// A relative `refreshUrl` resolves as `fetch` would resolve it: against the document's base
/// URL (`<base href>`), here another origin of the server, which the default allow-list then
/// holds (the refresh endpoint's origin).
#[wasm_bindgen_test]
async fn relative_urls_resolve_against_the_document_base_url() {
    let _serial = serial().await;
    let other = server().replace("127.0.0.1", "localhost");
    let remove = set_base(&format!("{other}/auth/"));
    let mut o = Options::new("refresh");
    o.storage_key = "t-base".into();
    let c = AuthClient::new(o);
    remove.call0(&JsValue::NULL).unwrap();
    let c = c.unwrap();
    let (_, rt) = login_raw().await;
    c.set_tokens(tokens("not-a-valid-access-token", &rt))
        .unwrap();
    let rot0 = metric(ROTATED).await;
    // The token goes to the base URL's origin; its 401 is refreshed at `{other}/auth/refresh`.
    let r = c
        .fetch_with(&format!("{other}/api/me").into(), &JsValue::UNDEFINED)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(metric(ROTATED).await - rot0, 1.0);
}
