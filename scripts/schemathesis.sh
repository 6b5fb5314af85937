#!/usr/bin/env bash
# Contract check: schemathesis (from PyPI) against both running services' GET /openapi.json.
#
# Starts the debug binaries on free loopback ports — the metadata emulator, called (full token
# verification, SQLite in a temporary folder, only the emulator's service account allowed) and
# caller (tokens from the emulator, only developer@example.com allowed) — and runs schemathesis
# against each with a valid token and a bounded number of examples. Fails on any 5xx, any
# undocumented status code, content type or response schema. Kills everything it started.
#
# Settings (environment): SCHEMATHESIS_MAX_EXAMPLES (default 30 per operation),
# SCHEMATHESIS_MAX_TIME (hard bound in seconds per service, default 300), SCHEMATHESIS_SEED
# (default 1: runs are reproducible; set another number to explore), SCHEMATHESIS_REPORT_DIR
# (keep reports there, in the formats of SCHEMATHESIS_REPORT, default junit).
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-30}"
MAX_TIME="${SCHEMATHESIS_MAX_TIME:-300}"
SEED="${SCHEMATHESIS_SEED:-1}"
CHECKS="${SCHEMATHESIS_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance}"
USER_EMAIL=developer@example.com

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

# 1. schemathesis, pinned.
installed="$(python3 -m pip show schemathesis 2>/dev/null | sed -n 's/^Version: //p' || true)"
if [ "$installed" != "$SCHEMATHESIS_VERSION" ]; then
  say "installing schemathesis==$SCHEMATHESIS_VERSION from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
ST=(python3 -m schemathesis.cli)
"${ST[@]}" --version

# 2. The debug binaries, from the workspace's target directory.
say "building called, caller and metadata-emulator (debug)"
build_debug called caller metadata-emulator

# 3. Start everything on free loopback ports; stop it all on any exit.
start_work 20
start_emulator_and_called called.db
CALLER_PORT="$(free_port)"
CALLER="http://127.0.0.1:$CALLER_PORT"

env -i PATH="$PATH" PORT="$CALLER_PORT" RUST_LOG=warn \
  AUTH_MODE=verify AUTH_AUDIENCES="$CALLER" AUTH_ALLOWED_PRINCIPALS="$USER_EMAIL" \
  AUTH_JWKS_URL="$EMU/oauth2/v3/certs" CALLED_URL="$CALLED" \
  TOKEN_SOURCE=metadata GCE_METADATA_HOST="127.0.0.1:$EMU_PORT" \
  "$BIN/caller" >"$WORK/caller.log" 2>&1 &
PIDS+=($!)
wait_for "$CALLER/health/ready" caller "${PIDS[-1]}"

# mint EMAIL AUDIENCE: a valid token from the emulator (one hour).
mint() {
  curl -fsS -X POST "$EMU/emulator/mint" -H 'content-type: application/json' \
    -d "{\"email\":\"$1\",\"audience\":\"$2\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}

# 4. schemathesis against each service, bounded in examples and time.
run() {
  local name="$1" base="$2" token="$3"
  say "schemathesis: $name ($base/openapi.json, $MAX_EXAMPLES examples per operation)"
  local report=()
  if [ -n "${SCHEMATHESIS_REPORT_DIR:-}" ]; then
    report=(--report "${SCHEMATHESIS_REPORT:-junit}" --report-dir "$SCHEMATHESIS_REPORT_DIR/$name")
  fi
  # --max-time would keep fuzzing until the budget is spent; `timeout` only bounds the run.
  timeout --kill-after=10 "$MAX_TIME" "${ST[@]}" run "$base/openapi.json" \
    --checks "$CHECKS" \
    --max-examples "$MAX_EXAMPLES" \
    --seed "$SEED" \
    --workers 1 \
    --request-timeout 15 \
    --wait-for-schema 10 \
    --header "Authorization: Bearer $token" \
    "${report[@]}"
}

start=$SECONDS
run called "$CALLED" "$(mint "$SA" "$CALLED")"
run caller "$CALLER" "$(mint "$USER_EMAIL" "$CALLER")"
say "schemathesis passed against called and caller in $((SECONDS - start)) s"
