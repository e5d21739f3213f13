"""The guards: what turns a rollback the rules found into a report.

Rule 10 of :mod:`watchdog.core.decision`. Pure code: the alert, the configuration, the ledger
and the clock in; the first guard that holds the rollback back (its reason code and a sentence),
or None. First match wins, in this order: ``out_of_scope``, ``project_not_allowed``,
``stale_alert``, ``paused``, ``cooldown``, ``dry_run``.
"""

from __future__ import annotations

from watchdog.config import Config
from watchdog.core import ledger
from watchdog.core.intake import Alert


def holding_back(alert: Alert, config: Config, memory: ledger.Ledger, now: float) -> tuple[str, str] | None:
    """The first guard that holds a rollback back, or None."""
    if alert.service not in config.services:
        return "out_of_scope", f"{alert.service.service} is not in WATCHDOG_SERVICES ({config.services.describe()})"
    if config.projects and alert.service.project not in config.projects:
        return "project_not_allowed", f"project {alert.service.project} is not in WATCHDOG_PROJECTS"
    if config.max_alert_age_seconds and alert.published_at and now - alert.published_at > config.max_alert_age_seconds:
        hours = (now - alert.published_at) / 3600
        return "stale_alert", (
            f"the alert was published {hours:.1f} h ago, beyond WATCHDOG_MAX_ALERT_AGE_SECONDS "
            f"({config.max_alert_age_seconds} s): a late or replayed delivery is reported, not acted on"
        )
    if config.paused:
        return "paused", "the watchdog is paused (WATCHDOG_PAUSED)"
    if memory.paused:
        return "paused", f"the service is paused ({ledger.PAUSED_KEY}={memory.pause_value})"
    newest = memory.newest
    if newest is not None and now - newest.at < config.cooldown_seconds:
        minutes = int((now - newest.at) // 60)
        return "cooldown", (
            f"it rolled this service back {minutes} min ago (incident {newest.incident}); "
            f"cooldown is {config.cooldown_seconds // 60} min"
        )
    if config.dry_run or (alert.drill and not alert.drill_live):
        return "dry_run", "this is a dry run" + (" (drill)" if alert.drill else "")
    return None
