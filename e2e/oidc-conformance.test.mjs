// Conformance-style test of the reference server as an OpenID provider (issue #22), with a
// maintained, certified third-party relying party: openid-client 6 (panva), pinned in
// package-lock.json. Nothing is relaxed but plain http on loopback (allowInsecureRequests).
// The browser part is what a browser does: follow redirects by hand, keep cookies, read the
// sign-in page's HTML form and submit it with its hidden CSRF token.
//
// Checked by openid-client itself: discovery (issuer), PKCE S256, PAR, state, nonce, the RFC
// 9207 `iss` of every authorization response (errors too), DPoP proofs and the server's
// DPoP nonces (use_dpop_nonce answered and retried), token_type DPoP, the ID token's claims
// and, with enableNonRepudiationChecks, its RS256 signature against jwks_uri; revocation
// (RFC 7009) and RP-Initiated Logout URLs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as client from "openid-client";
import { startServer } from "./lib/harness.mjs";

let srv;
let config;
const redirectUri = () => `${srv.url}/rp/cb`;
const postLogout = () => `${srv.url}/rp/bye`;

before(async () => {
  srv = await startServer(["--client", "rp=/rp/cb", "--post-logout", "rp=/rp/bye", "--dpop-nonce"]);
  config = await client.discovery(new URL(srv.url), "rp", undefined, client.None(), {
    execute: [client.allowInsecureRequests],
  });
  client.enableNonRepudiationChecks(config);
});

after(() => srv?.stop());

const decode = (s) =>
  s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");

/** The first form of an HTML page: its action and its fields (name → value). */
function parseForm(html) {
  const form = html.match(/<form\b([^>]*)>([\s\S]*?)<\/form>/i);
  assert.ok(form, `no form in:\n${html}`);
  const attr = (tag, name) => tag.match(new RegExp(`\\b${name}="([^"]*)"`))?.[1];
  const fields = new Map();
  for (const [input] of form[2].matchAll(/<input\b[^>]*>/gi)) {
    const name = attr(input, "name");
    if (name) fields.set(name, decode(attr(input, "value") ?? ""));
  }
  return { action: decode(attr(form[1], "action")), method: attr(form[1], "method"), fields };
}

/** A browser: a cookie jar, redirects followed by hand (the RP's callback is not fetched). */
class Browser {
  cookies = new Map();
  async request(url, init = {}) {
    const headers = { ...init.headers };
    if (this.cookies.size) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
    const r = await fetch(url, { ...init, headers, redirect: "manual" });
    for (const c of r.headers.getSetCookie()) {
      const [pair, ...attrs] = c.split(";");
      const [name, value] = [pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 1)];
      if (!value || attrs.some((a) => a.trim().toLowerCase() === "max-age=0")) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return { status: r.status, location: r.headers.get("location"), body: await r.text(), headers: r.headers };
  }
  /** Navigates to `url`; on the sign-in page, fills it in and submits it. Returns the final
   *  redirect out of the provider (to the RP). */
  async authorize(url, username = "demo", password = "demo") {
    let page = await this.request(url);
    if (page.status === 200) {
      const form = parseForm(page.body);
      assert.match(page.body, /<label for="username">Username<\/label>/);
      assert.match(page.headers.get("content-security-policy"), /default-src 'none'/);
      assert.equal(page.headers.get("access-control-allow-origin"), null, "no CORS on /authorize");
      form.fields.set("username", username);
      form.fields.set("password", password);
      page = await this.request(new URL(form.action, url), {
        method: form.method.toUpperCase(),
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams([...form.fields]).toString(),
      });
    }
    assert.equal(page.status, 303, page.body);
    return new URL(page.location);
  }
}

const metric = (name) => srv.metric(name);

test("PAR + PKCE + nonce + DPoP with server nonces: code flow, RS256 ID token, refresh", async () => {
  const browser = new Browser();
  const keyPair = await client.randomDPoPKeyPair("ES256");
  const DPoP = client.getDPoPHandle(config, keyPair);
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const nonceChallengesBefore = await metric('rotafetch_dpop_proofs_total{outcome="use_nonce"}');
  const url = await client.buildAuthorizationUrlWithPAR(
    config,
    {
      redirect_uri: redirectUri(),
      scope: "openid offline_access",
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
      state,
      nonce,
    },
    { DPoP },
  );
  assert.deepEqual([...url.searchParams.keys()].sort(), ["client_id", "request_uri"], "PAR: only the handle travels");
  const callback = await browser.authorize(url);
  assert.equal(callback.origin + callback.pathname, redirectUri());
  assert.equal(callback.searchParams.get("iss"), config.serverMetadata().issuer);

  const tokens = await client.authorizationCodeGrant(
    config,
    callback,
    { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true },
    undefined,
    { DPoP },
  );
  assert.equal(tokens.token_type.toLowerCase(), "dpop");
  const claims = tokens.claims();
  assert.equal(claims.iss, srv.url);
  assert.equal(claims.aud, "rp");
  assert.equal(claims.nonce, nonce);
  assert.ok(claims.sub && claims.sid && claims.auth_time <= claims.iat, JSON.stringify(claims));
  const header = JSON.parse(Buffer.from(tokens.id_token.split(".")[0], "base64url"));
  assert.equal(header.alg, "RS256");
  const jwks = await (await fetch(config.serverMetadata().jwks_uri)).json();
  assert.ok(jwks.keys.some((k) => k.kid === header.kid && k.kty === "RSA"), "the ID token's key is in jwks_uri");
  assert.ok(
    (await metric('rotafetch_dpop_proofs_total{outcome="use_nonce"}')) > nonceChallengesBefore,
    "the server asked for its DPoP nonce and openid-client retried with it",
  );

  // The session is DPoP-bound: a refresh with the key works ...
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP });
  assert.equal(refreshed.token_type.toLowerCase(), "dpop");
  assert.notEqual(refreshed.refresh_token, tokens.refresh_token, "rotated");
  // ... and revocation without a proof by its key (openid-client's tokenRevocation sends
  // none) is refused: whoever holds only the refresh token cannot end the session.
  await assert.rejects(
    client.tokenRevocation(config, refreshed.refresh_token, { token_type_hint: "refresh_token" }),
    (e) => e.error === "invalid_grant",
  );
  await client.refreshTokenGrant(config, refreshed.refresh_token, undefined, { DPoP });
});

test("provider session, revocation, RFC 9207 on errors, RP-Initiated Logout", async () => {
  const browser = new Browser();
  const start = async (extra = {}) => {
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri(),
      scope: "openid",
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
      state,
      nonce,
      ...extra,
    });
    return { url, checks: { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true } };
  };
  const first = await start();
  const tokens = await client.authorizationCodeGrant(config, await browser.authorize(first.url), first.checks);
  assert.equal(tokens.token_type.toLowerCase(), "bearer");

  // The second sign-in needs no password (the provider session): straight back with a code.
  const second = await start();
  const page = await browser.request(second.url);
  assert.equal(page.status, 303);
  const again = await client.authorizationCodeGrant(config, new URL(page.location), second.checks);
  assert.equal(again.claims().sid, tokens.claims().sid);

  // RFC 7009: the refresh token is revoked; its next use fails.
  await client.tokenRevocation(config, again.refresh_token, { token_type_hint: "refresh_token" });
  await assert.rejects(client.refreshTokenGrant(config, again.refresh_token), (e) => e.error === "invalid_grant");

  // A mixed-up issuer is caught (RFC 9207): the callback's iss is checked.
  const third = await start();
  const forged = new URL((await browser.request(third.url)).location);
  forged.searchParams.set("iss", "http://127.0.0.1:1");
  const denied = await client.authorizationCodeGrant(config, forged, third.checks).catch((e) => e);
  assert.equal(denied.code, "OAUTH_INVALID_RESPONSE", String(denied));
  // The untouched callback of that same flow is accepted: it was the iss that failed.
  forged.searchParams.set("iss", srv.url);
  await client.authorizationCodeGrant(config, forged, third.checks);

  // RP-Initiated Logout: to the registered URI with state; the session is gone.
  const logout = client.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token,
    post_logout_redirect_uri: postLogout(),
    state: "bye-1",
  });
  const out = await browser.request(logout);
  assert.equal(out.status, 303);
  assert.equal(out.location, `${postLogout()}?state=bye-1`);
  // An error response carries iss too, and openid-client accepts and reports it.
  const silent = await start({ prompt: "none" });
  const err = new URL((await browser.request(silent.url)).location);
  assert.equal(err.searchParams.get("error"), "login_required");
  await assert.rejects(
    client.authorizationCodeGrant(config, err, silent.checks),
    (e) => e.error === "login_required",
  );
});
