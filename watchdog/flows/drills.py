"""Drills: a synthetic open incident that walks the watchdog's real path.

A drill is an ordinary schema 1.2 Cloud Monitoring notification for a Cloud
Run service, with no ``revision_name`` (so the watchdog picks the serving
revision) and an ``incident_id`` of ``drill-<uuid>``, marked as a drill twice:
in the policy user labels (``rollback_watchdog_drill``) and in the Pub/Sub
message attributes (``rollback-watchdog-drill``), each ``dry-run`` or
``live``. Intake turns the mark into ``Alert.drill``/``Alert.drill_live``; the
decision treats a drill that is not live as a dry run, and the report says
DRILL.

``rollback-watchdog drill`` builds one and publishes it to the watchdog's
topic, or POSTs it to the ``drill`` HTTP function, which hands it here
(:func:`respond`). The HTTP body is either the notification exactly as the
CLI builds it, or the short form ``{"project", "region", "service", "live"}``
(``live`` optional, default false). Anything else is answered 400: the
endpoint never accepts something that is not marked as a drill.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from watchdog.config import ServiceRef
from watchdog.core.intake import DRILL_ATTRIBUTE, DRILL_LABEL, Alert, parse_notification

DRY_RUN = "dry-run"
LIVE = "live"
ID_PREFIX = "drill-"
MAX_BODY = 64 * 1024
SHORT_FORM_KEYS = {"project", "region", "service", "live"}


class DrillRequestError(ValueError):
    """Not a well-formed drill request (HTTP 400)."""


@dataclass(frozen=True)
class DrillRequest:
    notification: dict
    attributes: dict[str, str]
    alert: Alert


def mode(live: bool) -> str:
    return LIVE if live else DRY_RUN


def notification(ref: ServiceRef, live: bool = False, now: float | None = None, incident_id: str = "") -> dict:
    """The synthetic open incident for ``ref`` (schema 1.2, cloud_run_revision, no revision_name)."""
    now = time.time() if now is None else now
    incident_id = incident_id or f"{ID_PREFIX}{uuid.uuid4()}"
    labels = {
        "project_id": ref.project,
        "service_name": ref.service,
        "location": ref.region,
        "configuration_name": ref.service,
    }
    return {
        "version": "1.2",
        "incident": {
            "incident_id": incident_id,
            "scoping_project_id": ref.project,
            "url": "",
            "severity": "No severity",
            "started_at": int(now),
            "ended_at": None,
            "state": "open",
            "resource_id": "",
            "resource_name": f"{ref.project} Cloud Run Revision labels "
            + "{"
            + ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
            + "}",
            "resource_type_display_name": "Cloud Run Revision",
            "resource": {"type": "cloud_run_revision", "labels": labels},
            "metric": {"type": "run.googleapis.com/request_count", "displayName": "Request Count", "labels": {}},
            "metadata": {"system_labels": {}, "user_labels": {}},
            "policy_name": "Rollback watchdog drill",
            "policy_user_labels": {DRILL_LABEL: mode(live)},
            "condition_name": "Drill (synthetic incident)",
            "condition": {"name": "", "displayName": "Drill (synthetic incident)"},
            "summary": f"Rollback watchdog drill ({mode(live)}) for {ref.service} in {ref.region}, "
            f"project {ref.project}: a synthetic incident, no real alert fired.",
        },
    }


def attributes(live: bool) -> dict[str, str]:
    """The Pub/Sub message attributes that mark a drill."""
    return {DRILL_ATTRIBUTE: mode(live)}


def parse_request(body: Any) -> DrillRequest:
    """A drill from an HTTP body (bytes, str or parsed JSON); raises DrillRequestError."""
    if isinstance(body, (bytes, bytearray)):
        if len(body) > MAX_BODY:
            raise DrillRequestError(f"the body is larger than {MAX_BODY} bytes")
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep to read
            raise DrillRequestError("the body is not JSON, or is nested too deeply") from None
    elif isinstance(body, str):
        try:
            body = json.loads(body)
        except (ValueError, RecursionError):
            raise DrillRequestError("the body is not JSON, or is nested too deeply") from None
    if not isinstance(body, dict):
        raise DrillRequestError(f"the body is a JSON {type(body).__name__}, not an object")
    if "incident" in body or "version" in body:
        return _from_notification(body)
    return _from_short_form(body)


def _from_short_form(body: dict) -> DrillRequest:
    unknown = sorted(set(body) - SHORT_FORM_KEYS)
    if unknown:
        raise DrillRequestError(
            f"unknown field(s) {', '.join(unknown)}: send {{project, region, service, live}} or a drill notification"
        )
    missing = [k for k in ("project", "region", "service") if not body.get(k)]
    if missing:
        raise DrillRequestError(f"missing field(s): {', '.join(missing)}")
    for key in ("project", "region", "service"):
        if not isinstance(body[key], str):
            raise DrillRequestError(f"{key} must be a string")
    live = body.get("live", False)
    if not isinstance(live, bool):
        raise DrillRequestError("live must be true or false")
    ref = ServiceRef(body["project"].strip(), body["region"].strip(), body["service"].strip())
    payload = notification(ref, live)
    alert = parse_notification(payload, attributes(live))
    if not isinstance(alert, Alert):
        raise DrillRequestError(f"not a valid service: {alert.detail}")
    return DrillRequest(payload, attributes(live), alert)


def _from_notification(body: dict) -> DrillRequest:
    incident = body.get("incident")
    if not isinstance(incident, dict):
        raise DrillRequestError("the notification has no incident object")
    if body.get("version") != "1.2":
        raise DrillRequestError("a drill notification has version 1.2")
    labels = incident.get("policy_user_labels")
    drill_mode = labels.get(DRILL_LABEL) if isinstance(labels, dict) else None
    if drill_mode not in (DRY_RUN, LIVE):
        raise DrillRequestError(
            f"not a drill: incident.policy_user_labels.{DRILL_LABEL} must be {DRY_RUN!r} or {LIVE!r}"
        )
    incident_id = incident.get("incident_id")
    if not isinstance(incident_id, str) or not incident_id.startswith(ID_PREFIX):
        raise DrillRequestError(f"not a drill: incident_id must start with {ID_PREFIX!r}")
    if incident.get("state") != "open":
        raise DrillRequestError("a drill is an open incident")
    live = drill_mode == LIVE
    alert = parse_notification(body, attributes(live))
    if not isinstance(alert, Alert):
        raise DrillRequestError(f"the drill names no valid Cloud Run service: {alert.detail}")
    if not alert.drill or alert.drill_live != live:
        raise DrillRequestError("not a drill")
    return DrillRequest(body, attributes(live), alert)


def outcome_json(outcome: Any, request: DrillRequest | None = None) -> dict:
    """The handler's Outcome as the JSON the drill endpoint (and the CLI) shows."""
    data: dict[str, Any] = {
        "result": outcome.result,
        "reason": outcome.reason,
        "incident_id": outcome.incident_id,
        "service": outcome.service,
        "posted": outcome.posted,
    }
    if request is not None:
        data["drill"] = mode(request.alert.drill_live)
    decided = outcome.decision
    if decided is not None:
        data.update(
            action=decided.action,
            detail=decided.detail,
            failing=decided.failing,
            target=decided.target,
            breaking=decided.breaking,
            skipped=list(decided.skipped),
            trigger_changes=[str(c) for c in decided.trigger_changes],
            changes=[str(c) for c in decided.changes],
            serving=decided.serving,
        )
    return data


def handle(body: Any, method: str, watchdog: Callable[[], Any]) -> tuple[int, dict]:
    """Validate a drill request and hand it to the watchdog (``watchdog()``, main.py's ``app.instance``: built only
    for a well-formed drill): (HTTP status, JSON body)."""
    if method != "POST":
        return 405, {"error": "method not allowed: POST a drill"}
    try:
        request = parse_request(body)
    except DrillRequestError as error:
        return 400, {"error": str(error)}
    from watchdog.config import ConfigError
    from watchdog.flows.outcomes import TransientError

    try:
        built = watchdog()
    except ConfigError as error:
        return 500, {"error": f"the watchdog's configuration is invalid: {error}"}
    try:
        outcome = built.handle(
            request.notification, request.attributes, delivery_id=f"http-{request.alert.incident_id}"
        )
    except TransientError as error:
        return 503, {"error": f"transient failure, try again: {error}", "incident_id": request.alert.incident_id}
    return 200, outcome_json(outcome, request)


def respond(request: Any, watchdog: Callable[[], Any]) -> tuple[str, int, dict[str, str]]:
    """The ``drill`` HTTP function's body (a Flask request in, a Flask response tuple out).

    The answer leaves the process like a Slack message or a log line: its values are shown by default
    deny already (watchdog/core/changes.py), and every field is masked by the redactor as well.
    """
    from watchdog.core.redact import redact_json

    status, body = handle(request.get_data(cache=False), request.method, watchdog)
    return json.dumps(redact_json(body), ensure_ascii=False), status, {"Content-Type": "application/json"}
