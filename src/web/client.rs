//! `AuthClient`: its state, construction, sign-in and sign-out, events and the session's
//! persistence. The request path is in `request.rs`, the cross-tab refresh in `refresh.rs`.

use super::glue::{self, now};
use super::idb;
use super::lock;
use super::store::Store;
use super::types::*;
use crate::error::{AuthError, ErrorCode};
use crate::jwt;
use crate::policy::{self, AllowList};
use crate::token::{self, Stored, TokenResponse};
use alloc::rc::{Rc, Weak};
use alloc::{borrow::ToOwned, string::String, vec::Vec};
use core::cell::{Cell, RefCell};
use js_sys::Promise;
use wasm_bindgen::prelude::*;

pub(super) struct Config {
    pub(super) refresh_url: String,
    pub(super) logout_url: Option<String>,
    pub(super) format: RefreshFormat,
    pub(super) client_id: Option<String>,
    pub(super) key: String,
    pub(super) lock_name: String,
    pub(super) allow: AllowList,
    pub(super) leeway_ms: f64,
    pub(super) timeout_ms: u32,
    pub(super) min_interval_ms: f64,
    pub(super) cross_tab: bool,
    pub(super) redirects: Redirects,
}

type Listener = Rc<dyn Fn(&AuthEvent)>;
/// The `storage` listener and the function that removes it.
type StorageListener = (Closure<dyn FnMut(JsValue)>, js_sys::Function);

pub(super) struct Inner {
    pub(super) cfg: Config,
    pub(super) store: Store,
    /// The cross-tab hand-over store, opened on first need.
    pub(super) db: RefCell<Option<Option<JsValue>>>,
    pub(super) state: RefCell<Option<Stored>>,
    /// Bumped by every sign-in/sign-out, so a refresh that started before it cannot
    /// resurrect or clobber the session it no longer belongs to.
    pub(super) generation: Cell<u32>,
    /// The refresh in flight; resolves `undefined` on success, `true` on failure (never rejects).
    pub(super) inflight: RefCell<Option<Promise>>,
    pub(super) last_error: RefCell<Option<AuthError>>,
    pub(super) listeners: RefCell<Vec<(u32, Listener)>>,
    pub(super) next_listener: Cell<u32>,
    pub(super) on_storage: RefCell<Option<StorageListener>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some((_cb, off)) = self.on_storage.borrow_mut().take() {
            let _ = off.call0(&JsValue::NULL);
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
    pub(super) inner: Rc<Inner>,
}

pub(super) fn refresh_failed(msg: &str) -> AuthError {
    AuthError::new(ErrorCode::RefreshFailed, msg)
}

pub(super) fn not_authenticated() -> AuthError {
    AuthError::new(ErrorCode::NotAuthenticated, "not signed in")
}

pub(super) fn aborted() -> AuthError {
    AuthError::new(ErrorCode::Aborted, "the request was aborted")
}

pub(super) fn resolve_http(url: &str, name: &str) -> Result<String, AuthError> {
    match glue::resolve_url(url) {
        Some([href, protocol, _]) if protocol == "https:" || protocol == "http:" => Ok(href),
        _ => Err(AuthError::invalid_option(name, "must be an http(s) URL")),
    }
}

pub(super) fn stored_json(s: &Stored) -> String {
    glue::stored_json(
        token::STORED_VERSION,
        &s.refresh_token,
        &s.access_token,
        s.expires_at,
        s.refresh_at,
        s.refreshed_at,
    )
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
                    let origin = glue::resolve_url(&entry).map(|[_, _, origin]| origin);
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
        let store = Store::open(o.storage, &cfg.key);
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
        // In the background (one executor entry point for every future: `glue::promise`).
        let _ = glue::promise(async move {
            inner.write_shared(Some(&stored)).await;
            Ok(JsValue::UNDEFINED)
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
}

/// What this tab tells its listeners when it takes over another tab's session (or sign-out).
pub(super) fn other_tab_event(next: &Option<Stored>) -> AuthEvent {
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

impl Inner {
    pub(super) fn bump(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
    }

    pub(super) fn current_access(&self) -> Option<String> {
        self.state.borrow().as_ref().map(|s| s.access_token.clone())
    }

    pub(super) fn emit(&self, event: &AuthEvent) {
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
    pub(super) fn stored_from(&self, t: TokenResponse, replaced: Option<String>) -> Stored {
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

    pub(super) async fn db(&self) -> Option<JsValue> {
        if let Some(db) = self.db.borrow().as_ref() {
            return db.clone();
        }
        let db = idb::open().await;
        *self.db.borrow_mut() = Some(db.clone());
        db
    }

    /// Writes the hand-over store (IndexedDB) and waits for the commit.
    pub(super) async fn write_shared(&self, s: Option<&Stored>) {
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
    pub(super) async fn read_shared(&self) -> Option<Option<Stored>> {
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

    pub(super) fn listen_for_other_tabs(this: &Rc<Inner>) {
        let weak: Weak<Inner> = Rc::downgrade(this);
        // Another tab's write of this key in this storage area, or its clearing.
        let cb = Closure::<dyn FnMut(JsValue)>::new(move |value: JsValue| {
            let Some(inner) = weak.upgrade() else { return };
            let next = value
                .as_string()
                .as_deref()
                .and_then(token::parse_stored::<JsValue>);
            inner.adopt(next);
        });
        let off = this.store.listen(cb.as_ref());
        *this.on_storage.borrow_mut() = Some((cb, off));
    }

    /// Replaces the session state. Only a change between signed in and signed out (or to
    /// another session) bumps the generation: adopting another tab's rotation of the same
    /// session must not void this tab's refresh in flight.
    pub(super) fn set_state(&self, next: Option<Stored>) {
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
    pub(super) fn adopt(&self, next: Option<Stored>) {
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
}
