//! IndexedDB, the store that is consistent between tabs at lock hand-over (localStorage and
//! BroadcastChannel are not: measured, see the README). One database, one object store, a
//! string value per key. The requests themselves are `plumbing.js`'s (promises instead of
//! web-sys callbacks); the lease that stands in for Web Locks is there too (see `lock`).

use alloc::string::String;
use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen(module = "/js/plumbing.js")]
extern "C" {
    #[wasm_bindgen(js_name = idbOpen)]
    fn idb_open() -> Promise;
    #[wasm_bindgen(js_name = idbGet)]
    fn idb_get(db: &JsValue, key: &str) -> Promise;
    #[wasm_bindgen(js_name = idbPut)]
    fn idb_put(db: &JsValue, key: &str, value: &JsValue) -> Promise;
}

/// Opens (creating if needed) the database; `None` where IndexedDB is unavailable.
pub async fn open() -> Option<JsValue> {
    let db = JsFuture::from(idb_open()).await.ok()?;
    (!db.is_null()).then_some(db)
}

/// Reads `key`: `Ok(None)` when absent, `Err` when the read failed.
pub async fn get(db: &JsValue, key: &str) -> Result<Option<String>, ()> {
    JsFuture::from(idb_get(db, key))
        .await
        .map(|v| v.as_string())
        .map_err(drop)
}

/// Writes (or deletes, with `None`) `key` and waits until the transaction has committed.
pub async fn put(db: &JsValue, key: &str, value: Option<&str>) -> Result<(), ()> {
    let value = value.map_or(JsValue::UNDEFINED, JsValue::from_str);
    JsFuture::from(idb_put(db, key, &value))
        .await
        .map(drop)
        .map_err(drop)
}
