"""Did the rollback work? The pure verdict on one rollback record: evidence in, a :class:`Verdict` out.

Pure code: the record (watchdog/core/ledger.py), the service and the restored revision as Cloud Run
returns them (v2 REST JSON), the Monitoring :class:`Evidence` read for the restored revision only
(or a :class:`NoEvidence` saying why none could be read), the clock and the quiet time. The shell
(watchdog/flows/ticks.py) does the reads, the posting and the recording; the message on-call reads is
watchdog/core/verdict_message.py. The restored revision is always ``record.restored``.

What is read, from the rollback to ``now - INGEST_DELAY``, for the restored revision only
(``resource.labels.revision_name``), one point per minute:

* **the failing signal of the alert that caused the rollback**, as its metric is defined
  (:func:`recorded_signal` keeps it on the record at rollback time):

  - a log-based counter (DELTA INT64, ``logging.googleapis.com/user/…`` without a value extractor: one
    per failure line) summed per minute: any count after the rollback is a failure. A metric-threshold
    alert names its metric; a log-match alert names none, so the counter on the same lines is found by
    the policy's user label ``signal`` in ``WATCHDOG_SIGNAL_METRICS`` (terraform writes it: a user label
    value cannot hold a metric type, which has ``.`` and ``/``);
  - a percentile of a distribution (the condition's per-series aligner is ``ALIGN_PERCENTILE_nn``, valid
    only on DISTRIBUTION metrics, e.g. terraform's "Slow DB connects", one value per connect, fast or
    slow): the same percentile per minute (``ALIGN_PERCENTILE_nn``, no cross-series reducer: the
    reducer's validity after a percentile is not documented unambiguously, so the series' maximum is
    taken here) compared with the policy's threshold; a distribution's ``count`` is the number of
    values, never a number of failures;
  - anything else (``request_count``, a log match without a counter) is not read as a failure signal:
    it counts successes too, or there is nothing to read. The message says which signal it read;

* ``run.googleapis.com/container/completed_probe_count`` (DELTA INT64, labels ``probe_type`` and
  ``is_healthy``) summed by ``is_healthy``: an unhealthy probe is a failure, a healthy one evidence;
* ``run.googleapis.com/request_count`` (DELTA INT64, label ``response_code_class``) summed by class:
  answered requests (below 5xx) are evidence of traffic. Requests are never judged as failures here (the
  alert's own signal is), so their later visibility (up to 180 s after sampling, against 120 s for
  probes) only delays evidence and never hides a failure: ``INGEST_DELAY`` stays at the failure
  signals' bound.

``INGEST_DELAY`` is 180 s: a probe point may describe a minute that ended 60 s after it was sampled
and be invisible for 120 s more ("Sampled every 60 seconds. After sampling, data is not visible for
up to 120 seconds"); log-based metrics show up in about a minute, within the same bound.

Evidence means traffic: a healthy probe, an answered request, or a value of the percentile signal. The
quiet time counts from the rollback when traffic showed in its first minute, else from the first
minute with traffic: "quiet" is quiet with traffic. Without any, nothing is called recovered.

The window ends :data:`HORIZON` (24 h) after the rollback, or earlier when traffic moves off what the
rollback set. A close of the failing revision's incident does not end it (:func:`on_close`): that
revision serves nothing any more, so its metric going quiet says nothing about the restored one.

Rules, first that applies wins:

1. ``already_decided``: the record has a verdict (or was closed under the old rules, ``recovered_at``);
2. ``too_old``: past the window by more than :data:`LATE` (records written before verification existed):
   left alone, ``status`` shows them;
3. ``report_pending`` (wait): the rollback report is not posted yet: the verdict goes in its thread;
4. ``traffic_moved`` (undone): traffic is no longer what the rollback set (a human rolled forward or
   undid it, or a later rollback moved it): verification stops and says what serves now;
5. ``restored_not_ready`` (escalate): the restored revision is deleted or not Ready;
6. ``monitoring_denied`` / ``monitoring_refused`` (not verified): Monitoring answered 403 / 400 or 404:
   retrying cannot help; told once, with the fix;
7. ``monitoring_unavailable`` (wait; not verified when the window ends): no evidence this tick;
8. ``failures_continue`` (escalate): the alert's counter counts on the restored revision;
9. ``above_threshold`` (escalate): the alert's percentile is above the policy's threshold in a minute;
10. ``probes_failing`` (escalate): unhealthy probes of the restored revision;
11. ``no_traffic`` (wait, told once as a note once the quiet time has passed; not verified when the
    window ends): no healthy probe, no answered request, no value of the signal since the rollback;
12. ``waiting_for_quiet`` (wait): quiet with traffic for less than the quiet time yet;
13. ``quiet`` (recovered).

An escalation, a recovery and a "not verified" are final: verification of that rollback stops, and
nothing says "recovered" after "not recovered". Only the ``no_traffic`` note can be followed by another
verdict, and a recovery after it says that the evidence changed.

The alert firing again for the restored revision is the decision's ``rollback_did_not_fix``; the
shell records it with :func:`alert_fired_again` (escalated, ``alert_fired_again``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from watchdog.config import ServiceRef
from watchdog.core.intake import Alert
from watchdog.core.ledger import Record
from watchdog.core.report import duration
from watchdog.core.traffic import is_ready, traffic_split
from watchdog.core.vocabulary import Reason, State, VerdictAction

INGEST_DELAY = 180.0  # seconds: sampled every 60 s, then up to 120 s before it is visible
HORIZON = 86400.0  # the verification window: a day after the rollback
LATE = 3600.0  # a record past its window by more than this was never watched (written before verification)
ALIGNMENT = 60  # seconds per aligned point
PROBE_METRIC = "run.googleapis.com/container/completed_probe_count"
REQUEST_METRIC = "run.googleapis.com/request_count"
LOG_METRIC_PREFIX = "logging.googleapis.com/user/"
_FILTER_SAFE = re.compile(r"^[A-Za-z0-9_./-]{1,300}$")  # goes between quotes in a Monitoring filter
_PERCENTILE = re.compile(r"^ALIGN_PERCENTILE_(99|95|50|05)$")

WAIT, RECOVERED, ESCALATED = VerdictAction.WAIT, VerdictAction.RECOVERED, VerdictAction.ESCALATED
UNDONE, NOTHING = VerdictAction.UNDONE, VerdictAction.NOTHING
UNVERIFIED = VerdictAction.UNVERIFIED  # could not verify: Monitoring refused, or no traffic for the whole window

NO_TRAFFIC = "no_traffic"  # the one interim note: not verified yet, still watching
COUNTER, PERCENTILE = "counter", "percentile"


@dataclass(frozen=True)
class Query:
    """One ``list_time_series`` request, for the restored revision only."""

    name: str  # "probes", "requests", "failures" (the alert's counter) or "signal" (its percentile)
    project: str
    filter: str
    start: float  # read interval (start, end], epoch seconds
    end: float
    group_by: tuple[str, ...] = ()
    aligner: str = "ALIGN_SUM"
    reducer: str = "REDUCE_SUM"


@dataclass(frozen=True)
class Evidence:
    """What Monitoring showed for the restored revision in ``(start, end]``."""

    start: float
    end: float
    metric: str = ""  # the alert's signal that was read; "" when none was usable
    failures: int = 0  # a counter signal: its sum after the rollback
    last_failure_at: float | None = None
    worst: float | None = None  # a percentile signal: its highest value in a minute
    worst_at: float | None = None
    signal_minutes: int = 0  # minutes with values of the percentile signal
    healthy_probes: int = 0
    unhealthy_probes: int = 0
    requests: int = 0  # answered below 5xx
    errors: int = 0  # answered 5xx
    first_seen: float | None = None  # the start of the first minute with traffic
    unreadable: str = ""  # why the signal's answer could not be judged, if it could not

    @property
    def traffic(self) -> bool:
        return self.first_seen is not None


@dataclass(frozen=True)
class NoEvidence:
    """Monitoring could not be read: ``monitoring_denied`` (403), ``monitoring_refused`` (400, 404), else
    ``monitoring_unavailable`` (the next tick tries again)."""

    reason: str
    detail: str = ""

    @property
    def permanent(self) -> bool:
        return self.reason in ("monitoring_denied", "monitoring_refused")


@dataclass(frozen=True)
class Verdict:
    action: VerdictAction
    reason: str
    detail: str
    evidence: tuple[str, ...] = ()  # what was looked at, for the message and the log

    @property
    def final(self) -> bool:
        return self.action in (RECOVERED, ESCALATED, UNDONE, UNVERIFIED)

    @property
    def note(self) -> bool:
        """An interim verdict on-call hears once (not verified yet), while verification goes on."""
        return self.action == WAIT and self.reason == NO_TRAFFIC


# --- What the record keeps of the alert ----------------------------------------------------------------------


def recorded_signal(alert: Alert, signal_metrics: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
    """The record's fields that let verification read what the alert measured: ``metric`` (the alert's own,
    else the counter ``WATCHDOG_SIGNAL_METRICS`` names for its ``signal`` label), and for a percentile
    condition (``ALIGN_PERCENTILE_nn`` compared above a threshold) ``percentile`` and ``threshold``."""
    metric = alert.metric_type or dict(signal_metrics).get(alert.signal, "")
    percentile = percentile_of(alert.aligner)
    above = alert.comparison in ("COMPARISON_GT", "COMPARISON_GE") and alert.threshold is not None
    return {
        "metric": metric if _FILTER_SAFE.match(metric) else "",
        "percentile": percentile if above else None,
        "threshold": alert.threshold if above and percentile else None,
    }


def percentile_of(aligner: str) -> int | None:
    """99 for ``ALIGN_PERCENTILE_99``; None for any other aligner."""
    found = _PERCENTILE.match(aligner or "")
    return int(found.group(1)) if found else None


def signal_kind(record: Record) -> str:
    """How the alert's signal is judged: PERCENTILE (against the threshold), COUNTER (a log-based count of
    failure lines), or "" (not read: it counts successes too, or there is none)."""
    if not record.metric or not _FILTER_SAFE.match(record.metric):
        return ""
    if record.percentile and record.threshold is not None:
        return PERCENTILE
    return COUNTER if record.metric.startswith(LOG_METRIC_PREFIX) else ""


def follow_up(subject: Record | Alert, verify_minutes: float = 10.0, signal_metrics: Iterable = ()) -> str:
    """What verification will do after a rollback, in one sentence for the card's footer: its promise.

    With an :class:`Alert` (no rollback record yet), the record it would get is described.
    """
    if isinstance(subject, Alert):
        fields = recorded_signal(subject, signal_metrics)
        subject = Record("", subject.revision, "", 0.0, **fields)
    revision = subject.restored or "the restored revision"
    kind = signal_kind(subject)
    if kind == PERCENTILE:
        read = (
            f"{revision}'s probes and requests, and the p{subject.percentile} of {subject.metric} per minute "
            f"against the policy's threshold {subject.threshold:g}"
        )
    elif kind == COUNTER:
        read = f"{revision}'s probes and requests, and {subject.metric} (any new count is a failure)"
    else:
        why = "a log match without a counter" if not subject.metric else f"{subject.metric} also counts successes"
        read = f"{revision}'s probes and requests only (the alert's own signal is not read: {why})"
    return (
        f"Verification follows in this thread: each minute the watchdog reads {read}. It says "
        f"recovered after {_minutes(verify_minutes)} of traffic without a failure, not recovered at the first "
        f"failure, and not verified while {revision} gets no traffic, watching up to {duration(HORIZON)} after "
        "the rollback. The incident closing is not taken as recovery."
    )


# --- Reading -------------------------------------------------------------------------------------------------


def under_verification(record: Record, now: float) -> bool:
    """A rollback whose outcome is still open: no verdict, not closed under the old rules, within its window."""
    return not record.state and record.recovered_at is None and now - record.at <= HORIZON + LATE


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

    def query(name: str, metric: str, *group_by: str, aligner: str = "ALIGN_SUM", reducer: str = "REDUCE_SUM"):
        return Query(name, ref.project, f'metric.type = "{metric}" AND {revision}', start, end, group_by, aligner,
                     reducer)  # fmt: skip

    queries = [
        query("probes", PROBE_METRIC, "metric.label.is_healthy"),
        query("requests", REQUEST_METRIC, "metric.label.response_code_class"),
    ]
    kind = signal_kind(record)
    if kind == COUNTER:
        queries.append(query("failures", record.metric))
    elif kind == PERCENTILE:
        queries.append(
            query("signal", record.metric, aligner=f"ALIGN_PERCENTILE_{record.percentile:02d}", reducer="REDUCE_NONE")
        )
    return queries


def evidence(record: Record, now: float, answers: Mapping[str, list[dict]]) -> Evidence:
    """Evidence from the answers to :func:`plan` (series as proto-JSON dicts, aligned per minute, by query name)."""
    start, end = window(record, now)
    traffic: list[float] = []  # starts of minutes with traffic
    failures, last, unreadable = 0, None, ""
    for series in answers.get("failures", []):
        for point in series.get("points", []):
            if "distributionValue" in point.get("value", {}):
                # a distribution's count is its number of values, fast and slow alike: never failures
                unreadable = "a distribution, and the policy compares no percentile of it"
                continue
            value = _number(point)
            if value > 0:
                failures += max(1, int(value))
                at = _time(point.get("interval", {}).get("endTime"))
                last = at if last is None or (at is not None and at > last) else last
    worst = worst_at = None
    signal_minutes: set[float] = set()
    for series in answers.get("signal", []):
        for point in series.get("points", []):
            value, begun = _number(point), _start(point)
            signal_minutes.add(begun)
            traffic.append(begun)
            if worst is None or value > worst:
                worst, worst_at = value, _time(point.get("interval", {}).get("endTime"))
    healthy = unhealthy = answered = errors = 0
    for series in answers.get("probes", []):
        is_healthy = str(series.get("metric", {}).get("labels", {}).get("is_healthy", "")).lower() != "false"
        for point in series.get("points", []):
            count = int(_number(point))
            if is_healthy:
                healthy += count
                traffic += [_start(point)] if count else []
            else:
                unhealthy += count
    for series in answers.get("requests", []):
        failed = series.get("metric", {}).get("labels", {}).get("response_code_class") == "5xx"
        for point in series.get("points", []):
            count = int(_number(point))
            if failed:
                errors += count
            else:
                answered += count
                traffic += [_start(point)] if count else []
    kind = signal_kind(record)
    read = kind and ("failures" in answers or "signal" in answers) and not unreadable
    return Evidence(
        start,
        end,
        metric=record.metric if read else "",
        failures=failures,
        last_failure_at=last,
        worst=worst,
        worst_at=worst_at,
        signal_minutes=len(signal_minutes),
        healthy_probes=healthy,
        unhealthy_probes=unhealthy,
        requests=answered,
        errors=errors,
        first_seen=min(traffic) if traffic else None,
        unreadable=unreadable,
    )


# --- The verdict ---------------------------------------------------------------------------------------------


def verify(
    record: Record,
    service: dict,
    revision: dict | None,
    found: Evidence | NoEvidence | None,
    now: float,
    verify_seconds: float,
) -> Verdict:
    """The verdict on one rollback record; see the module docstring for the rules and which wins."""
    restored = record.restored
    if record.state or record.recovered_at is not None:
        return Verdict(NOTHING, "already_decided", f"{record.incident}: {record.state or 'recovered (closed)'}")
    if now - record.at > HORIZON + LATE:
        return Verdict(NOTHING, "too_old", f"rollback of {duration(now - record.at)} ago was never verified")
    if not record.reported:
        return Verdict(WAIT, "report_pending", "the rollback report is not posted yet")
    serving = traffic_split(service)
    if traffic_moved(record, serving):
        return Verdict(UNDONE, "traffic_moved", f"traffic moved after the rollback: {show_split(serving)} now")
    if revision is None or revision.get("deleteTime") or not is_ready(revision):
        state = "deleted" if revision is None or revision.get("deleteTime") else "not Ready"
        return Verdict(
            ESCALATED, "restored_not_ready", f"the restored revision {restored} is {state}", (f"{restored} is {state}",)
        )
    ended = now - record.at >= HORIZON  # the window is over: what is missing now stays missing
    if not isinstance(found, Evidence):
        found = found or NoEvidence("monitoring_unavailable")
        if found.permanent:
            return Verdict(UNVERIFIED, found.reason, found.detail or found.reason.replace("_", " "))
        if ended:
            return Verdict(UNVERIFIED, "monitoring_unavailable", f"Cloud Monitoring could not be read: {found.detail}")
        return Verdict(WAIT, "monitoring_unavailable", "Cloud Monitoring could not be read; trying on the next tick")
    seen = tuple(_seen(record, found))
    if found.failures:
        return Verdict(
            ESCALATED,
            "failures_continue",
            f"{restored} keeps failing: {found.failures} new {found.metric} after the rollback",
            seen,
        )
    if signal_kind(record) == PERCENTILE and found.worst is not None and found.worst > (record.threshold or 0):
        return Verdict(
            ESCALATED,
            "above_threshold",
            f"{restored}'s p{record.percentile} of {record.metric} reached {found.worst:g} in a minute "
            f"(threshold {record.threshold:g})" + (f" at {utc_clock(found.worst_at)} UTC" if found.worst_at else ""),
            seen,
        )
    if found.unhealthy_probes:
        return Verdict(
            ESCALATED,
            "probes_failing",
            f"{restored} fails its probes: {found.unhealthy_probes} unhealthy after the rollback",
            seen,
        )
    if not found.traffic:
        quiet = max(0.0, found.end - watched_since(record))
        if ended:
            return Verdict(
                UNVERIFIED, NO_TRAFFIC, f"no traffic reached {restored} in the {duration(quiet)} watched", seen
            )
        if quiet >= verify_seconds:
            return Verdict(WAIT, NO_TRAFFIC, f"no traffic reached {restored} since the rollback", seen)
        return Verdict(WAIT, "waiting_for_quiet", f"no traffic yet; {duration(quiet)} watched", seen)
    since = quiet_since(record, found)
    quiet = max(0.0, found.end - since)
    if quiet < verify_seconds:
        due = since + verify_seconds + INGEST_DELAY
        return Verdict(
            WAIT,
            "waiting_for_quiet",
            f"quiet with traffic for {duration(quiet)} of {duration(verify_seconds)} so far; due at {utc_clock(due)}",
            seen,
        )
    return Verdict(RECOVERED, "quiet", f"{restored} Ready, serving, quiet with traffic for {duration(quiet)}", seen)


def watched_since(record: Record) -> float:
    """Since when the restored revision could have had traffic: the rollback, or the start of the field revert
    whose revision serves now (it served nothing before: no traffic before then is no news)."""
    if record.restored != record.to_revision and record.revert_at:
        return max(record.at, record.revert_at)
    return record.at


def quiet_since(record: Record, found: Evidence) -> float:
    """Quiet time counts from the rollback when traffic showed in its first minute, else from when it came."""
    first = found.first_seen
    return record.at if first is None or first - record.at < ALIGNMENT else first


def traffic_moved(record: Record, serving: Mapping[str, int]) -> bool:
    """Traffic is no longer what the rollback set (``record.after``, the target's share on the restored revision
    once a field revert serves it; older records: the restored revision at 100%)."""
    now = {revision: percent for revision, percent in serving.items() if percent}
    if record.after:
        expected: dict[str, int] = {}
        for revision, percent in record.after:
            if percent:
                name = record.restored if revision == record.to_revision else revision
                expected[name] = expected.get(name, 0) + percent
        return now != expected
    return now.get(record.restored, 0) != 100


def pinned(record: Record, serving: Mapping[str, int] | None) -> bool:
    """The traffic is still what the rollback pinned: what a message may call "still pinned"."""
    return serving is not None and bool(serving) and not traffic_moved(record, serving)


def show_split(serving: Mapping[str, int]) -> str:
    shown = [
        f"{revision} {percent}%" for revision, percent in sorted(serving.items(), key=lambda kv: -kv[1]) if percent
    ]
    return ", ".join(shown) or "no revision serving"


def window_ends(record: Record) -> float:
    return record.at + HORIZON


# --- What the ledger records, and when something is due to be told -----------------------------------------------


def alert_fired_again(record: Record, now: float) -> Record | None:
    """The record escalated because the alert fired for the restored revision; None if it has a verdict."""
    if record.state:
        return None
    return replace(record, state=ESCALATED, why="alert_fired_again", verdict_at=round(now, 3))


def decided(record: Record, verdict: Verdict, now: float) -> Record:
    """The record with ``verdict`` recorded (not yet told). Recovered also sets ``recovered_at``."""
    recorded = replace(record, state=verdict.action, why=verdict.reason, verdict_at=round(now, 3))
    return replace(recorded, recovered_at=round(now, 3)) if verdict.action == RECOVERED else recorded


def noted(record: Record, verdict: Verdict, now: float) -> Record | None:
    """The record with the interim note claimed (not yet told); None when it has a verdict or that note already."""
    if record.state or record.note == verdict.reason:
        return None
    return replace(record, note=verdict.reason, note_at=round(now, 3), note_told_at=None)


def due_to_tell(record: Record, now: float, claim_seconds: float) -> bool:
    """A recorded verdict whose post is missing, whose writer had its whole deadline to post it, within a day.

    Posting follows the recording (see watchdog/flows/verdicts.py), so a verdict younger than the
    deadline may be being posted by the delivery that recorded it: leave it to that one. A post Slack
    refused, for any reason, is tried again by later ticks, for :data:`HORIZON` after the verdict.
    """
    if not record.state or record.told_at is not None:
        return False
    age = now - (record.verdict_at or 0)
    return claim_seconds <= age <= HORIZON


def never_told(record: Record, now: float) -> bool:
    """A verdict still not posted a day after it was recorded: later ticks stop trying (the log keeps it)."""
    return bool(record.state) and record.told_at is None and now - (record.verdict_at or 0) > HORIZON


def note_due(record: Record, now: float, claim_seconds: float) -> bool:
    """A claimed note whose post is missing, while verification still runs (a verdict makes it moot)."""
    return (
        bool(record.note)
        and record.note_told_at is None
        and under_verification(record, now)
        and now - (record.note_at or 0) >= claim_seconds
    )


CLOSED_VERIFICATION_CONTINUES = "closed_verification_continues"


def follows(result: str, reason: str) -> bool:
    """Whether verification follows what an alert (or a deploy-time hold) came to: a rollback, made or unconfirmed;
    an alert on a revision a rollback restored (recorded on that rollback); and the close of a rollback's incident
    while it is verified (the close is not a verdict: the ticks of the instance that saw it watch it too)."""
    return result in (State.ROLLED_BACK, State.UNVERIFIED) or reason in (
        Reason.ROLLBACK_DID_NOT_FIX,
        CLOSED_VERIFICATION_CONTINUES,
    )


def on_close(record: Record, ended_at: float, now: float) -> tuple[str, Record | None]:
    """What the close of the incident that caused the rollback means for it: never evidence of recovery.

    The failing revision's incident closes because that revision lost its traffic, so its metric went
    quiet: that says nothing about the restored revision. Verification goes on (or stays as decided).
    Returns the reason to log and the record with ``closed_at`` set (None when already set).
    """
    if under_verification(record, now):
        reason = CLOSED_VERIFICATION_CONTINUES
    elif record.state:
        reason = "closed_after_verdict"
    else:
        reason = "closed_not_verified"
    closed = None if record.closed_at is not None else replace(record, closed_at=round(ended_at, 3))
    return reason, closed


# --- Text ------------------------------------------------------------------------------------------------------


def _seen(record: Record, found: Evidence) -> Iterable[str]:
    window_text = (
        f"{utc_clock(found.start)}–{utc_clock(found.end)} UTC (ends {int(INGEST_DELAY)} s back for ingest delay)"
    )
    kind = signal_kind(record)
    if found.unreadable:
        yield f"{record.metric} not read as a failure signal: {found.unreadable}"
    elif kind == COUNTER:
        yield f"{found.metric}: {found.failures} for {record.restored} in {window_text}"
    elif kind == PERCENTILE:
        worst = "no values" if found.worst is None else f"at most {found.worst:g}"
        yield (
            f"p{record.percentile} of {record.metric} per minute: {worst} (threshold {record.threshold:g}) in "
            f"{found.signal_minutes} minutes with values, for {record.restored} in {window_text}"
        )
    else:
        why = "a log match, no metric" if not record.metric else f"{record.metric} is not a failure signal"
        yield f"the alert's own signal not read ({why})"
    yield f"{PROBE_METRIC}: {found.healthy_probes} healthy, {found.unhealthy_probes} unhealthy"
    yield f"{REQUEST_METRIC}: {found.requests} answered, {found.errors} 5xx" + (
        "" if kind and not found.unreadable else f" in {window_text}"
    )


def _number(point: dict) -> float:
    value = point.get("value", {})
    for key in ("int64Value", "doubleValue"):
        if key in value:
            return float(value[key])
    return 0.0


def _start(point: dict) -> float:
    interval = point.get("interval", {})
    begun = _time(interval.get("startTime"))
    if begun is not None:
        return begun
    ended = _time(interval.get("endTime"))
    return (ended or 0.0) - ALIGNMENT


def _time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def utc_clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S")


def _minutes(minutes: float) -> str:
    return f"{minutes:g} min"
