"""Deploy events: a Cloud Audit Logs entry of a Cloud Run service write → :class:`DeployEvent`, or Ignored.

Pure code. The entry (a ``LogEntry`` JSON with an ``AuditLog`` ``protoPayload``)
reaches the function two ways, both handled by :func:`watchdog.core.intake.parse`:
the Pub/Sub message of a Logging sink (``message.data`` is the entry) and an
Eventarc ``google.cloud.audit.log.v1.written`` CloudEvent (the data is the
entry). Methods read:

- ``google.cloud.run.v1.Services.ReplaceService`` / ``CreateService`` (gcloud;
  Knative shape: the template's annotations ``run.googleapis.com/vpc-access-egress``,
  ``…/vpc-access-connector``, ``…/cloudsql-instances``, ``…/network-interfaces``
  and ``spec.template.spec.containers``);
- ``google.cloud.run.v2.Services.UpdateService`` / ``CreateService`` (console,
  terraform's ``google_cloud_run_v2_service``, client libraries; v2 shape:
  ``template.vpcAccess``, ``template.volumes[].cloudSqlInstance``).

The requested template is turned into a v2 revision-shaped dict, so that the
same diff and the same precheck rules (:mod:`watchdog.core.precheck`) judge it as
``rollback-watchdog check`` judges a revision. Rules, first match wins:

1. ``refused``: ``protoPayload.status.code`` is not 0. Cloud Run logs a refused
   request too, with the full request (codes 3 and 10 seen, severity ERROR): no
   revision comes of it, so there is nothing to warn about or hold.
2. ``no_request``: an entry without the request that is not the first (or only)
   entry of its operation: the other entry of a long-running operation, which
   "usually" writes two (run/docs/audit-logging). Whether v2 ``UpdateService``
   entries carry ``request`` at all is not documented, so the first (or only)
   entry without one is not dropped: it becomes a deploy whose template is read
   from the service (``from_service``; :func:`with_service_template`). Both
   entries of an operation share the deploy's key: one warning per deploy.
3. ``no_template``: a write without a revision template (a traffic- or
   annotations-only update, such as the watchdog's own).

Who deployed: ``principalEmail``, or for a deployer through workload identity
federation (no email) ``principalSubject``. With what: the user agent names
gcloud and terraform; the console's is a browser's, so the request's
``run.googleapis.com/client-name`` annotation (``cloud-console``) names it.

Where the deploy sends traffic (:func:`requested_traffic`), in the v2 shape
(``type``, ``revision``, ``percent``, ``tag``): v2 ``service.traffic``, v1
``spec.traffic`` (``latestRevision: true`` is LATEST, ``revisionName`` a
revision, a missing ``percent`` is 0). gcloud's shapes are v1 ones:
``--to-latest`` sends LATEST 100; ``--no-traffic`` turns the LATEST share into
the current latest Ready revision by name (``ZeroLatestTraffic``); ``--tag``
adds a 0% entry tagged for the new revision, named in the template
(``metadata.name``). terraform's ``google_cloud_run_v2_service`` sends its
``traffic`` blocks (``TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST``). An entry with no
traffic (none in the request, or an update mask without ``traffic``) is read
from the service after it (``DeployEvent.traffic`` is None).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from watchdog.config import ServiceRef
from watchdog.core.traffic import LATEST_TYPE, REVISION_TYPE

METHODS = {
    "google.cloud.run.v1.Services.ReplaceService": "v1",
    "google.cloud.run.v1.Services.CreateService": "v1",
    "google.cloud.run.v2.Services.UpdateService": "v2",
    "google.cloud.run.v2.Services.CreateService": "v2",
}
_EGRESS_V1 = {"all-traffic": "ALL_TRAFFIC", "all": "ALL_TRAFFIC", "private-ranges-only": "PRIVATE_RANGES_ONLY"}
_V2_NAME = re.compile(r"^projects/([^/]+)/locations/([^/]+)/services/([^/]+)$")
_V1_NAME = re.compile(r"^namespaces/([^/]+)/services/([^/]+)$")


@dataclass(frozen=True)
class DeployEvent:
    """A request to create or change a Cloud Run service's revision template."""

    service: ServiceRef
    method: str
    api: str  # "v1" or "v2"
    template: dict  # the requested template as a v2 revision-shaped dict (vpcAccess, volumes, containers, …)
    principal: str = ""  # principalEmail, or principalSubject (workload identity federation)
    user_agent: str = ""  # gcloud, terraform, console, or the caller's own words (clipped)
    at: str = ""  # the entry's timestamp (RFC 3339)
    key: str = ""  # one deploy, however many copies of its entries arrive
    revision: str = ""  # the revision name when the request names it (v1 metadata.name, v2 template.revision)
    extra: dict = field(default_factory=dict)
    from_service: bool = False  # the entry carried no request: the template is the service's (with_service_template)
    # Where the deploy sends traffic, as v2 traffic entries (requested_traffic); None: the entry does not say, so
    # the service after it does (its ``traffic``).
    traffic: tuple[dict, ...] | None = None
    labels: dict = field(default_factory=dict)  # the requested revision template's labels

    @property
    def incident_id(self) -> str:
        return f"deploy-{self.key}"


@dataclass(frozen=True)
class NotADeploy:
    reason: str
    detail: str


def is_audit_entry(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("protoPayload"), dict)


def parse_entry(entry: dict) -> DeployEvent | NotADeploy:
    payload = _obj(entry.get("protoPayload"))
    if _text(payload.get("serviceName")) != "run.googleapis.com":
        return NotADeploy("not_cloud_run", "the audit entry is not about Cloud Run")
    method = _text(payload.get("methodName"))
    api = METHODS.get(method)
    if api is None:
        return NotADeploy("not_a_deploy_method", f"audit method {method[:80]!r} is not a service create or update")
    refused = refusal(payload)
    if refused:
        return NotADeploy("refused", f"Cloud Run refused the request ({refused}): no revision comes of it")
    if payload.get("request") is not None and not isinstance(payload.get("request"), dict):
        return NotADeploy("malformed_request", "the audit entry's request is not an object")
    request = _obj(payload.get("request"))
    operation = _obj(entry.get("operation"))
    if not request and not _opens_its_operation(operation):
        return NotADeploy("no_request", "an audit entry without the request (the other entry of the operation)")
    ref = _service_ref(entry, payload, request, api)
    if ref is None:
        return NotADeploy("no_service", "the audit entry names no Cloud Run service and region")
    if request:
        template, revision = (_v1_template if api == "v1" else _v2_template)(request)
        if template is None:
            return NotADeploy("no_template", "the write carries no revision template (traffic or annotations only)")
    else:
        template, revision = {}, ""  # read from the service (with_service_template)
    authentication = _obj(payload.get("authenticationInfo"))
    principal = _text(authentication.get("principalEmail")) or _text(authentication.get("principalSubject"))
    agent = _text(_obj(payload.get("requestMetadata")).get("callerSuppliedUserAgent"))
    # Copies of one entry share insertId; the entries of one operation share operation.id; with
    # neither, the same requested template by the same principal is the same deploy.
    identity = _text(operation.get("id")) or _text(entry.get("insertId"))
    key = hashlib.sha256(
        json.dumps([str(ref), identity or _canon_template(template), principal], sort_keys=True).encode()
    ).hexdigest()[:20]
    return DeployEvent(
        service=ref,
        method=method,
        api=api,
        template=template,
        principal=principal,
        user_agent=_agent(agent, _client_name(request, api)),
        at=_text(entry.get("timestamp") or entry.get("receiveTimestamp")),
        key=key,
        revision=revision,
        from_service=not request,
        traffic=requested_traffic(request, api),
        labels=_template_labels(request, api),
    )


def requested_traffic(request: dict, api: str) -> tuple[dict, ...] | None:
    """The request's traffic as v2 entries; None when the request does not set it (the service after it says)."""
    service = _obj(request.get("service"))
    if api == "v1":
        raw = _obj(service.get("spec")).get("traffic")
    else:
        mask = _mask(request.get("updateMask"))
        if mask is not None and "traffic" not in mask:
            return None  # an update of other fields: the traffic stays as it was
        raw = service.get("traffic")
    if not isinstance(raw, list) or not raw:
        # absent, or empty: what Cloud Run makes of an empty list is the service's to say
        return None
    entries = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        if api == "v1":  # Knative: latestRevision, else revisionName (a configurationName target follows LATEST)
            revision = _text(item.get("revisionName"))
            latest = item.get("latestRevision") is True or not revision
        else:
            revision = _text(item.get("revision"))
            latest = item.get("type") in (LATEST_TYPE, 1, "1") or (not revision and item.get("type") in (None, ""))
        entry: dict = {"type": LATEST_TYPE if latest else REVISION_TYPE, "percent": _percent(item.get("percent"))}
        if not latest:
            if not revision:
                continue  # a revision target without a revision: Cloud Run refuses it
            entry["revision"] = revision
        if _text(item.get("tag")):
            entry["tag"] = _text(item["tag"])
        entries.append(entry)
    return tuple(entries) or None


def _mask(value: Any) -> set[str] | None:
    """An update mask's top-level paths (FieldMask JSON is "a,b.c"; a dict with ``paths`` also), or None."""
    if isinstance(value, dict):
        value = value.get("paths")
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        return None
    return {str(p).strip().split(".")[0] for p in value if str(p).strip()}


def _percent(value: Any) -> int:
    try:
        return max(0, min(100, int(value or 0)))
    except (TypeError, ValueError):
        return 0


def _template_labels(request: dict, api: str) -> dict:
    """The requested revision template's labels (v2 ``template.labels``, v1 ``template.metadata.labels``)."""
    template = _obj(_obj(request.get("service")).get("template"))
    if api == "v1":
        template = _obj(_obj(_obj(_obj(request.get("service")).get("spec")).get("template")).get("metadata"))
    labels = _obj(template.get("labels"))
    return {str(k): str(v) for k, v in labels.items() if isinstance(v, str)}


def refusal(payload: dict) -> str:
    """ "code N: message" when the audit entry records a refused request (``status.code`` other than 0), else ""."""
    status = _obj(payload.get("status"))
    code = status.get("code")
    if code in (None, 0, "0", "OK"):
        return ""
    message = _text(status.get("message"))[:160]
    return f"code {code}" + (f": {message}" if message else "")


def _opens_its_operation(operation: dict) -> bool:
    """The first entry of a long-running operation, or an entry that belongs to no operation (the only one)."""
    return not operation or operation.get("first") is True


def with_service_template(event: DeployEvent, service: dict) -> DeployEvent | None:
    """A deploy whose entry carried no request, with the template the service now holds (v2 REST ``Service``):
    the update stores the requested template in the service at once. None when the service holds none."""
    request = {"service": {"template": service.get("template")}}
    template, revision = _v2_template(request)
    if template is None:
        return None
    return replace(
        event, template=template, revision=event.revision or revision, labels=_template_labels(request, "v2")
    )


def newest_first(revisions: list[dict]) -> list[dict]:
    """Revisions ordered by ``createTime``, newest first: the ListRevisions order is not documented."""
    return sorted(revisions, key=lambda r: _text(r.get("createTime")), reverse=True)


def _service_ref(entry: dict, payload: dict, request: dict, api: str) -> ServiceRef | None:
    labels = _obj(_obj(entry.get("resource")).get("labels"))
    project, region, service = (_text(labels.get(k)) for k in ("project_id", "location", "service_name"))
    for name in (_text(request.get("name")), _text(_obj(request.get("service")).get("name")),
                 _text(payload.get("resourceName")), _text(request.get("parent"))):  # fmt: skip
        match = _V2_NAME.match(name)
        if match:
            project, region, service = project or match[1], region or match[2], service or match[3]
        match = _V1_NAME.match(name)
        if match:
            project, service = project or match[1], service or match[2]
    if api == "v2" and not service:
        service = _text(request.get("serviceId"))
    region = region or _text(request.get("region"))
    if api == "v1" and not service:
        service = _text(_obj(_obj(request.get("service")).get("metadata")).get("name"))
    if not (project and region and service):
        return None
    return ServiceRef(project, region, service)


def _v2_template(request: dict) -> tuple[dict | None, str]:
    service = _obj(request.get("service"))
    template = service.get("template")
    if not isinstance(template, dict) or not template:
        return None, ""
    revision = dict(template)
    revision.pop("labels", None)
    revision.pop("annotations", None)
    return revision, _text(template.get("revision"))


def _v1_template(request: dict) -> tuple[dict | None, str]:
    """The Knative template in the v2 shape, for the fields the rules and the diff read."""
    spec = _obj(_obj(request.get("service")).get("spec"))
    template = spec.get("template")
    if not isinstance(template, dict) or not template:
        return None, ""
    metadata = _obj(template.get("metadata"))
    annotations = _obj(metadata.get("annotations"))
    inner = _obj(template.get("spec"))
    revision: dict = {}
    vpc: dict = {}
    egress = _text(annotations.get("run.googleapis.com/vpc-access-egress")).lower()
    if egress:
        vpc["egress"] = _EGRESS_V1.get(egress, egress.upper().replace("-", "_"))
    if annotations.get("run.googleapis.com/vpc-access-connector"):
        vpc["connector"] = _text(annotations["run.googleapis.com/vpc-access-connector"])
    interfaces = annotations.get("run.googleapis.com/network-interfaces")
    if isinstance(interfaces, str) and interfaces:
        try:
            parsed = json.loads(interfaces)
        except ValueError:
            parsed = []
        vpc["networkInterfaces"] = [n for n in parsed if isinstance(n, dict)] if isinstance(parsed, list) else []
    if vpc:
        revision["vpcAccess"] = vpc
    instances = [
        i.strip() for i in _text(annotations.get("run.googleapis.com/cloudsql-instances")).split(",") if i.strip()
    ]
    if instances:
        revision["volumes"] = [{"name": "cloudsql", "cloudSqlInstance": {"instances": instances}}]
    containers = []
    for container in inner.get("containers") if isinstance(inner.get("containers"), list) else []:
        if not isinstance(container, dict):
            continue
        converted = {k: container[k] for k in ("name", "image", "command", "args") if k in container}
        env = []
        for item in container.get("env") if isinstance(container.get("env"), list) else []:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                continue
            ref = _obj(_obj(item.get("valueFrom")).get("secretKeyRef"))
            if ref:
                env.append({"name": item["name"], "valueSource": {"secretKeyRef": {
                    "secret": _text(ref.get("name")), "version": _text(ref.get("key")) or "latest"}}})  # fmt: skip
            else:
                env.append({"name": item["name"], "value": item.get("value", "")})
        converted["env"] = env
        containers.append(converted)
    if containers:
        revision["containers"] = containers
    if inner.get("serviceAccountName"):
        revision["serviceAccount"] = _text(inner["serviceAccountName"])
    return revision, _text(metadata.get("name"))


def comparable(revision: dict) -> dict:
    """The fields both API shapes carry faithfully: what a v1 request can be compared with a revision on."""
    containers = []
    for container in revision.get("containers") if isinstance(revision.get("containers"), list) else []:
        if isinstance(container, dict):
            env = sorted(
                (e.get("name"), json.dumps(e["valueSource"] if "valueSource" in e else e.get("value", "")))
                for e in container.get("env") or []
                if isinstance(e, dict)
            )
            containers.append({"image": container.get("image"), "env": env})
    vpc = _obj(revision.get("vpcAccess"))
    return {
        "egress": vpc.get("egress") or "PRIVATE_RANGES_ONLY",
        "connector": str(vpc.get("connector") or "").rsplit("/", 1)[-1],
        "interfaces": vpc.get("networkInterfaces") or [],
        "sql": sorted(
            i
            for v in revision.get("volumes") or []
            if isinstance(v, dict)
            for i in _obj(v.get("cloudSqlInstance")).get("instances") or []
        ),
        "containers": containers,
        "serviceAccount": revision.get("serviceAccount") or "",
    }


def _canon_template(template: dict) -> str:
    return json.dumps(comparable(template), sort_keys=True, default=str)


# run.googleapis.com/client-name values, as the client names itself
_CLIENTS = {"cloud-console": "console", "gcloud": "gcloud", "terraform": "terraform"}


def _client_name(request: dict, api: str) -> str:
    """The request's ``run.googleapis.com/client-name`` annotation: the template's, else the service's."""
    service = _obj(request.get("service"))
    if api == "v1":
        places = [_obj(_obj(_obj(service.get("spec")).get("template")).get("metadata")), _obj(service.get("metadata"))]
        found = [_obj(p.get("annotations")).get("run.googleapis.com/client-name") for p in places]
    else:
        found = [_obj(_obj(service.get("template")).get("annotations")).get("run.googleapis.com/client-name"),
                 _obj(service.get("annotations")).get("run.googleapis.com/client-name")]  # fmt: skip
    return next((_text(f) for f in found if _text(f)), "")


def _agent(text: str, client: str = "") -> str:
    """How it was deployed. The user agent names gcloud and terraform; the console's is a browser's, so its
    ``client-name`` annotation (``cloud-console``) names it."""
    lowered = text.lower()
    if "gcloud" in lowered or "google-cloud-sdk" in lowered:
        return "gcloud"
    if "terraform" in lowered:
        return "terraform"
    if client:
        return _CLIENTS.get(client.lower(), client[:40])
    if "console" in lowered or "pantheon" in lowered:
        return "console"
    return text[:60] or "unknown"


def _obj(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""
