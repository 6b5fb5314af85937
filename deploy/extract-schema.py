#!/usr/bin/env python3
"""Regenerate deploy/schemas/*.json, the provider schemas, from the CDK bindings of the providers.

`terraform init` cannot reach its registry from CI, so the provider schemas that
deploy/check_schema.py checks terraform/ against are taken from the prebuilt provider
bindings of CDK for Terraform (@cdktf/provider-*, on npm, up to google 6.50) and of its
successor CDK Terrain (cdktn-provider-*, for google 7.x; the google and time packages are on
PyPI only, each wheel carrying the npm tarball as its jsii assembly). Both are generated from
the Terraform providers' own schemas. Each package's lib/<resource>/index.js holds, per
resource, data source, ephemeral resource and nested block, a function whose `attrs` object
lists every argument with `isBlock: true|false`; index.d.ts marks the optional ones with `?`
and links each to its snake_case name. This script reads both and writes, per schema set
(one file each, see SETS) and for the types that terraform/ uses:

    {"args": {name: {"required": bool}},
     "blocks": {name: {"required": bool, "schema": {...same shape...}}},
     "attributes": [every readable top-level attribute, computed ones included]}

plus the plain list of every type name each provider has, so the checker can
tell "no such type" from "type not extracted yet: rerun this script".

Usage:
    python3 deploy/extract-schema.py            # download the pinned packages into a temp dir
    python3 deploy/extract-schema.py --from DIR # DIR/<set>/<provider>/package holds them unpacked

Needs npm and pip (for the downloads) and python-hcl2 (to read terraform/), e.g. with the
virtualenv deploy/check.sh creates:
    ~/.cache/invoker-deploy-venv/bin/python deploy/extract-schema.py
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "deploy" / "schemas"

# Schema set -> provider -> package ("npm:NAME@VERSION" or "pypi:NAME==VERSION"). One JSON
# file per set; check_schema.py checks terraform/ against every set, and fails when
# terraform/versions.tf's constraints stop admitting a set's versions.
SETS = {
    # google 6.x (@cdktf/provider-google@16.12.1, google 6.50.0) was checked here until
    # terraform/ started using google_cloud_run_v2_service.iap_enabled, which 6.50 lacks:
    # versions.tf now admits google >= 7.41 only.
    "google-7": {
        "google": "pypi:cdktn-provider-google==19.10.0",  # hashicorp/google 7.41.0 (the last 7.x binding)
        "random": "npm:@cdktn/provider-random@15.0.1",  # hashicorp/random 3.9.1
        "time": "pypi:cdktn-provider-time==14.0.2",  # hashicorp/time 0.14.2
    },
}

ATTR_ENTRY = re.compile(
    r"(?P<name>\w+):\s*\{\s*value:\s*(?P<value>.*?),\s*isBlock:\s*(?P<block>true|false),"
    r"\s*type:\s*\"(?P<type>\w+)\",\s*storageClassType:\s*\"(?P<storage>\w+)\",\s*\}",
    re.S,
)
CHILD_FN = re.compile(r"(?<!cdktf\.)(?<!cdktn\.)(?<!\w)(\w+)ToHclTerraform\b")
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


KINDS = {"TerraformResource": "resource", "TerraformDataSource": "data",
         "TerraformEphemeralResource": "ephemeral", "TerraformProvider": "provider"}
CLASS = re.compile(r"^class (\w+) extends (?:cdktf|cdktn)\.(\w+) \{$", re.M)


def module_kind(js: str) -> tuple[str, str, str, str]:
    """(kind, type name, class name, class body) of lib/<name>/index.js.

    cdktf writes `Cls.tfResourceType = "x";` after the class, cdktn a static field in it."""
    for m in CLASS.finditer(js):
        if m.group(2) not in KINDS:
            continue
        cls = m.group(1)
        cls_text = body_after(js, m.start())
        t = re.search(r"^\s*static tfResourceType = \"(\w+)\";$", cls_text, re.M) or \
            re.search(rf"^{cls}\.tfResourceType = \"(\w+)\";$", js, re.M)
        if t:
            return KINDS[m.group(2)], t.group(1), cls, cls_text
    raise LookupError("no tfResourceType")


def module_schema(mod: Path) -> dict:
    """The schema of one lib/<name>/ folder (its structs may be split into index-structs/)."""
    js = strip_map((mod / "index.js").read_text())
    kind, tf_type, cls, cls_text = module_kind(js)
    structs: dict = {}
    interfaces: dict = {}
    for f in sorted(mod.rglob("*.js")):
        text = strip_map(f.read_text())
        for m in STRUCT_FN.finditer(text):
            structs[m.group(1)] = parse_attrs(body_after(text, m.start()))
    for f in sorted(mod.rglob("*.d.ts")):
        interfaces.update(parse_interfaces(f.read_text()))

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
    """resource/data/ephemeral/provider keys used by terraform/*.tf (and the test fixtures)."""
    sys.path.insert(0, str(ROOT / "deploy"))
    from tfparse import load_dir  # noqa: E402  (deploy/tfparse.py)

    keys: set[str] = set()
    for d in (ROOT / "terraform", *sorted((ROOT / "deploy" / "fixtures").glob("*/"))):
        cfg = load_dir(d)
        keys |= {f"resource.{r.type}" for r in cfg.resources}
        keys |= {f"data.{r.type}" for r in cfg.data}
        keys |= {f"ephemeral.{r.type}" for r in cfg.ephemeral}
        keys |= {f"provider.{p}" for p in cfg.providers}
    return keys


def fetch(spec: str, dest: Path) -> None:
    """Unpack the package's npm tarball into dest (dest/package/...)."""
    dest.mkdir(parents=True, exist_ok=True)
    kind, _, name = spec.partition(":")
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "npm":
            out = subprocess.run(["npm", "pack", "--silent", name], cwd=tmp, check=True,
                                 capture_output=True, text=True).stdout.strip().splitlines()[-1]
            data = (Path(tmp) / out).read_bytes()
        elif kind == "pypi":
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                            "--disable-pip-version-check", "-d", tmp, name], check=True)
            wheel = next(Path(tmp).glob("*.whl"))
            with zipfile.ZipFile(wheel) as z:
                member = next(n for n in z.namelist() if n.endswith(".jsii.tgz"))
                data = z.read(member)
        else:
            raise ValueError(f"unknown package kind in {spec!r}")
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(dest, filter="data")


def extract_set(set_name: str, packages: dict[str, str], src: Path, want: set[str]) -> dict:
    result: dict = {"generated_by": "deploy/extract-schema.py", "set": set_name, "providers": {}}
    for name, spec in packages.items():
        pkg = src / set_name / name / "package"
        meta = json.loads((pkg / "package.json").read_text())
        bound = (meta.get("cdktn") or meta["cdktf"])["provider"]
        prov = {
            "package": spec,
            "source": bound["name"].removeprefix("registry.terraform.io/"),
            "version": bound["version"],
            "all_types": {"resource": [], "data": [], "ephemeral": []},
            "schemas": {},
        }
        for mod in sorted((pkg / "lib").iterdir()):
            js, dts = mod / "index.js", mod / "index.d.ts"
            if not js.is_file() or not dts.is_file():
                continue
            text = strip_map(js.read_text())
            if "tfResourceType = " not in text:
                continue
            kind, tf_type, *_ = module_kind(text)
            key = f"{kind}.{tf_type}" if kind != "provider" else f"provider.{name}"
            if kind != "provider":
                prov["all_types"][kind].append(tf_type)
            if key in want:
                prov["schemas"][key] = module_schema(mod)
        for k in prov["all_types"]:
            prov["all_types"][k].sort()
        missing = {k for k in want if k.split(".")[1].startswith(name + "_") or k == f"provider.{name}"}
        missing -= set(prov["schemas"])
        for k in sorted(missing):  # the broken fixture's made-up types end up here too
            print(f"note: {set_name}: {k} is used (terraform/ or deploy/fixtures/) but {spec} has no such type",
                  file=sys.stderr)
        result["providers"][name] = prov
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="src", type=Path, help="folder with <set>/<provider>/package unpacked")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        src = args.src
        if src is None:
            src = Path(tmp)
            for set_name, packages in SETS.items():
                for name, spec in packages.items():
                    fetch(spec, src / set_name / name)
        want = used_types()
        OUT_DIR.mkdir(exist_ok=True)
        for set_name, packages in SETS.items():
            result = extract_set(set_name, packages, src, want)
            out = OUT_DIR / f"{set_name}.json"
            out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
            n = sum(len(p["schemas"]) for p in result["providers"].values())
            print(f"wrote {out.relative_to(ROOT)}: {n} schemas, "
                  + ", ".join(f"{k} {v['version']}" for k, v in result["providers"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
