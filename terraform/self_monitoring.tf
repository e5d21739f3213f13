# Watching the watchdog. These policies go to var.watchdog_oncall_channels and
# never to the watchdog's own Pub/Sub channel: a failing watchdog must not be
# asked to handle its own failure (and its own service is not a rollback
# target). Their user label is rollback_watchdog = "self", not "true", so the
# watchdog and its doctor can tell them from the policies it acts on.

locals {
  # Every function the module deploys (function.tf), the buttons' included: an error in any of them pages.
  watchdog_services     = [for k, f in google_cloudfunctions2_function.watchdog : f.name]
  watchdog_run_services = join(" OR ", [for n in local.watchdog_services : "resource.labels.service_name=\"${n}\""])
  watchdog_functions    = join(" OR ", [for n in local.watchdog_services : "resource.labels.function_name=\"${n}\""])

  oncall_is_separate = !contains(var.watchdog_oncall_channels, google_monitoring_notification_channel.pubsub.name)

  # An alert policy may only notify channels of its own project. The
  # failed-decisions policy lives where the decision metric is written
  # (metrics_project), so when that is another project it notifies
  # metrics_project_oncall_channels, which must be channels there.
  failed_decision_channels = local.metrics_project == var.project_id ? var.watchdog_oncall_channels : var.metrics_project_oncall_channels

  # A channel name may carry the project ID or its number.
  oncall_prefixes  = ["projects/${var.project_id}/", "projects/${local.project_number}/"]
  metrics_prefixes = ["projects/${local.metrics_project}/", "projects/${data.google_project.metrics.number}/"]
  oncall_in_project = alltrue([
    for c in var.watchdog_oncall_channels : anytrue([for p in local.oncall_prefixes : startswith(c, p)])
  ])
  failed_decision_channels_in_project = length(local.failed_decision_channels) > 0 && alltrue([
    for c in local.failed_decision_channels : anytrue([for p in local.metrics_prefixes : startswith(c, p)])
  ])
}

data "google_project" "metrics" {
  project_id = local.metrics_project
}

# Gen2 functions log as cloud_run_revision (service = function name); the
# cloud_function resource is kept for logs written through the functions API.
resource "google_monitoring_alert_policy" "watchdog_errors" {
  project               = var.project_id
  display_name          = "Rollback watchdog: function errors"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.watchdog_oncall_channels

  user_labels = {
    rollback_watchdog = "self"
    signal            = "watchdog-error"
  }

  conditions {
    display_name = "ERROR or worse logged by a watchdog function"

    condition_matched_log {
      # Not the request log: a hold answers 500 on purpose until the deploy serves, and a transient Cloud Run error
      # is redelivered; neither is a fault. A bug writes the watchdog's own ERROR line (main.py, decision "crash").
      filter = join(" AND ", [
        "severity>=ERROR",
        "((resource.type=\"cloud_run_revision\" AND (${local.watchdog_run_services})) OR (resource.type=\"cloud_function\" AND (${local.watchdog_functions})))",
        "NOT logName=\"projects/${var.project_id}/logs/run.googleapis.com%2Frequests\"",
      ])
    }
  }

  alert_strategy {
    notification_rate_limit {
      period = var.log_match_rate_limit
    }
    auto_close           = var.alert_auto_close
    notification_prompts = ["OPENED"]
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "Rollback watchdog logged an error"
    content   = <<-EOT
      A rollback watchdog function (one of ${join(", ", local.watchdog_services)}) logged an error.
      Rollbacks, deploy warnings or the card's buttons may not be working. Check the function's logs,
      then run the doctor (`rollback-watchdog doctor`).
      Undeliverable alerts, deploy events and ticks land on the dead-letter subscription `${google_pubsub_subscription.dead_letter.name}`.
    EOT
  }

  lifecycle {
    precondition {
      condition     = local.oncall_is_separate
      error_message = "watchdog_oncall_channels must not contain the watchdog's own Pub/Sub channel."
    }
    precondition {
      condition     = local.oncall_in_project
      error_message = "watchdog_oncall_channels must be notification channels of project_id (projects/${var.project_id}/notificationChannels/ID): an alert policy can only notify channels of its own project."
    }
  }
}

# The watchdog writes one point per decision. The descriptor is created here
# so the policy below can be created before the first decision is written
# (Monitoring refuses a policy on an unknown metric type). Contract with
# watchdog/edges/monitoring.py: GAUGE, INT64, value = decisions the point stands for
# (usually 1; Monitoring takes one point per series every 5 s, so a burst is
# carried into one point), resource global, labels service, action, outcome,
# instance (all in var.decision_metric_labels). Alert with ALIGN_SUM.
resource "google_monitoring_metric_descriptor" "decisions" {
  project      = local.metrics_project
  type         = "custom.googleapis.com/rollback_watchdog/decisions"
  metric_kind  = "GAUGE"
  value_type   = "INT64"
  unit         = "1"
  display_name = "Rollback watchdog decisions"
  description  = "Decisions of the rollback watchdog; a point's value is how many decisions it stands for (sum it): label action is what it decided, outcome what came of it (failed when the action failed), instance the writing process."

  dynamic "labels" {
    for_each = toset(var.decision_metric_labels)
    content {
      key        = labels.value
      value_type = "STRING"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "watchdog_failed_decisions" {
  project               = local.metrics_project
  display_name          = "Rollback watchdog: failed decisions"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.failed_decision_channels

  user_labels = {
    rollback_watchdog = "self"
    signal            = "watchdog-failed-decision"
  }

  conditions {
    display_name = "Decisions with outcome failed"

    condition_threshold {
      filter                  = "metric.type=\"${google_monitoring_metric_descriptor.decisions.type}\" AND resource.type=\"global\" AND metric.label.outcome=\"failed\""
      comparison              = "COMPARISON_GT"
      threshold_value         = 0
      duration                = "0s"
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"

      trigger {
        count = 1
      }

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  alert_strategy {
    auto_close           = var.alert_auto_close
    notification_prompts = ["OPENED", "CLOSED"]
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "Rollback watchdog failed to carry out a decision"
    content   = <<-EOT
      The rollback watchdog decided to act but the action failed (Cloud Run API error, deadline, permission).
      The affected service may still be serving the bad revision: check the Slack thread and roll back by hand
      (`gcloud run services update-traffic SERVICE --to-revisions=REVISION=100`).
    EOT
  }

  lifecycle {
    precondition {
      condition     = local.oncall_is_separate
      error_message = "watchdog_oncall_channels must not contain the watchdog's own Pub/Sub channel."
    }
    precondition {
      condition     = local.failed_decision_channels_in_project
      error_message = "The failed-decisions policy lives in metrics_project (${local.metrics_project}) and can only notify channels of that project: when metrics_project differs from project_id, set metrics_project_oncall_channels to channels of ${local.metrics_project}."
    }
  }
}

# Anything on the dead-letter subscription is an alert, a deploy event or a
# tick the watchdog never handled: every push subscription (pubsub.tf, one per
# fed function) dead-letters there, so this one condition covers them all.
resource "google_monitoring_alert_policy" "dead_letters" {
  project               = var.project_id
  display_name          = "Rollback watchdog: undelivered alerts on the dead-letter subscription"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.watchdog_oncall_channels

  user_labels = {
    rollback_watchdog = "self"
    signal            = "watchdog-dead-letter"
  }

  conditions {
    display_name = "Dead letters waiting"

    condition_threshold {
      filter                  = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.label.subscription_id=\"${google_pubsub_subscription.dead_letter.name}\""
      comparison              = "COMPARISON_GT"
      threshold_value         = 0
      duration                = "0s"
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"

      trigger {
        count = 1
      }

      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  alert_strategy {
    auto_close           = var.alert_auto_close
    notification_prompts = ["OPENED", "CLOSED"]
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "Rollback watchdog: alerts dead-lettered"
    content   = <<-EOT
      Messages were delivered ${var.max_delivery_attempts} times to a watchdog function without success and moved
      to `${google_pubsub_subscription.dead_letter.id}` (from ${join(", ", [for k, s in google_pubsub_subscription.push : s.name])}). Inspect them with
      `gcloud pubsub subscriptions pull ${google_pubsub_subscription.dead_letter.name} --project ${var.project_id} --limit 10`
      (add `--auto-ack` once handled; the alert closes when the subscription is empty).
    EOT
  }

  lifecycle {
    precondition {
      condition     = local.oncall_in_project
      error_message = "watchdog_oncall_channels must be notification channels of project_id (projects/${var.project_id}/notificationChannels/ID)."
    }
  }
}
