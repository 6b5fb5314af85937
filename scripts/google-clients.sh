#!/usr/bin/env bash
# Google's own client libraries against the metadata-server emulator: Python google-auth and
# Node google-auth-library / gcp-metadata, pinned (emulator/clients/python/requirements.txt,
# emulator/clients/node/package-lock.json), pointed at the emulator with environment variables
# only, each ID token they fetch sent to a running `called` (full verification) for a 201.
#
# Starts the debug binaries on free loopback ports — the metadata emulator and called (SQLite in
# a temporary folder, only the emulator's service account allowed) — runs
# emulator/clients/python/check_google_auth.py and emulator/clients/node/check_google_auth.mjs,
# checks that docs/emulator.md's snippets are the ones those programs run, prints one PASS/FAIL line
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

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

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
build_debug metadata-emulator called

# 4. Start them on free loopback ports; stop them on any exit.
start_work 30
start_emulator_and_called c.db
EMU_HOST="127.0.0.1:$EMU_PORT"

# A home without gcloud credentials: the libraries must find the emulator, nothing else.
mkdir -p "$WORK/home" "$WORK/gcloud"
common=(PATH="$PATH" HOME="$WORK/home" CLOUDSDK_CONFIG="$WORK/gcloud"
  CALLED_URL="$CALLED" EMULATOR_URL="$EMU" EXPECTED_SERVICE_ACCOUNT="$SA")

# 5. The checks. Each program prints PASS/FAIL lines; their exit status is counted from those.
OUT="$WORK/results.txt"
: >"$OUT"

say "docs/emulator.md snippets are the programs' snippets"
python3 - "$ROOT/docs/emulator.md" "$CLIENTS/python/check_google_auth.py" "$CLIENTS/node/check_google_auth.mjs" <<'PY' | tee -a "$OUT"
import re, sys, textwrap
readme = open(sys.argv[1]).read()
programs = {}
for path in sys.argv[2:]:
    for name, body in re.findall(r"^[ \t]*(?:#|//) \[snippet ([\w-]+)\]\n(.*?)^[ \t]*(?:#|//) \[/snippet\]\n", open(path).read(), re.S | re.M):
        programs[name] = textwrap.dedent(body)
quoted = dict(re.findall(r"<!-- snippet ([\w-]+) -->\n```\w*\n(.*?)```\n", readme, re.S))
for name in sorted(set(programs) | set(quoted)):
    if name not in quoted:
        print(f"FAIL snippets: {name} is in a program but not in docs/emulator.md")
    elif name not in programs:
        print(f"FAIL snippets: docs/emulator.md quotes {name}, which no program runs")
    elif quoted[name] != programs[name]:
        print(f"FAIL snippets: docs/emulator.md's {name} differs from the program's")
    else:
        print(f"PASS snippets: docs/emulator.md's {name} is the one the tests run")
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
