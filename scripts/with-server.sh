#!/usr/bin/env bash
# Starts the reference server on a free loopback port with a fresh SQLite file and the user
# demo/demo, runs a command with ROTAFETCH_SERVER=http://127.0.0.1:PORT, then stops the server.
#   scripts/with-server.sh [server flags…] -- command [args…]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${ROTAFETCH_SERVER_BIN:-target/server/rotafetch-server}
flags=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do flags+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
dir=$(mktemp -d "${TMPDIR:-/tmp}/rotafetch-srv.XXXXXX")
"$bin" --listen 127.0.0.1:0 --port-file "$dir/port" --db "$dir/test.db" --demo-user "${flags[@]}" \
  >"$dir/stdout" 2>"$dir/stderr" &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ "${status:-1}" != 0 ]; then
    echo "--- reference server log (last 40 lines) ---" >&2
    tail -n 40 "$dir/stderr" >&2 || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
for _ in $(seq 1 300); do
  [ -s "$dir/port" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "server exited early" >&2; cat "$dir/stderr" >&2; exit 1; }
  sleep 0.1
done
[ -s "$dir/port" ] || { echo "server did not start within 30 s" >&2; exit 1; }
export ROTAFETCH_SERVER="http://127.0.0.1:$(cat "$dir/port")"
echo "with-server: $ROTAFETCH_SERVER (${flags[*]})"
status=0
"$@" || status=$?
exit $status
