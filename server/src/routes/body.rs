//! Request bodies: reading them under a size limit and parsing JSON or form bodies.

use axum::body::{Body, Bytes};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use http_body_util::BodyExt as _;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Oversized bodies up to this size are read and discarded before answering 413, so the
/// client sees the response instead of a connection reset.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

/// Reads a request body of at most `limit` bytes. Larger bodies (up to [`DRAIN_LIMIT`]) are
/// drained and answered with 413.
pub(super) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!("request body exceeds {limit} bytes"),
        )
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_LIMIT as u64) {
        return Err(too_large());
    }
    let mut body = body;
    let mut buf = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|_| ApiError::invalid_request("failed to read the request body"))?;
        if let Ok(data) = frame.into_data() {
            total = total.saturating_add(data.len());
            if total > DRAIN_LIMIT {
                return Err(too_large());
            }
            if total <= limit {
                buf.extend_from_slice(&data);
            }
        }
    }
    if total > limit {
        return Err(too_large());
    }
    Ok(Bytes::from(buf))
}

/// Parses a JSON (`application/json`, `*+json`, `text/plain` or no content type) or
/// `application/x-www-form-urlencoded` body.
pub(super) fn parse_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<T, ApiError> {
    let media_type = match headers.get(CONTENT_TYPE) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| unsupported_media_type())?
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase(),
        ),
    };
    match media_type.as_deref() {
        Some("application/x-www-form-urlencoded") => serde_urlencoded::from_bytes(bytes)
            .map_err(|_| ApiError::invalid_request("malformed form body")),
        None | Some("application/json") | Some("text/plain") => parse_json(bytes),
        Some(t) if t.starts_with("application/") && t.ends_with("+json") => parse_json(bytes),
        Some(_) => Err(unsupported_media_type()),
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
