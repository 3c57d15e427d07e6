//! The JSON error shape used by every endpoint: `{"error": "...", "error_description": "..."}`.

use axum::body::Body;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Marks a response produced by an injected test fault (not counted in metrics).
#[derive(Debug, Clone, Copy)]
pub struct Faulted;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    pub www_authenticate: Option<String>,
    /// Seconds for a `Retry-After` header (429, 503).
    pub retry_after: Option<u64>,
    pub faulted: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        ApiError {
            status,
            error,
            description: description.into(),
            www_authenticate: None,
            retry_after: None,
            faulted: false,
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    /// 401 for a request without (bearer) credentials: `WWW-Authenticate: Bearer realm=...`
    /// without an error code (RFC 6750 §3.1).
    pub fn missing_token() -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "bearer access token required",
        );
        e.www_authenticate = Some(r#"Bearer realm="rotafetch""#.to_owned());
        e
    }

    /// 401 `invalid_token` with a matching `WWW-Authenticate` challenge.
    pub fn invalid_token(description: &str) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "invalid_token", description);
        e.www_authenticate = Some(format!(
            r#"Bearer realm="rotafetch", error="invalid_token", error_description="{}""#,
            description.replace(['"', '\\'], "'")
        ));
        e
    }

    /// 400 `invalid_dpop_proof` at the token endpoint (RFC 9449 §5).
    pub fn invalid_dpop_proof(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_dpop_proof", description)
    }

    /// 400 `use_dpop_nonce` at the token endpoint (RFC 9449 §8); the `DPoP-Nonce` header is
    /// added to every response while nonces are on.
    pub fn use_dpop_nonce() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "use_dpop_nonce",
            "DPoP proof must carry the server nonce from the DPoP-Nonce response header",
        )
    }

    /// 401 at a resource with a `WWW-Authenticate: DPoP error="..."` challenge (RFC 9449
    /// §7.1): `invalid_token`, `invalid_dpop_proof` or `use_dpop_nonce`.
    pub fn dpop_challenge(error: &'static str, description: &str) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, error, description);
        e.www_authenticate = Some(format!(
            r#"DPoP error="{error}", error_description="{}", algs="{}""#,
            description.replace(['"', '\\'], "'"),
            crate::dpop::ALGS
        ));
        e
    }

    /// A server-side failure; the detail is logged, never sent.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {err}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal server error",
        )
    }

    /// A store failure: 503 `temporarily_unavailable` if the database could not be reached
    /// (nothing was decided; the client keeps its token and retries), otherwise a 500. The
    /// detail is logged, never sent.
    pub fn store(err: anyhow::Error) -> Self {
        if !crate::store::is_unavailable(&err) {
            return Self::internal(format!("{err:#}"));
        }
        tracing::warn!("{err:#}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the session store is temporarily unavailable; retry shortly",
        )
    }

    /// Adds `Retry-After: secs`.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn faulted(mut self) -> Self {
        self.faulted = true;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": self.error,
            "error_description": self.description,
        });
        let mut resp = (self.status, axum::Json(body)).into_response();
        let h = resp.headers_mut();
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(v) = self
            .www_authenticate
            .and_then(|v| HeaderValue::from_str(&v).ok())
        {
            h.insert(WWW_AUTHENTICATE, v);
        }
        if let Some(secs) = self.retry_after {
            h.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.faulted {
            resp.extensions_mut().insert(Faulted);
        }
        resp
    }
}

/// The `error` code used when a non-JSON error response is rewritten.
fn code_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "invalid_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        413 => "request_too_large",
        415 => "unsupported_media_type",
        431 => "request_header_fields_too_large",
        s if s < 500 => "invalid_request",
        503 => "temporarily_unavailable",
        _ => "server_error",
    }
}

/// Middleware: rewrites any 4xx/5xx response that is not already JSON (axum's own 404/405,
/// static-file errors, a caught panic, ...) into the JSON error shape, keeping its headers.
pub async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let (mut parts, _body) = resp.into_parts();
    let body = serde_json::json!({
        "error": code_for(status),
        "error_description": status.canonical_reason().unwrap_or("error").to_lowercase(),
    })
    .to_string();
    parts.headers.remove(CONTENT_LENGTH);
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, Body::from(body))
}
