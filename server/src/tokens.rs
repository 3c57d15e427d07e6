//! Access tokens (RFC 9068 JWTs: `typ: at+jwt`, EdDSA, signed by the key ring) and opaque
//! refresh tokens.

use std::fmt;

use anyhow::{Context, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys::{Alg, KeyRing, Purpose};
use crate::store::TokenHash;

/// Seconds of clock skew tolerated when checking `exp`.
pub const LEEWAY_SECS: u64 = 1;

/// Fills a fresh buffer from the operating system's RNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::getrandom(&mut buf).expect("the operating system RNG failed");
    buf
}

/// A random identifier (128 bits, base64url).
pub fn random_id() -> String {
    B64URL.encode(random_bytes::<16>())
}

/// An opaque refresh token. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(String);

impl RefreshToken {
    /// 256 bits from the OS RNG, base64url without padding (43 characters).
    pub fn generate() -> Self {
        RefreshToken(B64URL.encode(random_bytes::<32>()))
    }

    pub fn from_presented(s: String) -> Self {
        RefreshToken(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// What the store keeps: SHA-256 of the token's text.
    pub fn hash(&self) -> TokenHash {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(<redacted>)")
    }
}

/// The header `typ` of an access token (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Claims of an access token (RFC 9068 §2.2; there is no `client_id` for the first-party
/// password sign-in).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The issuer: `--public-url`, else the URL the server listens on.
    pub iss: String,
    /// The audience: `--audience`, else the issuer.
    pub aud: String,
    /// User id, as a string.
    pub sub: String,
    /// Session family id.
    pub sid: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
    /// DPoP binding (RFC 9449 §6.1): present in tokens of a bound session family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// The `cnf` claim of a DPoP-bound access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Confirmation {
    /// RFC 7638 SHA-256 thumbprint of the client's DPoP key.
    pub jkt: String,
}

/// Why an access token was refused; the text goes into `error_description`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessError {
    Expired,
    BadSignature,
    Malformed,
    /// A JWT of ours that is not an access token (`typ`), or one for another issuer or
    /// audience.
    NotForUs,
}

impl AccessError {
    pub fn description(self) -> &'static str {
        match self {
            AccessError::Expired => "access token expired",
            AccessError::BadSignature => "access token signature invalid",
            AccessError::Malformed => "access token malformed",
            AccessError::NotForUs => "not an access token for this server",
        }
    }
}

/// The access-token and refresh-token side of the key ring: signs and verifies access
/// tokens and derives successor refresh tokens. `Debug` redacts every key.
#[derive(Debug)]
pub struct Keys {
    ring: KeyRing,
    validation: Validation,
    issuer: String,
    audience: String,
}

impl Keys {
    /// Access tokens issued by `issuer` for `audience`, signed by `ring`.
    pub fn new(ring: KeyRing, issuer: &str, audience: &str) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        Keys {
            ring,
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        }
    }

    /// The `iss` of access tokens (an OpenID provider's issuer identifier too).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The whole key ring.
    pub fn ring(&self) -> &KeyRing {
        &self.ring
    }

    /// The public keys as a JWK Set (every key that verifies).
    pub fn jwks(&self) -> serde_json::Value {
        self.ring.jwks()
    }

    /// Signs an access token for `user_id` in family `sid`, valid `ttl_secs` from `now_secs`.
    pub fn issue_access(
        &self,
        user_id: i64,
        sid: &str,
        now_secs: u64,
        ttl_secs: u64,
    ) -> Result<String> {
        self.issue_access_bound(user_id, sid, None, now_secs, ttl_secs)
    }

    /// Like [`Keys::issue_access`]; with `jkt`, the token carries `"cnf": {"jkt": ...}`.
    pub fn issue_access_bound(
        &self,
        user_id: i64,
        sid: &str,
        jkt: Option<&str>,
        now_secs: u64,
        ttl_secs: u64,
    ) -> Result<String> {
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user_id.to_string(),
            sid: sid.to_owned(),
            iat: now_secs,
            exp: now_secs + ttl_secs,
            jti: random_id(),
            cnf: jkt.map(|jkt| Confirmation {
                jkt: jkt.to_owned(),
            }),
        };
        self.ring
            .sign(Alg::EdDSA, Some(ACCESS_TOKEN_TYP), &claims, now_secs)
            .context("signing access token")
    }

    /// Verifies signature (by any key of the ring, found by `kid`), expiry (with
    /// [`LEEWAY_SECS`]), `typ` (RFC 9068 §4: `at+jwt` or `application/at+jwt`), `iss` and
    /// `aud`.
    pub fn verify_access(&self, token: &str) -> Result<Claims, AccessError> {
        use jsonwebtoken::errors::ErrorKind;
        let data = match self.ring.verify::<Claims>(token, &self.validation) {
            Ok(data) => data,
            Err(e) => {
                return Err(match e.kind() {
                    ErrorKind::ExpiredSignature => AccessError::Expired,
                    ErrorKind::InvalidSignature => AccessError::BadSignature,
                    ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => AccessError::NotForUs,
                    ErrorKind::MissingRequiredClaim(c) if c == "iss" || c == "aud" => {
                        AccessError::NotForUs
                    }
                    _ => AccessError::Malformed,
                })
            }
        };
        let typ = data
            .header
            .typ
            .as_deref()
            .unwrap_or("")
            .to_ascii_lowercase();
        if typ != ACCESS_TOKEN_TYP && typ != "application/at+jwt" {
            return Err(AccessError::NotForUs);
        }
        Ok(data.claims)
    }

    /// The deterministic successors of `parent`: HMAC-SHA256(refresh key, parent), base64url,
    /// by each refresh key, the current one first. A rotation stores the first; the grace rule
    /// answers again with whichever is stored (so a key rotation never turns a lost response
    /// into reuse). Determinism is what lets the grace rule hand out the same successor again
    /// without the server ever storing a refresh token in plaintext.
    pub fn successors(&self, parent: &RefreshToken, now_secs: u64) -> Vec<RefreshToken> {
        self.ring
            .secrets(Purpose::RefreshSuccessor, now_secs)
            .into_iter()
            .map(|key| {
                let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key size");
                mac.update(parent.as_str().as_bytes());
                RefreshToken(B64URL.encode(mac.finalize().into_bytes()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyFile;

    fn keys() -> Keys {
        let mut file = KeyFile {
            version: crate::keys::file::VERSION,
            ..KeyFile::default()
        };
        file.add_missing(0).unwrap();
        Keys::new(
            file.ring().unwrap(),
            "https://as.example",
            "https://api.example",
        )
    }

    #[test]
    fn access_token_roundtrip() {
        let k = keys();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let t = k.issue_access(42, "fam", now, 60).unwrap();
        let c = k.verify_access(&t).unwrap();
        assert_eq!(c.sub, "42");
        assert_eq!(c.sid, "fam");
        assert_eq!(c.exp, now + 60);
        assert_eq!(
            (c.iss.as_str(), c.aud.as_str()),
            ("https://as.example", "https://api.example")
        );
        let header = jsonwebtoken::decode_header(&t).unwrap();
        let kid = k.ring().signer(Alg::EdDSA, now).unwrap().kid();
        assert_eq!(header.kid.as_deref(), Some(kid));
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        // Another issuer's or audience's tokens, and a JWT of ours that is not an access
        // token, are refused.
        let other = Keys::new(
            k.ring().clone(),
            "https://other.example",
            "https://api.example",
        );
        let t2 = other.issue_access(42, "fam", now, 60).unwrap();
        assert_eq!(k.verify_access(&t2), Err(AccessError::NotForUs));
        let other = Keys::new(
            k.ring().clone(),
            "https://as.example",
            "https://else.example",
        );
        let t3 = other.issue_access(42, "fam", now, 60).unwrap();
        assert_eq!(k.verify_access(&t3), Err(AccessError::NotForUs));
        let claims = serde_json::json!({"iss": "https://as.example", "aud": "https://api.example",
            "sub": "42", "sid": "fam", "iat": now, "exp": now + 60, "jti": "j"});
        let id_token = k.ring().sign(Alg::EdDSA, None, &claims, now).unwrap();
        assert_eq!(k.verify_access(&id_token), Err(AccessError::NotForUs));

        let old = k.issue_access(42, "fam", now - 100, 60).unwrap();
        assert_eq!(k.verify_access(&old), Err(AccessError::Expired));
        assert_eq!(k.verify_access("nope"), Err(AccessError::Malformed));
        let forged = keys().issue_access(42, "fam", now, 60).unwrap();
        assert_eq!(k.verify_access(&forged), Err(AccessError::BadSignature));
    }

    #[test]
    fn successor_is_deterministic_and_unlike_parent() {
        let k = keys();
        let p = RefreshToken::generate();
        assert_eq!(p.as_str().len(), 43);
        assert_eq!(k.successors(&p, 0), k.successors(&p, 0));
        assert_eq!(k.successors(&p, 0).len(), 1);
        assert_ne!(k.successors(&p, 0)[0], p);
    }

    #[test]
    fn debug_redacts_secrets() {
        let t = RefreshToken::generate();
        assert!(!format!("{t:?}").contains(t.as_str()));
        let k = keys();
        let d = format!("{k:?}");
        assert!(d.contains("kid"));
        assert!(!d.contains("key: ["), "{d}");
    }
}
