"""``rollback-watchdog drill``: a synthetic open incident through the watchdog's real path (watchdog/flows/drills.py).

Published to the watchdog's topic (google-cloud-pubsub; ``PUBSUB_EMULATOR_HOST``
honoured), or POSTed to the ``drill`` HTTP function. Before anything is sent, the service
must be one the watchdog watches (``--services``/``WATCHDOG_SERVICES``, else the deployed
function's own list) and exist in Cloud Run: a typo is an exit 2 naming the watched
services, never a drill message that blames an alert policy in the on-call channel.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request

import click
from click.core import ParameterSource

from watchdog.tools import reach
from watchdog.tools.options import (
    CLOUD_RUN_ENDPOINT_HELP,
    CONTEXT,
    TOPIC_RE,
    CouldNotCheck,
    cloud_run,
    connect,
    deployed_options,
    emit_json,
    json_option,
    named,
    progress,
    setting,
    target,
    waiting,
    watched_services,
    where_options,
)

EPILOG = """\b
Exit codes:
  0  delivered: the message was published (its id is printed), or the drill function answered 2xx
  1  the drill function answered with an error (its answer is printed)
  2  nothing sent: the service is not watched or does not exist (the watched services are listed),
     bad options, topic not found, endpoint unreachable

\b
Examples:
  rollback-watchdog drill --project P --region R --service S --topic projects/P/topics/T
  WATCHDOG_ID_TOKEN=$(gcloud auth print-identity-token) \\
    rollback-watchdog drill --project P --region R --service S --url https://…-drill-….run.app
"""


@click.command(epilog=EPILOG, context_settings=CONTEXT)
@where_options("The Cloud Run service to drill.")
@click.option("--live", is_flag=True, help="Let the watchdog change traffic (default: a dry run).")
@setting("--topic", envvar="WATCHDOG_TOPIC", help="Publish to this topic, projects/P/topics/T (WATCHDOG_TOPIC).")
@click.option("--url", help="POST to the drill HTTP function at this URL instead of publishing.")
@setting("--id-token", envvar="WATCHDOG_ID_TOKEN", help="Bearer token for --url (WATCHDOG_ID_TOKEN).")
@click.option("--timeout", type=float, default=90.0, show_default=True, help="Seconds to wait for delivery.")
@setting("--services", envvar="WATCHDOG_SERVICES", help="Services the watchdog watches (WATCHDOG_SERVICES); "
         "default: the deployed function's own list.")  # fmt: skip
@setting("--cloud-run-endpoint", envvar="CLOUD_RUN_API_ENDPOINT", help=CLOUD_RUN_ENDPOINT_HELP)
@deployed_options
@json_option
@click.pass_context
def drill(ctx, project, region, service, live, topic, url, id_token, timeout, services, cloud_run_endpoint, function,
          functions_endpoint, as_json) -> None:  # fmt: skip
    """Send a synthetic OPEN incident for a service through the watchdog's real path.

    The incident (schema 1.2, cloud_run_revision, no revision: the watchdog picks the serving
    revision; incident_id drill-<uuid>) is marked as a drill in the policy user labels and the
    message attributes. It is a dry run (decide and report, marked DRILL in Slack) unless --live.
    """
    from watchdog.flows import drills

    topic_given = ctx.get_parameter_source("topic") == ParameterSource.COMMANDLINE
    if url and topic_given:
        raise click.UsageError("give --topic or --url, not both")
    if not url and not topic:
        raise click.UsageError("give --topic (or set WATCHDOG_TOPIC) or --url")
    if not url and not TOPIC_RE.match(topic):
        raise click.UsageError(f"{named(ctx, 'topic')} {topic!r} is not projects/PROJECT/topics/TOPIC")
    ref = target(ctx)
    _check_watched(ctx, ref, services, function, functions_endpoint, cloud_run_endpoint, timeout)
    payload = drills.notification(ref, live)
    attributes = drills.attributes(live)
    incident_id = payload["incident"]["incident_id"]
    kind = "LIVE drill: the watchdog may change traffic" if live else "dry-run drill"
    progress(f"{kind} {incident_id} for {ref}")
    result = {"incident_id": incident_id, "service": str(ref), "drill": drills.mode(live)}
    if url:
        status, text = _drill_http(url, payload, id_token, timeout)
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        if as_json:
            emit_json({**result, "url": url, "status": status, "answer": text if answer is None else answer})
        elif answer is None:
            click.echo(text)
        else:
            emit_json(answer)
        if not 200 <= status < 300:
            progress(f"the drill function answered HTTP {status}")
            ctx.exit(1)
        return
    message_id = _publish(topic, payload, attributes, timeout)
    if as_json:
        emit_json({**result, "topic": topic, "message_id": message_id})
    else:
        click.echo(message_id)


def _check_watched(ctx, ref, services, function: str, functions_endpoint: str, endpoint: str, timeout: float) -> None:
    """Exit 2, sending nothing, unless the watchdog watches ``ref`` and Cloud Run knows it."""
    from google.api_core import exceptions

    from watchdog.config import ServiceScope

    listed, where, _ = watched_services(ctx, services, ref.project, ref.region, function, functions_endpoint,
                                        min(timeout, 15.0))  # fmt: skip
    scope = ServiceScope.parse(listed)
    if ref not in scope:
        raise CouldNotCheck(f"{ref} is not a service the watchdog watches (from {where}: {scope.describe()}); "
                            "nothing was sent. Check --service, --region and --project")  # fmt: skip
    try:
        client = cloud_run(endpoint or "")
        with waiting(f"reading {ref}"):
            client.get_service(ref, time.monotonic() + min(timeout, 15.0))
    except exceptions.NotFound:
        raise CouldNotCheck(f"Cloud Run has no service {ref}; nothing was sent. The watched services: "
                            f"{scope.describe()}") from None  # fmt: skip
    except (exceptions.PermissionDenied, exceptions.Forbidden) as error:
        raise CouldNotCheck(f"you may not read {ref} ({reach.one_line(error)}); nothing was sent") from None
    except Exception as error:  # noqa: BLE001 - Cloud Run not answering is what a drill may be for: say so, go on
        progress(f"could not check that {ref} exists ({reach.one_line(error)}); sending the drill anyway")


def _publish(topic: str, payload: dict, attributes: dict[str, str], timeout: float) -> str:
    from concurrent.futures import TimeoutError as FutureTimeout

    from google.api_core import exceptions
    from google.cloud import pubsub_v1

    where = os.environ.get("PUBSUB_EMULATOR_HOST", "")
    publisher = pubsub_v1.PublisherClient()
    try:
        connect("Pub/Sub API" + (" emulator" if where else ""), where, reach.PUBSUB)
        with waiting(f"publishing to {topic}" + (f" (emulator {where})" if where else "")):
            future = publisher.publish(topic, json.dumps(payload).encode(), **attributes)
            message_id = future.result(timeout=timeout)
    except exceptions.NotFound:
        raise CouldNotCheck(f"topic {topic} not found") from None
    except (exceptions.GoogleAPICallError, FutureTimeout) as error:
        raise CouldNotCheck(f"could not publish to {topic}: {reach.one_line(error)}") from None
    finally:
        publisher.stop()
    progress(f"published: message id {message_id}")
    return message_id


def _drill_http(url: str, payload: dict, id_token: str | None, timeout: float) -> tuple[int, str]:
    """(HTTP status, the answer's text)."""
    headers = {"Content-Type": "application/json"}
    if id_token:
        headers["Authorization"] = f"Bearer {id_token.strip()}"
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers=headers, method="POST")
    host, port, _ = reach.address(url, url)
    with waiting(f"connecting to the drill function at {host}:{port}", quiet=True):
        reason = reach.cannot_connect(url, url)
        if reason:
            raise CouldNotCheck(f"could not reach {url}: {reason}")
    try:
        with waiting(f"waiting for the drill function at {url}"):
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    status, body = response.status, response.read()
            except urllib.error.HTTPError as error:
                status, body = error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise CouldNotCheck(f"could not reach {url}: {reach.one_line(reason)}") from None
    return status, body.decode(errors="replace")
