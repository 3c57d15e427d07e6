//! The browser layer (`wasm32` only): fetch, storage, cross-tab locks and events, carrying
//! out what the pure modules decide.

mod client;
mod glue;
mod idb;
mod lock;
mod store;

#[cfg(feature = "js")]
pub(crate) use client::Started;
pub use client::{
    AuthClient, AuthEvent, FetchError, ListenerId, Options, Redirects, RefreshFormat,
    SignoutReason, Source, StorageKind,
};
#[cfg(feature = "js")]
pub(crate) use glue::{promise, then_fns};
