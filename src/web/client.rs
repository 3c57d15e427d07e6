//! `AuthClient`, the Rust API: the session's core (`core.rs`) and its driver
//! (`js/driver.js`, which carries out the browser effects in the order the core's answers
//! call for).

use super::config;
use super::core::Core;
use super::glue;
use super::state::State;
use super::store::Store;
use super::types::*;
use crate::error::{AuthError, ErrorCode};
use crate::token::TokenResponse;
use alloc::rc::Rc;
use alloc::{string::String, vec::Vec};
use core::cell::{Cell, RefCell};
use js_sys::Function;
use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Request, Response};

#[wasm_bindgen(module = "/js/driver.js")]
extern "C" {
    /// The effects of one client: fetch, the hand-over store, the lock, the `storage` events.
    pub(crate) type Driver;
    #[wasm_bindgen(constructor)]
    #[allow(clippy::too_many_arguments)]
    fn new(
        core: JsValue,
        store: &Store,
        cross_tab: bool,
        refresh_url: &str,
        logout_url: Option<String>,
        key: &str,
        lock_name: &str,
        timeout_ms: u32,
        dpop: &JsValue,
    ) -> Driver;
    /// `fetch(input, init)` with authentication.
    #[wasm_bindgen(method)]
    pub(crate) fn fetch(this: &Driver, input: &JsValue, init: &JsValue) -> Promise;
    #[wasm_bindgen(method)]
    pub(crate) fn login(this: &Driver, url: &str, credentials: &JsValue) -> Promise;
    /// One serialized refresh, on demand.
    #[wasm_bindgen(method, js_name = refreshNow)]
    pub(crate) fn refresh(this: &Driver) -> Promise;
    #[wasm_bindgen(method)]
    pub(crate) fn logout(this: &Driver) -> Promise;
    /// A DPoP proof for a request of the app's own.
    #[wasm_bindgen(method, js_name = dpopProof)]
    pub(crate) fn dpop_proof(this: &Driver, method: &JsValue, url: &JsValue) -> Promise;
    /// Writes a record to the hand-over store (in the background).
    #[wasm_bindgen(method)]
    fn share(this: &Driver, record: &str) -> Promise;
    /// Stops listening to other tabs.
    #[wasm_bindgen(method)]
    fn close(this: &Driver);
}

/// A Rust listener, as the JS function the client's `Events` calls, and what removes it.
type Listener = (u32, Closure<dyn Fn(JsValue, JsValue)>, Function);

#[cfg(feature = "dpop")]
#[wasm_bindgen(module = "/js/plumbing.js")]
extern "C" {
    /// The DPoP key and proof functions (`{key, sign, forget}`).
    fn dpop() -> JsValue;
}

/// What the driver signs DPoP proofs with: `undefined` when DPoP is off (or not built).
fn dpop_module(on: bool) -> JsValue {
    #[cfg(feature = "dpop")]
    if on {
        return dpop();
    }
    let _ = on;
    JsValue::UNDEFINED
}

pub(super) struct Inner {
    pub(super) state: Rc<State>,
    pub(super) driver: Driver,
    listeners: RefCell<Vec<Listener>>,
    next_listener: Cell<u32>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.driver.close();
    }
}

/// An event as the JS listeners get it (`detail`, `kind`), back as an [`AuthEvent`].
fn event_of(detail: &JsValue, kind: &JsValue) -> AuthEvent {
    let field = |k| glue::get(detail, k).as_string();
    if kind.as_string().as_deref() == Some("refresh") {
        AuthEvent::Refresh {
            expires_at: glue::get(detail, "expiresAt").as_f64(),
            source: match field("source").as_deref() {
                Some("this-tab") => Source::ThisTab,
                _ => Source::OtherTab,
            },
        }
    } else {
        AuthEvent::Signout {
            reason: match field("reason").as_deref() {
                Some("logout") => SignoutReason::Logout,
                Some("rejected") => SignoutReason::Rejected,
                _ => SignoutReason::OtherTab,
            },
            error: field("error"),
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

/// Awaits one of the driver's promises; its rejection is an `AuthError` or what `fetch`
/// itself threw.
async fn settle(p: Promise) -> Result<JsValue, FetchError> {
    JsFuture::from(p)
        .await
        .map_err(|e| match glue::auth_error_of(&e) {
            Some(a) => FetchError::Auth(a),
            None => FetchError::Js(e),
        })
}

async fn settle_auth(p: Promise) -> Result<JsValue, AuthError> {
    settle(p).await.map_err(|e| match e {
        FetchError::Auth(a) => a,
        FetchError::Js(_) => AuthError::new(ErrorCode::RefreshFailed, "unexpected failure"),
    })
}

impl AuthClient {
    /// Validates the options and loads the stored session. Corrupt stored data is cleared
    /// (signed out), never an error.
    pub fn new(o: Options) -> Result<AuthClient, AuthError> {
        let kind = o.storage;
        let (cfg, settings, fx) = config::check(o)?;
        let store = Store::open(kind, &fx.key);
        let state = Rc::new(State::new(cfg, settings, store));
        let driver = Driver::new(
            Core(state.clone()).into(),
            &state.store,
            fx.cross_tab,
            &fx.refresh_url,
            fx.logout_url,
            &fx.key,
            &fx.lock_name,
            fx.timeout_ms,
            &dpop_module(fx.dpop),
        );
        Ok(AuthClient {
            inner: Rc::new(Inner {
                state,
                driver,
                listeners: RefCell::new(Vec::new()),
                next_listener: Cell::new(0),
            }),
        })
    }

    /// True while tokens are held.
    pub fn authenticated(&self) -> bool {
        self.inner.state.session.borrow().current().is_some()
    }

    /// The access token's expiry (ms since the epoch), if known.
    pub fn expires_at(&self) -> Option<f64> {
        let session = self.inner.state.session.borrow();
        session.current().and_then(|s| s.expires_at)
    }

    /// Registers a listener for every [`AuthEvent`]. Listeners run after the cross-tab lock
    /// is released; a listener that panics aborts the module, so keep them simple.
    pub fn on(&self, listener: impl Fn(&AuthEvent) + 'static) -> ListenerId {
        let inner = &self.inner;
        let f = Closure::<dyn Fn(JsValue, JsValue)>::new(move |detail, kind| {
            listener(&event_of(&detail, &kind))
        });
        let off = inner.state.events.on("", f.as_ref());
        let id = inner.next_listener.get();
        inner.next_listener.set(id.wrapping_add(1));
        inner.listeners.borrow_mut().push((id, f, off));
        ListenerId(id)
    }

    /// Removes a listener.
    pub fn off(&self, id: ListenerId) {
        self.inner.listeners.borrow_mut().retain(|(i, _, off)| {
            let keep = *i != id.0;
            if !keep {
                let _ = off.call0(&JsValue::NULL);
            }
            keep
        });
    }

    /// The listeners, for the JS façade.
    #[cfg(feature = "js")]
    pub(crate) fn events(&self) -> &glue::Events {
        &self.inner.state.events
    }

    /// Stores tokens obtained elsewhere (e.g. your own login call).
    pub fn set_tokens(&self, tokens: TokenResponse) -> Result<(), AuthError> {
        let record = self.inner.state.sign_in(tokens)?;
        // The other tabs' hand-over store, in the background.
        let _ = self.inner.driver.share(&record);
        Ok(())
    }

    /// POSTs `credentials` as JSON to `url`, expects a token response, stores it.
    pub async fn login(&self, url: &str, credentials: &JsValue) -> Result<(), AuthError> {
        settle_auth(self.inner.driver.login(url, credentials))
            .await
            .map(drop)
    }

    /// One serialized refresh, on demand (joins one in flight).
    pub async fn refresh(&self) -> Result<(), AuthError> {
        settle_auth(self.inner.driver.refresh()).await.map(drop)
    }

    /// Signs out: clears the session here and in every tab, and tells the server (best effort).
    pub async fn logout(&self) {
        let _ = settle(self.inner.driver.logout()).await;
    }

    /// With [`Options::dpop`], a DPoP proof by this client's key for a request of the app's
    /// own (e.g. its authorization-code exchange); `invalid_config` when DPoP is off.
    pub async fn dpop_proof(&self, method: &str, url: &str) -> Result<String, AuthError> {
        let p = self.inner.driver.dpop_proof(&method.into(), &url.into());
        let proof = settle_auth(p).await?;
        Ok(proof.as_string().unwrap_or_default())
    }

    /// `fetch(input, init)` with authentication: the JS `fetch` signature.
    pub async fn fetch_with(
        &self,
        input: &JsValue,
        init: &JsValue,
    ) -> Result<Response, FetchError> {
        let r = settle(self.inner.driver.fetch(input, init)).await?;
        Ok(r.unchecked_into())
    }

    /// Sends `request` with authentication (see the crate docs for the rules).
    pub async fn fetch(&self, request: Request) -> Result<Response, FetchError> {
        self.fetch_with(&request, &JsValue::UNDEFINED).await
    }

    /// The driver (`js/driver.js`) as a JS object, for the browser tests that ask the core
    /// through it. Not part of the API (and not in the npm package: nothing exports it).
    #[doc(hidden)]
    pub fn driver_object(&self) -> &JsValue {
        self.inner.driver.as_ref()
    }

    /// The driver, for the JS façade.
    #[cfg(feature = "js")]
    pub(crate) fn driver(&self) -> &Driver {
        &self.inner.driver
    }
}
