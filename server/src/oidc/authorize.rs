//! The authorization request (RFC 6749 §4.1.1, RFC 7636, OpenID Connect Core §3.1.2.1,
//! RFC 9449 §10, RFC 9126): parameter rules, decided without I/O.
//!
//! Errors come in two kinds (RFC 6749 §4.1.2.1): while the client or its redirect URI is not
//! established, nothing may be redirected (an error page: no open redirector); after that,
//! errors go back to the client's redirect URI with `state` and `iss`.

use std::collections::btree_map::{BTreeMap, Entry};

use serde::{Deserialize, Serialize};

use super::clients::{Client, Clients};
use super::par;

/// Longest accepted `state` and `nonce` (they travel back in URLs and tokens).
pub const MAX_STATE_LEN: usize = 1024;
pub const MAX_NONCE_LEN: usize = 512;
const MAX_SCOPE_LEN: usize = 1024;
/// More parameters than this is not an authorization request.
const MAX_PARAMS: usize = 64;
/// Scopes this provider grants; others are ignored (RFC 6749 §3.3).
pub const SCOPES: &[&str] = &["openid", "offline_access"];

/// A validated authorization request. Serialized into PAR rows and the sign-in form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The granted scopes (the requested ones this provider supports), space-separated.
    pub scope: String,
    /// The S256 challenge (43 base64url characters).
    pub code_challenge: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(default)]
    pub prompt: Prompt,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u64>,
    /// RFC 9449 §10: the code is bound to this key thumbprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
}

impl AuthRequest {
    pub fn wants_id_token(&self) -> bool {
        self.scope.split(' ').any(|s| s == "openid")
    }
}

/// The `prompt` parameter, as far as this provider acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prompt {
    /// Use a provider session if there is one, else show the form.
    #[default]
    Default,
    /// `login` (or `select_account`): always show the form.
    Login,
    /// `none`: never show the form (`login_required` without a session).
    None,
}

/// What the front channel asked for, once the client is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontChannel {
    /// The parameters are in the request.
    Direct(AuthRequest),
    /// RFC 9126: `client_id` + `request_uri`; the parameters are in the PAR row with this
    /// handle hash.
    Pushed { client_id: String, handle: [u8; 32] },
}

/// Why an authorization request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// The client or the redirect URI is not established: an error page, never a redirect.
    /// `unknown_client` tells `invalid_client` from `invalid_request` (for PAR's JSON).
    Page {
        unknown_client: bool,
        description: String,
    },
    /// Sent back to the client's redirect URI (`error`, `error_description`, `state`, `iss`).
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
}

impl AuthorizeError {
    fn page(description: impl Into<String>) -> Self {
        AuthorizeError::Page {
            unknown_client: false,
            description: description.into(),
        }
    }

    /// The RFC 6749 `error` code and description (what PAR answers in JSON).
    pub fn code(&self) -> (&'static str, &str) {
        match self {
            AuthorizeError::Page {
                unknown_client: true,
                description,
            } => ("invalid_client", description),
            AuthorizeError::Page { description, .. } => ("invalid_request", description),
            AuthorizeError::Redirect {
                error, description, ..
            } => (error, description),
        }
    }
}

/// Request parameters by name; a name given twice is remembered as such (RFC 6749 §3.1:
/// parameters MUST NOT be included more than once).
#[derive(Debug, Default)]
pub struct Params {
    values: BTreeMap<String, String>,
    repeated: Vec<String>,
    too_many: bool,
}

impl Params {
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut p = Params::default();
        for (i, (k, v)) in pairs.into_iter().enumerate() {
            if i >= MAX_PARAMS {
                p.too_many = true;
                break;
            }
            match p.values.entry(k) {
                Entry::Occupied(e) => p.repeated.push(e.key().clone()),
                Entry::Vacant(e) => {
                    e.insert(v);
                }
            }
        }
        p
    }

    /// The value of `name`; empty values count as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn repeated(&self, name: &str) -> bool {
        self.repeated.iter().any(|r| r == name)
    }

    /// The first repeated parameter, if any.
    pub fn first_repeated(&self) -> Option<&str> {
        self.repeated.first().map(String::as_str)
    }
}

/// Establishes the client and the redirect URI (or the pushed request). Errors here are
/// never redirected.
pub fn front_channel(p: &Params, clients: &Clients) -> Result<FrontChannel, AuthorizeError> {
    if p.too_many {
        return Err(AuthorizeError::page("too many parameters"));
    }
    for name in ["client_id", "redirect_uri", "request_uri"] {
        if p.repeated(name) {
            return Err(AuthorizeError::page(format!(
                "parameter {name} given more than once"
            )));
        }
    }
    let client = known_client(p, clients)?;
    if let Some(uri) = p.get("request_uri") {
        let handle = par::handle_hash(uri)
            .ok_or_else(|| AuthorizeError::page("request_uri is not one this server issued"))?;
        return Ok(FrontChannel::Pushed {
            client_id: client.id.clone(),
            handle,
        });
    }
    let redirect_uri = p
        .get("redirect_uri")
        .ok_or_else(|| AuthorizeError::page("redirect_uri is required"))?;
    if !client.allows_redirect(redirect_uri) {
        return Err(AuthorizeError::page(
            "redirect_uri is not registered for this client",
        ));
    }
    request(p, client, redirect_uri).map(FrontChannel::Direct)
}

/// The client named by `client_id`, which must be registered.
pub fn known_client<'c>(p: &Params, clients: &'c Clients) -> Result<&'c Client, AuthorizeError> {
    let id = p
        .get("client_id")
        .ok_or_else(|| AuthorizeError::page("client_id is required"))?;
    clients.get(id).ok_or_else(|| AuthorizeError::Page {
        unknown_client: true,
        description: "unknown client_id".into(),
    })
}

/// Validates the parameters of a request whose client and redirect URI are established.
/// Used by `/authorize` and by PAR (where the redirect URI check is the caller's).
pub fn request(
    p: &Params,
    client: &Client,
    redirect_uri: &str,
) -> Result<AuthRequest, AuthorizeError> {
    // `state` goes back with errors, unless it is itself what is wrong.
    let state = p
        .get("state")
        .filter(|s| !p.repeated("state") && s.len() <= MAX_STATE_LEN && vschar(s))
        .map(str::to_owned);
    let fail = |error: &'static str, description: String| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.to_owned(),
        state: state.clone(),
        error,
        description,
    };
    let invalid = |d: &str| fail("invalid_request", d.to_owned());
    if let Some(name) = p.first_repeated() {
        return Err(invalid(&format!("parameter {name} given more than once")));
    }
    if p.get("state").is_some() && state.is_none() {
        return Err(invalid(
            "state is too long or has characters outside %x20-7E",
        ));
    }
    if p.get("request").is_some() {
        return Err(fail(
            "request_not_supported",
            "request objects are not supported; use PAR".into(),
        ));
    }
    match p.get("response_type") {
        None => return Err(invalid("response_type is required")),
        Some("code") => {}
        Some(_) => {
            return Err(fail(
                "unsupported_response_type",
                "only response_type=code is supported".into(),
            ))
        }
    }
    if !matches!(p.get("response_mode"), None | Some("query")) {
        return Err(invalid("only response_mode=query is supported"));
    }
    match p.get("code_challenge_method") {
        Some("S256") => {}
        None => {
            return Err(invalid(
                "PKCE is required: code_challenge with code_challenge_method=S256",
            ))
        }
        Some(_) => {
            return Err(invalid(
                "code_challenge_method must be S256 (plain is refused)",
            ))
        }
    }
    let code_challenge = p
        .get("code_challenge")
        .ok_or_else(|| invalid("code_challenge is required"))?;
    if !is_b64url_sha256(code_challenge) {
        return Err(invalid(
            "code_challenge must be 43 base64url characters (S256)",
        ));
    }
    let scope = granted_scope(p.get("scope").unwrap_or(""))
        .ok_or_else(|| fail("invalid_scope", "scope is malformed".into()))?;
    let nonce = p.get("nonce");
    if nonce.is_some_and(|n| n.len() > MAX_NONCE_LEN || !vschar(n)) {
        return Err(invalid(
            "nonce is too long or has characters outside %x20-7E",
        ));
    }
    let prompt = prompt(p.get("prompt")).map_err(invalid)?;
    let max_age = match p.get("max_age") {
        None => None,
        Some(s) if s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        Some(_) => return Err(invalid("max_age must be a number of seconds")),
    };
    let dpop_jkt = p.get("dpop_jkt");
    if dpop_jkt.is_some_and(|j| !is_b64url_sha256(j)) {
        return Err(invalid(
            "dpop_jkt must be a base64url SHA-256 JWK thumbprint",
        ));
    }
    Ok(AuthRequest {
        client_id: client.id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        state,
        scope,
        code_challenge: code_challenge.to_owned(),
        nonce: nonce.map(str::to_owned),
        prompt,
        max_age,
        dpop_jkt: dpop_jkt.map(str::to_owned),
    })
}

/// `prompt` (OpenID Connect Core §3.1.2.1): `none` alone; `login` and `select_account`
/// force the form; `consent` asks nothing of a first-party provider.
fn prompt(value: Option<&str>) -> Result<Prompt, &'static str> {
    let Some(value) = value else {
        return Ok(Prompt::Default);
    };
    let mut out = Prompt::Default;
    let mut none = false;
    let mut count = 0;
    for v in value.split(' ').filter(|v| !v.is_empty()) {
        count += 1;
        match v {
            "none" => none = true,
            "login" | "select_account" => out = Prompt::Login,
            "consent" => {}
            _ => return Err("unsupported prompt value"),
        }
    }
    if none {
        return if count == 1 {
            Ok(Prompt::None)
        } else {
            Err("prompt=none cannot be combined with other values")
        };
    }
    Ok(out)
}

/// The requested scopes this provider grants, space-separated; `None` if malformed
/// (RFC 6749 §3.3: space-delimited tokens of %x21 / %x23-5B / %x5D-7E).
pub fn granted_scope(scope: &str) -> Option<String> {
    if scope.len() > MAX_SCOPE_LEN {
        return None;
    }
    let mut granted: Vec<&str> = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        if !s
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
        {
            return None;
        }
        if SCOPES.contains(&s) && !granted.contains(&s) {
            granted.push(s);
        }
    }
    Some(granted.join(" "))
}

/// Printable ASCII, %x20-7E (RFC 6749 Appendix A's VSCHAR).
fn vschar(s: &str) -> bool {
    s.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// 43 base64url characters: the encoding of a SHA-256 digest (a PKCS challenge or a JWK
/// thumbprint).
pub fn is_b64url_sha256(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::clients::parse_spec;

    const CB: &str = "https://app.example/cb";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn clients() -> Clients {
        Clients::build(
            &[parse_spec(&format!("app={CB}")).unwrap()],
            &[],
            "https://op.example",
        )
        .unwrap()
    }

    fn base() -> Vec<(String, String)> {
        [
            ("client_id", "app"),
            ("redirect_uri", CB),
            ("response_type", "code"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
            ("state", "st"),
            ("scope", "openid profile"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn with(changes: &[(&str, Option<&str>)]) -> Result<FrontChannel, AuthorizeError> {
        let mut p = base();
        for (k, v) in changes {
            p.retain(|(n, _)| n != k);
            if let Some(v) = v {
                p.push((k.to_string(), v.to_string()));
            }
        }
        front_channel(&Params::new(p), &clients())
    }

    fn redirect_error(r: Result<FrontChannel, AuthorizeError>) -> (&'static str, Option<String>) {
        match r {
            Err(AuthorizeError::Redirect {
                error,
                state,
                redirect_uri,
                ..
            }) => {
                assert_eq!(redirect_uri, CB);
                (error, state)
            }
            other => panic!("expected a redirected error, got {other:?}"),
        }
    }

    fn page_error(r: Result<FrontChannel, AuthorizeError>) -> String {
        match r {
            Err(AuthorizeError::Page { description, .. }) => description,
            other => panic!("expected an error page, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_request() {
        let Ok(FrontChannel::Direct(r)) =
            with(&[("nonce", Some("n-1")), ("dpop_jkt", Some(CHALLENGE))])
        else {
            panic!()
        };
        assert_eq!(r.client_id, "app");
        assert_eq!(r.scope, "openid", "unknown scopes are not granted");
        assert_eq!(r.state.as_deref(), Some("st"));
        assert_eq!(r.nonce.as_deref(), Some("n-1"));
        assert_eq!(r.dpop_jkt.as_deref(), Some(CHALLENGE));
        assert_eq!(r.prompt, Prompt::Default);
        assert!(r.wants_id_token());
    }

    #[test]
    fn unsafe_errors_never_redirect() {
        assert!(page_error(with(&[("client_id", None)])).contains("client_id"));
        assert!(matches!(
            with(&[("client_id", Some("nope"))]),
            Err(AuthorizeError::Page {
                unknown_client: true,
                ..
            })
        ));
        assert!(page_error(with(&[("redirect_uri", None)])).contains("redirect_uri"));
        for near in [
            "https://app.example/cb/",
            "https://app.example/c",
            "https://app.example/cbb",
            "https://evil.example/cb",
        ] {
            assert!(page_error(with(&[("redirect_uri", Some(near))])).contains("registered"));
        }
        let mut dup = base();
        dup.push(("redirect_uri".into(), CB.into()));
        assert!(page_error(front_channel(&Params::new(dup), &clients())).contains("more than once"));
        let mut dup = base();
        dup.push(("client_id".into(), "app".into()));
        assert!(page_error(front_channel(&Params::new(dup), &clients())).contains("more than once"));
        assert!(
            page_error(with(&[("request_uri", Some("https://evil.example/req"))]))
                .contains("request_uri")
        );
    }

    #[test]
    fn parameter_errors_redirect_with_state() {
        type Change<'a> = &'a [(&'a str, Option<&'a str>)];
        let cases: &[(Change, &str)] = &[
            (&[("response_type", None)], "invalid_request"),
            (
                &[("response_type", Some("token"))],
                "unsupported_response_type",
            ),
            (
                &[("code_challenge_method", Some("plain"))],
                "invalid_request",
            ),
            (&[("code_challenge_method", None)], "invalid_request"),
            (&[("code_challenge", None)], "invalid_request"),
            (&[("code_challenge", Some("short"))], "invalid_request"),
            (
                &[("code_challenge", Some(&"a".repeat(44)))],
                "invalid_request",
            ),
            (
                &[(
                    "code_challenge",
                    Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"),
                )],
                "invalid_request",
            ),
            (&[("scope", Some("openid\u{7f}"))], "invalid_scope"),
            (&[("scope", Some("a\"b"))], "invalid_scope"),
            (&[("prompt", Some("none login"))], "invalid_request"),
            (&[("prompt", Some("bogus"))], "invalid_request"),
            (&[("max_age", Some("-1"))], "invalid_request"),
            (&[("max_age", Some("99999999999"))], "invalid_request"),
            (&[("dpop_jkt", Some("x"))], "invalid_request"),
            (&[("response_mode", Some("fragment"))], "invalid_request"),
            (&[("request", Some("eyJ..."))], "request_not_supported"),
            (
                &[("nonce", Some(&"n".repeat(MAX_NONCE_LEN + 1)))],
                "invalid_request",
            ),
        ];
        for (changes, want) in cases {
            let (error, state) = redirect_error(with(changes));
            assert_eq!(error, *want, "{changes:?}");
            assert_eq!(state.as_deref(), Some("st"), "{changes:?}");
        }
        let mut dup = base();
        dup.push(("scope".into(), "openid".into()));
        let (error, _) = redirect_error(front_channel(&Params::new(dup), &clients()));
        assert_eq!(error, "invalid_request");
        // A bad state is not echoed.
        let (error, state) = redirect_error(with(&[("state", Some("a\nb"))]));
        assert_eq!((error, state), ("invalid_request", None));
        let long = "s".repeat(MAX_STATE_LEN + 1);
        let (_, state) = redirect_error(with(&[("state", Some(&long))]));
        assert_eq!(state, None);
    }

    #[test]
    fn prompt_values() {
        assert_eq!(prompt(Some("login")), Ok(Prompt::Login));
        assert_eq!(prompt(Some("select_account consent")), Ok(Prompt::Login));
        assert_eq!(prompt(Some("none")), Ok(Prompt::None));
        assert_eq!(prompt(Some("consent")), Ok(Prompt::Default));
        assert_eq!(prompt(None), Ok(Prompt::Default));
        assert!(prompt(Some("none consent")).is_err());
    }

    #[test]
    fn pushed_requests_name_only_the_client_and_the_handle() {
        let (uri, hash) = par::new_request_uri();
        let p = Params::new([
            ("client_id".to_string(), "app".to_string()),
            ("request_uri".to_string(), uri),
        ]);
        assert_eq!(
            front_channel(&p, &clients()),
            Ok(FrontChannel::Pushed {
                client_id: "app".into(),
                handle: hash
            })
        );
    }

    #[test]
    fn empty_values_are_absent_and_too_many_params_are_refused() {
        let (error, _) = redirect_error(with(&[("response_type", Some(""))]));
        assert_eq!(error, "invalid_request");
        let many = (0..100).map(|i| (format!("p{i}"), "v".to_string()));
        assert!(page_error(front_channel(&Params::new(many), &clients())).contains("too many"));
    }
}
