//! `POST /token` (RFC 6749 §3.2): `grant_type=authorization_code` (§4.1.3 with PKCE, RFC
//! 7636 §4.5, and DPoP-bound codes, RFC 9449 §10) here; `grant_type=refresh_token` is
//! exactly `/auth/refresh`.

use axum::body::Body;
use axum::extract::{OriginalUri, State};
use std::net::IpAddr;

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{client_param, is_form};
use crate::error::ApiError;
use crate::keys::Alg;
use crate::metrics::inc;
use crate::oidc::authorize::Params;
use crate::oidc::code::{self, Presented, MAX_CODE_LEN};
use crate::oidc::id_token;
use crate::routes::dpop::ProofFailure;
use crate::routes::{auth, no_store, now_ms, now_secs, AppState, ClientAddr, AUTH_BODY_LIMIT};
use crate::store::provider::{NewFamily, Redemption};
use crate::tokens::{random_id, RefreshToken};

pub(super) async fn token(
    State(st): State<AppState>,
    ClientAddr(client): ClientAddr,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let bytes = match st.read_body(&headers, body, AUTH_BODY_LIMIT).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let params = form_params(&headers, &bytes);
    match params.as_ref().and_then(|p| p.get("grant_type")) {
        Some("authorization_code") => {
            let params = params.expect("a form was parsed");
            let call = Call {
                method: &method,
                uri: &uri,
                headers: &headers,
                client,
            };
            match exchange(&st, call, &params).await {
                Ok(r) => r,
                Err(e) => e.into_response(),
            }
        }
        None if params.is_some() => {
            ApiError::invalid_request("grant_type is required").into_response()
        }
        // The refresh grant (form or JSON, as /auth/refresh takes it) is /auth/refresh's,
        // which also answers unsupported grant types.
        _ => {
            let answer = auth::refresh(
                State(st),
                ClientAddr(client),
                method,
                OriginalUri(uri),
                headers,
                Body::from(bytes),
            );
            answer.await
        }
    }
}

/// A token request's form parameters (`None` for another body, e.g. JSON).
fn form_params(headers: &HeaderMap, bytes: &[u8]) -> Option<Params> {
    is_form(headers).then(|| Params::new(url::form_urlencoded::parse(bytes).into_owned()))
}

/// Whether [`token`] answers this request with the refresh grant: a form with
/// `grant_type=refresh_token`, or a JSON body (as `/auth/refresh` takes it).
pub(in crate::routes) fn is_refresh_grant(headers: &HeaderMap, bytes: &[u8]) -> bool {
    match form_params(headers, bytes) {
        Some(p) => p.get("grant_type") == Some("refresh_token"),
        None => true,
    }
}

/// The request around a token request's parameters.
#[derive(Clone, Copy)]
struct Call<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    client: IpAddr,
}

async fn exchange(st: &AppState, call: Call<'_>, p: &Params) -> Result<Response, ApiError> {
    let client_id = client_param(st, p)?;
    let (Some(code), Some(redirect_uri), Some(verifier)) =
        (p.get("code"), p.get("redirect_uri"), p.get("code_verifier"))
    else {
        return Err(ApiError::invalid_request(
            "code, redirect_uri and code_verifier are required",
        ));
    };
    if !code::valid_verifier(verifier) {
        return Err(ApiError::invalid_request(
            "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~",
        ));
    }
    if code.len() > MAX_CODE_LEN {
        inc(&st.0.metrics.codes_unknown);
        return Err(ApiError::invalid_grant("authorization code unknown"));
    }
    // An invalid proof is refused before the store is asked, a replayed one before the code
    // can be spent; its jti is recorded once the code is redeemed.
    let client = call.client;
    let proof = st
        .dpop_proof(call.headers, call.method, call.uri, None, client)
        .map_err(ProofFailure::at_token_endpoint)?;
    if let Some(p) = &proof {
        st.peek_proof(p, client)
            .await
            .map_err(ProofFailure::at_token_endpoint)?;
    }
    let presented = Presented {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        code_verifier: verifier.to_owned(),
        proof_jkt: proof.as_ref().map(|p| p.jkt.clone()),
    };
    let family_id = random_id();
    let refresh = RefreshToken::generate();
    let family = NewFamily {
        family_id: &family_id,
        token: &refresh.hash(),
    };
    let m = &st.0.metrics;
    let redemption =
        st.0.store
            .redeem_code(&code::hash(code), &presented, family, now_ms())
            .await
            .map_err(ApiError::store)?;
    if let Some(p) = &proof {
        match &redemption {
            Redemption::Redeemed { .. } => st
                .record_proof(p, client)
                .await
                .map_err(ProofFailure::at_token_endpoint)?,
            _ => st.proof_failed(client),
        }
    }
    let (grant, jkt) = match redemption {
        Redemption::Redeemed { grant, jkt } => (grant, jkt),
        Redemption::Refused(why) => {
            inc(&m.codes_refused);
            tracing::info!(
                client_id,
                reason = why,
                "authorization code refused (not spent)"
            );
            return Err(ApiError::invalid_grant(why));
        }
        Redemption::Reused {
            family_id,
            newly_revoked,
        } => {
            inc(&m.codes_reused);
            if newly_revoked {
                inc(&m.families_revoked);
            }
            tracing::warn!(client_id, sid = ?family_id, "authorization code used twice; the session it started is revoked");
            return Err(ApiError::invalid_grant(
                "authorization code already used; the session it started is revoked",
            ));
        }
        Redemption::Unknown => {
            inc(&m.codes_unknown);
            return Err(ApiError::invalid_grant("authorization code unknown"));
        }
    };
    inc(&m.codes_redeemed);
    let access = st.issue_access(grant.user_id, &family_id, jkt.as_deref())?;
    let mut body = st.token_body(access, Some(refresh), jkt.is_some());
    body["scope"] = grant.scope.clone().into();
    if grant.scope.split(' ').any(|s| s == "openid") {
        let now = now_secs();
        let claims = id_token::claims(&st.0.provider.issuer, &grant, now);
        let ring = st.0.keys.ring();
        let signed = ring
            .sign(Alg::RS256, None, &claims, now)
            .map_err(ApiError::internal)?;
        body["id_token"] = signed.into();
    }
    tracing::info!(client_id, user_id = grant.user_id, sid = %family_id, dpop = jkt.is_some(), "authorization code redeemed");
    Ok(no_store((StatusCode::OK, Json(body)).into_response()))
}
