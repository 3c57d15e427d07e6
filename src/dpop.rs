//! DPoP (RFC 9449) decisions, pure: which URL a proof names, when a response is a nonce
//! challenge rather than a token failure, which nonce to send to an origin. The browser layer
//! (`web`, `js/plumbing.js`) signs the proofs; these decide what goes in them and what an
//! answer means, and are tested natively here.

use alloc::{string::String, vec::Vec};

/// A proof's `htu`: the request URL without its query and fragment (RFC 9449 §4.2, §4.3).
pub fn htu(url: &str) -> &str {
    // Bytes, not a char pattern: `?` and `#` are ASCII, so the cut is on a char boundary.
    let end = url.bytes().position(|b| b == b'?' || b == b'#');
    &url[..end.unwrap_or(url.len())]
}

/// A token endpoint's answer is a nonce challenge (RFC 9449 §8): `400` with the error
/// `use_dpop_nonce`. Not a token failure: the request is sent again with the nonce, nothing
/// is refreshed or signed out.
pub fn token_endpoint_wants_nonce(status: u16, error: Option<&str>) -> bool {
    status == 400 && error == Some("use_dpop_nonce")
}

/// What a token endpoint's answer (`status`, its `error` code) is to a call that has or has
/// not `retried` already: a nonce challenge to answer by sending the request again (true), at
/// most once; a second one is the answer.
pub fn token_challenge(status: u16, error: Option<&str>, retried: bool) -> bool {
    !retried && token_endpoint_wants_nonce(status, error)
}

/// A resource server's answer is a nonce challenge (RFC 9449 §9): `401` whose
/// `WWW-Authenticate` has a `DPoP` challenge with `error="use_dpop_nonce"`.
pub fn resource_wants_nonce(status: u16, www_authenticate: Option<&str>) -> bool {
    status == 401 && www_authenticate.is_some_and(|h| dpop_nonce_error(h.as_bytes()))
}

/// What a call does with a resource server's answer, given whether it already answered a
/// nonce challenge: `Some(true)` a challenge to answer (replay with the nonce), `Some(false)` a
/// second challenge, given back to the caller as the 401 it is (never a token failure: no
/// refresh, no sign-out), `None` no nonce challenge (the usual 401 rules decide).
pub fn resource_challenge(
    status: u16,
    www_authenticate: Option<&str>,
    answered: bool,
) -> Option<bool> {
    resource_wants_nonce(status, www_authenticate).then_some(!answered)
}

/// RFC 9110 §5.6.2 `tchar`.
fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Reads a `WWW-Authenticate` value (RFC 9110 §11.6.1): comma-separated items, where
/// `scheme [name=value]` starts a challenge and `name=value` continues it (values plain
/// tokens or quoted strings, whose commas and escapes are skipped). True when a `DPoP`
/// challenge has `error=use_dpop_nonce`. Bytes only, one pass, no allocation.
fn dpop_nonce_error(h: &[u8]) -> bool {
    let ws = |i: &mut usize| {
        while *i < h.len() && (h[*i] == b' ' || h[*i] == b'\t') {
            *i += 1;
        }
    };
    let mut in_dpop = false;
    let mut i = 0;
    while i < h.len() {
        let start = i;
        while i < h.len() && tchar(h[i]) {
            i += 1;
        }
        let token = &h[start..i];
        if token.is_empty() {
            i += 1; // a separator (or a stray byte)
            continue;
        }
        ws(&mut i);
        if h.get(i) != Some(&b'=') {
            in_dpop = token.eq_ignore_ascii_case(b"DPoP"); // a new challenge's scheme
            continue;
        }
        i += 1;
        ws(&mut i);
        let value = if h.get(i) == Some(&b'"') {
            i += 1;
            let from = i;
            while i < h.len() && h[i] != b'"' {
                i += if h[i] == b'\\' { 2 } else { 1 };
            }
            let v = &h[from..i.min(h.len())];
            i += 1;
            v
        } else {
            let from = i;
            while i < h.len() && tchar(h[i]) {
                i += 1;
            }
            &h[from..i]
        };
        if in_dpop && token.eq_ignore_ascii_case(b"error") && value == b"use_dpop_nonce" {
            return true;
        }
    }
    false
}

/// With DPoP on, a token response must say `token_type: "DPoP"` (case-insensitive, RFC 6749
/// §7.1): a bearer answer is a silent downgrade (RFC 9449 §5) and is refused.
pub fn token_type_accepted(dpop: bool, token_type: Option<&str>) -> bool {
    match token_type {
        None => !dpop,
        Some(t) if dpop => t.eq_ignore_ascii_case("DPoP"),
        Some(t) => t.eq_ignore_ascii_case("Bearer"),
    }
}

/// The latest nonce each origin gave (RFC 9449 §8.2: a server may send a fresh one with any
/// response, 200s included).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Nonces(Vec<(String, String)>);

impl Nonces {
    /// The nonce to put in the next proof for `origin`.
    pub fn get(&self, origin: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(o, _)| o == origin)
            .map(|(_, n)| n.as_str())
    }

    /// Keeps `nonce` (a response's `DPoP-Nonce`) as `origin`'s latest. An empty value or one
    /// that is not a visible-ASCII token (RFC 9449 §8.1: `1*NQCHAR`) is ignored.
    pub fn take(&mut self, origin: &str, nonce: &str) {
        if nonce.is_empty()
            || !nonce
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
        {
            return;
        }
        match self.0.iter_mut().find(|(o, _)| o == origin) {
            Some((_, n)) => {
                n.clear();
                n.push_str(nonce);
            }
            None => self.0.push((origin.into(), nonce.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htu_drops_the_query_and_the_fragment() {
        assert_eq!(
            htu("https://a.example/api/me?x=1#f"),
            "https://a.example/api/me"
        );
        assert_eq!(
            htu("https://a.example/api/me#f?x"),
            "https://a.example/api/me"
        );
        assert_eq!(htu("https://a.example/"), "https://a.example/");
    }

    #[test]
    fn a_token_endpoint_nonce_challenge_is_a_400_use_dpop_nonce() {
        assert!(token_endpoint_wants_nonce(400, Some("use_dpop_nonce")));
        assert!(!token_endpoint_wants_nonce(400, Some("invalid_grant")));
        assert!(!token_endpoint_wants_nonce(401, Some("use_dpop_nonce")));
        assert!(!token_endpoint_wants_nonce(400, None));
        assert!(token_challenge(400, Some("use_dpop_nonce"), false));
        assert!(!token_challenge(400, Some("use_dpop_nonce"), true));
    }

    #[test]
    fn a_resource_nonce_challenge_is_a_dpop_challenge_with_that_error() {
        let yes = [
            r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#,
            r#"dpop algs="ES256 EdDSA", error="use_dpop_nonce""#,
            r#"Bearer realm="api", DPoP error="use_dpop_nonce""#,
            r#"DPoP error=use_dpop_nonce"#,
            r#"Bearer error="invalid_token", DPoP algs="ES256", error="use_dpop_nonce""#,
        ];
        for h in yes {
            assert!(resource_wants_nonce(401, Some(h)), "{h}");
        }
        let no = [
            r#"DPoP error="invalid_token""#,
            r#"Bearer error="use_dpop_nonce""#,
            r#"DPoP error_description="use_dpop_nonce""#,
            r#"DPoP error="invalid_dpop_proof", error_description="not error=\"use_dpop_nonce\"""#,
            r#"Bearer realm="DPoP error=use_dpop_nonce""#,
            "",
        ];
        for h in no {
            assert!(!resource_wants_nonce(401, Some(h)), "{h}");
        }
        assert!(!resource_wants_nonce(403, Some(yes[0])));
        assert!(!resource_wants_nonce(401, None));
        // Each call answers one challenge; a second goes back to the caller.
        assert_eq!(resource_challenge(401, Some(yes[0]), false), Some(true));
        assert_eq!(resource_challenge(401, Some(yes[0]), true), Some(false));
        assert_eq!(resource_challenge(401, Some(no[0]), false), None);
        assert_eq!(resource_challenge(401, None, true), None);
    }

    #[test]
    fn with_dpop_on_only_a_dpop_token_type_is_accepted() {
        assert!(token_type_accepted(true, Some("DPoP")));
        assert!(token_type_accepted(true, Some("dpop")));
        assert!(!token_type_accepted(true, Some("Bearer")), "a downgrade");
        assert!(!token_type_accepted(true, None), "a downgrade");
        assert!(token_type_accepted(false, Some("bearer")));
        assert!(token_type_accepted(false, None));
        assert!(
            !token_type_accepted(false, Some("DPoP")),
            "bound tokens need the key"
        );
    }

    #[test]
    fn the_latest_nonce_per_origin_is_kept() {
        let mut n = Nonces::default();
        assert_eq!(n.get("https://a"), None);
        n.take("https://a", "n1");
        n.take("https://b", "m1");
        n.take("https://a", "n2");
        assert_eq!(n.get("https://a"), Some("n2"));
        assert_eq!(n.get("https://b"), Some("m1"));
        n.take("https://a", "");
        n.take("https://a", "bad nonce");
        n.take("https://a", "bad\"nonce");
        assert_eq!(n.get("https://a"), Some("n2"), "invalid values are ignored");
    }
}
