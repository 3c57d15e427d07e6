// node oidc-provider (panva) as bench/server.mjs runs it beside rotafetch-server: its defaults
// (the built-in in-memory adapter, opaque access tokens, its default TTLs) plus what the
// comparison needs, each said here and in BENCHMARKS.md:
// - one public client like rotafetch's (`token_endpoint_auth_method: none`, PKCE, the
//   authorization_code and refresh_token grants);
// - `rotateRefreshToken: true`: every refresh spends the presented token and returns a new
//   one, and a spent token presented again revokes the grant (oidc-provider's own reuse rule).
//   For this client (public, not sender-constrained) its default function already answers
//   true; saying it makes the one-time rotation explicit;
// - `issueRefreshToken` left at its default: a refresh token when the grant has
//   `offline_access` and the client may use the refresh_token grant;
// - a minimal interaction instead of devInteractions: a sign-in form that accepts demo/demo
//   and a consent step that grants what was asked (a first-party client).
//
// Run as a child process: `node bench/lib/oidc-provider.mjs PORT_FILE`; it listens on a free
// loopback port, writes the port to PORT_FILE and serves until killed.
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { renameSync, writeFileSync } from "node:fs";
import Provider from "oidc-provider";
import { CLIENT_ID, REDIRECT_PATH } from "./oidc-flow.mjs";

async function main(portFile) {
  const server = createServer();
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      token_endpoint_auth_method: "none",
      redirect_uris: [`${issuer}${REDIRECT_PATH}`],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
    }],
    findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    rotateRefreshToken: true,
    cookies: { keys: [randomBytes(32).toString("base64url")] },
  });
  const callback = provider.callback();
  server.on("request", (req, res) => {
    const m = /^\/interaction\/([\w-]+)(\/login)?$/.exec(new URL(req.url, issuer).pathname);
    if (!m) return callback(req, res);
    interaction(provider, req, res, !!m[2]).catch((e) => {
      res.statusCode = 500;
      res.end(String(e));
    });
  });
  writeFileSync(`${portFile}.tmp`, `${server.address().port}\n`);
  renameSync(`${portFile}.tmp`, portFile);
}

async function interaction(provider, req, res, login) {
  const details = await provider.interactionDetails(req, res);
  if (details.prompt.name === "login") {
    if (!login) {
      res.setHeader("content-type", "text/html");
      return res.end(`<form method="post" action="/interaction/${details.uid}/login"><input name="username"><input name="password" type="password"><button>Sign in</button></form>`);
    }
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const form = new URLSearchParams(Buffer.concat(chunks).toString());
    if (form.get("username") !== "demo" || form.get("password") !== "demo") {
      res.statusCode = 401;
      return res.end("invalid username or password");
    }
    return provider.interactionFinished(req, res, { login: { accountId: "demo" } }, { mergeWithLastSubmission: false });
  }
  // consent: grant what the client asked for
  const { prompt: { details: missing }, params, session, grantId } = details;
  const grant = grantId ? await provider.Grant.find(grantId) : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(" "));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [resource, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(resource, scopes.join(" "));
  return provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true });
}

if (process.argv[2]) await main(process.argv[2]);
