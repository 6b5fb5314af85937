#!/usr/bin/env bash
# docs/settings.md, generated from the binaries' own --help (scripts/render-settings.py).
#
#   bash scripts/gen-settings.sh                 regenerate docs/settings.md (after changing a setting)
#   bash scripts/gen-settings.sh --check [FILE]  exit 1 when FILE (default docs/settings.md)
#                                                differs from what the code generates (CI)
#
# Builds the debug binaries the way scripts/lib.sh does (services and tools in separate cargo
# invocations); after `cargo test` in .ci/run that is a no-op or a link step.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
build_debug caller called metadata-emulator local

if [ "${1:-}" = "--check" ]; then
  python3 scripts/render-settings.py "$BIN" "${2:-docs/settings.md}" --check
else
  python3 scripts/render-settings.py "$BIN" docs/settings.md
fi
