"""The blast radius: which other services made the same change around the same time.

After the watchdog has acted on one service (never before the traffic
update: the handler calls this between the update and the report), it looks
at the other Cloud Run services in the same project and region and names
those whose newest revision made the same kind of change within 24 hours of
the breaking revision: for each, whether it is in scope
(``WATCHDOG_SERVICES``) and what the watchdog would do if it alerted —
the answer comes from :func:`watchdog.core.decision.decide`, the same rules.

"The same kind of change" is the same set of change kinds that
``WATCHDOG_ROLLBACK_ON`` looks for (egress; egress+network; any), and for an
egress change the same flip (e.g. ``private-ranges-only → all-traffic``).

Bounded: at most ``cap`` services are read (most recently updated first;
services not updated since 24 h before the breaking revision are skipped
without a read), a few at a time, and nothing is waited for past the budget.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime
from typing import Any

from watchdog.config import Config, ServiceRef
from watchdog.core import decision as rules
from watchdog.core import traffic
from watchdog.core.changes import Change, template_changes
from watchdog.core.intake import Alert

WINDOW_SECONDS = 24 * 3600
MAX_SERVICES = 20
PAGE_SIZE = 5
BUDGET_SECONDS = 8.0  # of the handling deadline; the report still has to go out after this
WORKERS = 4


def related(
    config: Config,
    cloud_run: Any,
    alert: Alert,
    decided: rules.Decision,
    deadline: float,
    *,
    revisions: list[dict] | None = None,
    cap: int = MAX_SERVICES,
    budget: float = BUDGET_SECONDS,
    now: float | None = None,
) -> list[str]:
    """Plain-text lines, one per service that made the same change; [] when none or unknown."""
    if not decided.breaking or not decided.trigger_changes:
        return []
    deadline = min(deadline, time.monotonic() + budget)
    now = time.time() if now is None else now
    wanted = rules.KINDS_FOR[config.rollback_on]
    signature = _signature(decided.trigger_changes, wanted)
    breaking_at = _breaking_time(cloud_run, alert.service, decided.breaking, revisions, deadline)
    if breaking_at is None or time.monotonic() >= deadline:
        return []

    ref = alert.service
    services = [
        s
        for s in cloud_run.list_services(ref.project, ref.region, deadline)
        if _short(s.get("name", "")) != ref.service
    ]
    recent = [s for s in services if (_time(s.get("updateTime")) or now) >= breaking_at - WINDOW_SECONDS]
    recent.sort(key=lambda s: s.get("updateTime", ""), reverse=True)
    looked_at, more = recent[:cap], len(recent) - cap

    pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="blast-radius")
    futures = [
        pool.submit(_look, config, cloud_run, ServiceRef(ref.project, ref.region, _short(s["name"])), s, signature,
                    wanted, breaking_at, deadline, now, alert.started_at)
        for s in looked_at
    ]  # fmt: skip
    done, pending = wait(futures, timeout=max(0.0, deadline - time.monotonic()))
    pool.shutdown(wait=False, cancel_futures=True)
    lines = []
    failed = 0
    for future in futures:
        if future in done:
            try:
                line = future.result()
            except Exception:  # noqa: BLE001 - one unreadable service does not hide the others
                failed += 1
                continue
            if line:
                lines.append(line)
    if more > 0:
        lines.append(f"+{more} more services updated in the window, not checked (cap {cap})")
    if pending or failed:
        lines.append(f"{len(pending) + failed} of {len(looked_at)} services could not be checked in time")
    return lines


def _look(
    config: Config,
    cloud_run: Any,
    ref: ServiceRef,
    service: dict,
    signature: frozenset,
    wanted: set[str],
    breaking_at: float,
    deadline: float,
    now: float,
    started_at: float | None = None,
) -> str:
    history = cloud_run.history(ref, deadline, page_size=PAGE_SIZE)
    loaded = history.loaded
    if len(loaded) < 2 or time.monotonic() >= deadline:
        return ""
    newest, previous = loaded[0], loaded[1]
    created = _time(newest.get("createTime"))
    if created is None or abs(created - breaking_at) > WINDOW_SECONDS:
        return ""
    changes = tuple(c for c in template_changes(previous, newest) if c.kind in wanted)
    if not changes or _signature(changes, wanted) != signature:
        return ""
    name = _short(newest.get("name", ""))
    scope = "in scope" if ref in config.services else "out of scope"
    when = _when(created - breaking_at)
    head = f"{ref.service}: {name} changed {_describe(changes)} ({when}; {scope})"
    serving = traffic.traffic_split(service)
    if serving.get(name, 0) == 0:
        return f"{head}: not serving traffic yet; run `rollback-watchdog check` before migrating"
    return f"{head}: {_would(config, cloud_run, ref, service, history, now, deadline, started_at)}"


def _would(
    config: Config, cloud_run: Any, ref: ServiceRef, service: dict, history: Any, now: float, deadline, started_at
) -> str:
    """What the watchdog would do if this service alerted with the same incident (decision.decide, the same
    rules; the change's age counted from the incident's start, as for the service that alerted)."""
    probe = Alert(incident_id="blast-radius", state="open", service=ref, revision="", started_at=started_at)
    decided = rules.decide(probe, service, history.loaded, config, now, history_complete=history.complete)
    while decided.action == rules.NEED_MORE and time.monotonic() < deadline:
        history.read_more()
        decided = rules.decide(probe, service, history.loaded, config, now, history_complete=history.complete)
    if decided.action == rules.ROLLBACK:
        return f"would roll back to {decided.target}"
    if decided.reason == rules.Reason.OUT_OF_SCOPE:
        return "report only: out of scope" + (f" (would roll back to {decided.target})" if decided.target else "")
    if decided.would_roll_back:
        return f"would roll back to {decided.target}, but held back: {decided.reason.replace('_', ' ')}"
    if decided.action == rules.NEED_MORE:
        return "unknown: ran out of time reading its history"
    return f"report only: {decided.reason.replace('_', ' ')}"


def _when(seconds: float) -> str:
    side = "after" if seconds > 0 else "before"
    if abs(seconds) < 60:
        return "at the same time"
    if abs(seconds) < 3600:
        return f"{round(abs(seconds) / 60)} min {side}"
    return f"{abs(seconds) / 3600:.1f} h {side}"


def _signature(changes: tuple[Change, ...], wanted: set[str]) -> frozenset:
    """Kinds of change, and for egress the exact flip."""
    return frozenset((c.kind, c.old, c.new) if c.kind == "egress" else (c.kind,) for c in changes if c.kind in wanted)


def _breaking_time(
    cloud_run: Any, ref: ServiceRef, breaking: str, revisions: list[dict] | None, deadline: float
) -> float | None:
    if revisions is None:
        history = cloud_run.history(ref, deadline, page_size=PAGE_SIZE * 2)
        while not _find(history.loaded, breaking) and not history.complete and time.monotonic() < deadline:
            history.read_more()
        revisions = history.loaded
    found = _find(revisions, breaking)
    return _time(found.get("createTime")) if found else None


def _find(revisions: list[dict], short: str) -> dict | None:
    return next((r for r in revisions if _short(r.get("name", "")) == short), None)


def _describe(changes: tuple[Change, ...]) -> str:
    return "; ".join(str(c) for c in changes[:2]) + (f" (+{len(changes) - 2} more)" if len(changes) > 2 else "")


def _short(name: str) -> str:
    return str(name).rsplit("/", 1)[-1]


def _time(value: Any) -> float | None:
    """RFC 3339 (as the API and MessageToDict write it) → epoch seconds; None if unreadable."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("z", "Z")
    offset = 0.0
    if text.endswith("Z"):
        text = text[:-1]
    elif len(text) > 6 and text[-6] in "+-" and text[-3] == ":":
        sign = 1 if text[-6] == "-" else -1
        offset = sign * (int(text[-5:-3]) * 3600 + int(text[-2:]) * 60)
        text = text[:-6]
    whole, _, fraction = text.partition(".")
    try:
        moment = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
        return moment.timestamp() + float(f"0.{fraction or 0}") + offset
    except ValueError:
        return None
