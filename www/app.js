// The rotafetch demo: plain ES module, no bundler. Everything the SDK does goes through
// `auth`; everything else here is UI. Tokens never reach the DOM or the console: only
// fingerprints (the first 8 hex digits of a SHA-256) do. The DPoP switch (which package entry
// loads, and what the page says about it) is in dpop.js.
import { dpopWanted, loadEntry, setDpop, followSwitch, dpopStateText, shortJkt, refusedExplanation } from "./dpop.js";

/** The server's --reuse-grace (scripts/demo.flags). Keep the two in sync. */
const GRACE_SECONDS = 3;
/** Extra wait after the grace window, for the round trip and clock granularity. */
const GRACE_MARGIN_MS = 500;
/** Where rotafetch keeps the session (its default storageKey). */
const SESSION_KEY = "rotafetch";
/** The demo's own shared state (rotation count, the simulated theft), shared by tabs. */
const DEMO_KEY = "rotafetch-demo";
const BURST = 20;
const LOG_MAX = 300;

const $ = (id) => document.getElementById(id);
/** Writes text only when it changed (live regions must not re-announce the same words). */
const setText = (el, text) => { if (el.textContent !== text) el.textContent = text; };
const show = (el, on) => { el.hidden = !on; };

// ---------------------------------------------------------------- shared demo state

function demo() {
  try { return JSON.parse(localStorage.getItem(DEMO_KEY)) ?? {}; } catch { return {}; }
}
function setDemo(patch) {
  localStorage.setItem(DEMO_KEY, JSON.stringify({ ...demo(), ...patch }));
  render();
}

/** The session record as rotafetch stored it: {v, rt, at, exp, rat}. */
function session() {
  try {
    const r = JSON.parse(localStorage.getItem(SESSION_KEY));
    return r && typeof r.rt === "string" && typeof r.at === "string" ? r : null;
  } catch { return null; }
}

/** The access token's claims (not verified: display only). */
function claims(jwt) {
  try {
    const p = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(p.padEnd(Math.ceil(p.length / 4) * 4, "=")));
  } catch { return null; }
}

const fingerprints = new Map();
/** First 8 hex digits of the token's SHA-256. */
async function fingerprint(token) {
  if (!fingerprints.has(token)) {
    const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token));
    const hex = [...new Uint8Array(d)].slice(0, 4).map((b) => b.toString(16).padStart(2, "0")).join("");
    fingerprints.set(token, hex);
  }
  return fingerprints.get(token);
}

// ---------------------------------------------------------------- log

const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour12: false });
const secs = (ms) => `${Math.max(0, ms / 1000).toFixed(1)} s`;

/** Adds a log line. `data` becomes data-* attributes (the E2E test reads them). */
function log(kind, text, { tone = "", data = {} } = {}) {
  const li = document.createElement("li");
  li.dataset.kind = kind;
  if (tone) li.dataset.tone = tone;
  for (const [k, v] of Object.entries(data)) li.dataset[k] = String(v);
  const t = document.createElement("time");
  t.dateTime = new Date().toISOString();
  t.textContent = clock(Date.now());
  const tag = document.createElement("span");
  tag.className = "tag";
  tag.textContent = kind;
  const msg = document.createElement("span");
  msg.className = "msg";
  msg.textContent = text;
  li.append(t, " ", tag, " ", msg);
  const list = $("log");
  list.prepend(li);
  while (list.children.length > LOG_MAX) list.lastElementChild.remove();
}

// ---------------------------------------------------------------- the SDK

/** DPoP on: the `rotafetch/dpop` entry, with `dpop: true`. Fixed for the page's life. */
const DPOP = dpopWanted(claims(session()?.at ?? ""));
document.body.dataset.dpop = DPOP ? "on" : "off";
let auth;
let AuthError;
try {
  const sdk = await loadEntry(DPOP);
  await sdk.default();
  AuthError = sdk.AuthError;
  // Sign-in by redirect: the reference server is the OpenID provider (its discovery document,
  // /authorize sign-in page, PAR, /token, /revoke, /logout); `rotafetch-demo` is its demo client.
  auth = new sdk.AuthClient({ issuer: location.origin, clientId: "rotafetch-demo", redirectUri: `${location.origin}/`, dpop: DPOP });
} catch (e) {
  // DPoP needs IndexedDB and crypto.subtle: without them, offer the bearer entry at the next load.
  if (DPOP) setDpop(false, { reload: false });
  $("status").textContent = `The SDK did not load: ${e.message}. `
    + (DPOP ? "DPoP is switched off again: reload the page to use the bearer entry." : "Run `make demo` (it builds pkg/).");
  $("status").dataset.state = "error";
  throw e;
}

/** True while a button's action runs (its buttons are disabled meanwhile). */
let busy = false;
/** Refresh events seen by this tab (any source), and refreshes this tab made itself. */
let refreshEvents = 0;
let ownRefreshes = 0;
/** What the UI showed last, to tell "signed in by another tab" from "rotation adopted". */
let shownSignedIn = auth.authenticated;

auth.on("refresh", (d) => {
  refreshEvents++;
  if (d.source === "this-tab") {
    ownRefreshes++;
    setDemo({ rotations: (demo().rotations ?? 0) + 1 });
    log("event", `refresh (this tab): rotated the refresh token; new access token valid until ${clock(d.expiresAt)}`,
      { data: { event: "refresh", source: d.source } });
  } else if (!shownSignedIn) {
    log("event", "refresh (other tab): another tab signed in; this tab adopted the session",
      { data: { event: "refresh", source: d.source } });
  } else {
    log("event", "refresh (other tab): another tab rotated the tokens; this tab adopted them without a request",
      { data: { event: "refresh", source: d.source } });
  }
  render();
});

auth.on("signin", (d) => {
  setDemo({ user: "demo", rotations: 0, theft: null, revoked: null, refused: null });
  log("event", d.source === "this-tab"
    ? "signin (this tab): back from the provider's page, the code exchanged once; every open tab signs in with it"
    : "signin (other tab): another tab signed in; this tab adopted the session without a reload",
  { tone: "good", data: { event: "signin", source: d.source } });
  render();
});

auth.on("signout", (d) => {
  if (d.reason === "rejected") setDemo({ revoked: { at: Date.now(), error: d.error ?? null } });
  const why = {
    logout: "signed out here",
    rejected: `the server rejected the refresh token${d.error ? ` (${d.error})` : ""}`,
    "other-tab": "another tab signed out, or its refresh was rejected",
  }[d.reason] ?? d.reason;
  log("event", `signout (${d.reason}): ${why}`, { tone: d.reason === "logout" ? "" : "bad", data: { event: "signout", reason: d.reason } });
  render();
  if (!$("explain").hidden) $("explain").focus();
});

// ---------------------------------------------------------------- rendering

function graceLeftMs() {
  const d = demo();
  if (!d.theft || d.revoked) return 0;
  return Math.max(0, d.theft.at + GRACE_SECONDS * 1000 + GRACE_MARGIN_MS - Date.now());
}

let lastFpToken = null;
let lastExplain = "";
let lastSteal = "";

function render() {
  const d = demo();
  const signedIn = auth.authenticated;
  const rec = signedIn ? session() : null;
  const c = rec ? claims(rec.at) : null;
  const now = Date.now();
  const wasSignedIn = shownSignedIn;
  shownSignedIn = signedIn;
  document.body.dataset.auth = signedIn ? "in" : "out";

  const status = $("status");
  if (signedIn) {
    setText(status, `Signed in as ${d.user ?? "demo"}`);
    status.dataset.state = "in";
  } else if (d.revoked) {
    setText(status, "Signed out: session revoked");
    status.dataset.state = "revoked";
  } else {
    setText(status, "Signed out");
    status.dataset.state = "out";
  }

  const jkt = c?.cnf?.jkt;
  setText($("dpop-state"), dpopStateText(DPOP, jkt));
  setText($("jkt"), jkt ? shortJkt(jkt) : "–");

  show($("signin"), !signedIn);
  for (const id of ["account", "tokens", "steal"]) show($(id), signedIn);
  setText($("who"), d.user ?? "demo");

  // Token panel.
  const tokens = $("tokens");
  const expMs = c?.exp ? c.exp * 1000 : auth.expiresAt;
  if (signedIn && expMs) {
    const left = expMs - now;
    tokens.dataset.expired = String(left <= 0);
    setText($("exp-countdown"), left > 0 ? secs(left) : "expired: the next call refreshes first");
    setText($("exp-at"), `(exp claim: ${clock(expMs)})`);
  } else {
    tokens.dataset.expired = "true";
    setText($("exp-countdown"), "–");
    setText($("exp-at"), "");
  }
  if (rec?.rat) {
    const left = rec.rat - now;
    tokens.dataset.due = String(left <= 0);
    setText($("due-countdown"), left > 0 ? `in ${secs(left)}` : "now: the next call refreshes first");
  } else {
    tokens.dataset.due = "false";
    setText($("due-countdown"), "–");
  }
  setText($("ttl"), c?.exp && c?.iat ? `${c.exp - c.iat} s` : "–");
  setText($("sid"), c?.sid ?? "–");
  setText($("rotations"), String(d.rotations ?? 0));
  setText($("rt-note"), signedIn && d.theft && !d.revoked && d.theft.spentFp && rec && fingerprints.get(rec.rt) === d.theft.spentFp
    ? "already spent by the attacker" : "");
  if (rec?.rt !== lastFpToken) {
    lastFpToken = rec?.rt ?? null;
    if (!rec) $("rt-fp").textContent = "–";
    else {
      const token = rec.rt;
      fingerprint(token).then((fp) => { if (lastFpToken === token) $("rt-fp").textContent = `${fp}…`; });
    }
  }

  // The theft simulation: hold refreshes back while the grace window is open.
  const grace = graceLeftMs();
  const holding = signedIn && grace > 0;
  for (const id of ["call", "burst", "refresh"]) $(id).disabled = holding || busy;
  $("logout").disabled = busy;
  $("steal-btn").disabled = busy || !!(d.theft && !d.revoked);
  $("steal").dataset.grace = d.theft && !d.revoked ? (grace > 0 ? "open" : "over") : "none";
  const note = $("wait-note");
  show(note, holding);
  setText(note.querySelector(".cd"), secs(grace));
  let steal = "";
  const dueIn = rec?.rat ? rec.rat - now : 0;
  if (signedIn && d.theft) {
    steal = `<p><strong>Stolen.</strong> The attacker spent <code>${d.theft.spentFp}…</code> and now holds `
      + `<code>${d.theft.attackerFp}…</code>. This tab still holds <code>${d.theft.spentFp}…</code>, already spent.</p>`;
    if (grace > 0) {
      steal += '<p>Grace window open for another <span class="cd" data-cd="grace" role="timer"></span>; your buttons are held back until it closes.</p>';
    } else {
      steal += "<p>The grace window has passed. Press <strong>Refresh now</strong>, or <strong>Call API</strong> ";
      steal += dueIn > 0
        ? 'once the refresh is due (in <span class="cd" data-cd="due" role="timer"></span>). Until then calls still succeed: an access token cannot be recalled before it expires, which is why it lives only seconds here.</p>'
        : "(a refresh is due, so the call refreshes first).</p>";
    }
  }
  // DPoP: the attacker's refresh was refused, and the user is still signed in.
  if (signedIn && d.refused) steal = refusedExplanation(d.refused, jkt);
  if (steal !== lastSteal) $("steal-status").innerHTML = lastSteal = steal;
  for (const el of $("steal-status").querySelectorAll(".cd")) setText(el, secs(el.dataset.cd === "grace" ? grace : dueIn));

  // The explanation after a rejected refresh.
  const explain = !signedIn && d.revoked ? explanation(d) : "";
  show($("explain"), !!explain);
  if (explain !== lastExplain) {
    $("explain-body").innerHTML = lastExplain = explain;
    $("explain-h").textContent = d.theft
      ? "Signed out: the server detected refresh token reuse"
      : "Signed out: the server rejected the refresh token";
  }

  if (wasSignedIn && !signedIn && !explain) {
    // Signed out without an explanation to read: back to the form.
    if (document.activeElement === document.body || document.activeElement?.closest("#account, #tokens, #steal")) $("login").focus();
  }
}

function explanation(d) {
  const err = d.revoked.error ? `<code>${d.revoked.error}</code>` : "an error";
  if (!d.theft) {
    return `<p>The refresh endpoint answered ${err}: the session was revoked (signed out elsewhere, or a spent refresh token was presented) or it expired. `
      + "The SDK cleared the session in every tab and emitted <code>signout</code>; the page shows the sign-in form.</p>";
  }
  const later = secs(d.revoked.at - d.theft.at);
  return `<ol class="steps">
<li>The attacker read the refresh token <code>${d.theft.spentFp}…</code> from <code>localStorage</code> and spent it. The server rotated it and handed the attacker a new one, <code>${d.theft.attackerFp}…</code>.</li>
<li>This browser still held <code>${d.theft.spentFp}…</code> and presented it at its next refresh, ${later} after the theft: later than the ${GRACE_SECONDS} s grace window, so it could not be a retry after a lost response.</li>
<li>A spent refresh token coming back means two parties hold the session, and the server cannot tell which one is you. It revoked the whole session family: your token, the attacker's <code>${d.theft.attackerFp}…</code>, and every access token of the session, at once (the API checks revocation on every call).</li>
<li>The refresh was rejected with ${err}. The SDK cleared the session in every tab and emitted <code>signout</code>, with reason <code>"rejected"</code> in the tab that refreshed and <code>"other-tab"</code> in the others. This page listens for that event and shows the sign-in form.</li>
</ol>
<p>Had the attacker been the second to refresh, their refresh would have been the rejected one. Either way a stolen refresh token works only until the next rotation, and the theft ends the session for everyone. Sign in again to start a new session.</p>
<p>With the <strong>DPoP</strong> switch of the sign-in form on, the stolen token would have been useless: it is bound to a key that never leaves this browser.</p>`;
}

// ---------------------------------------------------------------- actions

let callNo = 0;

/** One `auth.fetch("/api/me")`, logged with its status and whether a refresh happened meanwhile. */
async function callApi(tag = "") {
  const n = ++callNo;
  const before = refreshEvents;
  try {
    const r = await auth.fetch("/api/me", { headers: { accept: "application/json" } });
    const refreshed = refreshEvents > before;
    let detail = "";
    if (r.ok) detail = ` (${(await r.json()).username})`;
    else await r.body?.cancel();
    log("call", `${tag}#${n} GET /api/me → ${r.status}${detail}${refreshed ? " · sent after a token refresh" : ""}`,
      { tone: r.ok ? "good" : "bad", data: { status: r.status, refreshed } });
    return { status: r.status, refreshed };
  } catch (e) {
    const code = e instanceof AuthError ? e.code : e.name;
    log("call", `${tag}#${n} GET /api/me failed: ${code}: ${e.message}`, { tone: "bad", data: { status: "error", code } });
    return { status: "error", code };
  }
}

async function withBusy(fn) {
  busy = true;
  render();
  try { return await fn(); } finally { busy = false; render(); }
}

$("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  withBusy(async () => {
    $("login").disabled = true;
    try {
      // To the provider's page (PKCE, state, nonce, PAR); it sends the browser back here.
      await auth.signIn();
    } catch (e) {
      $("login-error").textContent = `Sign-in failed: ${e.message}`;
      show($("login-error"), true);
      $("login").disabled = false;
    }
  });
});

$("logout").addEventListener("click", () => withBusy(async () => {
  setDemo({ theft: null, revoked: null, refused: null });
  // Revokes the refresh token and ends the provider's session (back here afterwards).
  await auth.logout({ endSession: true, returnTo: `${location.origin}/` });
}));

// Back from the provider: complete the sign-in (once), or show why it failed.
try {
  await auth.handleRedirect();
} catch (e) {
  $("login-error").textContent = `Sign-in failed (${e.code}${e.error ? `: ${e.error}` : ""}): ${e.message}`;
  show($("login-error"), true);
}

$("call").addEventListener("click", () => withBusy(() => callApi()));

$("burst").addEventListener("click", () => withBusy(async () => {
  const own = ownRefreshes;
  const results = await Promise.all(Array.from({ length: BURST }, () => callApi("burst ")));
  const ok = results.filter((r) => r.status === 200).length;
  const refreshes = ownRefreshes - own;
  log("burst", `${BURST} concurrent calls: ${ok} × 200, ${refreshes} refresh${refreshes === 1 ? "" : "es"} by this tab`,
    { tone: ok === BURST ? "good" : "bad", data: { ok, refreshes } });
}));

$("refresh").addEventListener("click", () => withBusy(async () => {
  try {
    await auth.refresh();
  } catch (e) {
    log("info", `refresh() failed: ${e.code ?? e.name}: ${e.message}`, { tone: "bad", data: { code: e.code ?? e.name } });
  }
}));

$("steal-btn").addEventListener("click", () => withBusy(async () => {
  // What an XSS payload could do: read the session where the SDK keeps it.
  const rec = session();
  if (!rec) return;
  const spentFp = await fingerprint(rec.rt);
  const r = await fetch("/auth/refresh", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ refresh_token: rec.rt }),
    cache: "no-store",
  });
  if (DPOP && r.status === 400) {
    // The session is bound to this browser's key, and the thief has no proof to show.
    const body = await r.json().catch(() => ({}));
    setDemo({ refused: { at: Date.now(), fp: spentFp, status: r.status, error: body.error ?? null, description: body.error_description ?? null } });
    log("attack", `the attacker's refresh with ${spentFp}… was refused (${r.status} ${body.error ?? ""}): the token is bound to this browser's key; nothing spent, still signed in`,
      { tone: "good", data: { event: "theft-refused", status: r.status, error: body.error ?? "" } });
    return;
  }
  if (!r.ok) {
    await r.body?.cancel();
    log("attack", `the attacker's refresh failed (${r.status}); nothing was stolen`, { tone: "bad" });
    return;
  }
  const attackerFp = await fingerprint((await r.json()).refresh_token);
  setDemo({ theft: { at: Date.now(), spentFp, attackerFp }, revoked: null });
  log("attack", `the attacker spent refresh token ${spentFp}… and got ${attackerFp}…; this tab still holds ${spentFp}…`,
    { tone: "bad", data: { event: "theft" } });
}));

$("clear-log").addEventListener("click", () => { $("log").replaceChildren(); });

addEventListener("storage", (e) => {
  if (e.key === SESSION_KEY || e.key === DEMO_KEY || e.key === null) render();
});

// The DPoP switch: offered while signed out; flipping it reloads every tab with the other entry.
$("dpop").checked = DPOP;
$("dpop").addEventListener("change", (e) => setDpop(e.target.checked));
followSwitch(DPOP);
for (const el of document.querySelectorAll("[data-mode]")) el.hidden = el.dataset.mode !== (DPOP ? "dpop" : "bearer");

$("grace-s").textContent = String(GRACE_SECONDS);
document.body.dataset.grace = String(GRACE_SECONDS);
setInterval(render, 250);
render();
log("info", `SDK loaded (${DPOP ? "/pkg/dpop/rotafetch.js, DPoP on" : "/pkg/rotafetch.js, DPoP off"}); `
  + (auth.authenticated ? "restored the session from localStorage" : "signed out"), { data: { event: "ready" } });
document.body.dataset.ready = "true";
