//! The core's side of sign-in by redirect: the questions the driver (`js/driver.js`) asks
//! between discovery, the navigation to the provider, the callback, the code exchange and the
//! end of the session. The rules are in `crate::signin` (pure, natively tested); here they
//! meet the configuration, the session and the driver's values. The driver keeps the
//! transactions and the discovery document in storage, reads queries and encodes forms.

use super::core::Core;
use super::glue::{self, now};
use crate::error::{AuthError, ErrorCode};
use crate::json::JsonValue;
use crate::policy::{self, RefreshOutcome};
use crate::signin::callback::{self, Next, Param, Refused, Stored};
use crate::signin::discovery::{self, Metadata};
use crate::signin::request::{self, Authorization, Pairs};
use crate::signin::{has_scope, id_token, transaction};
use crate::token;
use alloc::{string::String, vec::Vec};
use core::cell::RefCell;
use js_sys::Array;
use wasm_bindgen::JsValue;

type Js<T> = Result<T, JsValue>;

fn fail(code: ErrorCode, message: &str) -> JsValue {
    glue::js_error(&AuthError::new(code, message))
}

fn fail_with(code: ErrorCode, message: &str, error: Option<String>) -> JsValue {
    glue::js_error(&AuthError::new(code, message).with_error(error))
}

fn now_secs() -> u32 {
    (now() / 1000.0) as u32
}

/// Sign-in's state in one tab: the provider's metadata and whether it is fresh.
#[derive(Default)]
pub(super) struct Flow(RefCell<Option<(Metadata, bool)>>);

/// `[url, k1, v1, k2, v2, …]`: where to go or POST, and the form (`URLSearchParams`).
fn to(url: &str, pairs: &Pairs<'_>) -> JsValue {
    let a = Array::of1(&url.into());
    for (k, v) in pairs {
        a.push(&(*k).into());
        a.push(&(*v).into());
    }
    a.into()
}

/// A query parameter as the driver passes it: the value, `undefined` absent, `false` twice.
fn param(v: &JsValue) -> Param {
    match v.as_string() {
        Some(s) => Param::Once(s),
        None if v.is_undefined() => Param::Absent,
        None => Param::Twice,
    }
}

fn refused(r: Refused) -> JsValue {
    let (code, m) = match r {
        Refused::Malformed => (ErrorCode::StateMismatch, "malformed callback or foreign state"),
        Refused::NoTransaction => (ErrorCode::NoTransaction, "no sign-in of this browser has that state"),
        Refused::Expired => (ErrorCode::TransactionExpired, "the sign-in took over 10 minutes"),
        Refused::IssMismatch => (ErrorCode::IssMismatch, "the callback's iss is not the issuer"),
        Refused::Provider(e) => {
            return fail_with(ErrorCode::ProviderError, "the provider refused", Some(e))
        }
    };
    fail(code, m)
}

/// The `error` of an OAuth error body, when it is a plain code.
fn error_code(text: Option<&str>) -> Option<String> {
    let e = text.and_then(JsValue::parse)?.str_field("error");
    policy::rejection_code(e.as_deref()).map(Into::into)
}

/// A 2xx/rejected/transient reading of a provider endpoint's status (0: no answer).
fn outcome(status: u16) -> RefreshOutcome {
    match status {
        0 => RefreshOutcome::Transient,
        s => policy::classify_refresh(s),
    }
}

impl Core {
    fn oidc(&self) -> Js<&super::config::Oidc> {
        let o = self.0.cfg.oidc.as_ref();
        o.ok_or_else(|| glue::js_error(&AuthError::invalid_option("issuer", "is required")))
    }

    /// Runs `f` on the metadata (`signin_failed` when there is none).
    fn with_meta<T>(&self, f: impl FnOnce(&Metadata) -> Js<T>) -> Js<T> {
        let meta = self.0.signin.0.borrow();
        let m = meta.as_ref().map(|m| &m.0);
        f(m.ok_or_else(|| fail(ErrorCode::SigninFailed, "no discovery document"))?)
    }

    /// The discovery document to fetch (its URL), given the one in storage (`text` fetched at
    /// `at` seconds, kept if it describes the issuer); `undefined` when the one in memory or
    /// storage is fresh, or without an issuer.
    pub(super) fn discovery(&self, text: Option<String>, at: f64) -> Option<String> {
        let issuer = &self.0.cfg.oidc.as_ref()?.issuer;
        let flow = &self.0.signin.0;
        if flow.borrow().as_ref().is_none_or(|m| !m.1) {
            if let Some(m) = text.and_then(|t| discovery::parse::<JsValue>(&t, issuer).ok()) {
                *flow.borrow_mut() = Some((m, discovery::fresh(at as u32, now_secs())));
            }
        }
        let fresh = flow.borrow().as_ref().is_some_and(|m| m.1);
        (!fresh).then(|| discovery::url(issuer))
    }

    /// The document's answer (`status` 0: not fetched): kept (the driver stores it); a failure
    /// keeps a stale document if there is one, else fails (`signin_failed` when the provider
    /// could not be reached, `invalid_config` when its document is wrong).
    pub(super) fn discovered(&self, status: u16, text: Option<String>) -> Js<bool> {
        let o = self.oidc()?;
        let flow = &self.0.signin.0;
        let parsed = text.filter(|_| status == 200).map(|t| discovery::parse::<JsValue>(&t, &o.issuer));
        match parsed {
            Some(Ok(m)) => {
                *flow.borrow_mut() = Some((m, true));
                Ok(true)
            }
            _ if flow.borrow().is_some() => Ok(false),
            Some(Err(e)) => Err(fail(ErrorCode::InvalidConfig, &e.message())),
            None => Err(fail(ErrorCode::SigninFailed, "discovery document unreachable")),
        }
    }

    /// A sign-in's authorization request: `state`, the PKCE `challenge` and `nonce` made by the
    /// driver, with DPoP the key's thumbprint `jkt`, the app's `params` (`[k, v, …]`), where
    /// to return (`return_to`, on this origin). `[url, pairs…]` plus, at the end, the return
    /// path and whether the pairs are POSTed to `url` first (PAR).
    pub(super) fn authorize(
        &self,
        state: &str,
        challenge: &str,
        nonce: &str,
        jkt: Option<String>,
        params: &JsValue,
        return_to: &str,
    ) -> Js<JsValue> {
        let o = self.oidc()?;
        let bad = |name, must| glue::js_error(&AuthError::invalid_option(name, must));
        let path = glue::resolve_url(return_to).and_then(|[href, _, origin]| {
            let page = glue::page_origin()?;
            (origin == page).then_some(())?;
            transaction::return_path(&href, &origin).map(String::from)
        });
        let path = path.ok_or_else(|| bad("returnTo", "must be on this page's origin"))?;
        let extra: Vec<JsValue> = Array::from(params).to_vec();
        let strings: Vec<String> = extra.iter().filter_map(JsValue::as_string).collect();
        if strings.len() != extra.len() || strings.len() % 2 == 1 {
            return Err(bad("params", "must map names to strings"));
        }
        if strings.chunks(2).any(|kv| request::reserved(&kv[0])) {
            return Err(bad("params", "may not set what rotafetch sets (state, redirect_uri, …)"));
        }
        let auth = Authorization {
            client_id: &o.client_id,
            redirect_uri: &o.redirect_uri,
            scope: &o.scope,
            state,
            nonce,
            challenge,
            dpop_jkt: jkt.as_deref(),
        };
        let mut p = auth.params();
        p.extend(strings.chunks(2).map(|kv| (kv[0].as_str(), kv[1].as_str())));
        self.with_meta(|m| {
            let answer = to(m.par.as_deref().unwrap_or(&m.authorization), &p);
            let a: &Array = answer.unchecked_ref();
            a.push(&path.as_str().into());
            a.push(&m.par.is_some().into());
            Ok(answer)
        })
    }

    /// The pushed request's answer (RFC 9126 §2.2): `[url, pairs…]` to go to (only `client_id`
    /// and `request_uri`), or the provider's refusal.
    pub(super) fn pushed(&self, status: u16, text: Option<String>) -> Js<JsValue> {
        let o = self.oidc()?;
        let uri = text.as_deref().and_then(JsValue::parse).and_then(|j| j.str_field("request_uri"));
        self.with_meta(|m| match (outcome(status), uri) {
            (RefreshOutcome::Success, Some(uri)) => Ok(to(&m.authorization, &request::pushed(&o.client_id, &uri))),
            (RefreshOutcome::Rejected, _) => Err(fail_with(
                ErrorCode::ProviderError,
                "the provider refused the pushed request",
                error_code(text.as_deref()),
            )),
            _ => Err(fail(ErrorCode::SigninFailed, "the pushed request failed")),
        })
    }

    /// `handleRedirect()`: the callback's `state`, or `null` when the page is no callback
    /// (`s`, `c`, `i`, `e`: its state, code, iss and error, see `param`). Fails when malformed.
    pub(super) fn callback(&self, s: &JsValue, c: &JsValue, i: &JsValue, e: &JsValue) -> Js<Option<String>> {
        let cb = callback::read(param(s), param(c), param(i), param(e)).map_err(refused)?;
        Ok(cb.map(|cb| cb.state))
    }

    /// Under the lock: the callback (`s`, `c`, `i`, `e`) with the transaction stored under its
    /// state (`tx`: `{t, d, v}`, `null` none). `[url, pairs…]`: the exchange to POST, after the
    /// driver marks the transaction done (a code is exchanged at most once); `true`: it was
    /// exchanged already and the session is there (a reload, Back, a second call). `expected`:
    /// a popup's answer must carry the popup's state. Refusals leave the session as it is.
    pub(super) fn claim(&self, args: &[JsValue; 4], tx: &JsValue, expected: Option<String>) -> Js<JsValue> {
        let o = self.oidc()?;
        let [s, c, i, e] = args;
        let cb = callback::read(param(s), param(c), param(i), param(e)).map_err(refused)?;
        let cb = cb
            .filter(|cb| expected.as_ref().is_none_or(|x| *x == cb.state))
            .ok_or_else(|| refused(Refused::Malformed))?;
        let stored = tx.num_field("t").map(|t| Stored {
            created: t as u32,
            done: tx.bool_field("d") == Some(true),
        });
        let verifier = tx.str_field("v").unwrap_or_default();
        self.with_meta(|m| match callback::check(&cb, stored, &o.issuer, m.iss_parameter, now_secs()) {
            Ok(Next::Exchange(code)) => {
                Ok(to(&m.token, &request::exchange(code, &o.redirect_uri, &verifier, &o.client_id)))
            }
            Ok(Next::Done) if self.0.session.borrow().is_some() => Ok(JsValue::TRUE),
            Ok(Next::Done) => Err(refused(Refused::NoTransaction)),
            Err(r) => Err(refused(r)),
        })
    }

    /// The token endpoint's answer to the exchange (`status` 0: no answer); `nonce`: the
    /// sign-in's. On success the session it starts (ID token checked) is made and its record
    /// returned for the hand-over store; `commit` then keeps it. `signin_failed` (transient:
    /// the driver gives the transaction back, and `handleRedirect()` may try again) or
    /// `signin_rejected`.
    pub(super) fn exchanged(&self, status: u16, text: Option<String>, nonce: Option<String>) -> Js<String> {
        let st = &self.0;
        let o = self.oidc()?;
        let text = text.filter(|t| t.len() <= token::MAX_RESPONSE_BYTES);
        let rejected = |m: &str, e| fail_with(ErrorCode::SigninRejected, m, e);
        match outcome(status) {
            RefreshOutcome::Success => {}
            RefreshOutcome::Rejected => {
                return Err(rejected("the token endpoint refused the code", error_code(text.as_deref())))
            }
            RefreshOutcome::Transient => {
                return Err(fail(ErrorCode::SigninFailed, "the code exchange failed; try again"))
            }
        }
        let t = text
            .as_deref()
            .ok_or(token::TokenError::TooLarge)
            .and_then(token::parse::<JsValue>)
            .and_then(|t| token::check_type(&t, st.cfg.dpop()).map(|()| t))
            .map_err(|e| rejected(e.message(), None))?;
        if t.refresh_token.is_none() {
            return Err(rejected("no refresh_token (ask for offline_access)", None));
        }
        if has_scope(&o.scope, "openid") {
            let want = id_token::Expected {
                issuer: &o.issuer,
                client_id: &o.client_id,
                nonce: nonce.as_deref(),
                now_secs: now() / 1000.0,
            };
            let checked = t.id_token.as_deref().ok_or(id_token::IdTokenError::Unreadable);
            if let Err(e) = checked.and_then(|i| id_token::check::<JsValue>(i, &want)) {
                let mut m = String::from("wrong ID token claim: ");
                m.push_str(e.claim());
                return Err(rejected(&m, None));
            }
        }
        let id = t.id_token.clone();
        let mut stored = st.stored_from(t, None);
        stored.id_token = id;
        let json = super::session::stored_json(&stored);
        *st.outcome.borrow_mut() = Some(super::session::Outcome::Rotated(stored, json.clone())); // TODO(seam): SignedIn
        Ok(json)
    }
}

use wasm_bindgen::JsCast;
