// One refresh per browser, not per tab: 8 tabs of one browser context share the session;
// after every expiry each fires 100 concurrent calls. Against a server with NO reuse grace,
// a second refresh of the same token would be a reuse and revoke the session.
// Runs in every engine of ENGINES (ROTAFETCH_E2E_ENGINES, default Chromium and Firefox).
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, openBrowser, watch, waitFor, ENGINES, ROOT, ROTATED, REUSED, API_200 } from "./lib/harness.mjs";

const TABS = 8;
const CALLS = 100;
const ROUNDS = 10;
let server;

before(async () => {
  // 8 s tokens (due after 4 s): a round of 800 calls fits well inside one refresh window,
  // even on a loaded 2-core machine. One server for every engine: the tests run one at a
  // time and compare metrics before and after.
  server = await startServer(["--access-ttl", "8", "--reuse-grace", "0", "--static", `/e2e=${ROOT}/e2e/pages`]);
});

after(async () => {
  await server?.stop();
});

/** Opens `TABS` pages in one context (shared localStorage, IndexedDB and locks). */
async function openTabs(browser, { options, withoutLocks = false }) {
  const context = await browser.newContext();
  if (withoutLocks) {
    await context.addInitScript(() => {
      delete Navigator.prototype.locks;
    });
  }
  const pages = [];
  const watchers = [];
  try {
    for (let i = 0; i < TABS; i++) {
      const page = await context.newPage();
      const watcher = watch(page);
      watchers.push(watcher);
      await page.goto(`${server.url}/e2e/crosstab.html`);
      try {
        await page.waitForFunction(() => window.ready === true, { timeout: 60_000 });
      } catch (e) {
        // Say why (e.g. /pkg/rotafetch.js failed to load).
        throw new Error(`${browser.engine} tab ${i} never got ready: ${e.message}; ${watcher.problems.join("; ")}`);
      }
      assert.equal(await page.evaluate(() => "locks" in navigator), !withoutLocks, `${browser.engine}: navigator.locks`);
      await page.evaluate((o) => makeClient(o), options);
      pages.push(page);
    }
  } catch (e) {
    await context.close();
    throw e;
  }
  return { context, pages, watchers };
}

async function signIn(pages) {
  await pages[0].evaluate(() => auth.login("/auth/login", { username: "demo", password: "demo" }));
  // The other tabs learn of the login from the storage event.
  await waitFor("every tab to be signed in", async () =>
    (await Promise.all(pages.map((p) => p.evaluate(() => auth.authenticated)))).every(Boolean));
}

/** Waits until every tab considers its access token due for a refresh. */
async function waitUntilDue(pages) {
  // Leeway = min(10 s, lifetime / 2) = 4 s for an 8 s token; 200 ms margin.
  const expiries = await Promise.all(pages.map((p) => p.evaluate(() => auth.expiresAt)));
  assert.ok(expiries.every((e) => typeof e === "number"), `every tab has a session: expiresAt ${JSON.stringify(expiries)}`);
  const dueAt = Math.max(...expiries) - 4000 + 200;
  await waitFor("the token to be due", () => Date.now() >= dueAt, 10_000);
  return dueAt;
}

/** Every tab fires `CALLS` concurrent calls at once; returns all results. */
async function stormRound(pages) {
  const results = await Promise.all(pages.map((p) => p.evaluate((n) => burst(n), CALLS)));
  return results.flat();
}

async function signoutCount(pages) {
  const events = await Promise.all(pages.map((p) => p.evaluate(() => events.filter((e) => e.type === "signout").length)));
  return events.reduce((a, b) => a + b, 0);
}

async function runStorm(browser, storm, opts) {
  const label = `${browser.engine} ${storm}`;
  const { context, pages, watchers } = await openTabs(browser, opts);
  try {
    await signIn(pages);
    const durations = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const dueAt = await waitUntilDue(pages);
      const [rot0, reuse0, ok0] = [await server.metric(ROTATED), await server.metric(REUSED), await server.metric(API_200)];
      const t0 = Date.now();
      const results = await stormRound(pages);
      // A round longer than the refresh window (4 s after the refresh) legitimately needs a
      // second refresh: the failure messages say how long the round took.
      durations.push(Date.now() - t0);
      const took = `round took ${durations.at(-1)} ms, started ${t0 - dueAt} ms after due`;
      const bad = results.filter((s) => s !== 200);
      if (bad.length) {
        const counts = {};
        for (const r of results) counts[r] = (counts[r] ?? 0) + 1;
        const events = await Promise.all(pages.map((p) => p.evaluate(() => events.slice(-4))));
        const metrics = (await (await fetch(`${server.url}/metrics`)).text()).split("\n").filter((l) => l.startsWith("rotafetch_refresh")).join("; ");
        assert.fail(`${label} round ${round} (${took}): results ${JSON.stringify(counts)}; metrics ${metrics}; last events ${JSON.stringify(events)}`);
      }
      assert.equal(results.length, TABS * CALLS);
      assert.equal(await server.metric(ROTATED) - rot0, 1, `${label} round ${round}: exactly one refresh (${took})`);
      assert.equal(await server.metric(REUSED) - reuse0, 0, `${label} round ${round}: no reuse detected (${took})`);
      assert.equal(await server.metric(API_200) - ok0, TABS * CALLS);
    }
    assert.equal(await signoutCount(pages), 0, `${label}: no tab signed out`);
    // Every tab ends on the same session.
    const expiries = new Set(await Promise.all(pages.map((p) => p.evaluate(() => auth.expiresAt))));
    assert.equal(expiries.size, 1, `${label}: tabs disagree on the current token`);
    // A logout in one tab signs every tab out.
    await pages[3].evaluate(() => auth.logout());
    await waitFor("every tab to be signed out", async () =>
      (await Promise.all(pages.map((p) => p.evaluate(() => !auth.authenticated)))).every(Boolean));
    const reasons = await Promise.all(pages.map((p) => p.evaluate(() => events.filter((e) => e.type === "signout").map((e) => e.reason))));
    assert.deepEqual(reasons[3], ["logout"]);
    for (const [i, r] of reasons.entries()) if (i !== 3) assert.deepEqual(r, ["other-tab"], `tab ${i}`);
    for (const w of watchers) w.check();
    return durations;
  } finally {
    await context.close();
  }
}

for (const engine of ENGINES) {
  describe(engine, () => {
    let browser;
    before(async () => {
      browser = await openBrowser(engine);
    });
    after(async () => {
      await browser?.close();
    });

    test(`[${engine}] 8 tabs × 100 calls after each of 10 expiries: one refresh per expiry, no reuse (Web Locks)`, async (t) => {
      t.diagnostic(`round durations (ms): ${await runStorm(browser, "web-locks", { options: { storageKey: "xt-locks" } })}`);
    });

    test(`[${engine}] the same storm without navigator.locks (IndexedDB lease fallback)`, async (t) => {
      t.diagnostic(`round durations (ms): ${await runStorm(browser, "no-locks", { options: { storageKey: "xt-lease" }, withoutLocks: true })}`);
    });

    test(`[${engine}] control: with crossTab: false the tabs spend the same token and the server sees reuse`, async () => {
      const { context, pages } = await openTabs(browser, { options: { storageKey: "xt-control", crossTab: false } });
      try {
        await pages[0].evaluate(() => auth.login("/auth/login", { username: "demo", password: "demo" }));
        // Without cross-tab sync the others only have what localStorage held at start: copy it
        // in by re-creating their clients now that the session is stored. Chromium hands a
        // write to the other pages' renderers asynchronously: wait until each sees it.
        const stored = await pages[0].evaluate(() => localStorage.getItem("xt-control"));
        assert.ok(stored, "the session is stored under its storageKey");
        await waitFor("every tab to see the stored session", async () =>
          (await Promise.all(pages.map((p) => p.evaluate(() => localStorage.getItem("xt-control"))))).every((v) => v === stored));
        for (const p of pages.slice(1)) await p.evaluate(() => makeClient({ storageKey: "xt-control", crossTab: false }));
        await waitUntilDue(pages);
        const reuse0 = await server.metric(REUSED);
        await stormRound(pages);
        assert.ok(await server.metric(REUSED) - reuse0 >= 1, "per-tab refreshing is caught as reuse (the test can fail)");
        assert.ok(await signoutCount(pages) >= 1, "and tabs are signed out");
      } finally {
        await context.close();
      }
    });
  });
}
