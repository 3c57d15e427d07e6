// `new AuthClient(options)`'s reading (js/plumbing.js's `readOptions`), natively in Node: every
// option's check names the option, the defaults, the URLs resolved as `fetch` resolves them,
// the allow-list's origins as the browser serialises them, and randomized allowedOrigins entries
// against an oracle. The browser suites (tests/browser.rs) check the same errors through the JS
// class and through Rust's `AuthClient::new`, which reads Rust's `Options` the same way.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DEFAULTS, readOptions } from "./plumbing.js";

const PAGE = "https://app.example/shop/page?x=1";
globalThis.location = new URL(PAGE);
const DPOP = { dpop: true };
const read = (o, dpop) => readOptions(o, dpop, PAGE);
// The parts as named in plumbing.js's `Parts`.
const NAMES = ["core", "format", "clientId", "origins", "leewayMs", "minIntervalMs", "strict", "dpop", "store", "events",
  "crossTab", "refreshUrl", "logoutUrl", "key", "lockName", "timeoutMs", "oidc"];
const parts = (o, dpop) => {
  const p = read(o, dpop);
  assert.ok(Array.isArray(p), `refused: ${p}`);
  return Object.fromEntries(NAMES.map((n, i) => [n, p[i]]));
};

function rng(seed) {
  let s = seed >>> 0;
  const next = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  return { next, pick: (a) => a[Math.floor(next() * a.length)], int: (n) => Math.floor(next() * n) };
}

test("every bad option is refused by name", () => {
  const cases = [
    [{}, "refreshUrl"],
    [{ refreshUrl: 5 }, "refreshUrl"],
    [{ refreshUrl: "ftp://x/refresh" }, "refreshUrl"],
    [{ refreshUrl: "http://[x" }, "refreshUrl"],
    [{ refreshUrl: "/r", logoutUrl: "javascript:alert(1)" }, "logoutUrl"],
    [{ refreshUrl: "/r", leewaySeconds: -1 }, "leewaySeconds"],
    [{ refreshUrl: "/r", leewaySeconds: Infinity }, "leewaySeconds"],
    [{ refreshUrl: "/r", leewaySeconds: "10" }, "leewaySeconds"],
    [{ refreshUrl: "/r", refreshTimeoutMs: 0 }, "refreshTimeoutMs"],
    [{ refreshUrl: "/r", refreshTimeoutMs: 1.5 }, "refreshTimeoutMs"],
    [{ refreshUrl: "/r", minRefreshIntervalMs: -1 }, "minRefreshIntervalMs"],
    [{ refreshUrl: "/r", storage: "cookie" }, "storage"],
    [{ refreshUrl: "/r", refreshFormat: "xml" }, "refreshFormat"],
    [{ refreshUrl: "/r", allowedOrigins: ["https://x.example/path"] }, "allowedOrigins"],
    [{ refreshUrl: "/r", allowedOrigins: "https://x.example" }, "allowedOrigins"],
    [{ refreshUrl: "/r", allowedOrigins: [7] }, "allowedOrigins"],
    [{ refreshUrl: "/r", crossTab: "yes" }, "crossTab"],
    [{ refreshUrl: "/r", redirect: "manual" }, "redirect"],
    [{ refreshUrl: "/r", refreshURL: "/r" }, "refreshURL"],
    [{ refreshUrl: "/r", storageKey: "" }, "storageKey"],
    [{ refreshUrl: "/r", clientId: "" }, "clientId"],
    [{ issuer: "http://id.example.com", clientId: "c", redirectUri: PAGE }, "issuer"],
    [{ issuer: "https://id.example.com?x", clientId: "c", redirectUri: PAGE }, "issuer"],
    [{ issuer: "https://id.example.com", redirectUri: PAGE }, "clientId"],
    [{ issuer: "https://id.example.com", clientId: "c", redirectUri: "https://elsewhere.example/cb" }, "redirectUri"],
    [{ issuer: "https://id.example.com", clientId: "c", redirectUri: "/cb" }, "redirectUri"],
    [{ issuer: "https://id.example.com", clientId: "c" }, "redirectUri"],
    [{ issuer: 7, clientId: "c" }, "issuer"],
    [{ clientId: "c", redirectUri: "/" }, "refreshUrl"],
  ];
  for (const [o, name] of cases) {
    const m = read(o);
    assert.equal(typeof m, "string", `accepted ${JSON.stringify(o)}`);
    assert.ok(m.startsWith(`option \`${name}\` `), `${JSON.stringify(o)}: ${m}`);
  }
  assert.match(read(null), /must be an object/);
  // A getter that throws reads as absent.
  assert.match(read({ get refreshUrl() { throw new Error("x"); } }), /refreshUrl` is required/);
  // DPoP: not in a build without it; in one with it, only where a key can be kept.
  assert.match(read({ refreshUrl: "/r", dpop: true }), /`dpop` is not in this build/);
  assert.match(read({ refreshUrl: "/r", dpop: true }, DPOP), /`dpop` needs IndexedDB and crypto.subtle/);
});

test("defaults, resolved URLs, and what the core and the driver get", () => {
  const p = parts({ refreshUrl: "../auth/refresh?x#f" });
  assert.deepEqual(p, {
    ...p, format: 0, clientId: undefined, origins: ["https://app.example", "https://app.example"], strict: false,
    leewayMs: DEFAULTS.leewaySeconds * 1000, minIntervalMs: DEFAULTS.minRefreshIntervalMs, dpop: undefined,
    crossTab: true, refreshUrl: "https://app.example/auth/refresh?x#f", logoutUrl: undefined, key: "rotafetch",
    lockName: "rotafetch:rotafetch", timeoutMs: DEFAULTS.refreshTimeoutMs, oidc: undefined,
  });
  assert.equal(p.core, undefined, "the core's place is left to newClient");
  const q = parts({
    refreshUrl: "https://api.example/r", logoutUrl: "/out", refreshFormat: "oauth2", clientId: "spa", storage: "session",
    storageKey: "k", leewaySeconds: 0, refreshTimeoutMs: 5, minRefreshIntervalMs: 0, redirect: "error", crossTab: true,
  });
  assert.deepEqual([q.format, q.clientId, q.origins, q.leewayMs, q.minIntervalMs, q.strict, q.crossTab, q.logoutUrl, q.key,
    q.lockName, q.timeoutMs], [1, "spa", ["https://api.example", "https://app.example"], 0, 0, true, false,
    "https://app.example/out", "k", "rotafetch:k", 5]);
  // One refresh per browser only where the tabs share the session.
  assert.equal(parts({ refreshUrl: "/r", storage: "memory" }).crossTab, false);
  assert.equal(parts({ refreshUrl: "/r", crossTab: false }).crossTab, false);
});

test("an issuer: its token endpoint unless refreshUrl says otherwise, the sign-in options kept as written", () => {
  const o = { issuer: "https://id.example.com", clientId: "spa", redirectUri: "https://APP.example/cb" };
  const p = parts(o);
  assert.deepEqual([p.refreshUrl, p.format, p.origins], ["", 1, ["https://app.example"]]);
  assert.deepEqual(p.oidc, ["https://id.example.com", "spa", "https://APP.example/cb", DEFAULTS.scope]);
  assert.equal(parts({ ...o, refreshUrl: "" }).refreshUrl, "");
  assert.equal(parts({ ...o, refreshFormat: "json" }).format, 1, "the token endpoint takes the RFC 6749 §6 form only");
  const own = parts({ ...o, refreshUrl: "/r", scope: "openid" });
  assert.deepEqual([own.refreshUrl, own.format, own.oidc[3]], ["https://app.example/r", 0, "openid"]);
  assert.ok(Array.isArray(read({ ...o, issuer: "http://localhost:8080" })));
});

test("allowedOrigins, randomized: an entry is kept as the browser's origin exactly when it is one", () => {
  const r = rng(7);
  const schemes = ["https://", "http://", "HTTPS://", "ftp://", "", "//"];
  const hosts = ["api.example", "API.Example", "127.0.0.1", "[::1]", "xn--bcher-kva.example", "a b", "user@api.example"];
  const ports = ["", ":443", ":8443", ":80", ":x"];
  const tails = ["", "/", "/path", "?q", "#f", "//"];
  let kept = 0;
  for (let i = 0; i < 3000; i++) {
    const entry = r.pick(schemes) + r.pick(hosts) + r.pick(ports) + r.pick(tails);
    let want;
    try {
      const u = new URL(entry);
      if (/^https?:$/.test(u.protocol) && u.origin == entry.replace(/\/$/, "").toLowerCase()) want = u.origin;
    } catch { /* not a URL: refused */ }
    const got = read({ refreshUrl: "/r", allowedOrigins: [entry] });
    if (want === undefined) assert.equal(typeof got, "string", `accepted ${entry}`);
    else assert.deepEqual(got[3], [want], entry), kept++;
  }
  assert.ok(kept > 100 && kept < 2900, `both outcomes drawn (${kept} kept)`);
});
