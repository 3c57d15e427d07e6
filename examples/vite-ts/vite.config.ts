import { defineConfig } from "vite";

// Served by the reference server under /vite/ (same origin as /auth and /api):
//   rotafetch-server --static /vite=examples/vite-ts/dist
export default defineConfig({
  base: "/vite/",
  build: { target: "es2022" },
  server: {
    // `rotafetch` is a `file:` dependency, i.e. a symlink to ../../pkg: let the dev server
    // read the .wasm from there. (Production builds copy it into dist/assets.)
    fs: { allow: [".", "../../pkg"] },
    // `npm run dev`: forward the auth and API calls to a reference server on :8080.
    proxy: { "/auth": "http://127.0.0.1:8080", "/api": "http://127.0.0.1:8080" },
  },
});
