// Must type-check with `tsc --noEmit --strict` (e2e/packages.test.mjs runs it): the package's
// types are precise, and a correct program uses them without casts.
import init, { AuthClient, AuthError } from "rotafetch";
import initDpop, { AuthClient as DpopClient, AuthError as DpopError } from "rotafetch/dpop";
import type {
  AuthClientOptions, AuthErrorCode, AuthEventMap, LogoutOptions, RefreshDetail, SigninDetail, SignInOptions,
  SignoutDetail, Tokens,
} from "rotafetch";

// Type-level equality: fails to compile unless A and B are the same type.
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(): T | void {}

assertType<Equals<AuthErrorCode,
  "invalid_config" | "not_authenticated" | "refresh_rejected" | "refresh_failed"
  | "body_not_replayable" | "aborted" | "login_failed" | "provider_error" | "no_transaction"
  | "state_mismatch" | "iss_mismatch" | "transaction_expired" | "signin_failed" | "signin_rejected"
  | "popup_blocked" | "popup_closed">>();
assertType<Equals<AuthError["code"], AuthErrorCode>>();
assertType<Equals<keyof AuthEventMap, "signin" | "refresh" | "signout">>();
assertType<Equals<AuthEventMap["signin"], SigninDetail>>();
assertType<Equals<SigninDetail["source"], "this-tab" | "other-tab">>();
assertType<Equals<AuthError["error"], string | undefined>>();
assertType<Equals<ReturnType<AuthClient["handleRedirect"]>, Promise<{ returnTo: string } | null>>>();
assertType<Equals<Parameters<AuthClient["signIn"]>, [options?: SignInOptions]>>();
assertType<Equals<SignInOptions["params"], Record<string, string> | undefined>>();
assertType<Equals<Parameters<AuthClient["logout"]>, [options?: LogoutOptions]>>();
assertType<Equals<AuthClientOptions["issuer"], string | undefined>>();
assertType<Equals<AuthEventMap["refresh"], RefreshDetail>>();
assertType<Equals<AuthEventMap["signout"], SignoutDetail>>();
assertType<Equals<RefreshDetail["source"], "this-tab" | "other-tab">>();
assertType<Equals<RefreshDetail["expiresAt"], number | undefined>>();
assertType<Equals<SignoutDetail["reason"], "logout" | "rejected" | "other-tab">>();
assertType<Equals<AuthClientOptions["refreshUrl"], string | undefined>>();
assertType<Equals<AuthClientOptions["storage"], "local" | "session" | "memory" | undefined>>();
assertType<Equals<AuthClientOptions["refreshFormat"], "json" | "oauth2" | undefined>>();
assertType<Equals<AuthClientOptions["allowedOrigins"], string[] | undefined>>();
assertType<Equals<ReturnType<AuthClient["fetch"]>, Promise<Response>>>();
assertType<Equals<Parameters<AuthClient["fetch"]>, [input: RequestInfo | URL, init?: RequestInit]>>();
assertType<Equals<AuthClient["expiresAt"], number | undefined>>();
assertType<Equals<AuthClient["authenticated"], boolean>>();
assertType<Equals<ReturnType<AuthClient["on"]>, () => void>>();

function message(code: AuthErrorCode): string {
  switch (code) {
    case "invalid_config": return "misconfigured";
    case "not_authenticated": return "log in";
    case "refresh_rejected": return "session over";
    case "refresh_failed": return "try again";
    case "body_not_replayable": return "not retried";
    case "aborted": return "cancelled";
    case "login_failed": return "wrong password";
    case "provider_error": return "refused by the provider";
    case "no_transaction": case "state_mismatch": case "iss_mismatch": case "transaction_expired": return "sign in again";
    case "signin_failed": return "provider unreachable";
    case "signin_rejected": return "sign-in rejected";
    case "popup_blocked": return "allow popups";
    case "popup_closed": return "popup closed";
    default: {
      const exhaustive: never = code;
      return exhaustive;
    }
  }
}

export async function main(): Promise<void> {
  await init();
  const options: AuthClientOptions = {
    refreshUrl: "/auth/refresh",
    logoutUrl: "/auth/logout",
    refreshFormat: "oauth2",
    clientId: "spa",
    storage: "local",
    storageKey: "my-app",
    allowedOrigins: ["https://api.example.com"],
    leewaySeconds: 5,
    refreshTimeoutMs: 8000,
    minRefreshIntervalMs: 500,
    crossTab: true,
    redirect: "error",
  };
  const auth = new AuthClient(options);
  const off = auth.on("refresh", (d) => {
    const until: number | undefined = d.expiresAt;
    const who: "this-tab" | "other-tab" = d.source;
    console.log(until?.toFixed(0), who);
  });
  auth.on("signout", (d) => console.log(d.reason, d.error ?? "-"));
  off();

  const fromServer: Tokens = { access_token: "a.b.c", refresh_token: "r", expires_in: 60 };
  const camel: Tokens = { accessToken: "a.b.c", refreshToken: "r" };
  auth.setTokens(fromServer);
  auth.setTokens(camel);

  try {
    await auth.login("/auth/login", { username: "demo", password: "demo" });
    const res: Response = await auth.fetch(new URL("/api/me", location.href), { method: "GET" });
    const again: Response = await auth.fetch(new Request("/api/echo", { method: "POST", body: "x" }));
    console.log(res.status, again.status, auth.authenticated, auth.expiresAt);
    await auth.refresh();
    await auth.logout();
  } catch (e) {
    if (e instanceof AuthError) {
      const err: Error = e;
      console.log(err.message, e.name === "AuthError", message(e.code));
    } else {
      throw e;
    }
  }
}

// The `rotafetch/dpop` entry: the same API, with the `dpop` option (RFC 9449).
export async function withDpop(): Promise<void> {
  await initDpop();
  const auth: DpopClient = new DpopClient({ refreshUrl: "/auth/refresh", dpop: true });
  const proof: string = await auth.dpopProof("POST", "https://auth.example.com/token");
  auth.setTokens({ access_token: "a.b.c", refresh_token: "r", token_type: "DPoP" });
  try {
    await auth.fetch("/api/me");
  } catch (e) {
    if (e instanceof DpopError) console.log(proof.length, message(e.code));
  }
}
