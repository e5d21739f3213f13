"""The watchdog's memory, kept on the Cloud Run service itself as annotations.

Keeping the record of each rollback on the service (not in a database) means
the record and the traffic change land in one ``UpdateService`` call, guarded
by the same etag: there is no window in which traffic moved but the record
did not. Pub/Sub redeliveries and Monitoring re-notifications read it back and
see that the incident was handled.

Two annotations, both compact JSON:

- ``rollback-watchdog/rollbacks``: the last :data:`KEEP` rollback records;
- ``rollback-watchdog/memory``: what must outlive those records, as short
  lists of names: every revision the watchdog ever rolled away from
  (``away``: it never routes traffic back to one), incidents seen ``closed``
  (an ``open`` that arrives after its ``closed`` changes nothing), and
  incidents already reported without a rollback (``noticed``: one message per
  incident, not one per delivery), deploys already warned about (``warned``),
  the revision that served when each was judged (``baselines``), and deploys
  whose warning a delivery is posting right now (``claims``, with when: one
  warning per deploy across instances, watchdog/flows/deploy_events.py).

A ledger that cannot be read (hand-edited, truncated, wrong types) is
:class:`Unreadable`: the decision then changes no traffic, and nothing here
ever writes over it, because a rewrite would forget what it held.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

ROLLBACKS_KEY = "rollback-watchdog/rollbacks"
MEMORY_KEY = "rollback-watchdog/memory"
PAUSED_KEY = "rollback-watchdog/paused"
# Who paused, when and why (JSON {"by", "at", "reason"}): separate from PAUSED_KEY, whose
# true/yes/1/on every existing reader (and a human with kubectl-style edits) understands.
PAUSE_INFO_KEY = "rollback-watchdog/paused-by"
KEEP = 10  # rollback records kept per service; what they must not forget moves to ``memory``
KEEP_AWAY = 200  # revisions rolled away from (about 30 characters each)
KEEP_INCIDENTS = 50  # closed and noticed incidents, each list
POLICY_CHARS = 120  # of the alert policy's name kept in a record (the card shows it again when restated)
TRUE_VALUES = {"1", "true", "yes", "on"}  # the same words as WATCHDOG_PAUSED
REVERT_PENDING, REVERT_SERVING, REVERT_FAILED = "pending", "serving", "failed"
UNDO_EVENT = "undo_rollback"  # the event a card's Undo or `rollback-watchdog undo` records (core/actions.py)


@dataclass(frozen=True)
class Record:
    """One rollback the watchdog made on this service."""

    incident: str
    from_revision: str
    to_revision: str
    at: float
    alert_at: float | None = None
    reported: bool = False
    thread: str = ""  # Slack channel:ts of the report, for the recovery reply
    recovered_at: float | None = None
    drill: bool = False
    before: tuple = ()  # the traffic entries before the rollback, as [revision or "LATEST", percent, tag]
    after: tuple = ()  # the split the rollback set, as [revision, percent]
    latest: str = ""  # the service's latest created revision when it rolled back (a later deploy changes it)
    events: tuple = ()  # what on-call did from the card: [action, user, at, action_ts]
    breaking: str = ""  # the revision that made the change, so a report re-sent later is as complete
    # Verification (watchdog/core/verification.py); absent in records written before it existed.
    metric: str = ""  # the alert's own metric type, read back for the restored revision
    state: str = ""  # "" under verification, then "recovered", "escalated" or "undone"
    why: str = ""  # the verdict's reason code
    verdict_at: float | None = None  # when the verdict was recorded (before it is posted)
    told_at: float | None = None  # when the verdict was posted
    policy: str = ""  # the alert policy's name (shortened), so a card restated from the record still names it
    # The field revert (watchdog/core/field_revert.py): a new revision with the failing revision's code and the
    # target's trigger values. "pending" while it is created at 0%, "serving" once the pinned share moved to it,
    # "failed" when it never became Ready (traffic stays pinned on ``to_revision``).
    revert: str = ""
    revert_state: str = ""
    revert_at: float | None = None  # when the field revert was started
    # Verification of what the alert measured (watchdog/core/verification.py); absent in older records.
    threshold: float | None = None  # the policy's threshold, when its signal is a percentile of a distribution
    percentile: int | None = None  # that percentile (99 for ALIGN_PERCENTILE_99); None: not a percentile signal
    closed_at: float | None = None  # when the failing revision's incident closed: not evidence about the restored one
    note: str = ""  # an interim verification note claimed for posting (e.g. "no_traffic"), told once
    note_at: float | None = None  # when it was claimed
    note_told_at: float | None = None  # when it was posted

    @property
    def restored(self) -> str:
        """The revision the watchdog put traffic on: the field-revert revision once it serves, else the target."""
        return self.revert if self.revert and self.revert_state == REVERT_SERVING else self.to_revision

    def undone_at(self) -> float | None:
        """When on-call undid this rollback (the newest undo click or command), or None."""
        times = [at for action, _user, at, _ts in self.events if action == UNDO_EVENT]
        return max(times) if times else None


@dataclass(frozen=True)
class Ledger:
    records: tuple[Record, ...] = ()  # oldest first, as written
    away: frozenset[str] = frozenset()
    closed: tuple[str, ...] = ()
    noticed: tuple[str, ...] = ()
    warned: tuple[str, ...] = ()  # deploys already warned about (their DeployEvent keys)
    # "KEY=REVISION": the revision that served when a deploy was first judged, so that a hold decided on a
    # redelivery (after the deploy took the traffic) pins back to it (watchdog/core/sentinel.py)
    baselines: tuple[str, ...] = ()
    paused: bool = False
    pause_value: str = ""
    claims: tuple[str, ...] = ()  # "KEY@EPOCH": a delivery is posting the warning for deploy KEY since EPOCH

    def find(self, incident: str) -> Record | None:
        return next((r for r in self.records if r.incident == incident), None)

    def baseline_of(self, deploy: str) -> str:
        """The revision that served when the deploy ``deploy`` (its key) was first judged; "" if not remembered."""
        return next((entry.split("=", 1)[1] for entry in self.baselines if entry.startswith(deploy + "=")), "")

    def claimed_at(self, deploy: str) -> float | None:
        """When a delivery claimed the warning for the deploy ``deploy`` (its key) and has not posted it yet."""
        for entry in self.claims:
            key, _, at = entry.rpartition("@")
            if key == deploy:
                try:
                    return float(at)
                except ValueError:
                    return None
        return None

    @property
    def newest(self) -> Record | None:
        """The most recent rollback, by time: the order records are kept in says nothing."""
        return max(self.records, key=lambda r: r.at, default=None)

    @property
    def rolled_away(self) -> frozenset[str]:
        return self.away | {r.from_revision for r in self.records}

    @property
    def rolled_to(self) -> dict[str, Record]:
        """Revisions the watchdog put traffic on (targets and field-revert revisions), with their records."""
        found: dict[str, Record] = {}
        for record in sorted(self.records, key=lambda r: r.at):
            found[record.to_revision] = record
            if record.revert and record.revert_state != REVERT_FAILED:
                found[record.revert] = record
        return found


@dataclass(frozen=True)
class Unreadable:
    """The ledger annotations exist but cannot be read; ``reason`` says which and why."""

    reason: str
    paused: bool = field(default=False)


def read(annotations: dict[str, str] | None) -> Ledger | Unreadable:
    annotations = annotations if isinstance(annotations, dict) else {}
    pause_value = str(annotations.get(PAUSED_KEY, "")).strip()
    paused = pause_value.lower() in TRUE_VALUES
    try:
        records = tuple(_from_json(item) for item in _json_list(annotations.get(ROLLBACKS_KEY, ""), ROLLBACKS_KEY))
        memory = _json_object(annotations.get(MEMORY_KEY, ""), MEMORY_KEY)
        away = frozenset(_names(memory.get("away", []), "away"))
        closed = tuple(_names(memory.get("closed", []), "closed"))
        noticed = tuple(_names(memory.get("noticed", []), "noticed"))
        warned = tuple(_names(memory.get("warned", []), "warned"))
        baselines = tuple(_names(memory.get("baselines", []), "baselines"))
        claims = tuple(_names(memory.get("claims", []), "claims"))
    except (TypeError, ValueError, KeyError, RecursionError) as error:
        return Unreadable(str(error)[:200], paused=paused)
    return Ledger(records, away, closed, noticed, warned, baselines, paused, pause_value, claims)


def records(annotations: dict[str, str] | None) -> list[Record]:
    """Records from the service annotations, oldest first as kept; [] when unreadable."""
    ledger = read(annotations)
    return list(ledger.records) if isinstance(ledger, Ledger) else []


def find(annotations: dict[str, str] | None, incident: str) -> Record | None:
    ledger = read(annotations)
    return ledger.find(incident) if isinstance(ledger, Ledger) else None


def paused(annotations: dict[str, str] | None) -> bool:
    """The per-service pause switch: ``true``, ``yes``, ``1``, ``on``, in any case, like WATCHDOG_PAUSED."""
    return str((annotations or {}).get(PAUSED_KEY, "")).strip().lower() in TRUE_VALUES


def pause_info(annotations: dict[str, str] | None) -> dict:
    """Who paused the service, when and why (``by``, ``at``, ``reason``); {} when not recorded or unreadable."""
    raw = (annotations or {}).get(PAUSE_INFO_KEY, "")
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    at = value.get("at")
    return {
        "by": str(value.get("by", ""))[:200],
        "at": float(at) if isinstance(at, (int, float)) and not isinstance(at, bool) and at == at else None,
        "reason": str(value.get("reason", ""))[:500],
    }


def with_record(annotations: dict[str, str] | None, record: Record, away: tuple[str, ...] = ()) -> dict[str, str]:
    """The complete annotation map with ``record`` added or replaced.

    The whole map is sent back because an ``annotations`` update mask replaces
    the map rather than merging it. ``away`` names further revisions the
    rollback moved traffic off (besides ``record.from_revision``).
    """
    ledger = _readable(annotations)
    kept = [r for r in ledger.records if r.incident != record.incident]
    kept.append(record)
    kept.sort(key=lambda r: r.at)
    away_now = ledger.away | {record.from_revision, *away} | {r.from_revision for r in kept[:-KEEP]}
    return _write(annotations, replace(ledger, records=tuple(kept[-KEEP:]), away=frozenset(away_now)))


def updated(annotations: dict[str, str] | None, incident: str, **changes: Any) -> dict[str, str] | None:
    ledger = read(annotations)
    record = ledger.find(incident) if isinstance(ledger, Ledger) else None
    if record is None:
        return None
    return with_record(annotations, replace(record, **changes))


def without(annotations: dict[str, str] | None, incident: str) -> dict[str, str] | None:
    """The annotation map with the record of ``incident`` removed; None if there was none.

    The revision it was to roll away from stays in ``away``: it is the failing one, and
    keeping traffic off it can only err on the safe side.
    """
    ledger = read(annotations)
    if not isinstance(ledger, Ledger) or ledger.find(incident) is None:
        return None
    kept = tuple(r for r in ledger.records if r.incident != incident)
    return _write(annotations, replace(ledger, records=kept))


def with_closed(annotations: dict[str, str] | None, incident: str) -> dict[str, str] | None:
    """Remember that ``incident`` was seen closed; None when already remembered or unreadable."""
    ledger = read(annotations)
    if not isinstance(ledger, Ledger) or incident in ledger.closed:
        return None
    return _write(annotations, replace(ledger, closed=(*ledger.closed, incident)[-KEEP_INCIDENTS:]))


def with_noticed(annotations: dict[str, str] | None, incident: str) -> dict[str, str] | None:
    """Remember that ``incident`` was reported without a rollback; None when already remembered or unreadable."""
    ledger = read(annotations)
    if not isinstance(ledger, Ledger) or incident in ledger.noticed:
        return None
    return _write(annotations, replace(ledger, noticed=(*ledger.noticed, incident)[-KEEP_INCIDENTS:]))


def with_warned(annotations: dict[str, str] | None, key: str, baseline: str = "") -> dict[str, str] | None:
    """Remember that the deploy ``key`` was warned about, and the revision that served then (``baseline``); its
    claim is done. None when already remembered or unreadable."""
    ledger = read(annotations)
    if not isinstance(ledger, Ledger) or key in ledger.warned:
        return None
    ledger = _with_baseline(ledger, key, baseline)
    return _write(
        annotations,
        replace(ledger, warned=(*ledger.warned, key)[-KEEP_INCIDENTS:], claims=_other_claims(ledger, key)),
    )


def with_claim(annotations: dict[str, str] | None, key: str, at: float, baseline: str = "") -> dict[str, str] | None:
    """Claim the warning for the deploy ``key`` at ``at`` (epoch s), remembering the revision that served then;
    None when it was warned about already or the ledger is unreadable. An older claim of the key is replaced."""
    ledger = read(annotations)
    if not isinstance(ledger, Ledger) or key in ledger.warned:
        return None
    ledger = _with_baseline(ledger, key, baseline)
    claims = (*_other_claims(ledger, key), f"{key}@{round(at, 3)}")
    return _write(annotations, replace(ledger, claims=claims[-KEEP_INCIDENTS:]))


def without_claim(annotations: dict[str, str] | None, key: str) -> dict[str, str] | None:
    """The claim of the deploy ``key`` given up (its post failed; a redelivery posts); None when there is none."""
    ledger = read(annotations)
    if not isinstance(ledger, Ledger) or ledger.claimed_at(key) is None:
        return None
    return _write(annotations, replace(ledger, claims=_other_claims(ledger, key)))


def _with_baseline(ledger: Ledger, key: str, baseline: str) -> Ledger:
    if not baseline or ledger.baseline_of(key):
        return ledger
    return replace(ledger, baselines=(*ledger.baselines, f"{key}={baseline}")[-KEEP_INCIDENTS:])


def _other_claims(ledger: Ledger, key: str) -> tuple[str, ...]:
    return tuple(c for c in ledger.claims if c.rpartition("@")[0] != key)


def _readable(annotations: dict[str, str] | None) -> Ledger:
    ledger = read(annotations)
    if isinstance(ledger, Unreadable):
        # callers decide first; reaching here would overwrite what a human must look at
        raise ValueError(f"the ledger is unreadable and must not be overwritten: {ledger.reason}")
    return ledger


def _write(annotations: dict[str, str] | None, ledger: Ledger) -> dict[str, str]:
    result = dict(annotations or {})
    if ledger.records or ROLLBACKS_KEY in result:
        result[ROLLBACKS_KEY] = json.dumps([_to_json(r) for r in ledger.records], separators=(",", ":"))
    memory = {
        "away": sorted(ledger.away)[-KEEP_AWAY:],
        "closed": list(ledger.closed),
        "noticed": list(ledger.noticed),
        "warned": list(ledger.warned),
        "baselines": list(ledger.baselines),
        "claims": list(ledger.claims),
    }
    memory = {k: v for k, v in memory.items() if v}
    if memory:
        result[MEMORY_KEY] = json.dumps(memory, separators=(",", ":"))
    else:
        result.pop(MEMORY_KEY, None)
    return result


def _json_list(raw: Any, key: str) -> list:
    if raw in ("", None):
        return []
    value = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(value, list):
        raise TypeError(f"{key} is not a JSON list")
    return value


def _json_object(raw: Any, key: str) -> dict:
    if raw in ("", None):
        return {}
    value = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(value, dict):
        raise TypeError(f"{key} is not a JSON object")
    return value


def _names(value: Any, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{MEMORY_KEY} {key} is not a list of names")
    return value


def _to_json(record: Record) -> dict:
    # Unset fields are left out to keep the annotation small. Compared by identity and type: a time of
    # 0.0 equals False, and dropping it would make the record unreadable (``at`` is required).
    data = {k: v for k, v in asdict(record).items() if not (v is None or v is False or v in ("", ()))}
    data["from"] = data.pop("from_revision")
    data["to"] = data.pop("to_revision")
    for key in ("before", "after", "events"):
        if key in data:
            data[key] = [list(entry) for entry in getattr(record, key)]
    return data


def _from_json(item: Any) -> Record:
    if not isinstance(item, dict):
        raise TypeError(f"{ROLLBACKS_KEY}: a record is not an object")
    before, after, events = _rows(item, "before", 3), _rows(item, "after", 2), _rows(item, "events", 4)
    return Record(
        incident=str(item["incident"]),
        from_revision=str(item["from"]),
        to_revision=str(item["to"]),
        at=_finite(item["at"]),
        alert_at=_finite(item["alert_at"]) if item.get("alert_at") is not None else None,
        reported=bool(item.get("reported", False)),
        thread=str(item.get("thread", "")),
        recovered_at=_finite(item["recovered_at"]) if item.get("recovered_at") is not None else None,
        drill=bool(item.get("drill", False)),
        before=tuple((str(r), int(p), str(t)) for r, p, t in before),
        after=tuple((str(r), int(p)) for r, p in after),
        latest=str(item.get("latest", "")),
        breaking=str(item.get("breaking", "")),
        events=tuple((str(a), str(u), _finite(t), str(ts)) for a, u, t, ts in events),
        metric=str(item.get("metric", "")),
        state=str(item.get("state", "")),
        why=str(item.get("why", "")),
        verdict_at=_finite(item["verdict_at"]) if item.get("verdict_at") is not None else None,
        told_at=_finite(item["told_at"]) if item.get("told_at") is not None else None,
        policy=str(item.get("policy", "")),
        revert=str(item.get("revert", "")),
        revert_state=str(item.get("revert_state", "")),
        revert_at=_finite(item["revert_at"]) if item.get("revert_at") is not None else None,
        threshold=_finite(item["threshold"]) if item.get("threshold") is not None else None,
        percentile=int(item["percentile"]) if item.get("percentile") is not None else None,
        closed_at=_finite(item["closed_at"]) if item.get("closed_at") is not None else None,
        note=str(item.get("note", "")),
        note_at=_finite(item["note_at"]) if item.get("note_at") is not None else None,
        note_told_at=_finite(item["note_told_at"]) if item.get("note_told_at") is not None else None,
    )


def _rows(item: dict, key: str, width: int) -> list:
    rows = item.get(key, [])
    if not isinstance(rows, list) or not all(isinstance(e, list) and len(e) == width for e in rows):
        raise TypeError(f"{ROLLBACKS_KEY}: {key!r} of incident {item.get('incident')!r} is not a list of {width}-lists")
    return rows


def _finite(value: Any) -> float:
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{ROLLBACKS_KEY}: {value!r} is not a time")
    return number
