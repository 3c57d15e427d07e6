//! The transaction a sign-in leaves in storage until its callback: one per sign-in, under a
//! key holding its `state` (so several run at once: two tabs, a popup and a tab), readable by
//! the tab the provider redirects back to, a new tab included (localStorage, not
//! sessionStorage: a magic link opens one), for [`TTL_SECS`]. The driver keeps it as JSON:
//! `{t: created (s), v: PKCE verifier, n: nonce, r: return path, p: popup, d: done}`; the
//! decisions about it are here and in [`super::callback::check`].

/// How long a sign-in may take, from `signIn()` to the callback: 10 minutes.
pub const TTL_SECS: u32 = 600;

/// How far in the future a transaction's creation may lie (the clock was set back a little
/// between `signIn()` and the callback) before it counts as expired.
const FUTURE_SECS: u32 = 60;

/// Has a transaction made at `created` expired at `now` (seconds)? After [`TTL_SECS`], or when
/// it was made more than a minute in the future.
pub fn expired(created: u32, now: u32) -> bool {
    now.saturating_add(FUTURE_SECS) < created || now >= created.saturating_add(TTL_SECS)
}

/// A `returnTo` (already resolved against the page: `href`) as the path, query and fragment
/// to come back to, when it is on the page's own `origin`; `None` for any other origin (an
/// open redirect otherwise: RFC 9700 §4.11).
pub fn return_path<'a>(href: &'a str, origin: &str) -> Option<&'a str> {
    href.strip_prefix(origin).filter(|p| p.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_minutes_to_come_back() {
        let t = 1_700_000_000;
        assert!(!expired(t, t));
        assert!(!expired(t, t + 599));
        assert!(expired(t, t + 600));
        assert!(!expired(t, t - 60), "a clock set back a little");
        assert!(expired(t, t - 61));
        assert!(expired(u32::MAX, 0));
        assert!(expired(0, u32::MAX));
    }

    #[test]
    fn return_to_stays_on_the_page_origin() {
        let o = "https://app.example";
        assert_eq!(return_path("https://app.example/a?b#c", o), Some("/a?b#c"));
        assert_eq!(return_path("https://app.example/", o), Some("/"));
        for bad in [
            "https://app.example.evil.com/",
            "https://app.example:8443/",
            "https://app.example@evil.com/",
            "http://app.example/",
            "https://evil.com/https://app.example/",
            "javascript:alert(1)",
        ] {
            assert_eq!(return_path(bad, o), None, "{bad}");
        }
    }
}
