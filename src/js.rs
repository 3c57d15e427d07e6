//! The `#[wasm_bindgen]` façade: the npm package's `AuthClient` and `AuthError`.

use crate::web::glue;
#[cfg(feature = "std")]
use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;

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

/**
 * Keeps users signed in: a drop-in `fetch` that attaches the access token, refreshes it once
 * per browser when needed, and replays the request; sign-in by redirect with an `issuer`.
 */
export class AuthClient {
  /** Checks the options (throws `AuthError` `invalid_config` naming a bad one) and loads the
   * stored session. Call `init()` first. */
  constructor(options: AuthClientOptions);
  /** Exactly `window.fetch`'s signature and result, with authentication. */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  /** POSTs `credentials` as JSON to `url` (a first-party login endpoint), expects a token
   * response, stores it. */
  login(url: string, credentials: Record<string, unknown>): Promise<void>;
  /** Stores tokens obtained elsewhere; throws `invalid_config` for unusable ones. */
  setTokens(tokens: Tokens): void;
  /** One serialized refresh, on demand. */
  refresh(): Promise<void>;
  /** Signs out everywhere (this tab, other tabs, the server: `logoutUrl`, else the provider's
   * revocation endpoint), and with `endSession` the provider's session too. */
  logout(options?: LogoutOptions): Promise<void>;
  /** True while tokens are held. */
  readonly authenticated: boolean;
  /** The access token's expiry (ms since the epoch), or `undefined`. */
  readonly expiresAt: number | undefined;
  /** Stops listening to other tabs. */
  free(): void;
  [Symbol.dispose](): void;

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

/// `new AuthClient(options)` in the npm package: js/driver.js's `AuthClient` hands its
/// options here; read and checked (js/plumbing.js's `readOptions`), the session loaded, the
/// client's parts come back (see `web::client::wire`). The package's glue connects it to the
/// class as it loads.
#[wasm_bindgen(js_name = newClient, skip_typescript)]
pub fn new_client(options: JsValue) -> Result<JsValue, JsValue> {
    let parts = crate::web::client_parts(&options).map_err(|e| js_error(&e))?;
    Ok(parts.into())
}

/// The npm package's `AuthClient` class as the browser tests reach it (js/driver.js), with
/// the methods they call. Not in the package (built without `std`).
#[cfg(feature = "std")]
#[wasm_bindgen(module = "/js/driver.js")]
extern "C" {
    /// js/driver.js's `AuthClient`.
    #[wasm_bindgen(js_name = AuthClient)]
    pub type JsAuthClient;
    #[wasm_bindgen(constructor, catch, js_class = AuthClient)]
    fn construct(options: JsValue) -> Result<JsAuthClient, JsValue>;
    /// `setTokens(tokens)`.
    #[wasm_bindgen(method, catch, js_name = setTokens)]
    pub fn set_tokens(this: &JsAuthClient, tokens: JsValue) -> Result<(), JsValue>;
    /// `fetch(input, init)`.
    #[wasm_bindgen(method)]
    pub fn fetch(this: &JsAuthClient, input: JsValue, init: JsValue) -> Promise;
    /// `refresh()`.
    #[wasm_bindgen(method)]
    pub fn refresh(this: &JsAuthClient) -> Promise;
    /// `logout(options)`.
    #[wasm_bindgen(method)]
    pub fn logout(this: &JsAuthClient, options: JsValue) -> Promise;
    /// `authenticated`.
    #[wasm_bindgen(method, getter)]
    pub fn authenticated(this: &JsAuthClient) -> bool;
    /// `expiresAt`.
    #[wasm_bindgen(method, getter, js_name = expiresAt)]
    pub fn expires_at(this: &JsAuthClient) -> Option<f64>;
    /// `on(event, listener)`.
    #[wasm_bindgen(method, catch)]
    pub fn on(this: &JsAuthClient, event: String, listener: Function) -> Result<Function, JsValue>;
    /// Hands `newClient` to the class (the package's glue does it with the export itself).
    fn connect(new_client: &JsValue);
}

#[cfg(feature = "std")]
impl JsAuthClient {
    /// `new AuthClient(options)`, as in the npm package (`newClient` connected first).
    pub fn new(options: JsValue) -> Result<JsAuthClient, JsValue> {
        thread_local! {
            static CONNECTED: Closure<dyn Fn(JsValue) -> Result<JsValue, JsValue>> = {
                let f = Closure::<dyn Fn(JsValue) -> Result<JsValue, JsValue>>::new(new_client);
                connect(f.as_ref());
                f
            };
        }
        CONNECTED.with(|_| ());
        JsAuthClient::construct(options)
    }
}
