variable "project_id" {
  description = "ID of the Google Cloud project to deploy into (not its name or number), e.g. \"my-project-123\". Billing must be enabled on it."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID: 6-30 characters, lowercase letters, digits and hyphens, starting with a letter (see `gcloud projects list`)."
  }
}

variable "region" {
  description = "Region for Cloud Run, Cloud SQL, Artifact Registry and Secret Manager, e.g. \"europe-west1\" or \"us-central1\"."
  type        = string
  default     = "europe-west1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region name such as \"europe-west1\" (not a zone such as \"europe-west1-b\")."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name: services are PREFIX-caller and PREFIX-called, the image repository is PREFIX, service accounts PREFIX-caller/-called/-build."
  type        = string
  default     = "invoker"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,14}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 2-16 characters: lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "image_tag" {
  description = "Tag of the images in this deployment's Artifact Registry repository (REGION-docker.pkg.dev/PROJECT/PREFIX/{caller,called}:TAG). Used unless caller_image / called_image are set. Push a new tag and change this to roll out a new version."
  type        = string
  default     = "v1"

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag))
    error_message = "image_tag must be a valid image tag: letters, digits, '_', '.', '-', at most 128 characters, not starting with '.' or '-'."
  }
}

variable "caller_image" {
  description = "Full image reference for the caller service (overrides image_tag), e.g. \"europe-west1-docker.pkg.dev/my-project/invoker/caller@sha256:...\". null = the repository's caller:IMAGE_TAG."
  type        = string
  default     = null

  validation {
    condition     = var.caller_image == null || can(regex("^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})$", var.caller_image))
    error_message = "caller_image must be a full image reference with a registry host and a :tag or @sha256:digest."
  }
}

variable "called_image" {
  description = "Full image reference for the called service (overrides image_tag). null = the repository's called:IMAGE_TAG."
  type        = string
  default     = null

  validation {
    condition     = var.called_image == null || can(regex("^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})$", var.called_image))
    error_message = "called_image must be a full image reference with a registry host and a :tag or @sha256:digest."
  }
}

variable "caller_invokers" {
  description = "Who may call the caller service: IAM principals \"user:EMAIL\", \"serviceAccount:EMAIL\" or \"domain:DOMAIN\". Each gets roles/run.invoker on the caller, and the caller's own allow-list (AUTH_ALLOWED_PRINCIPALS) gets the same identities. Put your own gcloud account here to run the test command."
  type        = list(string)

  validation {
    condition     = length(var.caller_invokers) > 0
    error_message = "caller_invokers must name at least one principal, e.g. [\"user:you@example.com\"]: the caller is private and would otherwise accept nobody."
  }

  validation {
    condition     = alltrue([for p in var.caller_invokers : can(regex("^(user|serviceAccount):[^@\\s:]+@[^@\\s]+\\.[^@\\s]+$", p)) || can(regex("^domain:[a-z0-9.-]+\\.[a-z]{2,}$", p))])
    error_message = "Each caller_invokers entry must be \"user:EMAIL\", \"serviceAccount:EMAIL\" or \"domain:DOMAIN\". allUsers/allAuthenticatedUsers are refused here (see allow_unauthenticated_caller), and group: cannot be used because the service cannot check group membership in its own allow-list."
  }
}

variable "allow_unauthenticated_caller" {
  description = "Grant roles/run.invoker on the caller to allUsers, so Cloud Run lets requests without a token through. The caller then verifies Google ID tokens itself (AUTH_MODE=verify) against caller_invokers, so it still rejects strangers; this only removes the IAM layer. Leave false unless you have a reason."
  type        = bool
  default     = false
}

variable "caller_extra_audiences" {
  description = "ID-token audiences the caller accepts besides its own URL. The default is the OAuth client ID of the gcloud CLI: `gcloud auth print-identity-token` for a user account mints tokens with that audience (and cannot choose another), which Cloud Run's IAM check accepts, so the caller must too for the test command to work. Set to [] to accept only tokens minted for the caller's URL (service accounts: `--audiences`)."
  type        = list(string)
  default     = ["32555940559.apps.googleusercontent.com"]

  validation {
    condition     = alltrue([for a in var.caller_extra_audiences : length(trimspace(a)) > 0 && !strcontains(a, ",")])
    error_message = "caller_extra_audiences entries must be non-empty and contain no comma (the service reads a comma-separated list)."
  }
}

variable "called_invoker_iam_disabled" {
  description = "Turn off Cloud Run's IAM invoker check on the called service (invoker_iam_disabled). The called service then verifies token signatures itself (AUTH_MODE=verify) instead of trusting the platform's check (AUTH_MODE=platform); both are derived from this one setting."
  type        = bool
  default     = false
}

variable "db_tier" {
  description = "Cloud SQL machine tier (Enterprise edition). db-f1-micro (shared core, 0.6 GB, ~USD 10/month) is the cheapest; db-g1-small (1.7 GB) or db-custom-CPUS-MEMORY_MB for more."
  type        = string
  default     = "db-f1-micro"

  validation {
    condition     = can(regex("^db-(f1-micro|g1-small|custom-[0-9]+-[0-9]+)$", var.db_tier))
    error_message = "db_tier must be db-f1-micro, db-g1-small or db-custom-CPUS-MEMORY_MB (Enterprise edition tiers)."
  }
}

variable "db_version" {
  description = "Cloud SQL PostgreSQL major version."
  type        = string
  default     = "POSTGRES_16"

  validation {
    condition     = can(regex("^POSTGRES_[0-9]+$", var.db_version))
    error_message = "db_version must be a Cloud SQL PostgreSQL version such as POSTGRES_16."
  }
}

variable "deletion_protection" {
  description = "Protect the Cloud Run services and the Cloud SQL instance from deletion. Set to false and apply before `terraform destroy`."
  type        = bool
  default     = true
}

variable "max_instances" {
  description = "Upper bound on Cloud Run instances per service. Keep it low with a small Cloud SQL tier: db-f1-micro accepts 25 connections in all."
  type        = number
  default     = 3

  validation {
    condition     = var.max_instances >= 1 && var.max_instances <= 100 && floor(var.max_instances) == var.max_instances
    error_message = "max_instances must be a whole number from 1 to 100."
  }
}
