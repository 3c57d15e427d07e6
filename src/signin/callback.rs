//! The authorization response at the redirect URI (RFC 6749 §4.1.2, §4.1.2.1; RFC 9207 §2):
//! what it says, whether it belongs to a sign-in of this browser and may be exchanged, and
//! what the address bar keeps of it.

use super::request::is_state;
use super::transaction::Transaction;
use super::{form_decode, name_value, pieces, split_url};
use alloc::string::String;

/// The parameters of an authorization response; [`cleaned`] removes them from the address bar.
/// (`session_state` is OpenID Connect Session Management's.)
pub const RESPONSE_PARAMS: [&str; 7] = [
    "code",
    "state",
    "iss",
    "error",
    "error_description",
    "error_uri",
    "session_state",
];

/// An authorization response, as read from the callback URL.
#[derive(Clone, PartialEq, Eq)]
pub struct Callback {
    /// `state`: which sign-in it answers.
    pub state: String,
    /// `code`, on success.
    pub code: Option<String>,
    /// `iss` (RFC 9207).
    pub iss: Option<String>,
    /// `error`, on failure: the provider's code when it is a plain one (RFC 6749 §4.1.2.1),
    /// `"error"` otherwise. Its `error_description` is never read: anyone can craft a callback
    /// URL, and the app might show the text.
    pub error: Option<String>,
}

impl core::fmt::Debug for Callback {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Callback")
            .field("state", &self.state)
            .field("code", &self.code.as_ref().map(|_| "[redacted]"))
            .field("iss", &self.iss)
            .field("error", &self.error)
            .finish()
    }
}

/// Why a callback is refused. In every case nothing is exchanged, and the session (if any)
/// stays as it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// A parameter twice (RFC 6749 §3.1), a value that is not UTF-8, no `state` or one this
    /// SDK never makes, or neither `code` nor `error`.
    Malformed,
    /// The `state` matches no sign-in started in this browser (another browser or profile,
    /// storage cleared, or a forged or tampered callback).
    NoTransaction,
    /// The sign-in it answers is older than [`super::transaction::TTL_SECS`].
    Expired,
    /// `iss` is not the issuer, or missing where the provider says it sends one (RFC 9207
    /// §2.4: a mix-up).
    IssMismatch,
    /// The provider answered with an error (its code).
    Provider(String),
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

/// Reads the authorization response in `href`'s query. `Ok(None)`: not a callback (no `code`,
/// `state` or `error`), nothing to do.
pub fn parse(href: &str) -> Result<Option<Callback>, Refused> {
    let (_, query, _) = split_url(href);
    let mut seen = [None::<String>, None, None, None];
    for (name, value) in pieces(query.unwrap_or_default()).map(name_value) {
        let Some(i) = ["state", "code", "iss", "error"]
            .iter()
            .position(|n| *n == name)
        else {
            continue;
        };
        if seen[i].is_some() {
            return Err(Refused::Malformed);
        }
        seen[i] = Some(form_decode(value).ok_or(Refused::Malformed)?);
    }
    let [state, code, iss, error] = seen;
    if state.is_none() && code.is_none() && error.is_none() {
        return Ok(None);
    }
    let state = state.filter(|s| is_state(s)).ok_or(Refused::Malformed)?;
    if code.is_none() && error.is_none() {
        return Err(Refused::Malformed);
    }
    let error = error.map(|e| {
        crate::policy::rejection_code(Some(&e))
            .unwrap_or("error")
            .into()
    });
    Ok(Some(Callback {
        state,
        code,
        iss,
        error,
    }))
}

/// Decides on a callback given the transaction stored under its state (`tx`), the configured
/// `issuer`, whether discovery says the provider sends `iss` (`iss_required`) and the time.
/// In order: the sign-in must be of this browser, not done, not expired; `iss`, when present
/// (or required), must be the issuer, errors included (RFC 9207 §2.4); then the provider's
/// error, or the code.
pub fn check<'c>(
    cb: &'c Callback,
    tx: Option<&Transaction>,
    issuer: &str,
    iss_required: bool,
    now: u32,
) -> Result<Next<'c>, Refused> {
    let tx = tx.ok_or(Refused::NoTransaction)?;
    if tx.done {
        return Ok(Next::Done);
    }
    if tx.expired(now) {
        return Err(Refused::Expired);
    }
    match cb.iss.as_deref() {
        Some(iss) if iss != issuer => return Err(Refused::IssMismatch),
        None if iss_required => return Err(Refused::IssMismatch),
        _ => {}
    }
    if let Some(e) = &cb.error {
        return Err(Refused::Provider(e.clone()));
    }
    cb.code
        .as_deref()
        .map(Next::Exchange)
        .ok_or(Refused::Malformed)
}

/// `href` without the authorization response's parameters ([`RESPONSE_PARAMS`]): the URL
/// `history.replaceState` leaves in the address bar (and history), so the code leaves no trace
/// and Back does not return to it. Every other parameter stays as it was written, in order,
/// and so does the fragment.
pub fn cleaned(href: &str) -> String {
    let (base, query, hash) = split_url(href);
    let mut out = String::with_capacity(href.len());
    out.push_str(base);
    for piece in pieces(query.unwrap_or_default()) {
        if RESPONSE_PARAMS.contains(&name_value(piece).0) {
            continue;
        }
        out.push(if out.len() == base.len() { '?' } else { '&' });
        out.push_str(piece);
    }
    out.push_str(hash);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATE: &str = "AAAAAAAAAAAAAAAAAAAAAA";
    const ISSUER: &str = "https://id.example.com";

    fn tx(done: bool) -> Transaction {
        Transaction {
            created: 1000,
            popup: false,
            done,
            verifier: "v".into(),
            nonce: None,
            redirect_uri: "https://app.example/cb".into(),
            return_to: "/".into(),
        }
    }

    fn cb(query: &str) -> Result<Option<Callback>, Refused> {
        parse(&format!("https://app.example/cb?{query}#frag"))
    }

    #[test]
    fn a_success_response() {
        let c = cb(&format!(
            "code=4%2F0Ab%2Bc&state={STATE}&iss=https%3A%2F%2Fid.example.com"
        ))
        .unwrap()
        .unwrap();
        assert_eq!(c.state, STATE);
        assert_eq!(c.code.as_deref(), Some("4/0Ab+c"));
        assert_eq!(c.iss.as_deref(), Some(ISSUER));
        assert_eq!(c.error, None);
        assert!(!format!("{c:?}").contains("0Ab"), "Debug hides the code");
    }

    #[test]
    fn an_error_response_keeps_only_a_plain_code() {
        let c = cb(&format!(
            "error=access_denied&error_description=Go+away&state={STATE}"
        ))
        .unwrap()
        .unwrap();
        assert_eq!(c.error.as_deref(), Some("access_denied"));
        let c = cb(&format!("error=%3Cscript%3E&state={STATE}"))
            .unwrap()
            .unwrap();
        assert_eq!(c.error.as_deref(), Some("error"));
    }

    #[test]
    fn not_a_callback() {
        for q in ["", "page=2", "iss=x", "code_x=1&states=2"] {
            assert_eq!(cb(q), Ok(None), "{q}");
        }
        assert_eq!(parse("https://app.example/#code=1&state=2"), Ok(None));
    }

    #[test]
    fn malformed_callbacks() {
        for q in [
            "code=a".to_string(),
            "code=a&state=short".to_string(),
            format!("state={STATE}"),
            format!("code=a&code=b&state={STATE}"),
            format!("code=a&state={STATE}&state={STATE}"),
            format!("code=a&state={STATE}&iss=a&iss=b"),
            format!("code=%FF&state={STATE}"),
        ] {
            assert_eq!(cb(&q), Err(Refused::Malformed), "{q}");
        }
    }

    fn decide(
        query: &str,
        tx: Option<&Transaction>,
        iss_required: bool,
    ) -> Result<Next<'static>, Refused> {
        let c = Box::leak(Box::new(cb(query).unwrap().unwrap()));
        check(c, tx, ISSUER, iss_required, 1100)
    }

    #[test]
    fn rfc9207_iss() {
        let ok = format!("code=C&state={STATE}&iss={ISSUER}");
        assert_eq!(decide(&ok, Some(&tx(false)), true), Ok(Next::Exchange("C")));
        let other = format!("code=C&state={STATE}&iss=https://evil.example");
        assert_eq!(
            decide(&other, Some(&tx(false)), false),
            Err(Refused::IssMismatch)
        );
        let missing = format!("code=C&state={STATE}");
        assert_eq!(
            decide(&missing, Some(&tx(false)), true),
            Err(Refused::IssMismatch)
        );
        assert_eq!(
            decide(&missing, Some(&tx(false)), false),
            Ok(Next::Exchange("C"))
        );
        let error_from_elsewhere =
            format!("error=access_denied&state={STATE}&iss=https://evil.example");
        assert_eq!(
            decide(&error_from_elsewhere, Some(&tx(false)), false),
            Err(Refused::IssMismatch),
            "error responses carry iss too"
        );
        let slash = format!("code=C&state={STATE}&iss={ISSUER}/");
        assert_eq!(
            decide(&slash, Some(&tx(false)), false),
            Err(Refused::IssMismatch)
        );
    }

    #[test]
    fn the_transaction_decides_first() {
        let q = format!("code=C&state={STATE}&iss=https://evil.example");
        assert_eq!(decide(&q, None, true), Err(Refused::NoTransaction));
        assert_eq!(decide(&q, Some(&tx(true)), true), Ok(Next::Done));
        let old = Transaction {
            created: 100,
            ..tx(false)
        };
        assert_eq!(decide(&q, Some(&old), true), Err(Refused::Expired));
        let refused = format!("error=login_required&state={STATE}");
        assert_eq!(
            decide(&refused, Some(&tx(false)), false),
            Err(Refused::Provider("login_required".into()))
        );
    }

    #[test]
    fn the_address_bar_keeps_everything_else() {
        let cases = [
            (
                "https://a.example/cb?code=1&state=2&iss=3#top",
                "https://a.example/cb#top",
            ),
            (
                "https://a.example/cb?x=1&code=1&y=%20+&state=2&z",
                "https://a.example/cb?x=1&y=%20+&z",
            ),
            (
                "https://a.example/cb?error=access_denied&error_description=no&error_uri=u&state=s&session_state=q&a=",
                "https://a.example/cb?a=",
            ),
            ("https://a.example/cb?&&code=1", "https://a.example/cb"),
            ("https://a.example/cb", "https://a.example/cb"),
            ("https://a.example/cb#code=1", "https://a.example/cb#code=1"),
            ("https://a.example/cb?codes=1", "https://a.example/cb?codes=1"),
        ];
        for (from, to) in cases {
            assert_eq!(cleaned(from), to, "{from}");
        }
    }
}
