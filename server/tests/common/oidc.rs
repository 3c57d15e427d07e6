//! The relying party's side of the provider's flows, as a browser and a client make them:
//! a cookie-keeping, non-redirecting HTTP client that reads the sign-in form's hidden
//! fields, PKCE values, and the token request.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::TestServer;

/// The client the provider tests register, and its URIs.
pub const CLIENT: &str = "app";
pub const REDIRECT: &str = "https://app.example/cb";
pub const POST_LOGOUT: &str = "https://app.example/bye";
/// A second client.
pub const OTHER: &str = "other";
pub const OTHER_REDIRECT: &str = "https://other.example/cb";

/// `config.clients` / `config.post_logout` for [`CLIENT`] and [`OTHER`].
pub fn register(c: &mut rotafetch_server::Config) {
    use rotafetch_server::oidc::clients::parse_spec;
    c.clients = vec![
        parse_spec(&format!("{CLIENT}={REDIRECT}")).unwrap(),
        parse_spec(&format!("{OTHER}={OTHER_REDIRECT}")).unwrap(),
    ];
    c.post_logout = vec![parse_spec(&format!("{CLIENT}={POST_LOGOUT}")).unwrap()];
}

/// A PKCE pair (RFC 7636): a random verifier and its S256 challenge.
#[derive(Debug, Clone)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    let verifier = B64URL.encode(super::dpop::random32());
    let challenge = B64URL.encode(Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

/// The parameters of a valid authorization request of [`CLIENT`] (openid, state, nonce).
pub fn auth_params(pkce: &Pkce) -> Vec<(String, String)> {
    [
        ("client_id", CLIENT),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid"),
        ("state", "st-1"),
        ("nonce", "n-1"),
        ("code_challenge", &pkce.challenge),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// `params` with `changes` applied (`None` removes a parameter).
pub fn with(
    params: &[(String, String)],
    changes: &[(&str, Option<&str>)],
) -> Vec<(String, String)> {
    let mut p = params.to_vec();
    for (k, v) in changes {
        p.retain(|(n, _)| n != k);
        if let Some(v) = v {
            p.push((k.to_string(), v.to_string()));
        }
    }
    p
}

pub fn query(params: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

/// A response as a browser sees it.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    /// The value of the hidden form field `name`.
    pub fn hidden(&self, name: &str) -> Option<String> {
        let at = self.body.find(&format!("name=\"{name}\" value=\""))?;
        let rest = &self.body[at + name.len() + 15..];
        let value = &rest[..rest.find('"')?];
        Some(value.replace("&quot;", "\"").replace("&amp;", "&"))
    }

    /// The query parameters of the redirect's `Location`.
    pub fn redirect_params(&self) -> BTreeMap<String, String> {
        let loc = self.location.as_deref().expect("a redirect");
        let u = url::Url::parse(loc).unwrap();
        u.query_pairs().into_owned().collect()
    }

    /// The `Location` without its query.
    pub fn redirect_target(&self) -> String {
        let loc = self.location.as_deref().expect("a redirect");
        loc.split('?').next().unwrap().to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// A browser: keeps cookies, does not follow redirects.
pub struct Browser {
    /// The server it talks to (switch it to talk to another instance with the same
    /// cookies, as behind a load balancer).
    pub base: String,
    http: reqwest::Client,
    pub cookies: BTreeMap<String, String>,
}

impl Browser {
    pub fn new(s: &TestServer) -> Self {
        Self::at(&s.base)
    }

    pub fn at(base: &str) -> Self {
        Browser {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    /// The `Cookie` header this browser sends.
    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn page(&mut self, r: reqwest::Response) -> Page {
        for c in r.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let (kv, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = kv.split_once('=').unwrap();
            if v.is_empty() || attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        Page {
            status: r.status().as_u16(),
            location: r
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_owned()),
            headers: r.headers().clone(),
            body: r.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.page(r).await
    }

    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        self.page(r).await
    }

    /// Sends these GETs at once, all with the cookies held now (tabs of this browser
    /// opening together), then takes every answer's cookies: the pages, in order.
    pub async fn get_at_once(&mut self, paths: &[String]) -> Vec<Page> {
        let cookies = self.cookie_header();
        let sent: Vec<_> = paths
            .iter()
            .map(|path| {
                let req = self.http.get(format!("{}{path}", self.base));
                tokio::spawn(req.header("cookie", &cookies).send())
            })
            .collect();
        self.pages(sent).await
    }

    /// Submits these sign-in forms (pages showing them) as demo/demo at once, all with the
    /// cookies held now: the answers, in order.
    pub async fn submit_at_once(&mut self, forms: &[Page]) -> Vec<Page> {
        let cookies = self.cookie_header();
        let sent = forms.iter().map(|form| {
            let body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs([
                    ("csrf_token", form.hidden("csrf_token").expect("csrf_token")),
                    ("request", form.hidden("request").expect("request")),
                    ("username", "demo".into()),
                    ("password", "demo".into()),
                ])
                .finish();
            let req = self.http.post(format!("{}/authorize/login", self.base));
            let req = req
                .header("cookie", &cookies)
                .header("content-type", "application/x-www-form-urlencoded");
            tokio::spawn(req.body(body).send())
        });
        let sent: Vec<_> = sent.collect();
        self.pages(sent).await
    }

    /// The answers of requests under way, in order, their cookies taken.
    async fn pages(
        &mut self,
        sent: Vec<tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>>,
    ) -> Vec<Page> {
        let mut pages = Vec::new();
        for r in sent {
            pages.push(self.page(r.await.unwrap().unwrap()).await);
        }
        pages
    }

    pub async fn authorize(&mut self, params: &[(String, String)]) -> Page {
        self.get(&format!("/authorize?{}", query(params))).await
    }

    /// Submits the sign-in form `form` (a page showing it) with these credentials.
    pub async fn submit(&mut self, form: &Page, username: &str, password: &str) -> Page {
        assert_eq!(form.status, 200, "the sign-in form: {}", form.body);
        let csrf = form.hidden("csrf_token").expect("csrf_token field");
        let request = form.hidden("request").expect("request field");
        self.post(
            "/authorize/login",
            &[
                ("csrf_token", &csrf),
                ("request", &request),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }

    /// Authorization request, sign-in form as demo/demo: the redirect back to the client.
    pub async fn sign_in(&mut self, params: &[(String, String)]) -> Page {
        let form = self.authorize(params).await;
        let back = self.submit(&form, "demo", "demo").await;
        assert_eq!(back.status, 303, "{}", back.body);
        back
    }
}

/// The token request of the authorization code grant.
pub async fn exchange(
    s: &TestServer,
    fields: &[(&str, &str)],
    proof: Option<String>,
) -> reqwest::Response {
    let mut req = s
        .client
        .post(s.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields)
                .finish(),
        );
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    req.send().await.unwrap()
}

/// `exchange` with the usual fields for `code` and `pkce`.
pub async fn redeem(
    s: &TestServer,
    code: &str,
    pkce: &Pkce,
    proof: Option<String>,
) -> reqwest::Response {
    exchange(
        s,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", CLIENT),
            ("code_verifier", &pkce.verifier),
        ],
        proof,
    )
    .await
}

/// A successful token response's body.
pub async fn token_ok(r: reqwest::Response) -> Value {
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}
