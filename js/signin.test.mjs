// Sign-in's rules (js/plumbing.js), natively in Node: each rule with its cases, and randomized
// properties for the readers of what the provider and the address bar hand over (callback
// queries, discovery documents, ID tokens). `make test-native` runs this file; the flows are
// e2e/signin.test.mjs's, against the reference provider in three engines.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  callbackVerdict, cleanedUrl, discoveryProblem, ErrorCode, fresh, idTokenProblem, RESERVED, RESPONSE_PARAMS, returnPath,
  secureUrl,
} from "./plumbing.js";

const ISSUER = "https://id.example.com";
const STATE = "AAAAAAAAAAAAAAAAAAAA-_";
const q = (s) => new URLSearchParams(s);
const b64u = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
// A verdict as read in the tests: "exchange", "done", or the name of its ErrorCode.
const named = (v) => (typeof v == "number" ? Object.keys(ErrorCode).find((k) => ErrorCode[k] === v) : v);

// A small seeded generator: failures reproduce.
function rng(seed) {
  let s = seed >>> 0;
  const next = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  return { next, pick: (a) => a[Math.floor(next() * a.length)], int: (n) => Math.floor(next() * n) };
}

test("discovery: the issuer exactly, the endpoints there and https, S256 when listed", () => {
  const doc = { issuer: ISSUER, authorization_endpoint: `${ISSUER}/authorize`, token_endpoint: `${ISSUER}/token` };
  assert.equal(discoveryProblem(doc, ISSUER), undefined);
  for (const other of [`${ISSUER}/`, "https://ID.example.com", "https://evil.example", undefined, [ISSUER]]) {
    assert.match(discoveryProblem({ ...doc, issuer: other }, ISSUER), /issuer/, String(other));
  }
  assert.match(discoveryProblem({ ...doc, token_endpoint: undefined }, ISSUER), /token_endpoint/);
  assert.match(discoveryProblem({ ...doc, authorization_endpoint: 42 }, ISSUER), /authorization_endpoint/);
  assert.match(discoveryProblem({ ...doc, revocation_endpoint: "http://id.example.com/r" }, ISSUER), /revocation_endpoint/);
  assert.match(discoveryProblem({ ...doc, code_challenge_methods_supported: ["plain"] }, ISSUER), /S256/);
  assert.equal(discoveryProblem({ ...doc, code_challenge_methods_supported: "S256" }, ISSUER), undefined);
  for (const bad of [null, "x", 7, []]) assert.ok(discoveryProblem(bad, ISSUER), String(bad));
  const local = "http://127.0.0.1:8080";
  assert.equal(discoveryProblem({ issuer: local, authorization_endpoint: `${local}/a`, token_endpoint: `${local}/t` }, local), undefined);
});

test("discovery documents, randomized: used only for their exact issuer and https endpoints", () => {
  const r = rng(1);
  const urls = [`${ISSUER}/x`, "http://id.example.com/x", "http://127.0.0.1:9/x", 7, null, undefined];
  const names = ["authorization_endpoint", "token_endpoint", "pushed_authorization_request_endpoint", "revocation_endpoint", "end_session_endpoint"];
  for (let n = 0; n < 5000; n++) {
    const doc = { issuer: r.pick([ISSUER, ISSUER, "https://evil.example", 1]) };
    for (const k of names) doc[k] = r.pick(urls);
    const m = r.pick([undefined, ["S256"], ["plain"], "S256", "plain"]);
    if (m !== undefined) doc.code_challenge_methods_supported = m;
    const ok = doc.issuer === ISSUER
      && names.every((k, i) => (doc[k] === undefined ? i >= 2 : typeof doc[k] == "string" && !doc[k].startsWith("http://id.")))
      && (m === undefined || [].concat(m).includes("S256"));
    assert.equal(discoveryProblem(doc, ISSUER) === undefined, ok, JSON.stringify(doc));
  }
});

test("a callback: RFC 6749 §3.1 and the SDK's state first, then the transaction, expiry, RFC 9207 iss, error or code", () => {
  const tx = { t: 1000 };
  const v = (s, t = tx, required = false, now = 1100, expected) => named(callbackVerdict(q(s), t, ISSUER, required, now, expected));
  assert.equal(v(`code=c&state=${STATE}&iss=${ISSUER}`, tx, true), "exchange");
  assert.equal(v(`code=c&state=${STATE}`), "exchange", "no iss, none promised");
  assert.equal(v(`code=c&state=${STATE}`, tx, true), "IssMismatch", "no iss, but discovery promised one");
  assert.equal(v(`code=c&state=${STATE}&iss=${ISSUER}/`), "IssMismatch");
  assert.equal(v(`error=access_denied&state=${STATE}&iss=https://evil.example`), "IssMismatch", "errors carry iss too");
  assert.equal(v(`error=login_required&state=${STATE}&iss=${ISSUER}`), "ProviderError");
  assert.equal(v(`code=c&state=${STATE}`, null), "NoTransaction");
  assert.equal(v(`code=c&state=${STATE}`, { t: 1000, d: 1 }), "done");
  assert.equal(v(`code=c&state=${STATE}`, tx, false, 1600), "TransactionExpired");
  assert.equal(v(`code=c&state=${STATE}`, tx, false, 939), "TransactionExpired", "from over a minute in the future");
  assert.equal(v(`code=c&state=${STATE}`, tx, false, 940), "exchange", "a clock set back a little");
  for (const bad of ["code=c", "code=c&state=short", `state=${STATE}`, `code=a&code=b&state=${STATE}`,
    `code=c&state=${STATE}&state=${STATE}`, `code=c&state=${STATE}&iss=a&iss=b`, `code=c&state=${STATE}&error=a&error=b`]) {
    assert.equal(v(bad), "StateMismatch", bad);
  }
  assert.equal(v(`code=c&state=${STATE}`, tx, false, 1100, "BBBBBBBBBBBBBBBBBBBBBB"), "StateMismatch", "a popup's state");
});

test("callbacks, randomized: the verdict follows the rules in order", () => {
  const r = rng(2);
  const values = ["c", "", STATE, ISSUER, "https://evil.example", "x y", "%zz"];
  for (let n = 0; n < 20000; n++) {
    const p = new URLSearchParams();
    const count = {};
    for (const k of ["state", "code", "iss", "error", "other"]) {
      count[k] = r.pick([0, 1, 1, 1, 2]);
      for (let i = 0; i < count[k]; i++) p.append(k, k == "state" && r.next() < 0.7 ? STATE : r.pick(values));
    }
    const tx = r.pick([null, { t: 1000 }, { t: 1000, d: 1 }, { t: 100 }]);
    const required = r.next() < 0.5;
    const got = named(callbackVerdict(p, tx, ISSUER, required, 1100));
    const twice = ["state", "code", "iss", "error"].some((k) => count[k] > 1);
    const stateOk = count.state == 1 && /^[\w-]{22}$/.test(p.get("state"));
    let want;
    if (twice || !stateOk || (!count.code && !count.error)) want = "StateMismatch";
    else if (!tx) want = "NoTransaction";
    else if (tx.d) want = "done";
    else if (tx.t == 100) want = "TransactionExpired";
    else if (count.iss ? p.get("iss") !== ISSUER : required) want = "IssMismatch";
    else want = count.error ? "ProviderError" : "exchange";
    assert.equal(got, want, `${p} ${JSON.stringify(tx)} ${required}`);
  }
});

test("ID tokens: every claim checked, with five minutes for the clock", () => {
  const now = 1_700_000_000;
  const good = { iss: ISSUER, sub: "u1", aud: "spa", nonce: "n", iat: now - 1, exp: now + 300 };
  const check = (c, nonce = "n") => idTokenProblem(`${b64u({ alg: "RS256" })}.${b64u(c)}.sig`, ISSUER, "spa", nonce, now);
  assert.equal(check(good), undefined);
  assert.equal(check({ ...good, aud: ["spa"] }), undefined);
  assert.equal(check({ ...good, aud: ["api", "spa"], azp: "spa" }), undefined);
  assert.equal(check({ ...good, exp: now - 299 }), undefined, "leeway");
  assert.equal(check({ ...good, iat: now + 300 }), undefined, "leeway");
  const cases = [
    [{ iss: "https://evil.example" }, "iss"], [{ iss: `${ISSUER}/` }, "iss"], [{ iss: undefined }, "iss"],
    [{ sub: "" }, "sub"], [{ sub: 7 }, "sub"], [{ aud: "other" }, "aud"], [{ aud: ["other"] }, "aud"], [{ aud: { spa: 1 } }, "aud"],
    [{ aud: ["spa", "api"] }, "azp"], [{ azp: "other" }, "azp"], [{ nonce: "m" }, "nonce"], [{ nonce: undefined }, "nonce"],
    [{ exp: now - 300 }, "exp"], [{ exp: "2000000000" }, "exp"], [{ iat: now + 301 }, "iat"], [{ iat: undefined }, "iat"],
  ];
  for (const [edit, claim] of cases) assert.equal(check({ ...good, ...edit }), claim, JSON.stringify(edit));
  for (const bad of [undefined, "", "opaque", "a.b", "a.!!.c", `a.${b64u([1])}.c`, `a.${b64u("s")}.c`]) {
    assert.equal(idTokenProblem(bad, ISSUER, "spa", "n", now), "payload", String(bad));
  }
});

test("ID tokens, randomized: passes only with every claim right", () => {
  const r = rng(3), now = 1500;
  for (let n = 0; n < 5000; n++) {
    const c = {
      iss: r.pick([ISSUER, ISSUER, "https://evil.example", 1, undefined]),
      sub: r.pick(["u", "u", "", 5, undefined]),
      aud: r.pick(["spa", "spa", ["spa"], ["spa", "api"], ["api"], undefined]),
      azp: r.pick([undefined, undefined, "spa", "api"]),
      nonce: r.pick(["n", "n", "m", undefined]),
      exp: r.pick([2000, 2000, 1000, "2000", undefined]),
      iat: r.pick([1400, 1400, 1900, undefined]),
    };
    const aud = [].concat(c.aud);
    const ok = c.iss === ISSUER && c.sub === "u" && aud.includes("spa") && (c.azp === undefined ? aud.length == 1 : c.azp === "spa")
      && c.nonce === "n" && c.exp === 2000 && c.iat === 1400;
    const got = idTokenProblem(`h.${b64u(c)}.s`, ISSUER, "spa", "n", now);
    assert.equal(got === undefined, ok, JSON.stringify(c));
  }
});

test("returnTo stays on the page's origin", () => {
  const page = "https://app.example/orders?x=1";
  assert.equal(returnPath("/a?b#c", page), "/a?b#c");
  assert.equal(returnPath("https://app.example/", page), "/");
  assert.equal(returnPath("next", page), "/next");
  for (const bad of ["https://app.example.evil.com/", "https://app.example:8443/", "https://app.example@evil.com/",
    "http://app.example/", "//evil.com/x", "javascript:alert(1)", "https://evil.com/https://app.example/"]) {
    assert.equal(returnPath(bad, page), undefined, bad);
  }
});

test("the address bar keeps every other parameter as written, and the fragment", () => {
  const cases = [
    ["https://a.example/cb?code=1&state=2&iss=3#top", "https://a.example/cb#top"],
    ["https://a.example/cb?x=1&code=1&y=%20+&state=2&z", "https://a.example/cb?x=1&y=%20+&z"],
    ["https://a.example/cb?error=e&error_description=no&error_uri=u&state=s&session_state=q&a=", "https://a.example/cb?a="],
    ["https://a.example/cb", "https://a.example/cb"],
    ["https://a.example/cb#code=1", "https://a.example/cb#code=1"],
    ["https://a.example/cb?codes=1", "https://a.example/cb?codes=1"],
  ];
  for (const [from, to] of cases) assert.equal(cleanedUrl(from), to, from);
  const r = rng(4);
  for (let n = 0; n < 3000; n++) {
    const kept = [];
    const all = [];
    for (let i = r.int(6); i > 0; i--) {
      const name = r.pick([...RESPONSE_PARAMS, "a", "b%20c", "x+y", "page"]);
      const piece = name + r.pick(["", "=", "=1", "=%2F+", "=a=b"]);
      all.push(piece);
      if (!RESPONSE_PARAMS.includes(name)) kept.push(piece);
    }
    const hash = r.pick(["", "#h", "#code=1&x"]);
    const href = `https://a.example/cb${all.length ? "?" + all.join("&") : ""}${hash}`;
    assert.equal(cleanedUrl(href), `https://a.example/cb${kept.length ? "?" + kept.join("&") : ""}${hash}`, href);
  }
});

test("the smaller rules", () => {
  for (const ok of ["https://id.example.com", "https://id.example.com/realms/x", "http://localhost", "http://localhost:8080/x",
    "http://127.0.0.1:3000", "http://[::1]:9/x"]) {
    assert.ok(secureUrl(ok), ok);
  }
  for (const bad of ["http://id.example.com", "http://localhost.evil.example/", "http://127.0.0.1.evil.example", "https://",
    "ftp://localhost", "javascript:alert(1)", "", 7]) {
    assert.ok(!secureUrl(bad), String(bad));
  }
  assert.ok(fresh(1000, 1000) && fresh(1000, 4599));
  assert.ok(!fresh(1000, 4600) && !fresh(1000, 999) && !fresh(undefined, 5));
  for (const own of ["state", "nonce", "redirect_uri", "code_challenge", "code_challenge_method", "scope", "client_id",
    "response_type", "response_mode", "request_uri", "request", "dpop_jkt"]) {
    assert.ok(RESERVED.includes(own), own);
  }
  for (const app of ["prompt", "login_hint", "audience", "organization", "ui_locales", "max_age"]) assert.ok(!RESERVED.includes(app), app);
});
