#!/usr/bin/env bash
# Installs what building and testing rotafetch needs, skipping whatever is already there.
# Safe to run again and again (make pkg / make demo / make test call it every time).
#   scripts/setup.sh build   what building needs (make pkg, make demo, make lint): the wasm
#                            target, rust-src, wasm-bindgen-cli, wasm-pack, the pinned npm tools
#   scripts/setup.sh test    what only the test suites need: the three browsers and their
#                            WebDriver servers, Xvfb, PostgreSQL's server binaries
#   scripts/setup.sh         both (make setup, make test)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"

say() { printf 'setup: %s\n' "$*"; }

setup_build() {
  # The wasm target.
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    say "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi

  # rust-src: `make pkg` rebuilds core and alloc for the package with it (scripts/pkg.sh).
  # Optional: without it the normal build runs.
  if [ ! -d "$(rustc --print sysroot)/lib/rustlib/src/rust/library/core" ]; then
    say "adding rust-src (for make pkg's build-std build)"
    rustup component add rust-src || say "rust-src unavailable: make pkg uses the normal build"
  fi

  # wasm-bindgen-cli at exactly Cargo.lock's wasm-bindgen (not --locked: a locked dependency
  # of it is missing from the registry).
  want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
  have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
  if [ "$have" != "$want" ]; then
    say "installing wasm-bindgen-cli $want (found: ${have:-none})"
    cargo install wasm-bindgen-cli --version "$want" --force
  fi

  # wasm-pack (it must find wasm-bindgen and wasm-opt on PATH: it cannot download here).
  if ! command -v wasm-pack >/dev/null; then
    say "installing wasm-pack"
    cargo install wasm-pack --locked
  fi

  # npm tools pinned in package-lock.json: binaryen (wasm-opt 132, never Debian's 108),
  # typescript (make lint), esbuild (pkg/'s JS), playwright-core and puppeteer-core (the e2e
  # suites drive Chromium and Firefox with them).
  if [ ! -x node_modules/.bin/wasm-opt ] || [ ! -d node_modules/playwright-core ] \
     || [ ! -x node_modules/.bin/tsc ] || [ ! -x node_modules/.bin/esbuild ] || [ ! -d node_modules/puppeteer-core ] \
     || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    say "installing npm dev tools"
    npm ci --no-audit --no-fund --loglevel=error
  fi

  # Never let Debian's wasm-opt 108 be picked up first.
  case "$(command -v wasm-opt)" in
    "$PWD/node_modules/.bin/wasm-opt") ;;
    *) echo "setup: wasm-opt on PATH is not binaryen from npm" >&2; exit 1 ;;
  esac
  say "build tools ok (wasm-bindgen $want, $(wasm-pack --version), $(wasm-opt --version | cut -d' ' -f1-3))"
}

setup_test() {
  # The three engines from Debian (never a browser download): Chromium + ChromeDriver,
  # Firefox ESR (geckodriver below), WebKitGTK's WebDriver (it starts MiniBrowser) and Xvfb
  # for WebKit's display.
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

  # openid-client (pinned in package-lock.json): the relying party of
  # e2e/oidc-conformance.test.mjs. setup_build's `npm ci` installs it with the build tools
  # (one lock file); this covers `setup.sh test` alone on an older node_modules.
  if [ ! -d node_modules/openid-client ]; then
    say "installing npm test tools"
    npm ci --no-audit --no-fund --loglevel=error
  fi

  # geckodriver (Firefox's WebDriver) from crates.io.
  if ! command -v geckodriver >/dev/null; then
    say "installing geckodriver"
    cargo install geckodriver --locked
  fi

  # PostgreSQL server binaries (the server tests run throw-away clusters).
  scripts/setup-postgres.sh
  say "test tools ok ($(chromium --version 2>/dev/null | head -1), $(firefox-esr --version 2>/dev/null | head -1), $(geckodriver --version 2>/dev/null | head -1))"
}

case "${1:-all}" in
  build) setup_build ;;
  test) setup_test ;;
  all) setup_build; setup_test ;;
  *) echo "usage: scripts/setup.sh [build|test]" >&2; exit 2 ;;
esac
