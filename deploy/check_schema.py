#!/usr/bin/env python3
"""Check Terraform files against the provider schemas in deploy/schemas/*.json.

Each schema file is one set of provider versions (today one: google 7.41 with random and
time; google 6.x left when terraform/ started using iap_enabled): the configuration must be
valid against every set, so that every argument used exists in every version set checked. For every .tf file in
the folder (default: terraform/) and every set:
  - each resource, data-source and ephemeral-resource type exists in the google/random/time provider;
  - each argument and nested block (recursively, `dynamic` blocks included) exists, an
    argument is written as an argument and a block as a block;
  - required arguments and blocks are present (at every level);
  - every reference TYPE.NAME.ATTR / data.TYPE.NAME.ATTR / ephemeral.TYPE.NAME.ATTR names a declared block and an
    attribute that type has; every var.X and local.X is declared;
  - the provider arguments exist, and versions.tf's constraints admit the schema's versions.

Usage: check_schema.py [FOLDER]   exit 1 and one line per problem when any is found.
       check_schema.py --expect-fail deploy/fixtures/bad   negative self-test
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tfparse import BLOCK_MARK, Config, is_block_list, load_dir, unquote, walk_strings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"

META_ARGS = {"count", "for_each", "depends_on", "provider"}
META_BLOCKS = {"lifecycle", "provisioner", "connection"}
REF = re.compile(r"(?<![\w.\"/])(data\.|ephemeral\.)?((?:google|random|time)_\w+)\.(\w+)(?:\[[^\]]*\])?(?:\.(\w+))?")


def load_schemas() -> dict[str, dict]:
    """set name -> schema, one per deploy/schemas/*.json."""
    files = sorted(SCHEMA_DIR.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no schema files in {SCHEMA_DIR}: run deploy/extract-schema.py")
    return {f.stem: json.loads(f.read_text()) for f in files}


def versions_of(schema: dict) -> str:
    return ", ".join(f"{k} {v['version']}" for k, v in schema["providers"].items())


def provider_of(tf_type: str) -> str:
    return tf_type.split("_", 1)[0]


def check_body(body: dict, node: dict, where: str, errors: list[str], top: bool) -> None:
    args, blks = node["args"], node["blocks"]
    for key, value in body.items():
        if key == BLOCK_MARK:
            continue
        if top and key in META_ARGS:
            continue
        if top and key in META_BLOCKS:
            continue
        if key == "dynamic":
            for dyn in value:
                for label, dbody in dyn.items():
                    if label == BLOCK_MARK:
                        continue
                    name = unquote(label)
                    if name not in blks:
                        errors.append(f"{where}: dynamic \"{name}\": no such block")
                        continue
                    content = dbody.get("content")
                    sub = blks[name]["schema"]
                    if content and sub is not None:
                        for c in content:
                            check_body(c, sub, f"{where}.{name}", errors, False)
            continue
        if is_block_list(value):
            if key in blks:
                sub = blks[key]["schema"]
                if sub is not None:
                    for i, b in enumerate(value):
                        check_body(b, sub, f"{where}.{key}" + (f"[{i}]" if len(value) > 1 else ""), errors, False)
            elif key in args:
                errors.append(f"{where}: {key} is an argument: write `{key} = ...`, not a block")
            else:
                errors.append(f"{where}: no block named {key}")
        else:
            if key in args:
                continue
            if key in blks:
                errors.append(f"{where}: {key} is a block: write `{key} {{ ... }}`, not `{key} = ...`")
            else:
                errors.append(f"{where}: no argument named {key}")
    present = set(body) | {unquote(k) for d in body.get("dynamic", []) for k in d if k != BLOCK_MARK}
    for name, spec in sorted(args.items()):
        if spec["required"] and name not in present:
            errors.append(f"{where}: required argument {name} is missing")
    for name, spec in sorted(blks.items()):
        if spec["required"] and name not in present:
            errors.append(f"{where}: required block {name} is missing")


def parse_version(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


def admits(constraint: str, version: str) -> bool:
    v = parse_version(version)
    for part in constraint.split(","):
        m = re.match(r"\s*(~>|>=|<=|!=|=|>|<)?\s*([0-9.]+)\s*$", part)
        if not m:
            raise ValueError(f"cannot read version constraint {constraint!r}")
        op, want = m.group(1) or "=", m.group(2)
        w = parse_version(want)
        wp = w + (0,) * (3 - len(w))
        vp = v + (0,) * (3 - len(v))
        if op == "~>":
            n = len(w)
            upper = list(w[: max(n - 1, 1)])
            upper[-1] += 1
            if not (vp >= wp and vp[: len(upper)] < tuple(upper)):
                return False
        elif op == ">=" and not vp >= wp:
            return False
        elif op == ">" and not vp > wp:
            return False
        elif op == "<=" and not vp <= wp:
            return False
        elif op == "<" and not vp < wp:
            return False
        elif op == "=" and not vp == wp:
            return False
        elif op == "!=" and vp == wp:
            return False
    return True


def check_versions(cfg: Config, schema: dict, errors: list[str]) -> None:
    found: dict[str, str] = {}
    for t in cfg.terraform:
        for rp in t.get("required_providers", []):
            for name, spec in rp.items():
                if name == BLOCK_MARK or not isinstance(spec, dict):
                    continue
                found[name] = unquote(spec.get("version", '""'))
                src = unquote(spec.get("source", '""'))
                want_src = schema["providers"].get(name, {}).get("source")
                if want_src and src != want_src:
                    errors.append(f"versions: provider {name} source {src!r}, schema is for {want_src!r}")
    for name, prov in schema["providers"].items():
        used = any(provider_of(r.type) == name for r in cfg.resources + cfg.data + cfg.ephemeral)
        if not used:
            continue
        if name not in found or not found[name]:
            errors.append(f"versions: provider {name} is used but has no version constraint in required_providers")
        elif not admits(found[name], prov["version"]):
            errors.append(
                f"versions: constraint {name} {found[name]!r} does not admit {prov['version']}, the version "
                f"deploy/schemas/{schema.get('set', '?')}.json was extracted from (update both together)")


def check_references(cfg: Config, schema: dict, errors: list[str]) -> None:
    declared = {("resource", r.type, r.name): r for r in cfg.resources}
    declared |= {("data", r.type, r.name): r for r in cfg.data}
    declared |= {("ephemeral", r.type, r.name): r for r in cfg.ephemeral}
    sources: list[tuple[str, object]] = []
    for r in cfg.resources + cfg.data + cfg.ephemeral:
        sources.append((r.address, r.body))
    for n, o in cfg.outputs.items():
        sources.append((f"output.{n}", o.body))
    for n, v in cfg.locals.items():
        sources.append((f"local.{n}", v))
    for n, ps in cfg.providers.items():
        for p in ps:
            sources.append((f"provider.{n}", p.body))
    for n, v in cfg.variables.items():
        sources.append((f"var.{n}", v.body))

    for where, body in sources:
        for path, s in walk_strings(body):
            if "${" not in s and not path.endswith("depends_on") and "depends_on[" not in path:
                continue
            code = s
            # string literals inside expressions ("roles/run.invoker") are not references
            code = re.sub(r'"(?:[^"\\$]|\\.|\$(?!\{))*"', '""', code) if "${" in s else s
            for m in REF.finditer(code):
                kind = m.group(1).rstrip(".") if m.group(1) else "resource"
                tf_type, name, attr = m.group(2), m.group(3), m.group(4)
                if (kind, tf_type, name) not in declared:
                    errors.append(f"{where}: reference to undeclared {m.group(1) or ''}{tf_type}.{name}")
                    continue
                sch = schema["providers"].get(provider_of(tf_type), {}).get("schemas", {}).get(f"{kind}.{tf_type}")
                if attr and sch and attr not in sch["attributes"]:
                    errors.append(f"{where}: {tf_type}.{name} has no attribute {attr}")
            for m in re.finditer(r"\bvar\.(\w+)", code):
                if m.group(1) not in cfg.variables:
                    errors.append(f"{where}: var.{m.group(1)} is not declared")
            for m in re.finditer(r"\blocal\.(\w+)", code):
                if m.group(1) not in cfg.locals:
                    errors.append(f"{where}: local.{m.group(1)} is not declared")


def check(folder: Path, schema: dict) -> list[str]:
    cfg = load_dir(folder)
    errors: list[str] = []
    for kind, fname in cfg.other:
        if kind not in ("module", "check", "moved", "import", "removed"):
            errors.append(f"{fname}: unknown top-level block {kind}")
    for r in cfg.resources + cfg.data + cfg.ephemeral:
        prov_name = provider_of(r.type)
        prov = schema["providers"].get(prov_name)
        where = f"{r.file}: {r.address}"
        if prov is None:
            errors.append(f"{where}: provider {prov_name!r} is not in deploy/schemas/{schema.get('set', '?')}.json")
            continue
        key = f"{r.kind}.{r.type}"
        sch = prov["schemas"].get(key)
        if sch is None:
            if r.type in prov["all_types"].get(r.kind, []):
                errors.append(f"{where}: {r.kind} type exists in {prov_name} {prov['version']} but its schema "
                              f"is not extracted: run python3 deploy/extract-schema.py")
            else:
                errors.append(f"{where}: no {r.kind} type {r.type} in {prov_name} {prov['version']}")
            continue
        check_body(r.body, sch, where, errors, top=True)
    for name, blocks_ in cfg.providers.items():
        sch = schema["providers"].get(name, {}).get("schemas", {}).get(f"provider.{name}")
        for p in blocks_:
            if sch is None:
                errors.append(f"{p.file}: provider {name}: no schema extracted")
            else:
                check_body(p.body, sch, f"{p.file}: provider.{name}", errors, top=True)
    check_versions(cfg, schema, errors)
    check_references(cfg, schema, errors)
    return errors


# What the negative fixture (deploy/fixtures/bad) must trigger: one pattern per kind of check.
EXPECTED_IN_BAD_FIXTURE = {
    "unknown resource type": r"no resource type google_cloud_run_v3_service",
    "unknown argument": r"no argument named cpu_idel",
    "block written as argument": r"scaling is a block",
    "required argument missing": r"required argument database_version is missing",
    "required block missing": r"required block replication is missing",
    "unknown attribute in a reference": r"has no attribute url",
    "undeclared variable": r"var\.undeclared is not declared",
    "provider version constraint": r"does not admit \d",
    "ephemeral type unknown": r"no ephemeral type random_passwd",
}
# ...and per set (none today: a pattern for one schema set only, e.g. an argument one major lacks).
EXPECTED_IN_SET: dict[str, dict[str, str]] = {}


def selftest(folder: Path) -> int:
    passed = failed = 0
    for set_name, schema in load_schemas().items():
        errors = check(folder, schema)
        for what, pattern in {**EXPECTED_IN_BAD_FIXTURE, **EXPECTED_IN_SET.get(set_name, {})}.items():
            hit = next((e for e in errors if re.search(pattern, e)), None)
            print(f"selftest: {'ok (fails as it must)' if hit else 'NOT DETECTED':22} schema {set_name}: {what}"
                  + (f"  ({hit})" if hit else ""))
            passed += hit is not None
            failed += hit is None
    print(f"selftest: {passed} passed, {failed} failed ({folder})")
    return 0 if failed == 0 else 1


def main(argv: list[str]) -> int:
    if len(argv) > 1 and argv[1] == "--expect-fail":
        return selftest(Path(argv[2]))
    folder = Path(argv[1]) if len(argv) > 1 else ROOT / "terraform"
    cfg = load_dir(folder)
    bad = 0
    for set_name, schema in load_schemas().items():
        errors = check(folder, schema)
        for e in errors:
            print(f"schema: {set_name}: {e}")
        if errors:
            print(f"schema: {len(errors)} problem(s) in {folder} against {versions_of(schema)}")
            bad += 1
        else:
            print(f"schema: {folder.name}/ OK: {len(cfg.resources)} resources, {len(cfg.data)} data sources, "
                  f"{len(cfg.ephemeral)} ephemeral resources checked against {versions_of(schema)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
