"""Did the rollback work? The pure verdict on one rollback record: evidence in, a :class:`Verdict` out.

Pure code: the record (watchdog/core/ledger.py), the service and the restored revision as Cloud Run
returns them (v2 REST JSON), the Monitoring :class:`Evidence` read for the restored revision only
(or None when Monitoring could not be read), the clock and the quiet time. The shell
(watchdog/flows/ticks.py) does the reads, the posting and the recording; the message on-call
reads is watchdog/core/verdict_message.py.

Evidence, and why the window ends early. Both metrics are read for the restored revision only
(``resource.labels.revision_name``), from the rollback to ``now - INGEST_DELAY``:

* the alert's own metric, when it is a log-based metric (``logging.googleapis.com/user/…``, a
  count of failure lines): any point above zero after the rollback means the restored revision
  fails the same way. Other metrics (``request_count`` …) count successes too, so they are not
  read as a failure signal; a log-match alert has no metric at all. The verdict says which
  evidence it used;
* ``run.googleapis.com/container/completed_probe_count`` (DELTA INT64, labels ``probe_type`` and
  ``is_healthy``; Google's metric list: "Sampled every 60 seconds. After sampling, data is not
  visible for up to 120 seconds"), summed per minute and by ``is_healthy``: an unhealthy probe
  of the restored revision is a failure; healthy ones are shown as evidence.

``INGEST_DELAY`` is 180 s: a point may describe a minute that ended 60 s after it was sampled
and be invisible for 120 s more. Log-based metrics show up in about a minute (not documented
precisely), within the same bound. So the quiet time counts only up to ``now - 180 s``: with
``WATCHDOG_VERIFY_MINUTES=10`` a rollback is called recovered 13 minutes after it at the earliest.

Rules, first that applies wins:

1. ``already_decided``: the record has a verdict, or the incident closed (``recovered_at``);
2. ``too_old``: the rollback is older than :data:`HORIZON` without a verdict (records written before
   verification existed): left alone, ``status`` shows them;
3. ``report_pending``: the rollback report is not posted yet: the verdict goes in its thread;
4. ``traffic_moved`` (undone): the restored revision no longer serves 100%: a human (or a later
   rollback) moved traffic; verification stops, quietly;
5. ``restored_not_ready`` (escalate): the restored revision is deleted or not Ready;
6. ``monitoring_unavailable`` (wait): no evidence could be read: never a "recovered" without it;
7. ``failures_continue`` (escalate): the alert's metric has points above zero after the rollback;
8. ``probes_failing`` (escalate): unhealthy probes of the restored revision after the rollback;
9. ``waiting_for_quiet`` (wait): the evidence window is shorter than the quiet time yet;
10. ``quiet`` (recovered).

The alert firing again for the restored revision is the decision's ``rollback_did_not_fix``; the
shell records it with :func:`alert_fired_again` (escalated, ``alert_fired_again``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from watchdog.config import ServiceRef
from watchdog.core.ledger import Record
from watchdog.core.report import duration
from watchdog.core.traffic import is_ready, traffic_split

INGEST_DELAY = 180.0  # seconds: sampled every 60 s, then up to 120 s before it is visible
HORIZON = 86400.0  # a rollback older than a day without a verdict is not verified any more
ALIGNMENT = 60  # seconds per aligned point
PROBE_METRIC = "run.googleapis.com/container/completed_probe_count"
LOG_METRIC_PREFIX = "logging.googleapis.com/user/"

WAIT = "wait"
RECOVERED = "recovered"
ESCALATED = "escalated"
UNDONE = "undone"
NOTHING = "nothing"


@dataclass(frozen=True)
class Query:
    """One ``list_time_series`` request, for the restored revision only."""

    name: str  # "failures" (the alert's own metric) or "probes"
    project: str
    filter: str
    start: float  # read interval (start, end], epoch seconds
    end: float
    group_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class Evidence:
    """What Monitoring showed for the restored revision in ``(start, end]``."""

    start: float
    end: float
    metric: str = ""  # the alert's metric read as a failure signal; "" when none was usable
    failures: int = 0  # sum of its points after the rollback
    last_failure_at: float | None = None
    healthy_probes: int = 0
    unhealthy_probes: int = 0


@dataclass(frozen=True)
class Verdict:
    action: str  # WAIT, RECOVERED, ESCALATED, UNDONE or NOTHING
    reason: str
    detail: str
    evidence: tuple[str, ...] = ()  # what was looked at, for the message and the log

    @property
    def final(self) -> bool:
        return self.action in (RECOVERED, ESCALATED, UNDONE)


def under_verification(record: Record, now: float) -> bool:
    """A rollback whose outcome is still open: no verdict, not closed, younger than the horizon."""
    return not record.state and record.recovered_at is None and now - record.at <= HORIZON


def failure_metric(record: Record) -> str:
    """The alert's own metric, if it counts failures (a log-based metric); else ""."""
    return record.metric if record.metric.startswith(LOG_METRIC_PREFIX) else ""


def window(record: Record, now: float) -> tuple[float, float]:
    """The evidence window: from the rollback to what Monitoring can already show."""
    return record.at, now - INGEST_DELAY


def plan(ref: ServiceRef, record: Record, now: float) -> list[Query]:
    """The reads that evidence needs; [] when the window has not opened yet (nothing ingested since the rollback)."""
    start, end = window(record, now)
    if end <= start:
        return []
    revision = (
        f'resource.type = "cloud_run_revision" AND resource.labels.service_name = "{ref.service}" '
        f'AND resource.labels.location = "{ref.region}" AND resource.labels.revision_name = "{record.restored}"'
    )
    queries = [
        Query(
            "probes",
            ref.project,
            f'metric.type = "{PROBE_METRIC}" AND {revision}',
            start,
            end,
            ("metric.label.is_healthy",),
        ),
    ]
    metric = failure_metric(record)
    if metric:
        queries.append(Query("failures", ref.project, f'metric.type = "{metric}" AND {revision}', start, end))
    return queries


def evidence(record: Record, now: float, answers: dict[str, list[dict]]) -> Evidence:
    """Evidence from the answers to :func:`plan` (series as proto-JSON dicts, by query name)."""
    start, end = window(record, now)
    failures, last = 0, None
    for series in answers.get("failures", []):
        for point in series.get("points", []):
            value = _value(point)
            if value > 0:
                failures += int(value) or 1
                at = _time(point.get("interval", {}).get("endTime"))
                last = at if last is None or (at is not None and at > last) else last
    healthy = unhealthy = 0
    for series in answers.get("probes", []):
        total = int(sum(_value(p) for p in series.get("points", [])))
        if str(series.get("metric", {}).get("labels", {}).get("is_healthy", "")).lower() == "false":
            unhealthy += total
        else:
            healthy += total
    return Evidence(
        start, end, failure_metric(record) if "failures" in answers else "", failures, last, healthy, unhealthy
    )


def verify(
    record: Record,
    service: dict,
    revision: dict | None,
    found: Evidence | None,
    now: float,
    verify_seconds: float,
) -> Verdict:
    """The verdict on one rollback record; see the module docstring for the rules and which wins."""
    target = record.restored
    if record.state or record.recovered_at is not None:
        return Verdict(NOTHING, "already_decided", f"{record.incident}: {record.state or 'recovered (closed)'}")
    if now - record.at > HORIZON:
        return Verdict(NOTHING, "too_old", f"rollback of {_ago(now - record.at)} ago was never verified")
    if not record.reported:
        return Verdict(WAIT, "report_pending", "the rollback report is not posted yet")
    share = traffic_split(service).get(target, 0)
    if share != 100:
        return Verdict(UNDONE, "traffic_moved", f"{target} serves {share}% now: traffic was moved after the rollback")
    if revision is None or revision.get("deleteTime") or not is_ready(revision):
        state = "deleted" if revision is None or revision.get("deleteTime") else "not Ready"
        return Verdict(
            ESCALATED, "restored_not_ready", f"the restored revision {target} is {state}", (f"{target} is {state}",)
        )
    if found is None:
        return Verdict(WAIT, "monitoring_unavailable", "Cloud Monitoring could not be read; trying on the next tick")
    seen = tuple(_seen(record, found))
    if found.failures:
        return Verdict(
            ESCALATED,
            "failures_continue",
            f"{target} keeps failing: {found.failures} new {found.metric} after the rollback",
            seen,
        )
    if found.unhealthy_probes:
        return Verdict(
            ESCALATED,
            "probes_failing",
            f"{target} fails its probes: {found.unhealthy_probes} unhealthy after the rollback",
            seen,
        )
    quiet = found.end - record.at
    if quiet < verify_seconds:
        due = record.at + verify_seconds + INGEST_DELAY
        return Verdict(
            WAIT,
            "waiting_for_quiet",
            f"quiet for {duration(max(0.0, quiet))} of {duration(verify_seconds)} so far; due at {_clock(due)}",
            seen,
        )
    return Verdict(RECOVERED, "quiet", f"{target} Ready, serving 100%, quiet for {duration(quiet)}", seen)


def alert_fired_again(record: Record, now: float) -> Record | None:
    """The record escalated because the alert fired for the restored revision; None if it has a verdict."""
    if record.state:
        return None
    return replace(record, state=ESCALATED, why="alert_fired_again", verdict_at=round(now, 3))


def decided(record: Record, verdict: Verdict, now: float) -> Record:
    """The record with ``verdict`` recorded (not yet told). Recovered also sets ``recovered_at``, so the
    incident's later ``closed`` notification does not announce the recovery a second time."""
    recorded = replace(record, state=verdict.action, why=verdict.reason, verdict_at=round(now, 3))
    return replace(recorded, recovered_at=round(now, 3)) if verdict.action == RECOVERED else recorded


def due_to_tell(record: Record, now: float, claim_seconds: float) -> bool:
    """A recorded verdict whose post is missing, and whose writer had its whole deadline to post it.

    Posting follows the recording (see watchdog/flows/ticks.py), so a verdict younger than the
    deadline may be being posted by the delivery that recorded it: leave it to that one.
    """
    return bool(record.state) and record.told_at is None and now - (record.verdict_at or 0) >= claim_seconds


def _seen(record: Record, found: Evidence) -> Iterable[str]:
    window_text = f"{_clock(found.start)}–{_clock(found.end)} UTC (ends {int(INGEST_DELAY)} s back for ingest delay)"
    if found.metric:
        yield f"{found.metric}: {found.failures} for {record.restored} in {window_text}"
    else:
        why = "a log match, no metric" if not record.metric else f"{record.metric} is not a failure count"
        yield f"the alert's own signal not read ({why})"
    yield (
        f"{PROBE_METRIC}: {found.healthy_probes} healthy, {found.unhealthy_probes} unhealthy"
        + ("" if found.metric else f" in {window_text}")
    )


def _value(point: dict) -> float:
    value = point.get("value", {})
    for key in ("int64Value", "doubleValue"):
        if key in value:
            return float(value[key])
    if "distributionValue" in value:
        return float(value["distributionValue"].get("count", 0))
    return 0.0


def _time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S")


def _ago(seconds: float) -> str:
    return duration(seconds)
