#!/usr/bin/env bash
# Builds the example apps that e2e/packages.test.mjs drives (run by `make examples`, after
# `make pkg`). Idempotent: npm installs only run when node_modules is missing or older than
# the lockfile.
#   examples/vite-ts  -> examples/vite-ts/dist      (served at /vite/)
#   examples/types    -> node_modules/rotafetch link (strict type checks of the package)
#   examples/rust     -> target/examples/rust-pkg   (served at /rust-pkg/, page at /rust/)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"

[ -f pkg/package.json ] && [ -f pkg/README.md ] || { echo "examples: run \`make pkg\` first" >&2; exit 1; }

# npm ci in $1 unless its node_modules matches its lockfile. (`rotafetch` is a file: link to
# ../../pkg, so rebuilding pkg/ never needs a reinstall.)
npm_ci() {
  local dir=$1
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ] \
     || [ ! -L "$dir/node_modules/rotafetch" ]; then
    echo "examples: npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

mkdir -p target
npm_ci examples/types
npm_ci examples/vite-ts
# `npm run build` = tsc --noEmit --strict && vite build.
(cd examples/vite-ts && npm run --silent build -- --logLevel warn)

flock target/.examples-rust.lock \
  wasm-pack --log-level warn build --release --target web examples/rust --out-dir ../../target/examples/rust-pkg
echo "examples: ok (examples/vite-ts/dist, target/examples/rust-pkg)"
