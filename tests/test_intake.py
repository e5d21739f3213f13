"""Intake: every notification variant Cloud Monitoring sends, in every envelope it arrives in."""

from __future__ import annotations

import base64
import json

import pytest

from tests.support import fixture, pubsub_body
from watchdog.core.intake import Alert, Ignored, parse, parse_notification


def _eventarc(name: str) -> dict:
    return pubsub_body(fixture(name))


def _structured(name: str) -> dict:
    return {"specversion": "1.0", "type": "google.cloud.pubsub.topic.v1.messagePublished", "data": _eventarc(name)}


# name, body (as it reaches the function), expected fields (Alert) or reason (Ignored)
CASES = [
    ("metric threshold, Eventarc body", _eventarc("alerts/v1.2_metric_threshold_cloud_run_revision_open.INFERRED.json"),
     {"state": "open", "service": "my-project/us-central1/checkout", "revision": "checkout-00042-xyz",
      "condition_kind": "metric-threshold", "found_by": "resource labels", "sends_close": True}),
    ("metric threshold closed", _eventarc("alerts/v1.2_metric_threshold_cloud_run_revision_closed.INFERRED.json"),
     {"state": "closed", "service": "my-project/us-central1/checkout"}),
    ("log match never closes", _eventarc("alerts/v1.2_log_match_cloud_run_revision_open.INFERRED.json"),
     {"condition_kind": "log-match", "sends_close": False, "revision": "checkout-00042-xyz"}),
    ("incident: auth DB timeout log match", _eventarc("alerts/incident_auth_db_timeout_log_match.json"),
     {"service": "netra-staging/us-central1/netra-auth-service", "revision": "netra-auth-service-00043-nul",
      "policy_name": "Database connection validation timeout"}),
    ("incident: backend startup failures", _eventarc("alerts/incident_backend_startup_metric_threshold.json"),
     {"service": "netra-staging/us-central1/netra-backend-staging", "revision": "netra-backend-staging-00119-qor"}),
    ("PromQL: service from the query's label matchers", _eventarc("alerts/v1.2_promql_cloud_run_open.json"),
     {"condition_kind": "promql", "service": "my-project/us-central1/checkout", "found_by": "condition filter",
      "revision": ""}),
    ("MQL", _eventarc("alerts/v1.2_mql_cloud_run_open.json"),
     {"condition_kind": "mql", "service": "my-project/us-central1/checkout"}),
    ("absence condition", _eventarc("alerts/v1.2_absence_cloud_run_open.json"),
     {"condition_kind": "metric-absence", "service": "my-project/us-central1/checkout"}),
    ("labels aggregated away: policy user labels", _eventarc("alerts/v1.2_aggregated_labels_policy_user_labels.json"),
     {"service": "my-project/us-central1/checkout", "found_by": "policy user labels", "revision": ""}),
    ("labels aggregated away: condition filter", _eventarc("alerts/v1.2_aggregated_labels_condition_filter.json"),
     {"service": "my-project/us-central1/checkout", "found_by": "condition filter"}),
    ("labels aggregated away: nothing left", _eventarc("alerts/v1.2_aggregated_labels_no_service.json"), "no_service"),
    ("console test notification", _eventarc("alerts/test_notification_version_test.json"), "test_notification"),
    ("legacy 1.1 on a VM", _eventarc("alerts/legacy_v1.1_stackdriver_open.json"), "no_service"),
    ("legacy 1.1 naming Cloud Run in resource_name", _eventarc("alerts/legacy_v1.1_cloud_run_resource_name.json"),
     {"service": "netra-staging/us-central1/netra-auth-service", "found_by": "resource name", "schema": "1.1",
      "condition_kind": "legacy"}),
    ("GCE incident (captured)", _eventarc("alerts/v1.2_captured_metric_threshold_open_gce.json"), "not_cloud_run"),
    ("GCE closed (official docs example)", _eventarc("alerts/v1.2_official_docs_example_closed_gce.json"),
     "not_cloud_run"),
    ("Eventarc body with duplicated snake_case keys", fixture("eventarc/duplicated_fields_backend_startup_body.json"),
     {"service": "netra-staging/us-central1/netra-backend-staging"}),
    ("Eventarc request fixture", fixture("eventarc/eventarc_http_request_monitoring_alert.INFERRED.json")["body"],
     {"service": "my-project/us-central1/checkout"}),
    ("structured CloudEvent", _structured("alerts/incident_backend_startup_metric_threshold.json"),
     {"service": "netra-staging/us-central1/netra-backend-staging"}),
    ("bare notification", fixture("alerts/incident_backend_startup_metric_threshold.json"),
     {"revision": "netra-backend-staging-00119-qor"}),
    ("functions-framework's own Pub/Sub sample (data is not JSON)",
     fixture("eventarc/functions-framework-python_test_PUBSUB_CLOUD_EVENT.json")["data"], "unparseable"),
    ("Google's structured MessagePublished example", fixture("eventarc/google-cloudevents_structured_MessagePublished.json"),
     "unparseable"),
    ("not base64", {"message": {"data": "%%%not-base64%%%"}}, "unparseable"),
    ("base64 of not JSON", {"message": {"data": base64.b64encode(b"hello").decode()}}, "unparseable"),
    ("JSON array", [1, 2, 3], "unparseable"),
    ("empty object", {}, "unparseable"),
    ("notification without incident", {"version": "1.2"}, "not_an_incident"),
    ("unknown state", {"version": "1.2", "incident": {"incident_id": "x", "state": "acknowledged"}}, "unknown_state"),
    ("path traversal in service name", pubsub_body({"version": "1.2", "incident": {
        "incident_id": "x", "state": "open", "resource": {"type": "cloud_run_revision", "labels": {
            "service_name": "../../../other", "location": "us-central1", "project_id": "my-project"}}}}), "invalid_name"),
    ("no region anywhere", pubsub_body({"version": "1.2", "incident": {
        "incident_id": "x", "state": "open", "resource": {"type": "cloud_run_revision", "labels": {
            "service_name": "checkout", "project_id": "my-project"}}}}), "no_region"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_intake_case(body, expected):
    result = parse(body)
    if isinstance(expected, str):
        assert isinstance(result, Ignored), result
        assert result.reason == expected
        assert result.detail
        return
    assert isinstance(result, Alert), result
    for key, value in expected.items():
        actual = str(result.service) if key == "service" else getattr(result, key)
        assert actual == value, key


class TestDrillMarks:
    """A drill is marked in the message attributes or the policy user labels; live only when it says so."""

    def test_attribute_marks_a_dry_run_drill(self):
        alert = parse(pubsub_body(fixture("alerts/incident_backend_startup_metric_threshold.json"),
                                  {"rollback-watchdog-drill": "dry-run"}))  # fmt: skip
        assert alert.drill
        assert not alert.drill_live

    def test_live_drill(self):
        payload = fixture("alerts/incident_backend_startup_metric_threshold.json")
        payload["incident"]["policy_user_labels"]["rollback_watchdog_drill"] = "live"
        alert = parse_notification(payload)
        assert alert.drill
        assert alert.drill_live

    def test_real_alert_is_not_a_drill(self):
        alert = parse(_eventarc("alerts/incident_backend_startup_metric_threshold.json"))
        assert not alert.drill


def test_upper_case_state_is_accepted_on_real_payloads():
    payload = fixture("alerts/incident_backend_startup_metric_threshold.json")
    payload["incident"]["state"] = "OPEN"
    assert parse_notification(payload).state == "open"


def test_incident_url_must_be_https():
    payload = fixture("alerts/incident_backend_startup_metric_threshold.json")
    payload["incident"]["url"] = "javascript:alert(1)"
    assert parse_notification(payload).url == ""


def test_bytes_body_is_decoded():
    body = json.dumps(_eventarc("alerts/incident_backend_startup_metric_threshold.json")).encode()
    assert isinstance(parse(body), Alert)
