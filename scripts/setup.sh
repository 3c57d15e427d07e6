#!/usr/bin/env bash
# Installs what building and testing rotafetch needs, skipping whatever is already there.
# Safe to run again and again (make demo / make test call it every time).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"

say() { printf 'setup: %s\n' "$*"; }

# 1. The wasm target.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# 1b. rust-src: `make pkg` rebuilds core and alloc for the package with it (scripts/pkg.sh).
#     Optional: without it the normal build runs.
if [ ! -d "$(rustc --print sysroot)/lib/rustlib/src/rust/library/core" ]; then
  say "adding rust-src (for make pkg's build-std build)"
  rustup component add rust-src || say "rust-src unavailable: make pkg uses the normal build"
fi

# 2. wasm-bindgen-cli at exactly Cargo.lock's wasm-bindgen (not --locked: a locked
#    dependency of it is missing from the registry).
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  say "installing wasm-bindgen-cli $want (found: ${have:-none})"
  cargo install wasm-bindgen-cli --version "$want" --force
fi

# 3. wasm-pack (it must find wasm-bindgen and wasm-opt on PATH: it cannot download here).
if ! command -v wasm-pack >/dev/null; then
  say "installing wasm-pack"
  cargo install wasm-pack --locked
fi

# 4. The three engines from Debian (never a browser download): Chromium + ChromeDriver,
#    Firefox ESR (geckodriver below), WebKitGTK's WebDriver (it starts MiniBrowser) and Xvfb
#    for WebKit's display.
missing=()
for pair in chromium:chromium chromedriver:chromium-driver firefox-esr:firefox-esr \
            WebKitWebDriver:webkit2gtk-driver xvfb-run:xvfb xauth:xauth; do
  command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 4b. geckodriver (Firefox's WebDriver) from crates.io.
if ! command -v geckodriver >/dev/null; then
  say "installing geckodriver"
  cargo install geckodriver --locked
fi

# 5. npm tools pinned in package-lock.json: binaryen (wasm-opt 132, never Debian's 108),
#    playwright-core (drives Chromium), puppeteer-core (drives Firefox over WebDriver BiDi),
#    typescript, esbuild (minifies pkg/'s JS glue), openid-client (the relying party of
#    e2e/oidc-conformance.test.mjs).
if [ ! -x node_modules/.bin/wasm-opt ] || [ ! -d node_modules/playwright-core ] \
   || [ ! -x node_modules/.bin/tsc ] || [ ! -x node_modules/.bin/esbuild ] || [ ! -d node_modules/puppeteer-core ] \
   || [ ! -d node_modules/openid-client ] \
   || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dev tools"
  npm ci --no-audit --no-fund --loglevel=error
fi

scripts/setup-postgres.sh # 6. PostgreSQL server binaries (the server tests run throw-away clusters)
# Never let Debian's wasm-opt 108 be picked up first.
case "$(command -v wasm-opt)" in
  "$PWD/node_modules/.bin/wasm-opt") ;;
  *) echo "setup: wasm-opt on PATH is not binaryen from npm" >&2; exit 1 ;;
esac
say "ok (wasm-bindgen $want, $(wasm-pack --version), $(wasm-opt --version | cut -d' ' -f1-3), $(chromium --version 2>/dev/null | head -1), $(firefox-esr --version 2>/dev/null | head -1), $(geckodriver --version 2>/dev/null | head -1))"
