//! The provider's metadata: OpenID Connect Discovery 1.0 §3 and RFC 8414 (one document,
//! served at both well-known paths).

use serde_json::{json, Value};

use super::authorize::SCOPES;

/// Paths of the provider's endpoints (relative to the issuer).
pub const AUTHORIZE: &str = "/authorize";
pub const AUTHORIZE_LOGIN: &str = "/authorize/login";
pub const TOKEN: &str = "/token";
pub const PAR: &str = "/par";
pub const REVOKE: &str = "/revoke";
pub const END_SESSION: &str = "/logout";
pub const JWKS: &str = "/.well-known/jwks.json";
pub const OPENID_CONFIGURATION: &str = "/.well-known/openid-configuration";
pub const OAUTH_METADATA: &str = "/.well-known/oauth-authorization-server";

/// The metadata document for `issuer` (no trailing slash).
pub fn document(issuer: &str) -> Value {
    let at = |path: &str| format!("{issuer}{path}");
    json!({
        // OpenID Connect Discovery 1.0 §3, REQUIRED
        "issuer": issuer,
        "authorization_endpoint": at(AUTHORIZE),
        "token_endpoint": at(TOKEN),
        "jwks_uri": at(JWKS),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        // RECOMMENDED / OPTIONAL there, and RFC 8414 §2
        "scopes_supported": SCOPES,
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid", "amr"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["none"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        // RFC 9207
        "authorization_response_iss_parameter_supported": true,
        // RFC 9126
        "pushed_authorization_request_endpoint": at(PAR),
        "require_pushed_authorization_requests": false,
        // RFC 9449
        "dpop_signing_alg_values_supported": ["ES256", "EdDSA"],
        // RFC 7009
        "revocation_endpoint": at(REVOKE),
        "revocation_endpoint_auth_methods_supported": ["none"],
        // OpenID Connect RP-Initiated Logout 1.0
        "end_session_endpoint": at(END_SESSION),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_required_field_and_endpoint() {
        let d = document("https://op.example");
        for field in [
            "issuer",
            "authorization_endpoint",
            "token_endpoint",
            "jwks_uri",
            "response_types_supported",
            "subject_types_supported",
            "id_token_signing_alg_values_supported",
            "pushed_authorization_request_endpoint",
            "revocation_endpoint",
            "end_session_endpoint",
            "grant_types_supported",
        ] {
            assert!(!d[field].is_null(), "{field}");
        }
        assert_eq!(d["issuer"], "https://op.example");
        assert_eq!(d["token_endpoint"], "https://op.example/token");
        assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(d["authorization_response_iss_parameter_supported"], true);
        assert_eq!(d["token_endpoint_auth_methods_supported"], json!(["none"]));
        assert!(d["id_token_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("RS256")));
    }
}
