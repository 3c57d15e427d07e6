//! Discovery (OIDC Discovery §4, RFC 8414 §3), `POST /par` (RFC 9126), `POST /revoke`
//! (RFC 7009) and the test-only run-time client registration.

use axum::body::Body;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{client_param, invalid_client, read_form, ClientRegistration};
use crate::error::ApiError;
use crate::oidc::authorize::{known_client, request, AuthRequest, Params};
use crate::oidc::clients::{Client, Clients};
use crate::oidc::discovery;
use crate::oidc::par::{self, PAR_TTL_SECS};
use crate::routes::body::parse_json;
use crate::routes::dpop::ProofFailure;
use crate::routes::{no_store, now_ms, AppState, ClientAddr, AUTH_BODY_LIMIT, MAX_TOKEN_LEN};
use crate::store::RevokeOutcome;
use crate::tokens::RefreshToken;

pub(super) async fn discovery(State(st): State<AppState>) -> Response {
    Json(discovery::document(&st.0.provider.issuer)).into_response()
}

pub(super) async fn par(
    State(st): State<AppState>,
    ClientAddr(client): ClientAddr,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let p = read_form(&st, &headers, body).await?;
    // The proof is checked first, and its jti recorded once the request validated.
    let proof = st
        .dpop_proof(&headers, &method, &uri, None, client)
        .map_err(ProofFailure::at_token_endpoint)?;
    let req = match pushed_request(&st, &p, proof.as_ref().map(|p| p.jkt.as_str())) {
        Ok(req) => req,
        Err(e) => {
            if proof.is_some() {
                st.proof_failed(client);
            }
            return Err(e);
        }
    };
    if let Some(proof) = &proof {
        st.record_proof(proof, client)
            .await
            .map_err(ProofFailure::at_token_endpoint)?;
    }
    let (request_uri, handle) = par::new_request_uri();
    let ttl_ms = i64::try_from(PAR_TTL_SECS * 1000).unwrap_or(60_000);
    st.0.store
        .put_par(&handle, &req, now_ms() + ttl_ms)
        .await
        .map_err(ApiError::store)?;
    tracing::info!(client_id = %req.client_id, dpop = req.dpop_jkt.is_some(), "authorization request pushed");
    let body = serde_json::json!({"request_uri": request_uri, "expires_in": PAR_TTL_SECS});
    Ok(no_store((StatusCode::CREATED, Json(body)).into_response()))
}

/// The validated pushed request, bound to the key of a proof sent with it (RFC 9449 §10.1).
fn pushed_request(
    st: &AppState,
    p: &Params,
    proof_jkt: Option<&str>,
) -> Result<AuthRequest, ApiError> {
    let clients = st.0.provider.clients();
    let client = known_client(p, &clients).map_err(|e| match e.code() {
        ("invalid_client", _) => invalid_client(),
        (_, d) => ApiError::invalid_request(d.to_owned()),
    })?;
    if p.get("request_uri").is_some() {
        return Err(ApiError::invalid_request(
            "request_uri is not allowed in a pushed request",
        ));
    }
    let redirect_uri = p
        .get("redirect_uri")
        .ok_or_else(|| ApiError::invalid_request("redirect_uri is required"))?;
    if p.repeated("redirect_uri") || !client.allows_redirect(redirect_uri) {
        return Err(ApiError::invalid_request(
            "redirect_uri is not registered for this client",
        ));
    }
    let req = request(p, client, redirect_uri).map_err(|e| {
        let (error, d) = e.code();
        ApiError::new(StatusCode::BAD_REQUEST, error, d.to_owned())
    })?;
    let dpop_jkt =
        par::binding(req.dpop_jkt.as_deref(), proof_jkt).map_err(ApiError::invalid_dpop_proof)?;
    Ok(AuthRequest { dpop_jkt, ..req })
}

/// `POST /revoke`: a refresh token revokes its family; an access token revokes its
/// session's family; unknown tokens are answered 200 (RFC 7009 §2.2). A DPoP-bound session
/// is revoked only with a proof by its key (as `/auth/logout`).
pub(super) async fn revoke(
    State(st): State<AppState>,
    ClientAddr(client): ClientAddr,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let p = read_form(&st, &headers, body).await?;
    let _client_id = client_param(&st, &p)?;
    let token = p
        .get("token")
        .ok_or_else(|| ApiError::invalid_request("token is required"))?;
    let proof = st
        .dpop_proof(&headers, &method, &uri, None, client)
        .map_err(ProofFailure::at_token_endpoint)?;
    let revoked = revoke_token(&st, token, proof.as_ref().map(|p| p.jkt.as_str())).await;
    // As at /auth/logout: a proof whose token revoked something is recorded; one that came
    // with nothing is a failure of its address.
    if let Some(p) = &proof {
        match revoked {
            Ok(true) => {
                if let Err(e) = st.record_proof(p, client).await {
                    tracing::info!("revocation proof not recorded: {e:?}");
                }
            }
            _ => st.proof_failed(client),
        }
    }
    revoked.map(|_| no_store(StatusCode::OK.into_response()))
}

/// Revokes the family of `token` (an access or a refresh token); true if it was live.
async fn revoke_token(
    st: &AppState,
    token: &str,
    proof_jkt: Option<&str>,
) -> Result<bool, ApiError> {
    let mismatch = || {
        ApiError::invalid_grant("this session is DPoP-bound: a DPoP proof by its key is required")
    };
    let m = &st.0.metrics;
    if token.len() > MAX_TOKEN_LEN * 8 {
        return Ok(false);
    }
    // An access token (ours, unexpired): its session's family.
    if let Ok(claims) = st.0.keys.verify_access(token) {
        if let Some(cnf) = &claims.cnf {
            if proof_jkt != Some(cnf.jkt.as_str()) {
                crate::metrics::inc(&m.dpop_mismatch_revoke);
                return Err(mismatch());
            }
        }
        let revoked =
            st.0.store
                .revoke_family_by_id(&claims.sid, now_ms(), "revocation")
                .await
                .map_err(ApiError::store)?;
        if revoked {
            crate::metrics::inc(&m.families_revoked);
            tracing::info!(sid = %claims.sid, "access token revoked: session family revoked");
        }
        return Ok(revoked);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Ok(false);
    }
    let hash = RefreshToken::from_presented(token.to_owned()).hash();
    let outcome =
        st.0.store
            .revoke_family_dpop(&hash, proof_jkt, now_ms(), "revocation")
            .await
            .map_err(ApiError::store)?;
    match outcome {
        RevokeOutcome::Revoked => {
            crate::metrics::inc(&m.families_revoked);
            tracing::info!("refresh token revoked: session family revoked");
            Ok(true)
        }
        RevokeOutcome::Unchanged => Ok(false),
        RevokeOutcome::DpopMismatch => {
            crate::metrics::inc(&m.dpop_mismatch_revoke);
            tracing::warn!("revocation of a DPoP-bound session without its key refused");
            Err(mismatch())
        }
    }
}

/// `POST /test/clients` (only with `--test-faults`): adds or replaces a client on this
/// instance.
pub(super) async fn register_client(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = st.read_body(&headers, body, AUTH_BODY_LIMIT).await?;
    let reg: ClientRegistration = parse_json(&bytes)?;
    let client = Clients::check(Client {
        id: reg.client_id,
        redirect_uris: reg.redirect_uris,
        post_logout_redirect_uris: reg.post_logout_redirect_uris,
    })
    .map_err(ApiError::invalid_request)?;
    tracing::info!(client_id = %client.id, "test client registered");
    st.0.provider
        .clients
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(client);
    Ok(no_store(StatusCode::NO_CONTENT.into_response()))
}
