//! `Core`: the browser layer's decisions, as synchronous calls the driver (`js/driver.js`)
//! makes between the effects it carries out (fetch, IndexedDB, the lock). The driver
//! sequences; the pure session state machine (`crate::session`) and decision modules decide;
//! this is their adapter: it converts the driver's arguments, asks, and carries out what
//! comes back here (the persistent store, the listeners, errors as JS `AuthError`s).
//!
//! The driver asks through one export, `ask(question, args)`, by number (`crate::seam::Question`,
//! `Question` in js/driver.js, inlined by the package build), as `ask_(Question.Start, …)`:
//! `js/core.d.ts` declares each question's arguments and answer (`tsc --checkJs` in `make lint`
//! refuses a misspelt one or a wrong argument, and `ask` throws for a number that is none; a
//! native test in `crate::seam` checks that the match below answers exactly the questions
//! declared there), `crate::seam` names the numeric answers too. A question, the session method
//! or pure decision it asks share one name (`Question::Start`, `Session::start`).
//!
//! | question (args) → answer | the driver asks it | decided by |
//! |---|---|---|
//! | **Queries**: the session as it is | | |
//! | `Start(url, hasAuthorization, mode)` → `Start` | `fetch`, first | `Session::start` (allow-list, `policy::refresh_before_send`) |
//! | `Access()` → token or `undefined` | before each send and replay | `Session::access` |
//! | `On401(carried, sentUrl, answeredUrl, redirected, refreshInFlight, wwwAuthenticate, replayed)` → `On401` | a 401 to an authenticated call | `Session::on_401` (`policy::on_401`) |
//! | `SendAnyway(transient)` → bool | the refresh before sending failed | `Session::send_anyway` (`policy::send_anyway`) |
//! | `Generation()` → number | a refresh, as it starts | `Session::generation` |
//! | `TooBig(contentLength)` → bool | a token endpoint's headers are in | `token::too_big` |
//! | `IdToken()` → token or `undefined` | `logout({endSession})`: the end-session hint | `Session::id_token` |
//! | `ExpiresAt()` → ms or `undefined` | the `expiresAt` getter | `Session::current` |
//! | `ProofFor(url)` → `[htu, nonce]` | DPoP: before each proof | `Session::proof_for` |
//! | `TokenChallenge(status, text, retried)` → bool (send again) | DPoP: a token endpoint answered | `dpop::token_challenge` |
//! | **Inputs**: what the driver saw | | |
//! | `Adopt(value)` | another tab's `storage` event | `Session::adopt` |
//! | `AdoptBeforeLock(shared, failed)` → bool (adopted) | a refresh, before queueing for the lock | `Session::adopt_before_lock` (`policy::adopt_before_lock`) |
//! | `Sync(shared, generation)` | under the lock, the hand-over store read | `Session::sync` |
//! | `Answer(status, text)` → record or `null` | the refresh endpoint answered | `Session::answer` (`policy::classify_refresh`) |
//! | `LoggedIn(status, text, signin)` → record | the login endpoint, or a sign-in's token endpoint, answered | `Session::logged_in` |
//! | `SetTokens(tokens)` → record | `setTokens(tokens)` | `token::from_json`, `Session::sign_in` |
//! | `Took(url, nonce)` | DPoP: a response with `DPoP-Nonce` | `Session::took` |
//! | **Commands**: the session moves on | | |
//! | `BeginRefresh(failed)` → `[type, body]` or `null` | under the lock, after `sync` | `Session::begin_refresh` (`policy::still_needed`) |
//! | `Commit()` | the hand-over store holds `answer`'s record | `Session::commit` |
//! | `Flush()` | the lock is released | `Session::flush` |
//! | `SignOut()` → refresh token | `logout()` begins | `Session::sign_out` |
//! | `HandOver(shared)` → refresh token | `logout()`, under the lock | `Session::hand_over` |
//!
//! A refresh, in the driver's order: `Generation` → `AdoptBeforeLock` (done if true) → the
//! lock → `Sync` (fails if this tab signed in or out since `Generation`) → `BeginRefresh`
//! (done if `null`) → POST → `Answer` → the hand-over store written → `Commit` → the lock
//! released → `Flush`.

use super::glue::{self, now};
use super::state::State;
use super::types::RefreshFormat;
use crate::error::{AuthError, ErrorCode};
use crate::seam::Question;
use crate::session::{Outcome, Session};
use crate::token;
use alloc::rc::Rc;
use alloc::string::String;
use wasm_bindgen::prelude::*;

/// The driver's handle on the session (not part of the public API).
#[wasm_bindgen(skip_typescript)]
pub struct Core(pub(super) Rc<State>);

/// A question this core does not have (`n`): a bug in the driver, thrown as an `Error` that
/// names it, never read as an answer. (Thrown, it unwinds no Rust frame: nothing may be
/// borrowed then.)
fn unknown(what: &str, n: u8) -> ! {
    let mut m = String::from(what);
    crate::error::push_decimal(&mut m, n.into());
    wasm_bindgen::throw_str(&m)
}

/// A refresh request's JSON body: `{"refresh_token": RT}`.
fn json_body(rt: &str) -> String {
    let mut b = String::from("{\"refresh_token\":\"");
    b.push_str(rt);
    b.push_str("\"}");
    b
}

#[wasm_bindgen(js_class = Core)]
impl Core {
    /// The driver's one way in: the [`Question`] numbered `question` (see the table above) with
    /// its `args`. One export instead of one per question: each export costs the `.wasm` a shim
    /// and the glue a method (measured: 0.6 KB gzip for the eighteen); numbers instead of names:
    /// no name ships. A number that is no question throws.
    pub fn ask(&self, question: u8, args: &js_sys::Array) -> Result<JsValue, JsValue> {
        self.answer(question, args).map_err(|e| glue::js_error(&e))
    }
}

impl Core {
    /// The answer to `question`, or the `AuthError` to throw; a number that is no question (of
    /// this build: the DPoP ones need the `dpop` feature) throws an `Error` naming it. (Each arm
    /// is a question of js/core.d.ts's `Questions`: a native test in `crate::seam` compares the
    /// lists.) The session is borrowed for the question, and released before the listeners
    /// hear what it left to tell (they may call back into the client).
    fn answer(&self, question: u8, args: &js_sys::Array) -> Result<JsValue, AuthError> {
        let arg = |i| args.get(i);
        let text = |i| arg(i).as_string();
        let num = |i| arg(i).as_f64().unwrap_or(0.0);
        let flag = |i| arg(i).is_truthy();
        let str = |i: u32| text(i).unwrap_or_default();
        let (st, now) = (&self.0, now());
        let mut session = st.session.borrow_mut();
        let mut tell = None;
        let Some(question) = Question::of(question) else {
            drop(session);
            unknown("rotafetch: the core has no question ", question)
        };
        let answer = match question {
            Question::Start => {
                let follows = str(2) == "follow";
                session.start(&str(0), flag(1), follows, now).into()
            }
            Question::Access => session
                .access()
                .map_or(JsValue::UNDEFINED, JsValue::from_str),
            Question::On401 => {
                let (carried, sent, answered, www) = (str(0), str(1), str(2), text(5));
                let (redirected, in_flight, replayed) = (flag(3), flag(4), num(6) as u8);
                let www = www.as_deref();
                let d = session.on_401(
                    &carried, &sent, &answered, redirected, in_flight, www, replayed, now,
                );
                (d as u8).into()
            }
            Question::SendAnyway => session.send_anyway(flag(0), now).into(),
            Question::Generation => session.generation().into(),
            Question::TooBig => token::too_big(text(0).as_deref()).into(),
            #[cfg(feature = "dpop")]
            Question::ProofFor => proof_for(&session, &str(0)),
            #[cfg(feature = "dpop")]
            Question::TokenChallenge => token_challenge(num(0) as u16, text(1), flag(2)).into(),
            Question::Adopt => {
                tell = session.adopt::<JsValue>(text(0).as_deref());
                JsValue::UNDEFINED
            }
            Question::AdoptBeforeLock => {
                let (shared, failed) = (text(0), text(1));
                tell =
                    session.adopt_before_lock::<JsValue>(shared.as_deref(), failed.as_deref(), now);
                tell.is_some().into()
            }
            Question::Sync => {
                // `undefined`: nothing was read.
                let shared = (!arg(0).is_undefined()).then(|| text(0));
                session.sync::<JsValue>(shared.as_ref().map(Option::as_deref), num(1) as u32)?;
                JsValue::UNDEFINED
            }
            Question::Answer => {
                let body = text(1);
                let record = session.answer::<JsValue>(num(0) as u16, body.as_deref(), now)?;
                record.map_or(JsValue::NULL, JsValue::from_str)
            }
            Question::ExpiresAt => session
                .current()
                .and_then(|s| s.expires_at)
                .map_or(JsValue::UNDEFINED, JsValue::from),
            Question::IdToken => session
                .id_token()
                .map_or(JsValue::UNDEFINED, JsValue::from_str),
            Question::LoggedIn => {
                let (status, body, signin) = (num(0) as u16, text(1), flag(2));
                let record = session.logged_in::<JsValue>(status, body.as_deref(), signin, now)?;
                st.store.write(Some(&record));
                record.into()
            }
            Question::SetTokens => {
                let tokens = token::from_json::<JsValue>(&arg(0))
                    .map_err(|e| AuthError::new(ErrorCode::InvalidConfig, e.message()))?;
                let record = session.sign_in::<JsValue>(tokens, now)?;
                st.store.write(Some(&record));
                record.into()
            }
            #[cfg(feature = "dpop")]
            Question::Took => {
                session.took(&str(0), text(1).as_deref());
                JsValue::UNDEFINED
            }
            Question::BeginRefresh => begin_refresh(st, &mut session, text(0), now)?,
            Question::Commit => {
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
            Question::Flush => {
                tell = session.flush();
                JsValue::UNDEFINED
            }
            Question::SignOut => {
                let rt = session.sign_out();
                st.store.write(None);
                rt.into()
            }
            Question::HandOver => {
                let rt = session.hand_over::<JsValue>(text(0).as_deref());
                st.store.write(None);
                rt.into()
            }
            // ProofFor, TokenChallenge, Took: DPoP's.
            #[cfg(not(feature = "dpop"))]
            _ => {
                drop(session);
                unknown("rotafetch: the core has no question ", question as u8)
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

/// `proofFor`: `[htu, nonce]` for a proof for a request to `href` (resolved, http(s)).
#[cfg(feature = "dpop")]
fn proof_for(session: &Session, href: &str) -> JsValue {
    let (htu, nonce) = session.proof_for(href);
    let nonce = nonce.map_or(JsValue::UNDEFINED, JsValue::from_str);
    js_sys::Array::of2(&htu.into(), &nonce).into()
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
