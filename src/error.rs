//! The typed error every fallible operation returns. In JS it becomes an `AuthError`
//! (`instanceof Error`) whose `.code` is one of the stable strings below. The core hands JS the
//! code's number (its discriminant; `ErrorCode` in js/plumbing.js, whose `CODES` lists the
//! strings in that order: a native test in `crate::seam` compares them), and js/plumbing.js's
//! `authError` builds every rotafetch error, the driver's own too.
//!
//! Messages are fixed sentences or built from option names and status codes: a token is never
//! part of one.

use alloc::string::String;
use core::fmt;

/// A stable, machine-readable error code (`AuthError.code` in JS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ErrorCode {
    /// An option passed to the constructor, `setTokens` or `login` is missing or invalid.
    InvalidConfig = 0,
    /// The call needs tokens and there are none (signed out).
    NotAuthenticated = 1,
    /// The refresh endpoint refused the refresh token (400/401/403): the session is over.
    RefreshRejected = 2,
    /// The refresh could not be completed (network error, timeout, 5xx, 429, unreadable
    /// response); the refresh token was kept and a later call may try again.
    RefreshFailed = 3,
    /// A request needed a replay after a 401 but its body (a `ReadableStream`) cannot be sent twice.
    BodyNotReplayable = 4,
    /// The caller's `AbortSignal` fired while the call was waiting.
    Aborted = 5,
    /// `login()` did not get a usable token response.
    LoginFailed = 6,
    /// The provider refused the sign-in (an error response at the redirect URI, or a refused
    /// pushed request): `AuthError.error` is its code, e.g. `access_denied`.
    ProviderError = 7,
    /// The callback's `state` matches no sign-in started in this browser (another browser or
    /// profile, storage cleared, or a forged or tampered callback). Nothing was exchanged.
    NoTransaction = 8,
    /// The callback is malformed (no `state`, one this SDK never makes, a parameter twice), or a
    /// popup answered with another sign-in's `state`. Nothing was exchanged.
    StateMismatch = 9,
    /// The callback's `iss` is not the issuer, or is missing where the provider says it sends one
    /// (RFC 9207: a mix-up). Nothing was exchanged.
    IssMismatch = 10,
    /// The sign-in took longer than 10 minutes. Nothing was exchanged.
    TransactionExpired = 11,
    /// Talking to the provider failed (network error, timeout, 5xx, unreadable answer);
    /// `handleRedirect()` may be called again: the sign-in is kept.
    SigninFailed = 12,
    /// The token endpoint refused the code (`AuthError.error`, e.g. `invalid_grant`), or its
    /// answer is unusable (no refresh token, an ID token whose claims are wrong).
    SigninRejected = 13,
    /// The popup could not be opened (a popup blocker: call `signInPopup` in a click handler).
    PopupBlocked = 14,
    /// The popup was closed before the sign-in completed.
    PopupClosed = 15,
}

impl ErrorCode {
    /// The code as JS sees it.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidConfig => "invalid_config",
            ErrorCode::NotAuthenticated => "not_authenticated",
            ErrorCode::RefreshRejected => "refresh_rejected",
            ErrorCode::RefreshFailed => "refresh_failed",
            ErrorCode::BodyNotReplayable => "body_not_replayable",
            ErrorCode::Aborted => "aborted",
            ErrorCode::LoginFailed => "login_failed",
            ErrorCode::ProviderError => "provider_error",
            ErrorCode::NoTransaction => "no_transaction",
            ErrorCode::StateMismatch => "state_mismatch",
            ErrorCode::IssMismatch => "iss_mismatch",
            ErrorCode::TransactionExpired => "transaction_expired",
            ErrorCode::SigninFailed => "signin_failed",
            ErrorCode::SigninRejected => "signin_rejected",
            ErrorCode::PopupBlocked => "popup_blocked",
            ErrorCode::PopupClosed => "popup_closed",
        }
    }

    /// Every code, in declaration order.
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::InvalidConfig,
        ErrorCode::NotAuthenticated,
        ErrorCode::RefreshRejected,
        ErrorCode::RefreshFailed,
        ErrorCode::BodyNotReplayable,
        ErrorCode::Aborted,
        ErrorCode::LoginFailed,
        ErrorCode::ProviderError,
        ErrorCode::NoTransaction,
        ErrorCode::StateMismatch,
        ErrorCode::IssMismatch,
        ErrorCode::TransactionExpired,
        ErrorCode::SigninFailed,
        ErrorCode::SigninRejected,
        ErrorCode::PopupBlocked,
        ErrorCode::PopupClosed,
    ];
}

/// An error with a stable [`ErrorCode`] and a human-readable message free of secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthError {
    code: ErrorCode,
    message: String,
    error: Option<String>,
}

impl AuthError {
    /// A new error. `message` must not contain a token (nothing in this crate ever passes one).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        AuthError {
            code,
            message: message.into(),
            error: None,
        }
    }

    /// With the server's or provider's OAuth `error` code (`AuthError.error` in JS), e.g.
    /// `access_denied` or `invalid_grant`: only a plain code (RFC 6749 §5.2 and §4.1.2.1; see
    /// [`crate::policy::rejection_code`]), never a description.
    pub fn with_error(mut self, error: Option<String>) -> Self {
        self.error = error;
        self
    }

    /// The server's or provider's OAuth `error` code, when it gave one.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// `invalid_config` naming the offending option: "option `name` must be …".
    pub fn invalid_option(name: &str, must: &str) -> Self {
        let mut m = String::with_capacity(name.len() + must.len() + 16);
        m.push_str("option `");
        m.push_str(name);
        m.push_str("` ");
        m.push_str(must);
        AuthError::new(ErrorCode::InvalidConfig, m)
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message (never contains a token).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthError(")?;
        f.write_str(self.code.as_str())?;
        f.write_str(": ")?;
        f.write_str(&self.message)?;
        f.write_str(")")
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl core::error::Error for AuthError {}

/// Appends `n` in decimal (HTTP statuses in messages) without the formatting machinery,
/// which would weigh more in the `.wasm` than the rest of a message path.
pub fn push_decimal(s: &mut String, n: u32) {
    if n >= 10 {
        push_decimal(s, n / 10);
    }
    s.push(char::from(b'0' + (n % 10) as u8));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_distinct() {
        let names: Vec<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "invalid_config",
                "not_authenticated",
                "refresh_rejected",
                "refresh_failed",
                "body_not_replayable",
                "aborted",
                "login_failed",
                "provider_error",
                "no_transaction",
                "state_mismatch",
                "iss_mismatch",
                "transaction_expired",
                "signin_failed",
                "signin_rejected",
                "popup_blocked",
                "popup_closed"
            ]
        );
    }

    #[test]
    fn decimals() {
        for n in [0u32, 7, 10, 401, 503, 65535, u32::MAX] {
            let mut s = String::from("HTTP ");
            push_decimal(&mut s, n);
            assert_eq!(s, format!("HTTP {n}"));
        }
    }

    #[test]
    fn invalid_option_names_the_option() {
        let e = AuthError::invalid_option("refreshUrl", "is required");
        assert_eq!(e.code(), ErrorCode::InvalidConfig);
        assert_eq!(e.message(), "option `refreshUrl` is required");
        assert_eq!(
            format!("{e:?}"),
            "AuthError(invalid_config: option `refreshUrl` is required)"
        );
    }
}
