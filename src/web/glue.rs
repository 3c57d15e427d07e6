//! Small bindings and helpers shared by the browser modules.

use crate::error::{AuthError, ErrorCode};
use alloc::string::String;
use js_sys::{Array, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

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
    #[wasm_bindgen(js_name = refreshDetail)]
    pub fn refresh_detail(expires_at: Option<f64>, source: &str) -> JsValue;
    /// `{reason, error?}`.
    #[wasm_bindgen(js_name = signoutDetail)]
    pub fn signout_detail(reason: &str, error: &JsValue) -> JsValue;
    /// An `AuthError` (see `js.rs`): an `Error` named "AuthError" with `code`, whose prototype
    /// is `proto` when given.
    #[wasm_bindgen(js_name = authError)]
    fn auth_error(proto: &JsValue, message: &str, code: &str) -> JsValue;
    /// `grant_type=refresh_token&refresh_token=RT[&client_id=ID]`, form-encoded.
    #[wasm_bindgen(js_name = formBody)]
    pub fn form_body(refresh_token: &str, client_id: &JsValue) -> String;
    #[wasm_bindgen(js_name = resolveUrl)]
    fn resolve_url_js(url: &str) -> JsValue;
    /// A client's listeners (see `plumbing.js`).
    pub type Events;
    #[wasm_bindgen(constructor)]
    pub fn new() -> Events;
    /// Adds `f` for events of `kind` (`""`: all, `f(detail, kind)`); returns what removes it.
    #[wasm_bindgen(method)]
    pub fn on(this: &Events, kind: &str, f: &JsValue) -> js_sys::Function;
    #[wasm_bindgen(method)]
    fn emit(this: &Events, kind: &str, detail: &JsValue);
    /// The page's (or worker's) own origin.
    #[wasm_bindgen(js_name = pageOrigin)]
    pub fn page_origin() -> Option<String>;
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

/// `e` as JS sees it: an `AuthError` (the façade's class where it is built, else a plain
/// `Error` named "AuthError"), with its `code`.
pub fn js_error(e: &AuthError) -> JsValue {
    #[cfg(feature = "js")]
    let proto = crate::js::auth_error_proto();
    #[cfg(not(feature = "js"))]
    let proto = JsValue::UNDEFINED;
    auth_error(&proto, e.message(), e.code().as_str())
}

/// The [`AuthError`] a JS value is (see [`js_error`]), if it is one.
pub fn auth_error_of(v: &JsValue) -> Option<AuthError> {
    if get(v, "name").as_string().as_deref() != Some("AuthError") {
        return None;
    }
    let code = get(v, "code").as_string()?;
    let code = ErrorCode::ALL.into_iter().find(|c| c.as_str() == code)?;
    Some(AuthError::new(
        code,
        get(v, "message").as_string().unwrap_or_default(),
    ))
}

impl Events {
    /// Tells the listeners.
    pub fn send(&self, e: &crate::web::AuthEvent) {
        use crate::web::AuthEvent;
        match e {
            AuthEvent::Refresh { expires_at, source } => {
                self.emit("refresh", &refresh_detail(*expires_at, source.as_str()))
            }
            AuthEvent::Signout { reason, error } => {
                let error = error
                    .as_deref()
                    .map_or(JsValue::UNDEFINED, JsValue::from_str);
                self.emit("signout", &signout_detail(reason.as_str(), &error))
            }
        }
    }
}
