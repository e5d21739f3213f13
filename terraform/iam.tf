# Least privilege. Nothing here is granted to allUsers or allAuthenticatedUsers,
# and no predefined broad role (run.admin, run.developer, editor) is used.
#
#   function SA  : rollbackWatchdogOperator on each watched service (not the project)
#                  rollbackWatchdogReader on the projects it reads
#                  iam.serviceAccountUser on each watched service's runtime SA
#                  (read from the service itself, main.tf)
#                  secretmanager.secretAccessor on the Slack secret(s) only
#   trigger SA   : run.invoker on the alert function's service only
#   build SA     : cloudbuild.builds.builder on project_id (builds the functions)
#   Pub/Sub agent: publisher on the dead-letter topic, subscriber on the push
#                  subscription, token creator on the trigger SA (OIDC push)
#   Monitoring notification agent: publisher on the alert topic
#   drill_invokers: run.invoker on the drill function's service only
#   drill_publishers: pubsub.publisher on the alert topic only

resource "google_service_account" "function" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-fn"
  display_name = "Rollback watchdog function"
  description  = "Runtime identity of the rollback watchdog functions (alert handler and drill)."

  depends_on = [google_project_service.apis]
}

# Cloud Build no longer builds functions as the legacy Cloud Build service
# account in projects created since mid-2024: without a build service account
# that holds roles/cloudbuild.builds.builder the first deploy fails.
resource "google_service_account" "build" {
  count = var.build_service_account == null ? 1 : 0

  project      = var.project_id
  account_id   = "${var.name_prefix}-build"
  display_name = "Rollback watchdog build"
  description  = "Builds the rollback watchdog functions (Cloud Build)."

  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "build_builds" {
  # checkov:skip=CKV_GCP_49: Cloud Functions builds need roles/cloudbuild.builds.builder on the project for the build service account (no narrower scope exists); it goes only to the watchdog's own build account.
  project = var.project_id
  role    = "roles/cloudbuild.builds.builder"
  member  = "serviceAccount:${local.build_service_account_email}"
}

locals {
  build_service_account_email = coalesce(var.build_service_account, one(google_service_account.build[*].email))
  # build_config.service_account takes the account's full resource name.
  build_service_account_name = "projects/${var.project_id}/serviceAccounts/${local.build_service_account_email}"

  # Custom role IDs are per project, and a deleted role keeps its ID: the
  # provider can undelete it for 7 days, then the ID is unusable until 37 days
  # after the delete. So each instance gets its own IDs (the name_prefix), and
  # each creation of an instance new ones: the last 8 digits of the function
  # service account's unique ID, which a destroy and re-apply changes.
  # rollbackWatchdogOperator_ + 20 + _ + 8 = 54 characters, within role_id's 64.
  role_suffix = "${replace(var.name_prefix, "-", "_")}_${substr(google_service_account.function.unique_id, -8, -1)}"
}

resource "google_service_account" "trigger" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-trigger"
  display_name = "Rollback watchdog trigger"
  description  = "Identity in the OIDC token of the Pub/Sub push that delivers alerts to the watchdog function."

  depends_on = [google_project_service.apis]
}

# ---------------------------------------------------------------------------
# Custom roles
# ---------------------------------------------------------------------------

# Exactly what a traffic rollback needs (wire formats 5.1). A project-level
# custom role can only be bound inside its own project, so it is created in
# every project that holds a watched service.
resource "google_project_iam_custom_role" "operator" {
  for_each = local.watched_projects

  project     = each.value
  role_id     = "rollbackWatchdogOperator_${local.role_suffix}"
  title       = "Rollback watchdog operator"
  description = "Read a Cloud Run service and its revisions, move its traffic, poll the operation. Bound per service."
  permissions = [
    "run.operations.get",
    "run.revisions.get",
    "run.revisions.list",
    "run.services.get",
    "run.services.update",
  ]
}

# Read-only, and the only project-level grant. run.services.list and
# run.revisions.list are needed for the blast-radius look at sibling
# services: a list call is authorised on the parent location/project, so it
# cannot be granted on a single service. run.operations.get is here as well
# as in the operator role because Cloud Run operations are children of the
# location (projects/P/locations/L/operations/ID), not of the service: the
# per-service grant cannot authorise polling the rollback's operation.
# monitoring.timeSeries.create writes the watchdog's own metric
# (custom.googleapis.com/rollback_watchdog/decisions); the two monitoring
# list permissions let the doctor check the alert wiring.
resource "google_project_iam_custom_role" "reader" {
  for_each = local.reader_projects

  project     = each.value
  role_id     = "rollbackWatchdogReader_${local.role_suffix}"
  title       = "Rollback watchdog reader"
  description = "List Cloud Run services and revisions, poll Cloud Run operations, write the watchdog's decision metric, list alert policies and notification channels."
  permissions = [
    "monitoring.alertPolicies.list",
    "monitoring.notificationChannels.list",
    "monitoring.timeSeries.create",
    "run.operations.get",
    "run.revisions.list",
    "run.services.list",
  ]
}

# ---------------------------------------------------------------------------
# The function's service account
# ---------------------------------------------------------------------------

resource "google_cloud_run_v2_service_iam_member" "function_operates_watched" {
  for_each = local.watched

  project  = each.value.project
  location = each.value.region
  name     = each.value.name
  role     = google_project_iam_custom_role.operator[each.value.project].name
  member   = "serviceAccount:${google_service_account.function.email}"
}

resource "google_project_iam_member" "function_reads" {
  for_each = local.reader_projects

  project = each.value
  role    = google_project_iam_custom_role.reader[each.value].name
  member  = "serviceAccount:${google_service_account.function.email}"
}

# Cloud Run checks iam.serviceAccounts.actAs on the service identity when a
# service is updated, even for a traffic-only update. Granted on exactly the
# runtime service accounts of the watched services (main.tf reads them from
# the services), never on the project. roles/iam.serviceAccountUser is the
# predefined role for actAs (it adds only get/list of that account); a custom
# role would have to exist in every project that holds such an account.
resource "google_service_account_iam_member" "function_acts_as_runtime" {
  for_each = toset(values(local.runtime_service_accounts))

  service_account_id = "projects/-/serviceAccounts/${each.value}"
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.function.email}"
}

resource "google_secret_manager_secret_iam_member" "function_reads_bot_token" {
  project   = local.secret_project
  secret_id = var.slack_bot_token_secret
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.function.email}"
}

resource "google_secret_manager_secret_iam_member" "function_reads_webhook_url" {
  count = var.slack_webhook_url_secret == null ? 0 : 1

  project   = local.secret_project
  secret_id = var.slack_webhook_url_secret
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.function.email}"
}

# ---------------------------------------------------------------------------
# Invokers
# ---------------------------------------------------------------------------

resource "google_cloud_run_v2_service_iam_member" "trigger_invokes_alert" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.alert.service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.trigger.email}"
}

# Drills through the real pipeline (rollback-watchdog drill --topic ...).
resource "google_pubsub_topic_iam_member" "oncall_publishes_drills" {
  for_each = toset(var.drill_publishers)

  project = var.project_id
  topic   = google_pubsub_topic.alerts.name
  role    = "roles/pubsub.publisher"
  member  = each.value
}

resource "google_cloud_run_v2_service_iam_member" "oncall_invokes_drill" {
  for_each = toset(var.drill_invokers)

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.drill.service_config[0].service
  role     = "roles/run.invoker"
  member   = each.value
}

# ---------------------------------------------------------------------------
# Google-managed service agents
# ---------------------------------------------------------------------------

# Creating the notification channel does not let Monitoring publish to it.
resource "google_pubsub_topic_iam_member" "monitoring_publishes_alerts" {
  project = var.project_id
  topic   = google_pubsub_topic.alerts.name
  role    = "roles/pubsub.publisher"
  member  = local.monitoring_notification_agent

  depends_on = [google_project_service_identity.monitoring]
}

# Dead-lettering: Pub/Sub's own agent forwards the message to the dead-letter
# topic and must be allowed to acknowledge it on the source subscription.
resource "google_pubsub_topic_iam_member" "pubsub_agent_publishes_dead_letters" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent

  depends_on = [google_project_service_identity.pubsub]
}

resource "google_pubsub_subscription_iam_member" "pubsub_agent_acks_dead_letters" {
  project      = var.project_id
  subscription = google_pubsub_subscription.alerts_push.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent

  depends_on = [google_project_service_identity.pubsub]
}

# OIDC push: the Pub/Sub agent mints the trigger SA's token (required in
# projects created before April 2021; harmless in newer ones).
resource "google_service_account_iam_member" "pubsub_agent_mints_trigger_tokens" {
  service_account_id = google_service_account.trigger.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent

  depends_on = [google_project_service_identity.pubsub]
}
