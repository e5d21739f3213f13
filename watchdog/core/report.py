"""What on-call reads: a Slack message (Block Kit plus plain-text fallback) per decision. Pure code.

Once traffic moved, the message is the incident card (watchdog/core/card.py). Otherwise it is a
report, laid out like the card so it reads the same way: what it is, the traffic as read ("Traffic
NOT moved: … still serves"), the cause, why the watchdog did not act, one next step with its command
(a rollback decided but held back always carries the command to make it by hand), then the details.
Slack text is written with watchdog/core/slack_text.py only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from watchdog.core import card
from watchdog.core.changes import Change
from watchdog.core.decision import Decision, Recovery
from watchdog.core.intake import Alert, Ignored
from watchdog.core.slack_text import (
    MAX_BLOCKS,
    MAX_TEXT,
    Message,
    block_code,
    clip,
    code,
    context,
    duration,
    escape,
    fields,
    header,
    one_line,
    pin_command,
    roll_forward_command,
    section,
    split_text,
    watchdog_command,
)
from watchdog.core.vocabulary import Reason

__all__ = ["CARD_STATES", "Action", "Message", "escape", "render", "rollback_command", "section"]

ROLLING_BACK, ROLLED_BACK, FAILED, UNVERIFIED = card.ROLLING_BACK, card.ROLLED_BACK, card.FAILED, card.UNVERIFIED
RECOVERED, ESCALATED = card.RECOVERED, card.ESCALATED
REVERTING_FIELD, FIELD_REVERTED, REVERT_FAILED = card.REVERTING_FIELD, card.FIELD_REVERTED, card.REVERT_FAILED
NO_ACTION = "no_action"
CARD_STATES = card.STATES

# Guards that held a rollback back: the report says why, and how to make the rollback by hand.
HELD = {Reason.OUT_OF_SCOPE, Reason.PROJECT_NOT_ALLOWED, Reason.NOT_CLOUD_RUN_INCIDENT, Reason.POLICY_NOT_ALLOWED,
        Reason.STALE_ALERT, Reason.PAUSED, Reason.UNDONE, Reason.COOLDOWN, Reason.DRY_RUN}  # fmt: skip


@dataclass(frozen=True)
class Action:
    """What the watchdog did about a decision: a card state (watchdog/core/card.py), or NO_ACTION (a report)."""

    kind: str = NO_ACTION
    error: str = ""
    seconds: float | None = None  # delivery to confirmed rollback
    revert: str = ""  # the field-revert revision
    kept: tuple[tuple[str, str], ...] = ()  # its images: (as the failing revision names them, as pinned)
    note: str = ""  # what became of the field revert, when it is not the state itself
    released: bool = False  # the field revert's share follows LATEST again: the pin is released
    serving: dict[str, int] | None = None  # traffic as Cloud Run reports it now; None: not read back
    follow_up: str = ""  # what verification will do next (watchdog/core/verification.py ``follow_up``)

    def state(self) -> card.CardState:
        return card.CardState(self.kind, self.error, self.seconds, self.revert, self.kept, self.note, self.released,
                              self.serving, follow_up=self.follow_up)  # fmt: skip


def rollback_command(alert: Alert, target: str, split: dict[str, int] | None = None) -> str:
    """The rollback by hand, on one line (a log field): ``update-traffic --to-revisions`` keeps the tags."""
    return one_line(pin_command(alert.service, split or {target: 100}))


def render(
    alert: Alert,
    decision: Decision,
    action: Action | card.CardState,
    dry_run: bool = False,
    related: Sequence[str] = (),
    buttons: bool = False,
) -> Message:
    """The message for one decision about an open incident: the card once traffic moved, a report otherwise.

    ``related`` are plain-text lines about other services that made the same change (the blast radius);
    they are escaped here like everything else. ``action`` may be a card state already read back
    (:func:`watchdog.core.card.state_of`)."""
    if action.kind in CARD_STATES:
        state = action if isinstance(action, card.CardState) else action.state()
        message = card.render(alert, decision, state, buttons=buttons)
        if related:
            message.blocks.insert(len(message.blocks) - 2, _related(related))
        return message
    return _report(alert, decision, dry_run, related)


def _report(alert: Alert, decision: Decision, dry_run: bool, related: Sequence[str]) -> Message:
    title, next_step, command = _report_words(alert, decision, dry_run)
    loud = decision.loud
    top = [
        ("<!here> " if loud else "") + f"*Traffic NOT moved:* {split_text(decision.serving)} still serves.",
        card.cause_line(alert, decision) or (f"*Failing revision:* {code(decision.failing)}" if decision.failing
                                             else ""),
        f"*Why not:* {escape(clip(decision.detail, 600))}",
        f"*Next step:* {next_step}",
    ]  # fmt: skip
    blocks: list[dict] = [header(("[DRILL] " if alert.drill else "") + title), section("\n".join(t for t in top if t))]
    for part in command:
        blocks.append(section(part))
    changes = _changes_text(alert, decision)
    if changes:
        blocks.append(section(changes))
    if related:
        blocks.append(_related(related))
    blocks.append(section(card.links_text(alert, decision)))
    blocks.append(fields(card.incident_fields(alert)))
    blocks.append(context(_context(alert, decision, dry_run)))
    text = f"{'[DRILL] ' if alert.drill else ''}{title}: {decision.detail}"
    return Message(escape(clip(text, MAX_TEXT)), blocks[:MAX_BLOCKS], loud=loud)


def _report_words(alert: Alert, decision: Decision, dry_run: bool) -> tuple[str, str, list[str]]:
    """(title, next step, code blocks under it), for each kind of report."""
    ref, name, reason = alert.service, alert.service.service, decision.reason
    words = reason.replace("_", " ")
    by_hand = [block_code(pin_command(ref, decision.split))] if decision.split else []
    if decision.loud:
        if reason == "rollback_did_not_fix":
            return (
                f"Needs a human: {name} still fails after the rollback",
                f"look at {code(decision.failing)}'s logs now: the watchdog will not roll back further.",
                [],
            )
        return (f"Needs a human: {name} ({words})",
                "fix or remove the watchdog's annotations on the service (rollback-watchdog/rollbacks, "
                "rollback-watchdog/memory); until then it changes nothing.", [])  # fmt: skip
    if reason == "dry_run":
        return (
            f"DRY RUN: would roll back {name} to {decision.target}",
            "nothing: a dry run changes nothing. To make this rollback by hand:",
            by_hand,
        )
    if reason == "change_too_old":
        blocks = list(by_hand)
        revert = field_revert_command(ref, decision.trigger_changes)
        if revert:
            blocks += ["Or keep the code and set back only the field (a new revision from the current template):",
                       block_code(revert)]  # fmt: skip
        # The change's age is on the cause line right under the header, and in *Why not*: the header leaves it
        # out, and the next step is short, so the pin command is still on a phone's first screen.
        return (f"Suspect, not acted on: {name} changed its {_fields(decision.trigger_changes)}",
                f"look at what else changed; if {code(decision.breaking)} is the cause after all, pin "
                f"{code(decision.target)} by hand (the {decision.followed} deploy(s) since go out of service too):"
                if by_hand else "look at what else changed recently.", blocks)  # fmt: skip
    if reason in HELD and decision.would_roll_back:
        step = "to make the rollback by hand:"
        extra: list[str] = []
        if reason == "paused":
            step = "resume the watchdog if it should act; or make the rollback by hand:"
            extra = [block_code(watchdog_command("resume", ref))]
        elif reason == "undone":
            step = "it is yours to decide (the rollback was undone). To roll back by hand after all:"
        elif reason in ("out_of_scope", "project_not_allowed"):
            step = f"add {code(str(ref))} to watched_services (terraform) if the watchdog should act on it. By hand:"
        return (f"Rollback held back for {name} ({words})", step, [*extra, *by_hand])
    if reason == "revert":
        return (f"No rollback for {name}: the latest change was a revert",
                f"look at {code(decision.failing)}'s logs: the revert itself is not the cause, and rolling back "
                "would put the reverted value back.", [])  # fmt: skip
    return (f"No rollback for {name} ({words})",
            f"look at {code(decision.failing or name)}'s logs; the watchdog found nothing it may safely roll back.",
            [])  # fmt: skip


def field_revert_command(ref, changes: Sequence[Change]) -> str:
    """``gcloud run services update`` setting back only the trigger fields (their ``old`` values): a field revert
    by hand. It builds a new revision from the service's current template, as ``gcloud run deploy`` does; ""
    when a field has no gcloud flag here."""
    flags = []
    for change in changes:
        old = change.old
        if change.field == "vpc egress":
            flags.append(f"--vpc-egress {old}")
        elif change.field == "vpc connector":
            flags.append("--clear-vpc-connector" if old == "none" else f"--vpc-connector {old}")
        elif change.field == "cloud sql instances":
            flags.append(
                "--clear-cloudsql-instances" if old == "none" else f"--set-cloudsql-instances {old.replace(', ', ',')}"
            )
        else:
            return ""
    if not flags:
        return ""
    return " \\\n  ".join([f"gcloud run services update {ref.service}", *flags,
                           f"--region {ref.region} --project {ref.project}"])  # fmt: skip


def render_refused(
    alert: Alert, what: str, said: str, manual: str, fix: str = "", *, loud: bool = True, split: str = ""
) -> Message:
    """Cloud Run refused the watchdog (403, 404, a conflict that is not an etag race): traffic was not changed
    first, then the command to roll back by hand, then the fix, each in its own block; never a request URL."""
    name = alert.service.service
    lines = [
        ("<!here> " if loud else "") + "*Traffic NOT changed*" + (f": {split} still serves." if split else "."),
        f"*Why:* {escape(what)}. Cloud Run said: {code(said, 400)}",
        "*Next step:* roll back by hand, as someone allowed to change the service:",
    ]
    blocks = [header(f"{':rotating_light: ' if loud else ''}{'[DRILL] ' if alert.drill else ''}No rollback for "
                     f"{name}: {_headline(what)}"), section("\n".join(lines)), section(block_code(manual))]  # fmt: skip
    if fix:
        # one option per line, as every command on a card (slack_text._lines): a phone wraps it less
        blocks.append(
            section("*The fix*, so the watchdog can act next time:\n" + block_code(fix.replace(" --", " \\\n  --")))
        )
    blocks.append(fields(card.incident_fields(alert)))
    blocks.append(context(f"incident {escape(alert.incident_id)} · traffic was not changed"))
    text = f"No rollback for {name}: {what}. Traffic was not changed. Roll back by hand: {one_line(manual)}"
    return Message(escape(clip(text, MAX_TEXT)), blocks, loud=loud)


def _headline(what: str) -> str:
    """``what`` for a header, read at a glance: a denied permission without the resource path it was denied on
    ("the watchdog may not (run.services.update)"); the *Why* line under it names the resource."""
    return re.sub(r"\((\S+) on [^()]*\)", r"(\1)", what)


def cloud_run_said(error: object) -> str:
    """What Cloud Run said, without the request line the client prefixes ("PATCH https://…: "), cut at a sentence."""
    message = str(getattr(error, "message", "") or error)
    message = re.sub(r"^(?:GET|POST|PATCH|PUT|DELETE)\s+https?://\S+:\s*", "", message.strip())
    message = re.sub(r"https?://\S+", "(a URL)", message)
    if len(message) <= 300:
        return message
    cut = message[:300].rfind(". ")
    return message[: cut + 1] if cut > 80 else clip(message, 300)


def render_unlocated(ignored: Ignored) -> Message:
    """A Cloud Run incident the watchdog cannot locate: which policy to fix, and how."""
    text = (
        f":warning: Rollback watchdog cannot act on incident {escape(ignored.incident_id or 'unknown')} for "
        f"service {code(ignored.service or 'unknown')} (policy {escape(ignored.policy or 'unknown')}): "
        f"{escape(ignored.detail)}. Traffic was not changed."
    )
    return Message(clip(text, MAX_TEXT), [section(text)])


def render_revert_failed(alert: Alert, decision: Decision, detail: str) -> Message:
    """The thread reply that pages when a field revert never became Ready (an edit of the card notifies nobody)."""
    text = (
        f":rotating_light: Field revert of {escape(alert.service.service)} failed: {escape(clip(detail, 400))}. "
        f"Traffic stays pinned on {code(decision.target)}, without the deploys after it. Look at the new revision's "
        "logs, then move traffic by hand when ready."
    )
    return Message(clip(text, MAX_TEXT), [section(text)], loud=True)


def render_recovery(alert: Alert, recovered: Recovery, pinned: bool = True) -> Message:
    """The thread reply when an incident the watchdog acted on closes (``pinned``: traffic, as read, still is)."""
    parts = []
    if recovered.alert_to_rollback is not None:
        parts.append(f"alert → rollback {duration(recovered.alert_to_rollback)}")
    parts.append(f"rollback → recovery {duration(recovered.rollback_to_recovery)}")
    text = (
        f":white_check_mark: {escape(alert.service.service)} recovered: incident "
        f"{escape(alert.incident_id)} closed ({', '.join(parts)})."
    )
    if pinned:
        text += (f" Traffic is still pinned to {code(recovered.record.restored)}; after the fix run "
                 f"{code(one_line(roll_forward_command(alert.service)))}")  # fmt: skip
    return Message(clip(text, MAX_TEXT), [section(text)])


def _fields(changes: Sequence[Change]) -> str:
    return ", ".join(c.field for c in changes[:2]) or "configuration"


def _changes_text(alert: Alert, decision: Decision) -> str:
    lines = []
    if decision.trigger_changes:
        lines.append(f"*What changed* in {code(decision.breaking)}{card.when_and_who(alert, decision)}:")
        lines += [f"• *{escape(c.field)}*: {code(c.old)} → {code(c.new)}" for c in decision.trigger_changes]
        lines += [f"*The fix* ({escape(rule)}): {escape(fix)}" for rule, fix in decision.fixes]
    rest = [c for c in decision.changes if c not in decision.trigger_changes]
    if rest:
        heading = "*Also different* from the rollback target:" if decision.target else "*Configuration diff*:"
        lines.append(heading)
        lines += [f"• {escape(c.field)}: {code(c.old)} → {code(c.new)}" for c in rest[:25]]
        if len(rest) > 25:
            lines.append(f"… and {len(rest) - 25} more")
    return "\n".join(lines)


def _related(related: Sequence[str]) -> dict:
    lines = [f"• {escape(line)}" for line in related[:15]]
    return section("*Same change elsewhere (last 24 h):*\n" + "\n".join(lines))


def _context(alert: Alert, decision: Decision, dry_run: bool) -> str:
    bits = [f"decision `{escape(decision.reason)}`", f"alert via {escape(alert.found_by)}",
            "traffic was not changed"]  # fmt: skip
    if dry_run or decision.reason == Reason.DRY_RUN:
        bits.append("*DRY RUN*")
    if alert.drill:
        bits.append("*DRILL*")
    return " · ".join(bits)
