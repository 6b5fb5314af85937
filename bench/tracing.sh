#!/usr/bin/env bash
# The cost of tracing (issue 23), with bench/run.sh's `chain` scenario twice on the same
# binaries (built as the Dockerfile builds them):
#
#   1. export off — no OTEL_EXPORTER_OTLP_ENDPOINT, as the services run by default: no
#      OpenTelemetry layer is installed and no extra span is made, so this row must match the
#      chain row of a run on the commit before tracing (bench/RESULTS.md) within the noise;
#   2. export on — every request's 7 spans (caller: request, authenticate, token_wait, hop;
#      called: request, authenticate, store_write) sent over OTLP/HTTP to a sink on loopback
#      that reads and discards each batch (Python's threading HTTP server).
#
# The chain rows' "CPU µs/req" difference, 2 − 1, is the cost per request of exporting. The
# reports are kept in $CARGO_TARGET_DIR/bench/tracing/ (target/bench/tracing/ by default).
#
#   bash bench/tracing.sh                         # BENCH_USERS=1, 5 s per scenario
#   BENCH_DURATION_SECS=30 bash bench/tracing.sh
set -euo pipefail
cd "$(dirname "$0")/.."

export BENCH_SCENARIOS="${BENCH_SCENARIOS:-chain}"
export BENCH_USERS="${BENCH_USERS:-1}"
out="${CARGO_TARGET_DIR:-target}/bench/tracing"
mkdir -p "$out"

bash bench/run.sh 2>&1 | tee "$out/1-export-off.md"

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

BENCH_SERVICE_ENV="${BENCH_SERVICE_ENV:-} OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$port" \
  bash bench/run.sh 2>&1 | tee "$out/2-export-on.md"

echo >&2
echo "chain rows (1: export off, 2: export on):" >&2
for f in "$out"/1-*.md "$out"/2-*.md; do
  echo "$(basename "$f"):" >&2
  grep -E '^\| *1 *\|' "$f" | head -3 >&2 || true
done
