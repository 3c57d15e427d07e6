// DPoP (RFC 9449): the key and the proofs, for the driver (js/driver.js). What a proof
// names (htu, the nonce) and what an answer means are the Rust core's (src/dpop.rs). A
// separate module: only builds with the crate's `dpop` feature import it (README, DPoP).

import { committed, idbGet, idbPut, tx } from "./plumbing.js";

const b64u = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const utf8 = (s) => new TextEncoder().encode(s);
const part = (o) => b64u(utf8(JSON.stringify(o)));
const DPOP = "dpop:";

/** Deletes the DPoP key pair (at sign-out: the next session gets a new one).
 * @param {IDBDatabase} db @param {string} key */
export const dpopForget = (db, key) => idbPut(db, DPOP + key).catch(() => {});

/**
 * The client's DPoP key pair (ES256; the private key non-extractable), one per browser profile
 * and storage key, kept in IndexedDB under `dpop:<key>`. A tab that finds none generates one and
 * stores it first-writer-wins: in one readwrite transaction it keeps the key another tab stored
 * first, if any, so racing tabs end up with one key.
 * @param {IDBDatabase} db @param {string} key @returns {Promise<CryptoKeyPair>}
 */
export async function dpopKey(db, key) {
  const k = DPOP + key, have = await idbGet(db, k);
  if (have) return have;
  const mine = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
  return new Promise((resolve, reject) => {
    const [t, s] = tx(db, "readwrite");
    let kept = mine;
    committed(t, () => resolve(kept), reject);
    const r = s.get(k);
    r.onsuccess = () => (r.result ? (kept = r.result) : s.put(mine, k));
  });
}

/**
 * A DPoP proof: `typ: dpop+jwt`, ES256, the public JWK; claims `jti` (128 random bits), `htm`,
 * `htu`, `iat`, `nonce` when given, and `ath` (SHA-256 of `access`) when given.
 * @param {CryptoKeyPair} pair @param {string} htm @param {string} htu
 * @param {string | undefined} nonce @param {string | undefined} access @returns {Promise<string>}
 */
export async function dpopSign(pair, htm, htu, nonce, access) {
  const { kty, crv, x, y } = await crypto.subtle.exportKey("jwk", pair.publicKey);
  const claims = { jti: b64u(crypto.getRandomValues(new Uint8Array(16))), htm, htu, iat: Math.floor(Date.now() / 1000), nonce };
  if (access) claims.ath = b64u(await crypto.subtle.digest("SHA-256", utf8(access)));
  const input = part({ typ: "dpop+jwt", alg: "ES256", jwk: { kty, crv, x, y } }) + "." + part(claims);
  return input + "." + b64u(await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, pair.privateKey, utf8(input)));
}

/** What the driver uses, as one object (Rust hands it to the driver). */
export const dpop = () => ({ key: dpopKey, sign: dpopSign, forget: dpopForget });
