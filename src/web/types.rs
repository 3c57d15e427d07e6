//! The public types of the browser layer: options, events, errors.

use crate::error::AuthError;
use crate::policy;
use alloc::{string::String, vec::Vec};
use wasm_bindgen::JsValue;

/// How the refresh token is sent to `refreshUrl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshFormat {
    /// `POST application/json {"refresh_token": RT}` (the default).
    Json,
    /// RFC 6749 §6: `grant_type=refresh_token&refresh_token=RT[&client_id=…]`.
    OAuth2,
}

/// Where the session is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageKind {
    /// `localStorage`: survives reloads, shared by every tab (the default).
    Local,
    /// `sessionStorage`: one tab, survives reloads of that tab.
    Session,
    /// Memory only: gone with the page.
    Memory,
}

/// What the requests rotafetch authenticates do at a redirect (the request's `redirect` mode).
///
/// Chromium, Firefox and WebKit drop `Authorization` at a redirect to another origin (Fetch
/// standard; measured by the browser tests); an engine that predates that rule would hand the
/// access token to the other origin. `Error` closes that door whatever the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Redirects {
    /// Follow redirects, as `fetch` does (the default).
    Follow,
    /// An authenticated call that meets a redirect fails (`fetch`'s `TypeError`), so the
    /// token never follows one in any engine. Calls that set their own `redirect` keep it.
    Error,
}

pub use crate::event::{AuthEvent, SignoutReason, Source};

/// Why [`AuthClient::fetch`](crate::AuthClient::fetch) failed.
#[derive(Debug)]
pub enum FetchError {
    /// rotafetch's own failure (refresh rejected or failed, aborted while waiting, …).
    Auth(AuthError),
    /// What `fetch` itself threw (a network `TypeError`, an `AbortError`, a bad `Request`).
    Js(JsValue),
}

impl From<AuthError> for FetchError {
    fn from(e: AuthError) -> Self {
        FetchError::Auth(e)
    }
}

/// Identifies a listener for [`AuthClient::off`](crate::AuthClient::off).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenerId(pub(super) u32);

/// The options of an [`AuthClient`](crate::AuthClient). Build with [`Options::new`] and set
/// what differs.
#[derive(Clone, Debug)]
pub struct Options {
    /// The refresh endpoint (required). Relative URLs resolve against the page.
    pub refresh_url: String,
    /// POSTed `{"refresh_token"}` by [`AuthClient::logout`](crate::AuthClient::logout), best effort.
    pub logout_url: Option<String>,
    /// How the refresh token is sent.
    pub refresh_format: RefreshFormat,
    /// `client_id` added to OAuth2-format refreshes.
    pub client_id: Option<String>,
    /// Where the session is kept.
    pub storage: StorageKind,
    /// The storage key (also names the cross-tab lock). Default `"rotafetch"`.
    pub storage_key: String,
    /// Origins that receive the access token. Default: the page's origin and `refresh_url`'s.
    pub allowed_origins: Option<Vec<String>>,
    /// Refresh this many seconds before expiry (capped at half the token's lifetime). Default 10.
    pub leeway_seconds: f64,
    /// Bound on a refresh request and on waiting for another tab's refresh. Default 10 000.
    pub refresh_timeout_ms: u32,
    /// No 401 starts a refresh sooner than this after the last successful one. Default 1000.
    pub min_refresh_interval_ms: u32,
    /// One refresh per browser (Web Locks + IndexedDB hand-over). Default true; only with
    /// `StorageKind::Local`.
    pub cross_tab: bool,
    /// What authenticated calls do at a redirect. Default [`Redirects::Follow`].
    pub redirects: Redirects,
    /// DPoP (RFC 9449): sender-constrained tokens. A non-extractable ES256 key, shared by the
    /// tabs through IndexedDB, signs a proof for every token request and every authenticated
    /// call. Default false.
    pub dpop: bool,
}

impl Options {
    /// Defaults for everything but the refresh endpoint.
    pub fn new(refresh_url: impl Into<String>) -> Options {
        Options {
            refresh_url: refresh_url.into(),
            logout_url: None,
            refresh_format: RefreshFormat::Json,
            client_id: None,
            storage: StorageKind::Local,
            storage_key: "rotafetch".into(),
            allowed_origins: None,
            leeway_seconds: policy::DEFAULT_LEEWAY_MS / 1000.0,
            refresh_timeout_ms: policy::DEFAULT_REFRESH_TIMEOUT_MS,
            min_refresh_interval_ms: policy::DEFAULT_MIN_REFRESH_INTERVAL_MS as u32,
            cross_tab: true,
            redirects: Redirects::Follow,
            dpop: false,
        }
    }
}
