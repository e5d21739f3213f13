"""The verdict's message: what on-call reads in the rollback report's thread when verification decides.

Pure code, next to the rollback report (watchdog/core/report.py) and the card (watchdog/core/card.py):
a recorded verdict (watchdog/core/verification.py) in, a Slack :class:`~watchdog.core.report.Message`
out. Recovered says how long it took and how to unpin traffic after the fix; escalated pages
(``<!here>``) and says no further automatic rollback follows; any other verdict (undone) says
verification stopped and the watchdog leaves traffic alone.
"""

from __future__ import annotations

from watchdog.config import ServiceRef
from watchdog.core.ledger import Record
from watchdog.core.report import Message, code, duration, escape, section
from watchdog.core.verification import ESCALATED, RECOVERED, Verdict


def render(ref: ServiceRef, record: Record, verdict: Verdict | None, now: float) -> Message:
    """The verdict's message, for the rollback report's thread (or a new message with a webhook).

    ``verdict`` is None for a verdict recorded earlier (re-posted after a crash, or recorded by the
    alert path): the message is built from the record alone.
    """
    state, why = record.state, record.why
    seen = "; ".join(verdict.evidence) if verdict and verdict.evidence else ""
    times = []
    if record.alert_at:
        times.append(f"alert → rollback {duration(max(0.0, record.at - record.alert_at))}")
    stamp = record.verdict_at or now
    name = escape(ref.service)
    if state == RECOVERED:
        times.append(f"rollback → recovered {duration(max(0.0, stamp - record.at))}")
        text = (
            f":white_check_mark: *Recovered:* {name} on {code(record.restored)} "
            f"({escape(verdict.detail if verdict else 'quiet since the rollback')}). {', '.join(times)}."
        )
        lines = [text]
        if seen:
            lines.append(f"Evidence: {escape(seen)}")
        lines.append(
            f"Traffic stays pinned to {code(record.restored)}; after the fix run "
            + code(
                f"gcloud run services update-traffic {ref.service} --to-latest --region {ref.region} "
                f"--project {ref.project}"
            )
        )
        return Message(escape(f"Recovered: {ref.service} on {record.restored}"), [section("\n".join(lines))])
    if state == ESCALATED:
        what = {
            "alert_fired_again": f"the alert fired again for the restored revision {record.restored}",
            "failures_continue": "the alert's own failure metric keeps counting on the restored revision",
            "probes_failing": "the restored revision fails its probes",
            "restored_not_ready": "the restored revision is not Ready",
        }.get(why, why.replace("_", " "))
        times.append(f"rollback → escalation {duration(max(0.0, stamp - record.at))}")
        lines = [
            f"<!here> :rotating_light: *Not recovered:* {name} still fails after the rollback "
            f"{code(record.from_revision)} → {code(record.restored)}: {escape(what)}.",
            "*The egress change was probably not the cause.* No further automatic rollback: a human must look.",
        ]
        if verdict:
            lines.append(f"Seen: {escape(verdict.detail)}" + (f" ({escape(seen)})" if seen else ""))
        lines.append(", ".join(times) + f" · incident {escape(record.incident)}")
        text = (
            f"Not recovered: {ref.service} still fails on {record.restored}; "
            "the egress change was probably not the cause"
        )
        return Message(escape(text), [section("\n".join(lines))], loud=True)
    text = (
        f":information_source: Verification stopped for {name}: "
        f"{escape(verdict.detail if verdict else why.replace('_', ' '))}. The watchdog leaves traffic alone."
    )
    return Message(text, [section(text)])
