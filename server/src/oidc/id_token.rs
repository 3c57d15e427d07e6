//! ID tokens (OpenID Connect Core §2, §3.1.3.6): the claims, and the check of an
//! `id_token_hint`. They are signed RS256 by the key ring's RSA key (`keys::Alg::RS256`).

use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};

use super::code::CodeGrant;
use crate::keys::KeyRing;

/// Lifetime of an ID token. It is read once, at sign-in; later it only serves as an
/// `id_token_hint`, which may be expired.
pub const ID_TOKEN_TTL_SECS: u64 = 300;

/// The claims of an ID token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    /// The user id, as in the access token.
    pub sub: String,
    /// The client id.
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    /// When the user entered their password (seconds).
    pub auth_time: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The provider session.
    pub sid: String,
    /// Authentication methods (RFC 8176): a password.
    #[serde(default)]
    pub amr: Vec<String>,
}

/// The ID token claims for a redeemed code.
pub fn claims(issuer: &str, g: &CodeGrant, now_secs: u64) -> IdClaims {
    IdClaims {
        iss: issuer.to_owned(),
        sub: g.user_id.to_string(),
        aud: g.client_id.clone(),
        exp: now_secs + ID_TOKEN_TTL_SECS,
        iat: now_secs,
        auth_time: u64::try_from(g.auth_time / 1000).unwrap_or(0),
        nonce: g.nonce.clone(),
        sid: g.session_id.clone(),
        amr: vec!["pwd".into()],
    }
}

/// The claims of an `id_token_hint` signed by `ring` for `issuer`, expired or not (a hint
/// may be expired: RP-Initiated Logout 1.0 §2). Only RS256 tokens: an access token (EdDSA)
/// is not an ID token.
pub fn verify_hint(ring: &KeyRing, token: &str, issuer: &str) -> Option<IdClaims> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    if header.alg != Algorithm::RS256 {
        return None;
    }
    let mut v = Validation::new(Algorithm::RS256);
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    v.set_issuer(&[issuer]);
    ring.verify::<IdClaims>(token, &v).ok().map(|d| d.claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Alg, SigningKey};

    fn ring() -> KeyRing {
        let rsa = SigningKey::from_pkcs8(Alg::RS256, &Alg::RS256.generate().unwrap(), 0).unwrap();
        let ed = SigningKey::from_pkcs8(Alg::EdDSA, &Alg::EdDSA.generate().unwrap(), 0).unwrap();
        KeyRing::new(vec![rsa, ed], Vec::new())
    }

    #[test]
    fn claims_signatures_and_hints() {
        let ring = ring();
        let grant = CodeGrant {
            client_id: "app".into(),
            redirect_uri: "https://app.example/cb".into(),
            code_challenge: String::new(),
            dpop_jkt: None,
            nonce: Some("n-0S6".into()),
            scope: "openid".into(),
            user_id: 42,
            session_id: "sess".into(),
            auth_time: 1_700_000_000_123,
        };
        let c = claims("https://op.example", &grant, 1_700_000_100);
        assert_eq!(
            (c.sub.as_str(), c.aud.as_str(), c.auth_time, c.exp),
            (
                "42",
                "app",
                1_700_000_000,
                1_700_000_100 + ID_TOKEN_TTL_SECS
            )
        );
        let token = ring.sign(Alg::RS256, None, &c, 1_700_000_100).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(
            header.kid.as_deref(),
            Some(ring.signer(Alg::RS256, 0).unwrap().kid())
        );
        // Expired long ago, still a valid hint; another issuer, ring or algorithm is not.
        assert_eq!(
            verify_hint(&ring, &token, "https://op.example"),
            Some(c.clone())
        );
        assert_eq!(verify_hint(&ring, &token, "https://other.example"), None);
        assert_eq!(
            verify_hint(&super::tests::ring(), &token, "https://op.example"),
            None
        );
        let ed = ring.sign(Alg::EdDSA, None, &c, 0).unwrap();
        assert_eq!(verify_hint(&ring, &ed, "https://op.example"), None);
        // The published JWK verifies the token as a relying party would.
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(ring.jwks()).unwrap();
        let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
        assert_eq!(
            jwk.common.key_algorithm,
            Some(jsonwebtoken::jwk::KeyAlgorithm::RS256)
        );
        let mut v = Validation::new(Algorithm::RS256);
        v.validate_exp = false;
        v.set_audience(&["app"]);
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
        jsonwebtoken::decode::<IdClaims>(&token, &key, &v).unwrap();
        assert!(SigningKey::from_pkcs8(Alg::RS256, b"not a key", 0).is_err());
    }
}
