#!/usr/bin/env bash
# The README's first screen, run as written: `cargo run --bin local` starts the whole chain, and
# the `curl` line it prints must answer 201 with the entity stored by called, whose "caller" is
# the emulator's service account. (`cargo test --workspace --locked`, the other command, is a
# step of .ci/run itself.) scripts/check-readme-commands.py checks that every command of the
# README's ```sh blocks is run here or by .ci/run, or is marked as needing a Google Cloud project.
#
# CI runs `local` as a debug build (`--release` only changes the optimisation, and the test step
# has already built the debug artifacts); free loopback ports and a temporary SQLite file keep it
# apart from anything else running. Stops `local` with SIGINT (the README's Ctrl-C) and expects
# exit 0.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
start_work 40

# run_local PATTERN ON_BEHALF_OF [iap PORT]: `cargo run --bin local` (with `iap`: behind the IAP
# front on PORT),
# the curl line it prints (the first one matching PATTERN) run as-is, then Ctrl-C.
run_local() {
  local pattern="$1" user="$2"
  shift 2
  local port called_port emulator_port log line body status pid
  port="$(free_port)"
  called_port="$(free_port)"
  emulator_port="$(free_port)"
  log="$WORK/local-$port.log"
  say "cargo run --bin local $* (caller :$port, called :$called_port, emulator :$emulator_port)"
  if [ "${1:-}" = iap ]; then
    env PORT="$port" CALLED_PORT="$called_port" EMULATOR_PORT="$emulator_port" \
      DATABASE_URL="sqlite://$WORK/called-$port.db" RUST_LOG=warn LOCAL_IAP_PORT="$2" \
      LOCAL_IAP=true cargo run --locked --quiet --bin local >"$log" 2>&1 &
  else
    env PORT="$port" CALLED_PORT="$called_port" EMULATOR_PORT="$emulator_port" \
      DATABASE_URL="sqlite://$WORK/called-$port.db" RUST_LOG=warn \
      cargo run --locked --quiet --bin local >"$log" 2>&1 &
  fi
  PIDS+=($!)

  # The printed curl line (the token is minted once caller is ready).
  line=""
  for _ in $(seq 1 1200); do
    line="$(grep -m1 "$pattern" "$log" || true)"
    [ -n "$line" ] && break
    kill -0 "${PIDS[-1]}" 2>/dev/null || { cat "$log" >&2; echo "local exited before printing its curl line" >&2; exit 1; }
    sleep 0.25
  done
  [ -n "$line" ] || { echo "local printed no curl line within 300 s" >&2; exit 1; }

  say "the printed curl line, as-is"
  body="$(bash -c "$line -w '\n%{http_code}'")"
  status="${body##*$'\n'}"
  body="${body%$'\n'*}"
  echo "$status $body"
  [ "$status" = 201 ] || { echo "the README's curl answered $status, not 201" >&2; exit 1; }
  python3 - "$body" "$user" <<'PY'
import json, sys
e = json.loads(sys.argv[1])
assert e["body"] == {"bar": "hello"}, e
assert e["caller"] == "caller@invoker-local.iam.gserviceaccount.com", e
assert e["on_behalf_of"] == sys.argv[2], e
print("201: stored", e["id"], "by", e["caller"], "on behalf of", e["on_behalf_of"])
PY

  say "Ctrl-C stops them all"
  pid="${PIDS[-1]}"
  # On Unix `cargo run` replaces itself with the program (exec), so this pid is `local` itself.
  kill -INT "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then echo "local did not stop on SIGINT" >&2; exit 1; fi
  status=0
  wait "$pid" || status=$?
  [ "$status" = 0 ] || { echo "local exited $status after SIGINT, not 0" >&2; exit 1; }
  PIDS=()
}

run_local "^curl -sS -X POST http://127.0.0.1:[0-9]*/ -H 'Authorization" developer@example.com
# The IAP front (README: `LOCAL_IAP=true cargo run --bin local`): the person is on_behalf_of.
iap_port="$(free_port)"
run_local "^curl -sS -X POST http://127.0.0.1:$iap_port/ -H 'X-Local-Iap-User" alice@example.com \
  iap "$iap_port"
echo "README first screen: OK"
