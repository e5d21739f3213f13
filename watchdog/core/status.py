"""``rollback-watchdog status``: what the watchdog holds, per watched service, and what needs a human.

:func:`assess` is pure: the service and its first page of revisions (v2 REST JSON), the
configuration and the time in, a :class:`Status` out. Reading them (one concurrent round trip per
service: the service ∥ its newest revisions) is ``gather`` in watchdog/tools/watched.py. ``doctor``
calls the same two functions, so both tools name the same things.

Needs a human (exit code 1), each a line in ``needs_human``:

* ``paused``: paused for more than a day, or since an unknown time (a pause set before the
  ``rollback-watchdog/paused-by`` annotation existed, or by hand);
* ``pinned``: the watchdog pinned the traffic more than a day ago (new deploys get 0% until
  someone rolls forward);
* ``escalated``: the newest rollback did not fix the service;
* ``unverified``: the newest rollback has no verdict although verification should have
  decided by now (its quiet time, the ingest delay and 30 minutes of ticks have passed);
* ``serving again``: a revision the newest rollback moved traffic off serves again (an undo,
  a human's move), whatever the verdict: the watchdog rolled it away because it failed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime

from watchdog.config import Config, ServiceRef
from watchdog.core import ledger
from watchdog.core import verification as verify
from watchdog.core.traffic import short_name, traffic_split

DAY = 86400.0
SHOWN_ROLLBACKS = 5
VERIFY_SLACK = 1800.0  # ticks get 30 minutes past the earliest verdict before "unverified" needs a human


@dataclass(frozen=True)
class Rollback:
    incident: str
    from_revision: str
    to_revision: str
    at: float
    reported: bool
    outcome: str  # verifying, recovered, escalated, undone, unverified
    why: str = ""
    drill: bool = False
    undone_by: str = ""  # who undid it (the card's button or `rollback-watchdog undo`)
    undone_at: float | None = None
    field_revert: str = ""  # the field-revert revision, with its state: "R (serving)"


@dataclass(frozen=True)
class Status:
    service: str
    readable: bool = True
    error: str = ""
    paused: bool = False
    paused_by: str = ""
    paused_at: float | None = None
    paused_reason: str = ""
    paused_everywhere: bool = False  # WATCHDOG_PAUSED
    pinned: bool = False
    pinned_to: str = ""
    pinned_since: float | None = None
    waiting: tuple[str, ...] = ()  # newer revisions at 0% behind the pin
    rollbacks: tuple[Rollback, ...] = ()  # newest first
    cooldown_until: float | None = None
    deploy_warnings: int = 0  # deploys warned about, remembered in the ledger
    needs_human: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict:
        data = asdict(self)
        data["waiting"] = list(self.waiting)
        data["needs_human"] = list(self.needs_human)
        data["rollbacks"] = [asdict(r) for r in self.rollbacks]
        return data


def assess(ref: ServiceRef, service: dict, revisions: list[dict], config: Config, now: float) -> Status:
    """Everything ``status`` shows for one service, and what of it needs a human."""
    annotations = service.get("annotations") or {}
    read = ledger.read(annotations)
    if isinstance(read, ledger.Unreadable):
        return Status(str(ref), paused=read.paused, needs_human=(f"the ledger is unreadable: {read.reason}",))
    info = ledger.pause_info(annotations)
    newest = read.newest
    split = traffic_split(service)
    explicit = all("LATEST" not in str(t.get("type", "")) for t in service.get("traffic") or [{}])
    pinned = newest is not None and explicit and split.get(newest.restored) == 100
    waiting: tuple[str, ...] = ()
    if pinned and newest is not None:
        created = {short_name(r.get("name", "")): r.get("createTime", "") for r in revisions}
        target_created = created.get(newest.restored, "")
        waiting = tuple(
            name for name, at in created.items() if target_created and at > target_created and not split.get(name)
        )
    rollbacks = tuple(_rollback(r, now) for r in sorted(read.records, key=lambda r: r.at, reverse=True))
    cooldown = newest.at + config.cooldown_seconds if newest is not None else None
    status = Status(
        str(ref),
        paused=read.paused,
        paused_by=info.get("by", "") if read.paused else "",
        paused_at=info.get("at") if read.paused else None,
        paused_reason=info.get("reason", "") if read.paused else "",
        paused_everywhere=config.paused,
        pinned=pinned,
        pinned_to=newest.restored if pinned and newest else "",
        pinned_since=newest.at if pinned and newest else None,
        waiting=waiting,
        rollbacks=rollbacks[:SHOWN_ROLLBACKS],
        cooldown_until=cooldown if cooldown is not None and cooldown > now else None,
        deploy_warnings=len(read.warned),
    )
    return _with_findings(status, newest, config, now, split)


def _rollback(record: ledger.Record, now: float) -> Rollback:
    closed_after = record.recovered_at is not None and record.recovered_at > (record.verdict_at or 0)
    if record.state and not (record.state == verify.ESCALATED and closed_after):
        outcome = record.state
    elif record.recovered_at is not None:
        outcome = "recovered"
    elif verify.under_verification(record, now):
        outcome = "verifying"
    else:
        outcome = "unverified"
    why = record.why or ("incident closed" if record.recovered_at is not None and not record.state else "")
    undone = [(user, at) for action, user, at, _ts in record.events if action == ledger.UNDO_EVENT]
    if undone:
        outcome = "undone"
    revert = f"{record.revert} ({record.revert_state or 'pending'})" if record.revert else ""
    return Rollback(record.incident, record.from_revision, record.to_revision, record.at, record.reported,
                    outcome, why, record.drill, undone[-1][0] if undone else "", undone[-1][1] if undone else None,
                    revert)  # fmt: skip


def _with_findings(
    status: Status, newest: ledger.Record | None, config: Config, now: float, split: dict[str, int]
) -> Status:
    found = []
    if status.paused:
        if status.paused_at is None:
            found.append("paused since an unknown time (no who/when recorded): resume it or pause again with --reason")
        elif now - status.paused_at > DAY:
            found.append(f"paused for {_age(now - status.paused_at)} by {status.paused_by or 'unknown'}"
                         + (f": {status.paused_reason}" if status.paused_reason else ""))  # fmt: skip
    if status.pinned and status.pinned_since is not None and now - status.pinned_since > DAY:
        found.append(f"traffic pinned to {status.pinned_to} for {_age(now - status.pinned_since)}"
                     + (f"; waiting at 0%: {', '.join(status.waiting)}" if status.waiting else ""))  # fmt: skip
    if newest is not None and status.rollbacks:
        latest = status.rollbacks[0]
        if latest.outcome == verify.ESCALATED:
            found.append(f"rollback for incident {latest.incident} did not fix it ({latest.why or 'escalated'})")
        due = newest.at + config.verify_minutes * 60 + verify.INGEST_DELAY + VERIFY_SLACK
        if latest.outcome == verify.UNVERIFIED or (latest.outcome == "verifying" and now > due):
            found.append(f"rollback for incident {latest.incident} ({_age(now - newest.at)} ago) was never verified")
    if newest is not None and split.get(newest.from_revision, 0) > 0 and not _drill_undone(newest):
        undone = status.rollbacks[0] if status.rollbacks else None
        by = f" (undone by {undone.undone_by} at {_when(undone.undone_at)})" if undone and undone.undone_by else ""
        found.append(f"{newest.from_revision}, which the watchdog rolled away from for incident {newest.incident}, "
                     f"serves {split[newest.from_revision]}% again{by}")  # fmt: skip
    return replace(status, needs_human=tuple(found))


def _drill_undone(record: ledger.Record) -> bool:
    """A drill a human undid ended as drills end: its revision serving again is no finding (the rollback line
    still says who undid it, and when)."""
    return record.drill and any(action == ledger.UNDO_EVENT for action, *_ in record.events)


def exit_code(statuses: Iterable[Status]) -> int:
    """0 all clear, 1 something needs a human, 2 something could not be read (wins: the view is incomplete)."""
    statuses = list(statuses)
    if any(not s.readable for s in statuses):
        return 2
    return 1 if any(s.needs_human for s in statuses) else 0


# --- text ------------------------------------------------------------------------------------


def render_text(statuses: list[Status], now: float) -> str:
    lines = []
    for s in statuses:
        if not s.readable:
            lines.append(f"{s.service}: COULD NOT READ: {s.error}")
            continue
        mark = "NEEDS A HUMAN" if s.needs_human else "ok"
        lines.append(f"{s.service}: {mark}")
        if s.paused_everywhere:
            lines.append("  paused everywhere (WATCHDOG_PAUSED=true)")
        if s.paused:
            when = f"since {_when(s.paused_at)} ({_age(now - s.paused_at)})" if s.paused_at else "since unknown"
            who = f" by {s.paused_by}" if s.paused_by else ""
            lines.append(f"  paused{who} {when}" + (f": {s.paused_reason}" if s.paused_reason else ""))
        if s.pinned and s.pinned_since is not None:
            lines.append(f"  traffic pinned to {s.pinned_to} since {_when(s.pinned_since)} "
                         f"({_age(now - s.pinned_since)})")  # fmt: skip
            if s.waiting:
                lines.append(f"  waiting at 0%: {', '.join(s.waiting)}")
        if s.cooldown_until:
            lines.append(f"  cooldown until {_when(s.cooldown_until)} (in {_age(s.cooldown_until - now)})")
        if s.deploy_warnings:
            lines.append(f"  deploy warnings on record: {s.deploy_warnings}")
        for r in s.rollbacks:
            reported = "reported" if r.reported else "NOT reported"
            why = f" ({r.why})" if r.why else ""
            lines.append(f"  rollback {_when(r.at)} incident {r.incident}: {r.from_revision} → {r.to_revision}, "
                         f"{reported}, {r.outcome}{why}" + (" [drill]" if r.drill else ""))  # fmt: skip
            if r.field_revert:
                lines.append(f"    field revert: {r.field_revert}")
            if r.undone_by:
                lines.append(f"    undone by {r.undone_by} at {_when(r.undone_at)}")
        if not s.rollbacks:
            lines.append("  no rollbacks on record")
        for finding in s.needs_human:
            lines.append(f"  ! {finding}")
    return "\n".join(lines)


def _when(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch or 0, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 2 * DAY:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400} days"
