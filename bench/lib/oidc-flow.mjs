// oidc-provider for bench/server.mjs: starting bench/lib/oidc-provider.mjs as a process of its
// own, and a real authorization-code + PKCE sign-in against it (what a browser does, with a
// small cookie jar), ending in the token response whose refresh token the bench rotates.
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { call, form } from "./load.mjs";

/** The one public client of the comparison, and its redirect path on the provider. */
export const CLIENT_ID = "rotafetch-bench";
export const REDIRECT_PATH = "/cb";

/** Starts oidc-provider on a free loopback port: { url, pid, version, stop() }. */
export async function startOidcProvider() {
  const dir = mkdtempSync(join(tmpdir(), "rotafetch-oidc-"));
  const portFile = join(dir, "port");
  const child = spawn(process.execPath, [new URL("./oidc-provider.mjs", import.meta.url).pathname, portFile], { stdio: ["ignore", "pipe", "pipe"] });
  let log = "", exited = false;
  child.stdout.on("data", (d) => (log += d));
  child.stderr.on("data", (d) => (log += d));
  child.on("exit", () => (exited = true));
  const stop = async () => {
    if (!exited) {
      child.kill("SIGTERM");
      for (let i = 0; i < 100 && !exited; i++) await delay(50);
      if (!exited) child.kill("SIGKILL");
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 30_000;
  while (!existsSync(portFile)) {
    if (exited || Date.now() > deadline) { await stop(); throw new Error(`oidc-provider did not start:\n${log}`); }
    await delay(50);
  }
  const version = JSON.parse(readFileSync(new URL("../node_modules/oidc-provider/package.json", import.meta.url), "utf8")).version;
  return { url: `http://127.0.0.1:${readFileSync(portFile, "utf8").trim()}`, pid: child.pid, version, log: () => log, stop };
}

/**
 * Signs in as demo/demo through /auth (code + PKCE S256, `scope`, `prompt=consent`, which
 * oidc-provider needs to keep `offline_access`), the sign-in form and the consent step, then
 * redeems the code at /token. Returns the token response.
 */
export async function authorizationCodeFlow(p, url, scope = "offline_access") {
  const verifier = randomBytes(32).toString("base64url");
  const challenge = createHash("sha256").update(verifier).digest("base64url");
  const redirectUri = `${url}${REDIRECT_PATH}`;
  const state = randomBytes(8).toString("hex");
  const jar = new Map();
  const send = async (method, path, opts = {}) => {
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join("; ");
    const r = await call(p, method, path, { ...opts, headers: { ...(opts.headers ?? {}), ...(cookie ? { cookie } : {}) } });
    for (const c of [r.headers["set-cookie"] ?? []].flat()) {
      const [kv] = c.split(";");
      const i = kv.indexOf("=");
      jar.set(kv.slice(0, i), kv.slice(i + 1));
    }
    return r;
  };
  const q = new URLSearchParams({ client_id: CLIENT_ID, redirect_uri: redirectUri, response_type: "code", scope, prompt: "consent",
    code_challenge: challenge, code_challenge_method: "S256", state });
  let r = await send("GET", `/auth?${q}`);
  for (let step = 0; step < 10; step++) {
    if (r.status === 200 && r.text.includes("<form")) {
      const action = /action="([^"]+)"/.exec(r.text)[1];
      r = await send("POST", action, form({ username: "demo", password: "demo" }));
      continue;
    }
    const location = r.headers.location;
    if (!location || r.status < 300 || r.status > 399) throw new Error(`oidc-provider sign-in: ${r.status} ${r.text.slice(0, 300)}`);
    const next = new URL(location, url);
    if (next.href.startsWith(redirectUri)) {
      if (next.searchParams.get("state") !== state) throw new Error("oidc-provider sign-in: state mismatch");
      const code = next.searchParams.get("code");
      if (!code) throw new Error(`oidc-provider sign-in: ${next.search}`);
      const t = await call(p, "POST", "/token", form({ grant_type: "authorization_code", code, redirect_uri: redirectUri, client_id: CLIENT_ID, code_verifier: verifier }));
      if (t.status !== 200) throw new Error(`oidc-provider /token: ${t.status} ${t.text}`);
      return JSON.parse(t.text);
    }
    r = await send("GET", next.pathname + next.search);
  }
  throw new Error("oidc-provider sign-in: too many redirects");
}
