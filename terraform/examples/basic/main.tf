# Smallest useful deployment: the services you list, dry-run on, an on-call
# e-mail for the watchdog's own failures. Everything specific to your project
# is a variable (terraform.tfvars.example). See ../../README.md.

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

  # Start in dry-run: the watchdog reports what it would do in Slack.
  dry_run     = true
  rollback_on = "egress"

  slack_channel = var.slack_channel
  # The ID of a secret created beforehand (README step 2), never the token.
  slack_bot_token_secret = var.slack_secret_id

  drill_invokers           = var.drill_invokers
  watchdog_oncall_channels = [google_monitoring_notification_channel.oncall_email.name]
}
