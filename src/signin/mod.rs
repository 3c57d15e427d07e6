//! Sign-in by redirect (OAuth 2.1's authorization code flow with PKCE, OpenID Connect), as
//! pure decisions: what the provider's discovery document says ([`discovery`]), what an
//! authorization request, a pushed one and the code exchange send ([`request`]), the
//! transaction a sign-in leaves in storage until its callback ([`transaction`]), what a
//! callback means and what the address bar keeps of it ([`callback`]), whether an ID token's
//! claims are the ones this sign-in asked for ([`id_token`]), and how a session ends at the
//! provider ([`request::end_session`], [`request::revocation`]).
//!
//! No browser here: time and values are passed in, and the forms are lists of name/value pairs.
//! What the browser does for free stays in the driver (`js/driver.js`): random values from
//! `crypto.getRandomValues`, the PKCE challenge from `crypto.subtle.digest` (both base64url by
//! `btoa`), query strings read and written by `URLSearchParams`, records by `JSON` (measured:
//! the same parsing and encoding in Rust cost the `.wasm` several KB). Everything below is
//! tested natively.

pub mod callback;
pub mod discovery;
pub mod id_token;
pub mod request;
pub mod transaction;

/// Is `url` fit for a provider's endpoint: `https`, or `http` on a loopback host (a provider
/// on this machine, as in development and tests)? RFC 8414 §2 and RFC 9700 §4.5 want TLS
/// everywhere else.
pub fn is_secure_url(url: &str) -> bool {
    if url.starts_with("https://") {
        return url.len() > 8;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    ["localhost", "127.0.0.1", "[::1]"].iter().any(|host| {
        rest.strip_prefix(host)
            .is_some_and(|after| matches!(after.bytes().next(), None | Some(b':' | b'/')))
    })
}

/// Does the space-separated `scope` hold `name`?
pub fn has_scope(scope: &str, name: &str) -> bool {
    scope
        .as_bytes()
        .split(|b| *b == b' ')
        .any(|s| s == name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_urls() {
        for ok in [
            "https://id.example.com",
            "https://id.example.com/realms/x",
            "http://localhost",
            "http://localhost:8080/authorize",
            "http://127.0.0.1:3000",
            "http://[::1]:9/x",
        ] {
            assert!(is_secure_url(ok), "{ok}");
        }
        for bad in [
            "http://id.example.com",
            "http://localhost.evil.example/",
            "http://127.0.0.1.evil.example",
            "https://",
            "ftp://localhost",
            "javascript:alert(1)",
            "",
        ] {
            assert!(!is_secure_url(bad), "{bad}");
        }
    }

    #[test]
    fn scopes() {
        assert!(has_scope("openid offline_access", "openid"));
        assert!(has_scope("offline_access openid", "openid"));
        assert!(!has_scope("openidx offline_access", "openid"));
        assert!(!has_scope("", "openid"));
    }
}
