"""terraform/sentinel.tf: the deploy-event sink exports exactly the four Cloud Run write methods to the topic."""

from __future__ import annotations

from tests.terraform.test_wiring import locals_, module, resource
from watchdog.core.deploys import METHODS


def test_the_sink_filter_names_exactly_the_methods_the_watchdog_reads():
    local = locals_()
    assert sorted(local["sentinel_methods"]) == sorted(METHODS)
    sink = resource("google_logging_project_sink", "deploys")
    assert sink["filter"] == "${local.sentinel_filter}"
    assert "protoPayload.serviceName" in local["sentinel_filter"]
    assert "cloudaudit.googleapis.com%2Factivity" in local["sentinel_filter"]


def test_the_sink_writes_to_the_watchdogs_topic_and_may_only_publish_there():
    sink = resource("google_logging_project_sink", "deploys")
    assert sink["destination"] == "pubsub.googleapis.com/${google_pubsub_topic.alerts.id}"
    assert sink["unique_writer_identity"] is True
    grant = resource("google_pubsub_topic_iam_member", "deploys_sink_publishes")
    assert grant["role"] == "roles/pubsub.publisher"
    assert grant["member"] == "${each.value.writer_identity}"
    assert grant["topic"] == "${google_pubsub_topic.alerts.name}"


def test_the_sentinel_is_on_in_warn_mode_by_default_and_off_removes_the_sink():
    variables = {name: body for item in module()["variable"] for name, body in item.items()}
    assert variables["sentinel"]["default"] == "warn"
    local = locals_()
    assert 'var.sentinel == "off" ? toset([]) : local.watched_projects' in local["sentinel_projects"]
    env = local["function_env"]
    assert env["WATCHDOG_SENTINEL"] == "${var.sentinel}"
    assert env["WATCHDOG_SERVICE_ACCOUNT"] == "${google_service_account.function.email}"
