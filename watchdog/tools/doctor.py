"""``rollback-watchdog doctor``: what would stop the watchdog acting on an alert. The reads; the rules are pure.

It reads, never writes:

- notification channels and the alert policies that notify the watchdog's
  channel (Monitoring), judged by watchdog/core/alert_policies.py;
- the topic (Pub/Sub): it exists, and its IAM policy grants the Monitoring
  notification agent a publisher role (an endpoint without the IAM API, the
  pstest emulator, makes this check "unchecked");
- every service in ``WATCHDOG_SERVICES`` exists (Cloud Run ``GetService``), and the
  watchdog may roll it back (watchdog/tools/rollback_rights.py: ``testIamPermissions``
  on the service and on its runtime service account, and a ``validate_only``
  update with the rollback's mask and body);
- what ``status`` says needs a human, and the configuration itself (invalid values,
  paused, dry run, empty scope).

An API that cannot be reached at all is found out in seconds (watchdog/tools/reach.py)
and its checks are "unchecked", with the reason in one line.
Exit codes of the command: 0 healthy, 1 at least one problem, 2 nothing
wrong found but something could not be checked.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from watchdog.core.alert_policies import (
    OK,
    PROBLEM,
    UNCHECKED,
    WARNING,
    Finding,
    exit_code,
    policy_findings,
    topic_iam_findings,
    watchdog_channels,
)
from watchdog.tools import reach
from watchdog.tools.options import (
    CONTEXT,
    TOPIC_RE,
    config_options,
    emit_json,
    environment,
    json_option,
    located,
    named,
    progress,
    project_option,
    region_option,
    relabel,
    setting,
)
from watchdog.tools.rollback_rights import service_findings

DOCTOR_INCIDENT = "doctor-validate-only"  # the incident of the ledger record its validate_only update carries

EPILOG = """\b
Exit codes:
  0  healthy: nothing found that would stop the watchdog acting
  1  problems found (each printed with what to change)
  2  nothing wrong found, but something could not be checked (e.g. the topic's IAM policy
     on an endpoint without the IAM API, an API error, a service entry without region,
     actAs on a Compute Engine default account without --project-number)

\b
Reads, never writes: notification channels and alert policies (Monitoring), the topic and
its IAM policy (Pub/Sub), the services in WATCHDOG_SERVICES (Cloud Run). For each service
it proves a rollback would be allowed without changing anything: testIamPermissions on the
service (run.services.get, run.services.update) and on its runtime service account
(iam.serviceAccounts.actAs), and an UpdateService with validate_only=true and the same
update mask (traffic,annotations), body and etag a rollback sends.
"""


@click.command(epilog=EPILOG, context_settings=CONTEXT)
@project_option("Project of the alert policies and channels.")
@setting("--topic", envvar="WATCHDOG_TOPIC", required=True, help="The watchdog's topic (WATCHDOG_TOPIC).")
@region_option("Region for WATCHDOG_SERVICES entries that name none.")
@click.option(
    "--project-number",
    default="",
    help="Project number: check the exact notification agent, and actAs on the Compute Engine default account.",
)
@setting(
    "--iam-endpoint",
    envvar="IAM_API_ENDPOINT",
    default="",
    help="IAM API base URL for the service-account permission test (IAM_API_ENDPOINT); http:// = stand-in.",
)
@setting(
    "--monitoring-endpoint",
    envvar="MONITORING_API_ENDPOINT",
    help="host:port of an insecure gRPC Monitoring endpoint (MONITORING_API_ENDPOINT).",
)
@click.option("--timeout", type=float, default=15.0, show_default=True, help="Seconds per API call.")
@json_option
@config_options
@click.pass_context
def doctor(
    ctx, project, topic, region, project_number, iam_endpoint, monitoring_endpoint, timeout, as_json, **settings
) -> None:
    """Report what would stop the watchdog acting on an alert."""
    if not TOPIC_RE.match(topic):
        raise click.UsageError(f"{named(ctx, 'topic')} {topic!r} is not projects/PROJECT/topics/TOPIC")
    project = located(ctx, "project")
    region = located(ctx, "region", required=False)
    env = environment(**settings)
    env["MONITORING_API_ENDPOINT"] = monitoring_endpoint or ""
    env["IAM_API_ENDPOINT"] = iam_endpoint or ""
    findings = run(
        project, topic, env, region=region, project_number=project_number, timeout=timeout, progress=progress
    )
    findings = [Finding(f.check, f.status, relabel(f.message, ctx), f.subject) if f.check == "config" else f
                for f in findings]  # fmt: skip
    code = exit_code(findings)
    if as_json:
        emit_json({"exit_code": code, "findings": [f.as_dict() for f in findings]})
    else:
        for finding in findings:
            subject = f" [{finding.subject}]" if finding.subject else ""
            click.echo(f"{finding.status.upper():9} {finding.check}{subject}: {finding.message}")
        summary = {0: "healthy", 1: "problems found", 2: "could not check everything"}[code]
        click.echo(f"doctor: {summary}")
    sys.exit(code)


def config_findings(env: dict[str, str]) -> tuple[Any, list[Finding]]:
    from watchdog.config import Config, ConfigError

    try:
        config = Config.from_env(env)
    except ConfigError as error:
        return None, [Finding("config", PROBLEM, f"invalid configuration: {error}", "environment")]
    found = []
    if config.paused:
        found.append(Finding("config", WARNING, "WATCHDOG_PAUSED=true: the watchdog only reports", "environment"))
    if config.dry_run:
        found.append(Finding("config", WARNING, "WATCHDOG_DRY_RUN=true: the watchdog only reports", "environment"))
    if not config.services:
        found.append(
            Finding("config", WARNING, "WATCHDOG_SERVICES is empty: the watchdog never rolls back", "environment")
        )
    return config, found


def run(
    project: str,
    topic: str,
    env: dict[str, str],
    *,
    region: str = "",
    project_number: str = "",
    timeout: float = 15.0,
    progress: Callable[[str], None] = lambda _text: None,
) -> list[Finding]:
    findings: list[Finding] = []
    config, found = config_findings(env)
    findings += found
    findings += _monitoring(project, topic, env.get("MONITORING_API_ENDPOINT", "").strip(), timeout, progress)
    findings += _topic(topic, project_number, timeout, progress)
    if config is None:
        return findings
    if config.services.everything:
        findings += [
            Finding("service", OK, "WATCHDOG_SERVICES is '*': every service is in scope", "*"),
            Finding("dry_run", UNCHECKED, "with '*' there is no list of services to prove rollback rights on: "
                    "name the services in WATCHDOG_SERVICES to have them checked", "*"),
        ]  # fmt: skip
    cloud_run, trouble = _cloud_run(config)
    if trouble is not None:
        return [*findings, trouble]
    if not config.services.everything:
        findings += service_findings(
            config, project, region, timeout, progress, cloud_run=cloud_run, project_number=project_number,
            iam_endpoint=env.get("IAM_API_ENDPOINT", "").strip(), incident=DOCTOR_INCIDENT,
        )  # fmt: skip
    return findings + _needs_human(config, project, region, timeout, progress, cloud_run=cloud_run)


def _monitoring(project: str, topic: str, endpoint: str, timeout: float, progress) -> list[Finding]:
    """The channel that publishes to the topic, and the alert policies that notify it."""
    from google.api_core import exceptions
    from google.api_core import retry as retries
    from google.auth.exceptions import GoogleAuthError
    from google.cloud import monitoring_v3
    from google.protobuf import json_format

    from watchdog.edges.monitoring import client

    # transient errors are retried, but never past --timeout (the clients' own default is 30 s)
    retry = retries.Retry(predicate=retries.if_transient_error, initial=0.2, maximum=2.0, timeout=timeout)
    failed = (exceptions.GoogleAPICallError, exceptions.RetryError, GoogleAuthError)

    def as_dicts(pager: Any) -> list[dict]:
        return [json_format.MessageToDict(type(item).pb(item)) for item in pager]

    progress(f"reading notification channels of {project}")
    down = reach.unreachable("Monitoring API", endpoint, reach.MONITORING, min(timeout, reach.CONNECT_TIMEOUT))
    if down:
        return [Finding("channel", UNCHECKED, f"could not list notification channels: {down}", project)]
    try:
        channels = as_dicts(
            client(monitoring_v3.NotificationChannelServiceClient, endpoint).list_notification_channels(
                name=f"projects/{project}", retry=retry, timeout=timeout
            )
        )
    except failed as error:
        return [Finding("channel", UNCHECKED, f"could not list notification channels: {reach.one_line(error)}",
                        project)]  # fmt: skip
    mine, findings = watchdog_channels(channels, topic)
    if not mine:
        return findings
    progress(f"reading alert policies of {project}")
    try:
        policies = as_dicts(
            client(monitoring_v3.AlertPolicyServiceClient, endpoint).list_alert_policies(
                name=f"projects/{project}", retry=retry, timeout=timeout
            )
        )
    except failed as error:
        return [*findings, Finding("policy", UNCHECKED, f"could not list alert policies: {reach.one_line(error)}",
                                   project)]  # fmt: skip
    names = {c.get("name") for c in mine}
    routed = [p for p in policies if names & set(p.get("notificationChannels") or [])]
    if not routed:
        findings.append(Finding("policy", PROBLEM, "no alert policy notifies the watchdog's channel", project))
    for policy in routed:
        findings += policy_findings(policy)
    return findings


def _topic(topic: str, project_number: str, timeout: float, progress: Callable[[str], None]) -> list[Finding]:
    import os

    from google.api_core import exceptions
    from google.auth.exceptions import GoogleAuthError
    from google.cloud import pubsub_v1
    from google.protobuf import json_format

    progress(f"reading topic {topic}")
    try:
        publisher = pubsub_v1.PublisherClient()
    except GoogleAuthError as error:
        return [Finding("topic", UNCHECKED, f"no credentials for Pub/Sub: {error}", topic)]
    try:
        emulator = os.environ.get("PUBSUB_EMULATOR_HOST", "")
        down = reach.unreachable("Pub/Sub API", emulator, reach.PUBSUB, min(timeout, reach.CONNECT_TIMEOUT))
        if down:
            return [Finding("topic", UNCHECKED, f"could not read the topic: {down}", topic)]
        try:
            publisher.get_topic(topic=topic, timeout=timeout)
        except exceptions.NotFound:
            return [Finding("topic", PROBLEM, "the topic does not exist", topic)]
        except exceptions.GoogleAPICallError as error:
            return [Finding("topic", UNCHECKED, f"could not read the topic: {reach.one_line(error)}", topic)]
        found = [Finding("topic", OK, "exists", topic)]
        try:
            policy = publisher.get_iam_policy(request={"resource": topic}, timeout=timeout)
        except exceptions.MethodNotImplemented:
            return [*found, Finding("topic_iam", UNCHECKED, "this Pub/Sub endpoint does not implement IAM", topic)]
        except exceptions.GoogleAPICallError as error:
            return [*found, Finding("topic_iam", UNCHECKED, "could not read the topic's IAM policy: "
                                    f"{reach.one_line(error)}", topic)]  # fmt: skip
        return found + topic_iam_findings(json_format.MessageToDict(policy), topic, project_number)
    finally:
        publisher.transport.close()


def _cloud_run(config: Any) -> tuple[Any, Finding | None]:
    """A Cloud Run client for the service checks, or the one finding that says why there is none."""
    from google.auth.exceptions import GoogleAuthError

    from watchdog.edges.cloudrun import CloudRun

    try:
        cloud_run = CloudRun(config.cloud_run_endpoint)
    except GoogleAuthError as error:
        return None, Finding("service", UNCHECKED, f"no credentials for Cloud Run: {error}", "WATCHDOG_SERVICES")
    down = reach.unreachable("Cloud Run API", config.cloud_run_endpoint, reach.CLOUD_RUN)
    if down:
        return None, Finding("service", UNCHECKED, f"could not read the services: {down}", "WATCHDOG_SERVICES")
    return cloud_run, None


def _needs_human(config: Any, project: str, region: str, timeout: float, progress, cloud_run: Any = None):
    """What ``status`` says needs a human (watchdog/core/status.py), as problems: a forgotten pause or pin,
    an escalated or never verified rollback."""
    from watchdog.tools import watched

    if cloud_run is None:
        from watchdog.edges.cloudrun import CloudRun

        try:
            cloud_run = CloudRun(config.cloud_run_endpoint)
        except Exception as error:  # noqa: BLE001 - no credentials: the service checks already say so
            return [Finding("attention", UNCHECKED, f"no credentials for Cloud Run: {error}", "WATCHDOG_SERVICES")]
    found = []
    for item in watched.gather(config, cloud_run, project=project, region=region, timeout=timeout, progress=progress):
        # a service that cannot be read or located is already the "service" check's finding
        found += [Finding("attention", PROBLEM, f"needs a human: {text}", item.service) for text in item.needs_human]
    return found
