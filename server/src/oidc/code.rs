//! Authorization codes (RFC 6749 §4.1.2-4.1.3, RFC 7636 §4.6, RFC 9449 §10): what a code
//! remembers and whether a token request may redeem it, decided without I/O. The store
//! applies [`decide`] under the code row's lock.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use crate::store::Millis;
use crate::tokens::random_bytes;

/// A code is redeemable this long after it is issued (RFC 6749 §4.1.2: at most 10 minutes
/// RECOMMENDED; one minute is plenty for a redirect).
pub const CODE_TTL_MS: Millis = 60_000;
/// Longer presented codes cannot be ours (ours are 43 characters).
pub const MAX_CODE_LEN: usize = 256;

/// What a code was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    /// The key the code is bound to (RFC 9449 §10).
    pub dpop_jkt: Option<String>,
    pub nonce: Option<String>,
    pub scope: String,
    pub user_id: i64,
    /// The provider session the user signed in with (the ID token's `sid`).
    pub session_id: String,
    /// When the user entered their password (ms).
    pub auth_time: Millis,
}

/// A stored code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRow {
    pub grant: CodeGrant,
    pub expires_at: Millis,
    pub used: bool,
    /// The session family its redemption started.
    pub family_id: Option<String>,
}

/// What the token request presents with the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_verifier: String,
    /// The thumbprint of a verified DPoP proof's key.
    pub proof_jkt: Option<String>,
}

/// What to do with a presented code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Spend it and start a session.
    Redeem,
    /// Refuse with `invalid_grant` and this description; the code is left as it was, so a
    /// request that merely lacks the verifier or the key can neither burn the rightful
    /// client's code nor, replaying a spent one, revoke its session.
    Refuse(&'static str),
    /// The code was redeemed before and is presented again with everything that redeemed
    /// it: refuse and revoke the session its redemption started (RFC 6749 §4.1.2).
    Reuse,
}

/// A fresh code and the hash the store keeps of it.
pub fn new_code() -> (String, [u8; 32]) {
    let code = B64URL.encode(random_bytes::<32>());
    let hash = hash(&code);
    (code, hash)
}

/// SHA-256 of a presented code: the store's key.
pub fn hash(code: &str) -> [u8; 32] {
    Sha256::digest(code.as_bytes()).into()
}

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
pub fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// `BASE64URL(SHA256(verifier))` (RFC 7636 §4.2, S256).
pub fn s256(verifier: &str) -> String {
    B64URL.encode(Sha256::digest(verifier.as_bytes()))
}

/// The redemption rules, in order: the client, the redirect URI, the PKCE verifier and the
/// DPoP key must match the code's request; only then does a spent code count as reused
/// (which revokes the session its redemption started), and an unspent one must be unexpired.
///
/// Reuse is judged last on purpose: revoking is destructive, so only a request that could
/// have redeemed the code (it holds the verifier, and the key of a bound code) may trigger
/// it. A code that leaked from a URL, a log or the history cannot be replayed by someone
/// else to sign the user out; a replay by the rightful client (or by whoever stole its
/// verifier) still revokes.
pub fn decide(row: &CodeRow, p: &Presented, now: Millis) -> Decision {
    let g = &row.grant;
    if g.client_id != p.client_id {
        return Decision::Refuse("authorization code was issued to another client");
    }
    if g.redirect_uri != p.redirect_uri {
        return Decision::Refuse("redirect_uri does not match the authorization request");
    }
    let pkce_ok: bool = s256(&p.code_verifier)
        .as_bytes()
        .ct_eq(g.code_challenge.as_bytes())
        .into();
    if !pkce_ok {
        return Decision::Refuse("code_verifier does not match the code_challenge");
    }
    match (&g.dpop_jkt, p.proof_jkt.as_deref()) {
        (Some(_), None) => {
            return Decision::Refuse("this code is DPoP-bound: a DPoP proof by its key is required")
        }
        (Some(want), Some(got)) if want != got => {
            return Decision::Refuse("DPoP proof key does not match the code's key")
        }
        _ => {}
    }
    if row.used {
        return Decision::Reuse;
    }
    if now >= row.expires_at {
        return Decision::Refuse("authorization code expired");
    }
    Decision::Redeem
}

/// The key the session a redemption starts is bound to: the code's, else the proof's (a
/// proof at the token endpoint binds like one at `/auth/login`).
pub fn session_binding(grant: &CodeGrant, proof_jkt: Option<&str>) -> Option<String> {
    grant
        .dpop_jkt
        .clone()
        .or_else(|| proof_jkt.map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn row() -> CodeRow {
        CodeRow {
            grant: CodeGrant {
                client_id: "app".into(),
                redirect_uri: "https://app.example/cb".into(),
                code_challenge: CHALLENGE.into(),
                dpop_jkt: None,
                nonce: Some("n".into()),
                scope: "openid".into(),
                user_id: 7,
                session_id: "s".into(),
                auth_time: 1_000,
            },
            expires_at: 1_000 + CODE_TTL_MS,
            used: false,
            family_id: None,
        }
    }

    fn presented() -> Presented {
        Presented {
            client_id: "app".into(),
            redirect_uri: "https://app.example/cb".into(),
            code_verifier: VERIFIER.into(),
            proof_jkt: None,
        }
    }

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        assert_eq!(s256(VERIFIER), CHALLENGE);
        assert!(valid_verifier(VERIFIER));
        assert!(!valid_verifier(&VERIFIER[..42]));
        assert!(!valid_verifier(&"a".repeat(129)));
        assert!(valid_verifier(&"a~.-_".repeat(20)));
        assert!(!valid_verifier(&format!("{}+", &VERIFIER[..43])));
    }

    #[test]
    fn codes_are_random_and_hashed() {
        let (a, ha) = new_code();
        let (b, _) = new_code();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash(&a), ha);
    }

    #[test]
    fn the_rules_in_order() {
        let now = 1_000 + CODE_TTL_MS - 1;
        assert_eq!(decide(&row(), &presented(), now), Decision::Redeem);
        let mut used = row();
        used.used = true;
        let wrong = Presented {
            client_id: "other".into(),
            ..presented()
        };
        // A spent code: reuse (even after expiry) only with everything that redeemed it.
        assert_eq!(
            decide(&used, &presented(), now + 10 * CODE_TTL_MS),
            Decision::Reuse
        );
        assert!(matches!(decide(&used, &wrong, now), Decision::Refuse(_)));
        let no_verifier = Presented {
            code_verifier: "x".repeat(43),
            ..presented()
        };
        assert!(matches!(
            decide(&used, &no_verifier, now),
            Decision::Refuse(_)
        ));
        let refused = |p: Presented, now| match decide(&row(), &p, now) {
            Decision::Refuse(d) => d,
            other => panic!("{other:?}"),
        };
        assert!(refused(presented(), 1_000 + CODE_TTL_MS).contains("expired"));
        assert!(refused(wrong, now).contains("another client"));
        let off_by_one = Presented {
            redirect_uri: "https://app.example/cb/".into(),
            ..presented()
        };
        assert!(refused(off_by_one, now).contains("redirect_uri"));
        let bad_verifier = Presented {
            code_verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl".into(),
            ..presented()
        };
        assert!(refused(bad_verifier, now).contains("code_verifier"));
    }

    #[test]
    fn dpop_bound_codes_need_their_key() {
        let mut bound = row();
        bound.grant.dpop_jkt = Some("jkt-a".into());
        let now = 2_000;
        let with = |k: Option<&str>| Presented {
            proof_jkt: k.map(str::to_owned),
            ..presented()
        };
        assert!(
            matches!(decide(&bound, &with(None), now), Decision::Refuse(d) if d.contains("required"))
        );
        assert!(
            matches!(decide(&bound, &with(Some("jkt-b")), now), Decision::Refuse(d) if d.contains("match"))
        );
        assert_eq!(decide(&bound, &with(Some("jkt-a")), now), Decision::Redeem);
        // An unbound code redeemed with a proof: allowed, and the session gets bound.
        assert_eq!(decide(&row(), &with(Some("jkt-b")), now), Decision::Redeem);
        assert_eq!(
            session_binding(&row().grant, Some("jkt-b")).as_deref(),
            Some("jkt-b")
        );
        assert_eq!(session_binding(&row().grant, None), None);
        assert_eq!(
            session_binding(&bound.grant, Some("jkt-a")).as_deref(),
            Some("jkt-a")
        );
    }
}
