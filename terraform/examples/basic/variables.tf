variable "project_id" {
  description = "Project that hosts the watchdog and the watched services."
  type        = string
}

variable "region" {
  description = "Region of the watchdog's functions, e.g. europe-west1."
  type        = string
  default     = "europe-west1"
}

variable "watched_services" {
  description = "Cloud Run services the watchdog may roll back: {name, region, project?, runtime_service_account?}. runtime_service_account is the email the service runs as; leave it out for the project's Compute Engine default account. Nothing reads the services, so they need not exist yet."
  type = list(object({
    name                    = string
    region                  = string
    project                 = optional(string)
    runtime_service_account = optional(string)
  }))
}

variable "slack_channel" {
  description = "Slack channel ID the watchdog posts to, e.g. C0123456789."
  type        = string
}

variable "slack_secret_id" {
  description = "ID of the Secret Manager secret (in project_id) that holds the Slack bot token. Create it with gcloud first (README step 2); Terraform never sees the token."
  type        = string
}

variable "oncall_email" {
  description = "E-mail address told when the watchdog itself fails."
  type        = string
}

variable "drill_invokers" {
  description = "Principals allowed to run drills against the drill function, e.g. [\"group:sre-oncall@example.com\"]. Empty: nobody."
  type        = list(string)
  default     = []
}

variable "drill_publishers" {
  description = "Principals allowed to publish drills to the alert topic (rollback-watchdog drill --topic), e.g. [\"group:sre-oncall@example.com\"]. Empty: nobody."
  type        = list(string)
  default     = []
}

variable "dry_run" {
  description = "true (the default): the watchdog decides and reports in Slack, and changes no traffic. Set false in terraform.tfvars to let it roll back (README: going live)."
  type        = bool
  default     = true
}

variable "slack_signing_secret_id" {
  description = "ID of the Secret Manager secret (in project_id) holding the Slack app's signing secret. Set it, with slack_team_id and slack_approvers, to turn on the card's buttons; null (the default): no buttons and no public endpoint."
  type        = string
  default     = null
}

variable "slack_team_id" {
  description = "With the buttons: the Slack workspace (team) ID the buttons answer, T followed by capitals and digits."
  type        = string
  default     = null
}

variable "slack_approvers" {
  description = "With the buttons: the Slack user IDs (U…/W…) and user-group IDs (S…) allowed to click them."
  type        = list(string)
  default     = []
}
