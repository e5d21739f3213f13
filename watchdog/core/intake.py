"""Intake: turn whatever arrived into an :class:`Alert`, or an :class:`Ignored` with its reason.

Pure code. It accepts every shape a Cloud Monitoring notification reaches the
function in: the Eventarc ``MessagePublishedData`` body (with or without the
duplicated snake_case keys), a bare Pub/Sub message, a structured CloudEvent,
or the notification JSON itself; schema 1.2, legacy 1.1 and the console's
``version: "test"`` payload. Nothing here raises on bad input: anything that is
not an open or closed incident on a Cloud Run service becomes ``Ignored``.

Where the service is found, first match wins: the incident's resource labels,
then the policy user labels ``cloud_run_service``/``cloud_run_region``, then the
condition's filter text, then the human ``resource_name`` string. Those may
complete a location, but the incident's resource type travels with the alert:
an incident on another resource (a ``global`` or VM policy whose user labels
name a service) is an :class:`Alert` that may only be reported
(:mod:`watchdog.core.guards`).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from watchdog.config import ServiceRef
from watchdog.core import deploys
from watchdog.core.deploys import DeployEvent

# Drills are marked in the policy user labels and the message attributes:
# "dry-run" (the default) or "live".
DRILL_LABEL = "rollback_watchdog_drill"
DRILL_ATTRIBUTE = "rollback-watchdog-drill"
# Cloud Scheduler's verification tick (terraform/verify.tf) carries this message attribute.
TICK_ATTRIBUTE = "rollback-watchdog-tick"

_SERVICE_RE = re.compile(r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$")
_REVISION_RE = re.compile(r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$")
_REGION_RE = re.compile(r"^[a-z]+(?:-[a-z]+)+[0-9]+$")
_PROJECT_RE = re.compile(r"^(?:[a-z][-a-z0-9.]{0,61}:)?[a-z][-a-z0-9]{4,28}[a-z0-9]$")

# Condition variants as they appear in ``incident.condition``.
_CONDITION_KINDS = {
    "conditionThreshold": "metric-threshold",
    "conditionAbsent": "metric-absence",
    "conditionMatchedLog": "log-match",
    "conditionPrometheusQueryLanguage": "promql",
    "conditionMonitoringQueryLanguage": "mql",
    "conditionSql": "sql",
}


@dataclass(frozen=True)
class Alert:
    """An open or closed incident on one Cloud Run service."""

    incident_id: str
    state: str  # "open" or "closed"
    service: ServiceRef
    revision: str  # "" when the alert does not name one
    policy_name: str = ""
    condition_name: str = ""
    condition_kind: str = "unknown"
    url: str = ""
    summary: str = ""
    started_at: float | None = None
    ended_at: float | None = None
    found_by: str = "resource labels"
    drill: bool = False  # a synthetic incident from ``rollback-watchdog drill``
    drill_live: bool = False  # a drill that may change traffic (``--live``)
    schema: str = "1.2"
    published_at: float | None = None  # when Pub/Sub accepted the message (publishTime); None if unknown
    metric_type: str = ""  # the condition's metric (incident.metric.type, else metric.type in its filter)
    # A deploy-time hold (watchdog/flows/deploy_events.py): the revision that served before the deploy. The
    # deploy itself is the change, and that revision is the one to go back to (decision rule 7).
    served_before: str = ""
    # The incident's monitored resource type (incident.resource.type; "" when the notification has none, as
    # schema 1.1). Only an incident on Cloud Run's own resource may roll back (watchdog/core/guards.py); the
    # default is for the alerts the watchdog makes itself (the deploy-time hold, blast radius), never intake's.
    resource_type: str = "cloud_run_revision"
    policy_id: str = ""  # projects/P/alertPolicies/A, from incident.condition.name; "" when absent
    # What the condition compares, read back by verification (watchdog/core/verification.py):
    threshold: float | None = None  # incident.threshold_value, else the condition's thresholdValue
    aligner: str = ""  # the condition's first perSeriesAligner (ALIGN_PERCENTILE_99 …)
    comparison: str = ""  # the condition's comparison (COMPARISON_GT …)
    signal: str = ""  # the policy user label ``signal`` (terraform's policies name what they watch with it)

    @property
    def sends_close(self) -> bool:
        """Log-match policies never send a ``closed`` notification."""
        return self.condition_kind != "log-match"


@dataclass(frozen=True)
class Ignored:
    """Not something to act on: acknowledged, logged with ``reason``.

    ``tell`` marks what on-call must fix (a Cloud Run incident the watchdog
    cannot locate): logged as a WARNING and posted to Slack, naming ``service``
    and ``policy``.
    """

    reason: str  # short machine-readable code
    detail: str
    incident_id: str = ""
    tell: bool = False
    service: str = ""
    policy: str = ""


@dataclass(frozen=True)
class Tick:
    """A verification tick (watchdog/flows/ticks.py): never an alert, so never a rollback."""

    published_at: float | None = None


# Cloud Run incidents that name a service but cannot be located: the policy needs fixing.
_TELL = {"no_region", "no_project", "no_service"}


def parse(body: Any, attributes: Any = None, published_at: float | None = None) -> Alert | DeployEvent | Tick | Ignored:
    """Parse a delivery body (CloudEvent data, Pub/Sub message or notification).

    ``published_at`` (epoch seconds, e.g. the CloudEvent ``time``) is used when
    the body carries no Pub/Sub ``publishTime``. Never raises: whatever goes
    wrong while parsing (a payload nested thousands of levels deep makes
    ``json.loads`` raise RecursionError) is an unparseable payload.
    """
    try:
        notification, attrs, problem, published = _unwrap(body, attributes)
        if _text(_obj(attrs).get(TICK_ATTRIBUTE)):  # first: whatever a tick's data says, it is a tick
            return Tick(published or published_at)
        if problem:
            return Ignored("unparseable", problem)
        if deploys.is_audit_entry(notification):  # a Cloud Run deploy, from a Logging sink or Eventarc
            event = deploys.parse_entry(notification)
            return Ignored(event.reason, event.detail) if isinstance(event, deploys.NotADeploy) else event
        parsed = parse_notification(notification, attrs)
    except (RecursionError, MemoryError, ValueError, TypeError, AttributeError, KeyError) as error:
        return Ignored("unparseable", f"the payload could not be parsed ({type(error).__name__})")
    if isinstance(parsed, Alert):
        return replace(parsed, published_at=published or published_at)
    return parsed


def parse_notification(payload: Any, attributes: Any = None) -> Alert | Ignored:
    """Parse a Cloud Monitoring notification (the JSON in the Pub/Sub message)."""
    if not isinstance(payload, dict):
        return Ignored("unparseable", "the notification is not a JSON object")
    version = _text(payload.get("version"))
    incident = payload.get("incident")
    if not isinstance(incident, dict):
        return Ignored("not_an_incident", "the notification has no incident object")
    incident_id = _text(incident.get("incident_id"))[:200]
    if version.lower() == "test":
        return Ignored("test_notification", "Cloud Monitoring test notification", incident_id)
    if not incident_id:
        return Ignored("not_an_incident", "the incident has no incident_id")
    state = _text(incident.get("state")).lower()
    if state not in ("open", "closed"):
        return Ignored("unknown_state", f"incident state {state[:40]!r} is neither open nor closed", incident_id)

    where = _locate(incident)
    if isinstance(where, Ignored):
        policy = _text(incident.get("policy_name"))[:300]
        return replace(
            where, incident_id=incident_id, policy=policy, tell=where.reason in _TELL and bool(where.service)
        )
    ref, revision, found_by = where

    condition = _obj(incident.get("condition"))
    compared = _obj(condition.get("conditionThreshold"))  # a metric-threshold condition's comparison, else {}
    kind = next((v for k, v in _CONDITION_KINDS.items() if k in condition), "unknown")
    user_labels = _obj(incident.get("policy_user_labels"))
    attrs = _obj(attributes)
    drill_mode = (_text(attrs.get(DRILL_ATTRIBUTE)) or _text(user_labels.get(DRILL_LABEL))).lower()
    return Alert(
        incident_id=incident_id,
        state=state,
        service=ref,
        revision=revision,
        policy_name=_text(incident.get("policy_name"))[:300],
        condition_name=_text(incident.get("condition_name"))[:300],
        condition_kind=kind if version != "1.1" else "legacy",
        url=_console_url(incident.get("url")),
        summary=_text(incident.get("summary"))[:1000],
        started_at=_epoch(incident.get("started_at")),
        ended_at=_epoch(incident.get("ended_at")),
        found_by=found_by,
        drill=drill_mode in ("true", "dry-run", "live"),
        drill_live=drill_mode == "live",
        schema=version or "unknown",
        metric_type=_metric_type(incident),
        resource_type=_text(_obj(incident.get("resource")).get("type"))[:100],
        policy_id=_policy_id(condition),
        threshold=_threshold(incident),
        aligner=_text(_first(compared.get("aggregations")).get("perSeriesAligner"))[:40],
        comparison=_text(compared.get("comparison"))[:40],
        signal=_text(user_labels.get("signal"))[:63],
    )


def _policy_id(condition: dict) -> str:
    """``projects/P/alertPolicies/A`` from the condition's name ``projects/P/alertPolicies/A/conditions/C``."""
    match = re.match(r"^(projects/[^/\s]+/alertPolicies/[^/\s]+)/conditions/", _text(condition.get("name")))
    return match.group(1)[:300] if match else ""


def _metric_type(incident: dict) -> str:
    """The metric the alert's condition watches: what verification reads for the restored revision."""
    named = _text(_obj(incident.get("metric")).get("type"))
    if named:
        return named[:300]
    for value in _obj(incident.get("condition")).values():
        match = re.search(r'metric\.type\s*=\s*"([^"]+)"', _text(_obj(value).get("filter")))
        if match:
            return match.group(1)[:300]
    return ""


def _threshold(incident: dict) -> float | None:
    """The condition's threshold: ``incident.threshold_value`` (a string in 1.2, e.g. "0.5"), else the
    condition's ``thresholdValue``; None when neither is a finite number (log-match, absence, MQL …)."""
    threshold = _obj(_obj(incident.get("condition")).get("conditionThreshold")).get("thresholdValue")
    for value in (incident.get("threshold_value"), threshold):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)) or value == "":
            continue
        try:
            number = float(value)
        except (ValueError, OverflowError):
            continue
        if math.isfinite(number):
            return number
    return None


def _first(value: Any) -> dict:
    return _obj(value[0]) if isinstance(value, list) and value else {}


def _unwrap(body: Any, attributes: Any) -> tuple[Any, Any, str, float | None]:
    """Peel CloudEvent / Pub/Sub layers off until the notification is reached; keep the publish time."""
    published = None
    for _ in range(4):
        if isinstance(body, (bytes, bytearray)):
            try:
                body = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                return None, attributes, "the body is not JSON", published
            continue
        if isinstance(body, str):
            try:
                body = json.loads(body)
            except ValueError:
                return None, attributes, "the body is not JSON", published
            continue
        if not isinstance(body, dict):
            return None, attributes, f"the body is a JSON {type(body).__name__}, not an object", published
        if "incident" in body or "version" in body or "protoPayload" in body:
            return body, attributes, "", published
        if isinstance(body.get("message"), dict):
            body = body["message"]
            published = published or rfc3339(body.get("publishTime") or body.get("publish_time"))
            continue
        if "data" in body and ("specversion" in body or isinstance(body.get("data"), dict)):
            body = body["data"]  # a structured CloudEvent
            continue
        if "data" in body:
            if attributes is None and isinstance(body.get("attributes"), dict):
                attributes = body["attributes"]
            published = published or rfc3339(body.get("publishTime") or body.get("publish_time"))
            data = body.get("data")
            if not isinstance(data, str):
                return None, attributes, "message.data is not a base64 string", published
            try:
                raw = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                return None, attributes, "message.data is not valid base64", published
            try:
                return json.loads(raw), attributes, "", published
            except (ValueError, UnicodeDecodeError):
                return None, attributes, "message.data is not JSON", published
        return None, attributes, "no Pub/Sub message or notification in the body", published
    return None, attributes, "the body is nested too deeply", published


def _locate(incident: dict) -> tuple[ServiceRef, str, str] | Ignored:
    resource = _obj(incident.get("resource"))
    labels = _obj(resource.get("labels"))
    user_labels = _obj(incident.get("policy_user_labels"))
    condition = _obj(incident.get("condition"))
    filter_text = " ".join(
        _text(_obj(v).get("filter")) + " " + _text(_obj(v).get("query"))
        for v in condition.values()
        if isinstance(v, dict)
    )
    resource_name_labels = dict(re.findall(r"(\w+)=([^,}\s]+)", _text(incident.get("resource_name"))))
    sources = [
        ("resource labels", labels),
        (
            "policy user labels",
            {
                "service_name": user_labels.get("cloud_run_service"),
                "location": user_labels.get("cloud_run_region"),
                "project_id": user_labels.get("cloud_run_project"),
            },
        ),
        ("condition filter", _labels_from_filter(filter_text)),
        ("resource name", resource_name_labels),
    ]
    service = region = project = revision = ""
    found_by = ""
    for name, source in sources:
        named = _text(source.get("service_name"))
        if service and named and named != service:
            continue  # a source about another service says nothing about this one
        if not service and named:
            service, found_by = named, name
        region = region or _text(source.get("location"))
        project = project or _text(source.get("project_id"))
        revision = revision or _text(source.get("revision_name"))
    resource_type = _text(resource.get("type"))
    if not service:
        if resource_type and resource_type != "cloud_run_revision":
            return Ignored("not_cloud_run", f"the incident is about a {resource_type[:60]!r} resource")
        return Ignored(
            "no_service",
            "the alert names no Cloud Run service (group the condition by resource.label.service_name)",
            service="(not named)" if resource_type == "cloud_run_revision" else "",
        )
    project = project or _text(incident.get("scoping_project_id"))
    for label, value, pattern in (
        ("service", service, _SERVICE_RE),
        ("region", region, _REGION_RE),
        ("project", project, _PROJECT_RE),
    ):
        if not value:
            return Ignored(
                "no_" + label,
                f"the alert for service {service[:63]!r} names no {label}: add the label to the policy "
                f"(group by resource.label.{'location' if label == 'region' else label + '_id'}) or set the policy "
                f"user label cloud_run_{label}",
                service=service[:63],
            )
        if not pattern.match(value):
            return Ignored("invalid_name", f"the alert's {label} {value[:80]!r} is not a valid name")
    if revision and not _REVISION_RE.match(revision):
        return Ignored("invalid_name", f"the alert's revision {revision[:80]!r} is not a valid name")
    return ServiceRef(project, region, service), revision, found_by


def _labels_from_filter(text: str) -> dict[str, str]:
    """Labels pinned by the condition: Monitoring filters, PromQL matchers and MQL filters."""
    found = {}
    for key in ("service_name", "revision_name", "location", "project_id"):
        pattern = rf"(?:resource\.labels?\.|resource\.|\b){key}\s*(?:==|=|:)\s*(?:\"([^\"]+)\"|'([^']+)')"
        match = re.search(pattern, text)
        if match:
            found[key] = match.group(1) or match.group(2)
    return found


def _obj(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return ""


def _epoch(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if 0 < number < 1e11 else None


def rfc3339(value: Any) -> float | None:
    """An RFC 3339 timestamp (as Pub/Sub and Cloud Run write them) in epoch seconds; None if unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _console_url(value: Any) -> str:
    url = _text(value)
    return url[:500] if url.startswith("https://") else ""
