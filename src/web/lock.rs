//! One refresh per browser: the Web Locks API (`navigator.locks.request`) with a bounded
//! wait, or, where it is missing, an IndexedDB lease.

use super::glue::{self, deferred};
use super::idb;
use js_sys::{Array, Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, IdbDatabase};

#[wasm_bindgen]
extern "C" {
    /// `navigator.locks` (bound here: web-sys marks the Web Locks API unstable).
    type LockManager;
    #[wasm_bindgen(method, js_name = request)]
    fn request(this: &LockManager, name: &str, options: &JsValue, callback: &JsValue) -> Promise;
}

/// Held until dropped.
pub enum Guard {
    /// A Web Lock: released by resolving the promise its callback returned.
    WebLock(Function),
    /// The IndexedDB lease fallback.
    Lease(#[allow(dead_code)] idb::Lease),
    /// Neither is available (no Web Locks, no IndexedDB): per-tab only.
    None,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Guard::WebLock(release) = self {
            let _ = release.call0(&JsValue::NULL);
        }
    }
}

fn lock_manager() -> Option<LockManager> {
    let nav = glue::get(&js_sys::global(), "navigator");
    let locks = glue::get(&nav, "locks");
    locks.is_object().then(|| locks.unchecked_into())
}

/// Takes the browser-wide lock `name`, waiting at most `timeout_ms`.
pub async fn acquire(name: &str, timeout_ms: u32, db: Option<&IdbDatabase>) -> Result<Guard, ()> {
    let Some(locks) = lock_manager() else {
        return match db {
            Some(db) => idb::lease(db, name, timeout_ms).await.map(Guard::Lease),
            None => Ok(Guard::None),
        };
    };
    let (granted, grant) = deferred();
    let (held, release) = deferred();
    let callback = Closure::once_into_js(move |_lock: JsValue| -> JsValue {
        let _ = grant.call0(&JsValue::NULL);
        held.into()
    });
    let opts = js_sys::Object::new();
    glue::set(&opts, "signal", &AbortSignal::timeout_with_u32(timeout_ms));
    // Settles only after release, or rejects when the wait times out.
    let request = locks.request(name, &opts, &callback);
    let guard = Guard::WebLock(release);
    match JsFuture::from(Promise::race(&Array::of2(&granted, &request))).await {
        Ok(_) => Ok(guard),
        Err(_) => {
            // Not granted in time; dropping the guard resolves a promise nobody holds.
            Err(())
        }
    }
}
