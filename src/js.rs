//! The `#[wasm_bindgen]` façade: the npm package's `AuthClient` and `AuthError`.

use crate::error::{AuthError, ErrorCode};
use crate::token;
use crate::web::glue;
use crate::web::{AuthClient, Options, Redirects, RefreshFormat, StorageKind};
use alloc::string::String;
use js_sys::{Array, Function, Promise};
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
  | "login_failed"
  | "provider_error"
  | "no_transaction"
  | "state_mismatch"
  | "iss_mismatch"
  | "transaction_expired"
  | "signin_failed"
  | "signin_rejected"
  | "popup_blocked"
  | "popup_closed";

/** Every rotafetch rejection: `instanceof Error` and `instanceof AuthError`, with a stable `code`. */
export class AuthError extends Error {
  private constructor();
  readonly name: "AuthError";
  readonly code: AuthErrorCode;
  /** The provider's or server's OAuth `error` code (`provider_error`, `signin_rejected`),
   * e.g. `"access_denied"`, `"login_required"`, `"invalid_grant"`. */
  readonly error?: string;
}

/**
 * Options of `new AuthClient(options)`: a `refreshUrl` (a first-party backend: tokens from
 * `login`/`setTokens`), or an `issuer` with `clientId` and `redirectUri` (sign-in by redirect),
 * or both.
 */
export type AuthClientOptions = AuthClientCommonOptions & (
  | { refreshUrl: string; issuer?: undefined; redirectUri?: undefined; scope?: undefined }
  | {
      /**
       * The OpenID provider, e.g. `"https://id.example.com"`: sign-in by redirect (`signIn`,
       * `handleRedirect`, `signInPopup`). Its discovery document gives the endpoints and must
       * name this issuer exactly; `refreshUrl` becomes optional (the `token_endpoint`) and
       * `logout()` revokes at its `revocation_endpoint`. `https` (http only on localhost).
       */
      issuer: string;
      /** The client id registered with the provider. */
      clientId: string;
      /** Where the provider sends the browser back, exactly as registered (absolute, this origin). */
      redirectUri: string;
      /** What a sign-in asks for; default `"openid offline_access"` (an ID token, a refresh token). */
      scope?: string;
      /** The refresh endpoint; default: the provider's token endpoint. */
      refreshUrl?: string;
    });

/** The options every client takes. */
export interface AuthClientCommonOptions {
  /** POSTed `{"refresh_token"}` by `logout()`, best effort. */
  logoutUrl?: string;
  /** `"json"` (default): `{"refresh_token"}`; `"oauth2"`: RFC 6749 §6 form. */
  refreshFormat?: "json" | "oauth2";
  /** The client id (required with `issuer`): sent by sign-in, revocation and `"oauth2"` refreshes. */
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
  /**
   * DPoP (RFC 9449), default false: a non-extractable ES256 key, kept in IndexedDB and shared
   * by the tabs, signs a proof for every token request and every call `fetch` authenticates
   * (`Authorization: DPoP …` plus `DPoP: <proof>`), so a copied refresh or access token is
   * useless elsewhere. Needs IndexedDB and `crypto.subtle` (a secure context), else
   * `invalid_config`. Server nonces are handled; a bearer token response is refused.
   * Only in the `rotafetch/dpop` entry (2 KB gzip more, so apps without DPoP don't pay
   * for it); the `rotafetch` entry answers `dpop: true` with `invalid_config`. Rust apps get
   * it with the crate's `dpop` feature (README, DPoP).
   */
  dpop?: boolean;
}

/** Tokens for `setTokens`: RFC 6749 names or camelCase. */
export type Tokens =
  | { access_token: string; refresh_token: string; expires_in?: number; token_type?: string }
  | { accessToken: string; refreshToken: string; expiresIn?: number; tokenType?: string };

/** Options of `signIn` and `signInPopup`. */
export interface SignInOptions {
  /** Where to come back to (a path or URL on this origin); default: this page. */
  returnTo?: string;
  /** Extra authorization parameters (prompt, login_hint, audience, ui_locales, …); the SDK's
   * own (state, nonce, code_challenge, redirect_uri, scope, …) are refused (`invalid_config`). */
  params?: Record<string, string>;
}

/** Options of `logout`. */
export interface LogoutOptions {
  /** Also end the provider's session (its `end_session_endpoint`; the page goes there). */
  endSession?: boolean;
  /** With `endSession`: where the provider sends the browser afterwards (a registered
   * post-logout URI). */
  returnTo?: string;
}

/** Detail of the `signin` event: a session started here or in another tab (adopted, no reload). */
export interface SigninDetail {
  /** The access token's expiry, ms since the epoch, if known. */
  expiresAt: number | undefined;
  source: "this-tab" | "other-tab";
}

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
  signin: SigninDetail;
  refresh: RefreshDetail;
  signout: SignoutDetail;
}

export interface AuthClient {
  /**
   * Sign-in by redirect (needs `issuer`): PKCE S256, `state` and `nonce`, PAR when the provider
   * has it, DPoP-bound codes with `dpop: true`. Stores the transaction (10 minutes) and goes to
   * the provider; the page at `redirectUri` calls `handleRedirect()`.
   */
  signIn(options?: SignInOptions): Promise<void>;
  /**
   * At `redirectUri`: completes the sign-in whose callback this page is (RFC 9207 `iss`, state,
   * one exchange of the code, the ID token's claims), stores the session and hands it to every
   * open tab, and removes `code`, `state` and `iss` from the address bar. `null` when the page
   * is no callback. Calling it again on the same page returns the same promise.
   */
  handleRedirect(): Promise<{ returnTo: string } | null>;
  /** `signIn` in a popup: call it in a click handler (the window opens at once). */
  signInPopup(options?: SignInOptions): Promise<{ returnTo: string }>;
  /**
   * With `dpop: true`, a DPoP proof by this client's key for a request of your own (e.g. your
   * authorization-code exchange): send it as the `DPoP` header, then hand the tokens to
   * `setTokens`. Rejects `invalid_config` when DPoP is off.
   */
  dpopProof(method: string, url: string): Promise<string>;
  /** Listens to an event; returns a function that removes the listener. */
  on<K extends keyof AuthEventMap>(event: K, listener: (detail: AuthEventMap[K]) => void): () => void;
}
"#;

use glue::js_error;

fn parse_options(o: &JsValue) -> Result<Options, AuthError> {
    let read = glue::read_options(o);
    if let Some(m) = read.as_string() {
        return Err(AuthError::new(ErrorCode::InvalidConfig, m));
    }
    // Present and of the right type (plumbing.js checked): what they mean is checked by
    // `AuthClient::new`.
    let read: Array = read.unchecked_into();
    let string = |i| read.get(i).as_string();
    let number = |i| read.get(i).as_f64();
    let mut options = Options::new(string(0).unwrap_or_default());
    options.logout_url = string(1);
    if number(2) == Some(1.0) {
        options.refresh_format = RefreshFormat::OAuth2;
    }
    options.client_id = string(3);
    options.storage = match number(4) {
        Some(1.0) => StorageKind::Session,
        Some(2.0) => StorageKind::Memory,
        _ => StorageKind::Local,
    };
    if let Some(k) = string(5) {
        options.storage_key = k;
    }
    let origins = read.get(6);
    if Array::is_array(&origins) {
        let origins: Array = origins.unchecked_into();
        options.allowed_origins = Some(origins.iter().filter_map(|v| v.as_string()).collect());
    }
    if let Some(n) = number(7) {
        options.leeway_seconds = n;
    }
    if let Some(n) = number(8) {
        options.refresh_timeout_ms = n as u32;
    }
    if let Some(n) = number(9) {
        options.min_refresh_interval_ms = n as u32;
    }
    if number(10) == Some(1.0) {
        options.redirects = Redirects::Error;
    }
    if let Some(b) = read.get(11).as_bool() {
        options.cross_tab = b;
    }
    options.dpop = read.get(12).is_truthy();
    options.issuer = string(13);
    options.redirect_uri = string(14);
    if let Some(scope) = string(15) {
        options.scope = scope;
    }
    Ok(options)
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
        self.client.driver().login(&url, &credentials)
    }

    /// Exactly `window.fetch`'s signature and result, with authentication.
    #[wasm_bindgen(unchecked_return_type = "Promise<Response>")]
    pub fn fetch(
        &self,
        #[wasm_bindgen(unchecked_param_type = "RequestInfo | URL")] input: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "RequestInit")] init: JsValue,
    ) -> Promise {
        self.client.driver().fetch(&input, &init)
    }

    /// One serialized refresh, on demand.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn refresh(&self) -> Promise {
        self.client.driver().refresh()
    }

    /// Signs out everywhere (this tab, other tabs, the server: `logoutUrl`, else the
    /// provider's revocation endpoint), and with `endSession` the provider's session too.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn logout(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "LogoutOptions")] options: JsValue,
    ) -> Promise {
        self.client.driver().logout(&options)
    }

    /// Sign-in by redirect: to the provider (typed in the `.d.ts` section above).
    #[wasm_bindgen(js_name = signIn, skip_typescript)]
    pub fn sign_in(&self, options: JsValue) -> Promise {
        self.client.driver().sign_in(&options)
    }

    /// The same in a popup, opened at once (typed in the `.d.ts` section above).
    #[wasm_bindgen(js_name = signInPopup, skip_typescript)]
    pub fn sign_in_popup(&self, options: JsValue) -> Promise {
        self.client.driver().sign_in_popup(&options)
    }

    /// Completes the sign-in at the redirect URI (typed in the `.d.ts` section above).
    #[wasm_bindgen(js_name = handleRedirect, skip_typescript)]
    pub fn handle_redirect(&self) -> Promise {
        self.client.driver().handle_redirect()
    }

    /// A DPoP proof for a request of the app's own (typed in the `.d.ts` section above).
    #[wasm_bindgen(js_name = dpopProof, skip_typescript)]
    pub fn dpop_proof(&self, method: JsValue, url: JsValue) -> Promise {
        self.client.driver().dpop_proof(&method, &url)
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

    /// `on("signin" | "refresh" | "signout", listener)`; returns the function that removes it.
    #[wasm_bindgen(skip_typescript)]
    pub fn on(&self, event: String, listener: Function) -> Result<Function, JsValue> {
        if !matches!(event.as_str(), "signin" | "refresh" | "signout") {
            return Err(js_error(&AuthError::invalid_option(
                "event",
                "must be \"signin\", \"refresh\" or \"signout\"",
            )));
        }
        Ok(self.client.events().on(&event, &listener))
    }
}
