// The markdown of bench/abuse.mjs's report (figures 1-3 of BENCHMARKS.md's abuse section).
import { round } from "./load.mjs";

const ok = (b) => (b ? "**met**" : "**missed**");
const ratio = (a, b) => round(a / b, 2);
const stuck = (a) => (a.stuck ? ` (${a.stuck} attacker process${a.stuck > 1 ? "es" : ""} did not stop 20 s after the end: counted up to its latest report, if any)` : "");
const statuses = (t) => Object.entries(t).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}: ${v}`).join(", ") || "none";
const non200 = (s) => Object.entries(s.status).filter(([k]) => k !== "200").reduce((n, [, v]) => n + v, 0);
const sumOf = (m, re) => Object.entries(m).filter(([k]) => re.test(k)).reduce((s, [, v]) => s + v, 0);

/**
 * The server's documented sign-in budget (server/README, "Security"; the defaults of
 * --login-failures-per-account and the back-off): 5 failures per account, then each further
 * one only 1 s, 2 s, 4 s, … (at most 15 min) after the latest. How many failures that lets
 * one account take in `seconds`, guessed one at a time.
 */
export function accountBudget(seconds, free = 5, baseS = 1, maxS = 900) {
  let n = 0, t = 0;
  while (t <= seconds) {
    n++;
    if (n > free) t += Math.min(baseS * 2 ** (n - free - 1), maxS);
  }
  return n;
}

/** Rows comparing the users' latency without and with the attack (and the 2x target). */
function usersRows(r, L) {
  for (const kind of ["api", "refresh"]) {
    const b = r.base[kind], d = r.during[kind];
    const what = kind === "api" ? "DPoP `GET /api/me`" : "`POST /auth/refresh`";
    L.push(`| ${r.build} | ${what} | ${b.n} / ${d.n} | ${non200(r.base[kind])} / ${non200(d)} | ${b.p50} / ${d.p50} | ${b.p99} / ${d.p99} | ${ratio(d.p99, b.p99)}× | ${ok(non200(d) === 0 && d.p99 <= 2 * b.p99)} |`);
  }
}
const USERS_HEAD = [
  "| server | legitimate call | calls (no attack / attack) | not 200 | p50 ms | p99 ms | p99 ratio | all 200, p99 ≤ 2× |",
  "|---|---|--:|--:|--:|--:|--:|---|",
];

export function abuseMarkdown(r) {
  const L = [];
  const m = r.machine, P = r.plan;
  L.push(`Measured ${m.date.slice(0, 10)} on ${m.cores} cores (${m.cpu}), ${m.memoryGiB} GiB, Linux ${m.kernel}; Node ${m.node}; rotafetch-server at ${m.git}. ` +
    `Command: \`${P.quick ? "BENCH_QUICK=1 " : ""}node ${P.nodeFlags ? `${P.nodeFlags} ` : ""}bench/abuse.mjs\` (${r.seconds} s; \`make bench\` runs it). Load average (1 / 5 / 15 min) ${m.loadStart} at the start, ${r.loadEnd} at the end; each figure's own start in its rows.`);
  L.push("");
  L.push(`Legitimate users throughout: ${P.apiUsers} DPoP users (own ES256 key each, bound sessions) calling \`GET /api/me\` ${P.apiRate}×/s each, and ${P.refreshUsers} bearer users rotating their refresh token ${P.refreshRate}×/s each, from 127.0.0.1 over keep-alive connections (undici). ` +
    `A1 and A2 alternate ${P.roundSeconds} s without the attack and ${P.roundSeconds} s with it, ${P.rounds} times, on the same server, and pool each side's calls ("no attack" / "attack"); A3's "no attack" is ${P.baseSeconds} s just before the attack. Attackers connect from 127.0.0.66 (floods) and 127.0.0.77 (slow clients), from processes of their own in the ${P.attackerClass} CPU class (they take only what the server and the users leave; a real attacker does not run on the server's cores). Client and server share the machine's ${m.cores} cores.`);
  L.push("");
  if (r.jti.length) {
    L.push(`### A1. jti flood (${P.rounds} × ${P.roundSeconds} s; proofs each by a fresh EdDSA key, no credential; ${P.floodWorkers} attacker processes (${P.attackerClass}) × ${P.floodConcurrency} requests in flight)`);
    L.push("");
    L.push("| server | load avg at start | flood requests | flood rate /s | flood answers | attacker proofs recorded | replay-cache table rows (max / end) | server RSS MiB (before / max / end) |");
    L.push("|---|---|--:|--:|---|--:|--:|--:|");
    for (const x of r.jti) {
      // Accepted proofs less the users' own (one per DPoP call answered 200).
      const recorded = sumOf(x.metrics, /dpop_proofs_total\{outcome="accepted"\}/) - (x.during.api.status["200"] ?? 0) - (x.base.api.status["200"] ?? 0);
      L.push(`| ${x.build} | ${x.load} | ${x.attack.sent} | **${round(x.attack.perSecond, 0)}** | ${statuses(x.attack.status)}${stuck(x.attack)} | ${recorded} | ${x.entries.max} / ${x.entries.end} | ${x.rss.base} / ${x.rss.max} / ${x.rss.end} |`);
    }
    L.push("");
    L.push(...USERS_HEAD);
    for (const x of r.jti) usersRows(x, L);
    L.push("");
    for (const x of r.jti) L.push(`- ${x.build}: right after the flood, users' calls: /api ${statuses(x.after.api.status)}; refresh ${statuses(x.after.refresh.status)}. Metrics that moved during the flood: ${Object.entries(x.metrics).filter(([k]) => /dpop|api_requests/.test(k)).map(([k, v]) => `\`${k}\` +${v}`).join(", ")}.`);
    L.push("");
  }
  if (r.password.length) {
    L.push(`### A2. Password guessing (${P.rounds} × ${P.roundSeconds} s; one account, one address, ${P.guessConcurrency} requests in flight)`);
    L.push("");
    L.push("| server | load avg at start | guesses sent | answers | hashes computed | most hashes at once | real user signs in afterwards | server RSS MiB (max / end) |");
    L.push("|---|---|--:|---|--:|--:|---|--:|");
    for (const x of r.password) {
      // Every sign-in that reached a verdict hashed (throttled and busy ones do not).
      const hashes = sumOf(x.metrics, /logins_total\{outcome="(success|invalid_credentials)"\}/);
      const peak = x.hashPeak === undefined ? "–" : x.hashPeak;
      const s = x.signInAfter;
      L.push(`| ${x.build} | ${x.load} | ${x.attack.sent} (${round(x.attack.perSecond, 0)}/s) | ${statuses(x.attack.status)}${stuck(x.attack)} | ${hashes} | ${peak} | ${s.ok ? `yes, ${s.afterSeconds} s after the flood (${s.tries.length} tries: ${s.tries.join(", ")})` : `**no**: ${s.tries.join(", ")}${s.retryAfter ? `, then Retry-After ${s.retryAfter} s, more than the ${P.signInAfterSeconds} s the bench waits` : ` for ${s.afterSeconds} s`}`} | ${x.rss.max} / ${x.rss.end} |`);
    }
    L.push("");
    L.push(...USERS_HEAD);
    for (const x of r.password) usersRows(x, L);
    L.push("");
    // From the first guess to the last: the attack rounds and the quiet ones between them.
    const span = (2 * P.rounds - 1) * P.roundSeconds;
    const seq = accountBudget(span);
    for (const x of r.password.filter((x) => x.hashSlots !== undefined)) {
      const hashes = sumOf(x.metrics, /logins_total\{outcome="(success|invalid_credentials)"\}/);
      L.push(`- ${x.build}: documented budget for the ${span} s from the first guess to the last (5 failures per account, then 1 s, 2 s, 4 s… after the latest): ${seq} guesses one at a time; ` +
        `parallel guesses may exceed it by at most the ${x.hashSlots} hashes that run at once, so ≤ ${seq + x.hashSlots} hashes: ${hashes} computed — ${ok(hashes <= seq + x.hashSlots)}.`);
    }
    for (const x of r.password) L.push(`- ${x.build}: Retry-After values seen by the attacker: ${x.attack.retryAfter.join(", ") || "none"}. Login metrics that moved: ${Object.entries(x.metrics).filter(([k]) => /login|password|throttl/.test(k)).map(([k, v]) => `\`${k}\` +${v}`).join(", ")}.`);
    L.push("");
  }
  if (r.slow.length) {
    L.push(`### A3. Slow clients (${P.slowPerKind} connections dribbling headers + ${P.slowPerKind} dribbling a declared 4 KB body, 1 byte/s, for at most ${P.slowSeconds} s)`);
    L.push("");
    L.push("| server | load avg at start | kind | connected | closed by the server | after (s: min / median / max) | still open at our limit | answers |");
    L.push("|---|---|---|--:|--:|--:|--:|---|");
    for (const x of r.slow) {
      for (const s of x.slow) {
        const c = [...s.closedByServer].sort((a, b) => a - b);
        const q = (f) => (c.length ? round(c[Math.min(c.length - 1, Math.floor(f * c.length))], 1) : "–");
        L.push(`| ${x.build} | ${x.load} | ${s.kind} | ${s.opened} (${s.refused} refused) | ${c.length} | ${q(0)} / ${q(0.5)} / ${q(1)} | ${s.openAtEnd} | ${statuses(s.answers)} |`);
      }
    }
    L.push("");
    L.push(...USERS_HEAD);
    for (const x of r.slow) usersRows(x, L);
    L.push("");
    for (const x of r.slow) L.push(`- ${x.build}: connection metrics that moved: ${Object.entries(x.metrics).filter(([k]) => /http_|connection/.test(k)).map(([k, v]) => `\`${k}\` +${v}`).join(", ") || "none (no such metrics)"}; server RSS max ${x.rss.max} MiB.`);
    L.push("");
  }
  return L.join("\n");
}
