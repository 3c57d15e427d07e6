// Shared by every end-to-end suite (node --test): the real reference server on a free
// loopback port with a fresh SQLite file, and a browser: Debian's Chromium driven by
// playwright-core, or Debian's Firefox ESR driven by puppeteer-core over WebDriver BiDi
// (Playwright's own Firefox build cannot be installed here).
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as delay } from "node:timers/promises";
import { chromium } from "playwright-core";
import puppeteer from "puppeteer-core";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const SERVER_BIN = process.env.ROTAFETCH_SERVER_BIN ?? join(ROOT, "target/server/rotafetch-server");
/** The flags `make demo` uses (scripts/demo.flags), for suites that test the demo as shipped. */
export const DEMO_FLAGS = readFileSync(join(ROOT, "scripts/demo.flags"), "utf8").trim().split(/\s+/);

/**
 * Starts the reference server: `flags` are extra CLI flags (e.g. ["--access-ttl", "5"]).
 * Serves www/ at / and pkg/ at /pkg/ unless flags say otherwise; the user demo/demo exists
 * (`--demo-user`: the server has no default user). `bin`: another build of the server (the
 * benches compare with one from before `--demo-user`, which makes demo/demo unasked). The
 * result's `pid` is the server's.
 */
export async function startServer(flags = [], { bin = SERVER_BIN } = {}) {
  if (!existsSync(bin)) throw new Error(`${bin} missing: run \`make server\``);
  const dir = mkdtempSync(join(tmpdir(), "rotafetch-e2e-"));
  const portFile = join(dir, "port");
  const args = ["--listen", "127.0.0.1:0", "--port-file", portFile, "--db", join(dir, "e2e.db"),
    "--www", join(ROOT, "www"), "--pkg", join(ROOT, "pkg"), ...(bin === SERVER_BIN ? ["--demo-user"] : []), ...flags];
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" } });
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
    pid: child.pid,
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

/** The engines a multi-engine suite runs in: ROTAFETCH_E2E_ENGINES, default "chromium,firefox". */
export const ENGINES = parseEngines(process.env.ROTAFETCH_E2E_ENGINES ?? "chromium,firefox");

function parseEngines(list) {
  const engines = list.split(",").map((e) => e.trim()).filter(Boolean);
  for (const e of engines) if (e !== "chromium" && e !== "firefox") throw new Error(`ROTAFETCH_E2E_ENGINES: unknown engine ${e} (chromium, firefox)`);
  if (!engines.length) throw new Error("ROTAFETCH_E2E_ENGINES names no engine");
  return engines;
}

/**
 * The engine's own browser object, headless and quiet on this machine's closed network:
 * - "chromium": Debian's Chromium through playwright-core (a playwright Browser; what
 *   packages/soak/bench use directly);
 * - "firefox": Debian's Firefox ESR through puppeteer-core over WebDriver BiDi (a puppeteer
 *   Browser). puppeteer's profile already turns off updates, telemetry, safe browsing and
 *   the like; the prefs below add what it leaves on.
 * Suites that run in both engines use `openBrowser`, the common surface over these.
 */
export async function launchBrowser(engine = "chromium") {
  if (engine === "firefox") {
    return puppeteer.launch({
      browser: "firefox",
      protocol: "webDriverBiDi",
      executablePath: process.env.FIREFOX ?? "/usr/bin/firefox-esr",
      headless: true,
      // Playwright's default, so that both engines lay the pages out alike.
      defaultViewport: { width: 1280, height: 720 },
      extraPrefsFirefox: {
        // Background pages must not be throttled (as with Chromium's flags below).
        "dom.min_background_timeout_value": 4,
        "dom.min_background_timeout_value_without_budget_throttling": 4,
        "dom.timeout.enable_budget_timer_throttling": false,
        // Nothing phones home.
        "app.update.auto": false,
        "app.update.enabled": false,
        "toolkit.telemetry.enabled": false,
        "toolkit.telemetry.unified": false,
        "toolkit.telemetry.server": "",
        "datareporting.usage.uploadEnabled": false,
        "network.captive-portal-service.enabled": false,
        "network.connectivity-service.enabled": false,
        "network.dns.disablePrefetch": true,
        "network.prefetch-next": false,
        "browser.region.network.url": "",
        "browser.ping-centre.telemetry": false,
        "extensions.blocklist.enabled": false,
        "browser.newtabpage.activity-stream.telemetry": false,
        "browser.newtabpage.activity-stream.feeds.telemetry": false,
      },
    });
  }
  if (engine !== "chromium") throw new Error(`unknown engine ${engine}`);
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
 * `launchBrowser(engine)` behind the small surface the multi-engine suites use:
 *   browser.engine, browser.newContext({ viewport }), browser.close();
 *   context.addInitScript(fn), context.newPage(), context.close();
 *   page.engine, page.goto(url), page.evaluate(fn, arg), page.waitForFunction(fn, { timeout }),
 *   page.waitForSelector(css, { timeout }) (attached and visible), page.on(event, handler)
 *   for "console" | "pageerror" | "requestfailed" | "response" (the engines' own objects,
 *   which agree on type()/text()/location().url, failure().errorText, status()/url()/
 *   request().method()), page.screenshot({ path, fullPage }), page.setViewportSize({ width,
 *   height }), page.clickButton(name) (role button, exact accessible name),
 *   page.fill(label, value) (the control of the <label> with exactly that text),
 *   page.text(css), page.attribute(css, name), page.close(); page.raw is the engine's page.
 */
export async function openBrowser(engine = "chromium") {
  const raw = await launchBrowser(engine);
  return engine === "firefox" ? new FirefoxBrowser(raw) : new ChromiumBrowser(raw);
}

class ChromiumBrowser {
  engine = "chromium";
  constructor(raw) { this.raw = raw; }
  async newContext({ viewport } = {}) {
    const raw = await this.raw.newContext(viewport ? { viewport } : {});
    return {
      raw,
      addInitScript: (fn) => raw.addInitScript(fn),
      newPage: async () => new ChromiumPage(await raw.newPage()),
      close: () => raw.close(),
    };
  }
  close() { return this.raw.close(); }
}

class FirefoxBrowser {
  engine = "firefox";
  constructor(raw) { this.raw = raw; }
  async newContext({ viewport } = {}) {
    const raw = await this.raw.createBrowserContext();
    const scripts = [];
    const pages = [];
    return {
      raw,
      // Like Playwright's: for every page of the context, present and future.
      async addInitScript(fn) {
        scripts.push(fn);
        for (const p of pages) await p.raw.evaluateOnNewDocument(fn);
      },
      async newPage() {
        // A window rather than a tab: a background tab is hidden (throttled, no animation
        // frames), while Chromium's pages are all visible.
        const page = new FirefoxPage(await raw.newPage({ type: "window" }));
        if (viewport) await page.setViewportSize(viewport);
        for (const fn of scripts) await page.raw.evaluateOnNewDocument(fn);
        pages.push(page);
        return page;
      },
      close: () => raw.close(),
    };
  }
  close() { return this.raw.close(); }
}

class ChromiumPage {
  engine = "chromium";
  constructor(raw) { this.raw = raw; }
  goto(url) { return this.raw.goto(url); }
  evaluate(fn, arg) { return this.raw.evaluate(fn, arg); }
  waitForFunction(fn, { timeout = 30_000 } = {}) { return this.raw.waitForFunction(fn, undefined, { timeout }); }
  waitForSelector(css, { timeout = 30_000 } = {}) { return this.raw.waitForSelector(css, { state: "visible", timeout }); }
  on(event, handler) { this.raw.on(event, handler); return this; }
  screenshot(options) { return this.raw.screenshot(options); }
  setViewportSize(size) { return this.raw.setViewportSize(size); }
  clickButton(name) { return this.raw.getByRole("button", { name, exact: true }).click(); }
  fill(label, value) { return this.raw.getByLabel(label, { exact: true }).fill(value); }
  text(css) { return this.raw.locator(css).textContent(); }
  attribute(css, name) { return this.raw.locator(css).getAttribute(name); }
  url() { return this.raw.url(); }
  /** The next window this page opens (call before the click that opens it). */
  async waitForPopup({ timeout = 30_000 } = {}) { return new ChromiumPage(await this.raw.waitForEvent("popup", { timeout })); }
  close() { return this.raw.close(); }
}

class FirefoxPage {
  engine = "firefox";
  constructor(raw) { this.raw = raw; }
  goto(url) { return this.raw.goto(url); }
  evaluate(fn, arg) { return this.raw.evaluate(fn, arg); }
  // Polling on a timer, not on animation frames (puppeteer's default).
  waitForFunction(fn, { timeout = 30_000 } = {}) { return this.raw.waitForFunction(fn, { timeout, polling: 50 }); }
  waitForSelector(css, { timeout = 30_000 } = {}) { return this.raw.waitForSelector(css, { visible: true, timeout }); }
  on(event, handler) { this.raw.on(event, handler); return this; }
  screenshot(options) { return this.raw.screenshot(options); }
  setViewportSize({ width, height }) { return this.raw.setViewport({ width, height }); }
  /** Like getByRole("button", { name, exact: true }): waits until visible, enabled and stable. */
  clickButton(name) { return this.raw.locator(`::-p-aria([name=${JSON.stringify(name)}][role="button"])`).click(); }
  /**
   * Like getByLabel(label, { exact: true }) for <label for=…>. Not `::-p-aria(label)`: Firefox's
   * accessibility locator answers with the <label> element itself.
   */
  async fill(label, value) {
    const handle = await this.raw.waitForFunction(
      (l) => [...document.querySelectorAll("label")].find((e) => e.textContent.trim() === l)?.control,
      { timeout: 30_000, polling: 50 }, label);
    try {
      await handle.asElement().asLocator().fill(value);
    } finally {
      await handle.dispose();
    }
  }
  async text(css) {
    await this.raw.waitForSelector(css, { timeout: 30_000 });
    return this.raw.$eval(css, (e) => e.textContent);
  }
  async attribute(css, name) {
    await this.raw.waitForSelector(css, { timeout: 30_000 });
    return this.raw.$eval(css, (e, n) => e.getAttribute(n), name);
  }
  url() { return this.raw.url(); }
  /** The next window this page opens (call before the click that opens it). */
  waitForPopup({ timeout = 30_000 } = {}) {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("no popup appeared")), timeout);
      this.raw.once("popup", (p) => { clearTimeout(t); resolve(new FirefoxPage(p)); });
    });
  }
  close() { return this.raw.close(); }
}

/**
 * Records console errors, uncaught page errors and failed requests of a page (a playwright
 * page, or a page of `openBrowser` in either engine); `check()` throws if any happened (pass
 * `allow` to accept expected failures, e.g. a 401 by URL regex). Firefox does not log HTTP
 * error statuses of fetch() on the console as Chromium does.
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
