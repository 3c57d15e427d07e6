//! Key material, access tokens (EdDSA JWTs) and opaque refresh tokens.

use std::fmt;

use anyhow::{Context, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::SigningKey;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{Store, TokenHash};

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

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
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
}

impl AccessError {
    pub fn description(self) -> &'static str {
        match self {
            AccessError::Expired => "access token expired",
            AccessError::BadSignature => "access token signature invalid",
            AccessError::Malformed => "access token malformed",
        }
    }
}

/// The server's persistent secrets: the Ed25519 signing key and the HMAC key that derives
/// successor refresh tokens. `Debug` redacts both.
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    kid: String,
    x: String,
    successor_key: [u8; 32],
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("kid", &self.kid)
            .field("signing_key", &"<redacted>")
            .field("successor_key", &"<redacted>")
            .finish()
    }
}

impl Keys {
    /// Loads the keys from the store, generating and persisting them on first start.
    /// Every server instance sharing a database reads the same keys: the first one to start
    /// stores them.
    pub async fn load_or_create(store: &dyn Store, now: crate::store::Millis) -> Result<Self> {
        let seed = store
            .get_or_init_secret("ed25519_seed", &random_bytes::<32>(), now)
            .await?;
        let hmac = store
            .get_or_init_secret("successor_hmac_key", &random_bytes::<32>(), now)
            .await?;
        let seed: [u8; 32] = seed
            .as_slice()
            .try_into()
            .context("stored signing key has the wrong length")?;
        let successor_key: [u8; 32] = hmac
            .as_slice()
            .try_into()
            .context("stored HMAC key has the wrong length")?;
        Self::from_secrets(&seed, successor_key)
    }

    fn from_secrets(seed: &[u8; 32], successor_key: [u8; 32]) -> Result<Self> {
        let signing = SigningKey::from_bytes(seed);
        let der = signing
            .to_pkcs8_der()
            .map_err(|e| anyhow::anyhow!("encoding the signing key: {e}"))?;
        let encoding = EncodingKey::from_ed_der(der.as_bytes());
        let x = B64URL.encode(signing.verifying_key().as_bytes());
        let decoding = DecodingKey::from_ed_components(&x).context("public key")?;
        // RFC 7638 thumbprint: members in lexicographic order, no whitespace.
        let thumb_input = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        let kid = B64URL.encode(Sha256::digest(thumb_input.as_bytes()));
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Keys {
            encoding,
            decoding,
            validation,
            kid,
            x,
            successor_key,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK Set.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({
            "keys": [{
                "kty": "OKP",
                "crv": "Ed25519",
                "x": self.x,
                "kid": self.kid,
                "alg": "EdDSA",
                "use": "sig",
            }]
        })
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
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let claims = Claims {
            sub: user_id.to_string(),
            sid: sid.to_owned(),
            iat: now_secs,
            exp: now_secs + ttl_secs,
            jti: random_id(),
            cnf: jkt.map(|jkt| Confirmation {
                jkt: jkt.to_owned(),
            }),
        };
        jsonwebtoken::encode(&header, &claims, &self.encoding).context("signing access token")
    }

    /// Verifies signature and expiry (with [`LEEWAY_SECS`]).
    pub fn verify_access(&self, token: &str) -> Result<Claims, AccessError> {
        use jsonwebtoken::errors::ErrorKind;
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) => Err(match e.kind() {
                ErrorKind::ExpiredSignature => AccessError::Expired,
                ErrorKind::InvalidSignature => AccessError::BadSignature,
                _ => AccessError::Malformed,
            }),
        }
    }

    /// The deterministic successor of `parent`: HMAC-SHA256(server secret, parent), base64url.
    /// Determinism is what lets the grace rule hand out the same successor again without the
    /// server ever storing a refresh token in plaintext.
    pub fn successor(&self, parent: &RefreshToken) -> RefreshToken {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.successor_key).expect("HMAC takes any key size");
        mac.update(parent.as_str().as_bytes());
        RefreshToken(B64URL.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::from_secrets(&[7u8; 32], [9u8; 32]).unwrap()
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
        let header = jsonwebtoken::decode_header(&t).unwrap();
        assert_eq!(header.kid.as_deref(), Some(k.kid()));
        assert_eq!(header.alg, Algorithm::EdDSA);

        let old = k.issue_access(42, "fam", now - 100, 60).unwrap();
        assert_eq!(k.verify_access(&old), Err(AccessError::Expired));
        assert_eq!(k.verify_access("nope"), Err(AccessError::Malformed));
        let other = Keys::from_secrets(&[8u8; 32], [9u8; 32]).unwrap();
        let forged = other.issue_access(42, "fam", now, 60).unwrap();
        assert_eq!(k.verify_access(&forged), Err(AccessError::BadSignature));
    }

    #[test]
    fn successor_is_deterministic_and_unlike_parent() {
        let k = keys();
        let p = RefreshToken::generate();
        assert_eq!(p.as_str().len(), 43);
        assert_eq!(k.successor(&p), k.successor(&p));
        assert_ne!(k.successor(&p), p);
    }

    #[test]
    fn debug_redacts_secrets() {
        let t = RefreshToken::generate();
        assert!(!format!("{t:?}").contains(t.as_str()));
        let k = keys();
        let d = format!("{k:?}");
        assert!(d.contains("redacted"));
        assert!(!d.contains("[7, 7"));
    }
}
