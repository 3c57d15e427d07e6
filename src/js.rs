//! The `#[wasm_bindgen]` façade: the npm package's `AuthClient` and `AuthError`.

use crate::error::{AuthError, ErrorCode};
use crate::token;
use crate::web::{promise, then_fns, Started};
use crate::web::{
    AuthClient, AuthEvent, FetchError, Options, Redirects, RefreshFormat, StorageKind,
};
use alloc::{string::String, vec::Vec};
use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen(typescript_custom_section)]
const TS: &'static str = r#"
/** The stable `code` of every {@link AuthError}. */
export type AuthErrorCode =
  | "invalid_config"
  | "not_authenticated"
  | "refresh_rejected"
  | "refresh_failed"
  | "body_not_replayable"
  | "aborted"
  | "login_failed";

/** Every rotafetch rejection: `instanceof Error` and `instanceof AuthError`, with a stable `code`. */
export class AuthError extends Error {
  private constructor();
  readonly name: "AuthError";
  readonly code: AuthErrorCode;
}

/** Options of `new AuthClient(options)`. */
export interface AuthClientOptions {
  /** The refresh endpoint (required); relative URLs resolve against the page. */
  refreshUrl: string;
  /** POSTed `{"refresh_token"}` by `logout()`, best effort. */
  logoutUrl?: string;
  /** `"json"` (default): `{"refresh_token"}`; `"oauth2"`: RFC 6749 §6 form. */
  refreshFormat?: "json" | "oauth2";
  /** `client_id` sent with `"oauth2"` refreshes. */
  clientId?: string;
  /** Where the session lives; default `"local"` (shared by tabs). */
  storage?: "local" | "session" | "memory";
  /** Storage key and lock name; default `"rotafetch"`. */
  storageKey?: string;
  /** Origins that receive the access token; default: the page's and `refreshUrl`'s. */
  allowedOrigins?: string[];
  /** Refresh this long before expiry (capped at half the token's lifetime); default 10. */
  leewaySeconds?: number;
  /** Bound on a refresh and on waiting for another tab's; default 10000. */
  refreshTimeoutMs?: number;
  /** No 401 starts a refresh sooner than this after the last one; default 1000. */
  minRefreshIntervalMs?: number;
  /** One refresh per browser across tabs; default true (only with `storage: "local"`). */
  crossTab?: boolean;
  /**
   * What authenticated calls do at a redirect; default `"follow"`. Current engines drop the
   * token at a redirect to another origin (Fetch standard); `"error"` fails authenticated
   * calls at any redirect instead, so the token never follows one, whatever the engine.
   */
  redirect?: "follow" | "error";
}

/** Tokens for `setTokens`: RFC 6749 names or camelCase. */
export type Tokens =
  | { access_token: string; refresh_token: string; expires_in?: number; token_type?: string }
  | { accessToken: string; refreshToken: string; expiresIn?: number; tokenType?: string };

/** Detail of the `refresh` event. */
export interface RefreshDetail {
  /** The new access token's expiry, ms since the epoch, if known. */
  expiresAt: number | undefined;
  /** Whether this tab refreshed or adopted another tab's refresh. */
  source: "this-tab" | "other-tab";
}

/** Detail of the `signout` event: show the login page. */
export interface SignoutDetail {
  reason: "logout" | "rejected" | "other-tab";
  /** The server's error code for a rejection, e.g. `"invalid_grant"`. */
  error?: string;
}

/** Events of {@link AuthClient.on}. */
export interface AuthEventMap {
  refresh: RefreshDetail;
  signout: SignoutDetail;
}

export interface AuthClient {
  /** Listens to an event; returns a function that removes the listener. */
  on<K extends keyof AuthEventMap>(event: K, listener: (detail: AuthEventMap[K]) => void): () => void;
}
"#;

/// The JS class `AuthError`. Instances are real `Error` objects whose prototype is this
/// class's, which inherits from `Error.prototype`.
#[wasm_bindgen(js_name = AuthError, skip_typescript)]
pub struct AuthErrorClass {
    _private: u8,
}

/// `AuthError.prototype`, wired to inherit from `Error.prototype` on first use.
struct Proto(core::cell::OnceCell<Object>);
// Sound because this wasm is single-threaded (no atomics, no shared memory), which the
// allocator (`lol_alloc::AssumeSingleThreaded`) assumes too.
unsafe impl Sync for Proto {}
static AUTH_ERROR_PROTO: Proto = Proto(core::cell::OnceCell::new());

fn auth_error_proto() -> &'static Object {
    AUTH_ERROR_PROTO.0.get_or_init(|| {
        let instance: JsValue = AuthErrorClass { _private: 0 }.into();
        let proto = Object::get_prototype_of(&instance);
        let error_proto = Object::get_prototype_of(&js_sys::Error::new("").into());
        Object::set_prototype_of(&proto, &error_proto);
        let _ = Reflect::set(&proto, &"name".into(), &"AuthError".into());
        proto
    })
}

fn js_error(e: &AuthError) -> JsValue {
    let err = js_sys::Error::new(e.message());
    Object::set_prototype_of(&err, auth_error_proto());
    let _ = Reflect::set(&err, &"code".into(), &e.code().as_str().into());
    err.into()
}

fn fetch_error(e: FetchError) -> JsValue {
    match e {
        FetchError::Auth(a) => js_error(&a),
        FetchError::Js(v) => v,
    }
}

const OPTIONS: [&str; 12] = [
    "refreshUrl",
    "logoutUrl",
    "refreshFormat",
    "clientId",
    "storage",
    "storageKey",
    "allowedOrigins",
    "leewaySeconds",
    "refreshTimeoutMs",
    "minRefreshIntervalMs",
    "crossTab",
    "redirect",
];

fn opt(o: &JsValue, key: &str) -> Option<JsValue> {
    let v = Reflect::get(o, &key.into()).ok()?;
    (!v.is_undefined()).then_some(v)
}

fn opt_string(o: &JsValue, key: &str) -> Result<Option<String>, AuthError> {
    match opt(o, key) {
        None => Ok(None),
        Some(v) => v
            .as_string()
            .map(Some)
            .ok_or_else(|| AuthError::invalid_option(key, "must be a string")),
    }
}

fn opt_choice(
    o: &JsValue,
    key: &str,
    choices: &[&str],
    must: &str,
) -> Result<Option<usize>, AuthError> {
    match opt_string(o, key)? {
        None => Ok(None),
        Some(s) => choices
            .iter()
            .position(|c| *c == s)
            .map(Some)
            .ok_or_else(|| AuthError::invalid_option(key, must)),
    }
}

fn opt_int(o: &JsValue, key: &str, min: f64) -> Result<Option<u32>, AuthError> {
    match opt(o, key) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(n) if n >= min && n <= f64::from(u32::MAX) && n == f64::from(n as u32) => {
                Ok(Some(n as u32))
            }
            _ => Err(AuthError::invalid_option(
                key,
                if min > 0.0 {
                    "must be a positive integer"
                } else {
                    "must be a non-negative integer"
                },
            )),
        },
    }
}

fn parse_options(o: &JsValue) -> Result<Options, AuthError> {
    if !o.is_object() {
        return Err(AuthError::new(
            ErrorCode::InvalidConfig,
            "options must be an object with at least refreshUrl",
        ));
    }
    for key in Object::keys(o.unchecked_ref::<Object>()).iter() {
        let key = key.as_string().unwrap_or_default();
        if !OPTIONS.contains(&key.as_str()) {
            return Err(AuthError::invalid_option(&key, "is not a known option"));
        }
    }
    let url = opt_string(o, "refreshUrl")?
        .ok_or_else(|| AuthError::invalid_option("refreshUrl", "is required"))?;
    let mut options = Options::new(url);
    options.logout_url = opt_string(o, "logoutUrl")?;
    if let Some(i) = opt_choice(
        o,
        "refreshFormat",
        &["json", "oauth2"],
        "must be \"json\" or \"oauth2\"",
    )? {
        options.refresh_format = if i == 0 {
            RefreshFormat::Json
        } else {
            RefreshFormat::OAuth2
        };
    }
    options.client_id = opt_string(o, "clientId")?;
    if let Some(i) = opt_choice(
        o,
        "storage",
        &["local", "session", "memory"],
        "must be \"local\", \"session\" or \"memory\"",
    )? {
        options.storage = match i {
            0 => StorageKind::Local,
            1 => StorageKind::Session,
            _ => StorageKind::Memory,
        };
    }
    if let Some(k) = opt_string(o, "storageKey")? {
        options.storage_key = k;
    }
    if let Some(list) = opt(o, "allowedOrigins") {
        let must = "must be an array of origin strings";
        if !Array::is_array(&list) {
            return Err(AuthError::invalid_option("allowedOrigins", must));
        }
        let list: Array = list.unchecked_into();
        let mut out = Vec::with_capacity(list.length() as usize);
        for v in list.iter() {
            out.push(
                v.as_string()
                    .ok_or_else(|| AuthError::invalid_option("allowedOrigins", must))?,
            );
        }
        options.allowed_origins = Some(out);
    }
    if let Some(v) = opt(o, "leewaySeconds") {
        options.leeway_seconds = v.as_f64().unwrap_or(f64::NAN);
    }
    if let Some(n) = opt_int(o, "refreshTimeoutMs", 1.0)? {
        options.refresh_timeout_ms = n;
    }
    if let Some(n) = opt_int(o, "minRefreshIntervalMs", 0.0)? {
        options.min_refresh_interval_ms = n;
    }
    if let Some(i) = opt_choice(
        o,
        "redirect",
        &["follow", "error"],
        "must be \"follow\" or \"error\"",
    )? {
        options.redirects = if i == 0 {
            Redirects::Follow
        } else {
            Redirects::Error
        };
    }
    if let Some(v) = opt(o, "crossTab") {
        options.cross_tab = v
            .as_bool()
            .ok_or_else(|| AuthError::invalid_option("crossTab", "must be a boolean"))?;
    }
    Ok(options)
}

fn event_detail(e: &AuthEvent) -> JsValue {
    let o = Object::new();
    let set = |k: &str, v: JsValue| {
        let _ = Reflect::set(&o, &k.into(), &v);
    };
    match e {
        AuthEvent::Refresh { expires_at, source } => {
            set(
                "expiresAt",
                expires_at.map_or(JsValue::UNDEFINED, JsValue::from),
            );
            set("source", source.as_str().into());
        }
        AuthEvent::Signout { reason, error } => {
            set("reason", reason.as_str().into());
            if let Some(err) = error {
                set("error", err.as_str().into());
            }
        }
    }
    o.into()
}

/// Keeps users signed in: a drop-in `fetch` that attaches the access token, refreshes it
/// once per browser when needed, and replays the request.
#[wasm_bindgen(js_name = AuthClient)]
pub struct JsAuthClient {
    client: AuthClient,
}

#[wasm_bindgen(js_class = AuthClient)]
impl JsAuthClient {
    /// Creates a client; throws `AuthError` (`invalid_config`) naming a bad option.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "AuthClientOptions")] options: JsValue,
    ) -> Result<JsAuthClient, JsValue> {
        let options = parse_options(&options).map_err(|e| js_error(&e))?;
        let client = AuthClient::new(options).map_err(|e| js_error(&e))?;
        Ok(JsAuthClient { client })
    }

    /// Stores tokens obtained elsewhere.
    #[wasm_bindgen(js_name = setTokens)]
    pub fn set_tokens(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Tokens")] tokens: JsValue,
    ) -> Result<(), JsValue> {
        let t = token::from_json::<JsValue>(&tokens)
            .map_err(|e| js_error(&AuthError::new(ErrorCode::InvalidConfig, e.message())))?;
        self.client.set_tokens(t).map_err(|e| js_error(&e))
    }

    /// POSTs `credentials` as JSON to `url`, expects a token response, stores it.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn login(
        &self,
        url: String,
        #[wasm_bindgen(unchecked_param_type = "Record<string, unknown>")] credentials: JsValue,
    ) -> Promise {
        let c = self.client.clone();
        promise(async move {
            c.login(&url, &credentials)
                .await
                .map_err(|e| js_error(&e))?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Exactly `window.fetch`'s signature and result, with authentication.
    #[wasm_bindgen(unchecked_return_type = "Promise<Response>")]
    pub fn fetch(
        &self,
        #[wasm_bindgen(unchecked_param_type = "RequestInfo | URL")] input: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "RequestInit")] init: JsValue,
    ) -> Promise {
        let c = self.client.clone();
        match c.start(&input, &init) {
            Err(e) => Promise::reject(&fetch_error(e)),
            Ok(Started::Sent(sent, None)) => sent,
            Ok(started @ Started::RefreshFirst(..)) => promise(async move {
                c.finish(started)
                    .await
                    .map(JsValue::from)
                    .map_err(fetch_error)
            }),
            Ok(Started::Sent(sent, Some(armed))) => {
                // One closure for both outcomes (bound to `false` / `true`): exactly one runs,
                // so it is always called and freed.
                let settle = Closure::once_into_js(move |failed: bool, v: JsValue| -> JsValue {
                    if failed {
                        return Promise::reject(&v).into();
                    }
                    let response: web_sys::Response = v.unchecked_into();
                    if response.status() != 401 {
                        return response.into();
                    }
                    promise(async move {
                        c.after_401(response, armed)
                            .await
                            .map(JsValue::from)
                            .map_err(fetch_error)
                    })
                    .into()
                });
                let settle: &Function = settle.unchecked_ref();
                then_fns(
                    &sent,
                    &settle.bind1(&JsValue::NULL, &JsValue::FALSE).into(),
                    &settle.bind1(&JsValue::NULL, &JsValue::TRUE).into(),
                )
            }
        }
    }

    /// One serialized refresh, on demand.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn refresh(&self) -> Promise {
        let c = self.client.clone();
        promise(async move {
            c.refresh().await.map_err(|e| js_error(&e))?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Signs out everywhere (this tab, other tabs, the server if `logoutUrl` is set).
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn logout(&self) -> Promise {
        let c = self.client.clone();
        promise(async move {
            c.logout().await;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// True while tokens are held.
    #[wasm_bindgen(getter)]
    pub fn authenticated(&self) -> bool {
        self.client.authenticated()
    }

    /// The access token's expiry (ms since the epoch), or `undefined`.
    #[wasm_bindgen(getter, js_name = expiresAt)]
    pub fn expires_at(&self) -> Option<f64> {
        self.client.expires_at()
    }

    /// `on("refresh" | "signout", listener)`; returns the function that removes it.
    #[wasm_bindgen(skip_typescript)]
    pub fn on(&self, event: String, listener: Function) -> Result<Function, JsValue> {
        let want_refresh = match event.as_str() {
            "refresh" => true,
            "signout" => false,
            _ => {
                return Err(js_error(&AuthError::invalid_option(
                    "event",
                    "must be \"refresh\" or \"signout\"",
                )))
            }
        };
        let id = self.client.on(move |e| {
            if matches!(e, AuthEvent::Refresh { .. }) == want_refresh {
                // A throwing listener must not break the others or the refresh.
                let _ = listener.call1(&JsValue::NULL, &event_detail(e));
            }
        });
        let c = self.client.clone();
        let off = Closure::once_into_js(move || c.off(id));
        Ok(off.unchecked_into())
    }
}
