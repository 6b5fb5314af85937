#!/usr/bin/env python3
"""Every command the README shows in a ```sh block is run by CI, or marked as needing a Google
Cloud project: fails (exit 1) naming each command that is neither.

Usage: scripts/check-readme-commands.py [README]   (default README.md)

- A ```sh (or ```bash, ```shell) block with a line `# needs a Google Cloud project` is exempt:
  CI has no project (its commands are checked offline by deploy/check.sh where they can be).
- In any other block, each command — a line, joined with its `\\` continuations, without a
  trailing `# comment` — must appear in what CI runs: `.ci/run` itself or one of the scripts it
  invokes as `bash scripts/NAME.sh` (scripts/readme-commands.sh runs the README's first screen:
  `cargo run --bin local` and the `curl` line it prints). Whitespace is collapsed and the cargo
  flags `--release`, `--locked` and `--quiet` are ignored on both sides: they change the build's
  optimisation, lock-file strictness and progress output, not what runs. Lines of a script that
  are comments do not count as running anything.
- Each ```toml block of the README must appear verbatim in shared/auth/README.md (the library's
  `[dependencies]`, whose own README is built outside the workspace by
  scripts/check-auth-library.sh).
A README with no ```sh block fails too: the first screen must show its commands.
"""
import pathlib
import re
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
MARK = re.compile(r"^\s*#\s*needs a Google Cloud project\b", re.M)
BLOCK = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
IGNORED_FLAGS = ("--release", "--locked", "--quiet")


def normalize(command):
    words = [w for w in command.split() if w not in IGNORED_FLAGS]
    return " ".join(words)


def strip_comment(line):
    """The line without a trailing `# comment` (a `#` after whitespace, outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def commands(block):
    out, pending = [], ""
    for raw in block.split("\n"):
        line = strip_comment(raw).rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            out.append(line)
    return out


def ci_text():
    """Normalized non-comment lines of .ci/run and of the scripts it runs, and their names."""
    ci = REPO / ".ci" / "run"
    sources = [ci]
    for name in re.findall(r"^\s*bash\s+(scripts/[\w.-]+\.sh)\b", ci.read_text(), re.M):
        sources.append(REPO / name)
    lines = []
    for src in sources:
        for cmd in commands(src.read_text()):
            lines.append(normalize(cmd))
    return lines, list(dict.fromkeys(str(s.relative_to(REPO)) for s in sources))


def main():
    readme = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "README.md"
    text = readme.read_text()
    ci_lines, sources = ci_text()
    errors, ran, cloud, blocks = [], 0, 0, 0
    for m in BLOCK.finditer(text):
        lang, body = m.group(1), m.group(2)
        line = text.count("\n", 0, m.start()) + 1
        if lang == "toml":
            lib = (REPO / "shared" / "auth" / "README.md").read_text()
            if body not in lib:
                errors.append(f"{readme.name}:{line}: the ```toml block is not the one in shared/auth/README.md")
            continue
        if lang not in ("sh", "bash", "shell"):
            continue
        blocks += 1
        if MARK.search(body):
            cloud += len(commands(body))
            continue
        for cmd in commands(body):
            wanted = normalize(cmd)
            if any(wanted in ci for ci in ci_lines):
                ran += 1
            else:
                errors.append(
                    f"{readme.name}:{line}: `{cmd}` is not run by CI ({', '.join(sources)}) and its block "
                    "has no `# needs a Google Cloud project` line"
                )
    if blocks == 0:
        errors.append(f"{readme.name}: no ```sh block: the README must show its commands")
    for e in errors:
        print(f"UNCHECKED {e}")
    if errors:
        sys.exit(f"{len(errors)} problem(s) with the commands of {readme.name}")
    print(f"{readme.name}: {ran} command(s) run by CI, {cloud} marked as needing a Google Cloud project")


if __name__ == "__main__":
    main()
