//! CORS: loopback origins by default, or the `--cors-origin` list.

use std::time::Duration;

use anyhow::{Context, Result};
use axum::http::header::WWW_AUTHENTICATE;
use axum::http::{HeaderValue, Method};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use super::dpop::DPOP_NONCE;

/// `http://127.0.0.1[:port]`, `http://localhost[:port]` or `http://[::1][:port]`.
pub fn is_loopback_origin(origin: &[u8]) -> bool {
    let Ok(origin) = std::str::from_utf8(origin) else {
        return false;
    };
    for host in ["http://127.0.0.1", "http://localhost", "http://[::1]"] {
        if let Some(rest) = origin.strip_prefix(host) {
            if rest.is_empty() {
                return true;
            }
            if let Some(port) = rest.strip_prefix(':') {
                return !port.is_empty()
                    && port.len() <= 5
                    && port.bytes().all(|b| b.is_ascii_digit());
            }
        }
    }
    false
}

/// `test_faults` also lets in the opaque origin `null`: a request that a redirect took to
/// another origin carries it (the browser taints the origin; WebKit preflights it), and the
/// redirect tests need that other origin to accept anything, as a hostile server would.
pub(super) fn cors_layer(origins: &[String], test_faults: bool) -> Result<CorsLayer> {
    let allow_origin = if origins.is_empty() {
        AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            is_loopback_origin(origin.as_bytes()) || (test_faults && origin == "null")
        })
    } else if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let list = origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o.trim_end_matches('/'))
                    .with_context(|| format!("invalid CORS origin {o:?}"))
            })
            .collect::<Result<Vec<_>>>()?;
        AllowOrigin::list(list)
    };
    Ok(CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers([
            WWW_AUTHENTICATE,
            axum::http::HeaderName::from_static(DPOP_NONCE),
        ])
        .max_age(Duration::from_secs(600)))
}
