//! The core's side of sign-in by redirect: the questions the driver (`js/driver.js`) asks
//! between discovery, the navigation to the provider, the callback, the code exchange and the
//! end of the session. Every rule is in `crate::signin` (pure, natively tested); here they
//! meet the session, storage and the driver's values.

use super::core::Core;
use super::glue::{self, now};
use super::store::Store;
use super::types::*;
use crate::error::{AuthError, ErrorCode};
use crate::json::JsonValue;
use crate::signin::callback::{self, Next, Refused};
use crate::signin::discovery::{self, Metadata};
use crate::signin::id_token;
use crate::signin::request::{self, Authorization, Pairs};
use crate::signin::transaction::{self, Transaction};
use crate::{policy, token};
use alloc::{string::String, vec::Vec};
use core::cell::RefCell;
use js_sys::{Array, Uint8Array};
use wasm_bindgen::JsValue;

type Js<T> = Result<T, JsValue>;

fn err(code: ErrorCode, message: &str) -> JsValue {
    glue::js_error(&AuthError::new(code, message))
}

fn now_secs() -> u32 {
    (now() / 1000.0) as u32
}

/// Sign-in's state in one tab.
#[derive(Default)]
pub(super) struct Flow {
    /// The provider's metadata, with whether it is fresh (see `discovery::cached`).
    meta: RefCell<Option<(Metadata, bool)>>,
    /// The transaction claimed under the lock, with its state, until its exchange is answered.
    claimed: RefCell<Option<(String, Transaction)>>,
}

/// `[k, v]` pairs as the JS array `URLSearchParams` takes.
fn pairs_js(p: &Pairs<'_>) -> Array {
    p.iter()
        .map(|(k, v)| JsValue::from(Array::of2(&(*k).into(), &(*v).into())))
        .collect()
}

/// `[url, pairs]`: where to go (or POST) and with what.
fn to(url: &str, p: &Pairs<'_>) -> JsValue {
    Array::of2(&url.into(), &pairs_js(p)).into()
}

/// The storage of the transaction of `state` (always localStorage: it must survive the
/// redirect, and be there in a new tab).
fn tx_store(key: &str, state: &str) -> Store {
    Store::open(StorageKind::Local, &transaction::key(key, state))
}

fn refused(r: Refused) -> JsValue {
    let (code, m) = match r {
        Refused::Malformed => (
            ErrorCode::StateMismatch,
            "the callback is malformed or its state is not one this SDK makes",
        ),
        Refused::NoTransaction => (
            ErrorCode::NoTransaction,
            "the callback matches no sign-in started in this browser",
        ),
        Refused::Expired => (
            ErrorCode::TransactionExpired,
            "the sign-in took over 10 minutes",
        ),
        Refused::IssMismatch => (
            ErrorCode::IssMismatch,
            "the callback's iss is not the issuer (RFC 9207)",
        ),
        Refused::Provider(e) => {
            let a = AuthError::new(ErrorCode::ProviderError, "the provider refused the sign-in");
            return glue::js_error(&a.with_error(Some(e)));
        }
    };
    err(code, m)
}

/// The `error` of an OAuth error body, when it is a plain code.
fn error_code(text: Option<&str>) -> Option<String> {
    let e = text.and_then(JsValue::parse)?.str_field("error");
    policy::rejection_code(e.as_deref()).map(Into::into)
}

impl Core {
    fn oidc(&self) -> Js<&super::config::Oidc> {
        self.0.cfg.oidc.as_ref().ok_or_else(|| {
            glue::js_error(&AuthError::invalid_option(
                "issuer",
                "is required to sign in by redirect",
            ))
        })
    }

    fn meta(&self) -> core::cell::Ref<'_, Option<(Metadata, bool)>> {
        self.0.signin.meta.borrow()
    }

    /// The discovery document's URL when it must be fetched (not in this tab's memory nor in
    /// storage, or older than an hour); `undefined` when there is nothing to fetch (no issuer:
    /// no discovery).
    pub(super) fn discovery(&self) -> Option<String> {
        let o = self.0.cfg.oidc.as_ref()?;
        if self.meta().as_ref().is_some_and(|m| m.1) {
            return None;
        }
        let cached = self.cache().read();
        let kept = cached.and_then(|c| discovery::cached::<JsValue>(&c, &o.issuer, now_secs()));
        let fresh = kept.as_ref().is_some_and(|m| m.1);
        if kept.is_some() {
            *self.0.signin.meta.borrow_mut() = kept;
        }
        (!fresh).then(|| discovery::url(&o.issuer))
    }

    fn cache(&self) -> Store {
        let mut k = String::from(self.0.store_key());
        k.push_str(":oidc");
        Store::open(StorageKind::Local, &k)
    }

    /// The discovery document's answer (`status` 0: not fetched): kept in memory and storage;
    /// a failure keeps a stale document if there is one, else fails (`signin_failed` when the
    /// provider could not be reached, `invalid_config` when its document is wrong).
    pub(super) fn discovered(&self, status: u16, text: Option<String>) -> Js<()> {
        let o = self.oidc()?;
        let parsed = match (status, text) {
            (200, Some(t)) => Some(discovery::parse::<JsValue>(&t, &o.issuer).map(|m| (m, t))),
            _ => None,
        };
        match parsed {
            Some(Ok((m, text))) => {
                self.cache()
                    .write(Some(&discovery::cache_entry(now_secs(), &text)));
                *self.0.signin.meta.borrow_mut() = Some((m, true));
                Ok(())
            }
            _ if self.meta().is_some() => Ok(()),
            Some(Err(e)) => Err(err(ErrorCode::InvalidConfig, &e.message())),
            None => Err(err(
                ErrorCode::SigninFailed,
                "the provider's discovery document could not be fetched",
            )),
        }
    }

    /// `signIn`/`signInPopup` begin: with 64 `random` bytes, the transaction is made and
    /// stored (expired ones are removed first); `[state, verifier]`. `return_to` must be on
    /// the page's origin (default: the page itself); `params` (`[name, value]` entries) may
    /// not set what the SDK sets.
    pub(super) fn begin(
        &self,
        random: &JsValue,
        return_to: Option<String>,
        params: &JsValue,
        popup: bool,
    ) -> Js<JsValue> {
        let o = self.oidc()?;
        let bytes = Uint8Array::new(random).to_vec();
        let (Ok(v), Ok(s), Ok(n)) = (
            <[u8; 32]>::try_from(&bytes[..32]),
            <[u8; 16]>::try_from(&bytes[32..48]),
            <[u8; 16]>::try_from(&bytes[48..64]),
        ) else {
            return Err(err(ErrorCode::InvalidConfig, "random bytes"));
        };
        let bad_return = || {
            glue::js_error(&AuthError::invalid_option(
                "returnTo",
                "must be a URL on this page's origin",
            ))
        };
        let href = return_to.as_deref().unwrap_or("");
        let [href, _, origin] = glue::resolve_url(href).ok_or_else(bad_return)?;
        let path = transaction::return_path(&href, &origin)
            .filter(|_| glue::page_origin().as_deref() == Some(&origin))
            .ok_or_else(bad_return)?;
        read_params(params)?;
        let state = request::random_value(&s);
        let verifier = request::verifier(&v);
        let auth = Authorization {
            scope: &o.scope,
            ..authorization(o, "", "", "")
        };
        let tx = Transaction {
            created: now_secs(),
            popup,
            done: false,
            verifier: verifier.clone(),
            nonce: auth.wants_nonce().then(|| request::random_value(&n)),
            redirect_uri: o.redirect_uri.clone(),
            return_to: path.into(),
        };
        self.purge();
        tx_store(self.0.store_key(), &state).write(Some(&tx.record()));
        Ok(Array::of2(&state.into(), &verifier.into()).into())
    }

    /// Removes this client's expired transactions from localStorage.
    fn purge(&self) {
        let prefix = transaction::key(self.0.store_key(), "");
        for key in glue::keys(&prefix) {
            let s = Store::open(StorageKind::Local, &key);
            let stale = s.read().and_then(|r| Transaction::parse(&r));
            if stale.map_or(true, |t| t.expired(now_secs())) {
                s.write(None);
            }
        }
    }

    /// The authorization request of the transaction `state`, whose verifier's SHA-256 is
    /// `digest`; with DPoP, `jkt` binds the code to the key. `[url, pairs, pushed]`: with PAR,
    /// the pairs are POSTed to the url (then `pushed`), else the browser goes to url?pairs.
    pub(super) fn authorization(
        &self,
        state: &str,
        digest: &JsValue,
        jkt: Option<String>,
        params: &JsValue,
    ) -> Js<JsValue> {
        let o = self.oidc()?;
        let meta = self.meta();
        let Some((m, _)) = meta.as_ref() else {
            return Err(err(ErrorCode::SigninFailed, "no discovery document"));
        };
        let tx = tx_store(self.0.store_key(), state)
            .read()
            .and_then(|r| Transaction::parse(&r));
        let Some(tx) = tx else {
            return Err(refused(Refused::NoTransaction));
        };
        let challenge = request::challenge(&Uint8Array::new(digest).to_vec());
        let extra = read_params(params)?;
        let auth = Authorization {
            state,
            nonce: tx.nonce.as_deref().unwrap_or_default(),
            challenge: &challenge,
            dpop_jkt: jkt.as_deref(),
            ..authorization(o, "", "", "")
        };
        let p = auth.params(&extra).map_err(|r| {
            glue::js_error(&AuthError::invalid_option(
                "params",
                &reserved_message(&r.0),
            ))
        })?;
        let url = m.par.as_deref().unwrap_or(&m.authorization);
        let answer = Array::of3(&url.into(), &pairs_js(&p), &m.par.is_some().into());
        Ok(answer.into())
    }

    /// The pushed authorization request's answer (RFC 9126 §2.2): `[url, pairs]` to go to
    /// (only `client_id` and `request_uri`), or the provider's refusal.
    pub(super) fn pushed(&self, status: u16, text: Option<String>) -> Js<JsValue> {
        let o = self.oidc()?;
        let meta = self.meta();
        let Some((m, _)) = meta.as_ref() else {
            return Err(err(ErrorCode::SigninFailed, "no discovery document"));
        };
        let uri = text
            .as_deref()
            .and_then(JsValue::parse)
            .and_then(|j| j.str_field("request_uri"));
        match (policy::classify_refresh(status), uri) {
            (policy::RefreshOutcome::Success, Some(uri)) => {
                Ok(to(&m.authorization, &request::pushed(&o.client_id, &uri)))
            }
            (policy::RefreshOutcome::Rejected, _) => {
                let a = AuthError::new(
                    ErrorCode::ProviderError,
                    "the provider refused the pushed request",
                );
                Err(glue::js_error(&a.with_error(error_code(text.as_deref()))))
            }
            _ => Err(err(
                ErrorCode::SigninFailed,
                "the pushed authorization request failed",
            )),
        }
    }
}

fn authorization<'a>(
    o: &'a super::config::Oidc,
    state: &'a str,
    nonce: &'a str,
    challenge: &'a str,
) -> Authorization<'a> {
    Authorization {
        client_id: &o.client_id,
        redirect_uri: &o.redirect_uri,
        scope: &o.scope,
        state,
        nonce,
        challenge,
        dpop_jkt: None,
    }
}

fn reserved_message(name: &str) -> String {
    let mut m = String::from("may not set `");
    m.push_str(name);
    m.push_str("`: rotafetch sets it");
    m
}

/// The `params` option as `[name, value]` pairs (the driver passes `Object.entries`): every
/// value a string, else `invalid_config`.
fn read_params(params: &JsValue) -> Js<Vec<(String, String)>> {
    if params.is_undefined() {
        return Ok(Vec::new());
    }
    let bad = || {
        glue::js_error(&AuthError::invalid_option(
            "params",
            "must map names to strings",
        ))
    };
    let list: &Array = wasm_bindgen::JsCast::dyn_ref(params).ok_or_else(bad)?;
    list.iter()
        .map(|e| {
            let e: Array = e.into();
            Some((e.get(0).as_string()?, e.get(1).as_string()?))
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(bad)
}

impl Core {
    /// `handleRedirect()` at `href`: `null` when it is not a callback (nothing to do), else
    /// `[state, popup]` (`popup`: a `signInPopup` runs it, so the window that opened this one
    /// completes it). A malformed callback fails.
    pub(super) fn callback(&self, href: &str) -> Js<JsValue> {
        let Some(cb) = callback::parse(href).map_err(refused)? else {
            return Ok(JsValue::NULL);
        };
        let tx = tx_store(self.0.store_key(), &cb.state).read();
        let popup = tx
            .and_then(|r| Transaction::parse(&r))
            .is_some_and(|t| t.popup && !t.done);
        Ok(Array::of2(&cb.state.into(), &popup.into()).into())
    }

    /// Under the lock: claims the callback at `href` (its transaction marked done before the
    /// exchange, so a code is exchanged at most once) and answers `[url, pairs]`, the exchange
    /// to POST; or `[returnTo]` when it was exchanged already and the session is there (a
    /// reload, Back, a second call). `expected`: a popup's answer must carry the state of the
    /// popup's sign-in. A refused callback removes its transaction; the session is untouched.
    pub(super) fn claim(&self, href: &str, expected: Option<String>) -> Js<JsValue> {
        let o = self.oidc()?;
        let cb = callback::parse(href).map_err(refused)?;
        let cb = cb
            .filter(|c| expected.as_ref().map_or(true, |s| *s == c.state))
            .ok_or_else(|| refused(Refused::Malformed))?;
        let store = tx_store(self.0.store_key(), &cb.state);
        let tx = store.read().and_then(|r| Transaction::parse(&r));
        let meta = self.meta();
        let Some((m, _)) = meta.as_ref() else {
            return Err(err(ErrorCode::SigninFailed, "no discovery document"));
        };
        match (
            callback::check(&cb, tx.as_ref(), &o.issuer, m.iss_parameter, now_secs()),
            tx,
        ) {
            (Ok(Next::Exchange(code)), Some(mut tx)) => {
                tx.done = true;
                store.write(Some(&tx.record()));
                let exchange =
                    request::exchange(code, &tx.redirect_uri, &tx.verifier, &o.client_id);
                let answer = to(&m.token, &exchange);
                *self.0.signin.claimed.borrow_mut() = Some((cb.state.clone(), tx));
                Ok(answer)
            }
            (Ok(_), Some(tx)) if self.0.session.borrow().is_some() => {
                Ok(Array::of1(&tx.return_to.into()).into())
            }
            (Ok(_), _) => Err(refused(Refused::NoTransaction)),
            (Err(r), tx) => {
                if tx.is_some() {
                    store.write(None);
                }
                Err(refused(r))
            }
        }
    }

    /// The token endpoint's answer to the exchange (`status` 0: not sent or no answer). On
    /// success the session it starts is made (its ID token's claims checked) and its record
    /// returned for the hand-over store, then `commit` keeps it; `[record, returnTo]`. A
    /// transient failure gives the transaction back (`handleRedirect()` may try again); a
    /// refusal ends it.
    pub(super) fn exchanged(&self, status: u16, text: Option<String>) -> Js<JsValue> {
        let st = &self.0;
        let o = self.oidc()?;
        let claimed = st.signin.claimed.borrow_mut().take();
        let Some((state, mut tx)) = claimed else {
            return Err(err(ErrorCode::NotAuthenticated, "no sign-in under way"));
        };
        let text = text.filter(|t| t.len() <= token::MAX_RESPONSE_BYTES);
        let outcome = match status {
            0 => policy::RefreshOutcome::Transient,
            s => policy::classify_refresh(s),
        };
        let rejected = |m: &str, e: Option<String>| {
            glue::js_error(&AuthError::new(ErrorCode::SigninRejected, m).with_error(e))
        };
        match outcome {
            policy::RefreshOutcome::Transient => {
                tx.done = false;
                tx_store(st.store_key(), &state).write(Some(&tx.record()));
                return Err(err(
                    ErrorCode::SigninFailed,
                    "the code exchange failed (network, timeout or server error); handleRedirect() may try again",
                ));
            }
            policy::RefreshOutcome::Rejected => {
                return Err(rejected(
                    "the token endpoint refused the code",
                    error_code(text.as_deref()),
                ))
            }
            policy::RefreshOutcome::Success => {}
        }
        let t = text
            .as_deref()
            .ok_or(token::TokenError::TooLarge)
            .and_then(token::parse::<JsValue>)
            .and_then(|t| token::check_type(&t, st.cfg.dpop()).map(|()| t))
            .map_err(|e| rejected(e.message(), None))?;
        if t.refresh_token.is_none() {
            return Err(rejected(
                "the token response has no refresh_token (ask for offline_access)",
                None,
            ));
        }
        if crate::signin::has_scope(&o.scope, "openid") {
            let want = id_token::Expected {
                issuer: &o.issuer,
                client_id: &o.client_id,
                nonce: tx.nonce.as_deref(),
                now_secs: now() / 1000.0,
            };
            let checked = t
                .id_token
                .as_deref()
                .ok_or(id_token::IdTokenError::Unreadable);
            if let Err(e) = checked.and_then(|i| id_token::check::<JsValue>(i, &want)) {
                let mut m = String::from("the ID token's claims are wrong: ");
                m.push_str(e.claim());
                return Err(rejected(&m, None));
            }
        }
        let id = t.id_token.clone();
        let mut stored = st.stored_from(t, None);
        stored.id_token = id;
        let json = super::session::stored_json(&stored);
        *st.outcome.borrow_mut() = Some(super::session::Outcome::Rotated(stored, json.clone())); // TODO(seam): SignedIn
        Ok(Array::of2(&json.into(), &tx.return_to.into()).into())
    }

    /// The address to leave in the bar after `handleRedirect()` at `href` failed with `code`
    /// (or succeeded): without the response's parameters, except after a transient failure
    /// (`undefined`: kept as it is, so calling again retries).
    pub(super) fn cleaned(&self, href: &str, code: Option<String>) -> Option<String> {
        (code.as_deref() != Some(ErrorCode::SigninFailed.as_str())).then(|| callback::cleaned(href))
    }
}
