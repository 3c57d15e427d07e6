// @ts-check
// The driver, which is also the npm package's `AuthClient`: carries out the browser effects (fetch, the IndexedDB
// hand-over store, the cross-tab lock, `storage` events, DPoP signatures, sign-in's navigations) in the order the Rust
// core's answers call for (`ask_`: src/web/core.rs's table says which question is asked when; js/core.d.ts types them).
// Every decision is the core's, natively tested, except sign-in's rules: plumbing.js's, tested in Node (README, Size).
// Fields and methods only JS uses end in `_`: the package build shortens them (mangleProps, scripts/mangle-cache.json).

/** @import { Again, Ask, Dpop, Parts, SignInOptions } from "./core" */
import {
  authError, authorize, b64u, bodyOf, bodyText, callbackVerdict, cleanedUrl, discoveryProblem, ErrorCode, fresh, httpUrl,
  idbGet, idbOpen, idbPut, idTokenProblem, invalidOption, jsonOf, lock, ls, mayHaveBody, NO_DISCOVERY, plainCode, post,
  query, random, refusal, REFUSED, RESERVED, returnPath, SIGNIN_TTL, utf8,
} from "./plumbing.js";

/** The core's questions, by number (src/seam.rs; src/web/core.rs's table says when each is asked; core.d.ts types
 * them). */
export const Question = Object.freeze({
  Start: 0, Access: 1, On401: 2, SendAnyway: 3, Generation: 4, TooBig: 5, IdToken: 6, ExpiresAt: 7, ProofFor: 8,
  TokenChallenge: 9, Adopt: 10, AdoptBeforeLock: 11, Sync: 12, Answer: 13, LoggedIn: 14, SetTokens: 15, Took: 16,
  BeginRefresh: 17, Commit: 18, Flush: 19, SignOut: 20, HandOver: 21 });
// The core's named answers: the Rust enums of the same names (src/seam.rs, src/policy.rs; a native test compares them,
// and the package build inlines them).
/** `start`: how to send a request; `Strict` is a flag added to one of the others. */
export const Start = Object.freeze({ Pass: 0, Send: 1, RefreshFirst: 2, Strict: 4 });
/** `on401`: what a 401 calls for. */
export const On401 = Object.freeze({ Return: 0, ReplayWithCurrent: 1, RefreshThenReplay: 2, ReplayWithNonce: 3 });
/** `on401`'s `replayed`: what a call already did (bits). */
export const Replayed = Object.freeze({ Token: 1, Nonce: 2 });

const g = globalThis, now = Date.now, secs = () => Math.floor(now() / 1000);
/** `newClient(options)`: the .wasm's export that reads and checks `new AuthClient(options)`'s options and loads the
 * session: the client's parts. The package's glue hands it over as it loads (scripts/package.mjs appends
 * `connect(newClient)`); the crate's browser tests too (`rotafetch::js::JsAuthClient::new`).
 * @type {(options: unknown) => Parts} */
let newClient = () => { throw new Error("rotafetch: call init() before new AuthClient()"); };
/** @param {typeof newClient} f */
export const connect = (f) => (newClient = f);

/** The npm package's `AuthClient` (typed in src/js.rs's `.d.ts` section) is the driver itself: a JS class, so its
 * methods cost the .wasm no export shim each and the glue no method each (README, Size). Rust's own `AuthClient`
 * (src/web/client.rs) makes one from its parts. */
export class AuthClient {
  /** @param {unknown} options @param {Parts} parts (Rust's `AuthClient` gives them) */
  constructor(options, parts = newClient(options)) {
    const [core, , , , , , , dpop, store, events, crossTab, refreshUrl, logoutUrl, key, lockName, timeoutMs, oidc] = parts;
    /** `ask_(Question.Start, url, …)`: the core's questions, through its one export. @type {Ask} */
    this.ask_ = (question, ...args) => core.ask(question, args);
    this.events_ = events;
    this.store_ = store;
    this.crossTab_ = crossTab;
    this.refreshUrl_ = refreshUrl;
    this.logoutUrl_ = logoutUrl;
    this.key_ = key;
    this.lockName_ = lockName;
    this.timeoutMs_ = timeoutMs;
    this.dpop_ = dpop;
    this.oidc_ = oidc;
    /** The discovery document (checked) and when it was fetched (s). @type {[number, Record<string, any>] | undefined}
     */
    this.meta_ = undefined;
    /** `handleRedirect()`'s promise: one per page. @type {Promise<{returnTo: string} | null> | undefined} */
    this.redirect_ = undefined;
    /** This tab's refresh in flight, which callers join. @type {Promise<void> | null} */
    this.inFlight_ = null;
    /** The hand-over store, opened on first need. @type {Promise<IDBDatabase | null> | undefined} */
    this.db_ = undefined;
    /** DPoP: the key pair, read or made once (forgotten at sign-out). @type {Promise<CryptoKeyPair> | null} */
    this.keyPair_ = null;
    /** DPoP: the database the key pair lives in. @type {Promise<IDBDatabase | null> | undefined} */
    this.keyDb_ = undefined;
    // Another tab's write (or clearing) of the session in this storage area (a sign-out deleted the DPoP key too).
    this.close = crossTab ? store.listen((v) => (this.ask_(Question.Adopt, v), (this.keyPair_ = null))) : () => {};
  }

  /** IndexedDB, opened on first need; `null` without cross-tab or where unavailable. */
  openDb_() { return (this.db_ ??= this.crossTab_ ? idbOpen() : Promise.resolve(null)); }

  /** Writes the hand-over record (`null`: deletes it) and waits for the commit. @param {string | null} v */
  async share(v) { const db = await this.openDb_(); if (db) await idbPut(db, this.key_, v ?? undefined).catch(() => {}); }

  /** The session as the last tab left it: the hand-over record, else the persistent store's (a string, or `null` signed
   * out); `undefined` when nothing could be read. */
  async shared_() {
    const db = await this.openDb_(), v = db && (await idbGet(db, this.key_).catch(() => {}));
    return typeof v == "string" ? v : this.store_.persistent ? this.store_.read() : undefined;
  }

  /** Runs `f` under the browser-wide lock (with cross-tab, or `always`); released, the listeners hear what the core left
   * (`Flush`). `refresh_failed` when another tab held it past the bound, unless `anyway` (`f` then runs without it).
   * @template T @param {() => Promise<T>} f @param {boolean} [always] @param {boolean} [anyway] @returns {Promise<T>} */
  async locked_(f, always, anyway) {
    const release = this.crossTab_ || always ? await lock(this.lockName_, this.timeoutMs_, await this.openDb_()) : () => {};
    if (!release && !anyway) throw authError(ErrorCode.RefreshFailed, "timed out waiting for another tab's refresh");
    try {
      return await f();
    } finally {
      release?.();
      this.ask_(Question.Flush);
    }
  }

  /** `fetch(input, init)` with authentication. @param {RequestInfo | URL} input @param {RequestInit | undefined} init
   * @returns {Promise<Response>} */
  fetch(input, init) {
    try {
      const b = bodyOf(init), req = new Request(input, init);
      const how = this.ask_(Question.Start, req.url, req.headers.has("authorization"), req.redirect);
      const strict = !!(how & Start.Strict);
      return how == Start.Pass ? g.fetch(req)
        : how & Start.RefreshFirst ? this.refreshFirst_(req, input, init, b, strict)
        : this.send_(req, input, init, b, strict);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** `Start.RefreshFirst`: the refresh before sending; a transient failure (the refresh token kept) while the old token
   * is still good sends it anyway (the core says when). @param {Request} req @param {RequestInfo | URL} input
   * @param {RequestInit | undefined} init @param {0 | 1 | 2} b @param {boolean} strict */
  async refreshFirst_(req, input, init, b, strict) {
    try {
      await this.refresh_(this.ask_(Question.Access), req.signal);
    } catch (e) {
      if (!this.ask_(Question.SendAnyway, /** @type {any} */ (e)?.code == "refresh_failed")) throw e;
    }
    return this.send_(req, input, init, b, strict);
  }

  /** `Start.Send`: sends `req` with the access token (if any), made `redirect: "error"` first when `strict`; a 401 goes
   * to `on401_`. @param {Request} req @param {RequestInfo | URL} input @param {RequestInit | undefined} init
   * @param {0 | 1 | 2} b @param {boolean} strict @returns {Promise<Response>} */
  send_(req, input, init, b, strict) {
    const carried = this.ask_(Question.Access);
    if (carried === undefined) return g.fetch(req);
    req = authorize(req, carried, strict, this.dpop_);
    // How a replay gets its request: rebuilt, refused (null), a copy of the copy made before the first send (the only
    // way to send a request's own body again, and again), or the same request.
    const copy = b == 0 && mayHaveBody(req) && req.clone();
    /** @type {Again} */
    const again = b == 1 ? () => new Request(input, init) : b == 2 ? null : copy ? () => copy.clone() : () => req;
    return this.dispatch_(req, carried).then((r) => (r.status == 401 ? this.on401_(r, req, carried, again, strict) : r));
  }

  /** `fetch(req)`; with DPoP, a proof for it (bound to `access`) first, and the nonce its response gives kept.
   * @param {Request} req @param {string} access @returns {Promise<Response>} */
  dispatch_(req, access) {
    if (!this.dpop_) return g.fetch(req);
    return this.proof_(req.method, req.url, access)
      .then((p) => (req.headers.set("DPoP", p), g.fetch(req)))
      .then((r) => (this.ask_(Question.Took, req.url, r.headers.get("dpop-nonce")), r));
  }

  /** A 401 to an authenticated request: returned, or replayed (after one refresh per browser, if the core says so) with
   * the current token; with DPoP, a nonce challenge replayed with the nonce. `replayed` (bits of `Replayed`): what the
   * call already did, each once; the replay's own 401 goes to the core again. @param {Response} r @param {Request} sent
   * @param {string} carried @param {Again} again @param {boolean} strict @param {number} [replayed]
   * @returns {Promise<Response>} */
  async on401_(r, sent, carried, again, strict, replayed = 0) {
    const ask = this.ask_, www = this.dpop_ ? r.headers.get("www-authenticate") : undefined;
    const d = ask(Question.On401, carried, sent.url, r.url, r.redirected, !!this.inFlight_, www, replayed);
    if (d == On401.Return) return r;
    if (d == On401.RefreshThenReplay) await this.refresh_(carried, sent.signal);
    if (!again) throw authError(ErrorCode.BodyNotReplayable, "a 401 needs a replay, but the request's body is a stream");
    const cur = ask(Question.Access);
    if (cur === undefined) return r;
    const req = authorize(again(), cur, strict, this.dpop_), res = await this.dispatch_(req, cur);
    if (res.status != 401) return res;
    return this.on401_(res, req, cur, again, strict, replayed | (d == On401.ReplayWithNonce ? Replayed.Nonce : Replayed.Token));
  }

  /** `refresh()`: one serialized refresh, on demand. */
  refresh() {
    const a = this.ask_(Question.Access);
    return a === undefined ? Promise.reject(authError(ErrorCode.NotAuthenticated, "not signed in")) : this.refresh_(a);
  }

  /** Joins this tab's refresh in flight or starts one (`runRefresh_` makes it one per browser); rejects with its error,
   * or `aborted` when `signal` fires first. @param {string | undefined} failed the token the refresh is to replace
   * @param {AbortSignal} [signal] @returns {Promise<void>} */
  refresh_(failed, signal) {
    if (!this.inFlight_) {
      this.inFlight_ = this.runRefresh_(failed).finally(() => (this.inFlight_ = null));
      this.inFlight_.catch(() => {});
    }
    const p = this.inFlight_, aborted = () => authError(ErrorCode.Aborted, "the request was aborted");
    if (!signal) return p;
    if (signal.aborted) return Promise.reject(aborted());
    return Promise.race([p, new Promise((_, no) => signal.addEventListener("abort", () => no(aborted()), { once: true }))]);
  }

  /** The refresh: takes the cross-tab lock, refreshes unless another tab already did, releases, then tells the
   * listeners (src/web/core.rs's table, "A refresh"). @param {string | undefined} failed */
  async runRefresh_(failed) {
    // The session this refresh is for: if this tab signs in or out while it waits for the lock (a `logout()` queued
    // behind it), `sync` ends it instead of taking the hand-over record back.
    const ask = this.ask_, generation = ask(Question.Generation);
    // With an issuer and no refreshUrl: its discovered token endpoint (fetched before the lock).
    const url = this.refreshUrl_ || (await this.discover_().catch(() => {
      throw authError(ErrorCode.RefreshFailed, NO_DISCOVERY);
    })).token_endpoint;
    if (this.crossTab_ && ask(Question.AdoptBeforeLock, await this.shared_(), failed)) return;
    try {
      await this.locked_(async () => {
        if (this.crossTab_) ask(Question.Sync, await this.shared_(), generation);
        const request = ask(Question.BeginRefresh, failed);
        if (!request) return;
        const a = await this.post_(url, request[1], request[0]), v = ask(Question.Answer, a?.[0], a?.[1]);
        // Persist before anyone replays: the hand-over store first (the next lock holder reads it), then the persistent
        // home (its `storage` event wakes the other tabs).
        if (this.crossTab_) await this.share(v);
        ask(Question.Commit);
      });
    } catch (e) {
      // The session ended (rejected, or signed out meanwhile): so does its DPoP key.
      if (this.dpop_ && ask(Question.Access) === undefined) await this.forgetKey_();
      throw e;
    }
  }

  /** POSTs to a token endpoint (`body`: an object for an RFC 6749 form of its defined entries, else text of `type`):
   * `[status, body text]`, or `undefined` (a network error, a timeout, no DPoP key). With DPoP, with a proof, and a
   * nonce challenge answered once. @param {string} url @param {string | Record<string, unknown>} body
   * @param {string} [type] @returns {Promise<[number, string | undefined] | undefined>} */
  async post_(url, body, type = "application/json") {
    const ask = this.ask_, form = typeof body != "string";
    for (let retried = false; ; retried = true) {
      let a;
      try {
        a = await post(url, form ? "application/x-www-form-urlencoded" : type, form ? query(undefined, body) : body,
          this.timeoutMs_, this.dpop_ && (await this.proof_("POST", url)));
      } catch {
        return;
      }
      const text = await bodyText(a[2], ask(Question.TooBig, a[1]));
      if (!this.dpop_) return [a[0], text];
      ask(Question.Took, url, a[2].headers.get("dpop-nonce"));
      if (!ask(Question.TokenChallenge, a[0], text, retried)) return [a[0], text];
    }
  }

  /** `setTokens(tokens)`: a session from tokens obtained elsewhere (the core reads and keeps them), handed to the other
   * tabs in the background. @param {unknown} tokens */
  setTokens(tokens) { this.share(this.ask_(Question.SetTokens, tokens)); }

  /** `authenticated`: true while tokens are held. */
  get authenticated() { return this.ask_(Question.Access) !== undefined; }

  /** `expiresAt`: the access token's expiry (ms since the epoch), if known. */
  get expiresAt() { return this.ask_(Question.ExpiresAt); }

  /** `on(event, listener)`: returns the function that removes it. @param {string} event
   * @param {(detail: object, type: string) => void} listener */
  on(event, listener) {
    if (!["signin", "refresh", "signout"].includes(event)) throw invalidOption("event", 'must be "signin", "refresh" or "signout"');
    return this.events_.on(event, listener);
  }

  /** `free()`: stops listening to the other tabs (the session's memory goes with the core, when nothing holds it). */
  free() { this.close(); }

  [Symbol.dispose]() { this.free(); }

  /** `login(url, credentials)`: a first-party login endpoint's token response starts the session. @param {unknown} url
   * @param {unknown} credentials */
  async login(url, credentials) {
    const u = httpUrl(url);
    let body;
    try {
      body = JSON.stringify(credentials);
    } catch { /* below */ }
    if (!u) throw invalidOption("url", "must be an http(s) URL");
    if (typeof body != "string") throw invalidOption("credentials", "must be JSON-serialisable");
    const a = await this.post_(u, body);
    this.share(this.ask_(Question.LoggedIn, a?.[0], a?.[1], false));
    this.ask_(Question.Flush);
  }

  /** `logout(options)`: signs out here, in every tab (under the lock, so no tab's refresh in flight writes the session
   * back), and at the server (best effort: `logoutUrl`, else the provider's revocation endpoint, RFC 7009 §2.1; with
   * DPoP, with a proof: a bound session's revocation needs one), then forgets the DPoP key. With `endSession`, then
   * goes to the provider's end-session endpoint (RP-Initiated Logout §2: `client_id`, the session's ID token as
   * `id_token_hint`, `returnTo` as `post_logout_redirect_uri`). @param {{endSession?: boolean, returnTo?: string}} [o]
   */
  async logout(o) {
    const ask = this.ask_, hint = ask(Question.IdToken), clientId = this.oidc_?.[1];
    let rt = ask(Question.SignOut);
    if (this.crossTab_) {
      await this.locked_(async () => {
        const db = await this.openDb_();
        rt = ask(Question.HandOver, db && (await idbGet(db, this.key_).catch(() => {}))) ?? rt;
        if (db) await idbPut(db, this.key_).catch(() => {});
      }, false, true);
    }
    const meta = this.oidc_ && (await this.discover_().catch(() => {}));
    if (rt && this.logoutUrl_) await this.post_(this.logoutUrl_, JSON.stringify({ refresh_token: rt }));
    else if (rt && meta?.revocation_endpoint) {
      await this.post_(meta.revocation_endpoint, { token: rt, token_type_hint: "refresh_token", client_id: clientId });
    }
    if (this.dpop_) await this.forgetKey_();
    ask(Question.Flush);
    if (o?.endSession && meta?.end_session_endpoint) {
      location.assign(query(meta.end_session_endpoint, { client_id: clientId, id_token_hint: hint, post_logout_redirect_uri: o.returnTo }));
    }
  }

  // Sign-in by redirect: PKCE, PAR, DPoP-bound codes, the callback claimed under the lock. The rules are plumbing.js's
  // (callbackVerdict, idTokenProblem, discoveryProblem, …); the core makes the session of the token response
  // (`LoggedIn`), as for `login`.

  /** The provider's metadata: in memory, else in storage (`<storageKey>:oidc`) while fresh (an hour), else fetched and
   * checked (a failed fetch keeps a stale one). Throws `invalid_config` without an issuer or for a document of another
   * issuer, `signin_failed` when none could be had. @returns {Promise<Record<string, any>>} */
  async discover_() {
    if (!this.oidc_) throw invalidOption("issuer", "is required to sign in by redirect");
    const [issuer] = this.oidc_, k = this.key_ + ":oidc", at = secs(), stored = ls(k);
    this.meta_ ??= stored && !discoveryProblem(stored[1], issuer) ? stored : undefined;
    if (fresh(this.meta_?.[0], at)) return /** @type {any} */ (this.meta_)[1];
    let doc, problem;
    try {
      const r = await g.fetch(issuer.replace(/\/$/, "") + "/.well-known/openid-configuration", { signal: AbortSignal.timeout(this.timeoutMs_) });
      if (r.ok) doc = await r.json();
    } catch { /* not fetched */ }
    if (doc && !(problem = discoveryProblem(doc, issuer))) ls(k, (this.meta_ = [at, doc]));
    else if (!this.meta_) {
      throw problem ? authError(ErrorCode.InvalidConfig, "the provider's discovery document " + problem) : authError(ErrorCode.SigninFailed, NO_DISCOVERY);
    }
    return this.meta_[1];
  }

  /** A sign-in's transaction (stored under its state in localStorage, which the redirect and a new tab can read;
   * expired ones removed) and its authorization request, pushed first with PAR (RFC 9126; with DPoP, with a proof: that
   * binds the code to the key, as `dpop_jkt` does, RFC 9449 §10): `[URL to go to, state]`.
   * @param {SignInOptions | undefined} o @param {boolean} popup @returns {Promise<[string, string]>} */
  async authorize_(o, popup) {
    const meta = await this.discover_(), [, clientId, redirectUri, scope] = /** @type {string[]} */ (this.oidc_);
    const params = o?.params ?? {}, r = returnPath(o?.returnTo ?? location.href, location.href);
    if (r === undefined) throw invalidOption("returnTo", "must be on this page's origin");
    const own = Object.keys(params).find((k) => RESERVED.includes(k) || typeof params[k] != "string");
    if (own) throw invalidOption("params", `may only set other parameters than rotafetch's own, to strings (\`${own}\`)`);
    const at = secs(), prefix = this.key_ + ":signin:";
    try {
      for (const k of Object.keys(localStorage)) if (k.startsWith(prefix) && !(at < (ls(k)?.t ?? 0) + SIGNIN_TTL)) ls(k, null);
    } catch { /* storage off */ }
    const state = random(16), v = random(32), nonce = scope.split(" ").includes("openid") ? random(16) : undefined;
    ls(prefix + state, { t: at, v, n: nonce, r, p: popup });
    /** @type {Record<string, string | undefined>} */
    let q = {
      response_type: "code", client_id: clientId, redirect_uri: redirectUri, scope, state,
      code_challenge: b64u(await crypto.subtle.digest("SHA-256", utf8(v))), code_challenge_method: "S256", nonce,
      dpop_jkt: this.dpop_ && (await this.dpop_.thumbprint_(await this.loadKeyPair_())), ...params,
    };
    const par = meta.pushed_authorization_request_endpoint;
    if (par) {
      const a = await this.post_(par, q), uri = a && a[0] < 300 && jsonOf(a[1])?.request_uri;
      if (typeof uri != "string") throw refusal(a, "the provider refused the pushed request");
      q = { client_id: clientId, request_uri: uri };
    }
    return [query(meta.authorization_endpoint, q), state];
  }

  /** `signIn(options)`: to the provider. @param {SignInOptions} [o] */
  async signIn(o) { location.assign((await this.authorize_(o, false))[0]); }

  /** `handleRedirect()`: completes the sign-in whose callback this page is; one promise per page (a second call, e.g.
   * React StrictMode's, gets the same). */
  handleRedirect() { return (this.redirect_ ??= this.complete_(location.href)); }

  /** The callback at `href`: `{returnTo}`, or `null` when `href` is no callback. In a popup, the callback page hands
   * `href` to the window that opened it (there, `expected` is the popup's state) and closes. The address bar loses the
   * response's parameters, except after a transient failure (calling again retries). @param {string} href
   * @param {string} [expected] @returns {Promise<{returnTo: string} | null>} */
  async complete_(href, expected) {
    const q = new URL(href).searchParams, k = this.key_ + ":signin:" + q.get("state"), tx = ls(k);
    if (!q.has("state") && !q.has("code") && !q.has("error")) return null;
    if (!expected && tx?.p && !tx.d) {
      const message = { rotafetch: href };
      opener ? opener.postMessage(message, location.origin) : new BroadcastChannel(this.lockName_).postMessage(message);
      close();
      return null;
    }
    let transient;
    try {
      const meta = await this.discover_();
      return { returnTo: await this.locked_(() => this.exchange_(q, k, meta, expected), true) };
    } catch (e) {
      transient = /** @type {any} */ (e)?.code == "signin_failed";
      throw e;
    } finally {
      if (!expected && !transient) history.replaceState(history.state, "", cleanedUrl(href));
    }
  }

  /** Under the browser-wide lock (refreshes take it too): the callback `q`, whose transaction is stored under `k`,
   * decided; its code exchanged once (the transaction is marked done first: a second callback, a reload or Back
   * exchanges nothing; a transient failure gives it back); the ID token's claims checked; the session kept and handed
   * to every tab. The return path. @param {URLSearchParams} q @param {string} k @param {Record<string, any>} meta
   * @param {string} [expected] */
  async exchange_(q, k, meta, expected) {
    const ask = this.ask_, [issuer, clientId, redirectUri] = /** @type {string[]} */ (this.oidc_), tx = ls(k);
    const verdict = callbackVerdict(q, tx, issuer, meta.authorization_response_iss_parameter_supported === true, secs(), expected);
    if (verdict == "done" && ask(Question.Access) !== undefined) return tx.r;
    if (verdict != "exchange") {
      if (tx && !tx.d) ls(k, null);
      const code = verdict == "done" ? ErrorCode.NoTransaction : verdict;
      throw authError(code, REFUSED[code], code == ErrorCode.ProviderError ? plainCode(q.get("error")) : undefined);
    }
    ls(k, { ...tx, d: 1 });
    const a = await this.post_(meta.token_endpoint,
      { grant_type: "authorization_code", code: q.get("code"), redirect_uri: redirectUri, code_verifier: tx.v, client_id: clientId });
    const claim = a && a[0] < 300 && tx.n && idTokenProblem(jsonOf(a[1])?.id_token, issuer, clientId, tx.n, secs());
    if (claim) throw authError(ErrorCode.SigninRejected, `the ID token's ${claim} is wrong`);
    let record;
    try {
      record = ask(Question.LoggedIn, a?.[0], a?.[1], true);
    } catch (e) {
      // Transient: the code may not be spent; the transaction is given back (retry).
      if (/** @type {any} */ (e)?.code == "signin_failed") ls(k, tx);
      throw e;
    }
    if (this.crossTab_) await this.share(record);
    return tx.r;
  }

  /** `signInPopup(options)`: the window opens now, in the caller's click handler (else popup blockers refuse it:
   * `popup_blocked`); the sign-in completes here when the popup's callback page answers, by a message from that window
   * and this origin, or on the BroadcastChannel when it has no `opener`. Closed first: `popup_closed`.
   * @param {SignInOptions} [o] */
  signInPopup(o) {
    const w = open("", "rotafetch", "popup,width=520,height=680");
    return w ? this.popup_(w, o) : Promise.reject(authError(ErrorCode.PopupBlocked, "the popup was blocked"));
  }

  /** @param {Window} w @param {SignInOptions} [o] @returns {Promise<{returnTo: string}>} */
  async popup_(w, o) {
    const channel = new BroadcastChannel(this.lockName_);
    let onMessage = /** @type {(e: MessageEvent) => void} */ (() => {}), timer = /** @type {any} */ (0);
    try {
      const [url, state] = await this.authorize_(o, true);
      const href = await new Promise((resolve, reject) => {
        /** @param {MessageEvent} e */
        const take = (e) => typeof e.data?.rotafetch == "string" && resolve(e.data.rotafetch);
        onMessage = (e) => e.origin == location.origin && e.source == w && take(e);
        addEventListener("message", onMessage);
        channel.onmessage = take;
        w.location.href = url;
        let closedAt = 0;
        // A message posted just before the popup closed may still be on its way: a second's grace.
        timer = setInterval(() => w.closed && now() - (closedAt ||= now()) > 1000
          && reject(authError(ErrorCode.PopupClosed, "the popup was closed before the sign-in completed")), 200);
      });
      return /** @type {{returnTo: string}} */ (await this.complete_(href, state));
    } finally {
      clearInterval(timer);
      removeEventListener("message", onMessage);
      channel.close();
      w.close();
    }
  }

  // DPoP: the key (read or made once, forgotten at sign-out) and the proofs.

  /** The key pair: IndexedDB's, else a new one stored first-writer-wins (plumbing.js's dpopKey). */
  loadKeyPair_() {
    const dpop = /** @type {Dpop} */ (this.dpop_);
    return (this.keyPair_ ??= (this.keyDb_ ??= idbOpen()).then((db) => dpop.loadKey_(/** @type {IDBDatabase} */ (db), this.key_))
      .catch(() => {
        this.keyPair_ = null;
        throw authError(ErrorCode.RefreshFailed, "no DPoP key could be read or made (IndexedDB or crypto.subtle failed)");
      }));
  }

  /** A proof for `method` `url` (with `ath` for `access` when given): what it names (htu, the origin's nonce) is the
   * core's. @param {string} method @param {string} url @param {string} [access] */
  async proof_(method, url, access) {
    const dpop = /** @type {Dpop} */ (this.dpop_), [htu, nonce] = this.ask_(Question.ProofFor, url);
    return dpop.sign_(await this.loadKeyPair_(), method, htu, nonce, access);
  }

  /** Deletes the key here and in IndexedDB: the next session gets a new one. */
  async forgetKey_() {
    this.keyPair_ = null;
    const db = await (this.keyDb_ ??= idbOpen());
    if (db) await /** @type {Dpop} */ (this.dpop_).forget_(db, this.key_);
  }

  /** `dpopProof(method, url)`: a proof for a request of the app's own. @param {unknown} method @param {unknown} url */
  async dpopProof(method, url) {
    const href = httpUrl(url);
    if (!this.dpop_) throw invalidOption("dpop", "is off: no proof to make");
    if (!href) throw invalidOption("url", "must be an http(s) URL");
    return this.proof_(String(method).toUpperCase(), href);
  }
}

// The name survives minification (as AuthError's does). The glue imports plumbing.js's exports from here too: the
// package ships this module bundled with plumbing.js as one file (scripts/package.mjs).
Object.defineProperty(AuthClient, "name", { value: "AuthClient" });
export * from "./plumbing.js";
