// A throw-away PostgreSQL cluster and reference-server instances on it, for suites that run
// several instances (e2e/crosstab-pg.test.mjs, bench/server.mjs). The same recipe as the
// server's Rust tests (server/tests/common/pg.rs): initdb in a temp dir, pg_ctl start on
// 127.0.0.1 and a free port, trust auth, as `nobody` when we are root; stopped and deleted by
// stop(), and by a janitor shell if this process dies first (its stdin pipe closes).
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, existsSync, readFileSync, chownSync, rmSync } from "node:fs";
import { createServer, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer } from "./harness.mjs";

function bindir() {
  const ok = (d) => d && existsSync(join(d, "initdb")) && existsSync(join(d, "pg_ctl"));
  if (ok(process.env.ROTAFETCH_PG_BINDIR)) return process.env.ROTAFETCH_PG_BINDIR;
  try {
    const d = execFileSync("pg_config", ["--bindir"], { encoding: "utf8" }).trim();
    if (ok(d)) return d;
  } catch {}
  const versions = existsSync("/usr/lib/postgresql")
    ? readdirSync("/usr/lib/postgresql").filter((v) => ok(`/usr/lib/postgresql/${v}/bin`)).sort((a, b) => a - b)
    : [];
  if (versions.length) return `/usr/lib/postgresql/${versions.at(-1)}/bin`;
  throw new Error("PostgreSQL server binaries (initdb, pg_ctl) not found: run scripts/setup-postgres.sh");
}

/** Starts a cluster; returns { port, url(db), createDb(name), stop() }. */
export async function startCluster() {
  const bin = bindir();
  const dir = mkdtempSync(join(tmpdir(), "rotafetch-pg-"));
  const data = join(dir, "data");
  let asUser = [];
  if (process.getuid() === 0) {
    const uid = Number(execFileSync("id", ["-u", "nobody"], { encoding: "utf8" }));
    const gid = Number(execFileSync("id", ["-g", "nobody"], { encoding: "utf8" }));
    chownSync(dir, uid, gid);
    asUser = ["setpriv", "--reuid", String(uid), "--regid", String(gid), "--clear-groups", "--"];
  }
  const run = (tool, args) => {
    const [cmd, ...rest] = [...asUser, join(bin, tool), ...args];
    // cwd: ours may be one `nobody` cannot enter (a checkout under /root).
    return execFileSync(cmd, rest, { cwd: dir, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  };
  const janitor = spawn("sh", ["-c", 'read _; "$@" >/dev/null 2>&1; rm -rf "$0"', dir, ...asUser,
    join(bin, "pg_ctl"), "stop", "-m", "immediate", "-D", data], { cwd: dir, stdio: ["pipe", "ignore", "ignore"], detached: true });
  janitor.unref();
  run("initdb", ["--auth=trust", "--username=postgres", "--no-sync", "--no-locale", "--encoding=UTF8", "-D", data]);
  const port = await freePort();
  const opts = `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off`;
  try {
    run("pg_ctl", ["start", "-w", "-t", "120", "-o", opts, "-l", join(dir, "postgres.log"), "-D", data]);
  } catch (e) {
    const log = existsSync(join(dir, "postgres.log")) ? readFileSync(join(dir, "postgres.log"), "utf8") : "";
    janitor.stdin.end();
    throw new Error(`pg_ctl start failed: ${e.stderr ?? e}\n${log}`);
  }
  const url = (db) => `postgres://postgres@127.0.0.1:${port}/${db}`;
  return {
    port,
    url,
    createDb(name) {
      run("createdb", ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", name]);
      return url(name);
    },
    async stop() {
      janitor.ref(); // wait for it: it stops the cluster and removes the directory
      janitor.stdin.end();
      await new Promise((r) => (janitor.exitCode !== null ? r() : janitor.on("exit", r)));
    },
  };
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

let keyDir;

/**
 * The key file every instance on `db` shares (instances with different keys are refused):
 * in a temp dir of this process, deleted when it exits.
 */
export function keyFileFor(db) {
  if (!keyDir) {
    keyDir = mkdtempSync(join(tmpdir(), "rotafetch-keys-"));
    process.on("exit", () => rmSync(keyDir, { recursive: true, force: true }));
  }
  return join(keyDir, `${db.replace(/[^A-Za-z0-9]+/g, "_")}.json`);
}

/**
 * Starts one server instance on `db` (a postgres:// URL) with its shared key file:
 * harness.startServer with a second `--db`, which overrides the SQLite file it names (the
 * last value of a flag wins).
 */
export function startInstance(db, flags = []) {
  return startServer(["--db", db, "--key-file", keyFileFor(db), ...flags]);
}

/**
 * A tiny round-robin HTTP proxy on 127.0.0.1: request i goes to upstreams[i % n]. Returns
 * { url, counts, close() }; `counts[k]` is how many requests upstream k got.
 */
export async function roundRobinProxy(upstreams) {
  let next = 0;
  const counts = upstreams.map(() => 0);
  const server = createServer((req, res) => {
    if (!upstreams.length) return res.writeHead(503).end();
    const k = next++ % upstreams.length;
    counts[k]++;
    const target = new URL(req.url, upstreams[k]);
    const up = request(target, { method: req.method, headers: { ...req.headers, host: target.host } }, (upRes) => {
      res.writeHead(upRes.statusCode, upRes.headers);
      upRes.pipe(res);
    });
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    counts,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  };
}

/**
 * `n` instances on `db` behind one round-robin proxy, as one deployment: the proxy listens
 * first and every instance gets its URL as `--public-url`, so they share one issuer (each
 * accepts the others' access tokens) and check DPoP proofs' `htu` against the URL the
 * browser uses. Talk to them through `proxy.url`; an instance's own `url` serves
 * /metrics and proof-less calls only. Returns { proxy, instances }.
 */
export async function startBehindProxy(db, n, flags = []) {
  const upstreams = [];
  const proxy = await roundRobinProxy(upstreams);
  let instances;
  try {
    instances = await Promise.all(
      Array.from({ length: n }, () => startInstance(db, [...flags, "--public-url", proxy.url])));
  } catch (e) {
    await proxy.close();
    throw e;
  }
  for (const s of instances) {
    upstreams.push(s.url);
    proxy.counts.push(0);
  }
  return { proxy, instances };
}
