// Must NOT type-check: e2e/packages.test.mjs asserts that tsc --strict reports an error on
// exactly the lines marked `// error: <text>`, each error message containing <text>.
import { AuthClient, AuthError } from "rotafetch";
import type { AuthErrorCode } from "rotafetch";

export function misuse(): void {
  new AuthClient({ refreshUrl: "/auth/refresh", leewaySeconds: "10" }); // error: 'string' is not assignable to type 'number'
  new AuthClient({ refreshUrl: "/auth/refresh", storage: "cookie" }); // error: "cookie"
  new AuthClient({ refreshUrl: "/auth/refresh", crossTabs: true }); // error: 'crossTabs' does not exist in type 'AuthClientOptions'
  new AuthClient({ logoutUrl: "/auth/logout" }); // error: is not assignable to parameter of type 'AuthClientOptions'
  new AuthClient({ issuer: "https://id.example.com", clientId: "spa" }); // error: is not assignable to parameter of type 'AuthClientOptions'
  new AuthClient({ refreshUrl: new URL("/auth/refresh", location.href) }); // error: 'URL' is not assignable to type 'string'
  const auth = new AuthClient({ refreshUrl: "/auth/refresh" });
  auth.on("expired", () => {}); // error: "expired"
  void auth.signIn({ params: { prompt: 5 } }); // error: 'number' is not assignable to type 'string'
  void auth.logout({ endSession: "yes" }); // error: 'string' is not assignable to type 'boolean | undefined'
  auth.on("refresh", (d) => d.reason); // error: Property 'reason' does not exist on type 'RefreshDetail'
  auth.on("signout", (d) => d.expiresAt); // error: Property 'expiresAt' does not exist on type 'SignoutDetail'
  void auth.fetch(42); // error: 'number' is not assignable to parameter of type 'RequestInfo | URL'
  const code: AuthErrorCode = "timeout"; // error: "timeout"
  new AuthError(); // error: Constructor of class 'AuthError' is private
  auth.expiresAt = 0; // error: read-only property
  try { void auth.refresh(); } catch (e) {
    if (e instanceof AuthError && e.code === "expired") console.log(code); // error: have no overlap
  }
}
