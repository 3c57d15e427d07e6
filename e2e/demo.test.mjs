// The demo page (www/) as a user drives it, against the reference server with the flags
// `make demo` uses (scripts/demo.flags), except a shorter access-token lifetime so the
// suite stays fast. A second tab of the same browser context must follow every step.
// Runs in every engine of ENGINES (ROTAFETCH_E2E_ENGINES, default Chromium and Firefox).
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { startServer, openBrowser, waitFor, ENGINES, DEMO_FLAGS, ROOT, ROTATED, REUSED, GRACE, API_200, API_401 } from "./lib/harness.mjs";

const TTL = 6;
const SHOTS = join(ROOT, "target/e2e");
const FAMILIES_REVOKED = "rotafetch_families_revoked_total";
const DPOP_TTL = 300;
const DPOP_MISMATCH = 'rotafetch_refresh_total{outcome="dpop_mismatch"}';

/** DEMO_FLAGS with `name`'s value replaced (clap rejects a repeated flag). */
function withFlag(flags, name, value) {
  const out = [...flags];
  const i = out.indexOf(name);
  if (i >= 0) out[i + 1] = String(value);
  else out.push(name, String(value));
  return out;
}
const DEMO_GRACE = Number(DEMO_FLAGS[DEMO_FLAGS.indexOf("--reuse-grace") + 1]);

before(() => {
  mkdirSync(SHOTS, { recursive: true });
});

/**
 * Fails the test on any console error, page error, failed request or HTTP error status,
 * except the one rejected refresh the theft scenario expects (`expectRejectedRefresh()`):
 * a 400 from the refresh (POST /token, the provider's token endpoint the demo discovers; or
 * /auth/refresh), which Chromium also reports on the console (Firefox does
 * not report HTTP errors of fetch() there). The response must happen exactly once in both.
 */
function guard(page, name) {
  const problems = [];
  let allowedResponses = 0;
  let allowedConsole = 0;
  const isRefresh = (url) => ["/token", "/auth/refresh"].includes(new URL(url).pathname);
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    const url = m.location()?.url ?? "";
    if (allowedConsole > 0 && /status of 400/.test(m.text()) && url && isRefresh(url)) { allowedConsole--; return; }
    problems.push(`${name}: console.error: ${m.text()} (${url})`);
  });
  page.on("pageerror", (e) => problems.push(`${name}: page error: ${e}`));
  page.on("requestfailed", (r) => problems.push(`${name}: request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`));
  page.on("response", (r) => {
    if (r.status() < 400) return;
    if (allowedResponses > 0 && r.status() === 400 && r.request().method() === "POST" && isRefresh(r.url())) { allowedResponses--; return; }
    problems.push(`${name}: unexpected HTTP ${r.status()} from ${r.request().method()} ${r.url()}`);
  });
  return {
    expectRejectedRefresh() {
      allowedResponses++;
      if (page.engine === "chromium") allowedConsole++;
    },
    check() {
      assert.deepEqual(problems, [], "unexpected browser problems");
      assert.equal(allowedResponses, 0, `${name}: the expected rejected refresh never happened`);
    },
  };
}

const state = (page) => page.evaluate(() => ({
  auth: document.body.dataset.auth,
  expired: document.querySelector("#tokens").dataset.expired === "true",
  due: document.querySelector("#tokens").dataset.due === "true",
  grace: document.querySelector("#steal").dataset.grace,
  rotations: Number(document.querySelector("#rotations").textContent),
  explain: !document.querySelector("#explain").hidden,
  signinShown: !document.querySelector("#signin").hidden,
}));

/** The log's entries of one kind, oldest first, as their data-* attributes plus text. */
const entries = (page, kind) => page.evaluate((k) =>
  [...document.querySelectorAll(`#log li[data-kind="${k}"]`)].reverse().map((li) => ({ ...li.dataset, text: li.textContent })), kind);

async function until(what, page, pred, ms = 30_000) {
  // (A sign-in or sign-out may be navigating the page: a state read then fails, and is read again.)
  return waitFor(what, async () => { const s = await state(page).catch(() => null); return s && pred(s) ? s : null; }, ms);
}

async function shoot(page, shot) {
  // Chromium's keep the names they had before the suite ran in more than one engine.
  const name = page.engine === "chromium" ? shot : `${shot}-${page.engine}`;
  await page.screenshot({ path: join(SHOTS, `${name}-1280.png`), fullPage: true });
  await page.setViewportSize({ width: 375, height: 800 });
  await page.screenshot({ path: join(SHOTS, `${name}-375.png`), fullPage: true });
  // No horizontal scrolling at 375 px.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `${name}: the page scrolls sideways at 375 px (${overflow} px)`);
  await page.setViewportSize({ width: 1280, height: 900 });
}

/**
 * Signs out with the demo's button. The sign-out ends the provider's session too
 * (logout({ endSession })): the page goes to the provider's end-session endpoint and comes back
 * as a new document, without the mark set here; resolves once that document has rendered (what
 * it shows is empty before).
 */
async function signOut(page) {
  await page.evaluate(() => { window.beforeSignOut = true; });
  await page.clickButton("Sign out");
  await waitFor("tab 1 back from the provider's end-session endpoint", () =>
    page.evaluate(() => !window.beforeSignOut && document.body.dataset.ready === "true" && location.pathname === "/").catch(() => false));
}

/** Signs in by redirect: the demo's button, then the reference provider's own page (the
 * demo's logout ends the provider's session too, so its page asks every time). */
async function signIn(page) {
  await page.clickButton("Sign in");
  // The provider's page, or straight back when its session is still live (after a revocation).
  const where = await waitFor("the provider's page or the demo signed in", () => page.evaluate(() =>
    (location.pathname == "/authorize" && document.readyState == "complete" ? "form"
      : location.pathname == "/" && document.body.dataset.auth == "in" ? "in" : null)).catch(() => null), 60_000);
  if (where == "form") {
    await page.fill("Username", "demo");
    await page.fill("Password", "demo");
    await page.clickButton("Sign in");
  }
  await waitFor("back on the demo, signed in", () => page.evaluate(() =>
    location.pathname == "/" && document.body?.dataset.auth == "in").catch(() => false), 60_000);
}

for (const engine of ENGINES) {
  describe(engine, () => {
    let server;
    let browser;
    before(async () => {
      // A fresh server per engine: the flow asserts absolute metric values.
      server = await startServer(withFlag(DEMO_FLAGS, "--access-ttl", TTL));
      browser = await openBrowser(engine);
    });
    after(async () => {
      await browser?.close();
      await server?.stop();
    });
    test(`[${engine}] demo page: login, rotation, burst, stolen refresh token, two tabs in sync`, { timeout: 180_000 }, async () => {
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      try {
        await demoFlow(context, server);
      } finally {
        await context.close();
      }
    });
    test(`[${engine}] demo page with DPoP: the stolen refresh token is refused, the user stays signed in`, { timeout: 120_000 }, async () => {
      // Its own server, whose access tokens outlive the test: every refresh here is one the
      // test asks for, so the rotation counts are exact whatever the machine's speed.
      const dpopServer = await startServer(withFlag(DEMO_FLAGS, "--access-ttl", DPOP_TTL));
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      try {
        await dpopFlow(context, dpopServer);
      } finally {
        await context.close();
        await dpopServer.stop();
      }
    });
  });
}

async function demoFlow(context, server) {
  const page = await context.newPage();
  const g1 = guard(page, "tab 1");
  await page.goto(`${server.url}/`);
  await page.waitForSelector("body[data-ready=true]");
  const tab2 = await context.newPage();
  const g2 = guard(tab2, "tab 2");
  await tab2.goto(`${server.url}/`);
  await tab2.waitForSelector("body[data-ready=true]");

  // The page states the grace window the server really runs with.
  assert.equal(await page.attribute("body", "data-grace"), String(DEMO_GRACE), "www/app.js GRACE_SECONDS must match scripts/demo.flags");
  assert.ok(DEMO_GRACE > 0 && DEMO_GRACE < 15, "the demo's grace must be shorter than its access-token lifetime");
  assert.equal((await state(page)).auth, "out");
  assert.ok((await state(page)).signinShown);

  // 1. Sign in; the second tab follows.
  await signIn(page);
  await until("tab 1 signed in", page, (s) => s.auth === "in");
  await until("tab 2 signed in by tab 1", tab2, (s) => s.auth === "in");
  assert.match(await page.text("#status"), /Signed in as demo/);
  assert.match(await page.text("#rt-fp"), /^[0-9a-f]{8}…$/);
  assert.equal(await page.text("#ttl"), `${TTL} s`);

  // 2. Call the API.
  await page.clickButton("Call API");
  await waitFor("the first call", async () => (await entries(page, "call")).length === 1);
  assert.equal((await entries(page, "call"))[0].status, "200");

  // 3. Past expiry: the next call refreshes first, and the log says so.
  await until("the access token to expire", page, (s) => s.expired, TTL * 1000 + 20_000);
  await page.clickButton("Call API");
  await waitFor("the second call", async () => (await entries(page, "call")).length === 2);
  const second = (await entries(page, "call"))[1];
  assert.equal(second.status, "200");
  assert.equal(second.refreshed, "true", "the log must show the call was sent after a refresh");
  assert.equal(await server.metric(ROTATED), 1);
  assert.ok((await entries(page, "event")).some((e) => e.event === "refresh" && e.source === "this-tab"));
  await until("tab 2 to count the rotation", tab2, (s) => s.rotations === 1);
  assert.ok((await entries(tab2, "event")).some((e) => e.event === "refresh" && e.source === "other-tab"));
  assert.equal(await tab2.text("#rt-fp"), await page.text("#rt-fp"));

  // 4. Burst of 20 concurrent calls when a refresh is due: 20 × 200 and one refresh.
  await until("the next refresh to be due", page, (s) => s.due, TTL * 1000 + 20_000);
  const api200 = await server.metric(API_200);
  await page.clickButton("Burst (20 calls)");
  const [burst] = await waitFor("the burst summary", async () => { const b = await entries(page, "burst"); return b.length ? b : null; });
  assert.equal(burst.ok, "20");
  assert.equal(burst.refreshes, "1");
  assert.equal((await entries(page, "call")).filter((c) => c.text.includes("burst")).length, 20);
  assert.equal(await server.metric(ROTATED), 2);
  assert.equal(await server.metric(API_200) - api200, 20);
  assert.equal(await server.metric(API_401), 0);
  await until("tab 2 to count both rotations", tab2, (s) => s.rotations === 2);
  await until("tab 1 to count both rotations", page, (s) => s.rotations === 2);
  await shoot(page, "demo");

  // 5. The attacker spends the stored refresh token. Inside the grace window the page holds
  //    this tab's refresh back; after it, the next refresh is a reuse and revokes the session.
  await page.clickButton("Steal and spend the refresh token");
  await waitFor("the theft in the log", async () => (await entries(page, "attack")).some((e) => e.event === "theft"));
  assert.equal(await server.metric(ROTATED), 3);
  assert.equal(await server.metric(REUSED), 0);
  await until("tab 2 to learn of the theft", tab2, (s) => s.grace === "open" || s.grace === "over");
  await shoot(page, "demo-stolen");
  await until("the grace window to pass", page, (s) => s.grace === "over", DEMO_GRACE * 1000 + 20_000);
  await until("the next refresh to be due", page, (s) => s.due, TTL * 1000 + 20_000);
  g1.expectRejectedRefresh();
  await page.clickButton("Call API");
  await until("tab 1 signed out", page, (s) => s.auth === "out" && s.explain && s.signinShown);
  await until("tab 2 signed out with it", tab2, (s) => s.auth === "out" && s.explain && s.signinShown);
  assert.equal(await server.metric(REUSED), 1);
  assert.equal(await server.metric(GRACE), 0, "the user's refresh must not fall inside the grace window");
  const failed = (await entries(page, "call")).at(-1);
  assert.equal(failed.status, "error");
  assert.equal(failed.code, "refresh_rejected");
  assert.ok((await entries(page, "event")).some((e) => e.event === "signout" && e.reason === "rejected"));
  assert.ok((await entries(tab2, "event")).some((e) => e.event === "signout" && e.reason === "other-tab"));
  for (const p of [page, tab2]) {
    assert.match(await p.text("#explain-h"), /refresh token reuse/);
    const text = await p.text("#explain");
    assert.match(text, /grace window/);
    assert.match(text, /revoked the whole session/);
    assert.match(await p.text("#status"), /session revoked/);
  }
  // The explanation gets focus so that it is read first.
  assert.equal(await page.evaluate(() => document.activeElement?.id), "explain");
  await shoot(page, "demo-revoked");

  // 6. Sign in again, then sign out: both tabs follow, the explanation goes away.
  await signIn(page);
  await until("tab 1 signed in again", page, (s) => s.auth === "in" && !s.explain && s.rotations === 0);
  await until("tab 2 signed in again", tab2, (s) => s.auth === "in" && !s.explain && s.rotations === 0);
  await signOut(page);
  await until("tab 2 signed out together", tab2, (s) => s.auth === "out" && !s.explain && s.signinShown);
  assert.ok((await entries(tab2, "event")).filter((e) => e.event === "signout" && e.reason === "other-tab").length >= 2);
  await until("tab 1 signed out", page, (s) => s.auth === "out" && !s.explain && s.signinShown);
  await waitFor("the logout to reach the server", async () => (await server.metric(FAMILIES_REVOKED)) === 2);

  // No token ever reached the DOM.
  const tokens = await page.evaluate(() => document.documentElement.outerHTML);
  assert.doesNotMatch(tokens, /eyJ[\w-]{10,}\.[\w-]{10,}/, "an access token is in the DOM");
  assert.doesNotMatch(tokens, /[\w-]{43}/, "something refresh-token-shaped is in the DOM");

  g1.check();
  g2.check();
}

/**
 * Waits until the page has (re)loaded with DPoP `mode` ("on" | "off"). The DPoP switch reloads
 * the page, so an evaluate may meet a document on its way out: that is retried.
 */
async function loaded(page, mode, what) {
  await waitFor(what, async () => {
    try {
      return await page.evaluate((m) => document.body.dataset.ready === "true" && document.body.dataset.dpop === m, mode);
    } catch {
      return false;
    }
  });
}

/** Flips the DPoP switch (a checkbox of the sign-in form; the page reloads). */
function flipDpop(page) {
  return page.raw.locator("#dpop").click();
}

async function dpopFlow(context, server) {
  const page = await context.newPage();
  const g1 = guard(page, "tab 1");
  await page.goto(`${server.url}/`);
  await loaded(page, "off", "tab 1 loaded without DPoP");
  const tab2 = await context.newPage();
  const g2 = guard(tab2, "tab 2");
  await tab2.goto(`${server.url}/`);
  await loaded(tab2, "off", "tab 2 loaded without DPoP");
  assert.match(await page.text("#dpop-state"), /^DPoP: off/);

  // 1. The switch, before sign-in: this tab reloads with the dpop entry, the other tab follows.
  await flipDpop(page);
  await loaded(page, "on", "tab 1 reloaded with DPoP");
  await loaded(tab2, "on", "tab 2 reloaded with DPoP by tab 1's switch");
  for (const p of [page, tab2]) {
    assert.equal(await p.evaluate(() => document.getElementById("dpop").checked), true);
    assert.match(await p.text("#dpop-state"), /^DPoP: on/);
    assert.ok((await entries(p, "info")).some((e) => e.event === "ready" && e.text.includes("/pkg/dpop/rotafetch.js")));
  }

  const rotated = await server.metric(ROTATED);
  const mismatch = await server.metric(DPOP_MISMATCH);
  const reused = await server.metric(REUSED);
  const grace = await server.metric(GRACE);
  const api401 = await server.metric(API_401);
  const revoked = await server.metric(FAMILIES_REVOKED);

  // 2. Sign in: the session is bound to this browser's key; the second tab follows.
  await signIn(page);
  await until("tab 1 signed in", page, (s) => s.auth === "in");
  await until("tab 2 signed in by tab 1", tab2, (s) => s.auth === "in");
  assert.match(await page.text("#dpop-state"), /^DPoP: on — tokens bound to this browser's key \(jkt [\w-]{8}…\)$/);
  const jkt = await page.text("#jkt");
  assert.match(jkt, /^[\w-]{8}…$/);
  assert.equal(await tab2.text("#jkt"), jkt);
  await page.clickButton("Call API");
  await waitFor("the first call", async () => (await entries(page, "call")).length === 1);
  assert.equal((await entries(page, "call"))[0].status, "200");
  const fp = await page.text("#rt-fp");

  // 3. The thief presents the stored refresh token without a proof: refused, nothing spent,
  //    nothing revoked, and both tabs say why.
  g1.expectRejectedRefresh();
  await page.clickButton("Steal and spend the refresh token");
  const [attack] = await waitFor("the refused theft in the log", async () => {
    const a = (await entries(page, "attack")).filter((e) => e.event === "theft-refused");
    return a.length ? a : null;
  });
  assert.equal(attack.status, "400");
  assert.equal(attack.error, "invalid_grant");
  assert.equal(await server.metric(DPOP_MISMATCH), mismatch + 1);
  assert.equal(await server.metric(ROTATED), rotated);
  assert.equal(await server.metric(REUSED), reused);
  assert.equal(await server.metric(FAMILIES_REVOKED), revoked);
  for (const p of [page, tab2]) {
    await waitFor("the explanation", async () => /Refused\./.test(await p.text("#steal-status")));
    const text = await p.text("#steal-status");
    assert.match(text, /DPoP-bound/);
    assert.ok(text.includes(`cnf.jkt ${jkt}`), "the explanation names the key thumbprint");
    assert.match(text, /non-extractable/);
    assert.match(text, /Nothing was spent and nothing was revoked/);
    assert.equal((await state(p)).auth, "in");
    assert.equal((await state(p)).grace, "none", "no grace hold: nothing was spent");
  }
  assert.equal(await page.text("#rt-fp"), fp, "the refresh token was not spent");
  await shoot(page, "demo-dpop-refused");

  // 4. The user carries on: a call, a refresh (rotated once), a call with the new tokens.
  await page.clickButton("Call API");
  await waitFor("the call after the theft", async () => (await entries(page, "call")).length === 2);
  assert.equal((await entries(page, "call"))[1].status, "200");
  await page.clickButton("Refresh now");
  await until("tab 1 to count the rotation", page, (s) => s.rotations === 1);
  await until("tab 2 to count the rotation", tab2, (s) => s.rotations === 1);
  assert.equal(await server.metric(ROTATED), rotated + 1);
  assert.notEqual(await page.text("#rt-fp"), fp);
  await waitFor("tab 2 to show the new fingerprint", async () => (await tab2.text("#rt-fp")) === (await page.text("#rt-fp")));
  assert.equal(await tab2.text("#jkt"), jkt, "a rotation keeps the key");
  await tab2.clickButton("Call API");
  await waitFor("tab 2's call", async () => (await entries(tab2, "call")).length === 1);
  assert.equal((await entries(tab2, "call"))[0].status, "200");
  assert.equal((await entries(tab2, "call"))[0].refreshed, "false", "tab 2 adopted the rotation");
  for (const p of [page, tab2]) {
    assert.ok(!(await entries(p, "event")).some((e) => e.event === "signout"), "no signout");
  }
  assert.equal(await server.metric(DPOP_MISMATCH), mismatch + 1);
  assert.equal(await server.metric(REUSED), reused);
  assert.equal(await server.metric(GRACE), grace);
  assert.equal(await server.metric(API_401), api401);
  assert.equal(await server.metric(FAMILIES_REVOKED), revoked);

  // No token, nor a whole key thumbprint, ever reached the DOM (of either tab).
  for (const p of [page, tab2]) {
    const html = await p.evaluate(() => document.documentElement.outerHTML);
    assert.doesNotMatch(html, /eyJ[\w-]{10,}\.[\w-]{10,}/, "an access token is in the DOM");
    assert.doesNotMatch(html, /[\w-]{43}/, "something token- or thumbprint-shaped is in the DOM");
  }

  // 5. Sign out (with a proof: the family is revoked once), then the switch back off: both tabs follow.
  await signOut(page);
  await until("tab 1 signed out", page, (s) => s.auth === "out" && !s.explain && s.signinShown);
  await until("tab 2 signed out together", tab2, (s) => s.auth === "out" && !s.explain && s.signinShown);
  await waitFor("the logout to reach the server", async () => (await server.metric(FAMILIES_REVOKED)) === revoked + 1);
  assert.match(await page.text("#dpop-state"), /^DPoP: on — the next session/);
  await flipDpop(page);
  await loaded(page, "off", "tab 1 reloaded without DPoP");
  await loaded(tab2, "off", "tab 2 reloaded without DPoP");

  g1.check();
  g2.check();
}
