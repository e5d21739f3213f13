"""The verdict's message: what on-call reads in the rollback report's thread when verification decides.

Pure code, next to the rollback report (watchdog/core/report.py) and the card (watchdog/core/card.py):
a recorded verdict (watchdog/core/verification.py) and the traffic as it was just read in, a Slack
:class:`~watchdog.core.report.Message` out.

Every message opens with the traffic as read before it was written (``serving``): "still pinned" only
when it is. Recovered says how long it took, what it saw, and (while traffic is still pinned) how to
unpin after the fix; escalated pages (``<!here>``) and says no further automatic rollback follows;
not verified says why, what to check by hand and, for a Monitoring denial, the IAM fix; the
``no_traffic`` note says what ends the window; undone says what serves now.
"""

from __future__ import annotations

from collections.abc import Mapping

from watchdog.config import ServiceRef
from watchdog.core.ledger import Record
from watchdog.core.slack_text import (
    Message,
    clip,
    code,
    duration,
    escape,
    moment,
    one_line,
    roll_forward_command,
    section,
)
from watchdog.core.verification import (
    ESCALATED,
    HORIZON,
    NO_TRAFFIC,
    RECOVERED,
    UNVERIFIED,
    Verdict,
    pinned,
    show_split,
    utc_clock,
    window_ends,
)

PLACEHOLDER = "WATCHDOG_SERVICE_ACCOUNT"


def traffic_line(record: Record, serving: Mapping[str, int] | None) -> str:
    """The traffic, as read just before the message: the one always-true status line."""
    if serving is None:
        return ""
    if pinned(record, serving):
        return f"Traffic: {escape(show_split(serving))} (pinned by the watchdog's rollback)."
    return f"Traffic now: {escape(show_split(serving))} (moved since the rollback)."


def render(
    ref: ServiceRef,
    record: Record,
    verdict: Verdict | None,
    now: float,
    serving: Mapping[str, int] | None = None,
    identity: str = "",
) -> Message:
    """The verdict's message, for the rollback report's thread (or a new message with a webhook).

    ``verdict`` is None for a verdict recorded earlier (re-posted after a crash or a Slack failure): the
    message is built from the record alone. ``serving`` is the traffic read just before; ``identity``
    the watchdog's service account (named in the IAM fix).
    """
    state, why = record.state, record.why
    restored = record.restored
    seen = "; ".join(verdict.evidence) if verdict and verdict.evidence else ""
    times = []
    if record.alert_at:
        times.append(f"alert → rollback {duration(max(0.0, record.at - record.alert_at))}")
    stamp = record.verdict_at or now
    name = escape(ref.service)
    status = traffic_line(record, serving)
    closed = (
        f"The incident closed at {utc_clock(record.closed_at)} UTC: the failing revision lost its traffic, which says "
        f"nothing about {code(restored)}; this verdict rests on {code(restored)}'s own evidence."
        if record.closed_at is not None
        else ""
    )
    if state == RECOVERED:
        times.append(f"rollback → recovered {duration(max(0.0, stamp - record.at))}")
        lines = [
            f":white_check_mark: *Recovered:* {name} on {code(restored)} "
            f"({escape(verdict.detail if verdict else 'quiet with traffic since the rollback')}). {', '.join(times)}."
        ]
        if record.note == NO_TRAFFIC and record.note_told_at is not None:
            lines.append(
                f"The evidence changed since the note at {utc_clock(record.note_told_at)} UTC: traffic reached "
                f"{code(restored)} since then, without a failure."
            )
        if seen:
            lines.append(f"Evidence: {escape(seen)}")
        lines += [line for line in (closed, status) if line]
        if pinned(record, serving):
            lines.append(
                f"Traffic stays pinned to {code(restored)}; after the fix run "
                + code(one_line(roll_forward_command(ref)))
            )
        return Message(escape(f"Recovered: {ref.service} on {restored}"), [section("\n".join(lines))])
    if state == ESCALATED:
        what = {
            "alert_fired_again": f"the alert fired again for the restored revision {restored}",
            "failures_continue": "the alert's own failure metric keeps counting on the restored revision",
            "above_threshold": "the alert's percentile is above the policy's threshold on the restored revision",
            "probes_failing": "the restored revision fails its probes",
            "restored_not_ready": "the restored revision is not Ready",
        }.get(why, why.replace("_", " "))
        times.append(f"rollback → escalation {duration(max(0.0, stamp - record.at))}")
        lines = [
            f"<!here> :rotating_light: *Not recovered:* {name} still fails after the rollback "
            f"{code(record.from_revision)} → {code(restored)}: {escape(what)}.",
            "*The egress change was probably not the cause.* No further automatic rollback: a human must look.",
        ]
        if verdict:
            lines.append(f"Seen: {escape(verdict.detail)}" + (f" ({escape(seen)})" if seen else ""))
        lines += [line for line in (status, closed) if line]
        lines.append(", ".join(times) + f" · incident {escape(record.incident)}")
        text = f"Not recovered: {ref.service} still fails on {restored}; the egress change was probably not the cause"
        return Message(escape(text), [section("\n".join(lines))], loud=True)
    if state == UNVERIFIED:
        return _not_verified(ref, record, verdict, status, identity)
    text = (
        f":information_source: Verification stopped for {name}: "
        f"{escape(verdict.detail if verdict else why.replace('_', ' '))}. The watchdog leaves traffic alone."
    )
    return Message(text, [section("\n".join(line for line in (text, status) if line))])


def render_note(
    ref: ServiceRef, record: Record, verdict: Verdict | None, now: float, serving: Mapping[str, int] | None = None
) -> Message:
    """The interim note (not verified yet: no traffic), told once while verification goes on."""
    restored = code(record.restored)
    ends = window_ends(record)
    lines = [
        f":hourglass_flowing_sand: *Not verified yet:* {escape(ref.service)} on {restored}: no traffic since the "
        f"rollback (no healthy probe, no answered request, no value of the alert's signal)."
    ]
    if verdict and verdict.evidence:
        lines.append(f"Seen: {escape('; '.join(verdict.evidence))}")
    status = traffic_line(record, serving)
    if status:
        lines.append(status)
    lines.append(
        f"The watchdog keeps watching {restored} until {moment(ends)} ({duration(HORIZON)} after the rollback) "
        "or until traffic moves off it, and posts the verdict here: recovered once it has served quietly, "
        "not recovered at the first failure."
    )
    text = f"Not verified yet: {ref.service} on {record.restored}: no traffic since the rollback"
    return Message(escape(text), [section("\n".join(lines))])


def _not_verified(ref: ServiceRef, record: Record, verdict: Verdict | None, status: str, identity: str) -> Message:
    restored = record.restored
    why = record.why
    by_hand = (
        f'gcloud logging read \'resource.type="cloud_run_revision" AND resource.labels.revision_name="{restored}" '
        f"AND severity>=ERROR' --project {ref.project} --freshness 1h"
    )
    detail = escape(clip(verdict.detail, 300)) if verdict else ""  # clipped, then escaped: no entity cut in half
    if why == "monitoring_denied":
        member = f"serviceAccount:{identity or PLACEHOLDER}"
        head = (
            f"Cloud Monitoring refused the watchdog's reads of {code(restored)}'s time series (permission denied"
            + (f": {detail}" if detail else "")
            + ")."
        )
        fix = (
            f"Fix: the watchdog needs {code('monitoring.timeSeries.list')} in {code(ref.project)} (terraform's "
            "verifier role grants only that; re-apply it), or: "
            + code(
                f"gcloud projects add-iam-policy-binding {ref.project} --member {member} --role roles/monitoring.viewer"
            )
        )
    elif why == "monitoring_refused":
        head = f"Cloud Monitoring refused the watchdog's query for {code(restored)}" + (
            f": {detail}." if detail else "."
        )
        fix = (
            "Fix: check that the alert's metric still exists; the watchdog will not retry this rollback's verification."
        )
    elif why == NO_TRAFFIC:
        head = (
            f"No traffic reached {code(restored)} in the {duration(HORIZON)} after the rollback: no healthy probe, "
            "no answered request. Verification ended without evidence either way."
        )
        fix = ""
    else:
        head = f"Cloud Monitoring could not be read until the end of the {duration(HORIZON)} window" + (
            f" ({detail})." if detail else "."
        )
        fix = ""
    lines = [f":warning: *Not verified:* {escape(ref.service)} on {code(restored)}. {head}"]
    if status:
        lines.append(status)
    lines.append(f"Check {code(restored)} by hand before trusting it: {code(by_hand)}")
    if fix:
        lines.append(fix)
    lines.append(f"Verification of this rollback stopped · incident {escape(record.incident)}")
    text = f"Not verified: {ref.service} on {restored} ({why.replace('_', ' ')})"
    return Message(escape(text), [section("\n".join(lines))])
