"""Pause and resume the watchdog for one service: an annotation, never a new revision.

Only the service's ``annotations`` are updated (update mask ``annotations``),
so the revision template is untouched and Cloud Run creates no revision.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

import click

from watchdog.config import ServiceRef
from watchdog.core import actions, ledger
from watchdog.tools import cards
from watchdog.tools.options import (
    CONTEXT,
    api_call,
    cloud_run,
    cloud_run_endpoint_option,
    emit_json,
    json_option,
    load_config,
    target,
    waiting,
    where_options,
)

if TYPE_CHECKING:
    from watchdog.edges.cloudrun import CloudRun

EPILOG = """\b
Exit codes:
  0  done (or already so)
  2  could not change it: service not found, permission denied, Cloud Run API errors
"""


def set_paused(
    cloud_run: CloudRun, ref: ServiceRef, paused: bool, timeout: float = 30.0, *, by: str = "", reason: str = ""
) -> bool:
    """Set or clear ``rollback-watchdog/paused`` on the service; returns whether anything changed.

    A pause also records who, when and why in ``rollback-watchdog/paused-by`` (``rollback-watchdog
    status`` shows it); the switch itself stays ``"true"`` so every reader of it keeps working.
    """
    from watchdog.edges.cloudrun import ConcurrentChange

    deadline = time.monotonic() + timeout
    for _ in range(3):
        service = cloud_run.get_service(ref, deadline)
        annotations = dict(service.get("annotations") or {})
        lifts = not paused and _undone_hold(annotations)
        if ledger.paused(annotations) == paused and not lifts:
            return False
        # the same annotations as the card's Pause and Resume buttons (watchdog/core/actions.py)
        if paused:
            annotations = actions.paused_annotations(annotations, by, time.time(), reason)
        else:
            annotations = actions.resumed_annotations(annotations)
        annotations = _with_event(annotations, actions.PAUSE if paused else actions.RESUME, by or "rollback-watchdog")
        try:
            cloud_run.annotate(ref, annotations, service.get("etag", ""), deadline)
            return True
        except ConcurrentChange:
            continue  # a deploy landed: read again
    raise ConcurrentChange(f"{ref} kept changing; try again")


def _undone_hold(annotations: dict) -> bool:
    """A rollback on record was undone: a resume is also what lets the watchdog act on its revision again."""
    memory = ledger.read(annotations)
    return isinstance(memory, ledger.Ledger) and any(r.undone_at() is not None for r in memory.records)


def _with_event(annotations: dict, action: str, by: str) -> dict:
    """The pause or resume recorded on the newest rollback (its card's history; a resume lifts an undo's hold)."""
    memory = ledger.read(annotations)
    if not isinstance(memory, ledger.Ledger) or memory.newest is None:
        return annotations
    newest = memory.newest
    event = (action, by[:80], round(time.time(), 3), f"cli-{time.time():.6f}")
    return ledger.with_record(annotations, replace(newest, events=(*newest.events, event)))


@click.command(epilog=EPILOG, context_settings=CONTEXT)
@where_options("The Cloud Run service to pause the watchdog for.")
@cloud_run_endpoint_option
@click.option("--reason", default="", help="Why (shown by `status`); e.g. 'migrating the database'.")
@click.option("--by", "by", default="", help="Who pauses (shown by `status`); default: $USER.")
@json_option
@click.pass_context
def pause(ctx, project, region, service, cloud_run_endpoint, reason, by, as_json) -> None:
    """Stop automatic rollbacks of one service: alerts are reported, traffic is left alone.

    Sets the service annotation rollback-watchdog/paused=true with an annotations-only
    update: no new revision, no traffic change. rollback-watchdog/paused-by records who,
    when and why. WATCHDOG_PAUSED=true pauses every service.
    """
    import getpass

    _switch(ctx, cloud_run_endpoint, True, as_json, by=by or getpass.getuser(), reason=reason)


@click.command(epilog=EPILOG, context_settings=CONTEXT)
@where_options("The Cloud Run service to resume the watchdog for.")
@cloud_run_endpoint_option
@json_option
@click.pass_context
def resume(ctx, project, region, service, cloud_run_endpoint, as_json) -> None:
    """Let the watchdog roll one service back again: clears rollback-watchdog/paused, and lifts the hold an
    undo puts on its failing revision (recorded on the newest rollback)."""
    import getpass

    _switch(ctx, cloud_run_endpoint, False, as_json, by=getpass.getuser())


def _switch(ctx: click.Context, endpoint: str | None, paused: bool, as_json: bool, *, by: str = "", reason: str = ""):
    ref = target(ctx)
    client = cloud_run(endpoint or "")
    with waiting(f"{'pausing' if paused else 'resuming'} the watchdog for {ref}"):
        changed = api_call(lambda: set_paused(client, ref, paused, by=by, reason=reason))
    state = "paused" if paused else "active"
    told = None
    if changed:
        config = load_config(cloud_run_endpoint=endpoint)
        memory = ledger.read(client.get_service(ref, time.monotonic() + 10).get("annotations"))
        if isinstance(memory, ledger.Ledger) and memory.newest is not None:
            what = f"{'Paused' if paused else 'Resumed'} by {by} (rollback-watchdog {'pause' if paused else 'resume'})"
            told = cards.tell(config, client, ref, memory.newest.incident, what)
    if as_json:
        emit_json({"service": str(ref), "watchdog": state, "changed": changed, "slack": told})
    else:
        click.echo(f"{ref}: watchdog {state}" + ("" if changed else " (no change)"))
