//! DPoP at the request level: the settings, verifying a request's `DPoP` header (with the
//! replay cache), the answers to a refused proof and the `DPoP-Nonce` response header. The
//! proof format itself is in [`crate::dpop`].

use anyhow::{Context, Result};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;

use super::{now_ms, now_secs, AppState};
use crate::dpop::{self, Nonces, Proof, ProofError};
use crate::error::ApiError;
use crate::keys::{KeyRing, Purpose};
use crate::metrics::inc;
use crate::store::JtiOutcome;
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
    Store(anyhow::Error),
}

impl ProofFailure {
    /// The answer at the token endpoint: 400 `invalid_dpop_proof` / `use_dpop_nonce`.
    pub(super) fn at_token_endpoint(self) -> ApiError {
        match self {
            ProofFailure::Proof(ProofError::Invalid(d)) => ApiError::invalid_dpop_proof(d),
            ProofFailure::Proof(ProofError::UseNonce) => ApiError::use_dpop_nonce(),
            ProofFailure::CacheFull => replay_cache_full(),
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
    pub(super) async fn dpop_proof(
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
pub(super) async fn dpop_nonce_header(State(st): State<AppState>, mut resp: Response) -> Response {
    if let Some(n) = &st.0.dpop.nonces {
        if let Ok(v) = HeaderValue::from_str(&n.current(now_secs())) {
            resp.headers_mut().insert(DPOP_NONCE, v);
        }
    }
    resp
}
