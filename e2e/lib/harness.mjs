// Shared by every end-to-end suite (node --test): the real reference server on a free
// loopback port with a fresh SQLite file, and Debian's Chromium driven by playwright-core.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as delay } from "node:timers/promises";
import { chromium } from "playwright-core";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const SERVER_BIN = process.env.ROTAFETCH_SERVER_BIN ?? join(ROOT, "target/server/rotafetch-server");
/** The flags `make demo` uses (scripts/demo.flags), for suites that test the demo as shipped. */
export const DEMO_FLAGS = readFileSync(join(ROOT, "scripts/demo.flags"), "utf8").trim().split(/\s+/);

/**
 * Starts the reference server: `flags` are extra CLI flags (e.g. ["--access-ttl", "5"]).
 * Serves www/ at / and pkg/ at /pkg/ unless flags say otherwise.
 */
export async function startServer(flags = []) {
  if (!existsSync(SERVER_BIN)) throw new Error(`${SERVER_BIN} missing: run \`make server\``);
  const dir = mkdtempSync(join(tmpdir(), "rotafetch-e2e-"));
  const portFile = join(dir, "port");
  const args = ["--listen", "127.0.0.1:0", "--port-file", portFile, "--db", join(dir, "e2e.db"),
    "--www", join(ROOT, "www"), "--pkg", join(ROOT, "pkg"), ...flags];
  const child = spawn(SERVER_BIN, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" } });
  let log = "";
  child.stdout.on("data", (d) => (log += d));
  child.stderr.on("data", (d) => (log += d));
  let exited = false;
  child.on("exit", () => (exited = true));
  const deadline = Date.now() + 30_000;
  while (!existsSync(portFile) || readFileSync(portFile, "utf8").trim() === "") {
    if (exited) throw new Error(`server exited early:\n${log}`);
    if (Date.now() > deadline) { child.kill("SIGKILL"); throw new Error(`server did not start:\n${log}`); }
    await delay(50);
  }
  const port = Number(readFileSync(portFile, "utf8").trim());
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    port,
    log: () => log,
    /** The value of one /metrics series, e.g. `rotafetch_refresh_total{outcome="rotated"}`. */
    async metric(series) {
      const text = await (await fetch(`${url}/metrics`)).text();
      for (const line of text.split("\n")) {
        if (line.startsWith(series + " ")) return Number(line.slice(series.length + 1));
      }
      return 0;
    },
    async faults(plan) {
      const r = await fetch(`${url}/test/faults`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(plan) });
      if (!r.ok) throw new Error(`faults: ${r.status} ${await r.text()}`);
    },
    async stop() {
      if (!exited) {
        child.kill("SIGTERM");
        for (let i = 0; i < 100 && !exited; i++) await delay(50);
        if (!exited) child.kill("SIGKILL");
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const ROTATED = 'rotafetch_refresh_total{outcome="rotated"}';
export const GRACE = 'rotafetch_refresh_total{outcome="grace"}';
export const REUSED = 'rotafetch_refresh_total{outcome="reused"}';
export const API_200 = 'rotafetch_api_requests_total{status="200"}';
export const API_401 = 'rotafetch_api_requests_total{status="401"}';

/** Debian's Chromium, headless, quiet on this machine's closed network. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      // Background tabs must not be throttled: every tab of a test is "background" but one.
      "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
      "--disable-backgrounding-occluded-windows"],
  });
}

/**
 * Records console errors, uncaught page errors and failed requests of a page; `check()`
 * throws if any happened (pass `allow` to accept expected failures, e.g. a 401 by URL regex).
 */
export function watch(page, { allow = [] } = {}) {
  const problems = [];
  const allowed = (s) => allow.some((re) => re.test(s));
  page.on("console", (m) => { if (m.type() === "error" && !allowed(m.text())) problems.push(`console.error: ${m.text()}`); });
  page.on("pageerror", (e) => { if (!allowed(String(e))) problems.push(`page error: ${e}`); });
  page.on("requestfailed", (r) => {
    const s = `${r.method()} ${r.url()} ${r.failure()?.errorText}`;
    if (!allowed(s)) problems.push(`request failed: ${s}`);
  });
  return {
    problems,
    check() { if (problems.length) throw new Error(`unexpected browser problems:\n${problems.join("\n")}`); },
  };
}

/** Polls `fn` (sync or async) until it returns a truthy value; throws after `ms`. */
export async function waitFor(what, fn, ms = 20_000, every = 50) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await delay(every);
  }
}
