// Load helpers for the server benches (bench/abuse.mjs, bench/server.mjs): an undici pool per
// client address, percentiles, the server's resident memory, and the "legitimate users" whose
// latency the abuse figures compare with and without an attack. Loopback only; every loop is
// bounded by a deadline and every request by undici's header/body timeouts.
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { setTimeout as delay } from "node:timers/promises";
import { Pool } from "undici";
import { DpopKey } from "./dpop.mjs";
import { latency, parseMetrics, round, tally } from "./stats.mjs";

export * from "./stats.mjs";

/** Every request gives up after this long without headers or body bytes. */
export const REQUEST_TIMEOUT_MS = 15_000;

/**
 * An HTTP/1.1 keep-alive pool to `url` (a loopback URL) from the loopback address `from`
 * (127.0.0.1 for the legitimate users, another 127.x address for an attacker, so that the
 * server can tell them apart as it would two hosts).
 */
export function pool(url, { from = "127.0.0.1", connections = 16 } = {}) {
  if (!/^http:\/\/127\.\d+\.\d+\.\d+:\d+$/.test(url)) throw new Error(`not a loopback URL: ${url}`);
  // Idle connections are dropped after 4 s, before the hardened server cuts them (10 s): a
  // request sent on a connection the server is closing fails, and POSTs are not retried.
  return new Pool(url, { connections, localAddress: from, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS,
    keepAliveTimeout: 4_000, keepAliveMaxTimeout: 4_000 });
}

/** One request; the body read to the end. Returns { status, headers, text, ms }. */
export async function call(p, method, path, { headers = {}, body, signal } = {}) {
  const t0 = performance.now();
  const r = await p.request({ method, path, headers, body, signal });
  const text = await r.body.text();
  return { status: r.statusCode, headers: r.headers, text, ms: performance.now() - t0 };
}

export const json = (o) => ({ headers: { "content-type": "application/json" }, body: JSON.stringify(o) });
export const form = (o) => ({ headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(o).toString() });

// ---------------------------------------------------------------- the server process

/** Resident memory of process `pid` in MiB (VmRSS), or NaN once it is gone. */
export function rssMiB(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Samples `fn()` every `everyMs` until stop(); stop() returns the samples [{ t, v }]. */
export function sampler(fn, everyMs = 500) {
  const samples = [];
  const t0 = performance.now();
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try {
      samples.push({ t: round((performance.now() - t0) / 1000, 1), v: await fn() });
    } catch {
      // a sample that could not be taken is left out
    } finally {
      busy = false;
    }
  };
  tick();
  const timer = setInterval(tick, everyMs);
  return { stop: () => { clearInterval(timer); return samples; } };
}

/** Every series of the server's /metrics, by name with labels. */
export async function metrics(p) {
  return parseMetrics((await call(p, "GET", "/metrics")).text);
}

// ---------------------------------------------------------------- legitimate users

export const DEMO = { username: "demo", password: "demo" };

/**
 * Signs in `apiUsers` DPoP users (each with its own ES256 key, so each session is bound) and
 * `refreshUsers` bearer users (who will rotate their refresh tokens), one after another.
 */
export async function signIn(p, url, { apiUsers, refreshUsers, credentials = DEMO }) {
  const users = [];
  for (let i = 0; i < apiUsers + refreshUsers; i++) {
    const key = i < apiUsers ? new DpopKey("ES256") : null;
    const headers = { "content-type": "application/json" };
    if (key) headers.dpop = key.proof("POST", `${url}/auth/login`);
    const r = await call(p, "POST", "/auth/login", { headers, body: JSON.stringify(credentials) });
    if (r.status !== 200) throw new Error(`sign-in of a legitimate user: ${r.status} ${r.text}`);
    const t = JSON.parse(r.text);
    users.push({ key, access: t.access_token, refresh: t.refresh_token });
  }
  return { api: users.filter((u) => u.key), refresh: users.filter((u) => !u.key) };
}

/** One DPoP-bound GET /api/me (the proof is signed before the clock starts). */
export async function apiCall(p, url, u) {
  const proof = u.key.proof("GET", `${url}/api/me`, { access: u.access });
  return call(p, "GET", "/api/me", { headers: { authorization: `DPoP ${u.access}`, dpop: proof } });
}

/** One rotation of a bearer user's refresh token. */
export async function refreshCall(p, u) {
  const r = await call(p, "POST", "/auth/refresh", json({ refresh_token: u.refresh }));
  if (r.status === 200) u.refresh = JSON.parse(r.text).refresh_token;
  return r;
}

/**
 * The legitimate load: every API user calls GET /api/me `apiRate` times a second and every
 * refresh user rotates `refreshRate` times a second (paced, not flat out: they stand for
 * users, not for a second attacker), for `seconds`. Returns each kind's latencies and
 * statuses; a failed call (network error) counts as status "error".
 */
export async function legitLoad(p, url, users, { seconds, apiRate = 25, refreshRate = 5 }) {
  const out = { api: { ms: [], status: [] }, refresh: { ms: [], status: [] } };
  const deadline = performance.now() + seconds * 1000;
  const paced = async (kind, rate, once) => {
    const period = 1000 / rate;
    const start = performance.now() + Math.random() * period;
    for (let i = 0; ; i++) {
      const due = start + i * period;
      if (due >= deadline) break;
      const wait = due - performance.now();
      if (wait > 0) await delay(wait);
      try {
        const r = await once();
        out[kind].ms.push(r.ms);
        out[kind].status.push(r.status);
      } catch {
        out[kind].status.push("error");
      }
    }
  };
  await Promise.all([
    ...users.api.map((u) => paced("api", apiRate, () => apiCall(p, url, u))),
    ...users.refresh.map((u) => paced("refresh", refreshRate, () => refreshCall(p, u))),
  ]);
  const sum = (k) => ({ ...latency(out[k].ms), status: tally(out[k].status) });
  return { api: sum("api"), refresh: sum("refresh"), raw: out };
}

/** Several `legitLoad` results as one (their calls pooled), without the raw calls. */
export function pooled(results) {
  const kind = (k) => {
    const ms = results.flatMap((r) => r.raw[k].ms);
    return { ...latency(ms), status: tally(results.flatMap((r) => r.raw[k].status)) };
  };
  return { api: kind("api"), refresh: kind("refresh") };
}
