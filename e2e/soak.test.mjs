// A long session in one tab must not grow: thousands of authenticated calls (sequential,
// concurrent, with bodies), 401s answered by a refresh and a replay, refused calls and
// explicit refreshes, against the real server. The .wasm's linear memory (the allocator
// never gives memory back, so any leak shows as growth), its externref table (a leaked JS
// handle holds a slot) and the page's JS heap after a forced GC are compared between the
// end of a warm-up and the end of the run.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, launchBrowser, watch, ROOT, ROTATED, API_200, API_401 } from "./lib/harness.mjs";

const WARMUP = 10;
const CYCLES = 60;

let server;
let browser;

before(async () => {
  // Access tokens outlive the run: every refresh here is one the test asked for.
  server = await startServer(["--access-ttl", "600", "--test-faults", "--static", `/e2e=${ROOT}/e2e/pages`]);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test("a long session's footprint stays flat: no leak per call, per 401 or per refresh", async () => {
  const page = await browser.newPage();
  // The 401s are the injected ones; Chromium logs each on the console.
  const problems = watch(page, { allow: [/status of 401/] });
  await page.goto(`${server.url}/e2e/soak.html`);
  await page.waitForFunction(() => window.ready === true);
  await page.evaluate(() => start());
  const cdp = await page.context().newCDPSession(page);
  const heap = async () => {
    await cdp.send("HeapProfiler.collectGarbage");
    return (await cdp.send("Runtime.getHeapUsage")).usedSize;
  };

  for (let i = 0; i < WARMUP; i++) await page.evaluate(() => cycle());
  const before = { ...(await page.evaluate(() => footprint())), heap: await heap() };
  const rotatedBefore = await server.metric(ROTATED);
  const api200Before = await server.metric(API_200);
  const api401Before = await server.metric(API_401);
  for (let i = 0; i < CYCLES; i++) await page.evaluate(() => cycle());
  const afterRun = { ...(await page.evaluate(() => footprint())), heap: await heap() };
  const { tally, events } = await page.evaluate(() => ({ tally, events }));
  problems.check();

  // Every call had the outcome it should (counts cover warm-up and run).
  const n = WARMUP + CYCLES;
  assert.deepEqual(tally, {
    "seq 200": 60 * n,
    "burst 200": 40 * n,
    "post 200": 5 * n,
    "401 path 401": 3 * n,
    "bad url TypeError": n,
    "refresh ok": n,
  });
  // One refresh per 401 path and per explicit refresh; the server rotated exactly those.
  assert.deepEqual(events, { refresh: 4 * n, signout: 0 });
  assert.equal(await server.metric(ROTATED) - rotatedBefore, 4 * CYCLES);
  // Each 401 path: the call and its replay, both refused.
  assert.equal(await server.metric(API_401) - api401Before, 2 * 3 * CYCLES);
  assert.equal(await server.metric(API_200) - api200Before, (60 + 40 + 5) * CYCLES);

  // 6 300 calls, 180 401 paths and 60 refreshes later. The high-water marks of memory and of
  // the externref table depend on how many calls overlap at the peak (timing), so one growth
  // step of each is tolerated; a leak grows them steadily:
  // - at most one more 64 KiB page of wasm memory than after the warm-up (a planted leak of
  //   one 24-byte allocation per call grew it by 3);
  assert.ok(afterRun.pages <= before.pages + 1, `wasm memory grew: ${before.pages} -> ${afterRun.pages} pages`);
  // - the externref table grows in steps of 128 slots; at most 512 more (one leaked JS handle
  //   per call would need over 6 000);
  for (const [i, len] of afterRun.tables.entries()) {
    assert.ok(len <= before.tables[i] + 512, `externref table grew: ${before.tables[i]} -> ${len}`);
  }
  // - the JS heap after GC within 512 KiB (measured here: about 60 KiB per 40 slices, the
  //   same order as plain fetch's own growth); a retained Response per call would be over
  //   1 MiB.
  const grew = afterRun.heap - before.heap;
  assert.ok(grew < 512 * 1024, `JS heap grew by ${grew} bytes`);
  await page.close();
});
