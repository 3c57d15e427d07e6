// make bench: shipped size, per-request overhead, refresh storms, start-up and the reference
// server's throughput, measured in one run on this machine. Writes target/bench/report.md and
// report.json and the table in BENCHMARKS.md (between the BENCH markers). Not part of make test.
//
// Only loopback traffic (the reference server on 127.0.0.1); every loop is bounded in count
// and time. Run from the repository root: `make bench` (it builds pkg/ and the server first).
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { ROOT, startServer, launchBrowser, waitFor } from "../e2e/lib/harness.mjs";
import { load, machine, writeSection } from "./lib/report.mjs";
import { parseMetrics, pct, round } from "./lib/stats.mjs";
import { BUDGET, DPOP_ALLOWANCE, DPOP_BUDGET, kb, markdown } from "./lib/run-report.mjs";
import { ensureDeps } from "./lib/deps.mjs";

const BENCH = join(ROOT, "bench");
const OUT = join(ROOT, "target/bench");
const DIST = join(OUT, "dist");
const PKG = join(OUT, "pkg"); // a snapshot: pkg/ may be rebuilt while the bench runs
const COMMAND = "make bench";
const QUICK = process.env.BENCH_QUICK === "1"; // smaller counts, for developing the bench itself

const N_SEQ = QUICK ? 200 : 2000; // per variant
const N_CONC = QUICK ? 200 : 2000; // per variant
const CONC = 50;
const STORM_CALLS = 1000;
const STORM_REPS = QUICK ? 1 : 2;
const TABS = 8;
const TAB_CALLS = 100;
const STARTUP_LOADS = QUICK ? 5 : 20;
const SERVER_SESSIONS = 8;
const SERVER_SECONDS = QUICK ? 2 : 5;
// Access-token lifetime of the storm servers (s). Long enough that the token a storm's refresh
// brings stays fresh until the storm is answered (rotafetch refreshes 10 s before expiry).
const STORM_TTL = 20;

const log = (...a) => console.error("bench:", ...a);
const t00 = Date.now();

// ---------------------------------------------------------------- statistics

const median = (xs) => pct(xs, 50);

// ---------------------------------------------------------------- 1. shipped size

function gzip9(file) {
  return execFileSync("gzip", ["-9", "-n", "-c", file], { maxBuffer: 1 << 28 }).length;
}

const PEERS = [
  { name: "@auth0/auth0-spa-js", pkg: "@auth0/auth0-spa-js", entry: "auth0", what: "createAuth0Client" },
  { name: "@supabase/auth-js", pkg: "@supabase/auth-js", entry: "supabase", what: "AuthClient" },
  { name: "axios + axios-auth-refresh", pkg: ["axios", "axios-auth-refresh"], entry: "axios", what: "axios.create + createAuthRefresh recipe" },
  { name: "oidc-client-ts", pkg: "oidc-client-ts", entry: "oidc", what: "UserManager" },
  { name: "ky (with a refresh hook)", pkg: "ky", entry: "ky", what: "ky.create + beforeRequest/afterResponse recipe" },
];

function version(name) {
  return JSON.parse(readFileSync(join(BENCH, "node_modules", name, "package.json"), "utf8")).version;
}

async function sizes() {
  const esbuild = await import(join(BENCH, "node_modules/esbuild/lib/main.js"));
  rmSync(DIST, { recursive: true, force: true });
  mkdirSync(DIST, { recursive: true });
  const common = { bundle: true, minify: true, format: "esm", platform: "browser", target: "es2022",
    define: { "process.env.NODE_ENV": '"production"' }, logLevel: "warning", legalComments: "none" };
  const rows = [];
  // rotafetch as shipped in pkg/ (web target; scripts/package.mjs already minified the glue
  // with esbuild, exported class names kept): the .wasm, the glue and wasm-bindgen's snippets (the small ES
  // modules the glue imports), each gzipped on its own as a server sends them.
  const part = (file) => ({ raw: statSync(file).size, gzip: gzip9(file) });
  const entry = (dir) => {
    const wasm = part(join(dir, "rotafetch_bg.wasm"));
    const glue = part(join(dir, "rotafetch.js"));
    const snippetFiles = existsSync(join(dir, "snippets"))
      ? readdirSync(join(dir, "snippets"), { recursive: true }).map((f) => join(dir, "snippets", String(f))).filter((f) => f.endsWith(".js"))
      : [];
    const snippets = snippetFiles.map(part).reduce((a, b) => ({ raw: a.raw + b.raw, gzip: a.gzip + b.gzip }), { raw: 0, gzip: 0 });
    return { parts: `.wasm ${kb(wasm.raw)} / ${kb(wasm.gzip)} + minified glue ${kb(glue.raw)} / ${kb(glue.gzip)} + ${snippetFiles.length} snippet${snippetFiles.length === 1 ? "" : "s"} ${kb(snippets.raw)} / ${kb(snippets.gzip)}`,
      raw: wasm.raw + glue.raw + snippets.raw, gzip: wasm.gzip + glue.gzip + snippets.gzip, wasm, glue, snippets, snippetFiles: snippetFiles.length };
  };
  const build = pkgBuild();
  rows.push({ name: "rotafetch (pkg/ as shipped)", version: pkgVersion(), ...entry(PKG), self: true, build });
  // The `rotafetch/dpop` entry (the same API with the `dpop` option), which a page loads
  // instead: its own .wasm, glue and snippet.
  if (existsSync(join(PKG, "dpop", "rotafetch.js"))) {
    rows.push({ name: "rotafetch/dpop (pkg/dpop/, with DPoP)", version: pkgVersion(), ...entry(join(PKG, "dpop")), self: true, dpop: true, build });
  }
  for (const p of PEERS) {
    const outfile = join(DIST, `${p.entry}.js`);
    await esbuild.build({ ...common, entryPoints: [join(BENCH, "entries", `${p.entry}.js`)], outfile });
    const names = [p.pkg].flat();
    rows.push({ name: p.name, version: names.map((n) => `${n}@${version(n)}`).join(", "), parts: p.what,
      raw: statSync(outfile).size, gzip: gzip9(outfile) });
  }
  return rows;
}

/** Which build `make pkg` ran (scripts/pkg.sh writes pkg/.build.json; not shipped). */
function pkgBuild() {
  try { return JSON.parse(readFileSync(join(PKG, ".build.json"), "utf8")); } catch { return { build: "unknown", what: "pkg/.build.json missing" }; }
}

function pkgVersion() {
  try { return JSON.parse(readFileSync(join(PKG, "package.json"), "utf8")).version; } catch { return "?"; }
}

// ---------------------------------------------------------------- server + browser helpers

async function server(flags = []) {
  return startServer([...flags, "--static", `/pkg=${PKG}`, "--static", `/bench=${BENCH}/pages`, "--static", `/bench-dist=${DIST}`]);
}

/** Every counter of /metrics, by series. */
async function metrics(srv) {
  return parseMetrics(await (await fetch(`${srv.url}/metrics`)).text());
}
function delta(a, b) {
  const sum = (m, prefix) => Object.entries(m).filter(([k]) => k.startsWith(prefix)).reduce((s, [, v]) => s + v, 0);
  const d = (prefix) => sum(b, prefix) - sum(a, prefix);
  const refreshes = d("rotafetch_refresh_total{");
  const api = d("rotafetch_api_requests_total{");
  return { refreshes, api, requests: refreshes + api, api401: d('rotafetch_api_requests_total{status="401"}'),
    rotated: d('rotafetch_refresh_total{outcome="rotated"}'), grace: d('rotafetch_refresh_total{outcome="grace"}'),
    reused: d('rotafetch_refresh_total{outcome="reused"}'), invalid: d('rotafetch_refresh_total{outcome="invalid"}'),
    revoked: d("rotafetch_families_revoked_total") };
}

/**
 * Opens the bench page cross-origin isolated (COOP/COEP added to the document only, then the
 * route is removed so no other request is intercepted): performance.now() then has 5 µs
 * resolution instead of 100 µs.
 */
async function openBench(context, srv) {
  const page = await context.newPage();
  page.on("pageerror", (e) => log("page error:", String(e)));
  const doc = `${srv.url}/bench/bench.html`;
  await page.route(doc, async (route) => {
    const res = await route.fetch();
    await route.fulfill({ response: res, headers: { ...res.headers(), "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp" } });
  });
  await page.goto(doc);
  await page.unroute(doc);
  await page.waitForFunction(() => window.ready === true, null, { timeout: 30_000 });
  await page.evaluate(() => makeClients());
  return page;
}

// ---------------------------------------------------------------- 2. per-request overhead

async function overhead(browser) {
  const srv = await server(["--access-ttl", "3600"]);
  const context = await browser.newContext();
  try {
    const page = await openBench(context, srv);
    const isolated = await page.evaluate(() => crossOriginIsolated);
    const variants = ["raw", "rotafetch", "rotafetch-dpop", "ky-hook", "axios"];
    for (const v of variants) {
      // A DPoP session is bound at login, by the client's key: the client signs in itself.
      if (v === "rotafetch-dpop") { await page.evaluate(() => loginDpop()); continue; }
      const tokens = await page.evaluate(() => loginTokens());
      if (v === "raw") await page.evaluate((t) => setRawToken(t), tokens.access_token);
      else await page.evaluate(([n, t]) => setup(n, t), [v, tokens]);
    }
    const m0 = await metrics(srv);
    // Warm-up: connections, JIT, the wasm's first calls.
    await page.evaluate(([names, k]) => seqMix(names, k), [variants, 100]);
    for (const v of variants) await page.evaluate((n) => conc(n, 200, 50), v);
    const res = {};
    for (const mode of ["sequential", "concurrent"]) {
      const acc = Object.fromEntries(variants.map((v) => [v, { lat: [], wall: 0, n: 0 }]));
      if (mode === "sequential") {
        // Interleaved call by call: one call per variant per step, in a rotating order.
        const rounds = 10, per = N_SEQ / rounds;
        for (let r = 0; r < rounds; r++) {
          const out = await page.evaluate(([names, k]) => seqMix(names, k), [variants, per]);
          for (const v of variants) { acc[v].lat.push(...out[v].lat); acc[v].wall += out[v].wall; acc[v].n += per; }
        }
      } else {
        // Interleaved batch by batch (a batch keeps CONC calls of one variant in flight), each
        // round in a rotated order (ABCD, BCDA, ...).
        const rounds = QUICK ? 4 : 20, per = N_CONC / rounds;
        for (let r = 0; r < rounds; r++) {
          const order = variants.map((_, i) => variants[(i + r) % variants.length]);
          for (const v of order) {
            const out = await page.evaluate(([n, k, c]) => conc(n, k, c), [v, per, CONC]);
            acc[v].lat.push(...out.lat);
            acc[v].wall += out.wall;
            acc[v].n += per;
          }
        }
      }
      const rawMed = median(acc.raw.lat), rawP95 = pct(acc.raw.lat, 95), rawMean = acc.raw.wall / acc.raw.n;
      const rfMed = median(acc.rotafetch.lat);
      res[mode] = variants.map((v) => {
        const med = median(acc[v].lat), p95 = pct(acc[v].lat, 95), mean = acc[v].wall / acc[v].n;
        return { variant: v, n: acc[v].n, medianMs: round(med, 3), p95Ms: round(p95, 3), meanMs: round(mean, 3),
          ratioMedian: round(med / rawMed, 3), ratioP95: round(p95 / rawP95, 3), ratioMean: round(mean / rawMean, 3),
          ratioBearer: round(med / rfMed, 3), reqPerSec: round(1000 / mean, 0) };
      });
    }
    const d = delta(m0, await metrics(srv));
    // DPoP's parts: the page's WebCrypto work per call, and the server's (from Node, below).
    const token = (await page.evaluate(() => loginTokens())).access_token;
    const signing = await page.evaluate(([n, t]) => signTiming(n, t), [N_SEQ / 2, token]);
    const browserShare = { n: signing.sign.length, digestMs: round(median(signing.digest), 3), signMs: round(median(signing.sign), 3), signP95Ms: round(pct(signing.sign, 95), 3) };
    return { isolated, concurrency: CONC, results: res, serverSaw: d, browserShare, ...(await dpopServerShare(srv.url)) };
  } finally {
    await context.close();
    await srv.stop();
  }
}

/** The server's share of a DPoP call (bench/lib/dpop-share.mjs; imported once bench/'s packages are in). */
async function dpopServerShare(url) {
  const { serverShare, verifyCost } = await import("./lib/dpop-share.mjs");
  return { serverShare: await serverShare(url, N_SEQ), verifyCost: verifyCost(join(ROOT, "target/server/examples/dpop_verify_cost"), url, N_SEQ) };
}

// ---------------------------------------------------------------- 3. refresh storm (one tab)


async function waitExpired(since) {
  // Past exp plus the server's 1 s leeway, with a margin.
  const until = since + STORM_TTL * 1000 + 1400;
  while (Date.now() < until) await delay(50);
}

const STORM_VARIANTS = ["rotafetch", "axios", "axios-nd", "ky", "ky-sf"];
const TAB_VARIANTS = ["rotafetch", "axios", "axios-nd"];
const GRACES = [10, 0];

/**
 * Items 3 and 4. Per repetition every scenario (one-tab storm per client, 8-tab storm per
 * client, each against a server with the default 10 s reuse grace and one with none) gets a
 * fresh browser context and a fresh session; after one shared wait for the access tokens to
 * expire they run one after another, in an order rotated per repetition. None of the clients
 * runs timers, so a token that waited longer is no different.
 */
async function storms(browser) {
  const servers = {};
  for (const g of GRACES) servers[g] = await server(["--access-ttl", String(STORM_TTL), "--reuse-grace", String(g)]);
  const single = Object.fromEntries(GRACES.map((g) => [g, Object.fromEntries(STORM_VARIANTS.map((v) => [v, []]))]));
  const multi = Object.fromEntries(GRACES.map((g) => [g, Object.fromEntries(TAB_VARIANTS.map((v) => [v, []]))]));
  try {
    for (let rep = 0; rep < STORM_REPS; rep++) {
      const contexts = [];
      const tasks = [];
      try {
        for (const g of GRACES) {
          const srv = servers[g];
          const context = await browser.newContext();
          contexts.push(context);
          const page = await openBench(context, srv);
          for (const v of STORM_VARIANTS) {
            await page.evaluate(async (n) => setup(n, await loginTokens()), v);
            tasks.push(async () => {
              const m0 = await metrics(srv);
              const out = await page.evaluate(([n, k]) => burst(n, k), [v, STORM_CALLS]);
              await delay(500); // stragglers (a late refresh, an aborted request) land in the counters
              const d = delta(m0, await metrics(srv));
              const ok = out.res.filter((s) => s === 200).length;
              single[g][v].push({ ...d, ok, failed: STORM_CALLS - ok, wallMs: round(out.wall, 1),
                signouts: await page.evaluate((n) => signouts[n], v),
                failures: [...new Set(out.res.filter((s) => s !== 200).map(String))].slice(0, 4) });
            });
          }
          for (const v of TAB_VARIANTS) {
            const context = await browser.newContext();
            contexts.push(context);
            const pages = [];
            for (let i = 0; i < TABS; i++) pages.push(await openBench(context, srv));
            // Sign in once, in the first tab; the others share its storage.
            await pages[0].evaluate(async (n) => setup(n, await loginTokens()), v);
            if (v === "rotafetch") {
              await waitFor("every tab to see the session", async () =>
                (await Promise.all(pages.map((p) => p.evaluate(() => clients.rotafetch.authenticated)))).every(Boolean));
            }
            tasks.push(async () => {
              const m0 = await metrics(srv);
              const t0 = performance.now();
              const outs = await Promise.all(pages.map((p) => p.evaluate(([n, k]) => burst(n, k), [v, TAB_CALLS])));
              const wall = performance.now() - t0;
              await delay(500);
              const d = delta(m0, await metrics(srv));
              const res = outs.flatMap((o) => o.res);
              const ok = res.filter((s) => s === 200).length;
              const so = (await Promise.all(pages.map((p) => p.evaluate((n) => signouts[n], v)))).reduce((a, b) => a + b, 0);
              multi[g][v].push({ ...d, ok, failed: res.length - ok, wallMs: round(wall, 1), signouts: so,
                failures: [...new Set(res.filter((s) => s !== 200).map(String))].slice(0, 4) });
            });
          }
        }
        await waitExpired(Date.now());
        for (let i = 0; i < tasks.length; i++) await tasks[(i + rep * 3) % tasks.length]();
      } finally {
        for (const c of contexts) await c.close();
      }
    }
  } finally {
    for (const srv of Object.values(servers)) await srv.stop();
  }
  return {
    single: GRACES.map((g) => ({ grace: g, calls: STORM_CALLS, reps: STORM_REPS, runs: single[g] })),
    multi: GRACES.map((g) => ({ grace: g, tabs: TABS, callsPerTab: TAB_CALLS, reps: STORM_REPS, runs: multi[g] })),
  };
}

// ---------------------------------------------------------------- 5. start-up

async function startup(browser) {
  const srv = await server();
  const context = await browser.newContext();
  const samples = [];
  try {
    for (let i = 0; i < STARTUP_LOADS; i++) {
      const page = await context.newPage();
      await page.goto(`${srv.url}/bench/startup.html`);
      const s = await page.waitForFunction(() => window.startup, null, { timeout: 30_000 }).then((h) => h.jsonValue());
      if (!s.ok) throw new Error("start-up page: client not ready");
      samples.push(s);
      await page.close();
    }
  } finally {
    await context.close();
    await srv.stop();
  }
  const f = (k) => ({ medianMs: round(median(samples.map((s) => s[k])), 2), p95Ms: round(pct(samples.map((s) => s[k]), 95), 2) });
  return { loads: STARTUP_LOADS, initToReady: f("initToReadyMs"), init: f("initMs"), ctor: f("ctorMs"), importModule: f("importMs"), total: f("totalMs") };
}

// ---------------------------------------------------------------- 6. reference server

async function referenceServer() {
  const srv = await server();
  const post = (path, body) => fetch(`${srv.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  try {
    const sessions = [];
    for (let i = 0; i < SERVER_SESSIONS; i++) {
      const r = await post("/auth/login", { username: "demo", password: "demo" });
      sessions.push(await r.json());
    }
    // Warm-up: a few rotations per session.
    for (const s of sessions) for (let i = 0; i < 5; i++) Object.assign(s, await (await post("/auth/refresh", { refresh_token: s.refresh_token })).json());
    const m0 = await metrics(srv);
    const refreshLat = [];
    let errors = 0;
    const t0 = performance.now();
    const deadline = t0 + SERVER_SECONDS * 1000;
    await Promise.all(sessions.map(async (s) => {
      for (let i = 0; i < 200_000 && performance.now() < deadline; i++) {
        const a = performance.now();
        const r = await post("/auth/refresh", { refresh_token: s.refresh_token });
        const body = await r.json();
        refreshLat.push(performance.now() - a);
        if (!r.ok) { errors++; break; }
        Object.assign(s, body);
      }
    }));
    const elapsed = (performance.now() - t0) / 1000;
    const d = delta(m0, await metrics(srv));
    // /api/me with the same parallelism, bounded by time.
    const meLat = [];
    const t1 = performance.now();
    const deadline2 = t1 + SERVER_SECONDS * 1000;
    await Promise.all(sessions.map(async (s) => {
      for (let i = 0; i < 500_000 && performance.now() < deadline2; i++) {
        const a = performance.now();
        const r = await fetch(`${srv.url}/api/me`, { headers: { authorization: `Bearer ${s.access_token}` } });
        await r.arrayBuffer();
        meLat.push(performance.now() - a);
        if (r.status !== 200) { errors++; break; }
      }
    }));
    const elapsed2 = (performance.now() - t1) / 1000;
    return {
      sessions: SERVER_SESSIONS, seconds: SERVER_SECONDS, errors,
      rotations: d.rotated, rotationsPerSec: round(d.rotated / elapsed, 0),
      refresh: { n: refreshLat.length, p50Ms: round(median(refreshLat), 2), p99Ms: round(pct(refreshLat, 99), 2) },
      me: { n: meLat.length, perSec: round(meLat.length / elapsed2, 0), p50Ms: round(median(meLat), 2), p99Ms: round(pct(meLat, 99), 2) },
    };
  } finally {
    await srv.stop();
  }
}

/**
 * What sign-in by redirect (issue #23) adds to the snippet: its JS (js/driver.js's "Sign-in by
 * redirect" methods, js/plumbing.js's sign-in section: the rules and their helpers), minified and
 * gzipped on its own; its .wasm share (options, error codes) is in README, Size.
 */
async function signinShare() {
  const esbuild = await import(join(BENCH, "node_modules/esbuild/lib/main.js"));
  const cut = (file, from, to) => {
    const text = readFileSync(join(ROOT, "js", file), "utf8"), a = text.indexOf(from), b = to ? text.indexOf(to, a) : text.length;
    if (a < 0 || b < 0) throw new Error(`bench: js/${file} has no "${from}" section`);
    return text.slice(a, b);
  };
  const driver = cut("driver.js", "  // Sign-in by redirect:", "  // DPoP: the key");
  const rules = cut("plumbing.js", "// Sign-in by redirect (OAuth");
  const code = `class S {\n${driver}\n}\n${rules}\nexport { S };`;
  const min = (await esbuild.transform(code, { minify: true, format: "esm", target: "es2020" })).code;
  const file = join(OUT, "signin.min.js");
  writeFileSync(file, min);
  return { raw: min.length, gzip: gzip9(file) };
}

// ---------------------------------------------------------------- main

async function main() {
  ensureDeps();
  mkdirSync(OUT, { recursive: true });
  // Snapshot pkg/ under the same lock `make pkg` holds, so a rebuild cannot change it mid-run.
  execFileSync("flock", [join(ROOT, "target/.pkg.lock"), "sh", "-c", `rm -rf '${PKG}' && cp -r '${join(ROOT, "pkg")}' '${PKG}'`]);
  for (const f of ["rotafetch_bg.wasm", "rotafetch.js"]) if (!existsSync(join(PKG, f))) throw new Error(`pkg/${f} missing: run make pkg`);

  const report = { machine: machine(), command: COMMAND, quick: QUICK };
  log("1/6 sizes");
  report.sizes = await sizes();
  report.signin = await signinShare();
  report.esbuild = version("esbuild");
  const browser = await launchBrowser();
  try {
    report.browserVersion = browser.version();
    log("2/6 per-request overhead");
    report.overhead = await overhead(browser);
    log("3-4/6 refresh storms (one tab and eight tabs)");
    const st = await storms(browser);
    report.storms = st.single;
    report.multiTab = st.multi;
    log("5/6 start-up");
    report.startup = await startup(browser);
  } finally {
    await browser.close();
  }
  log("6/6 reference server");
  report.server = await referenceServer();
  report.seconds = Math.round((Date.now() - t00) / 1000);
  report.loadEnd = load();

  const md = markdown(report, { COMMAND, STORM_CALLS, STORM_REPS, TABS, TAB_CALLS });
  writeFileSync(join(OUT, "report.md"), md + "\n");
  writeFileSync(join(OUT, "report.json"), JSON.stringify(report, null, 2) + "\n");
  if (!QUICK) writeSection("BENCH", md);
  console.log(md);
  log(`wrote ${join(OUT, "report.md")}, report.json${QUICK ? "" : " and BENCHMARKS.md"} in ${report.seconds} s`);
  const self = report.sizes[0];
  if (self.gzip > BUDGET) {
    log(`FAILED: the package is ${kb(self.gzip)} KB gzip, over the ${kb(BUDGET)} KB ceiling`);
    process.exitCode = 1;
  }
  const withDpop = report.sizes.find((s) => s.dpop);
  if (withDpop && withDpop.gzip - self.gzip > DPOP_ALLOWANCE) {
    log(`FAILED: rotafetch/dpop adds ${kb(withDpop.gzip - self.gzip)} KB gzip, over the ${kb(DPOP_ALLOWANCE)} KB allowance`);
    process.exitCode = 1;
  }
  if (withDpop && withDpop.gzip > DPOP_BUDGET) {
    log(`FAILED: rotafetch/dpop is ${kb(withDpop.gzip)} KB gzip, over the ${kb(DPOP_BUDGET)} KB ceiling`);
    process.exitCode = 1;
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
