"""On-call acts from the Slack card: undo, pause, resume, acknowledge. Pure code: a click in, a plan out.

The HTTP shell (watchdog/flows/slack_actions.py) verifies the signature and the
clicking user first; this module decides what the click may change:

- ``undo_rollback``: traffic back to exactly how it was before the rollback,
  tags included, but only for the newest rollback of the service and only while
  the service is as that rollback left it. An older card's undo, a deploy since,
  or traffic a human moved refuses the undo: it would overwrite something nobody
  looked at. Undone once, whatever Slack retries.
- ``pause_service``: the service's pause annotation, with who, when and why
  (``rollback-watchdog pause`` writes the same, :func:`paused_annotations`);
  ``resume_service`` clears both (:func:`resumed_annotations`).
- ``acknowledge``: records who is on it.
- ``revert_field``: the field revert a pin offered (``WATCHDOG_FIELD_REVERT=offer``, or a pin that
  keeps later deploys at 0%): a new revision with the failing revision's code and only the changed
  field set back (watchdog/core/field_revert.py). Guarded like undo: only the newest rollback, only
  while traffic is as the pin left it and nothing was deployed since, and once.

Every plan writes who, when and what into the rollback's ledger record, in the
same etag-guarded update as the change itself; a click already recorded (the
same ``action_ts``: Slack's retries, a double delivery) plans nothing.

A write whose answer is lost (a timeout) or refused (409) is never retried
blindly: the shell reads the service again and :func:`after_write` says what is
true by comparing the two reads, so no answer says "nothing was changed"
without having looked.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs

from watchdog.config import ServiceRef
from watchdog.core import ledger
from watchdog.core.traffic import LATEST_TYPE, REVISION_TYPE, short_name, traffic_split

UNDO, PAUSE, RESUME, ACK = "undo_rollback", "pause_service", "resume_service", "acknowledge"
REVERT = "revert_field"
ACTIONS = (UNDO, PAUSE, RESUME, ACK, REVERT)
DONE_WORDS = {UNDO: "undone", PAUSE: "paused", RESUME: "resumed", ACK: "acknowledged", REVERT: "field revert started"}
VERBS = {UNDO: "undo the rollback", PAUSE: "pause the watchdog", RESUME: "resume the watchdog", ACK: "acknowledge",
         REVERT: "revert only the field"}  # fmt: skip
SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")  # a Slack user ID, as a click records it
PAUSE_REASON = "from the card"  # the button's confirm dialog asks nothing
# How long a read of the approvers' user group may stand in for Slack's answer. Only a "yes, a member"
# is reused: someone removed from the group can still act for this long, while a "not a member" is
# always read again, so someone just added is never refused by a stale read.
GROUP_MEMBERS_TTL = 60.0
MAX_FORM = 64 * 1024  # bytes of a form body read; a block_actions payload of a full card is about 15 KB


@dataclass(frozen=True)
class Click:
    action: str
    user: str
    team: str
    channel: str
    message_ts: str
    action_ts: str
    service: ServiceRef
    incident: str
    blocks: tuple = ()  # the card as Slack holds it
    user_name: str = ""  # the clicker's Slack username, as the payload carries it (for `status`)


@dataclass(frozen=True)
class NotAClick:
    """Why a verified payload is not one of the card's clicks.

    ``malformed``: not what Slack sends (a form without one ``payload``, JSON that is not an object, a
    wrong type anywhere): HTTP 400. Otherwise a Slack interaction the card does not handle (another
    payload type, another app's button): acknowledged and ignored.
    """

    reason: str
    malformed: bool = False


@dataclass(frozen=True)
class Plan:
    """What to send: a traffic list and/or annotations (etag-guarded), or nothing with the reason why."""

    outcome: str  # "apply", "already", "refused"; after a lost or refused write also "unknown"
    reason: str
    detail: str
    traffic: tuple[dict, ...] | None = None
    annotations: dict[str, str] | None = None
    event: tuple = ()  # the ledger event (action, user, at, action_ts) a field revert writes with its revision


# --- the request ---------------------------------------------------------------


def signature_headers_wellformed(timestamp: Any, signature: Any) -> bool:
    """The shape Slack signs with: a decimal timestamp and ``v0=`` with 64 lower-case hex digits.

    Checked before the HMAC, so a header that could not be Slack's (missing, non-ASCII, a number
    that is not one) is refused as unauthenticated instead of reaching code that would raise on it.
    """
    return (
        isinstance(timestamp, str)
        and re.fullmatch(r"[0-9]{1,12}", timestamp) is not None
        and isinstance(signature, str)
        and re.fullmatch(r"v0=[0-9a-f]{64}", signature) is not None
    )


def payload_from_form(raw: bytes) -> dict | NotAClick:
    """Slack's interaction body, ``payload=<JSON>`` form-encoded, → the JSON object; or why not (malformed)."""
    if len(raw) > MAX_FORM:
        return NotAClick(f"the body is larger than {MAX_FORM} bytes", malformed=True)
    try:
        form = parse_qs(raw.decode("ascii"), strict_parsing=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return NotAClick("the body is not form-encoded", malformed=True)
    values = form.get("payload") or []
    if len(values) != 1:
        return NotAClick("the form has no single payload field", malformed=True)
    try:
        payload = json.loads(values[0])
    except (ValueError, RecursionError):
        return NotAClick("the payload is not JSON", malformed=True)
    if not isinstance(payload, dict):
        return NotAClick("the payload is not a JSON object", malformed=True)
    return payload


def parse_click(payload: Any) -> Click | NotAClick:
    """A block_actions payload → Click, or why it is not one of the card's clicks (malformed, or ignored)."""
    try:
        return _parse_click(payload)
    except _Malformed as error:
        return NotAClick(str(error), malformed=True)


class _Malformed(ValueError):
    pass


def _parse_click(payload: Any) -> Click | NotAClick:
    if not isinstance(payload, dict):
        raise _Malformed("the payload is not a JSON object")
    kind = _text(payload, "type")
    if kind != "block_actions":
        return NotAClick(f"not a block_actions payload ({kind[:40]!r})")
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions or not all(isinstance(a, dict) for a in actions):
        raise _Malformed("actions is not a list of objects")
    action = actions[0]
    action_id = _text(action, "action_id")
    if action_id not in ACTIONS:
        return NotAClick(f"unknown action {action_id[:40]!r}")
    raw_value, action_ts = _text(action, "value"), _text(action, "action_ts")
    try:
        value = json.loads(raw_value)
        project, region, service = value["s"].split("/")
        incident = value["i"]
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise _Malformed("the button carries no service and incident") from None
    if not isinstance(incident, str) or not all((project, region, service, incident)):
        raise _Malformed("the button carries no service and incident")
    user, team = _object(payload, "user"), _object(payload, "team")
    channel, container, message = (
        _object(payload, "channel"),
        _object(payload, "container"),
        _object(payload, "message"),
    )
    blocks = message.get("blocks", [])
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        raise _Malformed("message.blocks is not a list of objects")
    return Click(
        action=action_id,
        user=_text(user, "id"),
        team=_text(team, "id"),
        channel=_text(channel, "id") or _text(container, "channel_id"),
        message_ts=_text(container, "message_ts") or _text(message, "ts"),
        action_ts=action_ts,
        service=ServiceRef(project, region, service),
        incident=incident,
        blocks=tuple(blocks),
        user_name=(_text(user, "username") or _text(user, "name"))[:80],
    )


def _object(parent: dict, key: str) -> dict:
    """``parent[key]`` when an object; {} when absent or null (Slack leaves some out); malformed otherwise."""
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Malformed(f"{key} is not an object")
    return value


def _text(parent: dict, key: str) -> str:
    value = parent.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Malformed(f"{key} is not a string")
    return value


def button_value(ref: ServiceRef, incident: str) -> str:
    return json.dumps({"s": str(ref), "i": incident}, separators=(",", ":"))


# --- who may click -------------------------------------------------------------


def refusal(
    click: Click, team: str, watched: bool, approver: bool, user: dict | None, *, group_unread: bool = False
) -> str:
    """Why this user may not act here, or "". Says who can act, never which setting decides it.

    ``team``: the workspace the buttons answer ("" when none is set up); ``watched``: the service is in
    the watchdog's scope; ``approver``: the user is an approver, by ID or through a group;
    ``user``: users.info's ``user`` (None: it could not be read); ``group_unread``: an approvers'
    group could not be read, so a "no" may be wrong.
    """
    if not team:
        return "the card's buttons are not set up for any workspace yet: ask whoever deploys the watchdog"
    if click.team != team:
        return "only the on-call of the workspace the watchdog reports to can act on this card"
    if not watched:
        return f"{click.service.service} is not a service the watchdog watches, so this card cannot change it"
    if not approver:
        if group_unread:
            return (
                "only the rollback approvers can do this, and their Slack group could not be read just now: try again"
            )
        return "only the rollback approvers can do this"
    if user is None:
        return "your Slack account could not be checked just now: try again"
    if user.get("deleted") or user.get("is_restricted") or user.get("is_ultra_restricted") or user.get("is_stranger"):
        return "only full members of this workspace can do this (guests and external users cannot)"
    return ""


def group_members_usable(age: float, member: bool) -> bool:
    """Whether a read of an approvers' group ``age`` seconds old may answer for this click (GROUP_MEMBERS_TTL)."""
    return member and 0 <= age < GROUP_MEMBERS_TTL


# --- what the click changes ----------------------------------------------------


def plan(click: Click, service: dict, now: float) -> Plan:
    """What this click may change on ``service`` (as just read), under the rules in the module docstring."""
    found = service.get("annotations")
    annotations: dict[str, str] = found if isinstance(found, dict) else {}
    memory = ledger.read(annotations)
    if isinstance(memory, ledger.Unreadable):
        return Plan("refused", "ledger_unreadable", f"the watchdog's ledger cannot be read ({memory.reason})")
    record = memory.find(click.incident)
    if record is None:
        return Plan("refused", "no_rollback", f"the watchdog made no rollback for incident {click.incident}")
    if any(event[3] == click.action_ts for event in record.events):
        return Plan("already", "same_click", "this click was already handled")
    event = (click.action, click.user, round(now, 3), click.action_ts)
    written = ledger.with_record(annotations, replace(record, events=(*record.events, event)))
    if click.action == ACK:
        return Plan("apply", "acknowledged", "acknowledged", annotations=written)
    if click.action == PAUSE:
        if memory.paused:
            return Plan("already", "already_paused", "already paused" + _paused_by(annotations))
        by = pauser(click)
        return Plan("apply", "paused", "paused", annotations=paused_annotations(written, by, now, PAUSE_REASON))
    if click.action == RESUME:
        if not memory.paused:
            return Plan("already", "not_paused", "the watchdog is not paused for this service (someone resumed it)")
        return Plan("apply", "resumed", "resumed", annotations=resumed_annotations(written))
    if click.action == REVERT:
        return _revert_field(click, service, memory, record, event)
    return _undo(click, service, memory, record, written)


def _revert_field(click: Click, service: dict, memory: ledger.Ledger, record: ledger.Record, event: tuple) -> Plan:
    """The offered field revert: only the newest rollback, once, and only while traffic is as its pin left it."""
    if record.revert:
        return Plan("already", "already_reverted", f"the field revert {record.revert} was started already "
                    f"({record.revert_state or 'pending'})")  # fmt: skip
    if memory.paused:  # the move to the new revision is the watchdog's (its ticks), and a pause holds it
        return Plan("refused", "paused", f"the watchdog is paused for {click.service.service}: resume it first "
                    "(the Resume button or `rollback-watchdog resume`), then revert the field")  # fmt: skip
    refused = _not_as_left(click, service, memory, record, "a field revert")
    if refused is not None:
        return refused
    return Plan("apply", "field_revert", f"creating a revision with {record.from_revision}'s code and only the "
                "changed field set back; traffic moves to it once it is Ready", event=event)  # fmt: skip


def _not_as_left(click: Click, service: dict, memory: ledger.Ledger, record: ledger.Record, what: str) -> Plan | None:
    """Refused when ``record`` is not the newest rollback, something was deployed since, or traffic moved."""
    newest = memory.newest
    if newest is not None and newest.incident != record.incident:
        return Plan(
            "refused",
            "newer_rollback",
            f"a newer rollback of {click.service.service} was made after this one (incident {newest.incident}: "
            f"{newest.from_revision} → {newest.to_revision}); {what} of this one would overwrite it. "
            "Use the newest card, or move traffic by hand",
        )
    latest = short_name(service.get("latestCreatedRevision", ""))
    if record.latest and latest and latest not in (record.latest, record.revert):  # the revert is no deploy
        return Plan(
            "refused",
            "deployed_since",
            f"{latest} was deployed after the rollback: {what} now would route traffic without looking at it. "
            "Decide again with `rollback-watchdog explain`, or move traffic by hand",
        )
    split = {k: v for k, v in traffic_split(service).items() if v}
    if split != {record.to_revision: 100} and split != dict(record.after):
        return Plan(
            "refused",
            "traffic_moved",
            f"traffic was moved since the rollback (now {serving_text(service)}): {what} would overwrite it",
        )
    return None


def _undo(click: Click, service: dict, memory: ledger.Ledger, record: ledger.Record, written: dict) -> Plan:
    """Undo: only the newest rollback, once, and only while the service is as that rollback left it."""
    done = next((e for e in record.events if e[0] == UNDO), None)
    if done is not None:
        return Plan("already", "already_undone", f"already undone by {who(done[1])}")
    refused = _not_as_left(click, service, memory, record, "the undo")
    if refused is not None:
        return refused
    if not record.before:
        return Plan("refused", "no_before", "the ledger does not say how traffic was before the rollback")
    # LATEST was the failing revision then; after a field revert it is the watchdog's own revision, so the
    # undo names the revision LATEST meant before the rollback (the ledger's ``latest`` then)
    latest_then = record.latest if record.revert and record.latest else ""
    traffic = tuple(
        _entry(latest_then if revision == "LATEST" and latest_then else revision, percent, tag)
        for revision, percent, tag in record.before
    )
    return Plan(
        "apply", "undone", "traffic is back to how it was before the rollback", traffic=traffic, annotations=written
    )


def paused_annotations(annotations: dict[str, str], by: str, at: float, reason: str) -> dict[str, str]:
    """The annotation map with the service paused: the switch and who, when and why (``ledger.PAUSE_INFO_KEY``).

    The card's Pause and ``rollback-watchdog pause`` write the same, so ``status`` reads either alike."""
    info = {"by": by[:200], "at": round(at, 3), "reason": reason[:500]}
    return {**annotations, ledger.PAUSED_KEY: "true", ledger.PAUSE_INFO_KEY: json.dumps(info, separators=(",", ":"))}


def resumed_annotations(annotations: dict[str, str]) -> dict[str, str]:
    """The annotation map with the pause and its who/when/why removed (the card's Resume, and
    ``rollback-watchdog resume``)."""
    return {k: v for k, v in annotations.items() if k not in (ledger.PAUSED_KEY, ledger.PAUSE_INFO_KEY)}


def pauser(click: Click) -> str:
    """Who paused, as ``status`` shows it: the Slack username when the click carries one, and the user ID."""
    return f"{click.user_name} (Slack {click.user})" if click.user_name else f"Slack user {click.user}"


def _paused_by(annotations: dict[str, str]) -> str:
    info = ledger.pause_info(annotations)
    return f" by {escape(info['by'])}" if info.get("by") else ""


# --- after a write whose answer was lost or refused -----------------------------

DONE, NOT_YET, CHANGED = "done", "not_yet", "changed"


def after_write(click: Click, before: dict, after: dict) -> str:
    """What a service read again says about a write sent etag-guarded on ``before`` that timed out or got 409.

    - ``done``: the click's event is in the ledger: Cloud Run applied the write (its answer came late);
    - ``not_yet``: the etag is still the one the write carried: nothing landed, ours included; the same
      write can still land (it may be in flight), and sent again it applies at most once;
    - ``changed``: the service changed and the click's event is not in it: someone else's write landed
      first, so ours can never apply (its etag is stale). Nothing of this click was changed.
    """
    memory = ledger.read(after.get("annotations") if isinstance(after.get("annotations"), dict) else {})
    record = memory.find(click.incident) if isinstance(memory, ledger.Ledger) else None
    if record is not None and any(e[0] == click.action and e[3] == click.action_ts for e in record.events):
        return DONE
    if after.get("etag") and after.get("etag") == before.get("etag"):
        return NOT_YET
    return CHANGED


def changed_meanwhile(click: Click, service: dict, replanned: Plan) -> Plan:
    """The answer when someone else changed the service between the click's read and its write.

    ``replanned`` is the click planned again on the service as it is now: its refusal says why the click
    no longer applies; a plan that would apply again says so."""
    why = replanned.detail if replanned.outcome != "apply" else f"you can {VERBS[click.action]} again"
    return Plan(
        "refused",
        "changed_meanwhile",
        f"someone else changed {click.service.service} meanwhile (now serving {serving_text(service)}): {why}",
    )


def unconfirmed(click: Click) -> Plan:
    """The answer when Cloud Run confirmed neither way in time: the write may still land. Never "nothing changed"."""
    return Plan(
        "unknown",
        "unconfirmed",
        f"Cloud Run did not confirm in time whether it applied this ({VERBS[click.action]} on "
        f"{click.service.service}); it may still be applied. Look at `rollback-watchdog status` before clicking again",
    )


def gave_up(click: Click, service: dict, *, in_flight: bool, changed: bool) -> Plan:
    """The answer when the click's time ran out before Cloud Run confirmed anything.

    ``in_flight``: an update of this click got no answer and nothing since made it stale, so it may
    still land: say so. Otherwise no update of this click can land any more (none was sent, or each was
    refused or made stale by ``changed``, someone else's change): nothing was changed, truly."""
    if in_flight:
        return unconfirmed(click)
    if changed:
        return changed_meanwhile(click, service, Plan("refused", "out_of_time", "try again"))
    return Plan(
        "refused", "out_of_time", f"there was no time left to {VERBS[click.action]} within Slack's 3 seconds: try again"
    )


def serving_text(service: dict) -> str:
    split = {k: v for k, v in traffic_split(service).items() if v}
    return ", ".join(f"{k} {v}%" for k, v in split.items()) or "nothing"


# --- what the user and the card are told ----------------------------------------


def who(user: str) -> str:
    """A Slack user as a mention; anyone else (``rollback-watchdog undo --by NAME``) by name, escaped for mrkdwn."""
    if SLACK_USER.match(user):
        return f"<@{user}>"
    return escape(user)


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _entry(revision: str, percent: int, tag: str) -> dict:
    if revision == "LATEST":
        entry = {"type": LATEST_TYPE, "percent": percent}
    else:
        entry = {"type": REVISION_TYPE, "revision": revision, "percent": percent}
    if tag:
        entry["tag"] = tag
    return entry


def buttons(
    ref: ServiceRef, incident: str, *, paused: bool = False, offer_revert: bool = False, undo: bool = True
) -> dict:
    """The card's buttons: Undo, Pause (Resume once paused) and I'm on it, as one actions block.

    Built with slack-sdk's Block Kit models, imported here only: importing any slack_sdk module
    loads its clients, and the card is built after the traffic update."""
    from slack_sdk.models.blocks import ActionsBlock

    value = button_value(ref, incident)
    kinds = (*((UNDO,) if undo else ()), *((REVERT,) if offer_revert else ()), RESUME if paused else PAUSE, ACK)
    return ActionsBlock(block_id="rollback_actions", elements=[_button(k, value, ref.service) for k in kinds]).to_dict()


def _button(kind: str, value: str, service: str):
    from slack_sdk.models.blocks import ButtonElement, ConfirmObject

    if kind == UNDO:
        confirm = ConfirmObject(
            title="Undo the rollback?",
            text=f"Traffic of {service} goes back to how it was before the rollback, failing revision included. "
            "The watchdog will not roll this failing revision back again automatically until a new deploy or a resume.",
            confirm="Undo",
            deny="Cancel",
        )
        return ButtonElement(text="Undo rollback", action_id=UNDO, value=value, style="danger", confirm=confirm)
    if kind == PAUSE:
        confirm = ConfirmObject(
            title="Pause the watchdog?",
            text=f"It will report on {service} but not roll it back until someone resumes it.",
            confirm="Pause",
            deny="Cancel",
        )
        return ButtonElement(text="Pause watchdog", action_id=PAUSE, value=value, confirm=confirm)
    if kind == RESUME:
        confirm = ConfirmObject(
            title="Resume the watchdog?",
            text=f"It will roll {service} back again when an alert shows the rollback rule applies.",
            confirm="Resume",
            deny="Cancel",
        )
        return ButtonElement(text="Resume watchdog", action_id=RESUME, value=value, confirm=confirm)
    if kind == REVERT:
        confirm = ConfirmObject(
            title="Revert only the field?",
            text=f"A new revision of {service} is created with the failing revision's code and only the field that "
            "broke it set back; traffic moves to it once it is Ready. Nothing is deleted.",
            confirm="Revert field",
            deny="Cancel",
        )
        return ButtonElement(text="Revert field", action_id=REVERT, value=value, confirm=confirm)
    return ButtonElement(text="I'm on it", action_id=ACK, value=value, style="primary")
