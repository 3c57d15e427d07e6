#!/usr/bin/env node
// Turns wasm-pack's pkg/ into the npm package people install (`make pkg` runs this right
// after `wasm-pack build --target web`, under the same lock).
//
// - package.json: name, version (from Cargo.toml), description, license, repository,
//   keywords, ESM `exports` with `types`, `sideEffects`, and an explicit `files` list, so
//   `npm pack` ships exactly the .wasm, the JS glue, the .d.ts files and the README.
// - README.md: npm/README.md (the JS/TS quickstart), replacing whatever wasm-pack copied.
// - rotafetch.js: wasm-bindgen's glue, minified by esbuild (whitespace and syntax; names kept):
//   every page that loads it without a bundler gets ~1.5 KB gzip less.
//
// Usage: node scripts/package.mjs [pkgDir]   (default: pkg)
import { readFileSync, writeFileSync, existsSync, copyFileSync, readdirSync } from "node:fs";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { transformSync } from "esbuild";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const pkgDir = resolve(root, process.argv[2] ?? "pkg");

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
    "./package.json": "./package.json",
  },
  // Importing the module does nothing until init() is called; only snippets (if any) run code.
  sideEffects: ["./snippets/*"],
  files,
};
writeFileSync(join(pkgDir, "package.json"), JSON.stringify(pkg, null, 2) + "\n");
copyFileSync(join(root, "npm/README.md"), join(pkgDir, "README.md"));

// wasm-pack writes a .gitignore ("*") into pkg/; npm pack honours `files`, so it is harmless,
// but nothing else (e.g. a stale tarball) should sit next to the package.
const stray = readdirSync(pkgDir).filter((f) => f.endsWith(".tgz"));
if (stray.length) throw new Error(`stray files in ${pkgDir}: ${stray.join(", ")}`);
console.log(`package.mjs: ${pkg.name}@${pkg.version} (${files.join(", ")}, README.md)`);
