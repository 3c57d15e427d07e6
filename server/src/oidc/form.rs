//! The sign-in form's protection, without I/O:
//!
//! * CSRF (a signed double-submit cookie): the browser gets a random cookie value; the form
//!   carries `HMAC(key, cookie)`. A cross-site page can neither read the cookie nor compute
//!   the token, and the cookie is `SameSite=Lax`, so a cross-site POST arrives without it.
//! * The authorization request travels in the form *sealed* (an HS256 JWT under a server
//!   key, valid [`FORM_TTL_SECS`]): the browser cannot change what was validated (or what a
//!   PAR request fixed, such as its DPoP binding), and the server keeps no state for forms
//!   that are never submitted.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use super::authorize::AuthRequest;
use crate::tokens::random_bytes;

/// How long a shown sign-in form may be submitted.
pub const FORM_TTL_SECS: u64 = 600;
/// Longest accepted CSRF cookie value (ours are 22 characters).
const MAX_COOKIE_LEN: usize = 64;

/// The server secret behind the form's protection. `Debug` hides it.
#[derive(Clone)]
pub struct FormKey {
    csrf: [u8; 32],
    seal: [u8; 32],
}

impl fmt::Debug for FormKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FormKey(<redacted>)")
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key size");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    req: AuthRequest,
    exp: u64,
}

impl FormKey {
    /// Two independent keys derived from one stored secret.
    pub fn new(secret: &[u8; 32]) -> Self {
        FormKey {
            csrf: hmac(secret, &[b"rotafetch form csrf"]),
            seal: hmac(secret, &[b"rotafetch form seal"]),
        }
    }

    /// A fresh value for the CSRF cookie.
    pub fn new_cookie() -> String {
        B64URL.encode(random_bytes::<16>())
    }

    /// The form's `csrf_token` for the browser's CSRF cookie value.
    pub fn csrf_token(&self, cookie: &str) -> String {
        B64URL.encode(hmac(&self.csrf, &[cookie.as_bytes()]))
    }

    /// True if `token` belongs to `cookie` (constant time).
    pub fn csrf_ok(&self, cookie: Option<&str>, token: Option<&str>) -> bool {
        let (Some(cookie), Some(token)) = (cookie, token) else {
            return false;
        };
        if cookie.is_empty() || cookie.len() > MAX_COOKIE_LEN {
            return false;
        }
        self.csrf_token(cookie)
            .as_bytes()
            .ct_eq(token.as_bytes())
            .into()
    }

    /// The request, sealed for the form until `now_secs` + [`FORM_TTL_SECS`].
    pub fn seal(&self, req: &AuthRequest, now_secs: u64) -> String {
        let claims = Sealed {
            req: req.clone(),
            exp: now_secs + FORM_TTL_SECS,
        };
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&self.seal),
        )
        .expect("HS256 signing of a serializable struct cannot fail")
    }

    /// The request a form carried, if this server sealed it and it has not expired.
    pub fn open(&self, sealed: &str, now_secs: u64) -> Option<AuthRequest> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.required_spec_claims = ["exp".to_string()].into();
        v.validate_exp = false;
        let data =
            jsonwebtoken::decode::<Sealed>(sealed, &DecodingKey::from_secret(&self.seal), &v)
                .ok()?;
        (now_secs < data.claims.exp).then_some(data.claims.req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::authorize::Prompt;

    fn req() -> AuthRequest {
        AuthRequest {
            client_id: "app".into(),
            redirect_uri: "https://app.example/cb".into(),
            state: Some("s".into()),
            scope: "openid".into(),
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
            nonce: None,
            prompt: Prompt::Login,
            max_age: None,
            dpop_jkt: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
        }
    }

    #[test]
    fn csrf_tokens_belong_to_their_cookie() {
        let k = FormKey::new(&[1; 32]);
        let cookie = FormKey::new_cookie();
        let token = k.csrf_token(&cookie);
        assert!(k.csrf_ok(Some(&cookie), Some(&token)));
        assert!(!k.csrf_ok(None, Some(&token)), "no cookie");
        assert!(!k.csrf_ok(Some(&cookie), None), "no token");
        assert!(!k.csrf_ok(Some(&cookie), Some("")));
        assert!(
            !k.csrf_ok(Some(&FormKey::new_cookie()), Some(&token)),
            "another cookie"
        );
        assert!(
            !FormKey::new(&[2; 32]).csrf_ok(Some(&cookie), Some(&token)),
            "another key"
        );
        assert!(!k.csrf_ok(Some(&"x".repeat(65)), Some(&k.csrf_token(&"x".repeat(65)))));
        assert!(!format!("{k:?}").contains('1'));
    }

    #[test]
    fn sealed_requests_cannot_be_changed_and_expire() {
        let k = FormKey::new(&[1; 32]);
        let sealed = k.seal(&req(), 1_000);
        assert_eq!(k.open(&sealed, 1_000 + FORM_TTL_SECS - 1), Some(req()));
        assert_eq!(k.open(&sealed, 1_000 + FORM_TTL_SECS), None, "expired");
        assert_eq!(FormKey::new(&[2; 32]).open(&sealed, 1_000), None);
        // A payload with the binding removed, keeping the signature: refused.
        let parts: Vec<&str> = sealed.split('.').collect();
        let mut stripped = req();
        stripped.dpop_jkt = None;
        let forged_payload = B64URL.encode(
            serde_json::to_vec(&serde_json::json!({"req": stripped, "exp": 9_999_999_999u64}))
                .unwrap(),
        );
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(k.open(&forged, 1_000), None);
        assert_eq!(k.open("", 1_000), None);
        // The access-token keys' algorithm is never accepted here.
        let none_alg = format!("{}.{}.", B64URL.encode(br#"{"alg":"none"}"#), parts[1]);
        assert_eq!(k.open(&none_alg, 1_000), None);
    }
}
