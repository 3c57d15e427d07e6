//! The transaction a sign-in leaves in storage until its callback: one per sign-in, under a
//! key holding its `state` (so several run at once: two tabs, a popup and a tab), readable by
//! the tab the provider redirects back to, a new tab included (localStorage, not
//! sessionStorage: a magic link opens one), for [`TTL_SECS`].
//!
//! It keeps what the callback needs: the PKCE verifier, the nonce, the redirect URI exactly as
//! sent, where to return, whether a popup runs it, and whether its code was exchanged already
//! (a second callback for it, from a reload, Back or a second call, exchanges nothing).

use crate::error::push_decimal;
use alloc::string::String;

/// How long a sign-in may take, from `signIn()` to the callback: 10 minutes.
pub const TTL_SECS: u32 = 600;

/// How far in the future a transaction's creation may lie (the clock was set back a little
/// between `signIn()` and the callback) before it counts as expired.
const FUTURE_SECS: u32 = 60;

/// A sign-in under way.
#[derive(Clone, PartialEq, Eq)]
pub struct Transaction {
    /// When `signIn()` made it, seconds since the epoch.
    pub created: u32,
    /// A popup runs it (`signInPopup`): the callback page hands it to the window that opened it.
    pub popup: bool,
    /// Its code was exchanged (or the exchange was refused): a second callback exchanges nothing.
    pub done: bool,
    /// The PKCE `code_verifier`.
    pub verifier: String,
    /// The `nonce` sent (with `openid` in the scope), which the ID token must carry.
    pub nonce: Option<String>,
    /// The `redirect_uri` sent, for the exchange.
    pub redirect_uri: String,
    /// The same-origin path (with query and fragment) to return to afterwards.
    pub return_to: String,
}

impl core::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Transaction")
            .field("created", &self.created)
            .field("popup", &self.popup)
            .field("done", &self.done)
            .field("verifier", &"[redacted]")
            .field("return_to", &self.return_to)
            .finish()
    }
}

/// The storage key of the transaction of `state`, for the client whose storage key is `key`.
pub fn key(storage_key: &str, state: &str) -> String {
    let mut k = String::from(storage_key);
    k.push_str(":signin:");
    k.push_str(state);
    k
}

/// The record's format version (its first line).
const VERSION: &str = "1";

impl Transaction {
    /// The record kept in storage: its fields, one per line (none can hold a newline: URLs are
    /// serialized by the browser, the rest is base64url and digits).
    pub fn record(&self) -> String {
        let mut s = String::from(VERSION);
        s.push('\n');
        push_decimal(&mut s, self.created);
        s.push('\n');
        push_decimal(&mut s, u32::from(self.popup) | u32::from(self.done) << 1);
        for field in [
            self.verifier.as_str(),
            self.nonce.as_deref().unwrap_or_default(),
            &self.redirect_uri,
            &self.return_to,
        ] {
            s.push('\n');
            s.push_str(field);
        }
        s
    }

    /// Reads a record; anything else (another version, a truncated write, another app's value)
    /// is `None`.
    pub fn parse(text: &str) -> Option<Transaction> {
        let mut rest = Some(text);
        let mut next = || {
            let t = rest?;
            match t.bytes().position(|b| b == b'\n') {
                Some(i) => {
                    rest = Some(&t[i + 1..]);
                    Some(&t[..i])
                }
                None => rest.take(),
            }
        };
        let number = |s: Option<&str>| {
            crate::token::decimal(s?)?
                .ok()
                .and_then(|n| u32::try_from(n).ok())
        };
        if next()? != VERSION {
            return None;
        }
        let created = number(next())?;
        let flags = number(next())?;
        let verifier = next()?;
        let nonce = next()?;
        let redirect_uri = next()?;
        let return_to = next()?;
        if rest.is_some() || verifier.is_empty() || flags > 3 {
            return None;
        }
        Some(Transaction {
            created,
            popup: flags & 1 != 0,
            done: flags & 2 != 0,
            verifier: verifier.into(),
            nonce: (!nonce.is_empty()).then(|| nonce.into()),
            redirect_uri: redirect_uri.into(),
            return_to: return_to.into(),
        })
    }

    /// Has it expired at `now` (seconds)? After [`TTL_SECS`], or when it was made more than a
    /// minute in the future.
    pub fn expired(&self, now: u32) -> bool {
        now.saturating_add(FUTURE_SECS) < self.created
            || now >= self.created.saturating_add(TTL_SECS)
    }
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

    fn tx() -> Transaction {
        Transaction {
            created: 1_700_000_000,
            popup: false,
            done: false,
            verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
            nonce: Some("n0nce".into()),
            redirect_uri: "https://app.example/cb".into(),
            return_to: "/orders/42?tab=2#items".into(),
        }
    }

    #[test]
    fn records_round_trip() {
        let t = tx();
        assert_eq!(
            t.record(),
            "1\n1700000000\n0\ndBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk\nn0nce\nhttps://app.example/cb\n/orders/42?tab=2#items"
        );
        assert_eq!(Transaction::parse(&t.record()), Some(t.clone()));
        let other = Transaction {
            popup: true,
            done: true,
            nonce: None,
            return_to: "/".into(),
            ..t
        };
        assert_eq!(Transaction::parse(&other.record()), Some(other));
    }

    #[test]
    fn foreign_or_damaged_records_are_none() {
        let good = tx().record();
        let truncated = &good[..good.rfind('\n').unwrap()];
        for bad in [
            "",
            "1",
            truncated,
            &format!("{good}\nextra"),
            &good.replacen('1', "2", 1),
            &good.replacen("\n0\n", "\n4\n", 1),
            &good.replacen("1700000000", "-5", 1),
            &good.replacen("1700000000", "99999999999", 1),
            "1\n5\n0\n\nn\nr\n/",
            "{\"v\":1}",
        ] {
            assert_eq!(Transaction::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ten_minutes_to_come_back() {
        let t = tx();
        assert!(!t.expired(t.created));
        assert!(!t.expired(t.created + 599));
        assert!(t.expired(t.created + 600));
        assert!(!t.expired(t.created - 60), "a clock set back a little");
        assert!(t.expired(t.created - 61));
        let end = Transaction {
            created: u32::MAX,
            ..tx()
        };
        assert!(end.expired(0));
    }

    #[test]
    fn keys_hold_the_state() {
        assert_eq!(key("rotafetch", "abc"), "rotafetch:signin:abc");
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

    #[test]
    fn debug_hides_the_verifier() {
        assert!(!format!("{:?}", tx()).contains("dBjft"));
    }
}
