// The demo's DPoP switch (RFC 9449), kept apart from the rest of app.js: which of the two
// package entries the page loads, what the page says about the key binding, and what it says
// when the "attacker" presents a DPoP-bound refresh token without the key.

/** Where the switch is remembered: localStorage, so that every tab loads the same entry. */
export const MODE_KEY = "rotafetch-demo-dpop";

/**
 * True for DPoP. While a session is stored, the mode it was made in (a DPoP-bound access
 * token carries `cnf.jkt`), so that a tab never loads the entry the session cannot use;
 * otherwise the switch's remembered position.
 */
export function dpopWanted(claims) {
  if (claims) return typeof claims.cnf?.jkt === "string";
  try { return localStorage.getItem(MODE_KEY) === "on"; } catch { return false; }
}

/** The package entry for the mode, as a dynamic `import()`. */
export function loadEntry(dpop) {
  return import(dpop ? "/pkg/dpop/rotafetch.js" : "/pkg/rotafetch.js");
}

/**
 * Remembers the switch and reloads this tab; the other tabs reload on the `storage` event
 * (see `followSwitch`). Only offered while signed out: a session stays in the mode it was made in.
 */
export function setDpop(on, { reload = true } = {}) {
  localStorage.setItem(MODE_KEY, on ? "on" : "off");
  if (reload) location.reload();
}

/** Reloads this tab when another tab flips the switch to a mode other than the loaded one. */
export function followSwitch(loaded) {
  addEventListener("storage", (e) => {
    if (e.key === MODE_KEY && (e.newValue === "on") !== loaded) location.reload();
  });
}

/** The start of a key thumbprint, enough to recognise it (never the whole value). */
export const shortJkt = (jkt) => `${jkt.slice(0, 8)}…`;

/** The status line's words for the mode. */
export function dpopStateText(dpop, jkt) {
  if (!dpop) return "DPoP: off — bearer tokens: whoever holds a copy can use it";
  return jkt
    ? `DPoP: on — tokens bound to this browser's key (jkt ${shortJkt(jkt)})`
    : "DPoP: on — the next session will be bound to a key kept in this browser";
}

const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

/**
 * Why the thief's refresh failed: `refused` is the demo state the steal button left,
 * {at, fp, status, error, description}; `jkt` the key thumbprint of the current session.
 */
export function refusedExplanation(refused, jkt) {
  const answer = `<code>${esc(refused.status)} ${esc(refused.error ?? "")}</code>`
    + (refused.description ? ` (“${esc(refused.description)}”)` : "");
  const key = jkt ? ` (<code>cnf.jkt</code> <code>${esc(shortJkt(jkt))}</code>)` : "";
  return `<p><strong>Refused.</strong> The attacker's refresh failed; you are still signed in.</p>
<ol class="steps">
<li>The attacker read the refresh token <code>${esc(refused.fp)}…</code> from <code>localStorage</code> and presented it to <code>/auth/refresh</code> with a raw <code>fetch</code>, as a thief would from anywhere.</li>
<li>This session is DPoP-bound: at sign-in the server bound it to the thumbprint of this browser's public key${key}. Every refresh must carry a DPoP proof, a fresh signature by that key over the request.</li>
<li>The private key is a non-extractable ES256 key the SDK keeps in IndexedDB: no script can read it out, so a copied token comes without the means to sign. The server answered ${answer}.</li>
<li>Nothing was spent and nothing was revoked: the server refuses a refresh without a proof by the session's key before it spends the token, and does not count it as reuse, so the thief cannot get you signed out either. This tab keeps its token; <strong>Call API</strong> and <strong>Refresh now</strong> work as before.</li>
</ol>
<p>DPoP makes a stolen token useless off this browser. It does not stop code running in this page while it is open from asking the browser to sign (that is what the SDK does); keep XSS out all the same.</p>`;
}
