//! What the browser layer keeps per client: the session state machine (`crate::session`, pure)
//! and the effects it needs carried out here (the persistent store, the listeners).

use super::config::Config;
use super::glue::{self, now};
use super::store::Store;
use crate::error::AuthError;
use crate::event::AuthEvent;
use crate::session::{Json, Session, Settings};
use crate::token::{self, Stored, TokenResponse};
use alloc::string::String;
use core::cell::RefCell;
use wasm_bindgen::JsValue;

impl Json for JsValue {
    fn record(s: &Stored) -> String {
        let time = |t: Option<f64>| t.unwrap_or(f64::NAN);
        let (exp, rat, rfa) = (time(s.expires_at), time(s.refresh_at), time(s.refreshed_at));
        glue::stored_json(
            token::STORED_VERSION,
            &s.refresh_token,
            &s.access_token,
            exp,
            rat,
            rfa,
            s.id_token.as_deref(),
            time(s.signed_in_at),
        )
    }
}

pub(super) struct State {
    pub(super) cfg: Config,
    pub(super) store: Store,
    /// The session state machine. Borrowed only for one of its calls: never while the
    /// listeners run (they may call back into the client).
    pub(super) session: RefCell<Session>,
    /// The listeners (JS functions; the Rust API's closures are wrapped, see `client.rs`).
    pub(super) events: glue::Events,
}

impl State {
    /// Loads the stored session; corrupt stored data is cleared (signed out), never an error.
    pub(super) fn new(
        cfg: Config,
        settings: Settings,
        store: Store,
        events: glue::Events,
    ) -> State {
        let (session, corrupt) = Session::load::<JsValue>(settings, store.read().as_deref());
        if corrupt {
            store.write(None);
        }
        State {
            cfg,
            store,
            session: RefCell::new(session),
            events,
        }
    }

    /// Tells the listeners, if there is anything to tell.
    pub(super) fn emit(&self, event: Option<AuthEvent>) {
        if let Some(e) = event {
            self.events.send(&e);
        }
    }

    /// Starts a session handed over by `login`/`setTokens`: kept here and persisted; returns
    /// the record for the hand-over store.
    pub(super) fn sign_in(&self, tokens: TokenResponse) -> Result<String, AuthError> {
        let record = self
            .session
            .borrow_mut()
            .sign_in::<JsValue>(tokens, now())?;
        self.store.write(Some(&record));
        Ok(record)
    }
}
