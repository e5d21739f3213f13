"""What changed between two revisions, field by field.

Pure code over revisions in the Cloud Run Admin API v2 JSON shape (camelCase,
as ``GET .../revisions`` returns them). Each :class:`Change` has a kind:

- ``egress``: ``vpcAccess.egress`` (a missing or unspecified value is
  ``private-ranges-only``, as Cloud Run treats it);
- ``network``: the connector, Direct VPC network interfaces, Cloud SQL instances;
- ``other``: image, env, service account, scaling, resources, probes and the
  rest of the revision template.

Changes come back egress first, then network, then the rest, because that is
the order on-call should read them in.

Values leave by default deny (:func:`watchdog.core.redact.harmless`): an env
value, a command or argument list and a probe header value are shown only when
their shape is known to be harmless (numbers, durations, booleans, short
enum-like words), when they are a secret reference (``secret:NAME:VERSION``,
never the secret), or when the env var is one ``WATCHDOG_SHOW_ENV`` lists
(``show_env``). Everything else, and every value of a variable, header or flag
whose name says credential (``…PASSWORD``, ``ADMIN_PW``, ``X-Api-Key``), is
``(value hidden)``; when one side of a change is hidden, so is the other. What
counts as a change, and its kind, does not depend on what is shown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from watchdog.core.redact import credential_flag, harmless, harmless_argument, sensitive_name

HIDDEN = "(value hidden)"
KIND_ORDER = {"egress": 0, "network": 1, "other": 2}
_EGRESS_NAMES = {
    "ALL_TRAFFIC": "all-traffic",
    "PRIVATE_RANGES_ONLY": "private-ranges-only",
}

# Revision fields that are status or identity, not configuration.
_NOT_CONFIGURATION = {
    "name",
    "uid",
    "generation",
    "labels",
    "annotations",
    "createTime",
    "updateTime",
    "deleteTime",
    "expireTime",
    "purgeTime",
    "launchStage",
    "service",
    "conditions",
    "observedGeneration",
    "logUri",
    "reconciling",
    "etag",
    "satisfiesPzs",
    "creator",
    "scalingStatus",
    "revision",
}


@dataclass(frozen=True)
class Change:
    """One configuration field that differs: ``old`` → ``new`` (display strings)."""

    field: str
    kind: str  # "egress", "network" or "other"
    old: str
    new: str

    def __str__(self) -> str:
        if self.old == self.new == HIDDEN:
            return f"{self.field}: changed {HIDDEN}"
        return f"{self.field}: {self.old} → {self.new}"


def egress(revision: dict) -> str:
    """The revision's VPC egress setting, in gcloud's words."""
    value = _get(revision, "vpcAccess", "egress") or "PRIVATE_RANGES_ONLY"
    return _EGRESS_NAMES.get(
        str(value), "private-ranges-only" if value == "VPC_EGRESS_UNSPECIFIED" else str(value).lower()
    )


def connector(revision: dict) -> str:
    return _short(_get(revision, "vpcAccess", "connector") or "")


def network_interfaces(revision: dict) -> list[str]:
    found = []
    for nic in _list(_get(revision, "vpcAccess", "networkInterfaces")):
        if isinstance(nic, dict):
            tags = ",".join(sorted(map(str, _list(nic.get("tags")))))
            text = f"{_short(nic.get('network', ''))}/{_short(nic.get('subnetwork', ''))}"
            found.append(text + (f" [{tags}]" if tags else ""))
    return sorted(found)


def cloud_sql_instances(revision: dict) -> list[str]:
    return sorted(
        str(instance)
        for volume in _list(revision.get("volumes"))
        if isinstance(volume, dict)
        for instance in _list(_get(volume, "cloudSqlInstance", "instances"))
    )


def uses_cloud_sql(revision: dict) -> bool:
    """True when the revision mounts Cloud SQL (the unix socket path)."""
    return bool(cloud_sql_instances(revision))


def template_changes(older: dict, newer: dict, show_env: frozenset[str] = frozenset()) -> list[Change]:
    """Every configuration difference from ``older`` to ``newer``, egress first.

    ``show_env``: env var names whose values are shown whatever they look like (``WATCHDOG_SHOW_ENV``).
    """
    changes: list[Change] = []
    for name, kind, read in _FIELDS:
        old, new = read(older), read(newer)
        if old != new:
            changes.append(Change(name, kind, _show(old), _show(new)))
    changes.extend(_container_changes(older, newer, show_env))
    handled = {"vpcAccess", "volumes", "containers", *(_TOP_LEVEL)}
    for key in sorted((set(older) | set(newer)) - handled - _NOT_CONFIGURATION):
        old, new = older.get(key), newer.get(key)
        if _canon(old) != _canon(new):
            changes.append(Change(key, "other", _show(old), _show(new)))
    changes.sort(key=lambda c: KIND_ORDER[c.kind])
    return changes


def _container_changes(older: dict, newer: dict, show_env: frozenset[str]) -> Iterable[Change]:
    old_containers = _containers(older)
    new_containers = _containers(newer)
    for name in sorted(set(old_containers) | set(new_containers)):
        prefix = f"containers[{name}]" if len(old_containers) > 1 or len(new_containers) > 1 else "container"
        old, new = old_containers.get(name), new_containers.get(name)
        if old is None or new is None:
            yield Change(
                prefix, "other", "absent" if old is None else "present", "absent" if new is None else "present"
            )
            continue
        for key in ("image", "command", "args", "workingDir", "ports", "volumeMounts", "dependsOn"):
            if _canon(old.get(key)) != _canon(new.get(key)):
                a, b = old.get(key), new.get(key)
                if key in ("command", "args") and not (_arguments_shown(a) and _arguments_shown(b)):
                    yield Change(f"{prefix}.{key}", "other", HIDDEN, HIDDEN)
                else:
                    yield Change(f"{prefix}.{key}", "other", _show(a), _show(b))
        for key in ("cpu", "memory", "nvidia.com/gpu"):
            a, b = _get(old, "resources", "limits", key), _get(new, "resources", "limits", key)
            if a != b:
                yield Change(f"{prefix}.resources.limits.{key}", "other", _show(a), _show(b))
        for key in ("cpuIdle", "startupCpuBoost"):
            a, b = _get(old, "resources", key), _get(new, "resources", key)
            if bool(a) != bool(b):
                yield Change(f"{prefix}.resources.{key}", "other", _show(bool(a)), _show(bool(b)))
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            if _canon(old.get(probe)) != _canon(new.get(probe)):
                a, b = _show(_probe_shown(old.get(probe))), _show(_probe_shown(new.get(probe)))
                if a == b:  # only a hidden value differs: say so, rather than show two equal sides
                    a = b = HIDDEN
                yield Change(f"{prefix}.{probe}", "other", a, b)
        yield from _env_changes(prefix, old, new, show_env)


def _env_changes(prefix: str, old: dict, new: dict, show_env: frozenset[str]) -> Iterable[Change]:
    old_env, new_env = _env(old), _env(new)
    for name in sorted(set(old_env) | set(new_env)):
        a, b = old_env.get(name), new_env.get(name)
        if a == b:
            continue
        shown_a, shown_b = _env_shown(name, a, show_env), _env_shown(name, b, show_env)
        if HIDDEN in (shown_a, shown_b):  # never reveal one side of a credential change
            shown_a = HIDDEN if a is not None else "unset"
            shown_b = HIDDEN if b is not None else "unset"
        yield Change(f"{prefix}.env.{name}", "other", shown_a, shown_b)


def _env_shown(name: str, value: str | None, show_env: frozenset[str]) -> str:
    """Default deny; the first rule that applies wins."""
    if value is None:
        return "unset"
    if value.startswith("secret:"):
        return value  # a reference to Secret Manager (built by _env), not the secret
    if name in show_env:
        return value  # the operator listed it as safe (WATCHDOG_SHOW_ENV)
    if sensitive_name(name) or not harmless(value):
        return HIDDEN
    return value


def _arguments_shown(items: Any) -> bool:
    """A command or argument list may be shown: every element harmless, none the value of a credential flag."""
    if items is None:
        return True
    if not isinstance(items, list):
        return False
    after_credential_flag = False
    for item in items:
        if not isinstance(item, str) or after_credential_flag or not harmless_argument(item):
            return False
        after_credential_flag = credential_flag(item)
    return not after_credential_flag


def _probe_shown(probe: Any) -> Any:
    """A probe as it may be shown: header values hidden unless harmless, a path with a query string hidden."""
    if not isinstance(probe, dict):
        return probe
    shown = json.loads(_canon(probe))
    http = shown.get("httpGet")
    if isinstance(http, dict):
        if isinstance(http.get("path"), str) and not _PLAIN_PATH.fullmatch(http["path"]):
            http["path"] = HIDDEN
        for header in _list(http.get("httpHeaders")):
            if isinstance(header, dict) and "value" in header:
                name, value = str(header.get("name", "")), header["value"]
                if sensitive_name(name) or not isinstance(value, str) or not harmless(value):
                    header["value"] = HIDDEN
    return shown


_PLAIN_PATH = re.compile(r"/[A-Za-z0-9._~/-]*")


def _env(container: dict) -> dict[str, str]:
    values = {}
    for item in _list(container.get("env")):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        ref = _get(item, "valueSource", "secretKeyRef")
        if isinstance(ref, dict):
            values[item["name"]] = f"secret:{_short(str(ref.get('secret', '')))}:{ref.get('version', 'latest')}"
        else:
            values[item["name"]] = json.dumps(item.get("value", ""), ensure_ascii=False)
    return values


def _containers(revision: dict) -> dict[str, dict]:
    found = {}
    for index, container in enumerate(_list(revision.get("containers"))):
        if isinstance(container, dict):
            found[str(container.get("name") or index)] = container
    return found


_TOP_LEVEL = ("serviceAccount", "scaling", "timeout", "maxInstanceRequestConcurrency", "executionEnvironment")

_FIELDS: tuple[tuple[str, str, Callable[[dict], Any]], ...] = (
    ("vpc egress", "egress", egress),
    ("vpc connector", "network", connector),
    ("vpc network interfaces", "network", network_interfaces),
    ("cloud sql instances", "network", cloud_sql_instances),
    ("service account", "other", lambda r: r.get("serviceAccount") or "default"),
    ("scaling.minInstanceCount", "other", lambda r: str(_get(r, "scaling", "minInstanceCount") or 0)),
    ("scaling.maxInstanceCount", "other", lambda r: str(_get(r, "scaling", "maxInstanceCount") or "default")),
    ("timeout", "other", lambda r: r.get("timeout") or "default"),
    ("concurrency", "other", lambda r: r.get("maxInstanceRequestConcurrency") or "default"),
    ("execution environment", "other", lambda r: r.get("executionEnvironment") or "default"),
)


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _short(name: Any) -> str:
    return str(name).rsplit("/", 1)[-1]


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _show(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value)
    if isinstance(value, (dict, list)):
        text = _canon(value)
        return text if len(text) <= 200 else text[:199] + "…"
    return str(value)
