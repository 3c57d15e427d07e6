//! `AuthClient`, the Rust API: the session's core (`core.rs`) and its driver
//! (`js/driver.js`, which carries out the browser effects in the order the core's answers
//! call for).

use super::config;
use super::core::Core;
use super::glue;
use super::state::State;
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
    /// The effects of one client: fetch, the hand-over store, the lock, the `storage` events
    /// (js/driver.js's `AuthClient`, which is the npm package's too).
    #[wasm_bindgen(js_name = AuthClient)]
    pub(crate) type Driver;
    /// `new AuthClient(undefined, parts)`: a driver of the client's parts (see [`wire`]).
    #[wasm_bindgen(constructor, js_class = AuthClient)]
    fn new(options: &JsValue, parts: &JsValue) -> Driver;
    /// `fetch(input, init)` with authentication.
    #[wasm_bindgen(method)]
    pub(crate) fn fetch(this: &Driver, input: &JsValue, init: &JsValue) -> Promise;
    #[wasm_bindgen(method)]
    pub(crate) fn login(this: &Driver, url: &str, credentials: &JsValue) -> Promise;
    /// One serialized refresh, on demand.
    #[wasm_bindgen(method)]
    pub(crate) fn refresh(this: &Driver) -> Promise;
    #[wasm_bindgen(method)]
    pub(crate) fn logout(this: &Driver, options: &JsValue) -> Promise;
    /// `signIn(options)`: to the provider.
    #[wasm_bindgen(method, js_name = signIn)]
    pub(crate) fn sign_in(this: &Driver, options: &JsValue) -> Promise;
    /// `signInPopup(options)`: the same in a popup (opened at once).
    #[wasm_bindgen(method, js_name = signInPopup)]
    pub(crate) fn sign_in_popup(this: &Driver, options: &JsValue) -> Promise;
    /// `handleRedirect()`: completes the sign-in at the redirect URI.
    #[wasm_bindgen(method, js_name = handleRedirect)]
    pub(crate) fn handle_redirect(this: &Driver) -> Promise;
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

/// The DPoP key and proof functions, in builds with DPoP (`undefined` without).
fn dpop_module() -> JsValue {
    #[cfg(feature = "dpop")]
    return dpop();
    #[cfg(not(feature = "dpop"))]
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
    let kind = kind.as_string();
    let expires_at = glue::get(detail, "expiresAt").as_f64();
    let source = match field("source").as_deref() {
        Some("this-tab") => Source::ThisTab,
        _ => Source::OtherTab,
    };
    if kind.as_deref() == Some("refresh") {
        AuthEvent::Refresh { expires_at, source }
    } else if kind.as_deref() == Some("signin") {
        AuthEvent::Signin { expires_at, source }
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

/// The client's parts (js/plumbing.js's `Parts`, made by `readOptions` of the options) made a
/// client: the stored session loaded, the core in its place. The session's state (the npm
/// package's `new AuthClient(options)` and Rust's [`AuthClient::new`] alike).
fn wire(parts: &js_sys::Array) -> Rc<State> {
    let (cfg, settings, store, events) = config::read(parts);
    let state = Rc::new(State::new(cfg, settings, store, events));
    parts.set(config::part::CORE, Core(state.clone()).into());
    state
}

/// `readOptions` (js/plumbing.js) of `options`: the client's parts, or `invalid_config`.
fn read_options(options: &JsValue) -> Result<js_sys::Array, AuthError> {
    let parts = glue::read_options(options, &dpop_module());
    match parts.as_string() {
        Some(m) => Err(AuthError::new(ErrorCode::InvalidConfig, m)),
        None => Ok(parts.unchecked_into()),
    }
}

/// The npm package's `new AuthClient(options)`: the client's parts, the core in them.
#[cfg(feature = "js")]
pub(crate) fn client_parts(options: &JsValue) -> Result<js_sys::Array, AuthError> {
    let parts = read_options(options)?;
    wire(&parts);
    Ok(parts)
}

impl AuthClient {
    /// Validates the options and loads the stored session. Corrupt stored data is cleared
    /// (signed out), never an error.
    pub fn new(o: Options) -> Result<AuthClient, AuthError> {
        let parts = read_options(&o.to_js())?;
        let state = wire(&parts);
        let driver = Driver::new(&JsValue::UNDEFINED, &parts);
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

    /// Signs out: clears the session here and in every tab, and tells the server (best effort:
    /// `logoutUrl`, else the provider's revocation endpoint).
    pub async fn logout(&self) {
        let _ = settle(self.inner.driver.logout(&JsValue::UNDEFINED)).await;
    }

    /// [`logout`](Self::logout), then (with an issuer) the provider's session too: the page goes
    /// to its end-session endpoint, which sends it back to `return_to` (a post-logout URI
    /// registered with the provider) if given.
    pub async fn logout_everywhere(&self, return_to: Option<&str>) {
        let o = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&o, &"endSession".into(), &JsValue::TRUE);
        if let Some(r) = return_to {
            let _ = js_sys::Reflect::set(&o, &"returnTo".into(), &r.into());
        }
        let _ = settle(self.inner.driver.logout(&o)).await;
    }

    /// Sign-in by redirect (needs [`Options::issuer`]): a transaction is stored and the page
    /// goes to the provider; the page at the redirect URI calls
    /// [`handle_redirect`](Self::handle_redirect). `return_to`: where to come back to (on this
    /// origin; default: this page); `params`: extra authorization parameters (`prompt`,
    /// `login_hint`, …), none of rotafetch's own.
    pub async fn sign_in(&self, options: &SignIn) -> Result<(), AuthError> {
        settle_auth(self.inner.driver.sign_in(&options.to_js()))
            .await
            .map(drop)
    }

    /// [`sign_in`](Self::sign_in) in a popup: call it in a click handler (the window opens at
    /// once, before any await, or popup blockers refuse it). Resolves the `return_to` path once
    /// the popup's callback completed the sign-in here.
    pub async fn sign_in_popup(&self, options: &SignIn) -> Result<String, AuthError> {
        let r = settle_auth(self.inner.driver.sign_in_popup(&options.to_js())).await?;
        Ok(glue::get(&r, "returnTo").as_string().unwrap_or_default())
    }

    /// At the redirect URI: completes the sign-in whose callback this page is (once per page)
    /// and cleans the address bar; the `return_to` path, or `None` when the page is no callback.
    pub async fn handle_redirect(&self) -> Result<Option<String>, AuthError> {
        let r = settle_auth(self.inner.driver.handle_redirect()).await?;
        Ok(glue::get(&r, "returnTo").as_string())
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
}
