# Smallest useful deployment: the services you list, dry-run on, an on-call
# e-mail for the watchdog's own failures, and the card's buttons when you give
# their secret. Everything specific to your project is a variable: copy
# terraform.tfvars.example to terraform.tfvars and edit that file only (going
# live is dry_run = false there). See ../../README.md.

provider "google" {
  project = var.project_id
  region  = var.region
}

# The module creates the Pub/Sub and Monitoring service agents with
# google_project_service_identity, which only google-beta has.
provider "google-beta" {
  project = var.project_id
  region  = var.region
}

# The on-call channel is created before the module enables the Monitoring API
# (the module needs the channel's name), so this root enables it first.
resource "google_project_service" "monitoring" {
  project = var.project_id
  service = "monitoring.googleapis.com"

  disable_on_destroy = false
}

resource "google_monitoring_notification_channel" "oncall_email" {
  project      = var.project_id
  display_name = "Rollback watchdog on-call"
  type         = "email"

  labels = {
    email_address = var.oncall_email
  }

  depends_on = [google_project_service.monitoring]
}

module "rollback_watchdog" {
  source = "../.."

  project_id = var.project_id
  region     = var.region

  watched_services = var.watched_services

  # true (the default) reports in Slack what it would do; false in terraform.tfvars acts.
  dry_run     = var.dry_run
  rollback_on = "egress"

  slack_channel = var.slack_channel
  # The ID of a secret created beforehand (README step 2), never the token.
  slack_bot_token_secret = var.slack_secret_id

  # The card's buttons (undo, revert field, pause and resume, I'm on it): on once the signing secret's ID is set.
  slack_actions = var.slack_signing_secret_id == null ? null : {
    signing_secret = var.slack_signing_secret_id
    team_id        = var.slack_team_id
    approvers      = var.slack_approvers
  }

  drill_invokers           = var.drill_invokers
  drill_publishers         = var.drill_publishers
  watchdog_oncall_channels = [google_monitoring_notification_channel.oncall_email.name]
}
