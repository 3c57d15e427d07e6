//! `AuthClient`: the drop-in `fetch` with one serialized refresh per browser.

use super::glue::{self, now};
use super::idb;
use super::lock;
use super::store::Store;
use crate::error::{AuthError, ErrorCode};
use crate::jwt;
use crate::policy::{self, AllowList, On401, RefreshOutcome, Seen401};
use crate::token::{self, Stored, TokenResponse};
use alloc::rc::{Rc, Weak};
use alloc::{borrow::ToOwned, string::String, vec::Vec};
use core::cell::{Cell, RefCell};
use js_sys::{Object, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbDatabase, Request, Response, StorageEvent};

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

/// Where a refresh happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// This tab (this client) called the refresh endpoint.
    ThisTab,
    /// Another tab refreshed (or logged in) and this one adopted its tokens.
    OtherTab,
}

impl Source {
    /// `"this-tab"` or `"other-tab"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::ThisTab => "this-tab",
            Source::OtherTab => "other-tab",
        }
    }
}

/// Why the session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignoutReason {
    /// `logout()` was called in this tab.
    Logout,
    /// The refresh endpoint rejected the refresh token (reuse detected, revoked, expired).
    Rejected,
    /// Another tab logged out or was rejected.
    OtherTab,
}

impl SignoutReason {
    /// `"logout"`, `"rejected"` or `"other-tab"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SignoutReason::Logout => "logout",
            SignoutReason::Rejected => "rejected",
            SignoutReason::OtherTab => "other-tab",
        }
    }
}

/// What listeners registered with [`AuthClient::on`] receive.
#[derive(Clone, Debug, PartialEq)]
pub enum AuthEvent {
    /// New tokens are in place.
    Refresh {
        /// The new access token's expiry (ms since the epoch), if known.
        expires_at: Option<f64>,
        /// Who refreshed.
        source: Source,
    },
    /// The session ended: show the login page.
    Signout {
        /// Why.
        reason: SignoutReason,
        /// The server's error code for a rejection (e.g. `invalid_grant`).
        error: Option<String>,
    },
}

/// Why [`AuthClient::fetch`] failed.
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

/// Identifies a listener for [`AuthClient::off`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenerId(u32);

/// The options of an [`AuthClient`]. Build with [`Options::new`] and set what differs.
#[derive(Clone, Debug)]
pub struct Options {
    /// The refresh endpoint (required). Relative URLs resolve against the page.
    pub refresh_url: String,
    /// POSTed `{"refresh_token"}` by [`AuthClient::logout`], best effort.
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
        }
    }
}

struct Config {
    refresh_url: String,
    logout_url: Option<String>,
    format: RefreshFormat,
    client_id: Option<String>,
    key: String,
    lock_name: String,
    allow: AllowList,
    leeway_ms: f64,
    timeout_ms: u32,
    min_interval_ms: f64,
    cross_tab: bool,
    redirects: Redirects,
}

type Listener = Rc<dyn Fn(&AuthEvent)>;
type StorageListener = Closure<dyn FnMut(StorageEvent)>;

struct Inner {
    cfg: Config,
    store: Store,
    /// The cross-tab hand-over store, opened on first need.
    db: RefCell<Option<Option<IdbDatabase>>>,
    state: RefCell<Option<Stored>>,
    /// Bumped by every sign-in/sign-out, so a refresh that started before it cannot
    /// resurrect or clobber the session it no longer belongs to.
    generation: Cell<u32>,
    /// The refresh in flight; resolves `undefined` on success, `true` on failure (never rejects).
    inflight: RefCell<Option<Promise>>,
    last_error: RefCell<Option<AuthError>>,
    listeners: RefCell<Vec<(u32, Listener)>>,
    next_listener: Cell<u32>,
    on_storage: RefCell<Option<StorageListener>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(cb) = self.on_storage.borrow_mut().take() {
            let target: web_sys::EventTarget = js_sys::global().unchecked_into();
            let _ =
                target.remove_event_listener_with_callback("storage", cb.as_ref().unchecked_ref());
        }
    }
}

/// The client. Cheap to clone (clones share one session).
///
/// ```no_run
/// # async fn demo() -> Result<(), rotafetch::FetchError> {
/// use rotafetch::{AuthClient, AuthEvent, Options};
/// let auth = AuthClient::new(Options::new("/auth/refresh"))?;
/// auth.on(|e| if let AuthEvent::Signout { .. } = e { /* show the login page */ });
/// let req = web_sys::Request::new_with_str("/api/me").map_err(rotafetch::FetchError::Js)?;
/// let res = auth.fetch(req).await?;
/// # let _ = res; Ok(()) }
/// ```
#[derive(Clone)]
pub struct AuthClient {
    inner: Rc<Inner>,
}

fn refresh_failed(msg: &str) -> AuthError {
    AuthError::new(ErrorCode::RefreshFailed, msg)
}

fn not_authenticated() -> AuthError {
    AuthError::new(ErrorCode::NotAuthenticated, "not signed in")
}

fn aborted() -> AuthError {
    AuthError::new(ErrorCode::Aborted, "the request was aborted")
}

fn resolve_http(url: &str, name: &str) -> Result<String, AuthError> {
    match glue::resolve_url(url) {
        Some(u) if u.protocol() == "https:" || u.protocol() == "http:" => Ok(u.href()),
        _ => Err(AuthError::invalid_option(name, "must be an http(s) URL")),
    }
}

fn stored_json(s: &Stored) -> String {
    let o = Object::new();
    glue::set(&o, "v", &JsValue::from(token::STORED_VERSION));
    glue::set(&o, "rt", &JsValue::from_str(&s.refresh_token));
    glue::set(&o, "at", &JsValue::from_str(&s.access_token));
    if let Some(e) = s.expires_at {
        glue::set(&o, "exp", &JsValue::from(e));
    }
    if let Some(r) = s.refresh_at {
        glue::set(&o, "rat", &JsValue::from(r));
    }
    if let Some(r) = s.refreshed_at {
        glue::set(&o, "rfa", &JsValue::from(r));
    }
    js_sys::JSON::stringify(&o)
        .ok()
        .and_then(|s| s.as_string())
        .unwrap_or_default()
}

impl AuthClient {
    /// Validates the options and loads the stored session. Corrupt stored data is cleared
    /// (signed out), never an error.
    pub fn new(o: Options) -> Result<AuthClient, AuthError> {
        let refresh_url = resolve_http(&o.refresh_url, "refreshUrl")?;
        let logout_url = match &o.logout_url {
            Some(u) => Some(resolve_http(u, "logoutUrl")?),
            None => None,
        };
        if o.storage_key.is_empty() {
            return Err(AuthError::invalid_option(
                "storageKey",
                "must be a non-empty string",
            ));
        }
        if !(o.leeway_seconds.is_finite() && o.leeway_seconds >= 0.0) {
            return Err(AuthError::invalid_option(
                "leewaySeconds",
                "must be a number >= 0",
            ));
        }
        if o.refresh_timeout_ms == 0 {
            return Err(AuthError::invalid_option(
                "refreshTimeoutMs",
                "must be a positive integer",
            ));
        }
        if let Some(id) = &o.client_id {
            if id.is_empty() {
                return Err(AuthError::invalid_option(
                    "clientId",
                    "must be a non-empty string",
                ));
            }
        }
        let origins = match o.allowed_origins {
            Some(list) => {
                let mut out = Vec::with_capacity(list.len());
                for entry in list {
                    let origin = glue::resolve_url(&entry).map(|u| u.origin());
                    let trimmed = entry.strip_suffix('/').unwrap_or(&entry);
                    match origin {
                        Some(o)
                            if policy::is_http_origin(&o) && o.eq_ignore_ascii_case(trimmed) =>
                        {
                            out.push(o)
                        }
                        _ => {
                            return Err(AuthError::invalid_option(
                                "allowedOrigins",
                                "must list origins like \"https://api.example.com\"",
                            ))
                        }
                    }
                }
                out
            }
            None => {
                let mut out: Vec<String> = policy::origin_of_href(&refresh_url)
                    .map(str::to_owned)
                    .into_iter()
                    .collect();
                out.extend(glue::page_origin());
                out
            }
        };
        let mut lock_name = String::from("rotafetch:");
        lock_name.push_str(&o.storage_key);
        let cfg = Config {
            refresh_url,
            logout_url,
            format: o.refresh_format,
            client_id: o.client_id,
            lock_name,
            allow: AllowList::new(origins),
            leeway_ms: o.leeway_seconds * 1000.0,
            timeout_ms: o.refresh_timeout_ms,
            min_interval_ms: f64::from(o.min_refresh_interval_ms),
            cross_tab: o.cross_tab && o.storage == StorageKind::Local,
            redirects: o.redirects,
            key: o.storage_key,
        };
        let store = Store::new(o.storage, &cfg.key);
        let raw = store.read();
        let state = raw.as_deref().and_then(token::parse_stored::<JsValue>);
        if raw.is_some() && state.is_none() {
            store.write(None);
        }
        let inner = Rc::new(Inner {
            cfg,
            store,
            db: RefCell::new(None),
            state: RefCell::new(state),
            generation: Cell::new(0),
            inflight: RefCell::new(None),
            last_error: RefCell::new(None),
            listeners: RefCell::new(Vec::new()),
            next_listener: Cell::new(0),
            on_storage: RefCell::new(None),
        });
        if inner.cfg.cross_tab {
            Inner::listen_for_other_tabs(&inner);
        }
        Ok(AuthClient { inner })
    }

    /// True while tokens are held.
    pub fn authenticated(&self) -> bool {
        self.inner.state.borrow().is_some()
    }

    /// The access token's expiry (ms since the epoch), if known.
    pub fn expires_at(&self) -> Option<f64> {
        self.inner
            .state
            .borrow()
            .as_ref()
            .and_then(|s| s.expires_at)
    }

    /// Registers a listener for every [`AuthEvent`]. Listeners run after the cross-tab lock
    /// is released; a listener that panics aborts the module, so keep them simple.
    pub fn on(&self, listener: impl Fn(&AuthEvent) + 'static) -> ListenerId {
        let id = self.inner.next_listener.get();
        self.inner.next_listener.set(id.wrapping_add(1));
        self.inner
            .listeners
            .borrow_mut()
            .push((id, Rc::new(listener)));
        ListenerId(id)
    }

    /// Removes a listener.
    pub fn off(&self, id: ListenerId) {
        self.inner
            .listeners
            .borrow_mut()
            .retain(|(i, _)| *i != id.0);
    }

    /// Stores tokens obtained elsewhere (e.g. your own login call).
    pub fn set_tokens(&self, tokens: TokenResponse) -> Result<(), AuthError> {
        if tokens.refresh_token.is_none() {
            return Err(AuthError::invalid_option("refresh_token", "is required"));
        }
        let inner = self.inner.clone();
        let stored = inner.stored_from(tokens, None);
        inner.bump();
        *inner.state.borrow_mut() = Some(stored.clone());
        inner.store.write(Some(&stored_json(&stored)));
        wasm_bindgen_futures::spawn_local(async move {
            inner.write_shared(Some(&stored)).await;
        });
        Ok(())
    }

    /// POSTs `credentials` as JSON to `url`, expects a token response, stores it.
    pub async fn login(&self, url: &str, credentials: &JsValue) -> Result<(), AuthError> {
        let failed = |m: &str| AuthError::new(ErrorCode::LoginFailed, m);
        let url = resolve_http(url, "url")?;
        let body = js_sys::JSON::stringify(credentials)
            .ok()
            .and_then(|s| s.as_string())
            .ok_or_else(|| AuthError::invalid_option("credentials", "must be JSON-serialisable"))?;
        let (status, text) = glue::post(
            &url,
            "application/json",
            &body,
            self.inner.cfg.timeout_ms,
            token::MAX_RESPONSE_BYTES,
        )
        .await
        .map_err(|_| failed("login request failed (network error or timeout)"))?;
        if !(200..300).contains(&status) {
            let mut m = String::from("login was refused (HTTP ");
            crate::error::push_decimal(&mut m, status.into());
            m.push(')');
            return Err(failed(&m));
        }
        let tokens = text
            .as_deref()
            .ok_or(token::TokenError::TooLarge)
            .and_then(token::parse::<JsValue>)
            .map_err(|e| failed(e.message()))?;
        self.set_tokens(tokens)
            .map_err(|_| failed("login response has no refresh_token"))
    }

    /// One serialized refresh, on demand (joins one in flight).
    pub async fn refresh(&self) -> Result<(), AuthError> {
        let failed = self
            .inner
            .state
            .borrow()
            .as_ref()
            .map(|s| s.access_token.clone());
        if failed.is_none() {
            return Err(not_authenticated());
        }
        Inner::refresh_shared(&self.inner, failed, None).await
    }

    /// Signs out: clears the session here and in every tab, and tells the server (best effort).
    pub async fn logout(&self) {
        let inner = &self.inner;
        let mine = inner.state.borrow_mut().take();
        inner.bump();
        inner.store.write(None);
        let mut spend = mine.map(|s| s.refresh_token);
        if inner.cfg.cross_tab {
            // Under the lock, so no tab's refresh in flight writes the session back.
            let db = inner.db().await;
            let guard =
                lock::acquire(&inner.cfg.lock_name, inner.cfg.timeout_ms, db.as_ref()).await;
            if let Some(db) = &db {
                if let Ok(Some(s)) = idb::get(db, &inner.cfg.key).await {
                    if let Some(s) = token::parse_stored::<JsValue>(&s) {
                        spend = Some(s.refresh_token);
                    }
                }
                let _ = idb::put(db, &inner.cfg.key, None).await;
            }
            inner.store.write(None);
            drop(guard);
        }
        if let (Some(url), Some(rt)) = (&inner.cfg.logout_url, spend) {
            let mut body = String::from("{\"refresh_token\":\"");
            body.push_str(&rt);
            body.push_str("\"}");
            let _ = glue::post(url, "application/json", &body, inner.cfg.timeout_ms, 0).await;
        }
        inner.emit(&AuthEvent::Signout {
            reason: SignoutReason::Logout,
            error: None,
        });
    }

    /// `fetch(input, init)` with authentication: the JS `fetch` signature.
    pub async fn fetch_with(
        &self,
        input: &JsValue,
        init: &JsValue,
    ) -> Result<Response, FetchError> {
        Inner::finish(&self.inner, self.start(input, init)?).await
    }

    /// Sends `request` with authentication (see the crate docs for the rules).
    pub async fn fetch(&self, request: Request) -> Result<Response, FetchError> {
        Inner::finish(&self.inner, self.inner.start(request, Body::OfRequest)?).await
    }

    /// `fetch(input, init)` started synchronously: the JS façade returns the request's own
    /// promise unless the token must be refreshed first or a 401 comes back (measured: the
    /// futures machinery was most of a call's overhead over plain `fetch`).
    pub(crate) fn start(&self, input: &JsValue, init: &JsValue) -> Result<Started, FetchError> {
        let body = match glue::init_body(init) {
            None => Body::OfRequest,
            Some(true) => Body::Stream,
            Some(false) => Body::Init(input.clone(), init.clone()),
        };
        let request = glue::make_request(input, init).map_err(FetchError::Js)?;
        self.inner.start(request, body)
    }

    /// Carries a started call to its response (see [`Inner::finish`]).
    #[cfg(feature = "js")]
    pub(crate) async fn finish(&self, started: Started) -> Result<Response, FetchError> {
        Inner::finish(&self.inner, started).await
    }

    /// What follows a 401 to a request [`AuthClient::start`] sent with the access token.
    #[cfg(feature = "js")]
    pub(crate) async fn after_401(
        &self,
        response: Response,
        armed: Armed,
    ) -> Result<Response, FetchError> {
        Inner::after_401(&self.inner, response, armed).await
    }
}

/// Where a call's body comes from, which decides how it is sent again after a 401.
pub(crate) enum Body {
    /// `init.body`, not a stream: a replay builds the request anew from `input` and `init`.
    /// Such a body (string, Blob, ArrayBuffer, FormData, URLSearchParams) can be read again
    /// in every engine; a clone of it cannot always (WebKit fails to send a cloned FormData
    /// that holds a Blob).
    Init(JsValue, JsValue),
    /// `init.body` is a `ReadableStream`: it cannot be sent twice.
    Stream,
    /// Whatever the `Request` itself holds: cloned before the first send if it may have a body.
    OfRequest,
}

/// How a replay gets its request.
enum Replay {
    /// No body: send the same request again.
    Again,
    /// The clone made before the first send.
    Copy(Request),
    /// `new Request(input, init)` again.
    Rebuild(JsValue, JsValue),
    /// A stream body: refuse (`body_not_replayable`), never send it empty.
    Refuse,
}

/// What an authenticated request carried, and what its replay needs.
pub(crate) struct Armed {
    carried: String,
    /// The request as sent: where the token went and its signal.
    sent: Request,
    replay: Replay,
}

/// The synchronous start of a call (see [`AuthClient::start`]).
pub(crate) enum Started {
    /// Sent: `fetch`'s promise, and what a 401 needs when the access token went with it
    /// (`None`: sent as is, not ours to authenticate or signed out).
    Sent(Promise, Option<Armed>),
    /// The token must be refreshed first.
    RefreshFirst(Request, Body),
}

async fn send(fetching: Promise) -> Result<Response, FetchError> {
    JsFuture::from(fetching)
        .await
        .map(JsCast::unchecked_into)
        .map_err(FetchError::Js)
}

/// What this tab tells its listeners when it takes over another tab's session (or sign-out).
fn other_tab_event(next: &Option<Stored>) -> AuthEvent {
    match next {
        Some(s) => AuthEvent::Refresh {
            expires_at: s.expires_at,
            source: Source::OtherTab,
        },
        None => AuthEvent::Signout {
            reason: SignoutReason::OtherTab,
            error: None,
        },
    }
}

fn set_bearer(request: &Request, access: &str) -> Result<(), FetchError> {
    let mut v = String::with_capacity(access.len() + 7);
    v.push_str("Bearer ");
    v.push_str(access);
    request
        .headers()
        .set("Authorization", &v)
        .map_err(FetchError::Js)
}

impl Inner {
    fn bump(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
    }

    fn current_access(&self) -> Option<String> {
        self.state.borrow().as_ref().map(|s| s.access_token.clone())
    }

    fn emit(&self, event: &AuthEvent) {
        let listeners: Vec<Listener> = self
            .listeners
            .borrow()
            .iter()
            .map(|(_, l)| l.clone())
            .collect();
        for l in listeners {
            l(event);
        }
    }

    /// The session a token response starts. `replaced` is the refresh token a refresh
    /// presented (`None`: the tokens were handed over by `login`/`setTokens`); it stays when
    /// the server does not rotate, and it marks the session's provenance for the loop guard.
    fn stored_from(&self, t: TokenResponse, replaced: Option<String>) -> Stored {
        let at = now();
        let claims = jwt::decode_claims::<JsValue>(&t.access_token).ok();
        let s = policy::schedule(at, claims, t.expires_in, self.cfg.leeway_ms);
        Stored {
            refreshed_at: replaced.is_some().then_some(at),
            refresh_token: t.refresh_token.or(replaced).unwrap_or_default(),
            access_token: t.access_token,
            expires_at: s.expires_at,
            refresh_at: s.refresh_at,
        }
    }

    async fn db(&self) -> Option<IdbDatabase> {
        if let Some(db) = self.db.borrow().as_ref() {
            return db.clone();
        }
        let db = idb::open().await;
        *self.db.borrow_mut() = Some(db.clone());
        db
    }

    /// Writes the hand-over store (IndexedDB) and waits for the commit.
    async fn write_shared(&self, s: Option<&Stored>) {
        if !self.cfg.cross_tab {
            return;
        }
        if let Some(db) = self.db().await {
            let json = s.map(stored_json);
            let _ = idb::put(&db, &self.cfg.key, json.as_deref()).await;
        }
    }

    /// Reads the session as the last tab left it: IndexedDB, else the persistent store
    /// (a session never written to IndexedDB, or no IndexedDB). `None` when nothing could
    /// be read.
    async fn read_shared(&self) -> Option<Option<Stored>> {
        if let Some(db) = self.db().await {
            if let Ok(Some(v)) = idb::get(&db, &self.cfg.key).await {
                return Some(token::parse_stored::<JsValue>(&v));
            }
        }
        if self.store.is_persistent() {
            return Some(
                self.store
                    .read()
                    .as_deref()
                    .and_then(token::parse_stored::<JsValue>),
            );
        }
        None
    }

    fn listen_for_other_tabs(this: &Rc<Inner>) {
        let weak: Weak<Inner> = Rc::downgrade(this);
        let cb = Closure::<dyn FnMut(StorageEvent)>::new(move |e: StorageEvent| {
            let Some(inner) = weak.upgrade() else { return };
            if !inner.store.is_area(&e.storage_area()) {
                return;
            }
            match e.key() {
                Some(k) if k == inner.cfg.key => {}
                Some(_) => return,
                None => {} // storage.clear()
            }
            let next = e
                .new_value()
                .as_deref()
                .and_then(token::parse_stored::<JsValue>);
            inner.adopt(next);
        });
        let target: web_sys::EventTarget = js_sys::global().unchecked_into();
        if target
            .add_event_listener_with_callback("storage", cb.as_ref().unchecked_ref())
            .is_ok()
        {
            *this.on_storage.borrow_mut() = Some(cb);
        }
    }

    /// Replaces the session state. Only a change between signed in and signed out (or to
    /// another session) bumps the generation: adopting another tab's rotation of the same
    /// session must not void this tab's refresh in flight.
    fn set_state(&self, next: Option<Stored>) {
        let was = self
            .state
            .borrow()
            .as_ref()
            .map(|s| s.refresh_token.clone());
        if was.is_some() != next.is_some() {
            self.bump();
        }
        *self.state.borrow_mut() = next;
    }

    /// Takes over the session another tab left; emits what changed.
    fn adopt(&self, next: Option<Stored>) {
        if self.state.borrow().as_ref() == next.as_ref() {
            return;
        }
        let had = self.state.borrow().is_some();
        let event = other_tab_event(&next);
        let has = next.is_some();
        self.set_state(next);
        if had || has {
            self.emit(&event);
        }
    }

    /// Joins the refresh in flight or starts one; waits unless `signal` aborts.
    async fn refresh_shared(
        this: &Rc<Inner>,
        failed_access: Option<String>,
        signal: Option<&web_sys::AbortSignal>,
    ) -> Result<(), AuthError> {
        let existing = this.inflight.borrow().clone();
        let p = match existing {
            Some(p) => p,
            None => {
                let inner = this.clone();
                let p = glue::promise(async move {
                    let r = Inner::refresh_locked(&inner, failed_access).await;
                    *inner.inflight.borrow_mut() = None;
                    Ok(match r {
                        Ok(()) => JsValue::UNDEFINED,
                        Err(e) => {
                            *inner.last_error.borrow_mut() = Some(e);
                            JsValue::TRUE
                        }
                    })
                });
                *this.inflight.borrow_mut() = Some(p.clone());
                p
            }
        };
        match glue::unless_aborted(&p, signal).await {
            Err(()) => Err(aborted()),
            Ok(v) if v.is_truthy() => Err(this
                .last_error
                .borrow()
                .clone()
                .unwrap_or_else(|| refresh_failed("refresh failed"))),
            Ok(_) => Ok(()),
        }
    }

    /// Takes the cross-tab lock, refreshes unless another tab already did, releases, then
    /// tells the listeners.
    async fn refresh_locked(
        this: &Rc<Inner>,
        failed_access: Option<String>,
    ) -> Result<(), AuthError> {
        if this.cfg.cross_tab {
            // Fast path, before queueing for the lock: another tab's rotation that has
            // already committed to the hand-over store, newer than ours and not due, is simply
            // adopted. (Under load, eight tabs queueing for the lock one after another could
            // otherwise take longer than the new token's refresh window.)
            if let Some(Some(s)) = this.read_shared().await {
                let newer = {
                    let mine = this.state.borrow();
                    let mine_exp = mine.as_ref().and_then(|m| m.expires_at);
                    mine.is_some() && s.expires_at > mine_exp
                };
                let due = s.refresh_at.is_some_and(|at| now() >= at);
                if newer && !due && failed_access.as_deref() != Some(&s.access_token) {
                    this.adopt(Some(s));
                    return Ok(());
                }
            }
        }
        let guard = if this.cfg.cross_tab {
            let db = this.db().await;
            match lock::acquire(&this.cfg.lock_name, this.cfg.timeout_ms, db.as_ref()).await {
                Ok(g) => Some(g),
                Err(()) => {
                    return Err(refresh_failed(
                        "timed out waiting for another tab's refresh",
                    ))
                }
            }
        } else {
            None
        };
        let (result, event) = this.refresh_under_lock(failed_access).await;
        drop(guard);
        if let Some(e) = event {
            this.emit(&e);
        }
        result
    }

    async fn refresh_under_lock(
        &self,
        failed_access: Option<String>,
    ) -> (Result<(), AuthError>, Option<AuthEvent>) {
        let generation = self.generation.get();
        let mut adopted = None;
        if self.cfg.cross_tab {
            if let Some(shared) = self.read_shared().await {
                if self.generation.get() != generation {
                    return (Err(not_authenticated()), None);
                }
                if shared != *self.state.borrow() {
                    adopted = Some(other_tab_event(&shared));
                    self.set_state(shared);
                }
            }
        }
        // Another tab may have rotated already — learnt just now from the hand-over store, or
        // earlier from its `storage` event: if the token this refresh was meant to replace is
        // gone and the current one is not due, there is nothing to do.
        if let Some(s) = self.state.borrow().as_ref() {
            let due = s.refresh_at.is_some_and(|at| now() >= at);
            if failed_access.as_deref() != Some(&s.access_token) && !due {
                return (Ok(()), adopted);
            }
        }
        let generation = self.generation.get();
        let Some(cur) = self.state.borrow().clone() else {
            return (Err(not_authenticated()), adopted);
        };
        let (content_type, body) = match self.cfg.format {
            RefreshFormat::Json => {
                let mut b = String::from("{\"refresh_token\":\"");
                b.push_str(&cur.refresh_token);
                b.push_str("\"}");
                ("application/json", b)
            }
            RefreshFormat::OAuth2 => {
                let p = web_sys::UrlSearchParams::new().unwrap_throw();
                p.append("grant_type", "refresh_token");
                p.append("refresh_token", &cur.refresh_token);
                if let Some(id) = &self.cfg.client_id {
                    p.append("client_id", id);
                }
                (
                    "application/x-www-form-urlencoded",
                    String::from(p.to_string()),
                )
            }
        };
        let answer = glue::post(
            &self.cfg.refresh_url,
            content_type,
            &body,
            self.cfg.timeout_ms,
            token::MAX_RESPONSE_BYTES,
        )
        .await;
        if self.generation.get() != generation {
            // Signed out or signed in anew meanwhile: this result belongs to nobody.
            return (Err(not_authenticated()), adopted);
        }
        let (status, text) = match answer {
            Ok(a) => a,
            Err(()) => {
                return (
                    Err(refresh_failed(
                        "refresh request failed (network error or timeout)",
                    )),
                    adopted,
                )
            }
        };
        match policy::classify_refresh(status) {
            RefreshOutcome::Success => {
                let parsed = text
                    .as_deref()
                    .ok_or(token::TokenError::TooLarge)
                    .and_then(token::parse::<JsValue>);
                let tokens = match parsed {
                    Ok(t) => t,
                    Err(e) => {
                        let mut m = String::from("refresh response unusable: ");
                        m.push_str(e.message());
                        return (Err(refresh_failed(&m)), adopted);
                    }
                };
                let stored = self.stored_from(tokens, Some(cur.refresh_token));
                // Persist before anyone replays: the hand-over store first (the next lock
                // holder reads it), then the persistent home (its `storage` event wakes tabs).
                self.write_shared(Some(&stored)).await;
                self.store.write(Some(&stored_json(&stored)));
                let expires_at = stored.expires_at;
                *self.state.borrow_mut() = Some(stored);
                let e = AuthEvent::Refresh {
                    expires_at,
                    source: Source::ThisTab,
                };
                (Ok(()), Some(e))
            }
            RefreshOutcome::Rejected => {
                let error = text
                    .as_deref()
                    .and_then(<JsValue as crate::json::JsonValue>::parse)
                    .and_then(|j| crate::json::JsonValue::str_field(&j, "error"));
                let error = policy::rejection_code(error.as_deref()).map(str::to_owned);
                self.set_state(None);
                self.write_shared(None).await;
                self.store.write(None);
                let mut m = String::from("the refresh token was rejected");
                if let Some(code) = &error {
                    m.push_str(" (");
                    m.push_str(code);
                    m.push(')');
                }
                let e = AuthEvent::Signout {
                    reason: SignoutReason::Rejected,
                    error,
                };
                (Err(AuthError::new(ErrorCode::RefreshRejected, m)), Some(e))
            }
            RefreshOutcome::Transient => {
                let mut m = String::from("refresh endpoint answered HTTP ");
                crate::error::push_decimal(&mut m, status.into());
                (Err(refresh_failed(&m)), adopted)
            }
        }
    }

    /// Is `request` one to authenticate: an allowed origin, no `Authorization` of its own?
    fn ours(&self, request: &Request) -> bool {
        policy::origin_of_href(&request.url()).is_some_and(|o| self.cfg.allow.allows(o))
            && !request.headers().has("authorization").unwrap_or(false)
    }

    /// When the access token must be refreshed before sending: its expiry and the token.
    fn due(&self) -> Option<(Option<f64>, String)> {
        let state = self.state.borrow();
        let s = state.as_ref()?;
        let min = self.cfg.min_interval_ms;
        policy::refresh_before_send(now(), s.refresh_at, s.refreshed_at, min)
            .then(|| (s.expires_at, s.access_token.clone()))
    }

    /// Readies `request` for the access token: the configured redirect mode where the request
    /// has the default one (`new Request(request, {redirect})` then takes its place), and
    /// `Authorization`.
    fn authorize(&self, request: Request, access: &str) -> Result<Request, FetchError> {
        let request = if self.cfg.redirects == Redirects::Error
            && glue::get(&request, "redirect") == "follow"
        {
            let init = Object::new();
            glue::set(&init, "redirect", &JsValue::from_str("error"));
            glue::make_request(&request, &init).map_err(FetchError::Js)?
        } else {
            request
        };
        set_bearer(&request, access)?;
        Ok(request)
    }

    /// Sets `Authorization` on `request` and keeps what a replay needs; returns the request to
    /// send and, when a token went with it, what a 401 needs.
    fn arm(&self, request: Request, body: Body) -> Result<(Request, Option<Armed>), FetchError> {
        let Some(carried) = self.current_access() else {
            return Ok((request, None));
        };
        let request = self.authorize(request, &carried)?;
        let replay = match body {
            Body::Init(input, init) => Replay::Rebuild(input, init),
            Body::Stream => Replay::Refuse,
            // A body the request holds itself is cloned before the first send, the only way
            // to send it twice; a request without one is simply sent again.
            Body::OfRequest if glue::may_have_body(&request) => {
                Replay::Copy(request.clone().map_err(FetchError::Js)?)
            }
            Body::OfRequest => Replay::Again,
        };
        let armed = Armed {
            carried,
            sent: Clone::clone(&request),
            replay,
        };
        Ok((request, Some(armed)))
    }

    /// Sends `request` now, unless the token must be refreshed first.
    fn start(&self, request: Request, body: Body) -> Result<Started, FetchError> {
        if !self.ours(&request) {
            // Not ours to authenticate: sent exactly as `fetch` would.
            return Ok(Started::Sent(glue::fetch_request(&request), None));
        }
        if self.due().is_some() {
            return Ok(Started::RefreshFirst(request, body));
        }
        let (sent, armed) = self.send_armed(request, body)?;
        Ok(Started::Sent(sent, armed))
    }

    /// Sends `request`, with the access token if there is one.
    fn send_armed(
        &self,
        request: Request,
        body: Body,
    ) -> Result<(Promise, Option<Armed>), FetchError> {
        let (request, armed) = self.arm(request, body)?;
        Ok((glue::fetch_request(&request), armed))
    }

    /// Carries a started call to its response: the refresh before sending, the 401 handling.
    async fn finish(this: &Rc<Inner>, started: Started) -> Result<Response, FetchError> {
        let (sent, armed) = match started {
            Started::Sent(sent, armed) => (sent, armed),
            Started::RefreshFirst(request, body) => {
                // Another call may have refreshed since `start`.
                if let Some((expires_at, access)) = this.due() {
                    let signal = request.signal();
                    match Inner::refresh_shared(this, Some(access), Some(&signal)).await {
                        Ok(()) => {}
                        Err(e) if e.code() == ErrorCode::RefreshFailed => {
                            // Transient: the old token may still be good (we refresh early).
                            let expired = expires_at.is_some_and(|at| now() >= at);
                            if expired || this.state.borrow().is_none() {
                                return Err(e.into());
                            }
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                this.send_armed(request, body)?
            }
        };
        let response = send(sent).await?;
        match armed {
            Some(armed) if response.status() == 401 => {
                Inner::after_401(this, response, armed).await
            }
            _ => Ok(response),
        }
    }

    /// A 401 to an authenticated request: return it, or refresh (once per browser) and replay.
    async fn after_401(
        this: &Rc<Inner>,
        response: Response,
        armed: Armed,
    ) -> Result<Response, FetchError> {
        let Armed {
            carried,
            sent,
            replay,
        } = armed;
        let (current, refreshed_at) = match this.state.borrow().as_ref() {
            Some(s) => (Some(s.access_token.clone()), s.refreshed_at),
            None => (None, None),
        };
        let seen = Seen401 {
            was_replay: false,
            carried_token: policy::token_reached(
                &sent.url(),
                &response.url(),
                response.redirected(),
            ),
            carried_is_current: current.as_deref() == Some(&carried),
            have_access: current.is_some(),
            have_refresh: true,
            refresh_in_flight: this.inflight.borrow().is_some(),
            now: now(),
            refreshed_at,
            min_interval_ms: this.cfg.min_interval_ms,
        };
        match policy::on_401(seen) {
            On401::Return => return Ok(response),
            On401::ReplayWithCurrent => {}
            On401::RefreshThenReplay => {
                Inner::refresh_shared(this, Some(carried), Some(&sent.signal())).await?;
            }
        }
        let replay = match replay {
            Replay::Again => sent,
            Replay::Copy(copy) => copy,
            Replay::Rebuild(input, init) => {
                glue::make_request(&input, &init).map_err(FetchError::Js)?
            }
            Replay::Refuse => {
                return Err(AuthError::new(
                    ErrorCode::BodyNotReplayable,
                    "the request needs a replay after a refresh, but its body is a stream",
                )
                .into())
            }
        };
        let Some(current) = this.current_access() else {
            return Ok(response);
        };
        let replay = this.authorize(replay, &current)?;
        send(glue::fetch_request(&replay)).await
    }
}
