# Sourced by scripts/google-clients.sh and scripts/schemathesis.sh: the debug binaries, started on
# free loopback ports, waited for, and stopped (with their logs shown on failure) on any exit.
# Expects the repository root as the working directory.

say() { printf '==> %s\n' "$*"; }

# build_debug NAME...: builds these binaries (debug) and sets BIN to the folder they land in.
# caller and called are built in a cargo invocation of their own, the tools (metadata-emulator,
# …) in another: in one invocation cargo would unify the tools' dependency features into the
# services, and the checks would run binaries built differently from the shipped ones.
build_debug() {
  local services=() tools=()
  for name in "$@"; do
    case "$name" in
      caller | called) services+=(--bin "$name") ;;
      *) tools+=(--bin "$name") ;;
    esac
  done
  if [ "${#services[@]}" -gt 0 ]; then cargo build --locked --quiet "${services[@]}"; fi
  if [ "${#tools[@]}" -gt 0 ]; then cargo build --locked --quiet "${tools[@]}"; fi
  TARGET_DIR="$(cargo metadata --format-version 1 --no-deps --locked |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
  BIN="$TARGET_DIR/debug"
}

# start_work LINES: a temporary folder WORK and the list PIDS; on any exit every process in PIDS
# is stopped, on a failing exit the last LINES lines of each $WORK/*.log are shown, then WORK goes.
start_work() {
  WORK="$(mktemp -d)"
  PIDS=()
  LOG_TAIL="$1"
  trap cleanup EXIT
  trap 'exit 130' INT TERM
}

cleanup() {
  local status=$?
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "$status" -ne 0 ]; then
    for log in "$WORK"/*.log; do
      [ -s "$log" ] && { echo "--- $log (last $LOG_TAIL lines)"; tail -n "$LOG_TAIL" "$log"; }
    done
  fi
  rm -rf "$WORK"
  exit "$status"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for URL NAME PID: polls until URL answers 200 (at most 20 s) or the process exits.
wait_for() {
  for _ in $(seq 1 200); do
    if curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null; then return 0; fi
    if ! kill -0 "$3" 2>/dev/null; then echo "$2 exited before it was ready" >&2; return 1; fi
    sleep 0.1
  done
  echo "$2 did not answer $1 within 20 s" >&2
  return 1
}

# start_emulator_and_called DB: the metadata emulator and called (full verification, SQLite at
# $WORK/DB, only the emulator's service account allowed) on free ports, both ready. Sets
# EMU_PORT, EMU (its URL), CALLED_PORT, CALLED (its URL) and SA (the service account).
start_emulator_and_called() {
  EMU_PORT="$(free_port)"
  CALLED_PORT="$(free_port)"
  EMU="http://127.0.0.1:$EMU_PORT"
  CALLED="http://127.0.0.1:$CALLED_PORT"

  env -i PATH="$PATH" PORT="$EMU_PORT" RUST_LOG=warn \
    "$BIN/metadata-emulator" >"$WORK/emulator.log" 2>&1 &
  PIDS+=($!)
  wait_for "$EMU/" metadata-emulator "${PIDS[-1]}"
  SA="$(curl -fsS -H 'Metadata-Flavor: Google' \
    "$EMU/computeMetadata/v1/instance/service-accounts/default/email")"

  env -i PATH="$PATH" PORT="$CALLED_PORT" RUST_LOG=warn \
    AUTH_MODE=verify AUTH_AUDIENCES="$CALLED" AUTH_ALLOWED_PRINCIPALS="$SA" \
    AUTH_JWKS_URL="$EMU/oauth2/v3/certs" DATABASE_URL="sqlite://$WORK/$1" \
    "$BIN/called" >"$WORK/called.log" 2>&1 &
  PIDS+=($!)
  wait_for "$CALLED/health/ready" called "${PIDS[-1]}"
}
