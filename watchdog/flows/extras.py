"""What happens around a decision, off the critical path.

- ``after_decision``: runs once the delivery is handled (the watchdog's own metric);
- ``related``: runs after the traffic update, before the report (the blast radius).

Both are best effort: the handler logs their failures and carries on. Neither
imports anything heavy here: google-cloud-monitoring is imported on the first
metric write, after the first decision.
"""

from __future__ import annotations

from collections.abc import Callable

from watchdog.config import Config
from watchdog.edges.cloudrun import CloudRun


def after_decision(config: Config) -> Callable | None:
    """One point of ``custom.googleapis.com/rollback_watchdog/decisions`` per decision (watchdog/edges/monitoring.py).

    Off when Cloud Run is a local ``http://`` stand-in and no Monitoring endpoint is
    set: a local run never writes to the real Monitoring API.
    """
    if config.cloud_run_endpoint.startswith("http://") and not config.monitoring_endpoint:
        return None
    from watchdog.edges.monitoring import DecisionMetric

    return DecisionMetric(config.metrics_project, config.monitoring_endpoint)


def related(config: Config, cloud_run: CloudRun) -> Callable | None:
    """Other services in the project and region with the same change (watchdog/flows/blast_radius.py)."""
    from watchdog.flows import blast_radius

    def lines(alert, decided, deadline: float) -> list[str]:
        return blast_radius.related(config, cloud_run, alert, decided, deadline)

    return lines
