output "caller_url" {
  description = "URL of the caller service (the one you call)."
  value       = google_cloud_run_v2_service.caller.uri
}

output "called_url" {
  description = "URL of the called service (only the caller's service account may invoke it)."
  value       = google_cloud_run_v2_service.called.uri
}

output "caller_audience" {
  description = "Audience to request for a service-account ID token for the caller (`gcloud auth print-identity-token --audiences=...`)."
  value       = local.caller_audience
}

output "caller_service_account" {
  description = "Email of the caller's service account, the only principal allowed to invoke called."
  value       = google_service_account.caller.email
}

output "image_repository" {
  description = "Artifact Registry path the images are pushed to."
  value       = "${local.repository_host}/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "build_command" {
  description = "Builds both images with Cloud Build and pushes them with tag image_tag. Run it from the repository root."
  value       = "gcloud builds submit --project=${var.project_id} --region=${var.region} --config=deploy/cloudbuild.yaml --ignore-file=deploy/gcloudignore --service-account=${google_service_account.build.id} --gcs-source-staging-dir=gs://${google_storage_bucket.build_source.name}/source --substitutions=_REGION=${var.region},_REPOSITORY=${google_artifact_registry_repository.images.repository_id},_TAG=${var.image_tag} ."

  depends_on = [time_sleep.build_grants]
}

output "test_command" {
  description = "Calls the caller as your gcloud user account, which must be listed in caller_invokers. Expect HTTP 201 and the stored entity with \"bar\": \"hello\"."
  value       = "curl -sS -X POST '${google_cloud_run_v2_service.caller.uri}/' -H \"Authorization: Bearer $(gcloud auth print-identity-token)\" -H 'Content-Type: application/json' -d '{\"foo\":\"hello\"}'"
}

output "test_command_service_account" {
  description = "The same call as a service account listed in caller_invokers (you need roles/iam.serviceAccountTokenCreator on it); replace SA_EMAIL."
  value       = "curl -sS -X POST '${google_cloud_run_v2_service.caller.uri}/' -H \"Authorization: Bearer $(gcloud auth print-identity-token --impersonate-service-account=SA_EMAIL --audiences='${local.caller_audience}' --include-email)\" -H 'Content-Type: application/json' -d '{\"foo\":\"hello\"}'"
}

output "images" {
  description = "The images the services run, by digest (what image_tag named at the last apply)."
  value = {
    caller = local.caller_image
    called = local.called_image
  }
}

output "database_instance" {
  description = "Cloud SQL instance connection name (PROJECT:REGION:INSTANCE)."
  value       = google_sql_database_instance.db.connection_name
}

output "caller_iap_audience" {
  description = "With iap_enabled: the audience (aud) of IAP's signed header for the caller, /projects/PROJECT_NUMBER/locations/REGION/services/SERVICE (the caller's AUTH_IAP_AUDIENCES, also in called's AUTH_FORWARDED_AUDIENCES). null when IAP is off."
  value       = var.iap_enabled ? local.caller_iap_audience : null
}

output "iap_url" {
  description = "With iap_enabled: the URL people open (IAP signs them in with their Google account and lets iap_members through). null when IAP is off."
  value       = var.iap_enabled ? google_cloud_run_v2_service.caller.uri : null
}

output "log_metrics" {
  description = "Types of the log-based metrics (Metrics Explorer, alert conditions): authentication refusals, token-fetch failures, key-set fetch failures."
  value = {
    auth_refusals          = "logging.googleapis.com/user/${google_logging_metric.auth_refusals.name}"
    token_fetch_failures   = "logging.googleapis.com/user/${google_logging_metric.token_fetch_failures.name}"
    key_set_fetch_failures = "logging.googleapis.com/user/${google_logging_metric.key_set_fetch_failures.name}"
  }
}
