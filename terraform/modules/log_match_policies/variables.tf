variable "project" {
  description = "Project of the policies: the watchdog's project_id, where the services' logs are."
  type        = string
}

variable "notification_channels" {
  description = "The watchdog's Pub/Sub notification channel(s)."
  type        = list(string)
}

variable "services" {
  description = "One policy per entry, keyed PROJECT/REGION/SERVICE: the service's name and region, and the Logging filter of its matching lines."
  type = map(object({
    name   = string
    region = string
    filter = string
  }))
}

variable "signal" {
  description = "The policies' user label signal, e.g. startup-failure-line."
  type        = string
}

variable "severity" {
  description = "The policies' severity: CRITICAL, ERROR or WARNING."
  type        = string
}

variable "title" {
  description = "Display name before \": SERVICE (REGION)\"."
  type        = string
}

variable "logged" {
  description = "What the condition sees, before \" logged by SERVICE\"."
  type        = string
}

variable "subject" {
  description = "Notification subject before \" on SERVICE (REVISION)\"."
  type        = string
}

variable "what" {
  description = "What the revision logged, in the notification's text."
  type        = string
}

variable "closing" {
  description = "The metric-based policy of the same signal whose incident closing sends the recovery follow-up."
  type        = string
}

variable "rate_limit" {
  description = "Minimum time between two notifications of one policy (the API requires one for log-match policies)."
  type        = string
}

variable "auto_close" {
  description = "Incidents with no new data close after this long."
  type        = string
}
