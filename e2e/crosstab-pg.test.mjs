// The 8-tab storm of crosstab.test.mjs against TWO server instances on one PostgreSQL
// database, behind a round-robin proxy: the tabs' requests (refreshes included) alternate
// between the instances. With NO reuse grace, a second refresh of one token on either
// instance would be a reuse and revoke the session: one refresh per expiry, 0 reuse,
// 0 sign-outs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launchBrowser, watch, waitFor, ROOT, ROTATED, REUSED, API_200 } from "./lib/harness.mjs";
import { startCluster, startInstance, roundRobinProxy } from "./lib/pg.mjs";

const TABS = 8;
const CALLS = 100;
const ROUNDS = 5;
let cluster;
let instances = [];
let proxy;
let browser;

before(async () => {
  cluster = await startCluster();
  const db = cluster.createDb("crosstab");
  const flags = ["--access-ttl", "8", "--reuse-grace", "0", "--static", `/e2e=${ROOT}/e2e/pages`];
  instances = await Promise.all([startInstance(db, flags), startInstance(db, flags)]);
  proxy = await roundRobinProxy(instances.map((s) => s.url));
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await proxy?.close();
  await Promise.all(instances.map((s) => s.stop()));
  await cluster?.stop();
});

/** A counter summed over both instances. */
async function metric(series) {
  const values = await Promise.all(instances.map((s) => s.metric(series)));
  return values.reduce((a, b) => a + b, 0);
}

test("8 tabs × 100 calls after each of 5 expiries, two instances behind a round-robin proxy: one refresh, no reuse, no sign-out", async () => {
  const context = await browser.newContext();
  try {
    const pages = [];
    const watchers = [];
    for (let i = 0; i < TABS; i++) {
      const page = await context.newPage();
      watchers.push(watch(page));
      await page.goto(`${proxy.url}/e2e/crosstab.html`);
      await page.waitForFunction(() => window.ready === true);
      await page.evaluate(() => makeClient({ storageKey: "xt-pg" }));
      pages.push(page);
    }
    await pages[0].evaluate(() => auth.login("/auth/login", { username: "demo", password: "demo" }));
    await waitFor("every tab to be signed in", async () =>
      (await Promise.all(pages.map((p) => p.evaluate(() => auth.authenticated)))).every(Boolean));
    for (let round = 1; round <= ROUNDS; round++) {
      // Due 4 s before expiry (leeway = lifetime / 2 for an 8 s token); 200 ms margin.
      const dueAt = Math.max(...(await Promise.all(pages.map((p) => p.evaluate(() => auth.expiresAt - 4000 + 200)))));
      await waitFor("the token to be due", () => Date.now() >= dueAt, 10_000);
      const before = await Promise.all(instances.map((s) => s.metric(ROTATED)));
      const [reuse0, ok0] = [await metric(REUSED), await metric(API_200)];
      const results = (await Promise.all(pages.map((p) => p.evaluate((n) => burst(n), CALLS)))).flat();
      const counts = {};
      for (const r of results) counts[r] = (counts[r] ?? 0) + 1;
      assert.deepEqual(counts, { 200: TABS * CALLS }, `round ${round}: every call succeeds`);
      const after = await Promise.all(instances.map((s) => s.metric(ROTATED)));
      assert.equal(after[0] + after[1] - before[0] - before[1], 1, `round ${round}: exactly one refresh`);
      assert.equal(await metric(REUSED) - reuse0, 0, `round ${round}: no reuse detected`);
      assert.equal(await metric(API_200) - ok0, TABS * CALLS);
    }
    const signouts = await Promise.all(pages.map((p) => p.evaluate(() => events.filter((e) => e.type === "signout").length)));
    assert.equal(signouts.reduce((a, b) => a + b, 0), 0, "no tab signed out");
    // Both instances really served: the proxy alternated between them.
    assert.ok(proxy.counts.every((n) => n >= TABS * CALLS), `proxy spread: ${proxy.counts}`);
    for (const w of watchers) w.check();
  } finally {
    await context.close();
  }
});
