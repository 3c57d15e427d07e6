// What every bench report says about its run (machine, load, commit) and how it lands in
// BENCHMARKS.md: each bench script owns one section between its own markers.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, totalmem } from "node:os";
import { join } from "node:path";
import { ROOT } from "../../e2e/lib/harness.mjs";

const sh = (cmd, args) => {
  try { return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim(); } catch { return "?"; }
};

/** The machine and the checkout the run measured. */
export function machine() {
  return {
    date: new Date().toISOString(),
    cores: Number(sh("nproc", [])),
    cpu: cpus()[0]?.model ?? "?",
    memoryGiB: Number((totalmem() / 2 ** 30).toFixed(1)),
    kernel: release(),
    chromium: sh(process.env.CHROMIUM ?? "/usr/bin/chromium", ["--version"]),
    node: process.version,
    git: sh("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"]) + (sh("git", ["-C", ROOT, "status", "--porcelain", "--", "src", "server/src", "Cargo.toml", "Cargo.lock"]) ? " (+ uncommitted changes)" : ""),
    loadStart: load(),
  };
}

/** The 1-, 5- and 15-minute load averages, e.g. "1.02 / 0.88 / 0.75". */
export const load = () => loadavg().map((x) => x.toFixed(2)).join(" / ");

/** Replaces what lies between `<!-- NAME:BEGIN ... -->` and `<!-- NAME:END -->` in BENCHMARKS.md. */
export function writeSection(name, md) {
  const file = join(ROOT, "BENCHMARKS.md");
  const begin = `<!-- ${name}:BEGIN (written by bench/; do not edit by hand) -->`;
  const end = `<!-- ${name}:END -->`;
  let text = existsSync(file) ? readFileSync(file, "utf8") : "# Benchmarks\n";
  const i = text.indexOf(`<!-- ${name}:BEGIN`), j = text.indexOf(end);
  text = i < 0 || j < i
    ? `${text.trimEnd()}\n\n${begin}\n${md}\n${end}\n`
    : `${text.slice(0, i)}${begin}\n${md}\n${text.slice(j)}`;
  writeFileSync(file, text);
}

/**
 * Writes target/bench/NAME.md and NAME.json, and BENCHMARKS.md's `section` unless it is null
 * (quick or partial runs); prints the markdown.
 */
export function save(name, report, md, section) {
  const out = join(ROOT, "target/bench");
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, `${name}.md`), md + "\n");
  writeFileSync(join(out, `${name}.json`), JSON.stringify(report, null, 2) + "\n");
  if (section) writeSection(section, md);
  console.log(md);
  console.error(`bench: wrote target/bench/${name}.md and ${name}.json${section ? " and BENCHMARKS.md" : ""}`);
}
