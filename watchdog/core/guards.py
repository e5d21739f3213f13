"""The guards: what turns a rollback the rules found into a report.

Rule 10 of :mod:`watchdog.core.decision`. Pure code: the alert, the configuration, the ledger
and the clock in; the first guard that holds the rollback back (its reason code and a sentence),
or None. First match wins, in this order: ``out_of_scope``, ``project_not_allowed``,
``not_cloud_run_incident``, ``policy_not_allowed``, ``stale_alert``, ``paused``, ``undone``,
``cooldown``, ``dry_run``.

The first two are also asked before anything is read (:func:`outside_scope`): a service the
watchdog may not change is reported from the alert alone, without a Cloud Run read that its
grants would refuse.

``undone``: on-call undid a rollback of this very failing revision. A human looked and
decided; the watchdog reports instead of rolling it back again, until a new deploy (the
service's newest revision is no longer the one it was when the rollback was undone) or an
explicit resume after the undo.
"""

from __future__ import annotations

from watchdog.config import Config
from watchdog.core import ledger
from watchdog.core.intake import Alert

# Cloud Monitoring's resource type for a Cloud Run service's revisions; cloud_run_job and cloud_run_worker_pool
# are not services, so an incident on them cannot be about a service's traffic.
CLOUD_RUN_RESOURCE_TYPES = frozenset({"cloud_run_revision"})


def outside_scope(alert: Alert, config: Config) -> tuple[str, str] | None:
    """The service is one the watchdog may not change (``WATCHDOG_SERVICES``, ``WATCHDOG_PROJECTS``), or None."""
    if alert.service not in config.services:
        return "out_of_scope", f"{alert.service.service} is not in WATCHDOG_SERVICES ({config.services.describe()})"
    if config.projects and alert.service.project not in config.projects:
        return "project_not_allowed", f"project {alert.service.project} is not in WATCHDOG_PROJECTS"
    return None


def not_cloud_run_incident(alert: Alert) -> tuple[str, str] | None:
    """The incident is about another resource than Cloud Run's: user labels located it, but may not make it act."""
    if alert.resource_type in CLOUD_RUN_RESOURCE_TYPES:
        return None
    what = f"a {alert.resource_type!r} resource" if alert.resource_type else "no monitored resource type"
    return "not_cloud_run_incident", (
        f"the incident names {what}, not a Cloud Run revision ({alert.service.service} was found by "
        f"{alert.found_by}): only an incident on Cloud Run's own resource may roll a service back"
    )


def policy_not_allowed(alert: Alert, config: Config) -> tuple[str, str] | None:
    """``WATCHDOG_POLICIES`` is set and names neither the incident's policy nor its id.

    The deploy-time hold is not an alert policy's incident (the sentinel acts under WATCHDOG_SENTINEL);
    a drill is, and is named like one ("Rollback watchdog drill"), so a team that allows only named
    policies lists the drill too if it wants live drills.
    """
    if not config.policies or alert.condition_kind == "sentinel":
        return None
    names = {alert.policy_name, alert.policy_id, alert.policy_id.rsplit("/", 1)[-1]} - {""}
    if names & config.policies:
        return None
    return (
        "policy_not_allowed",
        f"policy {alert.policy_name or alert.policy_id or '(unnamed)'!r} is not in WATCHDOG_POLICIES",
    )


def holding_back(
    alert: Alert, config: Config, memory: ledger.Ledger, now: float, failing: str = "", latest: str = ""
) -> tuple[str, str] | None:
    """The first guard that holds a rollback back, or None. ``failing`` is the revision the rollback would
    move traffic off, ``latest`` the service's newest revision now."""
    held = outside_scope(alert, config) or not_cloud_run_incident(alert) or policy_not_allowed(alert, config)
    if held:
        return held
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
        if record.latest and latest and latest not in (record.latest, record.revert):
            return None  # a deploy since (the watchdog's own field revert is none): it may act on what it brings
        return record
    return None
