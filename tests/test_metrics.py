"""The watchdog's own metric: one CreateTimeSeries per decision, seen by the gRPC Monitoring stand-in.

End to end: alerts go through the real functions-framework server; the point is written by the real
google-cloud-monitoring client over gRPC to tests/standins/monitoring.py.
"""

from __future__ import annotations

import itertools
import time
from datetime import datetime

import grpc
import pytest

from tests.conftest import BACKEND
from tests.standins.cloudrun import Fault
from tests.standins.monitoring import MonitoringStandIn
from tests.support import deliver, fixture, free_port, incident_alert, pubsub_body

pytestmark = pytest.mark.e2e

BACKEND_ALERT = "alerts/incident_backend_startup_metric_threshold.json"
METRIC = "custom.googleapis.com/rollback_watchdog/decisions"


@pytest.fixture
def monitoring():
    with MonitoringStandIn() as standin:
        yield standin


def series(request: dict) -> tuple[dict, float]:
    """The request without its timestamp and the per-process ``instance`` label, and the timestamp."""
    point = request["timeSeries"][0]["points"][0]
    end = point["interval"].pop("endTime")
    instance = request["timeSeries"][0]["metric"]["labels"].pop("instance")
    assert len(instance) == 12
    return request, datetime.fromisoformat(end.replace("Z", "+00:00")).timestamp()


def expected(service: str, action: str, outcome: str, project: str = "netra-staging") -> dict:
    return {
        "name": f"projects/{project}",
        "timeSeries": [
            {
                "metric": {"type": METRIC, "labels": {"service": service, "action": action, "outcome": outcome}},
                "resource": {"type": "global", "labels": {"project_id": project}},
                "metricKind": "GAUGE",
                "valueType": "INT64",
                "points": [{"interval": {}, "value": {"int64Value": "1"}}],
            }
        ],
    }


def test_a_rollback_and_its_redelivery_each_write_one_point(start_stack, monitoring):
    started = time.time()
    stack = start_stack(MONITORING_API_ENDPOINT=monitoring.address)
    body = pubsub_body(fixture(BACKEND_ALERT))
    assert deliver(stack.function.url, body) == (200, "OK")
    assert stack.serving(BACKEND) == {"netra-backend-staging-00118-paz": 100}
    assert deliver(stack.function.url, body) == (200, "OK")  # Pub/Sub redelivers: nothing more to do

    first, second = monitoring.calls("CreateTimeSeries")
    request, at = series(first)
    assert request == expected("netra-backend-staging", "rollback", "rolled_back")
    assert started <= at <= time.time()
    assert series(second)[0] == expected("netra-backend-staging", "nothing", "nothing")


def test_reports_go_to_the_metrics_project_and_ignored_deliveries_write_nothing(start_stack, monitoring):
    stack = start_stack(
        MONITORING_API_ENDPOINT=monitoring.address, WATCHDOG_DRY_RUN="true", WATCHDOG_METRICS_PROJECT="netra-ops"
    )
    assert deliver(stack.function.url, pubsub_body(fixture("alerts/test_notification_version_test.json")))[0] == 200
    assert monitoring.calls("CreateTimeSeries") == []
    assert deliver(stack.function.url, pubsub_body(fixture(BACKEND_ALERT)))[0] == 200
    [request] = monitoring.calls("CreateTimeSeries")
    assert series(request)[0] == expected("netra-backend-staging", "report", "reported", project="netra-ops")
    assert stack.traffic_updates() == []


def test_a_failed_rollback_is_written_with_outcome_failed(start_stack, monitoring):
    stack = start_stack(MONITORING_API_ENDPOINT=monitoring.address)
    stack.cloud_run.state.faults.append(
        Fault(kind="operation_error", error={"code": 9, "message": "revision is not ready"})
    )
    assert deliver(stack.function.url, pubsub_body(fixture(BACKEND_ALERT)))[0] == 200
    [request] = monitoring.calls("CreateTimeSeries")
    assert series(request)[0] == expected("netra-backend-staging", "rollback", "failed")


def test_a_monitoring_failure_never_gets_in_the_way_and_is_not_retried(start_stack, monitoring):
    stack = start_stack(MONITORING_API_ENDPOINT=monitoring.address)
    monitoring.fail_next("CreateTimeSeries", grpc.StatusCode.UNAVAILABLE, n=5)
    assert deliver(stack.function.url, pubsub_body(fixture(BACKEND_ALERT))) == (200, "OK")
    assert stack.serving(BACKEND) == {"netra-backend-staging-00118-paz": 100}
    assert len(stack.messages) == 1
    assert len(monitoring.calls("CreateTimeSeries")) == 1
    warnings = [line["message"] for line in stack.function.logs() if line["severity"] == "WARNING"]
    assert any(m.startswith("after-decision hook failed") for m in warnings), warnings


def test_an_unreachable_monitoring_endpoint_costs_the_rollback_nothing(start_stack):
    stack = start_stack(MONITORING_API_ENDPOINT=f"127.0.0.1:{free_port()}")
    started = time.monotonic()
    assert deliver(stack.function.url, pubsub_body(fixture(BACKEND_ALERT))) == (200, "OK")
    assert time.monotonic() - started < 6
    assert stack.serving(BACKEND) == {"netra-backend-staging-00118-paz": 100}


def test_decisions_on_one_series_within_5_seconds_are_carried_not_rejected(start_stack, monitoring):
    """Cloud Monitoring takes one point per series every 5 s: the second decision waits, then is written."""
    stack = start_stack(MONITORING_API_ENDPOINT=monitoring.address, WATCHDOG_DRY_RUN="true")
    for incident in ("0.first", "0.second"):
        body = pubsub_body(incident_alert("netra-backend-staging", "netra-backend-staging-00119-qor",
                                          incident_id=incident))  # fmt: skip
        assert deliver(stack.function.url, body) == (200, "OK")
    deadline = time.monotonic() + 10
    while len(monitoring.calls("CreateTimeSeries")) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    first, second = monitoring.calls("CreateTimeSeries")
    assert series(first)[0] == series(second)[0] == expected("netra-backend-staging", "report", "reported")
    ends = [point[0] for points in monitoring.points.values() for point in points]
    assert len(ends) == 2
    assert ends[1] - ends[0] >= 5  # accepted by the stand-in's rules, which reject anything sooner
    assert not [line for line in stack.function.logs() if line.get("decision") == "metric_rejected"]


def test_a_rejected_write_is_logged_with_its_points(start_stack, monitoring):
    stack = start_stack(MONITORING_API_ENDPOINT=monitoring.address)
    monitoring.clock = lambda: time.time() - 3600  # the watchdog's points look an hour in the future
    assert deliver(stack.function.url, pubsub_body(fixture(BACKEND_ALERT))) == (200, "OK")
    assert stack.serving(BACKEND) == {"netra-backend-staging-00118-paz": 100}
    assert monitoring.points == {}
    [rejected] = [line for line in stack.function.logs() if line.get("decision") == "metric_rejected"]
    assert "5 minutes in the future" in rejected["message"]
    assert rejected["points"][0]["outcome"] == "rolled_back"
    assert rejected["severity"] == "WARNING"


def test_concurrent_decisions_in_one_process_never_break_the_write_rules(monitoring):
    """20 threads decide at once about two series: every point is accepted and every decision is counted."""
    from concurrent.futures import ThreadPoolExecutor
    from types import SimpleNamespace

    from watchdog.edges.monitoring import DecisionMetric

    metric = DecisionMetric("netra-ops", monitoring.address)
    alert = SimpleNamespace(service=SimpleNamespace(project="netra-staging", service="netra-backend-staging"))
    outcomes = [SimpleNamespace(decision=None, result="failed" if i % 2 else "error") for i in range(20)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda outcome: metric(alert, outcome, time.monotonic() + 10), outcomes))
    deadline = time.monotonic() + 12
    while sum(v for points in monitoring.points.values() for _, v in points) < 20 and time.monotonic() < deadline:
        time.sleep(0.2)
    counted = {dict(key[2])["outcome"]: sum(v for _, v in points) for key, points in monitoring.points.items()}
    assert counted == {"failed": 10, "error": 10}
    for points in monitoring.points.values():
        ends = [end for end, _ in points]
        assert all(b - a >= 5 for a, b in itertools.pairwise(ends))
