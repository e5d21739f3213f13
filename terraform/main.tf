data "google_project" "this" {
  project_id = var.project_id
}

locals {
  project_number = data.google_project.this.number

  # Google-managed identities that act in the pipeline. Neither is granted
  # anything by Google when the channel or subscription is created.
  monitoring_notification_agent = "serviceAccount:service-${local.project_number}@gcp-sa-monitoring-notification.iam.gserviceaccount.com"
  pubsub_service_agent          = "serviceAccount:service-${local.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  # One key per watched service: PROJECT/REGION/SERVICE, the form
  # WATCHDOG_SERVICES accepts and the watchdog prints.
  watched = {
    for s in var.watched_services :
    "${coalesce(s.project, var.project_id)}/${s.region}/${s.name}" => {
      name    = s.name
      region  = s.region
      project = coalesce(s.project, var.project_id)
    }
  }

  # Log-based metrics and log-match policies only see logs of their own
  # project, so detection is created for the services in project_id.
  watched_here = { for k, s in local.watched : k => s if s.project == var.project_id }

  watched_projects = toset([for s in local.watched : s.project])
  metrics_project  = coalesce(var.metrics_project, var.project_id)
  secret_project   = coalesce(var.secret_project, var.project_id)

  # Projects where the watchdog reads (lists sibling services, writes its
  # metric, lists alert policies for the doctor).
  reader_projects = setunion(local.watched_projects, [var.project_id, local.metrics_project])

  labels = merge({ "app" = "rollback-watchdog" }, var.labels)

  apis = [
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ]
}

resource "google_project_service" "apis" {
  for_each = var.enable_apis ? toset(local.apis) : toset([])

  project = var.project_id
  service = each.value

  # Other workloads in the project may use these APIs too.
  disable_on_destroy         = false
  disable_dependent_services = false
}
