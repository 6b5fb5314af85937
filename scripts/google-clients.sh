#!/usr/bin/env bash
# Google's own client libraries against the metadata-server emulator: Python google-auth and
# Node google-auth-library / gcp-metadata, pinned (emulator/clients/python/requirements.txt,
# emulator/clients/node/package-lock.json), pointed at the emulator with environment variables
# only, each ID token they fetch sent to a running `called` (full verification) for a 201.
#
# Starts the debug binaries on free loopback ports — the metadata emulator and called (SQLite in
# a temporary folder, only the emulator's service account allowed) — runs
# emulator/clients/python/check_google_auth.py and emulator/clients/node/check_google_auth.mjs,
# checks that the README's snippets are the ones those programs run, prints one PASS/FAIL line
# per check and ends with `N passed, M failed` (non-zero exit when M > 0). Kills everything it
# started. With CI=true a missing python3 or node fails the run: a skipped check is not a pass.
#
# Settings (environment): GOOGLE_CLIENTS_VENV (default
# ${XDG_CACHE_HOME:-$HOME/.cache}/invoker-google-clients-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
CLIENTS="$ROOT/emulator/clients"
VENV="${GOOGLE_CLIENTS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/invoker-google-clients-venv}"
started=$SECONDS

say() { printf '==> %s\n' "$*"; }

# 0. The interpreters: required under CI, else the step says SKIPPED.
missing=()
command -v python3 >/dev/null || missing+=(python3)
command -v node >/dev/null || missing+=(node)
command -v npm >/dev/null || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "${CI:-}" = "true" ]; then
    echo "FATAL: ${missing[*]} not installed and CI=true: the Google client-library checks would be skipped, which is not a pass." >&2
    exit 1
  fi
  echo "WARNING: ${missing[*]} not installed: Google client-library checks SKIPPED." >&2
  exit 0
fi

# 1. Python: a virtualenv with the pinned requirements (reinstalled when they change).
REQS="$CLIENTS/python/requirements.txt"
want="$(sha256sum "$REQS" | cut -d' ' -f1)"
if [ "$(cat "$VENV/.invoker-requirements" 2>/dev/null || true)" != "$want" ]; then
  say "python: virtualenv $VENV from $REQS (PyPI)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-virtualenv -r "$REQS"
  echo "$want" >"$VENV/.invoker-requirements"
fi
"$VENV/bin/python" -c 'import google.auth; print("google-auth", google.auth.__version__)'

# 2. Node: exactly the lock file.
say "node $(node --version): npm ci in emulator/clients/node"
(cd "$CLIENTS/node" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
(cd "$CLIENTS/node" && node -e 'for (const p of ["google-auth-library", "gcp-metadata"]) console.log(p, require(p + "/package.json").version)')

# 3. The debug binaries.
say "building metadata-emulator and called (debug)"
cargo build --locked --quiet --bin metadata-emulator --bin called
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps --locked |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
BIN="$TARGET_DIR/debug"

# 4. Start them on free loopback ports; stop them on any exit.
WORK="$(mktemp -d)"
PIDS=()
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
      [ -s "$log" ] && { echo "--- $log (last 30 lines)"; tail -n 30 "$log"; }
    done
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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

EMU_PORT="$(free_port)"
CALLED_PORT="$(free_port)"
EMU_HOST="127.0.0.1:$EMU_PORT"
EMU="http://$EMU_HOST"
CALLED="http://127.0.0.1:$CALLED_PORT"

env -i PATH="$PATH" PORT="$EMU_PORT" RUST_LOG=warn \
  "$BIN/metadata-emulator" >"$WORK/emulator.log" 2>&1 &
PIDS+=($!)
wait_for "$EMU/" metadata-emulator "${PIDS[-1]}"
SA="$(curl -fsS -H 'Metadata-Flavor: Google' \
  "$EMU/computeMetadata/v1/instance/service-accounts/default/email")"

env -i PATH="$PATH" PORT="$CALLED_PORT" RUST_LOG=warn \
  AUTH_MODE=verify AUTH_AUDIENCES="$CALLED" AUTH_ALLOWED_PRINCIPALS="$SA" \
  AUTH_JWKS_URL="$EMU/oauth2/v3/certs" DATABASE_URL="sqlite://$WORK/c.db" \
  "$BIN/called" >"$WORK/called.log" 2>&1 &
PIDS+=($!)
wait_for "$CALLED/health/ready" called "${PIDS[-1]}"

# A home without gcloud credentials: the libraries must find the emulator, nothing else.
mkdir -p "$WORK/home" "$WORK/gcloud"
common=(PATH="$PATH" HOME="$WORK/home" CLOUDSDK_CONFIG="$WORK/gcloud"
  CALLED_URL="$CALLED" EMULATOR_URL="$EMU" EXPECTED_SERVICE_ACCOUNT="$SA")

# 5. The checks. Each program prints PASS/FAIL lines; their exit status is counted from those.
OUT="$WORK/results.txt"
: >"$OUT"

say "README snippets are the programs' snippets"
python3 - "$ROOT/README.md" "$CLIENTS/python/check_google_auth.py" "$CLIENTS/node/check_google_auth.mjs" <<'PY' | tee -a "$OUT"
import re, sys, textwrap
readme = open(sys.argv[1]).read()
programs = {}
for path in sys.argv[2:]:
    for name, body in re.findall(r"^[ \t]*(?:#|//) \[snippet ([\w-]+)\]\n(.*?)^[ \t]*(?:#|//) \[/snippet\]\n", open(path).read(), re.S | re.M):
        programs[name] = textwrap.dedent(body)
quoted = dict(re.findall(r"<!-- snippet ([\w-]+) -->\n```\w*\n(.*?)```\n", readme, re.S))
for name in sorted(set(programs) | set(quoted)):
    if name not in quoted:
        print(f"FAIL snippets: {name} is in a program but not in README.md")
    elif name not in programs:
        print(f"FAIL snippets: README.md quotes {name}, which no program runs")
    elif quoted[name] != programs[name]:
        print(f"FAIL snippets: README.md's {name} differs from the program's")
    else:
        print(f"PASS snippets: README.md's {name} is the one the tests run")
PY

say "Python google-auth (GCE_METADATA_HOST and GCE_METADATA_IP=$EMU_HOST)"
env -i "${common[@]}" GCE_METADATA_HOST="$EMU_HOST" GCE_METADATA_IP="$EMU_HOST" \
  "$VENV/bin/python" "$CLIENTS/python/check_google_auth.py" 2>"$WORK/python.log" | tee -a "$OUT" || true

say "Node google-auth-library / gcp-metadata (only GCE_METADATA_HOST=$EMU_HOST)"
(cd "$CLIENTS/node" && env -i "${common[@]}" GCE_METADATA_HOST="$EMU_HOST" \
  node check_google_auth.mjs 2>"$WORK/node.log") | tee -a "$OUT" || true

passed="$(grep -c '^PASS ' "$OUT" || true)"
failed="$(grep -c '^FAIL ' "$OUT" || true)"
if [ "$failed" -gt 0 ]; then
  for log in "$WORK/python.log" "$WORK/node.log"; do
    [ -s "$log" ] && { echo "--- $log (last 40 lines)"; tail -n 40 "$log"; }
  done
fi
if ! grep -q '^python: ' "$OUT" || ! grep -q '^node: ' "$OUT"; then
  echo "a client program did not run to its end" >&2
  failed=$((failed + 1))
fi
say "Google client libraries against the emulator: $((SECONDS - started)) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
