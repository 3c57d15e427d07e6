//! The core's side of sign-in by redirect: what the provider's answers mean. Its discovery
//! document (`discovery`), the callback (`claim`), the ID token of the code exchange
//! (`id_token`) are decided here, on the pure rules of `crate::signin` (natively tested); the
//! token response itself goes the way of `login`'s (`Core::logged_in`).
//!
//! The driver (`js/driver.js`) does the rest with what the browser has for free: it keeps the
//! transactions and the discovery document in storage (JSON), makes the random values and the
//! PKCE challenge (`crypto`), reads the callback's query and builds the requests
//! (`URLSearchParams`), and checks the app's own `returnTo` and `params`. Measured: the same
//! plumbing as Rust cost the `.wasm` about 4 KB gzip more (README, Size).

use super::core::Core;
use super::glue::{self, now};
use crate::error::{AuthError, ErrorCode};
use crate::json::JsonValue;
use crate::policy;
use crate::signin::callback::{self, Next, Param, Refused, Stored};
use crate::signin::{discovery, id_token};
use alloc::string::String;
use wasm_bindgen::JsValue;

type Js<T> = Result<T, JsValue>;

fn now_secs() -> f64 {
    now() / 1000.0
}

impl Core {
    fn oidc(&self) -> Js<&super::config::Oidc> {
        let o = self.0.cfg.oidc.as_ref();
        o.ok_or_else(|| glue::js_error(&AuthError::invalid_option("issuer", "is required")))
    }

    /// The provider's discovery document (`doc`, parsed; `null` when it was not JSON): does it
    /// describe the configured issuer (see `discovery::check`)? Throws `invalid_config` when not.
    pub(super) fn discovery(&self, doc: &JsValue) -> Js<()> {
        discovery::check(doc, &self.oidc()?.issuer)
            .map_err(|e| glue::js_error(&AuthError::new(ErrorCode::InvalidConfig, e.message())))
    }

    /// Is a discovery document fetched at `at` (seconds) still fresh (an hour)?
    pub(super) fn fresh(&self, at: f64) -> bool {
        discovery::fresh(at as u32, now_secs() as u32)
    }

    /// `handleRedirect()`, under the lock: the callback (`q`: its `state`, `code`, `iss` and
    /// `error`, each its value, `undefined` absent or `false` twice), when the transaction
    /// stored under its state was made (`created`, seconds; NaN: none) and whether its code was
    /// exchanged already (`done`), and the provider's metadata (`doc`). 1: exchange the code,
    /// once the transaction is marked done (so a code is exchanged at most once); 2: it was
    /// exchanged already and the session is there (a reload, Back, a second call): nothing to
    /// do. `expected`: a popup's answer must carry the popup's state. Throws the refusals,
    /// typed; they leave the session as it is.
    pub(super) fn claim(
        &self,
        q: &[JsValue],
        created: f64,
        done: bool,
        doc: &JsValue,
        expected: Option<String>,
    ) -> Js<u8> {
        let o = self.oidc()?;
        let s: [Option<String>; 4] = [0, 1, 2, 3].map(|i| q[i].as_string());
        let p = |i: usize| match &s[i] {
            Some(v) => Param::Once(v),
            None if q[i].is_undefined() => Param::Absent,
            None => Param::Twice,
        };
        let verdict = callback::read(p(0), p(1), p(2), p(3)).and_then(|cb| {
            let cb = cb
                .filter(|cb| expected.as_deref().is_none_or(|x| x == cb.state))
                .ok_or(Refused::Malformed)?;
            let tx = (!created.is_nan()).then_some(Stored {
                created: created as u32,
                done,
            });
            let iss_required = doc.bool_field(discovery::ISS_PARAMETER) == Some(true);
            callback::check(&cb, tx, &o.issuer, iss_required, now_secs() as u32).map(|n| {
                u8::from(matches!(n, Next::Done)) + 1
            })
        });
        let (code, m) = match verdict {
            Ok(2) if self.0.session.borrow().is_none() => {
                (ErrorCode::NoTransaction, "no sign-in of this browser has that state")
            }
            Ok(n) => return Ok(n),
            Err(Refused::NoTransaction) => {
                (ErrorCode::NoTransaction, "no sign-in of this browser has that state")
            }
            Err(Refused::Malformed) => (ErrorCode::StateMismatch, "malformed callback or foreign state"),
            Err(Refused::Expired) => (ErrorCode::TransactionExpired, "the sign-in took over 10 minutes"),
            Err(Refused::IssMismatch) => (ErrorCode::IssMismatch, "the callback's iss is not the issuer"),
            Err(Refused::Provider) => (ErrorCode::ProviderError, "the provider refused the sign-in"),
        };
        // With the provider's own code when it refused.
        let error = s[3].as_deref().filter(|_| code == ErrorCode::ProviderError);
        let error = policy::rejection_code(error).unwrap_or("error");
        let e = AuthError::new(code, m).with_error((code == ErrorCode::ProviderError).then(|| error.into()));
        Err(glue::js_error(&e))
    }

    /// The code exchange's ID token (`token`; `undefined`: none) for the sign-in that sent
    /// `nonce`: the claim that is wrong (`iss`, `aud`, …), `undefined` when all are right or
    /// the scope has no `openid` (then none is expected).
    pub(super) fn id_token(&self, token: Option<String>, nonce: Option<String>) -> Js<Option<&'static str>> {
        let o = self.oidc()?;
        if !crate::signin::has_scope(&o.scope, "openid") {
            return Ok(None);
        }
        let want = id_token::Expected {
            issuer: &o.issuer,
            client_id: &o.client_id,
            nonce: nonce.as_deref(),
            now_secs: now_secs(),
        };
        let checked = token.as_deref().ok_or(id_token::IdTokenError::Unreadable);
        Ok(checked.and_then(|t| id_token::check::<JsValue>(t, &want)).err().map(|e| e.claim()))
    }
}
