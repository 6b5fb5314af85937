#!/usr/bin/env bash
# invoker's load benchmark in one command: builds the release binaries, then bench-harness
# starts the emulator (in-process), called (SQLite, AUTH_MODE=verify) and caller
# (AUTH_MODE=verify, TOKEN_SOURCE=metadata) on loopback, drives them with wrk, does the same
# against the floor pair (bench/src/bin/floor_*.rs), prints the tables of bench/RESULTS.md
# and writes bench/results.svg. Everything it starts is stopped when it ends or is interrupted.
#
#   bash bench/run.sh                      # ~5 s per scenario after 2 s warm-up
#   BENCH_DURATION_SECS=30 bash bench/run.sh
#   BENCH_PYTHON=1 bash bench/run.sh       # adds the article's Python pair (venv from PyPI)
#
# Settings: BENCH_DURATION_SECS, BENCH_WARMUP_SECS, BENCH_THREADS, BENCH_CONNECTIONS,
# BENCH_STARTS, BENCH_RUST_LOG, BENCH_LOG_FORMAT, BENCH_SCENARIOS, BENCH_SERVICE_ENV, BENCH_SVG
# (see bench/src/bin/harness.rs).
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

target_dir="${CARGO_TARGET_DIR:-target}"
cargo build --release --locked \
  --bin caller --bin called --bin metadata-emulator --bin local \
  --bin floor-front --bin floor-back --bin bench-harness

export BENCH_BIN_DIR="${BENCH_BIN_DIR:-$target_dir/release}"
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
