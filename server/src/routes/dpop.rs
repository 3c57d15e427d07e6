//! DPoP at the request level: the settings, verifying a request's `DPoP` header, the replay
//! cache, the per-address throttle of proofs that do not check out, the answers to a refused
//! proof and the `DPoP-Nonce` response header. The proof format itself is in [`crate::dpop`].
//!
//! A proof's `jti` is recorded only once the proof *and* the credential it came with checked
//! out ([`AppState::record_proof`]): a made-up proof (any key, no credential) costs the server
//! nothing lasting. Proofs from one address that keep failing are refused before their
//! signature is verified or the store asked ([`crate::throttle::ProofThrottle`]).

use std::net::IpAddr;

use anyhow::{Context, Result};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

use super::{now_ms, now_secs, AppState, ClientAddr};
use crate::dpop::{self, Nonces, Proof, ProofError};
use crate::error::ApiError;
use crate::keys::{KeyRing, Purpose};
use crate::metrics::inc;
use crate::store::JtiOutcome;
use crate::throttle::ProofThrottle;
use crate::Config;

/// DPoP settings (see [`crate::dpop`]).
#[derive(Debug)]
pub(super) struct DpopSettings {
    /// Server nonces, if required (`--dpop-nonce`).
    nonces: Option<Nonces>,
    /// `--public-url` (normalized, without a trailing slash).
    public_url: Option<String>,
    /// `--dpop-jti-cap`.
    jti_cap: u64,
}

impl DpopSettings {
    /// Takes the nonce keys from the ring if `--dpop-nonce` is on, and normalizes
    /// `--public-url`.
    pub(super) fn new(config: &Config, ring: &KeyRing) -> Result<Self> {
        let nonces = if config.dpop_nonce {
            let keys = ring.secrets(Purpose::DpopNonce, now_secs());
            let keys = keys.into_iter().copied().collect();
            Some(Nonces::new(keys, config.dpop_nonce_period_secs))
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
        Ok(DpopSettings {
            nonces,
            public_url,
            jti_cap: config.dpop_jti_cap.max(1),
        })
    }
}

/// The `DPoP-Nonce` response header.
pub(crate) const DPOP_NONCE: &str = "dpop-nonce";

/// Why a request's DPoP proof was not accepted.
#[derive(Debug)]
pub(super) enum ProofFailure {
    Proof(ProofError),
    /// The replay cache is at its bound.
    CacheFull,
    /// Too many proofs from this address failed: retry after this many seconds.
    Throttled(u64),
    Store(anyhow::Error),
}

impl ProofFailure {
    /// The answer at the token endpoint: 400 `invalid_dpop_proof` / `use_dpop_nonce`.
    pub(super) fn at_token_endpoint(self) -> ApiError {
        match self {
            ProofFailure::Proof(ProofError::Invalid(d)) => ApiError::invalid_dpop_proof(d),
            ProofFailure::Proof(ProofError::UseNonce) => ApiError::use_dpop_nonce(),
            ProofFailure::CacheFull => replay_cache_full(),
            ProofFailure::Throttled(secs) => proofs_throttled(secs),
            ProofFailure::Store(e) => ApiError::store(e),
        }
    }

    /// The answer at a resource: 401 with a `WWW-Authenticate: DPoP` challenge.
    pub(super) fn at_resource(self) -> ApiError {
        match self {
            ProofFailure::Proof(ProofError::Invalid(d)) => {
                ApiError::dpop_challenge("invalid_dpop_proof", &d)
            }
            ProofFailure::Proof(ProofError::UseNonce) => ApiError::dpop_challenge(
                "use_dpop_nonce",
                "DPoP proof must carry the server nonce from the DPoP-Nonce response header",
            ),
            ProofFailure::CacheFull => replay_cache_full(),
            ProofFailure::Throttled(secs) => proofs_throttled(secs),
            ProofFailure::Store(e) => ApiError::store(e),
        }
    }
}

/// 429 (not a 401 challenge, which a client would answer with a refresh).
fn proofs_throttled(secs: u64) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "temporarily_unavailable",
        format!("too many failed DPoP proofs from this address; retry in {secs} s"),
    )
    .retry_after(secs)
}

fn replay_cache_full() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "too many recent DPoP proofs; retry shortly",
    )
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

    fn proof_throttle(&self) -> std::sync::MutexGuard<'_, ProofThrottle> {
        self.0
            .proof_throttle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Addresses the proof throttle remembers (for `/metrics`).
    pub(super) fn proof_throttle_len(&self) -> usize {
        self.proof_throttle().len()
    }

    /// Refuses a proof from `client` unread while its failed proofs back off.
    pub(super) fn proof_gate(&self, client: IpAddr) -> Result<(), ProofFailure> {
        self.proof_throttle().check(client, now_ms()).map_err(|t| {
            inc(&self.0.metrics.dpop_proofs_throttled);
            ProofFailure::Throttled(t.retry_after_secs)
        })
    }

    /// A request from `client` that carried a proof failed: an invalid proof, a replay, or
    /// (at the token endpoint) a refresh token that did not check out. Charged to its
    /// address.
    pub(super) fn proof_failed(&self, client: IpAddr) {
        self.proof_throttle().fail(client, now_ms());
    }

    /// Verifies the request's `DPoP` header, if any, without the store: format, signature,
    /// `htm`, `htu`, `iat`, `ath` (with `access_token`, on resource requests) and nonce.
    /// `Ok(None)`: no proof. Refused at once while `client`'s failed proofs back off. The
    /// `jti` is not recorded here: see [`AppState::record_proof`].
    pub(super) fn dpop_proof(
        &self,
        headers: &HeaderMap,
        method: &Method,
        uri: &axum::http::Uri,
        access_token: Option<&str>,
        client: IpAddr,
    ) -> Result<Option<Proof>, ProofFailure> {
        let m = &self.0.metrics;
        let mut values = headers.get_all("dpop").iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        self.proof_gate(client)?;
        let invalid = |d: &str| {
            inc(&m.dpop_proofs_invalid);
            self.proof_failed(client);
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
        let started = std::time::Instant::now();
        let verified = dpop::verify(value.trim(), &expected, self.0.dpop.nonces.as_ref());
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        m.dpop_verify_nanos
            .fetch_add(nanos, std::sync::atomic::Ordering::Relaxed);
        inc(&m.dpop_verifications);
        match verified {
            Ok(p) => Ok(Some(p)),
            Err(e) => {
                if let ProofError::Invalid(_) = e {
                    inc(&m.dpop_proofs_invalid);
                    // A nonce challenge is the protocol, not a failure.
                    self.proof_failed(client);
                } else {
                    inc(&m.dpop_proofs_use_nonce);
                }
                tracing::info!(reason = %e, "DPoP proof refused");
                Err(ProofFailure::Proof(e))
            }
        }
    }

    /// Records a verified proof's `jti` once its credential checked out: refused if it was
    /// used before (a replay, charged to `client`) or the cache is at its bound.
    pub(super) async fn record_proof(
        &self,
        proof: &Proof,
        client: IpAddr,
    ) -> Result<(), ProofFailure> {
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
        self.jti_verdict(outcome, client)
    }

    /// Refuses a proof whose `jti` was used before (or a full cache) without recording it:
    /// a refresh asks this before it spends a token, so a replayed proof spends nothing.
    pub(super) async fn peek_proof(
        &self,
        proof: &Proof,
        client: IpAddr,
    ) -> Result<(), ProofFailure> {
        let outcome = self
            .0
            .store
            .peek_dpop_jti(&proof.replay_key(), now_ms(), self.0.dpop.jti_cap)
            .await
            .map_err(ProofFailure::Store)?;
        match outcome {
            JtiOutcome::Fresh => Ok(()),
            other => self.jti_verdict(other, client),
        }
    }

    fn jti_verdict(&self, outcome: JtiOutcome, client: IpAddr) -> Result<(), ProofFailure> {
        let m = &self.0.metrics;
        match outcome {
            JtiOutcome::Fresh => {
                inc(&m.dpop_proofs_accepted);
                Ok(())
            }
            JtiOutcome::Replayed => {
                inc(&m.dpop_proofs_replayed);
                self.proof_failed(client);
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

/// Middleware on every API and token-endpoint route: a request carrying a `DPoP` header from
/// an address that backs off from failed proofs is answered 429 before anything else is done
/// for it (its body is not read or parsed, no signature verified, the store not asked), so a
/// flood of made-up proofs costs the server as little as an HTTP answer can.
pub(super) async fn dpop_gate(
    State(st): State<AppState>,
    ClientAddr(client): ClientAddr,
    req: Request,
    next: Next,
) -> Response {
    if req.headers().contains_key("dpop") {
        if let Err(refused) = st.proof_gate(client) {
            return refused.at_token_endpoint().into_response();
        }
    }
    next.run(req).await
}

/// Middleware: while nonces are on, every response carries a fresh `DPoP-Nonce`.
pub(super) async fn dpop_nonce_header(State(st): State<AppState>, mut resp: Response) -> Response {
    if let Some(n) = &st.0.dpop.nonces {
        if let Ok(v) = HeaderValue::from_str(&n.current(now_secs())) {
            resp.headers_mut().insert(DPOP_NONCE, v);
        }
    }
    resp
}
