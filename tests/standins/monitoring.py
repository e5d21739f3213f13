"""A local gRPC stand-in for the three Cloud Monitoring v3 methods the watchdog uses.

Why gRPC: google-cloud-monitoring has no REST transport, so the real client can only be
tested against a real gRPC server. Requests and responses are (de)serialized with the
library's own protobuf classes, so a wire-level mismatch shows up here, not in production.

Served methods:

* ``google.monitoring.v3.MetricService/CreateTimeSeries`` — recorded, returns Empty;
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
import signal
import threading
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
        return empty_pb2.Empty()

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
