//! Request bodies: reading them within a size limit and a time limit, and parsing JSON or
//! form bodies.
//!
//! A body is buffered up to its limit. Past the limit, the rest is read and thrown away up
//! to [`DRAIN_SLACK`] more bytes (so a client that sent a little too much sees the 413
//! rather than a reset connection); anything longer is refused without reading it, as is a
//! `Content-Length` beyond limit + slack. The whole body must arrive within the configured
//! time (408 otherwise), so a slow sender cannot hold a request open.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use http_body_util::BodyExt as _;
use serde::de::DeserializeOwned;

use super::AppState;
use crate::error::ApiError;
use crate::metrics::inc;

/// Bytes past a body's limit that are still read (and dropped) before the 413.
pub const DRAIN_SLACK: usize = 1024 * 1024;

/// How a body read ended, besides success.
#[derive(Debug, PartialEq, Eq)]
enum Refused {
    TooLarge,
    Broken,
}

/// Reads up to `limit` bytes (see the module's rules); `Err` past limit + slack, or when
/// the body fails.
async fn read_limited(headers: &HeaderMap, mut body: Body, limit: usize) -> Result<Bytes, Refused> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let most = limit.saturating_add(DRAIN_SLACK);
    if declared.is_some_and(|n| n > most as u64) {
        return Err(Refused::TooLarge);
    }
    let mut buf = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| Refused::Broken)?;
        if let Ok(data) = frame.into_data() {
            total = total.saturating_add(data.len());
            if total > most {
                return Err(Refused::TooLarge);
            }
            if total <= limit {
                buf.extend_from_slice(&data);
            }
        }
    }
    if total > limit {
        return Err(Refused::TooLarge);
    }
    Ok(Bytes::from(buf))
}

/// Reads and drops up to [`DRAIN_SLACK`] bytes of a body that will not be used (a request
/// refused before its body was read), for at most `wait`: small bodies leave the
/// connection clean, so the client reads the answer instead of a reset.
pub(super) async fn discard_body(body: Body, wait: Duration) {
    let none = HeaderMap::new();
    let _ = tokio::time::timeout(wait, read_limited(&none, body, 0)).await;
}

impl AppState {
    /// Reads a request body of at most `limit` bytes within the body timeout: 413 past the
    /// limit, 408 if it does not arrive in time, 400 if it breaks off.
    pub(super) async fn read_body(
        &self,
        headers: &HeaderMap,
        body: Body,
        limit: usize,
    ) -> Result<Bytes, ApiError> {
        let wait = self.0.body_timeout;
        let m = self.metrics();
        match tokio::time::timeout(wait, read_limited(headers, body, limit)).await {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(Refused::TooLarge)) => {
                inc(&m.bodies_too_large);
                Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request_too_large",
                    format!("request body exceeds {limit} bytes"),
                ))
            }
            Ok(Err(Refused::Broken)) => {
                Err(ApiError::invalid_request("failed to read the request body"))
            }
            Err(_) => {
                inc(&m.body_timeouts);
                Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    format!("request body not received within {} s", wait.as_secs_f32()),
                ))
            }
        }
    }
}

/// The media type of a request (lower case, without parameters); `Err` if unreadable.
fn media_type(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get(CONTENT_TYPE) else {
        return Ok(None);
    };
    let v = v.to_str().map_err(|_| unsupported_media_type())?;
    Ok(Some(
        v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    ))
}

fn is_json(media_type: &str) -> bool {
    media_type == "application/json"
        || (media_type.starts_with("application/") && media_type.ends_with("+json"))
}

/// Parses a JSON (`application/json` or `application/*+json`) or
/// `application/x-www-form-urlencoded` body. Nothing else: a body without a content type,
/// or `text/plain`, is refused (415), so that another site cannot post one blind (those
/// need no CORS preflight).
pub(super) fn parse_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<T, ApiError> {
    match media_type(headers)?.as_deref() {
        Some("application/x-www-form-urlencoded") => serde_urlencoded::from_bytes(bytes)
            .map_err(|_| ApiError::invalid_request("malformed form body")),
        Some(t) if is_json(t) => parse_json(bytes),
        _ => Err(unsupported_media_type()),
    }
}

/// Parses a JSON body only (`application/json` or `application/*+json`): the sign-in
/// endpoint, which a cross-site form (urlencoded, no preflight) must not reach.
pub(super) fn parse_json_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<T, ApiError> {
    match media_type(headers)?.as_deref() {
        Some(t) if is_json(t) => parse_json(bytes),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected application/json",
        )),
    }
}

pub(super) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid_request(
            "request body is empty; expected a JSON object",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        // Never echo serde's message: it can quote (secret) input values.
        let what = match e.classify() {
            Category::Data => {
                "JSON body has the wrong shape (expected an object with string fields)"
            }
            _ => "malformed JSON body",
        };
        ApiError::invalid_request(format!("{what} (line {}, column {})", e.line(), e.column()))
    })
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "expected application/json or application/x-www-form-urlencoded",
    )
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    /// A streamed body of `chunks` × 64 KiB that counts the bytes the server pulled.
    fn counted(chunks: usize, pulled: Arc<AtomicUsize>) -> Body {
        let stream = futures_util::stream::iter((0..chunks).map(move |_| {
            pulled.fetch_add(64 * 1024, Ordering::Relaxed);
            Ok::<_, std::io::Error>(Bytes::from(vec![b'a'; 64 * 1024]))
        }));
        Body::from_stream(stream)
    }

    #[tokio::test]
    async fn a_body_past_its_limit_is_refused_after_the_slack_not_read_to_the_end() {
        let pulled = Arc::new(AtomicUsize::new(0));
        // 16 MiB streamed at a 64 KiB limit: refused once limit + 1 MiB was read.
        let body = counted(256, pulled.clone());
        let r = read_limited(&HeaderMap::new(), body, 64 * 1024).await;
        assert_eq!(r, Err(Refused::TooLarge));
        let read = pulled.load(Ordering::Relaxed);
        assert!(read <= 64 * 1024 + DRAIN_SLACK + 64 * 1024, "{read}");
        // Declared too large: refused before reading anything.
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, (16u64 << 20).into());
        let pulled = Arc::new(AtomicUsize::new(0));
        let r = read_limited(&headers, counted(256, pulled.clone()), 64 * 1024).await;
        assert_eq!(
            (r, pulled.load(Ordering::Relaxed)),
            (Err(Refused::TooLarge), 0)
        );
        // At the limit: read whole.
        let r = read_limited(&HeaderMap::new(), counted(1, pulled), 64 * 1024).await;
        assert_eq!(r.unwrap().len(), 64 * 1024);
    }

    #[test]
    fn only_json_and_form_bodies_are_parsed_and_sign_in_takes_json_only() {
        #[derive(serde::Deserialize)]
        struct T {
            #[allow(dead_code)]
            a: String,
        }
        let with = |ct: Option<&str>| {
            let mut h = HeaderMap::new();
            if let Some(ct) = ct {
                h.insert(CONTENT_TYPE, ct.parse().unwrap());
            }
            h
        };
        let json = br#"{"a":"x"}"#;
        for ct in [
            "application/json",
            "application/json; charset=utf-8",
            "application/merge-patch+json",
        ] {
            assert!(parse_body::<T>(&with(Some(ct)), json).is_ok(), "{ct}");
            assert!(parse_json_body::<T>(&with(Some(ct)), json).is_ok(), "{ct}");
        }
        let form = with(Some("application/x-www-form-urlencoded"));
        assert!(parse_body::<T>(&form, b"a=x").is_ok());
        assert_eq!(
            parse_json_body::<T>(&form, b"a=x").err().unwrap().status,
            415
        );
        for ct in [
            None,
            Some("text/plain"),
            Some("text/plain;charset=UTF-8"),
            Some("multipart/form-data"),
        ] {
            assert_eq!(
                parse_body::<T>(&with(ct), json).err().unwrap().status,
                415,
                "{ct:?}"
            );
        }
    }
}
