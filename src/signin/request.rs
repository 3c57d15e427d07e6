//! What rotafetch sends to the provider, as name/value pairs (the browser's `URLSearchParams`
//! encodes them): the authorization request with PKCE (RFC 7636, RFC 9700 §2.1.1), its pushed
//! form (RFC 9126), the code exchange (RFC 6749 §4.1.3), the revocation (RFC 7009 §2.1) and the
//! end-session request (OpenID Connect RP-Initiated Logout 1.0 §2).

use super::{b64url, has_scope};
use alloc::{string::String, vec::Vec};

/// Name/value pairs, in order.
pub type Pairs<'a> = Vec<(&'a str, &'a str)>;

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

/// The PKCE `code_verifier` (RFC 7636 §4.1) made of 32 random bytes: 43 characters of
/// base64url, 256 bits of entropy, as §4.1 recommends.
pub fn verifier(random: &[u8; 32]) -> String {
    b64url(random)
}

/// The S256 `code_challenge` (RFC 7636 §4.2): base64url of the verifier's SHA-256 `digest`.
pub fn challenge(digest: &[u8]) -> String {
    b64url(digest)
}

/// A random `state` or `nonce`: 16 random bytes as base64url (22 characters, 128 bits).
pub fn random_value(random: &[u8; 16]) -> String {
    b64url(random)
}

/// Is `s` a `state` this SDK could have made (22 base64url characters)? Anything else in a
/// callback is refused before storage is searched for it.
pub fn is_state(s: &str) -> bool {
    s.len() == 22
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An authorization request (RFC 6749 §4.1.1 with RFC 7636 §4.3, OpenID Connect Core
/// §3.1.2.1, RFC 9449 §10).
#[derive(Clone, Copy, Debug)]
pub struct Authorization<'a> {
    /// `client_id`.
    pub client_id: &'a str,
    /// `redirect_uri`, exactly as registered.
    pub redirect_uri: &'a str,
    /// `scope`; with `openid` in it, the request carries `nonce`.
    pub scope: &'a str,
    /// `state`: the transaction's key.
    pub state: &'a str,
    /// `nonce` (see [`Authorization::scope`]).
    pub nonce: &'a str,
    /// The S256 `code_challenge`.
    pub challenge: &'a str,
    /// `dpop_jkt`: the DPoP key's JWK thumbprint, binding the code to the key (RFC 9449 §10).
    pub dpop_jkt: Option<&'a str>,
}

/// `params` tried to set one of [`RESERVED`] (its name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReservedParam(pub String);

impl<'a> Authorization<'a> {
    /// Does the request carry a `nonce` (is `openid` in the scope)?
    pub fn wants_nonce(&self) -> bool {
        has_scope(self.scope, "openid")
    }

    /// The request's parameters, the app's `extra` ones (prompt, login_hint, audience, …)
    /// after rotafetch's own; an `extra` that names one of [`RESERVED`] is refused.
    pub fn params(&self, extra: &'a [(String, String)]) -> Result<Pairs<'a>, ReservedParam> {
        let mut p: Pairs<'a> = Vec::with_capacity(9 + extra.len());
        p.extend([
            ("response_type", "code"),
            ("client_id", self.client_id),
            ("redirect_uri", self.redirect_uri),
            ("scope", self.scope),
            ("state", self.state),
            ("code_challenge", self.challenge),
            ("code_challenge_method", "S256"),
        ]);
        if self.wants_nonce() {
            p.push(("nonce", self.nonce));
        }
        if let Some(jkt) = self.dpop_jkt {
            p.push(("dpop_jkt", jkt));
        }
        for (name, value) in extra {
            if RESERVED.contains(&name.as_str()) {
                return Err(ReservedParam(name.clone()));
            }
            p.push((name, value));
        }
        Ok(p)
    }
}

/// The front channel after a pushed authorization request: only `client_id` and the
/// `request_uri` the provider gave (RFC 9126 §4).
pub fn pushed<'a>(client_id: &'a str, request_uri: &'a str) -> Pairs<'a> {
    Vec::from([("client_id", client_id), ("request_uri", request_uri)])
}

/// The code exchange (RFC 6749 §4.1.3, RFC 7636 §4.5): the `redirect_uri` and `code_verifier`
/// exactly as the sign-in sent and kept them.
pub fn exchange<'a>(
    code: &'a str,
    redirect_uri: &'a str,
    verifier: &'a str,
    client_id: &'a str,
) -> Pairs<'a> {
    Vec::from([
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
        ("client_id", client_id),
    ])
}

/// The revocation of a refresh token by a public client (RFC 7009 §2.1).
pub fn revocation<'a>(refresh_token: &'a str, client_id: &'a str) -> Pairs<'a> {
    Vec::from([
        ("token", refresh_token),
        ("token_type_hint", "refresh_token"),
        ("client_id", client_id),
    ])
}

/// The end-session request's query (RP-Initiated Logout 1.0 §2): `client_id`, the session's
/// ID token as `id_token_hint` when there is one, and `post_logout_redirect_uri` when given
/// (it must be registered with the provider).
pub fn end_session<'a>(
    client_id: &'a str,
    id_token: Option<&'a str>,
    post_logout_redirect_uri: Option<&'a str>,
) -> Pairs<'a> {
    let mut p = Vec::from([("client_id", client_id)]);
    if let Some(t) = id_token {
        p.push(("id_token_hint", t));
    }
    if let Some(u) = post_logout_redirect_uri {
        p.push(("post_logout_redirect_uri", u));
    }
    p
}

// Natively only: the PKCE vector needs `sha2`, a native dev-dependency.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    /// RFC 7636 Appendix B: the verifier's octets.
    const APPENDIX_B: [u8; 32] = [
        116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212, 37,
        77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
    ];

    #[test]
    fn pkce_matches_rfc7636_appendix_b() {
        use sha2::Digest;
        let v = verifier(&APPENDIX_B);
        assert_eq!(v, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        let digest = sha2::Sha256::digest(v.as_bytes());
        assert_eq!(
            challenge(&digest),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn verifiers_and_states_have_the_rfc_shapes() {
        let v = verifier(&[0xff; 32]);
        assert_eq!(v.len(), 43, "RFC 7636 §4.1: 43 to 128 characters");
        assert!(v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)));
        let s = random_value(&[7; 16]);
        assert!(is_state(&s));
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

    fn request<'a>(scope: &'a str, jkt: Option<&'static str>) -> Authorization<'a> {
        Authorization {
            client_id: "spa",
            redirect_uri: "https://app.example/cb",
            scope,
            state: "S",
            nonce: "N",
            challenge: "C",
            dpop_jkt: jkt,
        }
    }

    #[test]
    fn the_authorization_request() {
        let extra = [("prompt".to_string(), "consent".to_string())];
        let p = request("openid offline_access", None)
            .params(&extra)
            .unwrap();
        assert_eq!(
            p,
            [
                ("response_type", "code"),
                ("client_id", "spa"),
                ("redirect_uri", "https://app.example/cb"),
                ("scope", "openid offline_access"),
                ("state", "S"),
                ("code_challenge", "C"),
                ("code_challenge_method", "S256"),
                ("nonce", "N"),
                ("prompt", "consent"),
            ]
        );
    }

    #[test]
    fn nonce_only_with_openid_and_dpop_jkt_when_bound() {
        let p = request("offline_access api", Some("JKT"))
            .params(&[])
            .unwrap();
        assert!(!p.iter().any(|(k, _)| *k == "nonce"));
        assert_eq!(p.last(), Some(&("dpop_jkt", "JKT")));
    }

    #[test]
    fn params_cannot_override_the_sdks_own() {
        for name in RESERVED {
            let extra = [(name.to_string(), "x".to_string())];
            assert_eq!(
                request("openid", None).params(&extra),
                Err(ReservedParam(name.to_string()))
            );
        }
        let passed = [
            "prompt",
            "login_hint",
            "audience",
            "organization",
            "ui_locales",
            "max_age",
        ];
        let extra: Vec<_> = passed
            .iter()
            .map(|n| (n.to_string(), "v".to_string()))
            .collect();
        let p = request("openid", None).params(&extra).unwrap();
        for n in passed {
            assert!(p.contains(&(n, "v")), "{n}");
        }
    }

    #[test]
    fn the_other_requests() {
        assert_eq!(
            pushed("spa", "urn:ietf:params:oauth:request_uri:x"),
            [
                ("client_id", "spa"),
                ("request_uri", "urn:ietf:params:oauth:request_uri:x")
            ]
        );
        assert_eq!(
            exchange("CODE", "https://app.example/cb", "VERIFIER", "spa"),
            [
                ("grant_type", "authorization_code"),
                ("code", "CODE"),
                ("redirect_uri", "https://app.example/cb"),
                ("code_verifier", "VERIFIER"),
                ("client_id", "spa"),
            ]
        );
        assert_eq!(
            revocation("RT", "spa"),
            [
                ("token", "RT"),
                ("token_type_hint", "refresh_token"),
                ("client_id", "spa")
            ]
        );
        assert_eq!(end_session("spa", None, None), [("client_id", "spa")]);
        assert_eq!(
            end_session("spa", Some("ID"), Some("https://app.example/")),
            [
                ("client_id", "spa"),
                ("id_token_hint", "ID"),
                ("post_logout_redirect_uri", "https://app.example/")
            ]
        );
    }
}
