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

  # caller: private by default (IAM check on, platform). When opened to allUsers, Cloud Run
  # checks nothing, so a token with a stripped signature must never be trusted: verify.
  caller_auth_mode = var.allow_unauthenticated_caller ? "verify" : "platform"

  # The caller's application allow-list, from the same principals that get run.invoker:
  # "user:a@b" and "serviceAccount:s@p" -> the email; "domain:example.com" -> "*@example.com".
  caller_allowed_principals = join(",", [
    for p in var.caller_invokers :
    startswith(p, "domain:") ? "*@${trimprefix(p, "domain:")}" : replace(p, "/^(user|serviceAccount):/", "")
  ])

  caller_audiences = join(",", concat([local.caller_audience], var.caller_extra_audiences))

  repository_host = "${var.region}-docker.pkg.dev"
  caller_image    = coalesce(var.caller_image, "${local.repository_host}/${var.project_id}/${var.name_prefix}/caller:${var.image_tag}")
  called_image    = coalesce(var.called_image, "${local.repository_host}/${var.project_id}/${var.name_prefix}/called:${var.image_tag}")
}
