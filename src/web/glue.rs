//! Small bindings and helpers shared by the browser modules.

use alloc::{boxed::Box, string::String};
use core::future::Future;
use core::pin::Pin;
use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, Request, RequestInit, Response, Url};

#[wasm_bindgen]
extern "C" {
    /// The global `fetch` (window or worker), looked up at call time so a page's own
    /// instrumentation of `fetch` is honoured.
    #[wasm_bindgen(js_name = fetch)]
    pub fn fetch_request(req: &Request) -> Promise;
    #[wasm_bindgen(js_name = fetch)]
    pub fn fetch_url(url: &str, init: &RequestInit) -> Promise;

    type Thenable;
    #[wasm_bindgen(method, js_name = then)]
    fn then_fns(this: &Thenable, on_fulfilled: &JsValue, on_rejected: &JsValue) -> Promise;

    #[wasm_bindgen(js_name = URL)]
    type UrlCtor;
    /// `new URL(url, base)`, the base handed over as the JS value it is.
    #[wasm_bindgen(constructor, catch, js_class = "URL")]
    fn new(url: &str, base: &JsValue) -> Result<UrlCtor, JsValue>;

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

/// `obj[key] = value` on a fresh plain object.
pub fn set(obj: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

/// Milliseconds since the epoch.
pub fn now() -> f64 {
    js_sys::Date::now()
}

/// Resolves `url` the way `fetch(url)` does: against the document's base URL (which a
/// `<base href>` sets), in a worker against its location.
pub fn resolve_url(url: &str) -> Option<Url> {
    let global = js_sys::global();
    let document = get(&global, "document");
    let base = if document.is_object() {
        get(&document, "baseURI")
    } else {
        get(&get(&global, "location"), "href")
    };
    UrlCtor::new(url, &base).ok().map(JsCast::unchecked_into)
}

/// The page's (or worker's) own origin, if it has an http(s) one.
pub fn page_origin() -> Option<String> {
    get(&get(&js_sys::global(), "location"), "origin").as_string()
}

/// `p.then(on_fulfilled, on_rejected)` with plain functions.
#[cfg(feature = "js")]
pub fn then_fns(p: &Promise, on_fulfilled: &JsValue, on_rejected: &JsValue) -> Promise {
    p.unchecked_ref::<Thenable>()
        .then_fns(on_fulfilled, on_rejected)
}

/// A promise and its `resolve` function.
pub fn deferred() -> (Promise, Function) {
    let mut resolve = None;
    let p = Promise::new(&mut |res, _| resolve = Some(res));
    (p, resolve.unwrap_throw())
}

/// `future_to_promise` for every future of the crate, instantiated once (the futures are
/// boxed): each instantiation would cost the `.wasm` its own copy of the executor glue.
pub fn promise(f: impl Future<Output = Result<JsValue, JsValue>> + 'static) -> Promise {
    let boxed: Pin<Box<dyn Future<Output = Result<JsValue, JsValue>>>> = Box::pin(f);
    wasm_bindgen_futures::future_to_promise(boxed)
}

/// Awaits `p` unless `signal` aborts first (`Err(())` then). `p` must not reject.
pub async fn unless_aborted(p: &Promise, signal: Option<&AbortSignal>) -> Result<JsValue, ()> {
    let Some(signal) = signal else {
        return JsFuture::from(p.clone()).await.map_err(|_| ());
    };
    if signal.aborted() {
        return Err(());
    }
    let aborted = Promise::new(&mut |_, reject| {
        let opts = web_sys::AddEventListenerOptions::new();
        opts.set_once(true);
        let _ = signal.add_event_listener_with_callback_and_add_event_listener_options(
            "abort", &reject, &opts,
        );
    });
    JsFuture::from(Promise::race(&Array::of2(p, &aborted)))
        .await
        .map_err(|_| ())
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
    let init = RequestInit::new();
    init.set_method("POST");
    let headers = web_sys::Headers::new().map_err(|_| ())?;
    headers.set("Content-Type", content_type).map_err(|_| ())?;
    headers.set("Accept", "application/json").map_err(|_| ())?;
    init.set_headers(&headers);
    init.set_body(&JsValue::from_str(body));
    init.set_cache(web_sys::RequestCache::NoStore);
    init.set_signal(Some(&AbortSignal::timeout_with_u32(timeout_ms)));
    let resp: Response = JsFuture::from(fetch_url(url, &init))
        .await
        .map_err(|_| ())?
        .unchecked_into();
    let status = resp.status();
    let too_big = resp
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .is_some_and(|l| crate::token::declares_more_than(&l, max));
    if too_big {
        // Do not download it; cancel the body.
        if let Some(b) = resp.body() {
            let _ = b.cancel();
        }
        return Ok((status, None));
    }
    let text = match resp.text() {
        Ok(p) => JsFuture::from(p).await.ok().and_then(|t| t.as_string()),
        Err(_) => None,
    };
    Ok((status, text.filter(|t| t.len() <= max)))
}
