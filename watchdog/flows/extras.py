"""What happens around a decision, off the critical path.

- ``after_decision``: runs once the delivery is handled (the watchdog's own metric);
- ``related``: runs after the traffic update, before the report (the blast radius).

Both are best effort (``best_effort``, ``best_effort_related``): a
failure is logged and the flow carries on; extras never undo or block a rollback,
and the blast radius gives way to the report when the deadline is near. Neither
imports anything heavy here: google-cloud-monitoring is imported on the first
metric write, after the first decision.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from watchdog.config import Config
from watchdog.edges import logs

RELATED_SECONDS = 5.0  # the blast radius is looked up only with this much of the deadline left


def after_decision(config: Config) -> Callable | None:
    """One point of ``custom.googleapis.com/rollback_watchdog/decisions`` per decision (watchdog/edges/monitoring.py).

    Off when Cloud Run is a local ``http://`` stand-in and no Monitoring endpoint is
    set: a local run never writes to the real Monitoring API.
    """
    if config.cloud_run_endpoint.startswith("http://") and not config.monitoring_endpoint:
        return None
    from watchdog.edges.monitoring import DecisionMetric

    return DecisionMetric(config.metrics_project, config.monitoring_endpoint)


def related(config: Config, cloud_run: Any) -> Callable | None:
    """Other services in the project and region with the same change (watchdog/flows/blast_radius.py)."""
    from watchdog.flows import blast_radius

    def lines(alert, decided, deadline: float) -> list[str]:
        return blast_radius.related(config, cloud_run, alert, decided, deadline)

    return lines


def best_effort(hook: Callable | None) -> Callable[..., None]:
    """``hook(alert, outcome, deadline)``, or nothing; a failure is logged, never raised."""

    def run(alert, outcome, deadline: float) -> None:
        if hook is None:
            return
        try:
            hook(alert, outcome, deadline)
        except Exception as error:  # noqa: BLE001 - extras never undo or block a rollback
            logs.warning(f"after-decision hook failed: {error}", incident_id=alert.incident_id)

    return run


def best_effort_related(related: Callable | None) -> Callable[..., list[str]]:
    """``related(alert, decided, deadline)``, or no lines: when there is none, time is short, or it fails."""

    def lines(alert, decided, deadline: float) -> list[str]:
        if related is None or deadline - time.monotonic() < RELATED_SECONDS:
            return []
        try:
            return related(alert, decided, deadline)
        except Exception as error:  # noqa: BLE001 - extras never block the report
            logs.warning(f"blast-radius lookup failed: {error}", incident_id=alert.incident_id)
            return []

    return lines
