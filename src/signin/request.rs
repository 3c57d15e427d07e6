//! What rotafetch sends to the provider, as name/value pairs (the browser's `URLSearchParams`
//! encodes them): the authorization request with PKCE (RFC 7636, RFC 9700 §2.1.1), its pushed
//! form (RFC 9126), the code exchange (RFC 6749 §4.1.3), the revocation (RFC 7009 §2.1) and the
//! end-session request (OpenID Connect RP-Initiated Logout 1.0 §2).

use super::has_scope;
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

/// Is `s` a `state` this SDK could have made (22 base64url characters: 16 random bytes, as
/// the driver makes them)? Anything else in a callback is refused before storage is searched
/// for it.
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

impl<'a> Authorization<'a> {
    /// Does the request carry a `nonce` (is `openid` in the scope)?
    pub fn wants_nonce(&self) -> bool {
        has_scope(self.scope, "openid")
    }

    /// The request's own parameters; the app's extra ones (prompt, login_hint, audience, …)
    /// follow them, none of them [`reserved`].
    pub fn params(&self) -> Pairs<'a> {
        let mut p: Pairs<'a> = Vec::from([
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
        p
    }
}

/// Is `name` one of [`RESERVED`], which an app's `params` may not set?
pub fn reserved(name: &str) -> bool {
    RESERVED.contains(&name)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_have_the_sdks_shape() {
        assert!(is_state("AAAAAAAAAAAAAAAAAAAA-_"));
        for bad in ["", "short", &"a".repeat(23), "aaaaaaaaaaaaaaaaaaaa+/", "aaaaaaaaaaaaaaaaaaaaa="] {
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
        let p = request("openid offline_access", None).params();
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
            ]
        );
    }

    #[test]
    fn nonce_only_with_openid_and_dpop_jkt_when_bound() {
        let p = request("offline_access api", Some("JKT")).params();
        assert!(!p.iter().any(|(k, _)| *k == "nonce"));
        assert_eq!(p.last(), Some(&("dpop_jkt", "JKT")));
    }

    #[test]
    fn params_cannot_override_the_sdks_own() {
        let own = request("openid", Some("J")).params();
        for (name, _) in &own {
            assert!(reserved(name), "{name}");
        }
        for name in ["prompt", "login_hint", "audience", "organization", "ui_locales", "max_age"] {
            assert!(!reserved(name), "{name}");
        }
        for name in ["response_mode", "request", "request_uri"] {
            assert!(reserved(name), "{name}");
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
