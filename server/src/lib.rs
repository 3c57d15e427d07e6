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

mod config;
pub mod connections;
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
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tower::ServiceExt as _;

pub use config::Config;
pub use routes::{
    is_loopback_origin, metrics_router, normalize_mount, router, AppState, ClientAddr, GateStats,
    HashGate, SignInError, HASH_MEMORY_MIB,
};

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
    config.check_listen(listener.local_addr()?)?;
    let grace = config.shutdown_grace;
    let test_faults = config.test_faults;
    let app = router(state.clone(), config)?;
    let pruner = tokio::spawn(state.clone().prune_periodically());

    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    // At most `max_connections` at once: at the bound, accepting pauses (new connections
    // wait in the listen backlog) until one closes.
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let per_address =
        connections::PerAddress::new(config.max_connections_per_address, &config.trusted_proxies);
    let counters = state.metrics().clone();
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                metrics::inc(&counters.connection_waits);
                tokio::select! {
                    _ = &mut shutdown => break,
                    slot = slots.clone().acquire_owned() => slot?,
                }
            }
        };
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
        // Past its address's bound, a connection is closed at once (before any byte is read).
        let Some(place) = per_address.admit(peer.ip()) else {
            metrics::inc(&counters.connections_refused);
            drop(stream);
            continue;
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
            .header_read_timeout(config.header_timeout)
            // With test faults on, every request gets its own connection: browsers silently
            // re-send a request (even a POST) whose *reused* keep-alive connection closed
            // without a response, which would hide the `drop`/`lost_response` faults.
            .keep_alive(!test_faults)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
        let conn = graceful.watch(conn);
        let open = counters.connections_open.clone();
        let header_timeouts = counters.clone();
        open.fetch_add(1, Ordering::Relaxed);
        metrics::inc(&counters.connections);
        tokio::spawn(async move {
            tokio::select! {
                res = conn => if let Err(e) = res {
                    if e.is_timeout() {
                        metrics::inc(&header_timeouts.header_timeouts);
                    }
                    tracing::debug!("connection ended with an error: {e}");
                },
                _ = kill.notified() => tracing::debug!("connection closed without a response (test fault)"),
            }
            open.fetch_sub(1, Ordering::Relaxed);
            drop(place);
            drop(slot);
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
