#!/usr/bin/env node
// Turns wasm-pack's pkg/ into the npm package people install (`make pkg` runs this right
// after `wasm-pack build --target web`, under the same lock). `main` below lists the steps;
// each is a function of its own further down.
//
// A second entry (`rotafetch/dpop`, built by scripts/pkg.sh into pkg/dpop/) goes through the
// same steps with `--entry`: no package.json or README of its own (wasm-pack's are removed),
// the package's `exports` and `files` name it.
//
// Usage: node scripts/package.mjs [pkgDir] [--entry]   (default: pkg)
import { readFileSync, writeFileSync, existsSync, copyFileSync, readdirSync, rmSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build, transformSync } from "esbuild";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
// The property names the package build shortens (js/driver.js: the driver's and plumbing's
// own fields and methods end in `_`; `__proto__` does not match) and the names they get,
// kept from build to build.
const MANGLE = /[^_]_$/;
const MANGLE_CACHE = join(root, "scripts/mangle-cache.json");
// The only snippets the crate imports (a third made wasm-bindgen-test-runner's page hang).
const SNIPPETS = ["js/driver.js", "js/plumbing.js"];
const WASM_URL = 'new URL("rotafetch_bg.wasm",import.meta.url)';

async function main() {
  const args = process.argv.slice(2);
  const entryOnly = args.includes("--entry");
  const pkgDir = resolve(root, args.find((a) => !a.startsWith("--")) ?? "pkg");
  const crate = crateMetadata();
  const files = wasmPackOutput(pkgDir);
  referenceDisposableLib(pkgDir);
  minifyGlueWhitespace(pkgDir);
  shortenWasmNames(pkgDir);
  await bundleSnippets(pkgDir);
  minifyGlueIdentifiers(pkgDir);
  await proveItLoads(pkgDir);
  if (entryOnly) {
    for (const f of ["package.json", "README.md", "LICENSE-APACHE", "LICENSE-MIT", ".gitignore"]) rmSync(join(pkgDir, f), { force: true });
    console.log(`package.mjs: entry ${pkgDir} (${files.join(", ")})`);
    return;
  }
  writePackageJson(pkgDir, crate, files);
}

/** The crate's `[package]` metadata, as cargo reads it. */
function crateMetadata() {
  const meta = JSON.parse(execFileSync("cargo", ["metadata", "--format-version", "1", "--no-deps"],
    { cwd: root, encoding: "utf8", maxBuffer: 1 << 26 }));
  const crate = meta.packages.find((p) => p.name === "rotafetch");
  if (!crate) throw new Error("cargo metadata lists no rotafetch package");
  for (const k of ["version", "description", "license", "repository"]) {
    if (!crate[k]) throw new Error(`Cargo.toml [package] has no ${k}`);
  }
  return crate;
}

/** What wasm-pack wrote, checked: the package's files (and `snippets/`). */
function wasmPackOutput(pkgDir) {
  const need = ["rotafetch.js", "rotafetch.d.ts", "rotafetch_bg.wasm"];
  for (const f of need) {
    if (!existsSync(join(pkgDir, f))) throw new Error(`${pkgDir}/${f} missing: run wasm-pack first`);
  }
  const files = [...need, "rotafetch_bg.wasm.d.ts"].filter((f) => existsSync(join(pkgDir, f)));
  if (existsSync(join(pkgDir, "snippets"))) files.push("snippets/");
  return files;
}

/** The snippet files wasm-pack copied (`snippets/rotafetch-<hash>/js/…`), relative to
 * snippets/, with `/` separators. */
function snippetFiles(pkgDir) {
  const dir = join(pkgDir, "snippets");
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true }).map((f) => String(f).split("\\").join("/")).filter((f) => f.endsWith(".js"));
}

/** wasm-bindgen declares `[Symbol.dispose](): void` on every class; that type only exists in
 * TypeScript's `esnext.disposable` lib (TS >= 5.2). Referenced from the .d.ts itself, a
 * project with `lib: ["ES2022", "DOM"]` and `skipLibCheck: false` type-checks as is. */
function referenceDisposableLib(pkgDir) {
  const dts = join(pkgDir, "rotafetch.d.ts");
  const LIB_REF = '/// <reference lib="esnext.disposable" />\n';
  const types = readFileSync(dts, "utf8");
  if (types.includes("Symbol.dispose") && !types.startsWith(LIB_REF)) writeFileSync(dts, LIB_REF + types);
}

/** The glue minified, its names kept for now (`shortenWasmNames` reads them). `new
 * URL("rotafetch_bg.wasm", import.meta.url)` survives as is, so bundlers still find the wasm. */
function minifyGlueWhitespace(pkgDir) {
  const gluePath = join(pkgDir, "rotafetch.js");
  const min = transformSync(readFileSync(gluePath, "utf8"), { minifyWhitespace: true, minifySyntax: true, format: "esm", target: "es2020" }).code;
  if (!min.includes(WASM_URL)) throw new Error("minified glue lost the wasm URL pattern bundlers look for");
  writeFileSync(gluePath, min);
}

/**
 * The .wasm's import and export names (wasm-bindgen's carry a 16-hex-digit hash each:
 * incompressible, and written twice, in the .wasm and in the glue) shortened by binaryen's
 * --minify-imports-and-exports-and-modules, and the glue and the .d.ts files rewritten to
 * match. Every old name must then be gone from the glue. (A glue without
 * "./rotafetch_bg.js" was already rewritten: this script ran twice on one build.)
 */
function shortenWasmNames(pkgDir) {
  const gluePath = join(pkgDir, "rotafetch.js"), wasmPath = join(pkgDir, "rotafetch_bg.wasm");
  const min = readFileSync(gluePath, "utf8");
  if (!min.includes('"./rotafetch_bg.js":')) return;
  const wasmOpt = join(root, "node_modules/.bin/wasm-opt");
  const features = ["--enable-bulk-memory", "--enable-nontrapping-float-to-int", "--enable-sign-ext",
    "--enable-mutable-globals", "--enable-reference-types", "--enable-multivalue"];
  // Also dropped: the `producers` and `target_features` custom sections (toolchain versions and
  // the features the code was built with; no engine reads them): 0.2 KB gzip.
  const map = JSON.parse(execFileSync(wasmOpt, [wasmPath, "--minify-imports-and-exports-and-modules",
    "--strip-producers", "--strip-target-features", ...features, "-o", wasmPath], { encoding: "utf8", maxBuffer: 1 << 26 }));
  const mod = new WebAssembly.Module(readFileSync(wasmPath));
  const modules = [...new Set(WebAssembly.Module.imports(mod).map((i) => i.module))];
  if (modules.length !== 1) throw new Error(`expected one import module, got ${modules}`);
  // The .wasm imports most functions from the glue ("./rotafetch_bg.js"), and the snippets'
  // functions that need no conversion straight from the snippet (the glue passes each
  // snippet's namespace, `import*as importN from"./snippets/…"`). binaryen moved them all
  // into one module: the snippets' ones become entries of the glue's object.
  const imports = new Map();
  const direct = [];
  for (const [m, from, to] of map.imports) {
    if (m === "./rotafetch_bg.js") imports.set(from, to);
    else if (m.startsWith("./snippets/")) direct.push([m, from, to]);
    else throw new Error(`unexpected import module ${m}`);
  }
  const exports = new Map(map.exports);
  const exportNames = new Set(WebAssembly.Module.exports(mod).map((e) => e.name));
  // Whole identifiers only (not inside a longer one).
  const words = (names) => new RegExp(`(?<![\\w$])(${names.map((n) => n.replace(/[$]/g, "\\$")).join("|")})(?![\\w$])`, "g");
  // Import names are unique hashed identifiers: every occurrence is the import.
  const byLength = [...imports.keys()].sort((a, b) => b.length - a.length);
  const namespace = (m) => {
    const found = new RegExp(`import\\*as ([\\w$]+) from${regexpOf(JSON.stringify(m))}`).exec(min);
    if (!found) throw new Error(`the glue does not import ${m}`);
    return found[1];
  };
  const entries = direct.map(([m, from, to]) => `${JSON.stringify(to)}:${namespace(m)}.${from},`).join("");
  let js = min.replace('"./rotafetch_bg.js":{__proto__:null,', `${JSON.stringify(modules[0])}:{__proto__:null,${entries}`)
    .replace(/,"\.\/snippets\/[^"]+":[\w$]+/g, "")
    .replace(words(byLength), (n) => imports.get(n));
  if (direct.length && !js.includes(entries)) throw new Error("the glue's import object has an unexpected shape");
  // Namespace imports nothing reads any more.
  js = js.replace(/import\*as ([\w$]+) from"[^"]+";/g, (all, id) =>
    js.split(new RegExp(`(?<![\\w$])${id.replace(/\$/g, "\\$")}(?![\\w$])`)).length > 2 ? all : "");
  // Exports are read as `wasm.<name>` only.
  const WASM_READ = /\bwasm\.([A-Za-z_$][\w$]*)/g;
  js = js.replace(WASM_READ, (all, n) => exports.has(n) ? `wasm.${exports.get(n)}` : all);
  const left = js.match(words(byLength));
  if (left) throw new Error(`glue still names imports ${left.slice(0, 3)}`);
  for (const [, n] of js.matchAll(WASM_READ)) {
    if (!exportNames.has(n)) throw new Error(`glue reads wasm.${n}, not an export`);
  }
  writeFileSync(gluePath, js);
  // The .d.ts files list the raw exports (rotafetch.d.ts in `interface InitOutput`, and
  // rotafetch_bg.wasm.d.ts): same renaming.
  const rename = (text) => text.replace(/^(\s*(?:readonly|export const) )([A-Za-z_$][\w$]*)(?=:)/gm,
    (all, pre, n) => exports.has(n) ? `${pre}${exports.get(n)}` : all);
  const dts = join(pkgDir, "rotafetch.d.ts");
  const dtsText = readFileSync(dts, "utf8");
  const io = /export interface InitOutput \{[^}]*\}/.exec(dtsText);
  if (!io) throw new Error("rotafetch.d.ts has no InitOutput interface");
  writeFileSync(dts, dtsText.replace(io[0], rename(io[0])));
  const bgDts = join(pkgDir, "rotafetch_bg.wasm.d.ts");
  if (existsSync(bgDts)) writeFileSync(bgDts, rename(readFileSync(bgDts, "utf8")));
}

const regexpOf = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * One snippet file instead of two: js/driver.js re-exports js/plumbing.js, so a bundle of
 * driver.js serves every import the glue makes (0.2 KB gzip less than two files), and the glue
 * then imports it alone. The bundle exports only what the glue reads (its named imports from
 * either module, what it reads of their namespaces, and `AuthError`, which the package
 * exports beside the glue's own), so functions no import reaches are dropped: in the
 * `rotafetch` entry, built without the `dpop` feature, the DPoP key and proof functions. The
 * names between the glue and the bundle are shortened (`AuthError` keeps its name), the
 * bundle minified, the driver's named answers inlined and the private property names
 * shortened (see `bundle`).
 */
async function bundleSnippets(pkgDir) {
  const found = snippetFiles(pkgDir);
  const [driver, plumbing] = SNIPPETS.map((s) => found.find((f) => f.endsWith("/" + s)));
  // Bundled already: this script ran twice on one build.
  if (driver && !plumbing && found.length === 1) return;
  if (!driver || !plumbing || found.length !== 2) throw new Error(`expected the snippets ${SNIPPETS}, found ${found}`);
  const gluePath = join(pkgDir, "rotafetch.js");
  let glue = readFileSync(gluePath, "utf8");
  const specs = [driver, plumbing].map((f) => regexpOf(JSON.stringify(`./snippets/${f}`))).join("|");
  const named = new RegExp(`import\\{([^}]*)\\}from(${specs})`, "g");
  const namespaces = [...glue.matchAll(new RegExp(`import\\*as ([\\w$]+) from(?:${specs})`, "g"))].map(([, ns]) => ns);
  const reads = (ns) => new RegExp(`(?<![\\w$])${ns.replace(/\$/g, "\\$")}\\.([A-Za-z_$][\\w$]*)`, "g");
  // The package's classes: js/driver.js's AuthClient (the driver, whose `newClient` the glue
  // connects below) and js/plumbing.js's AuthError.
  const used = new Set(["AuthError", "AuthClient", "connect"]);
  for (const [, list] of glue.matchAll(named)) {
    for (const item of list.split(",")) used.add(item.trim().split(/\s+as\s+/)[0]);
  }
  for (const ns of namespaces) {
    for (const [, name] of glue.matchAll(reads(ns))) used.add(name);
    if (new RegExp(`(?<![\\w$])${ns.replace(/\$/g, "\\$")}(?![\\w$.])`).test(glue.replace(`import*as ${ns} from`, ""))) {
      throw new Error(`the glue uses the namespace ${ns} of a snippet as a whole: cannot tell which exports it needs`);
    }
  }
  // a, b, …: the names the glue imports the bundle's exports by.
  const short = new Map([...used].filter((n) => !n.startsWith("Auth")).sort().map((n, i) => [n, (i >= 26 ? "_" : "") + String.fromCharCode(97 + (i % 26))]));
  const driverPath = join(pkgDir, "snippets", driver);
  const exported = [...used].sort().map((n) => (short.has(n) ? `${n} as ${short.get(n)}` : n));
  writeFileSync(driverPath, await bundle(driverPath, exported));
  rmSync(join(pkgDir, "snippets", plumbing));
  const to = `"./snippets/${driver}"`;
  glue = glue.replace(named, (_, list) => `import{${list.split(",").map((item) => {
    const [name, local = name] = item.trim().split(/\s+as\s+/);
    return short.has(name) ? `${short.get(name)} as ${local}` : item;
  }).join(",")}}from${to}`);
  for (const ns of namespaces) glue = glue.replace(reads(ns), (all, name) => (short.has(name) ? `${ns}.${short.get(name)}` : all));
  glue = glue.replace(new RegExp(`from(${specs})`, "g"), `from${to}`);
  // The glue's `newClient` (the .wasm's export) goes to the AuthClient class instead of the
  // package's exports.
  const exports = /export\{([^}]*)\}/.exec(glue);
  if (!exports || !/(^|,)newClient(,|$)/.test(exports[1])) throw new Error("the glue does not export newClient");
  glue = glue.replace(exports[0], `export{${exports[1].split(",").filter((n) => n !== "newClient").join(",")}}`);
  const line = `import{${short.get("connect")} as connectClient}from${to};connectClient(newClient);export{AuthClient,AuthError}from${to};`;
  if (!glue.includes(line)) glue += line;
  writeFileSync(gluePath, glue);
}

/**
 * esbuild's bundle of `driverPath` (and plumbing.js beside it) exporting `names` (`X` or
 * `X as y`), minified:
 * - the named answers (`export const Start = Object.freeze({ Pass: 0, … })`, in either file)
 *   read as TypeScript `const enum`s, which esbuild inlines at every use and drops;
 * - the properties matching MANGLE shortened, with the names of MANGLE_CACHE (new ones are
 *   added to it: commit the file).
 */
async function bundle(driverPath, names) {
  const ANSWER = /^export const (\w+) = Object\.freeze\(\{([^}]*)\}\);$/gm;
  const answersAsEnums = {
    name: "answers-as-enums",
    setup(b) {
      b.onLoad({ filter: /[\\/]js[\\/](driver|plumbing)\.js$/ }, ({ path }) => {
        const source = readFileSync(path, "utf8");
        const contents = source.replace(ANSWER, (_, name, body) => `export const enum ${name} {${body.replace(/:/g, "=")}}`);
        if (contents.match(/Object\.freeze\(/)) throw new Error(`${path} has a named answer the build cannot inline`);
        return { contents, loader: "ts" };
      });
    },
  };
  const cache = existsSync(MANGLE_CACHE) ? JSON.parse(readFileSync(MANGLE_CACHE, "utf8")) : {};
  const out = await build({
    stdin: { contents: `export{${names.join(",")}}from"./driver.js";`, resolveDir: dirname(driverPath) },
    // es2021 keeps `a.b_ ??= c` as written (lowered, a shortened name costs a temporary); the
    // snippets need newer engines anyway (`AbortSignal.timeout`).
    bundle: true, minify: true, format: "esm", target: "es2021", write: false, plugins: [answersAsEnums],
    mangleProps: MANGLE, mangleCache: cache,
  });
  const added = Object.keys(out.mangleCache).filter((k) => !(k in cache));
  if (added.length) {
    const sorted = Object.fromEntries(Object.entries(out.mangleCache).sort(([a], [b]) => (a < b ? -1 : 1)));
    writeFileSync(MANGLE_CACHE, JSON.stringify(sorted, null, 2) + "\n");
    console.log(`package.mjs: new shortened names ${added.join(", ")} in scripts/mangle-cache.json: commit it`);
  }
  const text = out.outputFiles[0].text;
  const left = text.match(/\b\w*[^_\W]_\b/g);
  if (left) throw new Error(`the bundle still names ${left.slice(0, 3)}`);
  return text;
}

/**
 * Then the glue's identifiers are minified too (0.6 KB gzip less than keeping them), after the
 * renaming above, which reads the glue's own names (`wasm.<export>`). The exported classes
 * get their names back (`AuthClient.name`, `AuthError.name`) with one `Object.defineProperty`
 * each rather than esbuild's `keepNames`, which would wrap every closure wasm-bindgen creates.
 * (Run twice on one build, the names are already short and the properties already set.)
 */
function minifyGlueIdentifiers(pkgDir) {
  const gluePath = join(pkgDir, "rotafetch.js");
  let short = transformSync(readFileSync(gluePath, "utf8"), { minify: true, format: "esm", target: "es2020" }).code;
  const exported = /export\{([^}]*)\};?\s*(?=export\{AuthError\}|$)/.exec(short);
  if (!exported) throw new Error("minified glue has no export clause at its end");
  for (const [, local, name] of exported[1].matchAll(/([\w$]+) as (Auth\w+)/g)) {
    if (!short.includes(`class ${local}{`) && !short.includes(`class ${local} `)) continue;
    const set = `Object.defineProperty(${local},"name",{value:"${name}"});`;
    if (!short.includes(set)) short = short.replace(exported[0], set + exported[0]);
  }
  if (!short.includes(WASM_URL)) throw new Error("minified glue lost the wasm URL pattern bundlers look for");
  writeFileSync(gluePath, short);
}

/** The proof: the .wasm instantiates with the glue's imports (Node has WebAssembly), and the
 * exported classes have their names. */
async function proveItLoads(pkgDir) {
  const glue = await import(`${pathToFileURL(join(pkgDir, "rotafetch.js")).href}?check=${Date.now()}`);
  glue.initSync({ module: readFileSync(join(pkgDir, "rotafetch_bg.wasm")) });
  for (const name of ["AuthClient", "AuthError"]) {
    if (glue[name]?.name !== name) throw new Error(`the glue's ${name} is named ${glue[name]?.name}`);
  }
}

/** package.json (name, version and the rest from Cargo.toml; ESM `exports` with `types`,
 * `sideEffects`, an explicit `files` list so `npm pack` ships exactly the .wasm, the JS glue,
 * the .d.ts files and the README) and README.md (npm/README.md, the JS/TS quickstart). */
function writePackageJson(pkgDir, crate, files) {
  // The DPoP entry (pkg/dpop/, same file names), when scripts/pkg.sh built it.
  const dpopEntry = existsSync(join(pkgDir, "dpop", "rotafetch.js"));
  if (dpopEntry) files.push("dpop/");
  const pkg = {
    name: "rotafetch",
    version: crate.version,
    description: crate.description,
    license: crate.license,
    repository: { type: "git", url: `git+${crate.repository}.git` },
    homepage: `${crate.repository}#readme`,
    bugs: { url: `${crate.repository}/issues` },
    keywords: [...new Set([...(crate.keywords ?? []), "oauth2", "webassembly", "typescript"])],
    type: "module",
    // One build (wasm-bindgen's `web` target) for pages without a bundler and for bundlers that
    // understand `new URL("rotafetch_bg.wasm", import.meta.url)` (Vite, webpack 5, Parcel 2).
    main: "./rotafetch.js",
    module: "./rotafetch.js",
    types: "./rotafetch.d.ts",
    exports: {
      ".": { types: "./rotafetch.d.ts", default: "./rotafetch.js" },
      // For bundlers that need the wasm URL handed to init(), e.g. Vite's `?url`.
      "./rotafetch_bg.wasm": "./rotafetch_bg.wasm",
      // The same API with the `dpop` option (RFC 9449): its own .wasm and snippet, 2 KB gzip more.
      ...(dpopEntry ? {
        "./dpop": { types: "./dpop/rotafetch.d.ts", default: "./dpop/rotafetch.js" },
        "./dpop/rotafetch_bg.wasm": "./dpop/rotafetch_bg.wasm",
      } : {}),
      "./package.json": "./package.json",
    },
    // Importing the module does nothing until init() is called; only snippets (if any) run code.
    sideEffects: ["./snippets/*", ...(dpopEntry ? ["./dpop/snippets/*"] : [])],
    files,
  };
  writeFileSync(join(pkgDir, "package.json"), JSON.stringify(pkg, null, 2) + "\n");
  copyFileSync(join(root, "npm/README.md"), join(pkgDir, "README.md"));
  // wasm-pack writes a .gitignore ("*") into pkg/; npm pack honours `files`, so it is harmless,
  // but nothing else (e.g. a stale tarball) should sit next to the package.
  const stray = readdirSync(pkgDir).filter((f) => f.endsWith(".tgz"));
  if (stray.length) throw new Error(`stray files in ${pkgDir}: ${stray.join(", ")}`);
  console.log(`package.mjs: ${pkg.name}@${pkg.version} (${files.join(", ")}, README.md)`);
}

await main();
