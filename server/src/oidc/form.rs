//! The provider's forms' protection, without I/O:
//!
//! * CSRF, one cookie per shown form (a signed double-submit cookie): each time a form is
//!   shown, the browser gets a new cookie `rotafetch_form_<id>` (random id and secret,
//!   `HttpOnly`, `SameSite=Lax`, `__Host-` on https, living [`FORM_TTL_SECS`]) and the form
//!   carries `<id>.HMAC(key, id, cookie value, what the form is for)`. A cross-site page can
//!   neither read the cookie nor compute the token, a cross-site POST arrives without the
//!   cookie, and a sibling subdomain cannot plant one (`__Host-`). As every form has its
//!   own cookie, forms shown at once in several tabs of a fresh browser are all good: no
//!   tab's cookie replaces another's (with one cookie per browser, the second tab's
//!   `Set-Cookie` made the first tab's form fail). A browser keeps at most
//!   [`MAX_PENDING_FORMS`] of them; the oldest go first ([`to_expire`]).
//! * The sign-in form's token is bound to its sealed request, the sign-out confirmation's
//!   to its purpose ([`Bound`]): a token is good for the one form it was shown with.
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

/// How long a shown form may be submitted (its cookie and its sealed request).
pub const FORM_TTL_SECS: u64 = 600;
/// The most form cookies a browser keeps: showing another form expires the oldest.
pub const MAX_PENDING_FORMS: usize = 16;
/// Length of a form cookie's id (6 random bytes, base64url) and secret (16 bytes).
const ID_LEN: usize = 8;
const SECRET_LEN: usize = 22;

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
        mac.update(&(p.len() as u64).to_be_bytes());
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

fn is_b64url(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// One shown form's cookie: named by `id`, valued `<issued>.<secret>`. `Debug` hides the
/// secret.
#[derive(Clone, PartialEq, Eq)]
pub struct FormCookie {
    /// Names the cookie (`rotafetch_form_<id>`) and prefixes the form's token.
    pub id: String,
    /// When the form was shown (seconds): the oldest cookies go first.
    pub issued: u64,
    secret: String,
}

impl fmt::Debug for FormCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FormCookie({}, issued {}, <redacted>)",
            self.id, self.issued
        )
    }
}

impl FormCookie {
    /// A new cookie for a form shown at `now_secs`.
    pub fn new(now_secs: u64) -> Self {
        FormCookie {
            id: B64URL.encode(random_bytes::<6>()),
            issued: now_secs,
            secret: B64URL.encode(random_bytes::<16>()),
        }
    }

    /// The cookie's value.
    pub fn value(&self) -> String {
        format!("{}.{}", self.issued, self.secret)
    }

    /// The cookie `id` whose value is `value`, if both are well-formed.
    pub fn parse(id: &str, value: &str) -> Option<Self> {
        let (issued, secret) = value.split_once('.')?;
        let ok = is_b64url(id, ID_LEN) && is_b64url(secret, SECRET_LEN);
        let issued = issued.parse().ok().filter(|_| ok)?;
        Some(FormCookie {
            id: id.to_owned(),
            issued,
            secret: secret.to_owned(),
        })
    }

    /// The cookie id a form's token names (checked for shape only).
    pub fn id_of(token: &str) -> Option<&str> {
        token
            .split_once('.')
            .map(|(id, _)| id)
            .filter(|id| is_b64url(id, ID_LEN))
    }
}

/// What a form's CSRF token is good for.
#[derive(Debug, Clone, Copy)]
pub enum Bound<'a> {
    /// The sign-in form showing this sealed request.
    SignIn(&'a str),
    /// The sign-out confirmation.
    SignOut,
}

impl Bound<'_> {
    fn parts(self) -> (&'static [u8], Vec<u8>) {
        match self {
            Bound::SignIn(sealed) => (b"sign-in", sealed.as_bytes().to_vec()),
            Bound::SignOut => (b"sign-out", Vec::new()),
        }
    }
}

/// The ids of the browser's `pending` form cookies to expire before another is set, so
/// that it keeps at most [`MAX_PENDING_FORMS`]: the oldest.
pub fn to_expire(mut pending: Vec<FormCookie>) -> Vec<String> {
    let excess = (pending.len() + 1).saturating_sub(MAX_PENDING_FORMS);
    pending.sort_by_key(|c| c.issued);
    pending.into_iter().take(excess).map(|c| c.id).collect()
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

    /// The `csrf_token` of a form shown with `cookie`, for `bound`.
    pub fn csrf_token(&self, cookie: &FormCookie, bound: Bound<'_>) -> String {
        let (purpose, data) = bound.parts();
        let value = cookie.value();
        let mac = hmac(
            &self.csrf,
            &[purpose, cookie.id.as_bytes(), value.as_bytes(), &data],
        );
        format!("{}.{}", cookie.id, B64URL.encode(mac))
    }

    /// True if `token` was made for `cookie` (the cookie its id names) and `bound`
    /// (constant time). Freshness is the browser's (the cookie's `Max-Age`) and the sealed
    /// request's (`exp`): the cookie only proves which browser was shown the form.
    pub fn csrf_ok(
        &self,
        cookie: Option<&FormCookie>,
        token: Option<&str>,
        bound: Bound<'_>,
    ) -> bool {
        let (Some(cookie), Some(token)) = (cookie, token) else {
            return false;
        };
        self.csrf_token(cookie, bound)
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
    fn csrf_tokens_belong_to_their_cookie_and_form() {
        let k = FormKey::new(&[1; 32]);
        let cookie = FormCookie::new(1_000);
        let parsed = FormCookie::parse(&cookie.id, &cookie.value());
        assert_eq!(parsed.as_ref(), Some(&cookie));
        let form = Bound::SignIn("sealed-1");
        let token = k.csrf_token(&cookie, form);
        assert_eq!(FormCookie::id_of(&token), Some(cookie.id.as_str()));
        let ok = |c: Option<&FormCookie>, t: Option<&str>, b| k.csrf_ok(c, t, b);
        assert!(ok(Some(&cookie), Some(&token), form));
        assert!(!ok(None, Some(&token), form), "no cookie");
        assert!(!ok(Some(&cookie), None, form), "no token");
        assert!(!ok(Some(&cookie), Some(""), form));
        let other = FormCookie::new(1_000);
        assert!(!ok(Some(&other), Some(&token), form), "another cookie");
        let forged = format!("{}.{}", other.id, token.split_once('.').unwrap().1);
        assert!(
            !ok(Some(&other), Some(&forged), form),
            "another cookie's id"
        );
        assert!(
            !ok(Some(&cookie), Some(&token), Bound::SignIn("sealed-2")),
            "another form"
        );
        assert!(!ok(Some(&cookie), Some(&token), Bound::SignOut));
        assert!(
            !FormKey::new(&[2; 32]).csrf_ok(Some(&cookie), Some(&token), form),
            "another key"
        );
        // Two forms shown at once: each cookie serves its own form.
        let second = k.csrf_token(&other, Bound::SignIn("sealed-2"));
        assert!(ok(Some(&other), Some(&second), Bound::SignIn("sealed-2")));
        assert!(ok(Some(&cookie), Some(&token), form));
        assert!(!format!("{k:?}").contains('1'));
        assert!(!format!("{cookie:?}").contains(&cookie.value()));
    }

    #[test]
    fn form_cookies_parse_strictly_and_the_oldest_expire_first() {
        let c = FormCookie::new(7);
        for (id, value) in [
            (c.id.as_str(), "7"),
            (c.id.as_str(), "x.AAAAAAAAAAAAAAAAAAAAAA"),
            (c.id.as_str(), "7.short"),
            ("short", "7.AAAAAAAAAAAAAAAAAAAAAA"),
            ("a;b=c.de", "7.AAAAAAAAAAAAAAAAAAAAAA"),
        ] {
            assert_eq!(FormCookie::parse(id, value), None, "{id}={value}");
        }
        assert_eq!(FormCookie::id_of("no-dot"), None);
        assert_eq!(FormCookie::id_of("a/b.c"), None);
        let pending: Vec<FormCookie> = (0..MAX_PENDING_FORMS as u64)
            .rev()
            .map(FormCookie::new)
            .collect();
        let oldest = pending.last().unwrap().id.clone();
        assert_eq!(to_expire(pending.clone()), vec![oldest]);
        assert!(to_expire(pending[..MAX_PENDING_FORMS - 1].to_vec()).is_empty());
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
