"""The watchdog's memory, kept on the Cloud Run service itself as annotations.

Keeping the record of each rollback on the service (not in a database) means
the record and the traffic change land in one ``UpdateService`` call, guarded
by the same etag: there is no window in which traffic moved but the record
did not. Pub/Sub redeliveries and Monitoring re-notifications read it back and
see that the incident was handled.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any

ROLLBACKS_KEY = "rollback-watchdog/rollbacks"
PAUSED_KEY = "rollback-watchdog/paused"
KEEP = 10  # records kept per service; older ones fall off


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


def records(annotations: dict[str, str] | None) -> list[Record]:
    """Records from the service annotations, oldest first; bad entries are dropped."""
    raw = (annotations or {}).get(ROLLBACKS_KEY, "")
    try:
        items = json.loads(raw) if raw else []
    except ValueError:
        return []
    found = []
    for item in items if isinstance(items, list) else []:
        try:
            found.append(_from_json(item))
        except (TypeError, ValueError, KeyError):
            continue
    return found


def find(annotations: dict[str, str] | None, incident: str) -> Record | None:
    return next((r for r in records(annotations) if r.incident == incident), None)


def paused(annotations: dict[str, str] | None) -> bool:
    return str((annotations or {}).get(PAUSED_KEY, "")).strip().lower() == "true"


def with_record(annotations: dict[str, str] | None, record: Record) -> dict[str, str]:
    """The complete annotation map with ``record`` added or replaced.

    The whole map is sent back because an ``annotations`` update mask replaces
    the map rather than merging it.
    """
    kept = [r for r in records(annotations) if r.incident != record.incident]
    kept.append(record)
    updated = dict(annotations or {})
    updated[ROLLBACKS_KEY] = json.dumps([_to_json(r) for r in kept[-KEEP:]], separators=(",", ":"))
    return updated


def updated(annotations: dict[str, str] | None, incident: str, **changes: Any) -> dict[str, str] | None:
    record = find(annotations, incident)
    if record is None:
        return None
    return with_record(annotations, replace(record, **changes))


def without(annotations: dict[str, str] | None, incident: str) -> dict[str, str] | None:
    """The annotation map with the record of ``incident`` removed; None if there was none."""
    kept = [r for r in records(annotations) if r.incident != incident]
    if len(kept) == len(records(annotations)):
        return None
    result = dict(annotations or {})
    result[ROLLBACKS_KEY] = json.dumps([_to_json(r) for r in kept], separators=(",", ":"))
    return result


def _to_json(record: Record) -> dict:
    data = {k: v for k, v in asdict(record).items() if v not in (None, "", False)}
    data["from"] = data.pop("from_revision")
    data["to"] = data.pop("to_revision")
    return data


def _from_json(item: Any) -> Record:
    if not isinstance(item, dict):
        raise TypeError("record is not an object")
    return Record(
        incident=str(item["incident"]),
        from_revision=str(item["from"]),
        to_revision=str(item["to"]),
        at=float(item["at"]),
        alert_at=float(item["alert_at"]) if item.get("alert_at") is not None else None,
        reported=bool(item.get("reported", False)),
        thread=str(item.get("thread", "")),
        recovered_at=float(item["recovered_at"]) if item.get("recovered_at") is not None else None,
        drill=bool(item.get("drill", False)),
    )
