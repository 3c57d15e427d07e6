//! The server's configuration ([`Config`], mirrored by the command-line flags in `main.rs`).

use std::path::PathBuf;
use std::time::Duration;

use crate::{dpop, keys, oidc, routes, store, throttle};

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
    /// Create user `demo` / `demo` if it does not exist (`--demo-user`; off by default, and
    /// without it a leftover `demo`/`demo` user refuses the start).
    pub demo_user: bool,
    /// Route the `/test/*` fault-injection endpoints.
    pub test_faults: bool,
    /// How long graceful shutdown waits for in-flight requests before giving up.
    pub shutdown_grace: Duration,
    /// The server's URL as clients see it (scheme, host, port; e.g. `https://auth.example`):
    /// the issuer (see [`Config::issuer`]) and the base of a DPoP proof's expected `htu`.
    /// `None`: the issuer is the bound URL, and `htu` is `http://` + the request's `Host`.
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
    /// The URL of the bound listener, set by [`crate::serve`] (and `main`): the issuer when
    /// `public_url` is unset.
    pub bound_url: Option<String>,
    /// Where the keys come from; `None`: [`keys::KeySource::default_for`] the database.
    pub keys: Option<keys::KeySource>,
    /// Sign-in failure budgets per account and per address (see [`throttle`]).
    pub login_limits: throttle::Limits,
    /// Memory for concurrent password hashes (MiB): one slot per 19 MiB.
    pub hash_memory_mib: u64,
    /// At most this many password hashes at once (their own threads); the default leaves one
    /// core to everything else ([`routes::default_hash_threads_here`]).
    pub hash_threads: usize,
    /// How long a sign-in waits for a password-hash slot before a 503.
    pub hash_wait: Duration,
    /// Proxies whose `X-Forwarded-For` names the client's address (for throttling).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Failed DPoP proofs per address before back-off (see [`throttle::ProofThrottle`]).
    pub proof_budget: throttle::Budget,
    /// `aud` of access tokens, checked on `/api/*`; `None`: the issuer.
    pub audience: Option<String>,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Connections open at once from one client address (not counting trusted proxies);
    /// more are closed as soon as they are accepted. 0: no bound.
    pub max_connections_per_address: usize,
    /// How long every 429 of a throttle (sign-in, DPoP proofs) is held before it is sent,
    /// so that a client that keeps guessing gets at most one answer per connection this
    /// often. Zero: sent at once.
    pub throttle_delay: Duration,
    /// A request's headers (and an idle keep-alive connection's next request) must arrive
    /// within this time, else the connection is closed.
    pub header_timeout: Duration,
    /// A request body must arrive within this time (408).
    pub body_timeout: Duration,
    /// A request must be answered within this time (408).
    pub request_timeout: Duration,
    /// Serve `/metrics` on the main address (`--metrics-listen` moves it elsewhere).
    pub metrics_on_main: bool,
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
            .field("hash_threads", &self.hash_threads)
            .field("hash_wait", &self.hash_wait)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("proof_budget", &self.proof_budget)
            .field("audience", &self.audience)
            .field("max_connections", &self.max_connections)
            .field(
                "max_connections_per_address",
                &self.max_connections_per_address,
            )
            .field("throttle_delay", &self.throttle_delay)
            .field("header_timeout", &self.header_timeout)
            .field("body_timeout", &self.body_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("metrics_on_main", &self.metrics_on_main)
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
            demo_user: false,
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
            hash_threads: routes::default_hash_threads_here(),
            hash_wait: Duration::from_secs(2),
            trusted_proxies: Vec::new(),
            proof_budget: throttle::ProofThrottle::DEFAULT,
            audience: None,
            max_connections: 1024,
            max_connections_per_address: 256,
            throttle_delay: Duration::from_secs(1),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            metrics_on_main: true,
        }
    }
}

impl Config {
    /// The server's one issuer identifier: the `iss` of discovery, of ID tokens, of
    /// authorization responses (RFC 9207) and of access tokens (RFC 9068). `--public-url`,
    /// else the URL of the bound listener (`http://127.0.0.1:<port>`), without a trailing
    /// slash. Instances that serve one deployment share `--public-url` (each other's tokens
    /// carry it).
    pub fn issuer(&self) -> String {
        self.public_url
            .as_deref()
            .or(self.bound_url.as_deref())
            .unwrap_or("http://127.0.0.1:8080")
            .trim_end_matches('/')
            .to_owned()
    }

    /// Refuses settings unsafe on the address the server listens on: off loopback,
    /// `--public-url` is required (the DPoP `htu` and the tokens' `iss` must not come from a
    /// client's `Host` header) and `--test-faults` is refused (its endpoints are open).
    pub fn check_listen(&self, addr: std::net::SocketAddr) -> anyhow::Result<()> {
        if addr.ip().is_loopback() {
            return Ok(());
        }
        anyhow::ensure!(
            !self.test_faults,
            "--test-faults is refused on {addr}: its endpoints are unauthenticated; listen on \
             a loopback address (127.0.0.1) for tests"
        );
        anyhow::ensure!(
            self.public_url.is_some(),
            "listening on {addr} (not loopback) needs --public-url, the URL clients use (e.g. \
             https://auth.example): DPoP proofs and the tokens' issuer are checked against it"
        );
        Ok(())
    }
}
