// @ts-check
// Browser plumbing, imported by the .wasm through #[wasm_bindgen(module)] (issue #15): as JS
// it is a fraction of the size it costs through web-sys and wasm-bindgen's per-import glue.
// It only moves values between the browser and Rust; every decision (options' meaning,
// tokens, responses, what to store, when to refresh) stays in Rust, natively tested.
// Fields only JS reads end in `_` (shortened by the package build, see js/driver.js).

const g = globalThis;
const now = Date.now;

/**
 * The `new AuthClient(options)` object read and type-checked, in Rust's order: `[refreshUrl,
 * logoutUrl, refreshFormat (0 json, 1 oauth2), clientId, storage (0 local, 1 session,
 * 2 memory), storageKey, allowedOrigins, leewaySeconds, refreshTimeoutMs,
 * minRefreshIntervalMs, redirect (0 follow, 1 error), crossTab, dpop]`, `undefined` where absent;
 * or the first error's message (an `invalid_config` error). Rust checks the values.
 * @param {unknown} o
 * @returns {unknown[] | string}
 */
export function readOptions(o) {
  if (typeof o != "object" || !o) return "options must be an object with at least refreshUrl";
  /** @type {(k: string, m: string) => never} */
  const bad = (k, m) => { throw `option \`${k}\` ${m}`; };
  /** @type {(k: string) => any} */
  const get = (k) => { try { return /** @type {any} */ (o)[k]; } catch { /* a throwing getter reads as absent */ } };
  /** @param {string} k */
  const str = (k) => { const v = get(k); return v === undefined || typeof v == "string" ? v : bad(k, "must be a string"); };
  /** @param {string} k @param {string[]} list */
  const choice = (k, list) => {
    const v = str(k);
    if (v === undefined) return v;
    const i = list.indexOf(v);
    return i < 0 ? bad(k, `must be ${list.map((c) => `"${c}"`).join(", ").replace(/, (?=[^,]*$)/, " or ")}`) : i;
  };
  /** @param {string} k @param {number} min */
  const int = (k, min) => {
    const v = get(k);
    return v === undefined || (typeof v == "number" && v >= min && v <= 4294967295 && v % 1 == 0) ? v
      : bad(k, `must be a ${min ? "positive" : "non-negative"} integer`);
  };
  const known = ["refreshUrl", "logoutUrl", "refreshFormat", "clientId", "storage", "storageKey", "allowedOrigins",
    "leewaySeconds", "refreshTimeoutMs", "minRefreshIntervalMs", "crossTab", "redirect", "dpop"];
  try {
    for (const k of Object.keys(o)) if (!known.includes(k)) bad(k, "is not a known option");
    const url = str("refreshUrl") ?? bad("refreshUrl", "is required");
    const out = [url, str("logoutUrl"), choice("refreshFormat", ["json", "oauth2"]), str("clientId"),
      choice("storage", ["local", "session", "memory"]), str("storageKey")];
    const list = get("allowedOrigins"), must = "must be an array of origin strings";
    if (list !== undefined && (!Array.isArray(list) || list.some((/** @type {unknown} */ v) => typeof v != "string"))) bad("allowedOrigins", must);
    const leeway = get("leewaySeconds");
    out.push(list && [...list], leeway === undefined ? leeway : typeof leeway == "number" ? leeway : NaN,
      int("refreshTimeoutMs", 1), int("minRefreshIntervalMs", 0), choice("redirect", ["follow", "error"]));
    /** @param {string} k */
    const flag = (k) => { const v = get(k); return v === undefined || typeof v == "boolean" ? v : bad(k, "must be a boolean"); };
    out.push(flag("crossTab"), flag("dpop"));
    return out;
  } catch (e) {
    if (typeof e == "string") return e;
    throw e;
  }
}

/** The persisted session record (Rust's `token::parse_stored` reads it back; an unknown time,
 * NaN, is written as `null`). Its field names are a stored format: never shortened.
 * @param {number} v @param {string} rt @param {string} at @param {number} exp @param {number} rat @param {number} rfa */
export const storedJson = (v, rt, at, exp, rat, rfa) => JSON.stringify({ v, rt, at, exp, rat, rfa });

/**
 * The listeners of one client. `on(type, f)` (`""`: every type, with the type as `f`'s second
 * argument) returns the function that removes `f`; `emit` calls each listener of the type,
 * and one that throws breaks neither the others nor the refresh.
 */
export class Events {
  constructor() {
    /** @type {Set<[string, (detail: object, type: string) => void]>} */
    this.listeners_ = new Set();
  }
  /** @param {string} type @param {(detail: object, type: string) => void} f @returns {() => void} */
  on(type, f) {
    /** @type {[string, (detail: object, type: string) => void]} */
    const e = [type, f];
    this.listeners_.add(e);
    return () => void this.listeners_.delete(e);
  }
  /**
   * Tells the listeners of `type`: "refresh" with `{expiresAt: a (NaN: unknown, left out),
   * source: b}`, or "signout" with `{reason: a, error: b}` (`error` only when the server named
   * one).
   * @param {string} type @param {unknown} a @param {unknown} b
   */
  emit(type, a, b) {
    const detail = type == "refresh" ? { expiresAt: a === a ? a : undefined, source: b }
      : b === undefined ? { reason: a } : { reason: a, error: b };
    for (const [t, f] of [...this.listeners_]) if (!t || t == type) try { f(detail, type); } catch { /* the app's */ }
  }
}

/**
 * POSTs `body` as `type` (JSON accepted, never cached; with `proof`, its `DPoP` header), aborted
 * after `ms`. Resolves
 * `[status, content-length header or null, response]`; rejects on a network error or timeout.
 * @param {string} url @param {string} type @param {string} body @param {number} ms
 * @param {string | undefined} proof @returns {Promise<[number, string | null, Response]>}
 */
export async function post(url, type, body, ms, proof) {
  /** @type {Record<string, string>} */
  const headers = { "Content-Type": type, Accept: "application/json" };
  if (proof) headers.DPoP = proof;
  const r = await g.fetch(url, { method: "POST", headers, body, cache: "no-store", signal: AbortSignal.timeout(ms) });
  return [r.status, r.headers.get("content-length"), r];
}

/** The body of `r` as text, `undefined` when it cannot be read; with `skip`, cancelled unread.
 * @param {Response} r @param {boolean} skip @returns {Promise<string | undefined>} */
export function bodyText(r, skip) {
  if (skip) {
    r.body?.cancel().catch(() => {});
    return /** @type {Promise<undefined>} */ (Promise.resolve());
  }
  return r.text().catch(() => undefined);
}

// IndexedDB: one database, one object store, a string value per key. The store that is
// consistent between tabs at lock hand-over (see the README).

/** @param {IDBDatabase} db @param {IDBTransactionMode} mode @returns {[IDBTransaction, IDBObjectStore]} */
const tx = (db, mode) => {
  const t = db.transaction("kv", mode);
  return [t, t.objectStore("kv")];
};
/** @param {IDBTransaction} t @param {(v: any) => void} resolve @param {(e: unknown) => void} reject */
const committed = (t, resolve, reject) => {
  t.oncomplete = resolve;
  t.onerror = t.onabort = reject;
};

/** Opens (creating if needed) the database; `null` where IndexedDB is unavailable.
 * @returns {Promise<IDBDatabase | null>} */
export function idbOpen() {
  return new Promise((resolve, reject) => {
    const r = g.indexedDB.open("rotafetch", 1);
    r.onupgradeneeded = () => r.result.createObjectStore("kv");
    r.onsuccess = () => resolve(r.result);
    r.onerror = reject;
  }).catch(() => null);
}

/** Reads `key`: its value (`undefined` when absent); rejects when the read failed.
 * @param {IDBDatabase} db @param {string} key */
export function idbGet(db, key) {
  return new Promise((resolve, reject) => {
    const r = tx(db, "readonly")[1].get(key);
    r.onsuccess = () => resolve(r.result);
    r.onerror = reject;
  });
}

/** Writes (or, with `undefined`, deletes) `key`; resolves once the transaction committed.
 * @param {IDBDatabase} db @param {string} key @param {string} [value] */
export function idbPut(db, key, value) {
  return new Promise((resolve, reject) => {
    const [t, s] = tx(db, "readwrite");
    committed(t, resolve, reject);
    value === undefined ? s.delete(key) : s.put(value, key);
  });
}

/**
 * The lease that stands in for Web Locks where `navigator.locks` is missing: `{o: owner,
 * u: until}` taken with a compare-and-set in one readwrite transaction (IndexedDB serialises
 * those across the origin), polled with backoff only while a caller waits, for at most `ms`
 * (a crashed holder's lease expires after `ms` too). Resolves its release, or `null`. (Its
 * fields are a stored format, shared with other tabs: never shortened.)
 * @param {IDBDatabase} db @param {string} name @param {number} ms @returns {Promise<(() => void) | null>}
 */
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
        if (typeof u != "number" || u < now()) {
          s.put({ o, u: now() + ms }, key);
          ok = true;
        }
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

/**
 * The browser-wide lock `name`, waited for at most `ms`: a Web Lock, else the IndexedDB lease
 * on `db`, else none (one tab only). Resolves the function that releases it (a no-op without
 * a lock), or `null` when it was not granted in time.
 * @param {string} name @param {number} ms @param {IDBDatabase | null} db
 * @returns {Promise<(() => void) | null>}
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

/**
 * The session's persistent home: `localStorage`, `sessionStorage` or (name "") memory. Storage
 * that throws (disabled, quota, a sandboxed frame) degrades to memory and keeps working; the
 * memory copy always mirrors the last value read or written.
 */
export class Store {
  /** @param {string} name @param {string} key */
  constructor(name, key) {
    this.key_ = key;
    /** The last value read or written. @type {string | null} */
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
  /**
   * Calls `f(value)` on every `storage` event (another tab's write) of this key in this store's
   * area, or of the area's clearing, with the value the area holds now: an event can arrive
   * after a later write (this tab's own, e.g. a `logout()`), and its `newValue` is then stale.
   * Returns the function that stops listening.
   * @param {(v: string | null) => void} f
   */
  listen(f) {
    const h = (/** @type {StorageEvent} */ e) =>
      this.area_ && e.storageArea === this.area_ && (e.key === null || e.key === this.key_) && f(this.read());
    g.addEventListener?.("storage", h);
    return () => g.removeEventListener?.("storage", h);
  }
}

/** `url` resolved the way `fetch(url)` does (against the document's base URL, in a worker its
 * location): `[href, protocol, origin]`, or `undefined` when it is not a URL. @param {string} url */
export function resolveUrl(url) {
  try {
    const u = new URL(url, g.document ? g.document.baseURI : g.location?.href);
    return [u.href, u.protocol, u.origin];
  } catch { /* not a URL */ }
}

/** The page's (or worker's) own origin. @returns {string | undefined} */
export const pageOrigin = () => g.location?.origin;

/**
 * `request` readied for the access token: with `strict` (Rust decided: `redirect: "error"`
 * configured and the request has the default mode) a `new Request(request, {redirect:
 * "error"})` takes its place; then `Authorization: Bearer <access>` (`DPoP <access>` with
 * `dpop`). Throws what those throw.
 * @param {Request} request @param {string} access @param {boolean} strict @param {unknown} dpop truthy: DPoP on
 * @returns {Request}
 */
export function authorize(request, access, strict, dpop) {
  if (strict) request = new Request(request, { redirect: "error" });
  request.headers.set("Authorization", (dpop ? "DPoP " : "Bearer ") + access);
  return request;
}

/**
 * Every rotafetch rejection: an `Error` with a stable `code` (Rust's `ErrorCode`), exported by
 * the package (scripts/package.mjs re-exports it from the glue; typed in js.rs's `.d.ts`).
 */
export class AuthError extends Error {
  /** @param {string} message @param {string} code */
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}
// The name survives minification: the class's, and `name` on every instance (as `Error`s have).
Object.defineProperty(AuthError, "name", { value: "AuthError" });
AuthError.prototype.name = "AuthError";

/** The RFC 6749 §6 form body of a refresh (`client_id` only when given).
 * @param {string} rt @param {string | undefined} clientId @returns {string} */
export function formBody(rt, clientId) {
  const p = new URLSearchParams({ grant_type: "refresh_token", refresh_token: rt });
  if (clientId !== undefined) p.append("client_id", clientId);
  return String(p);
}

/** Can this page keep a DPoP key (IndexedDB, and `crypto.subtle`: a secure context)? */
export const dpopCapable = () => !!(g.indexedDB && g.crypto?.subtle);

// DPoP (RFC 9449): the key and the proofs, for the driver. What a proof names (htu, the
// nonce) and what an answer means are the Rust core's (src/dpop.rs). Builds without the
// crate's `dpop` feature never call these.

/** @param {ArrayBuffer | Uint8Array} buf */
const b64u = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
/** @param {string} s */
const utf8 = (s) => new TextEncoder().encode(s);
/** @param {object} o */
const part = (o) => b64u(utf8(JSON.stringify(o)));
const DPOP = "dpop:";

/** Deletes the DPoP key pair (at sign-out: the next session gets a new one).
 * @param {IDBDatabase} db @param {string} key */
export const dpopForget = (db, key) => idbPut(db, DPOP + key).catch(() => {});

/**
 * The client's DPoP key pair (ES256; the private key non-extractable), one per browser profile
 * and storage key, kept in IndexedDB under `dpop:<key>`. A tab that finds none generates one and
 * stores it first-writer-wins: in one readwrite transaction it keeps the key another tab stored
 * first, if any, so racing tabs end up with one key.
 * @param {IDBDatabase} db @param {string} key @returns {Promise<CryptoKeyPair>}
 */
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
/** A proof's header for `pair` (its public JWK exported once per key, not once per proof).
 * @param {CryptoKeyPair} pair */
async function header(pair) {
  let h = headers.get(pair);
  if (!h) {
    const { kty, crv, x, y } = await crypto.subtle.exportKey("jwk", pair.publicKey);
    headers.set(pair, (h = part({ typ: "dpop+jwt", alg: "ES256", jwk: { kty, crv, x, y } })));
  }
  return h;
}

/**
 * A DPoP proof: `typ: dpop+jwt`, ES256, the public JWK; claims `jti` (128 random bits), `htm`,
 * `htu`, `iat`, `nonce` when given, and `ath` (SHA-256 of `access`) when given.
 * @param {CryptoKeyPair} pair @param {string} htm @param {string} htu
 * @param {string | undefined} nonce @param {string | undefined} access @returns {Promise<string>}
 */
export async function dpopSign(pair, htm, htu, nonce, access) {
  /** @type {Record<string, unknown>} */
  const claims = { jti: b64u(crypto.getRandomValues(new Uint8Array(16))), htm, htu, iat: Math.floor(Date.now() / 1000), nonce };
  if (access) claims.ath = b64u(await crypto.subtle.digest("SHA-256", utf8(access)));
  const input = (await header(pair)) + "." + part(claims);
  return input + "." + b64u(await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, pair.privateKey, utf8(input)));
}

/** What the driver uses, as one object (Rust hands it to the driver). */
export const dpop = () => ({ loadKey_: dpopKey, sign_: dpopSign, forget_: dpopForget });
