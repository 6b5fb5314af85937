# invoker on Cloud Run: caller -> called with Google-signed ID tokens, called -> Cloud SQL.

# ---- project and APIs ------------------------------------------------------------------

locals {
  apis = sort(concat([
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "logging.googleapis.com", # Cloud Run and Cloud Build logs (CLOUD_LOGGING_ONLY)
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "sqladmin.googleapis.com",
    "storage.googleapis.com", # the build's source bucket
    ],
    var.called_private ? ["compute.googleapis.com"] : [],
    var.iap_enabled ? ["iap.googleapis.com"] : [],
    length(var.alert_notification_channels) > 0 ? ["monitoring.googleapis.com"] : [], # alert policies (monitoring.tf)
  ))
}

resource "google_project_service" "apis" {
  for_each = toset(local.apis)

  project = var.project_id
  service = each.value

  # Leave the APIs on at `terraform destroy`: other things in the project may use them.
  disable_on_destroy = false
}

# An API answers 403 SERVICE_DISABLED for a while after it was enabled ("If you enabled this
# API recently, wait a few minutes"), and the first resources are created seconds later.
# Everything that uses an API depends on this wait, not on the enablement itself. It runs
# once (and again when the list of APIs changes), not on every apply.
resource "time_sleep" "apis_enabled" {
  create_duration = "120s"

  triggers = {
    apis = join(",", local.apis)
  }

  depends_on = [google_project_service.apis]
}

data "google_project" "this" {
  project_id = var.project_id

  depends_on = [time_sleep.apis_enabled]
}

locals {
  project_number = data.google_project.this.number
}

# ---- images ----------------------------------------------------------------------------

resource "google_artifact_registry_repository" "images" {
  project       = var.project_id
  location      = var.region
  repository_id = var.name_prefix
  format        = "DOCKER"
  description   = "Container images of the ${var.name_prefix} caller and called services."

  # Keep the images_to_keep most recent versions of each image; delete other versions once
  # they are 30 days old. Keep policies win over delete policies.
  cleanup_policy_dry_run = false
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = var.images_to_keep
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      tag_state  = "ANY"
      older_than = "2592000s" # 30 days
    }
  }

  depends_on = [time_sleep.apis_enabled]
}

# The digest each service runs: the image that the tag var.image_tag names when Terraform
# plans. Re-pushing a tag changes nothing until the next apply, and a revision never
# silently picks up another image when it scales out.
data "google_artifact_registry_docker_image" "caller" {
  project       = var.project_id
  location      = google_artifact_registry_repository.images.location
  repository_id = google_artifact_registry_repository.images.repository_id
  image_name    = "caller:${var.image_tag}"
}

data "google_artifact_registry_docker_image" "called" {
  project       = var.project_id
  location      = google_artifact_registry_repository.images.location
  repository_id = google_artifact_registry_repository.images.repository_id
  image_name    = "called:${var.image_tag}"
}

locals {
  caller_image = coalesce(var.caller_image, data.google_artifact_registry_docker_image.caller.self_link)
  called_image = coalesce(var.called_image, data.google_artifact_registry_docker_image.called.self_link)
}

# Cloud Build runs as this account (deploy/cloudbuild.yaml, `terraform output build_command`):
# new projects' default build account may have no roles at all.
resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-build"
  display_name = "${var.name_prefix} image builds"

  depends_on = [time_sleep.apis_enabled]
}

# `gcloud builds submit` uploads the source here (--gcs-source-staging-dir in build_command),
# not to the project-wide gs://PROJECT_cloudbuild, so the build account reads this bucket
# only. Sources are deleted after 7 days; the bucket goes with `terraform destroy`.
resource "google_storage_bucket" "build_source" {
  project                     = var.project_id
  name                        = "${var.project_id}-${var.name_prefix}-build-source"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true

  lifecycle_rule {
    condition {
      age = 7
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [time_sleep.apis_enabled]
}

resource "google_storage_bucket_iam_member" "build_source_reader" {
  bucket = google_storage_bucket.build_source.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.build.member
}

resource "google_artifact_registry_repository_iam_member" "build_writer" {
  project    = var.project_id
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.build.member
}

resource "google_project_iam_member" "build_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter" # build logs (the build uses CLOUD_LOGGING_ONLY)
  member  = google_service_account.build.member
}

# IAM grants take a minute or more to reach every Google service, and a build submitted
# right after them fails to read its source or write its logs. Step 2 of the README targets
# this wait, so the build account's grants are in force when it returns.
resource "time_sleep" "build_grants" {
  create_duration = "90s"

  triggers = {
    member = google_service_account.build.member
  }

  depends_on = [
    google_storage_bucket_iam_member.build_source_reader,
    google_artifact_registry_repository_iam_member.build_writer,
    google_project_iam_member.build_log_writer,
  ]
}

# ---- service accounts: one per service -------------------------------------------------

resource "google_service_account" "caller" {
  project      = var.project_id
  account_id   = local.caller_name
  display_name = "${var.name_prefix} caller service"

  depends_on = [time_sleep.apis_enabled]
}

resource "google_service_account" "called" {
  project      = var.project_id
  account_id   = local.called_name
  display_name = "${var.name_prefix} called service"

  depends_on = [time_sleep.apis_enabled]
}

# ---- database: Cloud SQL for PostgreSQL, password in Secret Manager ---------------------

# Cloud SQL instance names cannot be reused for a week after deletion: a suffix keeps a
# destroy-and-apply cycle working.
resource "random_id" "db_suffix" {
  byte_length = 3
}

# Ephemeral: generated during apply and written only into write-only arguments (the user's
# password_wo, the secret's secret_data_wo), so the password appears in no plan and no state.
# The *_wo_version arguments say when to write it again: bump both together to rotate.
ephemeral "random_password" "db" {
  length  = 32
  special = false # the password goes into a URL: no characters that need escaping
}

locals {
  db_password_version = 1
}

resource "google_sql_database_instance" "db" {
  project             = var.project_id
  name                = "${var.name_prefix}-${random_id.db_suffix.hex}"
  region              = var.region
  database_version    = var.db_version
  deletion_protection = var.deletion_protection

  settings {
    # Shared-core tiers (db-f1-micro, db-g1-small) exist only in the Enterprise edition,
    # and newer PostgreSQL versions default to Enterprise Plus: say it explicitly.
    edition                     = "ENTERPRISE"
    tier                        = var.db_tier
    availability_type           = "ZONAL"
    disk_type                   = "PD_SSD"
    disk_size                   = 10
    disk_autoresize             = true
    deletion_protection_enabled = var.deletion_protection

    # Public IP without authorized networks: reachable only through the Cloud SQL
    # connector that Cloud Run's cloud_sql_instance volume runs (IAM + mTLS).
    ip_configuration {
      ipv4_enabled = true
      # Only encrypted connections (the connector's TLS); plain-text ones are refused.
      ssl_mode = "ENCRYPTED_ONLY"
    }

    backup_configuration {
      enabled    = true
      start_time = "03:00"

      backup_retention_settings {
        retained_backups = 7
      }
    }
  }

  depends_on = [time_sleep.apis_enabled]
}

resource "google_sql_database" "called" {
  project  = var.project_id
  instance = google_sql_database_instance.db.name
  name     = "invoker"

  # PostgreSQL refuses to drop a database other roles can access; the instance's own
  # deletion removes it anyway.
  deletion_policy = "ABANDON"
}

resource "google_sql_user" "called" {
  project  = var.project_id
  instance = google_sql_database_instance.db.name
  name     = "called"

  password_wo         = ephemeral.random_password.db.result
  password_wo_version = local.db_password_version

  # PostgreSQL refuses to drop a role that owns objects; the instance's deletion removes it.
  deletion_policy = "ABANDON"
}

resource "google_secret_manager_secret" "database_url" {
  project   = var.project_id
  secret_id = "${var.name_prefix}-database-url"

  replication {
    auto {}
  }

  depends_on = [time_sleep.apis_enabled]
}

resource "google_secret_manager_secret_version" "database_url" {
  secret                 = google_secret_manager_secret.database_url.id
  secret_data_wo         = "postgres://${google_sql_user.called.name}:${ephemeral.random_password.db.result}@localhost/${google_sql_database.called.name}?host=/cloudsql/${google_sql_database_instance.db.connection_name}"
  secret_data_wo_version = local.db_password_version

  lifecycle {
    # A re-created user got this run's password: the secret must get the same one.
    replace_triggered_by = [google_sql_user.called]
  }
}

# Only the called service's account may read the secret and connect to Cloud SQL.
resource "google_secret_manager_secret_iam_member" "called_database_url" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.database_url.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.called.member
}

# roles/cloudsql.client on this one instance only: Cloud SQL has no instance-level IAM
# policy, so the project grant carries an IAM condition on the instance's resource name.
resource "google_project_iam_member" "called_cloudsql_client" {
  project = var.project_id
  role    = "roles/cloudsql.client"
  member  = google_service_account.called.member

  condition {
    title       = "only ${google_sql_database_instance.db.name}"
    description = "Connect to the ${var.name_prefix} Cloud SQL instance only."
    expression  = "resource.name == 'projects/${var.project_id}/instances/${google_sql_database_instance.db.name}' && resource.type == 'sqladmin.googleapis.com/Instance'"
  }
}

# ---- optional private hop: called on internal ingress, the caller in a VPC ---------------

resource "google_compute_network" "private" {
  count = var.called_private ? 1 : 0

  project                 = var.project_id
  name                    = "${var.name_prefix}-private"
  auto_create_subnetworks = false

  depends_on = [time_sleep.apis_enabled]
}

resource "google_compute_subnetwork" "private" {
  count = var.called_private ? 1 : 0

  project       = var.project_id
  name          = "${var.name_prefix}-private-${var.region}"
  region        = var.region
  network       = google_compute_network.private[0].id
  ip_cidr_range = var.private_subnet_cidr
  # The caller sends everything through the VPC (egress ALL_TRAFFIC): Google APIs, the
  # key set and called's run.app URL are reached through Private Google Access.
  private_ip_google_access = true
}

# ---- the called service ------------------------------------------------------------------

resource "google_cloud_run_v2_service" "called" {
  project             = var.project_id
  name                = local.called_name
  location            = var.region
  deletion_protection = var.deletion_protection
  # called_private: only traffic from a VPC network (the caller's Direct VPC egress) reaches
  # it; otherwise any network may, and IAM alone decides (only the caller's account).
  ingress = var.called_private ? "INGRESS_TRAFFIC_INTERNAL_ONLY" : "INGRESS_TRAFFIC_ALL"

  # IAM invoker check on (default): only principals with roles/run.invoker get through,
  # and AUTH_MODE below is "platform". Off: AUTH_MODE is "verify". One local drives both.
  invoker_iam_disabled = local.called_invoker_iam_disabled
  custom_audiences     = [local.called_audience]

  template {
    service_account                  = google_service_account.called.email
    max_instance_request_concurrency = 80
    timeout                          = "60s"

    scaling {
      min_instance_count = 0
      max_instance_count = var.max_instances
    }

    volumes {
      name = "cloudsql"
      cloud_sql_instance {
        instances = [google_sql_database_instance.db.connection_name]
      }
    }

    containers {
      image = local.called_image

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = "1"
          memory = "512Mi"
        }
        cpu_idle          = true
        startup_cpu_boost = true
      }

      env {
        name  = "AUTH_MODE"
        value = local.called_auth_mode
      }
      env {
        name  = "AUTH_AUDIENCES"
        value = local.called_audience
      }
      env {
        # Only the caller's account is allowed, the same account that alone holds
        # roles/run.invoker on this service (google_cloud_run_v2_service_iam_member.called_invoker).
        name  = "AUTH_ALLOWED_PRINCIPALS"
        value = google_service_account.caller.email
      }
      env {
        # End users' identities: only the caller may forward one (X-Forwarded-Authorization),
        # for the audiences the caller itself accepts, checked the way the caller's own
        # AUTH_MODE checks it (platform behind the caller's IAM check, else verify).
        name  = "AUTH_FORWARDERS"
        value = google_service_account.caller.email
      }
      env {
        # The caller's audiences and, with IAP on, IAP's audience of the caller: the caller
        # then forwards IAP's assertion, which called verifies with IAP's rules.
        name  = "AUTH_FORWARDED_AUDIENCES"
        value = local.called_forwarded_audiences
      }
      env {
        name  = "AUTH_FORWARDED_MODE"
        value = local.caller_auth_mode
      }
      env {
        name  = "GOOGLE_CLOUD_PROJECT"
        value = var.project_id
      }
      env {
        name  = "LOG_FORMAT"
        value = "json"
      }
      env {
        name  = "RUST_LOG"
        value = "info"
      }
      env {
        # The pool's share of the Cloud SQL tier's connections (locals.tf).
        name  = "DATABASE_MAX_CONNECTIONS"
        value = tostring(local.db_connections_per_instance)
      }
      env {
        name = "DATABASE_URL"
        value_source {
          secret_key_ref {
            secret  = google_secret_manager_secret.database_url.secret_id
            version = google_secret_manager_secret_version.database_url.version
          }
        }
      }

      volume_mounts {
        name       = "cloudsql"
        mount_path = "/cloudsql"
      }

      # Ready = the store answers: a revision that cannot reach Cloud SQL never takes traffic.
      startup_probe {
        initial_delay_seconds = 0
        period_seconds        = 3
        timeout_seconds       = 2
        failure_threshold     = 40
        http_get {
          path = "/health/ready"
        }
      }

      liveness_probe {
        period_seconds    = 15
        timeout_seconds   = 3
        failure_threshold = 3
        http_get {
          path = "/health/live"
        }
      }
    }
  }

  depends_on = [
    google_secret_manager_secret_iam_member.called_database_url,
    google_project_iam_member.called_cloudsql_client,
  ]
}

# Exactly one principal may invoke called: the caller's service account.
resource "google_cloud_run_v2_service_iam_member" "called_invoker" {
  project  = var.project_id
  location = google_cloud_run_v2_service.called.location
  name     = google_cloud_run_v2_service.called.name
  role     = "roles/run.invoker"
  member   = google_service_account.caller.member
}

# ---- the caller service ------------------------------------------------------------------

resource "google_cloud_run_v2_service" "caller" {
  project             = var.project_id
  name                = local.caller_name
  location            = var.region
  deletion_protection = var.deletion_protection
  ingress             = "INGRESS_TRAFFIC_ALL"
  custom_audiences    = [local.caller_audience]

  # Private (default): only caller_invokers get through Cloud Run's IAM check, AUTH_MODE is
  # platform. Public (allow_unauthenticated_caller): the check is off, AUTH_MODE is verify.
  invoker_iam_disabled = local.caller_invoker_iam_disabled

  # Identity-Aware Proxy (var.iap_enabled): IAP checks every request first, on every ingress
  # path, then passes Cloud Run's IAM check as its service agent (run.invoker below). The
  # caller keeps AUTH_MODE platform and takes the person from IAP's signed header.
  iap_enabled = var.iap_enabled

  template {
    service_account                  = google_service_account.caller.email
    max_instance_request_concurrency = 80
    timeout                          = "60s"

    scaling {
      min_instance_count = 0
      max_instance_count = var.max_instances
    }

    # called_private: all outbound traffic goes into the VPC (Direct VPC egress), where
    # called's internal ingress accepts it.
    dynamic "vpc_access" {
      for_each = var.called_private ? [1] : []
      content {
        egress = "ALL_TRAFFIC"
        network_interfaces {
          network    = google_compute_network.private[0].id
          subnetwork = google_compute_subnetwork.private[0].id
        }
      }
    }

    containers {
      image = local.caller_image

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = "1"
          memory = "512Mi"
        }
        cpu_idle          = true
        startup_cpu_boost = true
      }

      env {
        name  = "AUTH_MODE"
        value = local.caller_auth_mode
      }
      env {
        name  = "AUTH_AUDIENCES"
        value = local.caller_audiences
      }
      env {
        name  = "AUTH_ALLOWED_PRINCIPALS"
        value = local.caller_allowed_principals
      }
      env {
        # IAP's signed-header audience of this service; empty (IAP assertions not accepted)
        # unless var.iap_enabled.
        name  = "AUTH_IAP_AUDIENCES"
        value = join(",", local.caller_iap_audiences)
      }
      env {
        name  = "CALLED_URL"
        value = google_cloud_run_v2_service.called.uri
      }
      env {
        # The token's audience is called's deterministic URL, whichever of its URLs
        # CALLED_URL is: called accepts exactly that audience (AUTH_AUDIENCES above).
        name  = "CALLED_AUDIENCE"
        value = local.called_audience
      }
      env {
        name  = "TOKEN_SOURCE"
        value = "metadata"
      }
      env {
        name  = "GOOGLE_CLOUD_PROJECT"
        value = var.project_id
      }
      env {
        name  = "LOG_FORMAT"
        value = "json"
      }
      env {
        name  = "RUST_LOG"
        value = "info"
      }

      # The caller's /health/ready needs a token and an answer from called. As a startup
      # gate it would fail the first deployment while the run.invoker grant on called is
      # still propagating (IAM changes take minutes), so startup waits for /health/live.
      startup_probe {
        initial_delay_seconds = 0
        period_seconds        = 2
        timeout_seconds       = 1
        failure_threshold     = 15
        http_get {
          path = "/health/live"
        }
      }

      liveness_probe {
        period_seconds    = 15
        timeout_seconds   = 3
        failure_threshold = 3
        http_get {
          path = "/health/live"
        }
      }
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.called_invoker]
}

resource "google_cloud_run_v2_service_iam_member" "caller_invokers" {
  for_each = toset(var.caller_invokers)

  project  = var.project_id
  location = google_cloud_run_v2_service.caller.location
  name     = google_cloud_run_v2_service.caller.name
  role     = "roles/run.invoker"
  member   = each.value
}

# ---- Identity-Aware Proxy on the caller (var.iap_enabled) ---------------------------------

# IAP's service agent invokes the caller for the people IAP let through. The agent exists
# once the IAP API is enabled and IAP is used; if this grant fails with "service account
# does not exist", run `gcloud beta services identity create --service=iap.googleapis.com
# --project=PROJECT` once and apply again.
resource "google_cloud_run_v2_service_iam_member" "caller_iap_agent" {
  count = var.iap_enabled ? 1 : 0

  project  = var.project_id
  location = google_cloud_run_v2_service.caller.location
  name     = google_cloud_run_v2_service.caller.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${local.iap_service_agent}"
}

# The people (users, groups, domains) IAP lets through to the caller.
resource "google_iap_web_cloud_run_service_iam_member" "caller_iap_members" {
  for_each = var.iap_enabled ? toset(var.iap_members) : toset([])

  project                = var.project_id
  location               = google_cloud_run_v2_service.caller.location
  cloud_run_service_name = google_cloud_run_v2_service.caller.name
  role                   = "roles/iap.httpsResourceAccessor"
  member                 = each.value
}
