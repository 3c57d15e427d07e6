// The server's share of a DPoP call, for bench/run.mjs's per-request table: `GET /api/me` with
// a bearer token and with a DPoP-bound token plus a proof (signed before the clock starts),
// interleaved call by call over one keep-alive connection from Node. What the DPoP calls take
// longer is the server verifying the proof (ES256, `ath`, `htu`/`htm`, `iat`) and recording
// its `jti` in the replay cache, plus the proof's bytes on the wire.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { apiCall, call, latency, pct, pool, round, signIn } from "./load.mjs";
import { DpopKey } from "./dpop.mjs";

export async function serverShare(url, n) {
  const p = pool(url, { connections: 1 });
  try {
    const users = await signIn(p, url, { apiUsers: 1, refreshUsers: 1 });
    const dpopUser = users.api[0], bearer = users.refresh[0];
    const bearerCall = () => call(p, "GET", "/api/me", { headers: { authorization: `Bearer ${bearer.access}` } });
    const out = { bearer: [], dpop: [], sign: [] };
    for (let i = 0; i < n + 100; i++) {
      const b = await bearerCall();
      const s = performance.now();
      const d = await apiCall(p, url, dpopUser);
      if (b.status !== 200 || d.status !== 200) throw new Error(`server share: ${b.status} / ${d.status}`);
      if (i < 100) continue; // warm-up
      out.bearer.push(b.ms);
      out.dpop.push(d.ms);
      out.sign.push(performance.now() - s - d.ms);
    }
    return { n, bearer: latency(out.bearer), dpop: latency(out.dpop), shareMs: round(pct(out.dpop, 50) - pct(out.bearer, 50), 3), signMs: round(pct(out.sign, 50), 3) };
  } finally {
    await p.destroy();
  }
}

/**
 * `dpop::verify` alone, in Rust without HTTP (server/examples/dpop_verify_cost.rs, built by
 * `make bench`): `n` ES256 proofs with `ath`, made here, verified there one by one. Returns
 * { n, p50_us, p99_us, mean_us }, or null when the example is not built.
 */
export function verifyCost(bin, url, n) {
  if (!existsSync(bin)) return null;
  const key = new DpopKey("ES256");
  const access = "x".repeat(300); // an access token's length; only its hash goes into the proof
  const htu = `${url}/api/me`;
  const lines = Array.from({ length: n }, () => JSON.stringify({ proof: key.proof("GET", htu, { access }), htm: "GET", htu, access }));
  return JSON.parse(execFileSync(bin, { input: lines.join("\n"), encoding: "utf8", timeout: 60_000 }));
}
