# Alert delivery: Cloud Monitoring -> alert topic -> push subscription -> alert
# function. Deploy events (sentinel.tf) and verification ticks (verify.tf) take
# their own way: events topic -> push subscription -> events function, so that
# neither a hold's deliberate 500s (Pub/Sub slows a push subscription that
# answers errors) nor a storm of deploys can delay an alert. Deliveries of
# either that keep failing end on the one dead-letter topic, whose own
# subscription keeps them for inspection.
#
# Why a push subscription owned here rather than the function's event_trigger:
# an event_trigger makes Eventarc create its own subscription
# (eventarc-REGION-...), which Terraform does not manage, so a dead-letter
# policy set on it by hand is lost on the next redeploy. With this
# subscription Terraform owns retry, ack deadline and dead-lettering.

resource "google_pubsub_topic" "alerts" {
  # checkov:skip=CKV_GCP_83: CMEK is optional (var.pubsub_kms_key_name); alert payloads hold no secrets and Google-managed encryption is the default.
  project      = var.project_id
  name         = "${var.name_prefix}-alerts"
  kms_key_name = var.pubsub_kms_key_name
  labels       = local.labels

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic" "events" {
  # checkov:skip=CKV_GCP_83: CMEK is optional (var.pubsub_kms_key_name); see the alert topic.
  project      = var.project_id
  name         = "${var.name_prefix}-events"
  kms_key_name = var.pubsub_kms_key_name
  labels       = local.labels

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic" "dead_letter" {
  # checkov:skip=CKV_GCP_83: CMEK is optional (var.pubsub_kms_key_name); see the alert topic.
  project      = var.project_id
  name         = "${var.name_prefix}-alerts-dead-letter"
  kms_key_name = var.pubsub_kms_key_name
  labels       = local.labels

  depends_on = [google_project_service.apis]
}

# Dead letters only exist while a subscription holds them: a topic with no
# subscription drops every message published to it.
resource "google_pubsub_subscription" "dead_letter" {
  project = var.project_id
  name    = "${var.name_prefix}-alerts-dead-letter"
  topic   = google_pubsub_topic.dead_letter.id
  labels  = local.labels

  message_retention_duration = var.dead_letter_retention
  retain_acked_messages      = true
  ack_deadline_seconds       = 60

  expiration_policy {
    ttl = "" # never expires, however long it stays unread
  }
}

locals {
  # The topics a function entry may be fed from (its topic, function.tf).
  delivery_topics = {
    alerts = google_pubsub_topic.alerts.id
    events = google_pubsub_topic.events.id
  }

  # The functions fed by a push subscription: alerts to the alert function; deploy events and ticks to the
  # events function, with the same retry and dead-letter policy. A hold redelivers until the deploy's revision
  # serves (watchdog/flows/deploy_events.py, at most 15 minutes), which the backoff and max_delivery_attempts
  # cover.
  pushed_functions = { for k, f in local.functions : k => f if f.topic != null }
}

# One push subscription per fed function: <prefix>-alerts-push, <prefix>-events-push. Every one dead-letters
# to the one dead-letter topic, whose subscription self_monitoring.tf watches.
resource "google_pubsub_subscription" "push" {
  for_each = local.pushed_functions

  project = var.project_id
  name    = "${var.name_prefix}-${each.value.topic}-push"
  topic   = local.delivery_topics[each.value.topic]
  labels  = local.labels

  # For push delivery the ack deadline is the HTTP request timeout: give the
  # function its whole timeout before Pub/Sub counts the attempt as failed.
  ack_deadline_seconds       = each.value.timeout_seconds
  message_retention_duration = "86400s"

  push_config {
    push_endpoint = google_cloudfunctions2_function.watchdog[each.key].service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.trigger.email
      audience              = google_cloudfunctions2_function.watchdog[each.key].service_config[0].uri
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_cloud_run_v2_service_iam_member.trigger_invokes,
    google_pubsub_topic_iam_member.pubsub_agent_publishes_dead_letters,
  ]
}

# The channel Cloud Monitoring publishes incidents through.
resource "google_monitoring_notification_channel" "pubsub" {
  project      = var.project_id
  display_name = "${var.name_prefix} (Pub/Sub)"
  type         = "pubsub"
  description  = "Delivers alert incidents to the rollback watchdog function."
  user_labels  = local.labels

  labels = {
    topic = google_pubsub_topic.alerts.id
  }

  depends_on = [google_project_service.apis]
}
