//! The app: one [`AuthClient`], a login form, a button that calls `GET /api/me`, and the
//! client's events shown on the page.

use std::cell::Cell;
use std::rc::Rc;

use rotafetch::{AuthClient, AuthEvent, ErrorCode, FetchError, Options, StorageKind};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{Document, HtmlElement, HtmlInputElement, Request, RequestInit};

/// Runs when the module is instantiated (`await init()` in `www/index.html`).
#[wasm_bindgen(start)]
pub fn start() -> Result<(), JsValue> {
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;

    let mut options = Options::new("/auth/refresh");
    options.logout_url = Some("/auth/logout".into());
    // This tab only, so every new browser context starts signed out.
    options.storage = StorageKind::Session;
    let auth = AuthClient::new(options).map_err(|e| JsValue::from_str(&e.to_string()))?;

    let ui = Ui { document };

    // Events arrive as Rust values: match on them.
    let refreshes = Rc::new(Cell::new(0u32));
    let listener_ui = ui.clone();
    auth.on(move |event| match event {
        AuthEvent::Signin { expires_at, source } => {
            listener_ui.set("status", "signed in");
            listener_ui.show_expiry(*expires_at);
            log(&format!("rotafetch: signed in ({})", source.as_str()));
        }
        AuthEvent::Refresh { expires_at, source } => {
            refreshes.set(refreshes.get() + 1);
            listener_ui.set("refreshes", &refreshes.get().to_string());
            listener_ui.set("status", "signed in");
            listener_ui.show_expiry(*expires_at);
            log(&format!(
                "rotafetch: refreshed ({}), access token until {expires_at:?}",
                source.as_str()
            ));
        }
        AuthEvent::Signout { reason, error } => {
            listener_ui.set("status", "signed out");
            listener_ui.show_expiry(None);
            log(&format!(
                "rotafetch: signed out ({}{})",
                reason.as_str(),
                error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
        }
    });

    let (a, u) = (auth.clone(), ui.clone());
    ui.on("login-form", "submit", move |event| {
        event.prevent_default();
        let (auth, ui) = (a.clone(), u.clone());
        spawn_local(async move {
            match login(&auth, &ui).await {
                Ok(()) => ui.set("result", "logged in"),
                Err(e) => ui.set("result", &e),
            }
            ui.show(&auth);
        });
    })?;

    let calls = Rc::new(Cell::new(0u32));
    let (a, u) = (auth.clone(), ui.clone());
    ui.on("call", "click", move |_| {
        calls.set(calls.get() + 1);
        let (auth, ui, n) = (a.clone(), u.clone(), calls.get());
        spawn_local(async move {
            let text = match call_api(&auth).await {
                Ok((status, who)) => format!("call {n}: {status} {who}"),
                Err(e) => e,
            };
            ui.set("result", &text);
            ui.show(&auth);
        });
    })?;

    let (a, u) = (auth.clone(), ui.clone());
    ui.on("logout", "click", move |_| {
        let (auth, ui) = (a.clone(), u.clone());
        spawn_local(async move {
            auth.logout().await;
            ui.set("result", "logged out");
            ui.show(&auth);
        });
    })?;

    ui.show(&auth);
    if let Some(body) = ui.document.body() {
        body.set_attribute("data-ready", "true")?;
    }
    Ok(())
}

/// `login(url, credentials)`: the credentials are any JSON-serialisable JS value.
async fn login(auth: &AuthClient, ui: &Ui) -> Result<(), String> {
    let credentials = js_sys::Object::new();
    for field in ["username", "password"] {
        let value = ui.input(field).map(|i| i.value()).unwrap_or_default();
        js_sys::Reflect::set(&credentials, &field.into(), &value.into())
            .map_err(|_| "cannot build the credentials".to_string())?;
    }
    auth.login("/auth/login", &credentials)
        .await
        .map_err(|e| describe(e.code(), &e.to_string()))
}

/// `fetch(Request)`: a `web_sys::Request` in, a `web_sys::Response` out, as with `fetch`.
async fn call_api(auth: &AuthClient) -> Result<(u16, String), String> {
    let init = RequestInit::new();
    let headers = web_sys::Headers::new().map_err(js_text)?;
    headers.set("accept", "application/json").map_err(js_text)?;
    init.set_headers(&headers);
    let request = Request::new_with_str_and_init("/api/me", &init).map_err(js_text)?;

    let response = auth.fetch(request).await.map_err(|e| match e {
        FetchError::Auth(e) => describe(e.code(), &e.to_string()),
        FetchError::Js(e) => format!("error: {}", js_text(e)),
    })?;
    let status = response.status();
    let body = JsFuture::from(response.text().map_err(js_text)?)
        .await
        .map_err(js_text)?
        .as_string()
        .unwrap_or_default();
    let who = match js_sys::JSON::parse(&body) {
        Ok(v) if response.ok() => js_sys::Reflect::get(&v, &"username".into())
            .ok()
            .and_then(|u| u.as_string())
            .unwrap_or(body),
        _ => body,
    };
    Ok((status, who))
}

/// A user-facing sentence for each failure rotafetch can report.
fn describe(code: ErrorCode, message: &str) -> String {
    let what = match code {
        ErrorCode::InvalidConfig => "the client is misconfigured",
        ErrorCode::NotAuthenticated => "please log in",
        ErrorCode::RefreshRejected => "your session ended, please log in again",
        ErrorCode::RefreshFailed => "could not reach the server to renew the session",
        ErrorCode::BodyNotReplayable => "the request could not be retried",
        ErrorCode::Aborted => "cancelled",
        ErrorCode::LoginFailed => "wrong username or password",
        ErrorCode::ProviderError => "the sign-in was refused",
        ErrorCode::NoTransaction
        | ErrorCode::StateMismatch
        | ErrorCode::IssMismatch
        | ErrorCode::TransactionExpired => {
            "that sign-in link is not valid here: please sign in again"
        }
        ErrorCode::SigninFailed => "could not reach the sign-in service",
        ErrorCode::SigninRejected => "the sign-in could not be completed: please sign in again",
        ErrorCode::PopupBlocked => "allow popups for this site to sign in",
        ErrorCode::PopupClosed => "the sign-in window was closed",
    };
    format!("error {}: {what} ({message})", code.as_str())
}

fn js_text(v: JsValue) -> String {
    if let Some(s) = v.as_string() {
        return s;
    }
    match v.dyn_into::<js_sys::Error>() {
        Ok(e) => String::from(e.message()),
        Err(v) => format!("{v:?}"),
    }
}

fn log(s: &str) {
    web_sys::console::info_1(&s.into());
}

/// The page's elements, by id.
#[derive(Clone)]
struct Ui {
    document: Document,
}

impl Ui {
    fn element(&self, id: &str) -> Option<HtmlElement> {
        self.document.get_element_by_id(id)?.dyn_into().ok()
    }

    fn input(&self, id: &str) -> Option<HtmlInputElement> {
        self.document.get_element_by_id(id)?.dyn_into().ok()
    }

    fn set(&self, id: &str, text: &str) {
        if let Some(e) = self.element(id) {
            e.set_text_content(Some(text));
        }
    }

    fn show_expiry(&self, at: Option<f64>) {
        if let Some(e) = self.element("expires") {
            let text = at.map_or("-".into(), |ms| {
                String::from(js_sys::Date::new(&ms.into()).to_iso_string())
            });
            e.set_text_content(Some(&text));
            let _ = e.set_attribute("data-ms", &at.map(|ms| ms.to_string()).unwrap_or_default());
        }
    }

    fn show(&self, auth: &AuthClient) {
        let status = if auth.authenticated() {
            "signed in"
        } else {
            "signed out"
        };
        self.set("status", status);
        self.show_expiry(auth.expires_at());
    }

    /// Adds an event listener for the page's lifetime.
    fn on(
        &self,
        id: &str,
        event: &str,
        handler: impl FnMut(web_sys::Event) + 'static,
    ) -> Result<(), JsValue> {
        let target = self.element(id).ok_or_else(|| format!("#{id} missing"))?;
        let closure = Closure::<dyn FnMut(web_sys::Event)>::new(handler);
        target.add_event_listener_with_callback(event, closure.as_ref().unchecked_ref())?;
        closure.forget();
        Ok(())
    }
}
