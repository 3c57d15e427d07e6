// rotafetch in a Vite + TypeScript app, imported exactly as an npm user would.
import init, { AuthClient, AuthError } from "rotafetch";
import type { AuthClientOptions, AuthErrorCode, RefreshDetail, SignoutDetail } from "rotafetch";

function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el as T;
}

const status = $("status");
const expires = $("expires");
const refreshes = $("refreshes");
const result = $("result");

/** A user-facing sentence for each failure rotafetch can report. */
function describe(code: AuthErrorCode): string {
  switch (code) {
    case "invalid_config": return "the client is misconfigured";
    case "not_authenticated": return "please log in";
    case "refresh_rejected": return "your session ended, please log in again";
    case "refresh_failed": return "could not reach the server to renew the session";
    case "body_not_replayable": return "the request could not be retried";
    case "aborted": return "cancelled";
    case "login_failed": return "wrong username or password";
    case "provider_error": return "the sign-in was refused";
    case "no_transaction":
    case "state_mismatch":
    case "iss_mismatch":
    case "transaction_expired": return "that sign-in link is not valid here: please sign in again";
    case "signin_failed": return "could not reach the sign-in service";
    case "signin_rejected": return "the sign-in could not be completed: please sign in again";
    case "popup_blocked": return "allow popups for this site to sign in";
    case "popup_closed": return "the sign-in window was closed";
    default: {
      const unreachable: never = code;
      return unreachable;
    }
  }
}

function show(): void {
  status.textContent = auth.authenticated ? "signed in" : "signed out";
  const at = auth.expiresAt;
  expires.textContent = at === undefined ? "-" : new Date(at).toISOString();
  expires.dataset.ms = at === undefined ? "" : String(at);
}

function fail(e: unknown): void {
  result.textContent = e instanceof AuthError ? `error ${e.code}: ${describe(e.code)}` : `error: ${String(e)}`;
  show();
}

await init();

const options: AuthClientOptions = {
  refreshUrl: "/auth/refresh",
  logoutUrl: "/auth/logout",
  // This tab only, so the demo starts signed out in every new browser context.
  storage: "session",
};
const auth = new AuthClient(options);

let refreshCount = 0;
auth.on("refresh", (d: RefreshDetail) => {
  refreshCount += 1;
  refreshes.textContent = String(refreshCount);
  console.info(`rotafetch: refreshed (${d.source}), access token until ${d.expiresAt}`);
  show();
});
auth.on("signout", (d: SignoutDetail) => {
  console.info(`rotafetch: signed out (${d.reason}${d.error ? `: ${d.error}` : ""})`);
  show();
});

let calls = 0;

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const username = $<HTMLInputElement>("username").value;
  const password = $<HTMLInputElement>("password").value;
  try {
    await auth.login("/auth/login", { username, password });
    result.textContent = "logged in";
  } catch (e) {
    fail(e);
  }
  show();
});

$("call").addEventListener("click", async () => {
  const n = ++calls;
  try {
    const res = await auth.fetch("/api/me", { headers: { accept: "application/json" } });
    const body: unknown = res.ok ? await res.json() : await res.text();
    const who = typeof body === "object" && body !== null && "username" in body ? String(body.username) : String(body);
    result.textContent = `call ${n}: ${res.status} ${who}`;
  } catch (e) {
    fail(e);
  }
  show();
});

$("logout").addEventListener("click", async () => {
  await auth.logout();
  result.textContent = "logged out";
  show();
});

show();
document.body.dataset.ready = "true";
