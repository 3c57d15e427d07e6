// @ts-check
// The driver: carries out rotafetch's browser effects (fetch, the IndexedDB hand-over store,
// the cross-tab lock, `storage` events, DPoP signatures) in the order the Rust core's answers
// call for. It only sequences: whether a request is authenticated, when to refresh, what a
// 401 or a token endpoint's answer means, what a DPoP proof names, what to store and what to
// tell the app are the core's (`core_`, src/web/core.rs, whose table says which question is
// asked when; typed in js/core.d.ts), natively tested. As JS it is a fraction of what the same
// awaits cost as Rust futures and their executor in the .wasm (issue #15, README Size).
//
// Names: fields and methods only the driver and plumbing.js use end in `_`; the package build
// shortens those (esbuild's mangleProps, scripts/mangle-cache.json). The rest are read by
// Rust (`fetch`, `login`, `refreshNow`, `logout`, `dpopProof`, `share`, `close`) or by the core.

/** @import { Core } from "./core" */
/** @import { Store } from "./plumbing.js" */
import { authorize, bodyText, idbGet, idbOpen, idbPut, lock, post } from "./plumbing.js";

// The core's named answers: the values of the Rust enums of the same names (src/seam.rs,
// src/policy.rs; a native test compares them, and the package build inlines them).

/** `start`: how to send a request; `Strict` is a flag added to one of the others. */
export const Start = Object.freeze({ Pass: 0, Send: 1, RefreshFirst: 2, Strict: 4 });
/** `on401`: what a 401 calls for. */
export const On401 = Object.freeze({ Return: 0, ReplayWithCurrent: 1, RefreshThenReplay: 2, ReplayWithNonce: 3 });
/** `on401`'s `replayed`: what a call already did (bits). */
export const Replayed = Object.freeze({ Token: 1, Nonce: 2 });
/** `fail`: the driver's own failures. */
export const DriverError = Object.freeze({
  LockTimeout: 0, Aborted: 1, NotReplayable: 2, NotSignedIn: 3, BadCredentials: 4, DpopOff: 5, NoKey: 6 });

const g = globalThis;

/** What a replay sends: 0, none in `init` (the request's own, if any); 1, rebuilt from input
 * and init (a string, Blob, ArrayBuffer, FormData or URLSearchParams reads again in every
 * engine, a clone of it not always: WebKit fails to send a cloned FormData that holds a Blob);
 * 2, a stream. @param {RequestInit | undefined} init @returns {0 | 1 | 2} */
const bodyOf = (init) => {
  const b = init && typeof init == "object" ? init.body : undefined;
  return b == null ? 0 : typeof (/** @type {any} */ (b).getReader) == "function" ? 2 : 1;
};

/** May `r` hold a body? Where the engine has `Request.body` it says; where not (Firefox),
 * any method but GET and HEAD may. @param {{ body?: unknown, method: string }} r */
const mayHaveBody = (r) => ("body" in r ? r.body != null : r.method != "GET" && r.method != "HEAD");

/** A replay's request: rebuilt, a copy of a copy, or the request itself; `null`: refused. @typedef
 * {(() => Request) | null} Again */
/** The DPoP key and proof functions (plumbing.js's `dpop()`). @typedef
 * {ReturnType<typeof import("./plumbing.js").dpop>} Dpop */

export class Driver {
  /**
   * @param {{ ask(name: string | symbol, args: unknown[]): any }} core the Rust core's one export
   * @param {Store} store the session's persistent home
   * @param {boolean} crossTab one refresh per browser (the hand-over store and the lock)
   * @param {string} refreshUrl @param {string | undefined} logoutUrl
   * @param {string} key the hand-over record's key (and the DPoP key's)
   * @param {string} lockName @param {number} timeoutMs bound on a refresh and on waiting for the lock
   * @param {Dpop | undefined} dpop with DPoP on, the key and proof functions
   */
  constructor(core, store, crossTab, refreshUrl, logoutUrl, key, lockName, timeoutMs, dpop) {
    /** `core_.start(…)` and the rest: the core's questions, all through its one export `ask`.
     * @type {Core} */
    this.core_ = /** @type {any} */ (new Proxy({}, { get: (_, name) => (/** @type {unknown[]} */ ...args) => core.ask(name, args) }));
    this.store_ = store;
    this.crossTab_ = crossTab;
    this.refreshUrl_ = refreshUrl;
    this.logoutUrl_ = logoutUrl;
    this.key_ = key;
    this.lockName_ = lockName;
    this.timeoutMs_ = timeoutMs;
    this.dpop_ = dpop;
    /** This tab's refresh in flight, which callers join. @type {Promise<void> | null} */
    this.inFlight_ = null;
    /** The hand-over store, opened on first need. @type {Promise<IDBDatabase | null> | undefined} */
    this.db_ = undefined;
    /** DPoP: the key pair, read or made once (forgotten at sign-out). @type {Promise<CryptoKeyPair> | null} */
    this.keyPair_ = null;
    /** DPoP: the database the key pair lives in. @type {Promise<IDBDatabase | null> | undefined} */
    this.keyDb_ = undefined;
    // Another tab's write (or clearing) of the session in this storage area. (Its sign-out
    // also deleted the DPoP key: read it anew.)
    this.close = crossTab ? store.listen((v) => (this.core_.adopt(v), (this.keyPair_ = null))) : () => {};
  }

  /** IndexedDB, opened on first need; `null` without cross-tab or where unavailable. */
  openDb_() {
    return (this.db_ ??= this.crossTab_ ? idbOpen() : Promise.resolve(null));
  }

  /** Writes the hand-over record (`null`: deletes it) and waits for the commit.
   * @param {string | null} v */
  async share(v) {
    const db = await this.openDb_();
    if (db) await idbPut(db, this.key_, v ?? undefined).catch(() => {});
  }

  /** The session as the last tab left it: the hand-over record, else the persistent store's
   * (a string, or `null` signed out); `undefined` when nothing could be read. */
  async shared_() {
    const db = await this.openDb_();
    const v = db && (await idbGet(db, this.key_).catch(() => {}));
    return typeof v == "string" ? v : this.store_.persistent ? this.store_.read() : undefined;
  }

  /** `fetch(input, init)` with authentication.
   * @param {RequestInfo | URL} input @param {RequestInit | undefined} init @returns {Promise<Response>} */
  fetch(input, init) {
    try {
      const b = bodyOf(init), req = new Request(input, init);
      const how = this.core_.start(req.url, req.headers.has("authorization"), req.redirect);
      const strict = !!(how & Start.Strict);
      return how == Start.Pass ? g.fetch(req)
        : how & Start.RefreshFirst ? this.refreshFirst_(req, input, init, b, strict)
        : this.send_(req, input, init, b, strict);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** `Start.RefreshFirst`: the refresh before sending; a transient failure while the old
   * token is still good sends it anyway (the core says when).
   * @param {Request} req @param {RequestInfo | URL} input @param {RequestInit | undefined} init
   * @param {0 | 1 | 2} b @param {boolean} strict */
  async refreshFirst_(req, input, init, b, strict) {
    try {
      await this.refresh_(this.core_.access(), req.signal);
    } catch (e) {
      if (!this.core_.sendAnyway(/** @type {any} */ (e)?.code)) throw e;
    }
    return this.send_(req, input, init, b, strict);
  }

  /** `Start.Send`: sends `req` with the access token (if any), made `redirect: "error"` first
   * when `strict`; a 401 goes to `on401_`.
   * @param {Request} req @param {RequestInfo | URL} input @param {RequestInit | undefined} init
   * @param {0 | 1 | 2} b @param {boolean} strict @returns {Promise<Response>} */
  send_(req, input, init, b, strict) {
    const carried = this.core_.access();
    if (carried === undefined) return g.fetch(req);
    req = authorize(req, carried, strict, this.dpop_);
    // How a replay gets its request: rebuilt, refused (null), a copy of the copy made before
    // the first send (the only way to send a request's own body again, and again), or the
    // same request.
    const copy = b == 0 && mayHaveBody(req) && req.clone();
    /** @type {Again} */
    const again = b == 1 ? () => new Request(input, init) : b == 2 ? null : copy ? () => copy.clone() : () => req;
    return this.dispatch_(req, carried).then((r) => (r.status == 401 ? this.on401_(r, req, carried, again, strict) : r));
  }

  /** `fetch(req)`; with DPoP, a proof for it (bound to `access`) first, and the nonce its
   * response gives kept. @param {Request} req @param {string} access @returns {Promise<Response>} */
  dispatch_(req, access) {
    if (!this.dpop_) return g.fetch(req);
    return this.proof_(req.method, req.url, access)
      .then((p) => (req.headers.set("DPoP", p), g.fetch(req)))
      .then((r) => (this.core_.took(req.url, r.headers.get("dpop-nonce")), r));
  }

  /** A 401 to an authenticated request: returned, or replayed (after one refresh per
   * browser, if the core says so) with the current token. With DPoP, a nonce challenge is
   * replayed with the nonce. `replayed` (bits of `Replayed`) is what the call already did:
   * each once, the replay's own 401 goes to the core again.
   * @param {Response} r @param {Request} sent @param {string} carried @param {Again} again
   * @param {boolean} strict @param {number} [replayed] @returns {Promise<Response>} */
  async on401_(r, sent, carried, again, strict, replayed = 0) {
    const core = this.core_;
    const www = this.dpop_ ? r.headers.get("www-authenticate") : undefined;
    const d = core.on401(carried, sent.url, r.url, r.redirected, !!this.inFlight_, www, replayed);
    if (d == On401.Return) return r;
    if (d == On401.RefreshThenReplay) await this.refresh_(carried, sent.signal);
    if (!again) throw core.fail(DriverError.NotReplayable);
    const cur = core.access();
    if (cur === undefined) return r;
    const req = authorize(again(), cur, strict, this.dpop_), res = await this.dispatch_(req, cur);
    if (res.status != 401) return res;
    return this.on401_(res, req, cur, again, strict, replayed | (d == On401.ReplayWithNonce ? Replayed.Nonce : Replayed.Token));
  }

  /** `refresh()`: one serialized refresh, on demand. */
  refreshNow() {
    const a = this.core_.access();
    return a === undefined ? Promise.reject(this.core_.fail(DriverError.NotSignedIn)) : this.refresh_(a);
  }

  /** Joins this tab's refresh in flight or starts one (`runRefresh_` makes it one per
   * browser); rejects with its error, or `aborted` when `signal` fires first.
   * @param {string | undefined} failed the token the refresh is to replace
   * @param {AbortSignal} [signal] @returns {Promise<void>} */
  refresh_(failed, signal) {
    if (!this.inFlight_) {
      this.inFlight_ = this.runRefresh_(failed).finally(() => (this.inFlight_ = null));
      this.inFlight_.catch(() => {});
    }
    const p = this.inFlight_, aborted = () => this.core_.fail(DriverError.Aborted);
    if (!signal) return p;
    if (signal.aborted) return Promise.reject(aborted());
    return Promise.race([p, new Promise((_, no) => signal.addEventListener("abort", () => no(aborted()), { once: true }))]);
  }

  /** The refresh: takes the cross-tab lock, refreshes unless another tab already did,
   * releases, then tells the listeners (src/web/core.rs's table, "A refresh").
   * @param {string | undefined} failed */
  async runRefresh_(failed) {
    // The session this refresh is for: if this tab signs in or out while it waits for the
    // lock (a `logout()` queued behind it), `sync` ends it instead of taking the hand-over
    // record back.
    const core = this.core_, generation = core.generation();
    if (this.crossTab_ && core.adoptBeforeLock(await this.shared_(), failed)) return;
    let release;
    if (this.crossTab_) {
      release = await lock(this.lockName_, this.timeoutMs_, await this.openDb_());
      if (!release) throw core.fail(DriverError.LockTimeout);
    }
    try {
      if (this.crossTab_) core.sync(await this.shared_(), generation);
      const request = core.beginRefresh(failed);
      if (!request) return;
      const a = await this.post_(this.refreshUrl_, request[0], request[1]);
      const v = core.answer(a?.[0], a?.[1]);
      // Persist before anyone replays: the hand-over store first (the next lock holder reads
      // it), then the persistent home (its `storage` event wakes the other tabs).
      if (this.crossTab_) await this.share(v);
      core.commit();
    } catch (e) {
      // The session ended (rejected, or signed out meanwhile): so does its DPoP key.
      if (this.dpop_ && core.access() === undefined) await this.forgetKey_();
      throw e;
    } finally {
      release?.();
      core.flush();
    }
  }

  /** POSTs to a token endpoint: `[status, body text]`, or `undefined` (a network error, a
   * timeout, no DPoP key). With DPoP, with a proof, and a nonce challenge answered once.
   * @param {string} url @param {string} type @param {string} body
   * @returns {Promise<[number, string | undefined] | undefined>} */
  async post_(url, type, body) {
    const core = this.core_;
    for (let retried = false; ; retried = true) {
      let a;
      try {
        a = await post(url, type, body, this.timeoutMs_, this.dpop_ && (await this.proof_("POST", url)));
      } catch {
        return;
      }
      const text = await bodyText(a[2], core.tooBig(a[1]));
      if (!this.dpop_) return [a[0], text];
      core.took(url, a[2].headers.get("dpop-nonce"));
      if (!core.tokenChallenge(a[0], text, retried)) return [a[0], text];
    }
  }

  /** `login(url, credentials)`. @param {string} url @param {unknown} credentials */
  async login(url, credentials) {
    const core = this.core_, u = core.login(url);
    let body;
    try {
      body = JSON.stringify(credentials);
    } catch { /* below */ }
    if (typeof body != "string") throw core.fail(DriverError.BadCredentials);
    const a = await this.post_(u, "application/json", body);
    this.share(core.loggedIn(a?.[0], a?.[1]));
  }

  /** `logout()`: signs out here, in every tab (under the lock, so no tab's refresh in flight
   * writes the session back), and at the server (best effort; with DPoP, with a proof: a
   * bound session's logout needs one), then forgets the DPoP key. */
  async logout() {
    const core = this.core_;
    let body = core.signOut();
    if (this.crossTab_) {
      const db = await this.openDb_(), release = await lock(this.lockName_, this.timeoutMs_, db);
      try {
        body = core.handOver(db && (await idbGet(db, this.key_).catch(() => {}))) ?? body;
        if (db) await idbPut(db, this.key_).catch(() => {});
      } finally {
        release?.();
      }
    }
    if (this.logoutUrl_ && body) await this.post_(this.logoutUrl_, "application/json", body);
    if (this.dpop_) await this.forgetKey_();
    core.flush();
  }

  // DPoP: the key (read or made once, forgotten at sign-out) and the proofs.

  /** The key pair: IndexedDB's, else a new one stored first-writer-wins (plumbing.js's
   * dpopKey). */
  loadKeyPair_() {
    const dpop = /** @type {Dpop} */ (this.dpop_);
    return (this.keyPair_ ??= (this.keyDb_ ??= idbOpen()).then((db) => dpop.loadKey_(/** @type {IDBDatabase} */ (db), this.key_))
      .catch(() => { this.keyPair_ = null; throw this.core_.fail(DriverError.NoKey); }));
  }

  /** A proof for `method` `url` (with `ath` for `access` when given): what it names (htu, the
   * origin's nonce) is the core's. @param {string} method @param {string} url @param {string} [access] */
  async proof_(method, url, access) {
    const dpop = /** @type {Dpop} */ (this.dpop_), [htu, nonce] = this.core_.proofFor(url);
    return dpop.sign_(await this.loadKeyPair_(), method, htu, nonce, access);
  }

  /** Deletes the key here and in IndexedDB: the next session gets a new one. */
  async forgetKey_() {
    this.keyPair_ = null;
    const db = await (this.keyDb_ ??= idbOpen());
    if (db) await /** @type {Dpop} */ (this.dpop_).forget_(db, this.key_);
  }

  /** `dpopProof(method, url)`: a proof for a request of the app's own. @param {unknown} method @param {unknown} url */
  dpopProof(method, url) {
    return this.dpop_ ? this.proof_(String(method).toUpperCase(), String(url)) : Promise.reject(this.core_.fail(DriverError.DpopOff));
  }
}

// The glue imports plumbing.js's exports too: the package ships this module bundled with
// plumbing.js as one file (scripts/package.mjs), which then serves both.
export * from "./plumbing.js";
