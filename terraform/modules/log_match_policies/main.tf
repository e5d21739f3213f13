# One log-match alert policy per watched service, for one signal (alerts.tf,
# local.log_match_signals): the first matching line of the service opens an
# incident, in about a minute, on the watchdog's channel.
#
# Why a module for one resource: the root module calls it once per signal, so
# a policy's address is module.log_match["SIGNAL"]...per_service["SERVICE"].
# Deployments made before hold these policies as
# google_monitoring_alert_policy.SIGNAL["SERVICE"], and a moved block can move a
# whole resource into a module instance (moved.tf) but cannot name your
# services one by one: with every signal in one root resource, an upgrade would
# have replaced every per-service policy.

resource "google_monitoring_alert_policy" "per_service" {
  for_each = var.services

  project               = var.project
  display_name          = "${var.title}: ${each.value.name} (${each.value.region})"
  combiner              = "OR"
  severity              = var.severity
  notification_channels = var.notification_channels

  # cloud_run_service / cloud_run_region: the watchdog's fallback when an incident's resource labels are
  # missing (watchdog/core/intake.py).
  user_labels = {
    rollback_watchdog = "true"
    signal            = var.signal
    cloud_run_service = each.value.name
    cloud_run_region  = each.value.region
  }

  conditions {
    display_name = "${var.logged} logged by ${each.value.name}"

    condition_matched_log {
      filter = each.value.filter

      label_extractors = {
        revision_name = "EXTRACT(resource.labels.revision_name)"
      }
    }
  }

  alert_strategy {
    # Required for log-match policies; at most one notification per period,
    # per policy (one policy per service, so services do not share it).
    notification_rate_limit {
      period = var.rate_limit
    }
    auto_close           = var.auto_close
    notification_prompts = ["OPENED"]
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.subject} on ${each.value.name} ($${log.extracted_label.revision_name})"
    content   = <<-EOT
      Revision **$${log.extracted_label.revision_name}** of Cloud Run service **${each.value.name}**
      (${each.value.region}) logged ${var.what}.

      This log-match incident is the fast path to the rollback watchdog; it never closes with a
      notification. The recovery follow-up comes with the metric-based "${var.closing}" incident closing.
    EOT
  }
}
