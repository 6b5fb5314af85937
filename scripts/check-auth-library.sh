#!/usr/bin/env bash
# The auth library (shared/auth, crate invoker-auth) as its users get it:
#   1. the README shows examples/protect.rs verbatim (scripts/readme-example.py);
#   2. no import cycles between its modules (scripts/check-module-cycles.py), and the check
#      still fails on the broken fixtures (scripts/fixtures/);
#   3. its docs build without a warning (broken intra-doc links included);
#   4. its normal dependency tree, without default features and with `verify,fetch`, has no
#      axum, no hyper server, no database crate and no other crate of this workspace;
#   5. `cargo package` (the .crate file crates.io would get, built once more from its contents);
#   6. the README's `[dependencies]` and `main.rs`, verbatim, build in a new crate outside this
#      workspace (with a path dependency instead of crates.io's copy).
# Prints each command it runs, and how long each part took.
#
#   bash scripts/check-auth-library.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# run CMD...: prints the command, then runs it.
run() {
  printf '$'
  printf ' %q' "$@"
  printf '\n'
  "$@"
}

TIMINGS=()
part_start() {
  PART="$1"
  PART_T0="$(date +%s)"
  printf '\n--> %s\n' "$PART"
}
part_end() {
  local took=$(($(date +%s) - PART_T0))
  TIMINGS+=("$(printf '%5ss  %s' "$took" "$PART")")
  printf '<-- %s: %ss\n' "$PART" "$took"
}

# ---------------------------------------------------------------------------------------------
part_start "README shows examples/protect.rs verbatim"
run python3 scripts/readme-example.py
part_end

# ---------------------------------------------------------------------------------------------
part_start "module cycles (and the check's own fixtures)"
run python3 scripts/check-module-cycles.py shared/auth
run python3 scripts/check-module-cycles.py scripts/fixtures/module-cycle-free >/dev/null
for broken in scripts/fixtures/module-cycle scripts/fixtures/module-cycle-nested; do
  printf '$ python3 scripts/check-module-cycles.py %s   # must fail\n' "$broken"
  if out="$(python3 scripts/check-module-cycles.py "$broken" 2>&1)"; then
    echo "$out"
    echo "check-module-cycles.py passed on $broken, which has a cycle: the check is broken" >&2
    exit 1
  fi
  echo "$out" | grep '^CYCLE' || {
    echo "$out" >&2
    echo "check-module-cycles.py failed on $broken without naming a cycle" >&2
    exit 1
  }
done
part_end

# ---------------------------------------------------------------------------------------------
part_start "docs (rustdoc warnings are errors)"
run env RUSTDOCFLAGS="-D warnings" cargo doc -p invoker-auth --no-deps --all-features --locked
part_end

# ---------------------------------------------------------------------------------------------
part_start "normal dependency tree"
# The other packages of this workspace (and the names the brief of this check lists).
mapfile -t workspace_crates < <(
  cargo metadata --format-version 1 --no-deps --locked |
    python3 -c 'import json,sys; [print(p["name"]) for p in json.load(sys.stdin)["packages"] if p["name"] != "invoker-auth"]'
)
workspace_crates+=(shared caller called emulator local testkit bench)

# check_tree FEATURE-ARGS...: the normal tree of invoker-auth with these feature arguments has
# none of the forbidden crates. Lines are `name vX.Y.Z (source)|feature,feature`.
check_tree() {
  local cmd=(cargo tree -p invoker-auth -e normal --locked "$@" --prefix none --format '{p}|{f}')
  printf '$'
  printf ' %q' "${cmd[@]}"
  printf '\n'
  local tree
  tree="$("${cmd[@]}")"
  local bad
  bad="$(
    WORKSPACE="${workspace_crates[*]}" python3 -c '
import os, sys
workspace = set(os.environ["WORKSPACE"].split())
seen = set()
for line in sys.stdin:
    line = line.strip()
    if not line or line.endswith("(*)"):
        continue
    package, _, features = line.partition("|")
    name = package.split()[0]
    features = set(filter(None, features.split(",")))
    why = None
    if name in ("axum", "axum-core", "axum-macros", "rusqlite", "libsqlite3-sys") or name.startswith("sqlx"):
        why = "web framework or database crate"
    elif name == "hyper" and "server" in features:
        why = "hyper with its server feature"
    elif name == "tokio" and "test-util" in features:
        why = "tokio test-util"
    elif name in workspace:
        why = "a crate of this workspace"
    if why and package not in seen:
        seen.add(package)
        print(f"  {package}: {why}")
' <<<"$tree"
  )"
  if [ -n "$bad" ]; then
    echo "invoker-auth's normal dependency tree ($*) must not contain:" >&2
    echo "$bad" >&2
    exit 1
  fi
  echo "  $(sort -u <<<"$tree" | grep -cv '(\*)$') packages, none forbidden"
}
check_tree --no-default-features
check_tree --no-default-features --features verify,fetch
part_end

# ---------------------------------------------------------------------------------------------
part_start "cargo package (with its verification build)"
run cargo package -p invoker-auth --locked --allow-dirty
part_end

# ---------------------------------------------------------------------------------------------
part_start "the README's Cargo.toml and main.rs, verbatim, in a crate outside this workspace"
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps --locked |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
OUTSIDE="$(mktemp -d)"
trap 'rm -rf "$OUTSIDE"' EXIT
echo "# a new crate in $OUTSIDE, from shared/auth/README.md"
python3 - "$ROOT/shared/auth" "$OUTSIDE" <<'EOF'
import json, pathlib, re, sys

lib, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
readme = (lib / "README.md").read_text()


def block(lang):
    found = re.findall(r"^```" + re.escape(lang) + r"\n(.*?)^```$", readme, re.S | re.M)
    if len(found) != 1:
        sys.exit(f"{lib}/README.md: expected one ```{lang} block, found {len(found)}")
    return found[0]


deps = block("toml")
if not deps.startswith("[dependencies]\n"):
    sys.exit("the README's ```toml block does not start with [dependencies]")
line = re.compile(r'^invoker-auth = \{ version = ("[^"]*")(.*)\}$', re.M)
if len(line.findall(deps)) != 1:
    sys.exit('the README\'s [dependencies] have no line `invoker-auth = { version = "...", ... }`')
# The same requirement (the crate's version must still match it), from this checkout.
deps = line.sub(lambda m: f"invoker-auth = {{ path = {json.dumps(str(lib))}, version = {m[1]}{m[2]}}}", deps)
(out / "Cargo.toml").write_text(
    '[package]\nname = "outside"\nversion = "0.0.0"\nedition = "2024"\n\n'
    "# Not a member of any other workspace.\n[workspace]\n\n" + deps
)
(out / "src").mkdir()
(out / "src" / "main.rs").write_text(block("rust,no_run"))
EOF
run cat "$OUTSIDE/Cargo.toml"
# Its own lock file (resolved from crates.io) and its own target folder, kept between runs.
# Warnings are errors: the README is what users copy.
(
  cd "$OUTSIDE"
  run env CARGO_TARGET_DIR="$TARGET_DIR/outside" RUSTFLAGS="-D warnings" cargo build
)
part_end

printf '\ntimings:\n'
printf '%s\n' "${TIMINGS[@]}"
