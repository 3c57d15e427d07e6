//! One refresh per browser: the Web Locks API (`navigator.locks.request`) with a bounded
//! wait, or, where it is missing, an IndexedDB lease (both in `plumbing.js`: the lock's
//! callback and the lease's transactions are plumbing).

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen(module = "/js/plumbing.js")]
extern "C" {
    #[wasm_bindgen(js_name = lock)]
    fn lock_js(name: &str, timeout_ms: u32, db: &JsValue) -> Promise;
}

/// Held until dropped: a Web Lock, the IndexedDB lease, or nothing where neither exists (one
/// tab only).
pub struct Guard(Function);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.call0(&JsValue::NULL);
    }
}

/// Takes the browser-wide lock `name`, waiting at most `timeout_ms`.
pub async fn acquire(name: &str, timeout_ms: u32, db: Option<&JsValue>) -> Result<Guard, ()> {
    let release = JsFuture::from(lock_js(name, timeout_ms, db.unwrap_or(&JsValue::UNDEFINED)))
        .await
        .map_err(drop)?;
    if release.is_function() {
        Ok(Guard(release.unchecked_into()))
    } else {
        // Not granted in time.
        Err(())
    }
}
