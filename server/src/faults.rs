//! Test-only fault injection for the refresh (`POST /auth/refresh`, and the refresh grant
//! at `POST /token`) and `/api/*` (routed only with `--test-faults`).

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// One scripted misbehaviour of the next refresh request (at `/auth/refresh` or the refresh
/// grant at `/token`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Answer with this 4xx/5xx status and a JSON error; the token is not touched.
    Status { status: u16 },
    /// Close the connection without any response.
    Drop,
    /// Wait `ms` milliseconds (at most [`MAX_WAIT_MS`]), then close the connection without
    /// any response.
    Hang {
        #[serde(default = "default_hang_ms")]
        ms: u64,
    },
    /// 200 with a truncated JSON body.
    MalformedJson,
    /// 200 with an HTML body.
    NonJson,
    /// 200 JSON without `access_token`.
    NoAccessToken,
    /// 200 JSON of about 10 MB.
    HugeBody,
    /// Issue an access token for the same family without rotating (no `refresh_token` in the
    /// response; the presented token stays valid).
    NoRefreshToken,
    /// Rotate for real, then close the connection without a response.
    LostResponse,
    /// Wait `ms` milliseconds (at most [`MAX_WAIT_MS`]), then process normally.
    Delay {
        #[serde(default = "default_delay_ms")]
        ms: u64,
    },
}

/// The longest `hang` or `delay`: below the request timeout, so a fault ends as scripted.
pub const MAX_WAIT_MS: u64 = 20_000;

fn default_hang_ms() -> u64 {
    MAX_WAIT_MS
}

fn default_delay_ms() -> u64 {
    500
}

/// Body of `POST /test/faults`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    #[serde(default)]
    pub refresh: Vec<Fault>,
    #[serde(default)]
    pub api_always_401: bool,
    /// Answer this many of the next `/api/*` calls with a DPoP nonce challenge (`401`,
    /// `WWW-Authenticate: DPoP error="use_dpop_nonce"`), whatever nonce their proof names.
    #[serde(default)]
    pub api_nonce_challenges: u32,
}

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<Fault>,
    api_always_401: bool,
    api_nonce_challenges: u32,
}

#[derive(Debug, Default)]
pub struct Faults {
    inner: Mutex<Inner>,
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn replace(&self, plan: FaultPlan) {
        let mut g = self.lock();
        g.queue = plan.refresh.into();
        g.api_always_401 = plan.api_always_401;
        g.api_nonce_challenges = plan.api_nonce_challenges;
    }

    pub fn clear(&self) {
        self.replace(FaultPlan::default());
    }

    pub fn pop_refresh(&self) -> Option<Fault> {
        self.lock().queue.pop_front()
    }

    /// True while refresh faults are queued.
    pub fn refresh_pending(&self) -> bool {
        !self.lock().queue.is_empty()
    }

    pub fn api_always_401(&self) -> bool {
        self.lock().api_always_401
    }

    /// Takes one of the scripted nonce challenges, if any is left.
    pub fn take_api_nonce_challenge(&self) -> bool {
        let mut g = self.lock();
        let left = g.api_nonce_challenges > 0;
        g.api_nonce_challenges = g.api_nonce_challenges.saturating_sub(1);
        left
    }

    pub fn state(&self) -> serde_json::Value {
        let g = self.lock();
        serde_json::json!({
            "remaining": g.queue.len(),
            "refresh": g.queue,
            "api_always_401": g.api_always_401,
            "api_nonce_challenges": g.api_nonce_challenges,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        let plan: FaultPlan = serde_json::from_str(
            r#"{"refresh":[{"kind":"status","status":503},{"kind":"drop"},{"kind":"hang","ms":5},
            {"kind":"malformed_json"},{"kind":"non_json"},{"kind":"no_access_token"},
            {"kind":"huge_body"},{"kind":"no_refresh_token"},{"kind":"lost_response"},
            {"kind":"delay","ms":1},{"kind":"hang"}],"api_always_401":true,
            "api_nonce_challenges":2}"#,
        )
        .unwrap();
        let faults = Faults::default();
        faults.replace(plan.clone());
        assert!(faults.take_api_nonce_challenge() && faults.take_api_nonce_challenge());
        assert!(!faults.take_api_nonce_challenge(), "two, then none");
        assert_eq!(plan.refresh.len(), 11);
        assert_eq!(plan.refresh[10], Fault::Hang { ms: MAX_WAIT_MS });
        assert!(serde_json::from_str::<FaultPlan>(r#"{"refresh":[{"kind":"nope"}]}"#).is_err());
    }
}
