//! `Core`: every decision of the browser layer, as synchronous calls the driver
//! (`js/driver.js`) makes between the effects it carries out (fetch, IndexedDB, the lock).
//! The driver sequences; what each answer means, what to store and what to tell the app are
//! decided here, on the pure modules.
//!
//! The driver asks through one export, `ask(name, args)`; `js/core.d.ts` types each question
//! as a method (`core_.start(…)`), `crate::seam` names them and their numeric answers (a
//! misspelt question fails `tsc` in `make lint`, and throws here). A question, the Rust fn
//! that answers it and the pure decision it asks share one name.
//!
//! | question (args) → answer | asked by the driver | decides with |
//! |---|---|---|
//! | **Queries**: the session as it is | | |
//! | `start(url, hasAuthorization, mode)` → `Start` | `fetch`, before anything | the allow-list, `policy::refresh_before_send` |
//! | `access()` → token or `undefined` | before each send and replay | |
//! | `on401(carried, sentUrl, answeredUrl, redirected, refreshInFlight, wwwAuthenticate, replayed)` → `On401` | each 401 to an authenticated call | `policy::on_401` |
//! | `sendAnyway(code)` → bool | the refresh before sending failed: send the old token? | `policy::send_anyway` |
//! | `generation()` → number | before taking the lock | |
//! | `tooBig(contentLength)` → bool | a token endpoint's headers are in | `token::declares_more_than` |
//! | `login(url)` → href | `login()` begins | |
//! | `fail(kind)` → `AuthError` | the driver's own failures (`DriverError`) | |
//! | `idToken()` → token or `undefined` | `logout({endSession})`: the end-session request's hint | |
//! | `proofFor(url)` → `[htu, nonce]` | DPoP: before each proof | `dpop::htu` |
//! | `tokenChallenge(status, text, retried)` → bool (send again) | DPoP: a token endpoint answered | `dpop::token_challenge` |
//! | **Inputs**: what the driver saw | | |
//! | `adopt(value)` | another tab's `storage` event | |
//! | `adoptBeforeLock(shared, failed)` → bool (adopted) | a refresh, before queueing for the lock | `policy::adopt_before_lock` |
//! | `sync(shared, generation)` | under the lock: the hand-over store read | |
//! | `answer(status, text)` → record or `null` | the refresh endpoint answered | `policy::classify_refresh` |
//! | `loggedIn(status, text, signin)` → record | the login endpoint, or a sign-in's token endpoint, answered | |
//! | `took(url, nonce)` | DPoP: any response with `DPoP-Nonce` | `dpop::Nonces` |
//! | **Commands**: the session moves on | | |
//! | `beginRefresh(failed)` → `[type, body]` or `null` | under the lock, after `sync`: marks the refresh under way | `policy::still_needed` |
//! | `commit()` | the hand-over store holds `answer`'s record | |
//! | `flush()` | the lock is released: tells the listeners | |
//! | `signOut()` → refresh token | `logout()` begins | |
//! | `handOver(shared)` → refresh token | `logout()`, under the lock | |
//!
//! A refresh, in the driver's order: `adoptBeforeLock` (done if true) → the lock →
//! `generation` + `sync` → `beginRefresh` (done if `null`) → POST → `answer` → the hand-over
//! store written → `commit` → the lock released → `flush`.

use super::glue::{self, now};
use super::session::{other_tab_event, parse_record, stored_json, Outcome, State};
use super::types::*;
use crate::dpop;
use crate::error::{push_decimal, AuthError, ErrorCode};
use crate::policy::{self, RefreshOutcome, Seen401};
use crate::seam::{DriverError, Question, Replayed, Start};
use crate::token;
use alloc::rc::Rc;
use alloc::{borrow::ToOwned, string::String};
use wasm_bindgen::prelude::*;

/// The driver's handle on the session (not part of the public API).
#[wasm_bindgen(skip_typescript)]
pub struct Core(pub(super) Rc<State>);

/// The errors the driver itself meets (`Core::fail`).
fn driver_error(kind: DriverError) -> AuthError {
    match kind {
        DriverError::LockTimeout => refresh_failed("timed out waiting for another tab's refresh"),
        DriverError::Aborted => AuthError::new(ErrorCode::Aborted, "the request was aborted"),
        DriverError::NotReplayable => AuthError::new(
            ErrorCode::BodyNotReplayable,
            "the request needs a replay after a refresh, but its body is a stream",
        ),
        DriverError::NotSignedIn => not_authenticated(),
        DriverError::BadCredentials => {
            AuthError::invalid_option("credentials", "must be JSON-serialisable")
        }
        DriverError::DpopOff => AuthError::invalid_option("dpop", "is off: no proof to make"),
        DriverError::NoKey => {
            refresh_failed("no DPoP key could be read or made (IndexedDB or crypto.subtle failed)")
        }
        DriverError::NoDiscovery => {
            refresh_failed("the provider's discovery document could not be fetched")
        }
    }
}

/// A question this core does not have (`name`), or a `fail` kind: a bug in the driver,
/// thrown as an `Error` that names it, never read as an answer.
fn unknown(what: &str, name: &str) -> ! {
    let mut m = String::from(what);
    m.push_str(name);
    wasm_bindgen::throw_str(&m)
}

fn refresh_failed(msg: &str) -> AuthError {
    AuthError::new(ErrorCode::RefreshFailed, msg)
}

fn not_authenticated() -> AuthError {
    AuthError::new(ErrorCode::NotAuthenticated, "not signed in")
}

type Js<T> = Result<T, JsValue>;

fn js<T>(r: Result<T, AuthError>) -> Js<T> {
    r.map_err(|e| glue::js_error(&e))
}

/// A request body sent to `refreshUrl` or `logoutUrl`: `{"refresh_token": RT}`.
fn json_body(rt: &str) -> String {
    let mut b = String::from("{\"refresh_token\":\"");
    b.push_str(rt);
    b.push_str("\"}");
    b
}

/// The `error` of an OAuth error body (RFC 6749 §5.2), when it is a plain code.
fn error_code(text: Option<&str>) -> Option<String> {
    let j = text.and_then(<JsValue as crate::json::JsonValue>::parse)?;
    let e = crate::json::JsonValue::str_field(&j, "error");
    policy::rejection_code(e.as_deref()).map(str::to_owned)
}

/// `[content type, body]` for the driver's POST.
fn post(content_type: &str, body: &str) -> JsValue {
    js_sys::Array::of2(&content_type.into(), &body.into()).into()
}

impl Core {
    fn state(&self) -> &State {
        &self.0
    }
}

#[wasm_bindgen(js_class = Core)]
impl Core {
    /// The driver's one way in: the question `name` (see the table above) with its `args`.
    /// One export instead of one per question: each export costs the `.wasm` a shim and the
    /// glue a method (measured: 0.6 KB gzip for the eighteen). A name that is no question
    /// throws.
    pub fn ask(&self, name: &str, args: &js_sys::Array) -> Js<JsValue> {
        let Some(question) = Question::of(name) else {
            unknown("rotafetch: the core has no question ", name)
        };
        let arg = |i| args.get(i);
        let text = |i| arg(i).as_string();
        let num = |i| arg(i).as_f64().unwrap_or(0.0);
        let flag = |i| arg(i).is_truthy();
        let str = |i: u32| text(i).unwrap_or_default();
        Ok(match question {
            Question::Start => self.start(&str(0), flag(1), &str(2)).into(),
            Question::Access => self.access().into(),
            Question::On401 => self
                .on_401(
                    &str(0),
                    &str(1),
                    &str(2),
                    flag(3),
                    flag(4),
                    text(5),
                    num(6) as u8,
                )
                .into(),
            Question::SendAnyway => self.send_anyway(text(0)).into(),
            Question::Generation => self.generation().into(),
            Question::TooBig => self.too_big(text(0)).into(),
            Question::Login => self.login(&str(0))?.into(),
            Question::Fail => self.fail(num(0) as u8),
            #[cfg(feature = "dpop")]
            Question::ProofFor => self.proof_for(&str(0))?,
            #[cfg(feature = "dpop")]
            Question::TokenChallenge => {
                self.token_challenge(num(0) as u16, text(1), flag(2)).into()
            }
            Question::Adopt => {
                self.adopt(&arg(0));
                JsValue::UNDEFINED
            }
            Question::AdoptBeforeLock => self.adopt_before_lock(&arg(0), text(1)).into(),
            Question::Sync => self
                .sync(&arg(0), num(1) as u32)
                .map(|()| JsValue::UNDEFINED)?,
            Question::Answer => self.answer(num(0) as u16, text(1))?,
            Question::LoggedIn => self.logged_in(num(0) as u16, text(1), flag(2))?.into(),
            #[cfg(feature = "dpop")]
            Question::Took => {
                self.took(&str(0), text(1));
                JsValue::UNDEFINED
            }
            Question::BeginRefresh => self.begin_refresh(text(0))?,
            Question::Commit => self.commit().map(|()| JsValue::UNDEFINED)?,
            Question::Flush => {
                self.flush();
                JsValue::UNDEFINED
            }
            Question::SignOut => self.sign_out().into(),
            Question::HandOver => self.hand_over(&arg(0)).into(),
            Question::IdToken => self.id_token().into(),
        })
    }
}

impl Core {
    // The request path.

    /// A request to `url` (with an `Authorization` of its own or not, of `redirect` mode
    /// `mode`): how to send it, a [`Start`] (`Pass`, `Send` or `RefreshFirst`, plus the flag
    /// `Strict`).
    fn start(&self, url: &str, has_authorization: bool, mode: &str) -> u8 {
        let st = self.state();
        if has_authorization || !policy::origin_of_href(url).is_some_and(|o| st.cfg.allow.allows(o))
        {
            return Start::Pass as u8;
        }
        let strict = st.cfg.redirects == Redirects::Error && mode == "follow";
        let how = if st.due() {
            Start::RefreshFirst
        } else {
            Start::Send
        };
        how as u8 | if strict { Start::Strict as u8 } else { 0 }
    }

    /// The access token to send, `undefined` when signed out.
    fn access(&self) -> Option<String> {
        self.state().access()
    }

    /// A 401 to a request that carried `carried`: an [`On401`](policy::On401). `replayed` is
    /// what this call already did, a bit set of [`Replayed`]: each happens at most once per
    /// call.
    #[allow(clippy::too_many_arguments)]
    fn on_401(
        &self,
        carried: &str,
        sent_url: &str,
        answered_url: &str,
        redirected: bool,
        refresh_in_flight: bool,
        www_authenticate: Option<String>,
        replayed: u8,
    ) -> u8 {
        let st = self.state();
        let done = |r: Replayed| replayed & r as u8 != 0;
        let session = st.session.borrow();
        let seen = Seen401 {
            nonce_challenge: st
                .cfg
                .dpop()
                .then(|| {
                    let www = www_authenticate.as_deref();
                    dpop::resource_challenge(401, www, done(Replayed::Nonce))
                })
                .flatten(),
            was_replay: done(Replayed::Token),
            carried_token: policy::token_reached(sent_url, answered_url, redirected),
            carried_is_current: session.as_ref().map(|s| s.access_token.as_str()) == Some(carried),
            have_access: session.is_some(),
            have_refresh: true,
            refresh_in_flight,
            now: now(),
            refreshed_at: session.as_ref().and_then(|s| s.refreshed_at),
            min_interval_ms: st.cfg.min_interval_ms,
        };
        policy::on_401(seen) as u8
    }

    /// After the refresh before sending failed with `code`: send with the old token anyway?
    /// Only after a transient failure, while the token (refreshed early) has not expired.
    fn send_anyway(&self, code: Option<String>) -> bool {
        let session = self.state().session.borrow();
        policy::send_anyway(
            code.as_deref() == Some(ErrorCode::RefreshFailed.as_str()),
            session.is_some(),
            session.as_ref().and_then(|s| s.expires_at),
            now(),
        )
    }

    /// An error of the driver's own, a [`DriverError`].
    fn fail(&self, kind: u8) -> JsValue {
        let Some(kind) = DriverError::of(kind) else {
            unknown("rotafetch: the core has no such driver error", "")
        };
        glue::js_error(&driver_error(kind))
    }

    // The refresh (`js/driver.js`'s `refresh_` and `runRefresh_`).

    /// The fast path before queueing for the lock: another tab's rotation that has already
    /// committed to the hand-over store (`shared`), newer than ours and not due, and not the
    /// token this refresh was meant to replace, is adopted (true: nothing left to do). Under
    /// load, eight tabs queueing for the lock one after another could otherwise take longer
    /// than the new token's refresh window.
    fn adopt_before_lock(&self, shared: &JsValue, failed: Option<String>) -> bool {
        let st = self.state();
        let Some(s) = parse_record(shared) else {
            return false;
        };
        let adopt = {
            let mine = st.session.borrow();
            policy::adopt_before_lock(
                mine.is_some(),
                mine.as_ref().and_then(|m| m.expires_at),
                s.expires_at,
                s.refresh_at,
                failed.as_deref() == Some(&s.access_token),
                now(),
            )
        };
        if adopt {
            st.adopt(Some(s));
            return true;
        }
        false
    }

    /// The session's generation (see `sync`).
    fn generation(&self) -> u32 {
        self.state().generation.get()
    }

    /// Under the lock: takes over what the last lock holder left in the hand-over store
    /// (`shared`: a record, `null` signed out, `undefined` nothing read). Fails when this tab
    /// signed in or out since `generation`.
    fn sync(&self, shared: &JsValue, generation: u32) -> Js<()> {
        let st = self.state();
        if shared.is_undefined() {
            return Ok(());
        }
        if st.generation.get() != generation {
            return js(Err(not_authenticated()));
        }
        let shared = parse_record(shared);
        if shared != *st.session.borrow() {
            *st.pending.borrow_mut() = Some(other_tab_event(&shared));
            st.set_session(shared);
        }
        Ok(())
    }

    /// Begins the refresh: the request to send (`[content type, body]`), the session it
    /// replaces kept as the refresh under way (`answer` takes it); or `null` when there is
    /// nothing to do: another tab rotated already (learnt from the hand-over store or its
    /// `storage` event), the token this refresh was meant to replace (`failed`) is gone and
    /// the current one is not due.
    fn begin_refresh(&self, failed: Option<String>) -> Js<JsValue> {
        let st = self.state();
        let Some(cur) = st.session.borrow().clone() else {
            return js(Err(not_authenticated()));
        };
        let failed_is_current = failed.as_deref() == Some(&cur.access_token);
        if !policy::still_needed(failed_is_current, cur.refresh_at, now()) {
            return Ok(JsValue::NULL);
        }
        let request = match st.cfg.format {
            RefreshFormat::Json => post("application/json", &json_body(&cur.refresh_token)),
            RefreshFormat::OAuth2 => {
                let client_id = st.cfg.client_id.as_deref();
                let client_id = client_id.map_or(JsValue::UNDEFINED, JsValue::from_str);
                let body = glue::form_body(&cur.refresh_token, &client_id);
                post("application/x-www-form-urlencoded", &body)
            }
        };
        *st.refreshing.borrow_mut() = Some((st.generation.get(), cur));
        Ok(request)
    }

    /// Should a response declaring this `Content-Length` be left unread (over the limit)?
    fn too_big(&self, content_length: Option<String>) -> bool {
        content_length.is_some_and(|l| token::declares_more_than(&l, token::MAX_RESPONSE_BYTES))
    }

    /// The refresh endpoint's answer (`status` 0 or `undefined`: a network error or timeout; `text`
    /// `undefined`: unreadable or over the limit). Returns what to write to the hand-over
    /// store (the new record, or `null` after a rejection), then `commit` finishes; fails for
    /// a transient failure (the refresh token is kept) or when the session changed meanwhile.
    fn answer(&self, status: u16, text: Option<String>) -> Js<JsValue> {
        let st = self.state();
        let Some((generation, cur)) = st.refreshing.borrow_mut().take() else {
            return js(Err(not_authenticated()));
        };
        if st.generation.get() != generation {
            // Signed out or signed in anew meanwhile: this result belongs to nobody.
            return js(Err(not_authenticated()));
        }
        let text = text.filter(|t| t.len() <= token::MAX_RESPONSE_BYTES);
        if status == 0 {
            return js(Err(refresh_failed(
                "refresh request failed (network error or timeout)",
            )));
        }
        match policy::classify_refresh(status) {
            RefreshOutcome::Success => {
                let parsed = text
                    .as_deref()
                    .ok_or(token::TokenError::TooLarge)
                    .and_then(token::parse::<JsValue>);
                let parsed = parsed.and_then(|t| token::check_type(&t, st.cfg.dpop()).map(|()| t));
                let tokens = match parsed {
                    Ok(t) => t,
                    Err(e) => {
                        let mut m = String::from("refresh response unusable: ");
                        m.push_str(e.message());
                        return js(Err(refresh_failed(&m)));
                    }
                };
                let mut stored = st.stored_from(tokens, Some(cur.refresh_token));
                // A sign-in's ID token stays (the end-session request's hint) unless a new one came.
                stored.id_token = stored.id_token.or(cur.id_token);
                let json = stored_json(&stored);
                let answer = JsValue::from_str(&json);
                *st.outcome.borrow_mut() = Some(Outcome::Rotated(stored, json));
                Ok(answer)
            }
            RefreshOutcome::Rejected => {
                let error = error_code(text.as_deref());
                st.set_session(None);
                let mut m = String::from("the refresh token was rejected");
                if let Some(code) = &error {
                    m.push_str(" (");
                    m.push_str(code);
                    m.push(')');
                }
                *st.pending.borrow_mut() = Some(AuthEvent::Signout {
                    reason: SignoutReason::Rejected,
                    error,
                });
                let e = AuthError::new(ErrorCode::RefreshRejected, m);
                *st.outcome.borrow_mut() = Some(Outcome::Rejected(e));
                Ok(JsValue::NULL)
            }
            RefreshOutcome::Transient => {
                let mut m = String::from("refresh endpoint answered HTTP ");
                push_decimal(&mut m, status.into());
                js(Err(refresh_failed(&m)))
            }
        }
    }

    /// Once the hand-over store has the answer: the persistent store (its `storage` event
    /// wakes the other tabs), then this tab's session. Fails after a rejection.
    fn commit(&self) -> Js<()> {
        let st = self.state();
        match st.outcome.borrow_mut().take() {
            Some(Outcome::Rotated(stored, json)) => {
                st.store.write(Some(&json));
                *st.pending.borrow_mut() = Some(AuthEvent::Refresh {
                    expires_at: stored.expires_at,
                    source: Source::ThisTab,
                });
                *st.session.borrow_mut() = Some(stored);
                Ok(())
            }
            Some(Outcome::Rejected(e)) => {
                st.store.write(None);
                js(Err(e))
            }
            None => Ok(()),
        }
    }

    /// Emits the event the refresh (or sign-out) left, once the lock is released.
    fn flush(&self) {
        let event = self.state().pending.borrow_mut().take();
        if let Some(e) = event {
            self.state().emit(&e);
        }
    }

    /// Another tab wrote (`string`) or cleared (`null`) the session in the shared storage.
    fn adopt(&self, value: &JsValue) {
        self.state().adopt(parse_record(value));
    }

    // Sign-in and sign-out.

    /// `login(url, …)`: the URL to POST the credentials to, or `invalid_config`.
    fn login(&self, url: &str) -> Js<String> {
        js(super::config::resolve_http(url, "url"))
    }

    /// The login endpoint's answer (`status` 0: network error or timeout), or with `signin` the
    /// token endpoint's answer to a sign-in's code exchange (the driver checked its ID token):
    /// the session it starts (returns the record for the hand-over store; the `signin` event
    /// waits for `flush`), or `login_failed` (a sign-in: `signin_failed` when the provider could
    /// not be reached or failed, `signin_rejected` when it refused the code, with its `error`,
    /// or answered something unusable).
    fn logged_in(&self, status: u16, text: Option<String>, signin: bool) -> Js<String> {
        let st = self.state();
        let code = |rejected| match (signin, rejected) {
            (false, _) => ErrorCode::LoginFailed,
            (true, true) => ErrorCode::SigninRejected,
            (true, false) => ErrorCode::SigninFailed,
        };
        let failed = |rejected, m: &str, error| {
            glue::js_error(&AuthError::new(code(rejected), m).with_error(error))
        };
        if status == 0 {
            return Err(failed(
                false,
                "the request failed (network error or timeout)",
                None,
            ));
        }
        let text = text.filter(|t| t.len() <= token::MAX_RESPONSE_BYTES);
        if !(200..300).contains(&status) {
            let mut m = String::from("refused (HTTP ");
            push_decimal(&mut m, status.into());
            m.push(')');
            let rejected = policy::classify_refresh(status) == RefreshOutcome::Rejected;
            return Err(failed(
                rejected,
                &m,
                signin.then(|| error_code(text.as_deref())).flatten(),
            ));
        }
        let tokens = text
            .as_deref()
            .ok_or(token::TokenError::TooLarge)
            .and_then(token::parse::<JsValue>)
            .and_then(|t| token::check_type(&t, st.cfg.dpop()).map(|()| t))
            .map_err(|e| failed(true, e.message(), None))?;
        let record = st
            .sign_in(tokens)
            .map_err(|_| failed(true, "the token response has no refresh_token", None))?;
        *st.pending.borrow_mut() = Some(AuthEvent::Signin {
            expires_at: st.session.borrow().as_ref().and_then(|s| s.expires_at),
            source: Source::ThisTab,
        });
        Ok(record)
    }

    /// `logout()` begins: the session is cleared here and in the persistent store; returns
    /// the refresh token to spend at the logout or revocation endpoint (`undefined`: none).
    /// The `signout` event waits for `flush`.
    fn sign_out(&self) -> Option<String> {
        let st = self.state();
        let mine = st.session.borrow_mut().take();
        st.bump();
        st.store.write(None);
        *st.pending.borrow_mut() = Some(AuthEvent::Signout {
            reason: SignoutReason::Logout,
            error: None,
        });
        mine.map(|s| s.refresh_token)
    }

    /// Under the lock at `logout()`: clears the persistent store again (a refresh in flight
    /// in another tab may have written it) and returns the refresh token the hand-over store
    /// held (`shared`), which is the latest.
    fn hand_over(&self, shared: &JsValue) -> Option<String> {
        self.state().store.write(None);
        parse_record(shared).map(|s| s.refresh_token)
    }

    /// The session's ID token (from a sign-in by redirect): the end-session request's hint.
    fn id_token(&self) -> Option<String> {
        self.state().session.borrow().as_ref()?.id_token.clone()
    }

    // DPoP (the driver signs; what goes in a proof and what an answer means is decided here).
}

#[cfg(feature = "dpop")]
impl Core {
    /// What a proof for a request to `url` names: `[htu, nonce]` (the nonce that origin gave
    /// last, if any); `invalid_config` for a URL that is not http(s).
    fn proof_for(&self, url: &str) -> Js<JsValue> {
        let href = js(super::config::resolve_http(url, "url"))?;
        let nonces = self.state().nonces.borrow();
        let nonce = policy::origin_of_href(&href).and_then(|o| nonces.get(o));
        let nonce = nonce.map_or(JsValue::UNDEFINED, JsValue::from_str);
        Ok(js_sys::Array::of2(&dpop::htu(&href).into(), &nonce).into())
    }

    /// A response from `url` carried `DPoP-Nonce: nonce`: the one to use with that origin.
    fn took(&self, url: &str, nonce: Option<String>) {
        if let (Some(origin), Some(n)) = (policy::origin_of_href(url), nonce) {
            self.state().nonces.borrow_mut().take(origin, &n);
        }
    }

    /// Is a token endpoint's answer (`status`, body `text`) a nonce challenge to answer by
    /// sending again (once: not when `retried`)?
    fn token_challenge(&self, status: u16, text: Option<String>, retried: bool) -> bool {
        let error = text
            .as_deref()
            .and_then(<JsValue as crate::json::JsonValue>::parse)
            .and_then(|j| crate::json::JsonValue::str_field(&j, "error"));
        dpop::token_challenge(status, error.as_deref(), retried)
    }
}
