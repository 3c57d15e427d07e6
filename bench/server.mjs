// make bench (server part): refresh-token rotations per second and their latency (p50/p99),
// side by side in one run: node oidc-provider (in-memory adapter, its defaults, see
// bench/lib/oidc-provider.mjs), rotafetch-server on SQLite, on PostgreSQL with one instance and
// with two instances sharing the database. Writes target/bench/server.md and server.json and
// the ROTATION section of BENCHMARKS.md (full runs only).
//
// The same client for every server: WORKERS concurrent chains over one undici keep-alive pool,
// each chain rotating its own refresh token (every refresh presents the token the previous one
// returned) with the RFC 6749 form body `grant_type=refresh_token&refresh_token=…&client_id=…`.
// oidc-provider's chains start with a real authorization-code + PKCE sign-in; rotafetch's with
// /auth/login. With two instances a chain alternates between them, so every rotation crosses
// instances. Each target runs ROUNDS times for SECONDS, in an order rotated per round (drift on
// this shared machine lands on every target alike); bounded by ROTATIONS per round as well.
// Loopback only.
import { performance } from "node:perf_hooks";
import { startServer } from "../e2e/lib/harness.mjs";
import { startCluster, startInstance } from "../e2e/lib/pg.mjs";
import { call, form, json, latency, pool, round, DEMO } from "./lib/load.mjs";
import { authorizationCodeFlow, startOidcProvider, CLIENT_ID } from "./lib/oidc-flow.mjs";
import { load, machine, save } from "./lib/report.mjs";

const QUICK = process.env.BENCH_QUICK === "1";
const WORKERS = 16;
const ROUNDS = QUICK ? 1 : 3;
const SECONDS = QUICK ? 5 : 10;
const ROTATIONS = 100_000;
const FLAGS = ["--reuse-grace", "10", "--access-ttl", "60"];
const log = (...a) => console.error("server bench:", ...a);

/** One round of rotations on `target`; returns { rotations, seconds, errors, ms: [latencies] }. */
async function round1(target) {
  const ms = [];
  let errors = 0, budget = ROTATIONS;
  const start = performance.now();
  const deadline = start + SECONDS * 1000;
  await Promise.all(target.chains.map(async (chain, w) => {
    for (let k = 0; budget > 0 && performance.now() < deadline; k++) {
      budget--;
      const p = target.pools[(w + k) % target.pools.length];
      const r = await call(p, "POST", target.tokenPath, form({ grant_type: "refresh_token", refresh_token: chain.token, client_id: CLIENT_ID }));
      if (r.status !== 200) { errors++; throw new Error(`${target.name}: ${r.status} ${r.text}`); }
      chain.token = JSON.parse(r.text).refresh_token;
      ms.push(r.ms);
    }
  }));
  return { rotations: ms.length, seconds: (performance.now() - start) / 1000, errors, ms };
}

/** rotafetch-server instances at `urls`: WORKERS chains from /auth/login. */
async function rotafetchTarget(name, urls) {
  const pools = urls.map((u) => pool(u, { connections: WORKERS }));
  const chains = [];
  for (let w = 0; w < WORKERS; w++) {
    const r = await call(pools[w % pools.length], "POST", "/auth/login", json(DEMO));
    if (r.status !== 200) throw new Error(`${name} login: ${r.status} ${r.text}`);
    chains.push({ token: JSON.parse(r.text).refresh_token });
  }
  return { name, tokenPath: "/auth/refresh", pools, chains };
}

async function oidcTarget(name, url) {
  const p = pool(url, { connections: WORKERS });
  const chains = [];
  for (let w = 0; w < WORKERS; w++) chains.push({ token: (await authorizationCodeFlow(p, url)).refresh_token });
  return { name, tokenPath: "/token", pools: [p], chains };
}

async function main() {
  const t0 = Date.now();
  const report = { machine: machine(), workers: WORKERS, rounds: ROUNDS, seconds: SECONDS, results: [] };
  const stops = [];
  const targets = [];
  try {
    const op = await startOidcProvider();
    stops.push(op.stop);
    report.oidcProvider = op.version;
    targets.push(await oidcTarget(`node oidc-provider ${op.version} (in-memory adapter)`, op.url));
    const sqlite = await startServer(FLAGS);
    stops.push(sqlite.stop);
    targets.push(await rotafetchTarget("rotafetch-server, SQLite (1 instance)", [sqlite.url]));
    const cluster = await startCluster();
    stops.push(cluster.stop);
    for (const n of [1, 2]) {
      const db = cluster.createDb(`bench${n}`);
      const urls = [];
      // One after the other: the first creates the schema, the keys and the demo user. One
      // issuer: every instance after the first takes the first one's URL as its --public-url
      // (the chains call each instance directly, no proxy in the path).
      for (let i = 0; i < n; i++) {
        const s = await startInstance(db, i === 0 ? FLAGS : [...FLAGS, "--public-url", urls[0]]);
        stops.push(s.stop);
        urls.push(s.url);
      }
      targets.push(await rotafetchTarget(`rotafetch-server, PostgreSQL (${n} instance${n > 1 ? "s" : ""})`, urls));
    }
    const acc = targets.map(() => ({ rotations: 0, seconds: 0, errors: 0, ms: [] }));
    for (let r = 0; r < ROUNDS; r++) {
      for (let i = 0; i < targets.length; i++) {
        const k = (i + r) % targets.length;
        log(`round ${r + 1}/${ROUNDS}: ${targets[k].name} (load average ${load()})`);
        const x = await round1(targets[k]);
        acc[k].rotations += x.rotations;
        acc[k].seconds += x.seconds;
        acc[k].errors += x.errors;
        acc[k].ms.push(...x.ms);
      }
    }
    report.results = targets.map((t, k) => ({ name: t.name, rotations: acc[k].rotations, perSecond: round(acc[k].rotations / acc[k].seconds, 0),
      errors: acc[k].errors, ...latency(acc[k].ms) }));
  } finally {
    for (const t of targets) for (const p of t.pools) await p.destroy();
    for (const stop of stops.reverse()) await stop();
  }
  report.loadEnd = load();
  report.elapsed = Math.round((Date.now() - t0) / 1000);
  save("server", report, markdown(report), QUICK ? null : "ROTATION");
}

function markdown(r) {
  const m = r.machine;
  const op = r.results[0];
  const L = [
    "### R. Refresh-token rotations: rotafetch-server beside node oidc-provider",
    "",
    `Measured ${m.date.slice(0, 10)} on ${m.cores} cores (${m.cpu}); Node ${m.node}; rotafetch-server at ${m.git}; oidc-provider ${r.oidcProvider}. ` +
      `Command: \`${QUICK ? "BENCH_QUICK=1 " : ""}node bench/server.mjs\` (${r.elapsed} s; \`make bench\` runs it). Load average (1 / 5 / 15 min) ${m.loadStart} at the start, ${r.loadEnd} at the end.`,
    "",
    `${r.workers} concurrent chains, each rotating its own refresh token, ${r.rounds} rounds of ${r.seconds} s per server in a rotated order; the same Node client (undici, keep-alive) and request for all.`,
    "",
    "| server | rotations | rotations/s | × oidc-provider | goal ≥ 3× | p50 ms | p99 ms | errors |",
    "|---|--:|--:|--:|---|--:|--:|--:|",
    ...r.results.map((x, i) => {
      const ratio = round(x.perSecond / op.perSecond, 2);
      return `| ${x.name} | ${x.rotations} | **${x.perSecond}** | ${ratio}× | ${i === 0 ? "" : ratio >= 3 ? "**met**" : "**missed**"} | ${x.p50} | ${x.p99} | ${x.errors} |`;
    }),
    "",
    "oidc-provider is one Node process (one thread for its JavaScript); rotafetch-server is one process with a thread per core. The load generator is a third process on the same 2 cores.",
  ];
  return L.join("\n");
}

main().catch((e) => { console.error(e); process.exit(1); });
