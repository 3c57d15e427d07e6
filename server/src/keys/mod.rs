//! The server's key ring: signing keys by `kid` (access tokens; an OpenID provider adds its
//! ID-token key) and symmetric secrets by purpose (the refresh-token successor HMAC key, the
//! DPoP nonce key). Keys live in a key file (`--key-file`, mode 0600) or in the environment
//! (`ROTAFETCH_KEYS`), never in the database; see [`file`] for the format and rotation and
//! [`load`] for what happens on start (generation, keys an older version left in the
//! database, several instances).
//!
//! Several keys of one kind coexist during a rotation: the newest key whose `active_from`
//! has come signs (or derives), every key verifies. So a token signed or derived before a
//! rotation stays good until it expires, and the JWKS lists every key (new keys before they
//! sign).

pub mod file;
mod rsa;
mod startup;

use std::fmt;

use anyhow::{Context, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, TokenData, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use file::KeyFile;
pub use startup::{load, KeySource, KEYS_ENV};

/// A signing algorithm of the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Alg {
    /// Ed25519: access tokens.
    EdDSA,
    /// RSA 2048 with SHA-256 (PKCS#1 v1.5): OpenID Connect ID tokens (Discovery §3 requires
    /// RS256). Through aws-lc-rs, not the `rsa` crate: see server/README, "Keys".
    RS256,
}

/// The signing algorithms the server keeps a key of (a key of each is generated when
/// missing).
pub const SIGNING_ALGS: &[Alg] = &[Alg::EdDSA, Alg::RS256];

impl Alg {
    fn jwt(self) -> Algorithm {
        match self {
            Alg::EdDSA => Algorithm::EdDSA,
            Alg::RS256 => Algorithm::RS256,
        }
    }

    /// A new private key, PKCS#8 DER.
    pub(crate) fn generate(self) -> Result<Vec<u8>> {
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        match self {
            Alg::EdDSA => {
                let key = ed25519_dalek::SigningKey::from_bytes(&crate::tokens::random_bytes());
                let der = key.to_pkcs8_der().context("encoding an Ed25519 key")?;
                Ok(der.as_bytes().to_vec())
            }
            Alg::RS256 => rsa::generate(),
        }
    }
}

/// What a symmetric secret is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// HMAC key that derives a refresh token's successor (see `Keys::successor`).
    RefreshSuccessor,
    /// HMAC key of the DPoP nonces (`--dpop-nonce`).
    DpopNonce,
    /// The provider's sign-in form: its CSRF tokens and sealed requests (`oidc::form`).
    SignInForm,
}

impl Purpose {
    /// Every purpose (a secret of each is generated when missing).
    pub const ALL: &'static [Purpose] = &[
        Purpose::RefreshSuccessor,
        Purpose::DpopNonce,
        Purpose::SignInForm,
    ];
}

/// A private signing key with its public half. `Debug` shows only the `kid`.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    alg: Alg,
    active_from: u64,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: serde_json::Value,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("active_from", &self.active_from)
            .finish_non_exhaustive()
    }
}

/// RFC 7638 thumbprint (SHA-256, base64url) of a public JWK's required members, given in
/// lexicographic order as canonical JSON.
fn thumbprint(canonical: &serde_json::Value) -> String {
    // serde_json's map is ordered by key (no `preserve_order` feature) and compact.
    B64URL.encode(Sha256::digest(canonical.to_string().as_bytes()))
}

impl SigningKey {
    /// A key of `alg` from its PKCS#8 DER; its `kid` is the RFC 7638 thumbprint of its
    /// public key.
    pub fn from_pkcs8(alg: Alg, der: &[u8], active_from: u64) -> Result<Self> {
        match alg {
            Alg::EdDSA => {
                use ed25519_dalek::pkcs8::DecodePrivateKey as _;
                let key = ed25519_dalek::SigningKey::from_pkcs8_der(der)
                    .map_err(|e| anyhow::anyhow!("not an Ed25519 PKCS#8 key: {e}"))?;
                let x = B64URL.encode(key.verifying_key().as_bytes());
                let kid = thumbprint(&serde_json::json!({"crv": "Ed25519", "kty": "OKP", "x": x}));
                Ok(SigningKey {
                    encoding: EncodingKey::from_ed_der(der),
                    decoding: DecodingKey::from_ed_components(&x).context("public key")?,
                    jwk: serde_json::json!({
                        "kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA",
                        "use": "sig",
                    }),
                    kid,
                    alg,
                    active_from,
                })
            }
            Alg::RS256 => {
                let key = rsa::from_pkcs8(der)?;
                let kid = thumbprint(&serde_json::json!({"e": key.e, "kty": "RSA", "n": key.n}));
                Ok(SigningKey {
                    decoding: DecodingKey::from_rsa_components(&key.n, &key.e)
                        .context("RSA public key")?,
                    encoding: key.encoding,
                    jwk: serde_json::json!({
                        "kty": "RSA", "n": key.n, "e": key.e, "kid": kid, "alg": "RS256",
                        "use": "sig",
                    }),
                    kid,
                    alg,
                    active_from,
                })
            }
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The public key as a JWK (with `kid`, `alg` and `use`).
    pub fn public_jwk(&self) -> &serde_json::Value {
        &self.jwk
    }
}

/// A symmetric secret. `Debug` shows only the `kid`.
#[derive(Clone)]
pub struct Secret {
    kid: String,
    purpose: Purpose,
    active_from: u64,
    key: [u8; 32],
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("kid", &self.kid)
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

impl Secret {
    /// The `kid` of a secret: base64url of the first 16 bytes of its SHA-256 (names it in
    /// logs and in the database's key registry without revealing it).
    pub fn kid_of(key: &[u8; 32]) -> String {
        B64URL.encode(&Sha256::digest(key)[..16])
    }

    pub fn new(purpose: Purpose, key: [u8; 32], active_from: u64) -> Self {
        Secret {
            kid: Self::kid_of(&key),
            purpose,
            active_from,
            key,
        }
    }
}

/// Every key the server holds. Each kind is ordered newest first (by `active_from`).
#[derive(Debug, Clone)]
pub struct KeyRing {
    signing: Vec<SigningKey>,
    secrets: Vec<Secret>,
}

/// The current key among `keys` (newest first): the newest whose time has come, else (all
/// scheduled for later) the oldest.
fn current<T>(
    mut keys: impl Iterator<Item = T> + Clone,
    active_from: impl Fn(&T) -> u64,
    now: u64,
) -> Option<T> {
    keys.clone()
        .find(|k| active_from(k) <= now)
        .or_else(|| keys.by_ref().last())
}

impl KeyRing {
    /// A ring of these keys, listed oldest first (of keys active from the same second, the
    /// one listed later counts as newer, as a rotation appends).
    pub fn new(mut signing: Vec<SigningKey>, mut secrets: Vec<Secret>) -> Self {
        signing.reverse();
        secrets.reverse();
        // Stable: ties keep the reversed order, the later-listed key first.
        signing.sort_by_key(|k| std::cmp::Reverse(k.active_from));
        secrets.sort_by_key(|s| std::cmp::Reverse(s.active_from));
        KeyRing { signing, secrets }
    }

    /// The key that signs with `alg` at `now_secs`.
    pub fn signer(&self, alg: Alg, now_secs: u64) -> Result<&SigningKey> {
        let keys = self.signing.iter().filter(|k| k.alg == alg);
        current(keys, |k| k.active_from, now_secs)
            .with_context(|| format!("the key ring has no {alg:?} key"))
    }

    /// Signs `claims` as a JWT with the current `alg` key (header: `alg`, `kid`, and `typ`
    /// if given, else `JWT`).
    pub fn sign<T: Serialize>(
        &self,
        alg: Alg,
        typ: Option<&str>,
        claims: &T,
        now_secs: u64,
    ) -> Result<String> {
        let key = self.signer(alg, now_secs)?;
        let mut header = Header::new(alg.jwt());
        header.kid = Some(key.kid.clone());
        if let Some(typ) = typ {
            header.typ = Some(typ.to_owned());
        }
        jsonwebtoken::encode(&header, claims, &key.encoding).context("signing a JWT")
    }

    /// Verifies a JWT signed by one of the ring's keys (found by the header's `kid`; its
    /// algorithm must be the key's) against `validation` (whose `algorithms` are replaced by
    /// the key's). An unknown `kid` is an invalid signature.
    pub fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        validation: &Validation,
    ) -> jsonwebtoken::errors::Result<TokenData<T>> {
        use jsonwebtoken::errors::ErrorKind;
        let header = jsonwebtoken::decode_header(token)?;
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.signing.iter().find(|k| k.kid == kid))
            .filter(|k| k.alg.jwt() == header.alg)
            .ok_or(ErrorKind::InvalidSignature)?;
        let mut validation = validation.clone();
        validation.algorithms = vec![key.alg.jwt()];
        jsonwebtoken::decode(token, &key.decoding, &validation)
    }

    /// The public keys as a JWK Set: every signing key, including keys scheduled to sign
    /// later and retired keys that still verify.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<_> = self.signing.iter().map(|k| k.jwk.clone()).collect();
        serde_json::json!({ "keys": keys })
    }

    /// The current secret for `purpose` (newest whose time has come).
    pub fn secret(&self, purpose: Purpose, now_secs: u64) -> Result<&[u8; 32]> {
        let keys = self.secrets.iter().filter(|s| s.purpose == purpose);
        current(keys, |s| s.active_from, now_secs)
            .map(|s| &s.key)
            .with_context(|| format!("the key ring has no {purpose:?} secret"))
    }

    /// Every secret for `purpose`, the current one first (for checking values derived by an
    /// older or a newer key).
    pub fn secrets(&self, purpose: Purpose, now_secs: u64) -> Vec<&[u8; 32]> {
        let Ok(first) = self.secret(purpose, now_secs) else {
            return Vec::new();
        };
        let rest = self
            .secrets
            .iter()
            .filter(|s| s.purpose == purpose && &s.key != first)
            .map(|s| &s.key);
        std::iter::once(first).chain(rest).collect()
    }

    /// True if the ring holds a key (signing or secret) with this `kid`.
    pub fn contains(&self, kid: &str) -> bool {
        self.signing.iter().any(|k| k.kid == kid) || self.secrets.iter().any(|s| s.kid == kid)
    }

    /// The `kid`s of the newest key of each kind (what the database's key registry records;
    /// see [`load`]).
    pub fn newest_kids(&self) -> Vec<String> {
        let mut kids = Vec::new();
        for alg in SIGNING_ALGS {
            kids.extend(
                self.signing
                    .iter()
                    .find(|k| k.alg == *alg)
                    .map(|k| k.kid.clone()),
            );
        }
        for purpose in Purpose::ALL {
            kids.extend(
                self.secrets
                    .iter()
                    .find(|s| s.purpose == *purpose)
                    .map(|s| s.kid.clone()),
            );
        }
        kids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ed_key(active_from: u64) -> SigningKey {
        SigningKey::from_pkcs8(Alg::EdDSA, &Alg::EdDSA.generate().unwrap(), active_from).unwrap()
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Claims {
        sub: String,
        exp: u64,
    }

    #[test]
    fn the_newest_active_key_signs_and_every_key_verifies() {
        let (old, new, later) = (ed_key(100), ed_key(200), ed_key(300));
        let kids = [old.kid.clone(), new.kid.clone(), later.kid.clone()];
        let ring = KeyRing::new(vec![old, new, later], Vec::new());
        assert_eq!(ring.signer(Alg::EdDSA, 250).unwrap().kid(), kids[1]);
        assert_eq!(ring.signer(Alg::EdDSA, 300).unwrap().kid(), kids[2]);
        // Before any key's time (a clock behind the file's writer): the oldest.
        assert_eq!(ring.signer(Alg::EdDSA, 50).unwrap().kid(), kids[0]);
        let claims = Claims {
            sub: "u".into(),
            exp: 4_000_000_000,
        };
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_required_spec_claims(&["exp"]);
        for now in [150, 250, 350] {
            let token = ring.sign(Alg::EdDSA, Some("at+jwt"), &claims, now).unwrap();
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.typ.as_deref(), Some("at+jwt"));
            let data = ring.verify::<Claims>(&token, &validation).unwrap();
            assert_eq!(data.claims, claims);
        }
        assert_eq!(ring.jwks()["keys"].as_array().unwrap().len(), 3);
        // A key that left the ring no longer verifies.
        let other = KeyRing::new(vec![ed_key(0)], Vec::new());
        let token = other.sign(Alg::EdDSA, None, &claims, 0).unwrap();
        let err = ring.verify::<Claims>(&token, &validation).unwrap_err();
        assert_eq!(
            *err.kind(),
            jsonwebtoken::errors::ErrorKind::InvalidSignature
        );
    }

    #[test]
    fn secrets_current_first_then_the_others() {
        let (a, b, c) = ([1; 32], [2; 32], [3; 32]);
        let ring = KeyRing::new(
            Vec::new(),
            vec![
                Secret::new(Purpose::RefreshSuccessor, a, 100),
                Secret::new(Purpose::RefreshSuccessor, b, 200),
                Secret::new(Purpose::RefreshSuccessor, c, 300),
                Secret::new(Purpose::DpopNonce, [9; 32], 0),
            ],
        );
        assert_eq!(ring.secret(Purpose::RefreshSuccessor, 250).unwrap(), &b);
        let all = ring.secrets(Purpose::RefreshSuccessor, 250);
        assert_eq!(all, vec![&b, &c, &a]);
        assert_eq!(ring.secrets(Purpose::DpopNonce, 0), vec![&[9; 32]]);
        assert!(ring.contains(&Secret::kid_of(&a)));
        assert_eq!(
            ring.newest_kids(),
            vec![Secret::kid_of(&c), Secret::kid_of(&[9; 32])]
        );
        // Rotated within the same second: the later-listed key is the newer.
        let same = KeyRing::new(
            Vec::new(),
            vec![
                Secret::new(Purpose::DpopNonce, a, 5),
                Secret::new(Purpose::DpopNonce, b, 5),
            ],
        );
        assert_eq!(same.secret(Purpose::DpopNonce, 5).unwrap(), &b);
        assert!(
            !format!("{ring:?}").contains("[1, 1"),
            "Debug shows no secret"
        );
    }
}
