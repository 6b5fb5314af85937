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
  description = "Make the caller public: turn off Cloud Run's IAM invoker check on it (invoker_iam_disabled, Google's recommended way; no allUsers member, so it works under domain-restricted sharing), so Cloud Run lets requests without a token through and hands tokens to the container intact. The caller then verifies Google ID tokens itself (AUTH_MODE=verify) against caller_invokers, so it still rejects strangers; this only removes the IAM layer. Leave false unless you have a reason."
  type        = bool
  default     = false
}

variable "caller_extra_audiences" {
  description = "ID-token audiences the caller accepts besides its own URL. The default is the OAuth client ID of the gcloud CLI: `gcloud auth print-identity-token` for a user account mints tokens with that audience (and cannot choose another), which Cloud Run's IAM check accepts, so the caller must too for the test command to work. RISK: every Cloud Run service accepts that audience, so a token a user sent to any such service (anyone's) can be replayed to the caller for up to an hour, as that user. Set to [] to accept only tokens minted for the caller's URL (then get one with `gcloud auth print-identity-token --impersonate-service-account=SA --audiences=CALLER_AUDIENCE --include-email`)."
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
  description = "Upper bound on Cloud Run instances per service (per revision). Each called instance gets a share of the Cloud SQL tier's connections as its pool (DATABASE_MAX_CONNECTIONS, see locals.tf): db-f1-micro (25 connections) allows at most 5 instances, db-g1-small (50) 11."
  type        = number
  default     = 3

  validation {
    condition     = var.max_instances >= 1 && var.max_instances <= 100 && floor(var.max_instances) == var.max_instances
    error_message = "max_instances must be a whole number from 1 to 100."
  }

  validation {
    # Terraform checks every validation rule, so this one must hold for any number too.
    condition     = var.max_instances < 1 || floor(local.db_connection_budget / max(var.max_instances, 1)) >= local.db_min_connections_per_instance
    error_message = "max_instances is too large for db_tier: ${var.db_tier} has ${local.db_max_connections} connections; after ${local.db_reserved_connections} reserved, half of the rest (${local.db_connection_budget}, the other half is for the old revision during a rollout) must give each called instance at least ${local.db_min_connections_per_instance}, so at most ${floor(local.db_connection_budget / local.db_min_connections_per_instance)} instances. Choose a larger db_tier or fewer instances."
  }
}

variable "images_to_keep" {
  description = "The image repository's cleanup policy keeps this many most recent versions of each image (caller, called) and deletes older versions after 30 days. Keep it above the number of versions you may roll back to: a deployed image that was deleted cannot start new instances."
  type        = number
  default     = 10

  validation {
    condition     = var.images_to_keep >= 2 && floor(var.images_to_keep) == var.images_to_keep
    error_message = "images_to_keep must be a whole number of at least 2 (the running version and the one before it)."
  }
}

variable "called_private" {
  description = "Put the called service on internal ingress (INGRESS_TRAFFIC_INTERNAL_ONLY), reachable only from a VPC network: the caller then sends all its outbound traffic through Direct VPC egress into a VPC network and subnet this configuration creates (with Private Google Access, so Google APIs and called's run.app URL are reached from inside). No connector to pay for; Direct VPC egress bills network egress like any VM, and the caller's instances take an IP address each from the subnet (private_subnet_cidr). Default false: called is reachable on its URL, and only the caller's account may invoke it."
  type        = bool
  default     = false
}

variable "private_subnet_cidr" {
  description = "IPv4 range of the subnet the caller's Direct VPC egress uses when called_private = true. At least a /26; Cloud Run uses about twice as many addresses as instances while it scales and during rollouts."
  type        = string
  default     = "10.8.0.0/26"

  validation {
    condition     = can(cidrhost(var.private_subnet_cidr, 0)) && tonumber(split("/", var.private_subnet_cidr)[1]) <= 26
    error_message = "private_subnet_cidr must be an IPv4 range in CIDR notation, /26 or larger, e.g. \"10.8.0.0/26\"."
  }
}

# ---- Identity-Aware Proxy on the caller (opt-in) ------------------------------------------

variable "iap_enabled" {
  description = "Put Identity-Aware Proxy in front of the caller (Cloud Run's own IAP integration, iap_enabled): people sign in with their Google account and only iap_members get through. IAP's service agent gets roles/run.invoker on the caller, the caller verifies IAP's signed header (AUTH_IAP_AUDIENCES) and applies its allow-list to the person, and called accepts the IAP assertion the caller forwards. Needs the google provider 7.41 or later (versions.tf)."
  type        = bool
  default     = false
}

variable "iap_members" {
  description = "Who may pass IAP to the caller when iap_enabled: IAM principals \"user:EMAIL\", \"group:EMAIL\", \"domain:DOMAIN\" or \"serviceAccount:EMAIL\"; each gets roles/iap.httpsResourceAccessor on the caller. user:/serviceAccount: become the email and domain: becomes *@DOMAIN in the caller's allow-list; the service cannot expand a group:, so list its people in iap_allowed_principals."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.iap_members : can(regex("^(user|group|serviceAccount):[^@\\s:,]+@[^@\\s,]+\\.[^@\\s,]+$", p)) || can(regex("^domain:[a-z0-9.-]+\\.[a-z]{2,}$", p))])
    error_message = "Each iap_members entry must be \"user:EMAIL\", \"group:EMAIL\", \"serviceAccount:EMAIL\" or \"domain:DOMAIN\" (no allUsers/allAuthenticatedUsers: IAP is there to name people)."
  }

  validation {
    condition     = !var.iap_enabled || length(var.iap_members) > 0
    error_message = "iap_enabled = true needs at least one iap_members entry, e.g. [\"user:you@example.com\"]: otherwise IAP lets nobody through."
  }
}

variable "iap_allowed_principals" {
  description = "More entries for the caller's allow-list (AUTH_ALLOWED_PRINCIPALS) when iap_enabled: exact emails or *@DOMAIN patterns of the people behind IAP that iap_members cannot name one by one, i.e. the members of every group: in iap_members. Required when iap_members has a group:. Ignored when IAP is off."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.iap_allowed_principals : can(regex("^[^@\\s,*]+@[^@\\s,]+\\.[^@\\s,]+$", p)) || can(regex("^\\*@[a-z0-9.-]+\\.[a-z]{2,}$", p))])
    error_message = "Each iap_allowed_principals entry must be an email (\"a@example.com\") or a domain pattern (\"*@example.com\"), without commas."
  }

  validation {
    condition     = !var.iap_enabled || !anytrue([for p in var.iap_members : startswith(p, "group:")]) || length(var.iap_allowed_principals) > 0
    error_message = "iap_members has a group:, which the caller's allow-list cannot expand: list the group's people (emails or *@DOMAIN) in iap_allowed_principals, or the caller refuses them after IAP let them in."
  }
}

# ---- log-based metrics and alerts ------------------------------------------------------------

variable "alert_notification_channels" {
  description = "Notification channels for the alert policies (monitoring.tf), as projects/PROJECT/notificationChannels/ID (`gcloud beta monitoring channels list --format='value(name)'`). Empty (default): the log-based metrics are still created, but no alert policy."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.alert_notification_channels : can(regex("^projects/[a-z0-9-]+/notificationChannels/[0-9]+$", c))])
    error_message = "Each alert_notification_channels entry must be a channel's full name, projects/PROJECT/notificationChannels/ID."
  }
}

variable "refusal_burst_threshold" {
  description = "The refusal-burst alert fires when one service refuses more than this many requests (authentication refusals, any reason) within refusal_burst_window_seconds."
  type        = number
  default     = 20

  validation {
    condition     = var.refusal_burst_threshold >= 1 && floor(var.refusal_burst_threshold) == var.refusal_burst_threshold
    error_message = "refusal_burst_threshold must be a whole number of at least 1."
  }
}

variable "refusal_burst_window_seconds" {
  description = "The window over which refusal_burst_threshold is counted, in seconds: a whole number of minutes from 60 to 3600."
  type        = number
  default     = 300

  validation {
    condition     = var.refusal_burst_window_seconds >= 60 && var.refusal_burst_window_seconds <= 3600 && var.refusal_burst_window_seconds % 60 == 0
    error_message = "refusal_burst_window_seconds must be a whole number of minutes, 60 to 3600 seconds."
  }
}
