//! The refresh: one in flight per tab, one per browser under the cross-tab lock, and the
//! hand-over of its result to the other tabs.

use super::client::{
    aborted, not_authenticated, other_tab_event, refresh_failed, stored_json, Inner,
};
use super::glue::{self, now};
use super::lock;
use super::types::*;
use crate::error::{AuthError, ErrorCode};
use crate::policy::{self, RefreshOutcome};
use crate::token;
use alloc::rc::Rc;
use alloc::{borrow::ToOwned, string::String};
use wasm_bindgen::prelude::*;

impl Inner {
    /// Joins the refresh in flight or starts one; waits unless `signal` aborts.
    pub(super) async fn refresh_shared(
        this: &Rc<Inner>,
        failed_access: Option<String>,
        signal: Option<&web_sys::AbortSignal>,
    ) -> Result<(), AuthError> {
        let existing = this.inflight.borrow().clone();
        let p = match existing {
            Some(p) => p,
            None => {
                let inner = this.clone();
                let p = glue::promise(async move {
                    let r = Inner::refresh_locked(&inner, failed_access).await;
                    *inner.inflight.borrow_mut() = None;
                    Ok(match r {
                        Ok(()) => JsValue::UNDEFINED,
                        Err(e) => {
                            *inner.last_error.borrow_mut() = Some(e);
                            JsValue::TRUE
                        }
                    })
                });
                *this.inflight.borrow_mut() = Some(p.clone());
                p
            }
        };
        match glue::unless_aborted(&p, signal).await {
            Err(()) => Err(aborted()),
            Ok(v) if v.is_truthy() => Err(this
                .last_error
                .borrow()
                .clone()
                .unwrap_or_else(|| refresh_failed("refresh failed"))),
            Ok(_) => Ok(()),
        }
    }

    /// Takes the cross-tab lock, refreshes unless another tab already did, releases, then
    /// tells the listeners.
    pub(super) async fn refresh_locked(
        this: &Rc<Inner>,
        failed_access: Option<String>,
    ) -> Result<(), AuthError> {
        if this.cfg.cross_tab {
            // Fast path, before queueing for the lock: another tab's rotation that has
            // already committed to the hand-over store, newer than ours and not due, is simply
            // adopted. (Under load, eight tabs queueing for the lock one after another could
            // otherwise take longer than the new token's refresh window.)
            if let Some(Some(s)) = this.read_shared().await {
                let newer = {
                    let mine = this.state.borrow();
                    let mine_exp = mine.as_ref().and_then(|m| m.expires_at);
                    mine.is_some() && s.expires_at > mine_exp
                };
                let due = s.refresh_at.is_some_and(|at| now() >= at);
                if newer && !due && failed_access.as_deref() != Some(&s.access_token) {
                    this.adopt(Some(s));
                    return Ok(());
                }
            }
        }
        let guard = if this.cfg.cross_tab {
            let db = this.db().await;
            match lock::acquire(&this.cfg.lock_name, this.cfg.timeout_ms, db.as_ref()).await {
                Ok(g) => Some(g),
                Err(()) => {
                    return Err(refresh_failed(
                        "timed out waiting for another tab's refresh",
                    ))
                }
            }
        } else {
            None
        };
        let (result, event) = this.refresh_under_lock(failed_access).await;
        drop(guard);
        if let Some(e) = event {
            this.emit(&e);
        }
        result
    }

    pub(super) async fn refresh_under_lock(
        &self,
        failed_access: Option<String>,
    ) -> (Result<(), AuthError>, Option<AuthEvent>) {
        let generation = self.generation.get();
        let mut adopted = None;
        if self.cfg.cross_tab {
            if let Some(shared) = self.read_shared().await {
                if self.generation.get() != generation {
                    return (Err(not_authenticated()), None);
                }
                if shared != *self.state.borrow() {
                    adopted = Some(other_tab_event(&shared));
                    self.set_state(shared);
                }
            }
        }
        // Another tab may have rotated already — learnt just now from the hand-over store, or
        // earlier from its `storage` event: if the token this refresh was meant to replace is
        // gone and the current one is not due, there is nothing to do.
        if let Some(s) = self.state.borrow().as_ref() {
            let due = s.refresh_at.is_some_and(|at| now() >= at);
            if failed_access.as_deref() != Some(&s.access_token) && !due {
                return (Ok(()), adopted);
            }
        }
        let generation = self.generation.get();
        let Some(cur) = self.state.borrow().clone() else {
            return (Err(not_authenticated()), adopted);
        };
        let (content_type, body) = match self.cfg.format {
            RefreshFormat::Json => {
                let mut b = String::from("{\"refresh_token\":\"");
                b.push_str(&cur.refresh_token);
                b.push_str("\"}");
                ("application/json", b)
            }
            RefreshFormat::OAuth2 => {
                let client_id = self.cfg.client_id.as_deref();
                let client_id = client_id.map_or(JsValue::UNDEFINED, JsValue::from_str);
                (
                    "application/x-www-form-urlencoded",
                    glue::form_body(&cur.refresh_token, &client_id),
                )
            }
        };
        let answer = glue::post(
            &self.cfg.refresh_url,
            content_type,
            &body,
            self.cfg.timeout_ms,
            token::MAX_RESPONSE_BYTES,
        )
        .await;
        if self.generation.get() != generation {
            // Signed out or signed in anew meanwhile: this result belongs to nobody.
            return (Err(not_authenticated()), adopted);
        }
        let (status, text) = match answer {
            Ok(a) => a,
            Err(()) => {
                return (
                    Err(refresh_failed(
                        "refresh request failed (network error or timeout)",
                    )),
                    adopted,
                )
            }
        };
        match policy::classify_refresh(status) {
            RefreshOutcome::Success => {
                let parsed = text
                    .as_deref()
                    .ok_or(token::TokenError::TooLarge)
                    .and_then(token::parse::<JsValue>);
                let tokens = match parsed {
                    Ok(t) => t,
                    Err(e) => {
                        let mut m = String::from("refresh response unusable: ");
                        m.push_str(e.message());
                        return (Err(refresh_failed(&m)), adopted);
                    }
                };
                let stored = self.stored_from(tokens, Some(cur.refresh_token));
                // Persist before anyone replays: the hand-over store first (the next lock
                // holder reads it), then the persistent home (its `storage` event wakes tabs).
                self.write_shared(Some(&stored)).await;
                self.store.write(Some(&stored_json(&stored)));
                let expires_at = stored.expires_at;
                *self.state.borrow_mut() = Some(stored);
                let e = AuthEvent::Refresh {
                    expires_at,
                    source: Source::ThisTab,
                };
                (Ok(()), Some(e))
            }
            RefreshOutcome::Rejected => {
                let error = text
                    .as_deref()
                    .and_then(<JsValue as crate::json::JsonValue>::parse)
                    .and_then(|j| crate::json::JsonValue::str_field(&j, "error"));
                let error = policy::rejection_code(error.as_deref()).map(str::to_owned);
                self.set_state(None);
                self.write_shared(None).await;
                self.store.write(None);
                let mut m = String::from("the refresh token was rejected");
                if let Some(code) = &error {
                    m.push_str(" (");
                    m.push_str(code);
                    m.push(')');
                }
                let e = AuthEvent::Signout {
                    reason: SignoutReason::Rejected,
                    error,
                };
                (Err(AuthError::new(ErrorCode::RefreshRejected, m)), Some(e))
            }
            RefreshOutcome::Transient => {
                let mut m = String::from("refresh endpoint answered HTTP ");
                crate::error::push_decimal(&mut m, status.into());
                (Err(refresh_failed(&m)), adopted)
            }
        }
    }
}
