#!/usr/bin/env bash
# Fails when tokio's `test-util` feature (a paused, hand-advanced clock) is enabled in what the
# service binaries are built from: the normal (non-dev) dependency graph of `caller`, of
# `called`, of the two together as the Dockerfile builds them
# (`cargo build --release --locked --bin caller --bin called`), and of `local` (a tool built next
# to them; it must not bring `test-util` either). Dev-dependencies (the test kit, `testkit`)
# may enable it: they never reach a shipped binary.
#
# How: `cargo tree -e normal,build,features` resolves features without dev-dependencies, for the
# selected packages together (as `cargo build -p …` would), and prints every enabled feature as
# `tokio feature "…"`. The target is the Dockerfile's (ENV CARGO_BUILD_TARGET).
#
#   bash scripts/check-no-test-util.sh
set -euo pipefail
cd "$(dirname "$0")/.."

target="$(sed -n 's/^ENV CARGO_BUILD_TARGET=\(.*\)$/\1/p' Dockerfile)"
if [ -z "$target" ]; then
  echo "check-no-test-util: the Dockerfile no longer sets ENV CARGO_BUILD_TARGET=... on a line of its own" >&2
  exit 1
fi

failed=0
# Each line: the packages resolved together.
for packages in "caller" "called" "caller called" "local"; do
  cmd=(cargo tree --locked --target "$target" -e normal,build,features)
  for p in $packages; do cmd+=(-p "$p"); done
  echo "\$ ${cmd[*]}"
  if ! tree="$("${cmd[@]}" 2>&1)"; then
    echo "$tree" >&2
    echo "check-no-test-util: FAILED: the command above did not run" >&2
    exit 1
  fi
  if grep -qE '(^|[^[:alnum:]_-])tokio feature "test-util"' <<<"$tree"; then
    echo "check-no-test-util: FAILED: tokio's \"test-util\" is enabled in the normal dependency graph of: $packages" >&2
    echo "  who enables it (the same command with -i tokio --prefix depth, under the feature):" >&2
    "${cmd[@]}" -i tokio --prefix depth 2>/dev/null | awk '
      d != "" { match($0, /^[0-9]+/); if (substr($0, 1, RLENGTH) + 0 <= d) exit; print "    " $0; next }
      /^[0-9]+tokio feature "test-util"$/ { match($0, /^[0-9]+/); d = substr($0, 1, RLENGTH) + 0; print "    " $0 }
    ' >&2 || true
    echo "  test-util belongs in [dev-dependencies] (or in testkit); a normal dependency puts it in the shipped binaries." >&2
    failed=1
  else
    echo "  ok: no tokio \"test-util\" for: $packages"
  fi
done

if [ "$failed" -ne 0 ]; then
  exit 1
fi
echo "check-no-test-util: ok"
