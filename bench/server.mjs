// make bench (server part): refresh-token rotations per second and their latency (p50/p99)
// on SQLite, on PostgreSQL with one server instance and with two instances sharing the
// database, side by side in one run. Writes target/bench/server.md and server.json.
//
// Each of WORKERS concurrent clients logs in once and then rotates its own token chain
// (every refresh presents the token the previous one returned); with two instances a
// client alternates between them, so every rotation crosses instances. Loopback only;
// bounded by ROTATIONS per store and by SECONDS per store, whichever comes first.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cpus } from "node:os";
import { performance } from "node:perf_hooks";
import { ROOT, startServer } from "../e2e/lib/harness.mjs";
import { startCluster, startInstance } from "../e2e/lib/pg.mjs";

const QUICK = process.env.BENCH_QUICK === "1";
const WORKERS = 16;
const ROTATIONS = QUICK ? 1000 : 5000;
const SECONDS = QUICK ? 10 : 30;
const FLAGS = ["--reuse-grace", "10", "--access-ttl", "60"];

async function post(url, body) {
  const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const json = await r.json();
  if (r.status !== 200) throw new Error(`${url}: ${r.status} ${JSON.stringify(json)}`);
  return json;
}

/** Rotation load against `urls` (one per instance); returns { rotations, seconds, p50, p99 }. */
async function load(urls) {
  const latencies = [];
  const deadline = performance.now() + SECONDS * 1000;
  let budget = ROTATIONS;
  const start = performance.now();
  await Promise.all(Array.from({ length: WORKERS }, async (_, w) => {
    let token = (await post(`${urls[w % urls.length]}/auth/login`, { username: "demo", password: "demo" })).refresh_token;
    for (let k = 0; budget > 0 && performance.now() < deadline; k++) {
      budget--;
      const t0 = performance.now();
      token = (await post(`${urls[(w + k + 1) % urls.length]}/auth/refresh`, { refresh_token: token })).refresh_token;
      latencies.push(performance.now() - t0);
    }
  }));
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))];
  return { rotations: latencies.length, seconds, per_second: latencies.length / seconds, p50_ms: pct(50), p99_ms: pct(99) };
}

const results = [];
const sqlite = await startServer(FLAGS);
try {
  results.push({ store: "SQLite (1 instance)", ...(await load([sqlite.url])) });
} finally {
  await sqlite.stop();
}
const cluster = await startCluster();
try {
  for (const n of [1, 2]) {
    const db = cluster.createDb(`bench${n}`);
    const instances = [];
    try {
      // One after the other: the first creates the schema, the keys and the demo user.
      for (let i = 0; i < n; i++) instances.push(await startInstance(db, FLAGS));
      results.push({ store: `PostgreSQL (${n} instance${n > 1 ? "s" : ""})`, ...(await load(instances.map((s) => s.url))) });
    } finally {
      await Promise.all(instances.map((s) => s.stop()));
    }
  }
} finally {
  await cluster.stop();
}

const rows = results.map((r) =>
  `| ${r.store} | ${r.rotations} | ${r.per_second.toFixed(0)} | ${r.p50_ms.toFixed(2)} | ${r.p99_ms.toFixed(2)} |`);
const md = [
  `Refresh-token rotations, ${WORKERS} concurrent clients each rotating its own chain, loopback, ${cpus().length} CPUs:`,
  "",
  "| store | rotations | rotations/s | p50 ms | p99 ms |",
  "|---|---|---|---|---|",
  ...rows,
].join("\n");
const out = join(ROOT, "target/bench");
mkdirSync(out, { recursive: true });
writeFileSync(join(out, "server.md"), md + "\n");
writeFileSync(join(out, "server.json"), JSON.stringify({ workers: WORKERS, results }, null, 2) + "\n");
console.log(md);
