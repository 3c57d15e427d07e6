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
    /// The refresh endpoint. Relative URLs resolve against the page. Required without
    /// [`Options::issuer`]; with it, empty means the provider's discovered `token_endpoint`
    /// (refreshes then use the RFC 6749 §6 form).
    pub refresh_url: String,
    /// The OpenID provider (sign-in by redirect): its discovery document
    /// (`<issuer>/.well-known/openid-configuration`) gives the endpoints, and must name this
    /// issuer exactly. `https`, or `http` on localhost. Needs `client_id` and `redirect_uri`.
    pub issuer: Option<String>,
    /// Where the provider sends the browser back after sign-in, exactly as registered with it;
    /// on the page's own origin (the page there calls `handle_redirect`).
    pub redirect_uri: Option<String>,
    /// The scope a sign-in asks for. Default `"openid offline_access"` (an ID token, and a
    /// refresh token).
    pub scope: String,
    /// POSTed `{"refresh_token"}` by [`AuthClient::logout`](crate::AuthClient::logout), best effort.
    pub logout_url: Option<String>,
    /// How the refresh token is sent.
    pub refresh_format: RefreshFormat,
    /// The client id: sent by sign-in (required with [`Options::issuer`]), revocation and
    /// OAuth2-format refreshes.
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
    /// Defaults for everything but the refresh endpoint (a first-party backend without an
    /// OpenID provider: tokens come from `login` or `set_tokens`).
    pub fn new(refresh_url: impl Into<String>) -> Options {
        Options {
            refresh_url: refresh_url.into(),
            issuer: None,
            redirect_uri: None,
            scope: policy::DEFAULT_SCOPE.into(),
            logout_url: None,
            refresh_format: RefreshFormat::Json,
            client_id: None,
            storage: StorageKind::Local,
            storage_key: policy::DEFAULT_STORAGE_KEY.into(),
            allowed_origins: None,
            leeway_seconds: policy::DEFAULT_LEEWAY_MS / 1000.0,
            refresh_timeout_ms: policy::DEFAULT_REFRESH_TIMEOUT_MS,
            min_refresh_interval_ms: policy::DEFAULT_MIN_REFRESH_INTERVAL_MS as u32,
            cross_tab: true,
            redirects: Redirects::Follow,
            dpop: false,
        }
    }

    /// Sign-in by redirect with an OpenID provider: the endpoints come from its discovery
    /// document; defaults for the rest.
    pub fn oidc(
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        redirect_uri: impl Into<String>,
    ) -> Options {
        Options {
            issuer: Some(issuer.into()),
            client_id: Some(client_id.into()),
            redirect_uri: Some(redirect_uri.into()),
            ..Options::new("")
        }
    }
}

impl Options {
    /// The options as `new AuthClient(options)` takes them in JS: Rust's client is made the
    /// same way as the npm package's (js/plumbing.js's `readOptions` reads and checks them).
    pub(crate) fn to_js(&self) -> JsValue {
        let o = js_sys::Object::new();
        let set = |k: &str, v: JsValue| {
            let _ = js_sys::Reflect::set(&o, &k.into(), &v);
        };
        let text = |v: &Option<String>| v.as_deref().map_or(JsValue::UNDEFINED, JsValue::from);
        set("refreshUrl", self.refresh_url.as_str().into());
        set("issuer", text(&self.issuer));
        set("redirectUri", text(&self.redirect_uri));
        set("scope", self.scope.as_str().into());
        set("logoutUrl", text(&self.logout_url));
        let format = match self.refresh_format {
            RefreshFormat::Json => "json",
            RefreshFormat::OAuth2 => "oauth2",
        };
        set("refreshFormat", format.into());
        set("clientId", text(&self.client_id));
        let storage = match self.storage {
            StorageKind::Local => "local",
            StorageKind::Session => "session",
            StorageKind::Memory => "memory",
        };
        set("storage", storage.into());
        set("storageKey", self.storage_key.as_str().into());
        if let Some(list) = &self.allowed_origins {
            let a: js_sys::Array = list.iter().map(|s| JsValue::from(s.as_str())).collect();
            set("allowedOrigins", a.into());
        }
        set("leewaySeconds", self.leeway_seconds.into());
        set("refreshTimeoutMs", self.refresh_timeout_ms.into());
        set("minRefreshIntervalMs", self.min_refresh_interval_ms.into());
        set("crossTab", self.cross_tab.into());
        let redirect = match self.redirects {
            Redirects::Follow => "follow",
            Redirects::Error => "error",
        };
        set("redirect", redirect.into());
        set("dpop", self.dpop.into());
        o.into()
    }
}

/// Options of a sign-in by redirect ([`AuthClient::sign_in`](crate::AuthClient::sign_in)).
#[derive(Clone, Debug, Default)]
pub struct SignIn {
    /// Where to come back to afterwards: a URL or path on this page's origin (default: the
    /// page that signs in).
    pub return_to: Option<String>,
    /// Extra authorization parameters (`prompt`, `login_hint`, `audience`, …); rotafetch's
    /// own (`state`, `redirect_uri`, PKCE, …) cannot be set.
    pub params: Vec<(String, String)>,
}

impl SignIn {
    /// As the driver takes it: `{returnTo, params}`.
    pub(crate) fn to_js(&self) -> JsValue {
        let o = js_sys::Object::new();
        if let Some(r) = &self.return_to {
            let _ = js_sys::Reflect::set(&o, &"returnTo".into(), &r.into());
        }
        let params = js_sys::Object::new();
        for (k, v) in &self.params {
            let _ = js_sys::Reflect::set(&params, &k.into(), &v.into());
        }
        let _ = js_sys::Reflect::set(&o, &"params".into(), &params);
        o.into()
    }
}
