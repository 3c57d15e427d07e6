//! The persistent home of the session: localStorage, sessionStorage or memory. Storage that
//! throws (disabled, quota, a sandboxed frame) degrades to memory and keeps working. The
//! bookkeeping of that is `plumbing.js`'s `Store` (plain Web Storage calls).

use alloc::string::String;
use js_sys::Function;
use wasm_bindgen::prelude::*;

use super::types::StorageKind;

#[wasm_bindgen(module = "/js/plumbing.js")]
extern "C" {
    pub type Store;
    #[wasm_bindgen(constructor)]
    fn new(name: &str, key: &str) -> Store;
    #[wasm_bindgen(method, js_name = read)]
    fn read_js(this: &Store) -> Option<String>;
    #[wasm_bindgen(method, js_name = write)]
    fn write_js(this: &Store, value: &JsValue);
    /// True while a Web Storage area (not memory) holds the session.
    #[wasm_bindgen(method, getter, js_name = persistent)]
    pub fn is_persistent(this: &Store) -> bool;
    /// Calls `f` with the new value (or `null`) at every `storage` event of this key in this
    /// area (another tab's write or clear); returns the function that stops it.
    #[wasm_bindgen(method)]
    pub fn listen(this: &Store, f: &JsValue) -> Function;
}

impl Store {
    pub fn open(kind: StorageKind, key: &str) -> Store {
        let name = match kind {
            StorageKind::Local => "localStorage",
            StorageKind::Session => "sessionStorage",
            StorageKind::Memory => "",
        };
        Store::new(name, key)
    }

    pub fn read(&self) -> Option<String> {
        self.read_js()
    }

    pub fn write(&self, value: Option<&str>) {
        self.write_js(&value.map_or(JsValue::UNDEFINED, JsValue::from_str));
    }
}
