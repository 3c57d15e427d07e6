//! Static file mounts (`--www`, `--pkg`, `--static`).

use anyhow::Result;
use axum::body::Body;
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware;
use axum::response::Response;
use axum::Router;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

/// Validates a `--static` URL path: `/name[/more]`, not shadowing the API.
pub fn normalize_mount(path: &str) -> Result<String> {
    let trimmed = path.trim_end_matches('/');
    let p = if trimmed.is_empty() { "/" } else { trimmed };
    anyhow::ensure!(
        p.starts_with('/'),
        "static mount path {path:?} must start with '/'"
    );
    anyhow::ensure!(
        !p.contains(['{', '}', '*', '?', '#']),
        "static mount path {path:?} contains reserved characters"
    );
    for reserved in ["/auth", "/api", "/test", "/metrics", "/.well-known"] {
        anyhow::ensure!(
            p != reserved && !p.starts_with(&format!("{reserved}/")),
            "static mount path {path:?} would shadow {reserved}"
        );
    }
    Ok(p.to_owned())
}

pub(super) fn static_files(dir: &std::path::Path) -> Router {
    use tower::Layer as _;
    let files =
        SetResponseHeaderLayer::overriding(CACHE_CONTROL, HeaderValue::from_static("no-store"))
            .layer(ServeDir::new(dir).append_index_html_on_directories(true));
    Router::new()
        .fallback_service(files)
        .layer(middleware::map_response(static_not_found))
}

/// `ServeDir` answers 500 for paths no file can have (e.g. `HEAD /%00`: a NUL byte in the
/// name). To a client those are simply not found.
async fn static_not_found(mut res: Response) -> Response {
    if res.status().is_server_error() {
        *res.status_mut() = StatusCode::NOT_FOUND;
        *res.body_mut() = Body::empty();
    }
    res
}
