"""The guards: what turns a rollback the rules found into a report.

Rule 10 of :mod:`watchdog.core.decision`. Pure code: the alert, the configuration, the ledger
and the clock in; the first guard that holds the rollback back (its reason code and a sentence),
or None. First match wins, in this order: ``out_of_scope``, ``project_not_allowed``,
``stale_alert``, ``paused``, ``undone``, ``cooldown``, ``dry_run``.

``undone``: on-call undid a rollback of this very failing revision. A human looked and
decided; the watchdog reports instead of rolling it back again, until a new deploy (the
service's newest revision is no longer the one it was when the rollback was undone) or an
explicit resume after the undo.
"""

from __future__ import annotations

from watchdog.config import Config
from watchdog.core import ledger
from watchdog.core.intake import Alert


def holding_back(
    alert: Alert, config: Config, memory: ledger.Ledger, now: float, failing: str = "", latest: str = ""
) -> tuple[str, str] | None:
    """The first guard that holds a rollback back, or None. ``failing`` is the revision the rollback would
    move traffic off, ``latest`` the service's newest revision now."""
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
    undone = _undone(memory, failing, latest)
    if undone is not None:
        return "undone", (
            f"on-call undid the rollback of {failing} for incident {undone.incident}: it stays their decision "
            "until a new deploy or `rollback-watchdog resume`"
        )
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


RESUME_EVENT = "resume_service"


def _undone(memory: ledger.Ledger, failing: str, latest: str) -> ledger.Record | None:
    """The rollback of ``failing`` that on-call undid, while no deploy and no resume came after the undo."""
    resumed = max((e[2] for r in memory.records for e in r.events if e[0] == RESUME_EVENT), default=None)
    for record in sorted(memory.records, key=lambda r: r.at, reverse=True):
        undone_at = record.undone_at()
        if not failing or record.from_revision != failing or undone_at is None:
            continue
        if resumed is not None and resumed > undone_at:
            return None
        if record.latest and latest and latest != record.latest:
            return None  # a deploy since: the watchdog may act on what it brings
        return record
    return None
