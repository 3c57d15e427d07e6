//! `GET|POST /authorize` (the authorization endpoint) and `POST /authorize/login` (its
//! sign-in form): the request is validated, a provider session answers it at once, or the
//! form is shown; a signed-in user is sent back to the client with a code.

use axum::body::Body;
use axum::extract::{OriginalUri, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;

use super::{
    cookie_headers, error_page, forget_form_cookie, form_cookie_set, from_another_site, html,
    new_form_cookie, read_form, see_other, set_cookie, with_query, Provider,
};
use crate::metrics::inc;
use crate::oidc::authorize::{
    front_channel, AuthRequest, AuthorizeError, FrontChannel, Params, Prompt,
};
use crate::oidc::code::{self, CodeGrant};
use crate::oidc::form::{Bound, FormCookie};
use crate::oidc::pages::{self, LoginForm};
use crate::oidc::session::{self, ProviderSession};
use crate::routes::{now_ms, now_secs, AppState, ClientAddr, SignInError};

/// Longest accepted username and password (as at `/auth/login`).
const MAX_USERNAME: usize = 256;
const MAX_PASSWORD: usize = 4096;

/// A store failure on a page: 503 while the database is unreachable, else 500; no detail.
fn store_failure(e: anyhow::Error) -> Response {
    let e = crate::error::ApiError::store(e);
    error_page(
        e.status,
        "The sign-in service is temporarily unavailable. Try again shortly.",
    )
}

/// The answer to an authorization error: an error page, or a redirect to the client.
fn refuse(p: &Provider, e: AuthorizeError) -> Response {
    match e {
        AuthorizeError::Page { description, .. } => {
            error_page(StatusCode::BAD_REQUEST, &description)
        }
        AuthorizeError::Redirect {
            redirect_uri,
            state,
            error,
            description,
        } => {
            let mut q = vec![
                ("error", error),
                ("error_description", description.as_str()),
            ];
            if let Some(s) = &state {
                q.push(("state", s));
            }
            q.push(("iss", &p.issuer));
            see_other(&with_query(&redirect_uri, &q))
        }
    }
}

pub(super) async fn authorize(
    State(st): State<AppState>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let params = if method == Method::POST {
        match read_form(&st, &headers, body).await {
            Ok(p) => p,
            Err(e) => return error_page(e.status, &e.description),
        }
    } else {
        Params::new(url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned())
    };
    let p = &st.0.provider;
    let front = front_channel(&params, &p.clients());
    let req = match front {
        Ok(FrontChannel::Direct(req)) => req,
        Ok(FrontChannel::Pushed { client_id, handle }) => {
            match st.0.store.take_par(&handle, &client_id, now_ms()).await {
                Ok(Ok(req)) => req,
                Ok(Err(why)) => return error_page(StatusCode::BAD_REQUEST, why),
                Err(e) => return store_failure(e),
            }
        }
        Err(e) => return refuse(p, e),
    };
    // A usable provider session answers at once.
    let sessions = &p.cookies;
    if let Some(secret) = session::read(cookie_headers(&headers), sessions.session()) {
        let hash = session::secret_hash(&secret);
        match st.0.store.provider_session(&hash, now_ms()).await {
            Ok(Some(s)) if session::usable(&s, &req, now_ms()) => {
                return issue_code(&st, &req, &s).await;
            }
            Ok(_) => {}
            Err(e) => return store_failure(e),
        }
    }
    if req.prompt == Prompt::None {
        return refuse(
            p,
            AuthorizeError::Redirect {
                redirect_uri: req.redirect_uri.clone(),
                state: req.state.clone(),
                error: "login_required",
                description: "the user is not signed in".into(),
            },
        );
    }
    let shown = Shown {
        username: "",
        error: None,
        status: StatusCode::OK,
    };
    login_form(&st, &headers, &req, shown, None)
}

/// What the sign-in form shows.
struct Shown<'a> {
    /// The username to prefill after a failed attempt.
    username: &'a str,
    error: Option<&'a str>,
    status: StatusCode,
}

/// The sign-in form for `req`, with a new form cookie, or again with `submitted`, the
/// cookie of the form just submitted (its lifetime renewed): the form shown before stays
/// good too (a back button), and a browser gains no cookie per failed attempt.
fn login_form(
    st: &AppState,
    headers: &HeaderMap,
    req: &AuthRequest,
    shown: Shown<'_>,
    submitted: Option<&FormCookie>,
) -> Response {
    let (cookie, set) = match submitted {
        Some(c) => (c.clone(), vec![form_cookie_set(st, c)]),
        None => new_form_cookie(st, headers),
    };
    let key = st.form_key();
    let request = key.seal(req, now_secs());
    let body = pages::login(&LoginForm {
        client_id: &req.client_id,
        csrf_token: &key.csrf_token(&cookie, Bound::SignIn(&request)),
        request: &request,
        username: shown.username,
        error: shown.error,
    });
    let origin = url::Url::parse(&req.redirect_uri)
        .map(|u| u.origin().ascii_serialization())
        .ok();
    let mut resp = html(shown.status, body, origin.as_deref());
    for c in set {
        set_cookie(&mut resp, &c);
    }
    resp
}

/// Issues a code for `req` to the signed-in `session` and redirects to the client.
async fn issue_code(st: &AppState, req: &AuthRequest, session: &ProviderSession) -> Response {
    let p = &st.0.provider;
    let (code, hash) = code::new_code();
    let grant = CodeGrant {
        client_id: req.client_id.clone(),
        redirect_uri: req.redirect_uri.clone(),
        code_challenge: req.code_challenge.clone(),
        dpop_jkt: req.dpop_jkt.clone(),
        nonce: req.nonce.clone(),
        scope: req.scope.clone(),
        user_id: session.user_id,
        session_id: session.id.clone(),
        auth_time: session.auth_time,
    };
    let now = now_ms();
    if let Err(e) =
        st.0.store
            .put_code(&hash, &grant, now + code::CODE_TTL_MS)
            .await
    {
        return store_failure(e);
    }
    inc(&st.0.metrics.codes_issued);
    tracing::info!(client_id = %req.client_id, sid = %session.id, dpop = req.dpop_jkt.is_some(), "authorization code issued");
    let mut q = vec![("code", code.as_str())];
    if let Some(s) = &req.state {
        q.push(("state", s));
    }
    q.push(("iss", &p.issuer));
    see_other(&with_query(&req.redirect_uri, &q))
}

pub(super) async fn login(
    State(st): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let p = &st.0.provider;
    let form = match read_form(&st, &headers, body).await {
        Ok(f) => f,
        Err(e) => return error_page(e.status, &e.description),
    };
    let stale = "This sign-in form has expired or did not come from this server. \
                 Go back to the application and sign in again.";
    if form.first_repeated().is_some() {
        return error_page(
            StatusCode::BAD_REQUEST,
            "a form field was sent more than once",
        );
    }
    if from_another_site(&headers) {
        tracing::info!("sign-in form refused: posted from another site (Sec-Fetch-Site)");
        return error_page(StatusCode::FORBIDDEN, stale);
    }
    let sealed = form.get("request").unwrap_or("");
    let bound = Bound::SignIn(sealed);
    let Some(cookie) = st.submitted_form(&headers, form.get("csrf_token"), bound) else {
        tracing::info!("sign-in form refused: CSRF token missing or not this browser's form's");
        return error_page(StatusCode::FORBIDDEN, stale);
    };
    let Some(req) = st.open_form(sealed) else {
        return error_page(StatusCode::BAD_REQUEST, stale);
    };
    // The client may have changed since the form was shown (run-time registration).
    let still_registered = p
        .clients()
        .get(&req.client_id)
        .is_some_and(|c| c.allows_redirect(&req.redirect_uri));
    if !still_registered {
        return error_page(
            StatusCode::BAD_REQUEST,
            "redirect_uri is not registered for this client",
        );
    }
    let username = form.get("username").unwrap_or("");
    let password = form.get("password").unwrap_or("");
    // The form again, with a message (and a Retry-After when there is a wait).
    let again = |msg: &str, status: StatusCode, retry_after: Option<u64>| {
        let shown = Shown {
            username,
            error: Some(msg),
            status,
        };
        let mut r = login_form(&st, &headers, &req, shown, Some(&cookie));
        if let Some(v) = retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
            r.headers_mut().insert(RETRY_AFTER, v);
        }
        r
    };
    let invalid = "Invalid username or password.";
    if username.is_empty() || password.is_empty() {
        return again(
            "Enter your username and password.",
            StatusCode::BAD_REQUEST,
            None,
        );
    }
    if username.len() > MAX_USERNAME || password.len() > MAX_PASSWORD {
        return again(invalid, StatusCode::UNAUTHORIZED, None);
    }
    // The one sign-in check of every surface: throttled per account and per address,
    // argon2 behind the hash gate, counted in rotafetch_logins_total.
    let user = match st.check_password(username, password, client).await {
        Ok(user) => user,
        Err(SignInError::InvalidCredentials) => {
            tracing::info!("sign-in form: invalid credentials");
            return again(invalid, StatusCode::UNAUTHORIZED, None);
        }
        Err(SignInError::Throttled {
            retry_after_secs: s,
        }) => {
            let msg = format!("Too many failed attempts. Try again in {s} seconds.");
            return again(&msg, StatusCode::TOO_MANY_REQUESTS, Some(s));
        }
        Err(SignInError::Busy) => {
            let msg = "The sign-in service is busy. Try again in a moment.";
            return again(msg, StatusCode::SERVICE_UNAVAILABLE, Some(1));
        }
        Err(SignInError::Store(e)) => return store_failure(e),
        Err(SignInError::Internal(e)) => {
            let e = crate::error::ApiError::internal(e);
            return error_page(e.status, "The sign-in service failed. Try again later.");
        }
    };
    let now = now_ms();
    let (id, secret, hash) = session::new_session();
    let s = ProviderSession {
        id,
        user_id: user.id,
        auth_time: now,
    };
    if let Err(e) =
        st.0.store
            .create_provider_session(&s, &hash, now.saturating_add(p.session_ttl_ms))
            .await
    {
        return store_failure(e);
    }
    tracing::info!(user_id = user.id, sid = %s.id, "signed in with the form");
    let mut resp = issue_code(&st, &req, &s).await;
    if resp.status() == StatusCode::SEE_OTHER {
        let max_age = p.session_ttl_ms / 1000;
        set_cookie(
            &mut resp,
            &p.cookies.set(p.cookies.session(), &secret, max_age),
        );
        forget_form_cookie(&st, &mut resp, &cookie);
    }
    resp
}
