//! What a client tells its listeners (`AuthClient::on`): a new session, new tokens, or the
//! end of the session and why.

use alloc::string::String;

/// Where a refresh happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// This tab (this client) called the refresh endpoint.
    ThisTab,
    /// Another tab refreshed (or signed in) and this one adopted its tokens.
    OtherTab,
}

impl Source {
    /// `"this-tab"` or `"other-tab"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::ThisTab => "this-tab",
            Source::OtherTab => "other-tab",
        }
    }
}

/// Why the session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignoutReason {
    /// `logout()` was called in this tab.
    Logout,
    /// The refresh endpoint rejected the refresh token (reuse detected, revoked, expired).
    Rejected,
    /// Another tab logged out or was rejected.
    OtherTab,
}

impl SignoutReason {
    /// `"logout"`, `"rejected"` or `"other-tab"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SignoutReason::Logout => "logout",
            SignoutReason::Rejected => "rejected",
            SignoutReason::OtherTab => "other-tab",
        }
    }
}

/// What the listeners are told (`AuthClient::on`).
#[derive(Clone, Debug, PartialEq)]
pub enum AuthEvent {
    /// A session started: a sign-in completed here (`handle_redirect`, a popup, `login`), or
    /// another tab's sign-in was adopted (no reload needed).
    Signin {
        /// The access token's expiry (ms since the epoch), if known.
        expires_at: Option<f64>,
        /// Where the sign-in happened.
        source: Source,
    },
    /// New tokens are in place.
    Refresh {
        /// The new access token's expiry (ms since the epoch), if known.
        expires_at: Option<f64>,
        /// Who refreshed.
        source: Source,
    },
    /// The session ended: show the login page.
    Signout {
        /// Why.
        reason: SignoutReason,
        /// The server's error code for a rejection (e.g. `invalid_grant`).
        error: Option<String>,
    },
}
