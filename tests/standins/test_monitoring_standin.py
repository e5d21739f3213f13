"""Prove the Monitoring stand-in speaks the wire protocol of the real google-cloud-monitoring clients."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import google.auth
import grpc
import pytest
from google.api_core import exceptions
from google.cloud import monitoring_v3

from tests.standins.monitoring import MonitoringStandIn, insecure_client

PROJECT = "projects/demo-project"
SEED: dict[str, Any] = {
    "alertPolicies": [
        {
            "name": f"{PROJECT}/alertPolicies/{i}",
            "displayName": f"policy {i}",
            "combiner": "OR",
            "userLabels": {"rollback-watchdog": "true"},
            "conditions": [
                {
                    "displayName": "5xx ratio",
                    "conditionThreshold": {
                        "filter": 'resource.type = "cloud_run_revision"',
                        "comparison": "COMPARISON_GT",
                        "thresholdValue": 0.05,
                        "duration": "60s",
                    },
                }
            ],
            "notificationChannels": [f"{PROJECT}/notificationChannels/pubsub"],
        }
        for i in range(3)
    ]
    + [{"name": "projects/other/alertPolicies/9", "displayName": "not ours"}],
    "notificationChannels": [
        {
            "name": f"{PROJECT}/notificationChannels/pubsub",
            "type": "pubsub",
            "displayName": "watchdog topic",
            "labels": {"topic": "projects/demo-project/topics/rollbacks"},
        }
    ],
}


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[MonitoringStandIn]:
    """A stand-in per test; ADC is booby-trapped to prove clients never look credentials up."""

    def no_adc(*_: object, **__: object) -> None:
        raise AssertionError("insecure clients must not resolve Application Default Credentials")

    monkeypatch.setattr(google.auth, "default", no_adc)
    with MonitoringStandIn(port=0, seed=SEED) as server:
        yield server


def test_create_time_series_is_recorded(standin: MonitoringStandIn) -> None:
    client = insecure_client(monitoring_v3.MetricServiceClient, standin.address)
    series = monitoring_v3.TimeSeries(
        metric={"type": "custom.googleapis.com/rollback_watchdog/rollbacks", "labels": {"service": "api"}},
        resource={"type": "global", "labels": {"project_id": "demo-project"}},
        points=[
            {
                "interval": {"end_time": {"seconds": int(time.time())}},
                "value": {"int64_value": 1},
            }
        ],
    )
    client.create_time_series(name=PROJECT, time_series=[series])

    [request] = standin.calls("CreateTimeSeries")
    assert request["name"] == PROJECT
    [logged] = request["timeSeries"]
    assert logged["metric"]["type"] == "custom.googleapis.com/rollback_watchdog/rollbacks"
    assert logged["points"][0]["value"] == {"int64Value": "1"}
    assert standin.requests[0][0] == "CreateTimeSeries"


def gauge(end: float | None = None, *, labels: dict | None = None, start: float | None = None, points: int = 1,
          value: dict | None = None) -> monitoring_v3.TimeSeries:  # fmt: skip
    end = time.time() if end is None else end

    def stamp(t: float) -> dict:
        return {"seconds": int(t), "nanos": int((t % 1) * 1e9)}

    interval = {"end_time": stamp(end), **({"start_time": stamp(start)} if start is not None else {})}
    return monitoring_v3.TimeSeries(
        metric={"type": "custom.googleapis.com/rollback_watchdog/decisions", "labels": labels or {"service": "api"}},
        resource={"type": "global", "labels": {"project_id": "demo-project"}},
        metric_kind="GAUGE",
        value_type="INT64",
        points=[{"interval": interval, "value": value or {"int64_value": 1}}] * points,
    )


NOW = time.time()


@pytest.mark.parametrize(
    ("first", "second", "rule"),
    [
        pytest.param([gauge(NOW)], [gauge(NOW - 10)], "Points must be written in order", id="older-point"),
        pytest.param([gauge(NOW)], [gauge(NOW)], "Points must be written in order", id="same-end-time"),
        pytest.param([gauge(NOW)], [gauge(NOW + 2)], "more frequently than the maximum sampling period",
                     id="within-5s"),
        pytest.param([], [gauge(NOW), gauge(NOW + 6)], "Duplicate TimeSeries", id="one-point-per-series-per-request"),
        pytest.param([], [gauge(NOW, points=2)], "exactly one point", id="two-points"),
        pytest.param([], [gauge(NOW, start=NOW - 60)], "start time must equal its end time", id="gauge-interval"),
        pytest.param([], [gauge(NOW - 26 * 3600)], "25 hours in the past", id="too-old"),
        pytest.param([], [gauge(NOW, value={"double_value": 1.0})], "INT64", id="wrong-value-type"),
        pytest.param([], [], "between 1 and 200", id="empty"),
    ],
)  # fmt: skip
def test_writes_are_held_to_cloud_monitorings_rules(standin: MonitoringStandIn, first, second, rule) -> None:
    client = insecure_client(monitoring_v3.MetricServiceClient, standin.address)
    if first:
        client.create_time_series(name=PROJECT, time_series=first)
    with pytest.raises(exceptions.InvalidArgument) as rejected:
        client.create_time_series(name=PROJECT, time_series=second)
    assert rule in str(rejected.value)


def test_valid_series_of_a_partly_rejected_request_are_kept(standin: MonitoringStandIn) -> None:
    client = insecure_client(monitoring_v3.MetricServiceClient, standin.address)
    client.create_time_series(name=PROJECT, time_series=[gauge(NOW)])
    with pytest.raises(exceptions.InvalidArgument):
        client.create_time_series(name=PROJECT, time_series=[gauge(NOW + 1), gauge(NOW + 1, labels={"service": "b"})])
    assert sorted(len(points) for points in standin.points.values()) == [1, 1]
    client.create_time_series(name=PROJECT, time_series=[gauge(NOW + 5)])  # 5 s after: accepted
    assert sorted(len(points) for points in standin.points.values()) == [1, 2]


def test_list_alert_policies_pages_and_scopes_by_project(standin: MonitoringStandIn) -> None:
    client = insecure_client(monitoring_v3.AlertPolicyServiceClient, standin.address)

    policies = list(client.list_alert_policies(request={"name": PROJECT, "page_size": 2}))

    assert [p.display_name for p in policies] == ["policy 0", "policy 1", "policy 2"]
    assert policies[0].conditions[0].condition_threshold.threshold_value == 0.05
    assert policies[0].user_labels["rollback-watchdog"] == "true"
    pages = standin.calls("ListAlertPolicies")
    assert [p.get("pageToken") for p in pages] == [None, "2"]


def test_list_notification_channels(standin: MonitoringStandIn) -> None:
    client = insecure_client(monitoring_v3.NotificationChannelServiceClient, standin.address)

    [channel] = client.list_notification_channels(name=PROJECT)

    assert channel.type_ == "pubsub"
    assert channel.labels["topic"] == "projects/demo-project/topics/rollbacks"


def test_unavailable_surfaces_as_service_unavailable(standin: MonitoringStandIn) -> None:
    client = insecure_client(monitoring_v3.MetricServiceClient, standin.address)
    standin.fail_next("CreateTimeSeries", grpc.StatusCode.UNAVAILABLE, n=1)

    with pytest.raises(exceptions.ServiceUnavailable):
        client.create_time_series(name=PROJECT, time_series=[gauge()])
    client.create_time_series(name=PROJECT, time_series=[gauge()])  # fault consumed
    assert len(standin.calls("CreateTimeSeries")) == 2


def test_list_retries_unavailable_by_default_unless_retry_disabled(standin: MonitoringStandIn) -> None:
    """The generated client retries UNAVAILABLE on List* (not on CreateTimeSeries)."""
    client = insecure_client(monitoring_v3.AlertPolicyServiceClient, standin.address)
    standin.fail_next("ListAlertPolicies", grpc.StatusCode.UNAVAILABLE, n=1)
    assert len(list(client.list_alert_policies(name=PROJECT))) == 3
    assert len(standin.calls("ListAlertPolicies")) == 2

    standin.fail_next("ListAlertPolicies", grpc.StatusCode.UNAVAILABLE, n=1)
    with pytest.raises(exceptions.ServiceUnavailable):
        client.list_alert_policies(name=PROJECT, retry=None)


def test_other_fault_codes_map_to_api_core_exceptions(standin: MonitoringStandIn) -> None:
    client = insecure_client(monitoring_v3.NotificationChannelServiceClient, standin.address)
    standin.fail_next("ListNotificationChannels", grpc.StatusCode.PERMISSION_DENIED)
    with pytest.raises(exceptions.PermissionDenied):
        client.list_notification_channels(name=PROJECT)


@pytest.mark.e2e
def test_runs_as_a_process(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({**SEED, "faults": [{"method": "CreateTimeSeries", "code": "INTERNAL", "n": 1}]}))
    log = tmp_path / "requests.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.standins.monitoring",
            "--port",
            "0",
            "--seed",
            str(seed),
            "--request-log",
            str(log),
        ],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("monitoring stand-in listening on 127.0.0.1:"), line
        address = line.rsplit(" ", 1)[1]

        channels = insecure_client(monitoring_v3.NotificationChannelServiceClient, address)
        assert len(list(channels.list_notification_channels(name=PROJECT))) == 1
        metrics = insecure_client(monitoring_v3.MetricServiceClient, address)
        with pytest.raises(exceptions.InternalServerError):
            metrics.create_time_series(name=PROJECT, time_series=[])
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
        proc.stdout.close()  # type: ignore[union-attr]
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert [entry["method"] for entry in logged] == ["ListNotificationChannels", "CreateTimeSeries"]
