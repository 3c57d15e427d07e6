//! Reading the claims of a JWT access token: the payload segment decoded with base64url and
//! read as JSON. No signature check: the client only wants to know when the token expires,
//! and the resource server is the one that verifies it.

use crate::json::JsonValue;
use alloc::string::String;

/// The payload segment as text: base64url (with or without `=` padding), then UTF-8.
/// Natively the `base64` crate decodes it.
#[cfg(not(target_arch = "wasm32"))]
fn segment_text(segment: &str) -> Result<String, JwtError> {
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
    use base64::engine::DecodePaddingMode;
    use base64::Engine;
    const B64URL: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let bytes = B64URL.decode(segment).map_err(|_| JwtError::BadEncoding)?;
    String::from_utf8(bytes).map_err(|_| JwtError::NotJson)
}

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// The global `atob`: throws on anything but base64.
    #[wasm_bindgen(catch)]
    fn atob(data: &str) -> Result<String, wasm_bindgen::JsValue>;
}

/// In the browser, its own `atob` decodes it (about 2 KB less `.wasm` than the `base64`
/// crate's decoder). `atob` reads the standard alphabet, so only the URL-safe alphabet is let
/// in and mapped to it. Its result has one char per byte: the JSON is read as Latin-1, which
/// reads the numeric claims (all this module wants) exactly as UTF-8 would.
#[cfg(target_arch = "wasm32")]
fn segment_text(segment: &str) -> Result<String, JwtError> {
    let all = segment.as_bytes();
    let b = &all[..all.iter().rposition(|c| *c != b'=').map_or(0, |i| i + 1)];
    if b.len() + 2 < all.len()
        || !b
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
    {
        return Err(JwtError::BadEncoding);
    }
    let std: String = b
        .iter()
        .map(|c| match c {
            b'-' => '+',
            b'_' => '/',
            c => char::from(*c),
        })
        .collect();
    atob(&std).map_err(|_| JwtError::BadEncoding)
}

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
    // Bytes, not `str::split`: no char-pattern searcher in the `.wasm`.
    let mut dots = token
        .bytes()
        .enumerate()
        .filter(|&(_, b)| b == b'.')
        .map(|(i, _)| i);
    let (Some(first), Some(second), None) = (dots.next(), dots.next(), dots.next()) else {
        return Err(JwtError::NotAJwt);
    };
    let payload = token.get(first + 1..second).ok_or(JwtError::NotAJwt)?;
    let text = segment_text(payload)?;
    let json = J::parse(&text).ok_or(JwtError::NotJson)?;
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
    use base64::Engine;
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
