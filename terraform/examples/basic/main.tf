# Smallest useful deployment: one watched service, dry-run on, on-call
# e-mail for the watchdog's own failures. See ../../README.md.

provider "google" {
  project = var.project_id
  region  = var.region
}

resource "google_monitoring_notification_channel" "oncall_email" {
  project      = var.project_id
  display_name = "Rollback watchdog on-call"
  type         = "email"

  labels = {
    email_address = var.oncall_email
  }
}

module "rollback_watchdog" {
  source = "../.."

  project_id = var.project_id
  region     = var.region

  watched_services = [
    { name = "checkout", region = var.region },
  ]
  watched_runtime_service_accounts = [
    "checkout-runtime@${var.project_id}.iam.gserviceaccount.com",
  ]

  # Start in dry-run: the watchdog reports what it would do in Slack.
  dry_run     = true
  rollback_on = "egress"

  slack_channel          = var.slack_channel
  slack_bot_token_secret = "rollback-watchdog-slack-bot-token"

  drill_invokers           = ["group:${var.oncall_group}"]
  watchdog_oncall_channels = [google_monitoring_notification_channel.oncall_email.name]
}
