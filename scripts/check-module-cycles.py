#!/usr/bin/env python3
"""No import cycles between a crate's modules: fails (exit 1) naming a cycle, else prints the graph.

Usage: scripts/check-module-cycles.py [CRATE_DIR]   (default: shared/auth; CRATE_DIR/src or a
src directory itself)

Reads every CRATE_DIR/src/**/*.rs (not src/bin), strips comments and literals, and collects the
module -> module references:
  - `use` declarations (with `{}` groups, `self`, `as`, `*`) whose path starts with `crate`,
    `super` (relative to the file's module, and to inline `mod x { ... }` blocks), `self`, or a
    child module's name;
  - `crate::x::`, `super::x::`, `self::x::` and `child::` paths anywhere in the code.
A path is resolved to the longest module prefix; a name that module imports or re-exports
(`pub use keys::JwksCache;` in verify/mod.rs) is followed to where it comes from, so
`crate::AuthError` is an edge to `error`, not to the crate root. Test modules count.

The check runs at every directory level: among the top-level modules (children of lib.rs) and,
for each module with submodules (x/mod.rs or x.rs + x/), among its submodules. A parent and its
own submodules are a hierarchy, not a cycle: `mod x;` / `pub use x::...` lines in lib.rs and
mod.rs, and a child's `use super::Item` of an item the parent defines, are printed as parent/child
edges but do not enter the cycle search. An edge from deep inside a module counts for its
ancestor at the level being checked (fetch::cache -> clock is fetch -> clock at the top level).
"""
import pathlib
import re
import sys
from collections import defaultdict

REPO = pathlib.Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------------
# Lexing: identifiers, `::`, punctuation, with line numbers; comments and literals dropped.

TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<line_comment>//[^\n]*)
  | (?P<block_comment>/\*)
  | (?P<raw_string>b?r(?P<hashes>\#*)")
  | (?P<string>b?"(?:[^"\\]|\\.)*")
  | (?P<char>b?'(?:[^'\\\n]|\\(?:[nrt\\0'"]|x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]{1,6}\}))')
  | (?P<lifetime>'[A-Za-z_][A-Za-z0-9_]*)
  | (?P<ident>(?:r\#)?[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>[0-9][0-9A-Za-z_.]*)
  | (?P<path_sep>::)
  | (?P<punct>.)
    """,
    re.X | re.S,
)


def lex(text):
    """[(text, line)] of identifiers, `::` and punctuation."""
    out, pos, line = [], 0, 1
    while pos < len(text):
        m = TOKEN.match(text, pos)
        kind = m.lastgroup if m.lastgroup != "hashes" else "raw_string"
        if m.group("raw_string"):
            kind = "raw_string"
        end = m.end()
        if kind == "block_comment":
            depth, end = 1, m.end()
            while depth and end < len(text):
                if text.startswith("/*", end):
                    depth, end = depth + 1, end + 2
                elif text.startswith("*/", end):
                    depth, end = depth - 1, end + 2
                else:
                    end += 1
        elif kind == "raw_string":
            close = '"' + m.group("hashes")
            found = text.find(close, m.end())
            end = len(text) if found < 0 else found + len(close)
        elif kind == "ident":
            out.append((m.group().removeprefix("r#"), line))
        elif kind in ("path_sep", "punct", "lifetime", "number"):
            out.append((m.group(), line))
        line += text.count("\n", pos, end)
        pos = end
    return out


def is_ident(tok):
    return re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", tok) is not None


# ---------------------------------------------------------------------------------------------
# Files -> modules.


def module_of(src, path):
    """The module path (tuple of segments) of a file; () for lib.rs/main.rs."""
    rel = path.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts in (["lib"], ["main"]):
        return ()
    if parts[-1] == "mod":
        parts.pop()
    return tuple(parts)


def is_parent_file(src, path):
    """lib.rs, main.rs, x/mod.rs, or x.rs next to a directory x/: a file that declares submodules."""
    return path.name in ("lib.rs", "main.rs", "mod.rs") or path.with_suffix("").is_dir()


class Use:
    """One leaf of a `use` tree in a scope: the path, the name it binds, glob or not."""

    def __init__(self, scope, segs, name, glob, public, line, file):
        self.scope, self.segs, self.name, self.glob = scope, segs, name, glob
        self.public, self.line, self.file = public, line, file


class Ref:
    """A path in code (outside `use`)."""

    def __init__(self, scope, segs, line, file):
        self.scope, self.segs, self.line, self.file = scope, segs, line, file


def parse_use_tree(toks, i, prefix):
    """Parses a use tree at toks[i]; returns (leaves, next index). Leaves: (segs, name, glob)."""
    segs = list(prefix)
    leaves = []
    if toks[i][0] == "::":  # `use ::extern_crate::...`
        segs.append("::")
        i += 1
    while True:
        tok = toks[i][0]
        if tok == "{":
            i += 1
            while toks[i][0] != "}":
                sub, i = parse_use_tree(toks, i, segs)
                leaves += sub
                if toks[i][0] == ",":
                    i += 1
            return leaves, i + 1
        if tok == "*":
            return [(tuple(segs), None, True)], i + 1
        if not is_ident(tok):
            return leaves, i
        segs.append(tok)
        i += 1
        if toks[i][0] == "::":
            i += 1
            continue
        name = segs[-1]
        if segs[-1] == "self":
            segs.pop()
            name = segs[-1] if segs else None
        if toks[i][0] == "as":
            name = toks[i + 1][0]
            i += 2
        return [(tuple(segs), name, False)], i


def scan_file(src, path, known_modules):
    """The `use` leaves and code paths of one file, each with its scope (module + inline mods)."""
    file_mod = module_of(src, path)
    toks = lex(path.read_text()) + [("<eof>", 0)] * 4
    uses, refs, inline = [], [], []
    stack = []  # (inline module name, brace depth at which it opened)
    depth = 0
    rel = path.relative_to(src.parent)

    def scope():
        return file_mod + tuple(name for name, _ in stack)

    def children(sc):
        return {m[len(sc)] for m in known_modules | set(inline) if len(m) > len(sc) and m[: len(sc)] == sc}

    i = 0
    while i < len(toks) - 4:
        tok, line = toks[i]
        prev = toks[i - 1][0] if i else ""
        if tok == "{":
            depth += 1
        elif tok == "}":
            depth -= 1
            while stack and stack[-1][1] == depth:
                stack.pop()
        elif tok == "mod" and is_ident(toks[i + 1][0]) and toks[i + 2][0] == "{":
            stack.append((toks[i + 1][0], depth))
            inline.append(scope())
            depth += 1
            i += 3
            continue
        elif tok == "use" and prev != "::":
            public = prev == "pub" or (prev == ")" and _pub_restricted(toks, i - 1))
            leaves, i = parse_use_tree(toks, i + 1, ())
            for segs, name, glob in leaves:
                uses.append(Use(scope(), segs, name, glob, public, line, rel))
            continue
        elif (
            is_ident(tok)
            and toks[i + 1][0] == "::"
            and prev not in ("::", "$", ".")
            and (tok in ("crate", "super", "self") or tok in children(scope()))
        ):
            segs = [tok]
            j = i + 1
            while toks[j][0] == "::" and is_ident(toks[j + 1][0]):
                segs.append(toks[j + 1][0])
                j += 2
            refs.append(Ref(scope(), tuple(segs), line, rel))
            i = j
            continue
        i += 1
    return file_mod, uses, refs, inline


def _pub_restricted(toks, close):
    """Whether toks[close] == ')' ends a `pub(crate)` / `pub(super)` / `pub(in path)`."""
    j = close
    while j > 0 and toks[j][0] != "(":
        j -= 1
    return j > 0 and toks[j - 1][0] == "pub"


# ---------------------------------------------------------------------------------------------
# Resolution.


class Crate:
    def __init__(self, src):
        self.src = src
        files = sorted(
            p for p in src.rglob("*.rs") if "bin" not in p.relative_to(src).parts[:1]
        )
        if not any(p.name in ("lib.rs", "main.rs") and p.parent == src for p in files):
            sys.exit(f"{src}: no lib.rs or main.rs")
        self.files = {module_of(src, p): p for p in files}
        self.parents = {module_of(src, p) for p in files if is_parent_file(src, p)}
        self.modules = set(self.files)
        self.inline = set()
        self.uses, self.refs = [], []
        for p in files:
            _, uses, refs, inline = scan_file(src, p, self.modules)
            self.uses += uses
            self.refs += refs
            self.inline |= set(inline)
        self.all_scopes = self.modules | self.inline
        # name -> Use, per scope (non-glob imports and re-exports).
        self.imports = defaultdict(dict)
        for u in self.uses:
            if not u.glob and u.name and u.name != "_":
                self.imports[u.scope][u.name] = u

    def absolute(self, scope, segs):
        """Absolute segments of `segs` written in `scope`, or None when external."""
        if not segs or segs[0] == "::":
            return None
        first = segs[0]
        if first == "crate":
            return tuple(segs[1:])
        if first in ("super", "self"):
            base = list(scope)
            k = 0
            while k < len(segs) and segs[k] in ("super", "self"):
                if segs[k] == "super":
                    if not base:
                        return None
                    base.pop()
                k += 1
            return tuple(base) + tuple(segs[k:])
        if scope + (first,) in self.all_scopes:
            return scope + tuple(segs)
        imported = self.imports.get(scope, {}).get(first)
        if imported is not None and imported.segs != segs:
            target = self.absolute(imported.scope, imported.segs)
            return None if target is None else target + tuple(segs[1:])
        return None

    def module_at(self, abs_segs, seen=()):
        """The file module an absolute path points into, following imports and re-exports."""
        if abs_segs is None:
            return None
        k = len(abs_segs)
        while k and tuple(abs_segs[:k]) not in self.all_scopes:
            k -= 1
        scope = tuple(abs_segs[:k])
        if k < len(abs_segs):
            via = self.imports.get(scope, {}).get(abs_segs[k])
            if via is not None and (scope, abs_segs[k]) not in seen:
                target = self.absolute(via.scope, via.segs)
                if target is not None:
                    return self.module_at(
                        target + tuple(abs_segs[k + 1 :]), seen + ((scope, abs_segs[k]),)
                    )
                return None  # imported from another crate
        while scope not in self.modules:  # an inline module: its file's module
            scope = scope[:-1]
        return scope

    def edges(self):
        """{(from module, to module): (file, line, path)} (first occurrence)."""
        out = {}
        items = [(u.scope, u.segs, u.file, u.line, u) for u in self.uses]
        items += [(r.scope, r.segs, r.file, r.line, None) for r in self.refs]
        for scope, segs, file, line, use in items:
            target = self.module_at(self.absolute(scope, segs))
            if target is None:
                continue
            origin = scope
            while origin not in self.modules:
                origin = origin[:-1]
            if origin == target:
                continue
            # `pub use child::...` in a parent file: a re-export of its own submodule.
            if use is not None and use.public and origin in self.parents:
                if target[: len(origin)] == origin:
                    continue
            shown = "::".join(segs) + ("::*" if use is not None and use.glob else "")
            out.setdefault((origin, target), (file, line, shown))
        return out


# ---------------------------------------------------------------------------------------------
# Levels and cycles.


def name(mod):
    return "::".join(mod) if mod else "crate"


def find_cycle(nodes, adj):
    """One cycle (list of nodes, first == last) or None."""
    color = {n: 0 for n in nodes}
    parent = {}

    for start in sorted(nodes):
        if color[start]:
            continue
        stack = [(start, iter(sorted(adj[start])))]
        color[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                color[node] = 2
                stack.pop()
            elif color[nxt] == 1:
                cycle = [nxt]
                for n, _ in reversed(stack):
                    cycle.append(n)
                    if n == nxt:
                        break
                return list(reversed(cycle))
            elif color[nxt] == 0:
                color[nxt] = 1
                parent[nxt] = node
                stack.append((nxt, iter(sorted(adj[nxt]))))
    return None


def main():
    arg = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "shared" / "auth"
    src = arg if arg.name == "src" or not (arg / "src").is_dir() else arg / "src"
    if not src.is_dir():
        sys.exit(f"{src}: not a directory")
    crate = Crate(src)
    edges = crate.edges()
    levels = sorted(
        {m[:k] for m in crate.modules for k in range(len(m))}, key=lambda m: (len(m), m)
    )
    failed = False
    for level in levels:
        n = len(level)
        inside = lambda m: len(m) > n and m[:n] == level
        nodes = {m[n] for m in crate.modules if inside(m)}
        sib, fam = defaultdict(dict), []
        for (a, b), where in sorted(edges.items()):
            if inside(a) and inside(b) and a[n] != b[n]:
                sib[a[n]].setdefault(b[n], (a, b, where))
            elif (inside(a) and b == level) or (a == level and inside(b)):
                fam.append((a, b, where))
        adj = {x: set(sib[x]) for x in nodes}
        title = f"{name(level)} ({'src/' + '/'.join(level) + ('/' if level else '')})"
        cycle = find_cycle(nodes, adj)
        if cycle:
            failed = True
            print(f"CYCLE among the submodules of {title}: {' -> '.join(cycle)}")
            for x, y in zip(cycle, cycle[1:]):
                a, b, (file, line, shown) = sib[x][y]
                print(f"  {name(a)} -> {name(b)}  ({file}:{line}: {shown})")
            continue
        print(f"{title}: {len(nodes)} modules, no cycle")
        for x in sorted(nodes):
            for y in sorted(sib[x]):
                a, b, (file, line, shown) = sib[x][y]
                print(f"  {x} -> {y}  ({file}:{line}: {shown})")
        for a, b, (file, line, shown) in fam:
            print(f"  [parent/child, not a cycle] {name(a)} -> {name(b)}  ({file}:{line}: {shown})")
    if failed:
        sys.exit(1)
    print(f"{src}: no module cycles")


if __name__ == "__main__":
    main()
