// ky with a refresh hook: beforeRequest sets the bearer token from localStorage; afterResponse
// is ky's README recipe (on the first 401: refresh, then `ky.retry` with the new header),
// refreshing with the stored rotating refresh token. `singleFlight: true` adds the shared
// in-flight promise many apps add on top; the README recipe has none. A failed refresh
// clears the session (the app's sign-out).
import ky from "ky";

export function makeKy({ key = "ky-auth", refreshUrl = "/auth/refresh", refreshHook = true, singleFlight = false, onSignout = () => {} } = {}) {
  const load = () => JSON.parse(localStorage.getItem(key) || "null");
  const doRefresh = async () => {
    const s = load();
    try {
      const data = await ky.post(new URL(refreshUrl, location.href), { json: { refresh_token: s?.refresh_token } }).json();
      localStorage.setItem(key, JSON.stringify(data));
      return data.access_token;
    } catch (e) {
      localStorage.removeItem(key);
      onSignout(e);
      throw e;
    }
  };
  let inflight = null;
  const refresh = singleFlight ? () => (inflight ??= doRefresh().finally(() => { inflight = null; })) : doRefresh;
  const hooks = {
    beforeRequest: [({ request }) => {
      const s = load();
      if (s) request.headers.set("Authorization", `Bearer ${s.access_token}`);
    }],
  };
  if (refreshHook) {
    hooks.afterResponse = [async ({ request, response, retryCount }) => {
      if (response.status === 401 && retryCount === 0) {
        const token = await refresh();
        const headers = new Headers(request.headers);
        headers.set("Authorization", `Bearer ${token}`);
        return ky.retry({ request: new Request(request, { headers }), code: "TOKEN_REFRESHED" });
      }
    }];
  }
  return ky.create({ hooks });
}
