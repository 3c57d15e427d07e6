//! What a sign-in may send: the parameters rotafetch sets itself, which an app's `params`
//! cannot override, and the shape of the `state` it makes. The driver (`js/driver.js`) builds
//! the requests with `URLSearchParams` — the authorization request (RFC 6749 §4.1.1, RFC 7636
//! §4.3: `response_type=code`, `client_id`, `redirect_uri`, `scope`, `state`,
//! `code_challenge` with `code_challenge_method=S256`; `nonce` with `openid`; `dpop_jkt` with
//! DPoP, RFC 9449 §10), its pushed form (RFC 9126: the front channel then carries only
//! `client_id` and `request_uri`), the code exchange (RFC 6749 §4.1.3 with the exact
//! `redirect_uri` and the `code_verifier`), the revocation (RFC 7009 §2.1) and the end-session
//! request (RP-Initiated Logout §2) — which the end-to-end tests send to the reference provider.

/// The parameters rotafetch sets itself: a sign-in's `params` cannot override them (PKCE,
/// `state`, `nonce`, the redirect URI and the DPoP binding are what make the flow safe), nor
/// ask for another response type or mode than the one the callback is read in.
pub const RESERVED: [&str; 12] = [
    "response_type",
    "response_mode",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "request",
    "request_uri",
    "dpop_jkt",
];

/// Is `name` one of [`RESERVED`], which an app's `params` may not set?
pub fn reserved(name: &str) -> bool {
    RESERVED.contains(&name)
}

/// Is `s` a `state` this SDK could have made (22 base64url characters: 16 random bytes, as
/// the driver makes them)? Anything else in a callback is refused before storage is searched
/// for it.
pub fn is_state(s: &str) -> bool {
    s.len() == 22
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_have_the_sdks_shape() {
        assert!(is_state("AAAAAAAAAAAAAAAAAAAA-_"));
        for bad in [
            "",
            "short",
            &"a".repeat(23),
            "aaaaaaaaaaaaaaaaaaaa+/",
            "aaaaaaaaaaaaaaaaaaaaa=",
        ] {
            assert!(!is_state(bad), "{bad}");
        }
    }

    #[test]
    fn params_cannot_override_the_sdks_own() {
        for name in RESERVED {
            assert!(reserved(name), "{name}");
        }
        for name in [
            "prompt",
            "login_hint",
            "audience",
            "organization",
            "ui_locales",
            "max_age",
        ] {
            assert!(!reserved(name), "{name}");
        }
    }
}
