//! Client-side DPoP for the tests: real ES256 (p256) and EdDSA (ed25519-dalek) keys and
//! proofs, built here independently of the server.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).unwrap();
    b
}

/// A client's DPoP key pair.
pub enum Key {
    Es256(p256::ecdsa::SigningKey),
    EdDsa(ed25519_dalek::SigningKey),
}

/// What a proof says; `Default` is a valid proof apart from htm/htu.
#[derive(Default, Clone)]
pub struct Opts {
    /// Added to the current time for `iat`.
    pub iat_offset: i64,
    pub jti: Option<String>,
    pub no_jti: bool,
    pub nonce: Option<String>,
    pub ath: Option<String>,
    pub typ: Option<&'static str>,
    /// Put the private key into the header's jwk.
    pub leak_private: bool,
    /// Flip a bit of the signature.
    pub bad_signature: bool,
}

impl Key {
    pub fn es256() -> Self {
        loop {
            if let Ok(k) = p256::ecdsa::SigningKey::from_slice(&random32()) {
                return Key::Es256(k);
            }
        }
    }

    pub fn eddsa() -> Self {
        Key::EdDsa(ed25519_dalek::SigningKey::from_bytes(&random32()))
    }

    pub fn alg(&self) -> &'static str {
        match self {
            Key::Es256(_) => "ES256",
            Key::EdDsa(_) => "EdDSA",
        }
    }

    pub fn jwk(&self) -> Value {
        match self {
            Key::Es256(k) => {
                let p = k.verifying_key().to_encoded_point(false);
                json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "x": B64URL.encode(p.x().unwrap()),
                    "y": B64URL.encode(p.y().unwrap()),
                })
            }
            Key::EdDsa(k) => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": B64URL.encode(k.verifying_key().as_bytes()),
            }),
        }
    }

    /// RFC 7638 thumbprint, computed here independently of the server.
    pub fn thumbprint(&self) -> String {
        let j = self.jwk();
        let canonical = match self {
            Key::Es256(_) => format!(
                r#"{{"crv":"P-256","kty":"EC","x":{},"y":{}}}"#,
                j["x"], j["y"]
            ),
            Key::EdDsa(_) => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":{}}}"#, j["x"]),
        };
        B64URL.encode(Sha256::digest(canonical.as_bytes()))
    }

    pub fn sign(&self, input: &[u8]) -> Vec<u8> {
        match self {
            Key::Es256(k) => {
                use p256::ecdsa::signature::Signer as _;
                let sig: p256::ecdsa::Signature = k.sign(input);
                sig.to_bytes().to_vec()
            }
            Key::EdDsa(k) => {
                use ed25519_dalek::Signer as _;
                k.sign(input).to_bytes().to_vec()
            }
        }
    }

    pub fn proof_with(&self, htm: &str, htu: &str, o: &Opts) -> String {
        let mut jwk = self.jwk();
        if o.leak_private {
            jwk["d"] = match self {
                Key::Es256(k) => B64URL.encode(k.to_bytes()).into(),
                Key::EdDsa(k) => B64URL.encode(k.to_bytes()).into(),
            };
        }
        let header = json!({"typ": o.typ.unwrap_or("dpop+jwt"), "alg": self.alg(), "jwk": jwk});
        let mut claims = json!({
            "htm": htm,
            "htu": htu,
            "iat": now() + o.iat_offset,
        });
        if !o.no_jti {
            claims["jti"] = o
                .jti
                .clone()
                .unwrap_or_else(|| B64URL.encode(&random32()[..16]))
                .into();
        }
        if let Some(n) = &o.nonce {
            claims["nonce"] = n.clone().into();
        }
        if let Some(a) = &o.ath {
            claims["ath"] = a.clone().into();
        }
        let input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let mut sig = self.sign(input.as_bytes());
        if o.bad_signature {
            sig[5] ^= 1;
        }
        format!("{input}.{}", B64URL.encode(sig))
    }

    pub fn proof(&self, htm: &str, htu: &str) -> String {
        self.proof_with(htm, htu, &Opts::default())
    }
}

pub fn ath(access: &str) -> String {
    B64URL.encode(Sha256::digest(access.as_bytes()))
}

/// The payload of a JWT.
pub fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64URL.decode(payload).unwrap()).unwrap()
}
