//! HTTP routing: the shared state and the router. Request bodies are read in `body`, DPoP
//! proofs checked in `dpop`, static files served by `statics` and CORS set up in `cors`. The
//! handlers live by concern in `auth` (/auth/*), `api` (/api/*, JWKS, metrics) and `testing`
//! (/test/*, only with `--test-faults`).

// Besides this module's own needs, these imports serve the handler modules (`api`, `auth`,
// `testing`), which take them with `use super::*`.
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, OriginalUri, Query, Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, LOCATION, PRAGMA,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Extension, Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::error::{json_errors, ApiError};
use crate::faults::{Fault, FaultPlan, Faults};
use crate::metrics::{inc, Metrics};
use crate::store::{self, Millis, Policy, RevokeOutcome, RotateOutcome, Session, Store};
use crate::tokens::{random_bytes, random_id, Claims, Keys, RefreshToken};
use crate::{Config, ConnKill};

mod api;
mod auth;
mod body;
mod cors;
mod dpop;
mod provider;
mod signin;
mod statics;
mod testing;

use api::{count_api, echo, jwks, me, metrics};
use auth::{login, logout, refresh};
use body::{discard_body, parse_body, parse_json, parse_json_body};
use cors::cors_layer;
pub use cors::is_loopback_origin;
use dpop::{dpop_gate, dpop_nonce_header, DpopSettings, ProofFailure};
pub use provider::DEFAULT_PROVIDER_SESSION_TTL_SECS;
pub use signin::{default_hash_threads_here, GateStats, HashGate, SignInError, HASH_MEMORY_MIB};
pub use statics::normalize_mount;
use statics::static_files;
use testing::{
    api_faults, faults_delete, faults_get, faults_post, refresh_faults, test_redirect,
    test_unauthorized,
};

/// Body limit for `/auth/*` and `/test/*`.
pub const AUTH_BODY_LIMIT: usize = 64 * 1024;
/// Body limit for `/api/*`.
pub const API_BODY_LIMIT: usize = 1024 * 1024;
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
    metrics: Arc<Metrics>,
    faults: Option<Faults>,
    policy: Policy,
    access_ttl_secs: u64,
    /// Verified against when the user does not exist, so that unknown users take as long as
    /// wrong passwords.
    dummy_hash: String,
    dpop: DpopSettings,
    provider: provider::Provider,
    throttle: std::sync::Mutex<crate::throttle::LoginThrottle>,
    proof_throttle: std::sync::Mutex<crate::throttle::ProofThrottle>,
    hash_gate: HashGate,
    trusted_proxies: Vec<std::net::IpAddr>,
    body_timeout: Duration,
    throttle_delay: Duration,
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

/// With `--demo-user`, creates the user demo/demo if missing. Without it, refuses to start
/// while a user demo has the password demo (left by a run with the flag): a server must not
/// go live with a password anyone can guess.
async fn demo_user(wanted: bool, store: &dyn Store, now: Millis) -> Result<()> {
    let existing = store.user_by_name("demo").await?;
    match (wanted, existing) {
        (true, Some(_)) => {}
        (true, None) => {
            let hash = hash_password("demo")?;
            if store.create_user("demo", &hash, now).await?.is_some() {
                tracing::warn!(
                    "created the demo user demo/demo (--demo-user): never in production"
                );
            }
        }
        (false, Some(user)) => {
            let hash = user.password_hash.clone();
            let guessable =
                tokio::task::spawn_blocking(move || verify_password("demo", &hash)).await?;
            anyhow::ensure!(
                !guessable,
                "the database has the user demo with the password demo, left by a run with \
                 --demo-user: delete it (DELETE FROM users WHERE username = 'demo') or change its \
                 password before serving, or start with --demo-user if this is a demo"
            );
        }
        (false, None) => {}
    }
    Ok(())
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
        let source = match &config.keys {
            Some(source) => source.clone(),
            None => crate::keys::KeySource::default_for(&config.db)?,
        };
        let ring = crate::keys::load(&source, store.as_ref(), now).await?;
        let issuer = config.issuer();
        let audience = config.audience.clone().unwrap_or_else(|| issuer.clone());
        let keys = Keys::new(ring, &issuer, &audience);
        demo_user(config.demo_user, store.as_ref(), now).await?;
        let dpop = DpopSettings::new(config, keys.ring())?;
        let provider = provider::Provider::new(config, keys.ring())?;
        let secs_ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
        Ok(AppState(Arc::new(Inner {
            store,
            keys,
            metrics: Arc::default(),
            faults: config.test_faults.then(Faults::default),
            policy: Policy {
                session_ttl_ms: secs_ms(config.session_ttl_secs),
                idle_ttl_ms: secs_ms(config.idle_ttl_secs),
                reuse_grace_ms: secs_ms(config.reuse_grace_secs),
            },
            access_ttl_secs: config.access_ttl_secs,
            dummy_hash: hash_password(&random_id())?,
            dpop,
            provider,
            throttle: std::sync::Mutex::new(crate::throttle::LoginThrottle::new(
                config.login_limits,
            )),
            proof_throttle: std::sync::Mutex::new(crate::throttle::ProofThrottle::new(
                config.proof_budget,
                config.login_limits.capacity,
            )),
            hash_gate: HashGate::new(
                config.hash_memory_mib,
                config.hash_threads,
                config.hash_wait,
            ),
            trusted_proxies: config.trusted_proxies.clone(),
            body_timeout: config.body_timeout,
            throttle_delay: config.throttle_delay,
        })))
    }

    /// The counters behind `/metrics`.
    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.0.metrics
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
    /// cache entries every 5 seconds (entries live at most 60 s), and pushed requests, codes
    /// and provider sessions every 30 seconds.
    pub(crate) async fn prune_periodically(self) {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        let mut jti_tick = tokio::time::interval(Duration::from_secs(5));
        let mut provider_tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = provider_tick.tick() => {
                    match self.0.store.prune_provider(now_ms()).await {
                        Ok(n) if n > 0 => tracing::debug!(rows = n, "pruned codes, pushed requests and provider sessions"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!("pruning the provider's rows failed: {e:#}"),
                    }
                    continue;
                }
                _ = jti_tick.tick() => {
                    match self.0.store.prune_dpop_jti(now_ms()).await {
                        Ok((pruned, left)) => {
                            let entries = &self.0.metrics.dpop_jti_entries;
                            entries.store(left, std::sync::atomic::Ordering::Relaxed);
                            if pruned > 0 {
                                tracing::debug!(pruned, left, "pruned DPoP replay cache");
                            }
                        }
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
    fn token_body(
        &self,
        access: String,
        refresh: Option<RefreshToken>,
        bound: bool,
    ) -> serde_json::Value {
        let mut body = serde_json::json!({
            "access_token": access,
            "token_type": if bound { "DPoP" } else { "Bearer" },
            "expires_in": self.0.access_ttl_secs,
        });
        if let Some(r) = refresh {
            body["refresh_token"] = serde_json::Value::String(r.into_string());
        }
        body
    }

    /// [`AppState::token_body`] as a `no-store` response.
    fn token_response(
        &self,
        access: String,
        refresh: Option<RefreshToken>,
        bound: bool,
    ) -> Response {
        no_store(Json(self.token_body(access, refresh, bound)).into_response())
    }
}

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut()
        .insert(PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// The client's address: the connection's peer, or the `X-Forwarded-For` address a trusted
/// proxy names (see [`crate::throttle::client_addr`]). Unspecified when the router runs
/// without [`crate::serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        let Some(crate::PeerAddr(peer)) = parts.extensions.get().copied() else {
            return Ok(ClientAddr(std::net::Ipv4Addr::UNSPECIFIED.into()));
        };
        let forwarded = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        let addr = crate::throttle::client_addr(peer.ip(), forwarded, &st.0.trusted_proxies);
        Ok(ClientAddr(addr))
    }
}

/// Middleware: counts the 408s of the request timeout (sitting inside `json_errors`, it sees
/// them bare; a body timeout's 408 is a JSON error already, counted where it happens).
async fn count_timeouts(State(st): State<AppState>, resp: Response) -> Response {
    if resp.status() == StatusCode::REQUEST_TIMEOUT && !resp.headers().contains_key(CONTENT_TYPE) {
        inc(&st.0.metrics.request_timeouts);
    }
    resp
}

/// Middleware: holds every 429 the server gives (a throttled sign-in, form or DPoP proof;
/// not an injected test fault) for `--throttle-delay-ms` before sending it. The refusal
/// itself costs microseconds; answered at once, a client that ignores `Retry-After` gets
/// thousands a second per connection, and the server's cores go to answering it instead of
/// its users. Held, each of its connections gets one answer per delay, and the held answer
/// costs a timer. Its connections are bounded by `--max-connections-per-address`.
async fn hold_throttled(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    if resp.status() == StatusCode::TOO_MANY_REQUESTS
        && resp.extensions().get::<crate::error::Faulted>().is_none()
    {
        inc(&st.0.metrics.throttled_held);
        tokio::time::sleep(st.0.throttle_delay).await;
    }
    resp
}

/// `/metrics` alone, for a separate address (`--metrics-listen`).
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .layer(middleware::map_response(json_errors))
        .with_state(state)
}

/// Builds the application router (without the connection-level machinery of [`crate::serve`]).
pub fn router(state: AppState, config: &Config) -> Result<Router> {
    let mut api = Router::new()
        .route("/api/me", get(me))
        .route("/api/echo", post(echo).put(echo).patch(echo).delete(echo));
    let mut refresh_route = post(refresh);
    // The testing layer: scripted faults in front of the real handlers.
    if config.test_faults {
        api = api.route_layer(middleware::from_fn_with_state(state.clone(), api_faults));
        refresh_route = refresh_route.layer(middleware::from_fn_with_state(
            state.clone(),
            refresh_faults,
        ));
    }
    let api = api.route_layer(middleware::from_fn_with_state(state.clone(), count_api));

    // /api gates DPoP proofs in its extractor, before anything else too (and counts them).
    let mut app = Router::new()
        .route("/auth/login", post(login))
        .route("/auth/refresh", refresh_route)
        .route("/auth/logout", post(logout))
        .route("/.well-known/jwks.json", get(jwks))
        .merge(provider::api_routes(&state, config.test_faults))
        .route_layer(middleware::from_fn_with_state(state.clone(), dpop_gate))
        .merge(api);
    if config.metrics_on_main {
        app = app.route("/metrics", get(metrics));
    }
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

    // Every request is answered (or refused, 408) within the request timeout.
    let timeout =
        TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, config.request_timeout);
    let count = middleware::map_response_with_state(state.clone(), count_timeouts);
    let app = app
        .layer(timeout)
        .layer(count.clone())
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(middleware::map_response(json_errors))
        .layer(middleware::map_response_with_state(
            state.clone(),
            dpop_nonce_header,
        ))
        .layer(cors_layer(&config.cors_origins, config.test_faults)?);
    // The provider's pages are navigations: no CORS, HTML errors.
    let pages = provider::page_routes()
        .layer(timeout)
        .layer(count)
        .layer(tower_http::catch_panic::CatchPanicLayer::new());
    // Request spans name the path only: a query can carry an `id_token_hint` (RP-Initiated
    // Logout sends it in the URL) or other values that do not belong in logs.
    let trace = TraceLayer::new_for_http().make_span_with(|req: &Request| {
        tracing::debug_span!("request", method = %req.method(), path = %req.uri().path())
    });
    let mut app = app.merge(pages);
    // Held 429s cost every request a look at its status: not layered when they are off.
    if !config.throttle_delay.is_zero() {
        app = app.layer(middleware::from_fn_with_state(
            state.clone(),
            hold_throttled,
        ));
    }
    Ok(app.layer(trace).with_state(state))
}
