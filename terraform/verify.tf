# Verification ticks (issue 13): Cloud Scheduler publishes a tick to the
# watchdog's events topic every minute (handle_events, pubsub.tf: never queued
# ahead of an alert); the function recognises it by the message
# attribute rollback-watchdog-tick (watchdog/core/intake.py Tick), never treats it
# as an alert, and checks the rollbacks under verification: the restored
# revision's startup probes and the alert's own log-based metric
# (watchdog/core/verification.py). With nothing under verification a tick costs no
# API call.
#
# Publishing: the job publishes as the Cloud Scheduler service agent, whose
# Google-granted role (roles/cloudscheduler.serviceAgent) may publish to the
# topics of its own project; the topic must be in the job's project, so no
# grant on the topic is added here.
#
# Where: Cloud Scheduler is not offered in every region
# (https://cloud.google.com/scheduler/docs/locations, which grows). The job
# runs in scheduler_region, by default the functions' region; where Cloud
# Scheduler is not offered, set scheduler_region to a region that offers it.
# The job only publishes to the (global) topic, so any region works.

locals {
  verify_apis = ["cloudscheduler.googleapis.com"]
}

resource "google_project_service" "verify_apis" {
  for_each = var.enable_apis ? toset(local.verify_apis) : toset([])

  project = var.project_id
  service = each.value

  disable_on_destroy         = false
  disable_dependent_services = false
}

resource "google_cloud_scheduler_job" "verify_tick" {
  project     = var.project_id
  region      = coalesce(var.scheduler_region, var.region)
  name        = "${var.name_prefix}-verify-tick"
  description = "Every minute: the rollback watchdog checks whether its recent rollbacks recovered the service."
  schedule    = "* * * * *"
  time_zone   = "Etc/UTC"

  # A missed tick is not retried: the next one comes a minute later.
  retry_config {
    retry_count = 0
  }

  pubsub_target {
    topic_name = google_pubsub_topic.events.id
    data       = base64encode("tick")
    attributes = {
      "rollback-watchdog-tick" = "1"
    }
  }

  depends_on = [google_project_service.verify_apis]
}

# Reading the restored revision's time series (completed_probe_count and the
# alert's log-based metric) in the projects of the watched services: only
# monitoring.timeSeries.list, nothing else.
resource "google_project_iam_custom_role" "verifier" {
  for_each = local.watched_projects

  project     = each.value
  role_id     = "rollbackWatchdogVerifier_${local.role_suffix}" # per instance and per creation (iam.tf)
  title       = "Rollback watchdog verifier"
  description = "Read the time series that show whether a rollback recovered the service."
  permissions = ["monitoring.timeSeries.list"]
}

resource "google_project_iam_member" "function_verifies" {
  for_each = local.watched_projects

  project = each.value
  role    = google_project_iam_custom_role.verifier[each.value].name
  member  = "serviceAccount:${google_service_account.function.email}"
}
