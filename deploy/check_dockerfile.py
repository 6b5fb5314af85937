#!/usr/bin/env python3
"""Properties of the Dockerfile that hadolint does not know about.

  - a `caller` and a `called` target, each built on a FROM-scratch runtime stage;
  - the runtime runs as a numeric non-root user, exposes 8080, sets PORT=8080;
  - exec-form ENTRYPOINT (SIGTERM reaches the process: there is no shell to eat it);
  - the CA bundle is copied when the lockfile uses OS roots (rustls-native-certs);
  - the builder is an official Rust image pinned to 1.95, builds with --release --locked,
    and caches dependencies in their own layer;
  - .dockerignore keeps target/ and .git out of the context.

Usage: check_dockerfile.py [DOCKERFILE [DOCKERIGNORE]]; exit 1 on any failure.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import verdict  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out, buf = [], ""
    for line in path.read_text().splitlines():
        s = line.strip()
        if not buf and (not s or s.startswith("#")):
            continue
        if s.startswith("#"):
            continue
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        buf += s
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def stages(instrs: list[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[tuple[str, str]]], dict[str, str]]:
    """(stage -> base, stage -> its instructions, global ARG defaults)."""
    base: dict[str, str] = {}
    body: dict[str, list[tuple[str, str]]] = {}
    args: dict[str, str] = {}
    cur = None
    for ins, rest in instrs:
        if ins == "FROM":
            m = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            image, name = m.group(1), (m.group(2) or f"#{len(base)}")
            cur = name
            base[cur] = image
            body[cur] = []
        elif cur is None and ins == "ARG":
            k, _, v = rest.partition("=")
            args[k] = v.strip('"')
        elif cur is not None:
            body[cur].append((ins, rest))
    return base, body, args


def chain(stage: str, base: dict[str, str], args: dict[str, str]) -> list[str]:
    """stage, its base stage, ... down to an image."""
    out = [stage]
    while True:
        img = base.get(out[-1], out[-1])
        img = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), img)
        if img in base and img not in out:
            out.append(img)
        else:
            out.append(img)
            return out


def check(dockerfile: Path, dockerignore: Path) -> list[str]:
    errs: list[str] = []
    instrs = instructions(dockerfile)
    base, body, args = stages(instrs)

    def inherited(stage: str, ins: str) -> list[str]:
        vals = []
        for s in reversed(chain(stage, base, args)):
            vals += [r for i, r in body.get(s, []) if i == ins]
        return vals

    for target in ("caller", "called"):
        if target not in base:
            errs.append(f"no `{target}` stage (docker build --target {target})")
            continue
        ch = chain(target, base, args)
        if ch[-1] != "scratch":
            errs.append(f"{target}: final image is based on {ch[-1]}, want scratch (static binary, nothing else)")
        users = inherited(target, "USER")
        if not users:
            errs.append(f"{target}: no USER: it would run as root")
        else:
            uid = users[-1].split(":")[0]
            if not uid.isdigit() or uid == "0":
                errs.append(f"{target}: USER {users[-1]} must be a numeric non-root id (scratch has no /etc/passwd)")
        ep = inherited(target, "ENTRYPOINT")
        try:
            parsed = json.loads(ep[-1]) if ep else None
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, list) or parsed != [f"/{target}"]:
            errs.append(f"{target}: ENTRYPOINT must be exec form [\"/{target}\"], is {ep[-1] if ep else None!r}")
        if not any("8080" in e for e in inherited(target, "EXPOSE")):
            errs.append(f"{target}: EXPOSE 8080 missing")
        if not any(re.search(r"\bPORT=8080\b", e) for e in inherited(target, "ENV")):
            errs.append(f"{target}: ENV PORT=8080 missing")
        copies = " ".join(inherited(target, "COPY"))
        if f"/out/{target}" not in copies:
            errs.append(f"{target}: the binary /out/{target} is not copied")
        lock = (ROOT / "Cargo.lock").read_text() if (ROOT / "Cargo.lock").exists() else ""
        if re.search(r'name = "rustls-(native-certs|platform-verifier)"', lock) and \
                "/etc/ssl/certs/ca-certificates.crt" not in copies:
            errs.append(f"{target}: Cargo.lock uses the OS trust store (rustls-native-certs), "
                        "but /etc/ssl/certs/ca-certificates.crt is not in the image")
        if any(i == "HEALTHCHECK" for i, _ in instrs):
            errs.append("HEALTHCHECK needs a shell or a client in the image; Cloud Run uses its own probes")

    rust = args.get("RUST_IMAGE", "")
    if not re.fullmatch(r"(docker\.io/library/)?rust:1\.95(\.\d+)?-[a-z0-9.-]+(@sha256:[0-9a-f]{64})?", rust):
        errs.append(f"builder image {rust!r}: want the official rust image pinned to 1.95")
    runs = [r for s, b in body.items() for i, r in b if i == "RUN"]
    builds = [r for r in runs if "cargo build" in r]
    if not builds or not all("--release" in r and "--locked" in r for r in builds):
        errs.append("every `cargo build` must use --release --locked")
    if len(builds) < 2:
        errs.append("dependencies are not built in a layer of their own (expect a stub build before the real one)")

    if not dockerignore.exists():
        errs.append(f"{dockerignore.name} is missing")
    else:
        ignored = {ln.strip() for ln in dockerignore.read_text().splitlines() if ln.strip() and not ln.startswith("#")}
        for must in ("target", ".git"):
            if must not in ignored and f"/{must}" not in ignored:
                errs.append(f".dockerignore does not exclude {must}")
    return errs


def main(argv: list[str]) -> int:
    dockerfile = Path(argv[1]) if len(argv) > 1 else ROOT / "Dockerfile"
    dockerignore = Path(argv[2]) if len(argv) > 2 else ROOT / ".dockerignore"
    errs = check(dockerfile, dockerignore)
    return verdict("dockerfile", errs, dockerfile.name)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
