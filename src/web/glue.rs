//! Small bindings and helpers shared by the browser modules.

use crate::error::{AuthError, ErrorCode};
use alloc::string::String;
use js_sys::Reflect;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/js/plumbing.js")]
extern "C" {
    /// The options read, checked and normalised: the client's parts (`Parts`), or the
    /// message of the `invalid_config` error naming the first bad option. `dpop`: the DPoP
    /// functions, in builds with DPoP.
    #[wasm_bindgen(js_name = readOptions)]
    pub fn read_options(options: &JsValue, dpop: &JsValue) -> JsValue;
    /// The persisted record's JSON (a time unknown: NaN, written as `null`).
    #[wasm_bindgen(js_name = storedJson)]
    pub fn stored_json(
        v: f64,
        rt: &str,
        at: &str,
        exp: f64,
        rat: f64,
        rfa: f64,
        it: Option<&str>,
        sat: f64,
    ) -> String;
    /// The package's `AuthError` (plumbing.js) of the code numbered `code` (`ErrorCode`), with
    /// `message` and the server's or provider's OAuth `error`.
    #[wasm_bindgen(js_name = authError)]
    fn auth_error(code: u8, message: &str, error: Option<&str>) -> JsValue;
    /// `grant_type=refresh_token&refresh_token=RT[&client_id=ID]`, form-encoded.
    #[wasm_bindgen(js_name = formBody)]
    pub fn form_body(refresh_token: &str, client_id: &JsValue) -> String;
    /// A client's listeners (see `plumbing.js`).
    pub type Events;
    /// Adds `f` for events of `kind` (`""`: all, `f(detail, kind)`); returns what removes it.
    #[wasm_bindgen(method)]
    pub fn on(this: &Events, kind: &str, f: &JsValue) -> js_sys::Function;
    /// Tells the listeners of `kind`: `refresh` (`a` the expiry, NaN unknown; `b` the
    /// source) or `signout` (`a` the reason; `b` the server's error code, if any).
    #[wasm_bindgen(method)]
    fn emit(this: &Events, kind: &str, a: &JsValue, b: &JsValue);
}

/// `obj[key]`, `undefined` when that throws.
pub fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// Milliseconds since the epoch.
pub fn now() -> f64 {
    js_sys::Date::now()
}

/// `e` as JS sees it: an `AuthError` (an `Error`) with its `code`.
pub fn js_error(e: &AuthError) -> JsValue {
    auth_error(e.code() as u8, e.message(), e.error())
}

/// The [`AuthError`] a JS value is (see [`js_error`]), if it is one.
pub fn auth_error_of(v: &JsValue) -> Option<AuthError> {
    if get(v, "name").as_string().as_deref() != Some("AuthError") {
        return None;
    }
    let code = get(v, "code").as_string()?;
    let code = ErrorCode::ALL.into_iter().find(|c| c.as_str() == code)?;
    let e = AuthError::new(code, get(v, "message").as_string().unwrap_or_default());
    Some(e.with_error(get(v, "error").as_string()))
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
            AuthEvent::Signin { expires_at, source } => self.emit(
                "signin",
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
