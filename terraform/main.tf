data "google_project" "this" {
  project_id = var.project_id
}

locals {
  project_number = data.google_project.this.number

  # Google-managed identities that act in the pipeline. Neither is granted
  # anything by Google when the channel or subscription is created, and
  # neither need exist yet in a new project: google_project_service_identity
  # below creates them before any grant (the grants depend on it).
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
    # Project data (the project number in the service agents' emails) and
    # IAM on the project; Service Usage is what google_project_service and
    # google_project_service_identity call, so it must already be on for the
    # first apply (README, prerequisites): listing it keeps it on.
    "cloudresourcemanager.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "serviceusage.googleapis.com",
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

# The service agents are created lazily by Google (Pub/Sub's with the first
# subscription that needs it, Monitoring's with the first notification
# channel). A grant to an agent that does not exist yet fails on a first
# apply, so they are created here, explicitly, and every grant depends on
# them (iam.tf).
resource "google_project_service_identity" "pubsub" {
  provider = google-beta

  project = var.project_id
  service = "pubsub.googleapis.com"

  depends_on = [google_project_service.apis]
}

resource "google_project_service_identity" "monitoring" {
  provider = google-beta

  project = var.project_id
  service = "monitoring.googleapis.com"

  depends_on = [google_project_service.apis]
}

# ---------------------------------------------------------------------------
# The watched services, read once at plan time
# ---------------------------------------------------------------------------

# Each watched service's runtime service account comes from the service
# itself, so the actAs grant (iam.tf) cannot drift from what Cloud Run checks
# on the rollback's UpdateService. No depends_on here: a data source that
# depends on a managed resource is read only during apply, and the grants'
# for_each would then be unknown at plan time.
data "google_cloud_run_v2_service" "watched" {
  for_each = local.watched

  project  = each.value.project
  location = each.value.region
  name     = each.value.name

  lifecycle {
    postcondition {
      condition     = try(self.uid, "") != "" && length(try(self.template, [])) > 0
      error_message = "Cannot read the watched Cloud Run service ${each.key}: check its name, region and project in watched_services, and that whoever runs terraform may run.services.get on it."
    }
  }
}

# A service that uses no service account of its own runs as its project's
# default compute service account.
data "google_project" "watched" {
  for_each = local.watched_projects

  project_id = each.value
}

locals {
  # PROJECT/REGION/SERVICE of every watched service the data source could not
  # read (it returns an empty object instead of failing for some errors).
  unreadable_services = sort([
    for k, s in data.google_cloud_run_v2_service.watched : k
    if try(s.uid, "") == "" || length(try(s.template, [])) == 0
  ])

  # Only services that could be read: a service that could not be read never
  # gets the default compute account's actAs by mistake.
  runtime_service_accounts = {
    for k, s in data.google_cloud_run_v2_service.watched : k => (
      try(s.template[0].service_account, "") != ""
      ? s.template[0].service_account
      : "${data.google_project.watched[local.watched[k].project].number}-compute@developer.gserviceaccount.com"
    ) if !contains(local.unreadable_services, k)
  }
}
