"""`rollback-watchdog explain`: the decision for an alert, from files or a live (read-only) lookup."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.cloudrun_seeds import revision, service, short
from tests.conftest import BACKEND
from tests.support import fixture, incident_alert, pubsub_body
from watchdog.tools.cli import cli

BACKEND_ALERT = "alerts/incident_backend_startup_metric_threshold.json"
AUTH_ALERT = "alerts/incident_auth_db_timeout_log_match.json"
SEED = fixture("cloudrun/incident_seed.json")


def write(tmp_path, name: str, data) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


@pytest.fixture
def offline(tmp_path):
    """The backend service and its revisions as files, as `gcloud run … --format json` would save them."""
    backend = next(s for s in SEED["services"] if s["name"] == BACKEND)
    revisions = [r for r in SEED["revisions"] if r["service"] == BACKEND]
    revisions.sort(key=lambda r: r["createTime"], reverse=True)
    return {
        "service": write(tmp_path, "service.json", backend),
        "revisions": write(tmp_path, "revisions.json", {"revisions": revisions}),
        "revisions_list": write(tmp_path, "revisions-list.json", revisions),
    }


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, ["explain", *args], env={"WATCHDOG_SERVICES": "", **(env or {})})


def test_explains_the_incident_from_files(tmp_path, offline):
    alert = write(tmp_path, "alert.json", fixture(BACKEND_ALERT))
    result = invoke(
        "--alert", alert, "--service-json", offline["service"], "--revisions-json", offline["revisions"],
        env={"WATCHDOG_SERVICES": "us-central1/netra-backend-staging"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Decision: ROLLBACK (rollback)" in out
    assert "netra-backend-staging-00119-qor changed vpc egress: private-ranges-only → all-traffic" in out
    assert "target: netra-backend-staging-00118-paz" in out
    assert "What changed in netra-backend-staging-00119-qor (egress changes):" in out
    assert "  - vpc egress: private-ranges-only → all-traffic" in out
    assert "nothing was changed" in out
    assert "Same change elsewhere" not in out  # offline: no blast radius


def test_out_of_scope_by_default_and_options_read_the_functions_variables(tmp_path, offline):
    alert = write(tmp_path, "alert.json", fixture(BACKEND_ALERT))
    files = ["--service-json", offline["service"], "--revisions-json", offline["revisions"]]
    result = invoke("--alert", alert, *files)
    assert "Decision: REPORT (out_of_scope)" in result.stdout
    assert "would roll back to netra-backend-staging-00118-paz, but netra-backend-staging is not in" in result.stdout
    dry = invoke("--alert", alert, *files, env={"WATCHDOG_SERVICES": "*", "WATCHDOG_DRY_RUN": "true"})
    assert "Decision: REPORT (dry_run)" in dry.stdout
    network = invoke("--alert", alert, *files, "--services", "*", "--rollback-on", "any")
    assert "Decision: ROLLBACK (rollback)" in network.stdout


def test_json_from_a_pubsub_message_and_a_revision_list(tmp_path, offline):
    alert = write(tmp_path, "message.json", pubsub_body(fixture(BACKEND_ALERT)))
    result = invoke(
        "--alert", alert, "--service-json", offline["service"], "--revisions-json", offline["revisions_list"],
        "--json", "--services", "*",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["alert"]["service"] == "netra-staging/us-central1/netra-backend-staging"
    assert data["alert"]["revision"] == "netra-backend-staging-00119-qor"
    decision = data["decision"]
    assert (decision["action"], decision["reason"]) == ("rollback", "rollback")
    assert (decision["failing"], decision["breaking"], decision["target"]) == (
        "netra-backend-staging-00119-qor",
        "netra-backend-staging-00119-qor",
        "netra-backend-staging-00118-paz",
    )
    assert decision["trigger_changes"] == [
        {"field": "vpc egress", "kind": "egress", "old": "private-ranges-only", "new": "all-traffic"}
    ]
    assert decision["serving"] == {"netra-backend-staging-00119-qor": 100}
    assert data["related"] is None


def test_a_cloudevent_body_and_an_ignored_notification(tmp_path, offline):
    structured = {"specversion": "1.0", "type": "google.cloud.pubsub.topic.v1.messagePublished",
                  "data": pubsub_body(fixture(BACKEND_ALERT))}  # fmt: skip
    files = ["--service-json", offline["service"], "--revisions-json", offline["revisions"]]
    result = invoke("--alert", write(tmp_path, "ce.json", structured), *files, "--json")
    assert json.loads(result.stdout)["decision"]["target"] == "netra-backend-staging-00118-paz"
    test_notification = fixture("alerts/test_notification_version_test.json")
    ignored = invoke("--alert", write(tmp_path, "t.json", test_notification), *files)
    assert ignored.exit_code == 0
    assert ignored.stdout.startswith("Ignored (test_notification)")


def test_live_lookup_reads_every_page_needed_and_shows_the_blast_radius(cloud_run):
    """The change is 130 revisions back (beyond the first page of 100): explain reads on, the second time in
    pages of 1,000 (a fresh listing: a page token is only valid with the page size that made it); never writes."""
    base = 1_758_000_000.0
    history = [revision("netra-api", 1, base - 200 * 3600)]
    history += [revision("netra-api", 2, base - 199 * 3600, egress="ALL_TRAFFIC")]
    image = history[1]["containers"][0]["image"]
    history += [
        revision("netra-api", n, base - (200 - n) * 3600, egress="ALL_TRAFFIC", image=image) for n in range(3, 133)
    ]
    cloud_run.state.load({"services": [service("netra-api", history)], "revisions": history})
    notification = incident_alert("netra-api", started_at=base - 150 * 3600)  # 49 h after the flip
    result = CliRunner().invoke(
        cli,
        ["explain", "--alert", "-", "--json", "--services", "netra-api"],
        input=json.dumps(notification),
        env={"CLOUD_RUN_API_ENDPOINT": cloud_run.url},
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["decision"]["reason"] == "rollback"
    assert data["decision"]["breaking"] == short(history[1])
    assert data["decision"]["target"] == short(history[0])
    assert data["revisions_read"] == 132
    lists = [r for r in cloud_run.state.requests if r["path"].endswith("netra-api/revisions")]
    assert [(r["query"].get("pageSize"), r["query"].get("pageToken")) for r in lists] == [("100", None), ("1000", None)]
    assert {r["method"] for r in cloud_run.state.requests} == {"GET"}
    assert data["related"] == []  # the incident services changed 199 h before: outside the 24 h window


def test_live_explain_of_the_incident_names_the_other_service_with_the_same_flip(cloud_run):
    result = CliRunner().invoke(
        cli,
        ["explain", "--alert", "-", "--services", "netra-auth-service,netra-backend-staging"],
        input=json.dumps(fixture(AUTH_ALERT)),
        env={"CLOUD_RUN_API_ENDPOINT": cloud_run.url},
    )
    assert result.exit_code == 0, result.output
    assert "Decision: ROLLBACK (rollback)" in result.stdout
    assert "Same change elsewhere (last 24 h):" in result.stdout
    assert (
        "netra-backend-staging: netra-backend-staging-00119-qor changed vpc egress: private-ranges-only → "
        "all-traffic (1 min after; in scope): would roll back to netra-backend-staging-00118-paz"
    ) in result.stdout
    assert "PATCH" not in {r["method"] for r in cloud_run.state.requests}


def test_cannot_explain_exits_2(tmp_path, offline):
    alert = write(tmp_path, "alert.json", fixture(BACKEND_ALERT))
    assert invoke("--alert", alert, "--service-json", offline["service"]).exit_code == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = invoke("--alert", str(bad), "--service-json", offline["service"], "--revisions-json", offline["revisions"])
    assert result.exit_code == 2
    assert "is not JSON" in result.output
    gone = CliRunner().invoke(
        cli,
        ["explain", "--alert", write(tmp_path, "gone.json", incident_alert("no-such-service")), "--deadline", "2"],
        env={"CLOUD_RUN_API_ENDPOINT": "http://127.0.0.1:9"},
    )
    assert gone.exit_code == 2
    assert "Cloud Run API" in gone.output


def other(backend: dict, **parts: str) -> dict:
    """The backend service renamed: another service, project or region."""
    where = {"project": "netra-staging", "region": "us-central1", "service": "netra-backend-staging", **parts}
    return {**backend, "name": f"projects/{where['project']}/locations/{where['region']}/services/{where['service']}"}


BACKEND_SERVICE = next(s for s in SEED["services"] if s["name"] == BACKEND)
AUTH_REVISIONS = [r for r in SEED["revisions"] if r["service"].endswith("netra-auth-service")]


@pytest.mark.parametrize(
    ("service", "revisions", "message"),
    [
        pytest.param(other(BACKEND_SERVICE, service="netra-auth-service"), None,
                     "--service-json is about netra-staging/us-central1/netra-auth-service (service "
                     "'netra-auth-service', not 'netra-backend-staging')", id="another service"),
        pytest.param(other(BACKEND_SERVICE, project="netra-prod"), None,
                     "--service-json is about netra-prod/us-central1/netra-backend-staging (project 'netra-prod', "
                     "not 'netra-staging')", id="another project"),
        pytest.param(other(BACKEND_SERVICE, region="europe-west1"), None,
                     "(region 'europe-west1', not 'us-central1')", id="another region"),
        pytest.param({}, None, "--service-json names no service (an empty or partial object)", id="{}"),
        pytest.param({"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": "x"}}, None,
                     "--service-json is the v1 (Knative) shape", id="gcloud's v1 shape"),
        pytest.param(BACKEND_SERVICE, AUTH_REVISIONS,
                     "--revisions-json holds 'projects/netra-staging/locations/us-central1/services/netra-auth-service/"
                     "revisions/", id="revisions of another service"),
    ],
)  # fmt: skip
def test_files_about_another_service_are_refused(tmp_path, offline, service, revisions, message):
    """A decision over another service's files would explain something the watchdog never decides."""
    alert = write(tmp_path, "alert.json", fixture(BACKEND_ALERT))
    files = ["--service-json", write(tmp_path, "other.json", service),
             "--revisions-json", offline["revisions"] if revisions is None else write(tmp_path, "r.json", revisions)]  # fmt: skip
    result = invoke("--alert", alert, *files, "--json")
    assert result.exit_code == 2
    assert message in result.stderr
    assert "the files must be about the alert's service " in result.stderr
    assert result.stdout == ""


def test_the_example_in_the_help_explains_the_staging_incident_from_any_directory(tmp_path, offline):
    from tests.support import PYTHON, ROOT
    from watchdog.tools.explain import EXAMPLES
    from watchdog.tools.install import install

    (tmp_path / "bin").mkdir()
    help_text = CliRunner().invoke(cli, ["explain", "--help"]).stdout
    command = help_text.split("Try it on the staging incident", 1)[1].split("\n", 1)[1]
    args = command.replace("\\\n", " ").split()
    assert args[:2] == ["rollback-watchdog", "explain"]
    for name in ("alert.json", "service.json", "revisions.json"):
        assert str(EXAMPLES / name) in args
    # the examples are the incident as the tests know it
    assert json.loads((EXAMPLES / "alert.json").read_text()) == fixture(BACKEND_ALERT)
    for name in ("service", "revisions"):
        assert json.loads((EXAMPLES / f"{name}.json").read_text()) == json.loads(Path(offline[name]).read_text())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    command = install(tmp_path / "bin", PYTHON, ROOT)  # .venv/bin/rollback-watchdog as `make setup` writes it
    result = subprocess.run([str(command), *args[1:]], cwd=elsewhere, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Decision: ROLLBACK (rollback)" in result.stdout
    assert "  - vpc egress: private-ranges-only → all-traffic" in result.stdout


@pytest.mark.parametrize(
    ("name", "body", "says"),
    [
        pytest.param(
            "deploy entry",
            fixture("deploys/v1_ReplaceService_gcloud_egress_all_traffic.INFERRED.json"),
            [
                "is a Cloud Run deploy (",
                "netra-staging/us-central1/netra-auth-service",
                "explains alerts only",
                "rollback-watchdog check --project netra-staging --region us-central1 --service netra-auth-service",
            ],
            id="deploy-audit-log-entry",
        ),
        pytest.param(
            "deploy entry through Pub/Sub",
            pubsub_body(fixture("deploys/v2_UpdateService_terraform_unpin.INFERRED.json")),
            ["is a Cloud Run deploy (", "explains alerts only", "rollback-watchdog check --project "],
            id="deploy-entry-as-a-push-body",
        ),
        pytest.param(
            "tick",
            pubsub_body({"kind": "rollback_watchdog_tick"}, {"rollback-watchdog-tick": "1"}),
            ["is a verification tick, not an alert"],
            id="tick",
        ),
    ],
)
def test_not_an_alert_is_refused_with_what_judges_it(tmp_path, name, body, says):
    """A deploy's audit-log entry (or a tick) is not an alert: explain says so and exits 2; it used to crash
    with AttributeError (a DeployEvent has no ``reason``)."""
    result = invoke("--alert", write(tmp_path, "entry.json", body))
    assert result.exit_code == 2, result.output
    assert not isinstance(result.exception, AttributeError)
    for words in says:
        assert words in result.output, (name, result.output)
