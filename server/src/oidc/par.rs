//! Pushed authorization requests (RFC 9126): the `request_uri` handle and its rules. The
//! front channel then carries only `client_id` and `request_uri`; a handle is used once and
//! lives [`PAR_TTL_SECS`].

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::authorize::is_b64url_sha256;
use crate::store::Millis;
use crate::tokens::random_bytes;

/// The `request_uri` prefix (RFC 9126 §2.2).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
/// Lifetime of a pushed request (RFC 9126 §2.2: short; we use one minute).
pub const PAR_TTL_SECS: u64 = 60;

/// A new `request_uri` and the hash the store keeps of it.
pub fn new_request_uri() -> (String, [u8; 32]) {
    let handle = B64URL.encode(random_bytes::<32>());
    let uri = format!("{REQUEST_URI_PREFIX}{handle}");
    let hash = Sha256::digest(uri.as_bytes()).into();
    (uri, hash)
}

/// The store key of a presented `request_uri`, if it has the shape of one we issue.
pub fn handle_hash(uri: &str) -> Option<[u8; 32]> {
    let handle = uri.strip_prefix(REQUEST_URI_PREFIX)?;
    is_b64url_sha256(handle).then(|| Sha256::digest(uri.as_bytes()).into())
}

/// The state of a stored pushed request (its parameters aside).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParRow {
    pub client_id: String,
    pub expires_at: Millis,
    pub used: bool,
}

/// Whether a presented handle may be taken (and so spent) by `client_id` at `now`; the
/// description of the error page if not. A refusal changes nothing.
pub fn take(row: Option<&ParRow>, client_id: &str, now: Millis) -> Result<(), &'static str> {
    let Some(row) = row else {
        return Err("request_uri unknown");
    };
    if row.used {
        return Err("request_uri was already used");
    }
    if now >= row.expires_at {
        return Err("request_uri expired");
    }
    if row.client_id != client_id {
        return Err("request_uri was pushed by another client");
    }
    Ok(())
}

/// The code's DPoP binding from a PAR request (RFC 9449 §10.1): the proof's key, the
/// `dpop_jkt` parameter, or both if they agree.
pub fn binding(
    dpop_jkt: Option<&str>,
    proof_jkt: Option<&str>,
) -> Result<Option<String>, &'static str> {
    match (dpop_jkt, proof_jkt) {
        (Some(a), Some(b)) if a != b => Err("dpop_jkt does not match the DPoP proof's key"),
        (a, b) => Ok(a.or(b).map(str::to_owned)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(used: bool) -> ParRow {
        ParRow {
            client_id: "app".into(),
            expires_at: 1_060_000,
            used,
        }
    }

    #[test]
    fn handles_are_one_time_and_short_lived() {
        let (uri, hash) = new_request_uri();
        assert!(uri.starts_with(REQUEST_URI_PREFIX));
        assert_eq!(handle_hash(&uri), Some(hash));
        assert_ne!(new_request_uri().0, uri);
        for bad in [
            "",
            "urn:ietf:params:oauth:request_uri:",
            "https://x/",
            &uri[..uri.len() - 1],
        ] {
            assert_eq!(handle_hash(bad), None, "{bad:?}");
        }
        let fresh = row(false);
        assert_eq!(take(Some(&fresh), "app", 1_000_000), Ok(()));
        assert_eq!(take(Some(&fresh), "app", 1_059_999), Ok(()));
        assert!(take(Some(&fresh), "app", 1_060_000).is_err(), "expired");
        assert!(
            take(Some(&fresh), "other", 1_000_000).is_err(),
            "another client"
        );
        assert!(take(Some(&row(true)), "app", 1_000_000).is_err(), "used");
        assert!(take(None, "app", 1_000_000).is_err());
    }

    #[test]
    fn dpop_binding_at_par() {
        assert_eq!(binding(None, None), Ok(None));
        assert_eq!(binding(Some("a"), None), Ok(Some("a".into())));
        assert_eq!(binding(None, Some("b")), Ok(Some("b".into())));
        assert_eq!(binding(Some("a"), Some("a")), Ok(Some("a".into())));
        assert!(binding(Some("a"), Some("b")).is_err());
    }
}
