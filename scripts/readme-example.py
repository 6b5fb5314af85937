#!/usr/bin/env python3
"""The auth library's README shows examples/protect.rs verbatim: regenerate (--write) or check.

Usage: scripts/readme-example.py [--write]. Exit 1 when the README's ```rust,no_run block differs
from the example (the example is the compiled copy; the README is never typed by hand)."""
import pathlib, re, sys

root = pathlib.Path(__file__).resolve().parent.parent / "shared" / "auth"
readme = root / "README.md"
example = (root / "examples" / "protect.rs").read_text()
text = readme.read_text()
pattern = re.compile(r"(```rust,no_run\n)(.*?)(```)", re.S)
m = pattern.search(text)
if not m:
    sys.exit(f"{readme}: no ```rust,no_run block")
if m.group(2) == example:
    print("shared/auth/README.md shows examples/protect.rs verbatim")
    sys.exit(0)
if "--write" in sys.argv:
    readme.write_text(text[: m.start(2)] + example + text[m.end(2) :])
    print("shared/auth/README.md updated from examples/protect.rs")
    sys.exit(0)
sys.exit("shared/auth/README.md differs from examples/protect.rs: run scripts/readme-example.py --write")
