#!/usr/bin/env python3
"""README's Deploy section names the roles that a first `terraform apply` and build need.

The roles follow from the resource types terraform/ uses (ROLE_FOR): every type must have an
entry here, so a new kind of resource forces a look at the documented roles, and every role
must appear in the deploy guide (docs/deploy.md, or a README's `## Deploy` section), with Owner as the one-role alternative.
"Editor plus ..." lists are refused: Editor cannot set IAM policies on Cloud Run services,
Artifact Registry repositories, secrets or buckets, nor turn off Cloud Run's invoker check.

Usage: check_docs.py [DOC]   (default docs/deploy.md); exit 1 on a problem.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import verdict  # noqa: E402
from tfparse import load_dir  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# resource/data type -> the predefined role whose permissions creating it needs
ROLE_FOR = {
    "google_project_service": "roles/serviceusage.serviceUsageAdmin",
    "data.google_project": "roles/serviceusage.serviceUsageAdmin",  # resourcemanager.projects.get
    "google_service_account": "roles/iam.serviceAccountAdmin",
    "google_project_iam_member": "roles/resourcemanager.projectIamAdmin",
    "google_artifact_registry_repository": "roles/artifactregistry.admin",
    "google_artifact_registry_repository_iam_member": "roles/artifactregistry.admin",  # repositories.setIamPolicy
    "data.google_artifact_registry_docker_image": "roles/artifactregistry.admin",
    "google_storage_bucket": "roles/storage.admin",
    "google_storage_bucket_iam_member": "roles/storage.admin",  # buckets.setIamPolicy
    "google_sql_database_instance": "roles/cloudsql.admin",
    "google_sql_database": "roles/cloudsql.admin",
    "google_sql_user": "roles/cloudsql.admin",
    "google_secret_manager_secret": "roles/secretmanager.admin",
    "google_secret_manager_secret_version": "roles/secretmanager.admin",
    "google_secret_manager_secret_iam_member": "roles/secretmanager.admin",
    "google_cloud_run_v2_service": "roles/run.admin",  # invoker_iam_disabled needs run.services.setIamPolicy
    "google_cloud_run_v2_service_iam_member": "roles/run.admin",  # services.setIamPolicy
    "google_compute_network": "roles/compute.networkAdmin",
    "google_compute_subnetwork": "roles/compute.networkAdmin",
    # IAP access for iap_members (iap.webServices.setIamPolicy): IAP Policy Admin, per Google's
    # "Configure IAP for Cloud Run" (the caller's iap_enabled itself needs roles/run.admin).
    "google_iap_web_cloud_run_service_iam_member": "roles/iap.admin",
    "google_logging_metric": "roles/logging.configWriter",  # logging.logMetrics.create
    "google_monitoring_alert_policy": "roles/monitoring.alertPolicyEditor",
}
# needed whatever the types: deploying services that run as the new accounts and building
# as the build account (iam.serviceAccounts.actAs), and submitting the build
ALWAYS = ["roles/iam.serviceAccountUser", "roles/cloudbuild.builds.editor"]
NOT_GOOGLE = ("random_", "time_")


def deploy_section(readme: str) -> str:
    """A README's `## Deploy` section, or the whole of a deploy guide titled `# Deploy...`."""
    m = re.search(r"^## Deploy\n(.*?)(?=^## )", readme, re.M | re.S)
    if m:
        return m.group(1)
    return readme if readme.startswith("# Deploy") else ""


def main(argv: list[str]) -> int:
    readme = Path(argv[1]) if len(argv) > 1 else ROOT / "docs" / "deploy.md"
    section = deploy_section(readme.read_text())
    errs: list[str] = []
    if not section:
        errs.append(f"{readme}: no `## Deploy` section")
    cfg = load_dir(ROOT / "terraform")
    types = {r.type for r in cfg.resources} | {f"data.{d.type}" for d in cfg.data}
    roles = set(ALWAYS)
    for t in sorted(types):
        if t.removeprefix("data.").startswith(NOT_GOOGLE):
            continue
        if t not in ROLE_FOR:
            errs.append(f"terraform/ uses {t}: add the role it needs to deploy/check_docs.py ROLE_FOR and README")
            continue
        roles.add(ROLE_FOR[t])
    for role in sorted(roles):
        if f"`{role}`" not in section:
            errs.append(f"{readme.name} Deploy section does not list `{role}`")
    if not re.search(r"\*\*Owner\*\*|`roles/owner`", section):
        errs.append(f"{readme.name} Deploy section does not offer Owner as the simple alternative")
    if re.search(r"Editor plus", section):
        errs.append(f"{readme.name} Deploy section still offers \"Editor plus ...\": Editor cannot set IAM policies "
                    "on Cloud Run services, repositories, secrets or buckets")
    return verdict("docs", errs, readme.name, f"OK: {len(roles)} roles documented")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
