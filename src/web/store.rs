//! The persistent home of the session: localStorage, sessionStorage or memory. Storage that
//! throws (disabled, quota, a sandboxed frame) degrades to memory and keeps working.

use alloc::{borrow::ToOwned, string::String};
use core::cell::RefCell;
use wasm_bindgen::JsCast;
use web_sys::Storage;

use super::types::StorageKind;

pub struct Store {
    area: RefCell<Option<Storage>>,
    key: String,
    /// Always mirrors the last value read or written.
    mem: RefCell<Option<String>>,
}

impl Store {
    pub fn new(kind: StorageKind, key: &str) -> Store {
        let name = match kind {
            StorageKind::Local => "localStorage",
            StorageKind::Session => "sessionStorage",
            StorageKind::Memory => "",
        };
        // Reading `window.localStorage` itself throws where storage is disabled.
        let area = if name.is_empty() {
            None
        } else {
            js_sys::Reflect::get(&js_sys::global(), &name.into())
                .ok()
                .and_then(|s| s.dyn_into::<Storage>().ok())
        };
        Store {
            area: RefCell::new(area),
            key: key.to_owned(),
            mem: RefCell::new(None),
        }
    }

    /// Is this the given storage area (for `storage` events)?
    pub fn is_area(&self, other: &Option<Storage>) -> bool {
        match (&*self.area.borrow(), other) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
    }

    pub fn read(&self) -> Option<String> {
        let area = self.area.borrow().clone();
        if let Some(area) = area {
            match area.get_item(&self.key) {
                Ok(v) => {
                    *self.mem.borrow_mut() = v.clone();
                    return v;
                }
                Err(_) => *self.area.borrow_mut() = None,
            }
        }
        self.mem.borrow().clone()
    }

    pub fn write(&self, value: Option<&str>) {
        *self.mem.borrow_mut() = value.map(str::to_owned);
        let area = self.area.borrow().clone();
        if let Some(area) = area {
            let r = match value {
                Some(v) => area.set_item(&self.key, v),
                None => area.remove_item(&self.key),
            };
            if r.is_err() {
                // Quota or disabled: keep the session in memory from now on.
                *self.area.borrow_mut() = None;
            }
        }
    }

    /// True while a Web Storage area (not memory) holds the session.
    pub fn is_persistent(&self) -> bool {
        self.area.borrow().is_some()
    }
}
