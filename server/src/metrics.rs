//! Prometheus counters (text exposition format, no external crate needed).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Metrics {
    pub logins_success: AtomicU64,
    pub logins_invalid_credentials: AtomicU64,
    /// Sign-ins refused (429) while the account or the address backs off.
    pub logins_throttled: AtomicU64,
    /// Sign-ins refused (503) because no password-hash slot came free in time.
    pub logins_busy: AtomicU64,
    pub refresh_rotated: AtomicU64,
    pub refresh_grace: AtomicU64,
    pub refresh_reused: AtomicU64,
    pub refresh_invalid: AtomicU64,
    pub refresh_expired: AtomicU64,
    pub families_revoked: AtomicU64,
    /// Refresh of a DPoP-bound family without a proof by its key.
    pub refresh_dpop_mismatch: AtomicU64,
    pub dpop_proofs_accepted: AtomicU64,
    pub dpop_proofs_invalid: AtomicU64,
    pub dpop_proofs_replayed: AtomicU64,
    pub dpop_proofs_use_nonce: AtomicU64,
    pub dpop_proofs_cache_full: AtomicU64,
    /// Proofs refused unread because their address's failed proofs back off.
    pub dpop_proofs_throttled: AtomicU64,
    /// Entries in the DPoP replay cache after the latest prune (a gauge).
    pub dpop_jti_entries: AtomicU64,
    /// Logout of a DPoP-bound family without a proof by its key.
    pub dpop_mismatch_logout: AtomicU64,
    /// A bound access token at /api/* without a proof by its key (or with the Bearer scheme).
    pub dpop_mismatch_api: AtomicU64,
    /// Revocation (`/revoke`) of a DPoP-bound session without a proof by its key.
    pub dpop_mismatch_revoke: AtomicU64,
    /// Authorization codes issued, and token requests presenting one, by outcome.
    pub codes_issued: AtomicU64,
    pub codes_redeemed: AtomicU64,
    pub codes_refused: AtomicU64,
    pub codes_reused: AtomicU64,
    pub codes_unknown: AtomicU64,
    /// Connections accepted, open now (shared with the accept loop), and the times the
    /// accept loop waited for a free connection slot.
    pub connections: AtomicU64,
    pub connections_open: std::sync::Arc<AtomicU64>,
    pub connection_waits: AtomicU64,
    /// Connections closed when accepted: their address had its bound open already
    /// (`--max-connections-per-address`).
    pub connections_refused: AtomicU64,
    /// Throttled answers (429) held for `--throttle-delay-ms` before they were sent.
    pub throttled_held: AtomicU64,
    /// Requests refused by the request bounds: a body (or a whole request) not received in
    /// time (408), a body over its limit (413).
    pub body_timeouts: AtomicU64,
    pub bodies_too_large: AtomicU64,
    /// Connections closed because a request's headers (or an idle connection's next
    /// request) did not arrive in time, and requests answered 408 at the request timeout.
    pub header_timeouts: AtomicU64,
    pub request_timeouts: AtomicU64,
    /// DPoP proof signature checks: their total time (ns) and count.
    pub dpop_verify_nanos: AtomicU64,
    pub dpop_verifications: AtomicU64,
    api_requests: Mutex<BTreeMap<u16, u64>>,
}

/// Values read from elsewhere when `/metrics` is rendered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Password-hash slots (the semaphore's size).
    pub hash_slots: u64,
    pub hashes_in_flight: u64,
    /// The most hashes that ran at once since start.
    pub hashes_peak: u64,
    /// Hashes that waited for a slot (a counter).
    pub hash_waits: u64,
    /// Hashes computed (a counter).
    pub hashes: u64,
    /// Addresses the DPoP proof throttle remembers.
    pub proof_throttle_addresses: u64,
    /// Keys the sign-in throttle remembers.
    pub throttle_accounts: u64,
    pub throttle_addresses: u64,
}

/// Increments a counter.
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    pub fn api_request(&self, status: u16) {
        *self
            .api_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(status)
            .or_default() += 1;
    }

    pub fn render(&self, gauges: &Gauges) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut s = String::with_capacity(2048);
        s.push_str("# HELP rotafetch_logins_total Login attempts by outcome.\n");
        s.push_str("# TYPE rotafetch_logins_total counter\n");
        for (label, c) in [
            ("success", &self.logins_success),
            ("invalid_credentials", &self.logins_invalid_credentials),
            ("throttled", &self.logins_throttled),
            ("busy", &self.logins_busy),
        ] {
            let _ = writeln!(s, "rotafetch_logins_total{{outcome=\"{label}\"}} {}", g(c));
        }
        s.push_str("# HELP rotafetch_refresh_total Refresh requests by outcome.\n");
        s.push_str("# TYPE rotafetch_refresh_total counter\n");
        for (label, c) in [
            ("rotated", &self.refresh_rotated),
            ("grace", &self.refresh_grace),
            ("reused", &self.refresh_reused),
            ("invalid", &self.refresh_invalid),
            ("expired", &self.refresh_expired),
            ("dpop_mismatch", &self.refresh_dpop_mismatch),
        ] {
            let _ = writeln!(s, "rotafetch_refresh_total{{outcome=\"{label}\"}} {}", g(c));
        }
        s.push_str("# HELP rotafetch_dpop_proofs_total DPoP proofs by outcome (rejected: invalid, replayed, use_nonce, cache_full, throttled).\n");
        s.push_str("# TYPE rotafetch_dpop_proofs_total counter\n");
        for (label, c) in [
            ("accepted", &self.dpop_proofs_accepted),
            ("invalid", &self.dpop_proofs_invalid),
            ("replayed", &self.dpop_proofs_replayed),
            ("use_nonce", &self.dpop_proofs_use_nonce),
            ("cache_full", &self.dpop_proofs_cache_full),
            ("throttled", &self.dpop_proofs_throttled),
        ] {
            let _ = writeln!(
                s,
                "rotafetch_dpop_proofs_total{{outcome=\"{label}\"}} {}",
                g(c)
            );
        }
        s.push_str("# HELP rotafetch_dpop_key_mismatch_total Requests refused because a DPoP-bound session or token came without a proof by its key.\n");
        s.push_str("# TYPE rotafetch_dpop_key_mismatch_total counter\n");
        for (label, c) in [
            ("refresh", &self.refresh_dpop_mismatch),
            ("logout", &self.dpop_mismatch_logout),
            ("api", &self.dpop_mismatch_api),
            ("revoke", &self.dpop_mismatch_revoke),
        ] {
            let _ = writeln!(
                s,
                "rotafetch_dpop_key_mismatch_total{{endpoint=\"{label}\"}} {}",
                g(c)
            );
        }
        s.push_str("# HELP rotafetch_authorization_codes_total Authorization codes issued, and presented at the token endpoint by outcome.\n");
        s.push_str("# TYPE rotafetch_authorization_codes_total counter\n");
        for (label, c) in [
            ("issued", &self.codes_issued),
            ("redeemed", &self.codes_redeemed),
            ("refused", &self.codes_refused),
            ("reused", &self.codes_reused),
            ("unknown", &self.codes_unknown),
        ] {
            let _ = writeln!(
                s,
                "rotafetch_authorization_codes_total{{outcome=\"{label}\"}} {}",
                g(c)
            );
        }
        s.push_str("# HELP rotafetch_families_revoked_total Session families revoked (reuse detection or logout).\n");
        s.push_str("# TYPE rotafetch_families_revoked_total counter\n");
        let _ = writeln!(
            s,
            "rotafetch_families_revoked_total {}",
            g(&self.families_revoked)
        );
        let series: [(&str, &str, &str, u64); 19] = [
            ("rotafetch_http_connections_refused_total", "counter", "Connections closed when accepted: their address had --max-connections-per-address open already.", g(&self.connections_refused)),
            ("rotafetch_http_throttled_held_total", "counter", "Throttled answers (429) held for --throttle-delay-ms before they were sent.", g(&self.throttled_held)),
            ("rotafetch_http_header_timeouts_total", "counter", "Connections closed because headers (or an idle connection's next request) did not arrive in time.", g(&self.header_timeouts)),
            ("rotafetch_http_request_timeouts_total", "counter", "Requests answered 408 at the request timeout.", g(&self.request_timeouts)),
            ("rotafetch_dpop_verifications_total", "counter", "DPoP proofs whose signature was checked (see rotafetch_dpop_verify_seconds_total).", g(&self.dpop_verifications)),
            ("rotafetch_password_hashes_total", "counter", "Password hashes computed.", gauges.hashes),
            (
                "rotafetch_http_connections_total",
                "counter",
                "Connections accepted.",
                g(&self.connections),
            ),
            (
                "rotafetch_http_connections_open",
                "gauge",
                "Connections open now.",
                g(&self.connections_open),
            ),
            (
                "rotafetch_http_connection_waits_total",
                "counter",
                "Times the accept loop waited for a free connection slot (--max-connections).",
                g(&self.connection_waits),
            ),
            (
                "rotafetch_http_body_timeouts_total",
                "counter",
                "Requests whose body did not arrive in time (408).",
                g(&self.body_timeouts),
            ),
            (
                "rotafetch_http_bodies_too_large_total",
                "counter",
                "Requests whose body exceeded its limit (413).",
                g(&self.bodies_too_large),
            ),
            (
                "rotafetch_dpop_jti_entries",
                "gauge",
                "Entries in the DPoP replay cache (after the latest prune, every 5 s).",
                g(&self.dpop_jti_entries),
            ),
            (
                "rotafetch_dpop_throttle_addresses",
                "gauge",
                "Client addresses the DPoP proof throttle remembers.",
                gauges.proof_throttle_addresses,
            ),
            (
                "rotafetch_password_hash_slots",
                "gauge",
                "Password hashes allowed at once (memory budget / 19 MiB).",
                gauges.hash_slots,
            ),
            (
                "rotafetch_password_hashes_in_flight",
                "gauge",
                "Password hashes running now.",
                gauges.hashes_in_flight,
            ),
            (
                "rotafetch_password_hashes_peak",
                "gauge",
                "The most password hashes that ran at once since start.",
                gauges.hashes_peak,
            ),
            (
                "rotafetch_password_hash_waits_total",
                "counter",
                "Password hashes that waited for a slot.",
                gauges.hash_waits,
            ),
            (
                "rotafetch_login_throttle_accounts",
                "gauge",
                "Accounts the sign-in throttle remembers.",
                gauges.throttle_accounts,
            ),
            (
                "rotafetch_login_throttle_addresses",
                "gauge",
                "Client addresses the sign-in throttle remembers.",
                gauges.throttle_addresses,
            ),
        ];
        for (name, kind, help, v) in series {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        }
        let secs = g(&self.dpop_verify_nanos) as f64 / 1e9;
        let _ = writeln!(s, "# HELP rotafetch_dpop_verify_seconds_total Time spent checking DPoP proofs (format, signature, claims).\n# TYPE rotafetch_dpop_verify_seconds_total counter\nrotafetch_dpop_verify_seconds_total {secs:.6}");
        s.push_str("# HELP rotafetch_api_requests_total Responses from /api/* by HTTP status.\n");
        s.push_str("# TYPE rotafetch_api_requests_total counter\n");
        let mut api = self
            .api_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        api.entry(200).or_default();
        api.entry(401).or_default();
        for (status, n) in api {
            let _ = writeln!(s, "rotafetch_api_requests_total{{status=\"{status}\"}} {n}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_series_even_when_zero() {
        let m = Metrics::default();
        inc(&m.refresh_grace);
        m.api_request(200);
        m.api_request(413);
        let gauges = Gauges {
            hash_slots: 13,
            ..Gauges::default()
        };
        let text = m.render(&gauges);
        for line in [
            "rotafetch_logins_total{outcome=\"success\"} 0",
            "rotafetch_logins_total{outcome=\"invalid_credentials\"} 0",
            "rotafetch_logins_total{outcome=\"throttled\"} 0",
            "rotafetch_logins_total{outcome=\"busy\"} 0",
            "rotafetch_password_hash_slots 13",
            "rotafetch_password_hashes_peak 0",
            "rotafetch_login_throttle_accounts 0",
            "rotafetch_refresh_total{outcome=\"rotated\"} 0",
            "rotafetch_refresh_total{outcome=\"grace\"} 1",
            "rotafetch_refresh_total{outcome=\"reused\"} 0",
            "rotafetch_refresh_total{outcome=\"invalid\"} 0",
            "rotafetch_refresh_total{outcome=\"expired\"} 0",
            "rotafetch_refresh_total{outcome=\"dpop_mismatch\"} 0",
            "rotafetch_dpop_proofs_total{outcome=\"accepted\"} 0",
            "rotafetch_dpop_proofs_total{outcome=\"cache_full\"} 0",
            "rotafetch_dpop_proofs_total{outcome=\"throttled\"} 0",
            "rotafetch_dpop_jti_entries 0",
            "rotafetch_dpop_key_mismatch_total{endpoint=\"api\"} 0",
            "rotafetch_dpop_key_mismatch_total{endpoint=\"revoke\"} 0",
            "rotafetch_authorization_codes_total{outcome=\"issued\"} 0",
            "rotafetch_authorization_codes_total{outcome=\"reused\"} 0",
            "rotafetch_families_revoked_total 0",
            "rotafetch_api_requests_total{status=\"200\"} 1",
            "rotafetch_api_requests_total{status=\"401\"} 0",
            "rotafetch_api_requests_total{status=\"413\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
