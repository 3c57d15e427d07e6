//! The session state the core decides on: the tokens, where they persist, the generation
//! that voids stale refreshes, and the listeners.

use super::config::Config;
use super::glue::{self, now};
use super::store::Store;
use super::types::*;
use crate::error::AuthError;
use crate::jwt;
use crate::policy;
use crate::token::{self, Stored, TokenResponse};
use alloc::string::String;
use core::cell::{Cell, RefCell};
use wasm_bindgen::JsValue;

/// What a refresh, once its response is in, has left to do after the hand-over store is
/// written (see `Core::answer` and `Core::commit`).
pub(super) enum Outcome {
    /// New tokens to keep, and their record (built once, for both stores).
    Rotated(Stored, String),
    /// The refresh token was refused: the session is over.
    Rejected(AuthError),
}

pub(super) struct State {
    pub(super) cfg: Config,
    pub(super) store: Store,
    pub(super) session: RefCell<Option<Stored>>,
    /// Bumped by every sign-in/sign-out, so a refresh that started before it cannot
    /// resurrect or clobber the session it no longer belongs to.
    pub(super) generation: Cell<u32>,
    /// The refresh under way (one per tab: the driver joins callers to it): the generation it
    /// started in and the session it replaces.
    pub(super) refreshing: RefCell<Option<(u32, Stored)>>,
    /// What the refresh under way has left to do once the hand-over store is written.
    pub(super) outcome: RefCell<Option<Outcome>>,
    /// The event to emit once the cross-tab lock is released.
    pub(super) pending: RefCell<Option<AuthEvent>>,
    /// The listeners (JS functions; the Rust API's closures are wrapped, see `client.rs`).
    pub(super) events: glue::Events,
    /// DPoP: the latest nonce each origin gave.
    #[cfg(feature = "dpop")]
    pub(super) nonces: RefCell<crate::dpop::Nonces>,
}

/// The persisted record's JSON.
pub(super) fn stored_json(s: &Stored) -> String {
    glue::stored_json(
        token::STORED_VERSION,
        &s.refresh_token,
        &s.access_token,
        s.expires_at.unwrap_or(f64::NAN),
        s.refresh_at.unwrap_or(f64::NAN),
        s.refreshed_at.unwrap_or(f64::NAN),
        s.id_token.as_deref(),
    )
}

/// What this tab tells its listeners when it takes over another tab's session (or sign-out):
/// a session no refresh produced (`refreshed_at` unset: `login`, `setTokens`, a sign-in by
/// redirect) is a sign-in.
pub(super) fn other_tab_event(next: &Option<Stored>) -> AuthEvent {
    match next {
        Some(s) if s.refreshed_at.is_none() => AuthEvent::Signin {
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

/// A stored record as the driver read it (`string`), signed out (`null`) or not read.
pub(super) fn parse_record(v: &JsValue) -> Option<Stored> {
    v.as_string()
        .as_deref()
        .and_then(token::parse_stored::<JsValue>)
}

impl State {
    /// Loads the stored session; corrupt stored data is cleared (signed out), never an error.
    pub(super) fn new(cfg: Config, store: Store) -> State {
        let raw = store.read();
        let session = raw.as_deref().and_then(token::parse_stored::<JsValue>);
        if raw.is_some() && session.is_none() {
            store.write(None);
        }
        State {
            cfg,
            store,
            session: RefCell::new(session),
            generation: Cell::new(0),
            refreshing: RefCell::new(None),
            outcome: RefCell::new(None),
            pending: RefCell::new(None),
            events: glue::Events::new(),
            #[cfg(feature = "dpop")]
            nonces: RefCell::new(crate::dpop::Nonces::default()),
        }
    }

    pub(super) fn bump(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
    }

    pub(super) fn access(&self) -> Option<String> {
        self.session
            .borrow()
            .as_ref()
            .map(|s| s.access_token.clone())
    }

    pub(super) fn emit(&self, event: &AuthEvent) {
        self.events.send(event);
    }

    /// The session a token response starts. `replaced` is the refresh token a refresh
    /// presented (`None`: the tokens were handed over by `login`/`setTokens`); it stays when
    /// the server does not rotate, and it marks the session's provenance for the loop guard.
    pub(super) fn stored_from(&self, t: TokenResponse, replaced: Option<String>) -> Stored {
        let at = now();
        let claims = jwt::decode_claims::<JsValue>(&t.access_token).ok();
        let s = policy::schedule(at, claims, t.expires_in, self.cfg.leeway_ms);
        Stored {
            refreshed_at: replaced.is_some().then_some(at),
            refresh_token: t.refresh_token.or(replaced).unwrap_or_default(),
            access_token: t.access_token,
            expires_at: s.expires_at,
            refresh_at: s.refresh_at,
            id_token: t.id_token,
        }
    }

    /// Starts a session handed over by `login`/`setTokens`: kept here and persisted; returns
    /// the record for the hand-over store.
    pub(super) fn sign_in(&self, tokens: TokenResponse) -> Result<String, AuthError> {
        if tokens.refresh_token.is_none() {
            return Err(AuthError::invalid_option("refresh_token", "is required"));
        }
        token::check_type(&tokens, self.cfg.dpop())
            .map_err(|e| AuthError::new(crate::error::ErrorCode::InvalidConfig, e.message()))?;
        let stored = self.stored_from(tokens, None);
        let json = stored_json(&stored);
        self.bump();
        *self.session.borrow_mut() = Some(stored);
        self.store.write(Some(&json));
        Ok(json)
    }

    /// Replaces the session state. Only a change between signed in and signed out (or to
    /// another session) bumps the generation: adopting another tab's rotation of the same
    /// session must not void this tab's refresh in flight.
    pub(super) fn set_session(&self, next: Option<Stored>) {
        let was_in = self.session.borrow().is_some();
        if was_in != next.is_some() {
            self.bump();
        }
        *self.session.borrow_mut() = next;
    }

    /// Takes over the session another tab left; emits what changed.
    pub(super) fn adopt(&self, next: Option<Stored>) {
        if self.session.borrow().as_ref() == next.as_ref() {
            return;
        }
        let had = self.session.borrow().is_some();
        let event = other_tab_event(&next);
        let has = next.is_some();
        self.set_session(next);
        if had || has {
            self.emit(&event);
        }
    }

    /// Is the current access token due for a refresh (see `policy::refresh_before_send`)?
    pub(super) fn due(&self) -> bool {
        self.session.borrow().as_ref().is_some_and(|s| {
            policy::refresh_before_send(
                now(),
                s.refresh_at,
                s.refreshed_at,
                self.cfg.min_interval_ms,
            )
        })
    }
}
