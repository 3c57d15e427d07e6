// The driver: carries out rotafetch's browser effects (fetch, the IndexedDB hand-over store,
// the cross-tab lock, `storage` events) in the order the Rust core's answers call for. It
// only sequences: whether a request is authenticated, when to refresh, what a 401 or a
// refresh response means, what to store and what to tell the app are the core's (`c`,
// src/web/core.rs), natively tested. As JS it is a fraction of what the same awaits cost as
// Rust futures and their executor in the .wasm (issue #15, README Size).

import { authorize, bodyText, idbGet, idbOpen, idbPut, lock, post } from "./plumbing.js";

const g = globalThis;
// `Core::fail` kinds.
const LOCK_TIMEOUT = 0, ABORTED = 1, NOT_REPLAYABLE = 2, NOT_SIGNED_IN = 3, BAD_CREDENTIALS = 4;

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
   */
  constructor(core, s, x, url, out, key, n, ms) {
    // `c.start(…)` and the rest: the core's questions, all through its one export `ask`.
    const c = new Proxy({}, { get: (_, name) => (...args) => core.ask(name, args) });
    Object.assign(this, { c, s, x, url, out, key, n, ms, f: null });
    // Another tab's write (or clearing) of the session in this storage area.
    this.close = x ? s.listen((v) => c.adopt(v)) : () => {};
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
    req = authorize(req, carried, strict);
    // How a replay gets its request: rebuilt, refused (null), a copy made before the first
    // send (the only way to send a request's own body twice), or the same request.
    const copy = b == 0 && mayHaveBody(req) && req.clone();
    const again = b == 1 ? () => new Request(input, init) : b == 2 ? null : copy ? () => copy : () => req;
    return g.fetch(req).then((r) => (r.status == 401 ? this.after(r, req, carried, again, strict) : r));
  }

  /** A 401 to an authenticated request: returned, or replayed (after one refresh per
   * browser, if the core says so) with the current token. */
  async after(r, sent, carried, again, strict) {
    const c = this.c, d = c.on401(carried, sent.url, r.url, r.redirected, !!this.f);
    if (!d) return r;
    if (d == 2) await this.refresh(carried, sent.signal);
    if (!again) throw c.fail(NOT_REPLAYABLE);
    const cur = c.access();
    return cur === undefined ? r : g.fetch(authorize(again(), cur, strict));
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
      const a = await post(this.url, ask[0], ask[1], this.ms).catch(() => {});
      const v = c.answer(a ? a[0] : 0, a && (await bodyText(a[2], c.tooBig(a[1]))));
      // Persist before anyone replays: the hand-over store first (the next lock holder reads
      // it), then the persistent home (its `storage` event wakes the other tabs).
      if (this.x) await this.share(v);
      c.commit();
    } finally {
      release?.();
      c.flush();
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
    const a = await post(u, "application/json", body, this.ms).catch(() => {});
    const v = c.loggedIn(a ? a[0] : 0, a && (await bodyText(a[2], c.tooBig(a[1]))));
    this.share(v);
  }

  /** `logout()`: signs out here, in every tab (under the lock, so no tab's refresh in flight
   * writes the session back), and at the server (best effort). */
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
    if (this.out && body) await post(this.out, "application/json", body, this.ms).catch(() => {});
    c.flush();
  }
}

// The glue imports plumbing.js's exports too: the package ships this module bundled with
// plumbing.js as one file (scripts/package.mjs), which then serves both.
export * from "./plumbing.js";
