#!/usr/bin/env bash
# invoker's load benchmark in one command: builds the release binaries (caller and called as
# the Dockerfile builds them, the tools separately), then bench-harness starts the emulator
# (in-process), called (SQLite, AUTH_MODE=verify) and caller (AUTH_MODE=verify,
# TOKEN_SOURCE=metadata) on loopback, drives them with wrk — for each count of end users in
# BENCH_USERS, their tokens round-robin — does the same against the floor pair
# (bench/src/bin/floor_*.rs) with the same tokens, prints the tables of bench/RESULTS.md
# and writes bench/results.svg. Everything it starts is stopped when it ends or is interrupted.
#
#   bash bench/run.sh                      # ~5 s per scenario after 2 s warm-up
#   BENCH_DURATION_SECS=30 bash bench/run.sh
#   BENCH_PYTHON=1 bash bench/run.sh       # adds the article's Python pair (venv from PyPI)
#
#   BENCH_USERS=1,1000,10000 bash bench/run.sh   # end users (distinct tokens, round-robin)
#
# Settings: BENCH_USERS (1,10000), BENCH_DURATION_SECS, BENCH_WARMUP_SECS, BENCH_THREADS, BENCH_CONNECTIONS,
# BENCH_STARTS, BENCH_RUST_LOG, BENCH_LOG_FORMAT, BENCH_SCENARIOS, BENCH_SERVICE_ENV, BENCH_SVG,
# BENCH_BIN_DIR, BENCH_SERVICE_BIN_DIR (see bench/src/bin/harness.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing wrk (Debian package)…" >&2
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
  else
    echo "bench/run.sh needs wrk: apt-get install -y wrk" >&2
    exit 1
  fi
fi

# The services are built exactly as the Dockerfile builds them (its target, its RUSTFLAGS, the
# same command), in a cargo invocation of their own: built together with the tools, cargo would
# unify the tools' dependency features (the test kit's tokio `test-util`, …) into them, and the
# benchmark would measure binaries that never ship. The tools follow in a second invocation,
# with the same target and RUSTFLAGS (the floor pair is built like the services, and the
# dependencies whose features do not differ are reused).
build_target="$(sed -n 's/^ENV CARGO_BUILD_TARGET=\(.*\)$/\1/p' Dockerfile)"
build_rustflags="$(sed -n 's/^ENV RUSTFLAGS="\(.*\)"$/\1/p' Dockerfile)"
if [ -z "$build_target" ] || [ -z "$build_rustflags" ]; then
  echo "bench/run.sh: the Dockerfile no longer sets ENV CARGO_BUILD_TARGET=... and ENV RUSTFLAGS=\"...\" on lines of their own" >&2
  exit 1
fi
services_cmd='cargo build --release --locked --bin caller --bin called'
if ! grep -qF "$services_cmd" Dockerfile; then
  echo "bench/run.sh: the Dockerfile no longer runs '$services_cmd'" >&2
  exit 1
fi
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$build_target"; then
  echo "bench/run.sh: the Dockerfile's Rust target $build_target is not installed (rustup target add $build_target)" >&2
  exit 1
fi

target_dir="${CARGO_TARGET_DIR:-target}"
echo "building the services as the Dockerfile does: CARGO_BUILD_TARGET=$build_target RUSTFLAGS='$build_rustflags' $services_cmd" >&2
CARGO_BUILD_TARGET="$build_target" RUSTFLAGS="$build_rustflags" $services_cmd
echo "building the tools (a separate cargo invocation)" >&2
CARGO_BUILD_TARGET="$build_target" RUSTFLAGS="$build_rustflags" \
  cargo build --release --locked \
  --bin metadata-emulator --bin local --bin floor-front --bin floor-back --bin bench-harness

# caller and called from the Dockerfile's build; the tools from the second invocation (the same
# folder today, but the harness keeps the two apart: see BENCH_SERVICE_BIN_DIR in harness.rs).
export BENCH_SERVICE_BIN_DIR="${BENCH_SERVICE_BIN_DIR:-$target_dir/$build_target/release}"
export BENCH_BIN_DIR="${BENCH_BIN_DIR:-$target_dir/$build_target/release}"
mkdir -p "$target_dir/bench"

if [ "${BENCH_PYTHON:-0}" = 1 ]; then
  venv="$target_dir/bench/venv"
  if [ ! -x "$venv/bin/gunicorn" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r bench/python/requirements.txt
  fi
  export BENCH_PYTHON_BIN="$venv/bin"
  export BENCH_SCENARIOS="${BENCH_SCENARIOS:-chain,floor,python}"
fi

# The harness stops its children itself (also on SIGINT/SIGTERM); this trap covers the rest.
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
"$BENCH_BIN_DIR/bench-harness" 2>&1 | tee "$target_dir/bench/last-run.md"
