"""A local stand-in for the Cloud Run Admin API v2 (REST), for the demo and the tests.

It keeps services, revisions and operations in memory, seeded from JSON in the
v2 REST shape, and speaks enough of the API for the real ``google-cloud-run``
client: get/list services, list revisions (newest first, paged), get revision,
PATCH service with an update mask and an etag check, and operations.

Updates behave as service.proto documents them: the requested traffic and
annotations are stored at once with a new ``generation`` and ``reconciling:
true``; ``trafficStatuses`` and ``observedGeneration`` follow only when the
operation succeeds. A change of the ``template`` (the whole field, or nested
mask paths such as ``template.vpc_access.egress``) creates a revision, named
by ``template.revision`` or generated; a name that exists with another
configuration is 409 ALREADY_EXISTS, as Cloud Run answers. A new revision is
Ready after ``ready_after_reads`` reads of it, or never (``new_revisions``:
``ready``, ``never``, ``failed``). Cloud Run resolves each image to a digest
when it creates a revision; v2 does not expose it, the v1 (Knative) revision
does (``status.imageDigest``), and so does this stand-in on the v1 path. A failed operation (scripted, or a target revision that is
missing or not Ready, which Cloud Run reports inside the operation) leaves the
spec as requested and what serves as it was, with a failed
``terminalCondition``. ``validateOnly`` persists nothing.

IAM: with ``policy`` set (tests/standins/iam.py: the grants terraform/ makes), every
call is checked for its caller (the door it came through, or its bearer token)
before it is served, from one table (:data:`PERMISSIONS`: method and path →
permission and resource, as Cloud Run checks them), and refused with a real
PERMISSION_DENIED body; ``:testIamPermissions`` answers for the caller. Without a
policy, the older per-resource map ``granted`` applies to every caller (None: all).

Scripted faults make the failure cases testable over real HTTP: a status code
(with Retry-After), a delay, a dropped connection, a concurrent deploy landing
just before a request, or an update operation that ends in error. Every
request is logged so tests can assert exactly what the watchdog sent.
Every response it can serve is parsed with google-cloud-run's own types in
tests/test_standin_schemas.py.

Run it alone: ``python -m tests.standins.cloudrun --port 8085 --seed seed.json``.
Control endpoints (not part of the Cloud Run API) live under ``/_control/``.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.standins.iam import Grants, caller, permission_denied
from tests.standins.loopback import Server, StandIn

_TRAFFIC_TYPES = {
    0: "TRAFFIC_TARGET_ALLOCATION_TYPE_UNSPECIFIED",
    1: "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST",
    2: "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION",
}
_SERVICE = re.compile(r"^/v2/(projects/[^/]+/locations/[^/]+/services/[^/:]+)$")
_SERVICES = re.compile(r"^/v2/(projects/[^/]+/locations/[^/]+)/services$")
_REVISIONS = re.compile(r"^/v2/(projects/[^/]+/locations/[^/]+/services/[^/]+)/revisions$")
_REVISION = re.compile(r"^/v2/(projects/[^/]+/locations/[^/]+/services/[^/]+/revisions/[^/]+)$")
_OPERATION = re.compile(r"^/v2/(projects/[^/]+/locations/[^/]+/operations/[^/:]+)$")
_V1_REVISION = re.compile(r"^/apis/serving\.knative\.dev/v1/namespaces/([^/]+)/revisions/([^/]+)$")
_SERVICE_TEST_IAM = re.compile(r"^/v2/(projects/[^/]+/locations/[^/]+/services/[^/:]+):testIamPermissions$")
# v1 (Knative) revision read, on the regional endpoint: /apis/serving.knative.dev/v1/namespaces/P/revisions/R
_V1_REVISION = re.compile(r"^/apis/serving\.knative\.dev/v1/namespaces/([^/]+)/revisions/([^/]+)$")


def _runtime_account(state: CloudRunState, service_name: str) -> str | None:
    """The resource actAs is checked on for an update of ``service_name``: its runtime service account."""
    service = state.services.get(service_name)
    account = ((service or {}).get("template") or {}).get("serviceAccount", "")
    return f"projects/-/serviceAccounts/{account}" if account else None


# What Cloud Run checks before serving each call: (method, path) → [(permission, resource of the match)].
# A resource of None skips that check (a service without a runtime account of its own: the default compute
# account, which the seeds do not use). Lists are checked on their parent; testIamPermissions needs no
# permission (it answers for the caller). An update, whatever its mask (traffic, annotations, or a template
# that creates a revision), is run.services.update on the service and actAs on its runtime account.
PERMISSIONS: list[tuple[str, re.Pattern, list[tuple[str, Callable[[re.Match, CloudRunState], str | None]]]]] = [
    ("GET", _SERVICE, [("run.services.get", lambda m, s: m.group(1))]),
    ("GET", _SERVICES, [("run.services.list", lambda m, s: m.group(1))]),
    ("GET", _REVISIONS, [("run.revisions.list", lambda m, s: m.group(1))]),
    ("GET", _REVISION, [("run.revisions.get", lambda m, s: m.group(1))]),
    ("GET", _OPERATION, [("run.operations.get", lambda m, s: m.group(1))]),
    ("GET", _V1_REVISION, [("run.revisions.get", lambda m, s: f"projects/{m.group(1)}/revisions/{m.group(2)}")]),
    ("PATCH", _SERVICE, [
        ("run.services.update", lambda m, s: m.group(1)),
        ("iam.serviceAccounts.actAs", lambda m, s: _runtime_account(s, m.group(1))),
    ]),
    ("POST", _SERVICE_TEST_IAM, []),
]  # fmt: skip
_CURRENT = object()
SERVICE_TYPE = "type.googleapis.com/google.cloud.run.v2.Service"


@dataclass
class Fault:
    """One scripted fault, applied to the next ``times`` matching requests.

    kind: ``status`` (answer ``status`` with a Google error body), ``delay``
    (sleep ``seconds`` then answer normally), ``reset`` (close the connection
    without answering), ``deploy`` (a concurrent deploy lands just before the
    request is served: a new revision and a new etag), ``operation_error``
    (the next update's operation ends with ``error``).
    """

    method: str = "*"
    path: str = ""  # regex searched in the path
    kind: str = "status"
    status: int = 503
    grpc_status: str = "UNAVAILABLE"
    message: str = "injected fault"
    seconds: float = 0.0
    retry_after: str = ""
    times: int = 1
    error: dict = field(default_factory=dict)

    def matches(self, method: str, path: str) -> bool:
        return self.times > 0 and self.method in ("*", method) and re.search(self.path, path) is not None


class CloudRunState:
    """In-memory services, revisions and operations. Thread-safe."""

    def __init__(self, seed: dict | None = None, latency: float = 0.0) -> None:
        self.lock = threading.RLock()
        self.services: dict[str, dict] = {}
        self.revisions: dict[str, list[dict]] = {}
        self.operations: dict[str, dict] = {}
        self.pending_reconcile: dict[str, dict] = {}
        self.requests: list[dict] = []
        self.faults: list[Fault] = []
        self.latency = latency
        self.operation_polls_before_done = 0
        # After its operation is done the service stays reconciling for this many more reads.
        self.reconciling_reads_after_done = 0
        # Revisions created by a template update: Ready after this many reads of the revision, or never.
        self.new_revisions = "ready"  # "ready", "never" (stays reconciling), "failed" (its Ready condition fails)
        self.ready_after_reads = 0
        self.revision_reads: dict[str, int] = {}
        # Permissions the caller holds, per resource (a service name, or projects/-/serviceAccounts/EMAIL
        # for a runtime service account; the IAM stand-in reads the same map). None: everything granted.
        # Applies only without a policy.
        self.granted: dict[str, set[str]] | None = None
        # The grants as deployed (tests/standins/iam.py), checked per caller; None: ``granted`` applies.
        self.policy: Grants | None = None
        self.calling = threading.local()  # the caller of the request this thread serves
        # Called with each logged request after it took effect, before the answer is sent
        # (crash tests kill the function process here).
        self.on_served: Callable[[dict], None] | None = None
        if seed:
            self.load(seed)

    def reset(self, seed: dict | None = None) -> None:
        """Forget everything (state, log, faults, hooks, ``granted``) and load ``seed``; the policy stays."""
        with self.lock:
            self.services.clear()
            self.revisions.clear()
            self.operations.clear()
            self.pending_reconcile.clear()
            self.requests.clear()
            self.faults.clear()
            self.on_served = None
            self.latency = 0.0
            self.operation_polls_before_done = 0
            self.reconciling_reads_after_done = 0
            self.new_revisions = "ready"
            self.ready_after_reads = 0
            self.revision_reads.clear()
            self.granted = None  # (``policy`` stays: it is the deployment's, not the world's)
            if seed:
                self.load(seed)

    def load(self, seed: dict) -> None:
        with self.lock:
            for service in seed.get("services", []):
                service = copy.deepcopy(service)
                service.setdefault("etag", _etag())
                service.setdefault("generation", "1")
                self.services[service["name"]] = service
                self.revisions.setdefault(service["name"], [])
            for revision in seed.get("revisions", []):
                self.revisions.setdefault(revision["service"], []).append(copy.deepcopy(revision))
            for name in self.revisions:
                self.revisions[name].sort(key=lambda r: r.get("createTime", ""), reverse=True)
            for name in self.services:
                self._refresh_status(self.services[name])

    # --- what the API does ---------------------------------------------------

    def allowed(self, resource: str, permission: str, caller: Any = _CURRENT) -> bool:
        """Whether the caller (by default the one whose request this thread serves) holds ``permission``."""
        if self.policy is not None:
            who = getattr(self.calling, "identity", "") if caller is _CURRENT else caller
            # No door and no token: the test itself, or an operator command, whose rights terraform does not
            # make (a function process always has its door, so it never calls as nobody).
            return not who or self.policy.allows(who, resource, permission)
        return self.granted is None or permission in self.granted.get(resource, set())

    def refusal(self, method: str, path: str) -> tuple[int, dict] | None:
        """The 403 Cloud Run answers the caller for this call (:data:`PERMISSIONS`), or None when allowed."""
        for verb, pattern, checks in PERMISSIONS:
            match = pattern.match(path) if verb == method else None
            if match is None:
                continue
            for permission, resource_of in checks:
                resource = resource_of(match, self)
                if resource is not None and not self.allowed(resource, permission):
                    if permission == "iam.serviceAccounts.actAs":
                        account = resource.rsplit("/", 1)[-1]
                        return 403, _error(
                            403,
                            "PERMISSION_DENIED",
                            f"Permission 'iam.serviceaccounts.actAs' denied on service account {account} "
                            "(or it may not exist).",
                        )
                    return 403, permission_denied(permission, resource)
            return None
        return None

    def patch_service(self, name: str, mask: list[str], body: dict, validate_only: bool = False) -> tuple[int, dict]:
        """UpdateService as Cloud Run does it: the spec is stored at once, serving follows the operation.

        The requested ``traffic``/``annotations`` land in the spec with a new
        ``generation`` and ``reconciling: true``; ``trafficStatuses`` and
        ``observedGeneration`` keep describing what serves until the operation
        is done. A target revision that does not exist or is not Ready is not an
        upfront 400: the operation ends in error and the spec keeps the request
        (service.proto, ``reconciling``). ``validate_only`` checks the same and
        persists nothing: the operation is done at once, carrying the would-be
        service, and polling it answers 404.
        """
        with self.lock:
            service = self.services.get(name)
            if service is None:
                if not self.allowed(name, "run.services.get"):
                    return 403, _denied("run.services.update", name)
                return 404, _error(404, "NOT_FOUND", f"Resource '{name}' was not found")
            if not self.allowed(name, "run.services.update"):
                return 403, _denied("run.services.update", name)
            account = (service.get("template") or {}).get("serviceAccount", "")
            if account and not self.allowed(f"projects/-/serviceAccounts/{account}", "iam.serviceAccounts.actAs"):
                return 403, _error(
                    403,
                    "PERMISSION_DENIED",
                    f"Permission 'iam.serviceaccounts.actAs' denied on service account {account} "
                    "(or it may not exist).",
                )
            if body.get("etag") and body["etag"] != service["etag"]:
                return 409, _error(409, "ABORTED", "etag mismatch: the resource has been modified")
            if not mask:
                return 400, _error(400, "INVALID_ARGUMENT", "update_mask is required by this stand-in")
            updated = copy.deepcopy(service)
            for path in mask:
                if path == "traffic":
                    traffic = [_normal_traffic(t) for t in body.get("traffic", [])]
                    if sum(int(t.get("percent", 0)) for t in traffic) != 100:
                        return 400, _error(400, "INVALID_ARGUMENT", "traffic percentages must add up to 100")
                    updated["traffic"] = traffic
                elif path == "annotations":
                    updated["annotations"] = dict(body.get("annotations", {}))
                elif path == "template" or path.startswith("template."):
                    problem = _apply_template_path(updated, path, body.get("template") or {})
                    if problem:
                        return 400, _error(400, "INVALID_ARGUMENT", problem)
                else:
                    return 400, _error(400, "INVALID_ARGUMENT", f"unsupported update_mask path {path!r}")
            created = None
            if any(p == "template" or p.startswith("template.") for p in mask):
                created = self._template_revision(name, updated)
                if isinstance(created, tuple):
                    return created  # a conflict, answered before anything is stored
            updated["generation"] = str(int(updated.get("generation", "1")) + 1)
            updated["updateTime"] = _now()
            updated["reconciling"] = True
            if validate_only:
                return 200, _validated(name, updated)
            if created is not None and created.get("name") not in {r["name"] for r in self.revisions[name]}:
                self.revisions[name].insert(0, created)
                updated["latestCreatedRevision"] = created["name"]
                if _ready(created):
                    updated["latestReadyRevision"] = created["name"]
            updated["etag"] = _etag()
            self.services[name] = updated
            operation = self._operation(name, updated)
            return 200, operation

    def _template_revision(self, name: str, service: dict) -> dict | tuple[int, dict] | None:
        """The revision a template update creates; None when the named revision exists with this very
        configuration (nothing new); (409, error) when it exists with another one."""
        template = copy.deepcopy(service.get("template") or {})
        short = (
            template.get("revision") or f"{name.rsplit('/', 1)[-1]}-{len(self.revisions[name]) + 1:05d}-{_etag()[1:4]}"
        )
        template["revision"] = short
        service["template"] = template
        full = f"{name}/revisions/{short}"
        existing = next((r for r in self.revisions[name] if r["name"] == full), None)
        if existing is not None:
            if _configuration(existing) == _configuration(template):
                return None
            return 409, _error(
                409, "ALREADY_EXISTS", f"Revision named '{short}' with different configuration already exists."
            )
        if not short.startswith(name.rsplit("/", 1)[-1] + "-"):
            return 400, _error(400, "INVALID_ARGUMENT", f"revision name {short!r} must start with the service name")
        revision = {k: copy.deepcopy(v) for k, v in template.items() if k not in ("revision", "annotations")}
        state = (
            "CONDITION_SUCCEEDED"
            if self.new_revisions == "ready" and not self.ready_after_reads
            else "CONDITION_RECONCILING"
        )
        revision.update(
            name=full,
            uid=str(uuid.uuid4()),
            generation="1",
            service=name,
            createTime=_now(),
            updateTime=_now(),
            conditions=[{"type": "Ready", "state": state, "lastTransitionTime": _now()}],
            observedGeneration="1",
            etag=_etag(),
        )
        return revision

    def read_revision(self, full: str) -> dict | None:
        """GET revision: a new revision's readiness moves on as it is read (``ready_after_reads``)."""
        parent = full.split("/revisions/")[0]
        found = next((r for r in self.revisions.get(parent, []) if r["name"] == full), None)
        if found is None:
            return None
        reads = self.revision_reads[full] = self.revision_reads.get(full, 0) + 1
        ready = found["conditions"][0]
        settles = self.new_revisions != "never" and reads >= self.ready_after_reads
        if ready.get("state") == "CONDITION_RECONCILING" and settles:
            ready["state"] = "CONDITION_SUCCEEDED" if self.new_revisions == "ready" else "CONDITION_FAILED"
            if self.new_revisions == "failed":
                ready["message"] = "The user-provided container failed to start and listen on the port."
            elif parent in self.services and self.services[parent].get("latestCreatedRevision") == full:
                self.services[parent]["latestReadyRevision"] = full
        return copy.deepcopy(found)

    def v1_revision(self, project: str, short: str) -> dict | None:
        """The revision as the v1 (Knative) API shows it: ``status.imageDigest`` is the digest each image
        was resolved to when the revision was created (a digest reference stays itself)."""
        for parent, revisions in self.revisions.items():
            if not parent.startswith(f"projects/{project}/"):
                continue
            for revision in revisions:
                if revision["name"].rsplit("/", 1)[-1] == short:
                    containers = revision.get("containers") or []
                    statuses = [
                        {"name": c.get("name", ""), "imageDigest": _digest(c.get("image", ""))} for c in containers
                    ]
                    return {
                        "apiVersion": "serving.knative.dev/v1",
                        "kind": "Revision",
                        "metadata": {"name": short, "namespace": project},
                        "spec": {"containers": [{"image": c.get("image", "")} for c in containers]},
                        "status": {
                            "imageDigest": statuses[0]["imageDigest"] if statuses else "",
                            "containerStatuses": statuses,
                        },
                    }
        return None

    def deploy(self, service_name: str, revision: dict, *, to_latest: bool = True) -> dict:
        """A deploy: a new revision becomes latest; traffic follows if it tracks LATEST."""
        with self.lock:
            service = self.services[service_name]
            revision = copy.deepcopy(revision)
            revision.setdefault("service", service_name)
            revision.setdefault("createTime", _now())
            revision.setdefault("conditions", [{"type": "Ready", "state": "CONDITION_SUCCEEDED"}])
            self.revisions[service_name].insert(0, revision)
            short = revision["name"].rsplit("/", 1)[-1]
            service["template"] = dict(service.get("template", {}), revision=short)
            service["latestCreatedRevision"] = revision["name"]
            if _ready(revision):
                service["latestReadyRevision"] = revision["name"]
            if to_latest:
                service["traffic"] = [{"type": _TRAFFIC_TYPES[1], "percent": 100}]
            service["generation"] = str(int(service.get("generation", "1")) + 1)
            service["etag"] = _etag()
            self._refresh_status(service)
            return revision

    def _traffic_problem(self, name: str, traffic: list[dict]) -> str:
        names = {r["name"].rsplit("/", 1)[-1]: r for r in self.revisions.get(name, [])}
        for target in traffic:
            if target["type"].endswith("REVISION"):
                revision = names.get(target.get("revision", ""))
                if revision is None:
                    return f"Revision '{target.get('revision')}' does not exist."
                if not _ready(revision):
                    return f"Revision '{target.get('revision')}' is not ready and cannot serve traffic."
        return ""

    def _refresh_status(self, service: dict) -> None:
        """Serving follows the spec: the reconciliation of ``service`` succeeded."""
        latest = service.get("latestReadyRevision", "").rsplit("/", 1)[-1]
        statuses = []
        for target in service.get("traffic") or [{"type": _TRAFFIC_TYPES[1], "percent": 100}]:
            status = {"type": target["type"], "percent": target.get("percent", 0)}
            status["revision"] = target.get("revision") or latest
            if target.get("tag"):
                status["tag"] = target["tag"]
            statuses.append(status)
        service["trafficStatuses"] = statuses
        service["observedGeneration"] = service.get("generation", "1")
        service["reconciling"] = False
        service["terminalCondition"] = {
            "type": "Ready",
            "state": "CONDITION_SUCCEEDED",
            "lastTransitionTime": _now(),
        }

    def _operation(self, service_name: str, service: dict) -> dict:
        location = service_name.split("/services/")[0]
        name = f"{location}/operations/{uuid.uuid4()}"
        metadata = dict(copy.deepcopy(service), **{"@type": SERVICE_TYPE})
        operation = {"name": name, "metadata": metadata, "done": False}
        fault = self.take_fault("PATCH", "/operation-error", kind="operation_error")
        self.operations[name] = {"operation": operation, "polls": 0, "error": fault.error if fault else None}
        return operation

    def get_operation(self, name: str) -> tuple[int, dict]:
        with self.lock:
            entry = self.operations.get(name)
            if entry is None:
                return 404, _error(404, "NOT_FOUND", f"operation {name} not found")
            entry["polls"] += 1
            if entry["polls"] > self.operation_polls_before_done:
                self._finish(entry)
            return 200, copy.deepcopy(entry["operation"])

    def _finish(self, entry: dict) -> None:
        """The operation is done: it failed (a fault, a missing or not-Ready target) or serving follows."""
        operation = entry["operation"]
        if operation["done"]:
            return
        service_name = operation["metadata"]["name"]
        service = self.services[service_name]
        if self._still_creating(service):
            return  # an update that creates a revision is done once the revision is Ready or has failed
        operation["done"] = True
        error = entry["error"] or self._failure(service)
        if error:
            operation["error"] = error
            # The spec keeps the request; what serves, observedGeneration and latestReadyRevision
            # stay those of the last serving state (service.proto, ``reconciling``).
            service["reconciling"] = False
            service["terminalCondition"] = {
                "type": "Ready",
                "state": "CONDITION_FAILED",
                "message": error.get("message", ""),
                "lastTransitionTime": _now(),
            }
            return
        if self.reconciling_reads_after_done:
            entry["reads_left"] = self.reconciling_reads_after_done
            self.pending_reconcile[service_name] = entry
            operation["response"] = dict(copy.deepcopy(service), **{"@type": SERVICE_TYPE})
            return
        self._refresh_status(service)
        operation["response"] = dict(copy.deepcopy(service), **{"@type": SERVICE_TYPE})

    def _still_creating(self, service: dict) -> bool:
        newest = service.get("latestCreatedRevision", "")
        found = next((r for r in self.revisions.get(service["name"], []) if r["name"] == newest), None)
        return found is not None and found["conditions"][0].get("state") == "CONDITION_RECONCILING"

    def _failure(self, service: dict) -> dict | None:
        problem = self._traffic_problem(service["name"], service.get("traffic") or [])
        return {"code": 9, "message": problem} if problem else None

    def read_service(self, name: str) -> dict | None:
        """GET service: an update nobody polls still finishes (Cloud Run reconciles on its own)."""
        with self.lock:
            for entry in self.operations.values():
                if entry["operation"]["metadata"]["name"] == name and not entry["operation"]["done"]:
                    self._finish(entry)
            pending = self.pending_reconcile.get(name)
            if pending is not None:
                pending["reads_left"] -= 1
                if pending["reads_left"] < 0:
                    del self.pending_reconcile[name]
                    self._refresh_status(self.services[name])
            service = self.services.get(name)
            return copy.deepcopy(service) if service is not None else None

    def test_iam_permissions(self, resource: str, permissions: list[str]) -> dict:
        granted = [p for p in permissions if self.allowed(resource, p)]
        return {"permissions": granted} if granted else {}

    def take_fault(self, method: str, path: str, kind: str | None = None) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if (kind is None or fault.kind == kind) and fault.matches(method, path):
                    if kind is None and fault.kind == "operation_error":
                        continue
                    fault.times -= 1
                    return fault
        return None


def _canonical_template(template: dict) -> dict:
    """The template as Cloud Run stores and returns it: REST JSON with enum names (clients send numbers)."""
    from google.cloud import run_v2
    from google.protobuf import json_format

    message = run_v2.RevisionTemplate.from_json(json.dumps(template), ignore_unknown_fields=False)
    return json_format.MessageToDict(run_v2.RevisionTemplate.pb(message))


def _apply_template_path(service: dict, path: str, template: dict) -> str:
    """Apply one ``template`` or ``template.a.b`` mask path of the request to ``service``; a problem, or ""."""
    try:
        template = _canonical_template(template)
    except Exception as error:
        return f"invalid template: {error}"
    if path == "template":
        service["template"] = copy.deepcopy(template)
        return ""
    keys = path.split(".")[1:]
    source: Any = template
    for key in keys:
        source = source.get(key) if isinstance(source, dict) else None
    target = service.setdefault("template", {})
    for key in keys[:-1]:
        target = target.setdefault(key, {})
        if not isinstance(target, dict):
            return f"update_mask path {path!r} does not name a field"
    if source is None:
        target.pop(keys[-1], None)
    else:
        target[keys[-1]] = copy.deepcopy(source)
    return ""


def _configuration(revision: dict) -> str:
    """A revision or template's configuration, for "same name, same configuration?" (409 otherwise)."""
    skip = {"name", "uid", "generation", "service", "createTime", "updateTime", "conditions", "observedGeneration",
            "etag", "revision", "annotations", "labels", "reconciling", "logUri", "creator", "launchStage"}  # fmt: skip
    return json.dumps({k: v for k, v in revision.items() if k not in skip}, sort_keys=True)


def _digest(image: str) -> str:
    """The digest Cloud Run resolves an image to: itself when by digest; a stable stand-in digest for a tag."""
    if "@sha256:" in image:
        return image
    repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    return f"{repository}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def _normal_traffic(target: dict) -> dict:
    kind = target.get("type", 0)
    kind = _TRAFFIC_TYPES.get(kind, kind) if isinstance(kind, int) else kind
    out = {"type": kind, "percent": int(target.get("percent", 0))}
    for key in ("revision", "tag"):
        if target.get(key):
            out[key] = target[key]
    return out


def _ready(revision: dict) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("state") == "CONDITION_SUCCEEDED" for c in revision.get("conditions", [])
    )


def _etag() -> str:
    return f'"{uuid.uuid4().hex}"'


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


def _validated(name: str, service: dict) -> dict:
    """A validate_only update: done at once, nothing persisted, the would-be service inside."""
    location = name.split("/services/")[0]
    would_be = dict(copy.deepcopy(service), **{"@type": SERVICE_TYPE})
    return {
        "name": f"{location}/operations/{uuid.uuid4()}",
        "metadata": would_be,
        "done": True,
        "response": would_be,
    }


def _denied(permission: str, resource: str) -> dict:
    return _error(403, "PERMISSION_DENIED", f"Permission '{permission}' denied on resource '{resource}' "
                  "(or resource may not exist).")  # fmt: skip


def _error(code: int, status: str, message: str) -> dict:
    return {"error": {"code": code, "message": message, "status": status}}


def _page(items: list[dict], query: dict, key: str) -> dict:
    size = int((query.get("pageSize") or ["0"])[0] or 0) or 100
    start = int((query.get("pageToken") or ["0"])[0] or 0)
    page = {key: items[start : start + size]}
    if start + size < len(items):
        page["nextPageToken"] = str(start + size)
    return page


class _Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall

    def log_message(self, *args: Any) -> None:  # quiet: tests read the request log instead
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        state = self.server.state
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else {}
        if url.path.startswith("/_control/"):
            return self._control(url.path, body)
        answer = serve(state, method, url.path, parse_qs(url.query), body, caller(self, state.policy))
        if answer is None:  # a scripted dropped connection
            self.close_connection = True
            self.connection.close()
            return None
        self._send(*answer)
        return None

    def _control(self, path: str, body: dict) -> None:
        state = self.server.state
        with state.lock:
            if path == "/_control/requests":
                return self._send(200, {"requests": state.requests})
            if path == "/_control/state":
                return self._send(200, {"services": state.services, "revisions": state.revisions})
            if path == "/_control/faults":
                state.faults.extend(Fault(**f) for f in body.get("faults", []))
                return self._send(200, {"ok": True})
            if path == "/_control/seed":
                state.load(body)
                return self._send(200, {"ok": True})
            if path == "/_control/deploy":
                revision = state.deploy(body["service"], body["revision"], to_latest=body.get("to_latest", True))
                return self._send(200, revision)
            if path == "/_control/granted":  # the older per-resource map (no policy)
                state.granted = None if body.get("all") else {k: set(v) for k, v in body.get("granted", {}).items()}
                return self._send(200, {"ok": True})
            if path == "/_control/new-revisions":
                state.new_revisions = body.get("mode", "ready")
                state.ready_after_reads = int(body.get("after_reads", 0))
                return self._send(200, {"ok": True})
            if path == "/_control/latency":
                state.latency = float(body.get("seconds", 0))
                return self._send(200, {"ok": True})
            if path == "/_control/reset-log":
                state.requests.clear()
                return self._send(200, {"ok": True})
        self._send(404, {"error": "unknown control path"})
        return None

    def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


def serve(state: CloudRunState, method: str, path: str, query: dict, body: dict, who: str) -> tuple | None:
    """One API call as Cloud Run answers it: logged, IAM-checked for ``who``, scripted faults applied, then served.

    (status, payload, headers), or None for a dropped connection. The HTTP handler and the in-process fake
    (tests/fakes.py) both answer through here, so they refuse, fail and log alike. ``query`` maps each key to its
    values (``parse_qs``)."""
    state.calling.identity = who
    with state.lock:
        entry = {
            "method": method,
            "path": path,
            "query": {k: v[0] for k, v in query.items()},
            "body": body,
            "time": time.monotonic(),
            "status": 0,  # filled in once answered; 0: no answer (fault)
            "caller": who,
        }
        state.requests.append(entry)
    if state.latency:
        time.sleep(state.latency)
    if state.policy is not None:  # IAM first, as Cloud Run: a refused call changes nothing, meets no fault
        with state.lock:
            refused = state.refusal(method, path)
        if refused is not None:
            entry["status"] = refused[0]
            return (*refused, {})
    fault = state.take_fault(method, path)
    if fault is not None:
        if fault.kind == "reset":
            return None
        if fault.kind == "delay":
            time.sleep(fault.seconds)
        elif fault.kind == "deploy":
            name = _SERVICE.match(path) or _REVISIONS.match(path)
            if name:
                _deploy_next(state, name.group(1))
        elif fault.kind == "status":
            entry["status"] = fault.status
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return fault.status, _error(fault.status, fault.grpc_status, fault.message), headers
    status, payload = _route(state, method, path, query, body)
    entry["status"] = status
    if state.on_served is not None:
        state.on_served(entry)
    return status, payload, {}


def _route(state: CloudRunState, method: str, path: str, query: dict, body: dict) -> tuple[int, dict]:
    with state.lock:
        if method == "GET" and (m := _SERVICE.match(path)):
            if not state.allowed(m.group(1), "run.services.get"):
                return 403, _denied("run.services.get", m.group(1))
            service = state.read_service(m.group(1))
            return (200, service) if service else (404, _error(404, "NOT_FOUND", f"Service {m.group(1)} not found"))
        if method == "POST" and (m := _SERVICE_TEST_IAM.match(path)):
            if m.group(1) not in state.services:  # IAM answers for missing resources too; Cloud Run: 404
                return 404, _error(404, "NOT_FOUND", f"Service {m.group(1)} not found")
            return 200, state.test_iam_permissions(m.group(1), list(body.get("permissions", [])))
        if method == "GET" and (m := _SERVICES.match(path)):
            items = [s for n, s in sorted(state.services.items()) if n.startswith(m.group(1) + "/")]
            return 200, _page(copy.deepcopy(items), query, "services")
        if method == "GET" and (m := _REVISIONS.match(path)):
            if m.group(1) not in state.services:
                return 404, _error(404, "NOT_FOUND", f"Service {m.group(1)} not found")
            listed = state.revisions.get(m.group(1), [])
            if (query.get("showDeleted") or ["false"])[0].lower() != "true":  # as the API: deleted ones hidden
                listed = [r for r in listed if not r.get("deleteTime")]
            return 200, _page(copy.deepcopy(listed), query, "revisions")
        if method == "GET" and (m := _REVISION.match(path)):
            found = state.read_revision(m.group(1))
            return (200, found) if found else (404, _error(404, "NOT_FOUND", "Revision not found"))
        if method == "GET" and (m := _V1_REVISION.match(path)):
            found = state.v1_revision(m.group(1), m.group(2))
            return (200, found) if found else (404, _error(404, "NOT_FOUND", "Revision not found"))
        if method == "GET" and (m := _OPERATION.match(path)):
            return state.get_operation(m.group(1))
        if method == "PATCH" and (m := _SERVICE.match(path)):
            mask = [p for p in (query.get("updateMask") or [""])[0].split(",") if p]
            validate_only = (query.get("validateOnly") or ["false"])[0].lower() == "true"
            return state.patch_service(m.group(1), [_snake_to_camel(p) for p in mask], body, validate_only)
    return 404, _error(404, "NOT_FOUND", f"no route for {method} {path}")


def _deploy_next(state: CloudRunState, service_name: str) -> None:
    """A concurrent deploy: copy the newest revision under a new name."""
    newest = state.revisions[service_name][0]
    count = len(state.revisions[service_name]) + 1
    base = service_name.rsplit("/", 1)[-1]
    revision = dict(copy.deepcopy(newest), name=f"{service_name}/revisions/{base}-{count:05d}-dep", createTime=_now())
    state.deploy(service_name, revision)


def _snake_to_camel(path: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), path)


class CloudRunStandIn(StandIn):
    """In-process server: ``with CloudRunStandIn(seed) as api: api.url``."""

    handler = _Handler

    def __init__(self, seed: dict | None = None, port: int = 0, latency: float = 0.0) -> None:
        super().__init__(CloudRunState(seed, latency), port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8085)
    parser.add_argument("--seed", help="JSON file: {services: [...], revisions: [...]} in the v2 REST shape")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every API call")
    args = parser.parse_args()
    seed = json.loads(Path(args.seed).read_text()) if args.seed else None
    server = CloudRunStandIn(seed, args.port, args.latency_ms / 1000)
    server.serve_until_interrupted(f"cloud run stand-in listening on {server.url}")


if __name__ == "__main__":
    main()
