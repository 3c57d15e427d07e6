//! The OpenID provider's endpoints: `/authorize` and its sign-in form (`authorize`), `/token`
//! (`token`), `/par`, `/revoke`, discovery (`meta`) and `/logout` (`logout`). Handlers parse
//! and answer; the rules are in [`crate::oidc`].
//!
//! Two routers: [`api_routes`] (JSON, behind the CORS layer: the SDK calls them from a
//! page) and [`page_routes`] (HTML navigations: no CORS, a strict CSP, never rewritten into
//! JSON errors).

use std::sync::RwLock;

use anyhow::Result;
use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use super::now_secs;
use super::{AppState, AUTH_BODY_LIMIT};
use crate::error::ApiError;
use crate::keys::{Alg, KeyRing, Purpose};
use crate::oidc::authorize::AuthRequest;
use crate::oidc::authorize::Params;
use crate::oidc::clients::Clients;
use crate::oidc::discovery::{
    AUTHORIZE, AUTHORIZE_LOGIN, END_SESSION, OAUTH_METADATA, OPENID_CONFIGURATION, PAR, REVOKE,
    TOKEN,
};
use crate::oidc::form::{self, Bound, FormCookie, FormKey, FORM_TTL_SECS};
use crate::oidc::pages;
use crate::oidc::session::{self, CookieNames};
use crate::store::Millis;
use crate::Config;

mod authorize;
mod logout;
mod meta;
mod token;

pub(super) use token::is_refresh_grant;

/// Default lifetime of a provider session (the sign-in cookie): one day.
pub const DEFAULT_PROVIDER_SESSION_TTL_SECS: u64 = 24 * 3600;

/// The provider's settings. Its keys are the key ring's (`Alg::RS256` signs ID tokens,
/// `Purpose::SignInForm` protects the sign-in form).
pub(super) struct Provider {
    issuer: String,
    clients: RwLock<Clients>,
    cookies: CookieNames,
    session_ttl_ms: Millis,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// Registers the clients; checks that the ring holds the provider's keys.
    pub(super) fn new(config: &Config, ring: &KeyRing) -> Result<Self> {
        let issuer = config.issuer();
        let clients = Clients::build(&config.clients, &config.post_logout, &issuer)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        ring.signer(Alg::RS256, now_secs())?;
        ring.secret(Purpose::SignInForm, now_secs())?;
        Ok(Provider {
            cookies: CookieNames::for_issuer(&issuer),
            issuer,
            clients: RwLock::new(clients),
            session_ttl_ms: i64::try_from(config.provider_session_ttl_secs.saturating_mul(1000))
                .unwrap_or(i64::MAX),
        })
    }

    /// The registered clients (read-locked).
    fn clients(&self) -> std::sync::RwLockReadGuard<'_, Clients> {
        self.clients.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl AppState {
    /// The form key that seals and issues CSRF tokens now.
    fn form_key(&self) -> FormKey {
        let ring = self.0.keys.ring();
        let secret = ring
            .secret(Purpose::SignInForm, now_secs())
            .expect("checked at start: the ring has a sign-in form secret");
        FormKey::new(secret)
    }

    /// Every form key (a form shown before a key rotation stays good).
    fn form_keys(&self) -> Vec<FormKey> {
        let ring = self.0.keys.ring();
        let secrets = ring.secrets(Purpose::SignInForm, now_secs());
        secrets.into_iter().map(FormKey::new).collect()
    }

    /// The cookie of a submitted form whose `csrf_token` is good: made by this server (any
    /// form key) for `bound` and the form cookie it names, which the browser sent.
    fn submitted_form(
        &self,
        headers: &HeaderMap,
        token: Option<&str>,
        bound: Bound<'_>,
    ) -> Option<FormCookie> {
        let cookie = form_cookie(self, headers, token)?;
        let keys = self.form_keys();
        keys.iter()
            .any(|k| k.csrf_ok(Some(&cookie), token, bound))
            .then_some(cookie)
    }

    fn open_form(&self, sealed: &str) -> Option<AuthRequest> {
        let now = now_secs();
        self.form_keys().iter().find_map(|k| k.open(sealed, now))
    }
}

/// The provider's JSON endpoints (CORS applies); with `--test-faults`, the testing layer's
/// refresh faults in front of `/token` and the run-time client registration.
pub(super) fn api_routes(state: &AppState, test_faults: bool) -> Router<AppState> {
    let mut token_route = post(token::token);
    if test_faults {
        let faults = super::testing::token_faults;
        token_route = token_route.layer(from_fn_with_state(state.clone(), faults));
    }
    let r = Router::new()
        .route(OPENID_CONFIGURATION, get(meta::discovery))
        .route(OAUTH_METADATA, get(meta::discovery))
        .route(TOKEN, token_route)
        .route(PAR, post(meta::par))
        .route(REVOKE, post(meta::revoke));
    if test_faults {
        r.route("/test/clients", post(meta::register_client))
    } else {
        r
    }
}

/// The provider's pages (no CORS).
pub(super) fn page_routes() -> Router<AppState> {
    Router::new()
        .route(
            AUTHORIZE,
            get(authorize::authorize).post(authorize::authorize),
        )
        .route(AUTHORIZE_LOGIN, post(authorize::login))
        .route(
            END_SESSION,
            get(logout::end_session).post(logout::confirmed),
        )
}

/// Reads an `application/x-www-form-urlencoded` body (RFC 6749 §3.2, RFC 9126 §2.1,
/// RFC 7009 §2.1) into [`Params`].
async fn read_form(st: &AppState, headers: &HeaderMap, body: Body) -> Result<Params, ApiError> {
    let bytes = st.read_body(headers, body, AUTH_BODY_LIMIT).await?;
    if !is_form(headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request",
            "expected an application/x-www-form-urlencoded body",
        ));
    }
    Ok(Params::new(
        url::form_urlencoded::parse(&bytes).into_owned(),
    ))
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// An HTML page with the pages' security headers; `form_origin` widens `form-action`.
fn html(status: StatusCode, body: String, form_origin: Option<&str>) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(csp) = HeaderValue::from_str(&pages::csp(form_origin)) {
        h.insert(HeaderName::from_static("content-security-policy"), csp);
    }
    for (name, value) in [
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
    ] {
        h.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    resp
}

/// The error page: a request that must not be redirected.
fn error_page(status: StatusCode, description: &str) -> Response {
    html(status, pages::error(description), None)
}

/// 303 to `location` (a URL the rules allowed).
fn see_other(location: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        h.insert(LOCATION, v);
    }
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// `uri` (a registered redirect URI) with `params` added to its query.
fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    match url::Url::parse(uri) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            u.into()
        }
        Err(_) => uri.to_owned(),
    }
}

/// Adds a `Set-Cookie` header.
fn set_cookie(resp: &mut Response, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(SET_COOKIE, v);
    }
}

/// The request's `Cookie` header values.
fn cookie_headers(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
}

/// `client_id` errors: 401 `invalid_client` for an unknown client (RFC 6749 §5.2).
fn invalid_client() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "unknown client_id",
    )
}

/// The registered `client_id` of a token or revocation request (public clients identify,
/// not authenticate, themselves: RFC 6749 §3.2.1), after refusing repeated parameters.
fn client_param<'p>(st: &AppState, p: &'p Params) -> Result<&'p str, ApiError> {
    if let Some(name) = p.first_repeated() {
        return Err(ApiError::invalid_request(format!(
            "parameter {name} given more than once"
        )));
    }
    let client_id = p
        .get("client_id")
        .ok_or_else(|| ApiError::invalid_request("client_id is required"))?;
    if st.0.provider.clients().get(client_id).is_none() {
        return Err(invalid_client());
    }
    Ok(client_id)
}

/// A new cookie for a form shown now, and its `Set-Cookie`s: the cookie, and the expiry
/// of the browser's oldest form cookies beyond [`form::MAX_PENDING_FORMS`].
fn new_form_cookie(st: &AppState, headers: &HeaderMap) -> (FormCookie, Vec<String>) {
    let names = st.0.provider.cookies;
    let pending = session::read_prefixed(cookie_headers(headers), names.form_prefix(), 64);
    let pending = pending
        .iter()
        .filter_map(|(id, value)| FormCookie::parse(id, value))
        .collect();
    let mut set: Vec<String> = form::to_expire(pending)
        .iter()
        .map(|id| names.set(&names.form(id), "", 0))
        .collect();
    let cookie = FormCookie::new(now_secs());
    set.push(form_cookie_set(st, &cookie));
    (cookie, set)
}

/// The `Set-Cookie` of form cookie `cookie`, living [`FORM_TTL_SECS`] from now.
fn form_cookie_set(st: &AppState, cookie: &FormCookie) -> String {
    let names = st.0.provider.cookies;
    let max_age = i64::try_from(FORM_TTL_SECS).unwrap_or(600);
    names.set(&names.form(&cookie.id), &cookie.value(), max_age)
}

/// The form cookie a submitted `csrf_token` names, if the browser sent it.
fn form_cookie(st: &AppState, headers: &HeaderMap, token: Option<&str>) -> Option<FormCookie> {
    let id = FormCookie::id_of(token?)?;
    let names = st.0.provider.cookies;
    let value = session::read(cookie_headers(headers), &names.form(id))?;
    FormCookie::parse(id, &value)
}

/// The `Set-Cookie` that ends a submitted form's cookie (its form is done).
fn forget_form_cookie(st: &AppState, resp: &mut Response, cookie: &FormCookie) {
    let names = st.0.provider.cookies;
    set_cookie(resp, &names.set(&names.form(&cookie.id), "", 0));
}

/// True if the browser says the request came from another site (Fetch Metadata
/// `Sec-Fetch-Site`: `cross-site`, or `same-site` from a sibling host). Our forms are
/// submitted from our own pages (`same-origin`); browsers without Fetch Metadata send
/// nothing, and the CSRF token still decides. Defence in depth for the form POSTs.
fn from_another_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .is_some_and(|v| v == "cross-site" || v == "same-site")
}

/// Test-only: the run-time client registration body.
#[derive(serde::Deserialize)]
struct ClientRegistration {
    client_id: String,
    redirect_uris: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
}
