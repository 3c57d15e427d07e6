// The packages as users meet them (issue #7):
// - the npm package: `npm pack` contents and package.json metadata;
// - its types: a strict program type-checks, a deliberately ill-typed one fails on exactly
//   the marked lines;
// - examples/vite-ts (the package through a `file:` dependency, built by Vite) and
//   examples/rust (the crate's Rust API, built by wasm-pack), each driven in headless
//   Chromium against the reference server: log in, call, wait out the access token,
//   call again -> 200 with exactly one refresh.
// `make test-e2e` builds pkg/ and the examples first (`make examples`).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { homedir } from "node:os";
import { pathToFileURL } from "node:url";
import { startServer, launchBrowser, watch, waitFor, ROOT, ROTATED, API_200, API_401 } from "./lib/harness.mjs";

const run = promisify(execFile);
const PKG = join(ROOT, "pkg");
const TYPES = join(ROOT, "examples/types");
const VITE = join(ROOT, "examples/vite-ts");
const RUST_PKG = join(ROOT, "target/examples/rust-pkg");

/** Runs a command; resolves to { code, stdout, stderr } whatever the exit status. */
async function sh(cmd, args, cwd) {
  try {
    const { stdout, stderr } = await run(cmd, args, { cwd, maxBuffer: 16 << 20 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    if (typeof e.code !== "number") throw e;
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

function cargoVersion() {
  const toml = readFileSync(join(ROOT, "Cargo.toml"), "utf8");
  const pkg = toml.slice(toml.indexOf("[package]"));
  return /^version\s*=\s*"([^"]+)"/m.exec(pkg)[1];
}

// ---------------------------------------------------------------------------------------
// The npm package

test("npm pack ships the .wasm, the JS, the .d.ts, package.json and README, nothing else", async () => {
  const { code, stdout, stderr } = await sh("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], PKG);
  assert.equal(code, 0, stderr);
  const [report] = JSON.parse(stdout);
  const files = report.files.map((f) => f.path).sort();
  for (const f of ["rotafetch_bg.wasm", "rotafetch.js", "rotafetch.d.ts", "package.json", "README.md",
    "dpop/rotafetch_bg.wasm", "dpop/rotafetch.js", "dpop/rotafetch.d.ts"]) {
    assert.ok(files.includes(f), `npm pack lists ${f}: ${files}`);
  }
  for (const f of files) {
    assert.doesNotMatch(f, /(^|\/)(target|node_modules|src|e2e|examples)\//, `npm pack must not list ${f}`);
    assert.match(f, /^(README\.md|LICENSE[\w.-]*|package\.json|(dpop\/)?(rotafetch(_bg)?\.(js|d\.ts|wasm|wasm\.d\.ts)|snippets\/.+))$/, `unexpected file ${f}`);
  }
  assert.equal(report.name, "rotafetch");
  assert.equal(report.version, cargoVersion());
  for (const path of ["rotafetch_bg.wasm", "dpop/rotafetch_bg.wasm"]) {
    const wasm = report.files.find((f) => f.path === path);
    assert.ok(wasm.size > 10_000, `${path} is ${wasm.size} bytes`);
  }
  for (const entry of ["", "dpop/"]) {
    assert.equal(report.files.filter((f) => f.path.startsWith(`${entry}snippets/`)).length, 1, `${entry}: one snippet file`);
  }
});

for (const entry of ["", "dpop"]) test(`the shipped glue of rotafetch${entry && "/"}${entry} is minified, keeps its class names and the wasm URL bundlers look for`, async () => {
  const dir = join(PKG, entry);
  const glue = readFileSync(join(dir, "rotafetch.js"), "utf8");
  assert.ok(glue.split("\n").length < 10, "pkg/rotafetch.js is minified");
  assert.ok(glue.includes('new URL("rotafetch_bg.wasm",import.meta.url)'), "the wasm URL pattern survives");
  // Importing the glue runs nothing (init() does); Node can load it to look at the exports.
  const m = await import(pathToFileURL(join(dir, "rotafetch.js")).href);
  assert.equal(m.AuthClient.name, "AuthClient");
  assert.equal(m.AuthError.name, "AuthError");
  assert.equal(typeof m.default, "function", "the init() default export");
  assert.equal(typeof m.initSync, "function");
  // Import and export names were shortened (no wasm-bindgen hashes), and the glue still
  // satisfies every import: instantiating is the check.
  const bytes = readFileSync(join(dir, "rotafetch_bg.wasm"));
  const mod = new WebAssembly.Module(bytes);
  for (const i of WebAssembly.Module.imports(mod)) assert.ok(i.module.length + i.name.length <= 4, `long import name ${i.module}.${i.name}`);
  for (const e of WebAssembly.Module.exports(mod)) assert.ok(e.name.length <= 3, `long export name ${e.name}`);
  assert.doesNotMatch(glue, /__wbg_\w+_[0-9a-f]{16}/, "no hashed wasm-bindgen names left in the glue");
  // Panic locations name source files, but never by the build machine's paths.
  const text = bytes.toString("latin1");
  for (const local of [homedir(), ROOT, "/.cargo/"]) assert.ok(!text.includes(local), `the .wasm contains ${local}`);
  m.initSync({ module: bytes });
});

test("package.json has the metadata a registry user expects", () => {
  const pkg = JSON.parse(readFileSync(join(PKG, "package.json"), "utf8"));
  assert.equal(pkg.name, "rotafetch");
  assert.equal(pkg.version, cargoVersion(), "version comes from Cargo.toml");
  assert.equal(pkg.type, "module");
  assert.equal(pkg.license, "MIT OR Apache-2.0");
  assert.match(pkg.description, /fetch/);
  assert.match(pkg.repository.url, /^git\+https:\/\/github\.com\/.+\.git$/);
  assert.ok(pkg.keywords.includes("jwt") && pkg.keywords.includes("refresh-token"), String(pkg.keywords));
  assert.equal(pkg.types, "./rotafetch.d.ts");
  assert.deepEqual(pkg.exports["."], { types: "./rotafetch.d.ts", default: "./rotafetch.js" });
  assert.equal(Object.keys(pkg.exports["."])[0], "types", "the types condition must come first");
  assert.equal(pkg.exports["./rotafetch_bg.wasm"], "./rotafetch_bg.wasm");
  assert.deepEqual(pkg.exports["./dpop"], { types: "./dpop/rotafetch.d.ts", default: "./dpop/rotafetch.js" });
  assert.equal(pkg.exports["./dpop/rotafetch_bg.wasm"], "./dpop/rotafetch_bg.wasm");
  assert.deepEqual(pkg.sideEffects, ["./snippets/*", "./dpop/snippets/*"]);
  for (const f of ["rotafetch.js", "rotafetch.d.ts", "rotafetch_bg.wasm"]) assert.ok(pkg.files.includes(f), f);
  assert.ok(!("dependencies" in pkg), "the package has no dependencies");

  const readme = readFileSync(join(PKG, "README.md"), "utf8");
  assert.equal(readme, readFileSync(join(ROOT, "npm/README.md"), "utf8"), "pkg/README.md is npm/README.md");
  assert.match(readme, /await init\(\)/);

  const dts = readFileSync(join(PKG, "rotafetch.d.ts"), "utf8");
  assert.ok(dts.startsWith('/// <reference lib="esnext.disposable" />'), "the .d.ts brings the lib for Symbol.dispose");
  for (const name of ["type AuthClientOptions", "type AuthErrorCode", "class AuthError", "interface AuthEventMap",
    "interface RefreshDetail", "interface SignoutDetail", "interface SigninDetail", "interface SignInOptions",
    "interface LogoutOptions", "type Tokens", "class AuthClient"]) {
    assert.ok(dts.includes(`export ${name}`), `rotafetch.d.ts exports ${name}`);
  }
});

// ---------------------------------------------------------------------------------------
// Types

const TSC = join(ROOT, "node_modules/.bin/tsc");
// Deliberately not ESNext/skipLibCheck: the package's .d.ts must stand on its own.
const STRICT = ["--noEmit", "--strict", "--pretty", "false", "--skipLibCheck", "false", "--target", "es2022", "--lib", "es2022,dom"];
const RESOLUTIONS = {
  bundler: ["--module", "esnext", "--moduleResolution", "bundler"],
  node16: ["--module", "node16", "--moduleResolution", "node16"],
};

/** tsc's diagnostics: [{ file, line, code, message }], continuation lines folded in. */
function diagnostics(output) {
  const out = [];
  for (const line of output.split("\n")) {
    const m = /^(.+?)\((\d+),(\d+)\): error (TS\d+): (.*)$/.exec(line);
    if (m) out.push({ file: m[1], line: Number(m[2]), code: m[4], message: m[5] });
    else if (/^\s+\S/.test(line) && out.length) out.at(-1).message += " " + line.trim();
    else if (line.trim()) out.push({ file: "?", line: 0, code: "?", message: line });
  }
  return out;
}

for (const [name, flags] of Object.entries(RESOLUTIONS)) {
  test(`a correct --strict program type-checks against the package (moduleResolution ${name})`, async () => {
    assert.ok(existsSync(join(TYPES, "node_modules/rotafetch/package.json")), "examples/types is installed (make examples)");
    const { code, stdout } = await sh(TSC, [...STRICT, ...flags, "good.ts"], TYPES);
    assert.deepEqual(diagnostics(stdout), [], stdout);
    assert.equal(code, 0);
  });
}

test("an ill-typed --strict program fails on exactly the marked lines", async () => {
  const source = readFileSync(join(TYPES, "bad.ts"), "utf8").split("\n");
  const expected = new Map();
  source.forEach((text, i) => {
    const m = /^(?!\s*\/\/).*\/\/ error: (.+)$/.exec(text);
    if (m) expected.set(i + 1, m[1].trim());
  });
  assert.ok(expected.size >= 10, `bad.ts marks ${expected.size} errors`);

  const { code, stdout } = await sh(TSC, [...STRICT, ...RESOLUTIONS.bundler, "bad.ts"], TYPES);
  assert.notEqual(code, 0, "tsc must reject bad.ts");
  const found = diagnostics(stdout);
  for (const d of found) assert.equal(d.file, "bad.ts", `an error outside bad.ts: ${JSON.stringify(d)}`);
  assert.deepEqual([...new Set(found.map((d) => d.line))].sort((a, b) => a - b), [...expected.keys()],
    `errors on exactly the marked lines:\n${stdout}`);
  for (const [line, text] of expected) {
    const messages = found.filter((d) => d.line === line).map((d) => d.message).join(" | ");
    assert.ok(messages.includes(text), `bad.ts:${line}: expected "${text}" in: ${messages}`);
  }
  // The two the issue names, checked by name.
  assert.ok(found.some((d) => d.message.includes("Type 'string' is not assignable to type 'number'") && d.line === [...expected].find(([, t]) => t.includes("'number'"))[0]));
  assert.ok(found.some((d) => d.message.includes(`Argument of type '"expired"' is not assignable to parameter of type 'keyof AuthEventMap'`)));
});

test("examples/vite-ts passes tsc --noEmit --strict", async () => {
  const { code, stdout } = await sh(join(VITE, "node_modules/.bin/tsc"), ["--noEmit", "--strict", "-p", "."], VITE);
  assert.equal(code, 0, stdout);
});

// ---------------------------------------------------------------------------------------
// The example apps in the browser

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/**
 * Drives one example app (both share the page's element ids): log in, call /api/me, wait
 * until the access token has expired for the server too, call again.
 */
async function expiryFlow(path) {
  const server = await startServer([
    "--access-ttl", "2",
    "--static", `/vite=${join(VITE, "dist")}`,
    "--static", `/rust=${join(ROOT, "examples/rust/www")}`,
    "--static", `/rust-pkg=${RUST_PKG}`,
  ]);
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    // The one 401 is call 3's, after logout (the metrics below pin down every other response).
    const watcher = watch(page, { allow: [/status of 401 \(Unauthorized\)/] });
    const text = (id) => page.locator(`#${id}`).textContent();
    /** Waits until #id's text satisfies `ok`; the timeout error shows the last text seen. */
    const until = async (id, ok) => {
      let last;
      try {
        await waitFor(`#${id} ${ok}`, async () => ok((last = await text(id))));
      } catch (e) {
        throw new Error(`${e.message}; last #${id}: ${JSON.stringify(last)}`);
      }
    };

    await page.goto(`${server.url}${path}`);
    await page.waitForSelector("body[data-ready=true]", { timeout: 30_000 });
    assert.equal(await text("status"), "signed out");

    await page.click("#login");
    await until("status", (t) => t === "signed in");
    const firstExpiry = Number(await page.locator("#expires").getAttribute("data-ms"));
    assert.ok(firstExpiry > 0, "the app shows the access token's expiry");

    await page.click("#call");
    await until("result", (t) => t.startsWith("call 1:"));
    assert.equal(await text("result"), "call 1: 200 demo");
    assert.equal(await server.metric(ROTATED), 0);

    // The server allows 1 s of clock leeway: wait until the token is expired for it too.
    await waitFor("the access token to expire", () => page.evaluate((at) => Date.now() > at + 1500, firstExpiry), 20_000, 100);

    await page.click("#call");
    await until("result", (t) => t.startsWith("call 2:"));
    assert.equal(await text("result"), "call 2: 200 demo");
    assert.equal(await server.metric(ROTATED), 1, "exactly one refresh");
    assert.equal(await server.metric(API_200), 2);
    assert.equal(await server.metric(API_401), 0, "the client refreshed before sending, not after a 401");
    assert.equal(await text("refreshes"), "1", "the app's refresh listener ran once");
    assert.ok(Number(await page.locator("#expires").getAttribute("data-ms")) > firstExpiry, "a new expiry is shown");

    await page.click("#logout");
    await until("status", (t) => t === "signed out");
    await page.click("#call");
    // Signed out, auth.fetch is plain fetch: the request goes out without a token.
    await until("result", (t) => t.startsWith("call 3:"));
    assert.match(await text("result"), /^call 3: 401 /);
    assert.equal(await server.metric(API_401), 1);
    assert.equal(await server.metric(ROTATED), 1, "no refresh after logout");

    watcher.check();
  } finally {
    await context.close();
    await server.stop();
  }
}

test("examples/vite-ts in Chromium: login, call, expiry, call -> 200 with one refresh", async () => {
  const html = readFileSync(join(VITE, "dist/index.html"), "utf8");
  assert.match(html, /\/vite\/assets\/index-[\w-]+\.js/, "the production build (make examples) is served");
  await expiryFlow("/vite/");
});

test("examples/rust in Chromium: login, call, expiry, call -> 200 with one refresh", async () => {
  assert.ok(existsSync(join(RUST_PKG, "rotafetch_example_rust_bg.wasm")), "the Rust example is built (make examples)");
  await expiryFlow("/rust/");
});
