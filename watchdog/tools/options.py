"""What the operator commands share: their options, the configuration, where a value came from, the output.

Options that match a setting of the function read the same environment variable
(watchdog/config.py ENV_VARS) and the configuration is validated by the same
``Config.from_env``. A bad value is reported under the name the user set: the
flag when it was given on the command line, the environment variable otherwise
(click's ParameterSource says which). ``--project`` and ``--region`` default as
gcloud's do (watchdog/tools/gcloud.py), and the command says on stderr which
default it used.

Progress goes to stderr, results to stdout, so ``--json`` output can be piped.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from watchdog.config import Config, ConfigError, ServiceRef
from watchdog.tools import gcloud, reach

ROOT = Path(__file__).resolve().parents[2]  # the repository: pyproject.toml, docs/examples
TOPIC_RE = re.compile(r"^projects/[^/]+/topics/[^/]+$")
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


class CouldNotCheck(click.ClickException):
    """Exit 2: the command could not do its job (bad input, unreachable API, invalid configuration)."""

    exit_code = 2


class Setting(click.Option):
    """An option that also reads an environment variable; a bad value from the environment is reported under
    the variable's name, not the flag's (click would say "Invalid value for '--rollback-on'")."""

    def handle_parse_result(self, ctx: click.Context, opts: Any, args: list[str]) -> Any:
        try:
            return super().handle_parse_result(ctx, opts, args)
        except click.BadParameter as error:
            if self.envvar and ctx.get_parameter_source(self.name) == ParameterSource.ENVIRONMENT:
                error.param_hint = self.envvar if isinstance(self.envvar, str) else self.envvar[0]
            raise


def setting(*decls: str, **attrs: Any):
    return click.option(*decls, cls=Setting, **attrs)


def named(ctx: click.Context, name: str) -> str:
    """The flag, environment variable or configuration file a parameter's value came from, for messages."""
    found = ctx.meta.get("rollback-watchdog/sources", {}).get(name)
    if found:
        return found
    param = next(p for p in ctx.command.params if p.name == name)
    envvar = getattr(param, "envvar", None)
    if envvar and ctx.get_parameter_source(name) == ParameterSource.ENVIRONMENT:
        return envvar if isinstance(envvar, str) else envvar[0]
    return param.opts[0]


def relabel(message: str, ctx: click.Context | None = None) -> str:
    """Config.from_env names environment variables; where the value came from a flag, name the flag instead."""
    ctx = ctx or click.get_current_context(silent=True)
    if ctx is None:
        return message
    for param in ctx.command.params:
        envvar = getattr(param, "envvar", None)
        if isinstance(envvar, str) and ctx.get_parameter_source(param.name) == ParameterSource.COMMANDLINE:
            message = re.sub(rf"\b{re.escape(envvar)}\b", param.opts[0], message)
    return message


# --- progress and results -----------------------------------------------------------------------


def progress(text: str) -> None:
    click.echo(text, err=True)


@contextmanager
def waiting(text: str, *, quiet: bool = False) -> Iterator[None]:
    """Show that something is being waited for: a spinner on a terminal, start/end lines otherwise.

    ``quiet``: no end line when it went well within a second (a connection check before the real work).
    """
    started = time.monotonic()
    stream = sys.stderr
    stop = threading.Event()
    spinner = None
    if stream.isatty():

        def spin() -> None:
            for mark in itertools.cycle("|/-\\"):
                if stop.wait(0.1):
                    return
                click.echo(f"\r{text} {mark}", err=True, nl=False)

        spinner = threading.Thread(target=spin, daemon=True)
        spinner.start()
    else:
        click.echo(f"{text} …", err=True)
    result = "failed"
    try:
        yield
        result = "done"
    finally:
        stop.set()
        if spinner is not None:
            spinner.join()
        took = time.monotonic() - started
        if quiet and result == "done" and took < 1:
            if spinner is not None:
                click.echo("\r\033[K", err=True, nl=False)
        else:
            click.echo(f"{chr(13) if spinner else ''}{text}: {result} in {took:.1f} s", err=True)


def json_option(function):
    return click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")(function)


def emit_json(data: Any) -> None:
    """Masked field by field, then serialised: the output stays valid JSON whatever was masked."""
    from watchdog.core.redact import redact_json

    click.echo(json.dumps(redact_json(data), indent=2, ensure_ascii=False))


def say(text: str = "") -> None:
    """Print a line of a human-readable result; credential shapes are masked on the way out."""
    from watchdog.core.redact import redact

    click.echo(redact(text))


def read_json(path: str, what: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as error:
        raise CouldNotCheck(f"cannot read {what} {path}: {error.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as error:
        raise CouldNotCheck(f"{what} {path} is not JSON: {error}") from None


def change_json(change) -> dict:
    return {"field": change.field, "kind": change.kind, "old": change.old, "new": change.new}


# --- configuration --------------------------------------------------------------------------------

CLOUD_RUN_ENDPOINT_HELP = "Cloud Run Admin API endpoint (CLOUD_RUN_API_ENDPOINT); http:// = stand-in."


def cloud_run_endpoint_option(function):
    return setting("--cloud-run-endpoint", envvar="CLOUD_RUN_API_ENDPOINT", help=CLOUD_RUN_ENDPOINT_HELP)(function)


def config_options(function):
    """The settings that change a decision, with the function's environment variable names."""
    options = [
        setting("--services", envvar="WATCHDOG_SERVICES", help="Services in scope (WATCHDOG_SERVICES)."),
        setting(
            "--rollback-on",
            envvar="WATCHDOG_ROLLBACK_ON",
            type=click.Choice(["egress", "network", "any"]),
            help="Which change justifies a rollback (WATCHDOG_ROLLBACK_ON).",
        ),
        setting(
            "--dry-run/--no-dry-run",
            envvar="WATCHDOG_DRY_RUN",
            default=None,
            help="Decide as if WATCHDOG_DRY_RUN were set.",
        ),
        setting("--cloud-run-endpoint", envvar="CLOUD_RUN_API_ENDPOINT", help=CLOUD_RUN_ENDPOINT_HELP),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def deployed_options(function):
    """Where the deployed watchdog is: ``status`` and ``doctor`` read its watched services (and the doctor the
    service account it runs as) from the function itself, not from the operator's shell."""
    options = [
        setting(
            "--function",
            envvar="WATCHDOG_FUNCTION",
            default="rollback-watchdog",
            show_default=True,
            help="The deployed alert function (terraform's name_prefix) in --project/--region (WATCHDOG_FUNCTION).",
        ),
        setting(
            "--functions-endpoint",
            envvar="CLOUD_FUNCTIONS_API_ENDPOINT",
            default="",
            help="Cloud Functions API base URL (CLOUD_FUNCTIONS_API_ENDPOINT); http:// = stand-in.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def watched_services(
    ctx: click.Context, given: str | None, project: str, region: str, function: str, endpoint: str, timeout: float
):
    """(the WATCHDOG_SERVICES to use, where it came from, the deployed function or None).

    ``given`` (--services, or WATCHDOG_SERVICES set) wins; else the deployed function's own list. With neither,
    :class:`CouldNotCheck` (exit 2): a command that knows no service must never say "all clear".
    """
    from watchdog.tools.watched import Unreadable, deployed

    if given and given.strip():
        return given, named(ctx, "services"), None
    if not (project and region):
        raise CouldNotCheck(
            "which services are watched is not known: give --services, or --project and --region to read them from "
            f"the deployed function {function}"
        )
    try:
        found = deployed(project, region, function, endpoint, timeout)
    except Unreadable as error:
        raise CouldNotCheck(
            f"which services are watched is not known: --services is not given and the deployed function "
            f"{function} in {project}/{region} could not be read ({error}); give --services, or --function"
        ) from None
    if not found.services:
        raise CouldNotCheck(f"the deployed function {found.name} watches no service (its WATCHDOG_SERVICES is empty)")
    return found.services, f"the deployed function {found.name}", found


SETTING_VARIABLES = {
    "services": "WATCHDOG_SERVICES",
    "rollback_on": "WATCHDOG_ROLLBACK_ON",
    "dry_run": "WATCHDOG_DRY_RUN",
    "cloud_run_endpoint": "CLOUD_RUN_API_ENDPOINT",
    "monitoring_endpoint": "MONITORING_API_ENDPOINT",
}


def environment(**overrides: Any) -> dict[str, str]:
    """The process environment with the options given on top, as Config.from_env reads it."""
    env = dict(os.environ)
    for key, value in overrides.items():
        if value is not None:
            env[SETTING_VARIABLES[key]] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return env


def load_config(**overrides: Any) -> Config:
    """Config.from_env over the environment, with the options given on top."""
    try:
        return Config.from_env(environment(**overrides))
    except ConfigError as error:
        raise CouldNotCheck(f"invalid configuration: {relabel(str(error))}") from None


# --- where: project, region, service ----------------------------------------------------------------


def project_option(text: str, *, region: bool = False):
    """``--project`` (or ``--region``) with gcloud's defaults; the command resolves it with :func:`located`."""
    option = "region" if region else "project"
    variable, section, key = gcloud.PROPERTIES[option]
    return setting(
        f"--{option}",
        envvar=variable,
        help=f"{text} Default: {variable}, else {section}/{key} of the active gcloud configuration.",
    )


def region_option(text: str):
    return project_option(text, region=True)


def service_option(text: str = "The Cloud Run service."):
    return click.option("--service", required=True, help=text)


def located(ctx: click.Context, name: str, *, required: bool = True) -> str:
    """``--project`` / ``--region`` as given, else from the environment or gcloud's configuration (said on stderr)."""
    value = (ctx.params.get(name) or "").strip()
    source = ctx.get_parameter_source(name)
    if value and source == ParameterSource.COMMANDLINE:
        return value
    if value:
        where = named(ctx, name)
    else:
        found = gcloud.configured(name)
        value, where = found.value, found.source
    if value:
        ctx.meta.setdefault("rollback-watchdog/sources", {})[name] = where
        progress(f"{name}: {value} (from {where})")
        return value
    if required:
        raise click.UsageError(f"no {name}: {gcloud.how_to_set(name)}")
    return ""


def service_ref(project: str, region: str, service: str) -> ServiceRef:
    """Validated like an alert's labels (intake's name rules); an invalid part is named as the user gave it."""
    from watchdog.core.intake import Alert, parse_notification
    from watchdog.flows.drills import notification

    ref = ServiceRef(project.strip(), region.strip(), service.strip())
    parsed = parse_notification(notification(ref))
    if not isinstance(parsed, Alert):
        detail = parsed.detail
        ctx = click.get_current_context(silent=True)
        for label in ("service", "region", "project"):
            if ctx is not None and f"the alert's {label} " in detail and label in ctx.params:
                where = named(ctx, label)
                value = getattr(ref, label)
                if " " in where:  # a gcloud configuration file
                    detail = f"the {label} {value!r} (from {where}) is not a valid name"
                else:
                    detail = detail.replace(f"the alert's {label}", where)
        raise click.UsageError(detail)
    return ref


def where_options(service_help: str = "The Cloud Run service."):
    """--project, --region (gcloud's defaults) and --service, for the commands about one service."""

    def apply(function):
        function = service_option(service_help)(function)
        function = region_option("Region of the service.")(function)
        return project_option("Project of the Cloud Run service.")(function)

    return apply


def target(ctx: click.Context) -> ServiceRef:
    """The one service a command is about, from --project/--region/--service and their defaults."""
    project = located(ctx, "project")
    region = located(ctx, "region")
    return service_ref(project, region, ctx.params["service"])


# --- calls ------------------------------------------------------------------------------------------


def connect(what: str, endpoint: str, default: str) -> None:
    """Fail in seconds, in one line, when nothing answers at the endpoint (watchdog/tools/reach.py)."""
    host, port, _ = reach.address(endpoint, default)
    with waiting(f"connecting to the {what} at {host}:{port}", quiet=True):
        reason = reach.unreachable(what, endpoint, default)
        if reason:
            raise CouldNotCheck(reason)


def cloud_run(endpoint: str, **kwargs: Any):
    """A Cloud Run client (credentials first: their absence has its own hint), once its endpoint answers."""
    from watchdog.edges.cloudrun import CloudRun

    client = CloudRun(endpoint, **kwargs)
    connect("Cloud Run API", endpoint, reach.CLOUD_RUN)
    return client


def api_call(call: Callable[[], Any], what: str = "Cloud Run API") -> Any:
    """``call()``, with an API failure turned into exit 2 and one line (no traceback, no RetryError dump)."""
    from google.api_core import exceptions

    from watchdog.edges.cloudrun import ConcurrentChange

    try:
        return call()
    except ConcurrentChange:
        raise CouldNotCheck(f"{what}: the service kept changing while it was being updated; try again") from None
    except exceptions.NotFound as error:
        raise CouldNotCheck(f"not found: {' '.join(str(error.message).split())}") from None
    except (exceptions.GoogleAPICallError, exceptions.RetryError, OSError) as error:
        raise CouldNotCheck(f"{what}: {reach.one_line(error)}") from None
