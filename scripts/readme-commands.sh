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

PORT="$(free_port)"
CALLED_PORT="$(free_port)"
EMULATOR_PORT="$(free_port)"
say "cargo run --bin local (caller :$PORT, called :$CALLED_PORT, emulator :$EMULATOR_PORT)"
env PORT="$PORT" CALLED_PORT="$CALLED_PORT" EMULATOR_PORT="$EMULATOR_PORT" \
  DATABASE_URL="sqlite://$WORK/called.db" RUST_LOG=warn \
  cargo run --locked --quiet --bin local >"$WORK/local.log" 2>&1 &
PIDS+=($!)

# The printed curl line (the token is minted once caller is ready).
line=""
for _ in $(seq 1 1200); do
  line="$(grep -m1 '^curl -sS -X POST http://127.0.0.1:' "$WORK/local.log" || true)"
  [ -n "$line" ] && break
  kill -0 "${PIDS[-1]}" 2>/dev/null || { echo "local exited before printing its curl line" >&2; exit 1; }
  sleep 0.25
done
[ -n "$line" ] || { echo "local printed no curl line within 300 s" >&2; exit 1; }

say "the printed curl line, as-is"
body="$(bash -c "$line -w '\n%{http_code}'")"
status="${body##*$'\n'}"
body="${body%$'\n'*}"
echo "$status $body"
[ "$status" = 201 ] || { echo "the README's curl answered $status, not 201" >&2; exit 1; }
python3 - "$body" <<'PY'
import json, sys
e = json.loads(sys.argv[1])
assert e["body"] == {"bar": "hello"}, e
assert e["caller"] == "caller@invoker-local.iam.gserviceaccount.com", e
assert e["on_behalf_of"] == "developer@example.com", e
print("201: stored", e["id"], "by", e["caller"], "on behalf of", e["on_behalf_of"])
PY

say "Ctrl-C stops all three"
pid="${PIDS[-1]}"
# On Unix `cargo run` replaces itself with the program (exec), so this pid is `local` itself.
kill -INT "$pid"
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then echo "local did not stop on SIGINT" >&2; exit 1; fi
status=0
wait "$pid" || status=$?
[ "$status" = 0 ] || { echo "local exited $status after SIGINT, not 0" >&2; exit 1; }
PIDS=()
echo "README first screen: OK"
