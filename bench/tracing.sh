#!/usr/bin/env bash
# The cost of tracing (issue 23), with bench/run.sh's `chain` scenario three times:
#
#   1. the services as the Dockerfile builds them by default (no `otel` feature);
#   2. with the `otel` feature compiled in (Dockerfile OTEL=true), export off — no
#      OTEL_EXPORTER_OTLP_ENDPOINT: must be the same as 1 within the noise;
#   3. the same binaries exporting every request's 7 spans (caller: request, authenticate,
#      token_wait, hop; called: request, authenticate, store_write) over OTLP/HTTP to a sink on
#      loopback that reads and discards each batch (Python's threading HTTP server).
#
# Compare the chain rows' "CPU µs/req" (and req/s): 2 − 1 is the cost of the feature with export
# off, 3 − 2 the cost per request of exporting. The reports are kept in
# $CARGO_TARGET_DIR/bench/tracing/ (target/bench/tracing/ by default).
#
#   bash bench/tracing.sh                         # BENCH_USERS=1, 5 s per scenario
#   BENCH_DURATION_SECS=30 bash bench/tracing.sh
set -euo pipefail
cd "$(dirname "$0")/.."

export BENCH_SCENARIOS="${BENCH_SCENARIOS:-chain}"
export BENCH_USERS="${BENCH_USERS:-1}"
out="${CARGO_TARGET_DIR:-target}/bench/tracing"
mkdir -p "$out"

OTEL=false bash bench/run.sh 2>&1 | tee "$out/1-no-feature.md"
OTEL=true bash bench/run.sh 2>&1 | tee "$out/2-feature-export-off.md"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
python3 - "$port" <<'PY' &
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Sink(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
PY
sink=$!
trap 'kill "$sink" 2>/dev/null || true' EXIT

OTEL=true BENCH_SERVICE_ENV="${BENCH_SERVICE_ENV:-} OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$port" \
  bash bench/run.sh 2>&1 | tee "$out/3-feature-export-on.md"

echo >&2
echo "chain rows (1: no feature, 2: feature + export off, 3: export on):" >&2
for f in "$out"/1-*.md "$out"/2-*.md "$out"/3-*.md; do
  echo "$(basename "$f"):" >&2
  grep -E '^\| *1 *\|' "$f" | head -3 >&2 || true
done
