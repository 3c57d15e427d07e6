#!/usr/bin/env bash
# The reference server as it was before issue #25's hardening (commit 4538bdb), built once into
# target/bench/baseline/ for bench/abuse.mjs's before/after rows (`make bench-baseline`; `make
# bench` uses it when it is there). Its own target directory, so the current build is untouched.
set -euo pipefail
BASE=4538bdb
out=target/bench/baseline
bin=$out/rotafetch-server
if [[ -x $bin && "$(cat "$out/commit" 2>/dev/null)" == "$BASE" ]]; then
  echo "bench-baseline: $bin ($BASE) already built"
  exit 0
fi
mkdir -p "$out"
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
git archive "$BASE" | tar -x -C "$src"
CARGO_TARGET_DIR="$PWD/target/bench/baseline-target" cargo build --manifest-path "$src/Cargo.toml" -p rotafetch-server --profile server --locked
cp target/bench/baseline-target/server/rotafetch-server "$bin"
echo "$BASE" > "$out/commit"
echo "bench-baseline: built $bin from $BASE"
