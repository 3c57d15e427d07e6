//! rotafetch-server: the reference auth server for the rotafetch browser SDK.
//!
//! * `POST /auth/login`, `/auth/refresh`, `/auth/logout` — EdDSA JWT access tokens and opaque,
//!   rotating, one-time refresh tokens with reuse detection and a short grace window for lost
//!   responses.
//! * DPoP (RFC 9449, [`dpop`]): a login or refresh with a proof binds the session family to
//!   the client's key; its access tokens then work only with the `DPoP` scheme and a proof.
//! * `GET /api/me`, `/api/echo` — bearer- (or DPoP-) protected sample API.
//! * `GET /.well-known/jwks.json`, `GET /metrics`, static files, optional test faults.
//!
//! Run it in-process with [`serve`]; `main.rs` is only a command-line wrapper.

pub mod dpop;
pub mod error;
pub mod faults;
pub mod keys;
pub mod metrics;
pub mod oidc;
mod routes;
pub mod store;
pub mod throttle;
pub mod tokens;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower::ServiceExt as _;

pub use routes::{
    is_loopback_origin, normalize_mount, router, AppState, ClientAddr, GateStats, HashGate,
    SignInError, HASH_MEMORY_MIB,
};

/// Server configuration (mirrors the command-line flags). `Debug` hides a database password.
#[derive(Clone)]
pub struct Config {
    /// SQLite database file, `":memory:"`, or a `postgres://` URL (several instances may
    /// share one PostgreSQL database).
    pub db: String,
    /// Access token lifetime in seconds (>= 1).
    pub access_ttl_secs: u64,
    /// Absolute lifetime of a session family in seconds.
    pub session_ttl_secs: u64,
    /// A family expires when it has not rotated for this many seconds.
    pub idle_ttl_secs: u64,
    /// Grace window in seconds for re-presenting a just-spent token; 0 disables it.
    pub reuse_grace_secs: u64,
    /// Served at `/`.
    pub www: Option<PathBuf>,
    /// Served at `/pkg/`.
    pub pkg: Option<PathBuf>,
    /// Extra static mounts: (URL path, directory).
    pub statics: Vec<(String, PathBuf)>,
    /// Allowed CORS origins; empty = any `http://127.0.0.1:<port>` / `http://localhost:<port>`;
    /// `"*"` = any origin.
    pub cors_origins: Vec<String>,
    /// Create user `demo` / `demo` if it does not exist.
    pub demo_user: bool,
    /// Route the `/test/*` fault-injection endpoints.
    pub test_faults: bool,
    /// How long graceful shutdown waits for in-flight requests before giving up.
    pub shutdown_grace: Duration,
    /// The server's URL as clients see it (scheme, host, port; e.g. `https://auth.example`),
    /// used to reconstruct a DPoP proof's expected `htu`. `None`: `http://` + the request's
    /// `Host` header.
    pub public_url: Option<String>,
    /// Require server-provided nonces in DPoP proofs (RFC 9449 §8).
    pub dpop_nonce: bool,
    /// Nonce rotation period in seconds; the current and the previous period's nonce are
    /// accepted.
    pub dpop_nonce_period_secs: u64,
    /// Bound on the unexpired entries of the DPoP `jti` replay cache.
    pub dpop_jti_cap: u64,
    /// Registered OpenID clients (`--client`); none = the demo client.
    pub clients: Vec<oidc::clients::ClientSpec>,
    /// Their post-logout redirect URIs (`--post-logout`).
    pub post_logout: Vec<oidc::clients::ClientSpec>,
    /// Lifetime of a provider session (the sign-in cookie) in seconds.
    pub provider_session_ttl_secs: u64,
    /// The URL of the bound listener, set by [`serve`] (and `main`): the issuer when
    /// `public_url` is unset.
    pub bound_url: Option<String>,
    /// Where the keys come from; `None`: [`keys::KeySource::default_for`] the database.
    pub keys: Option<keys::KeySource>,
    /// Sign-in failure budgets per account and per address (see [`throttle`]).
    pub login_limits: throttle::Limits,
    /// Memory for concurrent password hashes (MiB): one slot per 19 MiB.
    pub hash_memory_mib: u64,
    /// How long a sign-in waits for a password-hash slot before a 503.
    pub hash_wait: Duration,
    /// Proxies whose `X-Forwarded-For` names the client's address (for throttling).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Failed DPoP proofs per address before back-off (see [`throttle::ProofThrottle`]).
    pub proof_budget: throttle::Budget,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("db", &store::redact_db(&self.db))
            .field("access_ttl_secs", &self.access_ttl_secs)
            .field("session_ttl_secs", &self.session_ttl_secs)
            .field("idle_ttl_secs", &self.idle_ttl_secs)
            .field("reuse_grace_secs", &self.reuse_grace_secs)
            .field("www", &self.www)
            .field("pkg", &self.pkg)
            .field("statics", &self.statics)
            .field("cors_origins", &self.cors_origins)
            .field("demo_user", &self.demo_user)
            .field("test_faults", &self.test_faults)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("public_url", &self.public_url)
            .field("dpop_nonce", &self.dpop_nonce)
            .field("dpop_nonce_period_secs", &self.dpop_nonce_period_secs)
            .field("dpop_jti_cap", &self.dpop_jti_cap)
            .field("clients", &self.clients)
            .field("post_logout", &self.post_logout)
            .field("provider_session_ttl_secs", &self.provider_session_ttl_secs)
            .field("bound_url", &self.bound_url)
            .field("keys", &self.keys)
            .field("login_limits", &self.login_limits)
            .field("hash_memory_mib", &self.hash_memory_mib)
            .field("hash_wait", &self.hash_wait)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("proof_budget", &self.proof_budget)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            db: "rotafetch.db".into(),
            access_ttl_secs: 60,
            session_ttl_secs: 30 * 24 * 3600,
            idle_ttl_secs: 7 * 24 * 3600,
            reuse_grace_secs: 10,
            www: Some("www".into()),
            pkg: Some("pkg".into()),
            statics: Vec::new(),
            cors_origins: Vec::new(),
            demo_user: true,
            test_faults: false,
            shutdown_grace: Duration::from_secs(5),
            public_url: None,
            dpop_nonce: false,
            dpop_nonce_period_secs: dpop::DEFAULT_NONCE_PERIOD_SECS,
            dpop_jti_cap: dpop::DEFAULT_JTI_CAP,
            clients: Vec::new(),
            post_logout: Vec::new(),
            provider_session_ttl_secs: routes::DEFAULT_PROVIDER_SESSION_TTL_SECS,
            bound_url: None,
            keys: None,
            login_limits: throttle::Limits::default(),
            hash_memory_mib: 256,
            hash_wait: Duration::from_secs(2),
            trusted_proxies: Vec::new(),
            proof_budget: throttle::ProofThrottle::DEFAULT,
        }
    }
}

/// Per-connection handle that lets a handler close its own connection without a response
/// (used by the `drop`, `hang` and `lost_response` test faults).
#[derive(Clone, Debug)]
pub(crate) struct ConnKill(pub(crate) Arc<Notify>);

/// The connection's peer address (a request extension set by [`serve`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PeerAddr(pub(crate) SocketAddr);

/// Serves HTTP/1.1 on `listener` until `shutdown` completes, then drains in-flight requests
/// for at most [`Config::shutdown_grace`].
pub async fn serve(
    mut config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    if config.bound_url.is_none() {
        config.bound_url = Some(display_url(listener.local_addr()?));
    }
    let state = AppState::new(&config).await?;
    serve_with_state(state, &config, listener, shutdown).await
}

/// Like [`serve`] with an already opened [`AppState`] (built from the same `config`).
pub async fn serve_with_state(
    state: AppState,
    config: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let grace = config.shutdown_grace;
    let test_faults = config.test_faults;
    let app = router(state.clone(), config)?;
    let pruner = tokio::spawn(state.clone().prune_periodically());

    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let kill = Arc::new(Notify::new());
        let handle = ConnKill(kill.clone());
        let svc = app
            .clone()
            .map_request(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(handle.clone());
                req.extensions_mut().insert(PeerAddr(peer));
                req
            });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            // With test faults on, every request gets its own connection: browsers silently
            // re-send a request (even a POST) whose *reused* keep-alive connection closed
            // without a response, which would hide the `drop`/`lost_response` faults.
            .keep_alive(!test_faults)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            tokio::select! {
                res = conn => if let Err(e) = res {
                    tracing::debug!("connection ended with an error: {e}");
                },
                _ = kill.notified() => tracing::debug!("connection closed without a response (test fault)"),
            }
        });
    }
    drop(listener);
    pruner.abort();
    tracing::info!("shutting down");
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(grace) => tracing::warn!("in-flight requests did not finish within {grace:?}; closing"),
    }
    Ok(())
}

/// The URL printed on start: the bound address, with an unspecified IP shown as 127.0.0.1.
pub fn display_url(addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() {
        "127.0.0.1".parse().expect("valid IP")
    } else {
        addr.ip()
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}
