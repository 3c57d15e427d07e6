// make bench (abuse part): the reference server under attack, with legitimate users measured
// alongside (issue #25's figures 1-3). Writes target/bench/abuse.md and abuse.json and the
// ABUSE section of BENCHMARKS.md (full runs only).
//
// 1. jti flood: unauthenticated requests each carrying a DPoP proof by a key made for it alone,
//    as fast as the attacker's processes go, while DPoP users call /api/me and bearer users rotate.
// 2. password guessing: wrong passwords for one account from one address; afterwards the real
//    user signs in (from its own address) once the server's back-off allows.
// 3. slow clients: connections dribbling headers or a body one byte a second.
// Each figure runs the "no attack" phase and the attack phase back to back on one fresh server
// and compares the legitimate users' p99 latency. With BENCH_BASELINE_BIN (a build of the
// server before the hardening; `make bench-baseline`), every figure also runs against it.
//
// Loopback only: the attackers connect from 127.0.0.66 / 127.0.0.77, the users from 127.0.0.1.
// Every phase is bounded in time, every request by a timeout, and the servers are stopped in
// `finally` blocks; a watchdog ends the whole run if it overruns.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { SERVER_BIN, startServer } from "../e2e/lib/harness.mjs";
import { added, readyFlood } from "./lib/flood.mjs";
import { call, json, legitLoad, metrics, pool, pooled, round, rssMiB, sampler, signIn, DEMO } from "./lib/load.mjs";
import { apart, ATTACKER_CLASS } from "./lib/apart.mjs";
import { load, machine, save } from "./lib/report.mjs";
import { abuseMarkdown } from "./lib/abuse-report.mjs";

const QUICK = process.env.BENCH_QUICK === "1";
const ONLY = (process.env.BENCH_ONLY ?? "jti,password,slow").split(",");
const PLAN = {
  quick: QUICK,
  // Figures 1 and 2 alternate: no attack, attack, no attack, attack, … (`rounds` of each, as
  // long as each other), so that both p99s come from as many calls and the shared machine's
  // own moments fall into both sides. BENCH_ROUNDS / BENCH_ROUND_SECONDS change it.
  rounds: Number(process.env.BENCH_ROUNDS ?? 3),
  roundSeconds: Number(process.env.BENCH_ROUND_SECONDS ?? (QUICK ? 4 : 10)),
  baseSeconds: QUICK ? 8 : 30, // figure 3's no-attack phase
  slowSeconds: QUICK ? 15 : 45, // figure 3: how long a slow client keeps dribbling at most
  slowPerKind: Number(process.env.BENCH_SLOW_CONNECTIONS ?? 600), // 2 × 600: past the hardened server's 1024-connection cap
  apiUsers: 4, apiRate: 25, // DPoP users, GET /api/me calls per second each
  refreshUsers: 4, refreshRate: 5, // bearer users, rotations per second each
  nodeFlags: process.execArgv.join(" "), // the measuring process's (make bench-server: no memory reducer)
  attackerClass: ATTACKER_CLASS, // how the attacker's processes are scheduled (bench/lib/apart.mjs)
  floodWorkers: 2, floodConcurrency: 32, // jti flood: processes, requests in flight per process
  wideConcurrency: 512, // the jti flood that opens more connections than the server keeps per address
  guessConcurrency: 16, // password guessing: requests in flight (one process)
  signInAfterSeconds: 300, // the real user gives up signing in after this
  spread: 64, // source addresses of the many-hosts jti flood
  smallCap: QUICK ? 5000 : 20_000, // the before-hardening row whose replay cache fills within the flood
};
PLAN.floodSeconds = PLAN.rounds * PLAN.roundSeconds; // each side's total in figures 1 and 2
const WATCHDOG_MS = (QUICK ? 12 : 25) * 60_000; // includes up to 300 s for the real user to sign in, per build
const log = (...a) => console.error("abuse:", ...a);

/**
 * Runs `fn(srv, pool, users, db)` on a fresh server (`build`: its binary and extra flags) with
 * signed-in legitimate users.
 */
async function withServer(build, fn) {
  const dir = mkdtempSync(join(tmpdir(), "rotafetch-abuse-"));
  const flags = ["--access-ttl", "3600", "--db", join(dir, "abuse.db"), ...build.flags];
  const srv = await startServer(flags, { bin: build.bin });
  const p = pool(srv.url);
  try {
    const users = await signIn(p, srv.url, { apiUsers: PLAN.apiUsers, refreshUsers: PLAN.refreshUsers });
    await legitLoad(p, srv.url, users, { seconds: 2, apiRate: PLAN.apiRate, refreshRate: PLAN.refreshRate }); // warm-up
    return await fn(srv, p, users, join(dir, "abuse.db"));
  } finally {
    await p.destroy();
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const legit = (p, srv, users, seconds) =>
  legitLoad(p, srv.url, users, { seconds, apiRate: PLAN.apiRate, refreshRate: PLAN.refreshRate });

/**
 * The users alone, then beside `attack(seconds)`, `PLAN.rounds` times: { base, during, attack }
 * with each side's calls pooled and the attack rounds added up.
 */
async function alternating(p, srv, users, attack) {
  const quiet = [], loud = [], attacks = [];
  for (let i = 0; i < PLAN.rounds; i++) {
    quiet.push(await legit(p, srv, users, PLAN.roundSeconds));
    const ready = await attack(PLAN.roundSeconds); // the attacker's processes, started and waiting
    const [during, a] = await Promise.all([legit(p, srv, users, PLAN.roundSeconds), ready.go()]);
    loud.push(during);
    attacks.push(a);
  }
  return { base: pooled(quiet), during: pooled(loud), attack: added(attacks) };
}

/** The counters that changed between two /metrics snapshots. */
function delta(a, b) {
  const d = {};
  for (const k of Object.keys(b)) if (b[k] !== (a[k] ?? 0)) d[k] = b[k] - (a[k] ?? 0);
  return d;
}

/**
 * Rows of the DPoP replay-cache table (`dpop_jti`, in both builds), counted read-only while
 * the server runs (its SQLite database is in WAL mode): what the flood makes the server keep.
 */
const run = promisify(execFile);
async function jtiRows(db) {
  // Asynchronous: a synchronous child would stall the event loop that times the users.
  const { stdout } = await run("sqlite3", ["-readonly", "-cmd", ".timeout 5000", db, "SELECT COUNT(*) FROM dpop_jti"], { encoding: "utf8", timeout: 10_000 });
  return Number(stdout.trim());
}

// ---------------------------------------------------------------- 1. jti flood

async function jtiFlood(build) {
  return withServer(build, async (srv, p, users, db) => {
    const rssBase = rssMiB(srv.pid);
    const m0 = await metrics(p);
    // Sampled through all the rounds (the samplers cost the measuring process a little, on
    // both sides alike).
    const rss = sampler(() => rssMiB(srv.pid), 500);
    const entries = sampler(() => jtiRows(db), 2000);
    const { base, during, attack } = await alternating(p, srv, users, (seconds) =>
      readyFlood({ url: srv.url, kind: "jti", seconds, workers: PLAN.floodWorkers, concurrency: build.concurrency ?? PLAN.floodConcurrency, spread: build.spread ?? 1 }));
    const rssSamples = rss.stop(), entrySamples = entries.stop();
    const d = delta(m0, await metrics(p));
    // After the attack: are the users still served (a full cache would still refuse them)?
    const after = pooled([await legit(p, srv, users, 5)]);
    return {
      base, during, after, attack, metrics: d,
      entries: { max: Math.max(...entrySamples.map((s) => s.v)), end: entrySamples.at(-1)?.v, samples: entrySamples },
      rss: { base: round(rssBase, 1), max: round(Math.max(...rssSamples.map((s) => s.v)), 1), end: round(rssMiB(srv.pid), 1) },
    };
  });
}

// ---------------------------------------------------------------- 2. password guessing

/** The real user signs in from 127.0.0.1, following Retry-After, until it works or gives up. */
async function realUserSignsIn(p, give) {
  const t0 = Date.now();
  const tries = [];
  while (Date.now() - t0 < give * 1000) {
    const r = await call(p, "POST", "/auth/login", json(DEMO));
    tries.push(r.status);
    if (r.status === 200) return { ok: true, afterSeconds: round((Date.now() - t0) / 1000, 1), tries };
    const wait = Number(r.headers["retry-after"] ?? 1);
    // A back-off longer than the time left is reported, not waited out.
    if (Date.now() - t0 + wait * 1000 > give * 1000) return { ok: false, afterSeconds: round((Date.now() - t0) / 1000, 1), tries, retryAfter: wait };
    await delay(Math.min(Math.max(wait, 1), 60) * 1000);
  }
  return { ok: false, afterSeconds: round((Date.now() - t0) / 1000, 1), tries };
}

async function passwordFlood(build) {
  return withServer(build, async (srv, p, users) => {
    const m0 = await metrics(p);
    const rss = sampler(() => rssMiB(srv.pid), 500);
    const { base, during, attack } = await alternating(p, srv, users, (seconds) =>
      readyFlood({ url: srv.url, kind: "password", seconds, workers: 1, concurrency: PLAN.guessConcurrency }));
    const rssSamples = rss.stop();
    const m1 = await metrics(p);
    const signInAfter = await realUserSignsIn(p, PLAN.signInAfterSeconds);
    return {
      base, during, attack, metrics: delta(m0, m1), signInAfter, hashPeak: m1.rotafetch_password_hashes_peak, hashSlots: m1.rotafetch_password_hash_slots,
      rss: { max: round(Math.max(...rssSamples.map((s) => s.v)), 1), end: round(rssMiB(srv.pid), 1) },
    };
  });
}

// ---------------------------------------------------------------- 3. slow clients

async function slowLoris(build) {
  return withServer(build, async (srv, p, users) => {
    const quiet = sampler(() => rssMiB(srv.pid), 500);
    const base = pooled([await legit(p, srv, users, PLAN.baseSeconds)]);
    quiet.stop();
    const rss = sampler(() => rssMiB(srv.pid), 500);
    const m0 = await metrics(p);
    // In processes of their own, as the floods: 1,200 sockets' writes each second would
    // otherwise come due together in the event loop that times the users.
    const ready = await Promise.all(["headers", "body"].map((kind) =>
      apart("slow", { port: srv.port, kind, count: PLAN.slowPerKind, seconds: PLAN.slowSeconds })));
    const kinds = ready.map((a) => a.go((PLAN.slowSeconds + 20) * 1000));
    // The users are measured while the slow connections are open (they open within a second).
    await delay(1000);
    const during = pooled([await legit(p, srv, users, Math.min(PLAN.slowSeconds - 5, 30))]);
    const slow = await Promise.all(kinds);
    const rssSamples = rss.stop();
    const d = delta(m0, await metrics(p));
    return { base, during, slow, metrics: d, rss: { max: round(Math.max(...rssSamples.map((s) => s.v)), 1), end: round(rssMiB(srv.pid), 1) } };
  });
}

// ---------------------------------------------------------------- main

async function main() {
  const watchdog = setTimeout(() => { log(`watchdog: over ${WATCHDOG_MS / 60_000} min, exiting`); process.exit(2); }, WATCHDOG_MS);
  watchdog.unref();
  const t0 = Date.now();
  const builds = [{ name: "this build", bin: SERVER_BIN, flags: [] },
    // Per-address throttling aside: an attacker with many hosts.
    { name: `this build, flood from ${PLAN.spread} addresses`, bin: SERVER_BIN, flags: [], only: "jti", spread: PLAN.spread },
    // Held 429s aside: an attacker that opens ever more connections from its one address.
    { name: `this build, flood on ${PLAN.floodWorkers * PLAN.wideConcurrency} connections from one address`, bin: SERVER_BIN, flags: [], only: "jti", concurrency: PLAN.wideConcurrency }];
  const before = process.env.BENCH_BASELINE_BIN;
  if (before) {
    builds.unshift({ name: "4538bdb (before)", bin: before, flags: [] },
      // At the flood rates reached here the default cap (100,000) fills after the 30 s; a smaller
      // cap shows within them what a full cache does to the users.
      { name: `4538bdb (before), \`--dpop-jti-cap ${PLAN.smallCap}\``, bin: before, flags: ["--dpop-jti-cap", String(PLAN.smallCap)], only: "jti" });
  }
  const report = { machine: machine(), plan: PLAN, builds: builds.map(({ name, flags }) => ({ name, flags })), jti: [], password: [], slow: [] };
  const figures = { jti: jtiFlood, password: passwordFlood, slow: slowLoris };
  for (const [name, run] of Object.entries(figures)) {
    if (!ONLY.includes(name)) continue;
    for (const b of builds.filter((b) => !b.only || b.only === name)) {
      log(`${name}: ${b.name} (load average ${load()})`);
      report[name].push({ build: b.name, load: load(), ...(await run(b)) });
    }
  }
  report.loadEnd = load();
  report.seconds = Math.round((Date.now() - t0) / 1000);
  save("abuse", report, abuseMarkdown(report), !QUICK && ONLY.length === 3 ? "ABUSE" : null);
}

main().catch((e) => { console.error(e); process.exit(1); });
