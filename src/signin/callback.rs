//! The authorization response at the redirect URI (RFC 6749 §4.1.2, §4.1.2.1; RFC 9207 §2):
//! what it says, and whether it belongs to a sign-in of this browser and may be exchanged.
//! The driver reads the query (`URLSearchParams`) and hands each parameter over as a
//! [`Param`]; it also removes [`RESPONSE_PARAMS`] from the address bar.

use super::request::is_state;
use super::transaction::expired;

/// The parameters of an authorization response, which the driver removes from the address bar
/// (`history.replaceState`) so the code leaves no trace and Back does not return to it. Every
/// other parameter, and the fragment, stay as written. (`session_state` is OpenID Connect
/// Session Management's.)
pub const RESPONSE_PARAMS: [&str; 7] = [
    "code",
    "state",
    "iss",
    "error",
    "error_description",
    "error_uri",
    "session_state",
];

/// A response parameter as the query has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param<'a> {
    /// Not in the query.
    Absent,
    /// Once, with this (decoded) value.
    Once(&'a str),
    /// More than once (RFC 6749 §3.1 forbids it: a parameter-pollution attempt).
    Twice,
}

/// An authorization response.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Callback<'a> {
    /// `state`: which sign-in it answers.
    pub state: &'a str,
    /// `code`, on success.
    pub code: Option<&'a str>,
    /// `iss` (RFC 9207).
    pub iss: Option<&'a str>,
    /// `error`, on failure: the provider's code when it is a plain one (RFC 6749 §4.1.2.1),
    /// `"error"` otherwise. Its `error_description` is never read: anyone can craft a callback
    /// URL, and the app might show the text.
    pub error: Option<&'a str>,
}

impl core::fmt::Debug for Callback<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Callback")
            .field("state", &self.state)
            .field("code", &self.code.map(|_| "[redacted]"))
            .field("iss", &self.iss)
            .field("error", &self.error)
            .finish()
    }
}

/// Why a callback is refused. In every case nothing is exchanged, and the session (if any)
/// stays as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// A parameter twice (RFC 6749 §3.1), no `state` or one this SDK never makes, or neither
    /// `code` nor `error`; or a popup's answer with another sign-in's `state`.
    Malformed,
    /// The `state` matches no sign-in started in this browser (another browser or profile,
    /// storage cleared, or a forged or tampered callback).
    NoTransaction,
    /// The sign-in it answers is older than [`super::transaction::TTL_SECS`].
    Expired,
    /// `iss` is not the issuer, or missing where the provider says it sends one (RFC 9207
    /// §2.4: a mix-up).
    IssMismatch,
    /// The provider answered with an error (its code is the callback's `error`).
    Provider,
}

/// Reads an authorization response. `Ok(None)`: not a callback (no `state`, `code` or
/// `error`), nothing to do.
pub fn read<'a>(
    state: Param<'a>,
    code: Param<'a>,
    iss: Param<'a>,
    error: Param<'a>,
) -> Result<Option<Callback<'a>>, Refused> {
    let mut v = [None; 4];
    for (slot, p) in v.iter_mut().zip([state, code, iss, error]) {
        *slot = match p {
            Param::Absent => None,
            Param::Once(s) => Some(s),
            Param::Twice => return Err(Refused::Malformed),
        };
    }
    let [state, code, iss, error] = v;
    if state.is_none() && code.is_none() && error.is_none() {
        return Ok(None);
    }
    let state = state.filter(|s| is_state(s)).ok_or(Refused::Malformed)?;
    if code.is_none() && error.is_none() {
        return Err(Refused::Malformed);
    }
    let error = error.map(|e| crate::policy::rejection_code(Some(e)).unwrap_or("error"));
    Ok(Some(Callback {
        state,
        code,
        iss,
        error,
    }))
}

/// What to do with a callback whose sign-in is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next<'a> {
    /// Exchange this code.
    Exchange(&'a str),
    /// Its code was exchanged already (a reload, Back, a second `handleRedirect`): nothing to
    /// exchange; if the session is there, the sign-in is complete.
    Done,
}

/// The transaction stored under a callback's state, as far as the decision goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stored {
    /// When `signIn()` made it, seconds since the epoch.
    pub created: u32,
    /// Its code was exchanged (or is being exchanged) already.
    pub done: bool,
}

/// Decides on a callback given the transaction stored under its state (`tx`, `None`: none),
/// the configured `issuer`, whether discovery says the provider sends `iss` (`iss_required`)
/// and the time. In order: the sign-in must be of this browser, not done, not expired; `iss`,
/// when present (or required), must be the issuer, errors included (RFC 9207 §2.4); then the
/// provider's error, or the code.
pub fn check<'c>(
    cb: &Callback<'c>,
    tx: Option<Stored>,
    issuer: &str,
    iss_required: bool,
    now: u32,
) -> Result<Next<'c>, Refused> {
    let tx = tx.ok_or(Refused::NoTransaction)?;
    if tx.done {
        return Ok(Next::Done);
    }
    if expired(tx.created, now) {
        return Err(Refused::Expired);
    }
    match cb.iss {
        Some(iss) if iss != issuer => return Err(Refused::IssMismatch),
        None if iss_required => return Err(Refused::IssMismatch),
        _ => {}
    }
    if cb.error.is_some() {
        return Err(Refused::Provider);
    }
    cb.code.map(Next::Exchange).ok_or(Refused::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Param::*;

    const STATE: &str = "AAAAAAAAAAAAAAAAAAAAAA";
    const ISSUER: &str = "https://id.example.com";

    fn once(s: &str) -> Param<'_> {
        Once(s)
    }

    fn ok<'a>(code: Param<'a>, iss: Param<'a>) -> Callback<'a> {
        read(once(STATE), code, iss, Absent).unwrap().unwrap()
    }

    #[test]
    fn a_success_response() {
        let c = ok(once("4/0Ab+c"), once(ISSUER));
        assert_eq!(c.state, STATE);
        assert_eq!(c.code, Some("4/0Ab+c"));
        assert_eq!(c.iss, Some(ISSUER));
        assert_eq!(c.error, None);
        assert!(!format!("{c:?}").contains("0Ab"), "Debug hides the code");
    }

    #[test]
    fn an_error_response_keeps_only_a_plain_code() {
        let c = read(once(STATE), Absent, Absent, once("access_denied"))
            .unwrap()
            .unwrap();
        assert_eq!(c.error, Some("access_denied"));
        let c = read(once(STATE), Absent, Absent, once("<script>"))
            .unwrap()
            .unwrap();
        assert_eq!(c.error, Some("error"));
    }

    #[test]
    fn not_a_callback() {
        assert_eq!(read(Absent, Absent, Absent, Absent), Ok(None));
        assert_eq!(
            read(Absent, Absent, once(ISSUER), Absent),
            Ok(None),
            "iss alone"
        );
    }

    #[test]
    fn malformed_callbacks() {
        let cases = [
            (Absent, once("c"), Absent, Absent),
            (once("short"), once("c"), Absent, Absent),
            (once(STATE), Absent, Absent, Absent),
            (once(STATE), Twice, Absent, Absent),
            (Twice, once("c"), Absent, Absent),
            (once(STATE), once("c"), Twice, Absent),
            (once(STATE), once("c"), Absent, Twice),
        ];
        for (s, c, i, e) in cases {
            let what = format!("{s:?} {c:?} {i:?} {e:?}");
            assert_eq!(read(s, c, i, e), Err(Refused::Malformed), "{what}");
        }
    }

    const FRESH: Stored = Stored {
        created: 1000,
        done: false,
    };

    #[test]
    fn rfc9207_iss() {
        let good = ok(once("C"), once(ISSUER));
        assert_eq!(
            check(&good, Some(FRESH), ISSUER, true, 1100),
            Ok(Next::Exchange("C"))
        );
        let other = ok(once("C"), once("https://evil.example"));
        assert_eq!(
            check(&other, Some(FRESH), ISSUER, false, 1100),
            Err(Refused::IssMismatch)
        );
        let missing = ok(once("C"), Absent);
        assert_eq!(
            check(&missing, Some(FRESH), ISSUER, true, 1100),
            Err(Refused::IssMismatch)
        );
        assert_eq!(
            check(&missing, Some(FRESH), ISSUER, false, 1100),
            Ok(Next::Exchange("C"))
        );
        let error = read(
            once(STATE),
            Absent,
            once("https://evil.example"),
            once("access_denied"),
        );
        assert_eq!(
            check(&error.unwrap().unwrap(), Some(FRESH), ISSUER, false, 1100),
            Err(Refused::IssMismatch),
            "error responses carry iss too"
        );
        let slash = ok(once("C"), once("https://id.example.com/"));
        assert_eq!(
            check(&slash, Some(FRESH), ISSUER, false, 1100),
            Err(Refused::IssMismatch)
        );
    }

    #[test]
    fn the_transaction_decides_first() {
        let c = ok(once("C"), once("https://evil.example"));
        assert_eq!(
            check(&c, None, ISSUER, true, 1100),
            Err(Refused::NoTransaction)
        );
        let done = Stored {
            done: true,
            ..FRESH
        };
        assert_eq!(check(&c, Some(done), ISSUER, true, 1100), Ok(Next::Done));
        assert_eq!(
            check(&c, Some(FRESH), ISSUER, true, 1600),
            Err(Refused::Expired)
        );
        let refused = read(once(STATE), Absent, Absent, once("login_required"))
            .unwrap()
            .unwrap();
        assert_eq!(
            check(&refused, Some(FRESH), ISSUER, false, 1100),
            Err(Refused::Provider)
        );
    }
}
