// @supabase/auth-js: the auth client on its own (session storage, auto-refresh, cross-tab lock).
export { AuthClient } from "@supabase/auth-js";
