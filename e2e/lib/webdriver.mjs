// WebKit for the e2e suites: Debian's WebKitWebDriver (which drives WebKitGTK's MiniBrowser)
// over plain W3C WebDriver (fetch, no client library), under xvfb-run (MiniBrowser needs a
// display). It offers the part of harness.mjs's `openBrowser` surface the sign-in suites use:
//   browser.newContext() (one per browser: WebDriver has one profile per session),
//   context.newPage(), page.goto/evaluate/waitForFunction/fill/clickButton/text/close, and
//   page.waitForPopup() (a window the page opened, e.g. by window.open).
// WebDriver classic runs commands in one current window: each page switches to its own first,
// and commands go one at a time.
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { setTimeout as delay } from "node:timers/promises";

const ELEMENT = "element-6066-11e4-a52e-4f735466cecf";

const freePort = () => new Promise((resolve, reject) => {
  const s = createServer().listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); });
  s.on("error", reject);
});

/** Starts WebKitWebDriver under xvfb-run and opens a session (one MiniBrowser). */
export async function launchWebKit() {
  const port = await freePort();
  const child = spawn("xvfb-run", ["-a", process.env.WEBKIT_DRIVER ?? "/usr/bin/WebKitWebDriver", `--port=${port}`],
    { stdio: "ignore", detached: true });
  let exited = false;
  child.on("exit", () => (exited = true));
  const base = `http://127.0.0.1:${port}`;
  for (const deadline = Date.now() + 30_000; ;) {
    if (exited) throw new Error("WebKitWebDriver exited early");
    if (await fetch(`${base}/status`).then((r) => r.ok, () => false)) break;
    if (Date.now() > deadline) throw new Error("WebKitWebDriver did not start");
    await delay(100);
  }
  const started = await call(base, "POST", "/session", { capabilities: { alwaysMatch: { pageLoadStrategy: "normal" } } });
  const browser = new WebKitBrowser(`${base}/session/${started.sessionId}`, () => {
    if (!exited) process.kill(-child.pid, "SIGTERM");
  });
  await browser.run("POST", "/timeouts", { script: 60_000, pageLoad: 60_000 });
  return browser;
}

async function call(base, method, path, body) {
  const r = await fetch(base + path, { method, headers: { "content-type": "application/json" }, body: body && JSON.stringify(body) });
  const json = await r.json();
  if (!r.ok) throw new Error(`WebDriver ${method} ${path}: ${json.value?.error}: ${json.value?.message}`);
  return json.value;
}

class WebKitBrowser {
  engine = "webkit";
  #queue = Promise.resolve();
  #current = null;
  /** Every window handle a page object stands for. */
  known = new Set();
  constructor(url, stop) { this.url = url; this.stop = stop; }
  /** One WebDriver command, after every earlier one. */
  run(method, path, body) {
    const p = this.#queue.then(() => call(this.url, method, path, body));
    this.#queue = p.catch(() => {});
    return p;
  }
  /** `command` in window `handle` (switched to first). */
  in(handle, method, path, body) {
    const p = this.#queue.then(async () => {
      if (this.#current !== handle) {
        await call(this.url, "POST", "/window", { handle });
        this.#current = handle;
      }
      return call(this.url, method, path, body);
    });
    this.#queue = p.catch(() => {});
    return p;
  }
  forget(handle) { if (this.#current === handle) this.#current = null; }
  async newContext() {
    if (this.context) throw new Error("WebKit: one context per browser");
    let first = await this.run("GET", "/window");
    return (this.context = {
      newPage: async () => {
        const handle = first ?? (await this.run("POST", "/window/new", { type: "tab" })).handle;
        first = null;
        this.known.add(handle);
        return new WebKitPage(this, handle);
      },
      close: async () => {},
    });
  }
  async close() {
    await call(this.url, "DELETE", "").catch(() => {});
    this.stop();
  }
}

class WebKitPage {
  engine = "webkit";
  constructor(browser, handle) { this.b = browser; this.handle = handle; }
  #do(method, path, body) { return this.b.in(this.handle, method, path, body); }
  goto(url) { return this.#do("POST", "/url", { url }); }
  url() { return this.#do("GET", "/url"); }
  /** `fn(arg)` in the page (a promise is awaited); its JSON-able result. */
  async evaluate(fn, arg) {
    const script = `const done = arguments[1];
      Promise.resolve().then(() => (${fn})(arguments[0])).then((v) => done({ v }), (e) => done({ e: String(e) + (e && e.stack ? "\\n" + e.stack : "") }));`;
    const r = await this.#do("POST", "/execute/async", { script, args: [arg ?? null] });
    if (r && "e" in r) throw new Error(`in the page: ${r.e}`);
    return r?.v;
  }
  async waitForFunction(fn, { timeout = 30_000 } = {}, arg) {
    for (const deadline = Date.now() + timeout; ;) {
      const v = await this.evaluate(fn, arg).catch(() => undefined);
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${fn}`);
      await delay(50);
    }
  }
  /** The element `find()` returns in the page, waited for. */
  async #element(find, arg) {
    for (const deadline = Date.now() + 30_000; ;) {
      const script = `return (${find})(arguments[0]) || null;`;
      const e = await this.#do("POST", "/execute/sync", { script, args: [arg] }).catch(() => null);
      if (e?.[ELEMENT]) return e[ELEMENT];
      if (Date.now() > deadline) throw new Error(`WebKit: no element for ${arg}`);
      await delay(50);
    }
  }
  /** Types `value` into the control of the <label> whose text is exactly `label`. */
  async fill(label, value) {
    const id = await this.#element((l) => [...document.querySelectorAll("label")].find((e) => e.textContent.trim() === l)?.control, label);
    await this.#do("POST", `/element/${id}/clear`, {});
    await this.#do("POST", `/element/${id}/value`, { text: value });
  }
  /** Clicks the button whose text (or value) is exactly `name`: a real click (user activation). */
  async clickButton(name) {
    const id = await this.#element((n) => [...document.querySelectorAll("button, input[type=submit]")]
      .find((e) => (e.textContent.trim() || e.value) === n && !e.disabled), name);
    await this.#do("POST", `/element/${id}/click`, {});
  }
  text(css) { return this.waitForFunction((c) => document.querySelector(c)?.textContent, {}, css); }
  /** The page of a window no page stands for yet (one this page opened), waited for. */
  async waitForPopup({ timeout = 30_000 } = {}) {
    for (const deadline = Date.now() + timeout; ;) {
      const fresh = (await this.b.run("GET", "/window/handles")).find((h) => !this.b.known.has(h));
      if (fresh) {
        this.b.known.add(fresh);
        return new WebKitPage(this.b, fresh);
      }
      if (Date.now() > deadline) throw new Error("no popup appeared");
      await delay(50);
    }
  }
  on() { return this; }
  async close() {
    await this.#do("DELETE", "/window").catch(() => {});
    this.b.forget(this.handle);
  }
}
