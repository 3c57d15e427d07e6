//! DPoP (RFC 9449), the server half: proof verification, RFC 7638 JWK thumbprints and
//! rotating server nonces. The replay cache of proof `jti`s lives in the store (shared by all
//! instances); the HTTP rules live in `routes`.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

/// A proof's `iat` may be at most this many seconds ahead of the server's clock (client
/// clock skew; Keycloak allows 10 s)...
pub const IAT_FUTURE_SECS: u64 = 5;
/// ... and at most this many seconds old (the time a proof may take to arrive).
pub const IAT_PAST_SECS: u64 = 50;
/// A `jti` stays in the replay cache this long after its proof's `iat`: while the proof can
/// be accepted, plus 5 s for clock differences between instances sharing the cache. With
/// [`IAT_FUTURE_SECS`], no entry lives more than 60 s.
pub const JTI_KEEP_SECS: u64 = IAT_PAST_SECS + 5;
/// Default bound on the live entries of the replay cache.
pub const DEFAULT_JTI_CAP: u64 = 100_000;
/// Default nonce rotation period.
pub const DEFAULT_NONCE_PERIOD_SECS: u64 = 300;
/// Longer `DPoP` header values are refused unparsed.
pub const MAX_PROOF_LEN: usize = 8 * 1024;
/// Longer `jti` values are refused.
pub const MAX_JTI_LEN: usize = 256;
/// The algorithms accepted in proofs (also announced in `WWW-Authenticate: DPoP algs=...`).
pub const ALGS: &str = "ES256 EdDSA";

/// Members that only a private (or symmetric) JWK has.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A verified proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// RFC 7638 SHA-256 thumbprint of the proof's public key, base64url.
    pub jkt: String,
    pub jti: String,
    pub iat: u64,
}

impl Proof {
    /// The replay-cache key: SHA-256 of the key thumbprint and the `jti` (a `jti` need only
    /// be unique per key).
    pub fn replay_key(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.jkt.as_bytes());
        h.update(b"\n");
        h.update(self.jti.as_bytes());
        h.finalize().into()
    }

    /// Until when (ms since the epoch) the `jti` must be remembered.
    pub fn replay_expiry_ms(&self) -> i64 {
        let secs = self.iat.saturating_add(JTI_KEEP_SECS);
        i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }
}

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofError {
    /// Malformed, badly signed, or not for this request; the text goes into
    /// `error_description`.
    Invalid(String),
    /// Nonces are on and the proof has no currently valid `nonce`.
    UseNonce,
}

impl fmt::Display for ProofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProofError::Invalid(d) => f.write_str(d),
            ProofError::UseNonce => f.write_str("a DPoP nonce is required"),
        }
    }
}

fn invalid(d: impl Into<String>) -> ProofError {
    ProofError::Invalid(d.into())
}

/// What the proof must match.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The request method.
    pub htm: &'a str,
    /// The request URL as the client sees it (without query and fragment).
    pub htu: &'a str,
    pub now_secs: u64,
    /// On a resource request: the access token, whose hash must be the proof's `ath`.
    pub access_token: Option<&'a str>,
}

/// `base64url(SHA-256(access token))`, the `ath` claim.
pub fn ath(access_token: &str) -> String {
    B64URL.encode(Sha256::digest(access_token.as_bytes()))
}

/// Normalizes an absolute `http(s)` URL for `htu` comparison (RFC 9449 §4.3): the WHATWG URL
/// parser lower-cases scheme and host, drops a default port, resolves dot segments and
/// normalizes percent-encoding; query and fragment are removed.
pub fn normalize_htu(s: &str) -> Option<String> {
    let mut u = url::Url::parse(s).ok()?;
    if !matches!(u.scheme(), "http" | "https") || u.host().is_none() {
        return None;
    }
    u.set_query(None);
    u.set_fragment(None);
    Some(u.into())
}

/// RFC 7638 thumbprint (SHA-256, base64url) of a P-256 or Ed25519 public key given by its
/// base64url coordinates: the required members in lexicographic order, no whitespace.
pub fn thumbprint(kty: &str, crv: &str, x: &str, y: Option<&str>) -> String {
    let canonical = match y {
        Some(y) => serde_json::json!({"crv": crv, "kty": kty, "x": x, "y": y}),
        None => serde_json::json!({"crv": crv, "kty": kty, "x": x}),
    };
    // serde_json's map is ordered by key (no `preserve_order` feature) and compact.
    B64URL.encode(Sha256::digest(canonical.to_string().as_bytes()))
}

fn str_member<'a>(m: &'a Map<String, Value>, k: &str) -> Result<&'a str, ProofError> {
    m.get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("DPoP proof: jwk member {k:?} missing")))
}

/// Verifies a compact-JWS DPoP proof against `expected`; with `nonces`, its `nonce` must be
/// current. The replay check of the `jti` is the caller's (it needs the store).
pub fn verify(
    proof: &str,
    expected: &Expected<'_>,
    nonces: Option<&Nonces>,
) -> Result<Proof, ProofError> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(invalid("DPoP proof too long"));
    }
    let mut parts = proof.split('.');
    let (Some(h), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("DPoP proof is not a compact JWS"));
    };
    let header: Map<String, Value> = B64URL
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| invalid("DPoP proof header malformed"))?;
    if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(invalid("DPoP proof typ must be dpop+jwt"));
    }
    let alg = match header.get("alg").and_then(Value::as_str) {
        Some("ES256") => Algorithm::ES256,
        Some("EdDSA") => Algorithm::EdDSA,
        _ => return Err(invalid("DPoP proof alg must be ES256 or EdDSA")),
    };
    let Some(Value::Object(jwk)) = header.get("jwk") else {
        return Err(invalid("DPoP proof header has no jwk"));
    };
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(invalid("DPoP proof jwk must be a public key"));
    }
    let (kty, crv, x) = (
        str_member(jwk, "kty")?,
        str_member(jwk, "crv")?,
        str_member(jwk, "x")?,
    );
    let (key, jkt) = match (alg, kty, crv) {
        (Algorithm::ES256, "EC", "P-256") => {
            let y = str_member(jwk, "y")?;
            let key = DecodingKey::from_ec_components(x, y)
                .map_err(|_| invalid("DPoP proof jwk is not a valid P-256 key"))?;
            (key, thumbprint(kty, crv, x, Some(y)))
        }
        (Algorithm::EdDSA, "OKP", "Ed25519") => {
            let key = DecodingKey::from_ed_components(x)
                .map_err(|_| invalid("DPoP proof jwk is not a valid Ed25519 key"))?;
            (key, thumbprint(kty, crv, x, None))
        }
        _ => return Err(invalid("DPoP proof jwk does not match its alg")),
    };
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Map<String, Value>>(proof, &key, &validation)
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::InvalidSignature => invalid("DPoP proof signature invalid"),
                _ => invalid("DPoP proof malformed"),
            }
        })?
        .claims;

    let claim = |k: &str| claims.get(k).and_then(Value::as_str);
    let jti = claim("jti").unwrap_or_default();
    if jti.is_empty() || jti.len() > MAX_JTI_LEN {
        return Err(invalid("DPoP proof jti missing or too long"));
    }
    if claim("htm") != Some(expected.htm) {
        return Err(invalid("DPoP proof htm does not match the request method"));
    }
    let htu_ok = claim("htu")
        .and_then(normalize_htu)
        .is_some_and(|h| Some(h) == normalize_htu(expected.htu));
    if !htu_ok {
        return Err(invalid("DPoP proof htu does not match the request URL"));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_f64)
        .filter(|t| t.is_finite() && *t >= 0.0)
        .ok_or_else(|| invalid("DPoP proof iat missing"))? as u64;
    let too_new = iat > expected.now_secs.saturating_add(IAT_FUTURE_SECS);
    if too_new || iat.saturating_add(IAT_PAST_SECS) < expected.now_secs {
        return Err(invalid("DPoP proof iat outside the accepted window"));
    }
    if let Some(token) = expected.access_token {
        let ok = claim("ath").is_some_and(|a| a.as_bytes().ct_eq(ath(token).as_bytes()).into());
        if !ok {
            return Err(invalid("DPoP proof ath does not match the access token"));
        }
    }
    if let Some(n) = nonces {
        if !claim("nonce").is_some_and(|v| n.is_valid(v, expected.now_secs)) {
            return Err(ProofError::UseNonce);
        }
    }
    Ok(Proof {
        jkt,
        jti: jti.to_owned(),
        iat,
    })
}

/// Server nonces: `base64url(HMAC-SHA256(key, "dpop-nonce" || window))[..16 bytes]` for the
/// current time window of `period_secs`. Every instance with the same key file derives the
/// same nonces; the current and the previous window's nonce are accepted, by the current key
/// or any other nonce key of the ring (so a key rotation refuses no nonce). `Debug` hides the
/// keys.
#[derive(Clone)]
pub struct Nonces {
    /// The current key first.
    keys: Vec<[u8; 32]>,
    period_secs: u64,
}

impl fmt::Debug for Nonces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nonces")
            .field("keys", &"<redacted>")
            .field("period_secs", &self.period_secs)
            .finish()
    }
}

impl Nonces {
    /// Nonces by `keys[0]`, accepted by any of `keys`.
    pub fn new(keys: Vec<[u8; 32]>, period_secs: u64) -> Self {
        assert!(!keys.is_empty(), "nonces need a key");
        Nonces {
            keys,
            period_secs: period_secs.max(1),
        }
    }

    fn for_window(&self, key: &[u8; 32], window: u64) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key size");
        mac.update(b"dpop-nonce");
        mac.update(&window.to_be_bytes());
        B64URL.encode(&mac.finalize().into_bytes()[..16])
    }

    /// The nonce to hand out at `now_secs`.
    pub fn current(&self, now_secs: u64) -> String {
        self.for_window(&self.keys[0], now_secs / self.period_secs)
    }

    /// True for the nonce of the current or the previous window, by any key.
    pub fn is_valid(&self, nonce: &str, now_secs: u64) -> bool {
        let w = now_secs / self.period_secs;
        let windows = [Some(w), w.checked_sub(1)];
        self.keys.iter().any(|key| {
            windows
                .iter()
                .flatten()
                .any(|&w| bool::from(self.for_window(key, w).as_bytes().ct_eq(nonce.as_bytes())))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc7638_example_shape() {
        // RFC 8037 §A.3: the thumbprint of its Ed25519 example key.
        assert_eq!(
            thumbprint(
                "OKP",
                "Ed25519",
                "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
                None
            ),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn htu_normalization() {
        let n = |s| normalize_htu(s);
        assert_eq!(
            n("HTTP://Example.COM:80/a/../b?x=1#f"),
            Some("http://example.com/b".into())
        );
        assert_eq!(n("http://127.0.0.1:8080"), n("http://127.0.0.1:8080/"));
        assert_ne!(n("http://127.0.0.1:8080/a"), n("http://127.0.0.1:8081/a"));
        assert_eq!(n("ftp://x/"), None);
        assert_eq!(n("/relative"), None);
    }

    #[test]
    fn nonces_rotate_and_accept_the_previous_window() {
        let n = Nonces::new(vec![[3; 32]], 10);
        let a = n.current(100);
        assert_eq!(a, n.current(109));
        assert!(n.is_valid(&a, 105));
        assert!(n.is_valid(&a, 119), "previous window still accepted");
        assert!(!n.is_valid(&a, 120), "two windows later: refused");
        assert!(!n.is_valid(&a, 99), "not valid before its window");
        assert_ne!(a, n.current(110));
        assert!(!n.is_valid("", 105));
        let rotated = Nonces::new(vec![[4; 32], [3; 32]], 10);
        assert_ne!(a, rotated.current(100), "the new key issues");
        assert!(
            rotated.is_valid(&a, 105),
            "the old key's nonce still passes"
        );
        assert!(!Nonces::new(vec![[4; 32]], 10).is_valid(&a, 105));
        assert!(!format!("{n:?}").contains("[3"));
    }
}
