// The driver: carries out rotafetch's browser effects (fetch, the IndexedDB hand-over store,
// the cross-tab lock, `storage` events, DPoP signatures) in the order the Rust core's answers
// call for. It only sequences: whether a request is authenticated, when to refresh, what a
// 401 or a token endpoint's answer means, what a DPoP proof names, what to store and what to
// tell the app are the core's (`c`, src/web/core.rs), natively tested. As JS it is a fraction
// of what the same awaits cost as Rust futures and their executor in the .wasm (issue #15,
// README Size).

import { authorize, bodyText, idbGet, idbOpen, idbPut, lock, post } from "./plumbing.js";

const g = globalThis;
// `Core::fail` kinds.
const LOCK_TIMEOUT = 0, ABORTED = 1, NOT_REPLAYABLE = 2, NOT_SIGNED_IN = 3, BAD_CREDENTIALS = 4, DPOP_OFF = 5,
  NO_KEY = 6;

/** What a replay sends: see `send`. */
const bodyOf = (init) => {
  const b = init && typeof init == "object" ? init.body : undefined;
  // 0: none in `init` (the request's own, if any); 1: rebuilt from input and init (a string,
  // Blob, ArrayBuffer, FormData or URLSearchParams reads again in every engine, a clone of it
  // not always: WebKit fails to send a cloned FormData that holds a Blob); 2: a stream.
  return b == null ? 0 : typeof b.getReader == "function" ? 2 : 1;
};

/** May `r` hold a body? Where the engine has `Request.body` it says; where not (Firefox),
 * any method but GET and HEAD may. */
const mayHaveBody = (r) => ("body" in r ? r.body != null : r.method != "GET" && r.method != "HEAD");

export class Driver {
  /**
   * @param {Core} core the Rust core @param {Store} s the session's persistent home
   * @param {boolean} x one refresh per browser (the hand-over store and the lock)
   * @param {string} url refreshUrl @param {string | undefined} out logoutUrl
   * @param {string} key the hand-over record's key @param {string} n the lock's name
   * @param {number} ms bound on a refresh and on waiting for the lock
   * @param {{key, sign, forget} | undefined} dp with DPoP on, plumbing.js's key and proof functions
   */
  constructor(core, s, x, url, out, key, n, ms, dp) {
    // `c.start(…)` and the rest: the core's questions, all through its one export `ask`.
    const c = new Proxy({}, { get: (_, name) => (...args) => core.ask(name, args) });
    Object.assign(this, { c, s, x, url, out, key, n, ms, dp, f: null, k: null });
    // Another tab's write (or clearing) of the session in this storage area. (Its sign-out
    // also deleted the DPoP key: read it anew.)
    this.close = x ? s.listen((v) => (c.adopt(v), (this.k = null))) : () => {};
  }

  /** IndexedDB, opened on first need; `null` without cross-tab or where unavailable. */
  db() {
    return (this.d ??= this.x ? idbOpen() : Promise.resolve(null));
  }

  /** Writes the hand-over record (`null`: deletes it) and waits for the commit. */
  async share(v) {
    const db = await this.db();
    if (db) await idbPut(db, this.key, v ?? undefined).catch(() => {});
  }

  /** The session as the last tab left it: the hand-over record, else the persistent store's
   * (a string, or `null` signed out); `undefined` when nothing could be read. */
  async shared() {
    const db = await this.db();
    const v = db && (await idbGet(db, this.key).catch(() => {}));
    return typeof v == "string" ? v : this.s.persistent ? this.s.read() : undefined;
  }

  /** `fetch(input, init)` with authentication. */
  fetch(input, init) {
    const c = this.c;
    try {
      const b = bodyOf(init), req = new Request(input, init);
      // 0: not ours, sent as is; 1: send with the token; 2: refresh first; +4: strict.
      const how = c.start(req.url, req.headers.has("authorization"), req.redirect), strict = how > 3;
      return !how ? g.fetch(req) : how & 2 ? this.first(req, input, init, b, strict) : this.send(req, input, init, b, strict);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** The refresh before sending; a transient failure while the old token is still good
   * sends it anyway (the core says when). */
  async first(req, input, init, b, strict) {
    try {
      await this.refresh(this.c.access(), req.signal);
    } catch (e) {
      if (!this.c.tolerate(e?.code)) throw e;
    }
    return this.send(req, input, init, b, strict);
  }

  /** Sends `req` with the access token (if any), made `redirect: "error"` first when
   * `strict`; a 401 goes to `after`. */
  send(req, input, init, b, strict) {
    const c = this.c, carried = c.access();
    if (carried === undefined) return g.fetch(req);
    req = authorize(req, carried, strict, this.dp);
    // How a replay gets its request: rebuilt, refused (null), a copy of the copy made before
    // the first send (the only way to send a request's own body again, and again), or the
    // same request.
    const copy = b == 0 && mayHaveBody(req) && req.clone();
    const again = b == 1 ? () => new Request(input, init) : b == 2 ? null : copy ? () => copy.clone() : () => req;
    return this.go(req, carried).then((r) => (r.status == 401 ? this.after(r, req, carried, again, strict) : r));
  }

  /** `fetch(req)`; with DPoP, a proof for it (bound to `access`) first, and the nonce its
   * response gives kept. */
  go(req, access) {
    if (!this.dp) return g.fetch(req);
    return this.proof(req.method, req.url, access)
      .then((p) => (req.headers.set("DPoP", p), g.fetch(req)))
      .then((r) => (this.c.took(req.url, r.headers.get("dpop-nonce")), r));
  }

  /** A 401 to an authenticated request: returned, or replayed (after one refresh per
   * browser, if the core says so) with the current token. With DPoP, a nonce challenge is
   * replayed with the nonce. `done` (bits: 1 a token replay, 2 a nonce one) is what the
   * call already did: each once, the replay's own 401 goes to the core again. */
  async after(r, sent, carried, again, strict, done = 0) {
    const c = this.c;
    const www = this.dp ? r.headers.get("www-authenticate") : undefined;
    const d = c.on401(carried, sent.url, r.url, r.redirected, !!this.f, www, done);
    if (!d) return r;
    if (d == 2) await this.refresh(carried, sent.signal);
    if (!again) throw c.fail(NOT_REPLAYABLE);
    const cur = c.access();
    if (cur === undefined) return r;
    const req = authorize(again(), cur, strict, this.dp), res = await this.go(req, cur);
    return res.status == 401 ? this.after(res, req, cur, again, strict, done | (d == 3 ? 2 : 1)) : res;
  }

  /** `refresh()`: one serialized refresh, on demand. */
  refreshNow() {
    const a = this.c.access();
    return a === undefined ? Promise.reject(this.c.fail(NOT_SIGNED_IN)) : this.refresh(a);
  }

  /** Joins this tab's refresh in flight or starts one (`locked` makes it one per browser);
   * rejects with its error, or `aborted` when `signal` fires first. */
  refresh(failed, signal) {
    if (!this.f) {
      this.f = this.locked(failed).finally(() => (this.f = null));
      this.f.catch(() => {});
    }
    const p = this.f, aborted = () => this.c.fail(ABORTED);
    if (!signal) return p;
    if (signal.aborted) return Promise.reject(aborted());
    return Promise.race([p, new Promise((_, no) => signal.addEventListener("abort", () => no(aborted()), { once: true }))]);
  }

  /** Takes the cross-tab lock, refreshes unless another tab already did, releases, then
   * tells the listeners. */
  async locked(failed) {
    const c = this.c;
    if (this.x && c.fast(await this.shared(), failed)) return;
    let release;
    if (this.x) {
      release = await lock(this.n, this.ms, await this.db());
      if (!release) throw c.fail(LOCK_TIMEOUT);
    }
    try {
      if (this.x) {
        const gen = c.generation();
        c.sync(await this.shared(), gen);
      }
      const ask = c.request(failed);
      if (!ask) return;
      const a = await this.call(this.url, ask[0], ask[1]);
      const v = c.answer(a ? a[0] : 0, a?.[1]);
      // Persist before anyone replays: the hand-over store first (the next lock holder reads
      // it), then the persistent home (its `storage` event wakes the other tabs).
      if (this.x) await this.share(v);
      c.commit();
    } catch (e) {
      // The session ended (rejected, or signed out meanwhile): so does its DPoP key.
      if (this.dp && c.access() === undefined) await this.forget();
      throw e;
    } finally {
      release?.();
      c.flush();
    }
  }

  /** POSTs to a token endpoint: `[status, body text]`, or `undefined` (a network error, a
   * timeout, no DPoP key). With DPoP, with a proof, and a nonce challenge answered once. */
  async call(url, type, body) {
    const c = this.c;
    for (let again = 0; ; again = 1) {
      let a;
      try {
        a = await post(url, type, body, this.ms, this.dp && (await this.proof("POST", url)));
      } catch {
        return;
      }
      const text = await bodyText(a[2], c.tooBig(a[1]));
      if (!this.dp) return [a[0], text];
      c.took(url, a[2].headers.get("dpop-nonce"));
      if (!c.tokenNonce(a[0], text, again)) return [a[0], text];
    }
  }

  /** `login(url, credentials)`. */
  async login(url, credentials) {
    const c = this.c, u = c.login(url);
    let body;
    try {
      body = JSON.stringify(credentials);
    } catch { /* below */ }
    if (typeof body != "string") throw c.fail(BAD_CREDENTIALS);
    const a = await this.call(u, "application/json", body);
    this.share(c.loggedIn(a ? a[0] : 0, a?.[1]));
  }

  /** `logout()`: signs out here, in every tab (under the lock, so no tab's refresh in flight
   * writes the session back), and at the server (best effort; with DPoP, with a proof: a
   * bound session's logout needs one), then forgets the DPoP key. */
  async logout() {
    const c = this.c;
    let body = c.signOut();
    if (this.x) {
      const db = await this.db(), release = await lock(this.n, this.ms, db);
      try {
        body = c.handOver(db && (await idbGet(db, this.key).catch(() => {}))) ?? body;
        if (db) await idbPut(db, this.key).catch(() => {});
      } finally {
        release?.();
      }
    }
    if (this.out && body) await this.call(this.out, "application/json", body);
    if (this.dp) await this.forget();
    c.flush();
  }

  // DPoP: the key (read or made once, forgotten at sign-out) and the proofs.

  /** The key pair: IndexedDB's, else a new one stored first-writer-wins (plumbing.js's dpopKey). */
  pair() {
    return (this.k ??= (this.kdb ??= idbOpen()).then((db) => this.dp.key(db, this.key))
      .catch(() => { this.k = null; throw this.c.fail(NO_KEY); }));
  }

  /** A proof for `method` `url` (with `ath` for `access` when given): what it names (htu, the
   * origin's nonce) is the core's. */
  async proof(method, url, access) {
    const [htu, nonce] = this.c.proofFor(url);
    return this.dp.sign(await this.pair(), method, htu, nonce, access);
  }

  /** Deletes the key here and in IndexedDB: the next session gets a new one. */
  async forget() {
    this.k = null;
    const db = await (this.kdb ??= idbOpen());
    if (db) await this.dp.forget(db, this.key);
  }

  /** `dpopProof(method, url)`: a proof for a request of the app's own. */
  dpopProof(method, url) {
    return this.dp ? this.proof(String(method).toUpperCase(), String(url)) : Promise.reject(this.c.fail(DPOP_OFF));
  }
}

// The glue imports plumbing.js's exports too: the package ships this module bundled with
// plumbing.js as one file (scripts/package.mjs), which then serves both.
export * from "./plumbing.js";
