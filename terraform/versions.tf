terraform {
  # 1.5: `check` blocks and the validation functions used in variables.tf.
  required_version = ">= 1.5.0"

  required_providers {
    # deploy/provider-schema.json is extracted from the bindings of google 6.50.0 and
    # random 3.7.2; deploy/check_schema.py fails if these constraints stop admitting them.
    google = {
      source  = "hashicorp/google"
      version = "~> 6.50"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
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
