//! The client's configuration. js/plumbing.js's `readOptions` reads, checks and normalises the
//! options (the browser's URL parser resolves the URLs as `fetch` does; the defaults fill in
//! what is absent) into the client's parts (`Parts` there); what the core decides with is read
//! from them here. (As Rust, those checks and that plumbing cost the .wasm 3.6 KB gzip, as JS
//! the snippet 0.6 KB: README, Size.)

use super::glue::Events;
use super::store::Store;
use super::types::RefreshFormat;
use crate::policy::AllowList;
use crate::session::Settings;
use alloc::string::String;
use js_sys::Array;
use wasm_bindgen::JsCast;

/// How the core writes a refresh request (the rest of what it decides with is the session's
/// `Settings`).
pub(super) struct Config {
    pub(super) format: RefreshFormat,
    pub(super) client_id: Option<String>,
}

/// Where each part is in `Parts` (js/plumbing.js; the driver's own parts follow these).
pub(super) mod part {
    /// The core (put there by `web::client::wire`).
    pub const CORE: u32 = 0;
    pub const FORMAT: u32 = 1;
    pub const CLIENT_ID: u32 = 2;
    pub const ORIGINS: u32 = 3;
    pub const LEEWAY_MS: u32 = 4;
    pub const MIN_INTERVAL_MS: u32 = 5;
    pub const STRICT: u32 = 6;
    pub const DPOP: u32 = 7;
    pub const STORE: u32 = 8;
    pub const EVENTS: u32 = 9;
}

/// What the core decides with, read from the client's parts.
pub(super) fn read(parts: &Array) -> (Config, Settings, Store, Events) {
    let at = |i| parts.get(i);
    let number = |i| at(i).as_f64().unwrap_or(0.0);
    let origins: Array = at(part::ORIGINS).unchecked_into();
    let config = Config {
        format: if number(part::FORMAT) == 1.0 {
            RefreshFormat::OAuth2
        } else {
            RefreshFormat::Json
        },
        client_id: at(part::CLIENT_ID).as_string(),
    };
    let settings = Settings {
        allow: AllowList::new(origins.iter().filter_map(|o| o.as_string())),
        leeway_ms: number(part::LEEWAY_MS),
        min_interval_ms: number(part::MIN_INTERVAL_MS),
        strict_redirects: at(part::STRICT).is_truthy(),
        dpop: at(part::DPOP).is_truthy(),
    };
    let store = at(part::STORE).unchecked_into();
    let events = at(part::EVENTS).unchecked_into();
    (config, settings, store, events)
}
