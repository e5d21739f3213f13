"""On-call acts from the Slack card: undo, pause, acknowledge. Pure code: a click in, a plan out.

The HTTP shell (watchdog/flows/slack_actions.py) verifies the signature and the
clicking user first; this module decides what the click may change:

- ``undo_rollback``: traffic back to exactly how it was before the rollback,
  tags included, but only while the service is as the rollback left it. A
  deploy since then, or traffic a human moved, refuses the undo: it would
  overwrite something nobody looked at. Undone once, whatever Slack retries.
- ``pause_service``: the service's pause annotation (annotation-only update).
- ``acknowledge``: records who is on it.

Every plan writes who, when and what into the rollback's ledger record, in the
same etag-guarded update as the change itself; a click already recorded (the
same ``action_ts``: Slack's retries, a double delivery) plans nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any

from watchdog.config import ServiceRef
from watchdog.core import ledger
from watchdog.core.traffic import LATEST_TYPE, REVISION_TYPE, short_name, traffic_split

UNDO, PAUSE, ACK = "undo_rollback", "pause_service", "acknowledge"
ACTIONS = (UNDO, PAUSE, ACK)
DONE_WORDS = {UNDO: "undone", PAUSE: "paused", ACK: "acknowledged"}
SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")  # a Slack user ID, as a click records it


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


@dataclass(frozen=True)
class Plan:
    """What to send: a traffic list and/or annotations (etag-guarded), or nothing with the reason why."""

    outcome: str  # "apply", "already", "refused"
    reason: str
    detail: str
    traffic: tuple[dict, ...] | None = None
    annotations: dict[str, str] | None = None


def parse_click(payload: Any) -> Click | str:
    """A block_actions payload → Click, or the reason it is not one of the card's clicks."""
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        return "not a block_actions payload"
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        return "no action"
    action = actions[0]
    if action.get("action_id") not in ACTIONS:
        return f"unknown action {str(action.get('action_id'))[:40]!r}"
    try:
        value = json.loads(action.get("value") or "")
        project, region, service = value["s"].split("/")
        incident = str(value["i"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return "the button carries no service and incident"
    container = payload.get("container") if isinstance(payload.get("container"), dict) else {}
    message = payload.get("message") if isinstance(payload.get("message"), dict) else {}
    return Click(
        action=action["action_id"],
        user=str((payload.get("user") or {}).get("id", "")),
        team=str((payload.get("team") or {}).get("id", "")),
        channel=str((payload.get("channel") or {}).get("id", "") or container.get("channel_id", "")),
        message_ts=str(container.get("message_ts", "") or message.get("ts", "")),
        action_ts=str(action.get("action_ts", "")),
        service=ServiceRef(project, region, service),
        incident=incident,
        blocks=tuple(message.get("blocks") or ()),
    )


def button_value(ref: ServiceRef, incident: str) -> str:
    return json.dumps({"s": str(ref), "i": incident}, separators=(",", ":"))


def plan(click: Click, service: dict, now: float) -> Plan:
    """What this click may change on ``service`` (as just read), under the rules in the module docstring."""
    annotations = service.get("annotations") if isinstance(service.get("annotations"), dict) else {}
    memory = ledger.read(annotations)
    if isinstance(memory, ledger.Unreadable):
        return Plan("refused", "ledger_unreadable", f"the watchdog's ledger cannot be read ({memory.reason})")
    record = memory.find(click.incident)
    if record is None:
        return Plan("refused", "no_rollback", f"the watchdog made no rollback for incident {click.incident}")
    if any(event[3] == click.action_ts for event in record.events):
        return Plan("already", "same_click", "this click was already handled")
    done = next((e for e in record.events if e[0] == click.action), None)
    if done is not None and click.action in (UNDO, PAUSE):
        return Plan(
            "already", f"already_{DONE_WORDS[click.action]}", f"already {DONE_WORDS[click.action]} by {who(done[1])}"
        )
    event = (click.action, click.user, round(now, 3), click.action_ts)
    written = ledger.with_record(annotations, replace(record, events=(*record.events, event)))
    if click.action == ACK:
        return Plan("apply", "acknowledged", "acknowledged", annotations=written)
    if click.action == PAUSE:
        return Plan("apply", "paused", "paused", annotations={**written, ledger.PAUSED_KEY: "true"})
    # undo: only while the service is as the rollback left it
    latest = short_name(service.get("latestCreatedRevision", ""))
    if record.latest and latest and latest != record.latest:
        return Plan(
            "refused",
            "deployed_since",
            f"{latest} was deployed after the rollback: an undo now would route traffic without looking at it. "
            "Decide again with `rollback-watchdog explain`, or move traffic by hand",
        )
    split = {k: v for k, v in traffic_split(service).items() if v}
    if split != {record.to_revision: 100} and split != dict(record.after):
        return Plan(
            "refused",
            "traffic_moved",
            f"traffic was moved since the rollback (now {', '.join(f'{k} {v}%' for k, v in split.items())}): "
            "the undo would overwrite it",
        )
    if not record.before:
        return Plan("refused", "no_before", "the ledger does not say how traffic was before the rollback")
    traffic = tuple(_entry(revision, percent, tag) for revision, percent, tag in record.before)
    return Plan(
        "apply", "undone", "traffic is back to how it was before the rollback", traffic=traffic, annotations=written
    )


def who(user: str) -> str:
    """A Slack user as a mention; anyone else (``rollback-watchdog undo --by NAME``) by name, escaped for mrkdwn."""
    if SLACK_USER.match(user):
        return f"<@{user}>"
    return user.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _entry(revision: str, percent: int, tag: str) -> dict:
    if revision == "LATEST":
        entry = {"type": LATEST_TYPE, "percent": percent}
    else:
        entry = {"type": REVISION_TYPE, "revision": revision, "percent": percent}
    if tag:
        entry["tag"] = tag
    return entry


def updated_card(blocks: tuple, click: Click, when: str, by: str = "") -> list[dict]:
    """The card after a click: a line saying who did what and when; buttons that no longer apply removed.

    ``by`` is how to name the actor when it is not the clicking Slack user (the command line)."""
    gone = {UNDO: {UNDO}, PAUSE: {PAUSE}, ACK: {ACK}}[click.action]
    headline = {UNDO: ":repeat: Undone: ", PAUSE: ":double_vertical_bar: Paused: "}.get(click.action)
    out = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "header" and headline:  # the state, first thing on the card
            words = str((block.get("text") or {}).get("text", "")).split(" ", 1)[-1]
            out.append({**block, "text": {**block["text"], "text": (headline + words)[:150]}})
            continue
        if block.get("type") == "actions":
            elements = [e for e in block.get("elements", []) if e.get("action_id") not in gone]
            if elements:
                out.append({**block, "elements": elements})
            continue
        out.append(block)
    icon = {UNDO: ":leftwards_arrow_with_hook:", PAUSE: ":double_vertical_bar:", ACK: ":eyes:"}[click.action]
    line = f"{icon} {DONE_WORDS[click.action].capitalize()} by {by or who(click.user)} at {when}"
    out.append({"type": "context", "elements": [{"type": "mrkdwn", "text": line}]})
    return out[:50]
