//! `GET|POST /logout` (OpenID Connect RP-Initiated Logout 1.0): ends the provider session
//! and sends the browser to a registered post-logout URI. With a valid `id_token_hint` the
//! request is answered at once; without one, the user confirms with a CSRF-protected form
//! first (§2: a page must not be able to sign the user out behind their back). Refresh
//! tokens are revoked at `/revoke`, not here.

use axum::body::Body;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{
    cookie_headers, error_page, forget_form_cookie, from_another_site, html, new_form_cookie,
    read_form, see_other, set_cookie, Provider,
};
use crate::oidc::authorize::Params;
use crate::oidc::form::Bound;
use crate::oidc::pages::{self, LogoutConfirm};
use crate::oidc::session;
use crate::oidc::{id_token, logout};
use crate::routes::{now_ms, AppState};

/// Where to go after signing out, or the error page to show instead.
fn destination(
    p: &Provider,
    params: &Params,
    hint_aud: Option<&str>,
) -> Result<Option<String>, Box<Response>> {
    logout::destination(&p.clients(), params, hint_aud)
        .map_err(|d| Box::new(error_page(StatusCode::BAD_REQUEST, &d)))
}

/// Ends the browser's provider session (if any) and answers with `to` or the signed-out
/// page, clearing the cookie.
async fn sign_out(st: &AppState, headers: &HeaderMap, to: Option<String>) -> Response {
    let p = &st.0.provider;
    if let Some(secret) = session::read(cookie_headers(headers), p.cookies.session()) {
        match st
            .0
            .store
            .end_provider_session(&session::secret_hash(&secret), now_ms())
            .await
        {
            Ok(true) => tracing::info!("provider session ended"),
            Ok(false) => {}
            Err(e) => {
                let e = crate::error::ApiError::store(e);
                return error_page(
                    e.status,
                    "Signing out is temporarily unavailable. Try again shortly.",
                );
            }
        }
    }
    let mut resp = match to {
        Some(uri) => see_other(&uri),
        None => html(StatusCode::OK, pages::signed_out(), None),
    };
    set_cookie(&mut resp, &p.cookies.set(p.cookies.session(), "", 0));
    resp
}

pub(super) async fn end_session(
    State(st): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let params =
        Params::new(url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned());
    let p = &st.0.provider;
    let hint = match params.get("id_token_hint") {
        Some(h) => match id_token::verify_hint(st.0.keys.ring(), h, &p.issuer) {
            Some(claims) => Some(claims),
            None => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "id_token_hint is not an ID token of this provider",
                )
            }
        },
        None => None,
    };
    let to = match destination(p, &params, hint.as_ref().map(|c| c.aud.as_str())) {
        Ok(to) => to,
        Err(page) => return *page,
    };
    if hint.is_some() {
        return sign_out(&st, &headers, to).await;
    }
    // No hint: ask first.
    let (cookie, set) = new_form_cookie(&st, &headers);
    let body = pages::logout_confirm(&LogoutConfirm {
        csrf_token: &st.form_key().csrf_token(&cookie, Bound::SignOut),
        client_id: params.get("client_id"),
        post_logout_redirect_uri: params.get("post_logout_redirect_uri"),
        state: params.get("state"),
    });
    let origin = to
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .map(|u| u.origin().ascii_serialization());
    let mut resp = html(StatusCode::OK, body, origin.as_deref());
    for c in set {
        set_cookie(&mut resp, &c);
    }
    resp
}

/// The confirmation form's submission.
pub(super) async fn confirmed(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let params = match read_form(&st, &headers, body).await {
        Ok(f) => f,
        Err(e) => return error_page(e.status, &e.description),
    };
    let p = &st.0.provider;
    let token = params.get("csrf_token");
    let cookie = match st.submitted_form(&headers, token, Bound::SignOut) {
        Some(c) if !from_another_site(&headers) => c,
        _ => {
            return error_page(
                StatusCode::FORBIDDEN,
                "This sign-out form has expired or did not come from this server.",
            )
        }
    };
    match destination(p, &params, None) {
        Ok(to) => {
            let mut resp = sign_out(&st, &headers, to).await;
            forget_form_cookie(&st, &mut resp, &cookie);
            resp
        }
        Err(page) => *page,
    }
}
