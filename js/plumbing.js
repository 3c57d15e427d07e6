// @ts-check
// Browser plumbing, imported by the .wasm through #[wasm_bindgen(module)] and by the driver (issue #15): as JS it is a
// fraction of what it costs through web-sys and wasm-bindgen's per-import glue. It reads the options, moves values
// between the browser and Rust, and builds the errors; every decision (tokens, responses, which origins get the token,
// what to store, when to refresh) is the Rust core's, natively tested. Sign-in's rules, at the end, are the measured
// exception (README, Size). Fields only JS reads end in `_` (see js/driver.js).

/** @import { Dpop, Parts } from "./core" */
const g = globalThis, now = Date.now;

/** The defaults of `new AuthClient(options)` (Rust's `Options::new` has the same; a native test compares them). */
export const DEFAULTS = { storageKey: "rotafetch", leewaySeconds: 10, refreshTimeoutMs: 10000,
  minRefreshIntervalMs: 1000, scope: "openid offline_access" };

/** `url` resolved against `base` as `fetch(url)` resolves it, when it is http(s): its href. @param {unknown} url
 * @param {string} [base] */
export function httpUrl(url, base = g.document?.baseURI ?? g.location?.href) {
  try {
    const u = new URL(/** @type {string} */ (url), base);
    if (/^https?:$/.test(u.protocol)) return u.href;
  } catch { /* not a URL */ }
}
/** @param {unknown} u */
const originOf = (u) => { try { return new URL(/** @type {string} */ (u)).origin; } catch { /* none */ } };

/** `new AuthClient(options)` read, checked and normalised: the browser's URL parser resolves the URLs (as `fetch`
 * does), the defaults fill in what is absent. The client's parts (`Parts`, the core's place empty), or the message of
 * the `invalid_config` error naming the first bad option. Plumbing and the options' own rules; the core's decisions
 * start from the result (README, Size: as Rust, this cost the .wasm 3.6 KB gzip, as JS the snippet 0.6 KB).
 * @param {unknown} o @param {Dpop | undefined} dpop the DPoP functions (builds with DPoP) @param {string} [base] what
 * relative URLs resolve against: the document's base URL @returns {Parts | string} */
export function readOptions(o, dpop, base = g.document?.baseURI ?? g.location?.href) {
  if (typeof o != "object" || !o) return "options must be an object with at least refreshUrl";
  /** @type {(k: string, m: string) => never} */
  const bad = (k, m) => { throw `option \`${k}\` ${m}`; };
  /** @type {(k: string) => any} */
  const get = (k) => { try { return /** @type {any} */ (o)[k]; } catch { /* a throwing getter reads as absent */ } };
  /** @param {string} k @param {string} type */
  const typed = (k, type, v = get(k)) => (v === undefined || typeof v == type ? v : bad(k, "must be a " + type));
  /** @param {string} k @returns {string | undefined} */
  const str = (k) => typed(k, "string");
  /** @param {string} k @param {string[]} list */
  const choice = (k, list) => {
    const i = list.indexOf(str(k) ?? list[0]);
    return i < 0 ? bad(k, `must be ${list.map((c) => `"${c}"`).join(", ").replace(/, (?=[^,]*$)/, " or ")}`) : i;
  };
  /** @param {string} k @param {number} min @param {number} d */
  const int = (k, min, d, v = get(k) ?? d) => (typeof v == "number" && v >= min && v <= 4294967295 && v % 1 == 0 ? v
    : bad(k, `must be a ${min ? "positive" : "non-negative"} integer`));
  /** @param {string} k @param {string | undefined} u */
  const http = (k, u) => (u === undefined ? u : httpUrl(u, base) ?? bad(k, "must be an http(s) URL"));
  const known = ["refreshUrl", "logoutUrl", "refreshFormat", "clientId", "storage", "storageKey", "allowedOrigins",
    "leewaySeconds", "refreshTimeoutMs", "minRefreshIntervalMs", "crossTab", "redirect", "dpop", "issuer", "redirectUri", "scope"];
  try {
    for (const k of Object.keys(o)) if (!known.includes(k)) bad(k, "is not a known option");
    const issuer = str("issuer"), refresh = str("refreshUrl"), clientId = str("clientId");
    // With an issuer, no refreshUrl means its discovered token endpoint ("").
    const refreshUrl = issuer !== undefined && !refresh ? "" : /** @type {string} */ (http("refreshUrl", refresh ?? bad("refreshUrl", "is required")));
    const logoutUrl = http("logoutUrl", str("logoutUrl")), key = str("storageKey") ?? DEFAULTS.storageKey;
    const format = choice("refreshFormat", ["json", "oauth2"]), storage = choice("storage", ["local", "session", "memory"]);
    const leeway = typed("leewaySeconds", "number") ?? DEFAULTS.leewaySeconds, wantDpop = typed("dpop", "boolean");
    const timeoutMs = int("refreshTimeoutMs", 1, DEFAULTS.refreshTimeoutMs), minMs = int("minRefreshIntervalMs", 0, DEFAULTS.minRefreshIntervalMs);
    const strict = choice("redirect", ["follow", "error"]) == 1, crossTab = typed("crossTab", "boolean") ?? true;
    const list = get("allowedOrigins");
    if (list !== undefined && (!Array.isArray(list) || list.some((v) => typeof v != "string"))) bad("allowedOrigins", "must be an array of origin strings");
    if (!key) bad("storageKey", "must be a non-empty string");
    if (!(leeway >= 0 && leeway < Infinity)) bad("leewaySeconds", "must be a number >= 0");
    if (clientId === "") bad("clientId", "must be a non-empty string");
    if (wantDpop && !dpop) bad("dpop", "is not in this build: import `rotafetch/dpop` (npm) or enable the crate's `dpop` feature");
    // Never a silent fallback to bearer tokens.
    if (wantDpop && !(g.indexedDB && g.crypto?.subtle)) bad("dpop", "needs IndexedDB and crypto.subtle (a secure context: https or localhost)");
    let oidc;
    if (issuer !== undefined) {
      // Both as written: the issuer is compared with the discovery document's exactly, the redirect URI must be exactly
      // as registered.
      const redirectUri = str("redirectUri");
      if (!secureUrl(issuer) || /[?#]/.test(issuer)) bad("issuer", "must be an https URL (http only on localhost) without query or fragment");
      if (clientId === undefined) bad("clientId", "is required with `issuer`");
      if (!redirectUri || originOf(redirectUri) !== g.location?.origin) bad("redirectUri", "must be an absolute URL on the page's origin, as registered");
      oidc = /** @type {[string, string, string, string]} */ ([issuer, clientId, redirectUri, str("scope") ?? DEFAULTS.scope]);
    }
    // An allowed origin is exactly an origin as the browser serialises it (a trailing slash let through).
    const origins = list ? list.map((/** @type {string} */ v) => {
      const u = originOf(httpUrl(v, base));
      return u && u == v.replace(/\/$/, "").toLowerCase() ? u : bad("allowedOrigins", 'must list origins like "https://api.example.com"');
    }) : [originOf(refreshUrl), g.location?.origin].filter((v) => v !== undefined);
    // The token endpoint takes the RFC 6749 §6 form only.
    return [/** @type {any} */ (undefined), refreshUrl ? /** @type {0 | 1} */ (format) : 1, clientId, origins, leeway * 1000, minMs, strict,
      wantDpop ? dpop : undefined, new Store(["localStorage", "sessionStorage", ""][storage], key), new Events(), crossTab && storage == 0,
      refreshUrl, logoutUrl, key, "rotafetch:" + key, timeoutMs, oidc];
  } catch (e) {
    if (typeof e == "string") return e;
    throw e;
  }
}

/** The persisted session record (Rust's `token::parse_stored` reads it back; an unknown time, NaN, is written as
 * `null`; no ID token, left out). Its field names are a stored format. @param {number} v @param {string} rt
 * @param {string} at @param {number} exp @param {number} rat @param {number} rfa @param {string | undefined} it
 * @param {number} sat */
export const storedJson = (v, rt, at, exp, rat, rfa, it, sat) => JSON.stringify({ v, rt, at, exp, rat, rfa, it, sat });

/** The listeners of one client: `on(type, f)` (`""`: every type, the type as `f`'s second argument) returns the
 * function that removes `f`; `emit` tells the listeners of a type (one that throws breaks neither the others nor the
 * refresh). */
export class Events {
  constructor() { /** @type {Set<[string, (detail: object, type: string) => void]>} */ this.listeners_ = new Set(); }
  /** @param {string} type @param {(detail: object, type: string) => void} f @returns {() => void} */
  on(type, f) {
    /** @type {[string, (detail: object, type: string) => void]} */
    const e = [type, f];
    this.listeners_.add(e);
    return () => void this.listeners_.delete(e);
  }
  /** "signin" or "refresh" with `{expiresAt: a (NaN: unknown, left out), source: b}`, or "signout" with `{reason: a,
   * error: b}` (`error` only when the server named one). @param {string} type @param {unknown} a @param {unknown} b */
  emit(type, a, b) {
    const detail = type != "signout" ? { expiresAt: a === a ? a : undefined, source: b }
      : b === undefined ? { reason: a } : { reason: a, error: b };
    for (const [t, f] of [...this.listeners_]) if (!t || t == type) try { f(detail, type); } catch { /* the app's */ }
  }
}

/** POSTs `body` as `type` (JSON accepted, never cached; with `proof`, its `DPoP` header), aborted after `ms`: `[status,
 * content-length header or null, response]`; rejects on a network error or timeout. @param {string} url
 * @param {string} type @param {string} body @param {number} ms @param {string | undefined} proof
 * @returns {Promise<[number, string | null, Response]>} */
export async function post(url, type, body, ms, proof) {
  /** @type {Record<string, string>} */
  const headers = { "Content-Type": type, Accept: "application/json" };
  if (proof) headers.DPoP = proof;
  const r = await g.fetch(url, { method: "POST", headers, body, cache: "no-store", signal: AbortSignal.timeout(ms) });
  return [r.status, r.headers.get("content-length"), r];
}

/** The body of `r` as text, `undefined` when it cannot be read; with `skip`, cancelled unread. @param {Response} r
 * @param {boolean} skip @returns {Promise<string | undefined>} */
export const bodyText = (r, skip) => (skip ? (r.body?.cancel().catch(() => {}), Promise.resolve(undefined)) : r.text().catch(() => undefined));

// IndexedDB: one database, one object store, a value per key: what is consistent between tabs at the lock's hand-over
// (see the README).

/** @param {IDBDatabase} db @param {IDBTransactionMode} mode @returns {[IDBTransaction, IDBObjectStore]} */
const tx = (db, mode) => { const t = db.transaction("kv", mode); return [t, t.objectStore("kv")]; };
/** @param {IDBTransaction} t @param {(v: any) => void} resolve @param {(e: unknown) => void} reject */
const committed = (t, resolve, reject) => { t.oncomplete = resolve; t.onerror = t.onabort = reject; };
/** Opens (creating if needed) the database; `null` where IndexedDB is unavailable.
 * @returns {Promise<IDBDatabase | null>} */
export const idbOpen = () => new Promise((resolve, reject) => {
  const r = g.indexedDB.open("rotafetch", 1);
  r.onupgradeneeded = () => r.result.createObjectStore("kv");
  r.onsuccess = () => resolve(r.result);
  r.onerror = reject;
}).catch(() => null);
/** Reads `key` (`undefined` when absent); rejects when the read failed. @param {IDBDatabase} db @param {string} key */
export const idbGet = (db, key) => new Promise((resolve, reject) => {
  const r = tx(db, "readonly")[1].get(key);
  r.onsuccess = () => resolve(r.result);
  r.onerror = reject;
});
/** Writes (or, with `undefined`, deletes) `key`; resolves once the transaction committed. @param {IDBDatabase} db
 * @param {string} key @param {string} [value] */
export const idbPut = (db, key, value) => new Promise((resolve, reject) => {
  const [t, s] = tx(db, "readwrite");
  committed(t, resolve, reject);
  value === undefined ? s.delete(key) : s.put(value, key);
});

/** The lease that stands in for Web Locks where `navigator.locks` is missing: `{o: owner, u: until}` taken with a
 * compare-and-set in one readwrite transaction (IndexedDB serialises those across the origin), polled with backoff only
 * while a caller waits, for at most `ms` (a crashed holder's lease expires after `ms` too). Resolves its release, or
 * `null`. (Its fields are a stored format, shared with other tabs: never shortened.) @param {IDBDatabase} db
 * @param {string} name @param {number} ms @returns {Promise<(() => void) | null>} */
async function lease(db, name, ms) {
  const key = "lock:" + name, o = Math.random(), deadline = now() + ms;
  for (let delay = 10; ; delay = Math.min(delay * 2, 100)) {
    const taken = await new Promise((/** @type {(ok: boolean) => void} */ resolve, reject) => {
      const [t, s] = tx(db, "readwrite");
      let ok = false;
      committed(t, () => resolve(ok), reject);
      const r = s.get(key);
      // Decided and written in the success callback, while the transaction is active.
      r.onsuccess = () => {
        const u = r.result?.u;
        if ((ok = typeof u != "number" || u < now())) s.put({ o, u: now() + ms }, key);
      };
    });
    if (taken) {
      return () => {
        try {
          const s = tx(db, "readwrite")[1], r = s.get(key);
          r.onsuccess = () => r.result?.o === o && s.delete(key);
        } catch { /* it expires by itself */ }
      };
    }
    if (now() >= deadline) return null;
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

/** The browser-wide lock `name`, waited for at most `ms`: a Web Lock, else the IndexedDB lease on `db`, else none (one
 * tab only). Resolves the function that releases it (a no-op without a lock), or `null` when it was not granted in
 * time. @param {string} name @param {number} ms @param {IDBDatabase | null} db @returns {Promise<(() => void) | null>}
 */
export function lock(name, ms, db) {
  const locks = g.navigator?.locks;
  if (!locks) return db ? lease(db, name, ms).catch(() => null) : Promise.resolve(() => {});
  return new Promise((resolve) => {
    // Held until `release` resolves the callback's promise; rejects when the wait times out.
    locks.request(name, { signal: AbortSignal.timeout(ms) }, () => new Promise((release) => resolve(/** @type {() => void} */ (release))))
      .catch(() => resolve(null));
  });
}

/** The session's persistent home: `localStorage`, `sessionStorage` or (name "") memory. Storage that throws (disabled,
 * quota, a sandboxed frame) degrades to memory and keeps working; the memory copy mirrors the last value read or
 * written. */
export class Store {
  /** @param {string} name @param {string} key */
  constructor(name, key) {
    this.key_ = key;
    /** @type {string | null} */
    this.memory_ = null;
    /** The Web Storage area; `null`: memory only. @type {Storage | null} */
    this.area_ = null;
    // Reading `window.localStorage` itself throws where storage is disabled.
    try { this.area_ = name && /** @type {any} */ (g)[name] instanceof g.Storage ? /** @type {any} */ (g)[name] : null; } catch { /* memory */ }
  }
  /** @returns {string | null} */
  read() {
    if (this.area_) try { return (this.memory_ = this.area_.getItem(this.key_)); } catch { this.area_ = null; }
    return this.memory_;
  }
  /** @param {string | undefined} v (undefined removes) */
  write(v) {
    this.memory_ = v ?? null;
    if (this.area_) try { v === undefined ? this.area_.removeItem(this.key_) : this.area_.setItem(this.key_, v); } catch { this.area_ = null; }
  }
  /** True while a Web Storage area (not memory) holds the session. */
  get persistent() { return !!this.area_; }
  /** Calls `f(value)` on every `storage` event (another tab's write) of this key in this area, or of its clearing, with
   * the value the area holds now (an event can arrive after a later write, this tab's own `logout()`'s, and its
   * `newValue` is then stale); returns the function that stops listening. @param {(v: string | null) => void} f */
  listen(f) {
    const h = (/** @type {StorageEvent} */ e) =>
      this.area_ && e.storageArea === this.area_ && (e.key === null || e.key === this.key_) && f(this.read());
    g.addEventListener?.("storage", h);
    return () => g.removeEventListener?.("storage", h);
  }
}

/** What a replay sends: 0, none in `init` (the request's own, if any); 1, rebuilt from input and init (a string, Blob,
 * ArrayBuffer, FormData or URLSearchParams reads again in every engine, a clone of it not always: WebKit fails to send
 * a cloned FormData that holds a Blob); 2, a stream. @param {RequestInit | undefined} init @returns {0 | 1 | 2} */
export const bodyOf = (init) => {
  const b = init && typeof init == "object" ? init.body : undefined;
  return b == null ? 0 : typeof (/** @type {any} */ (b).getReader) == "function" ? 2 : 1;
};
/** May `r` hold a body? Where the engine has `Request.body` it says; where not (Firefox), any method but GET and HEAD
 * may. @param {{ body?: unknown, method: string }} r */
export const mayHaveBody = (r) => ("body" in r ? r.body != null : r.method != "GET" && r.method != "HEAD");

/** `request` readied for the access token: with `strict` (the core decided), made `redirect: "error"`; then
 * `Authorization: Bearer <access>` (`DPoP <access>` with `dpop`). @param {Request} request @param {string} access
 * @param {boolean} strict @param {unknown} dpop @returns {Request} */
export function authorize(request, access, strict, dpop) {
  if (strict) request = new Request(request, { redirect: "error" });
  request.headers.set("Authorization", (dpop ? "DPoP " : "Bearer ") + access);
  return request;
}

/** `url` with the defined entries of `o` added to its query (RFC 6749 §3.1: its own are kept); without `url`, the form
 * body of them (the RFC 6749 form). @param {string | undefined} url @param {Record<string, unknown>} o */
export const query = (url, o) => {
  const u = new URL(url ?? "http://x"), q = u.searchParams;
  for (const [k, v] of Object.entries(o)) if (v !== undefined) q.append(k, String(v));
  return url ? u.href : String(q);
};
/** The RFC 6749 §6 form body of a refresh (`client_id` when given). @param {string} rt
 * @param {string | undefined} clientId */
export const formBody = (rt, clientId) => query(undefined, { grant_type: "refresh_token", refresh_token: rt, client_id: clientId });
/** `JSON.parse(text)`, `undefined` for anything that is not JSON. @param {unknown} text @returns {any} */
export const jsonOf = (text) => { try { return JSON.parse(/** @type {string} */ (text)); } catch { /* not JSON */ } };

/** The stable error codes, by number: Rust's `ErrorCode` (src/error.rs; a native test compares them, and the package
 * build inlines the names as numbers). */
export const ErrorCode = Object.freeze({
  InvalidConfig: 0, NotAuthenticated: 1, RefreshRejected: 2, RefreshFailed: 3, BodyNotReplayable: 4, Aborted: 5, LoginFailed: 6,
  ProviderError: 7, NoTransaction: 8, StateMismatch: 9, IssMismatch: 10, TransactionExpired: 11, SigninFailed: 12,
  SigninRejected: 13, PopupBlocked: 14, PopupClosed: 15 });
/** `AuthError.code` of each `ErrorCode`, in its order (the `.d.ts`'s `AuthErrorCode`). */
const CODES = ["invalid_config", "not_authenticated", "refresh_rejected", "refresh_failed", "body_not_replayable", "aborted",
  "login_failed", "provider_error", "no_transaction", "state_mismatch", "iss_mismatch", "transaction_expired", "signin_failed",
  "signin_rejected", "popup_blocked", "popup_closed"];

/** Every rotafetch rejection: an `Error` with a stable `code` (exported by the package, typed in src/js.rs's `.d.ts`),
 * made by `authError` only. */
export class AuthError extends Error {
  /** @param {string} message @param {string} code @param {string} [error] the provider's or server's OAuth `error`
   * code, when it gave one */
  constructor(message, code, error) {
    super(message);
    this.code = code;
    if (error !== undefined) this.error = error;
  }
}
// The name survives minification: the class's, and `name` on every instance (as `Error`s have).
Object.defineProperty(AuthError, "name", { value: "AuthError" });
AuthError.prototype.name = "AuthError";

/** The one way rotafetch's errors are made, the core's (it hands over the code's number) and the driver's: an
 * `AuthError` of the `ErrorCode` `code`, with the server's or provider's OAuth `error` when it gave one.
 * @param {number} code @param {string} message @param {string} [error] */
export const authError = (code, message, error) => new AuthError(message, CODES[code], error);
/** `invalid_config` naming the option: "option `name` must …". @param {string} name @param {string} must */
export const invalidOption = (name, must) => authError(ErrorCode.InvalidConfig, `option \`${name}\` ${must}`);

/** base64url without padding (RFC 4648 §5). @param {ArrayBuffer | Uint8Array} buf */
export const b64u = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
/** @param {string} s */
export const utf8 = (s) => new TextEncoder().encode(s);
/** @param {number} n bytes from `crypto.getRandomValues`, base64url */
export const random = (n) => b64u(crypto.getRandomValues(new Uint8Array(n)));

// DPoP (RFC 9449): the key and the proofs. What a proof names (htu, the nonce) and what an answer means are the Rust
// core's (src/dpop.rs). Builds without the `dpop` feature never call these (and the `rotafetch` entry's bundle leaves
// them out).
/** @param {object} o */
const part = (o) => b64u(utf8(JSON.stringify(o)));
const DPOP = "dpop:";

/** The client's DPoP key pair (ES256; the private key non-extractable), one per browser profile and storage key, kept
 * in IndexedDB under `dpop:<key>`. A tab that finds none generates one and stores it first-writer-wins: in one
 * readwrite transaction it keeps the key another tab stored first, if any, so racing tabs end up with one key.
 * @param {IDBDatabase} db @param {string} key @returns {Promise<CryptoKeyPair>} */
export async function dpopKey(db, key) {
  const k = DPOP + key, have = await idbGet(db, k);
  if (have) return have;
  const mine = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
  return new Promise((resolve, reject) => {
    const [t, s] = tx(db, "readwrite");
    let kept = mine;
    committed(t, () => resolve(kept), reject);
    const r = s.get(k);
    r.onsuccess = () => (r.result ? (kept = r.result) : s.put(mine, k));
  });
}

/** @type {WeakMap<CryptoKeyPair, string>} */
const headers = new WeakMap();
/** A DPoP proof: `typ: dpop+jwt`, ES256, the public JWK (exported once per key); claims `jti` (128 random bits), `htm`,
 * `htu`, `iat`, `nonce` when given, and `ath` (SHA-256 of `access`) when given. @param {CryptoKeyPair} pair
 * @param {string} htm @param {string} htu @param {string | undefined} nonce @param {string | undefined} access
 * @returns {Promise<string>} */
export async function dpopSign(pair, htm, htu, nonce, access) {
  let h = headers.get(pair);
  if (!h) {
    const { kty, crv, x, y } = await crypto.subtle.exportKey("jwk", pair.publicKey);
    headers.set(pair, (h = part({ typ: "dpop+jwt", alg: "ES256", jwk: { kty, crv, x, y } })));
  }
  /** @type {Record<string, unknown>} */
  const claims = { jti: random(16), htm, htu, iat: Math.floor(now() / 1000), nonce };
  if (access) claims.ath = b64u(await crypto.subtle.digest("SHA-256", utf8(access)));
  const input = h + "." + part(claims);
  return input + "." + b64u(await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, pair.privateKey, utf8(input)));
}

/** The key's JWK thumbprint (RFC 7638: SHA-256 of the required members, in lexicographic order), a sign-in's `dpop_jkt`
 * (RFC 9449 §10). @param {CryptoKeyPair} pair */
export async function dpopJkt(pair) {
  const { crv, kty, x, y } = await crypto.subtle.exportKey("jwk", pair.publicKey);
  return b64u(await crypto.subtle.digest("SHA-256", utf8(JSON.stringify({ crv, kty, x, y }))));
}

/** What the driver uses, as one object (Rust hands it over); `forget_` deletes the key pair (at sign-out: the next
 * session gets a new one). */
export const dpop = () => ({
  loadKey_: dpopKey, sign_: dpopSign, thumbprint_: dpopJkt,
  forget_: (/** @type {IDBDatabase} */ db, /** @type {string} */ key) => idbPut(db, DPOP + key).catch(() => {}),
});

// Sign-in by redirect (OAuth 2.1's authorization code flow with PKCE, OpenID Connect): its rules, pure functions of
// values (time passed in), tested in Node (js/signin.test.mjs) and end to end against the reference provider
// (e2e/signin.test.mjs). JS, unlike the other rules: measured, as Rust with the plumbing that carried their values they
// cost the .wasm about 4 KB gzip more than this JS (README, Size).

/** An authorization response's parameters (RFC 6749 §4.1.2, RFC 9207, OpenID Connect Session Management's
 * `session_state`): they leave the address bar. */
export const RESPONSE_PARAMS = ["code", "state", "iss", "error", "error_description", "error_uri", "session_state"];
/** What an app's `params` may not set: what makes the flow safe (PKCE, `state`, `nonce`, the redirect URI, the DPoP
 * binding), and the response type and mode the callback is read in. */
export const RESERVED = ["response_type", "response_mode", "client_id", "redirect_uri", "scope", "state", "nonce",
  "code_challenge", "code_challenge_method", "request", "request_uri", "dpop_jkt"];
/** The endpoints rotafetch reads from a discovery document (the first two required). */
const ENDPOINTS = ["authorization_endpoint", "token_endpoint", "pushed_authorization_request_endpoint",
  "revocation_endpoint", "end_session_endpoint"];
/** A sign-in may take 10 minutes, from `signIn()` to its callback; a discovery document is used for an hour (seconds).
 */
export const SIGNIN_TTL = 600, DISCOVERY_TTL = 3600;

/** https, or http on a loopback host (RFC 8414 §2, RFC 9700 §4.5). @param {unknown} u */
export const secureUrl = (u) => typeof u == "string" && /^(https:\/\/.|http:\/\/(localhost|127\.0\.0\.1|\[::1\])([:/]|$))/.test(u);

/** What is wrong with the provider's discovery document `doc` (parsed JSON) for the configured `issuer`, or
 * `undefined`: its `issuer` must be that string exactly (OpenID Connect Discovery §4.3, RFC 8414 §3.3: else it may
 * describe another provider), the authorization and token endpoints must be there, every endpoint https, and PKCE's
 * S256 listed when methods are. @param {any} doc @param {string} issuer @returns {string | undefined} */
export function discoveryProblem(doc, issuer) {
  if (!doc || typeof doc != "object") return "is not a JSON object";
  if (doc.issuer !== issuer) return "names another issuer than the `issuer` option (they must match exactly)";
  for (const [i, k] of ENDPOINTS.entries()) if (i < 2 ? !secureUrl(doc[k]) : doc[k] !== undefined && !secureUrl(doc[k])) return `has no https ${k}`;
  const m = doc.code_challenge_methods_supported;
  if (m !== undefined && !(/** @type {unknown[]} */ ([]).concat(m)).includes("S256")) return "does not list PKCE's S256";
}

/** The callback decided: its query `q` (`state`, `code`, `iss`, `error`), the transaction stored under its state (`tx`:
 * `{t: made at (s), d: done}`, or null), the configured `issuer`, whether the provider sends `iss` (`issRequired`, RFC
 * 9207 §3), now (s), and for a popup its sign-in's state (`expected`). In order: no parameter twice (RFC 6749 §3.1), a
 * state this SDK makes, a code or an error; a sign-in of this browser; not done already; not expired; `iss`, when
 * present or required, the issuer exactly, errors included (RFC 9207 §2.4); then the provider's error or the code.
 * `"exchange"`, `"done"` (exchanged already: nothing to do), or the `ErrorCode` of the refusal.
 * @param {URLSearchParams} q @param {{t: number, d?: unknown} | null | undefined} tx @param {string} issuer
 * @param {boolean} issRequired @param {number} now @param {string} [expected] @returns {"exchange" | "done" | number}
 */
export function callbackVerdict(q, tx, issuer, issRequired, now, expected) {
  const [s, c, i, e] = ["state", "code", "iss", "error"].map((n) => { const v = q.getAll(n); return v.length > 1 ? null : v[0]; });
  if ([s, c, i, e].includes(null) || !/^[\w-]{22}$/.test(s ?? "") || (c === undefined && e === undefined)
    || (expected && s != expected)) return ErrorCode.StateMismatch;
  if (!tx) return ErrorCode.NoTransaction;
  if (tx.d) return "done";
  if (!(now < tx.t + SIGNIN_TTL && now + 60 >= tx.t)) return ErrorCode.TransactionExpired;
  if (i === undefined ? issRequired : i !== issuer) return ErrorCode.IssMismatch;
  return e === undefined ? "exchange" : ErrorCode.ProviderError;
}

/** The claim of an ID token (`token`, from the code exchange) that is wrong for this sign-in, or `undefined` (OpenID
 * Connect Core §3.1.3.7): `iss` the issuer, a `sub`, `aud` holding the client id, `azp` the client id when present
 * (required with several audiences), `nonce` the sign-in's, `exp` not past and `iat` not future, with 5 minutes for the
 * device's clock. The signature is not checked: the token came over TLS straight from the token endpoint, in answer to
 * this client's code and PKCE verifier (§3.1.3.7, 6). Claims are read as Latin-1 (`atob`): a non-ASCII issuer, audience
 * or nonce never matches, so is refused. @param {unknown} token @param {string} issuer @param {string} clientId
 * @param {unknown} nonce @param {number} now @returns {string | undefined} */
export function idTokenProblem(token, issuer, clientId, nonce, now) {
  let c;
  try { c = JSON.parse(atob(String(token).split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))); } catch { /* below */ }
  if (!c || typeof c != "object" || Array.isArray(c)) return "payload";
  const aud = /** @type {unknown[]} */ ([]).concat(c.aud);
  if (c.iss !== issuer) return "iss";
  if (typeof c.sub != "string" || !c.sub) return "sub";
  if (!aud.includes(clientId)) return "aud";
  if (c.azp !== undefined ? c.azp !== clientId : aud.length > 1) return "azp";
  if (c.nonce !== nonce) return "nonce";
  if (!(typeof c.exp == "number" && now < c.exp + 300)) return "exp";
  if (!(typeof c.iat == "number" && c.iat <= now + 300)) return "iat";
}

/** Where to come back to after a sign-in (`returnTo`, resolved against the page `base`): its path, query and fragment
 * when it is on the page's origin; `undefined` for any other (an open redirect otherwise: RFC 9700 §4.11).
 * @param {unknown} returnTo @param {string} base */
export function returnPath(returnTo, base) {
  try {
    const u = new URL(String(returnTo), base), o = new URL(base).origin;
    if (u.origin === o) return u.href.slice(o.length);
  } catch { /* below */ }
}

/** The address bar after a callback: `href` without the response's parameters, every other one as written, in order,
 * and the fragment. @param {string} href */
export function cleanedUrl(href) {
  const u = new URL(href);
  u.search = u.search.slice(1).split("&").filter((p) => !RESPONSE_PARAMS.includes(p.split("=")[0])).join("&");
  return u.href;
}

/** Is a discovery document fetched at `at` (s) still fresh at `now` (s)? @param {unknown} at @param {number} now */
export const fresh = (at, now) => typeof at == "number" && at <= now && now < at + DISCOVERY_TTL;

export const NO_DISCOVERY = "the provider's discovery document could not be fetched";
/** localStorage, where sign-in's transactions and the discovery document live (the redirect and a new tab find them):
 * `k`'s value parsed (without `v`), or `v` written as JSON (`null` removes). @param {string} k @param {unknown} [v]
 * @returns {any} */
export const ls = (k, v) => {
  try {
    if (v === undefined) return jsonOf(localStorage.getItem(k));
    v === null ? localStorage.removeItem(k) : localStorage.setItem(k, JSON.stringify(v));
  } catch { /* storage off */ }
};
/** An OAuth `error` code when it is a plain one (RFC 6749 §4.1.2.1; never a description). @param {unknown} e */
export const plainCode = (e) => (typeof e == "string" && /^[\w.-]{1,64}$/.test(e) ? e : e == null ? undefined : "error");
/** What a refused callback says, by its `ErrorCode`. @type {Record<number, string>} */
export const REFUSED = {
  [ErrorCode.StateMismatch]: "the callback is malformed, or its state is another sign-in's",
  [ErrorCode.NoTransaction]: "no sign-in of this browser matches the callback",
  [ErrorCode.TransactionExpired]: "the sign-in took over 10 minutes", [ErrorCode.ProviderError]: "the provider refused the sign-in",
  [ErrorCode.IssMismatch]: "the callback's iss is not the issuer (RFC 9207)" };
/** A provider endpoint's answer (`[status, text]`, `undefined`: none) that is no success: `provider_error` with its
 * `error` when it refused (4xx), else `signin_failed`. @param {[number, string | undefined] | undefined} a
 * @param {string} what */
export const refusal = (a, what) => (a && a[0] >= 400 && a[0] < 500 ? authError(ErrorCode.ProviderError, what, plainCode(jsonOf(a[1])?.error))
  : authError(ErrorCode.SigninFailed, "the provider could not be reached, or failed"));
