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
            "exp": s.expires_at, "rat": s.refresh_at, "rfa": s.refreshed_at, "it": s.id_token,
            "sat": s.signed_in_at,
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
    /// New tokens to keep, their record (built once, for both stores), and the generation
    /// the refresh belongs to.
    Rotated(Stored, String, u32),
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

/// What this tab tells its listeners when it takes over another tab's session (or sign-out)
/// in place of `had`: a session that began elsewhere (a sign-in, `login` or `setTokens` in
/// another tab, refreshed since or not) is a sign-in; a rotation of the same one, a refresh.
fn other_tab_event(had: Option<&Stored>, next: &Option<Stored>) -> AuthEvent {
    match next {
        Some(s) if had.map(|h| h.signed_in_at) != Some(s.signed_in_at) => AuthEvent::Signin {
            expires_at: s.expires_at,
            source: Source::OtherTab,
        },
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

    /// `idToken`: the ID token of a sign-in by redirect (kept through refreshes unless a new
    /// one comes): the end-session request's `id_token_hint`.
    pub fn id_token(&self) -> Option<&str> {
        self.current.as_ref()?.id_token.as_deref()
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

    /// `sendAnyway`: after the refresh before sending failed, `transient`ly (`refresh_failed`:
    /// the refresh token kept) or not, send with the old token anyway? (`policy::send_anyway`.)
    pub fn send_anyway(&self, transient: bool, now: f64) -> bool {
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
        let event = other_tab_event(self.current.as_ref(), &next);
        self.set_current(next);
        // Told now, it supersedes what a task of this tab's left for `flush` (a `logout()`
        // here, then another tab's sign-in adopted: the listeners end with `signin`).
        self.pending = None;
        Some(event)
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
            self.pending = Some(other_tab_event(self.current.as_ref(), &shared));
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
            // Signed out meanwhile (another tab's `logout()` adopted while the hand-over
            // store was written): nothing is switched to or stored here; the logout spends
            // the rotated token from the hand-over store.
            Left::Rotated(_, _, generation) if generation != self.generation => None,
            Left::Rotated(stored, record, _) => {
                let expires_at = stored.expires_at;
                // Another tab's sign-in taken over by `sync` and rotated here at once is still
                // news of a sign-in to the listeners.
                self.pending = Some(match self.pending {
                    Some(AuthEvent::Signin { .. }) => AuthEvent::Signin {
                        expires_at,
                        source: Source::OtherTab,
                    },
                    _ => AuthEvent::Refresh {
                        expires_at,
                        source: Source::ThisTab,
                    },
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
mod tests;
