# invoker on Cloud Run: caller -> called with Google-signed ID tokens, called -> Cloud SQL.

# ---- project and APIs ------------------------------------------------------------------

resource "google_project_service" "apis" {
  for_each = toset([
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "sqladmin.googleapis.com",
  ])

  project = var.project_id
  service = each.value

  # Leave the APIs on at `terraform destroy`: other things in the project may use them.
  disable_on_destroy = false
}

data "google_project" "this" {
  project_id = var.project_id

  depends_on = [google_project_service.apis]
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

  depends_on = [google_project_service.apis]
}

# Cloud Build runs as this account (deploy/cloudbuild.yaml, `terraform output build_command`):
# new projects' default build account may have no roles at all.
resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-build"
  display_name = "${var.name_prefix} image builds"

  depends_on = [google_project_service.apis]
}

resource "google_artifact_registry_repository_iam_member" "build_writer" {
  project    = var.project_id
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.build.member
}

resource "google_project_iam_member" "build_roles" {
  for_each = toset([
    "roles/logging.logWriter",    # build logs (the build uses CLOUD_LOGGING_ONLY)
    "roles/storage.objectViewer", # the source archive `gcloud builds submit` uploads
  ])

  project = var.project_id
  role    = each.value
  member  = google_service_account.build.member
}

# ---- service accounts: one per service -------------------------------------------------

resource "google_service_account" "caller" {
  project      = var.project_id
  account_id   = local.caller_name
  display_name = "${var.name_prefix} caller service"

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "called" {
  project      = var.project_id
  account_id   = local.called_name
  display_name = "${var.name_prefix} called service"

  depends_on = [google_project_service.apis]
}

# ---- database: Cloud SQL for PostgreSQL, password in Secret Manager ---------------------

# Cloud SQL instance names cannot be reused for a week after deletion: a suffix keeps a
# destroy-and-apply cycle working.
resource "random_id" "db_suffix" {
  byte_length = 3
}

resource "random_password" "db" {
  length  = 32
  special = false # the password goes into a URL: no characters that need escaping
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
    }

    backup_configuration {
      enabled    = true
      start_time = "03:00"

      backup_retention_settings {
        retained_backups = 7
      }
    }
  }

  depends_on = [google_project_service.apis]
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
  password = random_password.db.result

  # PostgreSQL refuses to drop a role that owns objects; the instance's deletion removes it.
  deletion_policy = "ABANDON"
}

resource "google_secret_manager_secret" "database_url" {
  project   = var.project_id
  secret_id = "${var.name_prefix}-database-url"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "database_url" {
  secret      = google_secret_manager_secret.database_url.id
  secret_data = "postgres://${google_sql_user.called.name}:${random_password.db.result}@localhost/${google_sql_database.called.name}?host=/cloudsql/${google_sql_database_instance.db.connection_name}"
}

# Only the called service's account may read the secret and connect to Cloud SQL.
resource "google_secret_manager_secret_iam_member" "called_database_url" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.database_url.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.called.member
}

resource "google_project_iam_member" "called_cloudsql_client" {
  project = var.project_id
  role    = "roles/cloudsql.client"
  member  = google_service_account.called.member
}

# ---- the called service ------------------------------------------------------------------

resource "google_cloud_run_v2_service" "called" {
  project             = var.project_id
  name                = local.called_name
  location            = var.region
  deletion_protection = var.deletion_protection
  ingress             = "INGRESS_TRAFFIC_ALL"

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
        name  = "GOOGLE_CLOUD_PROJECT"
        value = var.project_id
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

  template {
    service_account                  = google_service_account.caller.email
    max_instance_request_concurrency = 80
    timeout                          = "60s"

    scaling {
      min_instance_count = 0
      max_instance_count = var.max_instances
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

# Opt-in only (allow_unauthenticated_caller, default false). The caller then runs
# AUTH_MODE=verify and still checks the token and caller_invokers itself.
resource "google_cloud_run_v2_service_iam_member" "caller_public" {
  count = var.allow_unauthenticated_caller ? 1 : 0

  project  = var.project_id
  location = google_cloud_run_v2_service.caller.location
  name     = google_cloud_run_v2_service.caller.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}
