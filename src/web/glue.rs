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
    /// The persisted record's JSON (a time unknown: NaN, written as `null`).
    #[wasm_bindgen(js_name = storedJson)]
    pub fn stored_json(v: f64, rt: &str, at: &str, exp: f64, rat: f64, rfa: f64) -> String;
    /// `new AuthError(message, code)`: the package's `AuthError` class (plumbing.js).
    #[wasm_bindgen(js_name = AuthError)]
    type AuthErrorClass;
    #[wasm_bindgen(constructor, js_class = AuthError)]
    fn new(message: &str, code: &str) -> AuthErrorClass;
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
    /// Tells the listeners of `kind`: `refresh` (`a` the expiry, NaN unknown; `b` the
    /// source) or `signout` (`a` the reason; `b` the server's error code, if any).
    #[wasm_bindgen(method)]
    fn emit(this: &Events, kind: &str, a: &JsValue, b: &JsValue);
    /// Can this page keep a DPoP key: IndexedDB and `crypto.subtle` (a secure context)?
    #[wasm_bindgen(js_name = dpopCapable)]
    pub fn dpop_capable() -> bool;
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

/// `e` as JS sees it: an `AuthError` (an `Error`) with its `code`.
pub fn js_error(e: &AuthError) -> JsValue {
    AuthErrorClass::new(e.message(), e.code().as_str()).into()
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
    pub fn send(&self, e: &crate::event::AuthEvent) {
        use crate::event::AuthEvent;
        match e {
            AuthEvent::Refresh { expires_at, source } => self.emit(
                "refresh",
                &expires_at.unwrap_or(f64::NAN).into(),
                &source.as_str().into(),
            ),
            AuthEvent::Signout { reason, error } => {
                let error = error
                    .as_deref()
                    .map_or(JsValue::UNDEFINED, JsValue::from_str);
                self.emit("signout", &reason.as_str().into(), &error)
            }
        }
    }
}
