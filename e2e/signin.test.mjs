// Sign-in by redirect against the reference server as an OpenID provider (its /authorize form,
// discovery, PAR, DPoP-bound codes, RFC 9207 iss, revocation, end session), in Chromium,
// Firefox and WebKit (ROTAFETCH_SIGNIN_ENGINES, default all three). Each engine runs two flows,
// each proving several rules on the way (e2e/pages/signin.html is the app and its callback,
// and runs handleRedirect twice, as React StrictMode does):
// 1. bearer: two tabs sign in at once, a third, signed out, follows both without a reload; one
//    exchange per callback; the address bar cleaned; the callback loaded again (Back, reload)
//    exchanges nothing and signs nobody out; logout revokes the refresh token and ends the
//    provider session (a prompt=none sign-in then gets the provider's login_required).
// 2. DPoP (rotafetch/dpop entry, the server demanding nonces): a popup sign-in through PAR with
//    a DPoP-bound code; a tampered state and a tampered iss are refused, nothing exchanged, the
//    session untouched; a closed popup and a blocked one are typed errors.
import { describe, test, before, after, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { startServer, openBrowser, waitFor, ROOT, SERVER_BIN } from "./lib/harness.mjs";
import { launchWebKit } from "./lib/webdriver.mjs";

const ENGINES = (process.env.ROTAFETCH_SIGNIN_ENGINES ?? "chromium,firefox,webkit").split(",").filter(Boolean);
const USE_NONCE = 'rotafetch_dpop_proofs_total{outcome="use_nonce"}';
const PAGE = "/e2e/signin.html";
let server;

before(async () => {
  // The demo user (demo/demo) signs in at the provider's form; newer servers create it only when asked.
  const demoUser = execFileSync(SERVER_BIN, ["--help"], { encoding: "utf8" }).includes("--demo-user") ? ["--demo-user"] : [];
  server = await startServer(["--dpop-nonce", "--static", `/e2e=${ROOT}/e2e/pages`, ...demoUser,
    "--client", `e2e=${PAGE}`, "--client", `e2e-dpop=${PAGE}?entry=dpop`,
    "--post-logout", `e2e=${PAGE}?bye=1`]);
});

after(async () => {
  await server?.stop();
});

const open = (engine) => (engine === "webkit" ? launchWebKit() : openBrowser(engine));

/** A tab of `context` at `path`, its page script done. */
async function tab(context, path = PAGE) {
  const page = await context.newPage();
  if (process.env.SIGNIN_DEBUG) {
    page.on("console", (m) => console.error("console:", m.text()));
    page.on("pageerror", (e) => console.error("pageerror:", String(e)));
    page.on("response", (r) => console.error("resp:", r.status(), r.url().slice(0, 120)));
  }
  await page.goto(server.url + path);
  await page.waitForFunction(() => window.ready === true, { timeout: 60_000 });
  return page;
}

/** Signs in at the provider's form in `page` (which is on it, or on its way there). */
async function provider(page) {
  await page.fill("Username", "demo");
  await page.fill("Password", "demo");
  await page.clickButton("Sign in");
}

/** What `signInPopup` settled with (the page's click handler keeps it). */
async function popupResult(page, timeout) {
  await page.waitForFunction(() => window.popupResult !== undefined, { timeout });
  return page.evaluate(() => window.popupResult);
}

const state = (page) => page.evaluate(() => ({
  href: location.href, results: window.results, exchanges: window.exchanges,
  authenticated: auth.authenticated, events: window.events,
}));

for (const engine of ENGINES) {
  describe(`sign-in by redirect in ${engine}`, () => {
    // A browser per test: a fresh profile (storage, provider cookie), and WebDriver's WebKit
    // has one context per session.
    let browser;
    beforeEach(async () => { browser = await open(engine); });
    afterEach(async () => { await browser?.close(); });

    test("two tabs at once, every tab follows, one exchange each, Back, logout", async () => {
      const context = await browser.newContext();
      const watcher = await tab(context);
      const [a, b] = [await tab(context), await tab(context)];
      // Both start a sign-in at once, before either completes: two transactions side by side, and
      // the provider's form shown in both tabs of a fresh browser at the same time.
      await Promise.all([a, b].map(async (p) => {
        await p.evaluate(() => void auth.signIn({ returnTo: "/e2e/signin.html?app=1#deep" }));
        await p.waitForFunction(() => location.pathname == "/authorize" && document.readyState == "complete");
      }));
      await provider(a);
      await a.waitForFunction(() => window.ready === true, { timeout: 60_000 });
      const done = await state(a);
      const ok = { ok: { returnTo: "/e2e/signin.html?app=1#deep" } };
      assert.deepEqual(done.results, [ok, ok], `${engine}: both handleRedirect calls resolve`);
      assert.equal(done.exchanges, 1, "the code is exchanged once");
      assert.equal(done.href, server.url + PAGE, "code, state and iss leave the address bar");
      assert.ok(done.authenticated);
      assert.deepEqual(done.events.map((e) => [e.type, e.source]), [["signin", "this-tab"]]);
      const callback = await a.evaluate(() => window.arrivedAt);
      assert.match(callback, /[?&]code=.+&state=.+&iss=/);

      // The signed-out tab follows without a reload, and its calls carry the token.
      await waitFor("the watching tab to be signed in", () => watcher.evaluate(() => auth.authenticated));
      assert.deepEqual(await watcher.evaluate(() => events.map((e) => [e.type, e.source])), [["signin", "other-tab"]]);
      assert.equal(await watcher.evaluate(async () => (await auth.fetch("/api/me")).status), 200);

      // The second tab completes its own sign-in: its state is its own, not "invalid".
      await provider(b);
      await b.waitForFunction(() => window.ready === true, { timeout: 60_000 });
      const second = await state(b);
      assert.deepEqual(second.results, [ok, ok]);
      assert.equal(second.exchanges, 1);
      await waitFor("the other tabs to adopt the second session", async () =>
        (await watcher.evaluate(() => events.length)) === 2 && (await a.evaluate(() => events.length)) === 2);

      // The callback again (Back onto it, a reload): nothing exchanged, nobody signed out.
      await a.goto(callback);
      await a.waitForFunction(() => window.ready === true, { timeout: 60_000 });
      const again = await state(a);
      assert.deepEqual(again.results, [ok, ok], "a completed callback resolves again");
      assert.equal(again.exchanges, 0);
      assert.ok(again.authenticated);
      assert.equal(await a.evaluate(async () => (await auth.fetch("/api/me")).status), 200);

      // Logout revokes the refresh token at the provider and ends its session.
      const rt = await a.evaluate(() => JSON.parse(localStorage.getItem("rotafetch")).rt);
      await a.evaluate(() => void auth.logout({ endSession: true, returnTo: location.origin + "/e2e/signin.html?bye=1" }));
      await a.waitForFunction(() => location.search === "?bye=1" && window.ready === true, { timeout: 60_000 });
      assert.equal(await a.evaluate(() => auth.authenticated), false);
      await waitFor("every tab signed out", () => watcher.evaluate(() => !auth.authenticated));
      const refresh = await fetch(`${server.url}/token`, { method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: rt, client_id: "e2e" }) });
      assert.equal(refresh.status, 400, "the revoked refresh token is refused");

      // The provider's session ended: a silent sign-in is refused, a typed error with its code.
      await a.evaluate(() => void auth.signIn({ params: { prompt: "none" } }));
      await a.waitForFunction(() => window.ready === true && location.search === "", { timeout: 60_000 });
      const refused = await state(a);
      assert.equal(refused.results[0].code, "provider_error");
      assert.equal(refused.results[0].error, "login_required");
      assert.equal(refused.exchanges, 0);
      for (const p of [watcher, a, b]) await p.close();
      await context.close();
    });

    test("DPoP: a popup sign-in through PAR, tampered callbacks, a closed popup", async () => {
      const context = await browser.newContext();
      const page = await tab(context, `${PAGE}?entry=dpop`);
      const nonces = await server.metric(USE_NONCE);
      const popupOpened = page.waitForPopup();
      await page.clickButton("Sign in with a popup");
      const popup = await popupOpened;
      await waitFor("the provider's form in the popup", async () => /\/authorize\?/.test(await popup.url()));
      const front = new URL(await popup.url());
      assert.deepEqual([...front.searchParams.keys()].sort(), ["client_id", "request_uri"], "PAR: nothing else in the front channel");
      await provider(popup);
      const result = await popupResult(page, 60_000);
      assert.deepEqual(result, { ok: { returnTo: "/e2e/signin.html?from=popup" } }, `${engine}: popup`);
      assert.equal(await page.evaluate(() => window.exchanges), 1);
      assert.ok(await page.evaluate(() => auth.authenticated));
      assert.equal(await page.evaluate(async () => (await auth.fetch("/api/me")).status), 200);
      assert.equal(await page.evaluate(() => JSON.parse(atob(JSON.parse(localStorage.getItem("rotafetch")).at.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).cnf?.jkt?.length > 0), true,
        "the session is bound to the key from its first token");
      assert.ok(await server.metric(USE_NONCE) > nonces, "a nonce challenge was answered");

      // A callback whose state this browser never made, and one whose iss is another issuer.
      const forged = `${server.url}${PAGE}?entry=dpop&code=stolen&state=${"A".repeat(22)}&iss=${encodeURIComponent(server.url)}`;
      await page.goto(forged);
      await page.waitForFunction(() => window.ready === true, { timeout: 60_000 });
      let s = await state(page);
      assert.deepEqual(s.results.map((r) => r.code), ["no_transaction", "no_transaction"]);
      assert.equal(s.exchanges, 0);
      assert.ok(s.authenticated, "the session is untouched");
      assert.equal(s.href, `${server.url}${PAGE}?entry=dpop`);
      // prompt=login (an app's own parameter, passed through): the form, not the live session's 303.
      await page.evaluate(() => void auth.signIn({ params: { prompt: "login" } }));
      // On the provider's page (this origin too): the transaction this browser stored.
      await page.waitForFunction(() => location.pathname == "/authorize" && document.readyState == "complete");
      const mine = await page.evaluate(() => Object.keys(localStorage)
        .find((k) => k.startsWith("rotafetch:signin:") && !JSON.parse(localStorage[k]).d)?.slice(17));
      await page.goto(`${server.url}${PAGE}?entry=dpop&code=c&state=${mine}&iss=${encodeURIComponent("https://evil.example")}`);
      await page.waitForFunction(() => window.ready === true, { timeout: 60_000 });
      s = await state(page);
      assert.deepEqual(s.results.map((r) => r.code), ["iss_mismatch", "iss_mismatch"]);
      assert.equal(s.exchanges, 0);
      assert.ok(s.authenticated);

      // A popup closed by the user (prompt=login: the form waits, though the provider's session
      // is live), and one the browser blocked.
      await page.evaluate(() => void (window.popupOptions = { params: { prompt: "login" } }));
      const second = page.waitForPopup();
      await page.clickButton("Sign in with a popup");
      await (await second).close();
      assert.equal((await popupResult(page, 30_000)).code, "popup_closed");
      assert.equal(await page.evaluate(async () => {
        window.open = () => null;
        return (await settle(auth.signInPopup())).code;
      }), "popup_blocked");
      await page.close();
      await context.close();
    });
  });
}
