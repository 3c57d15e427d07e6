//! The browser layer (`wasm32` only). The Rust core (`core.rs`, on the session in
//! `session.rs`) decides; the driver (`js/driver.js`) carries out the effects: fetch, the
//! hand-over store, the cross-tab lock, events.

mod client;
mod config;
mod core;
pub(crate) mod glue;
mod session;
mod store;
mod types;

pub use client::AuthClient;
pub use types::{
    AuthEvent, FetchError, ListenerId, Options, Redirects, RefreshFormat, SignIn, SignoutReason,
    Source, StorageKind,
};
