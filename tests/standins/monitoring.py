"""A local gRPC stand-in for the three Cloud Monitoring v3 methods the watchdog uses.

Why gRPC: google-cloud-monitoring has no REST transport, so the real client can only be
tested against a real gRPC server. Requests and responses are (de)serialized with the
library's own protobuf classes, so a wire-level mismatch shows up here, not in production.

Served methods:

* ``google.monitoring.v3.MetricService/CreateTimeSeries`` — recorded and held to Cloud Monitoring's
  rules for writing points (see :meth:`MonitoringStandIn._create`; the watchdog's
  ``watchdog/edges/monitoring.py`` cites the sources): a broken rule is INVALID_ARGUMENT, as the real API
  answers, and only the valid series of a request are kept (``.points``);
* ``google.monitoring.v3.AlertPolicyService/ListAlertPolicies`` and
  ``google.monitoring.v3.NotificationChannelService/ListNotificationChannels`` — seeded,
  paged (``page_size``/``page_token``), filtered by the ``name`` project prefix only
  (``filter``/``order_by`` are logged, not evaluated).

* ``google.monitoring.v3.MetricService/ListTimeSeries`` — over points seeded with
  ``store.add(...)`` (see :class:`TimeSeriesStore`): the filter (``metric.type``, ``resource.type``,
  ``resource.labels.*``, ``metric.labels.*``, ``=``/``!=`` joined by ``AND``), the read interval
  ``(startTime, endTime]``, ``ALIGN_NONE``/``ALIGN_SUM``/``ALIGN_COUNT`` per alignment period
  (periods end at the interval's end), ``REDUCE_NONE``/``REDUCE_SUM`` by ``group_by_fields``, newest
  point first; a point is visible only ``store.ingest_delay`` seconds after its end time.

Faults: ``fail_next("CreateTimeSeries", grpc.StatusCode.UNAVAILABLE, n=2)``. Note that the
generated client retries UNAVAILABLE on the two List methods by default (30s deadline),
but not on CreateTimeSeries.

Every request (failed ones too) is logged as ``(method, proto-JSON dict)`` in ``.requests``.

IAM: with ``grants`` set (tests/standins/iam.py: the grants terraform/ makes), each call is checked for
its caller, the identity of the door it came through (``door(identity)``: its own port, since the
watchdog's plaintext channel carries no credentials), against :data:`PERMISSIONS` on the request's
``name`` (``projects/P``), and refused with PERMISSION_DENIED as Cloud Monitoring does. The main
address is the test's or an operator's (the doctor): not checked, as in the Cloud Run stand-in.

In-process::

    standin = MonitoringStandIn(port=0, seed=seed_dict).start()   # .address == "127.0.0.1:PORT"
    ...
    standin.stop()

As a process (``--request-log`` appends one JSON line per request, for e2e tests)::

    python -m tests.standins.monitoring --port 8086 --seed seed.json [--request-log reqs.jsonl]
    # prints: monitoring stand-in listening on 127.0.0.1:8086

Seed JSON (proto-JSON/REST shape, camelCase; optional "faults" for process mode)::

    {"alertPolicies": [...], "notificationChannels": [...],
     "faults": [{"method": "CreateTimeSeries", "code": "UNAVAILABLE", "n": 1}]}

How client code should build a client for an insecure endpoint (what the watchdog does
for ``MONITORING_API_ENDPOINT=127.0.0.1:PORT``) — see :func:`insecure_client`: with an
explicit ``grpc.Channel`` the transport ignores credentials, so no ADC lookup happens.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent import futures
from pathlib import Path
from typing import Any, Self, TypeVar

import grpc
from google.api import metric_pb2
from google.cloud import monitoring_v3
from google.protobuf import empty_pb2, json_format
from google.protobuf.message import Message

C = TypeVar("C")

# method → the permission Cloud Monitoring checks on the request's name (projects/P)
PERMISSIONS = {
    "CreateTimeSeries": "monitoring.timeSeries.create",
    "ListTimeSeries": "monitoring.timeSeries.list",
    "ListAlertPolicies": "monitoring.alertPolicies.list",
    "ListNotificationChannels": "monitoring.notificationChannels.list",
}
RUNNING: dict[str, MonitoringStandIn] = {}  # address → stand-in, so a fixture can give a process its door


def insecure_client(client_cls: type[C], endpoint: str) -> C:
    """Build a real Monitoring client that talks plaintext gRPC to ``endpoint`` (host:port).

    Passing a ``grpc.Channel`` instance (not a callable) to the generated grpc transport makes
    it skip credentials entirely (google-cloud-monitoring 2.32: transports/grpc.py).
    """
    transport_cls = client_cls.get_transport_class("grpc")  # type: ignore[attr-defined]
    return client_cls(transport=transport_cls(channel=grpc.insecure_channel(endpoint)))  # type: ignore[call-arg]


def _pb(cls: Any) -> type[Message]:
    """The raw protobuf class behind a proto-plus message class."""
    return cls.pb()


_POLICY = _pb(monitoring_v3.AlertPolicy)
_CHANNEL = _pb(monitoring_v3.NotificationChannel)


class MonitoringStandIn:
    """In-memory Monitoring API on 127.0.0.1, served from a gRPC thread pool."""

    def __init__(self, port: int = 0, seed: dict[str, Any] | None = None) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, list[tuple[grpc.StatusCode, str]]] = defaultdict(list)
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.on_request: Callable[[str, dict[str, Any]], None] | None = None
        self.points: dict[tuple, list[tuple[float, Any]]] = {}  # accepted points per series: (end, value)
        self.min_interval = 5.0  # seconds between two points of one series
        self.clock: Callable[[], float] = time.time
        self.alert_policies: list[Message] = []
        self.notification_channels: list[Message] = []
        self.grants: Any = None  # tests/standins/iam.Grants; None: every caller may do everything
        self._doors: dict[str, tuple[Any, str]] = {}
        self.seed(seed or {})
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self._server.add_generic_rpc_handlers(self._handlers())
        self._server.add_generic_rpc_handlers(self._time_series_handlers())  # ListTimeSeries: TimeSeriesStore
        self.store = TimeSeriesStore()
        self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        self.address = f"127.0.0.1:{self.port}"
        RUNNING[self.address] = self

    def door(self, identity: str) -> str:
        """host:port through which ``identity`` calls this stand-in (same state, its own gRPC server)."""
        if identity not in self._doors:
            server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
            server.add_generic_rpc_handlers(self._handlers(identity))
            server.add_generic_rpc_handlers(self._time_series_handlers(identity))
            address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
            server.start()
            self._doors[identity] = (server, address)
        return self._doors[identity][1]

    def seed(self, data: dict[str, Any]) -> None:
        """Replace seeded resources from proto-JSON; unknown fields raise, to catch typos."""
        with self._lock:
            self.alert_policies = [json_format.ParseDict(p, _POLICY()) for p in data.get("alertPolicies", [])]
            self.notification_channels = [
                json_format.ParseDict(c, _CHANNEL()) for c in data.get("notificationChannels", [])
            ]
        for fault in data.get("faults", []):
            self.fail_next(fault["method"], grpc.StatusCode[fault["code"]], fault.get("n", 1))

    def fail_next(self, method: str, code: grpc.StatusCode, n: int = 1, message: str = "injected fault") -> None:
        """Make the next ``n`` calls of ``method`` (e.g. "ListAlertPolicies") fail with ``code``."""
        with self._lock:
            self._faults[method].extend([(code, message)] * n)

    def calls(self, method: str) -> list[dict[str, Any]]:
        """Logged requests of one method, oldest first."""
        with self._lock:
            return [req for name, req in self.requests if name == method]

    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self) -> None:
        RUNNING.pop(self.address, None)
        for server in [self._server, *(door for door, _ in self._doors.values())]:
            server.stop(grace=None).wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- gRPC plumbing -------------------------------------------------------------

    def _handlers(self, identity: str = "") -> Sequence[grpc.GenericRpcHandler]:
        def unary(name: str, req_cls: Any, impl: Callable[[Any], Message]) -> grpc.RpcMethodHandler:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap(name, impl, identity),
                request_deserializer=_pb(req_cls).FromString,
                response_serializer=lambda msg: msg.SerializeToString(),
            )

        return [
            grpc.method_handlers_generic_handler(
                "google.monitoring.v3.MetricService",
                {"CreateTimeSeries": unary("CreateTimeSeries", monitoring_v3.CreateTimeSeriesRequest, self._create)},
            ),
            grpc.method_handlers_generic_handler(
                "google.monitoring.v3.AlertPolicyService",
                {
                    "ListAlertPolicies": unary(
                        "ListAlertPolicies", monitoring_v3.ListAlertPoliciesRequest, self._list_policies
                    )
                },
            ),
            grpc.method_handlers_generic_handler(
                "google.monitoring.v3.NotificationChannelService",
                {
                    "ListNotificationChannels": unary(
                        "ListNotificationChannels",
                        monitoring_v3.ListNotificationChannelsRequest,
                        self._list_channels,
                    )
                },
            ),
        ]

    def _wrap(
        self, name: str, impl: Callable[[Any], Message], identity: str = ""
    ) -> Callable[[Any, grpc.ServicerContext], Message]:
        """Log the request, check the caller's grant, then either inject a queued fault or run ``impl``."""

        def handler(request: Any, context: grpc.ServicerContext) -> Message:
            as_dict = json_format.MessageToDict(request)
            with self._lock:
                self.requests.append((name, as_dict))
            grants = self.grants
            if grants is not None and identity and not grants.allows(identity, request.name, PERMISSIONS[name]):
                context.abort(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"Permission {PERMISSIONS[name]} denied (or the resource may not exist).",
                )
            with self._lock:
                fault = self._faults[name].pop(0) if self._faults[name] else None
                if self.on_request:
                    self.on_request(name, as_dict)
            if fault:
                context.abort(*fault)
            try:
                return impl(request)
            except ValueError as exc:  # e.g. a page_token we never issued
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

        return handler

    def _time_series_handlers(self, identity: str = "") -> Sequence[grpc.GenericRpcHandler]:
        """ListTimeSeries, served by its own generic handler: the MetricService table above stays as it is."""
        method = grpc.unary_unary_rpc_method_handler(
            self._wrap("ListTimeSeries", lambda request: self.store.list(request), identity),
            request_deserializer=_pb(monitoring_v3.ListTimeSeriesRequest).FromString,
            response_serializer=lambda msg: msg.SerializeToString(),
        )
        return [grpc.method_handlers_generic_handler("google.monitoring.v3.MetricService", {"ListTimeSeries": method})]

    def _create(self, request: Any) -> Message:
        """CreateTimeSeries as Cloud Monitoring checks it.

        * ``name`` is ``projects/P``; 1 to 200 series; each names a metric type, a
          resource type and (for ``global``) ``project_id``;
        * each series appears once in the request and has exactly one point, whose
          value matches the series' value type (INT64: ``int64_value``);
        * GAUGE: the start time is unset or equals the end time; the end time is not
          more than 25 h in the past or 5 min in the future;
        * the point is at least 1 ms newer than the series' newest point, and at
          least ``min_interval`` (5 s) after it.

        Like the real API, the valid series of a request are written and the
        request fails with INVALID_ARGUMENT naming the first broken rule
        ("One or more TimeSeries could not be written: …").
        """
        if not re.fullmatch(r"projects/[^/]+", request.name):
            raise ValueError(f"Name {request.name!r} is not projects/PROJECT")
        if not 1 <= len(request.time_series) <= 200:
            raise ValueError("between 1 and 200 TimeSeries per request")
        problems: list[str] = []
        seen: set[tuple] = set()
        now = self.clock()
        with self._lock:
            for index, series in enumerate(request.time_series):
                key = (
                    request.name,
                    series.metric.type,
                    tuple(sorted(series.metric.labels.items())),
                    series.resource.type,
                    tuple(sorted(series.resource.labels.items())),
                )
                problem = self._series_problem(series, key, seen, now)
                seen.add(key)
                if problem:
                    problems.append(f"timeSeries[{index}]: {problem}")
                    continue
                point = series.points[0]
                end = point.interval.end_time.seconds + point.interval.end_time.nanos / 1e9
                self.points.setdefault(key, []).append((end, point.value.int64_value))
        if problems:
            raise ValueError("One or more TimeSeries could not be written: " + "; ".join(problems))
        return empty_pb2.Empty()

    def _series_problem(self, series: Any, key: tuple, seen: set, now: float) -> str:
        from google.api import metric_pb2

        if not series.metric.type or not series.resource.type:
            return "metric.type and resource.type are required"
        if series.resource.type == "global" and not series.resource.labels.get("project_id"):
            return "resource global needs the label project_id"
        if key in seen:
            return "Duplicate TimeSeries encountered. Only one point can be written per TimeSeries per request."
        if len(series.points) != 1:
            return f"exactly one point per TimeSeries, got {len(series.points)}"
        point = series.points[0]
        if series.value_type == metric_pb2.MetricDescriptor.ValueType.INT64 and point.value.WhichOneof("value") != (
            "int64_value"
        ):
            return "the point's value does not match the INT64 value type"
        interval = point.interval
        end = interval.end_time.seconds + interval.end_time.nanos / 1e9
        if not interval.HasField("end_time"):
            return "the point has no end time"
        gauge = series.metric_kind == metric_pb2.MetricDescriptor.MetricKind.GAUGE
        start = (interval.start_time.seconds, interval.start_time.nanos)
        if gauge and interval.HasField("start_time") and start != (interval.end_time.seconds, interval.end_time.nanos):
            return "a GAUGE interval's start time must equal its end time"
        if end > now + 300 or end < now - 25 * 3600:
            return "the end time is more than 5 minutes in the future or 25 hours in the past"
        previous = self.points.get(key)
        if previous:
            last = previous[-1][0]
            if end < last + 0.001:
                return (
                    "Points must be written in order. One or more of the points specified had an older start "
                    "time than the most recent point."
                )
            if end - last < self.min_interval:
                return (
                    "One or more points were written more frequently than the maximum sampling period "
                    "configured for the metric."
                )
        return ""

    def _list_policies(self, request: Any) -> Message:
        items, token = self._page(self.alert_policies, request)
        return _pb(monitoring_v3.ListAlertPoliciesResponse)(
            alert_policies=items, next_page_token=token, total_size=len(self.alert_policies)
        )

    def _list_channels(self, request: Any) -> Message:
        items, token = self._page(self.notification_channels, request)
        return _pb(monitoring_v3.ListNotificationChannelsResponse)(
            notification_channels=items, next_page_token=token, total_size=len(self.notification_channels)
        )

    def _page(self, seeded: list[Message], request: Any) -> tuple[list[Message], str]:
        """Offset-token paging over resources under ``request.name`` (unnamed seeds always match)."""
        if not re.fullmatch(r"projects/[^/]+", request.name):
            raise ValueError(f"Name {request.name!r} is not projects/PROJECT")
        with self._lock:
            matching = [m for m in seeded if not m.name or m.name.startswith(request.name + "/")]  # type: ignore[attr-defined]
        start = int(request.page_token or 0)
        end = start + request.page_size if request.page_size > 0 else len(matching)
        return matching[start:end], str(end) if end < len(matching) else ""


_FILTER_TERM = re.compile(
    r"^\s*(metric\.type|resource\.type|(?:resource|metric)\.labels?\.[A-Za-z_][A-Za-z0-9_]*)\s*(!=|=)\s*"
    r'(?:"([^"]*)"|([A-Za-z0-9_.:/-]+))\s*$'
)


def parse_filter(text: str) -> list[tuple[str, str, str]]:
    """``[(field, op, value)]`` of a Monitoring filter of ``AND``-joined comparisons; ValueError otherwise.

    Only what the watchdog sends is understood; anything else is INVALID_ARGUMENT rather than
    silently matching everything, so a filter the real API would read differently fails here.
    """
    terms = []
    for part in re.split(r"\s+AND\s+", text.strip()):
        match = _FILTER_TERM.match(part)
        if not match:
            raise ValueError(f"unsupported filter term {part!r}")
        field, op, quoted, bare = match.groups()
        terms.append((field.replace(".label.", ".labels."), op, quoted if quoted is not None else bare))
    if not any(field == "metric.type" and op == "=" for field, op, _ in terms):
        raise ValueError("the filter must specify a single metric type")
    return terms


def _label_value(series: Message, field: str) -> str:
    if field == "metric.type":
        return series.metric.type  # type: ignore[attr-defined]
    if field == "resource.type":
        return series.resource.type  # type: ignore[attr-defined]
    kind, _, key = field.partition(".labels.")
    labels = series.resource.labels if kind == "resource" else series.metric.labels  # type: ignore[attr-defined]
    return labels.get(key, "")


def _seconds(timestamp: Any) -> float:
    return timestamp.seconds + timestamp.nanos / 1e9


def _number(point: Message) -> float:
    value = point.value  # type: ignore[attr-defined]
    kind = value.WhichOneof("value")
    if kind == "int64_value":
        return value.int64_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return float(value.bool_value)
    if kind == "distribution_value":
        return value.distribution_value.count
    raise ValueError(f"cannot aggregate a {kind} point")


class TimeSeriesStore:
    """The points ListTimeSeries reads: seeded by tests, never by CreateTimeSeries (kept apart on purpose)."""

    def __init__(self, ingest_delay: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._series: list[Message] = []
        self.ingest_delay = ingest_delay  # seconds after a point's end time before reads see it
        self.clock: Callable[[], float] = time.time

    def add(self, series: dict[str, Any]) -> None:
        """Add one TimeSeries in proto-JSON (``metric``, ``resource``, ``metricKind``, ``valueType``, ``points``)."""
        parsed = json_format.ParseDict(series, _pb(monitoring_v3.TimeSeries)())
        with self._lock:
            self._series.append(parsed)

    def clear(self) -> None:
        with self._lock:
            self._series.clear()

    def list(self, request: Any) -> Message:
        terms = parse_filter(request.filter)
        if not request.HasField("interval") or not request.interval.HasField("end_time"):
            raise ValueError("interval.end_time is required")
        end = _seconds(request.interval.end_time)
        start = _seconds(request.interval.start_time) if request.interval.HasField("start_time") else end
        if start > end:
            raise ValueError("interval.start_time is later than interval.end_time")
        visible_until = self.clock() - self.ingest_delay
        with self._lock:
            chosen = [s for s in self._series if request.name.endswith("/" + s.resource.labels.get("project_id", ""))
                      or not s.resource.labels.get("project_id")]  # fmt: skip
        matching = []
        for series in chosen:
            if not all((_label_value(series, f) == v) == (op == "=") for f, op, v in terms):
                continue
            points = [
                p for p in series.points  # type: ignore[attr-defined]
                if (start < _seconds(p.interval.end_time) <= end or start == end == _seconds(p.interval.end_time))
                and _seconds(p.interval.end_time) <= visible_until
            ]  # fmt: skip
            if points:
                matching.append((series, points))
        out = (
            self._aggregate(matching, request.aggregation, start, end)
            if request.HasField("aggregation")
            else [self._copy(series, points) for series, points in matching]
        )
        if request.view == monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.HEADERS:
            for series in out:
                del series.points[:]  # type: ignore[attr-defined]
        return _pb(monitoring_v3.ListTimeSeriesResponse)(time_series=out)

    @staticmethod
    def _copy(series: Message, points: list[Message]) -> Message:
        copy = type(series)()
        copy.CopyFrom(series)
        del copy.points[:]  # type: ignore[attr-defined]
        newest_first = sorted(points, key=lambda p: _seconds(p.interval.end_time), reverse=True)
        copy.points.extend(newest_first)  # type: ignore[attr-defined]
        return copy

    def _aggregate(self, matching: list, aggregation: Any, start: float, end: float) -> list[Message]:
        aligner = monitoring_v3.Aggregation.Aligner(aggregation.per_series_aligner).name
        reducer = monitoring_v3.Aggregation.Reducer(aggregation.cross_series_reducer).name
        if aligner not in ("ALIGN_NONE", "ALIGN_SUM", "ALIGN_COUNT"):
            raise ValueError(f"per_series_aligner {aligner} is not implemented by the stand-in")
        if reducer not in ("REDUCE_NONE", "REDUCE_SUM"):
            raise ValueError(f"cross_series_reducer {reducer} is not implemented by the stand-in")
        period = _seconds(aggregation.alignment_period)
        if aligner == "ALIGN_NONE":
            if reducer != "REDUCE_NONE":
                raise ValueError("a cross-series reducer needs a per-series aligner")
            return [self._copy(series, points) for series, points in matching]
        if period <= 0:
            raise ValueError("alignment_period is required with a per-series aligner")
        # one output point per period ending at end, end - period, ... (the real API's alignment)
        aligned = []
        for series, points in matching:
            buckets: dict[int, float] = defaultdict(float)
            for point in points:
                k = int((end - _seconds(point.interval.end_time)) // period)
                buckets[k] += 1 if aligner == "ALIGN_COUNT" else _number(point)
            aligned.append((series, buckets))
        if reducer == "REDUCE_SUM":
            groups: dict[tuple, tuple[Message, dict[int, float]]] = {}
            fields = [f.replace(".label.", ".labels.") for f in aggregation.group_by_fields]
            for series, buckets in aligned:
                key = tuple(_label_value(series, f) for f in fields)
                if key not in groups:
                    head = type(series)(metric_kind=series.metric_kind, value_type=series.value_type)
                    head.metric.type = series.metric.type
                    head.resource.type = series.resource.type
                    for field, value in zip(fields, key, strict=True):
                        kind, _, name = field.partition(".labels.")
                        (head.resource.labels if kind == "resource" else head.metric.labels)[name] = value
                    groups[key] = (head, defaultdict(float))
                for k, value in buckets.items():
                    groups[key][1][k] += value
            aligned = list(groups.values())
        out = []
        for series, buckets in aligned:
            result = type(series)()
            result.CopyFrom(series)
            del result.points[:]
            result.metric_kind = metric_pb2.MetricDescriptor.MetricKind.DELTA if aligner == "ALIGN_SUM" else (
                metric_pb2.MetricDescriptor.MetricKind.GAUGE)  # fmt: skip
            as_int = aligner == "ALIGN_COUNT" or series.value_type == metric_pb2.MetricDescriptor.ValueType.INT64
            if aligner == "ALIGN_COUNT":
                result.value_type = metric_pb2.MetricDescriptor.ValueType.INT64
            for k in sorted(buckets):  # newest first
                point = result.points.add()
                point.interval.end_time.FromNanoseconds(int((end - k * period) * 1e9))
                point.interval.start_time.FromNanoseconds(int((end - (k + 1) * period) * 1e9))
                if as_int:
                    point.value.int64_value = int(buckets[k])
                else:
                    point.value.double_value = buckets[k]
            out.append(result)
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=Path, help="JSON with alertPolicies / notificationChannels / faults")
    parser.add_argument("--request-log", type=Path, help="append each request here as a JSON line")
    args = parser.parse_args()

    standin = MonitoringStandIn(args.port, json.loads(args.seed.read_text()) if args.seed else None)
    if args.request_log:
        log = args.request_log.open("a", encoding="utf-8")

        def write(method: str, request: dict[str, Any]) -> None:
            log.write(json.dumps({"method": method, "request": request}) + "\n")
            log.flush()

        standin.on_request = write
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    standin.start()
    print(f"monitoring stand-in listening on {standin.address}", flush=True)
    stop.wait()
    standin.stop()


if __name__ == "__main__":
    main()
