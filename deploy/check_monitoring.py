#!/usr/bin/env python3
"""Offline checks of terraform/'s log-based metrics, alert policies and IAP wiring.

The metrics count the services' own log entries, whose fields are the contract in
deploy/log-fields.json; nothing here reaches Google. Rules:
  - logging-filter-syntax     every google_logging_metric filter parses in the subset of the
                              Logging query language used (comparisons, AND/OR/NOT, parentheses,
                              quoted strings, `:`), with upper-case operators and no bare terms
  - logging-filter-fields     every field a filter names is in log-fields.json, every value compared
                              to an enumerated field is one of its values, resource.type is selected
  - label-extractors          each label is EXTRACT(field) or REGEXP_EXTRACT(field, "re") over a field of
                              the entry the filter selects; extractors and metric_descriptor.labels
                              match one to one; DELTA INT64 counters
  - metrics-cover-contract    a metric per entry kind (refusals by service/reason/status, token-fetch
                              failures, key-set fetch failures)
  - alert-metric-types        every alert condition filter parses (Monitoring filter syntax), names
                              logging.googleapis.com/user/${google_logging_metric.X.name} of a defined
                              metric, and only labels that metric declares (filter and group_by_fields)
  - alerts-opt-in             alert policies exist only with var.alert_notification_channels (count),
                              notify exactly those channels; the variable defaults to []
  - alerts-cover-failures     a refusal burst (threshold and window from variables), any keys_unavailable /
                              forwarded_keys_unavailable refusal, any token fetch and key-set fetch failure
  - iap-opt-in                var.iap_enabled (bool, default false) drives the caller's iap_enabled, the
                              IAP agent's run.invoker on the caller, the iap_members' IAP access, the API
  - iap-service-settings      caller AUTH_IAP_AUDIENCES = IAP's audience of the caller when on; the caller's
                              allow-list takes iap_members / iap_allowed_principals; called's forwarded
                              audiences add the same IAP audience

Usage: check_monitoring.py [FOLDER]            every rule must pass (default: terraform/)
       check_monitoring.py --expect-fail DIR   every rule must FAIL on DIR (deploy/fixtures/bad-monitoring)
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tfparse import Block, Config, blocks, expr, literal, load_dir, resolve_locals, text, unquote  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = Path(__file__).resolve().parent / "log-fields.json"
PLACEHOLDER = "TFVALUE"  # stands for a ${...} interpolation inside a filter
CHECKS: list[tuple[str, str, Callable[[Config, dict], list[str]]]] = []


def check(name: str, what: str):
    def deco(fn):
        CHECKS.append((name, what, fn))
        return fn
    return deco


# ---- HCL strings -------------------------------------------------------------------------

def hcl_string(v) -> tuple[str, list[str]] | None:
    """A quoted HCL string as text, each ${...} replaced by PLACEHOLDER, plus the interpolations."""
    if not isinstance(v, str) or len(v) < 2 or v[0] != '"' or v[-1] != '"':
        return None
    inner, out, interps, i = v[1:-1], [], [], 0
    while i < len(inner):
        if inner.startswith("${", i):
            depth, j = 0, i + 1
            while j < len(inner):
                depth += inner[j] == "{"
                depth -= inner[j] == "}"
                if depth == 0:
                    break
                j += 1
            interps.append(inner[i + 2:j].strip())
            out.append(PLACEHOLDER)
            i = j + 1
        else:
            out.append(inner[i])
            i += 1
    return json.loads('"' + "".join(out) + '"'), interps


# ---- the filter languages ----------------------------------------------------------------

class FilterError(ValueError):
    pass


@dataclass
class Comparison:
    field: str
    op: str
    values: list  # strings (quoted or bare) and numbers; a function call is ("fn", [args])


TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<badstr>"[^"]*$)|(?P<op>=~|!~|>=|<=|!=|=|>|<|:)'
                   r'|(?P<paren>[(),])|(?P<word>[A-Za-z0-9_.*@/+\-]+)|(?P<other>\S))')
FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
MONITORING_FUNCTIONS = {"one_of", "starts_with", "ends_with", "has_substring", "monitoring.regex.full_match"}


def tokenize(s: str) -> list[tuple[str, str]]:
    toks, pos = [], 0
    while pos < len(s):
        m = TOKEN.match(s, pos)
        if not m or m.end() == pos:
            if s[pos:].strip() == "":
                break
            raise FilterError(f"cannot read {s[pos:pos + 20]!r}")
        kind = m.lastgroup
        if kind == "badstr":
            raise FilterError(f"unterminated string {m.group(kind)[:30]!r}")
        if kind == "other":
            raise FilterError(f"unexpected character {m.group(kind)!r}")
        toks.append((kind, m.group(kind)))
        pos = m.end()
    return toks


class Parser:
    """Recursive descent over the subset: expr = or; or = and {OR and}; and = not {[AND] not};
    not = (NOT | -) not | ( expr ) | field OP value | field OP ( value {OR value} )."""

    def __init__(self, s: str, monitoring: bool):
        self.toks = tokenize(s)
        self.i = 0
        self.monitoring = monitoring
        self.comparisons: list[Comparison] = []

    def peek(self, k: int = 0):
        return self.toks[self.i + k] if self.i + k < len(self.toks) else (None, None)

    def take(self):
        t = self.peek()
        self.i += 1
        return t

    def parse(self) -> list[Comparison]:
        if not self.toks:
            raise FilterError("empty filter")
        self.or_()
        if self.i != len(self.toks):
            raise FilterError(f"unexpected {self.peek()[1]!r} after a complete expression")
        return self.comparisons

    def or_(self):
        self.and_()
        while self.peek() == ("word", "OR"):
            self.take()
            self.and_()

    def and_(self):
        self.not_()
        while True:
            k, v = self.peek()
            if (k, v) == ("word", "AND"):
                self.take()
                self.not_()
            elif k == "word" and v not in ("OR",) or (k, v) == ("paren", "("):
                if self.monitoring:
                    raise FilterError(f"missing AND before {v!r} (Monitoring filters need explicit operators)")
                self.not_()  # juxtaposition is AND in the Logging query language
            else:
                return

    def not_(self):
        k, v = self.peek()
        if (k, v) in (("word", "NOT"), ("word", "-")):
            self.take()
            return self.not_()
        if (k, v) == ("paren", "("):
            self.take()
            self.or_()
            if self.take() != ("paren", ")"):
                raise FilterError("unbalanced parentheses: missing )")
            return
        return self.comparison()

    def comparison(self):
        k, field = self.take()
        if k != "word" or not FIELD.fullmatch(field):
            raise FilterError(f"expected a field, got {field!r}")
        if field.lower() in ("and", "or", "not"):
            raise FilterError(f"operator {field!r} must be upper case (lower case is a search term)")
        k, op = self.take()
        if k != "op":
            raise FilterError(f"{field}: expected a comparison operator after the field, got {op!r} "
                              "(bare search terms are not used here)")
        if self.monitoring and op not in ("=", "!=", ">", "<", ">=", "<="):
            raise FilterError(f"{field}: operator {op!r} is not a Monitoring filter operator")
        values = []
        k, v = self.peek()
        if (k, v) == ("paren", "(") and not self.monitoring:
            self.take()
            values.append(self.value())
            while self.peek() in (("word", "OR"), ("word", "AND")) or self.peek()[0] in ("str", "word"):
                if self.peek() in (("word", "OR"), ("word", "AND")):
                    self.take()
                values.append(self.value())
            if self.take() != ("paren", ")"):
                raise FilterError(f"{field}: unbalanced parentheses in the value list")
        else:
            values.append(self.value())
        self.comparisons.append(Comparison(field, op, values))

    def value(self):
        k, v = self.take()
        if k == "str":
            return json.loads(v)
        if k == "word" and v not in ("AND", "OR", "NOT"):
            if self.monitoring and self.peek() == ("paren", "("):
                if v not in MONITORING_FUNCTIONS:
                    raise FilterError(f"unknown function {v}()")
                self.take()
                args = [self.value()]
                while self.peek() == ("paren", ","):
                    self.take()
                    args.append(self.value())
                if self.take() != ("paren", ")"):
                    raise FilterError(f"{v}(: missing )")
                return ("fn", v, args)
            if re.fullmatch(r"-?\d+(\.\d+)?", v):
                return float(v) if "." in v else int(v)
            if self.monitoring:
                raise FilterError(f"unquoted value {v!r}: Monitoring filters quote strings")
            return v
        raise FilterError(f"expected a value, got {v!r}")


def parse_filter(s: str, monitoring: bool = False) -> list[Comparison]:
    return Parser(s, monitoring).parse()


# ---- the log contract --------------------------------------------------------------------

def load_contract(path: Path = CONTRACT) -> dict:
    return json.loads(path.read_text())


def contract_fields(contract: dict) -> dict[str, dict]:
    """Every field the log entries may have -> its spec; a field of several entry kinds takes
    the union of their allowed values (None when any kind allows anything)."""
    out = dict(contract["resource"]["fields"]) | dict(contract["common"])
    for kind in contract["entries"].values():
        for f, spec in kind["fields"].items():
            if f not in out:
                out[f] = dict(spec)
            elif out[f].get("values") is None or spec.get("values") is None:
                out[f] = {**out[f], "values": None}
            else:
                out[f] = {**out[f], "values": out[f]["values"] + [v for v in spec["values"] if v not in out[f]["values"]]}
    return out


def selected_kinds(contract: dict, comps: list[Comparison]) -> list[str]:
    """The entry kinds a filter selects: it compares each selector field with = to its value."""
    out = []
    for name, kind in contract["entries"].items():
        if all(any(c.field == f and c.op == "=" and v in c.values for c in comps) for f, v in kind["selector"].items()):
            out.append(name)
    return out


def field_known(contract: dict, field: str, kinds: list[str] | None) -> bool:
    """Whether the field exists; with kinds, in the resource, common fields or one of those kinds."""
    if field in contract["resource"]["fields"] or field in contract["common"]:
        return True
    pool = contract["entries"] if kinds is None else {k: contract["entries"][k] for k in kinds}
    return any(field in k["fields"] for k in pool.values())


# ---- terraform helpers -------------------------------------------------------------------

def metrics(cfg: Config) -> list[Block]:
    return cfg.resources_of("google_logging_metric")


def alerts(cfg: Config) -> list[Block]:
    return cfg.resources_of("google_monitoring_alert_policy")


def metric_filter(m: Block) -> str:
    got = hcl_string(m.body.get("filter"))
    if got is None:
        raise FilterError(f"{m.address}: filter is not a string literal (with interpolations)")
    return got[0]


def declared_labels(m: Block) -> list[str]:
    return [literal(lb.get("key")) for md in blocks(m.body, "metric_descriptor") for lb in blocks(md, "labels")]


def extractors(m: Block) -> dict[str, str]:
    le = m.body.get("label_extractors") or {}
    if not isinstance(le, dict):
        return {"?": text(le)}
    return {unquote(k): (literal(v) if literal(v) is not None else text(v)) for k, v in le.items() if k != "__is_block__"}


def thresholds(a: Block) -> list[dict]:
    return [ct for c in blocks(a.body, "conditions") for ct in blocks(c, "condition_threshold")]


EXTRACTOR = re.compile(r'(?:EXTRACT\((?P<f1>[^,()\s]+)\)|REGEXP_EXTRACT\((?P<f2>[^,()\s]+),\s*(?P<re>"(?:[^"\\]|\\.)*")\))')
USER_METRIC = re.compile(r"logging\.googleapis\.com/user/(.+)")


def service(cfg: Config, name: str) -> Block | None:
    for r in cfg.resources_of("google_cloud_run_v2_service"):
        if r.name == name:
            return r
    return None


def env_value(svc: Block, name: str):
    for t in blocks(svc.body, "template"):
        for c in blocks(t, "containers"):
            for e in blocks(c, "env"):
                if literal(e.get("name")) == name:
                    return e.get("value")
    return None


def resolved(cfg: Config, v) -> str:
    return re.sub(r"\s+", "", resolve_locals(text(v), cfg.locals))


# ---- rules ---------------------------------------------------------------------------------

@check("logging-filter-syntax", "every log-based metric's filter parses (Logging query language subset)")
def filter_syntax(cfg: Config, contract: dict) -> list[str]:
    errs = []
    if not metrics(cfg):
        return ["no google_logging_metric"]
    for m in metrics(cfg):
        try:
            parse_filter(metric_filter(m))
        except FilterError as e:
            errs.append(f"{m.address}: filter: {e}")
    return errs


@check("logging-filter-fields", "filters name only fields of deploy/log-fields.json, compare enumerated fields to "
       "their allowed values, and select resource.type=\"cloud_run_revision\"")
def filter_fields(cfg: Config, contract: dict) -> list[str]:
    errs = []
    known = contract_fields(contract)
    for m in metrics(cfg):
        try:
            comps = parse_filter(metric_filter(m))
        except FilterError:
            continue  # logging-filter-syntax reports it
        for c in comps:
            spec = known.get(c.field)
            if spec is None:
                errs.append(f"{m.address}: filter field {c.field} is not in deploy/log-fields.json")
                continue
            allowed = spec.get("values")
            if allowed is not None and c.op in ("=", "!="):
                for v in c.values:
                    if v != PLACEHOLDER and v not in allowed and str(v) not in map(str, allowed):
                        errs.append(f"{m.address}: {c.field}{c.op}{v!r}: not a value the services log ({allowed[:6]}...)")
        if not any(c.field == "resource.type" and c.op == "=" and contract["resource"]["type"] in c.values for c in comps):
            errs.append(f"{m.address}: the filter must select resource.type=\"{contract['resource']['type']}\"")
        if not selected_kinds(contract, comps):
            kinds = ", ".join(f"{k}: {v['selector']}" for k, v in contract["entries"].items())
            errs.append(f"{m.address}: the filter selects none of the log entry kinds ({kinds})")
    return errs


@check("label-extractors", "labels are EXTRACT(field) / REGEXP_EXTRACT(field, \"re\") over fields of the entry the "
       "filter selects; extractors and metric_descriptor.labels match one to one; DELTA INT64 counters")
def label_extractors(cfg: Config, contract: dict) -> list[str]:
    errs = []
    for m in metrics(cfg):
        md = blocks(m.body, "metric_descriptor")
        if not md or literal(md[0].get("metric_kind")) != "DELTA" or literal(md[0].get("value_type")) != "INT64":
            errs.append(f"{m.address}: metric_descriptor must be metric_kind DELTA, value_type INT64 (a counter)")
        try:
            kinds = selected_kinds(contract, parse_filter(metric_filter(m)))
        except FilterError:
            kinds = []
        ex, labels = extractors(m), declared_labels(m)
        for key, e in ex.items():
            mm = EXTRACTOR.fullmatch(e or "")
            if not mm:
                errs.append(f"{m.address}: label {key}: {e!r} is not EXTRACT(field) or REGEXP_EXTRACT(field, \"re\")")
                continue
            field = mm.group("f1") or mm.group("f2")
            if mm.group("re"):
                try:
                    rx = re.compile(json.loads(mm.group("re")))
                    if rx.groups != 1:
                        errs.append(f"{m.address}: label {key}: REGEXP_EXTRACT needs exactly one capturing group")
                except re.error as err:
                    errs.append(f"{m.address}: label {key}: bad regular expression: {err}")
            if not field_known(contract, field, kinds):
                errs.append(f"{m.address}: label {key}: {field} is not a field of the entries the filter selects "
                            f"({', '.join(kinds) or 'none'}) in deploy/log-fields.json")
            if key not in labels:
                errs.append(f"{m.address}: label extractor {key} has no metric_descriptor.labels entry")
        for lb in labels:
            if lb not in ex:
                errs.append(f"{m.address}: metric_descriptor label {lb} has no label extractor")
    return errs


@check("metrics-cover-contract", "a metric for refusals (labels service, reason, status), token-fetch failures and "
       "key-set fetch failures")
def metrics_cover(cfg: Config, contract: dict) -> list[str]:
    want = {"auth_refusal": {"service", "reason", "status"}, "token_fetch_failed": set(), "key_set_fetch_failed": {"service"}}
    have: dict[str, set[str]] = {}
    for m in metrics(cfg):
        try:
            for k in selected_kinds(contract, parse_filter(metric_filter(m))):
                have.setdefault(k, set()).update(extractors(m))
        except FilterError:
            pass
    errs = []
    for kind, labels in want.items():
        if kind not in have:
            errs.append(f"no log-based metric counts the {kind} entries")
        elif not labels <= have[kind]:
            errs.append(f"the {kind} metric lacks the labels {sorted(labels - have[kind])}")
    return errs


def alert_metric(cfg: Config, a: Block, ct: dict) -> tuple[Block | None, list[Comparison], list[str]]:
    """The metric a condition reads, its parsed filter, and problems."""
    got = hcl_string(ct.get("filter"))
    if got is None:
        return None, [], [f"{a.address}: condition filter is not a string"]
    s, interps = got
    try:
        comps = parse_filter(s, monitoring=True)
    except FilterError as e:
        return None, [], [f"{a.address}: condition filter: {e}"]
    types = [c for c in comps if c.field == "metric.type" and c.op == "="]
    if len(types) != 1 or not isinstance(types[0].values[0], str):
        return None, comps, [f"{a.address}: the condition filter must name exactly one metric.type"]
    mt = USER_METRIC.fullmatch(types[0].values[0])
    if not mt:
        return None, comps, [f"{a.address}: metric.type {types[0].values[0]!r} is not a log-based metric "
                             "(logging.googleapis.com/user/NAME)"]
    name = mt.group(1)
    if name == PLACEHOLDER:
        ref = re.fullmatch(r"google_logging_metric\.(\w+)\.name", interps[s[:s.index(PLACEHOLDER)].count(PLACEHOLDER)]
                           if interps else "")
        target = next((m for m in metrics(cfg) if ref and m.name == ref.group(1)), None)
        if target is None:
            return None, comps, [f"{a.address}: metric.type names ${{{interps[0] if interps else '?'}}}, "
                                 "not the name of a google_logging_metric of this configuration"]
        return target, comps, []
    target = next((m for m in metrics(cfg) if hcl_string(m.body.get("name")) and hcl_string(m.body["name"])[0] == name), None)
    if target is None:
        return None, comps, [f"{a.address}: metric.type user/{name} is not a metric this configuration defines"]
    return target, comps, []


@check("alert-metric-types", "alert conditions parse (Monitoring filters), read logging.googleapis.com/user/ a "
       "defined metric, on cloud_run_revision, and use only labels that metric declares")
def alert_types(cfg: Config, contract: dict) -> list[str]:
    errs = []
    if not alerts(cfg):
        return ["no google_monitoring_alert_policy"]
    for a in alerts(cfg):
        cts = thresholds(a)
        if not cts:
            errs.append(f"{a.address}: no condition_threshold")
        for ct in cts:
            target, comps, problems = alert_metric(cfg, a, ct)
            errs += problems
            if target is None:
                continue
            labels = set(declared_labels(target))
            used = [c.field for c in comps if c.field.startswith(("metric.label.", "metric.labels."))]
            used += [literal(g) for ag in blocks(ct, "aggregations") for g in (ag.get("group_by_fields") or [])]
            for f in used:
                key = (f or "").split(".", 2)[-1]
                if not (f or "").startswith(("metric.label.", "metric.labels.")) or key not in labels:
                    errs.append(f"{a.address}: {f} is not a label of {target.address} ({sorted(labels)})")
            if not any(c.field == "resource.type" and contract["resource"]["type"] in c.values for c in comps):
                errs.append(f"{a.address}: condition filter should say resource.type=\"{contract['resource']['type']}\"")
    return errs


@check("alerts-opt-in", "alert policies only with var.alert_notification_channels (default []), notifying exactly those")
def alerts_opt_in(cfg: Config, contract: dict) -> list[str]:
    errs = []
    v = cfg.variables.get("alert_notification_channels")
    if v is None or v.body.get("default") != [] or not text(v.body.get("type")).startswith("list("):
        errs.append("variable alert_notification_channels (list, default []) is missing")
    for a in alerts(cfg):
        gate = re.sub(r"\s+", "", text(a.body.get("count", a.body.get("for_each", ""))))
        if gate != "length(var.alert_notification_channels)>0?1:0":
            errs.append(f"{a.address}: count = {gate or 'none'}, want length(var.alert_notification_channels) > 0 ? 1 : 0")
        if text(a.body.get("notification_channels")) != "var.alert_notification_channels":
            errs.append(f"{a.address}: notification_channels must be var.alert_notification_channels")
    if not alerts(cfg):
        errs.append("no google_monitoring_alert_policy")
    return errs


@check("alerts-cover-failures", "alerts on a refusal burst (threshold and window from variables), any "
       "keys_unavailable / forwarded_keys_unavailable refusal, any token-fetch and key-set fetch failure")
def alerts_cover(cfg: Config, contract: dict) -> list[str]:
    kinds_of: dict[str, list[str]] = {}
    for m in metrics(cfg):
        try:
            kinds_of[m.name] = selected_kinds(contract, parse_filter(metric_filter(m)))
        except FilterError:
            kinds_of[m.name] = []
    burst = keys = token = keyset = False
    for a in alerts(cfg):
        for ct in thresholds(a):
            target, comps, problems = alert_metric(cfg, a, ct)
            if target is None:
                continue
            kinds = kinds_of.get(target.name, [])
            reasons = {v for c in comps if c.field in ("metric.label.reason", "metric.labels.reason")
                       for val in c.values for v in (val[2] if isinstance(val, tuple) else [val])}
            threshold = text(ct.get("threshold_value"))
            period = [text(ag.get("alignment_period")) for ag in blocks(ct, "aggregations")]
            if "auth_refusal" in kinds and not reasons and threshold.startswith("var.") and any("var." in p for p in period):
                burst = True
            if "auth_refusal" in kinds and {"keys_unavailable", "forwarded_keys_unavailable"} <= reasons and threshold == "0":
                keys = True
            token |= "token_fetch_failed" in kinds and threshold == "0"
            keyset |= "key_set_fetch_failed" in kinds and threshold == "0"
    errs = []
    for ok, what in ((burst, "a refusal burst (any reason; threshold_value and alignment_period from variables)"),
                     (keys, "any keys_unavailable or forwarded_keys_unavailable refusal (threshold 0)"),
                     (token, "any token fetch failure (threshold 0)"),
                     (keyset, "any key-set fetch failure (threshold 0)")):
        if not ok:
            errs.append(f"no alert condition for {what}")
    return errs


@check("iap-opt-in", "var.iap_enabled (bool, default false) sets the caller's iap_enabled, gates run.invoker for IAP's "
       "service agent on the caller, the iap_members' IAP access (roles/iap.httpsResourceAccessor) and the IAP API")
def iap_opt_in(cfg: Config, contract: dict) -> list[str]:
    errs = []
    v = cfg.variables.get("iap_enabled")
    if v is None or text(v.body.get("type")) != "bool" or v.body.get("default") is not False:
        errs.append("variable iap_enabled (bool, default false) is missing")
    caller = service(cfg, "caller")
    if caller is None:
        return errs + ["google_cloud_run_v2_service.caller is missing"]
    if text(caller.body.get("iap_enabled")) != "var.iap_enabled":
        errs.append(f"caller iap_enabled = {text(caller.body.get('iap_enabled'))}, want var.iap_enabled")
    agent = [r for r in cfg.resources if r.type == "google_cloud_run_v2_service_iam_member"
             and "google_cloud_run_v2_service.caller." in text(r.body.get("name"))
             and "gcp-sa-iap.iam.gserviceaccount.com" in resolved(cfg, r.body.get("member"))]
    if len(agent) != 1:
        errs.append("want one run.invoker grant on the caller for IAP's service agent "
                    "(serviceAccount:service-PROJECT_NUMBER@gcp-sa-iap.iam.gserviceaccount.com)")
    for r in agent:
        if re.sub(r"\s+", "", text(r.body.get("count", ""))) != "var.iap_enabled?1:0":
            errs.append(f"{r.address}: count must be var.iap_enabled ? 1 : 0")
        if literal(r.body.get("role")) != "roles/run.invoker":
            errs.append(f"{r.address}: role must be roles/run.invoker")
        if not re.search(r"service-\$\{[^}]*(project_number|\.number)[^}]*\}@gcp-sa-iap\.iam\.gserviceaccount\.com",
                         resolved(cfg, r.body.get("member"))):
            errs.append(f"{r.address}: member must be service-PROJECT_NUMBER@gcp-sa-iap.iam.gserviceaccount.com")
    people = [r for r in cfg.resources if r.type == "google_iap_web_cloud_run_service_iam_member"]
    if not people:
        errs.append("no google_iap_web_cloud_run_service_iam_member for var.iap_members")
    for r in people:
        fe = re.sub(r"\s+", "", text(r.body.get("for_each", "")))
        if fe != "var.iap_enabled?toset(var.iap_members):toset([])":
            errs.append(f"{r.address}: for_each = {fe}, want var.iap_enabled ? toset(var.iap_members) : toset([])")
        if literal(r.body.get("role")) != "roles/iap.httpsResourceAccessor" or text(r.body.get("member")) != "each.value":
            errs.append(f"{r.address}: role roles/iap.httpsResourceAccessor to each.value")
        if text(r.body.get("cloud_run_service_name")) != "google_cloud_run_v2_service.caller.name":
            errs.append(f"{r.address}: cloud_run_service_name must be google_cloud_run_v2_service.caller.name")
    apis = " ".join(text(x) for x in cfg.locals.values())
    if not re.search(r'var\.iap_enabled\s*\?\s*\["iap\.googleapis\.com"\]', apis):
        errs.append('the IAP API is not enabled with var.iap_enabled ? ["iap.googleapis.com"] : [] in the API list')
    return errs


@check("iap-service-settings", "caller AUTH_IAP_AUDIENCES is /projects/NUMBER/locations/REGION/services/CALLER when "
       "var.iap_enabled, else empty; its allow-list takes the IAP people; called's AUTH_FORWARDED_AUDIENCES adds it")
def iap_settings(cfg: Config, contract: dict) -> list[str]:
    errs = []
    caller, called = service(cfg, "caller"), service(cfg, "called")
    if caller is None or called is None:
        return ["caller or called service missing"]
    raw = env_value(caller, "AUTH_IAP_AUDIENCES")
    if raw is None:
        return ["caller env AUTH_IAP_AUDIENCES is missing"]
    aud = resolved(cfg, raw)
    m = re.fullmatch(r'join\(",",\(?var\.iap_enabled\?\[\(?"(?P<aud>.*)"\)?\]:\[\]\)?\)', aud)
    if not m:
        errs.append(f"caller AUTH_IAP_AUDIENCES resolves to {aud!r}: want join(\",\", var.iap_enabled ? [AUDIENCE] : [])")
    elif not re.fullmatch(r"/projects/\$\{[^}]*(project_number|\.number)[^}]*\}/locations/\$\{var\.region\}/services/"
                          r"\$\{\(?\"?\$\{var\.name_prefix\}-caller\"?\)?\}", m.group("aud")):
        errs.append(f"caller IAP audience {m.group('aud')!r} is not /projects/PROJECT_NUMBER/locations/REGION/services/"
                    "CALLER (IAP on the Cloud Run service)")
    fwd = resolved(cfg, env_value(called, "AUTH_FORWARDED_AUDIENCES"))
    inner = aud[len('join(",",'):-1] if aud.startswith('join(",",') else None
    if not inner or inner not in fwd:
        errs.append(f"called AUTH_FORWARDED_AUDIENCES ({fwd[:120]}...) does not include the caller's IAP audience list")
    allowed = resolved(cfg, env_value(caller, "AUTH_ALLOWED_PRINCIPALS"))
    for need in ("var.iap_members", "var.iap_allowed_principals"):
        if need not in allowed:
            errs.append(f"caller AUTH_ALLOWED_PRINCIPALS does not take {need} (the allow-list applies to the person behind IAP)")
    if "var.iap_enabled" not in allowed:
        errs.append("caller AUTH_ALLOWED_PRINCIPALS must add the IAP people only when var.iap_enabled")
    return errs


# ---- runner --------------------------------------------------------------------------------

# What deploy/fixtures/bad-monitoring must trigger, per rule: each pattern must be among the
# rule's problems, so that every rule is shown to catch its own mistakes (not only a knock-on).
EXPECTED_IN_BAD_FIXTURE = {
    "logging-filter-syntax": [r"operator 'and' must be upper case"],
    "logging-filter-fields": [r"token_fetch_failure'?: not a value the services log",
                              r"jsonPayload\.tokenSource is not in deploy/log-fields\.json"],
    "label-extractors": [r"metric_kind DELTA", r"bad regular expression", r"label extractor reason has no metric_descriptor",
                         r"label declared_only has no label extractor"],
    "metrics-cover-contract": [r"no log-based metric counts the key_set_fetch_failed entries"],
    "alert-metric-types": [r"google_logging_metric\.refusals\.name\}, not the name of a google_logging_metric",
                           r"missing AND before 'and'"],
    "alerts-opt-in": [r"default \[\]\) is missing", r"refusal_burst: count = none"],
    "alerts-cover-failures": [r"refusal burst", r"keys_unavailable", r"token fetch", r"key-set fetch"],
    "iap-opt-in": [r"caller iap_enabled = true", r"caller_iap_agent: count must be", r"no google_iap_web_cloud_run_service_iam_member",
                   r"IAP API is not enabled"],
    "iap-service-settings": [r"AUTH_IAP_AUDIENCES resolves to", r"does not include the caller's IAP audience",
                             r"does not take var\.iap_members"],
}

def run_all(folder: Path, contract: dict) -> list[tuple[str, str, list[str]]]:
    cfg = load_dir(folder)
    out = []
    for name, what, fn in CHECKS:
        try:
            errs = fn(cfg, contract)
        except Exception as e:  # noqa: BLE001  a crash is a failure with its reason
            errs = [f"check crashed: {type(e).__name__}: {e}"]
        out.append((name, what, errs))
    return out


def main(argv: list[str]) -> int:
    expect_fail = "--expect-fail" in argv
    args = [a for a in argv[1:] if a != "--expect-fail"]
    folder = Path(args[0]) if args else ROOT / "terraform"
    results = run_all(folder, load_contract())
    passed = failed = 0
    for name, what, errs in results:
        if expect_fail:
            missing = [p for p in EXPECTED_IN_BAD_FIXTURE.get(name, []) if not any(re.search(p, e) for e in errs)]
            ok = bool(errs) and not missing
            print(f"selftest: {'ok (fails as it must)' if ok else 'NOT DETECTED':22} {name}"
                  + (f"  first: {errs[0]}" if errs else "")
                  + (f"  (expected but not reported: {missing})" if missing else ""))
        else:
            ok = not errs
            print(f"monitoring: {'PASS' if ok else 'FAIL'} {name}: {what}")
            for e in errs:
                print(f"    - {e}")
        passed += ok
        failed += not ok
    print(f"{'selftest' if expect_fail else 'monitoring'}: {passed} passed, {failed} failed ({folder})")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
