#!/usr/bin/env python3
"""deploy/cloudbuild.yaml agrees with the Dockerfile and with terraform/'s build_command.

  - one docker build step per Dockerfile target (caller, called), tagged into
    REGION-docker.pkg.dev/PROJECT_ID/REPOSITORY/<target>:TAG, and both tags under `images`;
  - every ${_X} it uses has a default in `substitutions` and is set by the build_command output;
  - the build has a timeout above Cloud Build's 10-minute default and logs to Cloud Logging only
    (required with the user-specified service account build_command passes);
  - terraform's image paths (locals caller_image_tagged/called_image_tagged) are the same paths;
  - each build pulls the Rust image through mirror.gcr.io (Docker Hub's anonymous pull limit
    hits Cloud Build's shared addresses): --build-arg=RUST_IMAGE=mirror.gcr.io/library/X,
    X the Dockerfile's default docker.io/library/X, which stays usable for local builds.

Usage: check_cloudbuild.py [CLOUDBUILD_YAML]   (default deploy/cloudbuild.yaml); exit 1 on a problem.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import verdict  # noqa: E402
from tfparse import literal, load_dir, text  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    errs: list[str] = []
    cb_path = Path(argv[1]) if len(argv) > 1 else ROOT / "deploy" / "cloudbuild.yaml"
    cb = yaml.safe_load(cb_path.read_text())
    docker = (ROOT / "Dockerfile").read_text()
    default = re.search(r"^ARG RUST_IMAGE=(\S+)$", docker, re.M)
    default = default.group(1) if default else ""
    if not default.startswith("docker.io/library/"):
        errs.append(f"Dockerfile ARG RUST_IMAGE={default!r}: want a docker.io/library/ default (local builds)")
    mirror = "mirror.gcr.io/library/" + default.removeprefix("docker.io/library/")
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
        if f"--build-arg=RUST_IMAGE={mirror}" not in args:
            errs.append(f"step {step.get('id')}: pull the Rust image through the mirror: --build-arg=RUST_IMAGE={mirror}")
        if args[-1] != ".":
            errs.append(f"step {step.get('id')}: the build context must be the repository root '.'")
    for t in ("caller", "called"):
        want = f"${{_REGION}}-docker.pkg.dev/${{PROJECT_ID}}/${{_REPOSITORY}}/{t}:${{_TAG}}"
        if tags.get(t) != want:
            errs.append(f"no build step --target={t} --tag={want} (have {tags.get(t)})")
        if want not in cb.get("images", []):
            errs.append(f"images does not list {want}")
    used = set(re.findall(r"\$\{(_[A-Z0-9_]+)\}", cb_path.read_text()))
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
    for flag in ("--config=deploy/cloudbuild.yaml", "--ignore-file=deploy/gcloudignore", "--service-account=",
                 "--gcs-source-staging-dir=gs://${google_storage_bucket.build_source.name}/"):
        if flag not in cmd:
            errs.append(f"terraform output build_command lacks {flag}")
    for t in ("caller", "called"):
        img = text(cfg.locals.get(f"{t}_image_tagged"))
        if f"/${{var.name_prefix}}/{t}:${{var.image_tag}}" not in img:
            errs.append(f"local.{t}_image_tagged {img} does not match the pushed path .../REPOSITORY/{t}:TAG")
    ignore = (ROOT / "deploy" / "gcloudignore").read_text().split()
    for must in ("terraform/", "target/", ".git"):
        if must not in ignore:
            errs.append(f"deploy/gcloudignore must leave out {must} (state with secrets, build output)")
    repo = cfg.resource("google_artifact_registry_repository", "images").body
    if text(repo.get("repository_id")) != "var.name_prefix" or literal(repo.get("format")) != "DOCKER":
        errs.append("the Artifact Registry repository must be a DOCKER repository named var.name_prefix")

    return verdict("cloudbuild", errs)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
