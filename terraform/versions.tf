terraform {
  # 1.5: strcontains() and check blocks; cross-variable checks are lifecycle
  # preconditions (variable validations may only refer to themselves before 1.9).
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.4"
    }
  }
}
