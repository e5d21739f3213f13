"""Cloud Function entry points for the Cloud Run rollback watchdog.

``handle_alert`` is a CloudEvent function for
``google.cloud.pubsub.topic.v1.messagePublished``: Cloud Monitoring publishes an
incident to the topic, which reaches the function either through an Eventarc
trigger (a CloudEvent) or, as terraform/ deploys it, through a Pub/Sub push
subscription with a dead-letter topic (functions-framework turns the push body
into the same CloudEvent). ``handle_events`` is the same code on the deploy
events' and ticks' own subscription (terraform/pubsub.tf). Returning normally answers 200 (Pub/Sub
acknowledges); raising answers 500 and Pub/Sub redelivers, which the watchdog
only does for transient failures.

A push delivery whose message has attributes but no ``data`` is a shape
functions-framework cannot convert (it answers 400 before the function runs,
and Pub/Sub would redeliver it into the dead letter): :func:`_push_without_data`
hands it to ``handle_alert`` as the CloudEvent Eventarc would have made of it,
so it is acknowledged with the watchdog's logged reason like any other input.

``drill`` is an HTTP function for on-call drills (watchdog/flows/drills.py);
``slack_actions`` is the Slack card's interactivity endpoint (watchdog/flows/slack_actions.py).
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _load_own_watchdog():
    """Import this project's ``watchdog`` package, not the PyPI one of the same name.

    functions-framework depends on the PyPI ``watchdog`` and appends the source
    folder to the *end* of ``sys.path``, so a plain import would find the wrong
    package. Put the source folder first and evict a wrongly imported package;
    fail loudly if that still does not give ours.
    """
    if not sys.path or os.path.abspath(sys.path[0] or os.curdir) != _HERE:
        sys.path.insert(0, _HERE)
    loaded = sys.modules.get("watchdog")
    if loaded is not None and not getattr(loaded, "__rollback_watchdog__", False):
        for name in [n for n in sys.modules if n == "watchdog" or n.startswith("watchdog.")]:
            del sys.modules[name]
    import watchdog

    where = os.path.dirname(os.path.dirname(os.path.abspath(watchdog.__file__ or "")))
    if not getattr(watchdog, "__rollback_watchdog__", False) or where != _HERE:
        raise ImportError(
            f"main.py imported the wrong 'watchdog' package from {watchdog.__file__}; "
            f"expected the rollback watchdog in {_HERE}/watchdog"
        )
    return watchdog


_load_own_watchdog()

import functions_framework

from watchdog.config import ConfigError
from watchdog.flows import app


@functions_framework.cloud_event
def handle_alert(cloud_event):
    """Consume one Cloud Monitoring notification delivered through Pub/Sub (or any other delivery: see below)."""
    _deliver(cloud_event)


@functions_framework.cloud_event
def handle_events(cloud_event):
    """Deploy events (the sentinel's Logging sinks) and verification ticks, on their own topic, subscription and
    function (terraform/pubsub.tf), so that a hold's deliberate 500s or a storm of deploys never delays an alert.

    The same delivery code as ``handle_alert``, which keeps accepting every kind of delivery too: a deployment
    with one subscription (and one upgraded from it) keeps working, and an alert that reaches this function is
    handled all the same.
    """
    _deliver(cloud_event)


def _deliver(cloud_event):
    try:
        watchdog = app.instance()
    except ConfigError:
        return  # permanent: logged at ERROR by app.instance; acknowledge, no retry loop
    try:
        watchdog.handle(cloud_event.data, delivery_id=cloud_event["id"], published_at=_event_time(cloud_event))
    except Exception as error:
        from watchdog.edges import logs
        from watchdog.flows.outcomes import InProgress, TransientError

        if isinstance(error, (TransientError, InProgress)):
            raise  # an expected 500: logged at WARNING where it was decided; Pub/Sub redelivers
        # A bug: the watchdog's own ERROR line, so the self-monitoring alert pages whatever severity Cloud Run gives
        # the traceback on stderr or the 500 in its request log (terraform/self_monitoring.tf reads neither).
        logs.error(f"unhandled {type(error).__name__}: {error}; Pub/Sub redelivers", decision="crash",
                   delivery_id=str(cloud_event["id"]))  # fmt: skip
        raise


def _event_time(cloud_event) -> float | None:
    """The CloudEvent ``time`` (when Pub/Sub published the message), for bodies without a publishTime."""
    from watchdog.core.intake import rfc3339

    try:
        return rfc3339(cloud_event["time"])
    except KeyError:
        return None


# functions-framework 3.10.2 turns a raw Pub/Sub push into a CloudEvent only when its message has
# ``data`` (event_conversion._is_raw_pubsub_payload); otherwise the conversion fails and it calls
# flask.abort(400). Its errorhandler() decorator registers a Flask error handler on the app it builds.
@functions_framework.errorhandler(400)
def _push_without_data(error):
    """A raw push body {"message": {attributes, messageId, no data}, "subscription"} → handle_alert; else the 400."""
    import flask

    if os.environ.get("FUNCTION_TARGET") != "handle_alert" or flask.request.method != "POST":
        return error
    body = flask.request.get_json(silent=True)
    message = body.get("message") if isinstance(body, dict) and "subscription" in body else None
    if not isinstance(message, dict) or "data" in message or not isinstance(message.get("messageId"), str):
        return error
    from cloudevents.http import CloudEvent

    published = message.get("publishTime") if isinstance(message.get("publishTime"), str) else None
    event = CloudEvent(
        {
            "id": message["messageId"],
            "source": "//pubsub.googleapis.com/",
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
            "specversion": "1.0",
            **({"time": published} if published else {}),
        },
        {"message": message, "subscription": body["subscription"]},
    )
    handle_alert(event)  # raises for a transient failure (500: redelivered), as for any delivery
    return "OK", 200


@functions_framework.http
def slack_actions(request):
    """The Slack card's buttons (watchdog/flows/slack_actions.py): every request is signature-checked and authorized."""
    from watchdog.flows import slack_actions as flow  # not on handle_alert's cold-start path

    return flow.respond(request)


@functions_framework.http
def drill(request):
    """A synthetic incident (watchdog/flows/drills.py): dry run unless "live"; 400 for anything not a drill."""
    from watchdog.flows import drills  # not on handle_alert's cold-start path

    return drills.respond(request)


if os.environ.get("FUNCTION_TARGET") == "slack_actions":
    # The buttons' function imports what a click needs at instance start: a warm instance
    # (min_instance_count) then answers its first click without paying for it. handle_alert's
    # cold start stays lean: nothing here runs for it.
    from watchdog.flows import slack_actions as _actions_flow

    _actions_flow.warm()
