"""ListTimeSeries on the Monitoring stand-in, read with the real google-cloud-monitoring client over gRPC.

A table of named cases: each seeds points, asks as the watchdog asks (filter, read interval, aggregation),
and names what the real API returns for it (google/monitoring/v3 common.proto, metric_service.proto).
"""

from __future__ import annotations

import time

import grpc
import pytest
from google.api_core import exceptions
from google.cloud import monitoring_v3

from tests.standins.monitoring import MonitoringStandIn, insecure_client

NOW = 1_800_000_000.0
PROBES = "run.googleapis.com/container/completed_probe_count"
FAILURES = "logging.googleapis.com/user/cloud_run_startup_failures"


def series(metric: str, revision: str, points: list[tuple[float, int]], **metric_labels: str) -> dict:
    return {
        "metric": {"type": metric, "labels": metric_labels},
        "resource": {
            "type": "cloud_run_revision",
            "labels": {
                "project_id": "netra-staging",
                "service_name": "backend",
                "revision_name": revision,
                "location": "us-central1",
                "configuration_name": "backend",
            },
        },
        "metricKind": "DELTA",
        "valueType": "INT64",
        "points": [
            {
                "interval": {"startTime": _ts(at - 60), "endTime": _ts(at)},
                "value": {"int64Value": str(value)},
            }
            for at, value in points
        ],
    }


def _ts(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@pytest.fixture
def standin():
    with MonitoringStandIn() as server:
        server.store.clock = lambda: NOW
        server.store.add(series(FAILURES, "backend-00118-paz", [(NOW - 600, 2), (NOW - 300, 1)]))
        server.store.add(series(FAILURES, "backend-00119-qor", [(NOW - 500, 7)]))
        server.store.add(series(PROBES, "backend-00118-paz", [(NOW - 400, 3), (NOW - 200, 2)], is_healthy="true",
                                probe_type="Startup"))  # fmt: skip
        server.store.add(series(PROBES, "backend-00118-paz", [(NOW - 390, 1)], is_healthy="false",
                                probe_type="Startup"))  # fmt: skip
        yield server


def read(standin, filter_: str, start: float, end: float, aggregation: dict | None = None):
    client = insecure_client(monitoring_v3.MetricServiceClient, standin.address)
    request = {
        "name": "projects/netra-staging",
        "filter": filter_,
        "interval": {"start_time": {"seconds": int(start)}, "end_time": {"seconds": int(end)}},
        "view": monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL,
    }
    if aggregation:
        request["aggregation"] = aggregation
    return list(client.list_time_series(request=request, retry=None))


def flat(result) -> list[tuple[dict, list[tuple[float, int]]]]:
    return [
        (dict(s.metric.labels), [(p.interval.end_time.timestamp(), p.value.int64_value) for p in s.points])
        for s in result
    ]


REVISION = 'resource.type = "cloud_run_revision" AND resource.labels.revision_name = "backend-00118-paz"'

CASES = {
    "raw points of one revision, newest first": (
        f'metric.type = "{FAILURES}" AND {REVISION}', NOW - 3600, NOW, None,
        [({}, [(NOW - 300, 1), (NOW - 600, 2)])],
    ),
    "the start of the read interval is excluded": (
        f'metric.type = "{FAILURES}" AND {REVISION}', NOW - 600, NOW, None, [({}, [(NOW - 300, 1)])],
    ),
    "the end of the read interval is included": (
        f'metric.type = "{FAILURES}" AND {REVISION}', NOW - 3600, NOW - 300, None,
        [({}, [(NOW - 300, 1), (NOW - 600, 2)])],
    ),
    "another revision's points are not returned": (
        f'metric.type = "{FAILURES}" AND resource.labels.revision_name = "backend-00119-qor"', NOW - 3600, NOW,
        None, [({}, [(NOW - 500, 7)])],
    ),
    "!= excludes": (
        f'metric.type = "{FAILURES}" AND resource.label.revision_name != "backend-00119-qor"', NOW - 3600, NOW,
        None, [({}, [(NOW - 300, 1), (NOW - 600, 2)])],
    ),
    "metric labels filter, bare boolean value": (
        f'metric.type = "{PROBES}" AND {REVISION} AND metric.labels.is_healthy = false', NOW - 3600, NOW, None,
        [({"is_healthy": "false", "probe_type": "Startup"}, [(NOW - 390, 1)])],
    ),
    "ALIGN_SUM per period ending at the interval end, REDUCE_SUM by is_healthy": (
        f'metric.type = "{PROBES}" AND {REVISION}', NOW - 3600, NOW,
        {"alignment_period": {"seconds": 3600}, "per_series_aligner": "ALIGN_SUM",
         "cross_series_reducer": "REDUCE_SUM", "group_by_fields": ["metric.label.is_healthy"]},
        [({"is_healthy": "true"}, [(NOW, 5)]), ({"is_healthy": "false"}, [(NOW, 1)])],
    ),
    "ALIGN_COUNT counts points": (
        f'metric.type = "{FAILURES}" AND {REVISION}', NOW - 3600, NOW,
        {"alignment_period": {"seconds": 3600}, "per_series_aligner": "ALIGN_COUNT"}, [({}, [(NOW, 2)])],
    ),
    "two periods: one point per period": (
        f'metric.type = "{FAILURES}" AND {REVISION}', NOW - 3600, NOW,
        {"alignment_period": {"seconds": 450}, "per_series_aligner": "ALIGN_SUM"},
        [({}, [(NOW, 1), (NOW - 450, 2)])],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_list_time_series(standin, case):
    filter_, start, end, aggregation, expected = CASES[case]
    assert flat(read(standin, filter_, start, end, aggregation)) == expected


def test_points_are_visible_only_after_the_ingest_delay(standin):
    standin.store.ingest_delay = 350  # the point at NOW - 300 is not ingested yet; NOW - 600 is
    assert flat(read(standin, f'metric.type = "{FAILURES}" AND {REVISION}', NOW - 3600, NOW)) == [
        ({}, [(NOW - 600, 2)])
    ]
    standin.store.clock = lambda: NOW + 60
    assert flat(read(standin, f'metric.type = "{FAILURES}" AND {REVISION}', NOW - 3600, NOW)) == [
        ({}, [(NOW - 300, 1), (NOW - 600, 2)])
    ]


@pytest.mark.parametrize(
    "filter_",
    ['resource.type = "cloud_run_revision"', f'metric.type = "{FAILURES}" OR resource.type = "x"',
     f'metric.type = starts_with("{FAILURES}")'],
)  # fmt: skip
def test_a_filter_it_cannot_read_is_invalid_argument(standin, filter_):
    with pytest.raises(exceptions.InvalidArgument):
        read(standin, filter_, NOW - 60, NOW)


def test_requests_are_logged_and_faults_injected(standin):
    standin.fail_next("ListTimeSeries", grpc.StatusCode.UNAVAILABLE)
    with pytest.raises(exceptions.ServiceUnavailable):
        read(standin, f'metric.type = "{FAILURES}"', NOW - 60, NOW)
    assert [c["filter"] for c in standin.calls("ListTimeSeries")] == [f'metric.type = "{FAILURES}"']
