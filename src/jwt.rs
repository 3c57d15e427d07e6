//! Reading the claims of a JWT access token: the payload segment decoded with base64url and
//! read as JSON. No signature check: the client only wants to know when the token expires,
//! and the resource server is the one that verifies it.

use crate::json::JsonValue;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

/// base64url that accepts the payload with or without `=` padding.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The time claims rotafetch uses, in seconds since the epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Claims {
    /// `exp`, when present and a finite number.
    pub exp: Option<f64>,
    /// `iat`, when present and a finite number.
    pub iat: Option<f64>,
}

impl Claims {
    /// The lifetime the issuer gave the token (`exp - iat`), when both are known and it is positive.
    pub fn lifetime_secs(&self) -> Option<f64> {
        let l = self.exp? - self.iat?;
        (l > 0.0).then_some(l)
    }
}

/// Why a token's claims could not be read. Such a token is still used as an opaque bearer
/// token; only the expiry is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwtError {
    /// Not three dot-separated segments.
    NotAJwt,
    /// The payload is not base64url.
    BadEncoding,
    /// The payload is not a JSON object.
    NotJson,
}

/// Decodes the claims of `token`. Never panics, whatever the input.
pub fn decode_claims<J: JsonValue>(token: &str) -> Result<Claims, JwtError> {
    let mut parts = token.split('.');
    let (Some(_header), Some(payload), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::NotAJwt);
    };
    let bytes = B64URL.decode(payload).map_err(|_| JwtError::BadEncoding)?;
    let text = core::str::from_utf8(&bytes).map_err(|_| JwtError::NotJson)?;
    let json = J::parse(text).ok_or(JwtError::NotJson)?;
    if !json.is_object() {
        return Err(JwtError::NotJson);
    }
    let finite = |v: Option<f64>| v.filter(|n| n.is_finite());
    Ok(Claims {
        exp: finite(json.num_field("exp")),
        iat: finite(json.num_field("iat")),
    })
}

// Natively only: the tests read JSON with serde_json.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use serde_json::Value;

    fn jwt(payload: &str) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.sig",
            e.encode(br#"{"alg":"EdDSA"}"#),
            e.encode(payload)
        )
    }

    #[test]
    fn reads_exp_and_iat() {
        let c = decode_claims::<Value>(&jwt(r#"{"sub":"1","iat":1000,"exp":1060}"#)).unwrap();
        assert_eq!(c.exp, Some(1060.0));
        assert_eq!(c.iat, Some(1000.0));
        assert_eq!(c.lifetime_secs(), Some(60.0));
    }

    #[test]
    fn padded_payload_is_accepted() {
        let e = base64::engine::general_purpose::URL_SAFE;
        let t = format!("h.{}.s", e.encode(r#"{"exp":50}"#));
        assert!(t.contains('='));
        assert_eq!(decode_claims::<Value>(&t).unwrap().exp, Some(50.0));
    }

    #[test]
    fn missing_or_non_numeric_exp_is_none() {
        let c = decode_claims::<Value>(&jwt(r#"{"exp":"soon"}"#)).unwrap();
        assert_eq!(c, Claims::default());
        assert_eq!(c.lifetime_secs(), None);
    }

    #[test]
    fn malformed_tokens_are_typed_errors() {
        assert_eq!(decode_claims::<Value>("opaque"), Err(JwtError::NotAJwt));
        assert_eq!(decode_claims::<Value>("a.b.c.d"), Err(JwtError::NotAJwt));
        assert_eq!(
            decode_claims::<Value>("a.!!!.c"),
            Err(JwtError::BadEncoding)
        );
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let not_json = format!("a.{}.c", e.encode("nope"));
        assert_eq!(decode_claims::<Value>(&not_json), Err(JwtError::NotJson));
        let array = format!("a.{}.c", e.encode("[1]"));
        assert_eq!(decode_claims::<Value>(&array), Err(JwtError::NotJson));
        let bad_utf8 = format!("a.{}.c", e.encode([0xff, 0xfe]));
        assert_eq!(decode_claims::<Value>(&bad_utf8), Err(JwtError::NotJson));
    }

    #[test]
    fn inverted_lifetime_is_unknown() {
        let c = decode_claims::<Value>(&jwt(r#"{"iat":10,"exp":5}"#)).unwrap();
        assert_eq!(c.lifetime_secs(), None);
    }
}
