#!/usr/bin/env python3
"""Security and wiring invariants of terraform/, as tests.

Structural checks parse the HCL (python-hcl2); semantic checks evaluate variables.tf and
locals.tf with `terraform console` (offline: those two files need no provider) for several
settings and feed the validation blocks good and bad values.

Usage:
  check_invariants.py [FOLDER]            every check must pass (default: terraform/)
  check_invariants.py --expect-fail DIR   negative self-test: every check must FAIL on DIR
                                          (deploy/fixtures/bad), proving each can fail
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tfparse import (  # noqa: E402
    Block,
    Config,
    blocks,
    literal,
    load_dir,
    never_closes_unopened,
    resolve_locals,
    text,
    walk_strings,
)

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = ("allUsers", "allAuthenticatedUsers")
OPT_IN = "var.allow_unauthenticated_caller"
GCLOUD_CLIENT_ID = "32555940559.apps.googleusercontent.com"

CHECKS: list[tuple[str, str, Callable[[Config], list[str]]]] = []


def check(name: str, what: str):
    def deco(fn):
        CHECKS.append((name, what, fn))
        return fn
    return deco


# ---- helpers ---------------------------------------------------------------------------

def service(cfg: Config, name: str) -> Block | None:
    for r in cfg.resources_of("google_cloud_run_v2_service"):
        if r.name == name:
            return r
    return None


def containers(svc: Block) -> list[dict]:
    out = []
    for t in blocks(svc.body, "template"):
        out += blocks(t, "containers")
    return out


def envs(svc: Block) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for c in containers(svc):
        for e in blocks(c, "env"):
            out[str(literal(e.get("name")))] = e
    return out


def env_text(cfg: Config, svc: Block | None, name: str) -> str | None:
    """The env var's value as expression text with locals resolved (None if absent)."""
    if svc is None:
        return None
    e = envs(svc).get(name)
    if e is None or "value" not in e:
        return None
    return resolved(cfg, e["value"])


def resolved(cfg: Config, value) -> str:
    return norm_parens(resolve_locals(text(value), cfg.locals))


def norm_parens(s: str) -> str:
    """Drop whitespace and parentheses that wrap a whole (sub)expression of one operand."""
    s = re.sub(r"\s+", "", s)
    prev = None
    while prev != s:
        prev = s
        s = re.sub(r"\(([\w.\"\[\]]+)\)", r"\1", s)  # (var.x) -> var.x
        if s.startswith("(") and s.endswith(")") and balanced(s[1:-1]):
            s = s[1:-1]
    return s


def balanced(s: str) -> bool:
    return never_closes_unopened(s, "(", ")") and s.count("(") == s.count(")")


def attr(body: dict, *path: str):
    """body.a[0].b[0].c ... for nested blocks, the last element an argument."""
    cur = body
    for p in path[:-1]:
        bl = blocks(cur, p)
        if not bl:
            return None
        cur = bl[0]
    return cur.get(path[-1])


def sa_of(svc: Block) -> str | None:
    v = attr(svc.body, "template", "service_account")
    if v is None:
        return None
    m = re.fullmatch(r"google_service_account\.(\w+)\.email", text(v))
    return m.group(1) if m else text(v)


def member_sa(value) -> str | None:
    """google_service_account NAME when the member is that account, else None."""
    t = text(value)
    m = re.fullmatch(r"google_service_account\.(\w+)\.member", t) or re.fullmatch(
        r'"serviceAccount:\$\{google_service_account\.(\w+)\.email\}"', t)
    return m.group(1) if m else None


def iam_resources(cfg: Config, target: str) -> list[Block]:
    """IAM resources whose service/name refers to google_cloud_run_v2_service.TARGET."""
    out = []
    for r in cfg.resources:
        if not re.fullmatch(r"google_cloud_run(_v2)?_service_iam_(member|binding|policy)", r.type):
            continue
        ref = text(r.body.get("name", r.body.get("service", "")))
        if re.search(rf"google_cloud_run(_v2)?_service\.{target}\.", ref):
            out.append(r)
    return out


def is_iap_agent_grant(cfg: Config, r: Block) -> bool:
    """run.invoker for IAP's service agent, created only when var.iap_enabled."""
    count = norm_parens(text(r.body.get("count", "")))
    # the local inlined into the string: "serviceAccount:${("service-${N}@...")}" -> plain text
    member = resolved(cfg, r.body.get("member", "")).replace('${("', "").replace('")}', "")
    return (count == "var.iap_enabled?1:0" and literal(r.body.get("role")) == "roles/run.invoker"
            and re.search(r"^\"serviceAccount:service-\$\{[^}]+\}@gcp-sa-iap\.iam\.gserviceaccount\.com\"$", member) is not None)


# ---- structural checks -----------------------------------------------------------------

@check("no-public-members",
       "no allUsers/allAuthenticatedUsers member anywhere; a public caller is its invoker check turned off "
       "(var.allow_unauthenticated_caller, default false)")
def public_access(cfg: Config) -> list[str]:
    errs = []
    v = cfg.variables.get("allow_unauthenticated_caller")
    if v is None:
        errs.append("variable allow_unauthenticated_caller is missing")
    elif v.body.get("default") is not False:
        errs.append(f"variable allow_unauthenticated_caller must default to false, is {v.body.get('default')!r}")
    places: list[tuple[str, object]] = []
    places += [(r.address, r.body) for r in cfg.resources + cfg.data]
    places += [(f"local.{k}", x) for k, x in cfg.locals.items()]
    places += [(f"output.{k}", o.body) for k, o in cfg.outputs.items()]
    places += [(f"var.{k}.default", b.body.get("default")) for k, b in cfg.variables.items()]
    for where, body in places:
        for path, s in walk_strings(body):
            if any(p in s for p in PUBLIC):
                errs.append(f"{where}{path}: {s}: use invoker_iam_disabled (Google's recommended way), not a public member")
    return errs


@check("caller-private-by-default",
       "the caller keeps the IAM invoker check unless var.allow_unauthenticated_caller, is invoked by "
       "var.caller_invokers, runs AUTH_MODE=platform unless opened, then verify")
def caller_private(cfg: Config) -> list[str]:
    errs = []
    svc = service(cfg, "caller")
    if svc is None:
        return ["google_cloud_run_v2_service.caller is missing"]
    dis = resolved(cfg, svc.body.get("invoker_iam_disabled", False))
    if dis != OPT_IN:
        errs.append(f"caller invoker_iam_disabled resolves to {dis!r}: want {OPT_IN} (IAM check on unless opened)")
    mode = env_text(cfg, svc, "AUTH_MODE")
    want = f'{OPT_IN}?"verify":"platform"'
    if mode != want:
        errs.append(f"caller AUTH_MODE resolves to {mode!r}, want {want!r} (platform behind IAM, verify when public)")
    grants = iam_resources(cfg, "caller")
    if not grants:
        errs.append("no run.invoker grant on the caller for var.caller_invokers")
    for r in grants:
        fe, member = text(r.body.get("for_each", "")), text(r.body.get("member", ""))
        if is_iap_agent_grant(cfg, r):
            continue  # IAP's service agent, only with var.iap_enabled (check_monitoring.py: iap-*)
        if "var.caller_invokers" not in fe or member != "each.value":
            errs.append(f"{r.address}: ungated caller grant must be for_each = var.caller_invokers, member = each.value "
                        f"(has for_each={fe!r}, member={member!r})")
    return errs


@check("called-invoker-only-caller",
       "exactly one IAM grant on called: roles/run.invoker to the caller's service account; no project-wide invoker role")
def called_invoker(cfg: Config) -> list[str]:
    errs = []
    grants = iam_resources(cfg, "called")
    if len(grants) != 1:
        errs.append(f"want exactly 1 IAM resource on called, found {len(grants)}: {[g.address for g in grants]}")
    for g in grants:
        if not g.type.endswith("_iam_member"):
            errs.append(f"{g.address}: use an _iam_member (bindings/policies can add or drop others)")
        if literal(g.body.get("role")) != "roles/run.invoker":
            errs.append(f"{g.address}: role {text(g.body.get('role'))}, want roles/run.invoker")
        if member_sa(g.body.get("member")) != "caller":
            errs.append(f"{g.address}: member {text(g.body.get('member'))} is not the caller's service account")
        if "count" in g.body or "for_each" in g.body:
            errs.append(f"{g.address}: must not be repeated with count/for_each")
    for r in cfg.resources:
        if r.type.startswith("google_project_iam_") or r.type.startswith("google_cloud_run_v2_service_iam"):
            roles = text(r.body.get("role", "")) + text(r.body.get("for_each", ""))
            if r.type.startswith("google_project_iam_") and re.search(r"roles/(run\.invoker|run\.admin|owner|editor)\b", roles):
                errs.append(f"{r.address}: project-wide {roles} would let other principals invoke called")
    return errs


@check("own-service-accounts",
       "each service runs as its own service account; only called's may read the DB secret and use Cloud SQL")
def own_accounts(cfg: Config) -> list[str]:
    errs = []
    seen: dict[str, str] = {}
    for svc in cfg.resources_of("google_cloud_run_v2_service"):
        sa = sa_of(svc)
        if sa is None:
            errs.append(f"{svc.address}: template.service_account is not set (it would run as the Compute default account)")
            continue
        if not re.fullmatch(r"\w+", sa) or ("resource", sa) and not any(
                r.type == "google_service_account" and r.name == sa for r in cfg.resources):
            errs.append(f"{svc.address}: service_account {sa} is not a google_service_account of this configuration")
        if sa in seen:
            errs.append(f"{svc.address} and {seen[sa]} share the service account {sa}")
        seen[sa] = svc.address
    called = service(cfg, "called")
    called_sa = sa_of(called) if called else None
    for r in cfg.resources:
        role = text(r.body.get("role", "")) + " " + text(r.body.get("for_each", ""))
        if re.search(r"roles/(secretmanager\.secretAccessor|cloudsql\.(client|admin|editor))", role):
            who = member_sa(r.body.get("member"))
            if who is None or who != called_sa:
                errs.append(f"{r.address}: {role.strip()} granted to {text(r.body.get('member'))}, only called's account may have it")
    if called_sa is None:
        errs.append("called service account unknown")
    return errs


@check("called-auth-mode-matches-iam",
       "called's AUTH_MODE is (its invoker_iam_disabled expression) ? \"verify\" : \"platform\"")
def called_auth_mode(cfg: Config) -> list[str]:
    svc = service(cfg, "called")
    if svc is None:
        return ["google_cloud_run_v2_service.called is missing"]
    iam = resolved(cfg, svc.body.get("invoker_iam_disabled", False))
    mode = env_text(cfg, svc, "AUTH_MODE")
    want = f'{iam}?"verify":"platform"'
    if iam in ("true", "false"):
        want = '"verify"' if iam == "true" else '"platform"'
        if mode in (want, want.strip('"')):
            return []
    if mode != want:
        return [f"called AUTH_MODE resolves to {mode!r} but invoker_iam_disabled is {iam!r}: want {want!r}"]
    if "var." not in iam:
        return [f"called invoker_iam_disabled {iam!r} should come from a variable"]
    return []


@check("no-plain-secrets",
       "secrets reach containers only through value_source.secret_key_ref; no password in env values, outputs, "
       "plans or state (ephemeral random_password into password_wo / secret_data_wo)")
def no_plain_secrets(cfg: Config) -> list[str]:
    errs = []
    secretish = re.compile(r"(DATABASE_URL|PASSWORD|SECRET|TOKEN$|PRIVATE_KEY|CREDENTIALS)")
    leaky = re.compile(r"random_password\.|\.secret_data(_wo)?\b|google_sql_user\.\w+\.password|data\.google_secret_manager_secret_version")
    for svc in cfg.resources_of("google_cloud_run_v2_service"):
        for name, e in envs(svc).items():
            if "value" in e:
                t = resolved(cfg, e["value"])
                if secretish.search(name):
                    errs.append(f"{svc.address}: env {name} has a plain value; use value_source.secret_key_ref")
                if leaky.search(t):
                    errs.append(f"{svc.address}: env {name} value {t} carries a secret")
            elif not attr(e, "value_source", "secret_key_ref", "secret"):
                errs.append(f"{svc.address}: env {name} has neither value nor value_source.secret_key_ref")
    called = service(cfg, "called")
    if called is not None:
        db = envs(called).get("DATABASE_URL")
        if db is None or not attr(db, "value_source", "secret_key_ref", "secret"):
            errs.append("called: DATABASE_URL must come from value_source.secret_key_ref")
    for u in cfg.resources_of("google_sql_user"):
        if "password" in u.body:
            errs.append(f"{u.address}: password is stored in the state and shown to plans: use password_wo")
        elif "ephemeral.random_password." not in text(u.body.get("password_wo")):
            errs.append(f"{u.address}: password_wo should be an ephemeral random_password")
    for sv in cfg.resources_of("google_secret_manager_secret_version"):
        if "secret_data" in sv.body:
            errs.append(f"{sv.address}: secret_data is stored in the state: use the write-only secret_data_wo")
    for r in cfg.resources:
        if r.type == "random_password":
            errs.append(f"{r.address}: a random_password resource keeps the password in the state: use ephemeral")
    for n, o in cfg.outputs.items():
        t = resolve_locals(text(o.body.get("value")), cfg.locals)
        if leaky.search(t) and o.body.get("sensitive") is not True:
            errs.append(f"output.{n} exposes a secret without sensitive = true")
    return errs


@check("deletion-protection-variable",
       "Cloud Run services and the Cloud SQL instance take deletion_protection from var.deletion_protection")
def deletion_protection(cfg: Config) -> list[str]:
    errs = []
    v = cfg.variables.get("deletion_protection")
    if v is None or text(v.body.get("type")) != "bool":
        errs.append("variable deletion_protection (bool) is missing")
    targets = cfg.resources_of("google_cloud_run_v2_service") + cfg.resources_of("google_sql_database_instance")
    if not targets:
        errs.append("no services or database instance found")
    for r in targets:
        if text(r.body.get("deletion_protection")) != "var.deletion_protection":
            errs.append(f"{r.address}: deletion_protection = {text(r.body.get('deletion_protection'))}, "
                        f"want var.deletion_protection")
    for r in cfg.resources_of("google_sql_database_instance"):
        if text(attr(r.body, "settings", "deletion_protection_enabled")) != "var.deletion_protection":
            errs.append(f"{r.address}: settings.deletion_protection_enabled should be var.deletion_protection")
    return errs


@check("variables-documented",
       "every variable has a description and a type; every non-bool variable has a validation block")
def variables_documented(cfg: Config) -> list[str]:
    errs = []
    for n, v in cfg.variables.items():
        desc = literal(v.body.get("description"))
        if not desc or len(desc) < 20:
            errs.append(f"var.{n}: description missing or too short")
        t = text(v.body.get("type"))
        if t == "None":
            errs.append(f"var.{n}: no type")
        elif t != "bool" and not blocks(v.body, "validation"):
            errs.append(f"var.{n}: no validation block")
    return errs


@check("cloudsql-wiring",
       "called mounts the Cloud SQL instance at /cloudsql, its DATABASE_URL uses that socket; caller has no DB access")
def cloudsql(cfg: Config) -> list[str]:
    errs = []
    called = service(cfg, "called")
    if called is None:
        return ["called service missing"]
    vols = {}
    for t in blocks(called.body, "template"):
        for v in blocks(t, "volumes"):
            inst = attr(v, "cloud_sql_instance", "instances")
            if inst is not None:
                vols[literal(v.get("name"))] = text(inst)
    if not vols or not all(re.search(r"google_sql_database_instance\.\w+\.connection_name", x) for x in vols.values()):
        errs.append(f"called: no cloud_sql_instance volume with the instance's connection_name ({vols})")
    mounts = {literal(m.get("name")): literal(m.get("mount_path")) for c in containers(called) for m in blocks(c, "volume_mounts")}
    if not any(mounts.get(n) == "/cloudsql" for n in vols):
        errs.append(f"called: the Cloud SQL volume must be mounted at /cloudsql (mounts: {mounts})")
    for sv in cfg.resources_of("google_secret_manager_secret_version"):
        data = text(sv.body.get("secret_data_wo"))
        if "host=/cloudsql/${google_sql_database_instance." not in data or "ephemeral.random_password." not in data:
            errs.append(f"{sv.address}: secret_data_wo should be postgres://USER:${{ephemeral.random_password...}}@localhost/DB?host=/cloudsql/${{...connection_name}}")
    pool = envs(called).get("DATABASE_MAX_CONNECTIONS", {}).get("value")
    if text(pool) != "tostring(local.db_connections_per_instance)":
        errs.append(f"called DATABASE_MAX_CONNECTIONS is {text(pool)!r}, want tostring(local.db_connections_per_instance) "
                    "(the tier's connections shared by max_instances)")
    caller = service(cfg, "caller")
    if caller is not None:
        for t in blocks(caller.body, "template"):
            if any(attr(v, "cloud_sql_instance", "instances") is not None for v in blocks(t, "volumes")):
                errs.append("caller must not mount Cloud SQL")
    return errs


@check("probes-and-port",
       "each container listens on 8080 and has startup and liveness probes on /health/*; called starts on /health/ready")
def probes(cfg: Config) -> list[str]:
    errs = []
    svcs = cfg.resources_of("google_cloud_run_v2_service")
    if not svcs:
        return ["no services"]
    for svc in svcs:
        for c in containers(svc):
            for p in blocks(c, "ports"):
                if p.get("container_port") != 8080:
                    errs.append(f"{svc.address}: container_port {p.get('container_port')}, the image listens on 8080")
            for probe in ("startup_probe", "liveness_probe"):
                path = literal(attr(c, probe, "http_get", "path") or "")
                if not path or not path.startswith("/health/"):
                    errs.append(f"{svc.address}: {probe} must be an http_get on /health/... (has {path!r})")
            if svc.name == "called" and literal(attr(c, "startup_probe", "http_get", "path") or "") != "/health/ready":
                errs.append("called: startup_probe should be /health/ready (store reachable)")
            for name in envs(svc):
                if name == "PORT" or name.startswith("K_"):
                    errs.append(f"{svc.address}: env {name} is reserved: Cloud Run sets it")
    return errs


@check("audiences-and-principals-consistent",
       "caller asks for the audience called accepts (also a custom audience of called), called allows exactly "
       "the caller's account, caller uses the metadata server and called's uri")
def audiences(cfg: Config) -> list[str]:
    errs = []
    called, caller = service(cfg, "called"), service(cfg, "caller")
    if called is None or caller is None:
        return ["caller or called service missing"]
    accepts = env_text(cfg, called, "AUTH_AUDIENCES")
    asks = env_text(cfg, caller, "CALLED_AUDIENCE")
    if not accepts or accepts != asks:
        errs.append(f"called AUTH_AUDIENCES {accepts!r} != caller CALLED_AUDIENCE {asks!r}")
    custom = resolved(cfg, called.body.get("custom_audiences", []))
    if accepts and accepts not in custom:
        errs.append(f"called custom_audiences {custom!r} should contain its AUTH_AUDIENCES {accepts!r}")
    if env_text(cfg, called, "AUTH_ALLOWED_PRINCIPALS") != "google_service_account.caller.email":
        errs.append(f"called AUTH_ALLOWED_PRINCIPALS is {env_text(cfg, called, 'AUTH_ALLOWED_PRINCIPALS')!r}, "
                    "want google_service_account.caller.email")
    if env_text(cfg, caller, "TOKEN_SOURCE") != '"metadata"':
        errs.append(f"caller TOKEN_SOURCE is {env_text(cfg, caller, 'TOKEN_SOURCE')!r}, want \"metadata\"")
    if env_text(cfg, caller, "CALLED_URL") != "google_cloud_run_v2_service.called.uri":
        errs.append(f"caller CALLED_URL is {env_text(cfg, caller, 'CALLED_URL')!r}")
    allowed = env_text(cfg, caller, "AUTH_ALLOWED_PRINCIPALS") or ""
    if "var.caller_invokers" not in allowed:
        errs.append("caller AUTH_ALLOWED_PRINCIPALS must be derived from var.caller_invokers")
    for svc in (called, caller):
        if "GOOGLE_CLOUD_PROJECT" not in envs(svc):
            errs.append(f"{svc.address}: GOOGLE_CLOUD_PROJECT (trace ids in logs) is not set")
    return errs


def caller_env_raw(svc: Block, name: str):
    return envs(svc).get(name, {}).get("value")


def references(v) -> set[tuple[str, str]]:
    """(type, name) of every resource/data block a body refers to, depends_on included."""
    out = set()
    for _, s in walk_strings(v):
        for m in re.finditer(r"(?<![\w.])(data\.)?((?:google|random|time)_\w+)\.(\w+)", s):
            out.add(((m.group(1) or "") + m.group(2), m.group(3)))
    return out


@check("apis-enabled-before-use",
       "a time_sleep waits after google_project_service (logging and storage included), and every other google "
       "resource and data source depends on that wait, directly or through another")
def apis_wait(cfg: Config) -> list[str]:
    errs = []
    apis = cfg.resources_of("google_project_service")
    if not apis:
        return ["no google_project_service"]
    listed = " ".join(text(v) for v in cfg.locals.values()) + " ".join(text(a.body.get("for_each")) for a in apis)
    for api in ("logging.googleapis.com", "storage.googleapis.com", "run.googleapis.com", "sqladmin.googleapis.com"):
        if api not in listed:
            errs.append(f"{api} is not enabled explicitly")
    waits = [r for r in cfg.resources_of("time_sleep")
             if any(t == "google_project_service" for t, _ in references(r.body.get("depends_on", [])))]
    if not waits:
        return errs + ["no time_sleep with depends_on = [google_project_service...]: the first resources race enablement"]
    for w in waits:
        if not re.fullmatch(r'"\d+s"', text(w.body.get("create_duration", ""))) or int(text(w.body["create_duration"])[1:-2]) < 60:
            errs.append(f"{w.address}: create_duration {text(w.body.get('create_duration'))}, want at least 60s")
    wait_keys = {("time_sleep", w.name) for w in waits}
    blocks_by_key = {(r.type, r.name): r for r in cfg.resources}
    blocks_by_key |= {("data." + r.type, r.name): r for r in cfg.data}
    # locals used in a body count as references too
    def deps(body) -> set[tuple[str, str]]:
        return references(resolve_locals(text(body), cfg.locals))
    memo: dict = {}

    def waits_for(key, seen=()) -> bool:
        if key in wait_keys:
            return True
        if key in memo or key in seen:
            return memo.get(key, False)
        blk = blocks_by_key.get(key)
        ok = blk is not None and any(waits_for(d, seen + (key,)) for d in deps(blk.body))
        memo[key] = ok
        return ok

    for key, blk in blocks_by_key.items():
        t = key[0].removeprefix("data.")
        if not t.startswith("google_") or t == "google_project_service":
            continue
        if not waits_for(key):
            errs.append(f"{blk.address} does not depend on the API wait ({', '.join(sorted(n for _, n in wait_keys))})")
    return errs


@check("forwarded-identity-follows-caller-iam",
       "called trusts exactly the caller's account to forward end users (AUTH_FORWARDERS), for the caller's own "
       "audiences, and AUTH_FORWARDED_MODE is the caller's AUTH_MODE (one local); nothing sets AUTH_PLATFORM_TRUSTED")
def forwarded(cfg: Config) -> list[str]:
    errs = []
    called, caller = service(cfg, "called"), service(cfg, "caller")
    if called is None or caller is None:
        return ["caller or called service missing"]
    fm, cm = env_text(cfg, called, "AUTH_FORWARDED_MODE"), env_text(cfg, caller, "AUTH_MODE")
    iam = resolved(cfg, caller.body.get("invoker_iam_disabled", False))
    want = f'{iam}?"verify":"platform"'
    if fm != cm or fm != want:
        errs.append(f"called AUTH_FORWARDED_MODE resolves to {fm!r}, caller AUTH_MODE to {cm!r}; both must be {want!r} "
                    "(the caller's invoker_iam_disabled)")
    if env_text(cfg, called, "AUTH_FORWARDERS") != "google_service_account.caller.email":
        errs.append(f"called AUTH_FORWARDERS is {env_text(cfg, called, 'AUTH_FORWARDERS')!r}, want google_service_account.caller.email")
    fa, ca = env_text(cfg, called, "AUTH_FORWARDED_AUDIENCES"), env_text(cfg, caller, "AUTH_AUDIENCES")
    # With IAP on the caller, called also accepts IAP's audience of the caller: exactly the
    # list the caller's AUTH_IAP_AUDIENCES is made of (empty unless var.iap_enabled).
    iap_env = envs(caller).get("AUTH_IAP_AUDIENCES", {}).get("value")
    m = re.fullmatch(r"join\(\",\",(.+)\)", text(iap_env)) if iap_env is not None else None
    with_iap = None
    if m:
        with_iap = resolved(cfg, "${join(\",\", concat([" + text(caller_env_raw(caller, "AUTH_AUDIENCES")) + "], " + m.group(1) + "))}")
    if not fa or (fa != ca and fa != with_iap):
        errs.append(f"called AUTH_FORWARDED_AUDIENCES {fa!r} != caller AUTH_AUDIENCES {ca!r}"
                    + (f" (plus the caller's AUTH_IAP_AUDIENCES list: {with_iap!r})" if with_iap else ""))
    raw = envs(called).get("AUTH_FORWARDED_MODE", {}).get("value")
    raw_caller = envs(caller).get("AUTH_MODE", {}).get("value")
    if raw is not None and (text(raw) != text(raw_caller) or not text(raw).startswith("local.")):
        errs.append(f"called AUTH_FORWARDED_MODE ({text(raw)}) and caller AUTH_MODE ({text(raw_caller)}) must be the same local")
    for svc in (called, caller):
        if "AUTH_PLATFORM_TRUSTED" in envs(svc):
            errs.append(f"{svc.address}: AUTH_PLATFORM_TRUSTED must not be set (Cloud Run sets K_SERVICE)")
    return errs


@check("database-least-privilege",
       "Cloud SQL takes encrypted connections only; cloudsql.client is conditioned on the one instance; the build "
       "account reads only its source bucket")
def db_least_privilege(cfg: Config) -> list[str]:
    errs = []
    insts = cfg.resources_of("google_sql_database_instance")
    if not insts:
        errs.append("no Cloud SQL instance")
    for i in insts:
        if literal(attr(i.body, "settings", "ip_configuration", "ssl_mode")) != "ENCRYPTED_ONLY":
            errs.append(f"{i.address}: settings.ip_configuration.ssl_mode must be ENCRYPTED_ONLY")
    clients = [r for r in cfg.resources if "roles/cloudsql.client" in text(r.body.get("role", ""))]
    if not clients:
        errs.append("no roles/cloudsql.client grant")
    for r in clients:
        cond = blocks(r.body, "condition")
        expr_ = text(cond[0].get("expression")) if cond else ""
        if not re.search(r"resource\.name == 'projects/\$\{var\.project_id\}/instances/\$\{google_sql_database_instance\.\w+\.name\}'", expr_) \
                or "sqladmin.googleapis.com/Instance" not in expr_:
            errs.append(f"{r.address}: needs condition {{ expression = \"resource.name == 'projects/${{var.project_id}}/instances/"
                        f"${{google_sql_database_instance.X.name}}' && resource.type == 'sqladmin.googleapis.com/Instance'\" }}")
    for r in cfg.resources_of("google_project_iam_member"):
        roles = text(r.body.get("role", "")) + text(r.body.get("for_each", ""))
        if re.search(r"roles/storage\.", roles):
            errs.append(f"{r.address}: project-wide {roles}: grant storage roles on the build's source bucket only")
    if not any(member_sa(r.body.get("member")) == "build" and "roles/storage.objectViewer" in text(r.body.get("role"))
               for r in cfg.resources_of("google_storage_bucket_iam_member")):
        errs.append("the build account needs roles/storage.objectViewer on its source bucket (google_storage_bucket_iam_member)")
    return errs


@check("images-by-digest",
       "each service runs its image by digest (the repository's tag resolved by a data source), and the repository "
       "has a cleanup policy that keeps the most recent versions")
def images(cfg: Config) -> list[str]:
    errs = []
    for name in ("caller", "called"):
        svc = service(cfg, name)
        if svc is None:
            errs.append(f"{name} service missing")
            continue
        imgs = [resolved(cfg, c.get("image")) for c in containers(svc)]
        want = f"coalesce(var.{name}_image,data.google_artifact_registry_docker_image.{name}.self_link)"
        if imgs != [want]:
            errs.append(f"{svc.address}: image resolves to {imgs}, want {want} (the pushed tag's digest)")
    repos = cfg.resources_of("google_artifact_registry_repository")
    for r in repos:
        keeps = [c for c in blocks(r.body, "cleanup_policies")
                 if literal(c.get("action")) == "KEEP" and attr(c, "most_recent_versions", "keep_count") is not None]
        if not keeps:
            errs.append(f"{r.address}: no cleanup policy that keeps the most recent versions")
        if r.body.get("cleanup_policy_dry_run", False) is not False:
            errs.append(f"{r.address}: cleanup_policy_dry_run must be false (a dry run deletes nothing)")
    if not repos:
        errs.append("no Artifact Registry repository")
    return errs


@check("private-hop-opt-in",
       "var.called_private (default false) puts called on internal ingress and the caller on Direct VPC egress "
       "(ALL_TRAFFIC) into a subnet with Private Google Access; otherwise ingress stays ALL")
def private_hop(cfg: Config) -> list[str]:
    errs = []
    v = cfg.variables.get("called_private")
    if v is None or v.body.get("default") is not False:
        return ["variable called_private (bool, default false) is missing"]
    called, caller = service(cfg, "called"), service(cfg, "caller")
    if called is None or caller is None:
        return ["caller or called service missing"]
    ing = resolved(cfg, called.body.get("ingress"))
    if ing != 'var.called_private?"INGRESS_TRAFFIC_INTERNAL_ONLY":"INGRESS_TRAFFIC_ALL"':
        errs.append(f"called ingress {ing!r} should be var.called_private ? INTERNAL_ONLY : ALL")
    dyn = [body for t in blocks(caller.body, "template") for d in t.get("dynamic", [])
           for k, body in d.items() if k != "__is_block__" and k.strip('"') == "vpc_access"]
    if not dyn or "var.called_private" not in text(dyn[0].get("for_each")):
        errs.append("caller: no dynamic vpc_access gated by var.called_private")
    else:
        content = dyn[0]["content"][0]
        if literal(content.get("egress")) != "ALL_TRAFFIC" or not blocks(content, "network_interfaces"):
            errs.append("caller vpc_access must be Direct VPC egress (network_interfaces) with egress ALL_TRAFFIC")
    subnets = cfg.resources_of("google_compute_subnetwork")
    if not subnets or not all(s_.body.get("private_ip_google_access") is True for s_ in subnets):
        errs.append("the caller's subnet needs private_ip_google_access = true (run.app and Google APIs from inside)")
    return errs


# ---- semantic checks with `terraform console` ------------------------------------------

BASE_VARS = {
    "project_id": "my-project-123",  # -var takes strings raw, other types as HCL
    "caller_invokers": '["user:alice@example.com","serviceAccount:ci@my-project-123.iam.gserviceaccount.com","domain:example.org"]',
}
PROJECT_NUMBER = "123456789012"
PROBE = ("jsonencode({called_auth_mode = local.called_auth_mode, called_iam_disabled = local.called_invoker_iam_disabled,"
         " caller_auth_mode = local.caller_auth_mode, caller_iam_disabled = local.caller_invoker_iam_disabled,"
         " caller_allowed = local.caller_allowed_principals,"
         " called_audience = local.called_audience, caller_audience = local.caller_audience,"
         " caller_audiences = local.caller_audiences, caller_image = local.caller_image_tagged,"
         " called_image = local.called_image_tagged, caller_iap_audiences = local.caller_iap_audiences,"
         " called_forwarded = local.called_forwarded_audiences})")
DB_PROBE = ("jsonencode([local.db_max_connections, local.db_reserved_connections, local.db_connections_per_instance])")
# Cloud SQL for PostgreSQL's documented default max_connections per tier (memory), and each
# tier's largest max_instances that must still be accepted (at least the default, 3).
DB_TIERS = {"db-f1-micro": 25, "db-g1-small": 50, "db-custom-1-3840": 100, "db-custom-16-131072": 1000}
MAX_INSTANCES = range(1, 101)  # variables.tf: 1..100
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Console:
    def __init__(self, folder: Path):
        self.dir = Path(tempfile.mkdtemp(prefix="tfconsole-"))
        for f in ("variables.tf", "locals.tf"):
            if (folder / f).exists():
                shutil.copy(folder / f, self.dir / f)
        (self.dir / "stub_project_number.tf").write_text(
            f'locals {{\n  project_number = "{PROJECT_NUMBER}" # data.google_project.this.number in main.tf\n}}\n')
        self.folder = folder

    def run(self, expr: str, variables: dict[str, str], var_file: Path | None = None) -> tuple[str, str]:
        # a state file of its own per call: console locks it, and calls run in parallel
        state = self.dir / f"state-{uuid.uuid4().hex}.tfstate"
        args = ["terraform", "console", f"-state={state}"] + [f"-var={k}={v}" for k, v in variables.items()]
        if var_file is not None:
            args.append(f"-var-file={var_file.resolve()}")
        env = dict(os.environ, TF_CLI_CONFIG_FILE="/dev/null", TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1")
        p = subprocess.run(args, input=expr + "\n", cwd=self.dir, env=env, capture_output=True, text=True, timeout=120)
        return ANSI.sub("", p.stdout).strip(), ANSI.sub("", p.stderr)

    def values(self, variables: dict[str, str]) -> tuple[dict | None, str]:
        out, err = self.run(PROBE, variables)
        if "Error" in err or not out:
            return None, err.strip()[:400]
        try:
            return json.loads(json.loads(out)), ""
        except Exception as e:  # noqa: BLE001
            return None, f"cannot read console output {out[:200]!r}: {e}"

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def semantic_checks(folder: Path) -> list[tuple[str, str, list[str]]]:
    if shutil.which("terraform") is None:
        if os.environ.get("DEPLOY_NO_TERRAFORM") == "1":  # set by check.sh, which says SKIPPED loudly
            print("*** SKIPPED: the terraform console checks: terraform is not on PATH ***")
            return []
        return [("terraform-console", "terraform not on PATH", ["terraform is not installed"])]
    con = Console(folder)
    try:
        return _semantic(con, folder)
    finally:
        con.close()


def _semantic(con: Console, folder: Path) -> list[tuple[str, str, list[str]]]:
    results = []
    cases = {
        "default": {},
        "called_iam_off": {"called_invoker_iam_disabled": "true"},
        "caller_public": {"allow_unauthenticated_caller": "true"},
        "iap": {"iap_enabled": "true",
                "iap_members": '["user:bob@example.com","domain:example.net","group:team@example.com","user:alice@example.com"]',
                "iap_allowed_principals": '["carol@example.com"]'},
    }
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = dict(zip(cases, pool.map(lambda c: con.values({**BASE_VARS, **c}), cases.values())))

    # 1. the auth modes follow the IAM settings
    errs = []
    for case, (vals, err) in got.items():
        if vals is None:
            errs.append(f"{case}: locals could not be evaluated: {err}")
    if not errs:
        d, off, pub = got["default"][0], got["called_iam_off"][0], got["caller_public"][0]
        expect = [
            ("default", d["called_iam_disabled"], False), ("default", d["called_auth_mode"], "platform"),
            ("default", d["caller_auth_mode"], "platform"),
            ("called_invoker_iam_disabled=true", off["called_iam_disabled"], True),
            ("called_invoker_iam_disabled=true", off["called_auth_mode"], "verify"),
            ("called_invoker_iam_disabled=true", off["caller_auth_mode"], "platform"),
            ("default", d["caller_iam_disabled"], False),
            ("allow_unauthenticated_caller=true", pub["caller_iam_disabled"], True),
            ("allow_unauthenticated_caller=true", pub["caller_auth_mode"], "verify"),
            ("allow_unauthenticated_caller=true", pub["called_auth_mode"], "platform"),
        ]
        for case, have, want in expect:
            if have != want:
                errs.append(f"{case}: got {have!r}, want {want!r}")
    results.append(("locals-auth-modes",
                     "evaluated: called AUTH_MODE platform/verify follows called_invoker_iam_disabled; caller (and called's "
                     "AUTH_FORWARDED_MODE) verify only when public, with the caller's invoker check off",
                     errs))

    # 2. principals, audiences and images
    errs = []
    vals = got["default"][0]
    if vals is None:
        errs.append("locals could not be evaluated")
    else:
        want = {
            "caller_allowed": "alice@example.com,ci@my-project-123.iam.gserviceaccount.com,*@example.org",
            "called_audience": f"https://invoker-called-{PROJECT_NUMBER}.europe-west1.run.app",
            "caller_audience": f"https://invoker-caller-{PROJECT_NUMBER}.europe-west1.run.app",
            "caller_audiences": f"https://invoker-caller-{PROJECT_NUMBER}.europe-west1.run.app,{GCLOUD_CLIENT_ID}",
            "caller_image": "europe-west1-docker.pkg.dev/my-project-123/invoker/caller:v1",
            "called_image": "europe-west1-docker.pkg.dev/my-project-123/invoker/called:v1",
        }
        for k, w in want.items():
            if vals.get(k) != w:
                errs.append(f"local {k} = {vals.get(k)!r}, want {w!r}")
    iap = got["iap"][0]
    if vals is not None and iap is not None:
        caller_aud = f"https://invoker-caller-{PROJECT_NUMBER}.europe-west1.run.app,{GCLOUD_CLIENT_ID}"
        iap_aud = f"/projects/{PROJECT_NUMBER}/locations/europe-west1/services/invoker-caller"
        for k, have, w in (
            ("default caller_iap_audiences", vals.get("caller_iap_audiences"), []),
            ("default called_forwarded", vals.get("called_forwarded"), caller_aud),
            ("iap caller_iap_audiences", iap.get("caller_iap_audiences"), [iap_aud]),
            ("iap called_forwarded", iap.get("called_forwarded"), f"{caller_aud},{iap_aud}"),
            ("iap caller_allowed", iap.get("caller_allowed"),
             "alice@example.com,ci@my-project-123.iam.gserviceaccount.com,*@example.org,bob@example.com,*@example.net,carol@example.com"),
            ("iap caller_auth_mode", iap.get("caller_auth_mode"), "platform"),
        ):
            if have != w:
                errs.append(f"local {k} = {have!r}, want {w!r}")
    elif iap is None:
        errs.append(f"iap: locals could not be evaluated: {got['iap'][1]}")
    results.append(("locals-principals-audiences",
                    "evaluated: invokers -> AUTH_ALLOWED_PRINCIPALS emails/*@domain, deterministic run.app audiences, image paths",
                    errs))

    # 3. validation rejects bad values (and names the right variable)
    bad = [
        ("caller_invokers", '["allUsers"]'),
        ("caller_invokers", '["allAuthenticatedUsers"]'),
        ("caller_invokers", '["user:alice@example.com","allUsers"]'),
        ("caller_invokers", '["group:devs@example.com"]'),
        ("caller_invokers", '["alice@example.com"]'),
        ("caller_invokers", "[]"),
        ("project_id", "My_Project"),
        ("region", "europe-west1-b"),
        ("db_tier", "db-n1-standard-1"),
        ("name_prefix", "a-prefix-much-too-long-for-ids"),
        ("image_tag", "-bad"),
        ("caller_image", "caller:latest"),
        ("called_image", "europe-west1-docker.pkg.dev/p/r/called"),
        ("max_instances", "0"),
        ("caller_extra_audiences", '["a,b"]'),
        ("max_instances", "6"),  # db-f1-micro: 25 connections
        ("images_to_keep", "1"),
        ("private_subnet_cidr", "10.8.0.0/28"),
        ("iap_members", '["allUsers"]'),
        ("iap_members", '["bob@example.com"]'),
        ("iap_allowed_principals", '["a,b@example.com"]'),
        ("alert_notification_channels", '["my-channel"]'),
        ("refusal_burst_threshold", "0"),
        ("refusal_burst_window_seconds", "90"),
    ]

    def rejected(item):
        name, value = item
        _, err = con.run("var.region", {**BASE_VARS, name: value})
        return name, value, ("Invalid value for variable" in err and f'variable "{name}"' in err)

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(rejected, bad))
    errs = [f"{n} = {v} was accepted" for n, v, ok in outcomes if not ok]
    # cross-variable rules: IAP on without members; a group without its people spelled out
    for name, extra in (("iap_members", {"iap_enabled": "true"}),
                        ("iap_allowed_principals", {"iap_enabled": "true", "iap_members": '["group:g@example.com"]'})):
        _, err = con.run("var.region", {**BASE_VARS, **extra})
        if not ("Invalid value for variable" in err and f'variable "{name}"' in err):
            errs.append(f"{extra} was accepted (want variable {name} rejected)")
    _, err = con.run("var.region", BASE_VARS)
    if "Error" in err:
        errs.append(f"good values were rejected: {err.strip()[:300]}")
    results.append(("validations-reject-bad-values",
                    f"terraform refuses {len(bad)} bad settings (public or group invokers, bad ids, tiers, images, "
                    "too many instances for the tier) and accepts good ones",
                    errs))

    # 4. database connections: for every tier and every max_instances terraform accepts,
    # twice (a rollout's old and new revision) the pool times the instances fits the tier
    def db_case(item):
        tier, n = item
        out, err = con.run(DB_PROBE, {**BASE_VARS, "db_tier": tier, "max_instances": str(n)})
        if "Invalid value for variable" in err and 'variable "max_instances"' in err:
            return tier, n, None, ""
        try:
            return tier, n, json.loads(json.loads(out)), ""
        except Exception:  # noqa: BLE001
            return tier, n, None, (err.strip() or out)[:300]

    errs = []
    cases = [(t, n) for t in DB_TIERS for n in MAX_INSTANCES]
    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(db_case, cases))
    accepted: dict[str, int] = {}
    for tier, n, vals, err in outcomes:
        if err:
            errs.append(f"db_tier={tier} max_instances={n}: {err}")
            continue
        if vals is None:
            continue
        limit, reserved, per = vals
        accepted[tier] = max(accepted.get(tier, 0), n)
        if limit != DB_TIERS[tier]:
            errs.append(f"db_tier={tier}: local.db_max_connections = {limit}, Cloud SQL's default is {DB_TIERS[tier]}")
        if reserved < 3:
            errs.append(f"db_tier={tier}: {reserved} reserved connections, PostgreSQL keeps 3 for superusers")
        if per < 1 or 2 * n * per > limit - reserved:
            errs.append(f"db_tier={tier} max_instances={n}: pool {per} x {n} instances x 2 (rollout) = {2 * n * per} "
                        f"> {limit} - {reserved} reserved, yet terraform accepts it")
    for tier in DB_TIERS:
        if accepted.get(tier, 0) < 3:
            errs.append(f"db_tier={tier}: the default max_instances (3) is refused")
    if len(errs) > 8:
        errs = errs[:8] + [f"... and {len(errs) - 8} more"]
    results.append(("db-connections-fit-the-tier",
                    f"evaluated for {len(DB_TIERS)} tiers x max_instances 1..100: every accepted setting gives called a "
                    "DATABASE_MAX_CONNECTIONS whose product with the instances (twice, for a rollout) fits the tier's "
                    "connections less the reserved ones; the rest is refused",
                    errs))

    # 5. the example tfvars file is valid as shipped
    example = folder / "terraform.tfvars.example"
    errs = []
    if not example.exists():
        errs.append("terraform.tfvars.example is missing")
    else:
        out, err = con.run("var.project_id", {}, var_file=example)
        if "Error" in err or not out:
            errs.append(f"terraform.tfvars.example is rejected: {err.strip()[:300]}")
    results.append(("tfvars-example-valid", "terraform.tfvars.example passes every validation", errs))
    return results


# ---- runner ----------------------------------------------------------------------------

def run_all(folder: Path) -> list[tuple[str, str, list[str]]]:
    cfg = load_dir(folder)
    results = []
    for name, what, fn in CHECKS:
        try:
            errs = fn(cfg)
        except Exception as e:  # noqa: BLE001  a crash is a failure with its reason
            errs = [f"check crashed: {type(e).__name__}: {e}"]
        results.append((name, what, errs))
    return results + semantic_checks(folder)


def main(argv: list[str]) -> int:
    expect_fail = "--expect-fail" in argv
    args = [a for a in argv[1:] if a != "--expect-fail"]
    folder = Path(args[0]) if args else ROOT / "terraform"
    results = run_all(folder)
    passed = failed = 0
    for name, what, errs in results:
        if expect_fail:
            ok = bool(errs)
            status = "ok (fails as it must)" if ok else "NOT DETECTED"
            print(f"selftest: {status:22} {name}" + (f"  first: {errs[0]}" if errs else ""))
        else:
            ok = not errs
            print(f"invariant: {'PASS' if ok else 'FAIL'} {name}: {what}")
            for e in errs:
                print(f"    - {e}")
        passed += ok
        failed += not ok
    label = "selftest" if expect_fail else "invariants"
    print(f"{label}: {passed} passed, {failed} failed ({folder})")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
