"""A service's traffic, read and written as Cloud Run's v2 REST JSON has it.

Pure code: service and revision dicts in, values out. Reading: the split a
service serves now (:func:`traffic_split`), which revisions carry a tag
(:func:`tagged_revisions`), the entries the ledger keeps (:func:`traffic_before`),
whether a revision is Ready (:func:`is_ready`). Writing: the complete traffic
list a rollback sends (:func:`rollback_traffic`), every tag kept.
"""

from __future__ import annotations

REVISION_TYPE = "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"
LATEST_TYPE = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"


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


def is_ready(revision: dict) -> bool:
    """Ready now: it became Ready and is not deleted."""
    return not revision.get("deleteTime") and was_ready(revision)


def was_ready(revision: dict) -> bool:
    """It became Ready (a deleted revision still shows its conditions)."""
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
