//! IndexedDB, the store that is consistent between tabs at lock hand-over (localStorage and
//! BroadcastChannel are not: measured, see the README). One database, one object store, a
//! string value per key. Also the lease lock used where the Web Locks API is missing.

use super::glue::{self, now};
use alloc::rc::Rc;
use alloc::{borrow::ToOwned, string::String};
use core::cell::Cell;
use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbDatabase, IdbFactory, IdbObjectStore, IdbRequest, IdbTransactionMode};

const DB_NAME: &str = "rotafetch";
const STORE: &str = "kv";

fn request_promise(req: &IdbRequest) -> Promise {
    Promise::new(&mut |resolve, reject| {
        req.set_onsuccess(Some(&resolve));
        req.set_onerror(Some(&reject));
    })
}

/// Opens (creating if needed) the database; `None` where IndexedDB is unavailable.
pub async fn open() -> Option<IdbDatabase> {
    let factory: IdbFactory = glue::get(&js_sys::global(), "indexedDB").dyn_into().ok()?;
    let req = factory.open_with_u32(DB_NAME, 1).ok()?;
    let upgrade_req = req.clone();
    let on_upgrade = Closure::once_into_js(move || {
        if let Ok(db) = upgrade_req.result() {
            let db: IdbDatabase = db.unchecked_into();
            let _ = db.create_object_store(STORE);
        }
    });
    req.set_onupgradeneeded(Some(on_upgrade.unchecked_ref()));
    // The promise resolves with the success event; the database is the request's result.
    JsFuture::from(request_promise(&req)).await.ok()?;
    Some(req.result().ok()?.unchecked_into())
}

fn store(
    db: &IdbDatabase,
    mode: IdbTransactionMode,
) -> Option<(web_sys::IdbTransaction, IdbObjectStore)> {
    let tx = db.transaction_with_str_and_mode(STORE, mode).ok()?;
    let s = tx.object_store(STORE).ok()?;
    Some((tx, s))
}

fn tx_done(tx: &web_sys::IdbTransaction) -> Promise {
    Promise::new(&mut |resolve, reject| {
        tx.set_oncomplete(Some(&resolve));
        tx.set_onerror(Some(&reject));
        tx.set_onabort(Some(&reject));
    })
}

/// Reads `key`: `Ok(None)` when absent, `Err` when the read failed.
pub async fn get(db: &IdbDatabase, key: &str) -> Result<Option<String>, ()> {
    let (_tx, s) = store(db, IdbTransactionMode::Readonly).ok_or(())?;
    let req = s.get(&key.into()).map_err(|_| ())?;
    let v = JsFuture::from(request_promise(&req))
        .await
        .map_err(|_| ())?;
    let v = req.result().unwrap_or(v);
    Ok(v.as_string())
}

/// Writes (or deletes, with `None`) `key` and waits until the transaction has committed.
pub async fn put(db: &IdbDatabase, key: &str, value: Option<&str>) -> Result<(), ()> {
    let (tx, s) = store(db, IdbTransactionMode::Readwrite).ok_or(())?;
    let done = tx_done(&tx);
    let r = match value {
        Some(v) => s.put_with_key(&v.into(), &key.into()).map(drop),
        None => s.delete(&key.into()).map(drop),
    };
    r.map_err(|_| ())?;
    JsFuture::from(done).await.map(drop).map_err(|_| ())
}

/// A lease on `name`, taken with a compare-and-set in one readwrite transaction (IndexedDB
/// serialises readwrite transactions on a store across the whole origin). The fallback
/// where `navigator.locks` does not exist.
pub struct Lease {
    db: IdbDatabase,
    key: String,
    owner: f64,
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Release: delete the lease if it is still ours (it expires by itself anyway).
        let Some((_tx, s)) = store(&self.db, IdbTransactionMode::Readwrite) else {
            return;
        };
        let Ok(req) = s.get(&self.key.as_str().into()) else {
            return;
        };
        let owner = self.owner;
        let key = self.key.clone();
        let req2 = req.clone();
        let on_get = Closure::once_into_js(move || {
            let held = req2.result().ok().and_then(|v| glue::get(&v, "o").as_f64());
            if held == Some(owner) {
                let _ = s.delete(&key.as_str().into());
            }
        });
        req.set_onsuccess(Some(on_get.unchecked_ref()));
    }
}

/// Tries once to take the lease; `Ok(true)` when taken.
async fn try_take(db: &IdbDatabase, key: &str, owner: f64, ttl_ms: f64) -> Result<bool, ()> {
    let (tx, s) = store(db, IdbTransactionMode::Readwrite).ok_or(())?;
    let done = tx_done(&tx);
    let req = s.get(&key.into()).map_err(|_| ())?;
    let taken = Rc::new(Cell::new(false));
    let taken2 = taken.clone();
    let req2 = req.clone();
    let key2 = key.to_owned();
    // Decide and write inside the success callback, while the transaction is still active.
    let on_get = Closure::once_into_js(move || {
        // The lease is {o: owner, u: until (ms)}; free when absent or expired.
        let until = req2.result().ok().and_then(|v| glue::get(&v, "u").as_f64());
        if until.map_or(true, |u| u < now()) {
            let v = js_sys::Object::new();
            glue::set(&v, "o", &owner.into());
            glue::set(&v, "u", &(now() + ttl_ms).into());
            if s.put_with_key(&v, &key2.as_str().into()).is_ok() {
                taken2.set(true);
            }
        }
    });
    req.set_onsuccess(Some(on_get.unchecked_ref()));
    JsFuture::from(done).await.map_err(|_| ())?;
    Ok(taken.get())
}

fn sleep(ms: i32) -> Promise {
    Promise::new(&mut |resolve, _| {
        let set_timeout: Function = glue::get(&js_sys::global(), "setTimeout").unchecked_into();
        let _ = set_timeout.call2(&JsValue::NULL, &resolve, &JsValue::from(ms));
    })
}

/// Waits (polling with backoff, only while a request waits: no background timer) for the
/// lease, at most `timeout_ms`.
pub async fn lease(db: &IdbDatabase, name: &str, timeout_ms: u32) -> Result<Lease, ()> {
    let mut key = String::from("lock:");
    key.push_str(name);
    let owner = js_sys::Math::random();
    let deadline = now() + f64::from(timeout_ms);
    let mut delay = 10;
    loop {
        // The lease outlives a crashed holder by at most one refresh timeout.
        if try_take(db, &key, owner, f64::from(timeout_ms)).await? {
            return Ok(Lease {
                db: db.clone(),
                key,
                owner,
            });
        }
        if now() >= deadline {
            return Err(());
        }
        let _ = JsFuture::from(sleep(delay)).await;
        delay = (delay * 2).min(100);
    }
}
