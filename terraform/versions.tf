terraform {
  # 1.5: strcontains() and check blocks; cross-variable checks are lifecycle
  # preconditions (variable validations may only refer to themselves before 1.9).
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
    # google_project_service_identity (the Pub/Sub and Monitoring service
    # agents, created before they are granted) exists only in google-beta.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 6.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.4"
    }
    # time_sleep: new log-based metrics take minutes before an alert policy
    # may use them (hashicorp/terraform-provider-google#11102).
    time = {
      source  = "hashicorp/time"
      version = "~> 0.9"
    }
  }
}
