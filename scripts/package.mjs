#!/usr/bin/env node
// Turns wasm-pack's pkg/ into the npm package people install (`make pkg` runs this right
// after `wasm-pack build --target web`, under the same lock).
//
// - package.json: name, version (from Cargo.toml), description, license, repository,
//   keywords, ESM `exports` with `types`, `sideEffects`, and an explicit `files` list, so
//   `npm pack` ships exactly the .wasm, the JS glue, the .d.ts files and the README.
// - README.md: npm/README.md (the JS/TS quickstart), replacing whatever wasm-pack copied.
// - rotafetch.js: wasm-bindgen's glue, minified by esbuild (the exported classes keep their
//   names): every page that loads it without a bundler gets ~2 KB gzip less.
// - snippets/: the ES modules the crate imports (js/driver.js, which re-exports
//   js/plumbing.js) bundled and minified into one file, driver.js, which the glue imports.
// - rotafetch_bg.wasm: its toolchain custom sections stripped, and the names of its imports and
//   exports (wasm-bindgen's carry a 16-hex-digit
//   hash each: incompressible, and written twice, in the .wasm and in the glue) shortened by
//   binaryen's --minify-imports-and-exports-and-modules, and the glue and the .d.ts files
//   rewritten to match. Checked here: Node instantiates the result with the glue's imports.
//
// A second entry (`rotafetch/dpop`, built by scripts/pkg.sh into pkg/dpop/) goes through the
// same steps with `--entry`: no package.json or README of its own (wasm-pack's are removed),
// the package's `exports` and `files` name it.
//
// Usage: node scripts/package.mjs [pkgDir] [--entry]   (default: pkg)
import { readFileSync, writeFileSync, existsSync, copyFileSync, readdirSync, rmSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { join, resolve, dirname, basename } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { buildSync, transformSync } from "esbuild";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const entryOnly = args.includes("--entry");
const pkgDir = resolve(root, args.find((a) => !a.startsWith("--")) ?? "pkg");

/** The `[package]` table's simple `key = "string"` / `key = [..]` entries of a Cargo.toml. */
function cargoPackage(file) {
  const out = {};
  let inPackage = false;
  for (const raw of readFileSync(file, "utf8").split("\n")) {
    const line = raw.trim();
    if (line.startsWith("[")) { inPackage = line === "[package]"; continue; }
    if (!inPackage) continue;
    const m = /^([A-Za-z0-9_-]+)\s*=\s*(.+)$/.exec(line);
    if (!m) continue;
    const [, key, value] = m;
    if (value.startsWith('"')) out[key] = JSON.parse(value);
    else if (value.startsWith("[")) out[key] = JSON.parse(value);
  }
  return out;
}

const cargo = cargoPackage(join(root, "Cargo.toml"));
for (const k of ["name", "version", "description", "license", "repository"]) {
  if (!cargo[k]) throw new Error(`Cargo.toml [package] has no ${k}`);
}

const need = ["rotafetch.js", "rotafetch.d.ts", "rotafetch_bg.wasm"];
for (const f of need) {
  if (!existsSync(join(pkgDir, f))) throw new Error(`${pkgDir}/${f} missing: run wasm-pack first`);
}

const files = [...need, "rotafetch_bg.wasm.d.ts"].filter((f) => existsSync(join(pkgDir, f)));
// Inline JS snippets (#[wasm_bindgen(inline_js)]), if any, are imported by rotafetch.js.
if (existsSync(join(pkgDir, "snippets"))) files.push("snippets/");

// wasm-bindgen declares `[Symbol.dispose](): void` on every class; that type only exists in
// TypeScript's `esnext.disposable` lib (TS >= 5.2). Reference it from the .d.ts itself, so a
// project with `lib: ["ES2022", "DOM"]` and `skipLibCheck: false` type-checks as is.
const dts = join(pkgDir, "rotafetch.d.ts");
const LIB_REF = '/// <reference lib="esnext.disposable" />\n';
const types = readFileSync(dts, "utf8");
if (types.includes("Symbol.dispose") && !types.startsWith(LIB_REF)) {
  writeFileSync(dts, LIB_REF + types);
}

// Minify the glue. Identifiers are not renamed: `AuthClient.name` and `AuthError.name` stay as
// written, with no `keepNames` wrapper run on every closure wasm-bindgen creates (renaming
// would save another 0.5 KB gzip). `new URL("rotafetch_bg.wasm", import.meta.url)` survives
// as is, so bundlers still find the wasm.
const gluePath = join(pkgDir, "rotafetch.js");
const glue = readFileSync(gluePath, "utf8");
const min = transformSync(glue, { minifyWhitespace: true, minifySyntax: true, format: "esm", target: "es2020" }).code;
if (!min.includes('new URL("rotafetch_bg.wasm",import.meta.url)')) {
  throw new Error("minified glue lost the wasm URL pattern bundlers look for");
}
writeFileSync(gluePath, min);

// The snippets (ES modules of #[wasm_bindgen(module)]) are shipped minified as well; their
// export names stay. Bundling them into one file happens after the renaming below, which
// needs the glue's imports as wasm-bindgen wrote them.
const snippetFiles = () => existsSync(join(pkgDir, "snippets"))
  ? readdirSync(join(pkgDir, "snippets"), { recursive: true }).map(String).filter((f) => f.endsWith(".js"))
  : [];
for (const f of snippetFiles()) {
  const file = join(pkgDir, "snippets", f);
  writeFileSync(file, transformSync(readFileSync(file, "utf8"), { minify: true, format: "esm", target: "es2020" }).code);
}

// Short import/export names. binaryen prints the mapping it applied; every old name must then
// be gone from the glue, and the glue's import object must satisfy the new .wasm. (A glue
// without "./rotafetch_bg.js" was already rewritten: this script ran twice on one build.)
const wasmPath = join(pkgDir, "rotafetch_bg.wasm");
if (min.includes('"./rotafetch_bg.js":')) {
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
    const found = new RegExp(`import\\*as ([\\w$]+) from${JSON.stringify(m).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`).exec(min);
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
  const dtsText = readFileSync(dts, "utf8");
  const io = /export interface InitOutput \{[^}]*\}/.exec(dtsText);
  if (!io) throw new Error("rotafetch.d.ts has no InitOutput interface");
  writeFileSync(dts, dtsText.replace(io[0], rename(io[0])));
  const bgDts = join(pkgDir, "rotafetch_bg.wasm.d.ts");
  if (existsSync(bgDts)) writeFileSync(bgDts, rename(readFileSync(bgDts, "utf8")));
}

// One snippet file instead of two: js/driver.js re-exports js/plumbing.js, so the bundle of
// driver.js serves every import the glue makes (0.2 KB gzip less than two files). The bundle
// exports only what the glue reads (its named imports from either module, and what it reads
// of their namespaces), so the functions no import reaches are dropped: in the `rotafetch`
// entry, built without the `dpop` feature, the DPoP key and proof functions.
const driver = snippetFiles().find((f) => f.endsWith("/js/driver.js"));
const plumbing = snippetFiles().find((f) => f.endsWith("/js/plumbing.js"));
if (driver && plumbing) {
  const glueNow = readFileSync(gluePath, "utf8");
  const used = new Set(["AuthError"]);
  for (const f of [driver, plumbing]) {
    const spec = JSON.stringify(`./snippets/${f.split("\\").join("/")}`).replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    for (const [, list] of glueNow.matchAll(new RegExp(`import\\{([^}]*)\\}from${spec}`, "g"))) {
      for (const item of list.split(",")) used.add(item.trim().split(/\s+as\s+/)[0]);
    }
    for (const [, ns] of glueNow.matchAll(new RegExp(`import\\*as ([\\w$]+) from${spec}`, "g"))) {
      const esc = ns.replace(/\$/g, "\\$");
      for (const [, name] of glueNow.matchAll(new RegExp(`(?<![\\w$])${esc}\\.([A-Za-z_$][\\w$]*)`, "g"))) used.add(name);
      if (new RegExp(`(?<![\\w$])${esc}(?![\\w$.])`).test(glueNow.replace(`import*as ${ns} from`, ""))) {
        throw new Error(`the glue uses the namespace ${ns} of ${f} as a whole: cannot tell which exports it needs`);
      }
    }
  }
  const out = buildSync({
    stdin: { contents: `export{${[...used].sort().join(",")}}from"./${basename(driver)}";`, resolveDir: dirname(join(pkgDir, "snippets", driver)) },
    bundle: true, minify: true, format: "esm", target: "es2020", write: false }).outputFiles[0].text;
  writeFileSync(join(pkgDir, "snippets", driver), out);
  rmSync(join(pkgDir, "snippets", plumbing));
  const from = `"./snippets/${plumbing.split("\\").join("/")}"`, to = `"./snippets/${driver.split("\\").join("/")}"`;
  const glueText = readFileSync(gluePath, "utf8");
  if (!glueText.includes(from)) throw new Error(`the glue does not import ${from}`);
  writeFileSync(gluePath, glueText.split(from).join(to));
}

// `AuthError` is a class of the snippet (plumbing.js): the package exports it beside the
// glue's own exports.
if (driver) {
  const line = `export{AuthError}from"./snippets/${driver.split("\\").join("/")}";`;
  const glueText = readFileSync(gluePath, "utf8");
  if (!glueText.includes(line)) writeFileSync(gluePath, glueText + line);
}

// Then the glue's identifiers are minified too (0.6 KB gzip less than keeping them), after the
// renaming above, which reads the glue's own names (`wasm.<export>`). The exported classes
// get their names back (`AuthClient.name`, `AuthError.name`) with one `Object.defineProperty`
// each rather than esbuild's `keepNames`, which would wrap every closure wasm-bindgen creates.
// (Run twice on one build, the names are already short and the properties already set.)
let short = transformSync(readFileSync(gluePath, "utf8"), { minify: true, format: "esm", target: "es2020" }).code;
const exported = /export\{([^}]*)\};?\s*(?=export\{AuthError\}|$)/.exec(short);
if (!exported) throw new Error("minified glue has no export clause at its end");
for (const [, local, name] of exported[1].matchAll(/([\w$]+) as (Auth\w+)/g)) {
  if (!short.includes(`class ${local}{`) && !short.includes(`class ${local} `)) continue;
  const set = `Object.defineProperty(${local},"name",{value:"${name}"});`;
  if (!short.includes(set)) short = short.replace(exported[0], set + exported[0]);
}
if (!short.includes('new URL("rotafetch_bg.wasm",import.meta.url)')) {
  throw new Error("minified glue lost the wasm URL pattern bundlers look for");
}
writeFileSync(gluePath, short);
// The proof: instantiate the .wasm with the glue's imports (Node has WebAssembly), and the
// exported classes have their names.
const glueModule = await import(`${pathToFileURL(gluePath).href}?check=${Date.now()}`);
glueModule.initSync({ module: readFileSync(wasmPath) });
for (const name of ["AuthClient", "AuthError"]) {
  if (glueModule[name]?.name !== name) throw new Error(`the glue's ${name} is named ${glueModule[name]?.name}`);
}

if (entryOnly) {
  for (const f of ["package.json", "README.md", "LICENSE-APACHE", "LICENSE-MIT", ".gitignore"]) {
    rmSync(join(pkgDir, f), { force: true });
  }
  console.log(`package.mjs: entry ${pkgDir} (${files.join(", ")})`);
  process.exit(0);
}

// The DPoP entry (pkg/dpop/, same file names), when scripts/pkg.sh built it.
const dpopEntry = existsSync(join(pkgDir, "dpop", "rotafetch.js"));
if (dpopEntry) files.push("dpop/");

const pkg = {
  name: "rotafetch",
  version: cargo.version,
  description: cargo.description,
  license: cargo.license,
  repository: { type: "git", url: `git+${cargo.repository}.git` },
  homepage: `${cargo.repository}#readme`,
  bugs: { url: `${cargo.repository}/issues` },
  keywords: [...new Set([...(cargo.keywords ?? []), "oauth2", "webassembly", "typescript"])],
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
