//! The few JSON reads the pure modules need, behind a trait so the same decision code runs on
//! the browser's own `JSON.parse` in wasm (no JSON parser shipped in the `.wasm`) and on
//! `serde_json` natively (where the unit tests and fuzzers run).

use alloc::string::String;

/// A parsed JSON value that can be asked for top-level fields.
pub trait JsonValue: Sized {
    /// Parses JSON text; `None` when it is not JSON.
    fn parse(text: &str) -> Option<Self>;
    /// True for a JSON object (not an array, not null).
    fn is_object(&self) -> bool;
    /// The field, when it is present and a string.
    fn str_field(&self, key: &str) -> Option<String>;
    /// The field, when it is present and a number.
    fn num_field(&self, key: &str) -> Option<f64>;
    /// True when the field is present and not `null`.
    fn has_field(&self, key: &str) -> bool;
}

#[cfg(not(target_arch = "wasm32"))]
impl JsonValue for serde_json::Value {
    fn parse(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
    fn is_object(&self) -> bool {
        self.is_object()
    }
    fn str_field(&self, key: &str) -> Option<String> {
        self.get(key)?.as_str().map(str::to_owned)
    }
    fn num_field(&self, key: &str) -> Option<f64> {
        self.get(key)?.as_f64()
    }
    fn has_field(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| !v.is_null())
    }
}

#[cfg(target_arch = "wasm32")]
impl JsonValue for wasm_bindgen::JsValue {
    fn parse(text: &str) -> Option<Self> {
        js_sys::JSON::parse(text).ok()
    }
    fn is_object(&self) -> bool {
        self.is_object() && !js_sys::Array::is_array(self)
    }
    fn str_field(&self, key: &str) -> Option<String> {
        js_sys::Reflect::get(self, &key.into()).ok()?.as_string()
    }
    fn num_field(&self, key: &str) -> Option<f64> {
        js_sys::Reflect::get(self, &key.into()).ok()?.as_f64()
    }
    fn has_field(&self, key: &str) -> bool {
        js_sys::Reflect::get(self, &key.into()).is_ok_and(|v| !v.is_null() && !v.is_undefined())
    }
}
