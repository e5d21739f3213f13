# The gen2 functions (alert handler, events handler, drill) share one source
# object and one configuration. Only main.py, requirements.txt and watchdog/ are shipped:
# the archive is built from an explicit allow-list, so tests/, terraform/,
# virtualenvs and caches can never leak into the deployment.

locals {
  source_root = coalesce(var.source_dir, "${path.module}/..")

  source_files = sort(concat(
    ["main.py", "requirements.txt"],
    [
      for f in fileset(local.source_root, "watchdog/**") : f
      if !strcontains(f, "__pycache__") && !endswith(f, ".pyc")
    ],
  ))

  # Names are fixed by watchdog/config.py (ENV_VARS). Slack credentials are
  # not here: they come from Secret Manager (secret_environment_variables).
  function_env = {
    WATCHDOG_SERVICES         = join(",", sort(keys(local.watched)))
    WATCHDOG_DRY_RUN          = tostring(var.dry_run)
    WATCHDOG_ROLLBACK_ON      = var.rollback_on
    WATCHDOG_COOLDOWN_SECONDS = tostring(var.cooldown_seconds)
    WATCHDOG_DEADLINE_SECONDS = tostring(var.deadline_seconds)
    WATCHDOG_PROJECTS         = join(",", var.watchdog_projects)
    WATCHDOG_PAUSED           = tostring(var.paused)
    WATCHDOG_METRICS_PROJECT  = local.metrics_project
    SLACK_CHANNEL             = var.slack_channel
    # 0 disables the age check.
    WATCHDOG_MAX_ALERT_AGE_SECONDS = tostring(var.max_alert_age_seconds)
    WATCHDOG_SENTINEL              = var.sentinel
    WATCHDOG_VERIFY_MINUTES        = tostring(var.verify_minutes)
    # Its own traffic and annotation updates are audit-logged too: never deploys.
    WATCHDOG_SERVICE_ACCOUNT = google_service_account.function.email
    # The card shows its buttons only when the slack_actions function answers them (slack_actions.tf).
    WATCHDOG_SLACK_TEAM = var.slack_actions == null ? "" : var.slack_actions.team_id
    # A log-match notification names no metric: verification reads the log-based counter on the same
    # lines, found by the policy's user label signal (alerts.tf).
    WATCHDOG_SIGNAL_METRICS = join(",", concat(
      [for m in google_logging_metric.startup_failures : "startup-failure-line=logging.googleapis.com/user/${m.name}"],
      [for m in google_logging_metric.db_timeouts : "db-timeout=logging.googleapis.com/user/${m.name}"],
    ))
  }
}

data "archive_file" "source" {
  type        = "zip"
  output_path = "${path.root}/build/${var.name_prefix}-source.zip"

  dynamic "source" {
    for_each = local.source_files
    content {
      filename = source.value
      content  = file("${local.source_root}/${source.value}")
    }
  }
}

resource "google_storage_bucket" "source" {
  # checkov:skip=CKV_GCP_62: access logs of a bucket holding only the function's source zip add cost and no signal; Cloud Audit Logs already record admin access.
  project  = var.project_id
  name     = "${var.project_id}-${var.name_prefix}-src"
  location = var.region
  labels   = local.labels

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true

  versioning {
    enabled = true
  }

  # Each code change uploads a new object; old zips are only needed for a
  # while to redeploy an earlier build.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket_object" "source" {
  # The hash in the name is what makes a code change redeploy the functions.
  name   = "source/${var.name_prefix}-${data.archive_file.source.output_sha256}.zip"
  bucket = google_storage_bucket.source.name
  source = data.archive_file.source.output_path
}

resource "google_cloudfunctions2_function" "alert" {
  project     = var.project_id
  location    = var.region
  name        = var.name_prefix
  description = "Rollback watchdog: receives Cloud Monitoring incidents (Pub/Sub push) and rolls back Cloud Run traffic."
  labels      = local.labels

  build_config {
    runtime         = "python312"
    entry_point     = "handle_alert"
    service_account = local.build_service_account_name

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  # No event_trigger: alerts arrive through google_pubsub_subscription.alerts_push
  # (pubsub.tf), which carries the dead-letter policy. handle_alert is a
  # CloudEvent function; functions-framework converts the Pub/Sub push body.
  service_config {
    max_instance_count               = var.max_instance_count
    min_instance_count               = 0
    max_instance_request_concurrency = 1
    available_memory                 = var.function_memory
    timeout_seconds                  = var.function_timeout_seconds
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.function.email
    environment_variables            = local.function_env

    secret_environment_variables {
      key        = "SLACK_BOT_TOKEN"
      project_id = local.secret_project
      secret     = var.slack_bot_token_secret
      version    = "latest"
    }

    dynamic "secret_environment_variables" {
      for_each = var.slack_webhook_url_secret == null ? [] : [var.slack_webhook_url_secret]
      content {
        key        = "SLACK_WEBHOOK_URL"
        project_id = local.secret_project
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.deadline_seconds <= var.function_timeout_seconds
      error_message = "deadline_seconds (WATCHDOG_DEADLINE_SECONDS) must not exceed function_timeout_seconds, or the platform kills a run the watchdog still thinks it has time for."
    }
  }

  depends_on = [
    google_project_service.apis,
    google_project_iam_member.build_builds,
    google_secret_manager_secret_iam_member.function_reads_bot_token,
    google_secret_manager_secret_iam_member.function_reads_webhook_url,
  ]
}

# Deploy events (the sentinel's Logging sinks) and verification ticks (Cloud
# Scheduler) reach the watchdog through their own topic, subscription and
# function (pubsub.tf), so an alert never waits behind them: a hold answers 500
# on purpose until the deploy's revision serves, and Pub/Sub slows a push
# subscription that answers errors; a storm of deploys fills its own queue.
# Same source, identity and environment as the alert function; handle_events
# and handle_alert share the delivery code (main.py), and handle_alert still
# accepts every kind of delivery, so a deployment with one subscription keeps
# working.
resource "google_cloudfunctions2_function" "events" {
  project     = var.project_id
  location    = var.region
  name        = "${var.name_prefix}-events"
  description = "Rollback watchdog: deploy events (audit log sinks) and verification ticks (Pub/Sub push), apart from alerts."
  labels      = local.labels

  build_config {
    runtime         = "python312"
    entry_point     = "handle_events"
    service_account = local.build_service_account_name

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    max_instance_count               = var.max_instance_count
    min_instance_count               = 0
    max_instance_request_concurrency = 1
    available_memory                 = var.function_memory
    timeout_seconds                  = var.function_timeout_seconds
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.function.email
    environment_variables            = local.function_env

    secret_environment_variables {
      key        = "SLACK_BOT_TOKEN"
      project_id = local.secret_project
      secret     = var.slack_bot_token_secret
      version    = "latest"
    }

    dynamic "secret_environment_variables" {
      for_each = var.slack_webhook_url_secret == null ? [] : [var.slack_webhook_url_secret]
      content {
        key        = "SLACK_WEBHOOK_URL"
        project_id = local.secret_project
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.deadline_seconds <= var.function_timeout_seconds
      error_message = "deadline_seconds (WATCHDOG_DEADLINE_SECONDS) must not exceed function_timeout_seconds, or the platform kills a run the watchdog still thinks it has time for."
    }
  }

  depends_on = [
    google_project_service.apis,
    google_project_iam_member.build_builds,
    google_secret_manager_secret_iam_member.function_reads_bot_token,
    google_secret_manager_secret_iam_member.function_reads_webhook_url,
  ]
}

# The drill: an HTTP function that walks the same code path on demand. Same
# source, identity and environment; only on-call principals may invoke it.
resource "google_cloudfunctions2_function" "drill" {
  project     = var.project_id
  location    = var.region
  name        = "${var.name_prefix}-drill"
  description = "Rollback watchdog drill: exercises the alert path on demand (HTTP, internal ingress, on-call invokers only)."
  labels      = local.labels

  build_config {
    runtime         = "python312"
    entry_point     = "drill"
    service_account = local.build_service_account_name

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    max_instance_count               = 1
    min_instance_count               = 0
    max_instance_request_concurrency = 1
    available_memory                 = var.function_memory
    timeout_seconds                  = var.function_timeout_seconds
    ingress_settings                 = var.drill_ingress
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.function.email
    environment_variables            = local.function_env

    secret_environment_variables {
      key        = "SLACK_BOT_TOKEN"
      project_id = local.secret_project
      secret     = var.slack_bot_token_secret
      version    = "latest"
    }

    dynamic "secret_environment_variables" {
      for_each = var.slack_webhook_url_secret == null ? [] : [var.slack_webhook_url_secret]
      content {
        key        = "SLACK_WEBHOOK_URL"
        project_id = local.secret_project
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.deadline_seconds <= var.function_timeout_seconds
      error_message = "deadline_seconds (WATCHDOG_DEADLINE_SECONDS) must not exceed function_timeout_seconds."
    }
  }

  depends_on = [
    google_project_service.apis,
    google_project_iam_member.build_builds,
    google_secret_manager_secret_iam_member.function_reads_bot_token,
    google_secret_manager_secret_iam_member.function_reads_webhook_url,
  ]
}
