# Upgrading a deployment made before the functions, push subscriptions and
# alert policies were built from maps: Terraform moves each object in the state
# to its new address on the next plan, so nothing is destroyed and created
# again (same names, same IDs; the plan says "has moved to"). Keep these blocks:
# a deployment that skips a release still needs them. (README: "Upgrading".)

# The functions (function.tf): one definition, one entry each.
moved {
  from = google_cloudfunctions2_function.alert
  to   = google_cloudfunctions2_function.watchdog["alert"]
}

moved {
  from = google_cloudfunctions2_function.events
  to   = google_cloudfunctions2_function.watchdog["events"]
}

moved {
  from = google_cloudfunctions2_function.drill
  to   = google_cloudfunctions2_function.watchdog["drill"]
}

moved {
  from = google_cloudfunctions2_function.actions["actions"]
  to   = google_cloudfunctions2_function.watchdog["actions"]
}

# The push subscriptions and their grants (pubsub.tf, iam.tf): one per fed function.
moved {
  from = google_pubsub_subscription.alerts_push
  to   = google_pubsub_subscription.push["alert"]
}

moved {
  from = google_pubsub_subscription.events_push
  to   = google_pubsub_subscription.push["events"]
}

moved {
  from = google_cloud_run_v2_service_iam_member.trigger_invokes_alert
  to   = google_cloud_run_v2_service_iam_member.trigger_invokes["alert"]
}

moved {
  from = google_cloud_run_v2_service_iam_member.trigger_invokes_events
  to   = google_cloud_run_v2_service_iam_member.trigger_invokes["events"]
}

moved {
  from = google_pubsub_subscription_iam_member.pubsub_agent_acks_dead_letters
  to   = google_pubsub_subscription_iam_member.pubsub_agent_acks_dead_letters["alert"]
}

moved {
  from = google_pubsub_subscription_iam_member.pubsub_agent_acks_event_dead_letters
  to   = google_pubsub_subscription_iam_member.pubsub_agent_acks_dead_letters["events"]
}

# The metric-threshold policies (alerts.tf): one definition, one entry each.
moved {
  from = google_monitoring_alert_policy.startup_failures[0]
  to   = google_monitoring_alert_policy.metric_threshold["startup_failures"]
}

moved {
  from = google_monitoring_alert_policy.db_timeouts[0]
  to   = google_monitoring_alert_policy.metric_threshold["db_timeouts"]
}

moved {
  from = google_monitoring_alert_policy.slow_db_connect[0]
  to   = google_monitoring_alert_policy.metric_threshold["slow_db_connect"]
}

# The per-service log-match policies: each signal's policies, all services at
# once, into that signal's instance of modules/log_match_policies (same keys).
moved {
  from = google_monitoring_alert_policy.startup_failure_lines
  to   = module.log_match["startup_failure_lines"].google_monitoring_alert_policy.per_service
}

moved {
  from = google_monitoring_alert_policy.db_timeout
  to   = module.log_match["db_timeout"].google_monitoring_alert_policy.per_service
}
