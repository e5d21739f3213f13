"""``python -m watchdog``: drills and operator tools for the Cloud Run rollback watchdog.

Never imported by the function (main.py): click, google-cloud-pubsub and
google-cloud-monitoring stay off its cold-start path. Options read the same
environment variables as the function (watchdog/config.py ENV_VARS), and the
configuration is validated by the same ``Config.from_env``.

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
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from watchdog.config import Config, ConfigError, ServiceRef

TOPIC_RE = re.compile(r"^projects/[^/]+/topics/[^/]+$")
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


class CouldNotCheck(click.ClickException):
    """Exit 2: the command could not do its job (bad input, unreachable API, invalid configuration)."""

    exit_code = 2


# --- shared -----------------------------------------------------------------------------------


def progress(text: str) -> None:
    click.echo(text, err=True)


@contextmanager
def waiting(text: str) -> Iterator[None]:
    """Show that something is being waited for: a spinner on a terminal, start/end lines otherwise."""
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
        click.echo(f"{chr(13) if spinner else ''}{text}: {result} in {time.monotonic() - started:.1f} s", err=True)


def config_options(function):
    """The settings that change a decision, with the function's environment variable names."""
    options = [
        click.option("--services", envvar="WATCHDOG_SERVICES", help="Services in scope (WATCHDOG_SERVICES)."),
        click.option(
            "--rollback-on",
            envvar="WATCHDOG_ROLLBACK_ON",
            type=click.Choice(["egress", "network", "any"]),
            help="Which change justifies a rollback (WATCHDOG_ROLLBACK_ON).",
        ),
        click.option(
            "--dry-run/--no-dry-run",
            envvar="WATCHDOG_DRY_RUN",
            default=None,
            help="Decide as if WATCHDOG_DRY_RUN were set.",
        ),
        click.option(
            "--cloud-run-endpoint",
            envvar="CLOUD_RUN_API_ENDPOINT",
            help="Cloud Run Admin API endpoint (CLOUD_RUN_API_ENDPOINT); http:// = stand-in.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def load_config(**overrides: Any) -> Config:
    """Config.from_env over the environment, with the options given on top."""
    names = {
        "services": "WATCHDOG_SERVICES",
        "rollback_on": "WATCHDOG_ROLLBACK_ON",
        "dry_run": "WATCHDOG_DRY_RUN",
        "cloud_run_endpoint": "CLOUD_RUN_API_ENDPOINT",
        "monitoring_endpoint": "MONITORING_API_ENDPOINT",
    }
    env = dict(os.environ)
    for key, value in overrides.items():
        if value is not None:
            env[names[key]] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    try:
        return Config.from_env(env)
    except ConfigError as error:
        raise CouldNotCheck(f"invalid configuration: {error}") from None


def read_json(path: str, what: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as error:
        raise CouldNotCheck(f"cannot read {what} {path}: {error.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as error:
        raise CouldNotCheck(f"{what} {path} is not JSON: {error}") from None


def emit_json(data: Any) -> None:
    from watchdog.core.redact import redact

    click.echo(redact(json.dumps(data, indent=2, ensure_ascii=False, default=str)))


def service_ref(project: str, region: str, service: str) -> ServiceRef:
    """Validated like an alert's labels (intake's name rules)."""
    from watchdog.core.intake import Alert, parse_notification

    ref = ServiceRef(project.strip(), region.strip(), service.strip())
    from watchdog.flows.drills import notification

    parsed = parse_notification(notification(ref))
    if not isinstance(parsed, Alert):
        raise click.UsageError(parsed.detail)
    return ref


@click.group(context_settings=CONTEXT)
def cli() -> None:
    """Drills and operator tools for the Cloud Run rollback watchdog.

    Every option that matches a setting of the function reads the same environment
    variable (shown in each command's --help). Results go to stdout, progress to stderr.
    """


# --- drill ------------------------------------------------------------------------------------

DRILL_EPILOG = """\b
Exit codes:
  0  delivered: the message was published (its id is printed), or the drill function answered 2xx
  1  the drill function answered with an error (its answer is printed)
  2  could not deliver: bad options, topic not found, endpoint unreachable

\b
Examples:
  python -m watchdog drill --project P --region R --service S --topic projects/P/topics/T
  WATCHDOG_ID_TOKEN=$(gcloud auth print-identity-token) \\
    python -m watchdog drill --project P --region R --service S --url https://…-drill-….run.app
"""


@cli.command(epilog=DRILL_EPILOG, context_settings=CONTEXT)
@click.option("--project", required=True, help="Project of the Cloud Run service.")
@click.option("--region", required=True, help="Region of the service.")
@click.option("--service", required=True, help="The Cloud Run service to drill.")
@click.option("--live", is_flag=True, help="Let the watchdog change traffic (default: a dry run).")
@click.option("--topic", envvar="WATCHDOG_TOPIC", help="Publish to this topic, projects/P/topics/T (WATCHDOG_TOPIC).")
@click.option("--url", help="POST to the drill HTTP function at this URL instead of publishing.")
@click.option("--id-token", envvar="WATCHDOG_ID_TOKEN", help="Bearer token for --url (WATCHDOG_ID_TOKEN).")
@click.option("--timeout", type=float, default=90.0, show_default=True, help="Seconds to wait for delivery.")
@click.pass_context
def drill(ctx, project, region, service, live, topic, url, id_token, timeout) -> None:
    """Send a synthetic OPEN incident for a service through the watchdog's real path.

    The incident (schema 1.2, cloud_run_revision, no revision: the watchdog picks the serving
    revision; incident_id drill-<uuid>) is marked as a drill in the policy user labels and the
    message attributes. It is a dry run (decide and report, marked DRILL in Slack) unless --live.
    """
    from watchdog.flows import drills

    ref = service_ref(project, region, service)
    topic_given = ctx.get_parameter_source("topic") == ParameterSource.COMMANDLINE
    if url and topic_given:
        raise click.UsageError("give --topic or --url, not both")
    if not url and not topic:
        raise click.UsageError("give --topic (or set WATCHDOG_TOPIC) or --url")
    payload = drills.notification(ref, live)
    attributes = drills.attributes(live)
    incident_id = payload["incident"]["incident_id"]
    kind = "LIVE drill: the watchdog may change traffic" if live else "dry-run drill"
    progress(f"{kind} {incident_id} for {ref}")
    if url:
        ctx.exit(_drill_http(url, payload, id_token, timeout))
    if not TOPIC_RE.match(topic):
        raise click.UsageError(f"--topic {topic!r} is not projects/PROJECT/topics/TOPIC")
    click.echo(_publish(topic, payload, attributes, timeout))


def _publish(topic: str, payload: dict, attributes: dict[str, str], timeout: float) -> str:
    from concurrent.futures import TimeoutError as FutureTimeout

    from google.api_core import exceptions
    from google.cloud import pubsub_v1

    where = os.environ.get("PUBSUB_EMULATOR_HOST")
    publisher = pubsub_v1.PublisherClient()
    try:
        with waiting(f"publishing to {topic}" + (f" (emulator {where})" if where else "")):
            future = publisher.publish(topic, json.dumps(payload).encode(), **attributes)
            message_id = future.result(timeout=timeout)
    except exceptions.NotFound:
        raise CouldNotCheck(f"topic {topic} not found") from None
    except (exceptions.GoogleAPICallError, FutureTimeout) as error:
        raise CouldNotCheck(f"could not publish to {topic}: {type(error).__name__}: {error}") from None
    finally:
        publisher.stop()
    progress(f"published: message id {message_id}")
    return message_id


def _drill_http(url: str, payload: dict, id_token: str | None, timeout: float) -> int:
    headers = {"Content-Type": "application/json"}
    if id_token:
        headers["Authorization"] = f"Bearer {id_token.strip()}"
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers=headers, method="POST")
    try:
        with waiting(f"waiting for the drill function at {url}"):
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    status, body = response.status, response.read()
            except urllib.error.HTTPError as error:
                status, body = error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        raise CouldNotCheck(f"could not reach {url}: {error}") from None
    text = body.decode(errors="replace")
    try:
        emit_json(json.loads(text))
    except ValueError:
        click.echo(text)
    if 200 <= status < 300:
        return 0
    progress(f"the drill function answered HTTP {status}")
    return 1


# --- explain ----------------------------------------------------------------------------------

EXPLAIN_EPILOG = """\b
Exit codes:
  0  the decision was explained (whatever it is: rollback, report, nothing, ignored)
  2  could not explain: unreadable files, invalid configuration, Cloud Run API errors

\b
Nothing is ever changed: explain only reads.
"""


@cli.command(epilog=EXPLAIN_EPILOG, context_settings=CONTEXT)
@click.option(
    "--alert",
    "alert_path",
    required=True,
    help="Monitoring notification JSON, or a Pub/Sub message / CloudEvent body carrying it ('-' = stdin).",
)
@click.option("--service-json", help="The service (GET …/services/S response) instead of a live lookup.")
@click.option("--revisions-json", help='Its revisions, newest first: {"revisions": [...]} or a list.')
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--deadline", type=float, default=30.0, show_default=True, help="Seconds for the live lookup.")
@config_options
def explain(alert_path, service_json, revisions_json, as_json, deadline, **settings) -> None:
    """Show what the watchdog would decide for an alert, with the revision diff and reasons."""
    from watchdog.core import decision as rules
    from watchdog.core.intake import Alert, parse

    if bool(service_json) != bool(revisions_json):
        raise click.UsageError("give both --service-json and --revisions-json, or neither (live lookup)")
    config = load_config(**settings)
    parsed = parse(read_json(alert_path, "alert"))
    if not isinstance(parsed, Alert):
        result = {"alert": None, "ignored": {"reason": parsed.reason, "detail": parsed.detail}}
        if as_json:
            emit_json(result)
        else:
            click.echo(f"Ignored ({parsed.reason}): {parsed.detail}")
            click.echo("The watchdog acknowledges this delivery and does nothing.")
        return
    alert = parsed
    until = time.monotonic() + deadline
    related: list[str] = []
    cloud_run = None
    if service_json:
        service = read_json(service_json, "service")
        raw = read_json(revisions_json, "revisions")
        revisions = raw.get("revisions", []) if isinstance(raw, dict) else raw
        if not isinstance(service, dict) or not isinstance(revisions, list):
            raise CouldNotCheck("--service-json must hold an object, --revisions-json a list or {revisions: [...]}")
        revisions = sorted(revisions, key=lambda r: str(r.get("createTime", "")), reverse=True)
        complete = True
        history = None
    else:
        from watchdog.edges.cloudrun import CloudRun

        cloud_run = CloudRun(config.cloud_run_endpoint)
        with waiting(f"reading {alert.service} and its revisions"):
            service, history = _cloud_run_call(lambda: cloud_run.read(alert.service, until))
        revisions, complete = history.loaded, history.complete
    now = time.time()
    if alert.state == "closed":
        recovered = rules.recovery(alert, service, now)
        _show_closed(alert, recovered, as_json)
        return
    decided = rules.decide(alert, service, revisions, config, now, history_complete=complete)
    while decided.action == rules.NEED_MORE and history is not None:
        progress(f"read {len(history.loaded)} revisions; reading the next page")
        _cloud_run_call(history.read_more)
        revisions, complete = history.loaded, history.complete
        decided = rules.decide(alert, service, revisions, config, now, history_complete=complete)
    if cloud_run is not None and decided.breaking:
        from watchdog.flows import blast_radius

        with waiting("looking for the same change in other services"):
            related = _cloud_run_call(
                lambda: blast_radius.related(config, cloud_run, alert, decided, until, revisions=revisions)
            )
    if as_json:
        emit_json(_explain_json(alert, decided, related, len(revisions), cloud_run is not None))
    else:
        _show_decision(alert, decided, related, config, len(revisions))


def _cloud_run_call(call):
    from google.api_core import exceptions

    try:
        return call()
    except exceptions.NotFound as error:
        raise CouldNotCheck(f"not found: {error.message}") from None
    except (exceptions.GoogleAPICallError, exceptions.RetryError, OSError) as error:
        raise CouldNotCheck(f"Cloud Run API: {type(error).__name__}: {error}") from None


def _alert_json(alert) -> dict:
    return {
        "incident_id": alert.incident_id,
        "state": alert.state,
        "service": str(alert.service),
        "revision": alert.revision,
        "policy": alert.policy_name,
        "condition_kind": alert.condition_kind,
        "found_by": alert.found_by,
        "drill": ("live" if alert.drill_live else "dry-run") if alert.drill else None,
    }


def _explain_json(alert, decided, related: list[str], revisions_read: int, live: bool) -> dict:
    return {
        "alert": _alert_json(alert),
        "decision": {
            "action": decided.action,
            "reason": decided.reason,
            "detail": decided.detail,
            "failing": decided.failing,
            "breaking": decided.breaking,
            "target": decided.target,
            "skipped": list(decided.skipped),
            "would_roll_back": decided.would_roll_back,
            "serving": decided.serving,
            "traffic_after": decided.split,
            "traffic_update": list(decided.traffic),
            "trust": decided.trust,
            "moved_from": list(decided.moved_from),
            "breaking_deleted": decided.breaking_deleted,
            "loud": decided.loud,
            "trigger_changes": [_change(c) for c in decided.trigger_changes],
            "changes": [_change(c) for c in decided.changes],
        },
        "revisions_read": revisions_read,
        "related": related if live else None,
    }


def _change(change) -> dict:
    return {"field": change.field, "kind": change.kind, "old": change.old, "new": change.new}


def _show_decision(alert, decided, related: list[str], config: Config, revisions_read: int) -> None:
    drill = f" [DRILL {'live' if alert.drill_live else 'dry-run'}]" if alert.drill else ""
    _say(f"Incident {alert.incident_id} ({alert.state}){drill} on {alert.service}")
    _say(f"  policy: {alert.policy_name or 'unknown'} ({alert.condition_kind}); found by {alert.found_by}")
    _say(f"  revision: {alert.revision or '(none named: the one serving most traffic)'}")
    _say("")
    _say(f"Decision: {decided.action.upper()} ({decided.reason})")
    _say(f"  {decided.detail}")
    if decided.serving:
        _say("  traffic now: " + ", ".join(f"{k} {v}%" for k, v in decided.serving.items()))
    if decided.split:
        after = ", ".join(f"{k} {v}%" for k, v in sorted(decided.split.items(), key=lambda kv: -kv[1]) if v)
        tags = ", ".join(e["tag"] for e in decided.traffic if e.get("tag"))
        _say(f"  traffic after: {after}" + (f" (tags kept: {tags})" if tags else ""))
    if decided.trust:
        _say(f"  why {decided.target}: {decided.trust}")
    for label, value in (("failing", decided.failing), ("breaking", decided.breaking), ("target", decided.target)):
        if value:
            _say(f"  {label}: {value}")
    if decided.skipped:
        _say("  skipped: " + ", ".join(decided.skipped))
    if decided.trigger_changes:
        _say("")
        _say(f"What changed in {decided.breaking} ({config.rollback_on} changes):")
        for change in decided.trigger_changes:
            _say(f"  - {change}")
    rest = [c for c in decided.changes if c not in decided.trigger_changes]
    if rest:
        _say("")
        _say(f"Also different from {decided.target}:" if decided.target else "Configuration diff:")
        for change in rest:
            _say(f"  - {change}")
    if related:
        _say("")
        _say("Same change elsewhere (last 24 h):")
        for line in related:
            _say(f"  - {line}")
    _say("")
    _say(f"({revisions_read} revisions read; nothing was changed)")


def _say(text: str = "") -> None:
    """Print a line of a human-readable result; credential shapes are masked on the way out."""
    from watchdog.core.redact import redact

    click.echo(redact(text))


def _show_closed(alert, recovered, as_json: bool) -> None:
    if as_json:
        emit_json(
            {
                "alert": _alert_json(alert),
                "recovery": None
                if recovered is None
                else {
                    "from": recovered.record.from_revision,
                    "to": recovered.record.to_revision,
                    "alert_to_rollback_s": recovered.alert_to_rollback,
                    "rollback_to_recovery_s": recovered.rollback_to_recovery,
                },
            }
        )
        return
    click.echo(f"Incident {alert.incident_id} (closed) on {alert.service}")
    if recovered is None:
        click.echo("Decision: NOTHING (closed_not_acted_on): the watchdog did not roll back for this incident")
    else:
        click.echo(
            f"Decision: RECOVERY follow-up: rolled back {recovered.record.from_revision} → "
            f"{recovered.record.to_revision}; the watchdog replies in the report's Slack thread"
        )


# --- check ------------------------------------------------------------------------------------

CHECK_EPILOG = """\b
Exit codes:
  0  no risky change (harmless differences such as image or env are listed)
  1  risky change: egress flip, all-traffic egress with Cloud SQL sockets, connector or
     network interfaces added/removed/changed (unless acknowledged with --allow RULE)
  2  could not check: service or revision not found, Cloud Run API errors

\b
In CI/CD, before migrating traffic:
  gcloud run deploy S --no-traffic …
  python -m watchdog check --project P --region R --service S
  gcloud run services update-traffic S --to-latest …
"""


@cli.command(epilog=CHECK_EPILOG, context_settings=CONTEXT)
@click.option("--project", required=True)
@click.option("--region", required=True)
@click.option("--service", required=True)
@click.option("--revision", help="Candidate revision (default: the latest created).")
@click.option("--allow", multiple=True, help="Acknowledge a rule (e.g. all-traffic-cloud-sql): report, don't fail.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--deadline", type=float, default=30.0, show_default=True, help="Seconds for the Cloud Run reads.")
@click.option(
    "--cloud-run-endpoint",
    envvar="CLOUD_RUN_API_ENDPOINT",
    help="Cloud Run Admin API endpoint (CLOUD_RUN_API_ENDPOINT); http:// = stand-in.",
)
def check(project, region, service, revision, allow, as_json, deadline, cloud_run_endpoint) -> None:
    """Pre-deploy gate: compare a revision with the one it replaces and fail on risky changes.

    The candidate (default: the service's latest created revision) is compared with the
    revision serving traffic now; when the candidate already serves, with the newest Ready
    revision before it.
    """
    from watchdog.core import precheck
    from watchdog.core import traffic as rules
    from watchdog.edges.cloudrun import CloudRun

    unknown = sorted(set(allow) - set(precheck.RULES))
    if unknown:
        raise click.UsageError(f"unknown rule(s) for --allow: {', '.join(unknown)}; rules: {', '.join(precheck.RULES)}")
    ref = service_ref(project, region, service)
    config = load_config(cloud_run_endpoint=cloud_run_endpoint)
    cloud_run = CloudRun(config.cloud_run_endpoint)
    until = time.monotonic() + deadline
    with waiting(f"reading {ref} and its revisions"):
        found, history = _cloud_run_call(lambda: cloud_run.read(ref, until))
    candidate_name = rules.short_name(revision or found.get("latestCreatedRevision", ""))
    if not candidate_name:
        raise CouldNotCheck(f"{ref} has no revision")
    serving = rules.traffic_split(found)

    def find(name: str) -> int:
        names = [rules.short_name(r.get("name", "")) for r in history.loaded]
        while name not in names and not history.complete:
            _cloud_run_call(history.read_more)
            names = [rules.short_name(r.get("name", "")) for r in history.loaded]
        return names.index(name) if name in names else -1

    at = find(candidate_name)
    if at < 0:
        raise CouldNotCheck(f"revision {candidate_name} not found in {ref}")
    candidate = history.loaded[at]
    baseline = None
    if serving.get(candidate_name, 0) > 0:
        why = f"newest Ready revision before {candidate_name}, which already serves {serving[candidate_name]}%"
        while baseline is None:
            baseline = next((r for r in history.loaded[at + 1 :] if rules.is_ready(r)), None)
            if baseline is not None or history.complete:
                break
            _cloud_run_call(history.read_more)
    elif serving:
        name = max(serving.items(), key=lambda kv: kv[1])[0]
        why = f"serving {serving[name]}% now"
        index = find(name)
        baseline = history.loaded[index] if index >= 0 else None
    else:
        why = "no revision serves traffic"
    verdict = precheck.evaluate(baseline, candidate, allow)
    baseline_name = rules.short_name(baseline.get("name", "")) if baseline else ""
    if as_json:
        emit_json(
            {
                "service": str(ref),
                "candidate": candidate_name,
                "baseline": baseline_name or None,
                "baseline_why": why,
                "ok": verdict.ok,
                "findings": [f.as_dict() for f in verdict.findings],
                "changes": [_change(c) for c in verdict.changes],
            }
        )
    else:
        click.echo(f"{ref}: {candidate_name} (candidate) vs {baseline_name or 'nothing'} ({why})")
        for finding in verdict.findings:
            mark = "ALLOWED" if finding.allowed else finding.severity.upper()
            click.echo(f"  {mark} {finding.rule}: {finding.message}")
        for change in verdict.changes:
            if change.kind == "other":
                click.echo(f"  harmless: {change}")
        if verdict.ok:
            click.echo("OK: no risky change; safe to migrate traffic as far as the watchdog's rules go")
        else:
            rules_hit = sorted({f.rule for f in verdict.findings if f.severity == precheck.FAIL and not f.allowed})
            click.echo(f"RISKY: {', '.join(rules_hit)}. Do not migrate traffic before checking these.")
    sys.exit(0 if verdict.ok else 1)


# --- doctor -----------------------------------------------------------------------------------

DOCTOR_EPILOG = """\b
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


PAUSE_EPILOG = """\b
Exit codes:
  0  done (or already so)
  2  could not change it: service not found, permission denied, Cloud Run API errors
"""


def _set_paused(
    project: str,
    region: str,
    service: str,
    cloud_run_endpoint: str | None,
    paused: bool,
    by: str = "",
    reason: str = "",
) -> None:
    from watchdog.edges.cloudrun import CloudRun
    from watchdog.tools.pause import set_paused

    ref = service_ref(project, region, service)
    with waiting(f"{'pausing' if paused else 'resuming'} the watchdog for {ref}"):
        changed = _cloud_run_call(
            lambda: set_paused(CloudRun(cloud_run_endpoint or ""), ref, paused, by=by, reason=reason)
        )
    state = "paused" if paused else "active"
    click.echo(f"{ref}: watchdog {state}" + ("" if changed else " (no change)"))


def _pause_options(function):
    for option in reversed(
        [
            click.option("--project", required=True),
            click.option("--region", required=True),
            click.option("--service", required=True),
            click.option("--cloud-run-endpoint", envvar="CLOUD_RUN_API_ENDPOINT",
                         help="Cloud Run Admin API endpoint (CLOUD_RUN_API_ENDPOINT); http:// = stand-in."),
        ]
    ):  # fmt: skip
        function = option(function)
    return function


@cli.command(epilog=PAUSE_EPILOG, context_settings=CONTEXT)
@_pause_options
@click.option("--reason", default="", help="Why (shown by `status`); e.g. 'migrating the database'.")
@click.option("--by", "by", default="", help="Who pauses (shown by `status`); default: $USER.")
def pause(project, region, service, cloud_run_endpoint, reason, by) -> None:
    """Stop automatic rollbacks of one service: alerts are reported, traffic is left alone.

    Sets the service annotation rollback-watchdog/paused=true with an annotations-only
    update: no new revision, no traffic change. rollback-watchdog/paused-by records who,
    when and why. WATCHDOG_PAUSED=true pauses every service.
    """
    import getpass

    _set_paused(project, region, service, cloud_run_endpoint, True, by=by or getpass.getuser(), reason=reason)


@cli.command(epilog=PAUSE_EPILOG, context_settings=CONTEXT)
@_pause_options
def resume(project, region, service, cloud_run_endpoint) -> None:
    """Let the watchdog roll one service back again (clears rollback-watchdog/paused)."""
    _set_paused(project, region, service, cloud_run_endpoint, False)


@cli.command(epilog=DOCTOR_EPILOG, context_settings=CONTEXT)
@click.option("--project", required=True, help="Project of the alert policies and channels.")
@click.option("--topic", envvar="WATCHDOG_TOPIC", required=True, help="The watchdog's topic (WATCHDOG_TOPIC).")
@click.option("--region", default="", help="Region for WATCHDOG_SERVICES entries that name none.")
@click.option(
    "--project-number",
    default="",
    help="Project number: check the exact notification agent, and actAs on the Compute Engine default account.",
)
@click.option(
    "--iam-endpoint",
    envvar="IAM_API_ENDPOINT",
    default="",
    help="IAM API base URL for the service-account permission test (IAM_API_ENDPOINT); http:// = stand-in.",
)
@click.option(
    "--monitoring-endpoint",
    envvar="MONITORING_API_ENDPOINT",
    help="host:port of an insecure gRPC Monitoring endpoint (MONITORING_API_ENDPOINT).",
)
@click.option("--timeout", type=float, default=15.0, show_default=True, help="Seconds per API call.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_options
def doctor(
    project, topic, region, project_number, iam_endpoint, monitoring_endpoint, timeout, as_json, **settings
) -> None:
    """Report what would stop the watchdog acting on an alert."""
    from watchdog.tools import doctor as checks

    if not TOPIC_RE.match(topic):
        raise click.UsageError(f"--topic {topic!r} is not projects/PROJECT/topics/TOPIC")
    env = dict(os.environ)
    names = {
        "services": "WATCHDOG_SERVICES",
        "rollback_on": "WATCHDOG_ROLLBACK_ON",
        "dry_run": "WATCHDOG_DRY_RUN",
        "cloud_run_endpoint": "CLOUD_RUN_API_ENDPOINT",
    }
    for key, value in settings.items():
        if value is not None:
            env[names[key]] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    env["MONITORING_API_ENDPOINT"] = monitoring_endpoint or ""
    env["IAM_API_ENDPOINT"] = iam_endpoint or ""
    findings = checks.run(
        project, topic, env, region=region, project_number=project_number, timeout=timeout, progress=progress
    )
    code = checks.exit_code(findings)
    if as_json:
        emit_json({"exit_code": code, "findings": [f.as_dict() for f in findings]})
    else:
        for finding in findings:
            subject = f" [{finding.subject}]" if finding.subject else ""
            click.echo(f"{finding.status.upper():9} {finding.check}{subject}: {finding.message}")
        summary = {0: "healthy", 1: "problems found", 2: "could not check everything"}[code]
        click.echo(f"doctor: {summary}")
    sys.exit(code)


# --- status -----------------------------------------------------------------------------------

STATUS_EPILOG = """\b
Exit codes:
  0  all clear
  1  something needs a human: paused or pinned for more than a day, a rollback that did not
     fix the service (escalated), or one never verified
  2  could not read a service (or locate one: give --project/--region for entries without them)

\b
Reads, never writes: each watched service and its newest revisions (Cloud Run).
"""


@cli.command(epilog=STATUS_EPILOG, context_settings=CONTEXT)
@click.option("--project", default="", help="Project for WATCHDOG_SERVICES entries that name none (and '*').")
@click.option("--region", default="", help="Region for WATCHDOG_SERVICES entries that name none (and '*').")
@click.option("--service", "only", default="", help="Only this service: SERVICE or PROJECT/REGION/SERVICE.")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds for all the reads.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_options
def status(project, region, only, timeout, as_json, **settings) -> None:
    """What the watchdog holds: pauses, pinned traffic, rollbacks and their verdicts, cooldowns."""
    from watchdog.core import status as view
    from watchdog.edges.cloudrun import CloudRun

    config = load_config(**settings)
    statuses = view.gather(
        config, CloudRun(config.cloud_run_endpoint), project=project, region=region, only=only, timeout=timeout,
        progress=progress,
    )  # fmt: skip
    code = view.exit_code(statuses)
    if as_json:
        emit_json({"exit_code": code, "services": [s.as_dict() for s in statuses]})
    else:
        from watchdog.core.redact import redact

        click.echo(redact(view.render_text(statuses, time.time())))
        click.echo(f"status: {({0: 'all clear', 1: 'needs a human', 2: 'could not read everything'})[code]}")
    sys.exit(code)


def main() -> None:
    from google.auth.exceptions import DefaultCredentialsError

    try:
        cli(prog_name="python -m watchdog")
    except DefaultCredentialsError as error:
        click.echo(
            f"Error: no Google credentials ({error}). Run `gcloud auth application-default login`, or point "
            "CLOUD_RUN_API_ENDPOINT / MONITORING_API_ENDPOINT / PUBSUB_EMULATOR_HOST at local stand-ins.",
            err=True,
        )
        sys.exit(2)
