#!/usr/bin/env bash
# `make pkg`: wasm-pack's release build of the npm package, then scripts/package.mjs.
#
# Where the toolchain has rust-src (scripts/setup.sh adds it), core and alloc are rebuilt for
# the package with its own profile (`-Zbuild-std=core,alloc`, size-optimised, LTO across them)
# and `-Cpanic=immediate-abort`: a panic, which no path is meant to reach, traps where it
# happens, so none of core's panic formatting ships. With it `-Zlocation-detail=none` (panic
# locations, file names and lines, that nothing would read) and `-Zfmt-debug=none` (`Debug`
# impls print nothing: no `{:?}` output is reachable from the JS API). Those flags are
# unstable; RUSTC_BOOTSTRAP lets the pinned stable toolchain take them, for this build only. Without rust-src the normal
# build runs (std-less crate, prebuilt core and alloc), and still works.
#
# Which of the two ran is written to pkg/.build.json (not in the package's `files`: never
# shipped), where `make bench` reads it.
#
# Two entries, two builds of the crate: `rotafetch` (pkg/, PKG_FEATURES: bearer tokens only,
# within the 24 KB budget of issue #15) and `rotafetch/dpop` (pkg/dpop/, PKG_FEATURES plus
# `dpop`: the same API with the `dpop` option, issue #16). A page loads one of them.
#
# Env (from the Makefile): PKG_FEATURES, PKG_RUSTFLAGS.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${PKG_FEATURES:?}" "${PKG_RUSTFLAGS:?}"

sysroot=$(rustc --print sysroot)
# PKG_RUSTFLAGS (Makefile) remaps the build machine's paths, the toolchain's library sources
# (which rustc names by their local path once rust-src is installed) included.
extra=()
if [ -d "$sysroot/lib/rustlib/src/rust/library/core" ] && [ "${ROTAFETCH_BUILD_STD:-1}" != 0 ]; then
  build="build-std"
  what="core and alloc rebuilt (-Zbuild-std=core,alloc), -Cpanic=immediate-abort, -Zlocation-detail=none, -Zfmt-debug=none"
  export RUSTC_BOOTSTRAP=1
  export RUSTFLAGS="$PKG_RUSTFLAGS -Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none -Zfmt-debug=none"
  extra=(-Zbuild-std=core,alloc)
else
  build="standard"
  what="prebuilt core and alloc (no rust-src, or ROTAFETCH_BUILD_STD=0), panic=abort"
  export RUSTFLAGS="$PKG_RUSTFLAGS"
fi
echo "pkg: $build build ($what)"
# wasm-pack leaves snippets of earlier builds (a renamed or removed module) in place.
rm -rf pkg/snippets pkg/dpop
# shellcheck disable=SC2086
wasm-pack build --release --target web --out-dir pkg --out-name rotafetch -- $PKG_FEATURES "${extra[@]}"
# shellcheck disable=SC2086
wasm-pack build --release --target web --out-dir pkg/dpop --out-name rotafetch -- $PKG_FEATURES,dpop "${extra[@]}"
node scripts/package.mjs pkg/dpop --entry
node scripts/package.mjs pkg
printf '{ "build": "%s", "what": "%s", "rustc": "%s" }\n' "$build" "$what" "$(rustc --version)" > pkg/.build.json
