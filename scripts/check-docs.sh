#!/usr/bin/env bash
# The docs cannot go stale (README.md, ARCHITECTURE.md, docs/):
#   1. every relative link and #anchor resolves (scripts/check-links.py);
#   2. every test docs/guarantees.md names exists (scripts/check-guarantees.py);
#   3. every command of the README's ```sh blocks is run by CI or marked as needing a Google
#      Cloud project, and its ```toml block is the library's (scripts/check-readme-commands.py);
#   4. with --settings: docs/settings.md is what the binaries' --help generates
#      (scripts/gen-settings.sh --check; builds the debug binaries, so .ci/run calls it after
#      the tests, which have built them already).
# Each check is also run on its broken fixture (scripts/fixtures/docs/) and must reject it,
# naming the problem: a check that passes everything is no check.
#
#   bash scripts/check-docs.sh              1–3 (no build; seconds)
#   bash scripts/check-docs.sh --settings   4 only
set -euo pipefail
cd "$(dirname "$0")/.."

run() {
  printf '$'
  printf ' %q' "$@"
  printf '\n'
  "$@"
}

# must_reject PATTERN CMD...: CMD must fail, and print a line matching PATTERN.
must_reject() {
  local pattern="$1"
  shift
  printf '$'
  printf ' %q' "$@"
  printf '   # must fail\n'
  local out
  if out="$("$@" 2>&1)"; then
    echo "$out"
    echo "FATAL: $* passed on a broken fixture: the check is broken" >&2
    exit 1
  fi
  if ! grep -E "$pattern" <<<"$out"; then
    echo "$out" >&2
    echo "FATAL: $* failed without naming the problem (expected a line matching $pattern)" >&2
    exit 1
  fi
}

FIX=scripts/fixtures/docs
if [ "${1:-}" = "--settings" ]; then
  run bash scripts/gen-settings.sh --check
  # shellcheck disable=SC2016 # backticks of the Markdown table, not a command
  must_reject '^\+\| `PORT` \| `8080`' bash scripts/gen-settings.sh --check "$FIX/settings-stale.md"
  exit 0
fi

run python3 scripts/check-links.py
must_reject '^BROKEN .*no-such-file' python3 scripts/check-links.py "$FIX/broken-links.md"

run python3 scripts/check-guarantees.py
must_reject '^MISSING .*acknowledged_writes_survive_a_meteor' \
  python3 scripts/check-guarantees.py "$FIX/guarantees-missing-test.md"

run python3 scripts/check-readme-commands.py
must_reject '^UNCHECKED .*gcloud run services delete' \
  python3 scripts/check-readme-commands.py "$FIX/readme-unmarked-command.md"
