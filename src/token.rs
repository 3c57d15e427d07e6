//! Token responses (RFC 6749 §5.1, or the camelCase style many JS backends use) and the
//! record rotafetch persists.

use crate::json::JsonValue;
use alloc::string::String;

/// The largest token response rotafetch reads (a 10 MB answer is a fault, not a token).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// A parsed token response.
#[derive(Clone, PartialEq)]
pub struct TokenResponse {
    /// The new access token.
    pub access_token: String,
    /// The rotated refresh token; `None` when the server did not rotate (keep the old one).
    pub refresh_token: Option<String>,
    /// `expires_in`, in seconds.
    pub expires_in: Option<f64>,
    /// `token_type`, as the server wrote it (`Bearer`, `DPoP`; see [`check_type`]).
    pub token_type: Option<String>,
    /// `id_token` (OpenID Connect Core §3.1.3.3), when it is a string: a sign-in checks its
    /// claims (`crate::signin::id_token`) and keeps it for the end-session request.
    pub id_token: Option<String>,
}

impl core::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("expires_in", &self.expires_in)
            .field("token_type", &self.token_type)
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// Why a token response (or `setTokens` input) was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// The body is not JSON.
    NotJson,
    /// The body is JSON but not an object.
    NotObject,
    /// No `access_token` / `accessToken`.
    MissingAccessToken,
    /// The access token is empty or not sendable in an HTTP header.
    BadAccessToken,
    /// The refresh token is present but not a non-empty header-safe string.
    BadRefreshToken,
    /// `expires_in` is present but not a non-negative number.
    BadExpiresIn,
    /// `token_type` is present and not `Bearer` (DPoP off).
    NotBearer,
    /// `token_type` is not `DPoP` while DPoP is on: a downgrade to bearer, refused.
    NotDpop,
    /// Larger than [`MAX_RESPONSE_BYTES`].
    TooLarge,
}

impl TokenError {
    /// A fixed description (safe to show: never contains the token).
    pub const fn message(self) -> &'static str {
        match self {
            TokenError::NotJson => "token response is not JSON",
            TokenError::NotObject => "token response is not a JSON object",
            TokenError::MissingAccessToken => "token response has no access_token",
            TokenError::BadAccessToken => "access_token is not a valid bearer token",
            TokenError::BadRefreshToken => "refresh_token is not a valid token string",
            TokenError::BadExpiresIn => "expires_in is not a non-negative number",
            TokenError::NotBearer => "token_type is not Bearer",
            TokenError::NotDpop => "token_type is not DPoP (a bearer token while DPoP is on)",
            TokenError::TooLarge => "token response is too large",
        }
    }
}

/// A plain decimal (ASCII digits, ASCII whitespace around them): `Some(Err(()))` when it
/// overflows a `u64`. Bytes only: no `str::trim`/`parse` machinery in the `.wasm`.
pub(crate) fn decimal(text: &str) -> Option<Result<u64, ()>> {
    let digits = text.trim_ascii().as_bytes();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: u64 = 0;
    for d in digits {
        match n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
        {
            Some(v) => n = v,
            None => return Some(Err(())),
        }
    }
    Some(Ok(n))
}

/// Does a response's `Content-Length` value declare more than `max` bytes? `false` when it is
/// not a plain decimal (the body is then read and measured instead).
pub fn declares_more_than(content_length: &str, max: usize) -> bool {
    match decimal(content_length) {
        None => false,
        Some(Err(())) => true,
        Some(Ok(n)) => n > max as u64,
    }
}

/// Should a response declaring this `Content-Length` be left unread (over
/// [`MAX_RESPONSE_BYTES`])?
pub fn too_big(content_length: Option<&str>) -> bool {
    content_length.is_some_and(|l| declares_more_than(l, MAX_RESPONSE_BYTES))
}

/// A token may go into `Authorization: Bearer …` and into JSON/form bodies: visible ASCII
/// without spaces, quotes or backslashes (covers JWTs, base64url and RFC 6750's b64token).
pub fn is_token_string(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 16 * 1024
        && s.bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
}

fn field<J: JsonValue>(j: &J, snake: &str, camel: &str) -> Option<String> {
    j.str_field(snake).or_else(|| j.str_field(camel))
}

fn present<J: JsonValue>(j: &J, snake: &str, camel: &str) -> bool {
    j.has_field(snake) || j.has_field(camel)
}

/// Reads a token response from an already parsed JSON value (both naming styles).
pub fn from_json<J: JsonValue>(j: &J) -> Result<TokenResponse, TokenError> {
    if !j.is_object() {
        return Err(TokenError::NotObject);
    }
    let token_type = field(j, "token_type", "tokenType");
    let access_token = match field(j, "access_token", "accessToken") {
        Some(a) if is_token_string(&a) => a,
        Some(_) => return Err(TokenError::BadAccessToken),
        None if present(j, "access_token", "accessToken") => {
            return Err(TokenError::BadAccessToken)
        }
        None => return Err(TokenError::MissingAccessToken),
    };
    let refresh_token = match field(j, "refresh_token", "refreshToken") {
        Some(r) if is_token_string(&r) => Some(r),
        Some(_) => return Err(TokenError::BadRefreshToken),
        None if present(j, "refresh_token", "refreshToken") => {
            return Err(TokenError::BadRefreshToken)
        }
        None => None,
    };
    let expires_in = if present(j, "expires_in", "expiresIn") {
        // Some servers send the number as a string ("3600"): whole seconds only (an integer
        // parse keeps the float parser, and its tables, out of the .wasm).
        let n = j
            .num_field("expires_in")
            .or_else(|| j.num_field("expiresIn"))
            .or_else(|| {
                field(j, "expires_in", "expiresIn")
                    .and_then(|s| decimal(&s)?.ok())
                    .filter(|n| *n <= u64::from(u32::MAX))
                    .map(|n| n as f64)
            });
        match n {
            Some(n) if n.is_finite() && n >= 0.0 => Some(n),
            _ => return Err(TokenError::BadExpiresIn),
        }
    } else {
        None
    };
    Ok(TokenResponse {
        access_token,
        refresh_token,
        expires_in,
        token_type,
        id_token: j.str_field("id_token"),
    })
}

/// Is the response's `token_type` the one this client works with: `Bearer` (or none) with
/// DPoP off, `DPoP` with it on (see [`crate::dpop::token_type_accepted`])?
pub fn check_type(t: &TokenResponse, dpop: bool) -> Result<(), TokenError> {
    if crate::dpop::token_type_accepted(dpop, t.token_type.as_deref()) {
        Ok(())
    } else if dpop {
        Err(TokenError::NotDpop)
    } else {
        Err(TokenError::NotBearer)
    }
}

/// Reads a token response from its body text.
pub fn parse<J: JsonValue>(body: &str) -> Result<TokenResponse, TokenError> {
    if body.len() > MAX_RESPONSE_BYTES {
        return Err(TokenError::TooLarge);
    }
    let j = J::parse(body).ok_or(TokenError::NotJson)?;
    from_json(&j)
}

/// What rotafetch persists under `storageKey` (and hands between tabs).
#[derive(Clone, PartialEq)]
pub struct Stored {
    /// The current refresh token.
    pub refresh_token: String,
    /// The current access token.
    pub access_token: String,
    /// When the access token expires (ms since the epoch, local clock), if known.
    pub expires_at: Option<f64>,
    /// When to refresh before sending (ms since the epoch, local clock), if known.
    pub refresh_at: Option<f64>,
    /// The session's provenance: when a refresh produced these tokens (ms since the epoch),
    /// `None` when they were handed over (`login`, `setTokens`). Stored with the session, so
    /// every tab's loop guard sees how the tokens came to be (see `policy::on_401`).
    pub refreshed_at: Option<f64>,
    /// The ID token of a sign-in by redirect: the end-session request's `id_token_hint`.
    pub id_token: Option<String>,
    /// When the session began (ms since the epoch: the sign-in, `login` or `setTokens`), kept
    /// through its refreshes: another tab that takes in a session of another beginning tells
    /// its listeners `signin`, whether or not it was refreshed since.
    pub signed_in_at: Option<f64>,
}

impl core::fmt::Debug for Stored {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Stored")
            .field("refresh_token", &"[redacted]")
            .field("access_token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("refresh_at", &self.refresh_at)
            .field("refreshed_at", &self.refreshed_at)
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .field("signed_in_at", &self.signed_in_at)
            .finish()
    }
}

/// The storage format version written in the `v` field.
pub const STORED_VERSION: f64 = 1.0;

/// Reads a stored record. Anything that is not a complete record of this version (corrupt
/// JSON, another app's value under the key, a half-written record) is `None`.
pub fn parse_stored<J: JsonValue>(text: &str) -> Option<Stored> {
    let j = J::parse(text)?;
    if !j.is_object() || j.num_field("v") != Some(STORED_VERSION) {
        return None;
    }
    let refresh_token = j.str_field("rt").filter(|t| is_token_string(t))?;
    let access_token = j.str_field("at").filter(|t| is_token_string(t))?;
    let time = |k: &str| j.num_field(k).filter(|n| n.is_finite());
    Some(Stored {
        refresh_token,
        access_token,
        expires_at: time("exp"),
        refresh_at: time("rat"),
        refreshed_at: time("rfa"),
        id_token: j.str_field("it").filter(|t| is_token_string(t)),
        signed_in_at: time("sat"),
    })
}

// Natively only: the tests read JSON with serde_json.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn declared_lengths() {
        assert!(declares_more_than("65537", 65536));
        assert!(declares_more_than(" 99999999999999999999999 ", 10));
        assert!(!declares_more_than("65536", 65536));
        assert!(!declares_more_than("\t12 ", 65536));
        for odd in ["", " ", "-1", "1e9", "0x10", "12 34", "+5"] {
            assert!(!declares_more_than(odd, 0), "{odd:?}");
        }
    }

    #[test]
    fn rfc6749_response() {
        let r = parse::<Value>(
            r#"{"access_token":"a.b.c","refresh_token":"r1","token_type":"Bearer","expires_in":60}"#,
        )
        .unwrap();
        assert_eq!(r.access_token, "a.b.c");
        assert_eq!(r.refresh_token.as_deref(), Some("r1"));
        assert_eq!(r.expires_in, Some(60.0));
    }

    #[test]
    fn camel_case_response_and_string_expiry() {
        let r =
            parse::<Value>(r#"{"accessToken":"x","refreshToken":"y","expiresIn":"3600"}"#).unwrap();
        assert_eq!(r.access_token, "x");
        assert_eq!(r.refresh_token.as_deref(), Some("y"));
        assert_eq!(r.expires_in, Some(3600.0));
        let with = |e: &str| parse::<Value>(&format!(r#"{{"access_token":"x","expires_in":{e}}}"#));
        assert_eq!(with(r#"" 60 ""#).unwrap().expires_in, Some(60.0));
        assert_eq!(
            with(r#""4294967295""#).unwrap().expires_in,
            Some(4294967295.0)
        );
        for bad in [
            r#""+5""#,
            r#""-5""#,
            r#""1.5""#,
            r#""""#,
            r#""4294967296""#,
            r#""9e9""#,
        ] {
            assert_eq!(with(bad).unwrap_err(), TokenError::BadExpiresIn, "{bad}");
        }
    }

    #[test]
    fn no_refresh_token_means_keep_the_old_one() {
        let r = parse::<Value>(r#"{"access_token":"x","token_type":"bearer"}"#).unwrap();
        assert_eq!(r.refresh_token, None);
        assert_eq!(r.expires_in, None);
    }

    #[test]
    fn bad_responses_are_typed() {
        use TokenError::*;
        let cases = [
            ("", NotJson),
            ("<html>ok</html>", NotJson),
            (r#"{"access_token": "x", "#, NotJson),
            ("[1,2]", NotObject),
            ("null", NotObject),
            (
                r#"{"token_type":"Bearer","expires_in":60}"#,
                MissingAccessToken,
            ),
            (r#"{"access_token":""}"#, BadAccessToken),
            (r#"{"access_token":"has space"}"#, BadAccessToken),
            (r#"{"access_token":"line\nbreak"}"#, BadAccessToken),
            (r#"{"access_token":42}"#, BadAccessToken),
            (r#"{"access_token":"x","refresh_token":7}"#, BadRefreshToken),
            (
                r#"{"access_token":"x","refresh_token":""}"#,
                BadRefreshToken,
            ),
            (r#"{"access_token":"x","expires_in":-1}"#, BadExpiresIn),
            (r#"{"access_token":"x","expires_in":"soon"}"#, BadExpiresIn),
        ];
        for (body, want) in cases {
            assert_eq!(parse::<Value>(body).unwrap_err(), want, "{body}");
        }
        // The token type is read, and checked against the client's DPoP setting.
        let dpop = parse::<Value>(r#"{"access_token":"x","token_type":"DPoP"}"#).unwrap();
        assert_eq!(check_type(&dpop, false), Err(NotBearer));
        assert_eq!(check_type(&dpop, true), Ok(()));
        let bearer = parse::<Value>(r#"{"access_token":"x","token_type":"bearer"}"#).unwrap();
        assert_eq!(check_type(&bearer, false), Ok(()));
        assert_eq!(check_type(&bearer, true), Err(NotDpop), "a downgrade");
        let huge = format!(r#"{{"access_token":"{}"}}"#, "a".repeat(MAX_RESPONSE_BYTES));
        assert_eq!(parse::<Value>(&huge).unwrap_err(), TooLarge);
    }

    #[test]
    fn null_refresh_token_reads_as_not_rotated() {
        // `present` ignores null, so a null refresh token reads as "not rotated".
        let r = parse::<Value>(r#"{"access_token":"x","refresh_token":null}"#).unwrap();
        assert_eq!(r.refresh_token, None);
    }

    #[test]
    fn debug_redacts_tokens() {
        let r = parse::<Value>(
            r#"{"access_token":"SECRET-A","refresh_token":"SECRET-R","id_token":"SECRET-I"}"#,
        )
        .unwrap();
        assert_eq!(r.id_token.as_deref(), Some("SECRET-I"));
        let d = format!("{r:?}");
        assert!(!d.contains("SECRET"), "{d}");
        let s = Stored {
            refresh_token: "SECRET-R".into(),
            access_token: "SECRET-A".into(),
            expires_at: Some(1.0),
            refresh_at: None,
            refreshed_at: None,
            id_token: Some("SECRET-I".into()),
            signed_in_at: None,
        };
        assert!(!format!("{s:?}").contains("SECRET"));
    }

    #[test]
    fn stored_records() {
        let s =
            parse_stored::<Value>(r#"{"v":1,"rt":"r","at":"a","exp":5,"rat":4,"rfa":3,"it":"i"}"#)
                .unwrap();
        assert_eq!(s.id_token.as_deref(), Some("i"));
        assert_eq!(s.refresh_token, "r");
        assert_eq!(s.access_token, "a");
        assert_eq!(s.expires_at, Some(5.0));
        assert_eq!(s.refresh_at, Some(4.0));
        assert_eq!(s.refreshed_at, Some(3.0));
        let no_times = parse_stored::<Value>(r#"{"v":1,"rt":"r","at":"a"}"#).unwrap();
        assert_eq!(no_times.expires_at, None);
        assert_eq!(no_times.refreshed_at, None);
        assert_eq!(no_times.id_token, None);
        for corrupt in [
            "",
            "{",
            "\"hello\"",
            r#"{"foo":1}"#,
            r#"{"v":2,"rt":"r","at":"a"}"#,
            r#"{"v":1,"rt":"","at":"a"}"#,
            r#"{"v":1,"at":"a"}"#,
            r#"{"v":1,"rt":"r"}"#,
        ] {
            assert!(parse_stored::<Value>(corrupt).is_none(), "{corrupt}");
        }
    }
}
