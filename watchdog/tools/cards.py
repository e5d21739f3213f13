"""The card after an operator command: rendered again from the ledger, as after a click.

``undo``, ``pause``, ``resume`` and ``revert-field`` change what the newest rollback's card must
say. With a bot token the card is re-rendered for the state the command left (flows/reporting.py
``restated``) and updated in place through watchdog/edges/slack.py (its redaction and deadlines);
with a webhook, which cannot edit, a message says what was done. Slack not configured: nothing.
"""

from __future__ import annotations

import time

from watchdog.config import Config, ServiceRef
from watchdog.core import ledger
from watchdog.core.slack_text import Message, escape


def tell(config: Config, client, ref: ServiceRef, incident: str, what: str, *, timeout: float = 15.0) -> dict:
    """Show the card of ``incident`` as it is now; {"told": bool, "how": str}. ``what`` (plain words) is the
    message a webhook posts instead."""
    from watchdog.edges import slack
    from watchdog.flows.reporting import restated

    settings = config.slack
    if settings.mode == "none":
        return {"told": False, "how": "Slack is not configured (SLACK_BOT_TOKEN and SLACK_CHANNEL, or "
                "SLACK_WEBHOOK_URL): the card, if any, still shows the state before"}  # fmt: skip
    deadline = time.monotonic() + timeout
    notifier = slack.notifier_until(settings, deadline)
    if settings.mode == "webhook":
        posted = notifier.post(Message(escape(what)))
        return {"told": posted.ok, "how": "posted a message (a webhook cannot update the card)" if posted.ok
                else f"could not post: {posted.error}"}  # fmt: skip
    service = client.get_service(ref, deadline)
    memory = ledger.read(service.get("annotations"))
    record = memory.find(incident) if isinstance(memory, ledger.Ledger) else None
    if record is None or not record.thread:
        posted = notifier.post(Message(escape(what)))
        return {"told": posted.ok, "how": "the ledger names no card for this rollback: posted a new message"
                if posted.ok else f"could not post: {posted.error}"}  # fmt: skip
    card = restated(client, config, ref, record, service, deadline, buttons=bool(config.slack_team))
    updated = notifier.update(card, record.thread)
    if updated.ok:
        return {"told": True, "how": f"updated the card ({record.thread})"}
    posted = notifier.post(Message(escape(what)), thread=record.thread)
    return {"told": posted.ok, "how": f"could not update the card ({updated.error}): replied in its thread"
            if posted.ok else f"could not update the card ({updated.error}) nor reply: {posted.error}"}  # fmt: skip
