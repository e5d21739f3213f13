"""The incident card: one Slack message per rollback, rendered from the state it describes. Pure code.

A card is read in ten seconds during an incident, often on a phone, so every state says, in this
order: what it is (the header), one always-true status line about traffic as Cloud Run reports it,
the cause in one line, one next step, the buttons that fit the state; then the details (what
changed and its fix, what the pin took out of service or what the field revert kept, links, the
commands, who did what and when, the incident's fields) and a footer that is true for the state.

States (:data:`STATES`), each with its own words (:func:`_words`): ``rolling_back``,
``rolled_back``, ``unverified``, ``failed``, ``reverting_field``, ``field_reverted``,
``revert_failed``, ``recovered``, ``escalated``, ``undone``, ``paused``. :func:`state_of` derives the
state of a rollback already made from its ledger record and the service as read, so every update of
the card (a click, the command line, a verdict, a field revert finishing) renders the same card for
the same facts, never a patch over an older body.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from urllib.parse import quote

from watchdog.core import actions as card_actions
from watchdog.core import ledger
from watchdog.core.decision import Decision
from watchdog.core.intake import Alert
from watchdog.core.slack_text import (
    Message,
    block_code,
    clip,
    clock,
    code,
    context,
    duration,
    escape,
    fields,
    header,
    link,
    one_line,
    pin_command,
    roll_forward_command,
    section,
    split_text,
    to_revisions,
    traffic_command,
    watchdog_command,
)
from watchdog.core.traffic import traffic_split
from watchdog.core.vocabulary import State

ROLLING_BACK, ROLLED_BACK, UNVERIFIED, FAILED = State.ROLLING_BACK, State.ROLLED_BACK, State.UNVERIFIED, State.FAILED
REVERTING_FIELD, FIELD_REVERTED, REVERT_FAILED = State.REVERTING_FIELD, State.FIELD_REVERTED, State.REVERT_FAILED
RECOVERED, ESCALATED, UNDONE, PAUSED = State.RECOVERED, State.ESCALATED, State.UNDONE, State.PAUSED
STATES = (ROLLING_BACK, ROLLED_BACK, UNVERIFIED, FAILED, REVERTING_FIELD, FIELD_REVERTED, REVERT_FAILED, RECOVERED,
          ESCALATED, UNDONE, PAUSED)  # fmt: skip
LOUD = (FAILED, REVERT_FAILED, ESCALATED)  # someone must look now
NO_UNDO = (FAILED, UNDONE)  # nothing to undo: traffic did not move, or it moved back already
EMOJI: dict[str, str] = {
    ROLLING_BACK: ":hourglass_flowing_sand:", ROLLED_BACK: ":white_check_mark:", UNVERIFIED: ":warning:",
    FAILED: ":rotating_light:", REVERTING_FIELD: ":hourglass_flowing_sand:", FIELD_REVERTED: ":white_check_mark:",
    REVERT_FAILED: ":rotating_light:", RECOVERED: ":white_check_mark:", ESCALATED: ":rotating_light:",
    UNDONE: ":leftwards_arrow_with_hook:", PAUSED: ":double_vertical_bar:",
}  # fmt: skip
# The states whose next step is "fix the cause (…)": their details name the rules, not the fix again.
FIX_IN_NEXT_STEP = (ROLLED_BACK, RECOVERED)
EVENT_WORDS = {"undo_rollback": ":leftwards_arrow_with_hook: Undone", "pause_service": ":double_vertical_bar: Paused",
               "resume_service": ":arrow_forward: Resumed", "acknowledge": ":eyes: Acknowledged",
               "revert_field": ":wrench: Field revert asked"}  # fmt: skip


@dataclass(frozen=True)
class CardState:
    """The state a card describes, and what was read to describe it."""

    kind: str  # one of STATES
    error: str = ""  # what Cloud Run said (failed, unverified), or why the field revert failed
    seconds: float | None = None  # from the delivery to the confirmed rollback
    revert: str = ""  # the field-revert revision
    kept: tuple[tuple[str, str], ...] = ()  # its images: (as the failing revision names them, as pinned)
    note: str = ""  # a field revert that was not made, and why
    released: bool = False  # the field revert's share follows LATEST again: the pin is released
    serving: dict[str, int] | None = None  # traffic as Cloud Run reports it now (trafficStatuses); None: not read
    read_back: bool = True  # False: ``serving`` is what a write just asked for, not yet reported by Cloud Run
    events: tuple = ()  # the record's (action, user, at, action_ts): who did what from the card or the CLI
    paused: dict = field(default_factory=dict)  # ledger.pause_info: by, at, reason
    is_paused: bool = False  # the service's pause switch is on (whatever state the card leads with)
    verdict: str = ""  # verification's sentence (recovered, escalated)
    follow_up: str = ""  # what will happen next without anyone acting (verification), true for this card


def state_of(record: ledger.Record, service: dict, *, verdict: str = "", follow_up: str = "") -> CardState:
    """The card state of a rollback already made, from its record and the service as read now.

    Which wins: undone (traffic went back) over paused over the verdict over the field revert over
    the pin. A human's last word is what the card leads with."""
    annotations = service.get("annotations") if isinstance(service.get("annotations"), dict) else {}
    serving = {k: v for k, v in traffic_split(service).items() if v}
    common = CardState(ROLLED_BACK, serving=serving, events=record.events, verdict=verdict, follow_up=follow_up,
                       revert=record.revert, released=_follows_latest(service), is_paused=ledger.paused(annotations),
                       paused=ledger.pause_info(annotations))  # fmt: skip
    if record.undone_at() is not None:
        return replace(common, kind=UNDONE)
    if ledger.paused(annotations):
        return replace(common, kind=PAUSED)
    if record.state in (RECOVERED, ESCALATED):
        return replace(common, kind=record.state)
    if record.revert_state == ledger.REVERT_SERVING:
        return replace(common, kind=FIELD_REVERTED)
    if record.revert_state == ledger.REVERT_PENDING:
        return replace(common, kind=REVERTING_FIELD)
    if record.revert_state == ledger.REVERT_FAILED:
        return replace(common, kind=REVERT_FAILED, error=f"{record.revert} never became Ready")
    confirmed = serving == ({record.to_revision: 100} if not record.after else dict(record.after))
    return replace(
        common, kind=ROLLED_BACK if confirmed else UNVERIFIED, error="" if confirmed else "traffic moved since"
    )


def render(alert: Alert, decision: Decision, state: CardState, *, buttons: bool = False) -> Message:
    """The card in ``state``: header, status, cause, next step, buttons, then the details and the footer."""
    ref = alert.service
    words = _words(alert, decision, state)
    loud = state.kind in LOUD or decision.loud
    top = [("<!here> " if loud else "") + words.status, _cause(alert, decision)]
    if words.next_step:
        top.append(f"*Next step:* {words.next_step}")
    blocks: list[dict] = [header(f"{EMOJI[state.kind]} {_drill(alert)}{words.headline}"), section("\n".join(top))]
    if words.command:
        blocks.append(section(block_code(words.command)))
    if buttons:
        paused = state.kind == PAUSED or state.is_paused
        blocks.append(
            card_actions.buttons(
                ref,
                alert.incident_id,
                paused=paused,
                # paused: hands off (the click is refused, and ticks hold a Ready revert's traffic move)
                offer_revert=decision.offer_revert and not state.revert and not paused,
                undo=state.kind not in NO_UNDO,
            )
        )
    in_next_step = bool(decision.fixes) and state.kind in FIX_IN_NEXT_STEP and not state.revert
    for part in (_what_changed(alert, decision, in_next_step), _remedy(decision, state),
                 _also_put_back(decision, state)):  # fmt: skip
        if part:
            blocks.append(section(part))
    blocks.append(section(links_text(alert, decision)))
    blocks.append(section(_commands(alert, decision, state, words.command)))
    history = _history(state)
    if history:
        blocks.append(section(history))
    blocks.append(fields(incident_fields(alert)))
    blocks.append(context(escape(words.footer)))
    text = f"{_drill(alert)}{words.headline}: {_plain_cause(decision)}"
    if state.kind == FAILED:
        text += f" Cloud Run said: {state.error}. Roll back by hand: {one_line(words.command)}"
    return Message(escape(clip(text, 3500)), blocks[:50], loud=loud, card=alert.incident_id)


def _plain_cause(decision: Decision) -> str:
    """The cause for the notification text (no mrkdwn): "R2 changed vpc egress private-ranges-only → all-traffic"."""
    if not decision.trigger_changes:
        return decision.detail
    first = decision.trigger_changes[0]
    return f"{decision.breaking} changed {first.field} {first.old} → {first.new}"


@dataclass(frozen=True)
class _Words:
    headline: str  # plain text
    status: str  # mrkdwn, escaped: the traffic as read, first thing on the card
    next_step: str  # mrkdwn, escaped: one thing to do (or "nothing yet")
    footer: str  # plain text, escaped by the caller
    command: str = ""  # the next step's command, in a code block under it


def _words(alert: Alert, decision: Decision, state: CardState) -> _Words:
    """Each state's own headline, status line, next step and footer: no state borrows another's."""
    ref, target, failing = alert.service, decision.target, decision.failing
    now = split_text(state.serving) if state.serving is not None else split_text(decision.split)
    as_read = "" if state.serving is not None and state.read_back else " (as set; not read back)"
    if state.serving is not None and not state.read_back:
        as_read = " (as just asked for; Cloud Run applies it within seconds)"
    pinned = f"*Traffic:* {now}{as_read}, pinned by the watchdog"
    moved_only = "The watchdog moved traffic only: no revision was created or deleted."
    made = f"The watchdog pinned traffic to {target}, then created {state.revert or 'a revision'} (label " \
        "rollback-watchdog=field-revert); it deletes no revision."  # fmt: skip
    code_of = f"{failing}'s code" + (f" ({_images(decision)})" if _images(decision) else "")
    fix = _fix_words(decision)
    if state.kind == ROLLING_BACK:
        return _Words(f"Rolling back {ref.service}",
                      f"*Traffic:* moving {_moved(decision)} → {split_text(decision.split)}; Cloud Run accepted the "
                      "update", "nothing yet: this card changes when Cloud Run confirms (seconds).",
                      f"{moved_only} {state.follow_up}")  # fmt: skip
    if state.kind == ROLLED_BACK:
        took = f" (verified {_took(state.seconds)} after the alert reached the watchdog)" if state.seconds else ""
        nxt = f"{fix}, deploy it, then route traffic to the new revision:"
        if decision.offer_revert and not state.revert:
            nxt = f"{fix}, deploy it, then route traffic to it; or keep the code and revert only the field " \
                "(the *Revert field* button or `rollback-watchdog revert-field`). To route traffic:"  # fmt: skip
        return _Words(f"Rolled back {ref.service} to {target}", pinned + took, nxt,
                      f"{moved_only} Traffic stays on {target} until someone moves it. {state.follow_up}",
                      roll_forward_command(ref))  # fmt: skip
    if state.kind == UNVERIFIED:
        return _Words(f"Rollback of {ref.service} not verified",
                      f"*Traffic:* Cloud Run reports {now}{as_read}; the move to {code(target)} is not verified"
                      + (f" ({escape(clip(state.error, 200))})" if state.error else ""),
                      "look at the service in the console; if the failing revision still serves, run the rollback "
                      "by hand:", f"{moved_only} {state.follow_up}", pin_command(ref, decision.split))  # fmt: skip
    if state.kind == FAILED:
        if state.serving is None:
            now, as_read = "the service could not be read back; what", ""
        refused_target = target and target in state.error
        nxt = "roll back by hand:"
        command = pin_command(ref, decision.split)
        if refused_target:
            nxt = f"Cloud Run refused {code(target)}: pick another Ready revision without the change and move " \
                "traffic to it by hand. The revisions:"  # fmt: skip
            command = f"gcloud run revisions list --service {ref.service} --region {ref.region} --project {ref.project}"
        return _Words(f"ROLLBACK FAILED for {ref.service}",
                      f"*Traffic NOT moved:* {now}{as_read} still serves. Cloud Run said: "
                      f"{code(clip(state.error, 400), 400)}", nxt,
                      "Nothing changed: the watchdog's update did not take effect.",
                      command)  # fmt: skip
    if state.kind == REVERTING_FIELD:
        return _Words(f"Rolled back {ref.service}; reverting only the field",
                      f"{pinned}; creating {code(state.revert)} with {escape(code_of)} and the field set back",
                      f"nothing yet: traffic moves to {code(state.revert)} once it is Ready (usually within a "
                      "minute). If it never becomes Ready, the pin stays and this card says so.",
                      f"{made} {state.follow_up}")  # fmt: skip
    if state.kind == FIELD_REVERTED:
        released = " The pin is released: traffic follows the latest revision again." if state.released else ""
        return _Words(f"Field reverted on {ref.service}: code kept",
                      f"*Traffic:* {now}{as_read}: {code(state.revert)} runs {escape(code_of)} with "
                      f"{_trigger_words(decision)} set back.{released}",
                      "make the fix permanent where you deploy from: a deploy that passes the old value brings it "
                      "back (the deploy-time warning catches it).", f"{made} {state.follow_up}")  # fmt: skip
    if state.kind == REVERT_FAILED:
        return _Words(f"Field revert FAILED for {ref.service}: still pinned to {target}",
                      f"{pinned}, without the deploys after it. {escape(clip(state.error, 300))}",
                      f"look at {code(state.revert)}'s logs; move traffic by hand when ready.",
                      made, roll_forward_command(ref))  # fmt: skip
    if state.kind == RECOVERED:
        restored = state.revert or target
        nxt = f"{fix}, deploy it, then route traffic to it:" if not state.revert else \
            "make the fix permanent where you deploy from (the reverted field comes back with the next deploy " \
            "that passes it)."  # fmt: skip
        return _Words(f"Recovered: {ref.service} on {restored}",
                      f"*Traffic:* {now}{as_read}. {escape(state.verdict)}", nxt,
                      made if state.revert else moved_only,
                      "" if state.revert else roll_forward_command(ref))  # fmt: skip
    if state.kind == ESCALATED:
        restored = state.revert or target
        return _Words(f"NOT recovered: {ref.service} still fails on {restored}",
                      f"*Traffic:* {now}{as_read}. {escape(state.verdict)}",
                      f"look at {code(restored)}'s logs now: the watchdog will not roll back further.",
                      made if state.revert else moved_only)  # fmt: skip
    if state.kind == UNDONE:
        who, at = _last(state.events, "undo_rollback")
        return _Words(f"Undone: {ref.service} serves as before the rollback",
                      f"*Traffic:* {now}{as_read}, as before the rollback: undone by {who} at {at}",
                      f"the watchdog will not roll {code(failing)} back again automatically until a new deploy or a "
                      "resume:", "Undo put traffic back as it was; nothing was deleted.",
                      watchdog_command("resume", ref))  # fmt: skip
    who = escape(state.paused.get("by") or "someone")
    at = clock(state.paused["at"]) if state.paused.get("at") else "an unknown time"
    why = f" ({escape(state.paused['reason'])})" if state.paused.get("reason") else ""
    return _Words(f"Paused: the watchdog will not roll back {ref.service}",
                  f"*Traffic:* {now}{as_read}. Paused by {who} at {at}{why}: alerts are reported, not acted on",
                  "resume when ready (the *Resume* button, or):",
                  "Paused: the watchdog changes nothing on this service.", watchdog_command("resume", ref))  # fmt: skip


def incident_fields(alert: Alert) -> list[str]:
    """The service, project / region, incident (linked) and policy: the same four fields on every message."""
    ref = alert.service
    incident = link(alert.url, clip(alert.incident_id, 200)) if alert.url else escape(clip(alert.incident_id, 200))
    return [
        f"*Service*\n{code(ref.service)}",
        f"*Project / region*\n{escape(ref.project)} / {escape(ref.region)}",
        f"*Incident*\n{incident}",
        f"*Policy*\n{escape(clip(alert.policy_name or 'unknown', 300))}",
    ]


def cause_line(alert: Alert, decision: Decision) -> str:
    """One line: the field, its values, the revision that changed it, who deployed it and how long before."""
    changes = decision.trigger_changes
    if not changes:
        return ""
    first = changes[0]
    more = f" (+{len(changes) - 1} more below)" if len(changes) > 1 else ""
    return (f"*Cause:* {escape(first.field)} {code(first.old)} → {code(first.new)} in {code(decision.breaking)}"
            f"{when_and_who(alert, decision)}{more}")  # fmt: skip


def _cause(alert: Alert, decision: Decision) -> str:
    return cause_line(alert, decision) or f"*Failing revision:* {code(decision.failing)}"


def _drill(alert: Alert) -> str:
    return "[DRILL] " if alert.drill else ""


def _moved(decision: Decision) -> str:
    return ", ".join(code(r) for r in (decision.moved_from or (decision.failing,)))


def _took(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _fix_words(decision: Decision) -> str:
    """'fix the cause (keep private-ranges-only and add Cloud NAT …)': the most specific rule's fix (the last
    that fails: precheck lists the flip before the combination that breaks), in a clause."""
    if decision.fixes:
        return f"fix the cause ({escape(clip(decision.fixes[-1][1], 220))})"
    return "fix the cause"


def _trigger_words(decision: Decision) -> str:
    return ", ".join(f"{escape(c.field)} {code(c.old)}" for c in decision.trigger_changes) or "the field"


def _images(decision: Decision) -> str:
    return next((images for revision, images in decision.taken_out if revision == decision.failing), "")


def when_and_who(alert: Alert, decision: Decision) -> str:
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


def _what_changed(alert: Alert, decision: Decision, fix_in_next_step: bool = False) -> str:
    """The trigger changes and the rules they break; the fix once: the most specific rule's (precheck lists the
    flip before the combination that breaks), and not at all when the next step above already says it."""
    if not decision.trigger_changes and not decision.fixes:
        return ""
    lines = [f"*What changed* in {code(decision.breaking)}{when_and_who(alert, decision)}:"]
    lines += [f"• *{escape(c.field)}*: {code(c.old)} → {code(c.new)}" for c in decision.trigger_changes]
    if decision.fixes:
        rules = ", ".join(code(rule) for rule, _fix in decision.fixes)
        if fix_in_next_step:
            lines.append(f"*Rules it breaks:* {rules} (the fix is the next step above)")
        else:
            lines.append(f"*Rules it breaks:* {rules}")
            lines.append(f"*The fix:* {escape(decision.fixes[-1][1])}")
    if decision.breaking_deleted:
        lines.append(f"{code(decision.breaking)} has since been deleted.")
    return "\n".join(lines)


def _remedy(decision: Decision, state: CardState) -> str:
    """Why the target is trusted; what the pin takes out of service; what the field revert keeps
    (watchdog/core/field_revert.py)."""
    lines = []
    if decision.target and decision.trust and state.kind not in (UNDONE, FAILED) and not state.revert:
        lines.append(f"*Why {code(decision.target)}:* {escape(clip(decision.trust, 300))}")
    tags = [e["tag"] for e in decision.traffic if e.get("tag")]
    if tags and state.kind not in (UNDONE, FAILED):
        lines.append("*Traffic tags kept:* " + ", ".join(code(t) for t in tags[:20]))
    if decision.taken_out and state.kind not in (FIELD_REVERTED, UNDONE, FAILED) and not state.released:
        count = len(decision.taken_out)
        lines.append(f"*The pin takes out of service* {count} deploy{'s' if count > 1 else ''} (newest first):")
        lines += [f"• {code(revision)} {code(images)}" for revision, images in decision.taken_out[:8]]
        if count > 8:
            lines.append(f"… and {count - 8} more")
    if state.kind == FIELD_REVERTED or (state.kind == RECOVERED and state.revert):
        for image, pinned in state.kept[:4]:
            lines.append(f"• code kept: {code(image)} (pinned as {code(pinned, 120)})")
    if state.note:
        lines.append(f"*Field revert not made:* {escape(clip(state.note, 300))}")
    return "\n".join(lines)


def _also_put_back(decision: Decision, state: CardState) -> str:
    """A pin puts back everything that differs from the target: say what, so nobody is surprised later."""
    if state.revert or state.kind in (FAILED, UNDONE):
        return ""
    rest = [c for c in decision.changes if c not in decision.trigger_changes]
    if not rest:
        return ""
    lines = ["*The pin also put back* (everything else that differs from the target):"]
    for change in rest[:12]:
        if ".env." in change.field:
            lines.append(f"• env {code(change.field.rsplit('.env.', 1)[1])}")
        else:
            lines.append(f"• {escape(change.field)}: {code(change.old)} (was {code(change.new)})")
    if len(rest) > 12:
        lines.append(f"… and {len(rest) - 12} more (`rollback-watchdog explain` lists them)")
    return "\n".join(lines)


def links_text(alert: Alert, decision: Decision) -> str:
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


def _commands(alert: Alert, decision: Decision, state: CardState, shown: str = "") -> str:
    """The commands that fit the state, each in its own code block; never one command under two names, and
    never again the one the next step already shows (``shown``)."""
    ref = alert.service
    lines = []
    undo = _undo_routing(decision)
    if state.kind not in NO_UNDO:
        command = traffic_command(ref, undo)
        if command == shown:  # traffic followed the latest revision before: the roll-forward is the undo
            lines.append("*Undo* (traffic as it was before the rollback): the next step's command above")
        else:
            lines += ["*Undo* (traffic as it was before the rollback):", block_code(command)]
    if decision.offer_revert and not state.revert and state.kind not in NO_UNDO:
        lines += ["*Revert only the field* (a new revision with the failing code, the field set back):",
                  block_code(watchdog_command("revert-field", ref, f"--incident {alert.incident_id}"))]  # fmt: skip
    if state.kind == PAUSED or state.is_paused:
        if watchdog_command("resume", ref) != shown:
            lines += ["*Resume* the watchdog for this service:", block_code(watchdog_command("resume", ref))]
    else:
        lines += ["*Pause* the watchdog for this service:", block_code(watchdog_command("pause", ref))]
    return "\n".join(lines)


def _undo_routing(decision: Decision) -> str:
    before = decision.record.before if decision.record else ()
    shares = {r: p for r, p, _tag in before if p} if before else {r: p for r, p in decision.serving.items() if p}
    if decision.record is not None and decision.record.revert and "LATEST" in shares:
        shares = {(decision.record.latest or r) if r == "LATEST" else r: p for r, p in shares.items()}
    return to_revisions(shares)


def _history(state: CardState) -> str:
    if not state.events:
        return ""
    shown = [f"{EVENT_WORDS.get(action, escape(action))} by {card_actions.who(user)} at {clock(at)}"
             for action, user, at, _ts in state.events[-8:]]  # fmt: skip
    return "*History:*\n" + "\n".join(shown)


def _last(events: tuple, action: str) -> tuple[str, str]:
    found = [(user, at) for kind, user, at, _ts in events if kind == action]
    if not found:
        return "someone", "an unknown time"
    user, at = found[-1]
    return card_actions.who(user), clock(at)


def _follows_latest(service: dict) -> bool:
    return any(
        isinstance(e, dict) and str(e.get("type", "")).endswith("LATEST") and int(e.get("percent") or 0) > 0
        for e in service.get("traffic") or []
    )
