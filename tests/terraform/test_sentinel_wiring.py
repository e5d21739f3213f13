"""terraform/sentinel.tf: the deploy-event sinks export exactly the Cloud Run writes the watchdog reads, by exact
log name, never the watchdog's own, to the events topic (not the alerts').

The filters are rendered from the HCL (the few template forms sentinel.tf uses; anything else fails the render)
and evaluated against audit entries with a small evaluator of the Logging query language subset they use:
``FIELD="v"``, ``FIELD=("a" OR "b")``, ``log_id("…")``, ``NOT``, ``AND``, ``OR``. How it reads the language
(https://cloud.google.com/logging/docs/view/logging-query-language): ``=`` is equality (``:`` would be a
substring test); a comparison on a field the entry does not have is false, so ``NOT`` of it is true; ``NOT`` binds
tightest, then ``OR``, then ``AND``.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from tests.support import fixture
from tests.terraform.test_wiring import locals_, module, resource
from watchdog.core.deploys import METHODS

FN = "rollback-watchdog-fn@netra-staging.iam.gserviceaccount.com"
ACT = "rollback-watchdog-act@netra-staging.iam.gserviceaccount.com"


def render(template: str, env: dict[str, Any]) -> str:
    """The HCL string templates sentinel.tf uses, evaluated: ``${NAME}`` and
    ``${join("SEP", [for V in local.X : "…${V}…"])}``."""

    def one(expression: str) -> str:
        joined = re.fullmatch(r'join\("([^"]*)", \[for (\w+) in local\.(\w+) : "(.*)"\]\)', expression)
        if joined:
            sep, var, name, body = joined.groups()
            body = body.replace('\\"', '"')
            return sep.join(render(body, {**env, var: item}) for item in env[f"local.{name}"])
        if expression in env:
            return str(env[expression])
        raise AssertionError(f"sentinel.tf uses a template form this test cannot render: ${{{expression}}}")

    out, i = [], 0
    while (start := template.find("${", i)) >= 0:
        out.append(template[i:start])
        depth, j = 0, start + 1
        while True:  # the matching brace, past nested ${…}
            depth += {"{": 1, "}": -1}.get(template[j], 0)
            if depth == 0:
                break
            j += 1
        out.append(one(template[start + 2 : j]))
        i = j + 1
    out.append(template[i:])
    return "".join(out).replace('\\"', '"')


def filters(principals: list[str]) -> tuple[dict[str, str], str]:
    """(project → project sink filter, folder sink filter), rendered from the HCL."""
    local = locals_()
    env: dict[str, Any] = {"local.sentinel_methods": local["sentinel_methods"], "local.watchdog_principals": principals}
    terms = [render(t, env) for t in local["sentinel_terms"]]
    project_form = re.fullmatch(
        r'\$\{\{for p in local\.sentinel_projects : p => join\(" AND ", concat\(\["(.*)"\], local\.sentinel_terms\)\)\}\}',
        local["sentinel_filters"],
    )
    assert project_form, local["sentinel_filters"]
    per_project = {
        p: " AND ".join([render(project_form.group(1).replace('\\"', '"'), {"p": p}), *terms])
        for p in ("netra-staging", "netra-data")
    }
    folder_form = re.fullmatch(
        r'\$\{join\(" AND ", concat\(\["(.*)"\], local\.sentinel_terms\)\)\}', local["sentinel_folder_filter"]
    )
    assert folder_form, local["sentinel_folder_filter"]
    return per_project, " AND ".join([folder_form.group(1).replace('\\"', '"'), *terms])


# --- the evaluator ----------------------------------------------------------------------------------

_FIELD = re.compile(r'\s*((?:[A-Za-z_]\w*|"[^"]+")(?:\.(?:[A-Za-z_]\w*|"[^"]+"))*)\s*=')
_OTHER = re.compile(r'\(|\)|AND\b|OR\b|NOT\b|log_id\("[^"]*"\)|"(?:[^"\\]|\\.)*"')


def _tokens(text: str) -> list[str]:
    tokens, i = [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        if m := _FIELD.match(text, i):
            tokens += [m.group(1), "="]
        else:
            m = _OTHER.match(text, i)
            assert m, f"this evaluator cannot read the filter at {text[i : i + 40]!r}"
            tokens.append(m.group(0))
        i = m.end()
    return tokens


def _get(entry: dict, path: str) -> Any:
    value: Any = entry
    for part in re.findall(r'"[^"]+"|[^.]+', path):
        part = part.strip('"')
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def matches(text: str, entry: dict) -> bool:
    tokens = _tokens(text)
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def values() -> list[str]:
        if peek() == "(":
            take()
            found = [take().strip('"')]
            while peek() == "OR":
                take()
                found.append(take().strip('"'))
            assert take() == ")"
            return found
        return [take().strip('"')]

    def primary() -> bool:
        token = take()
        if token == "NOT":
            return not primary()
        if token == "(":
            result = conjunction()
            assert take() == ")"
            return result
        if token.startswith("log_id("):
            log_id = token[len('log_id("') : -2]
            return str(entry.get("logName", "")).endswith("/logs/" + log_id.replace("/", "%2F"))
        assert take() == "=", f"only = comparisons are read: {token}"
        wanted, value = values(), _get(entry, token)
        return value is not None and str(value) in wanted  # a missing field compares false

    # The Logging query language binds OR tighter than AND ("a OR NOT b AND NOT c OR d" is
    # "(a OR (NOT b)) AND ((NOT c) OR d)").
    def disjunction() -> bool:
        result = primary()
        while peek() == "OR":
            take()
            result = primary() or result
        return result

    def conjunction() -> bool:
        result = disjunction()
        while peek() == "AND":
            take()
            result = disjunction() and result
        return result

    result = conjunction()
    assert position == len(tokens), f"unread: {tokens[position:]}"
    return result


# --- what the sinks export ----------------------------------------------------------------------------


def entry(name: str = "v2_UpdateService_terraform_first_entry.INFERRED.json", **changes: Any) -> dict:
    """A deploy fixture with changes: ``protoPayload__methodName="…"`` sets a nested field (None removes it)."""
    found = copy.deepcopy(fixture(f"deploys/{name}"))
    for path, value in changes.items():
        target = found
        *outer, leaf = path.split("__")
        for part in outer:
            target = target.setdefault(part, {})
        if value is None:
            target.pop(leaf, None)
        else:
            target[leaf] = value
    return found


ACTIVITY = "projects/netra-staging/logs/cloudaudit.googleapis.com%2Factivity"
# name: (entry, exported by netra-staging's sink, exported by the folder sink)
CASES = {
    "a terraform deploy": (entry(), True, True),
    "a gcloud deploy (v1)": (entry("v1_ReplaceService_gcloud_egress_all_traffic.INFERRED.json"), True, True),
    "a first deploy (v2 create)": (entry("v2_CreateService_console.INFERRED.json"), True, True),
    "the watchdog's own traffic update": (entry(protoPayload__authenticationInfo__principalEmail=FN), False, False),
    "the buttons' undo": (entry(protoPayload__authenticationInfo__principalEmail=ACT), False, False),
    "a deployer through workload identity federation (no principalEmail)": (
        entry(protoPayload__authenticationInfo={"principalSubject": "principal://iam.googleapis.com/x"}),
        True,
        True,
    ),
    "the data-access log": (
        entry(logName="projects/netra-staging/logs/cloudaudit.googleapis.com%2Fdata_access"),
        False,
        False,
    ),
    "a log whose name only contains the activity log's": (
        entry(logName="projects/netra-staging/logs/not-cloudaudit.googleapis.com%2Factivity-copy"),
        False,
        False,
    ),
    "another project's activity log": (
        entry(logName="projects/netra-data/logs/cloudaudit.googleapis.com%2Factivity"),
        False,
        True,
    ),
    "a service delete": (entry(protoPayload__methodName="google.cloud.run.v2.Services.DeleteService"), False, False),
    "another API": (entry(protoPayload__serviceName="storage.googleapis.com"), False, False),
    "not an AuditLog payload": (entry(**{"protoPayload__@type": "type.googleapis.com/other"}), False, False),
}


@pytest.mark.parametrize(("body", "project", "folder"), CASES.values(), ids=CASES.keys())
def test_the_sinks_export_exactly_the_deploys_the_watchdog_reads(body: dict, project: bool, folder: bool) -> None:
    per_project, folder_filter = filters([FN, ACT])
    assert matches(per_project["netra-staging"], body) is project
    assert matches(folder_filter, body) is folder


def test_log_names_are_compared_exactly_never_as_substrings() -> None:
    per_project, folder_filter = filters([FN])
    assert per_project["netra-staging"].startswith(f'logName="{ACTIVITY}" AND ')
    assert folder_filter.startswith('log_id("cloudaudit.googleapis.com/activity") AND ')
    for text in (*per_project.values(), folder_filter):
        assert "logName:" not in text
        assert 'protoPayload."@type"="type.googleapis.com/google.cloud.audit.AuditLog"' in text


def test_the_filter_names_exactly_the_methods_the_watchdog_reads() -> None:
    assert sorted(locals_()["sentinel_methods"]) == sorted(METHODS)
    assert resource("google_logging_project_sink", "deploys")["filter"] == "${local.sentinel_filters[each.value]}"
    assert resource("google_logging_folder_sink", "deploys")["filter"] == "${local.sentinel_folder_filter}"


def test_the_watchdogs_own_principals_are_its_function_accounts() -> None:
    principals = locals_()["watchdog_principals"]
    assert "google_service_account.function.email" in principals
    assert "for a in google_service_account.actions : a.email" in principals


@pytest.mark.parametrize("sink", ["google_logging_project_sink", "google_logging_folder_sink"])
def test_the_sinks_write_to_the_events_topic_and_may_only_publish_there(sink: str) -> None:
    assert resource(sink, "deploys")["destination"] == "pubsub.googleapis.com/${google_pubsub_topic.events.id}"
    assert resource("google_logging_project_sink", "deploys")["unique_writer_identity"] is True
    grant = resource("google_pubsub_topic_iam_member", "deploys_sink_publishes")
    assert grant["role"] == "roles/pubsub.publisher"
    assert grant["member"] == "${each.value.writer_identity}"
    assert grant["topic"] == "${google_pubsub_topic.events.name}"
    folder = resource("google_pubsub_topic_iam_member", "deploys_folder_sink_publishes")
    assert folder["topic"] == "${google_pubsub_topic.events.name}"


def test_the_sentinel_is_on_in_warn_mode_by_default_and_off_removes_the_sink() -> None:
    variables = {name: body for item in module()["variable"] for name, body in item.items()}
    assert variables["sentinel"]["default"] == "warn"
    local = locals_()
    assert 'var.sentinel == "off" ? toset([]) : local.watched_projects' in local["sentinel_projects"]
    env = local["function_env"]
    assert env["WATCHDOG_SENTINEL"] == "${var.sentinel}"
    assert env["WATCHDOG_SERVICE_ACCOUNT"] == "${google_service_account.function.email}"
