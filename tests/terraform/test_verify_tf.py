"""terraform/verify.tf: the verification tick and the one permission it needs, read from the HCL."""

from __future__ import annotations

from tests.terraform.test_wiring import block, resource, variables
from watchdog.core.intake import TICK_ATTRIBUTE


def test_the_tick_is_published_every_minute_to_the_watchdog_topic_with_the_attribute_intake_reads() -> None:
    job = resource("google_cloud_scheduler_job", "verify_tick")
    assert job["schedule"] == "* * * * *"
    target = block(job, "pubsub_target")
    # the events topic: a tick is never queued ahead of an alert (pubsub.tf)
    assert target["topic_name"] == "${google_pubsub_topic.events.id}"
    assert target["attributes"] == {TICK_ATTRIBUTE: "1"}
    assert block(job, "retry_config")["retry_count"] == 0  # the next tick is the retry


def test_the_scheduler_api_is_enabled_with_the_others() -> None:
    apis = resource("google_project_service", "verify_apis")
    assert apis["for_each"] == "${var.enable_apis ? toset(local.verify_apis) : toset([])}"


def test_cloud_scheduler_runs_where_it_is_offered() -> None:
    """Cloud Scheduler is not offered in every region: the job's region is a documented variable, the functions'
    region by default."""
    job = resource("google_cloud_scheduler_job", "verify_tick")
    assert job["region"] == "${coalesce(var.scheduler_region, var.region)}"
    variable = variables()["scheduler_region"]
    assert variable["default"] is None
    assert "not offered in every region" in variable["description"]
    assert "https://cloud.google.com/scheduler/docs/locations" in variable["description"]


def test_the_verifier_role_id_is_per_instance_and_per_creation() -> None:
    """A fixed id fails a second instance in the project, and a re-apply within 37 days of a destroy."""
    role = resource("google_project_iam_custom_role", "verifier")
    assert role["role_id"] == "rollbackWatchdogVerifier_${local.role_suffix}"
    assert len("rollbackWatchdogVerifier_" + "x" * 20 + "_" + "1" * 8) <= 64


def test_the_function_may_only_list_time_series_in_the_watched_projects() -> None:
    role = resource("google_project_iam_custom_role", "verifier")
    assert role["permissions"] == ["monitoring.timeSeries.list"]
    assert role["for_each"] == "${local.watched_projects}"
    grant = resource("google_project_iam_member", "function_verifies")
    assert grant["role"] == "${google_project_iam_custom_role.verifier[each.value].name}"
    assert grant["member"] == "serviceAccount:${google_service_account.function.email}"
