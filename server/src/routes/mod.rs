//! HTTP routing: the shared state, body parsing, the router, static files and CORS. The
//! handlers live by concern in `auth` (/auth/*), `api` (/api/*, JWKS, metrics) and `testing`
//! (/test/*, only with `--test-faults`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, OriginalUri, Query, Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE,
    LOCATION, PRAGMA, WWW_AUTHENTICATE,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Extension, Json, Router};
use base64::Engine as _;
use http_body_util::BodyExt as _;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::dpop::{self, Nonces, Proof, ProofError};
use crate::error::{json_errors, ApiError};
use crate::faults::{Fault, FaultPlan, Faults};
use crate::metrics::{inc, Metrics};
use crate::store::{
    self, JtiOutcome, Millis, Policy, RevokeOutcome, RotateOutcome, Session, Store,
};
use crate::tokens::{random_bytes, random_id, Claims, Keys, RefreshToken};
use crate::{Config, ConnKill};

mod api;
mod auth;
mod testing;

use api::{count_api, echo, jwks, me, metrics};
use auth::{login, logout, refresh};
use testing::{faults_delete, faults_get, faults_post, test_redirect, test_unauthorized};

/// Body limit for `/auth/*` and `/test/*`.
pub const AUTH_BODY_LIMIT: usize = 64 * 1024;
/// Body limit for `/api/*`.
pub const API_BODY_LIMIT: usize = 1024 * 1024;
/// Oversized bodies up to this size are read and discarded before answering 413, so the
/// client sees the response instead of a connection reset.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;
/// Refresh tokens we issue are 43 characters; anything much longer cannot be ours.
const MAX_TOKEN_LEN: usize = 512;

fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Shared state of the server.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    store: Arc<dyn Store>,
    keys: Keys,
    metrics: Metrics,
    faults: Option<Faults>,
    policy: Policy,
    access_ttl_secs: u64,
    /// Verified against when the user does not exist, so that unknown users take as long as
    /// wrong passwords.
    dummy_hash: String,
    dpop: DpopSettings,
}

/// DPoP settings (see [`crate::dpop`]).
#[derive(Debug)]
struct DpopSettings {
    /// Server nonces, if required (`--dpop-nonce`).
    nonces: Option<Nonces>,
    /// `--public-url` (normalized, without a trailing slash).
    public_url: Option<String>,
    /// `--dpop-jti-cap`.
    jti_cap: u64,
}

/// The `DPoP-Nonce` response header.
pub(crate) const DPOP_NONCE: &str = "dpop-nonce";

/// Why a request's DPoP proof was not accepted.
#[derive(Debug)]
enum ProofFailure {
    Proof(ProofError),
    /// The replay cache is at its bound.
    CacheFull,
    Store(anyhow::Error),
}

impl ProofFailure {
    /// The answer at the token endpoint: 400 `invalid_dpop_proof` / `use_dpop_nonce`.
    fn at_token_endpoint(self) -> ApiError {
        match self {
            ProofFailure::Proof(ProofError::Invalid(d)) => ApiError::invalid_dpop_proof(d),
            ProofFailure::Proof(ProofError::UseNonce) => ApiError::use_dpop_nonce(),
            ProofFailure::CacheFull => replay_cache_full(),
            ProofFailure::Store(e) => ApiError::store(e),
        }
    }

    /// The answer at a resource: 401 with a `WWW-Authenticate: DPoP` challenge.
    fn at_resource(self) -> ApiError {
        match self {
            ProofFailure::Proof(ProofError::Invalid(d)) => {
                ApiError::dpop_challenge("invalid_dpop_proof", &d)
            }
            ProofFailure::Proof(ProofError::UseNonce) => ApiError::dpop_challenge(
                "use_dpop_nonce",
                "DPoP proof must carry the server nonce from the DPoP-Nonce response header",
            ),
            ProofFailure::CacheFull => replay_cache_full(),
            ProofFailure::Store(e) => ApiError::store(e),
        }
    }
}

fn replay_cache_full() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "too many recent DPoP proofs; retry shortly",
    )
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("keys", &self.0.keys)
            .field("policy", &self.0.policy)
            .field("access_ttl_secs", &self.0.access_ttl_secs)
            .finish_non_exhaustive()
    }
}

fn hash_password(password: &str) -> Result<String> {
    let salt =
        SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))?
        .to_string())
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

impl AppState {
    /// Opens the store, runs migrations, loads (or creates) the keys and the demo user.
    pub async fn new(config: &Config) -> Result<Self> {
        anyhow::ensure!(
            config.access_ttl_secs >= 1,
            "access TTL must be >= 1 second"
        );
        let store = store::open(&config.db).await?;
        Self::with_store(config, store).await
    }

    /// Like [`AppState::new`] with a caller-provided store.
    pub async fn with_store(config: &Config, store: Arc<dyn Store>) -> Result<Self> {
        let now = now_ms();
        let keys = Keys::load_or_create(store.as_ref(), now).await?;
        if config.demo_user && store.user_by_name("demo").await?.is_none() {
            let hash = hash_password("demo")?;
            if store.create_user("demo", &hash, now).await?.is_some() {
                tracing::info!("created demo user 'demo'");
            }
        }
        let nonces = if config.dpop_nonce {
            let key = store
                .get_or_init_secret("dpop_nonce_key", &random_bytes::<32>(), now)
                .await?;
            let key: [u8; 32] = key
                .as_slice()
                .try_into()
                .context("stored DPoP nonce key has the wrong length")?;
            Some(Nonces::new(key, config.dpop_nonce_period_secs))
        } else {
            None
        };
        let public_url = match &config.public_url {
            Some(u) => Some(
                dpop::normalize_htu(u)
                    .with_context(|| format!("public URL {u:?} is not an absolute http(s) URL"))?
                    .trim_end_matches('/')
                    .to_owned(),
            ),
            None => None,
        };
        let secs_ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
        Ok(AppState(Arc::new(Inner {
            store,
            keys,
            metrics: Metrics::default(),
            faults: config.test_faults.then(Faults::default),
            policy: Policy {
                session_ttl_ms: secs_ms(config.session_ttl_secs),
                idle_ttl_ms: secs_ms(config.idle_ttl_secs),
                reuse_grace_ms: secs_ms(config.reuse_grace_secs),
            },
            access_ttl_secs: config.access_ttl_secs,
            dummy_hash: hash_password(&random_id())?,
            dpop: DpopSettings {
                nonces,
                public_url,
                jti_cap: config.dpop_jti_cap.max(1),
            },
        })))
    }

    /// The store, e.g. to add users.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.0.store
    }

    /// Creates a user with an argon2 hash of `password`; `Ok(false)` if the name is taken.
    pub async fn add_user(&self, username: &str, password: &str) -> Result<bool> {
        let hash = hash_password(password)?;
        Ok(self
            .0
            .store
            .create_user(username, &hash, now_ms())
            .await?
            .is_some())
    }

    /// Deletes long-dead families (and their tokens) once an hour, and expired DPoP replay
    /// cache entries every 30 seconds.
    pub(crate) async fn prune_periodically(self) {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        let mut jti_tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = jti_tick.tick() => {
                    match self.0.store.prune_dpop_jti(now_ms()).await {
                        Ok(n) if n > 0 => tracing::debug!(entries = n, "pruned DPoP replay cache"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!("pruning the DPoP replay cache failed: {e:#}"),
                    }
                    continue;
                }
            }
            let res = self
                .0
                .store
                .prune(now_ms(), &self.0.policy, 24 * 3600 * 1000)
                .await;
            match res {
                Ok(n) if n > 0 => tracing::info!(families = n, "pruned ended sessions"),
                Ok(_) => {}
                Err(e) => tracing::warn!("pruning failed: {e:#}"),
            }
        }
    }

    /// An access token; with `jkt` (a DPoP-bound family) it carries `cnf.jkt`.
    fn issue_access(&self, user_id: i64, sid: &str, jkt: Option<&str>) -> Result<String, ApiError> {
        self.0
            .keys
            .issue_access_bound(user_id, sid, jkt, now_secs(), self.0.access_ttl_secs)
            .map_err(ApiError::internal)
    }

    /// The token endpoint's success body; `token_type` is `DPoP` for a bound family.
    fn token_response(
        &self,
        access: String,
        refresh: Option<RefreshToken>,
        bound: bool,
    ) -> Response {
        let mut body = serde_json::json!({
            "access_token": access,
            "token_type": if bound { "DPoP" } else { "Bearer" },
            "expires_in": self.0.access_ttl_secs,
        });
        if let Some(r) = refresh {
            body["refresh_token"] = serde_json::Value::String(r.into_string());
        }
        no_store(Json(body).into_response())
    }
}

impl AppState {
    /// The request URL as the client sees it, without query: `--public-url` (or `http://` +
    /// the `Host` header) + the path.
    fn request_htu(&self, headers: &HeaderMap, uri: &axum::http::Uri) -> Option<String> {
        let path = uri.path();
        if let Some(base) = &self.0.dpop.public_url {
            return Some(format!("{base}{path}"));
        }
        let host = match headers.get(axum::http::header::HOST) {
            Some(h) => h.to_str().ok()?.to_owned(),
            None => uri.authority()?.as_str().to_owned(),
        };
        if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
            return None;
        }
        Some(format!("http://{host}{path}"))
    }

    /// Verifies the request's `DPoP` header, if any, and records its `jti` in the replay
    /// cache. `Ok(None)`: no proof. `access_token`: the token whose hash the proof's `ath`
    /// must be (resource requests).
    async fn dpop_proof(
        &self,
        headers: &HeaderMap,
        method: &Method,
        uri: &axum::http::Uri,
        access_token: Option<&str>,
    ) -> Result<Option<Proof>, ProofFailure> {
        let m = &self.0.metrics;
        let mut values = headers.get_all("dpop").iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        let invalid = |d: &str| {
            inc(&m.dpop_proofs_invalid);
            Err(ProofFailure::Proof(ProofError::Invalid(d.to_owned())))
        };
        if values.next().is_some() {
            return invalid("more than one DPoP header");
        }
        let Ok(value) = value.to_str() else {
            return invalid("DPoP proof malformed");
        };
        let Some(htu) = self.request_htu(headers, uri) else {
            return invalid("cannot determine the request URL for htu");
        };
        let now = now_secs();
        let expected = dpop::Expected {
            htm: method.as_str(),
            htu: &htu,
            now_secs: now,
            access_token,
        };
        let proof = match dpop::verify(value.trim(), &expected, self.0.dpop.nonces.as_ref()) {
            Ok(p) => p,
            Err(e) => {
                inc(match e {
                    ProofError::Invalid(_) => &m.dpop_proofs_invalid,
                    ProofError::UseNonce => &m.dpop_proofs_use_nonce,
                });
                tracing::info!(reason = %e, "DPoP proof refused");
                return Err(ProofFailure::Proof(e));
            }
        };
        let outcome = self
            .0
            .store
            .use_dpop_jti(
                &proof.replay_key(),
                proof.replay_expiry_ms(),
                now_ms(),
                self.0.dpop.jti_cap,
            )
            .await
            .map_err(ProofFailure::Store)?;
        match outcome {
            JtiOutcome::Fresh => {
                inc(&m.dpop_proofs_accepted);
                Ok(Some(proof))
            }
            JtiOutcome::Replayed => {
                inc(&m.dpop_proofs_replayed);
                tracing::warn!("DPoP proof replayed (jti seen before)");
                Err(ProofFailure::Proof(ProofError::Invalid(
                    "DPoP proof jti was used before".into(),
                )))
            }
            JtiOutcome::Full => {
                inc(&m.dpop_proofs_cache_full);
                tracing::warn!(cap = self.0.dpop.jti_cap, "DPoP replay cache is full");
                Err(ProofFailure::CacheFull)
            }
        }
    }
}

/// Middleware: while nonces are on, every response carries a fresh `DPoP-Nonce`.
async fn dpop_nonce_header(State(st): State<AppState>, mut resp: Response) -> Response {
    if let Some(n) = &st.0.dpop.nonces {
        if let Ok(v) = HeaderValue::from_str(&n.current(now_secs())) {
            resp.headers_mut().insert(DPOP_NONCE, v);
        }
    }
    resp
}

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut()
        .insert(PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// Runs blocking work (argon2) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ApiError::internal(format!("{e:#}"))),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// Reads a request body of at most `limit` bytes. Larger bodies (up to [`DRAIN_LIMIT`]) are
/// drained and answered with 413.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
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
fn parse_body<T: DeserializeOwned>(headers: &HeaderMap, bytes: &[u8]) -> Result<T, ApiError> {
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

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
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

/// Builds the application router (without the connection-level machinery of [`crate::serve`]).
pub fn router(state: AppState, config: &Config) -> Result<Router> {
    let api = Router::new()
        .route("/api/me", get(me))
        .route("/api/echo", post(echo).put(echo).patch(echo).delete(echo))
        .route_layer(middleware::from_fn_with_state(state.clone(), count_api));

    let mut app = Router::new()
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/metrics", get(metrics))
        .merge(api);
    if config.test_faults {
        app = app
            .route(
                "/test/faults",
                get(faults_get).post(faults_post).delete(faults_delete),
            )
            .route("/test/redirect", any(test_redirect))
            .route("/test/unauthorized", any(test_unauthorized));
    }

    let mut root_dir = config.www.clone();
    let mut pkg_dir = config.pkg.clone();
    for (path, dir) in &config.statics {
        let path = normalize_mount(path)?;
        if path == "/" {
            root_dir = Some(dir.clone());
        } else if path == "/pkg" {
            pkg_dir = Some(dir.clone());
        } else {
            app = app.nest_service(&path, static_files(dir));
        }
    }
    if let Some(dir) = pkg_dir {
        app = app.nest_service("/pkg", static_files(&dir));
    }
    if let Some(dir) = root_dir {
        app = app.fallback_service(static_files(&dir));
    }

    Ok(app
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(middleware::map_response(json_errors))
        .layer(middleware::map_response_with_state(
            state.clone(),
            dpop_nonce_header,
        ))
        .layer(cors_layer(&config.cors_origins, config.test_faults)?)
        .layer(TraceLayer::new_for_http())
        .with_state(state))
}

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

fn static_files(dir: &std::path::Path) -> Router {
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
fn cors_layer(origins: &[String], test_faults: bool) -> Result<CorsLayer> {
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
