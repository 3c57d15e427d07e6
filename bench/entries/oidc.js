// oidc-client-ts: the UserManager a SPA ships (sign-in, silent renew, refresh tokens).
export { UserManager } from "oidc-client-ts";
