"""A local gRPC stand-in for the three Cloud Monitoring v3 methods the watchdog uses.

Why gRPC: google-cloud-monitoring has no REST transport, so the real client can only be
tested against a real gRPC server. Requests and responses are (de)serialized with the
library's own protobuf classes, so a wire-level mismatch shows up here, not in production.

Served methods:

* ``google.monitoring.v3.MetricService/CreateTimeSeries`` — recorded and held to Cloud Monitoring's
  rules for writing points (see :meth:`MonitoringStandIn._create`; the watchdog's
  ``watchdog/monitoring.py`` cites the sources): a broken rule is INVALID_ARGUMENT, as the real API
  answers, and only the valid series of a request are kept (``.points``);
* ``google.monitoring.v3.AlertPolicyService/ListAlertPolicies`` and
  ``google.monitoring.v3.NotificationChannelService/ListNotificationChannels`` — seeded,
  paged (``page_size``/``page_token``), filtered by the ``name`` project prefix only
  (``filter``/``order_by`` are logged, not evaluated).

Faults: ``fail_next("CreateTimeSeries", grpc.StatusCode.UNAVAILABLE, n=2)``. Note that the
generated client retries UNAVAILABLE on the two List methods by default (30s deadline),
but not on CreateTimeSeries.

Every request (failed ones too) is logged as ``(method, proto-JSON dict)`` in ``.requests``.

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
from google.cloud import monitoring_v3
from google.protobuf import empty_pb2, json_format
from google.protobuf.message import Message

C = TypeVar("C")


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
        self.seed(seed or {})
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self._server.add_generic_rpc_handlers(self._handlers())
        self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        self.address = f"127.0.0.1:{self.port}"

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
        self._server.stop(grace=None).wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- gRPC plumbing -------------------------------------------------------------

    def _handlers(self) -> Sequence[grpc.GenericRpcHandler]:
        def unary(name: str, req_cls: Any, impl: Callable[[Any], Message]) -> grpc.RpcMethodHandler:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap(name, impl),
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

    def _wrap(self, name: str, impl: Callable[[Any], Message]) -> Callable[[Any, grpc.ServicerContext], Message]:
        """Log the request, then either inject a queued fault or run ``impl``."""

        def handler(request: Any, context: grpc.ServicerContext) -> Message:
            as_dict = json_format.MessageToDict(request)
            with self._lock:
                self.requests.append((name, as_dict))
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
