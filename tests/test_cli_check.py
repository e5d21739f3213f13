"""`rollback-watchdog check`: the pre-deploy gate against the Cloud Run stand-in (real google-cloud-run client)."""

from __future__ import annotations

import copy
import json

import pytest
from click.testing import CliRunner

from tests.cloudrun_seeds import PARENT, revision, service, short
from tests.conftest import BACKEND
from watchdog.tools.cli import cli

NOW = 1_758_000_000.0


@pytest.fixture
def run(cloud_run):
    def invoke(*args: str) -> object:
        return CliRunner().invoke(cli, ["check", *args], env={"CLOUD_RUN_API_ENDPOINT": cloud_run.url})

    return invoke


def backend(*extra: str) -> list[str]:
    return ["--project", "netra-staging", "--region", "us-central1", "--service", "netra-backend-staging", *extra]


def test_the_incident_revision_fails_naming_the_egress_flip_and_all_traffic_with_cloud_sql(run):
    result = run(*backend())
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "netra-backend-staging-00119-qor (candidate) vs netra-backend-staging-00118-paz" in out
    assert "FAIL egress-flip: VPC egress changes private-ranges-only → all-traffic" in out
    assert "FAIL all-traffic-cloud-sql: egress all-traffic together with Cloud SQL unix sockets" in out
    assert "RISKY: all-traffic-cloud-sql, egress-flip" in out


def test_json_output(run):
    result = run(*backend("--json"))
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["candidate"] == "netra-backend-staging-00119-qor"
    assert data["baseline"] == "netra-backend-staging-00118-paz"
    assert data["ok"] is False
    assert {f["rule"] for f in data["findings"]} == {"egress-flip", "all-traffic-cloud-sql"}
    assert data["changes"] == [
        {"field": "vpc egress", "kind": "egress", "old": "private-ranges-only", "new": "all-traffic"}
    ]


def test_an_image_only_deploy_with_no_traffic_passes(cloud_run, run):
    """CI: deploy --no-traffic, check, then migrate. Compared with the serving revision."""
    first = revision("netra-frontend", 1, NOW - 3600)
    pinned = service("netra-frontend", [first], serving=short(first))  # what `deploy --no-traffic` leaves
    cloud_run.state.load({"services": [pinned], "revisions": [first]})
    second = revision("netra-frontend", 2, NOW, image="gcr.io/netra-staging/netra-frontend:v2")
    cloud_run.state.deploy(f"{PARENT}/services/netra-frontend", second, to_latest=False)

    result = run("--project", "netra-staging", "--region", "us-central1", "--service", "netra-frontend")
    assert result.exit_code == 0, result.output
    assert f"{short(second)} (candidate) vs {short(first)} (serving 100% now)" in result.stdout
    assert (
        "harmless: container.image: gcr.io/netra-staging/netra-frontend:v1 → gcr.io/netra-staging/netra-frontend:v2"
    ) in result.stdout
    assert "OK: no risky change" in result.stdout
    assert "FAIL" not in result.stdout


def test_an_env_only_deploy_on_the_incident_service_needs_the_existing_risk_acknowledged(cloud_run, run):
    serving = next(r for r in cloud_run.state.revisions[BACKEND] if r["name"].endswith("00119-qor"))
    pin = {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": short(serving), "percent": 100}
    assert cloud_run.state.patch_service(BACKEND, ["traffic"], {"traffic": [pin]})[0] == 200  # --no-traffic pins
    candidate = copy.deepcopy(serving)
    candidate["name"] = f"{BACKEND}/revisions/netra-backend-staging-00120-env"
    candidate.pop("createTime", None)
    candidate["containers"][0]["env"].append({"name": "LOG_LEVEL", "value": "debug"})
    cloud_run.state.deploy(BACKEND, candidate, to_latest=False)

    result = run(*backend())
    assert result.exit_code == 1
    assert "00120-env (candidate) vs netra-backend-staging-00119-qor (serving 100% now)" in result.stdout
    assert "already the case in the serving revision" in result.stdout
    assert "egress-flip" not in result.stdout

    acknowledged = run(*backend("--allow", "all-traffic-cloud-sql"))
    assert acknowledged.exit_code == 0, acknowledged.output
    assert "ALLOWED all-traffic-cloud-sql" in acknowledged.stdout
    assert 'harmless: container.env.LOG_LEVEL: unset → "debug"' in acknowledged.stdout


def test_removing_the_connector_fails(cloud_run, run):
    first = revision("netra-worker", 1, NOW - 3600, sql=False)
    cloud_run.state.load({"services": [service("netra-worker", [first], serving=short(first))], "revisions": [first]})
    cloud_run.state.deploy(
        f"{PARENT}/services/netra-worker",
        revision("netra-worker", 2, NOW, sql=False, connector=None, image=first["containers"][0]["image"]),
        to_latest=False,
    )
    result = run("--project", "netra-staging", "--region", "us-central1", "--service", "netra-worker")
    assert result.exit_code == 1
    assert "FAIL connector-removed: Serverless VPC Access connector removed (was staging-connector)" in result.stdout


def test_an_explicit_revision_is_compared_with_the_serving_one(run):
    result = run(*backend("--revision", "netra-backend-staging-00118-paz", "--json"))
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["candidate"] == "netra-backend-staging-00118-paz"
    assert data["baseline"] == "netra-backend-staging-00119-qor"
    assert {f["rule"] for f in data["findings"]} == {"egress-flip"}


def test_cannot_check_exits_2(run):
    missing = run("--project", "netra-staging", "--region", "us-central1", "--service", "no-such-service")
    assert missing.exit_code == 2
    assert "not found" in missing.output
    revision_missing = run(*backend("--revision", "netra-backend-staging-00999-zzz"))
    assert revision_missing.exit_code == 2
    assert "revision netra-backend-staging-00999-zzz not found" in revision_missing.output
    assert run(*backend("--allow", "no-such-rule")).exit_code == 2


def test_check_never_writes(cloud_run, run):
    run(*backend())
    assert {r["method"] for r in cloud_run.state.requests} == {"GET"}
