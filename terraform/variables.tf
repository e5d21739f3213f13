# ---------------------------------------------------------------------------
# Where the watchdog lives
# ---------------------------------------------------------------------------

variable "project_id" {
  description = "Project that hosts the watchdog: its functions, Pub/Sub topics, alert policies and notification channel."
  type        = string

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6 to 30 lower-case letters, digits or hyphens, starting with a letter), not a project number or display name."
  }
}

variable "region" {
  description = "Region of the functions (and the Cloud Run services they run on) and of the source bucket, e.g. europe-west1. The watched services may be in any region."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+(-[a-z]+)+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region such as europe-west1 or us-central1."
  }
}

variable "name_prefix" {
  description = "Prefix for every resource name (functions, topics, service accounts). Keep it short: service account IDs are limited to 30 characters."
  type        = string
  default     = "rollback-watchdog"

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{2,18}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 4 to 20 lower-case letters, digits or hyphens, start with a letter and not end with a hyphen."
  }
}

variable "enable_apis" {
  description = "Enable the Google APIs the watchdog needs (Cloud Functions, Cloud Run, Cloud Build, Artifact Registry, Pub/Sub, Monitoring, Logging, Secret Manager, IAM, Resource Manager, Service Usage, Storage). They are never disabled on destroy. Service Usage itself must already be on (it is in new projects): enabling an API goes through it."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Labels added to every resource that accepts labels."
  type        = map(string)
  default     = {}
}

variable "source_dir" {
  description = "Repository root holding main.py, requirements.txt and watchdog/. Only those are zipped into the function source. Defaults to the directory above this module."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------
# What the watchdog watches
# ---------------------------------------------------------------------------

variable "watched_services" {
  description = <<-EOT
    Cloud Run services the watchdog may roll back. Each entry is {name, region, project, runtime_service_account};
    project defaults to project_id. runtime_service_account is the email of the service account the service runs as
    (gcloud run services describe NAME --region REGION --format='value(spec.template.spec.serviceAccountName)');
    leave it out for a service that runs as its project's Compute Engine default service account. The module never
    reads the service itself, so no env value of it reaches the Terraform state.
    The function's service account gets the rollbackWatchdogOperator role on each of these services only, and
    roles/iam.serviceAccountUser on each one's runtime service account (an UpdateService acts as it).
    Log-based detection (metrics and alert policies) is created for the entries in project_id; services in other projects
    are acted on, but their alerts must be created in their own project (see README).
  EOT
  type = list(object({
    name                    = string
    region                  = string
    project                 = optional(string)
    runtime_service_account = optional(string)
  }))

  validation {
    condition     = length(var.watched_services) > 0
    error_message = "watched_services must name at least one Cloud Run service; the watchdog would otherwise have nothing it may act on."
  }

  validation {
    condition     = alltrue([for s in var.watched_services : can(regex("^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$", s.name))])
    error_message = "Each watched service name must be a Cloud Run service name: lower-case letters, digits and hyphens, starting with a letter, at most 49 characters."
  }

  validation {
    condition     = alltrue([for s in var.watched_services : can(regex("^[a-z]+(-[a-z]+)+[0-9]+$", s.region))])
    error_message = "Each watched service needs a region such as europe-west1."
  }

  validation {
    condition     = alltrue([for s in var.watched_services : s.project == null || can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", coalesce(s.project, "x")))])
    error_message = "A watched service's project, when given, must be a project ID (not a number)."
  }

  validation {
    condition = alltrue([
      for s in var.watched_services :
      s.runtime_service_account == null || can(regex("^[a-z0-9][-a-z0-9]*@[-a-z0-9.]+\\.gserviceaccount\\.com$", coalesce(s.runtime_service_account, "x")))
    ])
    error_message = "A watched service's runtime_service_account, when given, must be a bare service account email ending in gserviceaccount.com (no \"serviceAccount:\" prefix)."
  }

  validation {
    condition     = length(distinct([for s in var.watched_services : "${coalesce(s.project, "-")}/${s.region}/${s.name}"])) == length(var.watched_services)
    error_message = "watched_services lists the same service twice."
  }
}

variable "watchdog_projects" {
  description = "Optional allow-list of projects whose alerts the watchdog accepts (WATCHDOG_PROJECTS). Empty means no extra project filter."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.watchdog_projects : can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", p))])
    error_message = "Each entry of watchdog_projects must be a project ID."
  }
}

# ---------------------------------------------------------------------------
# Watchdog behaviour (environment variables read by watchdog/config.py)
# ---------------------------------------------------------------------------

variable "dry_run" {
  description = "WATCHDOG_DRY_RUN: decide and report to Slack, but never change traffic. Starts true: watch a few alerts in dry-run before letting it act."
  type        = bool
  default     = true
}

variable "paused" {
  description = "WATCHDOG_PAUSED: acknowledge and report alerts but take no action at all (a kill switch that needs no redeploy of code)."
  type        = bool
  default     = false
}

variable "rollback_on" {
  description = "WATCHDOG_ROLLBACK_ON: which change between the failing and the previous revision justifies a rollback: egress (VPC egress setting only), network (any network setting) or any (any change)."
  type        = string
  default     = "egress"

  validation {
    condition     = contains(["egress", "network", "any"], var.rollback_on)
    error_message = "rollback_on must be one of egress, network or any."
  }
}

variable "cooldown_seconds" {
  description = "WATCHDOG_COOLDOWN_SECONDS: after a rollback of a service, further rollbacks of that service are refused for this long. At most 604800 (7 days)."
  type        = number
  default     = 1800

  validation {
    condition     = var.cooldown_seconds >= 0 && var.cooldown_seconds <= 604800 && floor(var.cooldown_seconds) == var.cooldown_seconds
    error_message = "cooldown_seconds must be a whole number of seconds from 0 to 604800 (7 days), as the watchdog accepts."
  }
}

variable "deadline_seconds" {
  description = "WATCHDOG_DEADLINE_SECONDS: time budget of one alert's handling, from 5 to 540 seconds. It must not exceed function_timeout_seconds (checked at plan time)."
  type        = number
  default     = 60

  validation {
    condition     = var.deadline_seconds >= 5 && var.deadline_seconds <= 540
    error_message = "deadline_seconds must be from 5 to 540 seconds (the watchdog refuses other values)."
  }
}

variable "max_alert_age_seconds" {
  description = "WATCHDOG_MAX_ALERT_AGE_SECONDS: alerts whose incident started longer ago than this are reported but not acted on (a redelivered or dead-lettered alert from hours ago must not move traffic now). 0 disables the check; at most 2678400 (31 days, as long as Pub/Sub keeps a message)."
  type        = number
  default     = 21600

  validation {
    condition     = var.max_alert_age_seconds >= 0 && var.max_alert_age_seconds <= 2678400 && floor(var.max_alert_age_seconds) == var.max_alert_age_seconds
    error_message = "max_alert_age_seconds must be a whole number of seconds, zero (no limit) to 2678400 (31 days)."
  }
}

variable "max_change_age_hours" {
  description = "WATCHDOG_MAX_CHANGE_AGE_HOURS: a change made longer than this before the alert is reported as a suspect, never acted on automatically (months of deploys on top of a change say it is not what broke today). From 24 (a day: the staging incident surfaced 37 hours after its deploy) to 8784 (a year). Default 168 (7 days)."
  type        = number
  default     = 168

  validation {
    condition     = var.max_change_age_hours >= 24 && var.max_change_age_hours <= 8784
    error_message = "max_change_age_hours must be from 24 (a day) to 8784 (a year) hours, as the watchdog accepts."
  }
}

variable "field_revert" {
  description = "WATCHDOG_FIELD_REVERT: what a rollback does when pinning the known-good revision would take later deploys out of service: auto (the default) reverts only the changed egress/network fields on a new revision with the failing revision's code; offer pins and offers that revert on the card; off pins."
  type        = string
  default     = "auto"

  validation {
    condition     = contains(["auto", "offer", "off"], var.field_revert)
    error_message = "field_revert must be auto, offer or off."
  }
}

variable "show_env" {
  description = "WATCHDOG_SHOW_ENV: names of environment variables whose values reports may show (cards, Slack messages, logs). Every other value is shown only in a harmless shape (a number, duration, boolean or short word), or as \"changed (value hidden)\". Default: none."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for n in var.show_env : can(regex("^[A-Za-z_][A-Za-z0-9_]{0,127}$", n))])
    error_message = "Each entry of show_env must be an environment variable name: letters, digits and _, not starting with a digit, at most 128 characters."
  }
}

variable "rollback_policies" {
  description = "WATCHDOG_POLICIES: the alert policies (display names or IDs, projects/P/alertPolicies/ID or the ID alone) whose incidents may roll back; incidents of any other policy are reported but change no traffic. Empty (the default): any policy that notifies the watchdog's channel. A live drill is an incident of the policy \"Rollback watchdog drill\": list it too to allow live drills. The deploy-time hold (sentinel = hold) is not a policy and is not affected."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.rollback_policies : trimspace(p) == p && p != "" && !strcontains(p, ",")])
    error_message = "Each entry of rollback_policies must be a policy's display name or ID, not blank, without spaces around it and without a comma (the watchdog reads a comma-separated list: name a policy whose display name has a comma by its ID)."
  }
}

variable "metrics_project" {
  description = "WATCHDOG_METRICS_PROJECT: project that receives the watchdog's own metric custom.googleapis.com/rollback_watchdog/decisions. Defaults to project_id."
  type        = string
  default     = null

  validation {
    condition     = var.metrics_project == null || can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", coalesce(var.metrics_project, "x")))
    error_message = "metrics_project must be a project ID."
  }
}

# ---------------------------------------------------------------------------
# Slack
# ---------------------------------------------------------------------------

variable "slack_channel" {
  description = "SLACK_CHANNEL: the ID (e.g. C0123456789) of the channel the bot posts to, never its #name: the watchdog finds a card it already posted by the channel ID. Not a secret."
  type        = string

  validation {
    condition     = can(regex("^[CG][A-Z0-9]{2,}$", var.slack_channel))
    error_message = "slack_channel must be the channel's ID, such as C0123456789 (C or G, then capitals and digits), not its #name: in Slack, open the channel's details by clicking its name; the ID is at the bottom of the About tab."
  }
}

variable "slack_bot_token_secret" {
  description = "Secret Manager secret ID (short name, e.g. rollback-watchdog-slack-bot-token) holding the Slack bot token. The token itself never passes through Terraform: create the secret with gcloud (see README). Its latest version is exposed to the function as SLACK_BOT_TOKEN."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.slack_bot_token_secret))
    error_message = "slack_bot_token_secret must be the secret's short ID (letters, digits, - and _), not the token and not a projects/... path."
  }
}

variable "slack_webhook_url_secret" {
  description = "Optional Secret Manager secret ID holding a Slack incoming-webhook URL, exposed as SLACK_WEBHOOK_URL (fallback when no bot token is used)."
  type        = string
  default     = null

  validation {
    condition     = var.slack_webhook_url_secret == null || can(regex("^[A-Za-z0-9_-]{1,255}$", coalesce(var.slack_webhook_url_secret, "x")))
    error_message = "slack_webhook_url_secret must be a secret's short ID, not the URL itself."
  }
}

variable "secret_project" {
  description = "Project holding the Slack secrets. Defaults to project_id."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------

variable "function_timeout_seconds" {
  description = "Request timeout of the alert, events and drill functions, and the push subscriptions' ack deadline. Must be at least deadline_seconds; Pub/Sub push allows at most 600."
  type        = number
  default     = 60

  validation {
    condition     = var.function_timeout_seconds >= 10 && var.function_timeout_seconds <= 600 && floor(var.function_timeout_seconds) == var.function_timeout_seconds
    error_message = "function_timeout_seconds must be a whole number between 10 and 600 (the Pub/Sub push ack deadline limit)."
  }
}

variable "function_memory" {
  description = "Memory of each function instance, e.g. 256M or 512M."
  type        = string
  default     = "256M"

  validation {
    condition     = can(regex("^[0-9]+(M|Mi|G|Gi)$", var.function_memory))
    error_message = "function_memory must look like 256M, 512Mi or 1G."
  }
}

variable "max_instance_count" {
  description = "Maximum instances of the alert function and of the events function. 1 (with one request per instance) serialises rollbacks, so two alerts never race on one service."
  type        = number
  default     = 1

  validation {
    condition     = var.max_instance_count >= 1 && var.max_instance_count <= 100 && floor(var.max_instance_count) == var.max_instance_count
    error_message = "max_instance_count must be a whole number between 1 and 100."
  }
}

variable "build_service_account" {
  description = "Email of an existing service account in project_id that Cloud Build uses to build the functions. The module grants it roles/cloudbuild.builds.builder on project_id. Null creates <name_prefix>-build for that. Whoever runs terraform needs iam.serviceAccounts.actAs on it."
  type        = string
  default     = null

  validation {
    condition     = var.build_service_account == null || can(regex("^[a-z0-9][-a-z0-9]*@[-a-z0-9.]+\\.gserviceaccount\\.com$", coalesce(var.build_service_account, "x")))
    error_message = "build_service_account must be a bare service account email ending in gserviceaccount.com (no \"serviceAccount:\" prefix, no projects/... path)."
  }
}

variable "drill_ingress" {
  description = "Ingress of the drill function: ALLOW_INTERNAL_ONLY (default; call it from inside the VPC) or ALLOW_INTERNAL_AND_GCLB (behind your own load balancer/IAP)."
  type        = string
  default     = "ALLOW_INTERNAL_ONLY"

  validation {
    condition     = contains(["ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"], var.drill_ingress)
    error_message = "drill_ingress must be ALLOW_INTERNAL_ONLY or ALLOW_INTERNAL_AND_GCLB; the drill is never exposed to all traffic."
  }
}

variable "drill_invokers" {
  description = "On-call principals allowed to call the drill function (roles/run.invoker on its service), e.g. [\"group:oncall@example.com\"]. A drill may ask for \"live\": true and then really moves traffic, so list only people who could roll back by hand anyway: no whole domains."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.drill_invokers : can(regex("^(user|group|serviceAccount):[^\\s]+$", m))])
    error_message = "Each drill invoker must be user:, group: or serviceAccount: followed by an identity; allUsers, allAuthenticatedUsers and whole domains (domain:) are not accepted, because a drill can run live."
  }
}

variable "drill_publishers" {
  description = "Principals allowed to publish to the alert topic (roles/pubsub.publisher on that topic only), for `rollback-watchdog drill --topic`. Whoever can publish there can make the watchdog act: list only people who could roll back by hand anyway."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.drill_publishers : can(regex("^(user|group|serviceAccount):[^\\s]+$", m))])
    error_message = "Each drill publisher must be user:, group: or serviceAccount: followed by an identity; allUsers, allAuthenticatedUsers and whole domains are not accepted."
  }
}

# ---------------------------------------------------------------------------
# Delivery: push subscription and dead letters
# ---------------------------------------------------------------------------

variable "max_delivery_attempts" {
  description = "Deliveries of one alert to the function before Pub/Sub moves it to the dead-letter topic."
  type        = number
  default     = 10

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be between 5 and 100 (Pub/Sub's limits)."
  }
}

variable "dead_letter_retention" {
  description = "How long dead letters are kept on the dead-letter subscription for inspection, as a duration in seconds: from 600s (10 minutes) to 2678400s (31 days, Pub/Sub's maximum message retention). Default 604800s (7 days)."
  type        = string
  default     = "604800s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.dead_letter_retention)) && try(tonumber(trimsuffix(var.dead_letter_retention, "s")) >= 600 && tonumber(trimsuffix(var.dead_letter_retention, "s")) <= 2678400, false)
    error_message = "dead_letter_retention must be between 600s (10 minutes) and 2678400s (31 days), written in seconds such as 86400s."
  }
}

variable "pubsub_kms_key_name" {
  description = "Optional Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K) for the alert, events and dead-letter topics. Null uses Google-managed encryption."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------
# Detection (alerts from the incident write-up)
# ---------------------------------------------------------------------------

variable "startup_failure_threshold" {
  description = "Container startup failures of one revision within startup_failure_window before the alert opens (the alert fires when the count is above this)."
  type        = number
  default     = 0

  validation {
    condition     = var.startup_failure_threshold >= 0
    error_message = "startup_failure_threshold must be zero or more."
  }
}

variable "startup_failure_window" {
  description = "Alignment window of the metric-based startup-failure policy, in seconds such as 60s. The log-match policy opens the incident first; this window decides how soon after the last failure line the metric incident closes, which sends the recovery follow-up. At least 60s (the metric's sampling period)."
  type        = string
  default     = "60s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.startup_failure_window)) && try(tonumber(trimsuffix(var.startup_failure_window, "s")) >= 60, false)
    error_message = "startup_failure_window must be at least 60s, written in seconds such as 120s."
  }
}

variable "db_timeout_window" {
  description = "Alignment window of the metric-based DB-timeout policy, in seconds such as 60s. As for startup_failure_window, the log-match policy opens first; this decides how soon the metric incident closes after the last timeout line (the recovery follow-up). At least 60s."
  type        = string
  default     = "60s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.db_timeout_window)) && try(tonumber(trimsuffix(var.db_timeout_window, "s")) >= 60, false)
    error_message = "db_timeout_window must be at least 60s, written in seconds such as 120s."
  }
}

variable "log_metric_propagation_wait" {
  description = "How long the first apply waits between creating the log-based metrics and the alert policies that use them, as a duration such as 600s or 10m. Cloud Monitoring refuses a policy on a log-based metric it does not know yet, and says a new one can take up to 10 minutes to become available: the default waits that long, once (only when the metrics are created). With a shorter wait the first apply may fail on the alert policies; run apply again and it creates them (the metrics exist by then)."
  type        = string
  default     = "600s"

  validation {
    condition     = can(regex("^[0-9]+(s|m)$", var.log_metric_propagation_wait))
    error_message = "log_metric_propagation_wait must be a duration in seconds or minutes, such as 120s or 3m."
  }
}

variable "db_timeout_event" {
  description = "The value the application writes in jsonPayload.<db_timeout_event_field>, at severity ERROR or above, when a database connect times out (one structured line on stdout or stderr). Only that field counts: a phrase inside a free-text line could come from an echoed request."
  type        = string
  default     = "db_connect_timeout"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.:-]{1,100}$", var.db_timeout_event))
    error_message = "db_timeout_event must be 1 to 100 letters, digits, '_', '.', ':' or '-' (it is matched by equality)."
  }
}

variable "db_timeout_event_field" {
  description = "The jsonPayload key that carries db_timeout_event (e.g. event for {\"severity\": \"ERROR\", \"event\": \"db_connect_timeout\"})."
  type        = string
  default     = "event"

  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_]{0,63}$", var.db_timeout_event_field))
    error_message = "db_timeout_event_field must be a single JSON key of letters, digits and '_' (no dots or quotes)."
  }
}

variable "slow_db_connect_log_filter" {
  description = "Logging filter (without the resource and log-name parts, which the module adds: the watched services' stdout and stderr) selecting the log entries that report a database connect time. Match a structured field, not text an echoed request could carry."
  type        = string
  default     = "jsonPayload.db_connect_seconds:*"
}

variable "slow_db_connect_value_extractor" {
  description = "Value extractor giving the connect time in seconds from those entries, e.g. EXTRACT(jsonPayload.db_connect_seconds) or REGEXP_EXTRACT(textPayload, \"connected in ([0-9.]+)s\")."
  type        = string
  default     = "EXTRACT(jsonPayload.db_connect_seconds)"

  validation {
    condition     = can(regex("^(EXTRACT|REGEXP_EXTRACT)\\(", var.slow_db_connect_value_extractor))
    error_message = "slow_db_connect_value_extractor must be an EXTRACT(...) or REGEXP_EXTRACT(...) expression."
  }
}

variable "slow_db_connect_threshold_seconds" {
  description = "The slow-DB-connect alert opens when the 99th percentile of connect time of one revision is above this many seconds."
  type        = number
  default     = 5

  validation {
    condition     = var.slow_db_connect_threshold_seconds > 0
    error_message = "slow_db_connect_threshold_seconds must be above zero."
  }
}

variable "alert_auto_close" {
  description = "Incidents with no new data are closed after this long (seconds, e.g. 1800s). Metric-threshold incidents then send the CLOSED notification the watchdog uses for its recovery follow-up."
  type        = string
  default     = "1800s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.alert_auto_close)) && try(tonumber(trimsuffix(var.alert_auto_close, "s")) >= 1800, false)
    error_message = "alert_auto_close must be at least 1800s (Cloud Monitoring's minimum), written in seconds."
  }
}

variable "log_match_rate_limit" {
  description = "Minimum time between two notifications of one log-match policy (required by the API for log-match policies), in seconds such as 300s."
  type        = string
  default     = "300s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.log_match_rate_limit)) && try(tonumber(trimsuffix(var.log_match_rate_limit, "s")) >= 300, false)
    error_message = "log_match_rate_limit must be at least 300s (Cloud Monitoring's minimum), written in seconds."
  }
}

# ---------------------------------------------------------------------------
# Watching the watchdog
# ---------------------------------------------------------------------------

variable "watchdog_oncall_channels" {
  description = "Notification channels of project_id (projects/PROJECT_ID/notificationChannels/ID) that hear about the watchdog's own failures: function errors, failed decisions (unless metrics_project is another project), dead letters. Never the watchdog's own Pub/Sub channel, so a failing watchdog cannot trigger itself."
  type        = list(string)

  validation {
    condition     = length(var.watchdog_oncall_channels) > 0
    error_message = "watchdog_oncall_channels needs at least one channel: nobody would hear that the watchdog itself is failing."
  }

  validation {
    condition     = alltrue([for c in var.watchdog_oncall_channels : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", c))])
    error_message = "Each on-call channel must be a full channel name: projects/PROJECT/notificationChannels/ID."
  }
}

variable "metrics_project_oncall_channels" {
  description = "Only when metrics_project differs from project_id: notification channels of metrics_project (projects/METRICS_PROJECT/notificationChannels/ID) for the failed-decisions alert, which lives in metrics_project next to the metric. An alert policy can only notify channels of its own project."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.metrics_project_oncall_channels : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", c))])
    error_message = "Each metrics-project on-call channel must be a full channel name: projects/PROJECT/notificationChannels/ID."
  }
}

variable "decision_metric_labels" {
  description = "Labels of the watchdog's metric custom.googleapis.com/rollback_watchdog/decisions. The descriptor is created up front so its alert policy can be created before the first decision; the watchdog writes service, action, outcome and instance (watchdog/edges/monitoring.py); a label it writes that is missing here makes its writes fail."
  type        = list(string)
  default     = ["service", "action", "outcome", "instance"]

  validation {
    condition     = contains(var.decision_metric_labels, "outcome")
    error_message = "decision_metric_labels must include outcome: the failed-decision alert filters on it."
  }
}

variable "sentinel" {
  description = "WATCHDOG_SENTINEL: what the watchdog does with Cloud Run deploy events (audit log sink, sentinel.tf): warn (post a Slack warning about risky configuration at deploy time), hold (warn, then pin traffic back to the revision that served before as soon as a blocking deploy serves; watched services only) or off (no sink)."
  type        = string
  default     = "warn"

  validation {
    condition     = contains(["off", "warn", "hold"], var.sentinel)
    error_message = "sentinel must be off, warn or hold."
  }
}

variable "sentinel_folder_id" {
  description = "Optional: a folder (folders/NUMBER or NUMBER) whose Cloud Run deploys the sentinel also reads, through one folder-level sink. Whoever applies needs roles/logging.configWriter on it."
  type        = string
  default     = null

  validation {
    condition     = var.sentinel_folder_id == null || can(regex("^(folders/)?[0-9]+$", var.sentinel_folder_id))
    error_message = "sentinel_folder_id must be folders/NUMBER or NUMBER."
  }
}

variable "slack_actions" {
  description = <<-EOT
    Optional: the Slack card's buttons (undo, revert field, pause and resume, I'm on it) through the slack_actions function (slack_actions.tf).
    signing_secret: the Secret Manager secret holding the Slack app's signing secret (never the value itself).
    team_id: the workspace the buttons answer (T…). approvers: Slack user IDs (U…/W…) and user-group IDs (S…)
    allowed to click. min_instances: 1 (the default) keeps one warm instance so a cold start does not eat Slack's
    3 seconds (it is billed while idle); 0 turns it off.
  EOT
  type = object({
    signing_secret = string
    team_id        = string
    approvers      = list(string)
    min_instances  = optional(number, 1)
  })
  default = null

  validation {
    condition     = var.slack_actions == null || can(regex("^T[A-Z0-9]+$", var.slack_actions.team_id))
    error_message = "slack_actions.team_id must be a Slack team id (T followed by capitals and digits)."
  }

  validation {
    condition = var.slack_actions == null || (
      length(var.slack_actions.approvers) > 0 &&
      alltrue([for a in var.slack_actions.approvers : can(regex("^[UWS][A-Z0-9]+$", a))])
    )
    error_message = "slack_actions.approvers must list Slack user IDs (U…/W…) or user-group IDs (S…); nobody can click otherwise."
  }

  validation {
    condition     = var.slack_actions == null || contains([0, 1], var.slack_actions.min_instances)
    error_message = "slack_actions.min_instances must be 0 or 1."
  }
}

variable "scheduler_region" {
  description = "Region of the verification tick's Cloud Scheduler job (verify.tf). Null: the functions' region. Cloud Scheduler is not offered in every region (https://cloud.google.com/scheduler/docs/locations, or gcloud scheduler locations list); where the functions' region lacks it, name one that has it, e.g. us-central1 or europe-west1. The job only publishes to the watchdog's topic, so any region works."
  type        = string
  default     = null

  validation {
    condition     = var.scheduler_region == null || can(regex("^[a-z]+(-[a-z]+)+[0-9]+$", coalesce(var.scheduler_region, "x")))
    error_message = "scheduler_region must be a Google Cloud region such as us-central1, or null for the functions' region."
  }
}

variable "verify_minutes" {
  description = "WATCHDOG_VERIFY_MINUTES: after a rollback, the failure signal must stay quiet this long (and startup probes be healthy) before the card says recovered (verify.tf ticks every minute)."
  type        = number
  default     = 10

  validation {
    condition     = var.verify_minutes >= 1 && var.verify_minutes <= 1440
    error_message = "verify_minutes must be between 1 and 1440 (a day)."
  }
}
