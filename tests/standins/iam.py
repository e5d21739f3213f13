"""IAM as deployed: who may do what where, read from terraform/ itself, and the IAM API calls the watchdog makes.

**Grants.** :func:`deployed` reads the IAM resources of terraform/ (python-hcl2) for a deployment (the tfvars a
test would apply) and returns :class:`Grants`: one :class:`Binding` per member, role and resource, with the
role's permissions (custom roles from their ``permissions``, the few predefined roles the module grants from
:data:`PREDEFINED`). The stand-ins (Cloud Run, this IAM one, Monitoring) answer 403 / PERMISSION_DENIED, with
the body of a real ``PERMISSION_DENIED``, to any call the caller is not granted, and every check is recorded, so
a test can tell which grant a flow used and which grant no flow used (tests/test_iam_census.py).

A grant on a project covers every resource under it (``projects/P/…``); a grant on any other resource covers that
resource only: a grant on a Cloud Run service covers calls on the service and lists whose parent it is, not its
revisions (whether it does is not documented, so it is not relied on).

**What the parser understands** (anything else raises :class:`NotUnderstood`, naming it): the resources
``google_{project,service_account,cloud_run_v2_service,pubsub_topic,pubsub_subscription,secret_manager_secret}_iam_member``;
attribute values that are literals or ``"…${reference}…"`` templates, a reference being a chain of
``var.X`` / ``local.X`` / ``each.key`` / ``each.value[.attr]`` / ``TYPE.NAME[key].attr[0].attr`` steps; the
``for_each`` and ``count`` expressions in :data:`FOR_EACH` / :data:`COUNT`; and the locals in :data:`LOCALS`,
each of which is a Python model of the HCL it names: if the HCL text changes, the parser says so rather than
guess. A map of entries written as an object literal (``local.function_specs``, one entry per function) is read
entry by entry, each attribute evaluated only when used and with the same rules (``true``/``false``/``null``
and numbers as themselves, the switches in :data:`CONDITIONS`). Attributes the provider computes (emails, role
and topic names, a function's service) are derived as the provider documents them.

**Who calls.** Each function process reaches a stand-in through the *door* of the service account it runs as
(``StandIn.door(identity)``): the identity is bound to the process from outside the code under test, as an
instance's metadata server binds its token. A request carrying a bearer token this module issued is the
token's identity instead: the doctor impersonates the function's account (``generateAccessToken`` below), and
the operator's own token comes from the OAuth token endpoint below (a service account key file whose ``token_uri``
points here, read by google-auth as Application Default Credentials). A call through a stand-in's
main address without a token is the test itself or an operator command: its rights are not terraform's to make,
so it is not checked (a function process always has its door).

**The IAM API** (REST, one server):

* ``POST /v1/projects/-/serviceAccounts/EMAIL:testIamPermissions`` answers for the caller, as
  ``google.iam.v1.TestIamPermissionsResponse`` (``{}`` when none is granted: proto3 JSON leaves an empty repeated
  field out). Grants come from ``grants.allowed(resource, permission, caller=…)`` (a ``CloudRunState``).
* ``POST /v1/projects/-/serviceAccounts/EMAIL:generateAccessToken`` (IAM Service Account Credentials API): the
  caller needs ``iam.serviceAccounts.getAccessToken`` on EMAIL (roles/iam.serviceAccountTokenCreator); answers
  ``{"accessToken", "expireTime"}`` or 403 PERMISSION_DENIED.
* ``POST /token`` (OAuth 2.0 JWT bearer grant, as service account credentials refresh): a token for the
  assertion's issuer (:func:`operator_credentials` writes such a key file).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from tests.standins.loopback import Server, StandIn

# ---------------------------------------------------------------------------------------------------------------
# Grants
# ---------------------------------------------------------------------------------------------------------------

# The permissions of the predefined roles terraform/ grants, as far as any call here checks them
# (https://cloud.google.com/iam/docs/roles-permissions). Not every permission of each role: a predefined role
# counts as used when one of these authorised a call.
PREDEFINED: dict[str, frozenset[str]] = {
    "roles/iam.serviceAccountUser": frozenset(
        {"iam.serviceAccounts.actAs", "iam.serviceAccounts.get", "iam.serviceAccounts.list"}
    ),
    "roles/iam.serviceAccountTokenCreator": frozenset(
        {
            "iam.serviceAccounts.getAccessToken",
            "iam.serviceAccounts.getOpenIdToken",
            "iam.serviceAccounts.signBlob",
            "iam.serviceAccounts.signJwt",
        }
    ),
    "roles/run.invoker": frozenset({"run.routes.invoke"}),
    "roles/secretmanager.secretAccessor": frozenset({"secretmanager.versions.access"}),
    "roles/pubsub.publisher": frozenset({"pubsub.topics.publish"}),
    "roles/pubsub.subscriber": frozenset({"pubsub.subscriptions.consume", "pubsub.topics.attachSubscription"}),
    "roles/cloudbuild.builds.builder": frozenset({"cloudbuild.builds.create", "cloudbuild.builds.get"}),
}


class NotUnderstood(Exception):
    """terraform/ uses a form the parser does not model: extend the parser, never guess."""


@dataclass(frozen=True)
class Binding:
    source: str  # the terraform address and key it comes from, or "test: …" for a grant a test adds
    member: str  # "serviceAccount:EMAIL", "user:EMAIL", "group:…", "allUsers"
    role: str
    permissions: frozenset[str]
    resource: str
    custom: bool  # a custom role: every permission of it must be used

    def covers(self, resource: str) -> bool:
        if resource == self.resource:
            return True
        return bool(re.fullmatch(r"projects/[^/]+", self.resource)) and resource.startswith(self.resource + "/")

    @property
    def identity(self) -> str:
        return self.member.split(":", 1)[-1]


@dataclass(frozen=True)
class Check:
    identity: str
    permission: str
    resource: str
    allowed: bool
    by: tuple[Binding, ...]  # the bindings that granted it


class Grants:
    """Bindings, the tokens issued for them, and every check made against them. Thread-safe."""

    def __init__(self, bindings: Iterable[Binding] = ()) -> None:
        self.lock = threading.Lock()
        self.bindings: list[Binding] = list(bindings)
        self.checks: list[Check] = []
        self.tokens: dict[str, str] = {}
        self.revoked = False  # a test removed a grant on purpose: refusals are what it expects

    def grant(self, member: str, role: str, resource: str, source: str = "test") -> None:
        """A grant outside terraform/ (the operator's own rights, in a doctor test)."""
        permissions = PREDEFINED.get(role)
        if permissions is None:
            raise NotUnderstood(f"no permissions known for {role}")
        with self.lock:
            self.bindings.append(Binding(f"test: {source}", member, role, permissions, resource, False))

    def revoke(self, permission: str, source_prefix: str) -> list[Binding]:
        """Remove ``permission`` from the bindings whose source starts with ``source_prefix`` (a test proving a
        missing grant is caught); returns the bindings as they were."""
        with self.lock:
            before = [b for b in self.bindings if b.source.startswith(source_prefix) and permission in b.permissions]
            if not before:
                raise KeyError(f"no binding from {source_prefix} grants {permission}")
            self.revoked = True
            self.bindings = [
                Binding(b.source, b.member, b.role, b.permissions - {permission}, b.resource, b.custom)
                if b in before
                else b
                for b in self.bindings
            ]
            return before

    def allows(self, identity: str | None, resource: str, permission: str) -> bool:
        with self.lock:
            by = tuple(
                b
                for b in self.bindings
                if identity and b.identity == identity and permission in b.permissions and b.covers(resource)
            )
            self.checks.append(Check(identity or "", permission, resource, bool(by), by))
            return bool(by)

    def issue(self, identity: str) -> str:
        token = f"ya29.standin-{uuid.uuid4().hex}"
        with self.lock:
            self.tokens[token] = identity
        return token

    def identity_of(self, token: str) -> str | None:
        with self.lock:
            return self.tokens.get(token)

    def denied(self) -> list[Check]:
        with self.lock:
            return [c for c in self.checks if not c.allowed]

    def unused(self, identities: Iterable[str]) -> list[str]:
        """What terraform grants ``identities`` that no check used, per terraform resource (the instances of one
        ``for_each`` are one grant: each watched service gets the same): each permission of a custom role, and
        each predefined-role grant none of whose permissions was used."""
        wanted = set(identities)
        with self.lock:
            used = {(_resource_of(b.source), p) for c in self.checks for b in c.by for p in [c.permission]}
            out: set[str] = set()
            for b in self.bindings:
                if b.identity not in wanted or b.source.startswith("test:"):
                    continue
                resource = _resource_of(b.source)
                if b.custom:
                    out |= {f"{resource}: {p}" for p in b.permissions if (resource, p) not in used}
                elif not any((resource, p) in used for p in b.permissions):
                    out.add(f"{resource}: {b.role}")
            return sorted(out)

    def reset_checks(self) -> None:
        with self.lock:
            self.checks.clear()


def _resource_of(source: str) -> str:
    """The terraform resource address a binding comes from, without its instance key."""
    return source.split("[", 1)[0]


def caller(handler: BaseHTTPRequestHandler, grants: Grants | None) -> str:
    """Who makes this request: the bearer token's identity, else the door's, else "" (anonymous)."""
    auth = handler.headers.get("Authorization") or ""
    if grants is not None and auth.lower().startswith("bearer "):
        found = grants.identity_of(auth.split(None, 1)[1].strip())
        if found:
            return found
    return getattr(handler.server, "identity", "") or ""


def permission_denied(permission: str, resource: str, domain: str = "run.googleapis.com") -> dict:
    """The body of a real REST PERMISSION_DENIED (google.rpc.Status with an ErrorInfo detail)."""
    return {
        "error": {
            "code": 403,
            "message": f"Permission '{permission}' denied on resource '{resource}' (or resource may not exist).",
            "status": "PERMISSION_DENIED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "IAM_PERMISSION_DENIED",
                    "domain": "iam.googleapis.com",
                    "metadata": {"permission": permission, "resource": resource, "service": domain},
                }
            ],
        }
    }


# ---------------------------------------------------------------------------------------------------------------
# terraform/ → Grants
# ---------------------------------------------------------------------------------------------------------------

FN = "rollback-watchdog-fn@netra-staging.iam.gserviceaccount.com"  # the functions' account, default name_prefix
ACT = "rollback-watchdog-act@netra-staging.iam.gserviceaccount.com"  # the buttons' account
PROJECT_NUMBER = "123456789012"


@dataclass
class Deployment:
    """What a test would apply: terraform variables (defaults from variables.tf) and the projects' numbers."""

    variables: dict[str, Any]
    numbers: dict[str, str] = field(default_factory=dict)

    def number(self, project: str) -> str:
        return self.numbers.get(project, PROJECT_NUMBER)


def staging(services: Iterable[tuple[str, str, str, str | None]], **variables: Any) -> Deployment:
    """The incident's project with the watched services given as (project, region, name, runtime account)."""
    base: dict[str, Any] = {
        "project_id": "netra-staging",
        "region": "us-central1",
        "watched_services": [
            {"name": n, "region": r, "project": p, "runtime_service_account": a} for p, r, n, a in services
        ],
        "slack_channel": "C0ONCALL",
        "slack_bot_token_secret": "rollback-watchdog-slack-bot-token",
        "watchdog_oncall_channels": ["projects/netra-staging/notificationChannels/1"],
        "slack_actions": {
            "signing_secret": "rollback-watchdog-slack-signing",
            "team_id": "T0WATCH",
            "approvers": ["U0ONCALL"],
            "min_instances": 0,
        },
    }
    base.update(variables)
    return Deployment(base, {"netra-staging": PROJECT_NUMBER})


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", text)


class _Locals(dict):
    """``local.*`` of one deployment: a modelled local (LOCALS) is computed when first read."""

    def __init__(self, model: _Model) -> None:
        super().__init__()
        self.model = model

    def __missing__(self, name: str) -> Any:
        if name not in LOCALS:
            raise NotUnderstood(f"local.{name} is not modelled in {__file__}")
        self[name] = value = LOCALS[name][1](self.model)
        return value


class _Model:
    """The values of one deployment: variables, the locals of LOCALS, resource instances and their attributes."""

    def __init__(self, deployment: Deployment) -> None:
        from tests.terraform.test_wiring import locals_, module, variables

        self.module = module()
        self.hcl_locals = locals_()
        self.var = {name: spec.get("default") for name, spec in variables().items()}
        unknown = set(deployment.variables) - set(self.var)
        if unknown:
            raise NotUnderstood(f"variables terraform/ does not declare: {sorted(unknown)}")
        self.var.update(deployment.variables)
        self.deployment = deployment
        for name, (text, _model) in LOCALS.items():
            hcl = self.hcl_locals.get(name)
            same = hcl == text if isinstance(text, dict) else hcl is not None and _norm(str(hcl)) == _norm(text)
            if not same:
                raise NotUnderstood(f"terraform/ changed local.{name} (now {hcl!r}); update LOCALS in {__file__}")
        # each local's value on first use: locals refer to one another and to resources, in any order
        self.local = _Locals(self)
        self.resources: dict[str, dict[str, dict]] = {}
        for item in self.module.get("resource", []):
            for rtype, named in item.items():
                self.resources.setdefault(rtype, {}).update(named)
        self._instances: dict[tuple[str, str], Any] = {}

    # --- instances ------------------------------------------------------------------------------------------

    def instances(self, rtype: str, name: str) -> Any:
        """A resource's instances: one dict of attributes, a list (count) or a dict by key (for_each)."""
        key = (rtype, name)
        if key not in self._instances:
            body = self.resources.get(rtype, {}).get(name)
            if body is None:
                raise NotUnderstood(f"{rtype}.{name} is not declared")
            if "for_each" in body:
                items = self.repeat(FOR_EACH, body["for_each"], f"{rtype}.{name}")
                pairs = items.items() if isinstance(items, dict) else ((v, v) for v in items)
                self._instances[key] = {k: self.attributes(rtype, body, {"key": k, "value": v}) for k, v in pairs}
            elif "count" in body:
                count = self.repeat(COUNT, body["count"], f"{rtype}.{name}")
                self._instances[key] = [self.attributes(rtype, body, {"index": i}) for i in range(count)]
            else:
                self._instances[key] = self.attributes(rtype, body, {})
        return self._instances[key]

    def repeat(self, table: dict[str, Callable[[_Model], Any]], expression: str, where: str) -> Any:
        model = table.get(expression)
        if model is None:
            raise NotUnderstood(f"{where}: for_each/count {expression!r} is not modelled in {__file__}")
        return model(self)

    def attributes(self, rtype: str, body: dict, each: dict) -> dict:
        values = {k: self.value(body[k], each) for k in _ATTRIBUTES if isinstance(body.get(k), str)}
        project = values.get("project") or self.var["project_id"]
        if rtype == "google_service_account":
            values["email"] = f"{values['account_id']}@{project}.iam.gserviceaccount.com"
            values["name"] = f"projects/{project}/serviceAccounts/{values['email']}"
            values["unique_id"] = "104857600012345678"
        elif rtype == "google_project_iam_custom_role":
            values["name"] = f"projects/{project}/roles/{values['role_id']}"
            values["permissions"] = body["permissions"]
        elif rtype in ("google_pubsub_topic", "google_pubsub_subscription"):
            kind = "topics" if rtype == "google_pubsub_topic" else "subscriptions"
            values["id"] = f"projects/{project}/{kind}/{values['name']}"
        elif rtype == "google_cloudfunctions2_function":
            service = f"projects/{project}/locations/{values['location']}/services/{values['name']}"
            values["service_config"] = [{"service": service, "uri": f"https://{values['name']}.run.app"}]
        elif rtype in ("google_logging_project_sink", "google_logging_folder_sink"):
            owner = values.get("project") or values.get("folder", "")
            values["writer_identity"] = f"serviceAccount:service-{owner}@gcp-sa-logging.iam.gserviceaccount.com"
        return values

    # --- expressions ----------------------------------------------------------------------------------------

    def value(self, text: Any, each: dict) -> Any:
        """A literal, one ``${reference}`` (any type), or a template of ``${reference}``s (a string)."""
        if text is None or isinstance(text, (bool, int, float)):
            return text  # null, true/false, a number: as written
        if not isinstance(text, str):
            raise NotUnderstood(f"value {text!r} is neither a literal nor a reference")
        whole = re.fullmatch(r"\$\{([^{}]*)\}", text)
        if whole:
            return self.reference(whole.group(1), each)
        if "${" not in text:
            return text
        return re.sub(r"\$\{([^{}]*)\}", lambda m: str(self.reference(m.group(1), each)), text)

    def reference(self, expression: str, each: dict) -> Any:
        steps = re.findall(r'\.?([A-Za-z_][\w-]*)|\[("[^"]*"|\d+|[^\[\]]+)\]', expression.strip())
        if not steps or "".join(f".{a}" if a else f"[{b}]" for a, b in steps).lstrip(".") != expression.strip():
            raise NotUnderstood(f"expression {expression!r} is not a reference chain")
        (root, _), *rest = steps
        if root == "var":
            current: Any = self.var
        elif root == "local":
            current = self.local
        elif root == "each":
            current = {"key": each.get("key"), "value": each.get("value")}
        elif root in self.resources:
            (name, _), *rest = rest
            current = self.instances(root, name)
        else:
            raise NotUnderstood(f"reference {expression!r}")
        for attr, index in rest:
            if attr:
                current = current[attr] if isinstance(current, dict) else getattr(current, attr)
            elif index.startswith('"'):
                current = current[index.strip('"')]
            elif index.isdigit():
                current = current[int(index)]
            else:
                current = current[self.reference(index, each)]
        return current


# the attributes a grant's resource, member and role are made of (others are never evaluated)
_ATTRIBUTES = (
    "project",
    "name",
    "location",
    "account_id",
    "role_id",
    "role",
    "member",
    "topic",
    "subscription",
    "secret_id",
    "service_account_id",
    "folder",
)


def _watched(m: _Model) -> dict[str, dict]:
    return {
        f"{s.get('project') or m.var['project_id']}/{s['region']}/{s['name']}": {
            "name": s["name"],
            "region": s["region"],
            "project": s.get("project") or m.var["project_id"],
            "runtime_service_account": s.get("runtime_service_account"),
        }
        for s in m.var["watched_services"]
    }


# name: (the HCL of the local, as terraform/ writes it, whitespace aside; its Python model)
LOCALS: dict[str, tuple[str | dict, Callable[[_Model], Any]]] = {
    "project_number": ("${data.google_project.this.number}", lambda m: m.deployment.number(m.var["project_id"])),
    "watched": (
        '${{for s in var.watched_services : "${coalesce(s.project, var.project_id)}/${s.region}/${s.name}" => '
        "{name = s.name, region = s.region, project = coalesce(s.project, var.project_id), "
        "runtime_service_account = s.runtime_service_account}}}",
        _watched,
    ),
    "watched_projects": (
        "${toset([for s in local.watched : s.project])}",
        lambda m: sorted({s["project"] for s in m.local["watched"].values()}),
    ),
    "metrics_project": (
        "${coalesce(var.metrics_project, var.project_id)}",
        lambda m: m.var.get("metrics_project") or m.var["project_id"],
    ),
    "secret_project": (
        "${coalesce(var.secret_project, var.project_id)}",
        lambda m: m.var.get("secret_project") or m.var["project_id"],
    ),
    "monitoring_notification_agent": (
        "serviceAccount:service-${local.project_number}@gcp-sa-monitoring-notification.iam.gserviceaccount.com",
        lambda m: (
            f"serviceAccount:service-{m.local['project_number']}@gcp-sa-monitoring-notification.iam.gserviceaccount.com"
        ),
    ),
    "pubsub_service_agent": (
        "serviceAccount:service-${local.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com",
        lambda m: f"serviceAccount:service-{m.local['project_number']}@gcp-sa-pubsub.iam.gserviceaccount.com",
    ),
    "runtime_service_accounts": (
        "${{for k, s in local.watched : k => coalesce(s.runtime_service_account, "
        '"${data.google_project.watched[s.project].number}-compute@developer.gserviceaccount.com")}}',
        lambda m: {
            k: s["runtime_service_account"]
            or f"{m.deployment.number(s['project'])}-compute@developer.gserviceaccount.com"
            for k, s in m.local["watched"].items()
        },
    ),
    "actions": (
        '${var.slack_actions == null ? {} : {"actions" = var.slack_actions}}',
        lambda m: {} if m.var.get("slack_actions") is None else {"actions": m.var["slack_actions"]},
    ),
    "buttons": (
        '${var.slack_actions == null ? {signing_secret = null, team_id = "", approvers = [], min_instances = 0} '
        ": var.slack_actions}",
        lambda m: _buttons(m),
    ),
    "functions": ("${{for k, f in local.function_specs : k => f if f.enabled}}", lambda m: _functions(m)),
    "pushed_functions": (
        "${{for k, f in local.functions : k => f if f.topic != null}}",
        lambda m: {k: f for k, f in m.local["functions"].items() if f["topic"] is not None},
    ),
    "slack_secrets": (
        {"SLACK_BOT_TOKEN": "${var.slack_bot_token_secret}", "SLACK_WEBHOOK_URL": "${var.slack_webhook_url_secret}"},
        lambda m: {
            "SLACK_BOT_TOKEN": m.var["slack_bot_token_secret"],
            "SLACK_WEBHOOK_URL": m.var["slack_webhook_url_secret"],
        },
    ),
    "delivery_topics": (
        {"alerts": "${google_pubsub_topic.alerts.id}", "events": "${google_pubsub_topic.events.id}"},
        lambda m: {
            "alerts": m.instances("google_pubsub_topic", "alerts")["id"],
            "events": m.instances("google_pubsub_topic", "events")["id"],
        },
    ),
    "function_accounts": (
        "${merge({function = google_service_account.function.email}, "
        "{for k, a in google_service_account.actions : k => a.email})}",
        lambda m: {
            "function": m.instances("google_service_account", "function")["email"],
            **{k: a["email"] for k, a in m.instances("google_service_account", "actions").items()},
        },
    ),
    "sentinel_projects": (
        '${var.sentinel == "off" ? toset([]) : local.watched_projects}',
        lambda m: [] if m.var["sentinel"] == "off" else m.local["watched_projects"],
    ),
    "build_service_account_email": (
        "${coalesce(var.build_service_account, one(google_service_account.build[*].email))}",
        lambda m: (
            m.var.get("build_service_account")
            or f"{m.var['name_prefix']}-build@{m.var['project_id']}.iam.gserviceaccount.com"
        ),
    ),
    "role_suffix": (
        '${replace(var.name_prefix, "-", "_")}_${substr(google_service_account.function.unique_id, -8, -1)}',
        lambda m: f"{m.var['name_prefix'].replace('-', '_')}_12345678",
    ),
}


class _Entry(dict):
    """One entry of a map written as an object literal (``local.function_specs``): its attributes are evaluated
    when read, with the model's rules, so a form the model does not know raises NotUnderstood when it matters."""

    def __init__(self, model: _Model, raw: dict) -> None:
        super().__init__(raw)
        self.model = model

    def __getitem__(self, key: str) -> Any:
        raw = super().__getitem__(key)
        if isinstance(raw, dict):
            return {k: self.model.value(v, {}) for k, v in raw.items()}
        return self.model.value(raw, {})


# The expressions that switch an entry of a map on or off (an entry's ``enabled``), modelled one by one.
CONDITIONS: dict[str, Callable[[_Model], bool]] = {
    "${var.slack_actions != null}": lambda m: m.var.get("slack_actions") is not None,
}


def _switched_on(m: _Model, raw: Any, where: str) -> bool:
    if isinstance(raw, bool):
        return raw
    model = CONDITIONS.get(raw)
    if model is None:
        raise NotUnderstood(f"{where}: switch {raw!r} is not modelled in {__file__}")
    return model(m)


def _functions(m: _Model) -> dict[str, _Entry]:
    """local.functions: the entries of local.function_specs that are switched on (function.tf)."""
    specs = m.hcl_locals.get("function_specs")
    if not isinstance(specs, dict):
        raise NotUnderstood(f"local.function_specs is not a map of entries (now {specs!r})")
    return {
        key: _Entry(m, raw)
        for key, raw in specs.items()
        if _switched_on(m, raw.get("enabled"), f"local.function_specs.{key}.enabled")
    }


def _buttons(m: _Model) -> dict:
    actions = m.var.get("slack_actions")
    if actions is None:
        return {"signing_secret": None, "team_id": "", "approvers": [], "min_instances": 0}
    return {"min_instances": 1, **actions}


def _runtime_accounts(m: _Model) -> list[str]:
    return sorted(set(m.local["runtime_service_accounts"].values()))


def _with_actions(m: _Model, value: Any, empty: Any) -> Any:
    return empty if m.var.get("slack_actions") is None else value


FOR_EACH: dict[str, Callable[[_Model], Any]] = {
    "${local.watched}": lambda m: m.local["watched"],
    "${local.watched_projects}": lambda m: m.local["watched_projects"],
    "${local.sentinel_projects}": lambda m: m.local["sentinel_projects"],
    "${local.actions}": lambda m: m.local["actions"],
    "${toset(values(local.runtime_service_accounts))}": _runtime_accounts,
    "${toset(var.drill_invokers)}": lambda m: sorted(m.var.get("drill_invokers") or []),
    "${toset(var.drill_publishers)}": lambda m: sorted(m.var.get("drill_publishers") or []),
    "${var.slack_actions == null ? toset([]) : local.watched_projects}": lambda m: _with_actions(
        m, m.local["watched_projects"], []
    ),
    "${var.slack_actions == null ? {} : local.watched}": lambda m: _with_actions(m, m.local["watched"], {}),
    "${var.slack_actions == null ? toset([]) : toset(values(local.runtime_service_accounts))}": lambda m: _with_actions(
        m, _runtime_accounts(m), []
    ),
    "${google_logging_project_sink.deploys}": lambda m: m.instances("google_logging_project_sink", "deploys"),
    "${local.functions}": lambda m: m.local["functions"],
    "${local.pushed_functions}": lambda m: m.local["pushed_functions"],
}

COUNT: dict[str, Callable[[_Model], int]] = {
    "${var.build_service_account == null ? 1 : 0}": lambda m: int(m.var.get("build_service_account") is None),
    "${var.slack_webhook_url_secret == null ? 0 : 1}": lambda m: int(m.var.get("slack_webhook_url_secret") is not None),
    '${var.sentinel != "off" && var.sentinel_folder_id != null ? 1 : 0}': lambda m: int(
        m.var["sentinel"] != "off" and m.var.get("sentinel_folder_id") is not None
    ),
}

# resource type → the resource a binding of it is on
_ON: dict[str, Callable[[dict], str]] = {
    "google_project_iam_member": lambda a: f"projects/{a['project']}",
    "google_cloud_run_v2_service_iam_member": lambda a: (
        a["name"]
        if a["name"].startswith("projects/")
        else f"projects/{a['project']}/locations/{a['location']}/services/{a['name']}"
    ),
    "google_service_account_iam_member": lambda a: re.sub(r"^projects/[^/]+/", "projects/-/", a["service_account_id"]),
    "google_pubsub_topic_iam_member": lambda a: f"projects/{a['project']}/topics/{a['topic']}",
    "google_pubsub_subscription_iam_member": lambda a: f"projects/{a['project']}/subscriptions/{a['subscription']}",
    "google_secret_manager_secret_iam_member": lambda a: f"projects/{a['project']}/secrets/{a['secret_id']}",
}


def deployed(deployment: Deployment) -> Grants:
    """The grants terraform/ makes for ``deployment``."""
    model = _Model(deployment)
    roles = {
        role["name"]: frozenset(role["permissions"])
        for name in model.resources.get("google_project_iam_custom_role", {})
        for role in _flat(model.instances("google_project_iam_custom_role", name))
    }
    bindings = []
    for rtype, named in model.resources.items():
        if not rtype.endswith(("_iam_member", "_iam_binding", "_iam_policy")):
            continue
        if rtype not in _ON:
            raise NotUnderstood(f"IAM resource type {rtype} is not modelled in {__file__}")
        for name in named:
            instances = model.instances(rtype, name)
            keyed = (
                instances.items()
                if isinstance(instances, dict) and "role" not in instances
                else (enumerate(instances) if isinstance(instances, list) else [(None, instances)])
            )
            for key, attrs in keyed:
                role = attrs["role"]
                custom = role in roles
                permissions = roles.get(role) or PREDEFINED.get(role)
                if permissions is None:
                    raise NotUnderstood(f"{rtype}.{name}: no permissions known for {role}")
                source = f"{rtype}.{name}" + ("" if key is None else f"[{key!r}]")
                bindings.append(Binding(source, attrs["member"], role, permissions, _ON[rtype](attrs), custom))
    return Grants(bindings)


def functions(deployment: Deployment) -> dict[str, dict]:
    """The functions terraform/ deploys for ``deployment`` (function.tf), by entry: name, the service account it
    runs as, and the Secret Manager secrets it reads at instance start (environment variable → secret resource)."""
    model = _Model(deployment)
    accounts = model.local["function_accounts"]
    project = model.local["secret_project"]
    return {
        key: {
            "name": entry["name"],
            "service_account": accounts[entry["runs_as"]],
            "secrets": {env: f"projects/{project}/secrets/{s}" for env, s in entry["secrets"].items() if s is not None},
        }
        for key, entry in model.local["functions"].items()
    }


def _flat(instances: Any) -> list[dict]:
    if isinstance(instances, list):
        return instances
    if isinstance(instances, dict) and "name" not in instances:
        return list(instances.values())
    return [instances]


# ---------------------------------------------------------------------------------------------------------------
# The IAM API stand-in
# ---------------------------------------------------------------------------------------------------------------

_TEST = re.compile(r"^/v1/(projects/-/serviceAccounts/[^/:]+):testIamPermissions$")
_TOKEN = re.compile(r"^/v1/projects/-/serviceAccounts/([^/:]+):generateAccessToken$")


class IamState:
    def __init__(self, grants: Any) -> None:
        self.grants = grants  # anything with allowed(resource, permission, caller=…), e.g. CloudRunState
        self.lock = threading.Lock()
        self.requests: list[dict] = []

    @property
    def policy(self) -> Grants | None:
        return getattr(self.grants, "policy", None)


class _Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) or b""
        who = caller(self, state.policy)
        with state.lock:
            state.requests.append({"path": self.path, "body": _body(raw, self.headers), "caller": who})
        if self.path == "/token":
            return self._token(raw)
        if match := _TOKEN.match(self.path):
            return self._generate(match.group(1), who)
        match = _TEST.match(self.path)
        if match is None:
            return self._send(404, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}})
        wanted = _body(raw, self.headers).get("permissions")
        if not isinstance(wanted, list):
            return self._send(400, {"error": {"code": 400, "message": "permissions", "status": "INVALID_ARGUMENT"}})
        granted = [p for p in wanted if state.grants.allowed(match.group(1), p, caller=who)]
        return self._send(200, {"permissions": granted} if granted else {})

    def _generate(self, email: str, who: str) -> None:
        policy = self.server.state.policy
        resource = f"projects/-/serviceAccounts/{email}"
        if policy is None or not policy.allows(who, resource, "iam.serviceAccounts.getAccessToken"):
            return self._send(
                403, permission_denied("iam.serviceAccounts.getAccessToken", resource, "iamcredentials.googleapis.com")
            )
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        return self._send(200, {"accessToken": policy.issue(email), "expireTime": expires})

    def _token(self, raw: bytes) -> None:
        """OAuth 2.0 token endpoint, JWT bearer grant (RFC 7523), as google-auth's service account credentials ask:
        a token for the assertion's issuer. The assertion's signature is not checked (a stand-in)."""
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        policy = self.server.state.policy
        try:
            payload = form["assertion"].split(".")[1]
            issuer = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["iss"]
        except (KeyError, IndexError, ValueError):
            issuer = ""
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or not issuer or policy is None:
            return self._send(400, {"error": "invalid_grant", "error_description": "Bad Request"})
        return self._send(200, {"access_token": policy.issue(issuer), "expires_in": 3599, "token_type": "Bearer"})

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _body(raw: bytes, headers: Any) -> dict:
    if "json" not in (headers.get("Content-Type") or "json"):
        return {}
    try:
        found = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


class IamStandIn(StandIn):
    """``with IamStandIn(cloud_run.state) as iam: iam.url``."""

    handler = _Handler

    def __init__(self, grants: Any, port: int = 0) -> None:
        super().__init__(IamState(grants), port)


def operator_credentials(path: Any, iam_url: str, email: str) -> str:
    """Write a service account key file for ``email`` whose token_uri is this stand-in's; returns the path, for
    GOOGLE_APPLICATION_CREDENTIALS (google-auth reads it as Application Default Credentials). A key file, since
    google-auth pins an authorized_user file's token_uri to Google's."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_text(json.dumps({
        "type": "service_account", "project_id": email.split("@")[1].split(".")[0], "private_key_id": "standin",
        "private_key": pem.decode(), "client_email": email, "client_id": "1", "token_uri": f"{iam_url}/token",
    }))  # fmt: skip
    return str(path)
