# Least privilege. Nothing here is granted to allUsers or allAuthenticatedUsers,
# and no predefined broad role (run.admin, run.developer, editor) is used.
# Every permission below is one a flow calls with (tests/standins/iam.py reads
# these grants and the stand-ins refuse anything else; tests/test_iam_census.py
# runs every flow under them and fails on a permission no flow uses).
#
#   function SA  : rollbackWatchdogOperator on each watched service (not the project):
#                  run.services.get, run.services.update
#                  rollbackWatchdogReader on the projects of the watched services:
#                  run.services.list, run.revisions.list, run.revisions.get, run.operations.get
#                  rollbackWatchdogMetrics on metrics_project: monitoring.timeSeries.create
#                  rollbackWatchdogVerifier on the watched projects (verify.tf)
#                  iam.serviceAccountUser on each watched service's runtime SA
#                  (watched_services[].runtime_service_account, main.tf)
#                  secretmanager.secretAccessor on the Slack secret(s) only
#   trigger SA   : run.invoker on the services of the functions a push subscription feeds
#                  (alert, events) only
#   build SA     : cloudbuild.builds.builder on project_id (builds the functions)
#   Pub/Sub agent: publisher on the dead-letter topic, subscriber on each push
#                  subscription, token creator on the trigger SA (OIDC push)
#   Monitoring notification agent: publisher on the alert topic
#   log sinks    : publisher on the events topic (sentinel.tf)
#   drill_invokers: run.invoker on the drill function's service only
#   drill_publishers: pubsub.publisher on the alert topic only

resource "google_service_account" "function" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-fn"
  display_name = "Rollback watchdog function"
  description  = "Runtime identity of the rollback watchdog functions (alert handler, events handler and drill)."

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
  description  = "Identity in the OIDC token of the Pub/Sub pushes that deliver alerts and events to the watchdog functions."

  depends_on = [google_project_service.apis]
}

# ---------------------------------------------------------------------------
# Custom roles
# ---------------------------------------------------------------------------

# What a traffic rollback needs on the service itself (wire formats 5.1):
# run.services.get is "View services", and a project-level run.services.list
# does not grant it. A project-level custom role can only be bound inside its
# own project, so it is created in every project that holds a watched service.
resource "google_project_iam_custom_role" "operator" {
  for_each = local.watched_projects

  project     = each.value
  role_id     = "rollbackWatchdogOperator_${local.role_suffix}"
  title       = "Rollback watchdog operator"
  description = "Read a Cloud Run service and move its traffic. Bound per service."
  permissions = [
    "run.services.get",
    "run.services.update",
  ]
}

# Read-only, project-level, in the projects of the watched services:
# - run.services.list and run.revisions.list: the blast-radius look at sibling
#   services and the revision history (a list is authorised on its parent, so
#   sibling services cannot be granted one by one);
# - run.revisions.get: the tick reads the restored revision by name. Whether a
#   binding on a service authorises its revisions is not documented, so it is
#   not relied on; run.revisions.list here already shows the same revisions;
# - run.operations.get: operations are children of the location
#   (projects/P/locations/L/operations/ID), not of the service, so no binding
#   on the service can authorise polling the rollback's operation.
resource "google_project_iam_custom_role" "reader" {
  for_each = local.watched_projects

  project     = each.value
  role_id     = "rollbackWatchdogReader_${local.role_suffix}"
  title       = "Rollback watchdog reader"
  description = "List Cloud Run services and revisions, read a revision, poll Cloud Run operations."
  permissions = [
    "run.operations.get",
    "run.revisions.get",
    "run.revisions.list",
    "run.services.list",
  ]
}

# The watchdog's own metric (custom.googleapis.com/rollback_watchdog/decisions),
# written where its descriptor and its alert policy are: metrics_project only.
resource "google_project_iam_custom_role" "metrics" {
  project     = local.metrics_project
  role_id     = "rollbackWatchdogMetrics_${local.role_suffix}"
  title       = "Rollback watchdog decision metric"
  description = "Write the rollback watchdog's decision metric."
  permissions = ["monitoring.timeSeries.create"]
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
  for_each = local.watched_projects

  project = each.value
  role    = google_project_iam_custom_role.reader[each.value].name
  member  = "serviceAccount:${google_service_account.function.email}"
}

resource "google_project_iam_member" "function_writes_metric" {
  project = local.metrics_project
  role    = google_project_iam_custom_role.metrics.name
  member  = "serviceAccount:${google_service_account.function.email}"
}

# Cloud Run checks iam.serviceAccounts.actAs on the service identity when a
# service is updated, even for a traffic-only update. Granted on exactly the
# runtime service accounts of the watched services (an input, main.tf), never
# on the project. roles/iam.serviceAccountUser is the
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

# Each push subscription's OIDC identity may invoke the function it feeds, and nothing else.
resource "google_cloud_run_v2_service_iam_member" "trigger_invokes" {
  for_each = local.pushed_functions

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.watchdog[each.key].service_config[0].service
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
  name     = google_cloudfunctions2_function.watchdog["drill"].service_config[0].service
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
  for_each = local.pushed_functions

  project      = var.project_id
  subscription = google_pubsub_subscription.push[each.key].name
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
