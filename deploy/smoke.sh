#!/usr/bin/env bash
# Image smoke test: build the Dockerfile's own final stages (`--target caller`, `--target called`)
# with Podman and run them the way Cloud Run does.
#
# No base image can be pulled here, so the Dockerfile's `build` stage (rust:1.95 image) is
# replaced, with `podman build --build-context build=container-image://...`, by a local
# FROM-scratch image holding binaries built on this host with the same target and RUSTFLAGS the
# Dockerfile sets (read from it) at the same paths (/out/caller, /out/called,
# /etc/ssl/certs/ca-certificates.crt). Everything after that stage (scratch runtime, user, env,
# entrypoint) is the Dockerfile's, unchanged.
#
# Then, on loopback only (host network, ports picked free):
#   - each image: non-root user, exec entrypoint, PORT=8080, no shell inside;
#   - called (AUTH_MODE=verify, SQLite on a tmpfs) and caller (TOKEN_SOURCE=metadata) run with
#     K_SERVICE/K_REVISION/PORT set, read-only root filesystem, all capabilities dropped;
#     a metadata-server emulator on the host mints the ID tokens and serves the keys;
#   - GET /health/live and /health/ready answer 200 on both;
#   - POST / to the caller with a signed token -> 201 from called through the caller (the caller
#     resolved "localhost", fetched a token, called verified it); without a token -> 401;
#   - logs are Cloud Logging JSON lines;
#   - SIGTERM -> exit status 0 well within Cloud Run's 10 s.
#
# Prints `SKIPPED: <reason>` and exits 0 where the machine cannot do this (no podman/runc, no
# static target). Environment: CARGO_TARGET_DIR (default ./target), SMOKE_KEEP_IMAGES=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

say() { printf 'smoke: %s\n' "$*"; }
skip() {
  printf '\n*** SKIPPED: image smoke test: %s ***\n\n' "$*"
  exit 0
}
fail() {
  printf 'smoke: FAIL: %s\n' "$*" >&2
  exit 1
}

# ---- can this machine do it? -------------------------------------------------------------
command -v podman >/dev/null || skip "podman is not installed (apt-get install -y podman runc)"
command -v runc >/dev/null || skip "runc is not installed (apt-get install -y runc)"
command -v curl >/dev/null || skip "curl is not installed"
command -v cargo >/dev/null || skip "cargo is not installed"

target=$(sed -n 's/^ENV CARGO_BUILD_TARGET=\(.*\)$/\1/p' Dockerfile)
rustflags=$(sed -n 's/^ENV RUSTFLAGS="\(.*\)"$/\1/p' Dockerfile)
[ -n "$target" ] && [ -n "$rustflags" ] ||
  fail "the Dockerfile no longer sets ENV CARGO_BUILD_TARGET=... and ENV RUSTFLAGS=\"...\" on lines of their own"
build_cmd='cargo build --release --locked --bin caller --bin called'
grep -qF "$build_cmd" Dockerfile || fail "the Dockerfile no longer runs '$build_cmd'"
rustup target list --installed 2>/dev/null | grep -qx "$target" ||
  skip "the Rust target $target is not installed here (rustup target add $target)"
ca=/etc/ssl/certs/ca-certificates.crt
[ -s "$ca" ] || skip "no CA bundle at $ca (apt-get install ca-certificates)"
podman info >/dev/null 2>&1 || skip "podman cannot run here: $(podman info 2>&1 | tail -n1)"

# ---- 1. the binaries, built as the Dockerfile's build stage builds them --------------------
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
t0=$(date +%s)
say "building caller, called for $target with RUSTFLAGS='$rustflags': $build_cmd"
CARGO_BUILD_TARGET="$target" RUSTFLAGS="$rustflags" $build_cmd
# The host-side test tool in an invocation of its own: built together, cargo would unify its
# dependency features into the services, and the images would hold binaries the Dockerfile
# never builds.
say "building metadata-emulator (host-side test tool) separately"
CARGO_BUILD_TARGET="$target" RUSTFLAGS="$rustflags" \
  cargo build --release --locked --bin metadata-emulator
say "release build: $(($(date +%s) - t0)) s"
bin="$CARGO_TARGET_DIR/$target/release"
for b in caller called; do
  if readelf -l "$bin/$b" | grep -q 'program interpreter'; then
    fail "$b is dynamically linked: it cannot run on the scratch base"
  fi
done

# ---- 2. the Dockerfile's final stages, over those binaries ------------------------------
tag="smoke-$$"
work=$(mktemp -d)
containers=()
emulator_pid=""
cleanup() {
  set +e
  for c in "${containers[@]}"; do podman rm -f -t 0 "$c" >/dev/null 2>&1; done
  [ -n "$emulator_pid" ] && kill "$emulator_pid" 2>/dev/null && wait "$emulator_pid" 2>/dev/null
  if [ "${SMOKE_KEEP_IMAGES:-0}" != 1 ]; then
    podman rmi -f "localhost/invoker-caller:$tag" "localhost/invoker-called:$tag" \
      "localhost/invoker-binaries:$tag" >/dev/null 2>&1
  fi
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/ctx/out" "$work/ctx/etc/ssl/certs"
cp "$bin/caller" "$bin/called" "$work/ctx/out/"
cp "$ca" "$work/ctx/etc/ssl/certs/ca-certificates.crt"
printf 'FROM scratch\nCOPY out /out\nCOPY etc /etc\n' >"$work/ctx/Containerfile"
podman build -q -t "localhost/invoker-binaries:$tag" "$work/ctx" >/dev/null

for t in caller called; do
  podman build -q --build-context "build=container-image://localhost/invoker-binaries:$tag" --target "$t" \
    -t "localhost/invoker-$t:$tag" -f Dockerfile . >/dev/null
  img="localhost/invoker-$t:$tag"
  user=$(podman image inspect "$img" --format '{{.Config.User}}')
  entry=$(podman image inspect "$img" --format '{{json .Config.Entrypoint}}')
  envs=$(podman image inspect "$img" --format '{{json .Config.Env}}')
  size=$(podman image inspect "$img" --format '{{.Size}}')
  [ "${user%%:*}" != "" ] && [ "${user%%:*}" != 0 ] && [ "${user%%:*}" != root ] || fail "$t runs as '$user'"
  [ "$entry" = "[\"/$t\"]" ] || fail "$t entrypoint is $entry, want [\"/$t\"]"
  case "$envs" in *'"PORT=8080"'*) ;; *) fail "$t image does not set PORT=8080 ($envs)" ;; esac
  if podman run --rm --runtime runc --entrypoint /bin/sh "$img" -c true >/dev/null 2>&1; then
    fail "$t image has a shell"
  fi
  # the binary inside is the one built above (the build stage really was replaced)
  podman create --name "extract-$t-$tag" "$img" >/dev/null
  containers+=("extract-$t-$tag")
  podman cp "extract-$t-$tag:/$t" "$work/$t.from-image" >/dev/null
  cmp -s "$work/$t.from-image" "$bin/$t" || fail "/$t in the image is not the binary built above"
  say "image $t: $((size / 1000 / 1000)) MB ($size bytes), user $user, entrypoint $entry, no shell"
done

# ---- 3. run them as Cloud Run would ----------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
emu_port=$(free_port)
called_port=$(free_port)
caller_port=$(free_port)
sa="smoke-caller@smoke-project.iam.gserviceaccount.com"
jwks="http://127.0.0.1:$emu_port/oauth2/v3/certs"

PORT=$emu_port EMULATOR_SERVICE_ACCOUNT=$sa EMULATOR_PROJECT_ID=smoke-project RUST_LOG=warn \
  "$bin/metadata-emulator" >"$work/emulator.log" 2>&1 &
emulator_pid=$!

# shellcheck disable=SC2054 # the commas are inside one --tmpfs option, not between elements
run_opts=(
  -d --runtime runc --network host
  --ulimit nofile=1024:1024 --ulimit nproc=4096:4096
  --read-only --tmpfs /tmp:rw,mode=1777 --cap-drop=ALL --security-opt no-new-privileges
  -e GOOGLE_CLOUD_PROJECT=smoke-project -e RUST_LOG=info
)
called_name="invoker-called-$tag"
caller_name="invoker-caller-$tag"
containers+=("$called_name" "$caller_name")
podman run "${run_opts[@]}" --name "$called_name" \
  -e PORT="$called_port" -e K_SERVICE=invoker-called -e K_REVISION=invoker-called-00001-smk \
  -e K_CONFIGURATION=invoker-called \
  -e AUTH_MODE=verify -e AUTH_AUDIENCES="http://localhost:$called_port" \
  -e AUTH_ALLOWED_PRINCIPALS="$sa" -e AUTH_JWKS_URL="$jwks" \
  -e DATABASE_URL=sqlite:///tmp/called/called.db \
  "localhost/invoker-called:$tag" >/dev/null
podman run "${run_opts[@]}" --name "$caller_name" \
  -e PORT="$caller_port" -e K_SERVICE=invoker-caller -e K_REVISION=invoker-caller-00001-smk \
  -e K_CONFIGURATION=invoker-caller \
  -e AUTH_MODE=verify -e AUTH_AUDIENCES="http://127.0.0.1:$caller_port" \
  -e AUTH_ALLOWED_PRINCIPALS="$sa" -e AUTH_JWKS_URL="$jwks" \
  -e CALLED_URL="http://localhost:$called_port" -e TOKEN_SOURCE=metadata \
  -e GCE_METADATA_HOST="127.0.0.1:$emu_port" \
  "localhost/invoker-caller:$tag" >/dev/null

wait_200() { # url: wait up to 15 s for 200
  local _
  for _ in $(seq 1 150); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)" = 200 ] && return 0
    sleep 0.1
  done
  return 1
}
logs() { podman logs "$1" 2>&1 | tail -n 20; }
for pair in "called:$called_port" "caller:$caller_port"; do
  name=${pair%%:*} port=${pair##*:}
  wait_200 "http://127.0.0.1:$port/health/live" || { logs "invoker-$name-$tag"; fail "$name: /health/live never answered 200"; }
  wait_200 "http://127.0.0.1:$port/health/ready" || { logs "invoker-$name-$tag"; fail "$name: /health/ready never answered 200"; }
  say "$name: /health/live 200, /health/ready 200"
done

token=$(curl -sS -H 'Metadata-Flavor: Google' \
  "http://127.0.0.1:$emu_port/computeMetadata/v1/instance/service-accounts/default/identity?audience=http://127.0.0.1:$caller_port&format=full")
[ -n "$token" ] || fail "the emulator minted no token"
resp="$work/resp.json"
code=$(curl -sS -o "$resp" -w '%{http_code}' -X POST "http://127.0.0.1:$caller_port/" \
  -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d '{"foo":"smoke","n":1}')
if [ "$code" != 201 ] || ! python3 - "$resp" "$sa" <<'PY'; then
import json, sys
body = json.load(open(sys.argv[1]))
assert body["body"] == {"bar": "smoke", "n": 1}, body
assert body["caller"] == sys.argv[2], body
PY
  logs "$caller_name"
  logs "$called_name"
  fail "POST caller -> called: HTTP $code $(cat "$resp")"
fi
say "POST / through caller -> called: 201, stored {\"bar\":\"smoke\"} from $sa"
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$caller_port/" \
  -H 'Content-Type: application/json' -d '{"foo":"smoke"}')
[ "$code" = 401 ] || fail "POST without a token: HTTP $code, want 401"
say "POST / without a token: 401"

for c in "$called_name" "$caller_name"; do
  # Into a file first: `podman logs | head` under pipefail fails whenever head closes the pipe
  # before podman has written everything (SIGPIPE), which more log lines make likelier.
  podman logs "$c" >"$work/$c.log" 2>&1
  head -n 5 "$work/$c.log" | python3 -c '
import json, sys
lines = [l for l in sys.stdin if l.strip()]
assert lines, "no log lines"
for l in lines:
    o = json.loads(l)
    assert "severity" in o and "message" in o, o
' || fail "$c: logs are not Cloud Logging JSON lines"
done
say "logs: JSON lines with severity and message"

for c in "$caller_name" "$called_name"; do
  start=$(date +%s%N)
  podman kill -s TERM "$c" >/dev/null
  status=$(timeout 12 podman wait "$c" || echo timeout)
  ms=$((($(date +%s%N) - start) / 1000000))
  [ "$status" = 0 ] || { logs "$c"; fail "$c: after SIGTERM exit status $status (after $ms ms), want 0"; }
  [ "$ms" -lt 10000 ] || fail "$c: took $ms ms to stop; Cloud Run kills after 10 s"
  say "${c%-"$tag"}: SIGTERM -> exit 0 in $ms ms"
done

say "all checks passed in $(($(date +%s) - t0)) s"
