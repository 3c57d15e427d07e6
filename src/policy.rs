//! Every decision rotafetch makes about a request, as pure functions of numbers and flags:
//! when to refresh, what a refresh response means, what to do with a 401, which origins get
//! the token. The browser layer only gathers the inputs and carries the answer out.

use crate::jwt::Claims;
use alloc::{string::String, vec::Vec};

/// Default `leewaySeconds`: refresh this long before the access token expires.
pub const DEFAULT_LEEWAY_MS: f64 = 10_000.0;
/// Default `refreshTimeoutMs`.
pub const DEFAULT_REFRESH_TIMEOUT_MS: u32 = 10_000;
/// Default `minRefreshIntervalMs`: no 401 triggers a new refresh sooner than this after the
/// last successful one (stops a refresh storm against a server that rejects fresh tokens).
pub const DEFAULT_MIN_REFRESH_INTERVAL_MS: f64 = 1_000.0;
/// Default `storageKey` (the cross-tab lock is named after it too).
pub const DEFAULT_STORAGE_KEY: &str = "rotafetch";
/// Default `scope` of a sign-in by redirect: an ID token and a refresh token.
pub const DEFAULT_SCOPE: &str = "openid offline_access";

/// When an access token expires and when to refresh it, on the local clock.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Schedule {
    /// Expiry, ms since the epoch.
    pub expires_at: Option<f64>,
    /// Refresh before sending from this moment on, ms since the epoch.
    pub refresh_at: Option<f64>,
}

/// Computes the schedule of a token received at `now` (ms).
///
/// The lifetime is taken from the token itself (`exp - iat`) or from `expires_in`, whichever
/// is shorter, and counted from the moment it arrived: a client clock that is minutes off
/// neither refreshes on every request nor sends expired tokens. Only a token with an `exp`
/// but neither `iat` nor `expires_in` falls back to its absolute `exp`. The leeway is capped
/// at half the lifetime, so a 2 s token is used for 1 s rather than refreshed forever.
pub fn schedule(
    now: f64,
    claims: Option<Claims>,
    expires_in_secs: Option<f64>,
    leeway_ms: f64,
) -> Schedule {
    let from_jwt = claims.and_then(|c| c.lifetime_secs());
    let lifetime_ms = match (from_jwt, expires_in_secs) {
        (Some(a), Some(b)) => Some(a.min(b) * 1000.0),
        (a, b) => a.or(b).map(|s| s * 1000.0),
    };
    let (expires_at, lifetime_ms) = match (lifetime_ms, claims.and_then(|c| c.exp)) {
        (Some(l), _) => (now + l, l),
        (None, Some(exp)) => {
            let at = exp * 1000.0;
            (at, (at - now).max(0.0))
        }
        (None, None) => return Schedule::default(),
    };
    let leeway = leeway_ms.max(0.0).min(lifetime_ms / 2.0);
    Schedule {
        expires_at: Some(expires_at),
        refresh_at: Some(expires_at - leeway),
    }
}

/// Should a request refresh before it is sent?
///
/// Yes when the refresh moment has come — unless the current token is one a refresh produced
/// less than `min_interval_ms` ago (then it is used as it is: a token that looks expired the
/// moment it arrives must not cause a refresh per request). `refreshed_at` is the session's
/// provenance: when a refresh produced the current token, `None` for a token that was handed
/// over (`login`, `setTokens`, another tab's new sign-in), which the guard never holds back.
pub fn refresh_before_send(
    now: f64,
    refresh_at: Option<f64>,
    refreshed_at: Option<f64>,
    min_interval_ms: f64,
) -> bool {
    let due = refresh_at.is_some_and(|at| now >= at);
    due && !recently_refreshed(now, refreshed_at, min_interval_ms)
}

/// The loop guard: the current token came from a refresh less than `min_interval_ms` ago.
fn recently_refreshed(now: f64, refreshed_at: Option<f64>, min_interval_ms: f64) -> bool {
    refreshed_at.is_some_and(|t| now - t < min_interval_ms && now >= t)
}

/// The refresh under the lock (or the fast path before it): is a refresh still needed, given
/// the session as it now is? No when the token this refresh was meant to replace
/// (`failed_is_current` false: another tab or call rotated it meanwhile) is gone and the current
/// one is not due yet.
pub fn still_needed(failed_is_current: bool, refresh_at: Option<f64>, now: f64) -> bool {
    failed_is_current || refresh_at.is_some_and(|at| now >= at)
}

/// The fast path before queueing for the cross-tab lock: adopt the session another tab left
/// in the hand-over store instead of refreshing? Only a rotation newer than ours (`shared_exp`
/// later than `mine_exp`, while this tab is signed in), not itself due, and not the token this
/// refresh was meant to replace (`failed_is_shared`).
pub fn adopt_before_lock(
    signed_in: bool,
    mine_exp: Option<f64>,
    shared_exp: Option<f64>,
    shared_refresh_at: Option<f64>,
    failed_is_shared: bool,
    now: f64,
) -> bool {
    signed_in
        && shared_exp > mine_exp
        && !failed_is_shared
        && !still_needed(false, shared_refresh_at, now)
}

/// After the refresh before sending failed: send with the current token anyway? Only after a
/// transient failure (`transient`: the refresh token was kept), while signed in and the token,
/// refreshed early, has not expired (an unknown expiry counts as not expired).
pub fn send_anyway(transient: bool, signed_in: bool, expires_at: Option<f64>, now: f64) -> bool {
    transient && signed_in && expires_at.map_or(true, |at| now < at)
}

crate::seam::answer! {
    /// What to do with a 401 from an allowed origin (the answer of the core's `on401`).
    pub enum On401 {
        /// Give the response to the caller as it is.
        Return = 0,
        /// Another refresh already replaced the token the request carried: replay with the
        /// current one.
        ReplayWithCurrent = 1,
        /// Join (or start) the single refresh, then replay once.
        RefreshThenReplay = 2,
        /// DPoP: a nonce challenge (see `dpop::resource_challenge`): replay with the current
        /// token and the nonce the response gave.
        ReplayWithNonce = 3,
    }
}

/// The inputs of [`on_401`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Seen401 {
    /// DPoP only: the response is a nonce challenge, to answer (`Some(true)`) or, when this
    /// call already answered one, to give back (`Some(false)`); see `dpop::resource_challenge`.
    /// `None`: not a challenge (or DPoP off), the token rules below decide.
    pub nonce_challenge: Option<bool>,
    /// This response answers a replay: never a second one (no loops).
    pub was_replay: bool,
    /// The request carried an access token at all.
    pub carried_token: bool,
    /// The token it carried is still the current one.
    pub carried_is_current: bool,
    /// A current access token exists (signed in).
    pub have_access: bool,
    /// A refresh token exists.
    pub have_refresh: bool,
    /// A refresh is already running (joining it costs nothing).
    pub refresh_in_flight: bool,
    /// Now (ms).
    pub now: f64,
    /// The session's provenance: when the refresh that produced the current token succeeded
    /// (ms); `None` when the token was handed over (`login`, `setTokens`, another tab's new
    /// sign-in). Only a token a refresh just produced is held back by the loop guard.
    pub refreshed_at: Option<f64>,
    /// `minRefreshIntervalMs`.
    pub min_interval_ms: f64,
}

/// Decides what a 401 leads to. A nonce challenge is answered once per call, and a second one
/// goes back to the caller: never taken for a token failure (no refresh).
pub fn on_401(s: Seen401) -> On401 {
    if let Some(answer) = s.nonce_challenge {
        return if answer {
            On401::ReplayWithNonce
        } else {
            On401::Return
        };
    }
    if s.was_replay || !s.carried_token || !s.have_access {
        return On401::Return;
    }
    if !s.carried_is_current {
        return On401::ReplayWithCurrent;
    }
    if s.refresh_in_flight {
        return On401::RefreshThenReplay;
    }
    if !s.have_refresh || recently_refreshed(s.now, s.refreshed_at, s.min_interval_ms) {
        return On401::Return;
    }
    On401::RefreshThenReplay
}

/// What the refresh endpoint's answer means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// 2xx: read the token response.
    Success,
    /// 400/401/403: the refresh token is dead (invalid_grant, reuse detected, revoked): sign out.
    Rejected,
    /// Anything else (5xx, 429, 408, a misrouted 404, …): keep the tokens, fail this attempt.
    Transient,
}

/// Classifies the refresh endpoint's status. Network errors and timeouts never reach here:
/// they are always [`RefreshOutcome::Transient`]. A 2xx whose body cannot be read is
/// transient too: the server may have rotated, and its reuse grace period lets the next
/// attempt with the same token receive the same successor.
pub fn classify_refresh(status: u16) -> RefreshOutcome {
    match status {
        200..=299 => RefreshOutcome::Success,
        400 | 401 | 403 => RefreshOutcome::Rejected,
        _ => RefreshOutcome::Transient,
    }
}

/// The `error` code of a rejection body (RFC 6749 §5.2), if it is a short, plain code.
/// The description is ignored on purpose: a careless server could echo the token in it.
pub fn rejection_code(error: Option<&str>) -> Option<&str> {
    error.filter(|e| {
        !e.is_empty()
            && e.len() <= 64
            && e.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    })
}

/// The origins that receive the access token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList {
    origins: Vec<String>,
}

impl AllowList {
    /// An allow-list of serialized origins (`scheme://host[:port]`, as the URL standard
    /// serializes them: lower-case, default port omitted). Anything else is dropped.
    pub fn new(origins: impl IntoIterator<Item = String>) -> Self {
        let mut list: Vec<String> = Vec::new();
        for o in origins {
            if is_http_origin(&o) && !list.contains(&o) {
                list.push(o);
            }
        }
        AllowList { origins: list }
    }

    /// Exact origin match: another port, scheme or subdomain is another origin.
    pub fn allows(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o == origin)
    }

    /// The origins, in the order given, without duplicates.
    pub fn origins(&self) -> &[String] {
        &self.origins
    }
}

/// The origin of a URL as the browser serializes it (`Request.url`, `URL.href`): the scheme and
/// authority before the path. `None` for anything but a plain http(s) URL (no credentials), so
/// such a URL never matches an [`AllowList`]. Saves parsing a URL on every request.
pub fn origin_of_href(href: &str) -> Option<&str> {
    // Bytes and `get`, not `find`/indexing: no char iteration or panic path in the `.wasm`.
    let b = href.as_bytes();
    let start = if b.starts_with(b"https://") { 8 } else { 7 };
    let end = b
        .iter()
        .skip(start)
        .position(|c| matches!(c, b'/' | b'?' | b'#'))
        .map_or(b.len(), |i| start + i);
    href.get(..end).filter(|o| is_http_origin(o))
}

/// Did the access token reach the server that answered? `sent` is the request's URL (where the
/// token went), `answered` the response's, `redirected` the response's flag. After a redirect
/// to another origin the browser drops `Authorization` (Fetch standard, HTTP-redirect fetch),
/// so that server never saw the token and its 401 says nothing about it: no refresh, no
/// replay (which would be redirected and stripped the same way). A URL that is not a plain
/// http(s) one (a synthetic response has none) counts as reached, as without a redirect.
pub fn token_reached(sent: &str, answered: &str, redirected: bool) -> bool {
    match (redirected, origin_of_href(sent), origin_of_href(answered)) {
        (true, Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// Is `s` a serialized http(s) origin — no path, query, fragment or credentials, and not the
/// opaque origin `"null"`?
pub fn is_http_origin(s: &str) -> bool {
    let rest = match s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
    {
        Some(r) => r,
        None => return false,
    };
    !rest.is_empty()
        && rest.bytes().all(|b| {
            b.is_ascii_graphic()
                && !b.is_ascii_uppercase()
                && !matches!(b, b'/' | b'?' | b'#' | b'@')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_000_000.0;

    fn claims(iat: Option<f64>, exp: Option<f64>) -> Option<Claims> {
        Some(Claims { iat, exp })
    }

    #[test]
    fn schedule_counts_lifetime_from_arrival() {
        // Server clock 500 s behind: exp is in the local past, but the token lives 60 s.
        let s = schedule(NOW, claims(Some(500.0), Some(560.0)), None, 10_000.0);
        assert_eq!(s.expires_at, Some(NOW + 60_000.0));
        assert_eq!(s.refresh_at, Some(NOW + 50_000.0));
    }

    #[test]
    fn schedule_takes_the_shorter_of_jwt_and_expires_in() {
        let s = schedule(NOW, claims(Some(0.0), Some(3600.0)), Some(60.0), 10_000.0);
        assert_eq!(s.expires_at, Some(NOW + 60_000.0));
        let s = schedule(NOW, None, Some(120.0), 0.0);
        assert_eq!(s.refresh_at, Some(NOW + 120_000.0));
    }

    #[test]
    fn leeway_is_capped_at_half_the_lifetime() {
        let s = schedule(NOW, claims(Some(0.0), Some(2.0)), None, 10_000.0);
        assert_eq!(s.expires_at, Some(NOW + 2_000.0));
        assert_eq!(s.refresh_at, Some(NOW + 1_000.0));
    }

    #[test]
    fn absolute_exp_only_without_a_lifetime() {
        let exp_s = (NOW + 30_000.0) / 1000.0;
        let s = schedule(NOW, claims(None, Some(exp_s)), None, 10_000.0);
        assert_eq!(s.expires_at, Some(NOW + 30_000.0));
        assert_eq!(s.refresh_at, Some(NOW + 20_000.0));
        // Already expired: refresh at once, no negative leeway.
        let s = schedule(NOW, claims(None, Some(1.0)), None, 10_000.0);
        assert_eq!(s.refresh_at, Some(1000.0));
    }

    #[test]
    fn no_expiry_information_means_rely_on_401() {
        assert_eq!(schedule(NOW, None, None, 10_000.0), Schedule::default());
        assert_eq!(
            schedule(NOW, claims(None, None), None, 1.0),
            Schedule::default()
        );
        assert!(!refresh_before_send(NOW, None, None, 1000.0));
    }

    #[test]
    fn refresh_before_send_when_due() {
        assert!(!refresh_before_send(NOW, Some(NOW + 1.0), None, 1000.0));
        assert!(refresh_before_send(NOW, Some(NOW), None, 1000.0));
        assert!(refresh_before_send(
            NOW,
            Some(NOW - 5.0),
            Some(NOW - 5000.0),
            1000.0
        ));
        // Just refreshed and the new token already looks due: use it, do not loop.
        assert!(!refresh_before_send(
            NOW,
            Some(NOW - 5.0),
            Some(NOW - 10.0),
            1000.0
        ));
        // A clock that jumped backwards does not block refreshing.
        assert!(refresh_before_send(
            NOW,
            Some(NOW),
            Some(NOW + 60_000.0),
            1000.0
        ));
    }

    fn seen() -> Seen401 {
        Seen401 {
            nonce_challenge: None,
            was_replay: false,
            carried_token: true,
            carried_is_current: true,
            have_access: true,
            have_refresh: true,
            refresh_in_flight: false,
            now: NOW,
            refreshed_at: None,
            min_interval_ms: 1000.0,
        }
    }

    #[test]
    fn a_401_refreshes_then_replays() {
        assert_eq!(on_401(seen()), On401::RefreshThenReplay);
    }

    #[test]
    fn a_nonce_challenge_is_answered_once_and_never_refreshes() {
        let challenged = |answer| Seen401 {
            nonce_challenge: Some(answer),
            ..seen()
        };
        assert_eq!(on_401(challenged(true)), On401::ReplayWithNonce);
        assert_eq!(on_401(challenged(false)), On401::Return);
    }

    #[test]
    fn a_second_401_goes_back_to_the_caller() {
        assert_eq!(
            on_401(Seen401 {
                was_replay: true,
                ..seen()
            }),
            On401::Return
        );
    }

    #[test]
    fn stale_401_replays_without_refreshing() {
        let s = Seen401 {
            carried_is_current: false,
            refreshed_at: Some(NOW - 1.0),
            ..seen()
        };
        assert_eq!(on_401(s), On401::ReplayWithCurrent);
    }

    #[test]
    fn unauthenticated_requests_are_returned() {
        assert_eq!(
            on_401(Seen401 {
                carried_token: false,
                ..seen()
            }),
            On401::Return
        );
        assert_eq!(
            on_401(Seen401 {
                have_access: false,
                ..seen()
            }),
            On401::Return
        );
        assert_eq!(
            on_401(Seen401 {
                have_refresh: false,
                ..seen()
            }),
            On401::Return
        );
    }

    #[test]
    fn loop_guard_and_joining() {
        let just = Seen401 {
            refreshed_at: Some(NOW - 200.0),
            ..seen()
        };
        assert_eq!(on_401(just), On401::Return);
        assert_eq!(
            on_401(Seen401 {
                refresh_in_flight: true,
                ..just
            }),
            On401::RefreshThenReplay
        );
        let later = Seen401 {
            refreshed_at: Some(NOW - 1000.0),
            ..seen()
        };
        assert_eq!(on_401(later), On401::RefreshThenReplay);
    }

    #[test]
    fn a_new_session_is_not_held_back_by_the_previous_sessions_refresh() {
        // A refresh 200 ms ago produced the token the request carried: the guard holds.
        let guarded = Seen401 {
            refreshed_at: Some(NOW - 200.0),
            ..seen()
        };
        assert_eq!(on_401(guarded), On401::Return);
        // Right after that refresh, the app signed in anew (`setTokens`, `login`, another
        // tab's sign-in): the token was handed over, not produced by a refresh.
        let handed_over = Seen401 {
            refreshed_at: None,
            ..guarded
        };
        assert_eq!(on_401(handed_over), On401::RefreshThenReplay);
        // The same on the refresh-before-send path: a due token that a refresh produced
        // 200 ms ago is sent as it is; a due token handed over is refreshed first.
        assert!(!refresh_before_send(
            NOW,
            Some(NOW),
            Some(NOW - 200.0),
            1000.0
        ));
        assert!(refresh_before_send(NOW, Some(NOW), None, 1000.0));
    }

    #[test]
    fn refresh_classification() {
        use RefreshOutcome::*;
        for (status, want) in [
            (200, Success),
            (204, Success),
            (400, Rejected),
            (401, Rejected),
            (403, Rejected),
            (404, Transient),
            (408, Transient),
            (429, Transient),
            (500, Transient),
            (502, Transient),
            (503, Transient),
            (302, Transient),
            (0, Transient),
        ] {
            assert_eq!(classify_refresh(status), want, "{status}");
        }
    }

    #[test]
    fn rejection_codes_are_sanitised() {
        assert_eq!(rejection_code(Some("invalid_grant")), Some("invalid_grant"));
        assert_eq!(rejection_code(Some("has space")), None);
        assert_eq!(rejection_code(Some("")), None);
        assert_eq!(rejection_code(Some(&"x".repeat(65))), None);
        assert_eq!(rejection_code(None), None);
    }

    #[test]
    fn allow_list_is_exact() {
        let a = AllowList::new([
            "https://api.example.com".to_string(),
            "http://127.0.0.1:8080".to_string(),
            "null".to_string(),
            "https://x.example/path".to_string(),
        ]);
        assert_eq!(a.origins().len(), 2);
        assert!(a.allows("https://api.example.com"));
        assert!(a.allows("http://127.0.0.1:8080"));
        for other in [
            "http://api.example.com",
            "https://api.example.com:8443",
            "https://evil.api.example.com",
            "https://api.example.com.evil.com",
            "http://127.0.0.1:8081",
            "http://localhost:8080",
            "null",
            "",
        ] {
            assert!(!a.allows(other), "{other}");
        }
    }

    #[test]
    fn origins_are_validated() {
        assert!(is_http_origin("http://localhost:1"));
        assert_eq!(
            origin_of_href("https://api.example.com:8443/a/b?c#d"),
            Some("https://api.example.com:8443")
        );
        assert_eq!(
            origin_of_href("http://[::1]:8080?x"),
            Some("http://[::1]:8080")
        );
        assert_eq!(origin_of_href("http://h#f"), Some("http://h"));
        assert_eq!(origin_of_href("https://h"), Some("https://h"));
        for bad in [
            "https://u:p@h/",
            "https:///x",
            "ftp://h/",
            "blob:https://h/uuid",
            "data:text/plain,x",
            "HTTPS://H/",
            "",
        ] {
            assert_eq!(origin_of_href(bad), None, "{bad}");
        }
        assert!(is_http_origin("https://[::1]:8080"));
        for bad in [
            "null",
            "ftp://x",
            "https://",
            "https://x/",
            "https://u@x",
            "HTTPS://X",
            "https://x?y",
            "//x",
        ] {
            assert!(!is_http_origin(bad), "{bad}");
        }
    }

    #[test]
    fn a_token_reaches_only_the_origin_it_was_sent_to() {
        let sent = "http://127.0.0.1:8080/api/me";
        // No redirect, or one within the origin: the answering server saw the token.
        assert!(token_reached(sent, sent, false));
        assert!(token_reached(sent, "http://127.0.0.1:8080/api/v2/me", true));
        // Redirected elsewhere (host, port, scheme): the browser dropped Authorization.
        for other in [
            "http://localhost:8080/api/me",
            "http://127.0.0.1:8081/api/me",
            "https://127.0.0.1:8080/api/me",
            "https://auth.example.com/login?next=%2F",
        ] {
            assert!(!token_reached(sent, other, true), "{other}");
            // Without the redirect flag the URL alone decides nothing.
            assert!(token_reached(sent, other, false), "{other}");
        }
        // A response without a URL (synthesized) counts as answered by the recipient.
        assert!(token_reached(sent, "", true));
    }

    #[test]
    fn a_refresh_is_still_needed_for_the_failed_token_or_a_due_one() {
        assert!(still_needed(true, None, 0.0));
        assert!(still_needed(true, Some(100.0), 0.0));
        assert!(
            !still_needed(false, Some(100.0), 50.0),
            "rotated meanwhile, not due"
        );
        assert!(
            still_needed(false, Some(100.0), 100.0),
            "rotated meanwhile but due"
        );
        assert!(!still_needed(false, None, 1e12), "no refresh moment known");
    }

    #[test]
    fn only_a_newer_rotation_that_is_not_due_is_adopted_before_the_lock() {
        let adopt = |signed_in, mine, shared, rat, failed| {
            adopt_before_lock(signed_in, mine, shared, rat, failed, 1_000.0)
        };
        assert!(adopt(true, Some(10.0), Some(20.0), Some(5_000.0), false));
        assert!(
            adopt(true, None, Some(20.0), None, false),
            "ours had no known expiry"
        );
        assert!(
            !adopt(false, Some(10.0), Some(20.0), Some(5_000.0), false),
            "signed out"
        );
        assert!(
            !adopt(true, Some(20.0), Some(20.0), Some(5_000.0), false),
            "not newer"
        );
        assert!(
            !adopt(true, Some(30.0), Some(20.0), Some(5_000.0), false),
            "older"
        );
        assert!(
            !adopt(true, Some(10.0), Some(20.0), Some(500.0), false),
            "due itself"
        );
        assert!(
            !adopt(true, Some(10.0), Some(20.0), Some(5_000.0), true),
            "the failed token"
        );
        assert!(
            !adopt(true, Some(10.0), None, None, false),
            "no expiry: not newer"
        );
    }

    #[test]
    fn a_failed_refresh_before_sending_sends_only_a_still_valid_token_after_a_transient_failure() {
        assert!(send_anyway(true, true, Some(2_000.0), 1_000.0));
        assert!(send_anyway(true, true, None, 1_000.0), "unknown expiry");
        assert!(!send_anyway(true, true, Some(1_000.0), 1_000.0), "expired");
        assert!(
            !send_anyway(false, true, Some(2_000.0), 1_000.0),
            "rejected/aborted"
        );
        assert!(
            !send_anyway(true, false, Some(2_000.0), 1_000.0),
            "signed out"
        );
    }
}
