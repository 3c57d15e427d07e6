// The Rust core as the driver sees it (src/web/core.rs; not part of the public API). The core
// exports one function, `ask(question, args)`, the question by number: `Question` (js/driver.js,
// src/seam.rs; the package build inlines its names as numbers). The driver asks through `ask_`
// (an `Ask`): `ask_(Question.Start, url, …)`. `Questions` declares each question's arguments
// and answer, so `tsc --checkJs` (make lint) refuses a question the core does not have or a
// wrong argument, and the core throws for a number that is no question. src/web/core.rs's
// table says when the driver asks each; a native test (src/seam.rs) checks that this
// interface, the driver's `Question` and the core's match name the same questions.
//
// Numeric answers are named: `Start`, `On401` and `Replayed` are frozen objects in js/driver.js
// (`ErrorCode` in js/plumbing.js) with the values of the Rust enums of the same names
// (src/seam.rs, src/policy.rs, src/error.rs; a native test compares them), inlined as
// constants by the package build.

import type { Start, On401, Replayed } from "./driver.js";
import type { dpop, Events, Store } from "./plumbing.js";
import { Question } from "./driver.js";

/** One of the values of the named answer `E` (e.g. `Of<typeof On401>`: 0, 1, 2 or 3). */
export type Of<E> = E[keyof E];

/** What a client is made of (`newClient(options)`, plumbing.js's `readOptions`): the Rust core; for the core, how a
 * refresh is written (0 JSON, 1 RFC 6749 §6 form), the client id, the origins that may get the access token, the refresh
 * leeway and the least interval between refreshes (ms), `redirect: "error"` or not, DPoP's functions, the session's
 * persistent home and its listeners; for the driver, one refresh per browser or not, the refresh and logout URLs (`""`:
 * the discovered token endpoint), the storage key, the lock's name, the bound on a refresh and on waiting for the
 * lock, sign-in's options. */
export type Parts = [core: Core, format: 0 | 1, clientId: string | undefined, origins: string[], leewayMs: number,
  minIntervalMs: number, strict: boolean, dpop: Dpop | undefined, store: Store, events: Events, crossTab: boolean,
  refreshUrl: string, logoutUrl: string | undefined, key: string, lockName: string, timeoutMs: number,
  oidc: [issuer: string, clientId: string, redirectUri: string, scope: string] | undefined];

/** The DPoP key and proof functions (plumbing.js's `dpop()`). */
export type Dpop = ReturnType<typeof dpop>;

/** The options of `signIn` and `signInPopup` (the public ones: src/js.rs's `.d.ts`). */
export type SignInOptions = { returnTo?: string; params?: Record<string, string> };

/** A replay's request: rebuilt, a copy of a copy, or the request itself; `null`: refused. */
export type Again = (() => Request) | null;

/** What a stored session record is: its JSON text (`null`: signed out). */
export type SessionRecord = string;

/** The core's one export. */
export interface Core {
  ask(question: number, args: unknown[]): any;
}

/** How the driver asks: the question, then its arguments; its answer, typed. */
export type Ask = <Q extends keyof Questions>(question: Q, ...args: Parameters<Questions[Q]>) => ReturnType<Questions[Q]>;

export interface Questions {
  // Queries: answered from the session as it is.

  /** `fetch`: how to send a request to `url` (with its own `Authorization` or not, of
   * `redirect` mode `mode`): `Start.Pass`, `Send` or `RefreshFirst`, plus the flag
   * `Start.Strict` (make it `redirect: "error"` before it carries the token). */
  [Question.Start](url: string, hasAuthorization: boolean, mode: RequestRedirect): number;
  /** The access token to send; `undefined` signed out. */
  [Question.Access](): string | undefined;
  /** A 401 to an authenticated call that carried `carried` (sent to `sentUrl`, answered from
   * `answeredUrl`); `replayed`: what this call already did, bits of `Replayed`. */
  [Question.On401](carried: string, sentUrl: string, answeredUrl: string, redirected: boolean, refreshInFlight: boolean,
    wwwAuthenticate: string | null | undefined, replayed: number): Of<typeof On401>;
  /** The refresh before sending failed, `transient`ly (`refresh_failed`: the refresh token
   * kept) or not: send with the old token anyway? */
  [Question.SendAnyway](transient: boolean): boolean;
  /** The session's generation, read as a refresh starts: `sync` fails when this tab signed in
   * or out since. */
  [Question.Generation](): number;
  /** Should a token endpoint's response declaring this `Content-Length` be left unread? */
  [Question.TooBig](contentLength: string | null): boolean;
  /** The session's ID token (a sign-in by redirect's): the end-session request's hint. */
  [Question.IdToken](): string | undefined;
  /** The access token's expiry (ms since the epoch), `undefined` unknown or signed out. */
  [Question.ExpiresAt](): number | undefined;
  /** DPoP: what a proof for a request to `url` names: `[htu, nonce]`. */
  [Question.ProofFor](url: string): [htu: string, nonce: string | undefined];
  /** DPoP: is a token endpoint's answer a nonce challenge to answer by sending again
   * (once: not when `retried`)? */
  [Question.TokenChallenge](status: number, text: string | undefined, retried: boolean): boolean;

  // Inputs: what the driver saw; the session takes it in.

  /** Another tab wrote (a record) or cleared (`null`) the session in the shared storage. */
  [Question.Adopt](value: SessionRecord | null): void;
  /** Before queueing for the lock: adopts the session another tab left in the hand-over
   * store (`shared`) if that makes the refresh (of the token `failed`) unnecessary; true if so. */
  [Question.AdoptBeforeLock](shared: SessionRecord | null | undefined, failed: string | undefined): boolean;
  /** Under the lock: takes over what the last holder left (`undefined`: nothing read);
   * throws `not_authenticated` when this tab signed in or out since `generation`. */
  [Question.Sync](shared: SessionRecord | null | undefined, generation: number): void;
  /** The refresh endpoint's answer (`status` `undefined`: no response; `text` `undefined`:
   * unreadable): the record for the hand-over store (`null` after a rejection); throws for
   * a transient failure. */
  [Question.Answer](status: number | undefined, text: string | undefined): SessionRecord | null;
  /** The login endpoint's answer, or (`signin`) the token endpoint's to a sign-in's code
   * exchange: the new session's record (the `signin` event waits for `flush`); throws
   * `login_failed`, or for a sign-in `signin_failed` (transient) / `signin_rejected`. */
  [Question.LoggedIn](status: number | undefined, text: string | undefined, signin: boolean): SessionRecord;
  /** `setTokens(tokens)`: tokens obtained elsewhere (RFC 6749 names or camelCase) start a
   * session; its record, for the hand-over store. Throws `invalid_config`. */
  [Question.SetTokens](tokens: unknown): SessionRecord;
  /** DPoP: a response from `url` carried `DPoP-Nonce: nonce`. */
  [Question.Took](url: string, nonce: string | null): void;

  // Commands: the session moves on.

  /** Begins the refresh of the token `failed`: the POST to make, `[content type, body]`, and
   * the refresh is under way (`answer` ends it); `null` when it is no longer needed. */
  [Question.BeginRefresh](failed: string | undefined): [contentType: string, body: string] | null;
  /** The hand-over store holds `answer`'s record: persist it and switch the session (throws
   * `refresh_rejected` after a rejection). */
  [Question.Commit](): void;
  /** The lock is released: tells the listeners what the refresh or sign-out left. */
  [Question.Flush](): void;
  /** `logout()` begins: signed out here and in the persistent store; the refresh token to
   * spend at the logout or revocation endpoint, if any. */
  [Question.SignOut](): string | undefined;
  /** `logout()` under the lock: clears the persistent store again; the refresh token the
   * hand-over store held (the latest). */
  [Question.HandOver](shared: SessionRecord | null | undefined): string | undefined;
}
