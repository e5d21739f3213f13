"""``rollback-watchdog revert-field``: the field revert a pin offered, from the command line.

When ``WATCHDOG_FIELD_REVERT=offer`` (or a pin that keeps later deploys at 0%), the card offers
to revert only the field that broke the service: a new revision with the failing revision's
code (images by digest) and only the egress/network fields set back to the known-good
revision's values (watchdog/core/field_revert.py). This command does the same as the card's
button, under the same rules (watchdog/core/actions.py): only the newest rollback, only while
traffic is as the pin left it and nothing was deployed since, once. It waits for the new
revision to become Ready and moves the pinned share to it; a revision that never becomes Ready
leaves the pin as it is. Nothing is deleted.

Your Google credentials authorize it: ``run.services.update`` on the service and
``iam.serviceAccounts.actAs`` on its runtime account (a new revision is created), as for
``gcloud run deploy``.
"""

from __future__ import annotations

import contextlib
import getpass
import sys
import time
from typing import Any

import click

from watchdog.core import actions, ledger
from watchdog.core.traffic import short_name, traffic_split
from watchdog.tools.options import (
    CONTEXT,
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

EPILOG = """\b
Exit codes:
  0  the field revert serves (or was made already), or it is created and not Ready yet (the
     watchdog's verification ticks move traffic to it once it is)
  1  refused, nothing changed: no rollback on record, a newer rollback since, deployed since,
     traffic moved since, the service paused, the field revert made already, or nothing to revert
  2  could not: the new revision never became Ready (traffic stays pinned), the service not
     found, permission denied, Cloud Run API errors

\b
Examples:
  rollback-watchdog revert-field --project P --region R --service S        # the newest rollback
  rollback-watchdog revert-field --service S --incident 0.nx4bkd7 --json
"""


@click.command("revert-field", epilog=EPILOG, context_settings=CONTEXT)
@where_options("The Cloud Run service the watchdog pinned.")
@click.option("--incident", default="", help="The rollback's incident id (default: the newest rollback on record).")
@click.option("--by", "by", default="", help="Who asks for it (the ledger says so); default: $USER.")
@click.option("--timeout", type=float, default=300.0, show_default=True,
              help="Seconds to wait for the new revision to be Ready and serve.")  # fmt: skip
@cloud_run_endpoint_option
@json_option
@click.pass_context
def revert_field(ctx, project, region, service, incident, by, timeout, cloud_run_endpoint, as_json) -> None:
    """Revert only the field that broke the service, keeping the code that was serving.

    The card's "Revert field" button from the command line, under the same rules. A new revision
    is created from the failing revision's configuration with only the egress/network fields set
    back; once it is Ready, the pinned traffic moves to it. Nothing is deleted.
    """
    from watchdog.flows.field_revert import FAILED, NOT_MADE, FieldRevert

    ref = target(ctx)
    config = load_config(cloud_run_endpoint=cloud_run_endpoint)
    client = cloud_run(config.cloud_run_endpoint)
    deadline = time.monotonic() + timeout
    with waiting(f"reading {ref}"):
        found = api_call(lambda: client.get_service(ref, deadline))
    memory = ledger.read(found.get("annotations"))
    record = (memory.find(incident) if incident else memory.newest) if isinstance(memory, ledger.Ledger) else None
    press = actions.Click(
        action=actions.REVERT, user=(by or getpass.getuser()).strip()[:80], team="", channel="", message_ts="",
        action_ts=f"cli-{time.time():.6f}", service=ref, incident=record.incident if record else incident,
    )  # fmt: skip
    if record is None and isinstance(memory, ledger.Ledger):
        plan = actions.Plan("refused", "no_rollback", f"the watchdog made no rollback of {ref.service} on record")
    else:
        plan = actions.plan(press, found, time.time())
    result: dict[str, Any] = {
        "service": str(ref), "incident": press.incident, "outcome": plan.outcome, "reason": plan.reason,
        "detail": plan.detail, "revision": "", "serving": None,
    }  # fmt: skip
    if plan.outcome == "apply" and record is not None:
        with waiting(f"reading {record.from_revision} and {record.to_revision}"):
            failing = api_call(lambda: client.get_revision(ref, record.from_revision, deadline))
            good = api_call(lambda: client.get_revision(ref, record.to_revision, deadline))
        # the flow writes the function's structured log lines: stderr here, so stdout keeps the result alone
        with waiting("creating the revision and waiting until it is Ready"), contextlib.redirect_stdout(sys.stderr):
            progress = api_call(
                lambda: FieldRevert(client, time.time).start(ref, record.incident, failing, good, deadline, plan.event)
            )
        outcome = {FAILED: "failed", NOT_MADE: "refused"}.get(progress.state, "apply")
        result.update(outcome=outcome, reason=progress.state, detail=progress.detail, revision=progress.revision)
        with waiting(f"reading {ref} again"):
            now = api_call(lambda: client.get_service(ref, deadline))
        result["serving"] = {k: v for k, v in traffic_split(now).items() if v}
    if as_json:
        emit_json(result)
    else:
        _show(result)
    ctx.exit({"refused": 1, "already": 0, "failed": 2}.get(str(result["outcome"]), 0))


def _show(result: dict) -> None:
    head = f"{result['service']}: "
    if result["outcome"] == "apply":
        say(f"{head}field revert {result['reason']} (incident {result['incident']}): {result['detail']}")
    elif result["outcome"] == "already":
        say(f"{head}{result['detail']}")
    elif result["outcome"] == "failed":
        say(f"{head}field revert FAILED (incident {result['incident']}): {result['detail']}")
    else:
        say(f"{head}refused, nothing changed: {result['detail']}")
    if result["serving"]:
        say("  serving now: " + ", ".join(f"{short_name(k)} {v}%" for k, v in result["serving"].items()))
