// An attacker for bench/abuse.mjs, run in processes of its own (bench/lib/apart.mjs: the idle
// CPU class) so that its CPU work (a fresh key per proof) never stalls the process that times
// the legitimate users, nor holds a core the server or the users want: on this 2-core machine
// the attacker shares the cores with the server, and a real attacker's key generation would not
// take the server's CPU; so it sends as fast as the CPU the server and the users leave it
// allows. `readyFlood(options)` starts the processes; its `go()` floods and adds up their counts.
// Loopback only; each process stops sending at its deadline and is killed if it has not
// reported 20 s after it.
import { randomBytes } from "node:crypto";
import { setMaxListeners } from "node:events";
import { performance } from "node:perf_hooks";
import { apart } from "./apart.mjs";
import { call, pool } from "./load.mjs";
import { freshProof } from "./dpop.mjs";

/**
 * kind "jti": unauthenticated requests each with a DPoP proof by a key made for it alone
 *   (half `POST /auth/logout {"refresh_token":""}`, half `POST /auth/refresh` with a random
 *   token): proofs that check out while no credential does. EdDSA by default: the cheapest
 *   fresh key and signature for the attacker (about half of ES256's cost here).
 * kind "password": `POST /auth/login` for `username` with a wrong password each time.
 * `workers` processes with `concurrency` requests in flight each, from loopback address `from`
 * (or, with `spread` > 1, from that many addresses 127.0.1.1, 127.0.1.2, …, taking turns: an
 * attacker with many hosts), for `seconds`.
 *
 * Starts the attacker's processes and resolves once each is ready to send (its modules loaded,
 * its pools made, its crypto warm): their start-up is the attacker's own, not the attack's.
 * `go()` starts the flood and resolves with the processes' added-up counts.
 */
export async function readyFlood({ url, kind, seconds, from = "127.0.0.66", spread = 1, workers = 2, concurrency = 32, alg = "EdDSA", username = "demo" }) {
  const procs = await Promise.all(Array.from({ length: workers }, (_, i) =>
    apart("flood", { url, kind, seconds, from, spread, concurrency, alg, username, id: i })));
  const go = async () => {
    // A process reports its counts every half second and at the end. One that has not ended
    // 20 s after its deadline is killed, and its latest report counts (marked stuck).
    const results = await Promise.all(procs.map((p) => p.go((seconds + 20) * 1000)));
    // The processes ran side by side: their counts add up, their time does not.
    const sum = added(results);
    sum.seconds = Math.max(...results.map((r) => r.seconds));
    sum.perSecond = sum.sent / sum.seconds;
    return sum;
  };
  return { go };
}

/** Several `flood` results added up (rounds one after another: their seconds too). */
export function added(floods) {
  const sum = { sent: 0, seconds: 0, status: {}, retryAfter: [] };
  for (const f of floods) {
    sum.sent += f.sent;
    sum.seconds += f.seconds;
    for (const [k, v] of Object.entries(f.status)) sum.status[k] = (sum.status[k] ?? 0) + v;
    for (const r of f.retryAfter) if (!sum.retryAfter.includes(r)) sum.retryAfter.push(r);
    if (f.stuck) sum.stuck = (sum.stuck ?? 0) + f.stuck;
  }
  sum.perSecond = sum.sent / sum.seconds;
  return sum;
}

/**
 * One attacker process's loop (bench/lib/attacker.mjs runs it): `started()` reports it ready
 * and resolves at the go; `report(counts)` sends its progress.
 */
export async function floodLoop({ url, kind, seconds, from, spread, concurrency, alg, username, id }, { started, report: send }) {
  const pools = spread > 1
    ? Array.from({ length: spread }, (_, i) => pool(url, { from: `127.0.1.${i + 1}`, connections: Math.max(1, Math.ceil(concurrency / spread)) }))
    : [pool(url, { from, connections: concurrency })];
  const status = {};
  const retryAfter = new Set();
  let sent = 0;
  freshProof(alg, "POST", `${url}/auth/refresh`); // warm: the first key and signature load the crypto
  await started();
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  // Requests still waiting 2 s after the deadline (a connection refused by the server is
  // retried by the kernel and undici for many seconds) are abandoned, not counted.
  const stop = AbortSignal.timeout(seconds * 1000 + 2000);
  setMaxListeners(0, stop); // one listener per request in flight: no warning
  const report = (final) => ({ final, sent, seconds: (performance.now() - t0) / 1000, status: { ...status }, retryAfter: [...retryAfter] });
  const progress = setInterval(() => send(report(false)), 500);
  const one = (k) => {
    const p = pools[k % pools.length];
    if (kind === "password") {
      return call(p, "POST", "/auth/login", { headers: { "content-type": "application/json" }, signal: stop,
        body: JSON.stringify({ username, password: `guess-${id}-${k}` }) });
    }
    const path = k % 2 ? "/auth/logout" : "/auth/refresh";
    const token = k % 2 ? "" : randomBytes(32).toString("base64url");
    return call(p, "POST", path, { headers: { "content-type": "application/json", dpop: freshProof(alg, "POST", `${url}${path}`) },
      signal: stop, body: JSON.stringify({ refresh_token: token }) });
  };
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < deadline) {
      const k = sent++;
      try {
        const r = await one(k);
        status[r.status] = (status[r.status] ?? 0) + 1;
        if (r.headers["retry-after"] !== undefined) retryAfter.add(String(r.headers["retry-after"]));
      } catch (e) {
        if (stop.aborted) { sent--; break; } // abandoned at the end: not a request answered
        status[e.code ?? "error"] = (status[e.code ?? "error"] ?? 0) + 1;
      }
    }
  }));
  clearInterval(progress);
  const final = report(true);
  await Promise.all(pools.map((p) => p.destroy()));
  return final;
}
