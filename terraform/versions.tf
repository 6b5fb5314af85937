terraform {
  # 1.11: write-only arguments (password_wo, secret_data_wo); 1.10: ephemeral resources;
  # 1.9: validation rules that refer to other variables and locals (max_instances).
  required_version = ">= 1.11.0"

  required_providers {
    # deploy/schemas/google-7.json holds the names of google 7.41.0 (random 3.9.1, time
    # 0.14.2); deploy/check_schema.py checks every file against it and fails if these
    # constraints stop admitting that version. 7.41 is the floor because IAP on the caller
    # (var.iap_enabled) uses google_cloud_run_v2_service's iap_enabled, which the google
    # provider has in 7.41 but not in 6.50 (the last 6.x; it was google-beta only there), and
    # Terraform rejects an argument the provider lacks even when it is false. 8.x is not
    # admitted: it has not been reviewed.
    google = {
      source  = "hashicorp/google"
      version = ">= 7.41, < 8.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7" # ephemeral random_password: 3.7.0 and later
    }
    time = {
      source  = "hashicorp/time"
      version = "~> 0.13"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = {
    app        = var.name_prefix
    managed-by = "terraform"
  }
}
