"""Cloud Monitoring clients and the watchdog's own decision metric.

google-cloud-monitoring (gRPC only) is imported inside the functions here,
never at module import, so neither the function's cold start nor a rollback
waits for it.

``MONITORING_API_ENDPOINT`` (``host:port``) selects a plaintext gRPC channel to
that endpoint (the local stand-in); with an explicit channel the transport
skips credentials, so no Application Default Credentials lookup happens.

The metric ``custom.googleapis.com/rollback_watchdog/decisions``: INT64 GAUGE,
resource ``global`` (project_id = ``WATCHDOG_METRICS_PROJECT`` or the alert's
project), labels ``service``, ``action``, ``outcome`` and ``instance``. Each
point's value is the number of decisions it stands for (usually 1): alert on
``metric.label.outcome="failed"`` aligned with ALIGN_SUM.

Cloud Monitoring's rules for writing points, and how this writer keeps them:

* a point must be newer than the newest point of its series; for a GAUGE the
  interval is a single instant (start time unset or equal to the end time), and
  the end time of a new point must be at least a millisecond after the previous
  one, not more than 25 hours in the past or 5 minutes in the future
  (TimeInterval, https://cloud.google.com/monitoring/api/ref_v3/rest/v3/TimeInterval;
  CreateTimeSeriesRequest: "The new data point must be more recent than any other
  point in its time series", https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.timeSeries/create);
* one point per series per request, each series named once, at most 200 series a
  request (same page; TimeSeries.points: "must contain exactly one point");
* a series may be written at most once every 5 seconds ("Rate at which data can be
  written to a single time series: one point each 5 seconds",
  https://cloud.google.com/monitoring/quotas, checked 2026-12).

Several function instances write at once, and one instance serves several
deliveries at a time, so one series per (service, action, outcome) would break
the first two rules whenever two decisions meet. Hence:

* ``instance``, a random id per process: no two instances ever write one series;
* one :class:`DecisionMetric` per process counts decisions per series and writes
  every series that is due (never written, or last written 5 s ago or more) in
  one request, with the count since its last point as the value and an end time
  strictly after its last one. A series that is not due yet is carried: the next
  write of this process takes it along, or a timer flushes it once it is due
  (best effort: an idle instance may be throttled or stopped first).

A rejected write (INVALID_ARGUMENT, which a rule broken would give) is logged
with what was rejected; other failures keep the counts for the next write.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from watchdog.edges import logs

METRIC_TYPE = "custom.googleapis.com/rollback_watchdog/decisions"
WRITE_TIMEOUT = 3.0  # seconds; a metric point is never worth more


def client(client_cls: Any, endpoint: str = "") -> Any:
    """A real Monitoring client; plaintext gRPC to ``endpoint`` (host:port) when given."""
    if not endpoint:
        return client_cls()
    import grpc

    transport_cls = client_cls.get_transport_class("grpc")
    return client_cls(transport=transport_cls(channel=grpc.insecure_channel(endpoint)))


MIN_INTERVAL = 5.0  # seconds between two points of one series (Cloud Monitoring quota)
MAX_SERIES = 200  # time series per CreateTimeSeries request


def decision_labels(alert: Any, outcome: Any, instance: str) -> dict[str, str]:
    """Metric labels of one decision: service, action (what was decided), outcome (what came of it), and the
    writing process's ``instance`` (so no two processes write one series)."""
    decided = outcome.decision
    return {
        "service": alert.service.service,
        "action": decided.action if decided is not None else "none",
        "outcome": outcome.result,
        "instance": instance,
    }


@dataclass
class _Series:
    project: str
    labels: dict[str, str]
    pending: int = 0  # decisions not written yet
    last_end: float | None = None  # end time of its newest accepted point


class DecisionMetric:
    """The per-process writer: built once per process, the client on first use."""

    def __init__(self, metrics_project: str = "", endpoint: str = "", instance: str = "") -> None:
        self._project = metrics_project
        self._endpoint = endpoint
        self._client: Any = None
        self.instance = instance or uuid.uuid4().hex[:12]
        self._lock = threading.Lock()
        self._series: dict[tuple, _Series] = {}
        self._timer: threading.Timer | None = None

    def __call__(self, alert: Any, outcome: Any, deadline: float) -> None:
        project = self._project or alert.service.project
        labels = decision_labels(alert, outcome, self.instance)
        with self._lock:
            key = (project, *sorted(labels.items()))
            self._series.setdefault(key, _Series(project, labels)).pending += 1
        remaining = deadline - time.monotonic()
        if remaining < 0.5:
            self._schedule()
            return  # out of time: the delivery's answer matters more; the count is carried
        self._flush(max(0.5, min(WRITE_TIMEOUT, remaining)))

    def _flush(self, timeout: float = WRITE_TIMEOUT) -> None:
        now = time.time()
        with self._lock:
            due = [
                s
                for s in self._series.values()
                if s.pending and (s.last_end is None or now - s.last_end >= MIN_INTERVAL)
            ][:MAX_SERIES]
            batch = [(s, s.pending, max(now, (s.last_end or 0) + 0.001)) for s in due]
            for series, count, end in batch:
                # Reserved now, kept whatever the answer: a point that timed out may still have been
                # written, and no other thread may write this series in the next 5 s.
                series.pending -= count
                series.last_end = end
            carried = any(s.pending for s in self._series.values())
        if carried:
            self._schedule()
        by_project: dict[str, list] = {}
        for item in batch:
            by_project.setdefault(item[0].project, []).append(item)
        for project, items in by_project.items():
            self._write(project, items, timeout)

    def _write(self, project: str, items: list, timeout: float) -> None:
        from google.api import metric_pb2
        from google.api_core import exceptions
        from google.cloud import monitoring_v3

        if self._client is None:
            self._client = client(monitoring_v3.MetricServiceClient, self._endpoint)
        series = [
            monitoring_v3.TimeSeries(
                metric={"type": METRIC_TYPE, "labels": s.labels},
                resource={"type": "global", "labels": {"project_id": project}},
                metric_kind=metric_pb2.MetricDescriptor.MetricKind.GAUGE,
                value_type=metric_pb2.MetricDescriptor.ValueType.INT64,
                points=[
                    monitoring_v3.Point(
                        interval=monitoring_v3.TimeInterval(end_time={"seconds": int(end), "nanos": _nanos(end)}),
                        value=monitoring_v3.TypedValue(int64_value=count),
                    )
                ],
            )
            for s, count, end in items
        ]
        try:
            self._client.create_time_series(name=f"projects/{project}", time_series=series, retry=None, timeout=timeout)
        except exceptions.InvalidArgument as error:
            # A rule broken (or a label the descriptor lacks): these points are lost; say which.
            logs.warning(
                f"decision metric points rejected: {error}",
                decision="metric_rejected",
                points=[dict(s.labels, value=count) for s, count, _end in items],
            )
            raise
        except Exception:
            with self._lock:  # probably not written: carried to the next write (at most a double count)
                for s, count, _end in items:
                    s.pending += count
            raise

    def _schedule(self) -> None:
        """Flush what is carried once it is due, if no decision comes first."""
        with self._lock:
            if self._timer is not None and self._timer.is_alive():
                return
            waits = [
                MIN_INTERVAL - (time.time() - s.last_end)
                for s in self._series.values()
                if s.pending and s.last_end is not None
            ]
            delay = max(0.0, min(waits, default=0.0)) + 0.01
            self._timer = threading.Timer(delay, self._flush_quietly)
            self._timer.daemon = True
            self._timer.start()

    def _flush_quietly(self) -> None:
        with self._lock:
            self._timer = None  # this timer is done: a flush that still carries something schedules the next
        try:
            self._flush()
        except Exception as error:  # noqa: BLE001 - a background flush has no caller to tell
            logs.warning(f"decision metric flush failed: {error}", decision="metric_failed")


def _nanos(end: float) -> int:
    return min(999_999_999, round((end % 1) * 1e9))


class TimeSeries:
    """Cloud Monitoring's ``list_time_series``, aligned per period: verification's evidence.

    One client per instance, built on the first read. No retry here: the next
    verification tick, a minute later, is the retry.
    """

    def __init__(self, endpoint: str = "") -> None:
        self._endpoint = endpoint
        self._client: Any = None

    def read(self, query: Any, alignment: int, timeout: float) -> list[dict]:
        """The series ``query`` selects (project, filter, start, end, group_by, and its aligner and reducer by
        name, e.g. ALIGN_PERCENTILE_99 and REDUCE_NONE), as REST-shaped dicts."""
        from google.cloud import monitoring_v3
        from google.protobuf import json_format

        if self._client is None:
            self._client = client(monitoring_v3.MetricServiceClient, self._endpoint)
        aggregation = {
            "alignment_period": {"seconds": alignment},
            "per_series_aligner": monitoring_v3.Aggregation.Aligner[query.aligner],
            "cross_series_reducer": monitoring_v3.Aggregation.Reducer[query.reducer],
            "group_by_fields": list(query.group_by),
        }
        pager = self._client.list_time_series(
            request={
                "name": f"projects/{query.project}",
                "filter": query.filter,
                "interval": {"start_time": _stamp(query.start), "end_time": _stamp(query.end)},
                "aggregation": aggregation,
                "view": monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL,
            },
            retry=None,
            timeout=timeout,
        )
        return [json_format.MessageToDict(type(s).pb(s)) for s in pager]


def _stamp(epoch: float) -> dict:
    return {"seconds": int(epoch), "nanos": int((epoch % 1) * 1e9)}
