//! Registered public clients and their redirect URIs. Redirect and post-logout URIs match
//! **exactly** (string comparison: no prefix, no wildcard, no normalisation; RFC 9700 §2.1,
//! RFC 6749 §3.1.2.3).

use std::collections::BTreeMap;

/// The client registered when no `--client` is given: the demo page at `/` on the issuer.
pub const DEMO_CLIENT_ID: &str = "rotafetch-demo";

/// Longest accepted client id and redirect URI.
const MAX_ID_LEN: usize = 128;
const MAX_URI_LEN: usize = 2048;

/// A registered public client (token endpoint authentication `none`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
}

impl Client {
    /// True if `uri` is one of the registered redirect URIs, byte for byte.
    pub fn allows_redirect(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r == uri)
    }

    /// True if `uri` is one of the registered post-logout redirect URIs, byte for byte.
    pub fn allows_post_logout(&self, uri: &str) -> bool {
        self.post_logout_redirect_uris.iter().any(|r| r == uri)
    }
}

/// `ID=URI[,URI…]` as given to `--client` or `--post-logout`; URIs starting with `/` are
/// resolved against the issuer later ([`Clients::build`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSpec {
    pub id: String,
    pub uris: Vec<String>,
}

/// Parses `ID=URI[,URI…]` (the `--client` / `--post-logout` syntax).
pub fn parse_spec(s: &str) -> Result<ClientSpec, String> {
    let (id, uris) = s
        .split_once('=')
        .ok_or_else(|| format!("expected ID=URI[,URI…], got {s:?}"))?;
    if !valid_client_id(id) {
        return Err(format!(
            "client id {id:?}: 1 to {MAX_ID_LEN} characters of A-Z a-z 0-9 . _ ~ -"
        ));
    }
    let uris: Vec<String> = uris.split(',').map(str::to_owned).collect();
    for u in &uris {
        if !u.starts_with('/') || u.starts_with("//") {
            check_absolute(u, false)?;
        }
    }
    Ok(ClientSpec {
        id: id.to_owned(),
        uris,
    })
}

/// Client ids are unreserved characters (they appear in URLs and HTML unescaped).
pub fn valid_client_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
}

/// A registrable absolute redirect URI: `https`, or `http` on a loopback host (RFC 9700
/// §2.6 / RFC 8252 §8.3) or on the issuer's own origin (`on_issuer`: as safe as the issuer
/// itself), no fragment (RFC 6749 §3.1.2), no user info.
fn check_absolute(u: &str, on_issuer: bool) -> Result<(), String> {
    if u.len() > MAX_URI_LEN {
        return Err(format!("redirect URI longer than {MAX_URI_LEN} bytes"));
    }
    let parsed = url::Url::parse(u).map_err(|e| format!("redirect URI {u:?}: {e}"))?;
    let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
    match parsed.scheme() {
        "https" => {}
        "http" if loopback || on_issuer => {}
        _ => {
            return Err(format!(
                "redirect URI {u:?}: https, or http on 127.0.0.1, [::1] or localhost"
            ))
        }
    }
    if u.contains('#') || !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!(
            "redirect URI {u:?}: no fragment and no user info allowed"
        ));
    }
    Ok(())
}

/// `uri` as registered: a path is resolved against the issuer (`https://a.example` +
/// `/cb` → `https://a.example/cb`).
fn resolve(uri: &str, issuer: &str) -> Result<String, String> {
    if uri.starts_with('/') {
        let abs = format!("{issuer}{uri}");
        check_absolute(&abs, true)?;
        Ok(abs)
    } else {
        Ok(uri.to_owned())
    }
}

/// The registry of clients.
#[derive(Debug, Clone, Default)]
pub struct Clients {
    by_id: BTreeMap<String, Client>,
}

impl Clients {
    /// Builds the registry from `--client` and `--post-logout` specs. Without any client
    /// spec, the demo client ([`DEMO_CLIENT_ID`], `/` for both) is registered.
    pub fn build(
        clients: &[ClientSpec],
        post_logout: &[ClientSpec],
        issuer: &str,
    ) -> Result<Self, String> {
        let demo = [ClientSpec {
            id: DEMO_CLIENT_ID.into(),
            uris: vec!["/".into()],
        }];
        let (clients, post_logout) = if clients.is_empty() {
            (
                &demo[..],
                if post_logout.is_empty() {
                    &demo[..]
                } else {
                    post_logout
                },
            )
        } else {
            (clients, post_logout)
        };
        let mut by_id = BTreeMap::new();
        for spec in clients {
            let redirect_uris = spec
                .uris
                .iter()
                .map(|u| resolve(u, issuer))
                .collect::<Result<Vec<_>, _>>()?;
            let client = Client {
                id: spec.id.clone(),
                redirect_uris,
                post_logout_redirect_uris: Vec::new(),
            };
            if by_id.insert(spec.id.clone(), client).is_some() {
                return Err(format!("client {:?} given twice", spec.id));
            }
        }
        for spec in post_logout {
            let client = by_id.get_mut(&spec.id).ok_or_else(|| {
                format!(
                    "post-logout URIs for client {:?}, which is not registered",
                    spec.id
                )
            })?;
            for u in &spec.uris {
                client.post_logout_redirect_uris.push(resolve(u, issuer)?);
            }
        }
        Ok(Clients { by_id })
    }

    pub fn get(&self, id: &str) -> Option<&Client> {
        self.by_id.get(id)
    }

    /// Adds or replaces a client (the test-only run-time registration).
    pub fn insert(&mut self, client: Client) {
        self.by_id.insert(client.id.clone(), client);
    }

    /// Checks a client given at run time (absolute URIs only) and returns it.
    pub fn check(client: Client) -> Result<Client, String> {
        if !valid_client_id(&client.id) {
            return Err("invalid client_id".into());
        }
        if client.redirect_uris.is_empty() {
            return Err("at least one redirect URI is required".into());
        }
        for u in client
            .redirect_uris
            .iter()
            .chain(&client.post_logout_redirect_uris)
        {
            check_absolute(u, false)?;
        }
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "http://127.0.0.1:8080";

    #[test]
    fn specs_parse_and_resolve_against_the_issuer() {
        let c = parse_spec("app=/cb,https://app.example/cb?x=1").unwrap();
        assert_eq!(c.id, "app");
        let p = parse_spec("app=/").unwrap();
        let reg = Clients::build(&[c], &[p], ISS).unwrap();
        let app = reg.get("app").unwrap();
        assert_eq!(
            app.redirect_uris,
            ["http://127.0.0.1:8080/cb", "https://app.example/cb?x=1"]
        );
        assert_eq!(app.post_logout_redirect_uris, ["http://127.0.0.1:8080/"]);
        assert!(
            reg.get(DEMO_CLIENT_ID).is_none(),
            "no demo client with --client"
        );
    }

    #[test]
    fn the_demo_client_is_the_default() {
        let reg = Clients::build(&[], &[], ISS).unwrap();
        let demo = reg.get(DEMO_CLIENT_ID).unwrap();
        assert!(demo.allows_redirect("http://127.0.0.1:8080/"));
        assert!(demo.allows_post_logout("http://127.0.0.1:8080/"));
        // Paths live on the issuer, whatever its scheme; absolute http URIs must be loopback.
        let behind_proxy = Clients::build(&[], &[], "http://auth.internal:8443").unwrap();
        assert!(behind_proxy
            .get(DEMO_CLIENT_ID)
            .unwrap()
            .allows_redirect("http://auth.internal:8443/"));
        let abs = [parse_spec("a=https://auth.internal/cb").unwrap()];
        assert!(Clients::build(&abs, &[], "http://auth.internal:8443").is_ok());
    }

    #[test]
    fn matching_is_exact() {
        let reg =
            Clients::build(&[parse_spec("a=https://a.example/cb").unwrap()], &[], ISS).unwrap();
        let a = reg.get("a").unwrap();
        assert!(a.allows_redirect("https://a.example/cb"));
        for near in [
            "https://a.example/cb/",
            "https://a.example/c",
            "https://a.example/cbx",
            "https://a.example/cb?",
            "https://a.example/cb#",
            "https://A.example/cb",
            "https://a.example:443/cb",
            "https://a.example/CB",
            "http://a.example/cb",
            "https://a.example/cb%20",
            "",
        ] {
            assert!(!a.allows_redirect(near), "{near:?}");
        }
        assert!(!a.allows_post_logout("https://a.example/cb"));
    }

    #[test]
    fn bad_specs_are_refused() {
        for bad in [
            "noequals",
            "=https://a.example/",
            "a b=https://a.example/",
            "a=",
            "a=//evil.example/cb",
            "a=http://a.example/cb",
            "a=https://a.example/cb#frag",
            "a=https://user:pw@a.example/cb",
            "a=javascript:alert(1)",
            "a=https://a.example/cb,",
        ] {
            assert!(parse_spec(bad).is_err(), "{bad:?}");
        }
        let twice = [parse_spec("a=/x").unwrap(), parse_spec("a=/y").unwrap()];
        assert!(Clients::build(&twice, &[], ISS).is_err());
        let orphan = [parse_spec("b=/").unwrap()];
        assert!(Clients::build(&[parse_spec("a=/").unwrap()], &orphan, ISS).is_err());
        assert!(Clients::check(Client {
            id: "t".into(),
            redirect_uris: vec!["/relative".into()],
            post_logout_redirect_uris: vec![],
        })
        .is_err());
    }
}
