#!/usr/bin/env python3
"""deploy/cloudbuild.yaml agrees with the Dockerfile and with terraform/'s build_command.

  - one docker build step per Dockerfile target (caller, called), tagged into
    REGION-docker.pkg.dev/PROJECT_ID/REPOSITORY/<target>:TAG, and both tags under `images`;
  - every ${_X} it uses has a default in `substitutions` and is set by the build_command output;
  - the build has a timeout above Cloud Build's 10-minute default and logs to Cloud Logging only
    (required with the user-specified service account build_command passes);
  - terraform's image paths (locals caller_image/called_image) are the same paths.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tfparse import literal, load_dir, text  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    errs: list[str] = []
    cb = yaml.safe_load((ROOT / "deploy" / "cloudbuild.yaml").read_text())
    docker = (ROOT / "Dockerfile").read_text()
    targets = sorted(set(re.findall(r"^FROM \S+ AS (caller|called)$", docker, re.M)))
    if targets != ["called", "caller"]:
        errs.append(f"Dockerfile targets {targets}")
    tags = {}
    for step in cb.get("steps", []):
        args = step.get("args", [])
        if "build" not in args:
            continue
        tgt = next((a.split("=", 1)[1] for a in args if a.startswith("--target=")), None)
        tag = next((a.split("=", 1)[1] for a in args if a.startswith("--tag=")), None)
        tags[tgt] = tag
        if args[-1] != ".":
            errs.append(f"step {step.get('id')}: the build context must be the repository root '.'")
    for t in ("caller", "called"):
        want = f"${{_REGION}}-docker.pkg.dev/${{PROJECT_ID}}/${{_REPOSITORY}}/{t}:${{_TAG}}"
        if tags.get(t) != want:
            errs.append(f"no build step --target={t} --tag={want} (have {tags.get(t)})")
        if want not in cb.get("images", []):
            errs.append(f"images does not list {want}")
    used = set(re.findall(r"\$\{(_[A-Z0-9_]+)\}", (ROOT / "deploy" / "cloudbuild.yaml").read_text()))
    subs = set((cb.get("substitutions") or {}).keys())
    if used - subs:
        errs.append(f"substitutions without defaults: {sorted(used - subs)}")
    timeout = str(cb.get("timeout", "600s"))
    if not timeout.endswith("s") or int(timeout[:-1]) <= 600:
        errs.append(f"timeout {timeout}: a release build needs more than Cloud Build's default 600s")
    if (cb.get("options") or {}).get("logging") != "CLOUD_LOGGING_ONLY":
        errs.append("options.logging must be CLOUD_LOGGING_ONLY (required with --service-account)")

    cfg = load_dir(ROOT / "terraform")
    cmd = text(cfg.outputs["build_command"].body.get("value")) if "build_command" in cfg.outputs else ""
    for s in used:
        if f"{s}=" not in cmd:
            errs.append(f"terraform output build_command does not set {s}")
    for flag in ("--config=deploy/cloudbuild.yaml", "--ignore-file=deploy/gcloudignore", "--service-account="):
        if flag not in cmd:
            errs.append(f"terraform output build_command lacks {flag}")
    for t in ("caller", "called"):
        img = text(cfg.locals.get(f"{t}_image"))
        if f"/${{var.name_prefix}}/{t}:${{var.image_tag}}" not in img:
            errs.append(f"local.{t}_image {img} does not match the pushed path .../REPOSITORY/{t}:TAG")
    ignore = (ROOT / "deploy" / "gcloudignore").read_text().split()
    for must in ("terraform/", "target/", ".git"):
        if must not in ignore:
            errs.append(f"deploy/gcloudignore must leave out {must} (state with secrets, build output)")
    repo = cfg.resource("google_artifact_registry_repository", "images").body
    if text(repo.get("repository_id")) != "var.name_prefix" or literal(repo.get("format")) != "DOCKER":
        errs.append("the Artifact Registry repository must be a DOCKER repository named var.name_prefix")

    for e in errs:
        print(f"cloudbuild: {e}")
    print(f"cloudbuild: {'OK' if not errs else f'{len(errs)} problem(s)'}")
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
