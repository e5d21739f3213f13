"""The decision: alert + service + revisions + config + clock in, a :class:`Decision` out.

Pure code: no client, no clock, no environment. A rollback must never make an
outage worse, so every rule below that cannot show a safe move reports
instead. Rules, in the order they win, and where each lives:

1. ``ledger_unreadable``: the watchdog's annotations cannot be read. Report;
   traffic and the annotations are left alone. (:func:`decide`)
2. ``already_handled``: the ledger records a rollback for this incident.
   Reported: nothing at all (duplicates are silent). Not reported and younger
   than :data:`REPORT_LEASE`: ``in_progress`` (the caller asks Pub/Sub to
   redeliver later). Not reported and older: ``resend_report``.
   (:func:`decide`, :func:`_already_handled`)
3. ``already_closed``: the incident was seen ``closed`` before this ``open``
   arrived (out-of-order delivery): nothing. (:func:`decide`)
4. Which revision fails. The alert's ``revision_name`` when it has one.
   Otherwise: ``newest_not_ready`` (the newest revision never became Ready and
   serves nothing, so Cloud Run kept traffic where it was: nothing to move),
   ``no_traffic``, the only serving revision, or the one serving revision whose
   trigger value differs from all the others (a canary); several candidates is
   ``ambiguous_revision``. (:func:`_failing_from_traffic`)
5. ``not_serving``: the failing revision gets no traffic: nothing to do.
   (:func:`_decide`, as are rules 6–8 and 11)
6. ``rollback_did_not_fix``: the failing revision is one the watchdog rolled
   back *to*: a loud report, never a further automatic rollback.
7. ``revision_not_found``, ``no_matching_change``: nothing in the history to
   blame; report the diff.
8. ``revert``: the latest change restored the value the service had before the
   previous change (a human's revert). A revert is not a cause: report the
   history, never roll back onto the value just reverted away from.
9. ``no_known_good_target``: no revision can be shown to be good. The rule
   that picks the rollback target and the split after it:
   :func:`watchdog.core.rollback_target.choose`.
10. Guards that turn a rollback into a report, first match wins:
    ``out_of_scope``, ``project_not_allowed``, ``not_cloud_run_incident``,
    ``policy_not_allowed``, ``stale_alert``, ``paused``, ``cooldown``,
    ``dry_run``. (:func:`watchdog.core.guards.holding_back`)
11. Otherwise ``rollback``.

Any report (rules 4–10) for an incident already reported once is
``already_reported``: one message per incident, not one per delivery.
(:func:`decide`)

Definitions. Only **Ready** revisions count as a cause or a baseline; a
revision that never became Ready is skipped (:func:`watchdog.core.traffic.is_ready`).
A revision's *trigger value* is its configuration in the fields
``WATCHDOG_ROLLBACK_ON`` names; two revisions "have the same value" when
:func:`watchdog.core.changes.template_changes` finds no change of those kinds
between them (:class:`watchdog.core.history.History`). The **breaking** revision
is the oldest Ready revision after the target that has the failing revision's
value (a deleted one, if the history shows it, is named as such;
:func:`watchdog.core.rollback_target.breaking`).

The target, first that applies: the revisions serving now without the failing
value (they take the failing share in proportion); else the newest Ready
revision before the breaking one that is not a 0% tag-only preview; else a
revision the ledger shows serving. Never one with the failing value, never one
the watchdog rolled away from before; every tagged traffic entry stays
(:func:`watchdog.core.traffic.rollback_traffic`). The full rule is in
:mod:`watchdog.core.rollback_target`.

The change may be arbitrarily old (in the incident it surfaced 37 hours after
the deploy), so the walk through history has no age limit. When the
revisions read so far end before the decision is known, the answer is
``need_more_revisions`` and the caller reads the next page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from watchdog.config import Config
from watchdog.core import guards, ledger, precheck, rollback_target
from watchdog.core.changes import Change, template_changes
from watchdog.core.history import History
from watchdog.core.intake import Alert
from watchdog.core.traffic import is_ready, rollback_traffic, short_name, traffic_split

ROLLBACK = "rollback"
REPORT = "report"
RESEND_REPORT = "resend_report"
IN_PROGRESS = "in_progress"
NOTHING = "nothing"
NEED_MORE = "need_more_revisions"

# How long after a rollback another delivery assumes the one that made it is still posting its card: the
# card goes out right after the update is accepted, so a crash there is reported on the first redelivery
# (Pub/Sub's minimum backoff is 10 s), not after the whole handling deadline.
REPORT_LEASE = 8.0

# Which change kinds count for each WATCHDOG_ROLLBACK_ON setting.
KINDS_FOR = {"egress": {"egress"}, "network": {"egress", "network"}, "any": {"egress", "network", "other"}}


@dataclass(frozen=True)
class Decision:
    action: str  # one of ROLLBACK, REPORT, RESEND_REPORT, IN_PROGRESS, NOTHING, NEED_MORE
    reason: str  # machine-readable code, see the module docstring
    detail: str  # one sentence for humans
    failing: str = ""  # revision the alert is about (short name)
    target: str = ""  # the revision that takes the most traffic after the rollback
    breaking: str = ""  # oldest revision after the target with the failing value
    breaking_created: str = ""  # its createTime (RFC 3339), to show how old the change is
    breaking_deleted: bool = False  # the breaking revision is deleted (the history still shows it)
    skipped: tuple[str, ...] = ()  # revisions between failing and target
    changes: tuple[Change, ...] = ()  # target → failing, egress first
    trigger_changes: tuple[Change, ...] = ()  # the same, of the kinds WATCHDOG_ROLLBACK_ON names
    record: ledger.Record | None = None
    would_roll_back: bool = False  # a target was found; only a guard held it back
    serving: dict[str, int] = field(default_factory=dict)  # percent per revision now
    split: dict[str, int] = field(default_factory=dict)  # percent per revision after the rollback
    traffic: tuple[dict, ...] = ()  # the complete v2 traffic list to send, tags kept
    moved_from: tuple[str, ...] = ()  # revisions whose share moves: the failing one and any with its value
    trust: str = ""  # why the target is trusted
    fixes: tuple[tuple[str, str], ...] = ()  # (precheck rule, what to do about it) for the change rolled back
    breaking_creator: str = ""  # who deployed the breaking revision (its ``creator``)
    loud: bool = False  # page on-call: the watchdog cannot help and someone must look now

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
    serving = traffic_split(service)
    memory = ledger.read(_annotations(service))
    if isinstance(memory, ledger.Unreadable):
        return Decision(
            REPORT,
            "ledger_unreadable",
            f"the watchdog's ledger annotations on {alert.service.service} cannot be read ({memory.reason}); "
            f"traffic and annotations left alone: fix or remove {ledger.ROLLBACKS_KEY} / {ledger.MEMORY_KEY}",
            failing=alert.revision,
            serving=serving,
            loud=True,
        )
    record = memory.find(alert.incident_id)
    if record is not None:
        return _already_handled(alert, record, config, now, serving)
    if alert.incident_id in memory.closed:
        return Decision(
            NOTHING,
            "already_closed",
            f"incident {alert.incident_id} was already seen closed; this open arrived late",
            failing=alert.revision,
            serving=serving,
        )
    history = History(
        revisions, KINDS_FOR[config.rollback_on], {} if memo is None else memo, history_complete, config.show_env
    )
    decided = _decide(alert, service, history, memory, config, now, serving)
    if decided.action == REPORT and alert.incident_id in memory.noticed:
        return replace(decided, action=NOTHING, reason="already_reported", detail=f"already reported: {decided.detail}")
    return decided


def _already_handled(alert: Alert, record: ledger.Record, config: Config, now: float, serving: dict) -> Decision:
    moved = f"{record.from_revision} → {record.to_revision}"
    if record.reported:
        action, detail = NOTHING, f"incident {alert.incident_id} was already rolled back ({moved})"
    elif now - record.at < min(config.deadline_seconds, REPORT_LEASE):
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


def _decide(
    alert: Alert, service: dict, history: History, memory: ledger.Ledger, config: Config, now: float, serving: dict
) -> Decision:
    def more(why: str, failing: str = "") -> Decision:
        return Decision(NEED_MORE, "need_more_revisions", why, failing=failing)

    # --- which revision fails
    failing = alert.revision
    if not failing:
        located = _failing_from_traffic(service, history, serving)
        if isinstance(located, Decision):
            return located
        failing = located
    if serving.get(failing, 0) == 0:
        return Decision(
            NOTHING,
            "not_serving",
            f"revision {failing} serves no traffic (already rolled back, a tag-only preview, or never became Ready)",
            failing=failing,
            serving=serving,
        )
    earlier = memory.rolled_to.get(failing)
    if earlier is not None:
        return Decision(
            REPORT,
            "rollback_did_not_fix",
            f"the watchdog rolled {alert.service.service} back to {failing} for incident {earlier.incident}, "
            f"and the alert is now about {failing}: that rollback did not fix it. No further automatic rollback; "
            "someone needs to look now",
            failing=failing,
            serving=serving,
            loud=True,
        )
    fi = history.index.get(failing)
    if fi is None:
        if not history.complete:
            return more(f"looking for revision {failing}", failing)
        return Decision(
            REPORT,
            "revision_not_found",
            f"revision {failing} is not in the service's history",
            failing=failing,
            serving=serving,
        )
    revisions, names = history.revisions, history.names
    failing_rev = revisions[fi]

    # --- the latest change: walk back over Ready revisions with the failing value
    breaking_at, boundary = fi, None
    for k in history.ready_after(fi):
        if history.same(revisions[k], failing_rev):
            breaking_at = k
        else:
            boundary = k
            break
    if boundary is None:
        if not history.complete:
            return more("no matching change yet", failing)
        older = history.ready_after(fi)
        diff = tuple(history.changes(revisions[older[0]], failing_rev)) if older else ()
        return Decision(
            REPORT,
            "no_matching_change",
            f"no {config.rollback_on} change in the history of {failing}; traffic left alone",
            failing=failing,
            changes=diff,
            serving=serving,
        )

    # --- a revert is not a cause
    before_boundary = next(
        (k for k in history.ready_after(boundary) if not history.same(revisions[k], revisions[boundary])), None
    )
    if before_boundary is None and not history.complete:
        return more("checking whether the latest change was a revert", failing)
    latest = tuple(c for c in history.changes(revisions[boundary], revisions[breaking_at]) if c.kind in history.kinds)
    if before_boundary is not None and history.same(revisions[before_boundary], failing_rev):
        return Decision(
            REPORT,
            "revert",
            f"{names[breaking_at]} restored {_describe(latest, new_side=True)}, which {names[before_boundary]} had "
            f"before {names[boundary]} changed it: a revert is not treated as the cause, and rolling back would "
            f"put {names[boundary]}'s configuration back. Traffic left alone",
            failing=failing,
            breaking=names[breaking_at],
            breaking_created=str(revisions[breaking_at].get("createTime", "")),
            trigger_changes=latest,
            changes=tuple(history.changes(revisions[boundary], failing_rev)),
            serving=serving,
        )

    # --- the target: known good (watchdog/core/rollback_target.py)
    chosen = rollback_target.choose(service, history, memory, serving, failing, fi, breaking_at)
    if isinstance(chosen, rollback_target.NoTarget):
        if chosen.need_more:
            return more("looking for a revision known to have served", failing)
        return Decision(
            REPORT,
            "no_known_good_target",
            f"{names[breaking_at]} changed the {alert.service.service} configuration, but no Ready revision "
            "without that change can be shown to have served (none serves now, the one before the change is a "
            "preview, or the watchdog rolled away from it before): traffic left alone",
            failing=failing,
            breaking=names[breaking_at],
            breaking_created=str(revisions[breaking_at].get("createTime", "")),
            serving=serving,
        )
    target, split, moved_from = chosen.revision, chosen.split, chosen.moved_from
    ti = history.index[target]
    breaking_at, breaking_deleted = rollback_target.breaking(history, fi, ti, breaking_at)
    changes = tuple(history.changes(revisions[ti], failing_rev))
    trigger = tuple(c for c in changes if c.kind in history.kinds)
    verdict = precheck.evaluate(revisions[ti], failing_rev)  # the same rules (and fixes) as `check`
    fixes = tuple((f.rule, f.fix) for f in verdict.findings if f.severity == precheck.FAIL and f.fix)
    found = {
        "failing": failing,
        "target": target,
        "breaking": names[breaking_at],
        "breaking_created": str(revisions[breaking_at].get("createTime", "")),
        "breaking_deleted": breaking_deleted,
        "skipped": tuple(n for n in names[fi + 1 : ti] if n not in moved_from) if ti > fi else (),
        "changes": changes,
        "trigger_changes": trigger,
        "serving": serving,
        "split": split,
        "traffic": tuple(rollback_traffic(service, split)),
        "moved_from": moved_from,
        "trust": chosen.trust,
        "fixes": fixes,
        "breaking_creator": str(revisions[breaking_at].get("creator", "")),
        "would_roll_back": True,
    }
    why = f"{names[breaking_at]} changed {_describe(trigger)}"
    held = guards.holding_back(alert, config, memory, now)
    if held:
        reason, sentence = held
        return Decision(REPORT, reason, f"{why}; would roll back to {target}, but {sentence}", **found)
    return Decision(ROLLBACK, "rollback", f"{why}; rolling back to {target} ({chosen.trust})", **found)


def _failing_from_traffic(service: dict, history: History, serving: dict[str, int]) -> str | Decision:
    """The failing revision of an alert that names none, or the decision that there is no safe answer."""
    newest_created = short_name(service.get("latestCreatedRevision", ""))
    newest_ready = short_name(service.get("latestReadyRevision", ""))
    if newest_created and newest_created != newest_ready and serving.get(newest_created, 0) == 0:
        revision = history.get(newest_created)
        if revision is None or not is_ready(revision):
            return Decision(
                REPORT,
                "newest_not_ready",
                f"the newest revision {newest_created} never became Ready, so Cloud Run kept traffic on "
                f"{_show_split(serving) or newest_ready or 'the previous revision'}: nothing to roll back",
                failing=newest_created,
                serving=serving,
            )
    live = [name for name, percent in serving.items() if percent > 0]
    if not live:
        return Decision(REPORT, "no_traffic", "the service serves no revision", serving=serving)
    if len(live) == 1:
        return live[0]
    known = {name: history.get(name) for name in live}
    if any(r is None for r in known.values()):
        if not history.complete:
            return Decision(NEED_MORE, "need_more_revisions", "looking for the serving revisions")
        missing = ", ".join(n for n, r in known.items() if r is None)
        return Decision(
            REPORT,
            "ambiguous_revision",
            f"the alert names no revision and the serving revision(s) {missing} are not in the history",
            serving=serving,
        )
    ordered = sorted(live, key=lambda n: str(known[n].get("createTime", "")), reverse=True)
    newest, others = ordered[0], ordered[1:]
    odd = not any(history.same(known[newest], known[o]) for o in others)
    agree = all(history.same(known[others[0]], known[o]) for o in others[1:])
    if odd and agree:
        return newest
    return Decision(
        REPORT,
        "ambiguous_revision",
        f"the alert names no revision and no single serving revision made the change ({_show_split(serving)}); "
        "traffic left alone",
        serving=serving,
    )


# --- after a rollback: its decision rebuilt for a re-sent report, and the recovery timings


def rebuilt(record: ledger.Record, revisions: list[dict], config: Config, serving: dict[str, int]) -> Decision:
    """The decision of a rollback already made, from its ledger record and the revisions (a re-sent report)."""
    by_name = {short_name(r.get("name", "")): r for r in revisions}
    failing, target = by_name.get(record.from_revision), by_name.get(record.to_revision)
    breaking = by_name.get(record.breaking) or failing
    changes: tuple[Change, ...] = ()
    fixes: tuple[tuple[str, str], ...] = ()
    if failing is not None and target is not None:
        changes = tuple(template_changes(target, failing, config.show_env))
        verdict = precheck.evaluate(target, failing)
        fixes = tuple((f.rule, f.fix) for f in verdict.findings if f.severity == precheck.FAIL and f.fix)
    kinds = KINDS_FOR[config.rollback_on]
    return Decision(
        RESEND_REPORT,
        "rollback",  # what the card says it did: the rollback, not the redelivery that rebuilt it
        f"rolled back {record.from_revision} → {record.to_revision}",
        failing=record.from_revision,
        target=record.to_revision,
        breaking=record.breaking or record.from_revision,
        breaking_created=str((breaking or {}).get("createTime", "")),
        breaking_creator=str((breaking or {}).get("creator", "")),
        changes=changes,
        trigger_changes=tuple(c for c in changes if c.kind in kinds),
        fixes=fixes,
        record=record,
        serving=serving,
        split=dict(record.after) or {record.to_revision: 100},
    )


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


def _annotations(service: dict) -> dict[str, str]:
    annotations = service.get("annotations")
    return annotations if isinstance(annotations, dict) else {}


def _show_split(serving: dict[str, int]) -> str:
    return ", ".join(f"{name} {percent}%" for name, percent in serving.items() if percent > 0)


def _describe(changes: tuple[Change, ...], new_side: bool = False) -> str:
    show: Callable[[Change], str] = (lambda c: f"{c.field} {c.new}") if new_side else str
    text = "; ".join(show(c) for c in changes[:3])
    return text + (f" (+{len(changes) - 3} more)" if len(changes) > 3 else "")
