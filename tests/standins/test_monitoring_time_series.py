"""ListTimeSeries on the Monitoring stand-in, read with the real google-cloud-monitoring client over gRPC.

A table of named cases: each seeds points, asks as the watchdog asks (filter, read interval, aggregation),
and names what the real API returns for it (google/monitoring/v3 common.proto, metric_service.proto).
"""

from __future__ import annotations

import time

import grpc
import pytest
from google.api import metric_pb2
from google.api_core import exceptions
from google.cloud import monitoring_v3

from tests.standins.monitoring import MonitoringStandIn, insecure_client

NOW = 1_800_000_000.0
PROBES = "run.googleapis.com/container/completed_probe_count"
# terraform's log-based metrics (terraform/alerts.tf), as the stand-in reads them from the HCL
FAILURES = "logging.googleapis.com/user/rollback-watchdog/container-startup-failures"
CONNECTS = "logging.googleapis.com/user/rollback-watchdog/db-connect-seconds"


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


# --- Metrics as defined -------------------------------------------------------------------------------------

RESOURCE = {"project_id": "netra-staging", "service_name": "backend", "revision_name": "backend-00118-paz",
            "location": "us-central1", "configuration_name": "backend"}  # fmt: skip

# name: (metric type, kind, value type, metric labels) as its definition says
DEFINED = {
    "terraform's startup-failure counter": (FAILURES, "DELTA", "INT64", {"log"}),
    "terraform's DB-timeout counter": ("logging.googleapis.com/user/rollback-watchdog/db-connection-timeouts", "DELTA",
                                       "INT64", {"log"}),
    "terraform's slow-DB-connect value extractor": (CONNECTS, "DELTA", "DISTRIBUTION", {"log"}),
    "Cloud Run's completed probes": (PROBES, "DELTA", "INT64", {"probe_type", "is_healthy"}),
    "Cloud Run's requests": ("run.googleapis.com/request_count", "DELTA", "INT64",
                             {"response_code", "response_code_class"}),
}  # fmt: skip


@pytest.mark.parametrize("case", DEFINED)
def test_each_metric_is_served_as_defined(standin, case):
    metric, kind, value_type, labels = DEFINED[case]
    descriptor = standin.store.descriptors[metric]
    assert (descriptor.kind, descriptor.value_type, set(descriptor.labels)) == (kind, value_type, labels)


def test_the_distribution_has_terraforms_buckets():
    from tests.terraform.test_wiring import block, resource

    defined = block(resource("google_logging_metric", "db_connect_seconds"), "bucket_options", "exponential_buckets")
    assert MonitoringStandIn().store.descriptors[CONNECTS].buckets == {"exponentialBuckets": {
        "numFiniteBuckets": defined["num_finite_buckets"], "growthFactor": defined["growth_factor"],
        "scale": defined["scale"]}}  # fmt: skip


def _as(series: dict, **changes) -> dict:
    return {**series, **changes}


COUNTER = series(FAILURES, "backend-00118-paz", [(NOW - 60, 1)])
# name: a series the real API could never return for its metric
MISSHAPEN = {
    "a counter seeded as a DISTRIBUTION": _as(COUNTER, valueType="DISTRIBUTION"),
    "a counter seeded as a GAUGE": _as(COUNTER, metricKind="GAUGE"),
    "a label the metric does not have": _as(COUNTER, metric={"type": FAILURES, "labels": {"revision": "x"}}),
    "a DELTA point without a start time": _as(COUNTER, points=[{"interval": {"endTime": _ts(NOW)},
                                                                "value": {"int64Value": "1"}}]),
    "a double in an INT64 series": _as(COUNTER, points=[{"interval": {"startTime": _ts(NOW - 60), "endTime": _ts(NOW)},
                                                         "value": {"doubleValue": 1.0}}]),
    "a metric nothing defines": _as(COUNTER, metric={"type": "logging.googleapis.com/user/typo", "labels": {}}),
    "the distribution with other buckets": {
        "metric": {"type": CONNECTS}, "resource": {"type": "cloud_run_revision", "labels": RESOURCE},
        "metricKind": "DELTA", "valueType": "DISTRIBUTION",
        "points": [{"interval": {"startTime": _ts(NOW - 60), "endTime": _ts(NOW)}, "value": {"distributionValue": {
            "count": "1", "bucketOptions": {"explicitBuckets": {"bounds": [1, 5]}}, "bucketCounts": ["0", "1"]}}}]},
}  # fmt: skip


@pytest.mark.parametrize("case", MISSHAPEN)
def test_a_series_shaped_unlike_its_metric_cannot_be_seeded(case):
    with pytest.raises(ValueError, match=r"^'logging\.googleapis\.com/user/[^']+': "):  # the shape check's refusal
        MonitoringStandIn().store.add(MISSHAPEN[case])


def test_a_users_own_metric_is_declared_first():
    store = MonitoringStandIn().store
    store.define("logging.googleapis.com/user/cloud_run_startup_failures", "DELTA", "INT64")
    store.add(_as(COUNTER, metric={"type": "logging.googleapis.com/user/cloud_run_startup_failures", "labels": {}}))


@pytest.fixture
def connects(standin):
    """One minute of fast connects, one with a few 12 s ones among them (one value per log entry)."""
    standin.store.values(CONNECTS, RESOURCE, [(NOW - 120, [0.05] * 40), (NOW - 60, [0.05] * 30 + [12.0] * 3)],
                         log="run.googleapis.com/stdout")  # fmt: skip
    return standin


def aggregate(aligner: str, reducer: str = "REDUCE_NONE", period: int = 60) -> dict:
    return {"alignment_period": {"seconds": period}, "per_series_aligner": aligner, "cross_series_reducer": reducer}


def test_the_99th_percentile_per_minute_of_a_distribution(connects):
    [result] = read(connects, f'metric.type = "{CONNECTS}" AND {REVISION}', NOW - 300, NOW,
                    aggregate("ALIGN_PERCENTILE_99"))  # fmt: skip
    kind, value_type = metric_pb2.MetricDescriptor.MetricKind, metric_pb2.MetricDescriptor.ValueType
    assert (kind.Name(result.metric_kind), value_type.Name(result.value_type)) == ("GAUGE", "DOUBLE")  # common.proto
    slow, fast = [(p.interval.end_time.timestamp(), p.value.double_value) for p in result.points]
    assert slow == (NOW - 60, pytest.approx(12, abs=4))  # 3 of 33 connects took 12 s: the 99th percentile is slow
    assert fast == (NOW - 120, pytest.approx(0.05, abs=0.05))  # 40 fast ones: fast


def test_a_distribution_summed_counts_values_not_failures(connects):
    [result] = read(connects, f'metric.type = "{CONNECTS}" AND {REVISION}', NOW - 300, NOW,
                    aggregate("ALIGN_SUM", "REDUCE_SUM"))  # fmt: skip
    assert [p.value.distribution_value.count for p in result.points] == [33, 40]  # connects, fast ones included


# name: (metric, aggregation) the real API refuses for that metric's kind and value type
REFUSED = {
    "a percentile of a counter": (FAILURES, aggregate("ALIGN_PERCENTILE_99")),
    "a count of distribution values": (CONNECTS, aggregate("ALIGN_COUNT")),
    "a rate of a distribution": (CONNECTS, aggregate("ALIGN_RATE")),
    "the maximum across distributions": (CONNECTS, aggregate("ALIGN_SUM", "REDUCE_MAX")),
    "the maximum after a percentile of a distribution (the strict reading)": (
        CONNECTS, aggregate("ALIGN_PERCENTILE_99", "REDUCE_MAX")),
    "an alignment period under 60 s": (FAILURES, aggregate("ALIGN_SUM", period=30)),
    "a reducer without an aligner": (FAILURES, aggregate("ALIGN_NONE", "REDUCE_SUM")),
}  # fmt: skip


@pytest.mark.parametrize("case", REFUSED)
def test_an_aggregation_the_api_refuses_is_invalid_argument(connects, case):
    metric, aggregation = REFUSED[case]
    with pytest.raises(exceptions.InvalidArgument):
        read(connects, f'metric.type = "{metric}" AND {REVISION}', NOW - 3600, NOW, aggregation)
