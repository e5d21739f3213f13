output "alert_topic" {
  description = "Topic for `python -m watchdog drill --topic`."
  value       = module.rollback_watchdog.alert_topic
}

output "drill_url" {
  description = "Drill endpoint (internal ingress)."
  value       = module.rollback_watchdog.drill_url
}

output "notification_channel" {
  description = "Add this channel to other alert policies the watchdog should act on."
  value       = module.rollback_watchdog.notification_channel
}

output "dead_letter_subscription" {
  description = "Where undeliverable alerts wait."
  value       = module.rollback_watchdog.dead_letter_subscription
}

output "slack_actions_url" {
  description = "With the buttons: the Slack app's Interactivity Request URL (null without them)."
  value       = module.rollback_watchdog.slack_actions_url
}
