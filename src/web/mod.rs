//! The browser layer (`wasm32` only): fetch, storage, cross-tab locks and events, carrying
//! out what the pure modules decide.

mod client;
pub(crate) mod glue;
mod idb;
mod lock;
mod refresh;
mod request;
mod store;
mod types;

pub use client::AuthClient;
#[cfg(feature = "js")]
pub(crate) use glue::promise;
#[cfg(feature = "js")]
pub(crate) use request::Started;
pub use types::{
    AuthEvent, FetchError, ListenerId, Options, Redirects, RefreshFormat, SignoutReason, Source,
    StorageKind,
};
