output "policy_names" {
  description = "The policies' names (projects/P/alertPolicies/ID), by PROJECT/REGION/SERVICE."
  value       = { for k, p in google_monitoring_alert_policy.per_service : k => p.name }
}
