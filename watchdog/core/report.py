"""What on-call reads: a Slack message (Block Kit plus plain-text fallback) per decision.

Pure code. Everything that came from the alert or the service is escaped for
Slack mrkdwn, so an alert field cannot ping ``<!channel>`` or smuggle a link,
and every block is kept within Block Kit's limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from watchdog.core.decision import Decision, Recovery
from watchdog.core.intake import Alert, Ignored

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_HEADER = 150
MAX_TEXT = 3500  # well under chat.postMessage's 40,000; the fallback is a summary

ROLLING_BACK = "rolling_back"  # the traffic update was accepted; the operation is running
ROLLED_BACK = "rolled_back"
FAILED = "failed"
UNVERIFIED = "unverified"
NO_ACTION = "no_action"
RECOVERED = "recovered"  # verification (watchdog/core/verification.py) confirmed it
ESCALATED = "escalated"  # verification saw the restored revision fail too
# The field revert after a pin (watchdog/core/field_revert.py): under way, done, or never Ready.
REVERTING_FIELD = "reverting_field"
FIELD_REVERTED = "field_reverted"
REVERT_FAILED = "revert_failed"
CARD_STATES = (ROLLING_BACK, ROLLED_BACK, FAILED, UNVERIFIED, RECOVERED, ESCALATED, REVERTING_FIELD, FIELD_REVERTED,
               REVERT_FAILED)  # fmt: skip


@dataclass(frozen=True)
class Action:
    """What the watchdog did about a decision."""

    kind: str = NO_ACTION  # one of CARD_STATES, or NO_ACTION
    error: str = ""
    seconds: float | None = None  # delivery to confirmed rollback
    revert: str = ""  # the field-revert revision
    kept: tuple[tuple[str, str], ...] = ()  # its images: (as the failing revision names them, as pinned)
    note: str = ""  # what became of the field revert, when it is not the state itself
    released: bool = False  # the field revert's share follows LATEST again: the pin is released


@dataclass(frozen=True)
class Message:
    text: str
    blocks: list[dict] = field(default_factory=list)
    loud: bool = False  # prefix <!here>: a rollback failed
    card: str = ""  # the incident card's key (the incident id): carried as Slack message metadata, to find it again


def escape(text: object) -> str:
    """Escape for Slack mrkdwn: ``&``, ``<`` and ``>`` (the only control characters)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: object) -> str:
    return "`" + escape(text).replace("`", "'") + "`"


def roll_forward_command(alert: Alert) -> str:
    ref = alert.service
    return f"gcloud run services update-traffic {ref.service} --to-latest --region {ref.region} --project {ref.project}"


def rollback_command(alert: Alert, target: str, split: dict[str, int] | None = None) -> str:
    """The same move by hand; ``update-traffic --to-revisions`` keeps the service's tags, as the watchdog does."""
    ref = alert.service
    shares = ",".join(f"{r}={p}" for r, p in sorted((split or {target: 100}).items(), key=lambda kv: -kv[1]) if p)
    return (
        f"gcloud run services update-traffic {ref.service} --to-revisions {shares} "
        f"--region {ref.region} --project {ref.project}"
    )


def render(
    alert: Alert,
    decision: Decision,
    action: Action,
    dry_run: bool = False,
    related: Sequence[str] = (),
    buttons: bool = False,
) -> Message:
    """The message for one decision about an open incident: the incident card (watchdog/core/card.py) once
    traffic moved, a report otherwise.

    ``related`` are plain-text lines about other services that made the same
    change (the blast radius); they are escaped here like everything else.
    """
    from watchdog.core import card  # not at the top: card imports this module's helpers

    if action.kind in CARD_STATES:
        state = card.CardState(
            action.kind, action.error, action.seconds, action.revert, action.kept, action.note, action.released
        )
        text, blocks = card.render(alert, decision, state, buttons=buttons, dry_run=dry_run)
        if related:
            lines = [f"• {escape(line)}" for line in related[:15]]
            blocks.insert(len(blocks) - 1, section("*Same change elsewhere (last 24 h):*\n" + "\n".join(lines)))
        loud = action.kind in (FAILED, REVERT_FAILED) or decision.loud
        return Message(text, blocks[:MAX_BLOCKS], loud=loud, card=alert.incident_id)
    title = _title(alert, decision, action)
    loud = action.kind == FAILED or decision.loud
    lines = [("<!here> " if loud else "") + f"*{escape(decision.detail)}*"]
    if action.kind == FAILED:
        lines.append(f":rotating_light: The rollback failed: {code(action.error[:500])}")
        lines.append(f"Roll back by hand: {code(rollback_command(alert, decision.target, decision.split))}")
    elif action.kind == UNVERIFIED:
        lines.append(
            f":warning: The update finished but traffic is not confirmed on {code(decision.target)}: "
            f"{escape(action.error[:300])}"
        )
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(title, MAX_HEADER), "emoji": True}},
        section("\n".join(lines)),
        {"type": "section", "fields": card.fields(alert)},
    ]
    if decision.trigger_changes or decision.changes:
        blocks.append(section(_changes_text(decision, alert)))
    if decision.failing or decision.target:
        blocks.append(section(_revisions_text(decision, action)))
    if related:
        lines = [f"• {escape(line)}" for line in related[:15]]
        blocks.append(section("*Same change elsewhere (last 24 h):*\n" + "\n".join(lines)))
    if action.kind in (ROLLED_BACK, UNVERIFIED):
        blocks.append(
            section(
                "*After the fix:* traffic stays pinned, so new deploys get 0% until you run\n"
                + code(roll_forward_command(alert))
            )
        )
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(_context(alert, decision, dry_run), 3000)}]}
    )
    text = f"{title}: {decision.detail}"
    if action.kind == FAILED:
        text += (
            f" Rollback error: {action.error[:300]}. Manual: {rollback_command(alert, decision.target, decision.split)}"
        )
    return Message(_clip(escape(text), MAX_TEXT), blocks[:MAX_BLOCKS], loud=loud)


def render_unlocated(ignored: Ignored) -> Message:
    """A Cloud Run incident the watchdog cannot locate: which policy to fix, and how."""
    text = (
        f":warning: Rollback watchdog cannot act on incident {escape(ignored.incident_id or 'unknown')} for "
        f"service {code(ignored.service or 'unknown')} (policy {escape(ignored.policy or 'unknown')}): "
        f"{escape(ignored.detail)}"
    )
    return Message(_clip(text, MAX_TEXT), [section(text)])


def render_revert_failed(alert: Alert, decision: Decision, detail: str) -> Message:
    """The thread reply that pages when a field revert never became Ready (an edit of the card notifies nobody)."""
    text = (
        f":rotating_light: Field revert of {escape(alert.service.service)} failed: {escape(detail[:400])}. Traffic "
        f"stays pinned on {code(decision.target)}, without the deploys after {code(decision.target)}. Look at the "
        "new revision's logs, then move traffic by hand when ready."
    )
    return Message(_clip(text, MAX_TEXT), [section(text)], loud=True)


def render_recovery(alert: Alert, recovered: Recovery) -> Message:
    """The thread reply when an incident the watchdog acted on closes."""
    parts = []
    if recovered.alert_to_rollback is not None:
        parts.append(f"alert → rollback {duration(recovered.alert_to_rollback)}")
    parts.append(f"rollback → recovery {duration(recovered.rollback_to_recovery)}")
    text = (
        f":white_check_mark: {escape(alert.service.service)} recovered: incident "
        f"{escape(alert.incident_id)} closed ({', '.join(parts)}). Traffic is still pinned to "
        f"{code(recovered.record.to_revision)}; after the fix run {code(roll_forward_command(alert))}"
    )
    return Message(_clip(text, MAX_TEXT), [section(text)])


def _title(alert: Alert, decision: Decision, action: Action) -> str:
    prefix = "[DRILL] " if alert.drill else ""
    name = alert.service.service
    if decision.loud and action.kind == NO_ACTION:
        return f"{prefix}Needs a human: {name} ({decision.reason.replace('_', ' ')})"
    if action.kind == ROLLED_BACK:
        return f"{prefix}Rolled back {name} to {decision.target}"
    if action.kind == FAILED:
        return f"{prefix}ROLLBACK FAILED for {name}"
    if action.kind == UNVERIFIED:
        return f"{prefix}Rollback of {name} not verified"
    if decision.reason == "dry_run":
        return f"{prefix}DRY RUN: would roll back {name} to {decision.target}"
    if decision.would_roll_back:
        return f"{prefix}Rollback held back for {name} ({decision.reason.replace('_', ' ')})"
    return f"{prefix}No rollback for {name} ({decision.reason.replace('_', ' ')})"


def _deployed(decision: Decision, alert: Alert) -> str:
    """ ", deployed 2025-09-15 04:27 UTC, 37 h before the alert": the symptom may come days later."""
    try:
        created = datetime.fromisoformat(decision.breaking_created.replace("Z", "+00:00"))
    except ValueError:
        return ""
    text = f", deployed {created.strftime('%Y-%m-%d %H:%M')} UTC"
    if alert.started_at:
        gap = alert.started_at - created.timestamp()
        if gap > 0:
            text += f", {duration(gap)} before the alert"
    return escape(text)


def _changes_text(decision: Decision, alert: Alert) -> str:
    lines = []
    if decision.trigger_changes:
        lines.append(f"*What changed* in {code(decision.breaking)}{_deployed(decision, alert)}:")
        lines += [f"• *{escape(c.field)}*: {code(c.old)} → {code(c.new)}" for c in decision.trigger_changes]
    rest = [c for c in decision.changes if c not in decision.trigger_changes]
    if rest:
        heading = "*Also different* from the rollback target:" if decision.target else "*Configuration diff*:"
        lines.append(heading)
        lines += [f"• {escape(c.field)}: {code(c.old)} → {code(c.new)}" for c in rest[:25]]
        if len(rest) > 25:
            lines.append(f"… and {len(rest) - 25} more")
    return "\n".join(lines)


def _revisions_text(decision: Decision, action: Action) -> str:
    if decision.target:
        verb = "Traffic moved" if action.kind == ROLLED_BACK else "Rollback"
        moved = ", ".join(code(r) for r in (decision.moved_from or (decision.failing,)))
        after = ", ".join(f"{code(r)} {p}%" for r, p in sorted(decision.split.items(), key=lambda kv: -kv[1]) if p)
        text = f"*{verb}:* {moved} → {after or code(decision.target) + ' 100%'}"
        if decision.trust:
            text += f"\n*Why {code(decision.target)}:* {escape(decision.trust)}"
        tags = [e["tag"] for e in decision.traffic if e.get("tag")]
        if tags:
            text += "\nTraffic tags kept: " + ", ".join(code(t) for t in tags[:20])
        if decision.breaking_deleted:
            text += f"\n{code(decision.breaking)} made the change and has since been deleted."
        if decision.skipped:
            text += "\nSkipped: " + ", ".join(code(s) for s in decision.skipped[:20])
        if action.seconds is not None:
            took = f"{action.seconds * 1000:.0f} ms" if action.seconds < 1 else f"{action.seconds:.1f} s"
            text += f"\nVerified {took} after the notification reached the watchdog."
        return text
    return f"*Failing revision:* {code(decision.failing)}"


def _context(alert: Alert, decision: Decision, dry_run: bool) -> str:
    bits = [f"decision `{decision.reason}`", f"alert via {escape(alert.found_by)}"]
    if dry_run or decision.reason == "dry_run":
        bits.append("*DRY RUN: traffic was not changed*")
    if alert.drill:
        bits.append("*DRILL*")
    if not alert.sends_close:
        bits.append("log-based policy: Monitoring sends no 'closed' notification, so no recovery follow-up")
    return " · ".join(bits)


def section(text: str) -> dict:
    """One mrkdwn section block, clipped to Block Kit's limit: the unit of every message the watchdog posts."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, MAX_SECTION)}}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def duration(seconds: float) -> str:
    """``37h14m``: how long, in the units on-call reads (the card, the recovery reply, the verdicts)."""
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 72 * 3600:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400} days"
