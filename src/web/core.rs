//! `Core`: the browser layer's decisions, as synchronous calls the driver (`js/driver.js`)
//! makes between the effects it carries out (fetch, IndexedDB, the lock). The driver
//! sequences; the pure session state machine (`crate::session`) and decision modules decide;
//! this is their adapter: it converts the driver's arguments, asks, and carries out what
//! comes back here (the persistent store, the listeners, errors as JS `AuthError`s).
//!
//! The driver asks through one export, `ask(name, args)`, as `core_.start(…)`: `js/core.d.ts`
//! declares each question as a method (`tsc --checkJs` in `make lint` refuses a misspelt one,
//! and `ask` throws for it; a native test in `crate::seam` checks that the match below answers
//! exactly the questions declared there), `crate::seam` names the numeric answers. A
//! question, the fn here, and the session method or pure decision it asks share one name.
//!
//! | question (args) → answer | the driver asks it | decided by |
//! |---|---|---|
//! | **Queries**: the session as it is | | |
//! | `start(url, hasAuthorization, mode)` → `Start` | `fetch`, first | `Session::start` (allow-list, `policy::refresh_before_send`) |
//! | `access()` → token or `undefined` | before each send and replay | `Session::access` |
//! | `on401(carried, sentUrl, answeredUrl, redirected, refreshInFlight, wwwAuthenticate, replayed)` → `On401` | a 401 to an authenticated call | `Session::on_401` (`policy::on_401`) |
//! | `sendAnyway(code)` → bool | the refresh before sending failed | `Session::send_anyway` (`policy::send_anyway`) |
//! | `generation()` → number | a refresh, as it starts | `Session::generation` |
//! | `tooBig(contentLength)` → bool | a token endpoint's headers are in | `token::too_big` |
//! | `login(url)` → href | `login()` begins | the URL resolved as `fetch` does |
//! | `fail(kind)` → `AuthError` | the driver's own failures, a `DriverError` | |
//! | `proofFor(url)` → `[htu, nonce]` | DPoP: before each proof | `Session::proof_for` |
//! | `tokenChallenge(status, text, retried)` → bool (send again) | DPoP: a token endpoint answered | `dpop::token_challenge` |
//! | **Inputs**: what the driver saw | | |
//! | `adopt(value)` | another tab's `storage` event | `Session::adopt` |
//! | `adoptBeforeLock(shared, failed)` → bool (adopted) | a refresh, before queueing for the lock | `Session::adopt_before_lock` (`policy::adopt_before_lock`) |
//! | `sync(shared, generation)` | under the lock, the hand-over store read | `Session::sync` |
//! | `answer(status, text)` → record or `null` | the refresh endpoint answered | `Session::answer` (`policy::classify_refresh`) |
//! | `loggedIn(status, text)` → record | the login endpoint answered | `Session::logged_in` |
//! | `took(url, nonce)` | DPoP: a response with `DPoP-Nonce` | `Session::took` |
//! | **Commands**: the session moves on | | |
//! | `beginRefresh(failed)` → `[type, body]` or `null` | under the lock, after `sync` | `Session::begin_refresh` (`policy::still_needed`) |
//! | `commit()` | the hand-over store holds `answer`'s record | `Session::commit` |
//! | `flush()` | the lock is released | `Session::flush` |
//! | `signOut()` → logout body | `logout()` begins | `Session::sign_out` |
//! | `handOver(shared)` → logout body | `logout()`, under the lock | `Session::hand_over` |
//!
//! A refresh, in the driver's order: `generation` → `adoptBeforeLock` (done if true) → the
//! lock → `sync` (fails if this tab signed in or out since `generation`) → `beginRefresh`
//! (done if `null`) → POST → `answer` → the hand-over store written → `commit` → the lock
//! released → `flush`.

use super::glue::{self, now};
use super::state::State;
use super::types::RefreshFormat;
use crate::error::{AuthError, ErrorCode};
use crate::seam::DriverError;
use crate::session::{Outcome, Session};
use crate::token;
use alloc::rc::Rc;
use alloc::string::String;
use wasm_bindgen::prelude::*;

/// The driver's handle on the session (not part of the public API).
#[wasm_bindgen(skip_typescript)]
pub struct Core(pub(super) Rc<State>);

/// The errors the driver itself meets (`Core::fail`).
fn driver_error(kind: DriverError) -> AuthError {
    let refresh_failed = |m| AuthError::new(ErrorCode::RefreshFailed, m);
    match kind {
        DriverError::LockTimeout => refresh_failed("timed out waiting for another tab's refresh"),
        DriverError::Aborted => AuthError::new(ErrorCode::Aborted, "the request was aborted"),
        DriverError::NotReplayable => AuthError::new(
            ErrorCode::BodyNotReplayable,
            "the request needs a replay after a refresh, but its body is a stream",
        ),
        DriverError::NotSignedIn => AuthError::new(ErrorCode::NotAuthenticated, "not signed in"),
        DriverError::BadCredentials => {
            AuthError::invalid_option("credentials", "must be JSON-serialisable")
        }
        DriverError::DpopOff => AuthError::invalid_option("dpop", "is off: no proof to make"),
        DriverError::NoKey => {
            refresh_failed("no DPoP key could be read or made (IndexedDB or crypto.subtle failed)")
        }
    }
}

/// A question this core does not have (`name`), or a `fail` kind: a bug in the driver,
/// thrown as an `Error` that names it, never read as an answer. (Thrown, it unwinds no Rust
/// frame: nothing may be borrowed then.)
fn unknown(what: &str, name: &str) -> ! {
    let mut m = String::from(what);
    m.push_str(name);
    wasm_bindgen::throw_str(&m)
}

/// A request body sent to `refreshUrl` or `logoutUrl`: `{"refresh_token": RT}`.
fn json_body(rt: &str) -> String {
    let mut b = String::from("{\"refresh_token\":\"");
    b.push_str(rt);
    b.push_str("\"}");
    b
}

#[wasm_bindgen(js_class = Core)]
impl Core {
    /// The driver's one way in: the question `name` (see the table above) with its `args`.
    /// One export instead of one per question: each export costs the `.wasm` a shim and the
    /// glue a method (measured: 0.6 KB gzip for the eighteen). A name that is no question
    /// throws.
    pub fn ask(&self, name: &str, args: &js_sys::Array) -> Result<JsValue, JsValue> {
        self.answer(name, args).map_err(|e| glue::js_error(&e))
    }
}

impl Core {
    /// The answer to `question`, or the `AuthError` to throw; a name that is no question
    /// throws an `Error` naming it. (Each arm's name is a method of js/core.d.ts's `Core`: a
    /// native test in `crate::seam` compares the two lists.) The session is borrowed for the
    /// question, and released before the listeners hear what it left to tell (they may call
    /// back into the client).
    fn answer(&self, question: &str, args: &js_sys::Array) -> Result<JsValue, AuthError> {
        let arg = |i| args.get(i);
        let text = |i| arg(i).as_string();
        let num = |i| arg(i).as_f64().unwrap_or(0.0);
        let flag = |i| arg(i).is_truthy();
        let str = |i: u32| text(i).unwrap_or_default();
        let (st, now) = (&self.0, now());
        let mut session = st.session.borrow_mut();
        let mut tell = None;
        let answer = match question {
            "start" => {
                let follows = str(2) == "follow";
                session.start(&str(0), flag(1), follows, now).into()
            }
            "access" => session
                .access()
                .map_or(JsValue::UNDEFINED, JsValue::from_str),
            "on401" => {
                let (carried, sent, answered, www) = (str(0), str(1), str(2), text(5));
                let (redirected, in_flight, replayed) = (flag(3), flag(4), num(6) as u8);
                let www = www.as_deref();
                let d = session.on_401(
                    &carried, &sent, &answered, redirected, in_flight, www, replayed, now,
                );
                (d as u8).into()
            }
            "sendAnyway" => session.send_anyway(text(0).as_deref(), now).into(),
            "generation" => session.generation().into(),
            "tooBig" => token::too_big(text(0).as_deref()).into(),
            "login" => super::config::resolve_http(&str(0), "url")?.into(),
            "fail" => match DriverError::of(num(0) as u8) {
                Some(kind) => glue::js_error(&driver_error(kind)),
                None => {
                    drop(session);
                    unknown("rotafetch: the core has no such driver error", "")
                }
            },
            #[cfg(feature = "dpop")]
            "proofFor" => proof_for(&session, &str(0))?,
            #[cfg(feature = "dpop")]
            "tokenChallenge" => token_challenge(num(0) as u16, text(1), flag(2)).into(),
            "adopt" => {
                tell = session.adopt::<JsValue>(text(0).as_deref());
                JsValue::UNDEFINED
            }
            "adoptBeforeLock" => {
                let (shared, failed) = (text(0), text(1));
                tell =
                    session.adopt_before_lock::<JsValue>(shared.as_deref(), failed.as_deref(), now);
                tell.is_some().into()
            }
            "sync" => {
                // `undefined`: nothing was read.
                let shared = (!arg(0).is_undefined()).then(|| text(0));
                session.sync::<JsValue>(shared.as_ref().map(Option::as_deref), num(1) as u32)?;
                JsValue::UNDEFINED
            }
            "answer" => {
                let body = text(1);
                let record = session.answer::<JsValue>(num(0) as u16, body.as_deref(), now)?;
                record.map_or(JsValue::NULL, JsValue::from_str)
            }
            "loggedIn" => {
                let body = text(1);
                let record = session.logged_in::<JsValue>(num(0) as u16, body.as_deref(), now)?;
                st.store.write(Some(&record));
                record.into()
            }
            #[cfg(feature = "dpop")]
            "took" => {
                session.took(&str(0), text(1).as_deref());
                JsValue::UNDEFINED
            }
            "beginRefresh" => begin_refresh(st, &mut session, text(0), now)?,
            "commit" => {
                match session.commit() {
                    Some(Outcome::Rotated(record)) => st.store.write(Some(&record)),
                    Some(Outcome::Rejected(e)) => {
                        st.store.write(None);
                        return Err(e);
                    }
                    None => {}
                }
                JsValue::UNDEFINED
            }
            "flush" => {
                tell = session.flush();
                JsValue::UNDEFINED
            }
            "signOut" => {
                let rt = session.sign_out();
                st.store.write(None);
                rt.map(|rt| json_body(&rt)).into()
            }
            "handOver" => {
                let rt = session.hand_over::<JsValue>(text(0).as_deref());
                st.store.write(None);
                rt.map(|rt| json_body(&rt)).into()
            }
            _ => {
                drop(session);
                unknown("rotafetch: the core has no question ", question)
            }
        };
        drop(session);
        st.emit(tell);
        Ok(answer)
    }
}

/// `beginRefresh`: the refresh request to send (`[content type, body]`), or `null`.
fn begin_refresh(
    st: &State,
    session: &mut Session,
    failed: Option<String>,
    now: f64,
) -> Result<JsValue, AuthError> {
    let Some(rt) = session.begin_refresh(failed.as_deref(), now)? else {
        return Ok(JsValue::NULL);
    };
    let (content_type, body) = match st.cfg.format {
        RefreshFormat::Json => ("application/json", json_body(rt)),
        RefreshFormat::OAuth2 => {
            let client_id = st.cfg.client_id.as_deref();
            let client_id = client_id.map_or(JsValue::UNDEFINED, JsValue::from_str);
            let body = glue::form_body(rt, &client_id);
            ("application/x-www-form-urlencoded", body)
        }
    };
    Ok(js_sys::Array::of2(&content_type.into(), &body.into()).into())
}

/// `proofFor`: `[htu, nonce]` for a proof for a request to `url`; `invalid_config` for a URL
/// that is not http(s).
#[cfg(feature = "dpop")]
fn proof_for(session: &Session, url: &str) -> Result<JsValue, AuthError> {
    let href = super::config::resolve_http(url, "url")?;
    let (htu, nonce) = session.proof_for(&href);
    let nonce = nonce.map_or(JsValue::UNDEFINED, JsValue::from_str);
    Ok(js_sys::Array::of2(&htu.into(), &nonce).into())
}

/// `tokenChallenge`: a token endpoint's answer (`status`, body `text`) is a nonce challenge to
/// answer by sending again (once: not when `retried`)?
#[cfg(feature = "dpop")]
fn token_challenge(status: u16, text: Option<String>, retried: bool) -> bool {
    use crate::json::JsonValue;
    let error = text.as_deref().and_then(JsValue::parse);
    let error = error.and_then(|j| j.str_field("error"));
    crate::dpop::token_challenge(status, error.as_deref(), retried)
}
