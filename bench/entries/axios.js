// axios + axios-auth-refresh, wired the way its README shows: a request interceptor reads the
// access token from localStorage on every call; on a 401 the refresh logic POSTs the stored
// (rotating, one-time) refresh token to the refresh endpoint, stores the new pair and lets
// the library replay the request. A failed refresh clears the session (the app's sign-out).
import axios from "axios";
import { createAuthRefresh } from "axios-auth-refresh";

// `options` go to createAuthRefresh as they are (the bench also runs `deduplicateRefresh: false`).
export function makeAxios({ key = "axios-auth", refreshUrl = "/auth/refresh", onSignout = () => {}, options = {} } = {}) {
  const load = () => JSON.parse(localStorage.getItem(key) || "null");
  const api = axios.create();
  api.interceptors.request.use((config) => {
    const s = load();
    if (s) config.headers["Authorization"] = `Bearer ${s.access_token}`;
    return config;
  });
  createAuthRefresh(api, async (failedRequest) => {
    const s = load();
    try {
      const { data } = await axios.post(refreshUrl, { refresh_token: s?.refresh_token });
      localStorage.setItem(key, JSON.stringify(data));
      failedRequest.response.config.headers["Authorization"] = `Bearer ${data.access_token}`;
    } catch (e) {
      localStorage.removeItem(key);
      onSignout(e);
      throw e;
    }
  }, options);
  return api;
}
