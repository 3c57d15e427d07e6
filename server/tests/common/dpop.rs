//! DPoP clients for the tests: real ES256 (p256) and EdDSA (ed25519-dalek) keys, proofs
//! with every field under the test's control, and the requests that carry them.
#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{json_error, TestServer};

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

pub fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[derive(Debug, Clone)]
pub struct Bound {
    pub access: String,
    pub refresh: String,
}

impl TestServer {
    pub async fn login_dpop(&self, proof: Option<String>) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url("/auth/login"))
            .json(&json!({"username": "demo", "password": "demo"}));
        if let Some(p) = proof {
            req = req.header("DPoP", p);
        }
        req.send().await.unwrap()
    }

    pub async fn refresh_dpop(&self, refresh: &str, proof: Option<String>) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url("/auth/refresh"))
            .json(&json!({"refresh_token": refresh}));
        if let Some(p) = proof {
            req = req.header("DPoP", p);
        }
        req.send().await.unwrap()
    }

    pub async fn me_with(&self, authorization: &str, proof: Option<String>) -> reqwest::Response {
        let mut req = self
            .client
            .get(self.url("/api/me"))
            .header("authorization", authorization);
        if let Some(p) = proof {
            req = req.header("DPoP", p);
        }
        req.send().await.unwrap()
    }

    /// Logs in with a proof by `key` and checks the bound token response.
    pub async fn login_bound(&self, key: &Key) -> Bound {
        let r = self
            .login_dpop(Some(key.proof("POST", &self.url("/auth/login"))))
            .await;
        bound_ok(r, key).await
    }

    pub async fn refresh_bound(&self, refresh: &str, key: &Key) -> Bound {
        let r = self
            .refresh_dpop(refresh, Some(key.proof("POST", &self.url("/auth/refresh"))))
            .await;
        bound_ok(r, key).await
    }

    /// GET /api/me with the DPoP scheme and a correct proof by `key`.
    pub async fn me_dpop(&self, access: &str, key: &Key) -> reqwest::Response {
        let o = Opts {
            ath: Some(ath(access)),
            ..Opts::default()
        };
        let proof = key.proof_with("GET", &self.url("/api/me"), &o);
        self.me_with(&format!("DPoP {access}"), Some(proof)).await
    }
}

/// A 200 token response of a session bound to `key`.
pub async fn bound_ok(r: reqwest::Response, key: &Key) -> Bound {
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP", "{body}");
    let access = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        jwt_claims(&access)["cnf"]["jkt"],
        key.thumbprint(),
        "cnf.jkt is the key's RFC 7638 thumbprint"
    );
    Bound {
        access,
        refresh: body["refresh_token"].as_str().unwrap().to_owned(),
    }
}

/// A refusal: status and `error`.
pub async fn refused(r: reqwest::Response) -> (u16, String) {
    let (status, error, _) = json_error(r).await;
    (status, error)
}

/// The `WWW-Authenticate` challenge of a 401.
pub async fn challenge(r: reqwest::Response) -> String {
    assert_eq!(r.status(), 401);
    let wa = header(&r, "www-authenticate").expect("WWW-Authenticate");
    let (_, error, _) = json_error(r).await;
    assert!(
        wa.contains(&format!("error=\"{error}\"")),
        "{wa} vs {error}"
    );
    wa
}
