"""``rollback-watchdog doctor``: what would stop the watchdog acting on an alert. The reads; the rules are pure.

It reads, never writes:

- notification channels and the alert policies that notify the watchdog's
  channel (Monitoring), judged by watchdog/core/alert_policies.py;
- the topic (Pub/Sub): it exists, and its IAM policy grants the Monitoring
  notification agent a publisher role (an endpoint without the IAM API, the
  pstest emulator, makes this check "unchecked");
- the watched services: ``--services`` (or ``WATCHDOG_SERVICES``) when given, else the
  deployed function's own list (watchdog/tools/watched.py); with neither, it says so;
- every watched service exists (Cloud Run ``GetService``), and the watchdog may roll it
  back (watchdog/tools/rollback_rights.py: ``testIamPermissions`` on the service and on its
  runtime service account, and a ``validate_only`` update with the rollback's mask and
  body). ``testIamPermissions`` answers for its caller, so all of this runs *as the
  function's service account* (``--as``, by default the deployed function's), by
  impersonation (``google.auth.impersonated_credentials``): whoever runs the doctor needs
  ``roles/iam.serviceAccountTokenCreator`` on that account. The operator's own rights
  prove nothing about the function's;
- what ``status`` says needs a human, and the configuration itself (invalid values,
  paused, dry run, empty scope).

An API that cannot be reached at all is found out in seconds (watchdog/tools/reach.py)
and its checks are "unchecked", with the reason in one line.
Exit codes of the command: 0 healthy, 1 at least one problem, 2 nothing
wrong found but something could not be checked.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
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
from watchdog.tools import rollback_rights as rights
from watchdog.tools.options import (
    CONTEXT,
    TOPIC_RE,
    config_options,
    deployed_options,
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
     actAs on a Compute Engine default account without --project-number, which services
     are watched or whose rights to prove is not known, the function's account could not
     be impersonated)

\b
Reads, never writes: notification channels and alert policies (Monitoring), the topic and
its IAM policy (Pub/Sub), the deployed function (Cloud Functions: its WATCHDOG_SERVICES and
service account), the watched services (Cloud Run). For each service it proves a rollback
would be allowed without changing anything, as the function's service account (--as,
default the deployed function's; you need roles/iam.serviceAccountTokenCreator on it):
testIamPermissions on the service (run.services.get, run.services.update) and on its
runtime service account (iam.serviceAccounts.actAs), and an UpdateService with
validate_only=true and the same update mask (traffic,annotations), body and etag a
rollback sends.
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
@click.option(
    "--as",
    "as_email",
    default="",
    help="The service account whose rights to prove, impersonated (you need roles/iam.serviceAccountTokenCreator "
    "on it). Default: the deployed function's.",
)
@click.option("--timeout", type=float, default=15.0, show_default=True, help="Seconds per API call.")
@json_option
@deployed_options
@config_options
@click.pass_context
def doctor(
    ctx,
    project,
    topic,
    region,
    project_number,
    iam_endpoint,
    monitoring_endpoint,
    as_email,
    timeout,
    as_json,
    function,
    functions_endpoint,
    **settings,
) -> None:
    """Report what would stop the watchdog acting on an alert."""
    if not TOPIC_RE.match(topic):
        raise click.UsageError(f"{named(ctx, 'topic')} {topic!r} is not projects/PROJECT/topics/TOPIC")
    project = located(ctx, "project")
    region = located(ctx, "region", required=False)
    env = environment(**settings)
    env["MONITORING_API_ENDPOINT"] = monitoring_endpoint or ""
    env["IAM_API_ENDPOINT"] = iam_endpoint or ""
    given = (settings.get("services") or "").strip()
    deployment = Deployment(
        function, functions_endpoint or "", as_email.strip(), named(ctx, "services") if given else ""
    )
    findings = run(
        project,
        topic,
        env,
        region=region,
        project_number=project_number,
        timeout=timeout,
        progress=progress,
        deployment=deployment,
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


@dataclass(frozen=True)
class Deployment:
    """Where the deployed watchdog is, and what the command line says about it."""

    function: str = "rollback-watchdog"
    endpoint: str = ""  # the Cloud Functions API (CLOUD_FUNCTIONS_API_ENDPOINT)
    as_email: str = ""  # --as: whose rights to prove ("": the deployed function's service account)
    services_from: str = ""  # where WATCHDOG_SERVICES came from when given ("": read the deployed function)


def config_findings(env: dict[str, str], *, services_known: bool = True) -> tuple[Any, list[Finding]]:
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
    if services_known and not config.services:
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
    deployment: Deployment = Deployment(),
) -> list[Finding]:
    findings: list[Finding] = []
    scope, deployed, unknown = _scope(env, project, region, deployment, timeout, progress)
    env = {**env, "WATCHDOG_SERVICES": scope}
    config, found = config_findings(env, services_known=unknown is None)
    findings += found
    findings += _monitoring(project, topic, env.get("MONITORING_API_ENDPOINT", "").strip(), timeout, progress)
    findings += _slack_scopes(env, timeout, progress)
    findings += _topic(topic, project_number, timeout, progress)
    if config is None:
        return findings
    if unknown is not None:
        return [*findings, unknown]
    if config.services.everything:
        findings += [
            Finding("service", OK, "WATCHDOG_SERVICES is '*': every service is in scope", "*"),
            Finding("dry_run", UNCHECKED, "with '*' there is no list of services to prove rollback rights on: "
                    "name the services in WATCHDOG_SERVICES to have them checked", "*"),
        ]  # fmt: skip
    down = reach.unreachable("Cloud Run API", config.cloud_run_endpoint, reach.CLOUD_RUN)
    if down:
        return [*findings, Finding("service", UNCHECKED, f"could not read the services: {down}", "WATCHDOG_SERVICES")]
    identity, cloud_run = _acting_as(config, env, project, region, deployment, deployed, timeout, progress)
    findings.append(identity)
    if cloud_run is None:
        return findings
    if not config.services.everything:
        findings += service_findings(
            config, project, region, timeout, progress, cloud_run=cloud_run, project_number=project_number,
            iam_endpoint=env.get("IAM_API_ENDPOINT", "").strip(), incident=DOCTOR_INCIDENT,
        )  # fmt: skip
    return findings + _needs_human(config, project, region, timeout, progress, cloud_run=cloud_run)


MANIFEST = Path(__file__).resolve().parents[2] / "docs" / "slack-app-manifest.json"


def _slack_scopes(env: dict[str, str], timeout: float, progress) -> list[Finding]:
    """``slack_scopes``: the bot token (SLACK_BOT_TOKEN, as the function gets it) has every scope of the app
    manifest, which are exactly the Web API methods the watchdog calls (Slack states a token's scopes on every
    answer). Without a token: a warning that it was not checked."""
    import json

    from watchdog.config import SlackSettings
    from watchdog.edges.slack import SlackBot, remaining_until

    token = env.get("SLACK_BOT_TOKEN", "").strip()
    if not token:
        # a warning, not "could not check" (exit 2): most shells do not hold the token, and nothing was refused
        return [Finding("slack_scopes", WARNING, "SLACK_BOT_TOKEN is not set here: the bot's scopes were not "
                        "checked (export it from Secret Manager to check them)", "Slack")]  # fmt: skip
    wanted = frozenset(json.loads(MANIFEST.read_text())["oauth_config"]["scopes"]["bot"])
    progress("reading the bot token's scopes (auth.test)")
    settings = SlackSettings(
        bot_token=token, channel=env.get("SLACK_CHANNEL", "C0"), api_url=env.get("SLACK_API_URL", "")
    )
    read = SlackBot(settings, remaining_until(time.monotonic() + timeout)).scopes()
    if not read.ok:
        return [Finding("slack_scopes", UNCHECKED, f"could not read the bot token's scopes: {read.error}", "Slack")]
    missing = sorted(wanted - read.value)
    if missing:
        return [Finding("slack_scopes", PROBLEM, f"the bot token lacks {', '.join(missing)} (the app manifest, "
                        f"{MANIFEST.name}, asks for {', '.join(sorted(wanted))}): reinstall the app from the manifest",
                        "Slack")]  # fmt: skip
    return [Finding("slack_scopes", OK, f"the bot token has every scope of the app manifest "
                    f"({', '.join(sorted(wanted))})", "Slack")]  # fmt: skip


def _scope(env: dict[str, str], project: str, region: str, deployment: Deployment, timeout: float, progress):
    """(WATCHDOG_SERVICES, the deployed function if read, the finding that says the scope is unknown, or None)."""
    from watchdog.tools.watched import Unreadable, deployed

    given = env.get("WATCHDOG_SERVICES", "").strip()
    if given:
        progress(f"watched services: {given} (from {deployment.services_from or 'WATCHDOG_SERVICES'})")
        return given, None, None
    if not region:
        return "", None, Finding("services", UNCHECKED, "which services are watched is not known: give --services, "
                                 f"or --region to read them from the deployed function {deployment.function}",
                                 "WATCHDOG_SERVICES")  # fmt: skip
    progress(f"reading the deployed function {deployment.function} in {project}/{region}")
    try:
        found = deployed(project, region, deployment.function, deployment.endpoint, timeout)
    except Unreadable as error:
        return "", None, Finding("services", UNCHECKED, f"which services are watched is not known: the deployed "
                                 f"function {deployment.function} could not be read ({error}); give --services, or "
                                 "--function", "WATCHDOG_SERVICES")  # fmt: skip
    progress(f"watched services: {found.services or '(none)'} (from the deployed function {found.name})")
    return found.services, found, None


def _acting_as(config: Any, env, project: str, region: str, deployment: Deployment, deployed, timeout, progress):
    """(the finding that says whose rights are proven, a Cloud Run client acting as them or None)."""
    from watchdog.edges.cloudrun import CloudRun
    from watchdog.tools.watched import Unreadable
    from watchdog.tools.watched import deployed as read_deployed

    email, source = deployment.as_email, "--as"
    if not email:
        if deployed is None and region:
            try:
                deployed = read_deployed(project, region, deployment.function, deployment.endpoint, timeout)
            except Unreadable as error:
                return Finding("identity", UNCHECKED, "whose rights to prove is not known: the deployed function "
                               f"{deployment.function} could not be read ({error}); give --as EMAIL",
                               "--as"), None  # fmt: skip
        email = deployed.service_account if deployed is not None else ""
        source = f"the service account of the deployed function {deployed.name}" if deployed is not None else ""
    if not email:
        return Finding("identity", UNCHECKED, "whose rights to prove is not known: give --as EMAIL (the function's "
                       "service account) or --region to read it from the deployed function", "--as"), None  # fmt: skip
    progress(f"proving the rights of {email} ({source}), by impersonation")
    try:
        credentials = rights.impersonated(email, env, config.cloud_run_endpoint, timeout)
    except rights.CannotActAs as error:
        return Finding("identity", UNCHECKED, f"could not act as {email} to prove its rights: {error}", email), None
    cloud_run = CloudRun(config.cloud_run_endpoint, credentials=credentials)
    return Finding("identity", OK, f"rights proven as {email} ({source}), impersonated", email), cloud_run


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
