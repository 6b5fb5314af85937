#!/usr/bin/env python3
"""Every relative link in README.md and docs/ resolves: fails (exit 1) naming each broken one.

Usage: scripts/check-links.py [FILE_OR_DIR...]   (default: README.md ARCHITECTURE.md docs/)

Checks Markdown links `[text](target)` and `![alt](target)`, reference definitions
`[name]: target` and HTML `href="..."`/`src="..."` outside code blocks and code spans. A target
with a scheme (`https:`, `mailto:`) is not fetched. Any other target must name an existing file
or folder relative to the document, and must stay inside the repository. A `#fragment` must be a
heading of the target Markdown file (or of the document itself for `#fragment` alone), slugged
as GitHub does: lower case, punctuation except `-` and `_` dropped, spaces to `-`, repeated
headings numbered `-1`, `-2`; explicit `<a id="...">` / `name="..."` anchors count too.
"""
import pathlib
import re
import sys
from urllib.parse import unquote

REPO = pathlib.Path(__file__).resolve().parent.parent
INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFDEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)
HTML = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']+)["']""")
ANCHOR = re.compile(r"""<a\s[^>]*\b(?:id|name)\s*=\s*["']([^"']+)["']""")


def strip_code(text):
    """The text with fenced blocks and code spans blanked (line numbers kept)."""
    out, fence = [], None
    for line in text.split("\n"):
        m = re.match(r"^\s{0,3}(`{3,}|~{3,})", line)
        if fence is None and m:
            fence = m.group(1)[0] * len(m.group(1))
            out.append("")
            continue
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
            out.append("")
            continue
        out.append(re.sub(r"(`+)(?:(?!\1).)+?\1", "", line))
    return "\n".join(out)


def slug(heading):
    s = heading.strip().lower()
    s = re.sub(r"<[^>]+>", "", s)
    s = re.sub(r"[^\w\- ]", "", s)  # \w keeps letters of any script, digits and _
    return s.replace(" ", "-")


def anchors(path, cache={}):
    if path not in cache:
        text = path.read_text()
        seen, out = {}, set(ANCHOR.findall(text))
        fence = None
        for line in text.split("\n"):
            m = re.match(r"^\s{0,3}(`{3,}|~{3,})", line)
            if m:
                fence = None if fence else m.group(1)
                continue
            if fence:
                continue
            h = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
            if h:
                base = slug(h.group(1))
                n = seen.get(base, 0)
                seen[base] = n + 1
                out.add(base if n == 0 else f"{base}-{n}")
        cache[path] = out
    return cache[path]


def check(doc, errors):
    text = strip_code(doc.read_text())
    count = 0
    for number, line in enumerate(text.split("\n"), 1):
        targets = INLINE.findall(line) + HTML.findall(line)
        m = REFDEF.match(line)
        if m:
            targets.append(m.group(1))
        for target in targets:
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("//"):
                continue
            count += 1
            where = f"{doc.relative_to(REPO)}:{number}: ({target})"
            path_part, _, fragment = target.partition("#")
            path_part = unquote(path_part.split("?", 1)[0])
            dest = doc if not path_part else (doc.parent / path_part).resolve()
            if REPO not in dest.parents and dest != REPO:
                errors.append(f"{where} leaves the repository")
                continue
            if not dest.exists():
                errors.append(f"{where} {dest.relative_to(REPO)} does not exist")
                continue
            if fragment and dest.suffix == ".md" and unquote(fragment).lower() not in anchors(dest):
                errors.append(f"{where} no heading #{fragment} in {dest.relative_to(REPO)}")
    return count


def main():
    args = sys.argv[1:] or ["README.md", "ARCHITECTURE.md", "docs"]
    docs = []
    for a in args:
        p = (REPO / a) if not pathlib.Path(a).is_absolute() else pathlib.Path(a)
        p = p.resolve()
        docs += sorted(p.rglob("*.md")) if p.is_dir() else [p]
    errors, count = [], 0
    for doc in docs:
        count += check(doc, errors)
    for e in errors:
        print(f"BROKEN {e}")
    if errors:
        sys.exit(f"{len(errors)} broken relative link(s) in {len(docs)} file(s)")
    print(f"{count} relative links in {len(docs)} files resolve")


if __name__ == "__main__":
    main()
