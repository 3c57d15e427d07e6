//! Small bindings and helpers shared by the browser modules.

use alloc::{boxed::Box, string::String};
use core::future::Future;
use core::pin::Pin;
use js_sys::{Array, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, Request};

#[wasm_bindgen(module = "/js/plumbing.js")]
extern "C" {
    /// The options object read and type-checked: an array of the values, or an error message.
    #[cfg(feature = "js")]
    #[wasm_bindgen(js_name = readOptions)]
    pub fn read_options(options: &JsValue) -> JsValue;
    /// The persisted record's JSON.
    #[wasm_bindgen(js_name = storedJson)]
    pub fn stored_json(
        v: f64,
        rt: &str,
        at: &str,
        exp: Option<f64>,
        rat: Option<f64>,
        rfa: Option<f64>,
    ) -> String;
    /// `{expiresAt, source}`.
    #[cfg(feature = "js")]
    #[wasm_bindgen(js_name = refreshDetail)]
    pub fn refresh_detail(expires_at: Option<f64>, source: &str) -> JsValue;
    /// `{reason, error?}`.
    #[cfg(feature = "js")]
    #[wasm_bindgen(js_name = signoutDetail)]
    pub fn signout_detail(reason: &str, error: &JsValue) -> JsValue;
    #[wasm_bindgen(js_name = unlessAborted)]
    fn unless_aborted_js(p: &Promise, signal: &JsValue) -> Promise;
    #[wasm_bindgen(js_name = post)]
    fn post_js(url: &str, content_type: &str, body: &str, timeout_ms: u32) -> Promise;
    #[wasm_bindgen(js_name = bodyText)]
    fn body_text(response: &JsValue, skip: bool) -> Promise;
    /// `request` with `Authorization: Bearer <access>`; with `strict`, a copy made
    /// `redirect: "error"` first.
    #[wasm_bindgen(catch)]
    pub fn authorize(request: &Request, access: &str, strict: bool) -> Result<Request, JsValue>;
    /// An `AuthError` (see `js.rs`).
    #[cfg(feature = "js")]
    #[wasm_bindgen(js_name = authError)]
    pub fn auth_error(proto: &JsValue, message: &str, code: &str) -> JsValue;
    /// `grant_type=refresh_token&refresh_token=RT[&client_id=ID]`, form-encoded.
    #[wasm_bindgen(js_name = formBody)]
    pub fn form_body(refresh_token: &str, client_id: &JsValue) -> String;
    /// `sent.then(f, e => { f(); throw e })`: `f` runs exactly once.
    #[cfg(feature = "js")]
    pub fn settle(sent: &Promise, f: &JsValue) -> Promise;
    #[wasm_bindgen(js_name = resolveUrl)]
    fn resolve_url_js(url: &str) -> JsValue;
    /// The page's (or worker's) own origin.
    #[wasm_bindgen(js_name = pageOrigin)]
    pub fn page_origin() -> Option<String>;
}

#[wasm_bindgen]
extern "C" {
    /// The global `fetch` (window or worker), looked up at call time so a page's own
    /// instrumentation of `fetch` is honoured.
    #[wasm_bindgen(js_name = fetch)]
    pub fn fetch_request(req: &Request) -> Promise;

    #[wasm_bindgen(js_name = Request)]
    type RequestCtor;
    #[wasm_bindgen(constructor, catch, js_class = "Request")]
    fn new(input: &JsValue, init: &JsValue) -> Result<RequestCtor, JsValue>;
}

/// `new Request(input, init)`: exactly what `fetch(input, init)` would send.
pub fn make_request(input: &JsValue, init: &JsValue) -> Result<Request, JsValue> {
    RequestCtor::new(input, init).map(|r| r.unchecked_into())
}

/// `init.body`: `None` when there is none, `Some(true)` for a `ReadableStream` (a body that
/// cannot be sent twice), `Some(false)` for any other.
pub fn init_body(init: &JsValue) -> Option<bool> {
    if !init.is_object() {
        return None;
    }
    let body = get(init, "body");
    // A ReadableStream is the only body type with a reader.
    (!body.is_undefined() && !body.is_null())
        .then(|| body.is_object() && get(&body, "getReader").is_function())
}

/// May `request` hold a body? Feature-detected: where the engine has `Request.body`, it says;
/// where it has not (Firefox), any method but GET and HEAD may carry one.
pub fn may_have_body(request: &Request) -> bool {
    if Reflect::has(request, &JsValue::from_str("body")).unwrap_or(false) {
        return request.body().is_some();
    }
    !matches!(request.method().as_str(), "GET" | "HEAD")
}

/// `obj[key]`, `undefined` when that throws.
pub fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// Milliseconds since the epoch.
pub fn now() -> f64 {
    js_sys::Date::now()
}

/// Resolves `url` the way `fetch(url)` does: against the document's base URL (which a
/// `<base href>` sets), in a worker against its location. `[href, protocol, origin]`.
pub fn resolve_url(url: &str) -> Option<[String; 3]> {
    let parts = resolve_url_js(url);
    if !Array::is_array(&parts) {
        return None;
    }
    let parts: Array = parts.unchecked_into();
    let part = |i| parts.get(i).as_string().unwrap_or_default();
    Some([part(0), part(1), part(2)])
}

/// `future_to_promise` for every future of the crate, instantiated once (the futures are
/// boxed): each instantiation would cost the `.wasm` its own copy of the executor glue.
pub fn promise(f: impl Future<Output = Result<JsValue, JsValue>> + 'static) -> Promise {
    let boxed: Pin<Box<dyn Future<Output = Result<JsValue, JsValue>>>> = Box::pin(f);
    wasm_bindgen_futures::future_to_promise(boxed)
}

/// Awaits `p` unless `signal` aborts first (`Err(())` then). `p` must not reject.
pub async fn unless_aborted(p: &Promise, signal: Option<&AbortSignal>) -> Result<JsValue, ()> {
    let none = JsValue::UNDEFINED;
    let signal = signal.map_or(&none, AsRef::as_ref);
    JsFuture::from(unless_aborted_js(p, signal))
        .await
        .map_err(drop)
}

/// A POST with a body and a timeout; the status and the body text (`None` when it could not
/// be read or is larger than `max`), or `Err` on a network error or timeout.
pub async fn post(
    url: &str,
    content_type: &str,
    body: &str,
    timeout_ms: u32,
    max: usize,
) -> Result<(u16, Option<String>), ()> {
    let answer: Array = JsFuture::from(post_js(url, content_type, body, timeout_ms))
        .await
        .map_err(drop)?
        .unchecked_into();
    let status = answer.get(0).as_f64().unwrap_or(0.0) as u16;
    // A declared length over `max`: not downloaded (the body is cancelled).
    let too_big = answer
        .get(1)
        .as_string()
        .is_some_and(|l| crate::token::declares_more_than(&l, max));
    let text = JsFuture::from(body_text(&answer.get(2), too_big))
        .await
        .ok()
        .and_then(|t| t.as_string());
    Ok((status, text.filter(|t| t.len() <= max)))
}
