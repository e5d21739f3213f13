"""``rollback-watchdog status``: what the watchdog holds, per watched service (watchdog/core/status.py)."""

from __future__ import annotations

import sys
import time

import click

from watchdog.tools.options import (
    CONTEXT,
    cloud_run,
    config_options,
    deployed_options,
    emit_json,
    json_option,
    load_config,
    located,
    progress,
    project_option,
    region_option,
    say,
    watched_services,
)

EPILOG = """\b
Exit codes:
  0  all clear
  1  something needs a human: paused or pinned for more than a day, a rollback that did not
     fix the service (escalated), or one never verified
  2  could not read a service (or locate one: give --project/--region for entries without them),
     or which services are watched is not known

\b
Which services: --services (or WATCHDOG_SERVICES) when given; else the deployed function's own
WATCHDOG_SERVICES (Cloud Functions: --function in --project and --region). Reads, never writes:
the deployed function, each watched service and its newest revisions (Cloud Run).
"""


@click.command(epilog=EPILOG, context_settings=CONTEXT)
@project_option("Project for WATCHDOG_SERVICES entries that name none (and '*').")
@region_option("Region for WATCHDOG_SERVICES entries that name none (and '*').")
@click.option("--service", "only", default="", help="Only this service: SERVICE or PROJECT/REGION/SERVICE.")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds for all the reads.")
@json_option
@deployed_options
@config_options
@click.pass_context
def status(ctx, project, region, only, timeout, as_json, function, functions_endpoint, **settings) -> None:
    """What the watchdog holds: pauses, pinned traffic, rollbacks and their verdicts, cooldowns."""
    from watchdog.core import status as view
    from watchdog.tools.watched import gather

    project = located(ctx, "project", required=False)
    region = located(ctx, "region", required=False)
    services, where, _ = watched_services(ctx, settings["services"], project, region, function, functions_endpoint,
                                          timeout)  # fmt: skip
    progress(f"watched services: {services} (from {where})")
    config = load_config(**{**settings, "services": services})
    client = cloud_run(config.cloud_run_endpoint)
    statuses = gather(config, client, project=project, region=region, only=only, timeout=timeout, progress=progress)
    code = view.exit_code(statuses)
    if as_json:
        emit_json({"exit_code": code, "services": [s.as_dict() for s in statuses]})
    else:
        say(view.render_text(statuses, time.time()))
        click.echo(f"status: {({0: 'all clear', 1: 'needs a human', 2: 'could not read everything'})[code]}")
    sys.exit(code)
