// DPoP proofs (RFC 9449) made in Node for the server benches: a kept key per legitimate user,
// or a fresh key for every proof (the jti flood). node:crypto only; ES256 signatures in the
// JOSE (IEEE P1363) encoding, EdDSA over Ed25519.
import { createHash, generateKeyPairSync, randomBytes, sign } from "node:crypto";

const b64u = (buf) => Buffer.from(buf).toString("base64url");
const part = (o) => b64u(JSON.stringify(o));

/** `base64url(SHA-256(token))`, a proof's `ath`. */
export const ath = (token) => b64u(createHash("sha256").update(token).digest());

export class DpopKey {
  /** @param {"ES256" | "EdDSA"} alg */
  constructor(alg = "ES256") {
    this.alg = alg;
    const pair = alg === "ES256" ? generateKeyPairSync("ec", { namedCurve: "P-256" }) : generateKeyPairSync("ed25519");
    this.privateKey = pair.privateKey;
    const { kty, crv, x, y } = pair.publicKey.export({ format: "jwk" });
    this.header = part({ typ: "dpop+jwt", alg, jwk: alg === "ES256" ? { kty, crv, x, y } : { kty, crv, x } });
  }

  /** A proof for `htm` `htu`; `access` adds `ath`, `nonce` the server's nonce. */
  proof(htm, htu, { access, nonce } = {}) {
    const claims = { jti: b64u(randomBytes(16)), htm, htu, iat: Math.floor(Date.now() / 1000) };
    if (nonce) claims.nonce = nonce;
    if (access) claims.ath = ath(access);
    const input = `${this.header}.${part(claims)}`;
    const sig = this.alg === "ES256"
      ? sign("sha256", Buffer.from(input), { key: this.privateKey, dsaEncoding: "ieee-p1363" })
      : sign(null, Buffer.from(input), this.privateKey);
    return `${input}.${b64u(sig)}`;
  }
}

/** A proof signed by a key made for it alone (and then forgotten). */
export const freshProof = (alg, htm, htu) => new DpopKey(alg).proof(htm, htu);
