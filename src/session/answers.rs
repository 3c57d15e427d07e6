//! What token endpoints' answers do to the session: the refresh endpoint's ([`Session::answer`])
//! and the login endpoint's or `setTokens`'s tokens ([`Session::logged_in`],
//! [`Session::sign_in`]).

use super::{not_authenticated, Left, Session};
use crate::error::{push_decimal, AuthError, ErrorCode};
use crate::event::{AuthEvent, SignoutReason, Source};
use crate::json::JsonValue;
use crate::jwt;
use crate::policy::{self, RefreshOutcome};
use crate::session::Json;
use crate::token::{self, Stored, TokenResponse};
use alloc::{borrow::ToOwned, string::String};

fn refresh_failed(msg: &str) -> AuthError {
    AuthError::new(ErrorCode::RefreshFailed, msg)
}

/// The `error` field of a JSON error body, if any.
fn error_field<J: JsonValue>(text: Option<&str>) -> Option<String> {
    text.and_then(J::parse).and_then(|j| j.str_field("error"))
}

impl Session {
    /// The session a token response starts. `replaced` is the refresh token a refresh
    /// presented (`None`: the tokens were handed over by `login`/`setTokens`); it stays when
    /// the server does not rotate, and it marks the session's provenance for the loop guard.
    fn stored_from<J: Json>(&self, t: TokenResponse, replaced: Option<String>, now: f64) -> Stored {
        let claims = jwt::decode_claims::<J>(&t.access_token).ok();
        let s = policy::schedule(now, claims, t.expires_in, self.settings.leeway_ms);
        Stored {
            refreshed_at: replaced.is_some().then_some(now),
            signed_in_at: replaced.is_none().then_some(now),
            refresh_token: t.refresh_token.or(replaced).unwrap_or_default(),
            access_token: t.access_token,
            expires_at: s.expires_at,
            refresh_at: s.refresh_at,
            id_token: t.id_token,
        }
    }

    /// `answer`: the refresh endpoint's answer (`status` 0: no response, a network error or
    /// a timeout; `text` `None`: unreadable or over the limit). Returns the record to write to
    /// the hand-over store (`None` after a rejection), then [`Session::commit`] finishes;
    /// fails for a transient failure (the refresh token is kept) or when the session changed
    /// meanwhile.
    pub fn answer<J: Json>(
        &mut self,
        status: u16,
        text: Option<&str>,
        now: f64,
    ) -> Result<Option<&str>, AuthError> {
        let Some((generation, cur)) = self.refreshing.take() else {
            return Err(not_authenticated());
        };
        if self.generation != generation {
            // Signed out or signed in anew meanwhile: this result belongs to nobody.
            return Err(not_authenticated());
        }
        let text = text.filter(|t| t.len() <= token::MAX_RESPONSE_BYTES);
        if status == 0 {
            return Err(refresh_failed(
                "refresh request failed (network error or timeout)",
            ));
        }
        match policy::classify_refresh(status) {
            RefreshOutcome::Success => {
                let parsed = text
                    .ok_or(token::TokenError::TooLarge)
                    .and_then(token::parse::<J>);
                let dpop = self.settings.dpop();
                let tokens = match parsed.and_then(|t| token::check_type(&t, dpop).map(|()| t)) {
                    Ok(t) => t,
                    Err(e) => {
                        let mut m = String::from("refresh response unusable: ");
                        m.push_str(e.message());
                        return Err(refresh_failed(&m));
                    }
                };
                let mut stored = self.stored_from::<J>(tokens, Some(cur.refresh_token), now);
                // The same session: when it began stays, and a sign-in's ID token (the
                // end-session hint) unless a new one came.
                stored.signed_in_at = cur.signed_in_at;
                stored.id_token = stored.id_token.or(cur.id_token);
                let record = J::record(&stored);
                let left = self.left.insert(Left::Rotated(stored, record, generation));
                Ok(match left {
                    Left::Rotated(_, record, _) => Some(record.as_str()),
                    Left::Rejected(_) => None,
                })
            }
            RefreshOutcome::Rejected => {
                let error =
                    policy::rejection_code(error_field::<J>(text).as_deref()).map(str::to_owned);
                self.set_current(None);
                let mut m = String::from("the refresh token was rejected");
                if let Some(code) = &error {
                    m.push_str(" (");
                    m.push_str(code);
                    m.push(')');
                }
                self.pending = Some(AuthEvent::Signout {
                    reason: SignoutReason::Rejected,
                    error,
                });
                self.left = Some(Left::Rejected(AuthError::new(
                    ErrorCode::RefreshRejected,
                    m,
                )));
                Ok(None)
            }
            RefreshOutcome::Transient => {
                let mut m = String::from("refresh endpoint answered HTTP ");
                push_decimal(&mut m, status.into());
                Err(refresh_failed(&m))
            }
        }
    }

    /// `loggedIn`: the login endpoint's answer (`status` 0: no response), or with `signin` the
    /// token endpoint's answer to a sign-in's code exchange (the driver checked its ID token).
    /// Starts the session it holds (returns its record, for the persistent and the hand-over
    /// store; the `signin` event waits for [`Session::flush`]), or fails: `login_failed`; for a
    /// sign-in `signin_failed` when the provider could not be reached or failed (the code may
    /// be unspent: the sign-in may be retried), `signin_rejected` with the provider's `error`
    /// when it refused the code or answered something unusable.
    pub fn logged_in<J: Json>(
        &mut self,
        status: u16,
        text: Option<&str>,
        signin: bool,
        now: f64,
    ) -> Result<String, AuthError> {
        let failed = |rejected: bool, m: &str, error: Option<String>| {
            let code = match (signin, rejected) {
                (false, _) => ErrorCode::LoginFailed,
                (true, true) => ErrorCode::SigninRejected,
                (true, false) => ErrorCode::SigninFailed,
            };
            AuthError::new(code, m).with_error(error)
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
            let error = error_field::<J>(text).filter(|_| signin);
            let error = policy::rejection_code(error.as_deref()).map(str::to_owned);
            return Err(failed(rejected, &m, error));
        }
        let tokens = text
            .ok_or(token::TokenError::TooLarge)
            .and_then(token::parse::<J>)
            .and_then(|t| token::check_type(&t, self.settings.dpop()).map(|()| t))
            .map_err(|e| failed(true, e.message(), None))?;
        let record = self
            .sign_in::<J>(tokens, now)
            .map_err(|_| failed(true, "the token response has no refresh_token", None))?;
        self.pending = Some(AuthEvent::Signin {
            expires_at: self.current.as_ref().and_then(|s| s.expires_at),
            source: Source::ThisTab,
        });
        Ok(record)
    }

    /// Starts a session handed over by `login`/`setTokens`; returns its record, for the
    /// persistent and the hand-over store.
    pub fn sign_in<J: Json>(
        &mut self,
        tokens: TokenResponse,
        now: f64,
    ) -> Result<String, AuthError> {
        if tokens.refresh_token.is_none() {
            return Err(AuthError::invalid_option("refresh_token", "is required"));
        }
        token::check_type(&tokens, self.settings.dpop())
            .map_err(|e| AuthError::new(ErrorCode::InvalidConfig, e.message()))?;
        let stored = self.stored_from::<J>(tokens, None, now);
        let record = J::record(&stored);
        self.bump();
        self.current = Some(stored);
        Ok(record)
    }
}
