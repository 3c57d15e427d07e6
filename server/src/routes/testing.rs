//! `/test/*`: the fault queue, redirects and the 401 reporter (only with `--test-faults`).

use super::*;

fn faults(st: &AppState) -> &Faults {
    st.0.faults
        .as_ref()
        .expect("/test routes exist only with test faults on")
}

pub(super) async fn faults_get(State(st): State<AppState>) -> Response {
    no_store(Json(faults(&st).state()).into_response())
}

pub(super) async fn faults_post(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(&headers, body, AUTH_BODY_LIMIT).await?;
    let plan: FaultPlan = parse_json(&bytes)?;
    for f in &plan.refresh {
        if let Fault::Status { status } = f {
            if !(400..=599).contains(status) {
                return Err(ApiError::invalid_request(
                    "status faults need a 4xx or 5xx status",
                ));
            }
        }
    }
    tracing::info!(
        refresh = plan.refresh.len(),
        api_always_401 = plan.api_always_401,
        "test faults replaced"
    );
    faults(&st).replace(plan);
    Ok(no_store(Json(faults(&st).state()).into_response()))
}

#[derive(Deserialize)]
pub(super) struct RedirectTo {
    to: String,
}

/// `/test/redirect?to=URL`: 307 to a path on this server or to a loopback origin (never
/// anywhere else, even in tests).
pub(super) async fn test_redirect(Query(q): Query<RedirectTo>) -> Result<Response, ApiError> {
    let to = q.to;
    // Browsers drop tabs and newlines from URLs and read `\` as `/`, so `/\host` or `/\t/host`
    // would leave this origin: only visible ASCII, no backslash.
    let plain = to.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    let local_path = to.starts_with('/') && !to.starts_with("//");
    let loopback = to.split_once("://").is_some_and(|(scheme, rest)| {
        let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let origin = &to[..scheme.len() + 3 + host_end];
        is_loopback_origin(origin.as_bytes())
    });
    if !(plain && (local_path || loopback)) {
        return Err(ApiError::invalid_request(
            "`to` must be a path or a loopback http URL",
        ));
    }
    let location = HeaderValue::try_from(to)
        .map_err(|_| ApiError::invalid_request("`to` is not a valid header value"))?;
    let mut resp = StatusCode::TEMPORARY_REDIRECT.into_response();
    resp.headers_mut().insert(LOCATION, location);
    Ok(no_store(resp))
}

/// `/test/unauthorized`: 401 to everything, saying whether an `Authorization` header arrived.
/// Readable from any origin, including the opaque one (`Origin: null`) a request has after a
/// redirect from another origin.
pub(super) async fn test_unauthorized(headers: HeaderMap) -> Response {
    let body = serde_json::json!({
        "error": "invalid_token",
        "authorization_received": headers.contains_key(AUTHORIZATION),
    });
    let mut resp = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    resp.headers_mut()
        .insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    no_store(resp)
}

pub(super) async fn faults_delete(State(st): State<AppState>) -> Response {
    faults(&st).clear();
    no_store(Json(faults(&st).state()).into_response())
}
