#!/usr/bin/env bash
# Where the chain's CPU goes: builds the `profiling` profile (release + line tables, not
# stripped; with the Dockerfile's target and RUSTFLAGS, caller and called on their own), runs
# the chain under load through bench-harness (the chain as terraform deploys it), records
# every CPU with `perf` meanwhile, and writes to target/bench/:
#
#   perf.data                 the raw samples
#   perf-report.txt           by process and symbol, self time (what to optimise)
#   perf-callers.txt          the same with callers (who asked for it)
#   flamegraph.svg            when inferno (cargo install inferno) is on PATH
#
#   bash bench/profile.sh                       # 10 s of load
#   PROFILE_SECS=20 bash bench/profile.sh
#
# perf comes from Debian's linux-perf (installed here when missing and run as root). Machines
# without hardware counters use the cpu-clock software event, which is what this records.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
if ! need perf || ! need wrk; then
  if [ "$(id -u)" = 0 ] && need apt-get; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf wrk >/dev/null
  else
    echo "bench/profile.sh needs perf and wrk: apt-get install -y linux-perf wrk" >&2
    exit 1
  fi
fi

secs="${PROFILE_SECS:-10}"
target_dir="${CARGO_TARGET_DIR:-target}"
out="$target_dir/bench"
mkdir -p "$out"
# caller and called as the Dockerfile builds them (its target and RUSTFLAGS; the profiling
# profile is the release profile plus symbols), in a cargo invocation of their own so that the
# tools' dependency features (the test kit's tokio `test-util`, …) are not unified into them;
# the tools in a second one, with the same target and RUSTFLAGS (see bench/run.sh).
build_target="$(sed -n 's/^ENV CARGO_BUILD_TARGET=\(.*\)$/\1/p' Dockerfile)"
build_rustflags="$(sed -n 's/^ENV RUSTFLAGS="\(.*\)"$/\1/p' Dockerfile)"
if [ -z "$build_target" ] || [ -z "$build_rustflags" ]; then
  echo "bench/profile.sh: the Dockerfile no longer sets ENV CARGO_BUILD_TARGET=... and ENV RUSTFLAGS=\"...\" on lines of their own" >&2
  exit 1
fi
CARGO_BUILD_TARGET="$build_target" RUSTFLAGS="$build_rustflags" \
  cargo build --profile profiling --locked --bin caller --bin called
CARGO_BUILD_TARGET="$build_target" RUSTFLAGS="$build_rustflags" \
  cargo build --profile profiling --locked --bin bench-harness --bin floor-front --bin floor-back
bin_dir="$target_dir/$build_target/profiling"

# The harness drives the chain for PROFILE_SECS after a short warm-up; perf samples the whole
# machine for that time (the two services, wrk, the kernel) with call graphs.
BENCH_BIN_DIR="$bin_dir" BENCH_SERVICE_BIN_DIR="$bin_dir" BENCH_SCENARIOS=chain BENCH_STARTS=0 \
BENCH_WARMUP_SECS=2 BENCH_DURATION_SECS="$secs" BENCH_SVG="$out/profile-chart.svg" \
  "$bin_dir/bench-harness" >"$out/profile-run.md" 2>&1 &
harness=$!
trap 'kill $harness 2>/dev/null || true' EXIT
# Start recording once the chain is up and under load (the harness prints "driving wrk").
for _ in $(seq 1 600); do
  grep -q "driving wrk" "$out/profile-run.md" 2>/dev/null && break
  kill -0 $harness 2>/dev/null || { cat "$out/profile-run.md"; exit 1; }
  sleep 0.1
done
sleep 2.5
perf record -e cpu-clock -F 997 -g -a -o "$out/perf.data" -- sleep "$((secs - 3))" 2>"$out/perf-record.log"
wait $harness
trap - EXIT

perf report -i "$out/perf.data" --stdio --no-children -g none --sort pid,dso,symbol \
  --percent-limit 0.3 2>/dev/null >"$out/perf-report.txt"
perf report -i "$out/perf.data" --stdio --children --sort comm,symbol \
  --percent-limit 2 2>/dev/null >"$out/perf-callers.txt"
if need inferno-collapse-perf && need inferno-flamegraph; then
  perf script -i "$out/perf.data" 2>/dev/null | inferno-collapse-perf | inferno-flamegraph >"$out/flamegraph.svg"
  echo "flame graph: $out/flamegraph.svg"
fi
grep -E "^# (Samples|Event count)" "$out/perf-report.txt" | sed -n '1,2p'
echo "top of the profile (self time, by process / library / symbol):"
grep -vE '^#|^$' "$out/perf-report.txt" | sed -n '1,40p'
echo
echo "full reports: $out/perf-report.txt, $out/perf-callers.txt; the run: $out/profile-run.md"
