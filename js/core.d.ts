// The Rust core as the driver sees it (src/web/core.rs; not part of the public API). The core
// exports one function, `ask(name, args)`; the driver's `core_` is a Proxy that turns
// `core_.start(url, …)` into `ask("start", [url, …])`. This interface declares one method per
// question, so `tsc --checkJs` (make lint) refuses a question the core does not have, and the
// core throws for one at run time. src/web/core.rs's table says when the driver asks each;
// src/seam.rs lists them (a native test checks that this interface declares exactly those).
//
// Numeric answers are named: `Start`, `On401`, `Replayed` and `DriverError` are frozen objects
// in js/driver.js with the values of the Rust enums of the same names (src/seam.rs,
// src/policy.rs; a native test compares them), inlined as constants by the package build.

import type { Start, On401, Replayed, DriverError } from "./driver.js";
import type { AuthError } from "./plumbing.js";

/** One of the values of the named answer `E` (e.g. `Of<typeof On401>`: 0, 1, 2 or 3). */
export type Of<E> = E[keyof E];

/** What a stored session record is: its JSON text (`null`: signed out). */
export type SessionRecord = string;

export interface Core {
  // Queries: answered from the session as it is.

  /** `fetch`: how to send a request to `url` (with its own `Authorization` or not, of
   * `redirect` mode `mode`): `Start.Pass`, `Send` or `RefreshFirst`, plus the flag
   * `Start.Strict` (make it `redirect: "error"` before it carries the token). */
  start(url: string, hasAuthorization: boolean, mode: RequestRedirect): number;
  /** The access token to send; `undefined` signed out. */
  access(): string | undefined;
  /** A 401 to an authenticated call that carried `carried` (sent to `sentUrl`, answered from
   * `answeredUrl`); `replayed`: what this call already did, bits of `Replayed`. */
  on401(carried: string, sentUrl: string, answeredUrl: string, redirected: boolean, refreshInFlight: boolean,
    wwwAuthenticate: string | null | undefined, replayed: number): Of<typeof On401>;
  /** The refresh before sending failed with `code`: send with the old token anyway? */
  sendAnyway(code: string | undefined): boolean;
  /** The session's generation, read as a refresh starts: `sync` fails when this tab signed in
   * or out since. */
  generation(): number;
  /** Should a token endpoint's response declaring this `Content-Length` be left unread? */
  tooBig(contentLength: string | null): boolean;
  /** `login(url, …)`: the URL to POST the credentials to; throws `invalid_config`. */
  login(url: string): string;
  /** The `AuthError` for one of the driver's own failures (throw or reject with it). */
  fail(kind: Of<typeof DriverError>): AuthError;
  /** DPoP: what a proof for a request to `url` names: `[htu, nonce]`. */
  proofFor(url: string): [htu: string, nonce: string | undefined];
  /** DPoP: is a token endpoint's answer a nonce challenge to answer by sending again
   * (once: not when `retried`)? */
  tokenChallenge(status: number, text: string | undefined, retried: boolean): boolean;

  // Inputs: what the driver saw; the session takes it in.

  /** Another tab wrote (a record) or cleared (`null`) the session in the shared storage. */
  adopt(value: SessionRecord | null): void;
  /** Before queueing for the lock: adopts the session another tab left in the hand-over
   * store (`shared`) if that makes the refresh (of the token `failed`) unnecessary; true if so. */
  adoptBeforeLock(shared: SessionRecord | null | undefined, failed: string | undefined): boolean;
  /** Under the lock: takes over what the last holder left (`undefined`: nothing read);
   * throws `not_authenticated` when this tab signed in or out since `generation`. */
  sync(shared: SessionRecord | null | undefined, generation: number): void;
  /** The refresh endpoint's answer (`status` `undefined`: no response; `text` `undefined`:
   * unreadable): the record for the hand-over store (`null` after a rejection); throws for
   * a transient failure. */
  answer(status: number | undefined, text: string | undefined): SessionRecord | null;
  /** The login endpoint's answer: the new session's record; throws `login_failed`. */
  loggedIn(status: number | undefined, text: string | undefined): SessionRecord;
  /** DPoP: a response from `url` carried `DPoP-Nonce: nonce`. */
  took(url: string, nonce: string | null): void;

  // Commands: the session moves on.

  /** Begins the refresh of the token `failed`: the POST to make, `[content type, body]`, and
   * the refresh is under way (`answer` ends it); `null` when it is no longer needed. */
  beginRefresh(failed: string | undefined): [contentType: string, body: string] | null;
  /** The hand-over store holds `answer`'s record: persist it and switch the session (throws
   * `refresh_rejected` after a rejection). */
  commit(): void;
  /** The lock is released: tells the listeners what the refresh or sign-out left. */
  flush(): void;
  /** `logout()` begins: signed out here and in the persistent store; the logout request's
   * body, if there is a refresh token to spend. */
  signOut(): string | undefined;
  /** `logout()` under the lock: clears the persistent store again; the logout body for the
   * refresh token the hand-over store held (the latest). */
  handOver(shared: SessionRecord | null | undefined): string | undefined;
}
