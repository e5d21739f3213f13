# The Slack card's buttons (undo, revert field, pause and resume, I'm on it): the slack_actions HTTP
# function (the "actions" entry of local.function_specs, function.tf), Slack's
# interactivity Request URL. Optional: set var.slack_actions.
#
# This is the one publicly invokable endpoint of the module. Slack cannot
# present a Google identity token, so Cloud Run IAM cannot authenticate its
# requests; instead every request is authenticated by the function itself
# (watchdog/flows/slack_actions.py): the X-Slack-Signature HMAC over the raw body
# with the app's signing secret, timestamps older than 5 minutes refused, the
# workspace (team id) checked, and the clicking user checked against the
# approvers. It runs as its own service account, which may do only what the
# three buttons need, on the watched services only.

locals {
  actions = var.slack_actions == null ? {} : { "actions" = var.slack_actions }

  # The buttons' settings for the function entry and the environment (function.tf), neutral without buttons
  # (the buttons' function is then not deployed, and WATCHDOG_SLACK_TEAM is empty, so cards carry no buttons).
  buttons = var.slack_actions == null ? {
    signing_secret = null
    team_id        = ""
    approvers      = []
    min_instances  = 0
  } : var.slack_actions
}

resource "google_service_account" "actions" {
  for_each = local.actions

  project      = var.project_id
  account_id   = "${var.name_prefix}-act"
  display_name = "Rollback watchdog Slack actions"
  description  = "Runtime identity of the slack_actions function: undo, pause and acknowledge on watched services."

  depends_on = [google_project_service.apis]
}

# Read the service, update its traffic and annotations (one etag-guarded update; the operation is not awaited).
resource "google_project_iam_custom_role" "actions" {
  for_each = var.slack_actions == null ? toset([]) : local.watched_projects

  project     = each.value
  role_id     = "rollbackWatchdogActions_${local.role_suffix}"
  title       = "Rollback watchdog Slack actions"
  description = "Read a Cloud Run service and update its traffic and annotations. Bound per watched service."
  permissions = ["run.services.get", "run.services.update"]
}

resource "google_cloud_run_v2_service_iam_member" "actions_operate_watched" {
  for_each = var.slack_actions == null ? {} : local.watched

  project  = each.value.project
  location = each.value.region
  name     = each.value.name
  role     = google_project_iam_custom_role.actions[each.value.project].name
  member   = "serviceAccount:${google_service_account.actions["actions"].email}"
}

# The card is re-rendered from the ledger after each click, with its diff rebuilt from the service's
# revisions, and the "Revert field" button reads the failing and the known-good revision (and the digests
# of the first). A list is authorised on its parent and whether a service binding covers its revisions is
# not documented, so these two are granted on the watched projects, like the function's reader role.
resource "google_project_iam_custom_role" "actions_revisions" {
  for_each = var.slack_actions == null ? toset([]) : local.watched_projects

  project     = each.value
  role_id     = "rollbackWatchdogActionsRevisions_${local.role_suffix}"
  title       = "Rollback watchdog Slack actions: revisions"
  description = "List and read Cloud Run revisions, to show a card as it is after a click."
  permissions = ["run.revisions.get", "run.revisions.list"]
}

resource "google_project_iam_member" "actions_read_revisions" {
  for_each = var.slack_actions == null ? toset([]) : local.watched_projects

  project = each.value
  role    = google_project_iam_custom_role.actions_revisions[each.value].name
  member  = "serviceAccount:${google_service_account.actions["actions"].email}"
}

# An undo is a traffic update: Cloud Run checks actAs on the runtime service account, as for the rollback.
# So is the "Revert field" button's new revision.
resource "google_service_account_iam_member" "actions_act_as_runtime" {
  for_each = var.slack_actions == null ? toset([]) : toset(values(local.runtime_service_accounts))

  service_account_id = "projects/-/serviceAccounts/${each.value}"
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.actions["actions"].email}"
}

resource "google_secret_manager_secret_iam_member" "actions_read_bot_token" {
  for_each = local.actions

  project   = local.secret_project
  secret_id = var.slack_bot_token_secret
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.actions["actions"].email}"
}

resource "google_secret_manager_secret_iam_member" "actions_read_signing_secret" {
  for_each = local.actions

  project   = local.secret_project
  secret_id = each.value.signing_secret
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.actions["actions"].email}"
}

# Public on purpose: see the top of this file for how each request is authenticated instead.
resource "google_cloud_run_v2_service_iam_member" "slack_invokes_actions" {
  for_each = local.actions

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.watchdog["actions"].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}
