//! Helpers shared by the browser test binaries (`browser.rs`, `faults.rs`): the reference
//! server's address, raw HTTP to it, its metrics and fault queue, clients with a fresh storage
//! key, event recording, and the lock that runs tests one at a time.
#![allow(dead_code)]

use js_sys::{Function, Promise, Reflect};
use rotafetch::{AuthClient, AuthEvent, Options, SignoutReason};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen(inline_js = r#"
export async function raw(method, url, body, contentType, auth) {
  const headers = {};
  if (contentType) headers["Content-Type"] = contentType;
  if (auth) headers["Authorization"] = "Bearer " + auth;
  const r = await fetch(url, { method, headers, body: body ?? undefined });
  return { status: r.status, text: await r.text(), wwwAuthenticate: r.headers.get("www-authenticate") };
}
export function sleep(ms) { return new Promise(r => setTimeout(r, ms)); }
export function obj(json) { return JSON.parse(json); }
"#)]
extern "C" {
    /// A plain `fetch` (no rotafetch): `{status, text, wwwAuthenticate}`.
    #[wasm_bindgen(catch)]
    pub async fn raw(
        method: &str,
        url: &str,
        body: JsValue,
        content_type: Option<&str>,
        auth: Option<&str>,
    ) -> Result<JsValue, JsValue>;
    pub async fn sleep(ms: u32);
    pub fn obj(json: &str) -> JsValue;
}

thread_local! {
    /// The tail of the queue of tests waiting for the server (see `serial`).
    static QUEUE: RefCell<Promise> = RefCell::new(Promise::resolve(&JsValue::UNDEFINED));
    /// The release of the test that holds the queue now.
    static HOLDER: RefCell<Option<Function>> = const { RefCell::new(None) };
}

/// Releases the next test when dropped.
pub struct Serial(Function);

impl Drop for Serial {
    fn drop(&mut self) {
        HOLDER.with(|h| h.borrow_mut().take());
        let _ = self.0.call0(&JsValue::NULL);
    }
}

/// wasm-bindgen-test runs async tests concurrently; the tests share one server (its metrics
/// and its fault queue), so each waits for the previous one to finish.
///
/// A failing test panics, and on wasm32 a panic aborts instead of unwinding: its `Serial` is
/// never dropped. A panic hook releases the holder instead, so one failure fails one test and
/// the rest of the binary still runs.
pub async fn serial() -> Serial {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            if let Some(release) = HOLDER.with(|h| h.borrow_mut().take()) {
                let _ = release.call0(&JsValue::NULL);
            }
        }));
    });
    let mut release = None;
    let mine = Promise::new(&mut |resolve, _| release = Some(resolve));
    let previous = QUEUE.with(|q| q.replace(mine));
    let _ = JsFuture::from(previous).await;
    let release = release.unwrap();
    HOLDER.with(|h| *h.borrow_mut() = Some(release.clone()));
    Serial(release)
}

/// `GET /api/me` through `c` at another origin of the same server (localhost vs 127.0.0.1,
/// not in the default allow-list): its status and `WWW-Authenticate` challenge.
pub async fn me_at_another_origin(c: &AuthClient) -> (u16, String) {
    let other = server().replace("127.0.0.1", "localhost");
    let r = c
        .fetch_with(&format!("{other}/api/me").into(), &JsValue::UNDEFINED)
        .await
        .unwrap();
    let challenge = r.headers().get("www-authenticate").unwrap();
    (r.status(), challenge.unwrap_or_default())
}

pub fn server() -> &'static str {
    // Not `env!`: clippy and `cargo doc` build these files without a server.
    match option_env!("ROTAFETCH_SERVER") {
        Some(url) => url,
        None => {
            panic!("ROTAFETCH_SERVER is not set: run the browser tests with `make test-browser`")
        }
    }
}

pub fn url(path: &str) -> String {
    let mut u = server().to_string();
    u.push_str(path);
    u
}

pub fn get(v: &JsValue, k: &str) -> JsValue {
    Reflect::get(v, &k.into()).unwrap()
}

pub fn get_str(v: &JsValue, k: &str) -> String {
    get(v, k).as_string().unwrap_or_default()
}

pub fn status(v: &JsValue) -> u16 {
    get(v, "status").as_f64().unwrap() as u16
}

pub async fn post_json(path: &str, body: &str) -> JsValue {
    raw(
        "POST",
        &url(path),
        body.into(),
        Some("application/json"),
        None,
    )
    .await
    .unwrap()
}

/// A fresh session straight from the server: (access, refresh).
pub async fn login_raw() -> (String, String) {
    let r = post_json("/auth/login", r#"{"username":"demo","password":"demo"}"#).await;
    assert_eq!(status(&r), 200, "login: {}", get_str(&r, "text"));
    let t = obj(&get_str(&r, "text"));
    (get_str(&t, "access_token"), get_str(&t, "refresh_token"))
}

/// One series of the server's /metrics, e.g. `rotafetch_refresh_total{outcome="rotated"}`.
pub async fn metric(series: &str) -> f64 {
    let r = raw("GET", &url("/metrics"), JsValue::UNDEFINED, None, None)
        .await
        .unwrap();
    for line in get_str(&r, "text").lines() {
        if let Some(rest) = line.strip_prefix(series) {
            if let Ok(n) = rest.trim().parse() {
                return n;
            }
        }
    }
    0.0
}

pub const ROTATED: &str = r#"rotafetch_refresh_total{outcome="rotated"}"#;
pub const GRACE: &str = r#"rotafetch_refresh_total{outcome="grace"}"#;
pub const REUSED: &str = r#"rotafetch_refresh_total{outcome="reused"}"#;
pub const REVOKED: &str = "rotafetch_families_revoked_total";
pub const API_401: &str = r#"rotafetch_api_requests_total{status="401"}"#;
pub const API_200: &str = r#"rotafetch_api_requests_total{status="200"}"#;

pub async fn faults(json: &str) {
    let r = post_json("/test/faults", json).await;
    assert!(status(&r) < 300, "faults: {}", get_str(&r, "text"));
}

pub async fn clear_faults() {
    raw(
        "DELETE",
        &url("/test/faults"),
        JsValue::UNDEFINED,
        None,
        None,
    )
    .await
    .unwrap();
}

pub fn local_storage() -> web_sys::Storage {
    web_sys::window().unwrap().local_storage().unwrap().unwrap()
}

/// A client with options `o` holding a fresh session (demo/demo); returns its refresh token.
pub async fn signed_in_with(o: Options) -> (AuthClient, String) {
    let c = AuthClient::new(o).unwrap();
    let (at, rt) = login_raw().await;
    c.set_tokens(tokens(&at, &rt)).unwrap();
    (c, rt)
}

/// [`signed_in_with`] the test options for storage key `key`.
pub async fn signed_in(key: &str) -> (AuthClient, String) {
    signed_in_with(options(key)).await
}

pub fn options(key: &str) -> Options {
    let _ = local_storage().remove_item(key);
    let mut o = Options::new(url("/auth/refresh"));
    o.storage_key = key.into();
    o.logout_url = Some(url("/auth/logout"));
    o
}

pub type Events = Rc<RefCell<Vec<AuthEvent>>>;

pub fn record(c: &AuthClient) -> Events {
    let events: Events = Rc::default();
    let e = events.clone();
    c.on(move |ev| e.borrow_mut().push(ev.clone()));
    events
}

pub fn signouts(e: &Events) -> Vec<SignoutReason> {
    e.borrow()
        .iter()
        .filter_map(|ev| match ev {
            AuthEvent::Signout { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

pub fn tokens(access: &str, refresh: &str) -> rotafetch::token::TokenResponse {
    rotafetch::token::TokenResponse {
        access_token: access.into(),
        refresh_token: Some(refresh.into()),
        expires_in: None,
        token_type: None,
        id_token: None,
    }
}

pub fn stored(key: &str) -> Option<String> {
    local_storage().get_item(key).unwrap()
}
