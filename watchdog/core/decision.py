"""The decision: alert + service + revisions + config + clock in, a :class:`Decision` out.

Pure code: no client, no clock, no environment. A rollback must never make an
outage worse, so every rule below that cannot show a safe move reports
instead. Rules, in the order they win, each a function of its own:

1. ``ledger_unreadable``: the watchdog's annotations cannot be read. Report;
   traffic and the annotations are left alone. (:func:`decide`)
2. ``already_handled``: the ledger records a rollback for this incident.
   Reported: nothing at all (duplicates are silent). Not reported and younger
   than :data:`REPORT_LEASE`: ``in_progress`` (the caller asks Pub/Sub to
   redeliver later). Not reported and older: ``resend_report``.
   (:func:`_already_handled`)
3. ``already_closed``: the incident was seen ``closed`` before this ``open``
   arrived (out-of-order delivery): nothing. (:func:`decide`)
4. Which revision fails. The alert's ``revision_name`` when it has one.
   Otherwise: ``newest_not_ready`` (the newest revision never became Ready and
   serves nothing, so Cloud Run kept traffic where it was: nothing to move),
   ``no_traffic``, the only serving revision, or the one serving revision whose
   trigger value differs from all the others (a canary); several candidates is
   ``ambiguous_revision``. (:func:`_failing_from_traffic`)
5. ``not_serving``: the failing revision gets no traffic: nothing to do. (:func:`_not_serving`)
6. ``rollback_did_not_fix``: the failing revision is one the watchdog put
   traffic on (a rollback target or a field-revert revision): a loud report,
   never a further automatic rollback. (:func:`_did_not_fix`)
7. ``revision_not_found``, ``no_matching_change``: nothing in the history to
   blame; report the diff. A deploy-time hold names the revision that served
   before the deploy: the deploy is the change, that revision the baseline,
   and rule 8 does not apply (what served had settled). (:func:`_latest_change`)
8. ``revert``: the latest change restored a value the service had before the
   previous change, *and* that value was the service's established one: the
   value it replaced held for less than ``WATCHDOG_MAX_CHANGE_AGE_HOURS`` (a
   value the service ran on for longer is itself established), the restored
   value held at least as long as it, and the watchdog never rolled the
   restored value away. A revert is not a cause: report, never roll back onto
   the value just reverted away from. Otherwise the change is a
   **re-introduction** (a recurrence: someone redeployed with the old flag)
   and the re-introducing revision is the breaking one. A tie in how long the
   two values held is read as a revert: without evidence either way, no
   automatic action; a missing creation time likewise. (:func:`_revert`)
9. ``change_too_old``: the breaking revision was created more than
   ``WATCHDOG_MAX_CHANGE_AGE_HOURS`` before the alert. Deploys made on top of
   it served; blaming it now would throw them away. Reported as a suspect (its
   age, how many deploys kept its value, the manual and field-revert commands);
   traffic untouched. The same rule keeps a human's pin: an alert or drill that
   names no revision never moves traffic to a revision older than the change
   when the change lies outside the window. (:func:`_too_old`)
10. ``no_known_good_target``: no revision can be shown to be good. The rule
    that picks the rollback target and the split after it:
    :func:`watchdog.core.rollback_target.choose`.
11. Guards that turn a rollback into a report, first match wins:
    ``out_of_scope``, ``project_not_allowed``, ``not_cloud_run_incident``,
    ``policy_not_allowed``, ``stale_alert``, ``paused``, ``undone``,
    ``cooldown``, ``dry_run``. (:func:`watchdog.core.guards.holding_back`)
12. Otherwise ``rollback``, with its remedy: a pin, or a pin followed by a
    field revert (:func:`watchdog.core.field_revert.remedy`).

Any report (rules 4–11) for an incident already reported once is
``already_reported``: one message per incident, not one per delivery.
(:func:`decide`)

Definitions. Only **Ready** revisions count as a cause or a baseline; a
revision that never became Ready is skipped (:func:`watchdog.core.traffic.is_ready`).
A revision's *trigger value* is its configuration in the fields
``WATCHDOG_ROLLBACK_ON`` names; two revisions "have the same value" when
:func:`watchdog.core.changes.template_changes` finds no change of those kinds
between them (:class:`watchdog.core.history.History`). A *run* is a stretch of
consecutive Ready revisions with the same value; how long a value *held* is
the time from its run's first revision to the next run's first revision. The
**breaking** revision is the oldest Ready revision after the target that has
the failing revision's value (a deleted one, if the history shows it, is named
as such; :func:`watchdog.core.rollback_target.breaking`).

The target, first that applies: the revisions serving now without the failing
value (they take the failing share in proportion); else the newest Ready
revision before the breaking one that is not a 0% tag-only preview; else a
revision the ledger shows serving. Never one with the failing value, never one
the watchdog rolled away from before; every tagged traffic entry stays
(:func:`watchdog.core.traffic.rollback_traffic`).

History is read only as far as the decision needs: when the revisions read so
far end before the decision is known, the answer is ``need_more_revisions``
and the caller reads the next page. Rule 8 needs the runs up to the newest
revision of the value before the latest change, and that value's run only
while the value after it held for less than the window and longer than the
run read so far.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from watchdog.config import Config
from watchdog.core import field_revert, guards, ledger, precheck, rollback_target
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
    remedy: str = ""  # field_revert.PIN or field_revert.FIELD_REVERT (a rollback, or what a guard held back)
    offer_revert: bool = False  # a pin whose card offers the field revert
    taken_out: tuple[tuple[str, str], ...] = ()  # (revision, images) the pin takes out of service, newest first
    change_age: float | None = None  # seconds from the breaking revision's creation to the alert
    followed: int = 0  # Ready revisions after the breaking one that kept its value (change_too_old)

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
    facts = _Facts(alert, service, history, memory, config, now, serving)
    decided = _decide(facts)
    if decided.action == REPORT and alert.incident_id in memory.noticed:
        return replace(decided, action=NOTHING, reason="already_reported", detail=f"already reported: {decided.detail}")
    return decided


def _already_handled(alert: Alert, record: ledger.Record, config: Config, now: float, serving: dict) -> Decision:
    """Rule 2: the ledger records a rollback for this incident."""
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


@dataclass(frozen=True)
class _Facts:
    """What every rule reads."""

    alert: Alert
    service: dict
    history: History
    memory: ledger.Ledger
    config: Config
    now: float
    serving: dict[str, int]

    def more(self, why: str, failing: str = "") -> Decision:
        return Decision(NEED_MORE, "need_more_revisions", why, failing=failing)

    def report(self, reason: str, detail: str, **found) -> Decision:
        return Decision(REPORT, reason, detail, serving=self.serving, **found)


@dataclass(frozen=True)
class _Change:
    """The latest change behind the failing revision (index ``fi``), as the walk back found it.

    ``breaking`` is the oldest Ready revision with the failing value before another value
    (``boundary``, the newest revision of the value it replaced) shows up."""

    fi: int
    breaking: int
    boundary: int
    hold: bool = False  # a deploy-time hold: the deploy is the change, ``boundary`` what served before it


def _decide(facts: _Facts) -> Decision:
    """Rules 4 to 12, in order; each returns a decision when it settles the case."""
    failing = facts.alert.revision or _failing_from_traffic(facts)
    if isinstance(failing, Decision):
        return failing  # rule 4
    settled = _not_serving(facts, failing) or _did_not_fix(facts, failing)  # rules 5, 6
    if settled:
        return settled
    change = _latest_change(facts, failing)  # rule 7
    if isinstance(change, Decision):
        return change
    settled = None if change.hold else _revert(facts, change)  # rule 8
    if settled:
        return settled
    chosen = rollback_target.choose(  # rule 10's target, needed by rule 9's report too
        facts.service,
        facts.history,
        facts.memory,
        facts.serving,
        failing,
        change.fi,
        change.breaking,
        prefer=facts.history.names[change.boundary] if change.hold else "",
    )
    if isinstance(chosen, rollback_target.NoTarget) and chosen.need_more:
        return facts.more("looking for a revision known to have served", failing)
    found = _found(facts, change, chosen)
    settled = _too_old(facts, change, chosen, found)  # rule 9
    if settled:
        return settled
    if isinstance(chosen, rollback_target.NoTarget):  # rule 10
        names, revisions = facts.history.names, facts.history.revisions
        return facts.report(
            "no_known_good_target",
            f"{names[change.breaking]} changed the {facts.alert.service.service} configuration, but no Ready "
            "revision without that change can be shown to have served (none serves now, the one before the change "
            "is a preview, or the watchdog rolled away from it before): traffic left alone",
            failing=failing,
            breaking=names[change.breaking],
            breaking_created=str(revisions[change.breaking].get("createTime", "")),
        )
    why = f"{found['breaking']} changed {_describe(found['trigger_changes'])}"
    latest = short_name(facts.service.get("latestCreatedRevision", ""))
    held = guards.holding_back(facts.alert, facts.config, facts.memory, facts.now, failing, latest)  # rule 11
    if held:
        reason, sentence = held
        return Decision(REPORT, reason, f"{why}; would roll back to {chosen.revision}, but {sentence}", **found)
    return Decision(ROLLBACK, "rollback", f"{why}; rolling back to {chosen.revision} ({chosen.trust})", **found)


def _not_serving(facts: _Facts, failing: str) -> Decision | None:
    """Rule 5: a revision that serves nothing needs no rollback."""
    if facts.serving.get(failing, 0) > 0:
        return None
    return Decision(
        NOTHING,
        "not_serving",
        f"revision {failing} serves no traffic (already rolled back, a tag-only preview, or never became Ready)",
        failing=failing,
        serving=facts.serving,
    )


def _did_not_fix(facts: _Facts, failing: str) -> Decision | None:
    """Rule 6: the alert is about a revision the watchdog put traffic on: someone must look, loudly."""
    earlier = facts.memory.rolled_to.get(failing)
    if earlier is None:
        return None
    return facts.report(
        "rollback_did_not_fix",
        f"the watchdog rolled {facts.alert.service.service} back to {failing} for incident {earlier.incident}, "
        f"and the alert is now about {failing}: that rollback did not fix it. No further automatic rollback; "
        "someone needs to look now",
        failing=failing,
        loud=True,
    )


def _latest_change(facts: _Facts, failing: str) -> _Change | Decision:
    """Rule 7: walk back over Ready revisions with the failing value to the first that differs."""
    history = facts.history
    fi = history.index.get(failing)
    if fi is None:
        if not history.complete:
            return facts.more(f"looking for revision {failing}", failing)
        return facts.report(
            "revision_not_found", f"revision {failing} is not in the service's history", failing=failing
        )
    failing_rev = history.revisions[fi]
    before = history.index.get(facts.alert.served_before, -1)
    if before > fi and is_ready(history.revisions[before]) and not history.same(history.revisions[before], failing_rev):
        return _Change(fi, fi, before, hold=True)
    breaking, boundary = fi, None
    for k in history.ready_after(fi):
        if history.same(history.revisions[k], failing_rev):
            breaking = k
        else:
            boundary = k
            break
    if boundary is not None:
        return _Change(fi, breaking, boundary)
    if not history.complete:
        return facts.more("no matching change yet", failing)
    older = history.ready_after(fi)
    diff = tuple(history.changes(history.revisions[older[0]], failing_rev)) if older else ()
    return facts.report(
        "no_matching_change",
        f"no {facts.config.rollback_on} change in the history of {failing}; traffic left alone",
        failing=failing,
        changes=diff,
    )


def _revert(facts: _Facts, change: _Change) -> Decision | None:
    """Rule 8: a harmless revert is reported; a re-introduction falls through (its revision is the breaking one).

    The value before the boundary's run is compared with the failing value; when they are the
    same, the latest change restored it. It was the established value only if the value that
    replaced it held for less than the window, the restored value held at least as long, and the
    watchdog's ledger does not show it rolled the restored value away (a revision with it in
    ``away`` or in a record's ``from``, among those read).
    """
    history, revisions, names = facts.history, facts.history.revisions, facts.history.names
    failing_rev = revisions[change.fi]
    boundary_rev = revisions[change.boundary]
    replaced_first, restored_newest = change.boundary, None
    for k in history.ready_after(change.boundary):
        if history.same(revisions[k], boundary_rev):
            replaced_first = k
        else:
            restored_newest = k
            break
    if restored_newest is None:
        if not history.complete:
            return facts.more("checking whether the latest change was a revert", names[change.fi])
        return None  # the value before the change is the service's first: nothing was restored
    if not history.same(revisions[restored_newest], failing_rev):
        return None  # a third value: a change, not a revert
    if _rolled_away(facts, failing_rev):
        return None  # the watchdog rolled this value away before: its return is a recurrence
    replaced_held = _held(history, change.breaking, replaced_first)
    if replaced_held is not None and replaced_held >= facts.config.max_change_age_hours * 3600:
        return None  # the service ran on the replaced value for longer than the window: that one had settled
    restored_held = _restored_held(history, replaced_first, restored_newest, replaced_held)
    if restored_held is None:
        return facts.more("checking how long the restored value held", names[change.fi])
    if replaced_held is not None and restored_held < replaced_held:
        return None  # the restored value held for less time than what replaced it: a re-introduction
    latest = tuple(c for c in history.changes(boundary_rev, revisions[change.breaking]) if c.kind in history.kinds)
    return facts.report(
        "revert",
        f"{names[change.breaking]} restored {_describe(latest, new_side=True)}, which {names[restored_newest]} had "
        f"before {names[change.boundary]} changed it: a revert of a value that had not settled is not treated "
        f"as the cause, and rolling back would put {names[change.boundary]}'s configuration back. Traffic left alone",
        failing=names[change.fi],
        breaking=names[change.breaking],
        breaking_created=str(revisions[change.breaking].get("createTime", "")),
        trigger_changes=latest,
        changes=tuple(history.changes(boundary_rev, failing_rev)),
    )


def _rolled_away(facts: _Facts, failing_rev: dict) -> bool:
    """The ledger shows the watchdog moved traffic off a revision with the failing value (among those read)."""
    history = facts.history
    return any(
        (revision := history.get(name)) is not None and history.same(revision, failing_rev)
        for name in facts.memory.rolled_away
    )


def _held(history: History, newer_first: int, older_first: int) -> float | None:
    """Seconds from the revision at ``older_first`` to the one at ``newer_first``; None when a time is unknown."""
    newer, older = history.created(newer_first), history.created(older_first)
    return None if newer is None or older is None else newer - older


def _restored_held(history: History, replaced_first: int, restored_newest: int, enough: float | None) -> float | None:
    """How long the restored value held before it was replaced, read only until it exceeds ``enough``.

    Walks the restored value's run back from its newest revision. None when the pages read so far
    end before the answer is known; with a complete history, how long the run read held.
    """
    revisions, restored_rev = history.revisions, history.revisions[restored_newest]
    held = 0.0
    for k in [restored_newest, *history.ready_after(restored_newest)]:
        if not history.same(revisions[k], restored_rev):
            return held
        since = _held(history, replaced_first, k)
        if since is None or enough is None:
            return math.inf  # no times to compare: read as established (no automatic action)
        held = since
        if held >= enough:
            return held
    return held if history.complete else None


def _too_old(facts: _Facts, change: _Change, chosen, found: dict) -> Decision | None:
    """Rule 9: a change older than the window is a suspect to report, never a rollback."""
    age = found["change_age"]
    if age is not None and age <= facts.config.max_change_age_hours * 3600:
        return None
    breaking_at = facts.history.index.get(found["breaking"], change.breaking)
    followed = sum(1 for k in range(change.fi, breaking_at) if is_ready(facts.history.revisions[k]))
    how_old = "of unknown age" if age is None else f"{_days(age)} before the alert"
    detail = (
        f"{found['breaking']} changed {_describe(found['trigger_changes'])} {how_old}, and {followed} deploy(s) "
        f"since kept that value: beyond WATCHDOG_MAX_CHANGE_AGE_HOURS ({facts.config.max_change_age_hours:g} h) "
        "it is a suspect, not a cause to act on. Traffic left alone"
    )
    return Decision(REPORT, "change_too_old", detail, **{**found, "followed": followed, "would_roll_back": False})


def _found(facts: _Facts, change: _Change, chosen) -> dict:
    """What the report or the rollback says about the change and the target (``chosen`` may be NoTarget)."""
    history, alert = facts.history, facts.alert
    revisions, names = history.revisions, history.names
    failing_rev = revisions[change.fi]
    breaking_at, deleted = change.breaking, False
    target, split, moved_from, trust, ti = "", {}, (), "", None
    if isinstance(chosen, rollback_target.Target):
        target, split, moved_from, trust = chosen.revision, chosen.split, chosen.moved_from, chosen.trust
        ti = history.index[target]
        if not change.hold:  # a hold's change is the deploy itself, whatever the history between
            breaking_at, deleted = rollback_target.breaking(history, change.fi, ti, change.breaking)
    reference = revisions[ti] if ti is not None else revisions[change.boundary]
    changes = tuple(history.changes(reference, failing_rev))
    created = history.created(breaking_at)
    moment = alert.started_at or facts.now
    found = {
        "failing": names[change.fi],
        "target": target,
        "breaking": names[breaking_at],
        "breaking_created": str(revisions[breaking_at].get("createTime", "")),
        "breaking_deleted": deleted,
        "changes": changes,
        "trigger_changes": tuple(c for c in changes if c.kind in history.kinds),
        "serving": facts.serving,
        "breaking_creator": str(revisions[breaking_at].get("creator", "")),
        "change_age": None if created is None else max(0.0, moment - created),
    }
    if ti is None:
        return found
    verdict = precheck.evaluate(revisions[ti], failing_rev)  # the same rules (and fixes) as `check`
    remedy = field_revert.remedy(
        facts.config.field_revert, facts.config.rollback_on, failing_rev, revisions[ti], split, facts.serving
    )
    return {
        **found,
        "skipped": tuple(n for n in names[change.fi + 1 : ti] if n not in moved_from) if ti > change.fi else (),
        "split": split,
        "traffic": tuple(rollback_traffic(facts.service, split)),
        "moved_from": moved_from,
        "trust": trust,
        "fixes": tuple((f.rule, f.fix) for f in verdict.findings if f.severity == precheck.FAIL and f.fix),
        "would_roll_back": True,
        "remedy": remedy.kind,
        "offer_revert": remedy.offer,
        "taken_out": field_revert.taken_out(revisions, names[change.fi], names[breaking_at]),
    }


def _failing_from_traffic(facts: _Facts) -> str | Decision:
    """Rule 4: the failing revision of an alert that names none, or the decision that there is no safe answer."""
    service, history, serving = facts.service, facts.history, facts.serving
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
    offer = False
    if failing is not None and target is not None:
        changes = tuple(template_changes(target, failing, config.show_env))
        verdict = precheck.evaluate(target, failing)
        fixes = tuple((f.rule, f.fix) for f in verdict.findings if f.severity == precheck.FAIL and f.fix)
        before = {r: p for r, p, _tag in record.before if r != "LATEST"}  # what served before the rollback
        offer = (
            not record.revert
            and field_revert.remedy(
                config.field_revert, config.rollback_on, failing, target, {record.to_revision: 100}, before
            ).offer
        )
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
        remedy=field_revert.FIELD_REVERT if record.revert else field_revert.PIN,
        offer_revert=offer,
        taken_out=field_revert.taken_out(revisions, record.from_revision, record.breaking or record.from_revision),
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


def _days(seconds: float) -> str:
    return f"{seconds / 86400:.0f} days" if seconds >= 2 * 86400 else f"{seconds / 3600:.0f} h"


def _describe(changes: tuple[Change, ...], new_side: bool = False) -> str:
    show: Callable[[Change], str] = (lambda c: f"{c.field} {c.new}") if new_side else str
    text = "; ".join(show(c) for c in changes[:3])
    return text + (f" (+{len(changes) - 3} more)" if len(changes) > 3 else "")
