"""Cloud Monitoring clients and the watchdog's own decision metric.

google-cloud-monitoring (gRPC only) is imported inside the functions here,
never at module import, so neither the function's cold start nor a rollback
waits for it.

``MONITORING_API_ENDPOINT`` (``host:port``) selects a plaintext gRPC channel to
that endpoint (the local stand-in); with an explicit channel the transport
skips credentials, so no Application Default Credentials lookup happens.

The metric ``custom.googleapis.com/rollback_watchdog/decisions`` gets one
point per decision about an alert (``retry`` outcomes included): INT64 GAUGE, value 1, resource ``global``
(project_id = ``WATCHDOG_METRICS_PROJECT`` or the alert's project), labels
``service``, ``action`` and ``outcome``. A GAUGE of 1 per decision is what an
alert on failures needs: ``metric.label.outcome="failed"`` aligned with
ALIGN_COUNT (or ALIGN_SUM) over a window counts the failed decisions in it,
with no counter state to keep across function instances.
"""

from __future__ import annotations

import time
from typing import Any

METRIC_TYPE = "custom.googleapis.com/rollback_watchdog/decisions"
WRITE_TIMEOUT = 3.0  # seconds; a metric point is never worth more


def client(client_cls: Any, endpoint: str = "") -> Any:
    """A real Monitoring client; plaintext gRPC to ``endpoint`` (host:port) when given."""
    if not endpoint:
        return client_cls()
    import grpc

    transport_cls = client_cls.get_transport_class("grpc")
    return client_cls(transport=transport_cls(channel=grpc.insecure_channel(endpoint)))


def decision_labels(alert: Any, outcome: Any) -> dict[str, str]:
    """Metric labels of one decision: service, action (what was decided), outcome (what came of it)."""
    decided = outcome.decision
    return {
        "service": alert.service.service,
        "action": decided.action if decided is not None else "none",
        "outcome": outcome.result,
    }


class DecisionMetric:
    """Writes one point per decision; built once per process, the client on first use."""

    def __init__(self, metrics_project: str = "", endpoint: str = "") -> None:
        self._project = metrics_project
        self._endpoint = endpoint
        self._client: Any = None

    def __call__(self, alert: Any, outcome: Any, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining < 0.5:
            return  # out of time: the delivery's answer matters more than its metric point
        from google.api import metric_pb2
        from google.cloud import monitoring_v3

        if self._client is None:
            self._client = client(monitoring_v3.MetricServiceClient, self._endpoint)
        project = self._project or alert.service.project
        now = time.time()
        series = monitoring_v3.TimeSeries(
            metric={"type": METRIC_TYPE, "labels": decision_labels(alert, outcome)},
            resource={"type": "global", "labels": {"project_id": project}},
            metric_kind=metric_pb2.MetricDescriptor.MetricKind.GAUGE,
            value_type=metric_pb2.MetricDescriptor.ValueType.INT64,
            points=[
                monitoring_v3.Point(
                    interval=monitoring_v3.TimeInterval(end_time={"seconds": int(now), "nanos": int((now % 1) * 1e9)}),
                    value=monitoring_v3.TypedValue(int64_value=1),
                )
            ],
        )
        self._client.create_time_series(
            name=f"projects/{project}",
            time_series=[series],
            retry=None,
            timeout=max(0.5, min(WRITE_TIMEOUT, remaining)),
        )
