//! The provider session: after one sign-in, the browser holds a cookie so that the next
//! authorization request needs no password (unless `prompt=login` or `max_age` says
//! otherwise). The cookie holds a 256-bit secret; the store keeps its SHA-256 and a public
//! id (the ID token's `sid`). Cookie attributes: `HttpOnly`, `SameSite=Lax`, `Path=/`, and
//! `Secure` with the `__Host-` prefix when the issuer is `https`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use cookie::{Cookie, SameSite};
use sha2::{Digest, Sha256};

use super::authorize::{AuthRequest, Prompt};
use crate::store::Millis;
use crate::tokens::{random_bytes, random_id};

/// Longest cookie value read (ours are 43 characters).
const MAX_COOKIE_VALUE: usize = 128;

/// A live provider session as the store reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSession {
    /// Public id (the ID token's `sid`).
    pub id: String,
    pub user_id: i64,
    /// When the user entered their password (ms).
    pub auth_time: Millis,
}

/// A new session: its public id, the cookie secret, and the hash the store keeps.
pub fn new_session() -> (String, String, [u8; 32]) {
    let secret = B64URL.encode(random_bytes::<32>());
    let hash = secret_hash(&secret);
    (random_id(), secret, hash)
}

pub fn secret_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Whether `session` may answer `req` without the form (OIDC Core §3.1.2.1: `prompt=login`
/// forces re-authentication; `max_age` bounds the time since the password was entered).
pub fn usable(session: &ProviderSession, req: &AuthRequest, now: Millis) -> bool {
    if req.prompt == Prompt::Login {
        return false;
    }
    match req.max_age {
        Some(max_age) => {
            let limit = i64::try_from(max_age.saturating_mul(1000)).unwrap_or(i64::MAX);
            now.saturating_sub(session.auth_time) <= limit
        }
        None => true,
    }
}

/// Cookie names: `__Host-` prefixed (Secure, Path=/, no Domain) on an https issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieNames {
    pub secure: bool,
}

impl CookieNames {
    pub fn for_issuer(issuer: &str) -> Self {
        CookieNames {
            secure: issuer.starts_with("https://"),
        }
    }

    pub fn session(self) -> &'static str {
        if self.secure {
            "__Host-rotafetch_session"
        } else {
            "rotafetch_session"
        }
    }

    /// The prefix of the forms' cookies (one per shown form, see [`super::form`]).
    pub fn form_prefix(self) -> &'static str {
        if self.secure {
            "__Host-rotafetch_form_"
        } else {
            "rotafetch_form_"
        }
    }

    /// The name of form cookie `id`.
    pub fn form(self, id: &str) -> String {
        format!("{}{id}", self.form_prefix())
    }

    /// A `Set-Cookie` value; `max_age_secs` 0 deletes the cookie.
    pub fn set(self, name: &str, value: &str, max_age_secs: i64) -> String {
        Cookie::build((name.to_owned(), value.to_owned()))
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Lax)
            .max_age(cookie::time::Duration::seconds(max_age_secs))
            .build()
            .to_string()
    }
}

/// The value of cookie `name` in the request's `Cookie` headers (the first one, if sent
/// twice).
pub fn read<'a>(cookie_headers: impl IntoIterator<Item = &'a str>, name: &str) -> Option<String> {
    cookie_headers
        .into_iter()
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty() && v.len() <= MAX_COOKIE_VALUE)
}

/// Every cookie whose name starts with `prefix`: (the rest of the name, the value), the
/// first of each name, at most `limit`.
pub fn read_prefixed<'a>(
    cookie_headers: impl IntoIterator<Item = &'a str>,
    prefix: &str,
    limit: usize,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let found = cookie_headers
        .into_iter()
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok);
    for c in found {
        if out.len() == limit {
            break;
        }
        let Some(rest) = c.name().strip_prefix(prefix) else {
            continue;
        };
        if !out.iter().any(|(n, _)| n == rest) && c.value().len() <= MAX_COOKIE_VALUE {
            out.push((rest.to_owned(), c.value().to_owned()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(prompt: Prompt, max_age: Option<u64>) -> AuthRequest {
        AuthRequest {
            client_id: "app".into(),
            redirect_uri: "https://app.example/cb".into(),
            state: None,
            scope: String::new(),
            code_challenge: String::new(),
            nonce: None,
            prompt,
            max_age,
            dpop_jkt: None,
        }
    }

    #[test]
    fn prompt_login_and_max_age_force_the_form() {
        let s = ProviderSession {
            id: "s".into(),
            user_id: 1,
            auth_time: 10_000,
        };
        assert!(usable(&s, &req(Prompt::Default, None), 99_999_999));
        assert!(usable(&s, &req(Prompt::None, None), 10_000));
        assert!(!usable(&s, &req(Prompt::Login, None), 10_000));
        assert!(usable(&s, &req(Prompt::Default, Some(5)), 15_000));
        assert!(!usable(&s, &req(Prompt::Default, Some(5)), 15_001));
        assert!(!usable(&s, &req(Prompt::Default, Some(0)), 10_001));
        assert!(usable(&s, &req(Prompt::Default, Some(u64::MAX)), i64::MAX));
    }

    #[test]
    fn cookie_attributes() {
        let plain = CookieNames::for_issuer("http://127.0.0.1:8080");
        let c = plain.set(plain.session(), "v", 3600);
        for attr in [
            "rotafetch_session=v",
            "HttpOnly",
            "SameSite=Lax",
            "Path=/",
            "Max-Age=3600",
        ] {
            assert!(c.contains(attr), "{c}");
        }
        assert!(!c.contains("Secure"), "{c}");
        let tls = CookieNames::for_issuer("https://op.example");
        let c = tls.set(tls.session(), "v", 0);
        assert!(c.starts_with("__Host-rotafetch_session=v"), "{c}");
        assert!(c.contains("Secure") && c.contains("Max-Age=0"), "{c}");
        assert!(!c.contains("Domain"), "{c}");
    }

    #[test]
    fn reading_cookies() {
        let h = ["a=1; rotafetch_session=abc", "rotafetch_session=later"];
        assert_eq!(read(h, "rotafetch_session").as_deref(), Some("abc"));
        assert_eq!(read(h, "missing"), None);
        assert_eq!(read(["rotafetch_session="], "rotafetch_session"), None);
        let long = format!("rotafetch_session={}", "x".repeat(200));
        assert_eq!(read([long.as_str()], "rotafetch_session"), None);
        let h = ["f_a=1; x=2; f_b=3", "f_a=4; f_c=5"];
        let all = read_prefixed(h, "f_", 10);
        assert_eq!(
            all,
            [("a", "1"), ("b", "3"), ("c", "5")].map(|(n, v)| (n.into(), v.into()))
        );
        assert_eq!(read_prefixed(h, "f_", 2).len(), 2);
        let (id, secret, hash) = new_session();
        assert_ne!(id, secret);
        assert_eq!(secret_hash(&secret), hash);
    }
}
