//! The options checked and turned into the client's configuration: what the Rust core
//! decides with, and what the driver (`js/driver.js`) needs to carry it out.

use super::glue;
use super::types::*;
use crate::error::AuthError;
use crate::policy::{self, AllowList};
use crate::session::Settings;
use alloc::{borrow::ToOwned, string::String, vec::Vec};

/// How the core writes a refresh request (the rest of what it decides with is the session's
/// `Settings`).
pub(super) struct Config {
    pub(super) format: RefreshFormat,
    pub(super) client_id: Option<String>,
}

/// What the driver needs: where to send, how long to wait, what to lock and share.
pub(super) struct Effects {
    pub(super) refresh_url: String,
    pub(super) logout_url: Option<String>,
    pub(super) key: String,
    pub(super) lock_name: String,
    pub(super) timeout_ms: u32,
    pub(super) cross_tab: bool,
    pub(super) dpop: bool,
}

pub(super) fn resolve_http(url: &str, name: &str) -> Result<String, AuthError> {
    match glue::resolve_url(url) {
        Some([href, protocol, _]) if protocol == "https:" || protocol == "http:" => Ok(href),
        _ => Err(AuthError::invalid_option(name, "must be an http(s) URL")),
    }
}

fn origins(list: Option<Vec<String>>, refresh_url: &str) -> Result<Vec<String>, AuthError> {
    let Some(list) = list else {
        // Default: the refresh endpoint's origin and the page's.
        let mut out: Vec<String> = policy::origin_of_href(refresh_url)
            .map(str::to_owned)
            .into_iter()
            .collect();
        out.extend(glue::page_origin());
        return Ok(out);
    };
    let mut out = Vec::with_capacity(list.len());
    for entry in list {
        let origin = glue::resolve_url(&entry).map(|[_, _, origin]| origin);
        let trimmed = entry.strip_suffix('/').unwrap_or(&entry);
        match origin {
            Some(o) if policy::is_http_origin(&o) && o.eq_ignore_ascii_case(trimmed) => out.push(o),
            _ => {
                return Err(AuthError::invalid_option(
                    "allowedOrigins",
                    "must list origins like \"https://api.example.com\"",
                ))
            }
        }
    }
    Ok(out)
}

/// Checks every option; the first bad one is an `invalid_config` error naming it.
pub(super) fn check(o: Options) -> Result<(Config, Settings, Effects), AuthError> {
    let refresh_url = resolve_http(&o.refresh_url, "refreshUrl")?;
    let logout_url = match &o.logout_url {
        Some(u) => Some(resolve_http(u, "logoutUrl")?),
        None => None,
    };
    let bad = if o.storage_key.is_empty() {
        Some(("storageKey", "must be a non-empty string"))
    } else if !(o.leeway_seconds.is_finite() && o.leeway_seconds >= 0.0) {
        Some(("leewaySeconds", "must be a number >= 0"))
    } else if o.refresh_timeout_ms == 0 {
        Some(("refreshTimeoutMs", "must be a positive integer"))
    } else if o.client_id.as_deref() == Some("") {
        Some(("clientId", "must be a non-empty string"))
    } else if o.dpop && !cfg!(feature = "dpop") {
        Some((
            "dpop",
            "is not in this build: import `rotafetch/dpop` (npm) or enable the crate's `dpop` feature",
        ))
    } else if o.dpop && !glue::dpop_capable() {
        // Never a silent fallback to bearer tokens.
        Some((
            "dpop",
            "needs IndexedDB and crypto.subtle (a secure context: https or localhost)",
        ))
    } else {
        None
    };
    if let Some((name, must)) = bad {
        return Err(AuthError::invalid_option(name, must));
    }
    let allow = AllowList::new(origins(o.allowed_origins, &refresh_url)?);
    let mut lock_name = String::from("rotafetch:");
    lock_name.push_str(&o.storage_key);
    let config = Config {
        format: o.refresh_format,
        client_id: o.client_id,
    };
    let settings = Settings {
        allow,
        leeway_ms: o.leeway_seconds * 1000.0,
        min_interval_ms: f64::from(o.min_refresh_interval_ms),
        strict_redirects: o.redirects == Redirects::Error,
        dpop: o.dpop,
    };
    let effects = Effects {
        refresh_url,
        logout_url,
        key: o.storage_key,
        lock_name,
        timeout_ms: o.refresh_timeout_ms,
        cross_tab: o.cross_tab && o.storage == StorageKind::Local,
        dpop: o.dpop,
    };
    Ok((config, settings, effects))
}
