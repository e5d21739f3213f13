"""Only the real failure triggers a rollback: the detection filters terraform builds, read from terraform/.

The filters are rendered from terraform/alerts.tf and the defaults of terraform/variables.tf
(tests/hcl_expressions.py) for the staging incident's two watched services, then evaluated
(tests/logging_query.py, written against the Logging query language docs) over LogEntry JSON: Cloud
Run's own entries (system log, audit log) and the application's lines carrying the same phrases from
outside (an access log with the phrase as User-Agent, the request log, echoed input on stderr, a
jsonPayload message). Cloud Run's entries match; the application's do not, except the structured field
the application writes on purpose, and the one limit that comes with it (a whole line of echoed JSON).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from tests.hcl_expressions import evaluate, module, resources, scope
from tests.logging_query import Query
from tests.support import FIXTURES, ROOT

TERRAFORM = ROOT / "terraform"
PROJECT = "netra-staging"
WATCHED = {
    f"{PROJECT}/us-central1/{name}": {"name": name, "region": "us-central1", "project": PROJECT}
    for name in ("netra-auth-service", "netra-backend-staging")
}
SHORT = {"netra-auth-service": "auth", "netra-backend-staging": "backend"}


@cache
def filters() -> dict[str, Query]:
    """Every detection filter terraform builds, by resource (and service, for the per-service policies)."""
    names = scope(TERRAFORM, {"watched_here": WATCHED}, {"project_id": PROJECT})
    found = {}
    for metric in ("startup_failures", "db_timeouts", "db_connect_seconds"):
        found[f"metric {metric}"] = evaluate(resources(TERRAFORM, "google_logging_metric")[metric]["filter"], names)
    # the per-service log-match policies: one instance of modules/log_match_policies per signal, which makes a
    # policy of each entry of its services argument, with that entry's filter
    call = {name.strip('"'): body for c in module(TERRAFORM)["module"] for name, body in c.items()}["log_match"]
    policy = resources(TERRAFORM / evaluate(call["source"], {}), "google_monitoring_alert_policy")["per_service"]
    assert policy["conditions"][0]["condition_matched_log"][0]["filter"] == "${each.value.filter}"
    for policy in ("startup_failure_lines", "db_timeout"):
        signal = {"key": policy, "value": names["local"]["log_match_signals"][policy]}
        services = evaluate(call["services"], {**names, "each": signal})
        for key, service in WATCHED.items():
            found[f"{policy}[{SHORT[service['name']]}]"] = services[key]["filter"]
    return {name: Query(text) for name, text in found.items()}


@cache
def entries() -> dict[str, dict]:
    return json.loads(Path(FIXTURES / "logging" / "cloud_run_entries.json").read_text())


STARTUP_AUTH = {"metric startup_failures", "startup_failure_lines[auth]"}
STARTUP_BACKEND = {"metric startup_failures", "startup_failure_lines[backend]"}
DB_AUTH = {"metric db_timeouts", "db_timeout[auth]"}
DB_BACKEND = {"metric db_timeouts", "db_timeout[backend]"}

# entry (tests/fixtures/logging/cloud_run_entries.json) → the filters that match it, exactly
EXPECTED = {
    "system: container exit(3)": STARTUP_BACKEND,
    "system: container exit(1)": STARTUP_AUTH,
    "system: default startup TCP probe failed": STARTUP_AUTH,
    "system: startup HTTP probe failed": STARTUP_BACKEND,
    "system: did not listen on the port": STARTUP_AUTH,
    "audit: revision failed to start": STARTUP_AUTH,
    "system: clean exit(0)": set(),
    "system: a service not watched": set(),
    "system: a service-level line (no revision)": set(),
    "stdout: access log, User-Agent 'Container called exit(1).'": set(),
    "stdout: access log, User-Agent 'STARTUP TCP probe failed'": set(),
    "requests: User-Agent 'Container called exit(1).'": set(),
    "stderr: echoed input in an error": set(),
    "stderr: the incident's free-text timeout line": set(),
    "stdout: echoed input in jsonPayload.message": set(),
    "stdout: echoed input in another field": set(),
    "stdout: the structured DB-connect timeout": DB_AUTH,
    "stderr: the structured DB-connect timeout, CRITICAL": DB_BACKEND,
    "stdout: the structured event at WARNING": set(),
    "stdout: the structured event of a service not watched": set(),
    "system: the structured event in Cloud Run's own log": set(),
    # The limit, stated by a test: Cloud Run's agent parses a stdout line that is a JSON object into a
    # structured entry, so an application that prints a request body as a whole line lets the sender
    # write this field. The application must never do that (README, the application's contract).
    "limit: a whole line of echoed JSON on stdout": DB_AUTH,
    "stdout: a slow DB connect, structured": {"metric db_connect_seconds"},
    "requests: a slow request (no payload)": set(),
}


def test_every_entry_has_an_expectation():
    assert sorted(EXPECTED) == sorted(entries())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_only_cloud_runs_own_entries_and_the_structured_field_match(name):
    entry = entries()[name]
    matched = {filter_name for filter_name, query in filters().items() if query.matches(entry)}
    assert matched == EXPECTED[name]


def test_the_filters_name_their_logs_by_equality():
    """Every detection filter pins its log names with '=' (a ':' on logName is a substring test)."""
    for name, query in filters().items():
        assert "logName=" in query.text, name
        assert "logName:" not in query.text, name
    for name in ("metric startup_failures", "metric db_timeouts", "metric db_connect_seconds"):
        assert "run.googleapis.com%2Frequests" not in filters()[name].text


# The evaluator itself: the rules of the Logging query language it relies on, each with the docs' example.
ENTRY = {
    "logName": "projects/p/logs/run.googleapis.com%2Fstdout",
    "severity": "WARNING",
    "textPayload": "Container called EXIT(1).",
    "resource": {"type": "cloud_run_revision", "labels": {"service_name": "auth", "revision_name": "auth-1"}},
    "jsonPayload": {"event": "db_connect_timeout", "tags": ["a", "b"], "seconds": 14.8},
}

# query → whether ENTRY matches it
LANGUAGE = {
    'textPayload:"container called exit("': True,  # ":" is a case-insensitive substring test
    'textPayload="container called exit(1)."': True,  # "=" ignores letter case too, but is equality
    'textPayload="Container called"': False,
    'logName:"run.googleapis.com%2Fstd"': True,  # the substring test a log name must not rely on
    'logName="projects/p/logs/run.googleapis.com%2Fstd"': False,
    'logName=("projects/p/logs/x" OR "projects/p/logs/run.googleapis.com%2Fstdout")': True,
    "severity>=ERROR": False,
    "severity>=warning": True,
    "severity>DEBUG": True,
    "jsonPayload.missing=x": False,  # a missing field fails every comparison
    "NOT jsonPayload.missing=x": True,  # … so NOT of it succeeds
    "jsonPayload.missing!=x": False,
    "jsonPayload.event:*": True,
    "jsonPayload.missing:*": False,
    "httpRequest.userAgent:*": False,  # a defaulted LogEntry field is not present
    'httpRequest.userAgent=""': True,  # … but compares as its default
    'jsonPayload.tags="b"': True,  # arrays: any member
    "jsonPayload.seconds>10": True,
    # NOT binds tightest, then OR, then AND: a OR NOT b AND NOT c OR d  ==  (a OR (NOT b)) AND ((NOT c) OR d)
    'resource.type="x" OR NOT severity=WARNING AND NOT jsonPayload.event:* OR severity=WARNING': False,
    'resource.type="cloud_run_revision" severity=WARNING': True,  # an omitted operator is AND
    'resource.labels.revision_name:* AND NOT resource.labels.revision_name=""': True,
}


@pytest.mark.parametrize(("query", "expected"), LANGUAGE.items(), ids=list(LANGUAGE))
def test_the_evaluator_follows_the_logging_query_language(query, expected):
    assert Query(query).matches(ENTRY) is expected


def test_or_binds_tighter_than_and():
    """With SQL's precedence this would be True ((a AND b) OR c); in Logging it is a AND (b OR c): False."""
    assert Query('resource.type="x" AND severity=WARNING OR severity=WARNING').matches(ENTRY) is False


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ('"Container called exit(1)."', "global restrictions are not supported"),
        ('textPayload =~ "exit"', "unsupported comparison"),
        ("x=1 and y=2", "search term"),
        ("a:(b", "ends too early"),
    ],
)
def test_what_it_does_not_know_is_refused_not_guessed(query, message):
    with pytest.raises(ValueError, match=message):
        Query(query)


def test_the_old_filter_matched_the_application_s_access_log():
    """Why logName matters: the phrase alone, as the filter had it, matched a User-Agent in an access log."""
    access_log = entries()["stdout: access log, User-Agent 'Container called exit(1).'"]
    assert Query('textPayload:"Container called exit("').matches(access_log)
    assert not filters()["metric startup_failures"].matches(access_log)
