"""The incident card: one Slack message per rollback, updated in place as its state moves. Pure code.

States: ``rolling_back`` (posted as soon as Cloud Run accepted the traffic
update), then ``rolled_back`` (verified) / ``unverified`` / ``failed``. The card
says, in this order: the state; what changed, egress first, with the fix for
that rule (the same words as ``check``); who deployed the breaking revision and
when; what else the rollback put back; links (service, logs of the failing
revision, the incident); the commands to undo, roll forward and pause; the
buttons (bot mode with interactivity); a plain-words footer.

Everything from the alert or the service is escaped *after* it is clipped, and
a block too long for Slack loses whole lines, never half an entity or a link.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from watchdog.core import actions as card_actions
from watchdog.core.decision import Decision
from watchdog.core.intake import Alert
from watchdog.core.report import duration, escape

ROLLING_BACK = "rolling_back"
HEADLINES = {  # (emoji, headline): the emoji shows in the card, the words also in the notification text
    "rolling_back": (":hourglass_flowing_sand:", "Rolling back {service} to {target}"),
    "rolled_back": (":white_check_mark:", "Rolled back {service} to {target}, verified"),
    "unverified": (":warning:", "Rollback of {service} not verified"),
    "failed": (":rotating_light:", "ROLLBACK FAILED for {service}"),
    "recovered": (":white_check_mark:", "Recovered: {service} on {target}"),
    "escalated": (":rotating_light:", "NOT recovered: {service} still fails on {target}"),
    "reverting_field": (":hourglass_flowing_sand:", "Rolled back {service} to {target}; reverting only the field"),
    "field_reverted": (":white_check_mark:", "Field reverted on {service}: {revert} serves, code kept"),
    "revert_failed": (":rotating_light:", "Field revert FAILED for {service}: traffic stays pinned on {target}"),
}
SECTION = 3000


@dataclass(frozen=True)
class CardState:
    kind: str  # one of HEADLINES
    error: str = ""
    seconds: float | None = None
    revert: str = ""  # the field-revert revision
    kept: tuple[tuple[str, str], ...] = ()  # its images: (as the failing revision names them, as pinned)
    note: str = ""  # what became of the field revert, when it is not the state itself
    released: bool = False  # the field revert's share follows LATEST again: the pin is released


def code(text: object, limit: int = 300) -> str:
    raw = str(text)
    raw = raw if len(raw) <= limit else raw[: limit - 1] + "…"  # clip, then escape
    return "`" + escape(raw).replace("`", "'") + "`"


def block_code(text: str) -> str:
    return "```" + escape(text).replace("```", "'''") + "```"


def link(url: str, label: str) -> str:
    safe = url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
    return f"<{safe}|{escape(label)}>"


def fit(text: str, limit: int = SECTION) -> str:
    """``text`` within ``limit``: whole lines dropped from the end, so no entity or link is cut."""
    if len(text) <= limit:
        return text
    lines = text.split("\n")
    while lines and len("\n".join(lines)) + 2 > limit:
        lines.pop()
    return ("\n".join(lines) + "\n…") if lines else "…"


def render(
    alert: Alert, decision: Decision, state: CardState, *, buttons: bool = False, dry_run: bool = False
) -> tuple[str, list[dict]]:
    """(fallback text, blocks) of the card in ``state``."""
    ref = alert.service
    prefix = "[DRILL] " if alert.drill else ""
    emoji, words = HEADLINES[state.kind]
    headline = prefix + words.format(service=ref.service, target=decision.target, revert=state.revert)
    loud = state.kind in ("failed", "revert_failed") or decision.loud
    moved = ", ".join(code(r) for r in (decision.moved_from or (decision.failing,)))
    after = ", ".join(f"{code(r)} {p}%" for r, p in sorted(decision.split.items(), key=lambda kv: -kv[1]) if p)
    if state.kind == "field_reverted" and state.revert:
        after = f"{code(state.revert)} {decision.split.get(decision.target, 100)}%"
    summary = [("<!here> " if loud else "") + f"*Traffic:* {moved} → {after or code(decision.target) + ' 100%'}"]
    if decision.trust:
        summary.append(f"*Why {code(decision.target)}:* {escape(decision.trust)}")
    tags = [e["tag"] for e in decision.traffic if e.get("tag")]
    if tags:
        summary.append("Traffic tags kept: " + ", ".join(code(t) for t in tags[:20]))
    if decision.skipped:
        summary.append("Skipped: " + ", ".join(code(s) for s in decision.skipped[:20]))
    shares = ",".join(f"{r}={p}" for r, p in sorted(decision.split.items(), key=lambda kv: -kv[1]) if p)
    manual = (
        f"gcloud run services update-traffic {ref.service} --to-revisions {shares or decision.target + '=100'} "
        f"--region {ref.region} --project {ref.project}"
    )
    if state.kind == "failed":
        summary.append(f":rotating_light: Cloud Run says: {code(state.error, 500)}")
        summary.append(f"Roll back by hand: {code(manual, 500)}")
    elif state.kind == "unverified":
        summary.append(f":warning: {escape(state.error[:300])}")
    elif state.kind == "rolled_back" and state.seconds is not None:
        took = f"{state.seconds * 1000:.0f} ms" if state.seconds < 1 else f"{state.seconds:.1f} s"
        summary.append(f"Verified {took} after the alert reached the watchdog.")
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{emoji} {headline}"[:150], "emoji": True}},
        _section("\n".join(summary)),
        {"type": "section", "fields": fields(alert)},
    ]
    blocks.append(_section(_what_changed(alert, decision)))
    remedy = _remedy(decision, state)
    if remedy:
        blocks.append(_section(remedy))
    reverted = _also_reverted(decision) if state.kind != "field_reverted" else ""
    if reverted:
        blocks.append(_section(reverted))
    blocks.append(_section(_links(alert, decision)))
    blocks.append(_section(_commands(alert, decision)))
    if buttons and state.kind in (
        "rolled_back", "unverified", "rolling_back", "recovered", "escalated", "reverting_field", "field_reverted",
        "revert_failed",
    ):  # fmt: skip
        blocks.append(_buttons(alert, decision))
    if state.kind in ("reverting_field", "field_reverted"):
        footer = (
            f"The rollback watchdog pinned traffic to {decision.target}, then created {state.revert} (labelled "
            "rollback-watchdog=field-revert); it deletes no revision. A later deploy that passes the old flag "
            f"re-applies it: the deploy-time warning catches it. Reason code: {decision.reason}."
        )
    else:
        footer = (
            "The rollback watchdog moved traffic only: no revision was created or deleted. "
            f"Traffic stays on {decision.target} until someone moves it. Reason code: {decision.reason}."
        )
    if dry_run:
        footer = "DRY RUN: traffic was not changed. " + footer
    if not alert.sends_close:
        footer += " This is a log-based policy: Monitoring sends no 'closed' notification, so no recovery follow-up."
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": fit(escape(footer), 2000)}]})
    text = f"{headline}: {decision.detail}"
    if state.kind == "failed":
        text += f" Rollback error: {state.error[:300]}. Roll back by hand: {manual}"
    return escape(text[:3500]), blocks


def fields(alert: Alert) -> list[dict]:
    """The service, project / region, incident (linked) and policy: the same four fields on every message."""
    ref = alert.service
    incident = link(alert.url, alert.incident_id[:200]) if alert.url else escape(alert.incident_id[:200])
    fields = [
        f"*Service*\n{code(ref.service)}",
        f"*Project / region*\n{escape(ref.project)} / {escape(ref.region)}",
        f"*Incident*\n{incident}",
        f"*Policy*\n{escape((alert.policy_name or 'unknown')[:300])}",
    ]
    return [{"type": "mrkdwn", "text": fit(f, 2000)} for f in fields]


def _what_changed(alert: Alert, decision: Decision) -> str:
    lines = [f"*What changed* in {code(decision.breaking)}{_when_and_who(alert, decision)}:"]
    for change in decision.trigger_changes:
        lines.append(f"• *{escape(change.field)}*: {code(change.old)} → {code(change.new)}")
    for rule, fix in decision.fixes:
        lines.append(f"*The fix* ({escape(rule)}): {escape(fix)}")
    if decision.breaking_deleted:
        lines.append(f"{code(decision.breaking)} has since been deleted.")
    return "\n".join(lines)


def _when_and_who(alert: Alert, decision: Decision) -> str:
    from datetime import datetime

    bits = []
    try:
        created = datetime.fromisoformat(decision.breaking_created.replace("Z", "+00:00"))
    except ValueError:
        created = None
    if created is not None:
        bits.append(f"deployed {created.strftime('%Y-%m-%d %H:%M')} UTC")
        if alert.started_at and alert.started_at > created.timestamp():
            bits.append(f"{duration(alert.started_at - created.timestamp())} before the alert")
    if decision.breaking_creator:
        bits.append(f"by {decision.breaking_creator}")
    return (", " + escape(", ".join(bits))) if bits else ""


def _remedy(decision: Decision, state: CardState) -> str:
    """What the pin takes out of service, and what the field revert keeps (watchdog/core/field_revert.py)."""
    lines = []
    if decision.taken_out and state.kind not in ("field_reverted",):
        count = len(decision.taken_out)
        lines.append(f"*The pin takes out of service* {count} deploy{'s' if count > 1 else ''} (newest first):")
        lines += [f"• {code(revision)} {code(images)}" for revision, images in decision.taken_out[:8]]
        if count > 8:
            lines.append(f"… and {count - 8} more")
    if state.kind == "reverting_field":
        lines.append(
            f":hourglass_flowing_sand: *Field revert under way:* {code(state.revert)} is being created with "
            f"{code(decision.failing)}'s code and only the changed field set back; traffic moves to it once it is "
            "Ready."
        )
    elif state.kind == "field_reverted":
        changed = ", ".join(f"{escape(c.field)} {code(c.new)}" for c in decision.trigger_changes) or "the field"
        lines.append(f"*Field reverted:* {code(state.revert)} runs {code(decision.failing)}'s code with {changed} set "
                     f"back to {code(decision.target)}'s value.")  # fmt: skip
        for image, pinned in state.kept[:4]:
            lines.append(f"• code kept: {code(image)} (pinned as {code(pinned, 120)})")
        if state.released:
            lines.append("The pin is released: traffic follows the latest revision again, as before the rollback.")
    elif state.kind == "revert_failed":
        lines.append(f":rotating_light: *The field revert failed:* {escape(state.error[:300])}")
    if state.note:
        lines.append(f"*Field revert not made:* {escape(state.note[:300])}")
    return "\n".join(lines)


def _also_reverted(decision: Decision) -> str:
    rest = [c for c in decision.changes if c not in decision.trigger_changes]
    if not rest:
        return ""
    lines = ["*The rollback also put back* (everything else that differs from the target):"]
    for change in rest[:12]:
        if ".env." in change.field:
            lines.append(f"• env {code(change.field.rsplit('.env.', 1)[1])}")
        else:
            lines.append(f"• {escape(change.field)}: {code(change.old)} (was {code(change.new)})")
    if len(rest) > 12:
        lines.append(f"… and {len(rest) - 12} more (`rollback-watchdog explain` lists them)")
    return "\n".join(lines)


def _links(alert: Alert, decision: Decision) -> str:
    ref = alert.service
    console = f"https://console.cloud.google.com/run/detail/{ref.region}/{ref.service}/revisions?project={ref.project}"
    query = (
        f'resource.type="cloud_run_revision"\nresource.labels.service_name="{ref.service}"\n'
        f'resource.labels.revision_name="{decision.failing}"'
    )
    logs = f"https://console.cloud.google.com/logs/query;query={quote(query, safe='')}?project={ref.project}"
    parts = [link(console, f"{ref.service} in Cloud Run"), link(logs, f"logs of {decision.failing}")]
    if alert.url:
        parts.append(link(alert.url, "the incident"))
    return "*Links:* " + " · ".join(parts)


def _commands(alert: Alert, decision: Decision) -> str:
    """Each command in its own code block, one option group per line (a trailing backslash): nothing wraps mid-word."""
    ref = alert.service
    where = f"--region {ref.region} --project {ref.project}"
    before = decision.record.before if decision.record else ()
    traffic = f"gcloud run services update-traffic {ref.service}"
    pause = ("rollback-watchdog pause", f"--project {ref.project} --region {ref.region}", f"--service {ref.service}")
    undo = _undo(before, decision)
    lines = ["*Undo* (traffic as it was before the rollback):", block_code(_lines(traffic, undo, where))]
    if decision.offer_revert:
        revert = ("rollback-watchdog revert-field", f"--project {ref.project} --region {ref.region}",
                  f"--service {ref.service} --incident {alert.incident_id}")  # fmt: skip
        lines += ["*Revert only the field* (a new revision with the failing code, the field set back):",
                  block_code(_lines(*revert))]  # fmt: skip
    if undo != "--to-latest":  # never the same command twice under two names
        lines += ["*Roll forward* once the fix is deployed:", block_code(_lines(traffic, "--to-latest", where))]
    lines += ["*Pause* the watchdog for this service:", block_code(_lines(*pause))]
    return "\n".join(lines)


def _lines(*parts: str) -> str:
    return " \\\n  ".join(parts)


def _undo(before: tuple, decision: Decision) -> str:
    shares = [(r, p) for r, p, _tag in before if p] if before else [(r, p) for r, p in decision.serving.items() if p]
    if shares == [("LATEST", 100)]:
        return "--to-latest"
    return "--to-revisions " + ",".join(f"{r}={p}" for r, p in shares)


def _buttons(alert: Alert, decision: Decision) -> dict:
    """The card's buttons (watchdog/core/actions.py holds them with the rules of each click)."""
    return card_actions.buttons(alert.service, alert.incident_id, offer_revert=decision.offer_revert)


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": fit(text)}}
