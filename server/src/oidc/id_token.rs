//! ID tokens (OpenID Connect Core §2, §3.1.3.6): the claims and the RS256 signing key.
//!
//! RSA through aws-lc-rs (jsonwebtoken's `aws_lc_rs` backend), not the `rsa` crate: see
//! server/README, "Keys", for why (RUSTSEC-2023-0071).

use std::fmt;

use anyhow::{Context, Result};
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::code::CodeGrant;

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

/// The RS256 key that signs ID tokens. `Debug` shows only the `kid`.
pub struct IdTokenKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    n: String,
    e: String,
}

impl fmt::Debug for IdTokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdTokenKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl IdTokenKey {
    /// A new 2048-bit RSA key, as unencrypted PKCS#8 DER.
    pub fn generate_pkcs8() -> Result<Vec<u8>> {
        let key = KeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| anyhow::anyhow!("RSA key generation failed"))?;
        let der = key
            .as_der()
            .map_err(|_| anyhow::anyhow!("encoding the RSA key failed"))?;
        Ok(der.as_ref().to_vec())
    }

    /// The key from unencrypted PKCS#8 DER (`-----BEGIN PRIVATE KEY-----`, decoded).
    pub fn from_pkcs8(der: &[u8]) -> Result<Self> {
        let pair = KeyPair::from_pkcs8(der)
            .map_err(|e| anyhow::anyhow!("not an RSA PKCS#8 private key: {e}"))?;
        anyhow::ensure!(
            pair.public_modulus_len() >= 256,
            "the ID token key must have at least 2048 bits"
        );
        // jsonwebtoken takes the PKCS#1 RSAPrivateKey inside the PKCS#8 wrapper.
        let info = pkcs8::PrivateKeyInfo::try_from(der).context("parsing PKCS#8")?;
        let encoding = EncodingKey::from_rsa_der(info.private_key);
        let public = pair.public_key();
        let n = B64URL.encode(public.modulus().big_endian_without_leading_zero());
        let e = B64URL.encode(public.exponent().big_endian_without_leading_zero());
        let decoding = DecodingKey::from_rsa_components(&n, &e).context("RSA public key")?;
        // RFC 7638: the required members in lexicographic order, no whitespace.
        let thumb = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
        let kid = B64URL.encode(Sha256::digest(thumb.as_bytes()));
        Ok(IdTokenKey {
            encoding,
            decoding,
            kid,
            n,
            e,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK (for the JWKS).
    pub fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "RSA",
            "n": self.n,
            "e": self.e,
            "kid": self.kid,
            "alg": "RS256",
            "use": "sig",
        })
    }

    pub fn sign(&self, claims: &IdClaims) -> Result<String> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).context("signing the ID token")
    }

    /// The claims of an ID token this key signed for `issuer`, expired or not (an
    /// `id_token_hint` may be expired: RP-Initiated Logout 1.0 §2).
    pub fn verify_hint(&self, token: &str, issuer: &str) -> Option<IdClaims> {
        let mut v = Validation::new(Algorithm::RS256);
        v.validate_exp = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        v.set_issuer(&[issuer]);
        jsonwebtoken::decode::<IdClaims>(token, &self.decoding, &v)
            .ok()
            .map(|d| d.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_publish() {
        let der = IdTokenKey::generate_pkcs8().unwrap();
        let key = IdTokenKey::from_pkcs8(&der).unwrap();
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
        let token = key.sign(&c).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.kid.as_deref(), Some(key.kid()));
        // Expired long ago, still a valid hint; another issuer or key is not.
        assert_eq!(key.verify_hint(&token, "https://op.example"), Some(c));
        assert_eq!(key.verify_hint(&token, "https://other.example"), None);
        let other = IdTokenKey::from_pkcs8(&IdTokenKey::generate_pkcs8().unwrap()).unwrap();
        assert_eq!(other.verify_hint(&token, "https://op.example"), None);
        // The JWK verifies the token as a relying party would.
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.jwk()).unwrap();
        let mut v = Validation::new(Algorithm::RS256);
        v.validate_exp = false;
        v.set_audience(&["app"]);
        jsonwebtoken::decode::<IdClaims>(&token, &DecodingKey::from_jwk(&jwk).unwrap(), &v)
            .unwrap();
        assert!(!format!("{key:?}").contains(&key.n));
        assert!(IdTokenKey::from_pkcs8(b"not a key").is_err());
    }
}
