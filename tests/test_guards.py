"""The guards that turn a rollback into a report: which incidents may act, and which policies.

Pure: alerts parsed from notification fixtures (as intake reads them), decided against the incident's
service and revisions.
"""

from __future__ import annotations

import pytest

from tests.support import fixture
from tests.test_decision import alert, config, state
from watchdog.config import Config, ServiceRef, ServiceScope
from watchdog.core import guards
from watchdog.core.decision import REPORT, ROLLBACK, decide
from watchdog.core.intake import Alert, parse_notification

NOW = 1_758_044_614.0
AUTH = ServiceRef("netra-staging", "us-central1", "netra-auth-service")


def _parsed(name: str, **incident) -> Alert:
    payload = fixture(name)
    payload["incident"].update(incident)
    parsed = parse_notification(payload)
    assert isinstance(parsed, Alert), parsed
    return parsed


# name, notification fixture, the resource type intake keeps, whether the incident may act
RESOURCE_CASES = [
    ("Cloud Run metric threshold", "alerts/incident_backend_startup_metric_threshold.json", "cloud_run_revision", True),
    ("Cloud Run log match", "alerts/incident_auth_db_timeout_log_match.json", "cloud_run_revision", True),
    ("labels aggregated away, user labels locate it", "alerts/v1.2_aggregated_labels_policy_user_labels.json",
     "cloud_run_revision", True),
    ("global CPU-absence policy with Cloud Run user labels",
     "alerts/v1.2_absence_global_with_cloud_run_user_labels.json", "global", False),
    ("VM policy with Cloud Run user labels", "alerts/v1.2_vm_cpu_with_cloud_run_user_labels.json", "gce_instance",
     False),
    ("legacy 1.1: no resource at all", "alerts/legacy_v1.1_cloud_run_resource_name.json", "", False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "resource_type", "acts"), [c[1:] for c in RESOURCE_CASES], ids=[c[0] for c in RESOURCE_CASES]
)
def test_only_an_incident_on_cloud_runs_resource_may_act(name, resource_type, acts):
    parsed = _parsed(name)
    assert parsed.resource_type == resource_type
    held = guards.not_cloud_run_incident(parsed)
    assert (held is None) is acts
    if not acts:
        assert held[0] == "not_cloud_run_incident"
        assert "only an incident on Cloud Run's own resource may roll a service back" in held[1]


def test_a_global_incident_on_a_watched_service_is_reported_with_what_it_would_have_done():
    service, revisions = state()
    parsed = Alert(**{**alert(revision="").__dict__, "resource_type": "global", "found_by": "policy user labels"})
    decided = decide(parsed, service, revisions, config(), NOW)
    assert (decided.action, decided.reason) == (REPORT, "not_cloud_run_incident")
    assert decided.would_roll_back
    assert "'global' resource" in decided.detail
    assert decide(alert(revision=""), service, revisions, config(), NOW).action == ROLLBACK  # the control


# name, WATCHDOG_POLICIES, policy display name, condition name (the id), may act
POLICY_CASES = [
    ("no list: any policy", "", "Anything", "projects/p/alertPolicies/9/conditions/1", True),
    ("listed by display name", "Auth DB timeout,Other", "Auth DB timeout", "", True),
    ("listed by full id", "projects/p/alertPolicies/42", "Renamed", "projects/p/alertPolicies/42/conditions/7", True),
    ("listed by bare id", "42", "Renamed", "projects/p/alertPolicies/42/conditions/7", True),
    ("not listed", "Auth DB timeout", "Someone's CPU policy", "projects/p/alertPolicies/9/conditions/1", False),
    ("another policy's id", "43", "Auth DB timeout", "projects/p/alertPolicies/42/conditions/7", False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("policies", "policy_name", "condition", "acts"), [c[1:] for c in POLICY_CASES], ids=[c[0] for c in POLICY_CASES]
)
def test_watchdog_policies_names_the_policies_that_may_act(policies, policy_name, condition, acts):
    parsed = _parsed(
        "alerts/incident_backend_startup_metric_threshold.json",
        policy_name=policy_name,
        condition={"name": condition, "displayName": "c"},
    )
    settings = Config.from_env({"WATCHDOG_POLICIES": policies, "WATCHDOG_SERVICES": "*"})
    held = guards.policy_not_allowed(parsed, settings)
    assert (held is None) is acts
    if not acts:
        assert held[0] == "policy_not_allowed"


def test_the_deploy_time_hold_is_not_an_alert_policy():
    hold = Alert("hold-x", "open", AUTH, "r", policy_name="deploy-time hold (WATCHDOG_SENTINEL=hold)",
                 condition_kind="sentinel")  # fmt: skip
    assert guards.policy_not_allowed(hold, Config(services=ServiceScope.parse("*"), policies=frozenset({"x"}))) is None


@pytest.mark.parametrize(
    ("scope", "projects", "reason"),
    [("*", "", None), ("other", "", "out_of_scope"), ("*", "netra-prod", "project_not_allowed")],
)
def test_outside_scope_needs_only_the_alert(scope, projects, reason):
    settings = Config(services=ServiceScope.parse(scope), projects=frozenset(p for p in [projects] if p))
    held = guards.outside_scope(alert(), settings)
    assert (held[0] if held else None) == reason
