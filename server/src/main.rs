//! Command-line entry point of the rotafetch reference auth server.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use rotafetch_server::keys::{KeySource, KEYS_ENV};
use rotafetch_server::oidc::clients::ClientSpec;
use rotafetch_server::{display_url, serve_with_state, AppState, Config};

/// Reference auth server for rotafetch: EdDSA JWT access tokens, rotating one-time refresh
/// tokens with reuse detection, a sample bearer-protected API and static files.
#[derive(Debug, Parser)]
// A repeated flag takes its last value, so wrappers can add defaults that callers override
// (e2e/lib/pg.mjs points the e2e harness's server at PostgreSQL with a second --db).
#[command(name = "rotafetch-server", version, args_override_self = true)]
struct Cli {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// After binding, write the actual port number to this file (atomically).
    #[arg(long)]
    port_file: Option<PathBuf>,
    /// SQLite database file (":memory:" for a throw-away in-memory database), or a PostgreSQL
    /// URL postgres://USER[:PASSWORD]@HOST[:PORT]/DB (no TLS) that several instances can share.
    #[arg(long, default_value = "rotafetch.db")]
    db: String,
    /// Access token lifetime in seconds (at most a day: retired signing keys verify that long).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    access_ttl: u64,
    /// Absolute session (refresh token family) lifetime in seconds.
    #[arg(long, default_value_t = 2_592_000, value_parser = clap::value_parser!(u64).range(1..))]
    session_ttl: u64,
    /// A session expires after this many seconds without a rotation.
    #[arg(long, default_value_t = 604_800, value_parser = clap::value_parser!(u64).range(1..))]
    idle_ttl: u64,
    /// Seconds during which a just-spent refresh token is answered with its (unused)
    /// successor instead of counting as reuse; 0 disables the grace rule.
    #[arg(long, default_value_t = 10)]
    reuse_grace: u64,
    /// Directory served at /.
    #[arg(long, default_value = "www")]
    www: PathBuf,
    /// Directory served at /pkg/.
    #[arg(long, default_value = "pkg")]
    pkg: PathBuf,
    /// Extra static mount URLPATH=DIR (repeatable), e.g. /examples=examples/vite-ts/dist.
    #[arg(long = "static", value_name = "URLPATH=DIR", value_parser = parse_mount)]
    statics: Vec<(String, PathBuf)>,
    /// Allowed CORS origin (repeatable; "*" = any). Default: any http://127.0.0.1:<port> or
    /// http://localhost:<port>.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<String>,
    /// Create the user demo with the password demo (for the demo and the tests; never in
    /// production). Without it, a demo/demo user left in the database refuses the start.
    #[arg(long, conflicts_with = "no_demo_user")]
    demo_user: bool,
    /// No longer needed (there is no default user); accepted so older command lines work.
    #[arg(long, hide = true)]
    no_demo_user: bool,
    /// Enable the /test/* fault-injection endpoints. Never use in production.
    #[arg(long)]
    test_faults: bool,
    /// The server's URL as clients see it (e.g. https://auth.example): the issuer (iss of
    /// discovery, ID tokens and access tokens) and the base of DPoP proofs' htu. Instances
    /// behind one load balancer share it. Default: the issuer is http://127.0.0.1:<port>,
    /// the htu http:// plus the request's Host header.
    #[arg(long, value_name = "URL", value_parser = parse_public_url)]
    public_url: Option<String>,
    /// Require server-provided nonces in DPoP proofs (sent in the DPoP-Nonce header).
    #[arg(long)]
    dpop_nonce: bool,
    /// DPoP nonce rotation period in seconds (the previous period's nonce stays valid).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    dpop_nonce_period: u64,
    /// Failed sign-ins per account before exponential back-off (1 s, doubling, at most
    /// 15 min; forgotten an hour after the latest failure).
    #[arg(long, default_value_t = 5, value_name = "N")]
    login_failures_per_account: u32,
    /// Failed sign-ins per client address (any accounts) before the same back-off.
    #[arg(long, default_value_t = 20, value_name = "N")]
    login_failures_per_address: u32,
    /// Memory for password hashes running at once, in MiB: one argon2id hash takes 19 MiB,
    /// so the default allows 13 at a time; more wait (at most 2 s, else 503).
    #[arg(long, default_value_t = 256, value_name = "MIB", value_parser = clap::value_parser!(u64).range(19..))]
    hash_memory_mib: u64,
    /// Password hashes running at once, each on a thread of its own, at most the memory's
    /// slots. Default: the cores minus one, at least 1 (a hash keeps a core busy; the rest
    /// stay free for refreshes and API calls).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..1024))]
    hash_threads: Option<u64>,
    /// A reverse proxy (IP address, repeatable) whose X-Forwarded-For names the client's
    /// address for sign-in throttling. Default: none (the connection's peer counts).
    #[arg(long = "trusted-proxy", value_name = "IP")]
    trusted_proxies: Vec<std::net::IpAddr>,
    /// The key file (signing keys, refresh and nonce secrets; JSON, mode 0600), created when
    /// absent. Default: the SQLite file's name + ".keys.json"; required with PostgreSQL
    /// (every instance must use the same file) unless ROTAFETCH_KEYS holds the keys.
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
    /// Add a new key of every kind to the key file (signing after --new-key-delay), drop
    /// keys replaced more than a day ago, print the new key ids and exit.
    #[arg(long)]
    rotate_keys: bool,
    /// With --rotate-keys: seconds before the new keys sign (publish them to every instance
    /// first: restart them all within this time).
    #[arg(long, default_value_t = 0, value_name = "SECS")]
    new_key_delay: u64,
    /// The audience (`aud`) of access tokens, checked on /api/*: the resource's identifier.
    /// Default: the issuer (--public-url, else http://127.0.0.1:<port>).
    #[arg(long, value_name = "AUD")]
    audience: Option<String>,
    /// Connections served at once; more wait in the listen backlog (keep it below the
    /// process's open-file limit).
    #[arg(long, default_value_t = 1024, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections: u64,
    /// Connections open at once from one client address (trusted proxies are not counted);
    /// more are closed when accepted. 0: no bound.
    #[arg(long, default_value_t = 256, value_name = "N")]
    max_connections_per_address: u64,
    /// Milliseconds every throttled answer (429) is held before it is sent: a client that
    /// keeps guessing gets one answer per connection this often. 0: sent at once.
    #[arg(long, default_value_t = 1000, value_name = "MS", value_parser = clap::value_parser!(u64).range(0..=10_000))]
    throttle_delay_ms: u64,
    /// Serve /metrics on this address instead of the main one (e.g. 127.0.0.1:9100).
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
    /// Maximum number of unexpired entries in the DPoP jti replay cache; proofs beyond it are
    /// answered 503 until entries expire.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    dpop_jti_cap: u64,
    /// Register an OpenID client: ID=URI[,URI...] with its exact redirect URIs (repeatable; a
    /// URI starting with / is on the issuer). Without any, the demo client rotafetch-demo=/.
    #[arg(long = "client", value_name = "ID=URI[,URI...]", value_parser = parse_client)]
    clients: Vec<ClientSpec>,
    /// A registered client's post-logout redirect URIs: ID=URI[,URI...] (repeatable).
    #[arg(long = "post-logout", value_name = "ID=URI[,URI...]", value_parser = parse_client)]
    post_logout: Vec<ClientSpec>,
    /// Lifetime of a provider session (the sign-in cookie) in seconds.
    #[arg(long, default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..))]
    provider_session_ttl: u64,
}

fn parse_client(s: &str) -> Result<ClientSpec, String> {
    rotafetch_server::oidc::clients::parse_spec(s)
}

fn parse_public_url(s: &str) -> Result<String, String> {
    rotafetch_server::dpop::normalize_htu(s)
        .map(|u| u.trim_end_matches('/').to_owned())
        .ok_or_else(|| format!("expected an absolute http(s) URL, got {s:?}"))
}

fn parse_mount(s: &str) -> Result<(String, PathBuf), String> {
    let (path, dir) = s
        .split_once('=')
        .ok_or_else(|| format!("expected URLPATH=DIR, got {s:?}"))?;
    if dir.is_empty() {
        return Err(format!("empty directory in {s:?}"));
    }
    let path = rotafetch_server::normalize_mount(path).map_err(|e| e.to_string())?;
    Ok((path, PathBuf::from(dir)))
}

fn write_port_file(path: &std::path::Path, port: u16) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, format!("{port}\n"))
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for SIGINT: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}

fn login_limits(cli: &Cli) -> rotafetch_server::throttle::Limits {
    let mut limits = rotafetch_server::throttle::Limits::default();
    limits.account.free = cli.login_failures_per_account;
    limits.address.free = cli.login_failures_per_address;
    limits
}

/// `--rotate-keys`: rotates the key file and prints the new key ids.
fn rotate_keys(keys: &KeySource, delay: u64) -> Result<()> {
    let KeySource::File(path) = keys else {
        anyhow::bail!(
            "--rotate-keys needs a key file (--key-file): to rotate keys held in {KEYS_ENV}, \
             rotate a copy in a file and put its content there"
        );
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let (_, added) = rotafetch_server::keys::file::rotate(path, now, delay)?;
    println!(
        "rotated {}: new keys {} sign from {} (Unix time); restart every instance with this file",
        path.display(),
        added.join(", "),
        now + delay
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let from_env = std::env::var(KEYS_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty());
    let keys = match (&cli.key_file, from_env) {
        (Some(path), _) => KeySource::File(path.clone()),
        (None, Some(json)) => KeySource::Inline(json),
        (None, None) => KeySource::default_for(&cli.db)?,
    };
    if cli.rotate_keys {
        return rotate_keys(&keys, cli.new_key_delay);
    }

    let login_limits = login_limits(&cli);
    let config = Config {
        db: cli.db,
        access_ttl_secs: cli.access_ttl,
        session_ttl_secs: cli.session_ttl,
        idle_ttl_secs: cli.idle_ttl,
        reuse_grace_secs: cli.reuse_grace,
        www: Some(cli.www),
        pkg: Some(cli.pkg),
        statics: cli.statics,
        cors_origins: cli.cors_origins,
        demo_user: cli.demo_user,
        test_faults: cli.test_faults,
        public_url: cli.public_url,
        dpop_nonce: cli.dpop_nonce,
        dpop_nonce_period_secs: cli.dpop_nonce_period,
        dpop_jti_cap: cli.dpop_jti_cap,
        clients: cli.clients,
        post_logout: cli.post_logout,
        provider_session_ttl_secs: cli.provider_session_ttl,
        keys: Some(keys),
        login_limits,
        hash_memory_mib: cli.hash_memory_mib,
        hash_threads: match cli.hash_threads {
            Some(n) => usize::try_from(n)?,
            None => Config::default().hash_threads,
        },
        trusted_proxies: cli.trusted_proxies,
        audience: cli.audience,
        max_connections: usize::try_from(cli.max_connections)?,
        max_connections_per_address: usize::try_from(cli.max_connections_per_address)?,
        throttle_delay: std::time::Duration::from_millis(cli.throttle_delay_ms),
        metrics_on_main: cli.metrics_listen.is_none(),
        ..Config::default()
    };
    if config.test_faults {
        tracing::warn!(
            "test endpoints are ENABLED (/test/*: faults, redirects); never run this in production"
        );
    }

    let listener = tokio::net::TcpListener::bind(&cli.listen)
        .await
        .with_context(|| format!("binding {}", cli.listen))?;
    let addr = listener.local_addr()?;
    config.check_listen(addr)?;
    let config = Config {
        bound_url: Some(display_url(addr)),
        ..config
    };
    let metrics_listener = match &cli.metrics_listen {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("binding {a}"))?,
        ),
        None => None,
    };
    // Open the database and keys before announcing readiness.
    let state = AppState::new(&config).await?;
    if let Some(l) = metrics_listener {
        tracing::info!("metrics on {}/metrics", display_url(l.local_addr()?));
        let app = rotafetch_server::metrics_router(state.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(l, app).await {
                tracing::error!("the metrics listener failed: {e}");
            }
        });
    }
    if let Some(path) = &cli.port_file {
        write_port_file(path, addr.port())?;
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "rotafetch-server listening on {}", display_url(addr))?;
        out.flush()?;
    }
    tracing::info!(db = %rotafetch_server::store::redact_db(&config.db), access_ttl = config.access_ttl_secs, reuse_grace = config.reuse_grace_secs, "listening on {addr}");
    serve_with_state(state, &config, listener, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}
