"""The pre-deploy gate's rules (watchdog/core/precheck.py): two revisions in, a verdict out."""

from __future__ import annotations

import copy

import pytest

from tests.cloudrun_seeds import revision
from tests.support import fixture
from watchdog.core import precheck

NOW = 1_758_000_000.0
SEED = {r["name"].rsplit("/", 1)[-1]: r for r in fixture("cloudrun/incident_seed.json")["revisions"]}
NIC = {"network": "projects/netra-staging/global/networks/staging", "subnetwork": "staging-run"}


def rules(verdict: precheck.Verdict) -> set[str]:
    return {f.rule for f in verdict.findings if f.severity == precheck.FAIL and not f.allowed}


def test_the_incident_deploy_fails_on_the_egress_flip_and_all_traffic_with_cloud_sql():
    verdict = precheck.evaluate(SEED["netra-backend-staging-00118-paz"], SEED["netra-backend-staging-00119-qor"])
    assert not verdict.ok
    assert rules(verdict) == {"egress-flip", "all-traffic-cloud-sql"}
    flip = next(f for f in verdict.findings if f.rule == "egress-flip")
    assert "private-ranges-only → all-traffic" in flip.message
    combo = next(f for f in verdict.findings if f.rule == "all-traffic-cloud-sql")
    assert "netra-staging:us-central1:staging-shared-postgres" in combo.message
    assert "already" not in combo.message


def test_all_traffic_with_cloud_sql_fails_even_when_the_serving_revision_had_it():
    verdict = precheck.evaluate(SEED["netra-auth-service-00042-vex"], SEED["netra-auth-service-00043-nul"])
    assert rules(verdict) == {"all-traffic-cloud-sql"}
    assert "already the case in the serving revision" in verdict.findings[0].message
    assert [str(c) for c in verdict.harmless] == ['container.env.DB_CONNECT_TIMEOUT_SECONDS: unset → "15"']


def test_an_acknowledged_rule_is_reported_but_passes():
    verdict = precheck.evaluate(
        SEED["netra-auth-service-00042-vex"], SEED["netra-auth-service-00043-nul"], allow=["all-traffic-cloud-sql"]
    )
    assert verdict.ok
    assert [(f.rule, f.allowed) for f in verdict.findings] == [("all-traffic-cloud-sql", True)]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"image": "gcr.io/netra-staging/api:v2"}, set()),
        ({"env": {"LOG_LEVEL": "debug"}}, set()),
        ({"egress": "ALL_TRAFFIC", "sql": False}, {"egress-flip"}),
        ({"egress": "ALL_TRAFFIC"}, {"egress-flip", "all-traffic-cloud-sql"}),
        ({"connector": None}, {"connector-removed"}),
        ({"connector": "projects/netra-staging/locations/us-central1/connectors/other"}, {"connector-changed"}),
        ({"interfaces": [NIC]}, {"network-interfaces-added"}),
    ],
)
def test_rules(change, expected):
    base = revision("api", 1, NOW)
    candidate = revision("api", 2, NOW + 60, **{"image": base["containers"][0]["image"], **change})
    verdict = precheck.evaluate(base, candidate)
    assert rules(verdict) == expected
    assert verdict.ok is (not expected)


def test_connector_added_and_network_interfaces_removed_fail():
    base = revision("api", 1, NOW, connector=None, interfaces=[NIC])
    candidate = revision("api", 2, NOW + 60, image=base["containers"][0]["image"])
    assert rules(precheck.evaluate(base, candidate)) == {"connector-added", "network-interfaces-removed"}


def test_a_changed_cloud_sql_instance_is_a_warning_only():
    base = revision("api", 1, NOW)
    candidate = copy.deepcopy(base)
    candidate["volumes"][0]["cloudSqlInstance"]["instances"] = ["netra-staging:us-central1:other"]
    verdict = precheck.evaluate(base, candidate)
    assert verdict.ok
    assert [(f.rule, f.severity) for f in verdict.findings] == [("cloud-sql-instances-changed", precheck.WARN)]


def test_without_a_baseline_only_the_candidates_own_configuration_is_judged():
    assert precheck.evaluate(None, revision("api", 1, NOW)).ok
    verdict = precheck.evaluate(None, revision("api", 1, NOW, egress="ALL_TRAFFIC"))
    assert rules(verdict) == {"all-traffic-cloud-sql"}
    assert verdict.changes == ()
