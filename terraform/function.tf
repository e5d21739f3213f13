# The watchdog's gen2 functions: one source object, one resource definition, one
# entry per function in local.function_specs (below). Only main.py,
# requirements.txt and watchdog/ are shipped: the archive is built from an
# explicit allow-list, so tests/, terraform/, virtualenvs and caches can never
# leak into the deployment.

locals {
  source_root = coalesce(var.source_dir, "${path.module}/..")

  source_files = sort(concat(
    ["main.py", "requirements.txt"],
    [
      for f in fileset(local.source_root, "watchdog/**") : f
      if !strcontains(f, "__pycache__") && !endswith(f, ".pyc")
    ],
  ))

  # Names are fixed by watchdog/config.py (ENV_VARS). Every function gets them
  # all (one configuration, validated alike everywhere; variables.tf refuses
  # what the watchdog would). Slack credentials are not here: they come from
  # Secret Manager (secret_environment_variables).
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
    WATCHDOG_MAX_CHANGE_AGE_HOURS  = tostring(var.max_change_age_hours)
    WATCHDOG_FIELD_REVERT          = var.field_revert
    WATCHDOG_SHOW_ENV              = join(",", var.show_env)
    WATCHDOG_POLICIES              = join(",", var.rollback_policies)
    # Its own traffic and annotation updates are audit-logged too: never deploys.
    WATCHDOG_SERVICE_ACCOUNT = google_service_account.function.email
    # The card shows its buttons only when the slack_actions function answers them (slack_actions.tf).
    WATCHDOG_SLACK_TEAM = local.buttons.team_id
    # A log-match notification names no metric: verification reads the log-based counter on the same
    # lines, found by the policy's user label signal (alerts.tf, local.log_match_signals).
    WATCHDOG_SIGNAL_METRICS = join(",", concat(
      [for m in google_logging_metric.startup_failures : "startup-failure-line=logging.googleapis.com/user/${m.name}"],
      [for m in google_logging_metric.db_timeouts : "db-timeout=logging.googleapis.com/user/${m.name}"],
    ))
  }

  # The Slack secrets every function reads (by secret ID, never the value); the webhook only when given.
  slack_secrets = {
    SLACK_BOT_TOKEN   = var.slack_bot_token_secret
    SLACK_WEBHOOK_URL = var.slack_webhook_url_secret
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

# ---------------------------------------------------------------------------
# The functions: one entry each. A new function is an entry here (and its
# entry point in main.py); its push subscription, invoker grant and
# self-monitoring follow from the entry (pubsub.tf, iam.tf, self_monitoring.tf).
# ---------------------------------------------------------------------------

locals {
  # name          the function (and its Cloud Run service); keep the names: they are in the state's IDs
  # entry_point   the function in main.py
  # runs_as       a key of local.function_accounts: "function" (<prefix>-fn) or "actions" (<prefix>-act)
  # topic         a key of local.delivery_topics whose push subscription feeds it, or null (HTTP only)
  # env           environment on top of local.function_env (names from watchdog/config.py ENV_VARS)
  # secrets       environment variable => Secret Manager secret ID (null: not set)
  function_specs = {
    # Cloud Monitoring incidents, through the alert topic's push subscription.
    alert = {
      enabled         = true
      name            = var.name_prefix
      entry_point     = "handle_alert"
      description     = "Rollback watchdog: receives Cloud Monitoring incidents (Pub/Sub push) and rolls back Cloud Run traffic."
      runs_as         = "function"
      topic           = "alerts"
      ingress         = "ALLOW_INTERNAL_ONLY"
      max_instances   = var.max_instance_count
      min_instances   = 0
      timeout_seconds = var.function_timeout_seconds
      env             = {}
      secrets         = local.slack_secrets
    }
    # Deploy events (the sentinel's Logging sinks) and verification ticks (Cloud Scheduler) take their own
    # topic, subscription and function, so an alert never waits behind them: a hold answers 500 on purpose
    # until the deploy's revision serves, and Pub/Sub slows a push subscription that answers errors; a storm
    # of deploys fills its own queue. handle_events and handle_alert share the delivery code (main.py), and
    # handle_alert still accepts every kind of delivery, so a deployment with one subscription keeps working.
    events = {
      enabled         = true
      name            = "${var.name_prefix}-events"
      entry_point     = "handle_events"
      description     = "Rollback watchdog: deploy events (audit log sinks) and verification ticks (Pub/Sub push), apart from alerts."
      runs_as         = "function"
      topic           = "events"
      ingress         = "ALLOW_INTERNAL_ONLY"
      max_instances   = var.max_instance_count
      min_instances   = 0
      timeout_seconds = var.function_timeout_seconds
      env             = {}
      secrets         = local.slack_secrets
    }
    # The drill: an HTTP function that walks the alert path on demand; only drill_invokers may call it.
    drill = {
      enabled         = true
      name            = "${var.name_prefix}-drill"
      entry_point     = "drill"
      description     = "Rollback watchdog drill: exercises the alert path on demand (HTTP, internal ingress, on-call invokers only)."
      runs_as         = "function"
      topic           = null
      ingress         = var.drill_ingress
      max_instances   = 1
      min_instances   = 0
      timeout_seconds = var.function_timeout_seconds
      env             = {}
      secrets         = local.slack_secrets
    }
    # The card's buttons, with var.slack_actions: public, every request authenticated by the function
    # itself (slack_actions.tf). Slack wants an answer within 3 s: a warm instance by default.
    actions = {
      enabled         = var.slack_actions != null
      name            = "${var.name_prefix}-slack-actions"
      entry_point     = "slack_actions"
      description     = "Rollback watchdog: the Slack card's buttons (public; every request is signature-checked and authorized)."
      runs_as         = "actions"
      topic           = null
      ingress         = "ALLOW_ALL"
      max_instances   = 3
      min_instances   = local.buttons.min_instances
      timeout_seconds = 10
      env             = { WATCHDOG_SLACK_APPROVERS = join(",", local.buttons.approvers) }
      secrets = {
        SLACK_BOT_TOKEN      = var.slack_bot_token_secret
        SLACK_SIGNING_SECRET = local.buttons.signing_secret
      }
    }
  }

  # The functions deployed: every entry that is switched on.
  functions = { for k, f in local.function_specs : k => f if f.enabled }

  # The service account each function runs as (runs_as above).
  function_accounts = merge(
    { function = google_service_account.function.email },
    { for k, a in google_service_account.actions : k => a.email },
  )
}

resource "google_cloudfunctions2_function" "watchdog" {
  # checkov:skip=CKV_GCP_124: only the buttons' entry (actions) has ALLOW_ALL ingress: Slack's servers must reach the interactivity URL from the internet, and each request is authenticated by its Slack signature instead (slack_actions.tf); tests/terraform/test_wiring.py pins every other function to internal ingress.
  for_each = local.functions

  project     = var.project_id
  location    = var.region
  name        = each.value.name
  description = each.value.description
  labels      = local.labels

  build_config {
    runtime         = "python312"
    entry_point     = each.value.entry_point
    service_account = local.build_service_account_name

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  # No event_trigger: deliveries arrive through the push subscriptions (pubsub.tf), which carry the
  # dead-letter policy. handle_alert and handle_events are CloudEvent functions; functions-framework
  # converts the Pub/Sub push body.
  service_config {
    max_instance_count               = each.value.max_instances
    min_instance_count               = each.value.min_instances
    max_instance_request_concurrency = 1
    available_memory                 = var.function_memory
    timeout_seconds                  = each.value.timeout_seconds
    ingress_settings                 = each.value.ingress
    all_traffic_on_latest_revision   = true
    service_account_email            = local.function_accounts[each.value.runs_as]
    environment_variables            = merge(local.function_env, each.value.env)

    dynamic "secret_environment_variables" {
      for_each = { for key, secret in each.value.secrets : key => secret if secret != null }
      content {
        key        = secret_environment_variables.key
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
    google_secret_manager_secret_iam_member.actions_read_bot_token,
    google_secret_manager_secret_iam_member.actions_read_signing_secret,
  ]
}
