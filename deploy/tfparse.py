"""Read a folder of Terraform .tf files into plain Python structures (python-hcl2).

Values keep python-hcl2's conventions: a literal string is returned with its
quotes ('"abc"'), an expression as '${...}', numbers and booleans as themselves,
lists as lists, objects as dicts, and nested blocks as lists of dicts that carry
'__is_block__': True (so a block can be told from an attribute holding a list of
objects).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import hcl2
from hcl2 import SerializationOptions

_OPTIONS = SerializationOptions(with_comments=False, preserve_heredocs=False, explicit_blocks=True)
BLOCK_MARK = "__is_block__"


@dataclass
class Block:
    """One labelled top-level block: resource, data, ephemeral, variable, output, provider, module."""

    kind: str
    type: str  # resource/data/ephemeral type; "" for variables/outputs
    name: str
    body: dict
    file: str

    @property
    def address(self) -> str:
        if self.kind == "resource":
            return f"{self.type}.{self.name}"
        if self.kind in ("data", "ephemeral"):
            return f"{self.kind}.{self.type}.{self.name}"
        return f"{self.kind}.{self.name}"


@dataclass
class Config:
    folder: Path
    resources: list[Block] = field(default_factory=list)
    data: list[Block] = field(default_factory=list)
    ephemeral: list[Block] = field(default_factory=list)
    variables: dict[str, Block] = field(default_factory=dict)
    outputs: dict[str, Block] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    providers: dict[str, list[Block]] = field(default_factory=dict)
    terraform: list[dict] = field(default_factory=list)
    other: list[tuple[str, str]] = field(default_factory=list)  # (kind, file) not understood

    def resource(self, type_: str, name: str) -> Block:
        for r in self.resources:
            if r.type == type_ and r.name == name:
                return r
        raise KeyError(f"{type_}.{name} not found in {self.folder}")

    def resources_of(self, type_: str) -> list[Block]:
        return [r for r in self.resources if r.type == type_]


def unquote(label: str) -> str:
    if isinstance(label, str) and len(label) >= 2 and label[0] == '"' and label[-1] == '"':
        return json.loads(label)
    return label


def load_file(path: Path, cfg: Config) -> None:
    doc = hcl2.loads(path.read_text(), serialization_options=_OPTIONS)
    fname = path.name
    for kind, entries in doc.items():
        for entry in entries:
            if kind in ("resource", "data", "ephemeral"):
                for t, named in entry.items():
                    for n, body in named.items():
                        blk = Block(kind, unquote(t), unquote(n), body, fname)
                        {"resource": cfg.resources, "data": cfg.data, "ephemeral": cfg.ephemeral}[kind].append(blk)
            elif kind in ("variable", "output"):
                for n, body in entry.items():
                    blk = Block(kind, "", unquote(n), body, fname)
                    (cfg.variables if kind == "variable" else cfg.outputs)[blk.name] = blk
            elif kind == "locals":
                for k, v in entry.items():
                    if k == BLOCK_MARK:
                        continue
                    if k in cfg.locals:
                        raise ValueError(f"{fname}: local.{k} defined twice")
                    cfg.locals[k] = v
            elif kind == "provider":
                for n, body in entry.items():
                    cfg.providers.setdefault(unquote(n), []).append(Block(kind, unquote(n), unquote(n), body, fname))
            elif kind == "terraform":
                cfg.terraform.append(entry)
            else:
                cfg.other.append((kind, fname))


def load_dir(folder: Path) -> Config:
    cfg = Config(folder=Path(folder))
    files = sorted(Path(folder).glob("*.tf"))
    if not files:
        raise FileNotFoundError(f"no .tf files in {folder}")
    for f in files:
        try:
            load_file(f, cfg)
        except Exception as e:  # a parse error names the file
            raise ValueError(f"{f}: cannot parse: {e}") from e
    return cfg


# ---- values -------------------------------------------------------------------------

def is_block_list(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) and x.get(BLOCK_MARK) for x in v)


def expr(v: Any) -> str | None:
    """The expression inside '${...}' when v is exactly one interpolation, else None."""
    if isinstance(v, str) and v.startswith("${") and v.endswith("}"):
        inner = v[2:-1]
        # "${a}-${b}" is not one interpolation: require balanced braces across the inner text
        return inner.strip() if never_closes_unopened(inner, "{", "}") else None
    return None


def never_closes_unopened(s: str, opening: str, closing: str) -> bool:
    """Whether no prefix of s holds more `closing` than `opening` characters."""
    depth = 0
    for c in s:
        depth += c == opening
        depth -= c == closing
        if depth < 0:
            return False
    return True


def literal(v: Any) -> Any:
    """A literal value (string without interpolation, number, bool), else None."""
    if isinstance(v, bool) or isinstance(v, (int, float)):
        return v
    if isinstance(v, str) and v.startswith('"') and v.endswith('"') and "${" not in v:
        return json.loads(v)
    return None


def text(v: Any) -> str:
    """A value as HCL-ish source text, for comparing expressions."""
    e = expr(v)
    if e is not None:
        return norm(e)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(text(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {text(x)}" for k, x in v.items() if k != BLOCK_MARK) + "}"
    return norm(str(v))


def norm(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()


def walk_strings(v: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, string) for every string leaf, keys included."""
    if isinstance(v, str):
        yield path, v
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from walk_strings(x, f"{path}[{i}]")
    elif isinstance(v, dict):
        for k, x in v.items():
            if k == BLOCK_MARK:
                continue
            yield f"{path}.{k}", k
            yield from walk_strings(x, f"{path}.{k}")


def blocks(body: dict, name: str) -> list[dict]:
    """The nested blocks called `name` in a block body (empty when absent)."""
    v = body.get(name)
    if v is None:
        return []
    if not is_block_list(v):
        raise ValueError(f"{name} is an attribute, not a block")
    return v


def resolve_locals(s: str, locals_: dict[str, Any], depth: int = 0) -> str:
    """Replace local.NAME references by their (parenthesised) definitions, recursively."""
    if depth > 20:
        raise ValueError("local values refer to each other in a cycle")

    def sub(m: re.Match) -> str:
        name = m.group(1)
        if name not in locals_:
            return m.group(0)
        return "(" + resolve_locals(text(locals_[name]), locals_, depth + 1) + ")"

    return re.sub(r"\blocal\.(\w+)\b", sub, s)
