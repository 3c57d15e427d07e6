// bench/'s pinned packages (esbuild, the peers, oidc-provider, undici): `npm ci` in bench/
// whenever bench/node_modules is missing or does not match bench/package-lock.json. Idempotent;
// no dependencies of its own. `node bench/lib/deps.mjs` runs it alone (make bench-server).
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const BENCH = fileURLToPath(new URL("../", import.meta.url));

export function ensureDeps() {
  const lock = readFileSync(`${BENCH}package-lock.json`);
  const hash = createHash("sha256").update(lock).digest("hex");
  const stamp = `${BENCH}node_modules/.bench-lock-sha256`;
  if (existsSync(stamp) && readFileSync(stamp, "utf8") === hash) return;
  console.error("bench: installing the pinned packages (npm ci in bench/)");
  const r = spawnSync("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: BENCH, stdio: "inherit" });
  if (r.status !== 0) throw new Error("npm ci in bench/ failed");
  writeFileSync(stamp, hash);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) ensureDeps();
