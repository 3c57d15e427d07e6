// Percentiles and counts for the bench scripts (no dependencies: bench/run.mjs loads it before
// it installs bench/node_modules).

export function pct(xs, p) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}
export const round = (x, d = 2) => (Number.isFinite(x) ? Number(x.toFixed(d)) : x);
/** { n, p50, p99, max } of latencies in ms. */
export const latency = (xs) => ({ n: xs.length, p50: round(pct(xs, 50)), p99: round(pct(xs, 99)), max: round(pct(xs, 100)) });
/** Counts of `xs` by value, e.g. statuses: { "200": 10, "429": 3 }. */
export function tally(xs) {
  const t = {};
  for (const x of xs) t[x] = (t[x] ?? 0) + 1;
  return t;
}

/** Prometheus text (the server's /metrics) as { "series{labels}": value }. */
export function parseMetrics(text) {
  const m = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    m[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return m;
}
