//! The core's side of sign-in by redirect: the questions the driver (`js/driver.js`) asks
//! between discovery, the navigation to the provider, the callback, the code exchange and the
//! end of the session. The rules are in `crate::signin` (pure, natively tested); here they
//! meet the configuration, the session and the driver's values. The driver keeps the
//! transactions and the discovery document in storage, reads queries and builds the requests
//! (with `URLSearchParams`): as Rust the same plumbing cost the `.wasm` several KB (README,
//! Size).

use super::core::Core;
use super::glue::{self, now};
use super::types::{AuthEvent, Source};
use crate::error::{AuthError, ErrorCode};
use crate::json::JsonValue;
use crate::policy::{self, RefreshOutcome};
use crate::signin::callback::{self, Next, Param, Refused, Stored};
use crate::signin::{discovery, has_scope, id_token, request, transaction};
use crate::token;
use alloc::string::String;
use js_sys::Array;
use wasm_bindgen::JsValue;

type Js<T> = Result<T, JsValue>;

fn fail(code: ErrorCode, message: &str, error: Option<String>) -> JsValue {
    glue::js_error(&AuthError::new(code, message).with_error(error))
}

fn bad(name: &str, must: &str) -> JsValue {
    glue::js_error(&AuthError::invalid_option(name, must))
}

fn now_secs() -> f64 {
    now() / 1000.0
}

/// A 2xx, rejected or transient reading of a provider endpoint's status (0: no answer).
fn outcome(status: u16) -> RefreshOutcome {
    match status {
        0 => RefreshOutcome::Transient,
        s => policy::classify_refresh(s),
    }
}

/// The `error` of an OAuth error body, when it is a plain code.
fn error_code(text: Option<&str>) -> Option<String> {
    let e = text.and_then(JsValue::parse)?.str_field("error");
    policy::rejection_code(e.as_deref()).map(Into::into)
}

impl Core {
    fn oidc_cfg(&self) -> Js<&super::config::Oidc> {
        let o = self.0.cfg.oidc.as_ref();
        o.ok_or_else(|| bad("issuer", "is required to sign in by redirect"))
    }

    /// `[issuer, clientId, redirectUri, scope, discovery URL]`, what the driver's requests carry;
    /// `undefined` without an issuer (no discovery, no sign-in by redirect).
    pub(super) fn oidc(&self) -> JsValue {
        let Some(o) = self.0.cfg.oidc.as_ref() else {
            return JsValue::UNDEFINED;
        };
        let a = Array::of4(
            &o.issuer.as_str().into(),
            &o.client_id.as_str().into(),
            &o.redirect_uri.as_str().into(),
            &o.scope.as_str().into(),
        );
        a.push(&discovery::url(&o.issuer).into());
        a.into()
    }

    /// The provider's discovery document `doc` (parsed; fetched at `at` seconds, NaN: just
    /// now): fresh enough to use as it is? `invalid_config` when it does not describe the
    /// configured issuer (see `discovery::check`).
    pub(super) fn discovery(&self, doc: &JsValue, at: f64) -> Js<bool> {
        let o = self.oidc_cfg()?;
        discovery::check(doc, &o.issuer)
            .map_err(|e| fail(ErrorCode::InvalidConfig, e.message(), None))?;
        Ok(at.is_nan() || discovery::fresh(at as u32, now_secs() as u32))
    }

    /// A sign-in begins: where to come back to (`return_to`, on this page's origin) as a path,
    /// and whether the names of the app's `params` are none of the reserved ones (the driver
    /// checked their values are strings). `[path, openid]`: `openid` is in the scope, so the
    /// request carries a `nonce`.
    pub(super) fn begin(&self, return_to: &str, names: &Array) -> Js<JsValue> {
        let o = self.oidc_cfg()?;
        let path = glue::resolve_url(return_to).and_then(|[href, _, origin]| {
            let own = glue::page_origin().is_some_and(|p| p == origin);
            own.then(|| transaction::return_path(&href, &origin).map(String::from))?
        });
        let path = path.ok_or_else(|| bad("returnTo", "must be on this page's origin"))?;
        if names
            .iter()
            .any(|n| n.as_string().is_some_and(|n| request::reserved(&n)))
        {
            return Err(bad(
                "params",
                "may not set what rotafetch sets (state, scope, …)",
            ));
        }
        Ok(Array::of2(&path.into(), &has_scope(&o.scope, "openid").into()).into())
    }

    /// A pushed authorization request's answer (RFC 9126 §2.2): its `request_uri`, or the
    /// provider's refusal.
    pub(super) fn pushed(&self, status: u16, text: Option<String>) -> Js<String> {
        let uri = text
            .as_deref()
            .and_then(JsValue::parse)
            .and_then(|j| j.str_field("request_uri"));
        match (outcome(status), uri) {
            (RefreshOutcome::Success, Some(uri)) => Ok(uri),
            (RefreshOutcome::Rejected, _) => Err(fail(
                ErrorCode::ProviderError,
                "the provider refused the pushed request",
                error_code(text.as_deref()),
            )),
            _ => Err(fail(
                ErrorCode::SigninFailed,
                "the pushed request failed",
                None,
            )),
        }
    }

    /// `handleRedirect()`, under the lock: the callback (`q`: its `state`, `code`, `iss` and
    /// `error`, each a value, `undefined` absent or `false` twice), the transaction stored
    /// under its state (`tx`: `{t, d}`, `null` none) and the provider's metadata (`doc`).
    /// 1: exchange the code, once the transaction is marked done (so a code is exchanged at
    /// most once); 2: it was exchanged already and the session is there (a reload, Back, a
    /// second call): nothing to do. `expected`: a popup's answer must carry the popup's state.
    /// Refusals leave the session as it is.
    pub(super) fn claim(
        &self,
        q: &Array,
        tx: &JsValue,
        doc: &JsValue,
        expected: Option<String>,
    ) -> Js<u8> {
        let o = self.oidc_cfg()?;
        let s: [Option<String>; 4] = [0, 1, 2, 3].map(|i| q.get(i).as_string());
        let p = |i: usize| match &s[i] {
            Some(v) => Param::Once(v),
            None if q.get(i as u32).is_undefined() => Param::Absent,
            None => Param::Twice,
        };
        let read = callback::read(p(0), p(1), p(2), p(3));
        let cb = read.and_then(|cb| {
            cb.filter(|cb| expected.as_deref().is_none_or(|x| x == cb.state))
                .ok_or(Refused::Malformed)
        });
        let verdict = cb.and_then(|cb| {
            let stored = tx.num_field("t").map(|t| Stored {
                created: t as u32,
                done: tx.bool_field("d") == Some(true),
            });
            let iss_required = doc.bool_field(discovery::ISS_PARAMETER) == Some(true);
            callback::check(&cb, stored, &o.issuer, iss_required, now_secs() as u32)
        });
        let (code, m) = match verdict {
            Ok(Next::Exchange(_)) => return Ok(1),
            Ok(Next::Done) if self.0.session.borrow().is_some() => return Ok(2),
            Ok(Next::Done) | Err(Refused::NoTransaction) => (
                ErrorCode::NoTransaction,
                "no sign-in of this browser has that state",
            ),
            Err(Refused::Malformed) => (
                ErrorCode::StateMismatch,
                "malformed callback or foreign state",
            ),
            Err(Refused::Expired) => (
                ErrorCode::TransactionExpired,
                "the sign-in took over 10 minutes",
            ),
            Err(Refused::IssMismatch) => (
                ErrorCode::IssMismatch,
                "the callback's iss is not the issuer",
            ),
            Err(Refused::Provider) => {
                (ErrorCode::ProviderError, "the provider refused the sign-in")
            }
        };
        // The provider's own code, when it refused (the driver passed the response's `error`).
        let error = s[3]
            .as_deref()
            .and_then(|e| policy::rejection_code(Some(e)).map(String::from));
        Err(fail(
            code,
            m,
            error.filter(|_| code == ErrorCode::ProviderError),
        ))
    }

    /// Under the lock: the token endpoint's answer to the exchange (`status` 0: no answer);
    /// `nonce`: the sign-in's. On success the session it starts (ID token checked) is kept
    /// here and in the persistent store, its record returned for the hand-over store, and the
    /// `signin` event left for `flush`. Else `signin_failed` (transient: the driver gives the
    /// transaction back, and `handleRedirect()` may try again) or `signin_rejected`.
    pub(super) fn exchanged(
        &self,
        status: u16,
        text: Option<String>,
        nonce: Option<String>,
    ) -> Js<String> {
        let st = &self.0;
        let o = self.oidc_cfg()?;
        let text = text.filter(|t| t.len() <= token::MAX_RESPONSE_BYTES);
        let rejected = |m: &str, e| fail(ErrorCode::SigninRejected, m, e);
        match outcome(status) {
            RefreshOutcome::Success => {}
            RefreshOutcome::Rejected => {
                return Err(rejected(
                    "the provider refused the code",
                    error_code(text.as_deref()),
                ))
            }
            RefreshOutcome::Transient => {
                return Err(fail(
                    ErrorCode::SigninFailed,
                    "the code exchange failed",
                    None,
                ))
            }
        }
        let t = text
            .as_deref()
            .ok_or(token::TokenError::TooLarge)
            .and_then(token::parse::<JsValue>)
            .and_then(|t| token::check_type(&t, st.cfg.dpop()).map(|()| t))
            .map_err(|e| rejected(e.message(), None))?;
        if has_scope(&o.scope, "openid") {
            let want = id_token::Expected {
                issuer: &o.issuer,
                client_id: &o.client_id,
                nonce: nonce.as_deref(),
                now_secs: now_secs(),
            };
            let checked = t
                .id_token
                .as_deref()
                .ok_or(id_token::IdTokenError::Unreadable);
            if let Err(e) = checked.and_then(|i| id_token::check::<JsValue>(i, &want)) {
                let mut m = String::from("the ID token's claim is wrong: ");
                m.push_str(e.claim());
                return Err(rejected(&m, None));
            }
        }
        let record = st
            .sign_in(t)
            .map_err(|_| rejected("no refresh_token (ask for offline_access)", None))?;
        *st.pending.borrow_mut() = Some(AuthEvent::Signin {
            expires_at: st.session.borrow().as_ref().and_then(|s| s.expires_at),
            source: Source::ThisTab,
        });
        Ok(record)
    }
}
