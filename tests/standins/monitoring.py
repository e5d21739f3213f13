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
  ``store.add(...)``, ``store.counts(...)`` or ``store.values(...)`` (see :class:`TimeSeriesStore`), each
  metric served with the kind, value type and labels its definition has: Cloud Run's built-in metrics as
  Google documents them, terraform's log-based metrics as ``terraform/alerts.tf`` defines them (counters
  DELTA INT64, "Slow DB connects" DELTA DISTRIBUTION with its buckets). The filter (``metric.type``,
  ``resource.type``, ``resource.labels.*``, ``metric.labels.*``, ``=``/``!=`` joined by ``AND``), the read
  interval ``(startTime, endTime]``, aligners and reducers checked against the metric's kind and value
  type as ``common.proto`` defines them (``ALIGN_PERCENTILE_99`` on a counter is INVALID_ARGUMENT), then
  ``ALIGN_SUM``/``ALIGN_DELTA``/``ALIGN_COUNT``/``ALIGN_MAX``/``ALIGN_MIN``/``ALIGN_PERCENTILE_nn`` per
  alignment period (periods end at the interval's end), ``REDUCE_NONE``/``REDUCE_SUM``/``REDUCE_MAX``/
  ``REDUCE_MIN``/``REDUCE_PERCENTILE_nn`` by ``group_by_fields``, newest point first; a point is visible
  only ``store.ingest_delay`` seconds after its end time.

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
from dataclasses import dataclass
from datetime import datetime
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


# --- Metric descriptors: each metric served with the kind, value type and labels its definition has ---------

REVISION_LABELS = frozenset({"project_id", "service_name", "revision_name", "location", "configuration_name"})
TERRAFORM = Path(__file__).resolve().parents[2] / "terraform"


@dataclass(frozen=True)
class Descriptor:
    """What a metric is, as its definition says: ``kind`` DELTA/GAUGE/CUMULATIVE, ``value_type``
    INT64/DOUBLE/DISTRIBUTION/BOOL, its metric labels, and (a DISTRIBUTION) its ``buckets`` as proto-JSON
    ``bucketOptions``."""

    type: str
    kind: str
    value_type: str
    labels: frozenset[str] = frozenset()
    resource: str = "cloud_run_revision"
    buckets: dict | None = None


def cloud_run_descriptors() -> dict[str, Descriptor]:
    """Cloud Run's built-in metrics the watchdog reads, as Google's metric list defines them
    (https://cloud.google.com/monitoring/api/metrics_gcp_p_z#gcp-run):

    * ``container/completed_probe_count``: DELTA, INT64, "Number of completed health check probes and
      their results. Sampled every 60 seconds. After sampling, data is not visible for up to 120
      seconds.", labels ``probe_type`` and ``is_healthy``;
    * ``request_count``: DELTA, INT64, "Number of requests reaching the revision. Excludes requests that
      are not reaching your container instances …", visible "for up to 180 seconds" after sampling,
      labels ``response_code`` and ``response_code_class`` ('1xx' … '5xx').
    """
    return {
        "run.googleapis.com/container/completed_probe_count": Descriptor(
            "run.googleapis.com/container/completed_probe_count", "DELTA", "INT64",
            frozenset({"probe_type", "is_healthy"})),
        "run.googleapis.com/request_count": Descriptor(
            "run.googleapis.com/request_count", "DELTA", "INT64", frozenset({"response_code", "response_code_class"})),
    }  # fmt: skip


def terraform_descriptors(directory: Path = TERRAFORM) -> dict[str, Descriptor]:
    """terraform's log-based metrics (``google_logging_metric`` in ``directory``), read from the HCL itself.

    A metric without a ``value_extractor`` counts matching entries (DELTA INT64); one with it records one
    value per matching entry in a DELTA DISTRIBUTION with the resource's ``bucket_options``
    (google/logging/v2/logging_metrics.proto, LogMetric.metric_descriptor and value_extractor). Its type
    is ``logging.googleapis.com/user/NAME``, NAME with ``var.name_prefix`` at its default. Log-based
    metrics come with default labels ("All log-based metrics come with some default labels",
    cloud.google.com/logging/docs/logs-based-metrics/labels): ``log``, the log the entry came from.
    """
    import hcl2

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {clean(k): clean(v) for k, v in value.items() if k not in ("__is_block__", "__comments__")}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
            return value[1:-1]
        return value

    def load(name: str) -> dict:
        with (directory / name).open() as handle:
            return clean(hcl2.load(handle))

    prefix = next(v["name_prefix"]["default"] for v in load("variables.tf")["variable"] if "name_prefix" in v)
    found = {}
    for item in load("alerts.tf").get("resource", []):
        for body in item.get("google_logging_metric", {}).values():
            descriptor = body["metric_descriptor"][0]
            name = "logging.googleapis.com/user/" + body["name"].replace("${var.name_prefix}", prefix)
            buckets = None
            if "bucket_options" in body:
                options = body["bucket_options"][0]
                (kind, spec), *_ = options.items()
                camel = {"exponential_buckets": "exponentialBuckets", "linear_buckets": "linearBuckets",
                         "explicit_buckets": "explicitBuckets"}[kind]  # fmt: skip
                spec = spec[0]
                buckets = {camel: {re.sub(r"_([a-z])", lambda m: m.group(1).upper(), k): v for k, v in spec.items()}}
            labels = {label["key"] for label in descriptor.get("labels", [])}
            found[name] = Descriptor(name, descriptor["metric_kind"], descriptor["value_type"],
                                     frozenset({"log", *labels}), buckets=buckets)  # fmt: skip
    return found


# --- Aggregation, as google/monitoring/v3/common.proto defines each aligner and reducer ----------------------
# (quoted from google-cloud-monitoring 2.32, types/common.py, which carries the proto's comments).
NUMERIC = frozenset({"INT64", "DOUBLE"})
# aligner: (metric kinds, value types it is "valid for", the output value type: None = same as the input)
ALIGNERS: dict[str, tuple[frozenset, frozenset, str | None]] = {
    # "valid for CUMULATIVE and DELTA metrics … The value_type of the aligned result is the same"
    "ALIGN_DELTA": (frozenset({"CUMULATIVE", "DELTA"}), NUMERIC | {"DISTRIBUTION"}, None),
    # "valid for CUMULATIVE and DELTA metrics with numeric values … value_type DOUBLE"
    "ALIGN_RATE": (frozenset({"CUMULATIVE", "DELTA"}), NUMERIC, "DOUBLE"),
    # "valid for GAUGE and DELTA metrics with numeric values"
    "ALIGN_MIN": (frozenset({"GAUGE", "DELTA"}), NUMERIC, None),
    "ALIGN_MAX": (frozenset({"GAUGE", "DELTA"}), NUMERIC, None),
    "ALIGN_MEAN": (frozenset({"GAUGE", "DELTA"}), NUMERIC, "DOUBLE"),
    # "valid for GAUGE and DELTA metrics with numeric or Boolean values … INT64"
    "ALIGN_COUNT": (frozenset({"GAUGE", "DELTA"}), NUMERIC | {"BOOL"}, "INT64"),
    # "valid for GAUGE and DELTA metrics with numeric and distribution values … same as the input"
    "ALIGN_SUM": (frozenset({"GAUGE", "DELTA"}), NUMERIC | {"DISTRIBUTION"}, None),
    # "valid for GAUGE and DELTA metrics with distribution values. The output is a GAUGE metric with value_type
    # DOUBLE"
    **{f"ALIGN_PERCENTILE_{p}": (frozenset({"GAUGE", "DELTA"}), frozenset({"DISTRIBUTION"}), "DOUBLE")
       for p in ("99", "95", "50", "05")},
}  # fmt: skip
# reducer: (value types it is "valid for" (DELTA and GAUGE only), the output value type: None = the input's)
REDUCERS: dict[str, tuple[frozenset, str | None]] = {
    "REDUCE_MEAN": (NUMERIC | {"DISTRIBUTION"}, "DOUBLE"),  # "numeric or distribution values … DOUBLE"
    "REDUCE_MIN": (NUMERIC, None),  # "numeric values … the same as the value_type of the input"
    "REDUCE_MAX": (NUMERIC, None),
    "REDUCE_SUM": (NUMERIC | {"DISTRIBUTION"}, None),  # "numeric and distribution values … the same"
    "REDUCE_COUNT": (NUMERIC | {"DISTRIBUTION", "BOOL", "STRING"}, "INT64"),
    **{f"REDUCE_PERCENTILE_{p}": (NUMERIC | {"DISTRIBUTION"}, "DOUBLE") for p in ("99", "95", "50", "05")},
}  # fmt: skip
# What the stand-in computes; the other valid ones are INVALID_ARGUMENT "not implemented by the stand-in".
COMPUTED_ALIGNERS = {"ALIGN_SUM", "ALIGN_DELTA", "ALIGN_COUNT", "ALIGN_MAX", "ALIGN_MIN", "ALIGN_PERCENTILE_99",
                     "ALIGN_PERCENTILE_95", "ALIGN_PERCENTILE_50", "ALIGN_PERCENTILE_05"}  # fmt: skip
COMPUTED_REDUCERS = {"REDUCE_NONE", "REDUCE_SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PERCENTILE_99",
                     "REDUCE_PERCENTILE_95", "REDUCE_PERCENTILE_50", "REDUCE_PERCENTILE_05"}  # fmt: skip


def aligner_problem(aligner: str, kind: str, value_type: str) -> str:
    """Why the real API refuses ``aligner`` on a metric of ``kind`` and ``value_type``; "" when it is valid."""
    kinds, types, _ = ALIGNERS.get(aligner, (frozenset(), frozenset(), None))
    if kind in kinds and value_type in types:
        return ""
    return (f"Field aggregation.perSeriesAligner had an invalid value of \"{aligner}\": the aligner cannot be "
            f"applied to metrics with kind {kind} and value type {value_type}.")  # fmt: skip


def reducer_problem(reducer: str, kind: str, value_type: str) -> str:
    """Why ``reducer`` is refused on series of ``kind`` and ``value_type``; "" when valid.

    The proto says a reducer's "valid choices depend on the metric_kind and the value_type of the original
    time series", and describes each reducer by the aligned values it combines; the stand-in demands both
    (the original series and the aligned ones) be valid, the strictest reading: the watchdog must not rely
    on the looser one (e.g. REDUCE_MAX after ALIGN_PERCENTILE_99 on a DISTRIBUTION is not sent).
    """
    if reducer == "REDUCE_NONE":
        return ""
    types, _ = REDUCERS.get(reducer, (frozenset(), None))
    if kind in ("GAUGE", "DELTA") and value_type in types:
        return ""
    return (f"Field aggregation.crossSeriesReducer had an invalid value of \"{reducer}\": the reducer cannot be "
            f"applied to metrics with kind {kind} and value type {value_type}.")  # fmt: skip


@dataclass
class Dist:
    """A distribution value: its count, mean, sum of squared deviation and bucket counts under ``options``."""

    count: int
    mean: float
    ssd: float
    options: dict
    counts: list[int]

    @classmethod
    def of(cls, value: Any) -> Dist:
        as_json = json_format.MessageToDict(value)
        counts = [int(c) for c in as_json.get("bucketCounts", [])]
        return cls(int(as_json.get("count", 0)), float(as_json.get("mean", 0.0)),
                   float(as_json.get("sumOfSquaredDeviation", 0.0)), as_json.get("bucketOptions", {}), counts)  # fmt: skip

    def merged(self, other: Dist) -> Dist:
        if self.options != other.options:
            raise ValueError("distributions with different bucket options cannot be combined")
        count = self.count + other.count
        mean = (self.mean * self.count + other.mean * other.count) / count if count else 0.0
        ssd = self.ssd + other.ssd + self.count * (self.mean - mean) ** 2 + other.count * (other.mean - mean) ** 2
        width = max(len(self.counts), len(other.counts))
        counts = [(self.counts[i] if i < len(self.counts) else 0) + (other.counts[i] if i < len(other.counts) else 0)
                  for i in range(width)]  # fmt: skip
        return Dist(count, mean, ssd, self.options, counts)

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile, interpolated linearly inside the bucket that holds it.

        How Cloud Monitoring interpolates is not documented; tests compare with thresholds far from the
        values, never with this arithmetic."""
        rank, seen = q / 100 * self.count, 0
        for index, count in enumerate(self.counts):
            if count and seen + count >= rank:
                low, high = bucket_bounds(self.options, index)
                if low == float("-inf"):
                    return high
                if high == float("inf"):
                    return low
                return low + (high - low) * (rank - seen) / count
            seen += count
        return self.mean

    def to_proto_json(self) -> dict:
        return {"count": str(self.count), "mean": self.mean, "sumOfSquaredDeviation": self.ssd,
                "bucketOptions": self.options, "bucketCounts": [str(c) for c in self.counts]}  # fmt: skip


def bucket_bounds(options: dict, index: int) -> tuple[float, float]:
    """Bucket ``index``'s [low, high) under ``options`` (google/api/distribution.proto BucketOptions): bucket 0
    is the underflow, bucket N+1 the overflow."""
    if "exponentialBuckets" in options:
        spec = options["exponentialBuckets"]
        n, growth, scale = int(spec["numFiniteBuckets"]), float(spec["growthFactor"]), float(spec["scale"])
        edges = [scale * growth**i for i in range(n + 1)]
    elif "linearBuckets" in options:
        spec = options["linearBuckets"]
        n, width, offset = int(spec["numFiniteBuckets"]), float(spec["width"]), float(spec.get("offset", 0))
        edges = [offset + width * i for i in range(n + 1)]
    else:
        edges = [float(b) for b in options.get("explicitBuckets", {}).get("bounds", [])]
    edges = [float("-inf"), *edges, float("inf")]
    return edges[index], edges[index + 1]


def bucket_of(options: dict, value: float) -> int:
    index = 0
    while bucket_bounds(options, index)[1] <= value:
        index += 1
    return index


def buckets_in(options: dict) -> int:
    """How many buckets (finite ones, the underflow and the overflow) ``options`` defines."""
    for key, field in (("exponentialBuckets", "numFiniteBuckets"), ("linearBuckets", "numFiniteBuckets")):
        if key in options:
            return int(options[key][field]) + 2
    return len(options.get("explicitBuckets", {}).get("bounds", [])) + 1


class TimeSeriesStore:
    """The points ListTimeSeries reads: seeded by tests, never by CreateTimeSeries (kept apart on purpose).

    Each metric is served as its descriptor defines it (:func:`cloud_run_descriptors`,
    :func:`terraform_descriptors`, or one a test declares with :meth:`define`): :meth:`add` refuses a series
    of an unknown metric or whose kind, value type, labels or points do not fit it, so no test can seed a
    shape the real API would never return; ListTimeSeries refuses an aligner or reducer the real API refuses
    for that kind and value type (INVALID_ARGUMENT), and an alignment period under 60 s ("The value must be at
    least 60 seconds", Aggregation.alignment_period). A metric type nothing defines reads as no series.
    """

    def __init__(self, ingest_delay: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._series: list[Message] = []
        self.ingest_delay = ingest_delay  # seconds after a point's end time before reads see it
        self.clock: Callable[[], float] = time.time
        self.descriptors: dict[str, Descriptor] = {**cloud_run_descriptors(), **_terraform_descriptors()}

    def define(self, metric: str, kind: str, value_type: str, labels: tuple[str, ...] = (),
               buckets: dict | None = None) -> None:  # fmt: skip
        """Declare a metric the built-in and terraform's lists do not have (a user's own log-based metric)."""
        self.descriptors[metric] = Descriptor(metric, kind, value_type, frozenset(labels), buckets=buckets)

    def add(self, series: dict[str, Any]) -> None:
        """Add one TimeSeries in proto-JSON (``metric``, ``resource``, ``metricKind``, ``valueType``, ``points``)."""
        problem = self._shape_problem(series)
        if problem:
            raise ValueError(f"{series.get('metric', {}).get('type')!r}: {problem}")
        parsed = json_format.ParseDict(series, _pb(monitoring_v3.TimeSeries)())
        with self._lock:
            self._series.append(parsed)

    def counts(self, metric: str, resource_labels: dict[str, str], points: list[tuple[float, int]],
               **metric_labels: str) -> None:  # fmt: skip
        """Add a DELTA INT64 series: ``(end time, count)`` per minute."""
        descriptor = self.descriptors[metric]
        self.add({
            "metric": {"type": metric, "labels": metric_labels},
            "resource": {"type": descriptor.resource, "labels": resource_labels},
            "metricKind": descriptor.kind, "valueType": descriptor.value_type,
            "points": [{"interval": {"startTime": _stamp(end - 60), "endTime": _stamp(end)},
                        "value": {"int64Value": str(count)}} for end, count in points],
        })  # fmt: skip

    def values(self, metric: str, resource_labels: dict[str, str], points: list[tuple[float, list[float]]],
               **metric_labels: str) -> None:  # fmt: skip
        """Add a DELTA DISTRIBUTION series: ``(end time, the values recorded in that minute)`` per minute, bucketed
        as the metric's descriptor says (one value per matching log entry, for a log-based metric)."""
        descriptor = self.descriptors[metric]
        options = descriptor.buckets or {}
        shaped = []
        for end, recorded in points:
            counts = [0] * buckets_in(options)
            for value in recorded:
                counts[bucket_of(options, value)] += 1
            mean = sum(recorded) / len(recorded) if recorded else 0.0
            ssd = sum((v - mean) ** 2 for v in recorded)
            value = Dist(len(recorded), mean, ssd, options, counts).to_proto_json()
            shaped.append({"interval": {"startTime": _stamp(end - 60), "endTime": _stamp(end)},
                           "value": {"distributionValue": value}})  # fmt: skip
        self.add({"metric": {"type": metric, "labels": metric_labels},
                  "resource": {"type": descriptor.resource, "labels": resource_labels},
                  "metricKind": descriptor.kind, "valueType": descriptor.value_type, "points": shaped})  # fmt: skip

    def _shape_problem(self, series: dict[str, Any]) -> str:
        metric = series.get("metric", {})
        descriptor = self.descriptors.get(metric.get("type", ""))
        if descriptor is None:
            return "no such metric here (declare it with define())"
        if (series.get("metricKind"), series.get("valueType")) != (descriptor.kind, descriptor.value_type):
            return (f"is {descriptor.kind} {descriptor.value_type}, not {series.get('metricKind')} "
                    f"{series.get('valueType')}")  # fmt: skip
        extra = set(metric.get("labels", {})) - descriptor.labels
        if extra:
            return f"has no label {sorted(extra)} (its labels: {sorted(descriptor.labels)})"
        resource = series.get("resource", {})
        if resource.get("type") != descriptor.resource or set(resource.get("labels", {})) - REVISION_LABELS:
            return f"is written for {descriptor.resource} with labels {sorted(REVISION_LABELS)}"
        want = {"INT64": "int64Value", "DOUBLE": "doubleValue", "BOOL": "boolValue",
                "DISTRIBUTION": "distributionValue"}[descriptor.value_type]  # fmt: skip
        for point in series.get("points", []):
            value, interval = point.get("value", {}), point.get("interval", {})
            if list(value) != [want]:
                return f"a point's value is {list(value)}, not {want}"
            if descriptor.kind == "DELTA" and not _time(interval.get("startTime")) < _time(interval.get("endTime")):
                return "a DELTA point needs a start time before its end time (TimeInterval)"
            if want == "distributionValue":
                dist = value[want]
                if dist.get("bucketOptions") != descriptor.buckets:
                    return f"a point's bucketOptions {dist.get('bucketOptions')} are not the metric's"
                counts = [int(c) for c in dist.get("bucketCounts", [])]
                if sum(counts) != int(dist.get("count", 0)) or len(counts) > buckets_in(descriptor.buckets or {}):
                    return "a point's bucketCounts do not add up to its count"
        return ""

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
            self._aggregate(matching, request.aggregation, end)
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

    def _aggregate(self, matching: list, aggregation: Any, end: float) -> list[Message]:
        aligner = monitoring_v3.Aggregation.Aligner(aggregation.per_series_aligner).name
        reducer = monitoring_v3.Aggregation.Reducer(aggregation.cross_series_reducer).name
        period = _seconds(aggregation.alignment_period)
        if aligner == "ALIGN_NONE":
            if reducer != "REDUCE_NONE":
                raise ValueError("a cross-series reducer needs a per-series aligner")
            return [self._copy(series, points) for series, points in matching]
        if period < 60:
            raise ValueError("alignment_period must be at least 60 seconds")
        metric = next((s.metric.type for s, _ in matching), "")  # one metric type per filter
        descriptor = self.descriptors.get(metric)
        if descriptor is None:
            return []
        problem = aligner_problem(aligner, descriptor.kind, descriptor.value_type)
        out_type = (ALIGNERS[aligner][2] if not problem else None) or descriptor.value_type
        out_kind = "GAUGE" if aligner.startswith("ALIGN_PERCENTILE") or aligner in ("ALIGN_COUNT", "ALIGN_MEAN") else (
            descriptor.kind)  # fmt: skip
        problem = problem or reducer_problem(reducer, descriptor.kind, descriptor.value_type)
        problem = problem or reducer_problem(reducer, out_kind, out_type)
        if problem:
            raise ValueError(problem)
        if aligner not in COMPUTED_ALIGNERS or reducer not in COMPUTED_REDUCERS:
            raise ValueError(f"{aligner} with {reducer} is valid but not implemented by the stand-in")
        # one output point per period ending at end, end - period, ... (the real API's alignment)
        aligned = []
        for series, points in matching:
            raw: dict[int, list] = defaultdict(list)
            for point in points:
                raw[int((end - _seconds(point.interval.end_time)) // period)].append(_value(point))
            aligned.append((series, {k: _align(aligner, values) for k, values in raw.items()}))
        if reducer != "REDUCE_NONE":
            groups: dict[tuple, tuple[Message, dict[int, list]]] = {}
            fields = [f.replace(".label.", ".labels.") for f in aggregation.group_by_fields]
            for series, buckets in aligned:
                key = tuple(_label_value(series, f) for f in fields)
                if key not in groups:
                    head = type(series)()
                    head.metric.type = series.metric.type
                    head.resource.type = series.resource.type
                    for field, value in zip(fields, key, strict=True):
                        kind, _, name = field.partition(".labels.")
                        (head.resource.labels if kind == "resource" else head.metric.labels)[name] = value
                    groups[key] = (head, defaultdict(list))
                for k, value in buckets.items():
                    groups[key][1][k].append(value)
            aligned = [(head, {k: _reduce(reducer, values) for k, values in values_by.items()})
                       for head, values_by in groups.values()]  # fmt: skip
            out_type = REDUCERS[reducer][1] or out_type
        out = []
        for series, buckets in aligned:
            result = type(series)()
            result.CopyFrom(series)
            del result.points[:]
            result.metric_kind = metric_pb2.MetricDescriptor.MetricKind.Value(out_kind)
            result.value_type = metric_pb2.MetricDescriptor.ValueType.Value(out_type)
            for k in sorted(buckets):  # newest first
                point = result.points.add()
                point.interval.end_time.FromNanoseconds(int((end - k * period) * 1e9))
                point.interval.start_time.FromNanoseconds(int((end - (k + 1) * period) * 1e9))
                value = buckets[k]
                if isinstance(value, Dist):
                    json_format.ParseDict({"distributionValue": value.to_proto_json()}, point.value)
                elif out_type == "INT64":
                    point.value.int64_value = int(value)
                else:
                    point.value.double_value = float(value)
            out.append(result)
        return out


def _value(point: Message) -> float | Dist:
    value = point.value  # type: ignore[attr-defined]
    kind = value.WhichOneof("value")
    if kind == "int64_value":
        return value.int64_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return float(value.bool_value)
    if kind == "distribution_value":
        return Dist.of(value.distribution_value)
    raise ValueError(f"cannot aggregate a {kind} point")


def _combined(values: list) -> Any:
    if values and isinstance(values[0], Dist):
        total = values[0]
        for value in values[1:]:
            total = total.merged(value)
        return total
    return sum(values)


def _align(aligner: str, values: list) -> Any:
    if aligner in ("ALIGN_SUM", "ALIGN_DELTA"):  # a DELTA input: the period's delta is the sum of its points
        return _combined(values)
    if aligner == "ALIGN_COUNT":
        return len(values)
    if aligner in ("ALIGN_MAX", "ALIGN_MIN"):
        return (max if aligner == "ALIGN_MAX" else min)(values)
    return _combined(values).percentile(float(aligner.rsplit("_", 1)[1]))  # ALIGN_PERCENTILE_nn


def _reduce(reducer: str, values: list) -> Any:
    if reducer == "REDUCE_SUM":
        return _combined(values)
    if reducer in ("REDUCE_MAX", "REDUCE_MIN"):
        return (max if reducer == "REDUCE_MAX" else min)(values)
    q = float(reducer.rsplit("_", 1)[1])  # REDUCE_PERCENTILE_nn: of the merged distribution, or of the numbers
    if isinstance(values[0], Dist):
        return _combined(values).percentile(q)
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def _time(text: str | None) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else float("nan")


def _stamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1e6):06d}Z"


_TERRAFORM_CACHE: dict[str, Descriptor] = {}


def _terraform_descriptors() -> dict[str, Descriptor]:
    if not _TERRAFORM_CACHE:
        _TERRAFORM_CACHE.update(terraform_descriptors())
    return dict(_TERRAFORM_CACHE)


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
