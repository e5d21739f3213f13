"""``rollback-watchdog`` (or ``python -m watchdog`` from the repository root): the operator command.

One module per command (watchdog/tools/*.py); what they share is in
watchdog/tools/options.py. Never imported by the function (main.py): click,
google-cloud-pubsub and google-cloud-monitoring stay off its cold-start path.
``.venv/bin/rollback-watchdog`` is written by ``make setup``
(watchdog/tools/install.py), and runs from any directory.
"""

from __future__ import annotations

import sys

import click

from watchdog.tools.check import check
from watchdog.tools.doctor import doctor
from watchdog.tools.drill import drill
from watchdog.tools.explain import explain
from watchdog.tools.options import CONTEXT
from watchdog.tools.pause import pause, resume
from watchdog.tools.revert_field import revert_field
from watchdog.tools.status import status
from watchdog.tools.undo import undo

NAME = "rollback-watchdog"


def version() -> str:
    """The watchdog's version (watchdog/__init__.py; pyproject.toml says the same), as the functions log it."""
    import watchdog

    return watchdog.__version__


@click.group(context_settings=CONTEXT)
@click.version_option(version(), "--version", prog_name=NAME, message="%(prog)s %(version)s",
                      help="Print the version and exit.")  # fmt: skip
def cli() -> None:
    """Drills and operator tools for the Cloud Run rollback watchdog.

    Every option that matches a setting of the function reads the same environment
    variable (shown in each command's --help). --project and --region default to
    CLOUDSDK_CORE_PROJECT / CLOUDSDK_RUN_REGION, else the active gcloud configuration;
    the command says which on stderr. Results go to stdout (--json for JSON), progress
    to stderr.
    """


for command in (drill, explain, check, doctor, pause, resume, status, undo, revert_field):
    cli.add_command(command)


def main(prog_name: str = "python -m watchdog") -> None:
    from google.auth.exceptions import DefaultCredentialsError

    try:
        cli(prog_name=prog_name)
    except DefaultCredentialsError as error:
        click.echo(
            f"Error: no Google credentials ({error}). Run `gcloud auth application-default login`, or point "
            "CLOUD_RUN_API_ENDPOINT / MONITORING_API_ENDPOINT / PUBSUB_EMULATOR_HOST at local stand-ins.",
            err=True,
        )
        sys.exit(2)
