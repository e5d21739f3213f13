# Deploy events in (the sentinel, watchdog/core/sentinel.py): a Logging sink per
# watched project sends the Admin Activity audit entries of Cloud Run service
# creates and updates to the watchdog's topic, where handle_alert warns on-call
# about risky configuration at deploy time. Admin Activity audit logs are
# always on; the filter names the four methods exactly, so nothing else (and
# no data-access log) is exported.

locals {
  sentinel_methods = [
    "google.cloud.run.v1.Services.ReplaceService",
    "google.cloud.run.v1.Services.CreateService",
    "google.cloud.run.v2.Services.UpdateService",
    "google.cloud.run.v2.Services.CreateService",
  ]

  sentinel_filter = join(" AND ", [
    "logName:\"cloudaudit.googleapis.com%2Factivity\"",
    "protoPayload.serviceName=\"run.googleapis.com\"",
    "(${join(" OR ", [for m in local.sentinel_methods : "protoPayload.methodName=\"${m}\""])})",
  ])

  sentinel_projects = var.sentinel == "off" ? toset([]) : local.watched_projects
}

resource "google_logging_project_sink" "deploys" {
  for_each = local.sentinel_projects

  project                = each.value
  name                   = "${var.name_prefix}-deploys"
  description            = "Rollback watchdog sentinel: Cloud Run service deploys, for deploy-time warnings."
  destination            = "pubsub.googleapis.com/${google_pubsub_topic.alerts.id}"
  filter                 = local.sentinel_filter
  unique_writer_identity = true
}

# Each sink writes as its own identity; it may publish to the topic and nothing else.
resource "google_pubsub_topic_iam_member" "deploys_sink_publishes" {
  for_each = google_logging_project_sink.deploys

  project = var.project_id
  topic   = google_pubsub_topic.alerts.name
  role    = "roles/pubsub.publisher"
  member  = each.value.writer_identity
}

# Optional, for fleets: one sink on a folder covers every project below it.
resource "google_logging_folder_sink" "deploys" {
  count = var.sentinel != "off" && var.sentinel_folder_id != null ? 1 : 0

  folder           = var.sentinel_folder_id
  name             = "${var.name_prefix}-deploys"
  description      = "Rollback watchdog sentinel: Cloud Run service deploys in this folder."
  destination      = "pubsub.googleapis.com/${google_pubsub_topic.alerts.id}"
  filter           = local.sentinel_filter
  include_children = true
}

resource "google_pubsub_topic_iam_member" "deploys_folder_sink_publishes" {
  count = var.sentinel != "off" && var.sentinel_folder_id != null ? 1 : 0

  project = var.project_id
  topic   = google_pubsub_topic.alerts.name
  role    = "roles/pubsub.publisher"
  member  = google_logging_folder_sink.deploys[0].writer_identity
}
