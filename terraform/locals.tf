# Values derived from the variables alone (plus local.project_number, defined in main.tf
# from the google_project data source). Kept apart so that deploy/check.sh can evaluate
# them with `terraform console` offline and test the mapping for every setting.

locals {
  caller_name = "${var.name_prefix}-caller"
  called_name = "${var.name_prefix}-called"

  # Each service's deterministic URL, https://SERVICE-PROJECT_NUMBER.REGION.run.app. A
  # service cannot read its own `uri` attribute (a self-reference is a cycle), and `uri` may
  # be the older https://SERVICE-HASH-XX.a.run.app form anyway; this one is known before
  # the service exists. It is also listed in the service's custom_audiences, so Cloud Run's
  # IAM check accepts tokens minted for it even where the URL itself were not assigned.
  caller_audience = "https://${local.caller_name}-${local.project_number}.${var.region}.run.app"
  called_audience = "https://${local.called_name}-${local.project_number}.${var.region}.run.app"

  # called: behind Cloud Run's IAM check the token arrives with its signature stripped, so
  # the service trusts the platform's verification (platform); with the check disabled it
  # must verify signatures itself (verify). Both the service's invoker_iam_disabled and its
  # AUTH_MODE come from this one variable, so they cannot disagree.
  called_invoker_iam_disabled = var.called_invoker_iam_disabled
  called_auth_mode            = local.called_invoker_iam_disabled ? "verify" : "platform"

  # caller: private by default (IAM check on, platform). When public, its invoker check is
  # disabled (invoker_iam_disabled, Google's recommended way: no allUsers member), Cloud Run
  # checks nothing and the token reaches the container intact, so the caller verifies
  # signatures itself: verify. The same local drives called's AUTH_FORWARDED_MODE: the end
  # user's token that the caller forwards is the one Cloud Run checked (and stripped) at the
  # caller, or, with the caller's check off, the intact token. One local, three settings
  # (caller invoker_iam_disabled, caller AUTH_MODE, called AUTH_FORWARDED_MODE): they cannot disagree.
  caller_invoker_iam_disabled = var.allow_unauthenticated_caller
  caller_auth_mode            = local.caller_invoker_iam_disabled ? "verify" : "platform"

  # The caller's application allow-list, from the same principals that get run.invoker:
  # "user:a@b" and "serviceAccount:s@p" -> the email; "domain:example.com" -> "*@example.com".
  # With IAP on, the people IAP lets through too (the allow-list applies to the person in
  # IAP's assertion): iap_members the same way, groups left out (a group cannot be expanded
  # here; var.iap_allowed_principals' validation insists on its people instead).
  caller_allowed_principals = join(",", distinct(concat([
    for p in var.caller_invokers :
    startswith(p, "domain:") ? "*@${trimprefix(p, "domain:")}" : replace(p, "/^(user|serviceAccount):/", "")
  ], local.iap_allowed_principals)))

  caller_audiences = join(",", concat([local.caller_audience], var.caller_extra_audiences))

  # ---- Identity-Aware Proxy on the caller (var.iap_enabled) -----------------------------
  # The `aud` of IAP's signed header (X-Goog-IAP-JWT-Assertion) when IAP is enabled on the
  # Cloud Run service itself: /projects/PROJECT_NUMBER/locations/REGION/services/SERVICE
  # (Google's "Securing your app with signed headers"). IAP on a load balancer's backend
  # service would use /projects/PROJECT_NUMBER/global/backendServices/ID instead.
  caller_iap_audience  = "/projects/${local.project_number}/locations/${var.region}/services/${local.caller_name}"
  caller_iap_audiences = var.iap_enabled ? [local.caller_iap_audience] : []
  # IAP's service agent: it passes Cloud Run's IAM check on the caller for the people IAP admitted.
  iap_service_agent = "service-${local.project_number}@gcp-sa-iap.iam.gserviceaccount.com"
  iap_allowed_principals = var.iap_enabled ? concat([
    for p in var.iap_members :
    startswith(p, "domain:") ? "*@${trimprefix(p, "domain:")}" : replace(p, "/^(user|serviceAccount):/", "")
    if !startswith(p, "group:")
  ], var.iap_allowed_principals) : []
  # called accepts, on the end-user identity the caller forwards, the caller's own audiences
  # and, with IAP on, IAP's audience of the caller (the caller forwards IAP's assertion).
  called_forwarded_audiences = join(",", concat([local.caller_audiences], local.caller_iap_audiences))

  # The tags the build pushes. The services run these images by digest (main.tf resolves the
  # tag to REPOSITORY/NAME@sha256:... when it plans), so a re-pushed tag changes nothing
  # until the next apply, and every revision names exactly the image it runs.
  repository_host     = "${var.region}-docker.pkg.dev"
  caller_image_tagged = "${local.repository_host}/${var.project_id}/${var.name_prefix}/caller:${var.image_tag}"
  called_image_tagged = "${local.repository_host}/${var.project_id}/${var.name_prefix}/called:${var.image_tag}"

  # ---- database connections -------------------------------------------------------------
  # Cloud SQL for PostgreSQL's default max_connections follows the tier's memory
  # (https://cloud.google.com/sql/docs/postgres/quotas#cloud-sql-for-postgresql-connection-limits):
  # db-f1-micro 25, db-g1-small 50, custom tiers by memory: 3.75 GiB up to 6: 100, up to 7.5:
  # 200, up to 15: 400, up to 30: 500, up to 60: 600, up to 120: 800, then 1000.
  db_custom_memory_mb = can(regex("^db-custom-[0-9]+-([0-9]+)$", var.db_tier)) ? tonumber(regex("^db-custom-[0-9]+-([0-9]+)$", var.db_tier)[0]) : 0
  db_max_connections = (
    var.db_tier == "db-f1-micro" ? 25 :
    var.db_tier == "db-g1-small" ? 50 :
    local.db_custom_memory_mb < 6144 ? 100 :
    local.db_custom_memory_mb < 7680 ? 200 :
    local.db_custom_memory_mb < 15360 ? 400 :
    local.db_custom_memory_mb < 30720 ? 500 :
    local.db_custom_memory_mb < 61440 ? 600 :
    local.db_custom_memory_mb < 122880 ? 800 : 1000
  )
  # PostgreSQL keeps 3 (superuser_reserved_connections) for superusers; 2 more stay free
  # for you (psql, Cloud SQL Studio) while the service runs at its limit.
  db_reserved_connections = 5
  # Half of the rest per revision: during a rollout the old revision's instances still hold
  # their pools while the new revision's open theirs, so both together must fit.
  db_connection_budget = floor((local.db_max_connections - local.db_reserved_connections) / 2)
  # called's pool size (DATABASE_MAX_CONNECTIONS): the budget shared by max_instances
  # instances, at most the service's default of 10. var.max_instances' validation refuses
  # settings that leave an instance fewer than db_min_connections_per_instance.
  db_min_connections_per_instance = 2
  db_connections_per_instance     = min(10, floor(local.db_connection_budget / var.max_instances))
}
