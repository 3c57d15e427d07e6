//! `/api/*` (bearer-authenticated), JWKS and metrics.

use subtle::ConstantTimeEq as _;

use super::*;

// /api/*

/// A request carrying a valid access token of a live session.
pub struct Authenticated {
    pub claims: Claims,
    pub session: Session,
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    /// A DPoP proof is recorded (replay cache) only after the token, the proof and the
    /// session all checked out. An invalid or replayed proof is charged to its address,
    /// whose further proofs are refused unread once it backs off. (Token errors are not
    /// charged: an expired token or a session ended in another tab is the normal flow, and
    /// a made-up token never reaches the store.)
    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        let Ok(ClientAddr(client)) = ClientAddr::from_request_parts(parts, st).await;
        if parts.headers.contains_key("dpop") {
            st.proof_gate(client).map_err(ProofFailure::at_resource)?;
        }
        let (auth, proof) = authenticate(parts, st, client).await?;
        if let Some(proof) = proof {
            st.record_proof(&proof, client)
                .await
                .map_err(ProofFailure::at_resource)?;
        }
        Ok(auth)
    }
}

/// The token, its DPoP binding and its session: the request's identity and its verified
/// (not yet recorded) proof.
async fn authenticate(
    parts: &Parts,
    st: &AppState,
    client: std::net::IpAddr,
) -> Result<(Authenticated, Option<crate::dpop::Proof>), ApiError> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Err(ApiError::missing_token());
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::invalid_token("malformed authorization header"))?;
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    let dpop_scheme = scheme.eq_ignore_ascii_case("dpop");
    if !dpop_scheme && !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::missing_token());
    }
    // Token errors are answered in the scheme the client used.
    let token_error = |d: &str| {
        if dpop_scheme {
            ApiError::dpop_challenge("invalid_token", d)
        } else {
            ApiError::invalid_token(d)
        }
    };
    let token = token.trim();
    if token.is_empty() {
        return Err(token_error("access token malformed"));
    }
    let claims =
        st.0.keys
            .verify_access(token)
            .map_err(|e| token_error(e.description()))?;
    let mismatch = |error, d: &str| {
        inc(&st.0.metrics.dpop_mismatch_api);
        ApiError::dpop_challenge(error, d)
    };
    let proof = match (&claims.cnf, dpop_scheme) {
        (None, false) => None,
        // A bound token is never accepted as a bearer token (RFC 9449 §7.2).
        (Some(_), false) => {
            return Err(mismatch(
                "invalid_token",
                "DPoP-bound access token: use the DPoP authorization scheme with a proof",
            ))
        }
        (None, true) => {
            return Err(ApiError::dpop_challenge(
                "invalid_token",
                "access token is not DPoP-bound: use the Bearer scheme",
            ))
        }
        (Some(cnf), true) => {
            let uri = parts
                .extensions
                .get::<OriginalUri>()
                .map_or(&parts.uri, |u| &u.0);
            let proof = st
                .dpop_proof(&parts.headers, &parts.method, uri, Some(token), client)
                .map_err(ProofFailure::at_resource)?;
            let Some(proof) = proof else {
                return Err(mismatch(
                    "invalid_dpop_proof",
                    "DPoP proof required with a DPoP-bound access token",
                ));
            };
            if !bool::from(proof.jkt.as_bytes().ct_eq(cnf.jkt.as_bytes())) {
                return Err(mismatch(
                    "invalid_dpop_proof",
                    "DPoP proof key does not match the access token's key",
                ));
            }
            Some(proof)
        }
    };
    let session =
        st.0.store
            .session(&claims.sid)
            .await
            .map_err(ApiError::store)?
            .ok_or_else(|| token_error("session unknown"))?;
    if session.revoked {
        return Err(token_error("session revoked"));
    }
    if session.user_id.to_string() != claims.sub {
        return Err(token_error("access token subject mismatch"));
    }
    Ok((Authenticated { claims, session }, proof))
}

pub(super) async fn count_api(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    if resp.extensions().get::<crate::error::Faulted>().is_none() {
        st.0.metrics.api_request(resp.status().as_u16());
    }
    resp
}

pub(super) async fn me(auth: Authenticated) -> Response {
    no_store(
        Json(serde_json::json!({
            "sub": auth.claims.sub,
            "username": auth.session.username,
            "sid": auth.session.family_id,
        }))
        .into_response(),
    )
}

pub(super) async fn echo(
    State(st): State<AppState>,
    auth: Result<Authenticated, ApiError>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // The token is checked before the body is read: an unauthenticated request never makes
    // the server buffer its body (a small one is dropped so the client reads the 401).
    if let Err(e) = auth {
        discard_body(body, Duration::from_secs(1)).await;
        return Err(e);
    }
    let bytes = st.read_body(&headers, body, API_BODY_LIMIT).await?;
    let content_type = headers
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    Ok(no_store(
        Json(serde_json::json!({
            "method": method.as_str(),
            "content_type": content_type,
            "body_base64": base64::engine::general_purpose::STANDARD.encode(&bytes),
        }))
        .into_response(),
    ))
}

// ---------------------------------------------------------------------------------------------
// misc

pub(super) async fn jwks(State(st): State<AppState>) -> Response {
    let mut resp = Json(st.0.keys.jwks()).into_response();
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
    resp
}

pub(super) async fn metrics(State(st): State<AppState>) -> Response {
    let (gate, (accounts, addresses)) = st.signin_stats();
    let gauges = crate::metrics::Gauges {
        hash_slots: gate.permits,
        hashes_in_flight: gate.in_flight,
        hashes_peak: gate.peak,
        hash_waits: gate.waited,
        hashes: gate.hashed,
        throttle_accounts: accounts as u64,
        proof_throttle_addresses: st.proof_throttle_len() as u64,
        throttle_addresses: addresses as u64,
    };
    let mut resp = st.0.metrics.render(&gauges).into_response();
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    no_store(resp)
}
