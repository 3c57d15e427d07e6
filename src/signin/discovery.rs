//! The provider's metadata (OpenID Connect Discovery 1.0 §3 and §4, RFC 8414 §2): read from
//! `<issuer>/.well-known/openid-configuration`, trusted only when its `issuer` is the
//! configured one exactly (Discovery §4.3, RFC 8414 §3.3: otherwise it may describe another
//! provider, the mix-up of RFC 9700 §4.4), and kept in storage for [`MAX_AGE_SECS`] so that a
//! page load sends no discovery request.

use super::is_secure_url;
use crate::json::JsonValue;
use alloc::string::String;

/// How long a discovery document is used before it is fetched again (when next needed; a
/// failed refetch keeps using the one in storage).
pub const MAX_AGE_SECS: u32 = 3600;

/// The metadata rotafetch reads (RFC 8414 §2, Discovery §3, RFC 9126 §5, RFC 9207 §3,
/// RP-Initiated Logout §2.1): the endpoints, the first two required.
pub const ENDPOINTS: [&str; 5] = [
    AUTHORIZATION,
    TOKEN,
    "pushed_authorization_request_endpoint",
    "revocation_endpoint",
    "end_session_endpoint",
];
/// `authorization_endpoint`.
pub const AUTHORIZATION: &str = "authorization_endpoint";
/// `token_endpoint`: the code exchange, and refreshes when no `refreshUrl` is set.
pub const TOKEN: &str = "token_endpoint";
/// `pushed_authorization_request_endpoint`: when present, every sign-in pushes its
/// parameters there first (RFC 9126).
pub const PAR: &str = ENDPOINTS[2];
/// `revocation_endpoint`: `logout()` revokes the refresh token there (RFC 7009).
pub const REVOCATION: &str = ENDPOINTS[3];
/// `end_session_endpoint`: `logout({endSession: true})` goes there.
pub const END_SESSION: &str = ENDPOINTS[4];
/// `authorization_response_iss_parameter_supported`: when `true`, the provider puts `iss` in
/// every authorization response, so a response without one is refused (RFC 9207 §2.4).
pub const ISS_PARAMETER: &str = "authorization_response_iss_parameter_supported";

/// Why a discovery document is not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscoveryError {
    /// Not a JSON object.
    NotJson,
    /// Its `issuer` is not the configured issuer exactly.
    IssuerMismatch,
    /// `authorization_endpoint` or `token_endpoint` is missing.
    Missing,
    /// An endpoint is neither https nor on a loopback host.
    Insecure,
    /// `code_challenge_methods_supported` is listed without `S256` (RFC 8414 §2).
    NoS256,
}

impl DiscoveryError {
    /// What went wrong, for the error message (never anything the provider wrote).
    pub const fn message(self) -> &'static str {
        match self {
            DiscoveryError::NotJson => "the discovery document is not JSON",
            DiscoveryError::IssuerMismatch => {
                "the discovery document's issuer is not `issuer` exactly"
            }
            DiscoveryError::Missing => "the discovery document lacks a required endpoint",
            DiscoveryError::Insecure => "the discovery document has an endpoint that is not https",
            DiscoveryError::NoS256 => "the provider does not support PKCE S256",
        }
    }
}

/// Where the document of `issuer` is: `/.well-known/openid-configuration` appended to it, a
/// trailing `/` removed first (Discovery §4).
pub fn url(issuer: &str) -> String {
    let mut u = String::from(issuer.strip_suffix('/').unwrap_or(issuer));
    u.push_str("/.well-known/openid-configuration");
    u
}

/// Reads the document `text` of the provider configured as `issuer` (see [`check`]).
pub fn parse<J: JsonValue>(text: &str, issuer: &str) -> Result<J, DiscoveryError> {
    let j = J::parse(text).ok_or(DiscoveryError::NotJson)?;
    check(&j, issuer).map(|()| j)
}

/// Checks a parsed document `j` of the provider configured as `issuer`: an object naming that
/// issuer exactly, with an authorization and a token endpoint, every endpoint ([`ENDPOINTS`])
/// https (or on loopback), and PKCE's S256 when it lists methods. Its endpoints and
/// [`ISS_PARAMETER`] are then read as they are.
pub fn check<J: JsonValue>(j: &J, issuer: &str) -> Result<(), DiscoveryError> {
    if !j.is_object() {
        return Err(DiscoveryError::NotJson);
    }
    if j.str_field("issuer").as_deref() != Some(issuer) {
        return Err(DiscoveryError::IssuerMismatch);
    }
    for (i, name) in ENDPOINTS.iter().enumerate() {
        match j.str_field(name) {
            Some(u) if !is_secure_url(&u) => return Err(DiscoveryError::Insecure),
            None if i < 2 => return Err(DiscoveryError::Missing),
            _ => {}
        }
    }
    if j.list_has("code_challenge_methods_supported", "S256")
        .is_some_and(|(has, _)| !has)
    {
        return Err(DiscoveryError::NoS256);
    }
    Ok(())
}

/// Is a document fetched at `at` (seconds) still fresh at `now`: younger than
/// [`MAX_AGE_SECS`], and not from the future?
pub fn fresh(at: u32, now: u32) -> bool {
    now.checked_sub(at).is_some_and(|age| age < MAX_AGE_SECS)
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::json::JsonValue;
    use serde_json::{json, Value};

    const ISSUER: &str = "https://id.example.com";

    fn doc() -> Value {
        json!({
            "issuer": ISSUER,
            "authorization_endpoint": "https://id.example.com/authorize",
            "token_endpoint": "https://id.example.com/token",
            "jwks_uri": "https://id.example.com/jwks",
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["plain", "S256"],
        })
    }

    fn read(v: &Value) -> Result<Value, DiscoveryError> {
        parse::<Value>(&v.to_string(), ISSUER)
    }

    #[test]
    fn the_document_url_follows_discovery_section_4() {
        assert_eq!(
            url("https://id.example.com"),
            "https://id.example.com/.well-known/openid-configuration"
        );
        assert_eq!(
            url("https://id.example.com/realms/a/"),
            "https://id.example.com/realms/a/.well-known/openid-configuration"
        );
    }

    #[test]
    fn a_minimal_document() {
        let m = read(&doc()).unwrap();
        assert_eq!(
            m.str_field(AUTHORIZATION).as_deref(),
            Some("https://id.example.com/authorize")
        );
        assert_eq!(
            m.str_field(TOKEN).as_deref(),
            Some("https://id.example.com/token")
        );
        assert_eq!(m.str_field(PAR), None);
    }

    #[test]
    fn the_optional_endpoints_and_rfc9207() {
        let mut d = doc();
        d["pushed_authorization_request_endpoint"] = json!("https://id.example.com/par");
        d["revocation_endpoint"] = json!("https://id.example.com/revoke");
        d["end_session_endpoint"] = json!("https://id.example.com/logout");
        d["authorization_response_iss_parameter_supported"] = json!(true);
        let m = read(&d).unwrap();
        assert_eq!(
            m.str_field(PAR).as_deref(),
            Some("https://id.example.com/par")
        );
        assert_eq!(
            m.str_field(REVOCATION).as_deref(),
            Some("https://id.example.com/revoke")
        );
        assert_eq!(
            m.str_field(END_SESSION).as_deref(),
            Some("https://id.example.com/logout")
        );
        assert_eq!(m.bool_field(ISS_PARAMETER), Some(true));
    }

    #[test]
    fn the_issuer_must_match_exactly() {
        for other in [
            json!("https://id.example.com/"),
            json!("https://ID.example.com"),
            json!("https://evil.example"),
            json!(null),
            json!(["https://id.example.com"]),
        ] {
            let mut d = doc();
            d["issuer"] = other.clone();
            assert_eq!(read(&d), Err(DiscoveryError::IssuerMismatch), "{other}");
        }
        let mut d = doc();
        d.as_object_mut().unwrap().remove("issuer");
        assert_eq!(read(&d), Err(DiscoveryError::IssuerMismatch));
    }

    #[test]
    fn endpoints_are_required_and_secure() {
        for name in ["authorization_endpoint", "token_endpoint"] {
            let mut d = doc();
            d.as_object_mut().unwrap().remove(name);
            assert_eq!(read(&d), Err(DiscoveryError::Missing));
            d[name] = json!(42);
            assert_eq!(read(&d), Err(DiscoveryError::Missing));
        }
        for name in [
            "authorization_endpoint",
            "token_endpoint",
            "pushed_authorization_request_endpoint",
            "revocation_endpoint",
            "end_session_endpoint",
        ] {
            let mut d = doc();
            d[name] = json!("http://id.example.com/x");
            assert_eq!(read(&d), Err(DiscoveryError::Insecure));
        }
        let mut d = doc();
        d["issuer"] = json!("http://127.0.0.1:8080");
        d["authorization_endpoint"] = json!("http://127.0.0.1:8080/authorize");
        d["token_endpoint"] = json!("http://127.0.0.1:8080/token");
        assert!(parse::<Value>(&d.to_string(), "http://127.0.0.1:8080").is_ok());
    }

    #[test]
    fn pkce_s256_must_be_supported_when_methods_are_listed() {
        let mut d = doc();
        d["code_challenge_methods_supported"] = json!(["plain"]);
        assert_eq!(read(&d), Err(DiscoveryError::NoS256));
        d["code_challenge_methods_supported"] = json!("S256");
        assert!(read(&d).is_ok());
        d["code_challenge_methods_supported"] = json!(7);
        assert!(read(&d).is_ok(), "not a list: not read");
        d.as_object_mut()
            .unwrap()
            .remove("code_challenge_methods_supported");
        assert!(read(&d).is_ok(), "absent: PKCE is still used");
    }

    #[test]
    fn not_json() {
        for text in ["", "<html>", "[]", "null", "\"issuer\""] {
            assert_eq!(
                parse::<Value>(text, ISSUER),
                Err(DiscoveryError::NotJson),
                "{text}"
            );
        }
    }

    #[test]
    fn a_document_is_fresh_for_an_hour() {
        assert!(fresh(1_000_000, 1_000_000));
        assert!(fresh(1_000_000, 1_003_599));
        assert!(
            !fresh(1_000_000, 1_003_600),
            "stale, still usable when a refetch fails"
        );
        assert!(!fresh(1_000_000, 999_999), "from the future");
    }
}
