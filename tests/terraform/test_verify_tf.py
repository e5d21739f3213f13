"""terraform/verify.tf: the verification tick and the one permission it needs, read from the HCL."""

from __future__ import annotations

from tests.terraform.test_wiring import block, resource
from watchdog.core.intake import TICK_ATTRIBUTE


def test_the_tick_is_published_every_minute_to_the_watchdog_topic_with_the_attribute_intake_reads() -> None:
    job = resource("google_cloud_scheduler_job", "verify_tick")
    assert job["schedule"] == "* * * * *"
    assert job["region"] == "${var.region}"
    target = block(job, "pubsub_target")
    assert target["topic_name"] == "${google_pubsub_topic.alerts.id}"
    assert target["attributes"] == {TICK_ATTRIBUTE: "1"}
    assert block(job, "retry_config")["retry_count"] == 0  # the next tick is the retry


def test_the_scheduler_api_is_enabled_with_the_others() -> None:
    apis = resource("google_project_service", "verify_apis")
    assert apis["for_each"] == "${var.enable_apis ? toset(local.verify_apis) : toset([])}"


def test_the_function_may_only_list_time_series_in_the_watched_projects() -> None:
    role = resource("google_project_iam_custom_role", "verifier")
    assert role["permissions"] == ["monitoring.timeSeries.list"]
    assert role["for_each"] == "${local.watched_projects}"
    grant = resource("google_project_iam_member", "function_verifies")
    assert grant["role"] == "${google_project_iam_custom_role.verifier[each.value].name}"
    assert grant["member"] == "serviceAccount:${google_service_account.function.email}"
