//! `/auth/*`: login, refresh (rotation, grace, reuse), logout.

use super::*;

// /auth/*

#[derive(Deserialize)]
struct LoginRequest {
    username: Option<String>,
    password: Option<String>,
}

pub(super) async fn login(
    State(st): State<AppState>,
    ClientAddr(client): ClientAddr,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = st.read_body(&headers, body, AUTH_BODY_LIMIT).await?;
    let req: LoginRequest = parse_json_body(&headers, &bytes)?;
    let (Some(username), Some(password)) = (req.username, req.password) else {
        return Err(ApiError::invalid_request(
            "username and password are required",
        ));
    };
    if username.len() > 256 || password.len() > 4096 {
        return Err(ApiError::invalid_request("username or password too long"));
    }
    // A valid proof binds the new session family to the proof's key; its jti is recorded
    // once the password checked out.
    let proof = st
        .dpop_proof(&headers, &method, &uri, None, client)
        .map_err(ProofFailure::at_token_endpoint)?;
    let user = st.check_password(&username, &password, client).await?;
    if let Some(p) = &proof {
        st.record_proof(p, client)
            .await
            .map_err(ProofFailure::at_token_endpoint)?;
    }
    let jkt = proof.map(|p| p.jkt);
    let family_id = random_id();
    let refresh = RefreshToken::generate();
    st.0.store
        .create_family_dpop(
            user.id,
            &family_id,
            &refresh.hash(),
            jkt.as_deref(),
            now_ms(),
        )
        .await
        .map_err(ApiError::store)?;
    let access = st.issue_access(user.id, &family_id, jkt.as_deref())?;
    tracing::info!(user_id = user.id, sid = %family_id, dpop = jkt.is_some(), "login");
    Ok(st.token_response(access, Some(refresh), jkt.is_some()))
}

#[derive(Deserialize)]
struct RefreshRequest {
    grant_type: Option<String>,
    refresh_token: Option<String>,
}

/// What a refresh does with a usable token: rotate it (always, but for the non-rotating
/// test fault, which only checks it and answers without a new refresh token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refresh {
    Rotate,
    CheckOnly,
}

pub(super) async fn refresh(
    State(st): State<AppState>,
    client: ClientAddr,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let req = RefreshCall {
        client,
        method: &method,
        uri: &uri,
        headers: &headers,
    };
    answer_refresh(&st, req, body, Refresh::Rotate).await
}

/// What a refresh needs of its request besides the body.
#[derive(Debug, Clone, Copy)]
pub(super) struct RefreshCall<'a> {
    pub(super) client: ClientAddr,
    pub(super) method: &'a Method,
    pub(super) uri: &'a axum::http::Uri,
    pub(super) headers: &'a HeaderMap,
}

/// The refresh endpoint's answer, success or error.
pub(super) async fn answer_refresh(
    st: &AppState,
    req: RefreshCall<'_>,
    body: Body,
    mode: Refresh,
) -> Response {
    match do_refresh(st, req, body, mode).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn do_refresh(
    st: &AppState,
    call: RefreshCall<'_>,
    body: Body,
    mode: Refresh,
) -> Result<Response, ApiError> {
    let (headers, client) = (call.headers, call.client.0);
    let no_rotate = mode == Refresh::CheckOnly;
    // A non-rotating (faulted) refresh is not counted at all.
    let metrics = (!no_rotate).then_some(&st.0.metrics);
    let count_invalid = |e: ApiError| {
        if let Some(m) = metrics {
            inc(&m.refresh_invalid);
        }
        e
    };
    let bytes = st
        .read_body(headers, body, AUTH_BODY_LIMIT)
        .await
        .map_err(count_invalid)?;
    let req: RefreshRequest = parse_body(headers, &bytes).map_err(count_invalid)?;
    if let Some(gt) = &req.grant_type {
        if gt != "refresh_token" {
            return Err(count_invalid(ApiError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only grant_type=refresh_token is supported",
            )));
        }
    }
    let Some(token) = req.refresh_token.filter(|t| !t.is_empty()) else {
        return Err(count_invalid(ApiError::invalid_request(
            "refresh_token is required",
        )));
    };
    if token.len() > MAX_TOKEN_LEN {
        return Err(count_invalid(ApiError::invalid_grant(
            "refresh token unknown",
        )));
    }
    // An invalid proof is refused before the store is asked, a replayed one before anything
    // is spent; its jti is recorded once the token checked out.
    let proof = st
        .dpop_proof(headers, call.method, call.uri, None, client)
        .map_err(ProofFailure::at_token_endpoint)?;
    if let Some(p) = &proof {
        st.peek_proof(p, client)
            .await
            .map_err(ProofFailure::at_token_endpoint)?;
    }
    let proof_jkt = proof.as_ref().map(|p| p.jkt.as_str());
    let presented = RefreshToken::from_presented(token);
    let mut successors = st.0.keys.successors(&presented, now_secs());
    let p_hash = presented.hash();
    let s_hashes: Vec<_> = successors.iter().map(RefreshToken::hash).collect();
    let (store, policy) = (&st.0.store, &st.0.policy);
    // The family's binding is read and enforced inside the rotation's transaction.
    let rotation = if no_rotate {
        store.check_dpop(&p_hash, proof_jkt, now_ms(), policy).await
    } else {
        store
            .rotate_dpop(&p_hash, &s_hashes, proof_jkt, now_ms(), policy)
            .await
    }
    .map_err(ApiError::store)?;
    let (outcome, jkt) = (rotation.outcome, rotation.jkt);
    let successor = successors.swap_remove(rotation.successor.min(successors.len() - 1));
    let bound = jkt.is_some();
    let m = &st.0.metrics;
    let count = |c: &std::sync::atomic::AtomicU64| {
        if !no_rotate {
            inc(c)
        }
    };
    let answer = match outcome {
        RotateOutcome::Rotated { user_id, family_id } => {
            let access = st.issue_access(user_id, &family_id, jkt.as_deref())?;
            count(&m.refresh_rotated);
            tracing::debug!(sid = %family_id, dpop = bound, "refresh token rotated");
            Ok(st.token_response(access, Some(successor), bound))
        }
        RotateOutcome::Grace { user_id, family_id } => {
            let access = st.issue_access(user_id, &family_id, jkt.as_deref())?;
            count(&m.refresh_grace);
            tracing::info!(sid = %family_id, "spent refresh token re-presented within the grace window; same successor returned");
            Ok(st.token_response(access, Some(successor), bound))
        }
        RotateOutcome::Valid { user_id, family_id } => {
            let access = st.issue_access(user_id, &family_id, jkt.as_deref())?;
            Ok(st.token_response(access, None, bound))
        }
        RotateOutcome::DpopMismatch { family_id } => {
            count(&m.refresh_dpop_mismatch);
            tracing::warn!(sid = %family_id, with_proof = proof.is_some(), "refresh of a DPoP-bound session without its key refused (token not spent, session not revoked)");
            Err(ApiError::invalid_grant(if proof.is_some() {
                "DPoP proof key does not match the session's key"
            } else {
                "this session is DPoP-bound: a DPoP proof by its key is required"
            }))
        }
        RotateOutcome::Unknown => {
            count(&m.refresh_invalid);
            Err(ApiError::invalid_grant("refresh token unknown"))
        }
        RotateOutcome::Revoked => {
            count(&m.refresh_invalid);
            Err(ApiError::invalid_grant("session revoked"))
        }
        RotateOutcome::Expired => {
            count(&m.refresh_expired);
            Err(ApiError::invalid_grant("refresh token expired"))
        }
        RotateOutcome::Reused {
            family_id,
            newly_revoked,
        } => {
            if no_rotate {
                Err(ApiError::invalid_grant("refresh token already used"))
            } else {
                count(&m.refresh_reused);
                if newly_revoked {
                    count(&m.families_revoked);
                }
                tracing::warn!(sid = %family_id, "refresh token reuse detected; session family revoked");
                Err(ApiError::invalid_grant(
                    "refresh token reuse detected; session revoked",
                ))
            }
        }
    };
    if let Some(p) = &proof {
        match &answer {
            Ok(_) => st
                .record_proof(p, client)
                .await
                .map_err(ProofFailure::at_token_endpoint)?,
            Err(_) => st.proof_failed(client),
        }
    }
    answer
}

#[derive(Deserialize)]
struct LogoutRequest {
    refresh_token: Option<String>,
}

pub(super) async fn logout(
    State(st): State<AppState>,
    ClientAddr(client): ClientAddr,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = st.read_body(&headers, body, AUTH_BODY_LIMIT).await?;
    let req: LogoutRequest = parse_body(&headers, &bytes)?;
    let Some(token) = req.refresh_token else {
        return Err(ApiError::invalid_request("refresh_token is required"));
    };
    let proof = st
        .dpop_proof(&headers, &method, &uri, None, client)
        .map_err(ProofFailure::at_token_endpoint)?;
    let outcome = if !token.is_empty() && token.len() <= MAX_TOKEN_LEN {
        let hash = RefreshToken::from_presented(token).hash();
        let jkt = proof.as_ref().map(|p| p.jkt.as_str());
        st.0.store
            .revoke_family_dpop(&hash, jkt, now_ms(), "logout")
            .await
            .map_err(ApiError::store)?
    } else {
        RevokeOutcome::Unchanged
    };
    // A proof whose token revoked something is recorded; one that came with nothing is a
    // failure of its address (a made-up proof costs nothing lasting).
    if let Some(p) = &proof {
        match outcome {
            RevokeOutcome::Revoked => {
                if let Err(e) = st.record_proof(p, client).await {
                    tracing::info!("logout proof not recorded: {e:?}");
                }
            }
            _ => st.proof_failed(client),
        }
    }
    match outcome {
        RevokeOutcome::Revoked => {
            inc(&st.0.metrics.families_revoked);
            tracing::info!("logout: session family revoked");
        }
        RevokeOutcome::Unchanged => {}
        RevokeOutcome::DpopMismatch => {
            // A thief holding only the refresh token must not sign the user out.
            inc(&st.0.metrics.dpop_mismatch_logout);
            tracing::warn!("logout of a DPoP-bound session without its key refused");
            return Err(ApiError::invalid_grant(
                "this session is DPoP-bound: a DPoP proof by its key is required",
            ));
        }
    }
    Ok(no_store(StatusCode::NO_CONTENT.into_response()))
}
