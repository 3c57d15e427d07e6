// @auth0/auth0-spa-js: the client a SPA ships (login redirect, token cache, refresh tokens).
export { createAuth0Client } from "@auth0/auth0-spa-js";
