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
# Two paths per signal (DESIGN.md, "Time to mitigation, on paper"): a log-match
# policy per service opens an incident on the first matching line (about a
# minute), and the metric-threshold policy on the same lines sends the CLOSED
# that drives the recovery follow-up. The watchdog acts on whichever arrives
# first; the second finds the failing revision no longer serving.
#
# Each kind of policy has one definition, built from a map with one entry per
# policy (metric threshold) or per signal (log match, one policy per watched
# service): a new policy is an entry. moved.tf keeps the policies of a
# deployment made before the maps.

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
# Log-based metrics: the lines of (a) and (b) counted, and (c) the connect time
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

# ---------------------------------------------------------------------------
# The policies
# ---------------------------------------------------------------------------

locals {
  # Metric-threshold policies on the log-based metrics above, one entry each. Each opens an incident for one
  # revision (grouped by service, revision and location, so the incident's resource labels still name the
  # service after aggregation), sends OPENED and CLOSED (the CLOSED drives the recovery follow-up), and
  # auto-closes.
  #   metric      a key of time_sleep.log_metrics' triggers: the policy waits for its metric
  #   threshold   the incident opens when the aligned value of one revision is above it
  #   window      alignment period; aligner and reducer per revision, then across the group
  metric_threshold_policies = {
    # (a) container startup failures, counted.
    startup_failures = {
      display_name = "Cloud Run container startup failures (rollback watchdog)"
      severity     = "CRITICAL"
      signal       = "startup-failure"
      condition    = "Container startup failures of one revision"
      metric       = "startup_failures"
      threshold    = var.startup_failure_threshold
      window       = var.startup_failure_window
      aligner      = "ALIGN_SUM"
      reducer      = "REDUCE_SUM"
      subject      = "Cloud Run startup failures: $${resource.label.service_name} ($${resource.label.revision_name})"
      content      = <<-EOT
        Revision **$${resource.label.revision_name}** of Cloud Run service **$${resource.label.service_name}**
        ($${resource.label.location}) fails to start: startup probe failures, container exits, or the
        container does not listen on $PORT.

        The rollback watchdog receives this incident and, if the revision changed egress/network settings,
        moves traffic back to the previous revision (unless dry-run or paused). Check its Slack thread.
        When this incident closes, the watchdog posts the recovery follow-up.
      EOT
    }
    # (b) the incident's database timeout, counted: opens minutes after the log-match policy (the watchdog
    # then finds the revision no longer serving) and closes once the revision stops logging it, which sends
    # the recovery follow-up.
    db_timeouts = {
      display_name = "Database connection validation timeouts on Cloud Run (rollback watchdog)"
      severity     = "CRITICAL"
      signal       = "db-timeout-metric"
      condition    = "Database timeouts of one revision"
      metric       = "db_timeouts"
      threshold    = 0
      window       = var.db_timeout_window
      aligner      = "ALIGN_SUM"
      reducer      = "REDUCE_SUM"
      subject      = "DB connection timeouts: $${resource.label.service_name} ($${resource.label.revision_name})"
      content      = <<-EOT
        Revision **$${resource.label.revision_name}** of Cloud Run service **$${resource.label.service_name}**
        ($${resource.label.location}) logs ${var.db_timeout_event_field}=${var.db_timeout_event}. The per-service log-match policy
        has usually alerted the watchdog already; when this incident closes, the watchdog posts the
        recovery follow-up.
      EOT
    }
    # (c) slow database connects: the 99th percentile of one revision's connect time.
    slow_db_connect = {
      display_name = "Slow database connects on Cloud Run (rollback watchdog)"
      severity     = "ERROR"
      signal       = "slow-db-connect"
      condition    = "p99 database connect time above ${var.slow_db_connect_threshold_seconds} s"
      metric       = "db_connect_seconds"
      threshold    = var.slow_db_connect_threshold_seconds
      window       = "300s"
      aligner      = "ALIGN_PERCENTILE_99"
      reducer      = "REDUCE_MAX"
      subject      = "Slow DB connects: $${resource.label.service_name} ($${resource.label.revision_name})"
      content      = <<-EOT
        The 99th percentile of database connect time of revision **$${resource.label.revision_name}**
        of **$${resource.label.service_name}** ($${resource.label.location}) is above
        ${var.slow_db_connect_threshold_seconds} s.
      EOT
    }
  }

  # Log-match policies, one entry per signal and one policy per watched service in project_id
  # (modules/log_match_policies): the first matching line of a service opens an incident, without waiting
  # for the metric's sampling and alignment, and the policy's user labels name the service. They send
  # OPENED only (Cloud Monitoring never closes them with a notification): the follow-up comes from the
  # metric-threshold policy of the same signal (closing).
  log_match_signals = {
    # The fast path of (a).
    startup_failure_lines = {
      signal   = "startup-failure-line"
      severity = "CRITICAL"
      title    = "Cloud Run container startup failure"
      logged   = "Startup failure"
      subject  = "Cloud Run startup failure"
      what     = "a startup failure (probe failed, container exited, or did not listen on $PORT)"
      closing  = "Cloud Run container startup failures"
      match    = local.startup_failure_match
    }
    # The fast path of (b): the structured field the application writes.
    db_timeout = {
      signal   = "db-timeout"
      severity = "CRITICAL"
      title    = "Database connection validation timeout"
      logged   = var.db_timeout_event
      subject  = "DB connection timeout"
      what     = "${var.db_timeout_event_field}=${var.db_timeout_event} at ERROR: the signature of the incident where a revision lost its route to the database"
      closing  = "Database connection validation timeouts"
      match    = local.db_timeout_match
    }
  }

  revision_group_by = [
    "resource.label.service_name",
    "resource.label.revision_name",
    "resource.label.location",
  ]
}

resource "google_monitoring_alert_policy" "metric_threshold" {
  for_each = { for k, p in local.metric_threshold_policies : k => p if local.detect }

  project               = var.project_id
  display_name          = each.value.display_name
  combiner              = "OR"
  severity              = each.value.severity
  notification_channels = local.watchdog_channels

  user_labels = {
    rollback_watchdog = "true"
    signal            = each.value.signal
  }

  conditions {
    display_name = each.value.condition

    condition_threshold {
      # The metric's name through the sleep: the policy is created only once Monitoring knows the metric.
      filter                  = "metric.type=\"logging.googleapis.com/user/${time_sleep.log_metrics[0].triggers[each.value.metric]}\" AND resource.type=\"cloud_run_revision\""
      comparison              = "COMPARISON_GT"
      threshold_value         = each.value.threshold
      duration                = "0s"
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"

      trigger {
        count = 1
      }

      aggregations {
        alignment_period     = each.value.window
        per_series_aligner   = each.value.aligner
        cross_series_reducer = each.value.reducer
        group_by_fields      = local.revision_group_by
      }
    }
  }

  alert_strategy {
    auto_close           = var.alert_auto_close
    notification_prompts = ["OPENED", "CLOSED"]
  }

  documentation {
    mime_type = "text/markdown"
    subject   = each.value.subject
    content   = each.value.content
  }
}

module "log_match" {
  source   = "./modules/log_match_policies"
  for_each = local.log_match_signals

  project               = var.project_id
  notification_channels = local.watchdog_channels
  signal                = each.value.signal
  severity              = each.value.severity
  title                 = each.value.title
  logged                = each.value.logged
  subject               = each.value.subject
  what                  = each.value.what
  closing               = each.value.closing
  rate_limit            = var.log_match_rate_limit
  auto_close            = var.alert_auto_close

  services = {
    for k, s in local.watched_here : k => {
      name   = s.name
      region = s.region
      filter = "${local.service_scope[k]} AND (${each.value.match})"
    }
  }

  depends_on = [google_project_service.apis]
}
