variable "project_id" {
  description = "Project that hosts the watchdog and the checkout service."
  type        = string
}

variable "region" {
  description = "Region of the watchdog and of the checkout service."
  type        = string
  default     = "europe-west1"
}

variable "slack_channel" {
  description = "Slack channel ID the watchdog posts to."
  type        = string
}

variable "oncall_email" {
  description = "E-mail address told when the watchdog itself fails."
  type        = string
}

variable "oncall_group" {
  description = "Google group allowed to run drills."
  type        = string
}
