//! The claims of the ID token a code exchange returns (OpenID Connect Core §3.1.3.7): that it
//! was issued by the configured issuer, to this client, for this sign-in (`nonce`), and is
//! current. Its signature is not checked: the token came over TLS straight from the token
//! endpoint, in answer to this client's code and PKCE verifier, which §3.1.3.7 item 6 lets
//! stand in for it.

use crate::json::JsonValue;
use crate::jwt;
use alloc::string::String;

/// How far `exp` and `iat` may be off this device's clock, in seconds: 5 minutes, as common
/// server-side defaults allow (device clocks are often minutes off; the token is a minute old).
pub const LEEWAY_SECS: f64 = 300.0;

/// What the ID token must say.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    /// `iss`: the issuer, exactly.
    pub issuer: &'a str,
    /// In `aud`, and `azp` when present.
    pub client_id: &'a str,
    /// `nonce`: the one the sign-in sent.
    pub nonce: Option<&'a str>,
    /// Now, seconds since the epoch.
    pub now_secs: f64,
}

/// Why an ID token is refused (the claim at fault).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdTokenError {
    /// Not a JWT with a JSON object payload.
    Unreadable,
    /// `iss` is not the issuer.
    Issuer,
    /// `aud` does not hold the client id.
    Audience,
    /// `azp` is not the client id, or missing with several audiences.
    AuthorizedParty,
    /// `nonce` is not the sign-in's.
    Nonce,
    /// `exp` is missing or past.
    Expired,
    /// `iat` is missing or in the future.
    IssuedAt,
    /// `sub` is missing or empty.
    Subject,
}

impl IdTokenError {
    /// The claim at fault, for the error message.
    pub const fn claim(self) -> &'static str {
        match self {
            IdTokenError::Unreadable => "payload",
            IdTokenError::Issuer => "iss",
            IdTokenError::Audience => "aud",
            IdTokenError::AuthorizedParty => "azp",
            IdTokenError::Nonce => "nonce",
            IdTokenError::Expired => "exp",
            IdTokenError::IssuedAt => "iat",
            IdTokenError::Subject => "sub",
        }
    }
}

/// Checks the claims of `id_token` against what this sign-in expects.
pub fn check<J: JsonValue>(id_token: &str, want: &Expected<'_>) -> Result<(), IdTokenError> {
    use IdTokenError::*;
    let c = jwt::payload::<J>(id_token).map_err(|_| Unreadable)?;
    let is = |name: &str, value: &str| c.str_field(name).as_deref() == Some(value);
    if !is("iss", want.issuer) {
        return Err(Issuer);
    }
    if !c.str_field("sub").is_some_and(|s| !s.is_empty()) {
        return Err(Subject);
    }
    let (in_aud, audiences) = c.list_has("aud", want.client_id).unwrap_or_default();
    if !in_aud {
        return Err(Audience);
    }
    let azp: Option<String> = c.str_field("azp");
    if azp
        .as_deref()
        .map_or(audiences > 1, |a| a != want.client_id)
    {
        return Err(AuthorizedParty);
    }
    if let Some(n) = want.nonce {
        if !is("nonce", n) {
            return Err(Nonce);
        }
    }
    let time = |name| c.num_field(name).filter(|t| t.is_finite());
    if !time("exp").is_some_and(|exp| want.now_secs < exp + LEEWAY_SECS) {
        return Err(Expired);
    }
    if !time("iat").is_some_and(|iat| iat <= want.now_secs + LEEWAY_SECS) {
        return Err(IssuedAt);
    }
    Ok(())
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use base64::Engine;
    use serde_json::{json, Value};

    const NOW: f64 = 1_700_000_000.0;

    fn want() -> Expected<'static> {
        Expected {
            issuer: "https://id.example.com",
            client_id: "spa",
            nonce: Some("n-1"),
            now_secs: NOW,
        }
    }

    fn claims() -> Value {
        json!({
            "iss": "https://id.example.com",
            "sub": "user-1",
            "aud": "spa",
            "nonce": "n-1",
            "iat": NOW - 1.0,
            "exp": NOW + 300.0,
        })
    }

    fn token(c: &Value) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.c2ln",
            e.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
            e.encode(c.to_string())
        )
    }

    fn with(edit: impl FnOnce(&mut Value)) -> Result<(), IdTokenError> {
        let mut c = claims();
        edit(&mut c);
        check::<Value>(&token(&c), &want())
    }

    #[test]
    fn a_good_token() {
        assert_eq!(with(|_| {}), Ok(()));
        assert_eq!(with(|c| c["aud"] = json!(["spa"])), Ok(()));
        assert_eq!(
            with(|c| {
                c["aud"] = json!(["api", "spa"]);
                c["azp"] = json!("spa");
            }),
            Ok(())
        );
    }

    #[test]
    fn each_claim_is_checked() {
        use IdTokenError::*;
        type Edit = Box<dyn FnOnce(&mut Value)>;
        let cases: Vec<(IdTokenError, Edit)> = vec![
            (
                Issuer,
                Box::new(|c| c["iss"] = json!("https://evil.example")),
            ),
            (
                Issuer,
                Box::new(|c| c["iss"] = json!("https://id.example.com/")),
            ),
            (
                Issuer,
                Box::new(|c| {
                    c.as_object_mut().unwrap().remove("iss");
                }),
            ),
            (Subject, Box::new(|c| c["sub"] = json!(""))),
            (
                Subject,
                Box::new(|c| {
                    c.as_object_mut().unwrap().remove("sub");
                }),
            ),
            (Audience, Box::new(|c| c["aud"] = json!("other"))),
            (Audience, Box::new(|c| c["aud"] = json!(["other", "api"]))),
            (Audience, Box::new(|c| c["aud"] = json!([7]))),
            (Audience, Box::new(|c| c["aud"] = json!({"spa": 1}))),
            (
                AuthorizedParty,
                Box::new(|c| c["aud"] = json!(["spa", "api"])),
            ),
            (AuthorizedParty, Box::new(|c| c["azp"] = json!("other"))),
            (Nonce, Box::new(|c| c["nonce"] = json!("n-2"))),
            (
                Nonce,
                Box::new(|c| {
                    c.as_object_mut().unwrap().remove("nonce");
                }),
            ),
            (Expired, Box::new(|c| c["exp"] = json!(NOW - 300.0))),
            (Expired, Box::new(|c| c["exp"] = json!("soon"))),
            (IssuedAt, Box::new(|c| c["iat"] = json!(NOW + 301.0))),
            (
                IssuedAt,
                Box::new(|c| {
                    c.as_object_mut().unwrap().remove("iat");
                }),
            ),
        ];
        for (want_err, edit) in cases {
            assert_eq!(with(edit), Err(want_err));
        }
    }

    #[test]
    fn the_leeway_is_five_minutes() {
        assert_eq!(with(|c| c["exp"] = json!(NOW - 299.0)), Ok(()));
        assert_eq!(with(|c| c["iat"] = json!(NOW + 300.0)), Ok(()));
    }

    #[test]
    fn no_nonce_expected_none_checked() {
        let w = Expected {
            nonce: None,
            ..want()
        };
        let mut c = claims();
        c.as_object_mut().unwrap().remove("nonce");
        assert_eq!(check::<Value>(&token(&c), &w), Ok(()));
    }

    #[test]
    fn unreadable_tokens() {
        for t in ["", "opaque", "a.b", "a.!!.c", "a.W10.c"] {
            assert_eq!(
                check::<Value>(t, &want()),
                Err(IdTokenError::Unreadable),
                "{t}"
            );
        }
    }
}
