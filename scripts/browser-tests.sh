#!/usr/bin/env bash
# Runs the wasm-bindgen-test browser suites (tests/browser.rs, faults.rs, dpop.rs) in each engine
# named in $ENGINES (default: chromium firefox webkit), one after another, against the server
# that scripts/with-server.sh started (ROTAFETCH_SERVER). Every engine runs even when one
# fails; the exit status says whether all passed.
#   xvfb-run -a scripts/with-server.sh FLAGS -- scripts/browser-tests.sh
# WebKit (WebKitWebDriver starts MiniBrowser) needs a display: make runs this whole command
# under xvfb-run, so no Xvfb or driver process outlives it.
set -uo pipefail
cd "$(dirname "$0")/.."
engines=${ENGINES:-chromium firefox webkit}
geckodriver=${GECKODRIVER_BIN:-$(command -v geckodriver || echo "$HOME/.cargo/bin/geckodriver")}
failed=()
for engine in $engines; do
  # wasm-bindgen-test-runner picks GECKODRIVER over SAFARIDRIVER over CHROMEDRIVER: set one.
  case "$engine" in
    chromium) driver=(CHROMEDRIVER=/usr/bin/chromedriver) ;;
    firefox) driver=(GECKODRIVER="$geckodriver") ;;
    webkit) driver=(SAFARIDRIVER=/usr/bin/WebKitWebDriver) ;;
    *) echo "browser-tests: unknown engine $engine" >&2; exit 2 ;;
  esac
  echo "=== browser suites in $engine"
  start=$(date +%s)
  if env -u CHROMEDRIVER -u GECKODRIVER -u SAFARIDRIVER "${driver[@]}" \
      cargo test --target wasm32-unknown-unknown --no-fail-fast --test browser --test faults --test dpop; then
    echo "=== $engine: passed in $(( $(date +%s) - start )) s"
  else
    echo "=== $engine: FAILED after $(( $(date +%s) - start )) s"
    failed+=("$engine")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "browser suites failed in: ${failed[*]}" >&2
  exit 1
fi
echo "browser suites passed in: $engines"
