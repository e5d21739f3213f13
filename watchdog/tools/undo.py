"""``rollback-watchdog undo``: what the Slack card's undo button does, from the command line.

The same plan (watchdog/core/actions.py): traffic back to exactly how it was
before the rollback, tags included, and only while the service is as the
rollback left it (a deploy since, or traffic a human moved, refuses it); undone
once. The same update: traffic and the ledger annotation (who, when, what) in
one etag-guarded ``UpdateService``; a service that changes in between refuses,
as the button does. And, when Slack is configured, the card is told the same
way (its undo button removed, a line saying who undid it and when).

What differs is who may. The button authenticates a click from Slack
(signature, workspace, approvers); here the caller's own Google credentials are
the authorization: ``run.services.update`` on the service, as for ``gcloud``.
"""

from __future__ import annotations

import getpass
import time

import click

from watchdog.config import ServiceRef
from watchdog.core import actions, ledger
from watchdog.core.traffic import traffic_split
from watchdog.tools import cards
from watchdog.tools.options import (
    CONTEXT,
    CouldNotCheck,
    api_call,
    cloud_run,
    cloud_run_endpoint_option,
    emit_json,
    json_option,
    load_config,
    say,
    target,
    waiting,
    where_options,
)
from watchdog.tools.reach import one_line

EPILOG = """\b
Exit codes:
  0  undone: traffic is back to how it was before the rollback (or it was undone already)
  1  refused, nothing changed: no rollback on record, a newer rollback since, deployed since,
     traffic moved since, the ledger unreadable, or someone else changed the service while undoing
  2  could not undo: service not found, permission denied, Cloud Run API errors; or the undo
     could not be confirmed either way (look at `rollback-watchdog status`)

\b
Examples:
  rollback-watchdog undo --project P --region R --service S            # the newest rollback
  rollback-watchdog undo --service S --incident 0.nx4bkd7 --json       # project, region from gcloud
"""


@click.command(epilog=EPILOG, context_settings=CONTEXT)
@where_options("The Cloud Run service the watchdog rolled back.")
@click.option("--incident", default="", help="The rollback's incident id (default: the newest rollback on record).")
@click.option("--by", "by", default="", help="Who undoes (the ledger and the card say so); default: $USER.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds for the update to be served.")
@cloud_run_endpoint_option
@json_option
@click.pass_context
def undo(ctx, project, region, service, incident, by, timeout, cloud_run_endpoint, as_json) -> None:
    """Undo a rollback the watchdog made, as the Slack card's undo button does.

    The same rules: traffic goes back to exactly how it was before the rollback (tags
    included), only while the service is as the rollback left it, and only once. One
    etag-guarded update writes the traffic and the ledger event (who, when). With
    SLACK_BOT_TOKEN and SLACK_CHANNEL set, the card is updated as the button updates it (with
    SLACK_WEBHOOK_URL, a message is posted). Your Google credentials authorize the change
    (run.services.update, as for gcloud); the button's Slack approver checks do not apply.
    """
    ref = target(ctx)
    config = load_config(cloud_run_endpoint=cloud_run_endpoint)
    client = cloud_run(config.cloud_run_endpoint)
    deadline = time.monotonic() + timeout
    with waiting(f"reading {ref}"):
        found = api_call(lambda: client.get_service(ref, deadline))
    memory = ledger.read(found.get("annotations"))
    record = None
    if isinstance(memory, ledger.Ledger):
        record = memory.find(incident) if incident else memory.newest
    channel, _, card_ts = record.thread.partition(":") if record else ("", "", "")
    press = actions.Click(
        action=actions.UNDO, user=(by or getpass.getuser()).strip()[:80], team="", channel=channel,
        message_ts=card_ts, action_ts=f"cli-{time.time():.6f}", service=ref,
        incident=record.incident if record else incident,
    )  # fmt: skip
    if record is None and isinstance(memory, ledger.Ledger) and not incident:
        plan = actions.Plan("refused", "no_rollback", f"the watchdog made no rollback of {ref.service} on record")
    else:
        plan = actions.plan(press, found, time.time())  # the button's rules, refusals and ledger event
    result = {"service": str(ref), "incident": press.incident, "outcome": plan.outcome, "reason": plan.reason,
              "detail": plan.detail, "serving": None, "slack": None}  # fmt: skip
    if plan.outcome == "apply":
        plan, serving = _apply(client, ref, found, plan, press, deadline)
        result.update(outcome=plan.outcome, reason=plan.reason, detail=plan.detail, serving=serving)
    if plan.outcome == "apply" and record is not None:
        what = f":leftwards_arrow_with_hook: Undone by {press.user} (rollback-watchdog undo): {plan.detail} " \
            f"({ref.service}, incident {press.incident})"  # fmt: skip
        result["slack"] = cards.tell(config, client, ref, press.incident, what)
    if as_json:
        emit_json(result)
    else:
        _show(result)
    ctx.exit({"refused": 1, "unknown": 2}.get(plan.outcome, 0))


def _apply(client, ref: ServiceRef, service: dict, plan: actions.Plan, press: actions.Click, deadline: float):
    """Send the plan's update, etag-guarded, and wait until Cloud Run serves it.

    A 409 is not taken for "nothing changed": the update's own retry may have landed first. The service is
    read again and, as for the button, actions.after_write says what is true."""
    from watchdog.edges.cloudrun import ConcurrentChange, UpdateFailed

    def send():
        try:
            traffic = list(plan.traffic or ())
            return client.start_pin(ref, traffic, service.get("etag", ""), plan.annotations or {}, deadline)
        except ConcurrentChange:
            return None

    with waiting(f"undoing the rollback of {ref}"):
        operation = api_call(send)
    if operation is None:
        with waiting(f"reading {ref} again"):
            fresh = api_call(lambda: client.get_service(ref, deadline))
        truth = actions.after_write(press, service, fresh)
        if truth == actions.DONE:  # it landed: what serves is what Cloud Run reads now
            return plan, {k: v for k, v in traffic_split(fresh).items() if v}
        if truth == actions.CHANGED:
            return actions.changed_meanwhile(press, fresh, actions.plan(press, fresh, time.time())), None
        return actions.unconfirmed(press), None
    try:
        with waiting("waiting for Cloud Run to serve it"):
            settled = api_call(lambda: client.await_pin(ref, operation, deadline))
    except UpdateFailed as error:
        raise CouldNotCheck(f"Cloud Run accepted the undo but its operation failed: {one_line(error)}") from None
    return plan, {k: v for k, v in traffic_split(settled).items() if v}


def _show(result: dict) -> None:
    head = f"{result['service']}: "
    if result["outcome"] == "apply":
        say(f"{head}undone (incident {result['incident']}): {result['detail']}")
        if result["serving"]:
            say("  serving now: " + ", ".join(f"{k} {v}%" for k, v in result["serving"].items()))
    elif result["outcome"] == "already":
        say(f"{head}{result['detail']} (incident {result['incident']}; no change)")
    elif result["outcome"] == "unknown":
        say(f"{head}NOT CONFIRMED ({result['reason']}): {result['detail']}.")
    else:
        say(f"{head}REFUSED ({result['reason']}): {result['detail']}. Nothing was changed.")
    if result["slack"] is not None:
        say(f"  Slack: {result['slack']['how']}")
