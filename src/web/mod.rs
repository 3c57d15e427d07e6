//! The browser layer (`wasm32` only). The Rust core (`core.rs`, the adapter of the pure session
//! state machine, `crate::session`, kept in `state.rs`) decides; the driver (`js/driver.js`)
//! carries out the effects: fetch, the hand-over store, the cross-tab lock, events.

mod client;
mod config;
mod core;
pub(crate) mod glue;
mod state;
mod store;
mod types;

#[cfg(feature = "js")]
pub(crate) use client::client_parts;
pub use client::AuthClient;
pub use types::{FetchError, ListenerId, Options, Redirects, RefreshFormat, SignIn, StorageKind};
