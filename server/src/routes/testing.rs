//! The testing layer, mounted only with `--test-faults`: the `/test/*` routes (the fault
//! queue, redirects, the 401 reporter) and the middleware that applies the scripted faults to
//! the refresh (`POST /auth/refresh`, and the refresh grant at `POST /token`) and `/api/*`
//! before (or instead of) their real handlers.

use super::auth::{answer_refresh, Refresh, RefreshCall};
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
    let bytes = st.read_body(&headers, body, AUTH_BODY_LIMIT).await?;
    let plan: FaultPlan = parse_json(&bytes)?;
    for f in &plan.refresh {
        match f {
            Fault::Status { status } if !(400..=599).contains(status) => {
                return Err(ApiError::invalid_request(
                    "status faults need a 4xx or 5xx status",
                ));
            }
            Fault::Hang { ms } | Fault::Delay { ms } if *ms > crate::faults::MAX_WAIT_MS => {
                return Err(ApiError::invalid_request(format!(
                    "hang and delay faults wait at most {} ms",
                    crate::faults::MAX_WAIT_MS
                )));
            }
            _ => {}
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

/// Closes the calling connection without a response. Never returns when running under
/// [`crate::serve`].
async fn drop_connection(kill: Option<Extension<ConnKill>>) -> Response {
    match kill {
        Some(Extension(ConnKill(notify))) => {
            notify.notify_one();
            std::future::pending::<Response>().await
        }
        // Not behind our connection loop (e.g. a unit test calling the router directly):
        // a body that fails makes hyper abort the connection.
        None => Response::new(Body::from_stream(futures_util::stream::once(async {
            Err::<Bytes, _>(std::io::Error::other("connection dropped (test fault)"))
        }))),
    }
}

fn fault_body(status: StatusCode, content_type: &'static str, body: Body) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.extensions_mut().insert(crate::error::Faulted);
    no_store(resp)
}

/// Middleware on `POST /auth/refresh`: pops the next scripted fault and applies it around
/// (or instead of) the real refresh.
pub(super) async fn refresh_faults(
    State(st): State<AppState>,
    kill: Option<Extension<ConnKill>>,
    req: Request,
    next: Next,
) -> Response {
    let fault = faults(&st).pop_refresh();
    if let Some(f) = &fault {
        tracing::info!(fault = ?f, "applying injected refresh fault");
    }
    match fault {
        None => next.run(req).await,
        Some(Fault::Status { status }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let code = match status.as_u16() {
                400..=499 if status != StatusCode::TOO_MANY_REQUESTS => "invalid_request",
                500 => "server_error",
                _ => "temporarily_unavailable",
            };
            let description = format!("injected fault: status {}", status.as_u16());
            ApiError::new(status, code, description)
                .faulted()
                .into_response()
        }
        Some(Fault::Drop) => drop_connection(kill).await,
        Some(Fault::Hang { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            drop_connection(kill).await
        }
        Some(Fault::MalformedJson) => fault_body(
            StatusCode::OK,
            "application/json",
            Body::from(r#"{"access_token": "x", "#),
        ),
        Some(Fault::NonJson) => {
            fault_body(StatusCode::OK, "text/html", Body::from("<html>ok</html>"))
        }
        Some(Fault::NoAccessToken) => {
            let body =
                serde_json::json!({"token_type": "Bearer", "expires_in": st.0.access_ttl_secs});
            let body = Body::from(body.to_string());
            fault_body(StatusCode::OK, "application/json", body)
        }
        Some(Fault::HugeBody) => {
            let mut s = String::with_capacity(10 * 1024 * 1024 + 64);
            s.push_str(r#"{"access_token":""#);
            s.extend(std::iter::repeat_n('a', 10 * 1024 * 1024));
            s.push_str(r#"","token_type":"Bearer","expires_in":60}"#);
            fault_body(StatusCode::OK, "application/json", Body::from(s))
        }
        Some(Fault::Delay { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            next.run(req).await
        }
        Some(Fault::NoRefreshToken) => {
            let (mut parts, body) = req.into_parts();
            let Ok(client) = ClientAddr::from_request_parts(&mut parts, &st).await;
            let uri = parts
                .extensions
                .get::<OriginalUri>()
                .map_or(&parts.uri, |u| &u.0);
            let call = RefreshCall {
                client,
                method: &parts.method,
                uri,
                headers: &parts.headers,
            };
            answer_refresh(&st, call, body, Refresh::CheckOnly).await
        }
        Some(Fault::LostResponse) => {
            // The refresh really happens (and commits); only its answer is lost.
            drop(next.run(req).await);
            drop_connection(kill).await
        }
    }
}

/// Middleware on `POST /token`: the refresh faults apply to its refresh grant too (an SDK
/// given an `issuer` refreshes there), never to the authorization code grant. The body is
/// read (within the usual limit) only while faults are queued, to tell the grants apart.
pub(super) async fn token_faults(
    State(st): State<AppState>,
    kill: Option<Extension<ConnKill>>,
    req: Request,
    next: Next,
) -> Response {
    if !faults(&st).refresh_pending() {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match st.read_body(&parts.headers, body, AUTH_BODY_LIMIT).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let refresh = provider::is_refresh_grant(&parts.headers, &bytes);
    let req = Request::from_parts(parts, Body::from(bytes));
    if refresh {
        refresh_faults(State(st), kill, req, next).await
    } else {
        next.run(req).await
    }
}

/// Middleware on `/api/*`: the scripted 401s (`api_always_401`, `api_nonce_challenges`),
/// answered before the real handler (a small body is dropped first, as a handler's 401
/// would).
pub(super) async fn api_faults(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let f = faults(&st);
    let error = if f.api_always_401() {
        // Counted like any 401 the API sends: the loop-guard tests count them.
        ApiError::invalid_token("injected fault: api_always_401")
    } else if f.take_api_nonce_challenge() {
        ApiError::dpop_challenge("use_dpop_nonce", "injected fault: api_nonce_challenges")
    } else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    drop(parts);
    discard_body(body, Duration::from_secs(1)).await;
    error.into_response()
}
