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
      name                    = s.name
      region                  = s.region
      project                 = coalesce(s.project, var.project_id)
      runtime_service_account = s.runtime_service_account
    }
  }

  # Log-based metrics and log-match policies only see logs of their own
  # project, so detection is created for the services in project_id.
  watched_here = { for k, s in local.watched : k => s if s.project == var.project_id }

  watched_projects = toset([for s in local.watched : s.project])
  metrics_project  = coalesce(var.metrics_project, var.project_id)
  secret_project   = coalesce(var.secret_project, var.project_id)

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
# The watched services' runtime service accounts: an input, never read
# ---------------------------------------------------------------------------

# A rollback is an UpdateService, and Cloud Run checks iam.serviceAccounts.actAs
# on the service's runtime service account (iam.tf). The module used to read
# each watched service (data "google_cloud_run_v2_service") to learn that
# account, which put the whole service, env values included, into the state.
# Now the account is an input (watched_services[].runtime_service_account),
# and nothing reads a Cloud Run service: the state holds no env value.
# A service that names no account runs as its project's Compute Engine
# default service account; only the project number is read for its email.
data "google_project" "watched" {
  for_each = local.watched_projects

  project_id = each.value
}

locals {
  # PROJECT/REGION/SERVICE => the runtime service account's email.
  runtime_service_accounts = {
    for k, s in local.watched : k => coalesce(
      s.runtime_service_account,
      "${data.google_project.watched[s.project].number}-compute@developer.gserviceaccount.com",
    )
  }
}
