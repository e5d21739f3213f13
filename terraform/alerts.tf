# Detection: the alerts from the incident write-up, routed to the watchdog's
# Pub/Sub channel.
#
# What the watchdog needs from every policy here:
# - user label rollback_watchdog = "true" (policies it is meant to act on);
# - metric-threshold conditions grouped by service, revision and location, so
#   incident.resource.labels still name the service after aggregation;
# - metric-threshold policies send OPENED and CLOSED (the CLOSED notification
#   drives the recovery follow-up) and auto-close;
# - log-match policies send OPENED only (Cloud Monitoring never closes them
#   with a notification), need notification_rate_limit, and carry
#   cloud_run_service / cloud_run_region user labels as the watchdog's
#   fallback when the resource labels are missing.
#
# Log-based metrics and log-match policies only see their own project's logs,
# so detection covers the watched services in project_id (local.watched_here).
#
# Two paths per signal (README, "Time to mitigation, on paper"): a log-match
# policy per service opens an incident on the first matching line (about a
# minute), and the metric-threshold policy on the same lines sends the CLOSED
# that drives the recovery follow-up. The watchdog acts on whichever arrives
# first; the second finds the failing revision no longer serving.

locals {
  detect = length(local.watched_here) > 0

  watched_here_scope = join(" OR ", [
    for k in sort(keys(local.watched_here)) :
    "(resource.labels.service_name=\"${local.watched_here[k].name}\" AND resource.labels.location=\"${local.watched_here[k].region}\")"
  ])

  # Cloud Run also logs service-level lines under cloud_run_revision with an
  # empty revision_name ("Ready condition status changed to False for Service
  # ..."). An alert on one of them names no revision, and the watchdog would
  # fall back to the serving (healthy) revision, so every filter requires one.
  revision_scope = "resource.labels.revision_name:* AND NOT resource.labels.revision_name=\"\""

  cloud_run_scope = "resource.type=\"cloud_run_revision\" AND ${local.revision_scope} AND (${local.watched_here_scope})"

  # Filter of one service's entries, for its log-match policies.
  service_scope = {
    for k, s in local.watched_here : k => join(" AND ", [
      "resource.type=\"cloud_run_revision\"",
      "resource.labels.service_name=\"${s.name}\"",
      "resource.labels.location=\"${s.region}\"",
      local.revision_scope,
    ])
  }

  # Which logs a signal may come from, by exact log name. In the Logging query
  # language ":" is a case-insensitive substring test and a term without a
  # logName matches the application's own lines too: a request whose
  # User-Agent is "Container called exit(1)." lands in an access log on
  # stdout, and matched. "=" on logName is equality, and the application
  # cannot write to Cloud Run's own logs through stdout or stderr.
  # (cloud.google.com/logging/docs/view/logging-query-language: "Comparison
  # operators", "Boolean operators": NOT binds tightest, then OR, then AND,
  # so every OR below is in parentheses.)
  run_system_log = "logName=\"projects/${var.project_id}/logs/run.googleapis.com%2Fvarlog%2Fsystem\""
  run_audit_logs = "logName=(\"projects/${var.project_id}/logs/cloudaudit.googleapis.com%2Factivity\" OR \"projects/${var.project_id}/logs/cloudaudit.googleapis.com%2Fsystem_event\")"
  # The application's own structured lines (Cloud Run's agent reads stdout and
  # stderr); never the request log (run.googleapis.com%2Frequests).
  app_logs = "logName=(\"projects/${var.project_id}/logs/run.googleapis.com%2Fstdout\" OR \"projects/${var.project_id}/logs/run.googleapis.com%2Fstderr\")"

  # Startup failures as Cloud Run itself reports them, and only there:
  #   system log: "Default STARTUP TCP probe failed 1 time consecutively for
  #   container ...", "STARTUP HTTP probe failed ...", "STARTUP GRPC probe
  #   failed ...", "Container called exit(1)." (exit(0) is a clean exit, not
  #   a failure), "The user-provided container failed to start and listen on
  #   the port ...";
  #   audit log: the same refusal in protoPayload.status.message.
  startup_failure_match = join(" OR ", [
    "(${local.run_system_log} AND (textPayload:\"STARTUP TCP probe failed\" OR textPayload:\"STARTUP HTTP probe failed\" OR textPayload:\"STARTUP GRPC probe failed\" OR textPayload:\"failed to start and listen on the port\" OR (textPayload:\"Container called exit(\" AND NOT textPayload:\"Container called exit(0)\")))",
    "(${local.run_audit_logs} AND protoPayload.serviceName=\"run.googleapis.com\" AND protoPayload.status.message:\"failed to start and listen on the port\")",
  ])

  # The DB-connect timeout only the application can see: a structured field it
  # writes (jsonPayload.<db_timeout_event_field> equal to db_timeout_event, at
  # severity ERROR or above), never a phrase inside a free-text line, which an
  # echoed request could carry.
  db_timeout_match = "${local.app_logs} AND severity>=ERROR AND jsonPayload.${var.db_timeout_event_field}=\"${var.db_timeout_event}\""

  watchdog_channels = [google_monitoring_notification_channel.pubsub.name]
}

# ---------------------------------------------------------------------------
# (a) Container startup failures: counter metric + metric-threshold policy
# ---------------------------------------------------------------------------

resource "google_logging_metric" "startup_failures" {
  count = local.detect ? 1 : 0

  project     = var.project_id
  name        = "${var.name_prefix}/container-startup-failures"
  description = "Cloud Run container startup failures (startup probe failed, container exited, did not listen on PORT) of the watched services."
  filter      = "${local.cloud_run_scope} AND (${local.startup_failure_match})"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Cloud Run container startup failures (rollback watchdog)"
  }

  depends_on = [google_project_service.apis]
}

# A new log-based metric cannot be used in an alert policy at once ("Cannot
# find metric(s) that match type = ...": up to 10 minutes, says the API;
# hashicorp/terraform-provider-google#11102). The policies read the metric names
# through this sleep (var.log_metric_propagation_wait, 600s by default), so they
# are created only after it. It waits once, on create (and again only if a
# metric is renamed). Should a project still refuse, run apply again: the sleep
# is done and the metrics exist, so the second run creates the policies.
resource "time_sleep" "log_metrics" {
  count = local.detect ? 1 : 0

  create_duration = var.log_metric_propagation_wait

  triggers = {
    startup_failures   = google_logging_metric.startup_failures[0].name
    db_timeouts        = google_logging_metric.db_timeouts[0].name
    db_connect_seconds = google_logging_metric.db_connect_seconds[0].name
  }
}

resource "google_monitoring_alert_policy" "startup_failures" {
  count = local.detect ? 1 : 0

  project               = var.project_id
  display_name          = "Cloud Run container startup failures (rollback watchdog)"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = local.watchdog_channels

  user_labels = {
    rollback_watchdog = "true"
    signal            = "startup-failure"
  }

  conditions {
    display_name = "Container startup failures of one revision"

    condition_threshold {
      filter                  = "metric.type=\"logging.googleapis.com/user/${time_sleep.log_metrics[0].triggers["startup_failures"]}\" AND resource.type=\"cloud_run_revision\""
      comparison              = "COMPARISON_GT"
      threshold_value         = var.startup_failure_threshold
      duration                = "0s"
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"

      trigger {
        count = 1
      }

      aggregations {
        alignment_period     = var.startup_failure_window
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields = [
          "resource.label.service_name",
          "resource.label.revision_name",
          "resource.label.location",
        ]
      }
    }
  }

  alert_strategy {
    auto_close           = var.alert_auto_close
    notification_prompts = ["OPENED", "CLOSED"]
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "Cloud Run startup failures: $${resource.label.service_name} ($${resource.label.revision_name})"
    content   = <<-EOT
      Revision **$${resource.label.revision_name}** of Cloud Run service **$${resource.label.service_name}**
      ($${resource.label.location}) fails to start: startup probe failures, container exits, or the
      container does not listen on $PORT.

      The rollback watchdog receives this incident and, if the revision changed egress/network settings,
      moves traffic back to the previous revision (unless dry-run or paused). Check its Slack thread.
      When this incident closes, the watchdog posts the recovery follow-up.
    EOT
  }
}

# The fast path of (a): the first startup-failure line of a service opens an
# incident, without waiting for the metric's sampling and alignment.
resource "google_monitoring_alert_policy" "startup_failure_lines" {
  for_each = local.watched_here

  project               = var.project_id
  display_name          = "Cloud Run container startup failure: ${each.value.name} (${each.value.region})"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = local.watchdog_channels

  user_labels = {
    rollback_watchdog = "true"
    signal            = "startup-failure-line"
    cloud_run_service = each.value.name
    cloud_run_region  = each.value.region
  }

  conditions {
    display_name = "Startup failure logged by ${each.value.name}"

    condition_matched_log {
      filter = "${local.service_scope[each.key]} AND (${local.startup_failure_match})"

      label_extractors = {
        revision_name = "EXTRACT(resource.labels.revision_name)"
      }
    }
  }

  alert_strategy {
    # Required for log-match policies; at most one notification per period,
    # per policy (one policy per service, so services do not share it).
    notification_rate_limit {
      period = var.log_match_rate_limit
    }
    auto_close           = var.alert_auto_close
    notification_prompts = ["OPENED"]
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "Cloud Run startup failure on ${each.value.name} ($${log.extracted_label.revision_name})"
    content   = <<-EOT
      Revision **$${log.extracted_label.revision_name}** of Cloud Run service **${each.value.name}**
      (${each.value.region}) logged a startup failure (probe failed, container exited, or did not listen on $PORT).

      This log-match incident is the fast path to the rollback watchdog; it never closes with a
      notification. The recovery follow-up comes with the metric-based "Cloud Run container startup
      failures" incident closing.
    EOT
  }

  depends_on = [google_project_service.apis]
}

# ---------------------------------------------------------------------------
# (b) The incident's database timeout, as the application reports it in a
#     structured field: log-match policy per service (fast path) + counter
#     metric and metric-threshold policy (closes, recovery)
# ---------------------------------------------------------------------------

# The same line as a time series: a chart, and the policy that closes.
resource "google_logging_metric" "db_timeouts" {
  count = local.detect ? 1 : 0

  project     = var.project_id
  name        = "${var.name_prefix}/db-connection-timeouts"
  description = "ERROR entries of the watched services whose jsonPayload.${var.db_timeout_event_field} is \"${var.db_timeout_event}\"."
  filter      = "${local.cloud_run_scope} AND (${local.db_timeout_match})"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Database connection validation timeouts (rollback watchdog)"
  }

  depends_on = [google_project_service.apis]
}

# One policy per service: the first matching line opens the incident, and
# the policy's user labels name the service for the watchdog.
resource "google_monitoring_alert_policy" "db_timeout" {
  for_each = local.watched_here

  project               = var.project_id
  display_name          = "Database connection validation timeout: ${each.value.name} (${each.value.region})"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = local.watchdog_channels

  user_labels = {
    rollback_watchdog = "true"
    signal            = "db-timeout"
    cloud_run_service = each.value.name
    cloud_run_region  = each.value.region
  }

  conditions {
    display_name = "${var.db_timeout_event} logged by ${each.value.name}"

    condition_matched_log {
      filter = "${local.service_scope[each.key]} AND (${local.db_timeout_match})"

      label_extractors = {
        revision_name = "EXTRACT(resource.labels.revision_name)"
      }
    }
  }

  alert_strategy {
    # Required for log-match policies; at most one notification per period,
    # per policy (one policy per service, so services do not share it).
    notification_rate_limit {
      period = var.log_match_rate_limit
    }
    auto_close           = var.alert_auto_close
    notification_prompts = ["OPENED"]
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "DB connection timeout on ${each.value.name} ($${log.extracted_label.revision_name})"
    content   = <<-EOT
      Cloud Run service **${each.value.name}** (${each.value.region}), revision
      **$${log.extracted_label.revision_name}**, logged ${var.db_timeout_event_field}=${var.db_timeout_event}
      at ERROR: the signature of the incident where a revision lost its route to the database.

      Log-match incidents are never closed by a notification; the recovery follow-up comes with the
      metric-based "Database connection validation timeouts" incident closing.
    EOT
  }

  depends_on = [google_project_service.apis]
}

# The metric side of (b): opens minutes after the log-match policy (the
# watchdog then finds the revision no longer serving) and closes once the
# revision stops logging the line, which sends the recovery follow-up.
resource "google_monitoring_alert_policy" "db_timeouts" {
  count = local.detect ? 1 : 0

  project               = var.project_id
  display_name          = "Database connection validation timeouts on Cloud Run (rollback watchdog)"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = local.watchdog_channels

  user_labels = {
    rollback_watchdog = "true"
    signal            = "db-timeout-metric"
  }

  conditions {
    display_name = "Database timeouts of one revision"

    condition_threshold {
      filter                  = "metric.type=\"logging.googleapis.com/user/${time_sleep.log_metrics[0].triggers["db_timeouts"]}\" AND resource.type=\"cloud_run_revision\""
      comparison              = "COMPARISON_GT"
      threshold_value         = 0
      duration                = "0s"
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"

      trigger {
        count = 1
      }

      aggregations {
        alignment_period     = var.db_timeout_window
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields = [
          "resource.label.service_name",
          "resource.label.revision_name",
          "resource.label.location",
        ]
      }
    }
  }

  alert_strategy {
    auto_close           = var.alert_auto_close
    notification_prompts = ["OPENED", "CLOSED"]
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "DB connection timeouts: $${resource.label.service_name} ($${resource.label.revision_name})"
    content   = <<-EOT
      Revision **$${resource.label.revision_name}** of Cloud Run service **$${resource.label.service_name}**
      ($${resource.label.location}) logs ${var.db_timeout_event_field}=${var.db_timeout_event}. The per-service log-match policy
      has usually alerted the watchdog already; when this incident closes, the watchdog posts the
      recovery follow-up.
    EOT
  }
}

# ---------------------------------------------------------------------------
# (c) Slow database connects: distribution metric + metric-threshold policy
# ---------------------------------------------------------------------------

resource "google_logging_metric" "db_connect_seconds" {
  count = local.detect ? 1 : 0

  project         = var.project_id
  name            = "${var.name_prefix}/db-connect-seconds"
  description     = "Database connect time (seconds) reported by the watched services' logs."
  filter          = "${local.cloud_run_scope} AND ${local.app_logs} AND (${var.slow_db_connect_log_filter})"
  value_extractor = var.slow_db_connect_value_extractor

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "s"
    display_name = "Database connect time (rollback watchdog)"
  }

  # 10 ms up to about 8 minutes.
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 32
      growth_factor      = 1.4
      scale              = 0.01
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "slow_db_connect" {
  count = local.detect ? 1 : 0

  project               = var.project_id
  display_name          = "Slow database connects on Cloud Run (rollback watchdog)"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.watchdog_channels

  user_labels = {
    rollback_watchdog = "true"
    signal            = "slow-db-connect"
  }

  conditions {
    display_name = "p99 database connect time above ${var.slow_db_connect_threshold_seconds} s"

    condition_threshold {
      filter                  = "metric.type=\"logging.googleapis.com/user/${time_sleep.log_metrics[0].triggers["db_connect_seconds"]}\" AND resource.type=\"cloud_run_revision\""
      comparison              = "COMPARISON_GT"
      threshold_value         = var.slow_db_connect_threshold_seconds
      duration                = "0s"
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"

      trigger {
        count = 1
      }

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_PERCENTILE_99"
        cross_series_reducer = "REDUCE_MAX"
        group_by_fields = [
          "resource.label.service_name",
          "resource.label.revision_name",
          "resource.label.location",
        ]
      }
    }
  }

  alert_strategy {
    auto_close           = var.alert_auto_close
    notification_prompts = ["OPENED", "CLOSED"]
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "Slow DB connects: $${resource.label.service_name} ($${resource.label.revision_name})"
    content   = <<-EOT
      The 99th percentile of database connect time of revision **$${resource.label.revision_name}**
      of **$${resource.label.service_name}** ($${resource.label.location}) is above
      ${var.slow_db_connect_threshold_seconds} s.
    EOT
  }
}
