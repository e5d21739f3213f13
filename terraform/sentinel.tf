# Deploy events in (the sentinel, watchdog/core/sentinel.py): a Logging sink per
# watched project sends the Admin Activity audit entries of Cloud Run service
# creates and updates to the watchdog's events topic (pubsub.tf), where
# handle_events warns on-call about risky configuration at deploy time. Admin
# Activity audit logs are always on.
#
# The filter, term by term (Logging query language):
# - the log by its exact name: logName="projects/P/logs/cloudaudit.googleapis.com%2Factivity"
#   for a project sink (logName:"…" would be a substring test), and
#   log_id("cloudaudit.googleapis.com/activity") for the folder sink, whose
#   projects are not known here: log_id() compares the log ID exactly, in any
#   project below the folder (Google's own _Default sink filter uses it);
# - protoPayload."@type" is the AuditLog type;
# - run.googleapis.com and the four write methods, named exactly;
# - not written by the watchdog itself (its function accounts: its own traffic
#   and annotation updates are audit-logged too). An entry without a
#   principalEmail (a workload identity federation deployer) has no value to
#   compare, so NOT keeps it.
# Refused requests (protoPayload.status.code other than 0) are still exported:
# the watchdog ignores them (watchdog/core/deploys.py), which keeps the filter
# free of guesses about how a missing status compares.

locals {
  sentinel_methods = [
    "google.cloud.run.v1.Services.ReplaceService",
    "google.cloud.run.v1.Services.CreateService",
    "google.cloud.run.v2.Services.UpdateService",
    "google.cloud.run.v2.Services.CreateService",
  ]

  # The watchdog's own identities: the functions' account, and the buttons' account when there are buttons.
  watchdog_principals = concat(
    [google_service_account.function.email],
    [for a in google_service_account.actions : a.email],
  )

  sentinel_terms = [
    "protoPayload.\"@type\"=\"type.googleapis.com/google.cloud.audit.AuditLog\"",
    "protoPayload.serviceName=\"run.googleapis.com\"",
    "protoPayload.methodName=(${join(" OR ", [for m in local.sentinel_methods : "\"${m}\""])})",
    "NOT protoPayload.authenticationInfo.principalEmail=(${join(" OR ", [for p in local.watchdog_principals : "\"${p}\""])})",
  ]

  sentinel_projects = var.sentinel == "off" ? toset([]) : local.watched_projects

  # One filter per project: its activity log by its exact name.
  sentinel_filters = {
    for p in local.sentinel_projects : p => join(" AND ", concat(
      ["logName=\"projects/${p}/logs/cloudaudit.googleapis.com%2Factivity\""],
      local.sentinel_terms,
    ))
  }

  sentinel_folder_filter = join(" AND ", concat(
    ["log_id(\"cloudaudit.googleapis.com/activity\")"],
    local.sentinel_terms,
  ))
}

resource "google_logging_project_sink" "deploys" {
  for_each = local.sentinel_projects

  project                = each.value
  name                   = "${var.name_prefix}-deploys"
  description            = "Rollback watchdog sentinel: Cloud Run service deploys, for deploy-time warnings."
  destination            = "pubsub.googleapis.com/${google_pubsub_topic.events.id}"
  filter                 = local.sentinel_filters[each.value]
  unique_writer_identity = true
}

# Each sink writes as its own identity; it may publish to the events topic and nothing else.
resource "google_pubsub_topic_iam_member" "deploys_sink_publishes" {
  for_each = google_logging_project_sink.deploys

  project = var.project_id
  topic   = google_pubsub_topic.events.name
  role    = "roles/pubsub.publisher"
  member  = each.value.writer_identity
}

# Optional, for fleets: one sink on a folder covers every project below it.
resource "google_logging_folder_sink" "deploys" {
  count = var.sentinel != "off" && var.sentinel_folder_id != null ? 1 : 0

  folder           = var.sentinel_folder_id
  name             = "${var.name_prefix}-deploys"
  description      = "Rollback watchdog sentinel: Cloud Run service deploys in this folder."
  destination      = "pubsub.googleapis.com/${google_pubsub_topic.events.id}"
  filter           = local.sentinel_folder_filter
  include_children = true
}

resource "google_pubsub_topic_iam_member" "deploys_folder_sink_publishes" {
  count = var.sentinel != "off" && var.sentinel_folder_id != null ? 1 : 0

  project = var.project_id
  topic   = google_pubsub_topic.events.name
  role    = "roles/pubsub.publisher"
  member  = google_logging_folder_sink.deploys[0].writer_identity
}
