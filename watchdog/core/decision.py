"""The decision: alert + service + revisions + config + clock in, a :class:`Decision` out.

Pure code: no client, no clock, no environment. A rollback must never make an
outage worse, so every rule below that cannot show a safe move reports
instead. Rules, in the order they win:

1. ``ledger_unreadable``: the watchdog's annotations cannot be read. Report;
   traffic and the annotations are left alone.
2. ``already_handled``: the ledger records a rollback for this incident.
   Reported: nothing at all (duplicates are silent). Not reported and younger
   than :data:`REPORT_LEASE`: ``in_progress`` (the caller asks Pub/Sub to
   redeliver later). Not reported and older: ``resend_report``.
3. ``already_closed``: the incident was seen ``closed`` before this ``open``
   arrived (out-of-order delivery): nothing.
4. Which revision fails. The alert's ``revision_name`` when it has one.
   Otherwise: ``newest_not_ready`` (the newest revision never became Ready and
   serves nothing, so Cloud Run kept traffic where it was: nothing to move),
   ``no_traffic``, the only serving revision, or the one serving revision whose
   trigger value differs from all the others (a canary); several candidates is
   ``ambiguous_revision``.
5. ``not_serving``: the failing revision gets no traffic: nothing to do.
6. ``rollback_did_not_fix``: the failing revision is one the watchdog rolled
   back *to*: a loud report, never a further automatic rollback.
7. ``revision_not_found``, ``no_matching_change``: nothing in the history to
   blame; report the diff.
8. ``revert``: the latest change restored the value the service had before the
   previous change (a human's revert). A revert is not a cause: report the
   history, never roll back onto the value just reverted away from.
9. ``no_known_good_target``: no revision can be shown to be good.
10. Guards that turn a rollback into a report, first match wins:
    ``out_of_scope``, ``project_not_allowed``, ``stale_alert``, ``paused``,
    ``cooldown``, ``dry_run``.
11. Otherwise ``rollback``.

Any report (rules 4–10) for an incident already reported once is
``already_reported``: one message per incident, not one per delivery.

Definitions. Only **Ready** revisions count as a cause or a baseline; a
revision that never became Ready is skipped. A revision's *trigger value* is
its configuration in the fields ``WATCHDOG_ROLLBACK_ON`` names; two revisions
"have the same value" when :func:`watchdog.core.changes.template_changes` finds no
change of those kinds between them. The **breaking** revision is the oldest
Ready revision after the target that has the failing revision's value (a
deleted one, if the history shows it, is named as such).

The target, first that applies:

- revisions serving now, other than the failing one, Ready and without the
  failing value: they keep their share and take the failing share in
  proportion (a two-way canary: 100% to the stable side). "serving 90% now";
- the newest Ready revision before the breaking one that is not a 0%
  tag-only preview: "served before the breaking deploy";
- a revision the ledger shows serving (an earlier rollback's target, or a
  share in the traffic before one);

never a revision with the failing value, never one the watchdog rolled away
from before. Every traffic entry with a tag stays (tags at 0%, a tag on a
target carries its share), as ``gcloud run services update-traffic`` does.

The change may be arbitrarily old (in the incident it surfaced 37 hours after
the deploy), so the walk through history has no age limit. When the
revisions read so far end before the decision is known, the answer is
``need_more_revisions`` and the caller reads the next page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from watchdog.config import Config
from watchdog.core import ledger, precheck
from watchdog.core.changes import Change, template_changes
from watchdog.core.intake import Alert

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

REVISION_TYPE = "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"
LATEST_TYPE = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"

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
    history = _History(revisions, KINDS_FOR[config.rollback_on], {} if memo is None else memo, history_complete)
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


class _History:
    """The revisions read so far (newest first), with the comparisons the rules need, memoized."""

    def __init__(self, revisions: list[dict], kinds: set[str], memo: dict, complete: bool) -> None:
        self.revisions = revisions
        self.names = [short_name(r.get("name", "")) for r in revisions]
        self.index = {name: i for i, name in reversed(list(enumerate(self.names)))}
        self.kinds = kinds
        self.memo = memo
        self.complete = complete

    def get(self, name: str) -> dict | None:
        i = self.index.get(name)
        return None if i is None else self.revisions[i]

    def changes(self, older: dict, newer: dict) -> list[Change]:
        key = (older.get("name"), newer.get("name"))
        if key not in self.memo:
            self.memo[key] = template_changes(older, newer)
        return self.memo[key]

    def same(self, a: dict, b: dict) -> bool:
        """Same trigger value: no change of the configured kinds between them."""
        return not any(c.kind in self.kinds for c in self.changes(a, b))

    def ready_after(self, start: int) -> list[int]:
        """Indexes of Ready revisions older than ``start``."""
        return [k for k in range(start + 1, len(self.revisions)) if is_ready(self.revisions[k])]


def _decide(
    alert: Alert, service: dict, history: _History, memory: ledger.Ledger, config: Config, now: float, serving: dict
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

    # --- the target: known good
    chosen = _target(alert, service, history, memory, serving, failing, fi, breaking_at)
    if isinstance(chosen, Decision):
        return chosen
    split, target, trust, moved_from = chosen
    ti = history.index[target]
    if ti > fi:  # the oldest Ready revision after the target with the failing value
        breaking_at = max(
            k for k in range(fi, ti) if k == fi or (is_ready(revisions[k]) and history.same(revisions[k], failing_rev))
        )
    deleted_at = next(
        (k for k in range(min(ti, len(revisions)) - 1, breaking_at, -1)
         if revisions[k].get("deleteTime") and _was_ready(revisions[k]) and history.same(revisions[k], failing_rev)),
        None,
    )  # fmt: skip
    if deleted_at is not None and ti > fi:
        breaking_at = deleted_at
    changes = tuple(history.changes(revisions[ti], failing_rev))
    trigger = tuple(c for c in changes if c.kind in history.kinds)
    verdict = precheck.evaluate(revisions[ti], failing_rev)  # the same rules (and fixes) as `check`
    fixes = tuple((f.rule, f.fix) for f in verdict.findings if f.severity == precheck.FAIL and f.fix)
    found = {
        "failing": failing,
        "target": target,
        "breaking": names[breaking_at],
        "breaking_created": str(revisions[breaking_at].get("createTime", "")),
        "breaking_deleted": deleted_at is not None and breaking_at == deleted_at,
        "skipped": tuple(n for n in names[fi + 1 : ti] if n not in moved_from) if ti > fi else (),
        "changes": changes,
        "trigger_changes": trigger,
        "serving": serving,
        "split": split,
        "traffic": tuple(rollback_traffic(service, split)),
        "moved_from": moved_from,
        "trust": trust,
        "fixes": fixes,
        "breaking_creator": str(revisions[breaking_at].get("creator", "")),
        "would_roll_back": True,
    }
    why = f"{names[breaking_at]} changed {_describe(trigger)}"
    guard = _guard(alert, config, memory, now)
    if guard:
        reason, sentence = guard
        return Decision(REPORT, reason, f"{why}; would roll back to {target}, but {sentence}", **found)
    return Decision(ROLLBACK, "rollback", f"{why}; rolling back to {target} ({trust})", **found)


def rebuilt(record: ledger.Record, revisions: list[dict], config: Config, serving: dict[str, int]) -> Decision:
    """The decision of a rollback already made, from its ledger record and the revisions (a re-sent report)."""
    by_name = {short_name(r.get("name", "")): r for r in revisions}
    failing, target = by_name.get(record.from_revision), by_name.get(record.to_revision)
    breaking = by_name.get(record.breaking) or failing
    changes: tuple[Change, ...] = ()
    fixes: tuple[tuple[str, str], ...] = ()
    if failing is not None and target is not None:
        changes = tuple(template_changes(target, failing))
        verdict = precheck.evaluate(target, failing)
        fixes = tuple((f.rule, f.fix) for f in verdict.findings if f.severity == precheck.FAIL and f.fix)
    kinds = KINDS_FOR[config.rollback_on]
    return Decision(
        RESEND_REPORT,
        "already_handled",
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


def _failing_from_traffic(service: dict, history: _History, serving: dict[str, int]) -> str | Decision:
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


def _target(
    alert: Alert,
    service: dict,
    history: _History,
    memory: ledger.Ledger,
    serving: dict[str, int],
    failing: str,
    fi: int,
    breaking_at: int,
) -> tuple[dict[str, int], str, str, tuple[str, ...]] | Decision:
    """(split after the rollback, primary target, why it is trusted, revisions moved off), or a report."""
    failing_rev = history.revisions[fi]
    away = memory.rolled_away

    def good(name: str) -> bool:
        revision = history.get(name)
        return (
            revision is not None
            and name != failing
            and name not in away
            and is_ready(revision)
            and not history.same(revision, failing_rev)
        )

    bad = tuple(
        n
        for n in serving
        if serving[n] > 0 and (n == failing or (history.get(n) and history.same(history.get(n), failing_rev)))
    )
    keep = {n: p for n, p in serving.items() if p > 0 and n not in bad}
    candidates = [n for n in keep if good(n)]
    if candidates:
        split = _spread(keep, candidates, sum(serving[n] for n in bad))
        target = max(candidates, key=lambda n: (split[n], str(history.get(n).get("createTime", ""))))
        return split, target, f"serving {serving[target]}% now", bad

    tag_only = tagged_revisions(service) - {n for n, p in serving.items() if p > 0}
    for k in history.ready_after(breaking_at):
        name = history.names[k]
        if name in tag_only and name not in memory.rolled_to:
            continue  # a --no-traffic preview never served: the one before it did
        if good(name):
            return _pin(keep, name, bad), name, "served before the breaking deploy", bad
        break
    evidence = _ledger_evidence(memory)
    shown = sorted(
        (history.index[n] for n in evidence if n in history.index and history.index[n] > fi and good(n)),
    )
    if shown:
        name = history.names[shown[0]]
        return _pin(keep, name, bad), name, evidence[name], bad
    if not history.complete and any(n not in history.index for n in evidence):
        return Decision(
            NEED_MORE, "need_more_revisions", "looking for a revision known to have served", failing=failing
        )
    return Decision(
        REPORT,
        "no_known_good_target",
        f"{history.names[breaking_at]} changed the {alert.service.service} configuration, but no Ready revision "
        "without that change can be shown to have served (none serves now, the one before the change is a preview, "
        "or the watchdog rolled away from it before): traffic left alone",
        failing=failing,
        breaking=history.names[breaking_at],
        breaking_created=str(history.revisions[breaking_at].get("createTime", "")),
        serving=serving,
    )


def _ledger_evidence(memory: ledger.Ledger) -> dict[str, str]:
    """Revisions the ledger shows serving, with the words that say so."""
    found: dict[str, str] = {}
    for record in sorted(memory.records, key=lambda r: r.at, reverse=True):
        found.setdefault(record.to_revision, f"served after the watchdog's rollback for incident {record.incident}")
        for revision, percent, _tag in record.before:
            if percent > 0 and revision != "LATEST":
                found.setdefault(revision, f"served before the watchdog's rollback for incident {record.incident}")
    return found


def _spread(keep: dict[str, int], takers: list[str], share: int) -> dict[str, int]:
    """``keep`` with ``share`` percent added to ``takers`` in proportion to what they serve (sums to 100)."""
    base = sum(keep[n] for n in takers)
    exact = {n: keep[n] + share * keep[n] / base for n in takers}
    split = dict(keep)
    for n in takers:
        split[n] = int(exact[n])
    leftover = 100 - sum(split.values())
    for n in sorted(takers, key=lambda n: exact[n] - int(exact[n]), reverse=True)[:leftover]:
        split[n] += 1
    return split


def _pin(keep: dict[str, int], target: str, bad: tuple[str, ...]) -> dict[str, int]:
    """The share of ``bad`` revisions moves to ``target``; other serving revisions keep theirs."""
    split = dict(keep)
    split[target] = split.get(target, 0) + 100 - sum(keep.values())
    return split


def rollback_traffic(service: dict, split: dict[str, int]) -> list[dict]:
    """The complete traffic list for ``split`` (revision → percent), keeping every tagged entry.

    An update's ``traffic`` replaces the whole list, tags included, so every
    tagged entry is sent back: at 0%, or carrying its revision's new share when
    the revision takes traffic (as ``gcloud run services update-traffic
    --to-revisions`` keeps tags). Untagged entries are replaced by explicit
    revision entries: a rollback pins traffic, it never follows LATEST.
    """
    entries: list[dict] = []
    placed: set[str] = set()
    for entry in _spec_traffic(service):
        tag = entry.get("tag")
        if not tag:
            continue
        revision = short_name(entry.get("revision", ""))
        if revision and revision in split and revision not in placed and split[revision] > 0:
            entries.append({"type": REVISION_TYPE, "revision": revision, "percent": split[revision], "tag": tag})
            placed.add(revision)
        elif revision:
            entries.append({"type": REVISION_TYPE, "revision": revision, "percent": 0, "tag": tag})
        else:
            entries.append({"type": LATEST_TYPE, "percent": 0, "tag": tag})
    for revision, percent in sorted(split.items(), key=lambda kv: -kv[1]):
        if percent > 0 and revision not in placed:
            entries.append({"type": REVISION_TYPE, "revision": revision, "percent": percent})
    return entries


def tagged_revisions(service: dict) -> set[str]:
    """Revisions that carry a traffic tag (at any percent)."""
    found = set()
    for entry in _spec_traffic(service) + _list(service.get("trafficStatuses")):
        if isinstance(entry, dict) and entry.get("tag") and entry.get("revision"):
            found.add(short_name(entry["revision"]))
    return found


def traffic_before(service: dict) -> tuple[tuple[str, int, str], ...]:
    """The service's traffic entries as the ledger keeps them: (revision or LATEST, percent, tag)."""
    out = []
    for entry in _spec_traffic(service):
        revision = short_name(entry.get("revision", "")) or "LATEST"
        out.append((revision, _percent(entry), str(entry.get("tag", ""))))
    return tuple(out)


def _guard(alert: Alert, config: Config, memory: ledger.Ledger, now: float) -> tuple[str, str] | None:
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
            split[short_name(revision)] = split.get(short_name(revision), 0) + _percent(entry)
    if not split and latest_ready:
        split[latest_ready] = 100  # no traffic block: 100% to the latest Ready revision
    return split


def is_ready(revision: dict) -> bool:
    return not revision.get("deleteTime") and _was_ready(revision)


def _was_ready(revision: dict) -> bool:
    return any(
        isinstance(c, dict) and c.get("type") == "Ready" and c.get("state") == "CONDITION_SUCCEEDED"
        for c in _list(revision.get("conditions"))
    )


def short_name(name: str) -> str:
    return str(name).rsplit("/", 1)[-1]


def _spec_traffic(service: dict) -> list[dict]:
    return [e for e in _list(service.get("traffic")) if isinstance(e, dict)]


def _percent(entry: dict) -> int:
    try:
        return int(entry.get("percent") or 0)
    except (TypeError, ValueError):
        return 0


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _annotations(service: dict) -> dict[str, str]:
    annotations = service.get("annotations")
    return annotations if isinstance(annotations, dict) else {}


def _show_split(serving: dict[str, int]) -> str:
    return ", ".join(f"{name} {percent}%" for name, percent in serving.items() if percent > 0)


def _describe(changes: tuple[Change, ...], new_side: bool = False) -> str:
    show: Callable[[Change], str] = (lambda c: f"{c.field} {c.new}") if new_side else str
    text = "; ".join(show(c) for c in changes[:3])
    return text + (f" (+{len(changes) - 3} more)" if len(changes) > 3 else "")
