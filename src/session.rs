//! The session state machine: the tokens, the generation that voids stale refreshes, the
//! refresh under way and what it has left to do, the event owed to the listeners. Sans-IO,
//! like [`policy`]: no browser, no clock (`now` is an argument, ms since the
//! epoch), JSON through [`Json`]. The browser layer's core (`src/web/core.rs`) is its adapter:
//! it converts the driver's arguments, calls the method of the question's name here, and
//! carries out what comes back (the persistent store's write, the events).
//!
//! A refresh, in the driver's order (one per browser: the hand-over store and the lock are
//! shared by the tabs, the persistent store's writes reach the other tabs as [`adopt`]):
//! [`generation`] → [`adopt_before_lock`] (done if it adopted) → the lock → [`sync`] (fails if
//! this tab signed in or out since) → [`begin_refresh`] (done if nothing to do) → the POST →
//! [`answer`] → the hand-over store written → [`commit`] (the persistent store written) → the
//! lock released → [`flush`].
//!
//! [`adopt`]: Session::adopt
//! [`adopt_before_lock`]: Session::adopt_before_lock
//! [`generation`]: Session::generation
//! [`sync`]: Session::sync
//! [`begin_refresh`]: Session::begin_refresh
//! [`answer`]: Session::answer
//! [`commit`]: Session::commit
//! [`flush`]: Session::flush

use crate::dpop;
use crate::error::{AuthError, ErrorCode};
use crate::event::{AuthEvent, SignoutReason, Source};
use crate::json::JsonValue;
use crate::policy::{self, AllowList, On401, Seen401};
use crate::seam::{Replayed, Start};
use crate::token::{self, Stored};
use alloc::string::String;

mod answers;

/// JSON as the machine needs it: read ([`JsonValue`]), and the stored record written (the
/// browser's `JSON.stringify` in wasm, serde_json natively).
pub trait Json: JsonValue {
    /// The record persisted for `s` ([`token::parse_stored`] reads it back).
    fn record(s: &Stored) -> String;
}

#[cfg(not(target_arch = "wasm32"))]
impl Json for serde_json::Value {
    fn record(s: &Stored) -> String {
        serde_json::json!({
            "v": token::STORED_VERSION, "rt": s.refresh_token, "at": s.access_token,
            "exp": s.expires_at, "rat": s.refresh_at, "rfa": s.refreshed_at,
        })
        .to_string()
    }
}

/// What the decisions need of the options.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The origins that receive the access token.
    pub allow: AllowList,
    /// Refresh this long before expiry (capped at half the token's lifetime).
    pub leeway_ms: f64,
    /// No 401 starts a refresh sooner than this after the last one.
    pub min_interval_ms: f64,
    /// Option `redirect: "error"`: requests that follow redirects are made to fail at one.
    pub strict_redirects: bool,
    /// DPoP on (read through [`Settings::dpop`]).
    pub dpop: bool,
}

impl Settings {
    /// DPoP on (a constant `false` in builds without the `dpop` feature, so none of its code
    /// ships there).
    pub fn dpop(&self) -> bool {
        cfg!(feature = "dpop") && self.dpop
    }
}

/// What [`Session::commit`] leaves to its host.
#[derive(Debug)]
pub enum Outcome {
    /// Write this record to the persistent store (its `storage` event wakes the other tabs).
    Rotated(String),
    /// Clear the persistent store and fail with this error: the refresh token was refused.
    Rejected(AuthError),
}

/// What the refresh under way has left to do once the hand-over store is written.
enum Left {
    /// New tokens to keep, and their record (built once, for both stores).
    Rotated(Stored, String),
    /// The refresh token was refused: the session is over.
    Rejected(AuthError),
}

/// One client's session.
pub struct Session {
    settings: Settings,
    current: Option<Stored>,
    /// Bumped by every sign-in/sign-out, so a refresh that started before it cannot
    /// resurrect or clobber the session it no longer belongs to.
    generation: u32,
    /// The refresh under way (one per tab: the driver joins callers to it): the generation it
    /// started in and the session it replaces.
    refreshing: Option<(u32, Stored)>,
    left: Option<Left>,
    /// The event to tell once the cross-tab lock is released ([`Session::flush`]).
    pending: Option<AuthEvent>,
    /// DPoP: the latest nonce each origin gave.
    #[cfg(feature = "dpop")]
    nonces: dpop::Nonces,
}

/// What this tab tells its listeners when it takes over another tab's session (or sign-out).
fn other_tab_event(next: &Option<Stored>) -> AuthEvent {
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

fn not_authenticated() -> AuthError {
    AuthError::new(ErrorCode::NotAuthenticated, "not signed in")
}

impl Session {
    /// The session the persistent store holds (`stored`, its text); also true when that text
    /// is no record (corrupt data, another app's value): clear it, it reads as signed out.
    pub fn load<J: Json>(settings: Settings, stored: Option<&str>) -> (Session, bool) {
        let current = stored.and_then(token::parse_stored::<J>);
        let corrupt = stored.is_some() && current.is_none();
        let session = Session {
            settings,
            current,
            generation: 0,
            refreshing: None,
            left: None,
            pending: None,
            #[cfg(feature = "dpop")]
            nonces: dpop::Nonces::default(),
        };
        (session, corrupt)
    }

    /// The tokens held, if signed in.
    pub fn current(&self) -> Option<&Stored> {
        self.current.as_ref()
    }

    /// The access token to send; `None` signed out.
    pub fn access(&self) -> Option<&str> {
        self.current.as_ref().map(|s| s.access_token.as_str())
    }

    /// The session's generation (see [`Session::sync`]).
    pub fn generation(&self) -> u32 {
        self.generation
    }

    fn bump(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    /// Replaces the session. Only a change between signed in and signed out bumps the
    /// generation: adopting another tab's rotation of the same session must not void this
    /// tab's refresh in flight.
    fn set_current(&mut self, next: Option<Stored>) {
        if self.current.is_some() != next.is_some() {
            self.bump();
        }
        self.current = next;
    }

    /// Is the access token due for a refresh (see `policy::refresh_before_send`)?
    pub fn due(&self, now: f64) -> bool {
        self.current.as_ref().is_some_and(|s| {
            policy::refresh_before_send(
                now,
                s.refresh_at,
                s.refreshed_at,
                self.settings.min_interval_ms,
            )
        })
    }

    // Queries.

    /// `start`: how to send a request to `url` (with an `Authorization` of its own or not,
    /// following redirects or not): a [`Start`] (`Pass`, `Send` or `RefreshFirst`, plus the
    /// flag `Strict`: make it `redirect: "error"` before it carries the token).
    pub fn start(&self, url: &str, has_authorization: bool, follows: bool, now: f64) -> u8 {
        let ours = policy::origin_of_href(url).is_some_and(|o| self.settings.allow.allows(o));
        if has_authorization || !ours {
            return Start::Pass as u8;
        }
        let how = if self.due(now) {
            Start::RefreshFirst
        } else {
            Start::Send
        };
        let strict = self.settings.strict_redirects && follows;
        how as u8 | if strict { Start::Strict as u8 } else { 0 }
    }

    /// `on401`: a 401 to a request that carried `carried` (sent to `sent_url`, answered from
    /// `answered_url`). `replayed` is what this call already did, a bit set of [`Replayed`].
    #[allow(clippy::too_many_arguments)]
    pub fn on_401(
        &self,
        carried: &str,
        sent_url: &str,
        answered_url: &str,
        redirected: bool,
        refresh_in_flight: bool,
        www_authenticate: Option<&str>,
        replayed: u8,
        now: f64,
    ) -> On401 {
        let done = |r: Replayed| replayed & r as u8 != 0;
        let dpop = self.settings.dpop();
        let session = self.current.as_ref();
        policy::on_401(Seen401 {
            nonce_challenge: if dpop {
                dpop::resource_challenge(401, www_authenticate, done(Replayed::Nonce))
            } else {
                None
            },
            was_replay: done(Replayed::Token),
            carried_token: policy::token_reached(sent_url, answered_url, redirected),
            carried_is_current: session.map(|s| s.access_token.as_str()) == Some(carried),
            have_access: session.is_some(),
            have_refresh: true,
            refresh_in_flight,
            now,
            refreshed_at: session.and_then(|s| s.refreshed_at),
            min_interval_ms: self.settings.min_interval_ms,
        })
    }

    /// `sendAnyway`: after the refresh before sending failed with the error `code`, send with
    /// the old token anyway? (`policy::send_anyway`.)
    pub fn send_anyway(&self, code: Option<&str>, now: f64) -> bool {
        let transient = code == Some(ErrorCode::RefreshFailed.as_str());
        let expires_at = self.current.as_ref().and_then(|s| s.expires_at);
        policy::send_anyway(transient, self.current.is_some(), expires_at, now)
    }

    /// `proofFor`: what a DPoP proof for a request to `href` names: its `htu` and the nonce
    /// that origin gave last, if any.
    #[cfg(feature = "dpop")]
    pub fn proof_for<'a>(&self, href: &'a str) -> (&'a str, Option<&str>) {
        let nonce = policy::origin_of_href(href).and_then(|o| self.nonces.get(o));
        (dpop::htu(href), nonce)
    }

    // Inputs.

    /// `adopt`: another tab wrote (`value`, a record's text) or cleared (`None`) the session
    /// in the shared storage. Returns what to tell the listeners now, if anything changed.
    pub fn adopt<J: Json>(&mut self, value: Option<&str>) -> Option<AuthEvent> {
        self.adopt_record(value.and_then(token::parse_stored::<J>))
    }

    fn adopt_record(&mut self, next: Option<Stored>) -> Option<AuthEvent> {
        if self.current == next {
            return None;
        }
        let tell = self.current.is_some() || next.is_some();
        let event = other_tab_event(&next);
        self.set_current(next);
        tell.then_some(event)
    }

    /// `adoptBeforeLock`: before queueing for the cross-tab lock, another tab's rotation
    /// that has already committed to the hand-over store (`shared`), newer than ours and not
    /// due, and not the token this refresh was meant to replace (`failed`), is adopted:
    /// nothing left to do. Returns what to tell the listeners when it did. (Under load, tabs
    /// queueing for the lock one after another could take longer than the new token's
    /// refresh window.)
    pub fn adopt_before_lock<J: Json>(
        &mut self,
        shared: Option<&str>,
        failed: Option<&str>,
        now: f64,
    ) -> Option<AuthEvent> {
        let s = shared.and_then(token::parse_stored::<J>)?;
        let mine = self.current.as_ref();
        let adopt = policy::adopt_before_lock(
            mine.is_some(),
            mine.and_then(|m| m.expires_at),
            s.expires_at,
            s.refresh_at,
            failed == Some(s.access_token.as_str()),
            now,
        );
        if adopt {
            self.adopt_record(Some(s))
        } else {
            None
        }
    }

    /// `sync`: under the lock, takes over what the last lock holder left in the hand-over
    /// store (`shared`: `Some(text)` a record, `Some(None)` signed out, `None` nothing read);
    /// the listeners hear of it at [`Session::flush`]. Fails when this tab signed in or out
    /// since `generation`.
    pub fn sync<J: Json>(
        &mut self,
        shared: Option<Option<&str>>,
        generation: u32,
    ) -> Result<(), AuthError> {
        let Some(shared) = shared else {
            return Ok(());
        };
        if self.generation != generation {
            return Err(not_authenticated());
        }
        let shared = shared.and_then(token::parse_stored::<J>);
        if shared != self.current {
            self.pending = Some(other_tab_event(&shared));
            self.set_current(shared);
        }
        Ok(())
    }

    /// `took`: a response from `url` carried `DPoP-Nonce: nonce`, the one to use with that
    /// origin from now on.
    #[cfg(feature = "dpop")]
    pub fn took(&mut self, url: &str, nonce: Option<&str>) {
        if let (Some(origin), Some(n)) = (policy::origin_of_href(url), nonce) {
            self.nonces.take(origin, n);
        }
    }

    // Commands.

    /// `beginRefresh`: begins the refresh of the token `failed` (the one a request carried,
    /// `None` for `refresh()`): returns the refresh token to present, the session it replaces
    /// kept as the refresh under way ([`Session::answer`] takes it); `None` when there is
    /// nothing left to do (another tab rotated already, learnt from the hand-over store or its
    /// `storage` event: `failed` is gone and the current token is not due).
    pub fn begin_refresh(
        &mut self,
        failed: Option<&str>,
        now: f64,
    ) -> Result<Option<&str>, AuthError> {
        let Some(cur) = self.current.clone() else {
            return Err(not_authenticated());
        };
        let failed_is_current = failed == Some(cur.access_token.as_str());
        if !policy::still_needed(failed_is_current, cur.refresh_at, now) {
            return Ok(None);
        }
        let (_, replaced) = self.refreshing.insert((self.generation, cur));
        Ok(Some(replaced.refresh_token.as_str()))
    }

    /// `commit`: the hand-over store holds [`Session::answer`]'s record. Switches to the new
    /// tokens (the listeners hear of it at [`Session::flush`]); returns what the persistent
    /// store is to do, if anything.
    pub fn commit(&mut self) -> Option<Outcome> {
        match self.left.take()? {
            Left::Rotated(stored, record) => {
                self.pending = Some(AuthEvent::Refresh {
                    expires_at: stored.expires_at,
                    source: Source::ThisTab,
                });
                self.current = Some(stored);
                Some(Outcome::Rotated(record))
            }
            Left::Rejected(e) => Some(Outcome::Rejected(e)),
        }
    }

    /// `flush`: the lock is released: the event the refresh (or sign-out) left, to tell now.
    pub fn flush(&mut self) -> Option<AuthEvent> {
        self.pending.take()
    }

    /// `signOut`: `logout()` begins: the session ends here (the persistent store is to be
    /// cleared; the listeners hear of it at [`Session::flush`]). Returns the refresh token to
    /// spend at the logout endpoint, if there was one.
    pub fn sign_out(&mut self) -> Option<String> {
        let mine = self.current.take();
        self.bump();
        self.pending = Some(AuthEvent::Signout {
            reason: SignoutReason::Logout,
            error: None,
        });
        mine.map(|s| s.refresh_token)
    }

    /// `handOver`: `logout()`, under the lock. Returns the refresh token to spend: the one the
    /// hand-over store holds (`shared`), which is the latest. A session this tab took in since
    /// `signOut` (another tab's refresh in flight then, adopted through its `storage` event)
    /// ends too, told at [`Session::flush`]: the tab stays signed out, and the persistent store
    /// is to be cleared again.
    pub fn hand_over<J: Json>(&mut self, shared: Option<&str>) -> Option<String> {
        if self.current.is_some() {
            self.sign_out();
        }
        shared
            .and_then(token::parse_stored::<J>)
            .map(|s| s.refresh_token)
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::event::{AuthEvent, SignoutReason, Source};
    use serde_json::{json, Value};

    type J = Value;
    const NOW: f64 = 1_000_000.0;
    const API: &str = "https://api.example/me";

    fn settings() -> Settings {
        Settings {
            allow: AllowList::new(["https://api.example".into()]),
            leeway_ms: 5_000.0,
            min_interval_ms: 1_000.0,
            strict_redirects: false,
            dpop: false,
        }
    }

    /// A token response: `access`, `refresh` (rotated) and a 10 s lifetime.
    fn tokens(access: &str, refresh: Option<&str>) -> String {
        let mut t = json!({"access_token": access, "expires_in": 10, "token_type": "Bearer"});
        if let Some(r) = refresh {
            t["refresh_token"] = json!(r);
        }
        t.to_string()
    }

    fn signed_in(access: &str, refresh: &str) -> Session {
        let (mut s, corrupt) = Session::load::<J>(settings(), None);
        assert!(!corrupt);
        let t = token::parse::<J>(&tokens(access, Some(refresh))).unwrap();
        s.sign_in::<J>(t, NOW).unwrap();
        s
    }

    /// Runs a whole refresh in one tab: `begin_refresh` … `flush`.
    fn refresh(
        s: &mut Session,
        status: u16,
        body: &str,
        now: f64,
    ) -> Result<Option<String>, AuthError> {
        let failed = s.access().map(String::from);
        let Some(_) = s.begin_refresh(failed.as_deref(), now)? else {
            return Ok(None);
        };
        let record = s.answer::<J>(status, Some(body), now)?.map(String::from);
        match s.commit() {
            Some(Outcome::Rejected(e)) => Err(e),
            _ => Ok(record),
        }
    }

    #[test]
    fn a_stored_record_loads_and_corrupt_data_reads_as_signed_out() {
        let s = signed_in("at1", "rt1");
        let record = J::record(s.current().unwrap());
        let (loaded, corrupt) = Session::load::<J>(settings(), Some(&record));
        assert!(!corrupt);
        assert_eq!(loaded.current(), s.current());
        for junk in ["", "{", "null", "{\"v\":2}", "another app's value"] {
            let (s, corrupt) = Session::load::<J>(settings(), Some(junk));
            assert!(corrupt && s.current().is_none(), "{junk}");
        }
    }

    #[test]
    fn start_sends_ours_with_the_token_and_refreshes_first_when_due() {
        let mut s = signed_in("at1", "rt1");
        let strict = Start::Strict as u8;
        assert_eq!(s.start(API, false, true, NOW), Start::Send as u8);
        assert_eq!(
            s.start(API, false, true, NOW + 5_000.0),
            Start::RefreshFirst as u8
        );
        assert_eq!(
            s.start("https://other.example/", false, true, NOW),
            Start::Pass as u8
        );
        assert_eq!(s.start(API, true, true, NOW), Start::Pass as u8);
        s.settings.strict_redirects = true;
        assert_eq!(s.start(API, false, true, NOW), Start::Send as u8 | strict);
        assert_eq!(
            s.start(API, false, false, NOW),
            Start::Send as u8,
            "a call's own mode stays"
        );
        let (signed_out, _) = Session::load::<J>(settings(), None);
        assert_eq!(signed_out.start(API, false, true, NOW), Start::Send as u8);
    }

    #[test]
    fn a_refresh_rotates_commits_and_tells_once_the_lock_is_released() {
        let mut s = signed_in("at1", "rt1");
        let later = NOW + 6_000.0;
        assert_eq!(s.begin_refresh(Some("at1"), later).unwrap(), Some("rt1"));
        let record = s
            .answer::<J>(200, Some(&tokens("at2", Some("rt2"))), later)
            .unwrap();
        let record = record.unwrap().to_owned();
        assert_eq!(s.access(), Some("at1"), "switched only at commit");
        match s.commit() {
            Some(Outcome::Rotated(r)) => assert_eq!(r, record),
            other => panic!("{other:?}"),
        }
        let now = s.current().unwrap();
        assert_eq!(
            (now.access_token.as_str(), now.refresh_token.as_str()),
            ("at2", "rt2")
        );
        assert_eq!(now.refreshed_at, Some(later));
        assert_eq!(token::parse_stored::<J>(&record).as_ref(), Some(now));
        let expires_at = Some(later + 10_000.0);
        let told = AuthEvent::Refresh {
            expires_at,
            source: Source::ThisTab,
        };
        assert_eq!(s.flush(), Some(told));
        assert_eq!(s.flush(), None);
    }

    #[test]
    fn a_server_that_does_not_rotate_keeps_the_refresh_token() {
        let mut s = signed_in("at1", "rt1");
        refresh(&mut s, 200, &tokens("at2", None), NOW).unwrap();
        assert_eq!(s.current().unwrap().refresh_token, "rt1");
        assert_eq!(s.access(), Some("at2"));
    }

    #[test]
    fn a_rejection_signs_out_and_names_the_servers_error() {
        let mut s = signed_in("at1", "rt1");
        let generation = s.generation();
        let body = r#"{"error":"invalid_grant","error_description":"rt1 was reused"}"#;
        let e = refresh(&mut s, 400, body, NOW).unwrap_err();
        assert_eq!(e.code(), ErrorCode::RefreshRejected);
        assert_eq!(
            e.message(),
            "the refresh token was rejected (invalid_grant)"
        );
        assert!(s.current().is_none());
        assert_ne!(s.generation(), generation);
        let told = AuthEvent::Signout {
            reason: SignoutReason::Rejected,
            error: Some("invalid_grant".into()),
        };
        assert_eq!(s.flush(), Some(told));
    }

    #[test]
    fn a_transient_failure_keeps_the_session_and_ends_the_refresh() {
        for (status, message) in [
            (503, "refresh endpoint answered HTTP 503"),
            (0, "refresh request failed (network error or timeout)"),
        ] {
            let mut s = signed_in("at1", "rt1");
            let e = refresh(&mut s, status, "", NOW).unwrap_err();
            assert_eq!((e.code(), e.message()), (ErrorCode::RefreshFailed, message));
            assert_eq!(s.current().unwrap().refresh_token, "rt1");
            // The refresh is over: a late answer belongs to nobody.
            let late = s.answer::<J>(200, Some(&tokens("at2", Some("rt2"))), NOW);
            assert_eq!(late.unwrap_err().code(), ErrorCode::NotAuthenticated);
            assert_eq!(s.flush(), None);
        }
        let mut s = signed_in("at1", "rt1");
        let e = refresh(&mut s, 200, "<html>", NOW).unwrap_err();
        assert_eq!(
            e.message(),
            "refresh response unusable: token response is not JSON"
        );
    }

    #[test]
    fn a_refresh_that_outlives_its_session_changes_nothing() {
        let mut s = signed_in("at1", "rt1");
        s.begin_refresh(Some("at1"), NOW).unwrap();
        assert_eq!(s.sign_out().as_deref(), Some("rt1"));
        let late = s.answer::<J>(200, Some(&tokens("at2", Some("rt2"))), NOW);
        assert_eq!(late.unwrap_err().code(), ErrorCode::NotAuthenticated);
        assert!(s.current().is_none() && s.commit().is_none());
        let told = AuthEvent::Signout {
            reason: SignoutReason::Logout,
            error: None,
        };
        assert_eq!(s.flush(), Some(told));
        // A new sign-in meanwhile is not clobbered either.
        let mut s = signed_in("at1", "rt1");
        s.begin_refresh(Some("at1"), NOW).unwrap();
        let t = token::parse::<J>(&tokens("new", Some("rt-new"))).unwrap();
        s.sign_in::<J>(t, NOW).unwrap();
        assert!(s
            .answer::<J>(200, Some(&tokens("at2", Some("rt2"))), NOW)
            .is_err());
        assert_eq!(s.current().unwrap().refresh_token, "rt-new");
    }

    #[test]
    fn another_tabs_writes_are_adopted_and_told_at_once() {
        let mut s = signed_in("at1", "rt1");
        let generation = s.generation();
        let mut other = signed_in("at2", "rt2");
        other.current.as_mut().unwrap().refreshed_at = Some(NOW);
        let record = J::record(other.current().unwrap());
        let told = s.adopt::<J>(Some(&record));
        let expires_at = other.current().unwrap().expires_at;
        assert_eq!(
            told,
            Some(AuthEvent::Refresh {
                expires_at,
                source: Source::OtherTab
            })
        );
        assert_eq!(
            s.adopt::<J>(Some(&record)),
            None,
            "the same record again: nothing new"
        );
        assert_eq!(s.generation(), generation, "a rotation of the same session");
        let told = s.adopt::<J>(None);
        let signout = AuthEvent::Signout {
            reason: SignoutReason::OtherTab,
            error: None,
        };
        assert_eq!(told, Some(signout));
        assert_ne!(s.generation(), generation);
        assert_eq!(s.adopt::<J>(None), None, "signed out already");
    }

    #[test]
    fn an_adopted_rotation_does_not_void_this_tabs_refresh_in_flight() {
        let mut s = signed_in("at1", "rt1");
        s.begin_refresh(Some("at1"), NOW).unwrap();
        let other = signed_in("at2", "rt2");
        s.adopt::<J>(Some(&J::record(other.current().unwrap())));
        let record = s
            .answer::<J>(200, Some(&tokens("at3", Some("rt3"))), NOW)
            .unwrap();
        assert!(record.is_some());
    }

    #[test]
    fn under_the_lock_the_last_holders_rotation_is_taken_over_and_ends_the_refresh() {
        let mut s = signed_in("at1", "rt1");
        let generation = s.generation();
        let mut other = signed_in("at2", "rt2");
        other.current.as_mut().unwrap().refresh_at = Some(NOW + 5_000.0);
        let shared = J::record(other.current().unwrap());
        // Nothing read: nothing to take over, whatever the generation.
        assert!(s.sync::<J>(None, generation + 1).is_ok());
        // Signed in or out since the refresh was asked for: it fails.
        let stale = s.sync::<J>(Some(Some(&shared)), generation + 1);
        assert_eq!(stale.unwrap_err().code(), ErrorCode::NotAuthenticated);
        s.sync::<J>(Some(Some(&shared)), generation).unwrap();
        assert_eq!(s.access(), Some("at2"));
        // The token this refresh was for (at1) is gone and at2 is not due: nothing to do.
        assert_eq!(s.begin_refresh(Some("at1"), NOW).unwrap(), None);
        assert!(matches!(
            s.flush(),
            Some(AuthEvent::Refresh {
                source: Source::OtherTab,
                ..
            })
        ));
        // A due token is refreshed all the same.
        assert_eq!(
            s.begin_refresh(Some("at1"), NOW + 5_000.0).unwrap(),
            Some("rt2")
        );
        // The last holder signed out.
        s.sync::<J>(Some(None), s.generation()).unwrap();
        assert!(s.current().is_none());
    }

    #[test]
    fn before_the_lock_only_a_newer_rotation_not_due_is_adopted() {
        let mut s = signed_in("at1", "rt1");
        let mut newer = signed_in("at2", "rt2").current.unwrap();
        newer.expires_at = Some(NOW + 20_000.0);
        newer.refresh_at = Some(NOW + 15_000.0);
        let shared = J::record(&newer);
        assert!(
            s.adopt_before_lock::<J>(Some(&shared), Some("at2"), NOW)
                .is_none(),
            "the failed one"
        );
        assert!(
            s.adopt_before_lock::<J>(Some(&shared), Some("at1"), NOW + 15_000.0)
                .is_none(),
            "due"
        );
        assert!(s.adopt_before_lock::<J>(None, Some("at1"), NOW).is_none());
        assert!(s
            .adopt_before_lock::<J>(Some(&shared), Some("at1"), NOW)
            .is_some());
        assert_eq!(s.access(), Some("at2"));
        let older = J::record(&signed_in("at0", "rt0").current.unwrap());
        assert!(
            s.adopt_before_lock::<J>(Some(&older), Some("at2"), NOW)
                .is_none(),
            "older"
        );
    }

    #[test]
    fn what_a_401_calls_for() {
        let s = signed_in("at1", "rt1");
        let on_401 = |carried, replayed| {
            s.on_401(
                carried,
                API,
                API,
                false,
                false,
                None,
                replayed,
                NOW + 2_000.0,
            )
        };
        assert_eq!(on_401("at1", 0), On401::RefreshThenReplay);
        assert_eq!(on_401("at0", 0), On401::ReplayWithCurrent);
        assert_eq!(on_401("at1", Replayed::Token as u8), On401::Return);
        // Redirected to another origin: the token never reached it.
        let elsewhere = s.on_401(
            "at1",
            API,
            "https://other.example/x",
            true,
            false,
            None,
            0,
            NOW,
        );
        assert_eq!(elsewhere, On401::Return);
        // A nonce challenge counts only with DPoP on.
        let www = Some("DPoP error=\"use_dpop_nonce\"");
        let challenged =
            |s: &Session, replayed| s.on_401("at1", API, API, false, false, www, replayed, NOW);
        assert_eq!(challenged(&s, 0), On401::RefreshThenReplay);
        let mut s = s;
        s.settings.dpop = true;
        assert_eq!(challenged(&s, 0), On401::ReplayWithNonce);
        assert_eq!(challenged(&s, Replayed::Nonce as u8), On401::Return);
    }

    #[test]
    fn after_a_failed_refresh_the_old_token_is_sent_only_while_it_lives() {
        let s = signed_in("at1", "rt1");
        assert!(s.send_anyway(Some("refresh_failed"), NOW + 9_999.0));
        assert!(!s.send_anyway(Some("refresh_failed"), NOW + 10_000.0));
        assert!(!s.send_anyway(Some("refresh_rejected"), NOW));
        assert!(!s.send_anyway(None, NOW));
    }

    #[test]
    fn a_login_answer_starts_a_session_or_fails_with_login_failed() {
        let (mut s, _) = Session::load::<J>(settings(), None);
        let generation = s.generation();
        let record = s
            .logged_in::<J>(200, Some(&tokens("at1", Some("rt1"))), NOW)
            .unwrap();
        assert_eq!(token::parse_stored::<J>(&record).as_ref(), s.current());
        assert_eq!(
            s.current().unwrap().refreshed_at,
            None,
            "handed over, not refreshed"
        );
        assert_ne!(s.generation(), generation);
        for (status, body, message) in [
            (401, "{}", "login was refused (HTTP 401)"),
            (0, "", "login request failed (network error or timeout)"),
            (
                200,
                &*tokens("at", None),
                "login response has no refresh_token",
            ),
        ] {
            let e = s.logged_in::<J>(status, Some(body), NOW).unwrap_err();
            assert_eq!((e.code(), e.message()), (ErrorCode::LoginFailed, message));
        }
    }

    #[test]
    fn with_dpop_a_bearer_answer_is_refused_and_nonces_are_kept_per_origin() {
        let mut s = signed_in("at1", "rt1");
        s.settings.dpop = true;
        let e = refresh(&mut s, 200, &tokens("at2", Some("rt2")), NOW).unwrap_err();
        assert!(
            e.message().starts_with("refresh response unusable"),
            "{}",
            e.message()
        );
        assert_eq!(s.current().unwrap().refresh_token, "rt1");
        #[cfg(feature = "dpop")]
        {
            s.took("https://api.example/a?x", Some("n1"));
            s.took("https://other.example/", Some("n2"));
            assert_eq!(
                s.proof_for("https://api.example/b?q#f"),
                ("https://api.example/b", Some("n1"))
            );
            assert_eq!(
                s.proof_for("https://third.example/"),
                ("https://third.example/", None)
            );
        }
    }
}
