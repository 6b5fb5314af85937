#!/usr/bin/env python3
"""Every test that docs/guarantees.md names exists: fails (exit 1) naming each missing one.

Usage: scripts/check-guarantees.py [DOC]   (default docs/guarantees.md)

The document's proofs are bullet items (`- ` lines and their indented continuation lines) of the
form "- `path/to/file.rs` — `test_name`, `other_test` (...); `another/file.rs` — `more`". In a
bullet, a code span that is a repository path ending in `.rs` (or `.sh`) names the file, and
every code span after it that looks like a test name — snake_case with at least one `_`,
optionally prefixed by modules (`sqlite::name`) — names a test in that file. The check:
  - the file exists (relative to the repository root);
  - `fn NAME` is defined in that file (a test, or the function a test macro wraps);
  - each module prefix (`sqlite::`) is a `mod PREFIX` of that file's crate, written out or made
    by a macro of its tests (e.g. `backend_tests!` makes `sqlite` and `postgres`).
Code spans outside bullets, before the first file of a bullet, or with spaces, `=`, `/`,
capitals or no `_` are prose (`on_behalf_of`, `AUTH_MODE=platform`, `GROUP BY idem_key`).
Prints the number of tests checked; a document naming no test at all fails too.
"""
import pathlib
import re
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
SPAN = re.compile(r"`([^`\n]+)`")
FILE = re.compile(r"^[\w.-]+(?:/[\w.-]+)+\.(?:rs|sh)$")
TEST = re.compile(r"^(?:[a-z][a-z0-9_]*::)*[a-z][a-z0-9]*_[a-z0-9_]*$")


def bullets(text):
    """(first line number, text) of each bullet item, continuation lines joined."""
    items, current, start, fence = [], None, 0, False
    for number, line in enumerate(text.split("\n"), 1):
        if line.startswith("```"):
            fence = not fence
        if fence:
            continue
        if line.startswith("- "):
            if current is not None:
                items.append((start, current))
            current, start = line[2:], number
        elif current is not None and line.startswith("  ") and line.strip():
            current += " " + line.strip()
        else:
            if current is not None:
                items.append((start, current))
            current = None
    if current is not None:
        items.append((start, current))
    return items


def crate_root(path):
    """The folder holding the Cargo.toml that owns `path`."""
    for parent in path.parents:
        if (parent / "Cargo.toml").exists():
            return parent
        if parent == REPO:
            break
    return REPO


def module_made(crate, name):
    """Whether some .rs file of the crate declares `mod NAME` (also inside a macro_rules!)."""
    pattern = re.compile(r"\bmod\s+" + re.escape(name) + r"\b")
    return any(pattern.search(p.read_text()) for p in crate.rglob("*.rs") if "target" not in p.parts)


def main():
    doc = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "guarantees.md"
    text = doc.read_text()
    errors, checked = [], 0
    for line, item in bullets(text):
        current = None
        for span in SPAN.findall(item):
            if FILE.match(span):
                current = REPO / span
                if not current.is_file():
                    errors.append(f"{doc.name}:{line}: `{span}` does not exist")
                    current = None
                continue
            if current is None or not TEST.match(span):
                continue
            *mods, name = span.split("::")
            checked += 1
            source = current.read_text()
            if not re.search(r"\bfn\s+" + re.escape(name) + r"\b", source):
                errors.append(f"{doc.name}:{line}: `{span}`: no `fn {name}` in {current.relative_to(REPO)}")
                continue
            for m in mods:
                if not module_made(crate_root(current), m):
                    errors.append(f"{doc.name}:{line}: `{span}`: no module `{m}` in the crate of {current.relative_to(REPO)}")
    if checked == 0:
        errors.append(f"{doc}: names no test at all (expected bullets like - `x/tests/y.rs` — `a_test`)")
    for e in errors:
        print(f"MISSING {e}")
    if errors:
        sys.exit(f"{len(errors)} of the tests {doc.name} names do not exist")
    print(f"{doc.name}: all {checked} named tests exist")


if __name__ == "__main__":
    main()
