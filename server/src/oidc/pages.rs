//! The provider's HTML pages: the sign-in form, the error page, the sign-out confirmation
//! and the signed-out page. Plain forms that work without JavaScript; maud escapes every
//! value. Each page is sent with [`csp`], which allows no script at all, only this file's
//! one stylesheet (by hash), and form submissions to this server (plus, for the sign-in
//! form, the client's origin its answer redirects to: Chromium applies `form-action` to the
//! redirects that follow a form submission).

use std::sync::LazyLock;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use sha2::{Digest, Sha256};

use super::discovery::{AUTHORIZE_LOGIN, END_SESSION};

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d1f24}\
main{max-width:22rem;margin:4rem auto;padding:2rem;background:#fff;border-radius:8px;box-shadow:0 1px 4px #0002}\
h1{font-size:1.4rem;margin:0 0 .5rem}label{display:block;margin-top:1rem;font-weight:600}\
input{width:100%;box-sizing:border-box;padding:.5rem;font:inherit;border:1px solid #8a8f98;border-radius:4px}\
button{margin-top:1.5rem;width:100%;padding:.6rem;font:inherit;font-weight:600;color:#fff;background:#2557d6;border:0;border-radius:4px;cursor:pointer}\
button:focus-visible,input:focus-visible{outline:3px solid #f5a623;outline-offset:1px}\
.error{color:#a40e26;background:#fdecee;padding:.5rem;border-radius:4px}";

static STYLE_HASH: LazyLock<String> =
    LazyLock::new(|| format!("'sha256-{}'", B64.encode(Sha256::digest(STYLE.as_bytes()))));

/// The `Content-Security-Policy` of a page; `form_origin` is an extra origin forms may end
/// up at (the client's, after the sign-in redirect). `img-src data:` admits the pages' empty
/// `data:` icon: without an icon, browsers ask for `/favicon.ico`, which `default-src 'none'`
/// blocks (Firefox reports it as a page error), and Chromium and Firefox both report a
/// `data:` icon that the policy does not admit (measured with both engines).
pub fn csp(form_origin: Option<&str>) -> String {
    let extra = form_origin.map(|o| format!(" {o}")).unwrap_or_default();
    format!(
        "default-src 'none'; style-src {}; img-src data:; form-action 'self'{extra}; frame-ancestors 'none'; base-uri 'none'",
        *STYLE_HASH
    )
}

fn page(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) }
                link rel="icon" href="data:,";
                style { (PreEscaped(STYLE)) }
            }
            body { main { (body) } }
        }
    }
    .into_string()
}

/// What the sign-in form shows and carries.
#[derive(Debug)]
pub struct LoginForm<'a> {
    pub client_id: &'a str,
    /// The sealed authorization request.
    pub request: &'a str,
    pub csrf_token: &'a str,
    /// The username to prefill after a failed attempt.
    pub username: &'a str,
    /// A message after a failed attempt (never telling which field was wrong).
    pub error: Option<&'a str>,
}

pub fn login(f: &LoginForm<'_>) -> String {
    page(
        "Sign in",
        html! {
            h1 { "Sign in" }
            p { "to continue to " strong { (f.client_id) } }
            @if let Some(e) = f.error {
                p.error id="error" role="alert" { (e) }
            }
            form method="post" action=(AUTHORIZE_LOGIN) {
                input type="hidden" name="csrf_token" value=(f.csrf_token);
                input type="hidden" name="request" value=(f.request);
                label for="username" { "Username" }
                input id="username" name="username" autocomplete="username" required
                    autofocus[f.username.is_empty()] value=(f.username)
                    aria-describedby=[f.error.map(|_| "error")];
                label for="password" { "Password" }
                input id="password" name="password" type="password"
                    autocomplete="current-password" required autofocus[!f.username.is_empty()];
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// A refused request that must not be redirected (unknown client, unregistered
/// redirect URI, bad `request_uri`, a forged or stale form).
pub fn error(description: &str) -> String {
    page(
        "Sign-in request refused",
        html! {
            h1 { "Sign-in request refused" }
            p.error role="alert" { (description) }
            p { "Go back to the application and try again." }
        },
    )
}

/// Hidden fields of the sign-out confirmation.
#[derive(Debug, Default)]
pub struct LogoutConfirm<'a> {
    pub csrf_token: &'a str,
    pub client_id: Option<&'a str>,
    pub post_logout_redirect_uri: Option<&'a str>,
    pub state: Option<&'a str>,
}

pub fn logout_confirm(f: &LogoutConfirm<'_>) -> String {
    page(
        "Sign out",
        html! {
            h1 { "Sign out?" }
            p { "An application asked to sign you out of this provider." }
            form method="post" action=(END_SESSION) {
                input type="hidden" name="csrf_token" value=(f.csrf_token);
                @if let Some(v) = f.client_id { input type="hidden" name="client_id" value=(v); }
                @if let Some(v) = f.post_logout_redirect_uri {
                    input type="hidden" name="post_logout_redirect_uri" value=(v);
                }
                @if let Some(v) = f.state { input type="hidden" name="state" value=(v); }
                button type="submit" { "Sign out" }
            }
        },
    )
}

pub fn signed_out() -> String {
    page(
        "Signed out",
        html! {
            h1 { "Signed out" }
            p { "You are signed out of this provider. You can close this page." }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        let html = login(&LoginForm {
            client_id: "<script>x</script>",
            request: "a\"b",
            csrf_token: "t",
            username: "u\"><img src=x>",
            error: Some("Invalid username or password."),
        });
        assert!(!html.contains("<script>x"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("value=\"a&quot;b\""), "{html}");
        assert!(html.contains("role=\"alert\""));
        assert!(html.contains("<label for=\"username\">Username</label>"));
        assert!(html.contains(r#"action="/authorize/login""#));
        assert!(error("<b>").contains("&lt;b&gt;"));
    }

    #[test]
    fn the_policy_allows_only_the_style_and_the_forms() {
        let p = csp(Some("https://app.example"));
        assert!(
            p.starts_with("default-src 'none'; style-src 'sha256-"),
            "{p}"
        );
        assert!(p.contains("form-action 'self' https://app.example;"), "{p}");
        assert!(p.contains("frame-ancestors 'none'"));
        assert!(p.contains("; img-src data:;"), "{p}");
        assert!(!p.contains("script"));
        let hash = B64.encode(Sha256::digest(STYLE.as_bytes()));
        assert!(login(&LoginForm {
            client_id: "a",
            request: "r",
            csrf_token: "t",
            username: "",
            error: None
        })
        .contains(&format!("<style>{STYLE}</style>")));
        assert!(error("x").contains(r#"<link rel="icon" href="data:,">"#));
        assert!(p.contains(&hash));
    }
}
