//! Sign-in by redirect (OAuth 2.1's authorization code flow with PKCE, OpenID Connect), as
//! pure decisions: what the provider's discovery document says ([`discovery`]), what an
//! authorization request, a pushed one and the code exchange send ([`request`]), the
//! transaction a sign-in leaves in storage until its callback ([`transaction`]), what a
//! callback means and what the address bar keeps of it ([`callback`]), whether an ID token's
//! claims are the ones this sign-in asked for ([`id_token`]), and how a session ends at the
//! provider ([`request::end_session`], [`request::revocation`]).
//!
//! No browser here: time, random bytes and SHA-256 digests are passed in (the browser layer
//! takes them from `Date.now`, `crypto.getRandomValues` and `crypto.subtle`), and the forms are
//! lists of name/value pairs that the browser's `URLSearchParams` encodes. Everything below is
//! tested natively.

use alloc::string::String;

pub mod callback;
pub mod discovery;
pub mod id_token;
pub mod request;
pub mod transaction;

/// base64url without padding (RFC 4648 §5), as PKCE (RFC 7636 §4.1, §4.2) and random
/// `state`/`nonce` values use it.
pub fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut s = String::with_capacity(bytes.len() / 3 * 4 + 3);
    for chunk in bytes.chunks(3) {
        let mut n = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            n |= u32::from(*b) << (16 - 8 * i);
        }
        for i in 0..=chunk.len() {
            s.push(char::from(A[(n >> (18 - 6 * i)) as usize & 63]));
        }
    }
    s
}

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

/// The query's pieces (`&`-separated, empty ones skipped), as written.
/// Bytes, not `str::split`: no char-pattern searcher in the `.wasm`.
pub(crate) fn pieces(query: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(query);
    core::iter::from_fn(move || loop {
        let q = rest?;
        let (piece, next) = match q.bytes().position(|b| b == b'&') {
            Some(i) => (&q[..i], Some(&q[i + 1..])),
            None => (q, None),
        };
        rest = next;
        if !piece.is_empty() {
            return Some(piece);
        }
    })
}

/// A query piece's name and value (neither decoded).
pub(crate) fn name_value(piece: &str) -> (&str, &str) {
    match piece.bytes().position(|b| b == b'=') {
        Some(i) => (&piece[..i], &piece[i + 1..]),
        None => (piece, ""),
    }
}

/// `(before '?', the query or None, the '#' fragment or "")` of a URL.
pub(crate) fn split_url(href: &str) -> (&str, Option<&str>, &str) {
    let hash_at = href.bytes().position(|b| b == b'#').unwrap_or(href.len());
    let (rest, hash) = href.split_at(hash_at);
    match rest.bytes().position(|b| b == b'?') {
        Some(q) => (&rest[..q], Some(&rest[q + 1..]), hash),
        None => (rest, None, hash),
    }
}

/// A query value decoded as `application/x-www-form-urlencoded` (`+` a space, `%XX` a byte),
/// then read as UTF-8: `None` when it is not UTF-8. A `%` not followed by two hex digits
/// stays as it is (the URL standard's rule).
pub(crate) fn form_decode(value: &str) -> Option<String> {
    let b = value.as_bytes();
    let mut out = alloc::vec::Vec::with_capacity(b.len());
    let hex = |c: u8| (c as char).to_digit(16);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let pair = (c == b'%')
            .then(|| Some(hex(*b.get(i + 1)?)? * 16 + hex(*b.get(i + 2)?)?))
            .flatten();
        match pair {
            Some(v) => {
                out.push(v as u8);
                i += 3;
            }
            None => {
                out.push(if c == b'+' { b' ' } else { c });
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b64url_matches_rfc4648_vectors() {
        // RFC 4648 §10, in the URL-safe alphabet without padding.
        let cases = [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, want) in cases {
            assert_eq!(b64url(input.as_bytes()), want);
        }
        assert_eq!(b64url(&[0xfb, 0xff, 0xbf]), "-_-_", "the URL-safe alphabet");
    }

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

    #[test]
    fn form_decoding() {
        assert_eq!(form_decode("a+b%20c").as_deref(), Some("a b c"));
        assert_eq!(
            form_decode("https%3A%2F%2Fid.example").as_deref(),
            Some("https://id.example")
        );
        assert_eq!(form_decode("100%").as_deref(), Some("100%"));
        assert_eq!(form_decode("%zz%4").as_deref(), Some("%zz%4"));
        assert_eq!(form_decode("%C3%A9").as_deref(), Some("é"));
        assert_eq!(form_decode("%FF"), None, "not UTF-8");
    }

    #[test]
    fn urls_split() {
        assert_eq!(
            split_url("https://a/cb?code=1&x#h?y"),
            ("https://a/cb", Some("code=1&x"), "#h?y")
        );
        assert_eq!(split_url("https://a/#h"), ("https://a/", None, "#h"));
        let pairs: Vec<_> = pieces("a=1&&b&c=d=e&").map(name_value).collect();
        assert_eq!(pairs, [("a", "1"), ("b", ""), ("c", "d=e")]);
    }
}
