output "alert_topic" {
  description = "Pub/Sub topic (projects/P/topics/T) Cloud Monitoring publishes incidents to. Pass it to `rollback-watchdog drill --topic`."
  value       = google_pubsub_topic.alerts.id
}

output "notification_channel" {
  description = "The Pub/Sub notification channel (projects/P/notificationChannels/ID). Add it to any other alert policy the watchdog should act on."
  value       = google_monitoring_notification_channel.pubsub.name
}

output "push_subscription" {
  description = "Subscription that pushes alerts to the alert function, with the dead-letter policy."
  value       = google_pubsub_subscription.push["alert"].id
}

output "events_topic" {
  description = "Pub/Sub topic (projects/P/topics/T) of deploy events (the sentinel's sinks) and verification ticks, delivered to the events function apart from alerts."
  value       = google_pubsub_topic.events.id
}

output "events_push_subscription" {
  description = "Subscription that pushes deploy events and ticks to the events function, with the dead-letter policy."
  value       = google_pubsub_subscription.push["events"].id
}

output "events_function_name" {
  description = "Name of the function that handles deploy events and ticks (entry point handle_events)."
  value       = google_cloudfunctions2_function.watchdog["events"].name
}

output "dead_letter_topic" {
  description = "Topic that receives alerts, deploy events and ticks the functions failed to handle after max_delivery_attempts."
  value       = google_pubsub_topic.dead_letter.id
}

output "dead_letter_subscription" {
  description = "Subscription holding dead letters for inspection (gcloud pubsub subscriptions pull ...)."
  value       = google_pubsub_subscription.dead_letter.id
}

output "alert_function_name" {
  description = "Name of the alert-handling function (entry point handle_alert)."
  value       = google_cloudfunctions2_function.watchdog["alert"].name
}

output "drill_function_name" {
  description = "Name of the drill function (entry point drill)."
  value       = google_cloudfunctions2_function.watchdog["drill"].name
}

output "drill_url" {
  description = "HTTPS URL of the drill function. Internal ingress: call it from inside the VPC with an identity token of a drill_invokers principal."
  value       = google_cloudfunctions2_function.watchdog["drill"].service_config[0].uri
}

output "service_account_email" {
  description = "Runtime service account of the alert, events and drill functions."
  value       = google_service_account.function.email
}

output "trigger_service_account_email" {
  description = "Service account in the OIDC token of the push subscriptions (the only invoker of the alert and events functions)."
  value       = google_service_account.trigger.email
}

output "source_bucket" {
  description = "Bucket holding the functions' source archives."
  value       = google_storage_bucket.source.name
}

output "alert_policies" {
  description = "Alert policies that notify the watchdog (projects/P/alertPolicies/ID), by policy (metric threshold) or signal (log match, one per watched service in project_id)."
  value = merge(
    { for k, p in google_monitoring_alert_policy.metric_threshold : k => [p.name] },
    { for k, m in module.log_match : k => values(m.policy_names) },
  )
}

output "slack_actions_url" {
  description = "The Slack app's Interactivity Request URL (slack_actions.tf), or null without var.slack_actions. Public: every request is authenticated by its Slack signature."
  value       = var.slack_actions == null ? null : google_cloudfunctions2_function.watchdog["actions"].service_config[0].uri
}
