//! What the OpenID provider keeps: pushed authorization requests, authorization codes and
//! provider sessions ([`ProviderStore`], a supertrait of [`Store`](super::Store)). The rules
//! are in [`crate::oidc`]; the stores apply them under a row lock (PostgreSQL
//! `SELECT ... FOR UPDATE`, SQLite `BEGIN IMMEDIATE`), like the families' rules, so a code
//! or a `request_uri` presented on two instances at once is taken once.

use anyhow::Result;
use async_trait::async_trait;

use super::{Millis, TokenHash};
use crate::oidc::authorize::AuthRequest;
use crate::oidc::code::{CodeGrant, Presented};
use crate::oidc::session::ProviderSession;

/// Used codes and ended sessions stay this long after they expire (a reused code is still
/// recognised, and revokes its session, within it).
pub const PROVIDER_KEEP_MS: Millis = 3600 * 1000;

/// What [`ProviderStore::redeem_code`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    /// The code is spent and the family (with its first refresh token) exists, bound to
    /// `jkt` if given.
    Redeemed {
        grant: CodeGrant,
        jkt: Option<String>,
    },
    /// Not redeemed (`invalid_grant` with this description); nothing changed.
    Refused(&'static str),
    /// The code had been redeemed before: the family that redemption started is revoked
    /// (`newly_revoked`: by this request).
    Reused {
        family_id: Option<String>,
        newly_revoked: bool,
    },
    /// No such code.
    Unknown,
}

/// The family a redemption starts: its id and its first refresh token's hash.
#[derive(Debug, Clone, Copy)]
pub struct NewFamily<'a> {
    pub family_id: &'a str,
    pub token: &'a TokenHash,
}

/// Storage of the provider's state. Every method is atomic.
#[async_trait]
pub trait ProviderStore: Send + Sync {
    /// Stores a pushed request under the hash of its `request_uri`.
    async fn put_par(
        &self,
        handle: &[u8; 32],
        request: &AuthRequest,
        expires_at: Millis,
    ) -> Result<()>;
    /// Takes (spends) a pushed request for `client_id` if [`crate::oidc::par::take`] allows
    /// it; otherwise why not (nothing changed).
    async fn take_par(
        &self,
        handle: &[u8; 32],
        client_id: &str,
        now: Millis,
    ) -> Result<Result<AuthRequest, &'static str>>;
    /// Stores a new code.
    async fn put_code(&self, hash: &[u8; 32], grant: &CodeGrant, expires_at: Millis) -> Result<()>;
    /// Applies [`crate::oidc::code::decide`] under the code's lock: redeems it (spends it and
    /// creates `family` in the same transaction), refuses, or revokes the family of an
    /// earlier redemption.
    async fn redeem_code(
        &self,
        hash: &[u8; 32],
        presented: &Presented,
        family: NewFamily<'_>,
        now: Millis,
    ) -> Result<Redemption>;
    /// Starts a provider session whose cookie secret hashes to `secret_hash`.
    async fn create_provider_session(
        &self,
        session: &ProviderSession,
        secret_hash: &[u8; 32],
        expires_at: Millis,
    ) -> Result<()>;
    /// The live (not ended, not expired) session whose cookie secret hashes to
    /// `secret_hash`.
    async fn provider_session(
        &self,
        secret_hash: &[u8; 32],
        now: Millis,
    ) -> Result<Option<ProviderSession>>;
    /// Ends a provider session; true if it was live.
    async fn end_provider_session(&self, secret_hash: &[u8; 32], now: Millis) -> Result<bool>;
    /// Revokes a session family by id (revocation of an access token); true if it was live.
    async fn revoke_family_by_id(&self, family_id: &str, now: Millis, reason: &str)
        -> Result<bool>;
    /// Deletes expired pushed requests, and codes and provider sessions that ended more
    /// than [`PROVIDER_KEEP_MS`] ago. Returns how many rows.
    async fn prune_provider(&self, now: Millis) -> Result<usize>;
}

// The provider's SQL, written once for both dialects with PostgreSQL's `$n` placeholders
// (the SQLite store rewrites them to `?n`, as for `DEAD_FAMILY`). Loads list their columns
// in the order the stores read them.
pub(crate) const LOAD_PAR: &str =
    "SELECT client_id, expires_at, used_at IS NOT NULL, request FROM par_requests WHERE hash = $1";
pub(crate) const PUT_PAR: &str =
    "INSERT INTO par_requests (hash, client_id, request, expires_at) VALUES ($1, $2, $3, $4)";
pub(crate) const SPEND_PAR: &str = "UPDATE par_requests SET used_at = $2 WHERE hash = $1";
pub(crate) const LOAD_CODE: &str = "\
     SELECT client_id, redirect_uri, code_challenge, dpop_jkt, nonce, scope, user_id, \
     session_id, auth_time, expires_at, used_at IS NOT NULL, family_id FROM \
     auth_codes WHERE hash = $1";
pub(crate) const PUT_CODE: &str = "\
     INSERT INTO auth_codes (hash, client_id, redirect_uri, code_challenge, dpop_jkt, \
     nonce, scope, user_id, session_id, auth_time, expires_at) VALUES ($1, $2, $3, \
     $4, $5, $6, $7, $8, $9, $10, $11)";
pub(crate) const SPEND_CODE: &str =
    "UPDATE auth_codes SET used_at = $2, family_id = $3 WHERE hash = $1";
pub(crate) const PUT_SESSION: &str = "\
     INSERT INTO provider_sessions (id, secret_hash, user_id, auth_time, expires_at) \
     VALUES ($1, $2, $3, $4, $5)";
pub(crate) const LOAD_SESSION: &str = "\
     SELECT id, user_id, auth_time FROM provider_sessions WHERE secret_hash = $1 AND \
     ended_at IS NULL AND expires_at > $2";
pub(crate) const END_SESSION: &str = "\
     UPDATE provider_sessions SET ended_at = $2 WHERE secret_hash = $1 AND ended_at \
     IS NULL AND expires_at > $2";

/// The `DELETE`s of [`ProviderStore::prune_provider`]: each takes one cutoff, `$1`; `true`
/// means the cutoff is now - [`PROVIDER_KEEP_MS`], `false` now.
pub(crate) const PRUNE: [(&str, bool); 3] = [
    ("DELETE FROM par_requests WHERE expires_at <= $1", false),
    ("DELETE FROM auth_codes WHERE expires_at <= $1", true),
    (
        "DELETE FROM provider_sessions WHERE expires_at <= $1 OR ended_at <= $1",
        true,
    ),
];
