#!/usr/bin/env bash
# Every offline check of the deployment files (Dockerfile, terraform/, deploy/), in one command:
#
#   bash deploy/check.sh          all checks, the image smoke test included
#   DEPLOY_SMOKE=0 bash deploy/check.sh   everything but the smoke test (no release build)
#
# Exits non-zero when any check fails. Tools come from a virtualenv with pinned versions
# (deploy/requirements.txt), created on first use under ~/.cache. terraform (fmt, console)
# comes from PATH; where it is missing those checks say SKIPPED and the others still run.
# Each check that can pass is also run on a broken fixture (deploy/fixtures/) where it must fail.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CLI_CONFIG_FILE=/dev/null CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 PYTHONDONTWRITEBYTECODE=1

start=$(date +%s)
passed=0
failed=0
failures=()

step() { printf '\n==> deploy: %s\n' "$*"; }
run() { # name command...: the command must succeed
  local name=$1
  shift
  step "$name"
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$name")
    printf 'deploy: FAILED: %s\n' "$name"
  fi
}
run_fails() { # name command...: the command must FAIL (negative self-test)
  local name=$1
  shift
  step "$name (must be rejected)"
  if "$@"; then
    failed=$((failed + 1))
    failures+=("$name")
    printf 'deploy: FAILED: %s: the broken fixture was accepted\n' "$name"
  else
    passed=$((passed + 1))
    printf 'deploy: ok, rejected as it must be\n'
  fi
}

# ---- tools --------------------------------------------------------------------------------
have_terraform=1
if ! command -v terraform >/dev/null; then
  # No registry this machine reaches ships Terraform: say so loudly and run the rest.
  have_terraform=0
  export DEPLOY_NO_TERRAFORM=1
  printf '\n*** SKIPPED: terraform fmt and the terraform console checks: terraform is not on PATH ***\n'
fi
venv="${DEPLOY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/invoker-deploy-venv}"
stamp="$venv/.requirements-$(sha256sum deploy/requirements.txt | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  step "installing pinned tools into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r deploy/requirements.txt
  touch "$stamp"
fi
py="$venv/bin/python"
hadolint="$venv/bin/hadolint"
shellcheck="$venv/bin/shellcheck"
echo "deploy: $( ((have_terraform)) && terraform version | head -n1), $("$hadolint" --version), shellcheck $("$shellcheck" --version | sed -n 's/^version: //p'), python-hcl2 $("$py" -c 'import importlib.metadata as m; print(m.version("python-hcl2"))')"

# ---- Terraform ----------------------------------------------------------------------------
if ((have_terraform)); then
  run "terraform fmt" terraform fmt -check -recursive -diff terraform/
fi
run "provider schema: terraform/ against google 7.x (deploy/schemas/)" "$py" deploy/check_schema.py terraform
run "provider schema: self-test on deploy/fixtures/bad" "$py" deploy/check_schema.py --expect-fail deploy/fixtures/bad
run "invariants: terraform/" "$py" deploy/check_invariants.py terraform
run "invariants: self-test on deploy/fixtures/bad" "$py" deploy/check_invariants.py --expect-fail deploy/fixtures/bad
run "metrics, alerts and IAP: terraform/ against deploy/log-fields.json" "$py" deploy/check_monitoring.py terraform
run "metrics, alerts and IAP: self-test on deploy/fixtures/bad-monitoring" \
  "$py" deploy/check_monitoring.py --expect-fail deploy/fixtures/bad-monitoring

# ---- docs/deploy.md: the roles a first deployment needs ---------------------------------
run "docs/deploy.md: the roles terraform/ needs are documented" "$py" deploy/check_docs.py docs/deploy.md
run_fails "README Deploy roles: self-test on deploy/fixtures/README.bad.md" \
  "$py" deploy/check_docs.py deploy/fixtures/README.bad.md

# ---- Dockerfile, Cloud Build, scripts -----------------------------------------------------
run "hadolint Dockerfile" "$hadolint" --no-color Dockerfile
run_fails "hadolint: self-test on deploy/fixtures/Dockerfile.bad" "$hadolint" --no-color deploy/fixtures/Dockerfile.bad
run "Dockerfile properties" "$py" deploy/check_dockerfile.py Dockerfile .dockerignore
run_fails "Dockerfile properties: self-test on deploy/fixtures/Dockerfile.bad" \
  "$py" deploy/check_dockerfile.py deploy/fixtures/Dockerfile.bad deploy/fixtures/dockerignore.bad
run "cloudbuild.yaml matches the Dockerfile and terraform outputs" "$py" deploy/check_cloudbuild.py
run_fails "cloudbuild.yaml: self-test on deploy/fixtures/cloudbuild.bad.yaml" \
  "$py" deploy/check_cloudbuild.py deploy/fixtures/cloudbuild.bad.yaml
run "shellcheck deploy/*.sh" "$shellcheck" deploy/check.sh deploy/smoke.sh

# ---- the images themselves ----------------------------------------------------------------
if [ "${DEPLOY_SMOKE:-1}" = 0 ]; then
  step "image smoke test"
  echo "*** SKIPPED: image smoke test: DEPLOY_SMOKE=0 ***"
else
  run "image smoke test (deploy/smoke.sh)" bash deploy/smoke.sh
fi

echo
if [ "$failed" -gt 0 ]; then
  printf 'deploy: failed checks: %s\n' "${failures[*]}"
fi
echo "deploy checks took $(($(date +%s) - start)) s"
echo "deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
