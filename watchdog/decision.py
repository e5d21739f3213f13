"""The decision: alert + service + revisions + config + clock in, a :class:`Decision` out.

Pure code: no client, no clock, no environment. Rules, in the order they win:

1. ``already_handled``: the service's ledger records a rollback for this
   incident. Reported: nothing at all (duplicates are silent). Not reported
   and younger than the handling deadline: ``in_progress`` (another delivery
   is still reporting it; the caller asks Pub/Sub to redeliver later). Not
   reported and older: ``resend_report`` (the delivery that acted died).
2. ``not_serving``: the failing revision gets no traffic (already rolled back,
   or the deploy never became Ready): nothing to do.
3. ``revision_not_found``, ``no_matching_change``, ``no_ready_target``:
   nothing safe to roll back to; report the diff and leave traffic alone.
4. Guards that turn a rollback into a report, first match wins:
   ``out_of_scope`` (not in ``WATCHDOG_SERVICES``), ``project_not_allowed``,
   ``paused``, ``cooldown``, ``dry_run``.
5. Otherwise ``rollback``.

The change may be arbitrarily old (in the incident it surfaced 37 hours after
the deploy), so the walk back through history has no age limit. When the
revisions read so far end before the decision is known, the answer is
``need_more_revisions`` and the caller reads the next page.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from watchdog import ledger
from watchdog.changes import Change, template_changes
from watchdog.config import Config
from watchdog.intake import Alert

ROLLBACK = "rollback"
REPORT = "report"
RESEND_REPORT = "resend_report"
IN_PROGRESS = "in_progress"
NOTHING = "nothing"
NEED_MORE = "need_more_revisions"

# Which change kinds count for each WATCHDOG_ROLLBACK_ON setting.
KINDS_FOR = {"egress": {"egress"}, "network": {"egress", "network"}, "any": {"egress", "network", "other"}}


@dataclass(frozen=True)
class Decision:
    action: str  # one of ROLLBACK, REPORT, RESEND_REPORT, NOTHING, NEED_MORE
    reason: str  # machine-readable code, see the module docstring
    detail: str  # one sentence for humans
    failing: str = ""  # revision the alert is about (short name)
    target: str = ""  # revision to pin traffic to
    breaking: str = ""  # newest revision that made a change of the configured kind
    breaking_created: str = ""  # its createTime (RFC 3339), to show how old the change is
    skipped: tuple[str, ...] = ()  # revisions between failing and target
    changes: tuple[Change, ...] = ()  # target → failing, egress first
    trigger_changes: tuple[Change, ...] = ()  # what ``breaking`` changed, of the configured kind
    record: ledger.Record | None = None
    would_roll_back: bool = False  # a target was found; only a guard held it back
    serving: dict[str, int] = field(default_factory=dict)

    @property
    def acts(self) -> bool:
        return self.action == ROLLBACK


def decide(
    alert: Alert,
    service: dict,
    revisions: list[dict],
    config: Config,
    now: float,
    *,
    history_complete: bool = True,
    memo: dict | None = None,
) -> Decision:
    """Decide what to do for an open ``alert``. ``revisions`` are newest first.

    With ``history_complete=False`` (more pages exist) the answer may be
    ``need_more_revisions``; it never is when the history is complete. ``memo``
    (any dict, kept by the caller across pages) saves re-comparing revision
    pairs already compared for this decision.
    """
    annotations = _annotations(service)
    record = ledger.find(annotations, alert.incident_id)
    serving = traffic_split(service)
    if record is not None:
        moved = f"{record.from_revision} → {record.to_revision}"
        if record.reported:
            action, detail = NOTHING, f"incident {alert.incident_id} was already rolled back ({moved})"
        elif now - record.at < config.deadline_seconds:
            action = IN_PROGRESS
            detail = (
                f"incident {alert.incident_id} is being rolled back by another delivery ({moved}); "
                "its report is not recorded yet"
            )
        else:
            action = RESEND_REPORT
            detail = f"incident {alert.incident_id} was rolled back ({moved}), but the report was not recorded as sent"
        return Decision(
            action,
            "already_handled",
            detail,
            failing=record.from_revision,
            target=record.to_revision,
            record=record,
            serving=serving,
        )

    failing = alert.revision or _most_traffic(serving)
    if not failing:
        return Decision(REPORT, "no_traffic", "the service serves no revision", serving=serving)
    if serving.get(failing, 0) == 0:
        return Decision(
            NOTHING,
            "not_serving",
            f"revision {failing} serves no traffic (already rolled back, or never became Ready)",
            failing=failing,
            serving=serving,
        )

    names = [short_name(r.get("name", "")) for r in revisions]
    if failing not in names:
        if not history_complete:
            return Decision(NEED_MORE, "need_more_revisions", f"looking for revision {failing}", failing=failing)
        return Decision(
            REPORT,
            "revision_not_found",
            f"revision {failing} is not in the service's history",
            failing=failing,
            serving=serving,
        )

    wanted = KINDS_FOR[config.rollback_on]
    start = names.index(failing)
    breaking_at, trigger = -1, ()
    for i in range(start, len(revisions) - 1):
        found = tuple(c for c in _pair_changes(revisions[i + 1], revisions[i], memo) if c.kind in wanted)
        if found:
            breaking_at, trigger = i, found
            break
    if breaking_at < 0:
        if not history_complete:
            return Decision(NEED_MORE, "need_more_revisions", "no matching change yet", failing=failing)
        previous = revisions[start + 1] if start + 1 < len(revisions) else None
        diff = tuple(template_changes(previous, revisions[start])) if previous else ()
        return Decision(
            REPORT,
            "no_matching_change",
            f"no {config.rollback_on} change in the history of {failing}; traffic left alone",
            failing=failing,
            changes=diff,
            serving=serving,
        )

    rolled_away = {r.from_revision for r in ledger.records(annotations)}
    target_at = next(
        (k for k in range(breaking_at + 1, len(revisions)) if is_ready(revisions[k]) and names[k] not in rolled_away),
        -1,
    )
    breaking = names[breaking_at]
    if target_at < 0:
        if not history_complete:
            return Decision(NEED_MORE, "need_more_revisions", "no Ready target yet", failing=failing)
        return Decision(
            REPORT,
            "no_ready_target",
            f"{breaking} changed {_describe(trigger)}, but no earlier Ready revision exists "
            "that the watchdog has not already rolled away from",
            failing=failing,
            breaking=breaking,
            trigger_changes=trigger,
            serving=serving,
        )

    target = names[target_at]
    found = {
        "failing": failing,
        "target": target,
        "breaking": breaking,
        "breaking_created": str(revisions[breaking_at].get("createTime", "")),
        "skipped": tuple(n for n in names[start + 1 : target_at] if n != failing),
        "changes": tuple(template_changes(revisions[target_at], revisions[start])),
        "trigger_changes": trigger,
        "serving": serving,
        "would_roll_back": True,
    }
    why = f"{breaking} changed {_describe(trigger)}"
    guard = _guard(alert, config, annotations, now)
    if guard:
        reason, sentence = guard
        return Decision(REPORT, reason, f"{why}; would roll back to {target}, but {sentence}", **found)
    return Decision(ROLLBACK, "rollback", f"{why}; rolling back to {target}", **found)


def _pair_changes(older: dict, newer: dict, memo: dict | None) -> list[Change]:
    if memo is None:
        return template_changes(older, newer)
    key = (older.get("name"), newer.get("name"))
    if key not in memo:
        memo[key] = template_changes(older, newer)
    return memo[key]


def _guard(alert: Alert, config: Config, annotations: dict, now: float) -> tuple[str, str] | None:
    """The first guard that holds a rollback back, or None."""
    if alert.service not in config.services:
        return "out_of_scope", f"{alert.service.service} is not in WATCHDOG_SERVICES ({config.services.describe()})"
    if config.projects and alert.service.project not in config.projects:
        return "project_not_allowed", f"project {alert.service.project} is not in WATCHDOG_PROJECTS"
    if config.paused:
        return "paused", "the watchdog is paused (WATCHDOG_PAUSED=true)"
    if ledger.paused(annotations):
        return "paused", f"the service is paused ({ledger.PAUSED_KEY}=true)"
    history = ledger.records(annotations)
    if history and now - history[-1].at < config.cooldown_seconds:
        minutes = int((now - history[-1].at) // 60)
        return "cooldown", (
            f"it rolled this service back {minutes} min ago (incident {history[-1].incident}); "
            f"cooldown is {config.cooldown_seconds // 60} min"
        )
    if config.dry_run or (alert.drill and not alert.drill_live):
        return "dry_run", "this is a dry run" + (" (drill)" if alert.drill else "")
    return None


@dataclass(frozen=True)
class Recovery:
    record: ledger.Record
    alert_to_rollback: float | None
    rollback_to_recovery: float


def recovery(alert: Alert, service: dict, now: float) -> Recovery | None:
    """For a ``closed`` incident the watchdog acted on: the timings to report, else None."""
    record = ledger.find(_annotations(service), alert.incident_id)
    if record is None or record.recovered_at is not None:
        return None
    ended = alert.ended_at or now
    return Recovery(
        record=record,
        alert_to_rollback=(record.at - record.alert_at) if record.alert_at else None,
        rollback_to_recovery=max(0.0, ended - record.at),
    )


def traffic_split(service: dict) -> dict[str, int]:
    """Percent of traffic per revision (short names), as Cloud Run reports it serving."""
    statuses = service.get("trafficStatuses") or service.get("traffic") or []
    latest_ready = short_name(service.get("latestReadyRevision", ""))
    split: dict[str, int] = {}
    for entry in statuses if isinstance(statuses, list) else []:
        if not isinstance(entry, dict):
            continue
        revision = entry.get("revision") or ""
        if not revision and str(entry.get("type", "")).endswith("LATEST"):
            revision = latest_ready
        if revision:
            try:
                percent = int(entry.get("percent") or 0)
            except (TypeError, ValueError):
                percent = 0
            split[short_name(revision)] = split.get(short_name(revision), 0) + percent
    if not split and latest_ready:
        split[latest_ready] = 100  # no traffic block: 100% to the latest Ready revision
    return split


def is_ready(revision: dict) -> bool:
    if revision.get("deleteTime"):
        return False
    conditions = revision.get("conditions")
    return any(
        isinstance(c, dict) and c.get("type") == "Ready" and c.get("state") == "CONDITION_SUCCEEDED"
        for c in (conditions if isinstance(conditions, list) else [])
    )


def short_name(name: str) -> str:
    return str(name).rsplit("/", 1)[-1]


def _most_traffic(serving: dict[str, int]) -> str:
    return max(serving.items(), key=lambda kv: kv[1])[0] if serving else ""


def _annotations(service: dict) -> dict[str, str]:
    annotations = service.get("annotations")
    return annotations if isinstance(annotations, dict) else {}


def _describe(changes: tuple[Change, ...]) -> str:
    return "; ".join(str(c) for c in changes[:3]) + (f" (+{len(changes) - 3} more)" if len(changes) > 3 else "")
