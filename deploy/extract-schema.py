#!/usr/bin/env python3
"""Regenerate deploy/provider-schema.json from the cdktf provider bindings on npm.

`terraform init` cannot reach its registry from CI, so the provider schema that
deploy/check_schema.py checks terraform/ against is taken from the npm packages
@cdktf/provider-google and @cdktf/provider-random, which are generated from the
Terraform providers' own schemas. Each package's lib/<resource>/index.js holds,
per resource, data source and nested block, a function whose `attrs` object
lists every argument with `isBlock: true|false`; index.d.ts marks the optional
ones with `?` and links each to its snake_case name. This script reads both and
writes, for the resource and data-source types that terraform/ uses:

    {"args": {name: {"required": bool}},
     "blocks": {name: {"required": bool, "schema": {...same shape...}}},
     "attributes": [every readable top-level attribute, computed ones included]}

plus the plain list of every type name each provider has, so the checker can
tell "no such type" from "type not extracted yet: rerun this script".

Usage:
    python3 deploy/extract-schema.py            # npm pack the pinned versions into a temp dir
    python3 deploy/extract-schema.py --from DIR # DIR holds the unpacked packages (DIR/<name>/package)

Needs npm (for the download) and python-hcl2 (to read terraform/), e.g. with the
virtualenv deploy/check.sh creates:
    ~/.cache/invoker-deploy-venv/bin/python deploy/extract-schema.py
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "deploy" / "provider-schema.json"

# npm package -> the provider it binds. Keep in step with terraform/versions.tf:
# check_schema.py fails when the pinned constraint does not admit these versions.
PACKAGES = {
    "google": "@cdktf/provider-google@16.12.1",  # hashicorp/google 6.50.0
    "random": "@cdktf/provider-random@12.0.1",  # hashicorp/random 3.7.2
}

ATTR_ENTRY = re.compile(
    r"(?P<name>\w+):\s*\{\s*value:\s*(?P<value>.*?),\s*isBlock:\s*(?P<block>true|false),"
    r"\s*type:\s*\"(?P<type>\w+)\",\s*storageClassType:\s*\"(?P<storage>\w+)\",\s*\}",
    re.S,
)
CHILD_FN = re.compile(r"(?<!cdktf\.)(?<!\w)(\w+)ToHclTerraform\b")
STRUCT_FN = re.compile(r"^function (\w+)ToHclTerraform\(struct\) \{$", re.M)
INTERFACE = re.compile(r"^export interface (\w+)(?: extends [\w.]+)? \{$", re.M)
PROPERTY = re.compile(r"^\s+readonly (\w+)(\?)?:", re.M)
DOC_ANCHOR = re.compile(r"#(\w+) \w+#\1\}")


def body_after(text: str, start: int) -> str:
    """The text of the brace-balanced block that opens at or after `start`."""
    i = text.index("{", start)
    depth = 0
    for j in range(i, len(text)):
        c = text[j]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[i : j + 1]
    raise ValueError("unbalanced braces")


def parse_attrs(block: str) -> dict[str, tuple[bool, str | None]]:
    """name -> (is_block, child struct function or None) from one `const attrs = {…}`."""
    m = block.find("const attrs = {")
    if m < 0:
        return {}
    attrs = body_after(block, m)
    out: dict[str, tuple[bool, str | None]] = {}
    for e in ATTR_ENTRY.finditer(attrs):
        is_block = e.group("block") == "true"
        child = None
        if is_block:
            fns = CHILD_FN.findall(e.group("value"))
            if not fns:
                raise ValueError(f"block {e.group('name')} without a struct function")
            child = fns[0]
        out[e.group("name")] = (is_block, child)
    return out


def parse_interfaces(dts: str) -> dict[str, dict[str, bool]]:
    """interface name -> {snake_case property: required}."""
    out: dict[str, dict[str, bool]] = {}
    for m in INTERFACE.finditer(dts):
        body = body_after(dts, m.start())
        props: dict[str, bool] = {}
        last = 0
        for p in PROPERTY.finditer(body):
            doc = body[last : p.start()]
            anchors = DOC_ANCHOR.findall(doc)
            if anchors:
                props[anchors[-1]] = p.group(2) is None
            last = p.end()
        out[m.group(1)] = props
    return out


def strip_map(js: str) -> str:
    return js.split("//# sourceMappingURL=")[0]


def module_kind(js: str) -> tuple[str, str, str, re.Match, re.Match]:
    """(kind, type name, class name, tfResourceType match, class match) of lib/<name>/index.js."""
    t = re.search(r"^(\w+)\.tfResourceType = \"(\w+)\";$", js, re.M)
    if not t:
        raise LookupError("no tfResourceType")
    cls, tf_type = t.group(1), t.group(2)
    base = re.search(rf"^class {cls} extends cdktf\.(\w+) \{{$", js, re.M)
    kind = {"TerraformResource": "resource", "TerraformDataSource": "data",
            "TerraformProvider": "provider"}[base.group(1)]
    return kind, tf_type, cls, t, base


def module_schema(mod: Path) -> dict:
    """The schema of one lib/<name>/ folder (its structs may be split into index-structs/)."""
    js = strip_map((mod / "index.js").read_text())
    kind, tf_type, cls, t, base = module_kind(js)
    structs: dict = {}
    interfaces: dict = {}
    for f in sorted(mod.rglob("*.js")):
        text = strip_map(f.read_text())
        for m in STRUCT_FN.finditer(text):
            structs[m.group(1)] = parse_attrs(body_after(text, m.start()))
    for f in sorted(mod.rglob("*.d.ts")):
        interfaces.update(parse_interfaces(f.read_text()))

    cls_start = base.start()
    cls_end = t.start()
    cls_text = js[cls_start:cls_end]
    top = parse_attrs(body_after(cls_text, cls_text.index("synthesizeHclAttributes() {")))

    def build(attrs: dict[str, tuple[bool, str | None]], iface: str, seen: tuple[str, ...]) -> dict:
        req = interfaces.get(iface, {})
        node: dict = {"args": {}, "blocks": {}}
        for name, (is_block, child) in sorted(attrs.items()):
            if not is_block:
                node["args"][name] = {"required": req.get(name, False)}
                continue
            if child in seen:  # recursive types (rare) stop here
                node["blocks"][name] = {"required": req.get(name, False), "schema": None}
                continue
            child_iface = child[0].upper() + child[1:]
            node["blocks"][name] = {
                "required": req.get(name, False),
                "schema": build(structs.get(child, {}), child_iface, seen + (child,)),
            }
        return node

    schema = build(top, f"{cls}Config", ())
    readable = set(re.findall(r"this\.get\w*Attribute\('(\w+)'\)", cls_text))
    readable |= set(re.findall(r"\(this, \"(\w+)\"", cls_text))
    readable |= set(schema["args"]) | set(schema["blocks"])
    schema["attributes"] = sorted(readable)
    return schema


def used_types() -> set[str]:
    """resource/data/provider keys used by terraform/*.tf (and the test fixtures)."""
    sys.path.insert(0, str(ROOT / "deploy"))
    from tfparse import load_dir  # noqa: E402  (deploy/tfparse.py)

    keys: set[str] = set()
    for d in (ROOT / "terraform", *sorted((ROOT / "deploy" / "fixtures").glob("*/"))):
        cfg = load_dir(d)
        keys |= {f"resource.{r.type}" for r in cfg.resources}
        keys |= {f"data.{r.type}" for r in cfg.data}
        keys |= {f"provider.{p}" for p in cfg.providers}
    return keys


def fetch(dest: Path) -> None:
    for name, spec in PACKAGES.items():
        out = subprocess.run(["npm", "pack", "--silent", spec], cwd=dest, check=True,
                             capture_output=True, text=True).stdout.strip().splitlines()[-1]
        with tarfile.open(dest / out) as tar:
            tar.extractall(dest / name, filter="data")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="src", type=Path, help="folder with <provider>/package unpacked")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        src = args.src
        if src is None:
            src = Path(tmp)
            fetch(src)
        want = used_types()
        result: dict = {"generated_by": "deploy/extract-schema.py", "providers": {}}
        for name, spec in PACKAGES.items():
            pkg = src / name / "package"
            meta = json.loads((pkg / "package.json").read_text())
            prov = {
                "npm_package": spec,
                "source": meta["cdktf"]["provider"]["name"].removeprefix("registry.terraform.io/"),
                "version": meta["cdktf"]["provider"]["version"],
                "all_types": {"resource": [], "data": []},
                "schemas": {},
            }
            for mod in sorted((pkg / "lib").iterdir()):
                js, dts = mod / "index.js", mod / "index.d.ts"
                if not js.is_file() or not dts.is_file():
                    continue
                text = strip_map(js.read_text())
                if ".tfResourceType = " not in text:
                    continue
                kind, tf_type, *_ = module_kind(text)
                key = f"{kind}.{tf_type}" if kind != "provider" else f"provider.{name}"
                if kind != "provider":
                    prov["all_types"][kind].append(tf_type)
                if key in want:
                    prov["schemas"][key] = module_schema(mod)
            missing = {k for k in want if k.split(".")[1].startswith(name + "_") or k == f"provider.{name}"}
            missing -= set(prov["schemas"])
            for k in sorted(missing):  # the broken fixture's made-up types end up here too
                print(f"note: {k} is used (terraform/ or deploy/fixtures/) but {spec} has no such type",
                      file=sys.stderr)
            result["providers"][name] = prov
    OUT.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    n = sum(len(p["schemas"]) for p in result["providers"].values())
    print(f"wrote {OUT.relative_to(ROOT)}: {n} schemas, "
          + ", ".join(f"{k} {v['version']}" for k, v in result["providers"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
