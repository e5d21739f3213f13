"""`rollback-watchdog doctor` against the Monitoring gRPC stand-in, a Pub/Sub IAM stand-in (and pstest),
and the Cloud Run stand-in: what would stop the watchdog acting, with exit codes 0/1/2."""

from __future__ import annotations

import copy
import json

import pytest
from click.testing import CliRunner

from tests.conftest import AUTH, BACKEND
from tests.pubsub_emulator.server import PubSubEmulator
from tests.standins.iam import IamStandIn
from tests.standins.monitoring import MonitoringStandIn
from tests.standins.pubsub_iam import PubSubIamStandIn
from tests.support import free_port
from watchdog.tools import doctor
from watchdog.tools.cli import cli

PROJECT = "netra-staging"
TOPIC = f"projects/{PROJECT}/topics/rollback-watchdog-alerts"
CHANNEL = f"projects/{PROJECT}/notificationChannels/111"
AGENT = "serviceAccount:service-123456789012@gcp-sa-monitoring-notification.iam.gserviceaccount.com"
GRANTED = {"bindings": [{"role": "roles/pubsub.publisher", "members": [AGENT]}]}
THRESHOLD_FILTER = 'resource.type = "cloud_run_revision" AND metric.type = "run.googleapis.com/request_count"'
GOOD_STRATEGY = {"autoClose": "1800s", "notificationPrompts": ["OPENED", "CLOSED"]}


def policy(number: int, display: str, condition: dict, *, strategy: dict | None = None, **extra) -> dict:
    return {
        "name": f"projects/{PROJECT}/alertPolicies/{number}",
        "displayName": display,
        "combiner": "OR",
        "enabled": True,
        "notificationChannels": [CHANNEL],
        "conditions": [{"name": f"projects/{PROJECT}/alertPolicies/{number}/conditions/1", "displayName": display,
                        **condition}],
        "alertStrategy": GOOD_STRATEGY if strategy is None else strategy,
        **extra,
    }  # fmt: skip


def threshold(*aggregations: dict, text: str = THRESHOLD_FILTER) -> dict:
    return {
        "conditionThreshold": {
            "filter": text,
            "comparison": "COMPARISON_GT",
            "thresholdValue": 1,
            "duration": "60s",
            "aggregations": list(aggregations),
        }
    }


def reduced(*fields: str) -> dict:
    return {"alignmentPeriod": "60s", "perSeriesAligner": "ALIGN_RATE", "crossSeriesReducer": "REDUCE_SUM",
            "groupByFields": list(fields)}  # fmt: skip


KEEPS = ("resource.label.service_name", "resource.label.revision_name", "resource.label.location")
GOOD = {
    "notificationChannels": [
        {"name": CHANNEL, "type": "pubsub", "displayName": "Rollback watchdog", "labels": {"topic": TOPIC},
         "enabled": True},
        {"name": f"projects/{PROJECT}/notificationChannels/222", "type": "email", "labels": {"email_address": "a@b.c"}},
    ],
    "alertPolicies": [
        policy(1, "Cloud Run 5xx", threshold(reduced(*KEEPS))),
        policy(2, "DB timeouts in logs", {"conditionMatchedLog": {"filter": 'resource.type="cloud_run_revision"'}},
               strategy={"notificationRateLimit": {"period": "300s"}}),
        policy(3, "Startup failures (PromQL)", {"conditionPrometheusQueryLanguage": {
            "query": "sum by (service_name, location) (rate(run_googleapis_com:container_startup_latencies_count[5m]))",
            "duration": "60s"}}),
        policy(4, "Summed but labelled", threshold(reduced()),
               userLabels={"cloud_run_service": "netra-backend-staging", "cloud_run_region": "us-central1"}),
        {**policy(5, "Elsewhere", threshold(reduced())), "notificationChannels": [f"projects/{PROJECT}/notificationChannels/222"]},
    ],
}  # fmt: skip

BAD_POLICIES = [
    policy(10, "Summed away", threshold(reduced("resource.label.revision_name"))),
    policy(11, "Never closes", threshold(), strategy={}),
    policy(12, "Opens only", threshold(), strategy={"autoClose": "1800s", "notificationPrompts": ["OPENED"]}),
    policy(13, "PromQL sum", {"conditionPrometheusQueryLanguage": {"query": "sum(rate(x[5m]))", "duration": "60s"}}),
    policy(14, "MQL", {"conditionMonitoringQueryLanguage": {
        "query": "fetch cloud_run_revision | metric 'run.googleapis.com/request_count' "
                 "| group_by [resource.revision_name], [sum(val())] | condition val() > 1",
        "duration": "60s"}}),
]  # fmt: skip


@pytest.fixture
def monitoring():
    with MonitoringStandIn(seed=GOOD) as standin:
        yield standin


@pytest.fixture
def iam():
    with PubSubIamStandIn({TOPIC: GRANTED}) as standin:
        yield standin


AUTH_SA = "netra-netra-auth-service@netra-staging.iam.gserviceaccount.com"
BACKEND_SA = "netra-netra-backend-staging@netra-staging.iam.gserviceaccount.com"
EVERYTHING = {
    AUTH: {"run.services.get", "run.services.update"},
    BACKEND: {"run.services.get", "run.services.update"},
    f"projects/-/serviceAccounts/{AUTH_SA}": {"iam.serviceAccounts.actAs"},
    f"projects/-/serviceAccounts/{BACKEND_SA}": {"iam.serviceAccounts.actAs"},
}


@pytest.fixture(autouse=True)
def sa_iam(cloud_run):
    """The IAM stand-in, sharing the Cloud Run stand-in's grants; every doctor run here is pointed at it."""
    with IamStandIn(cloud_run.state) as standin:
        cloud_run.iam_url = standin.url
        yield standin


def run(monitoring, pubsub_host: str, cloud_run, *args: str, **env: str):
    base = {
        "MONITORING_API_ENDPOINT": monitoring.address if monitoring else f"127.0.0.1:{free_port()}",
        "PUBSUB_EMULATOR_HOST": pubsub_host,
        "CLOUD_RUN_API_ENDPOINT": cloud_run.url,
        "IAM_API_ENDPOINT": getattr(cloud_run, "iam_url", ""),
        "WATCHDOG_TOPIC": TOPIC,
        "WATCHDOG_SERVICES": "netra-auth-service,us-central1/netra-backend-staging",
        "WATCHDOG_DRY_RUN": "",
        "WATCHDOG_PAUSED": "",
    }
    return CliRunner().invoke(cli, ["doctor", "--project", PROJECT, "--region", "us-central1", *args],
                              env={**base, **env})  # fmt: skip


def findings(result) -> list[dict]:
    return json.loads(result.stdout)["findings"]


def test_a_healthy_setup_exits_0(monitoring, iam, cloud_run, sa_iam):
    cloud_run.state.granted = copy.deepcopy(EVERYTHING)
    result = run(monitoring, iam.address, cloud_run, "--json", "--project-number", "123456789012",
                 IAM_API_ENDPOINT=sa_iam.url)  # fmt: skip
    assert result.exit_code == 0, result.output
    found = findings(result)
    assert {f["status"] for f in found} == {"ok"}
    assert {f["subject"] for f in found if f["check"] == "policy"} == {
        "Cloud Run 5xx", "DB timeouts in logs", "Startup failures (PromQL)", "Summed but labelled",
    }  # fmt: skip
    assert {f["subject"] for f in found if f["check"] == "service"} == {
        "netra-auth-service",
        "us-central1/netra-backend-staging",
    }
    assert ("GetIamPolicy", {"resource": TOPIC}) in iam.requests
    listed = monitoring.calls("ListAlertPolicies") + monitoring.calls("ListNotificationChannels")
    assert {c["name"] for c in listed} == {f"projects/{PROJECT}"}
    for check in ("service_iam", "runtime_sa_iam", "dry_run"):
        assert {f["subject"] for f in found if f["check"] == check} == {
            "netra-auth-service", "us-central1/netra-backend-staging"}, check  # fmt: skip
    text = run(monitoring, iam.address, cloud_run, IAM_API_ENDPOINT=sa_iam.url)
    assert text.exit_code == 0, text.output
    assert text.stdout.splitlines()[-1] == "doctor: healthy"


def test_problems_exit_1_and_say_what_to_change(monitoring, iam, cloud_run):
    seed = copy.deepcopy(GOOD)
    seed["alertPolicies"] += BAD_POLICIES
    monitoring.seed(seed)
    iam.topics[TOPIC] = {"bindings": [{"role": "roles/pubsub.subscriber", "members": [AGENT]}]}
    result = run(monitoring, iam.address, cloud_run, "--json",
                 WATCHDOG_SERVICES="netra-auth-service,netra-gone,europe-west1/netra-backend-staging")  # fmt: skip
    assert result.exit_code == 1, result.output
    problems = [(f["subject"], f["message"]) for f in findings(result) if f["status"] == "problem"]
    by_subject: dict[str, list[str]] = {}
    for subject, message in problems:
        by_subject.setdefault(subject, []).append(message)
    assert sorted(by_subject["Summed away"]) == [
        "Summed away: REDUCE_SUM without groupByFields drops location: the notification cannot name the region "
        "(group by resource.label.location, or set the policy user label cloud_run_region)",
        "Summed away: REDUCE_SUM without groupByFields drops service_name: the notification cannot name the service "
        "(group by resource.label.service_name, or set the policy user label cloud_run_service)",
    ]
    assert any("no alertStrategy.autoClose" in m for m in by_subject["Never closes"])
    assert by_subject["Opens only"] == ["notificationPrompts ['OPENED'] lack CLOSED: no recovery follow-up"]
    assert any("the aggregation drops service_name" in m for m in by_subject["PromQL sum"])
    assert any("group_by drops service_name" in m for m in by_subject["MQL"])
    assert any("no publisher grant for the Monitoring notification agent" in m for m in by_subject[TOPIC])
    assert by_subject["netra-gone"] == [
        "netra-staging/us-central1/netra-gone does not exist: alerts for it cannot be acted on"
    ]
    assert by_subject["europe-west1/netra-backend-staging"] == [
        "netra-staging/europe-west1/netra-backend-staging does not exist: alerts for it cannot be acted on"
    ]
    for fine in ("Cloud Run 5xx", "DB timeouts in logs", "Startup failures (PromQL)", "Summed but labelled"):
        assert fine not in by_subject


def test_no_channel_for_the_topic_is_a_problem(monitoring, iam, cloud_run):
    seed = copy.deepcopy(GOOD)
    seed["notificationChannels"][0]["labels"]["topic"] = f"projects/{PROJECT}/topics/other"
    monitoring.seed(seed)
    result = run(monitoring, iam.address, cloud_run)
    assert result.exit_code == 1
    assert f"PROBLEM   channel [{TOPIC}]: no pubsub notification channel publishes to {TOPIC}" in result.stdout
    assert monitoring.calls("ListAlertPolicies") == []


def test_a_disabled_channel_and_a_missing_topic_are_problems(monitoring, iam, cloud_run):
    seed = copy.deepcopy(GOOD)
    seed["notificationChannels"][0]["enabled"] = False
    monitoring.seed(seed)
    iam.topics.clear()
    result = run(monitoring, iam.address, cloud_run, "--json")
    assert result.exit_code == 1
    problems = {(f["check"], f["message"]) for f in findings(result) if f["status"] == "problem"}
    assert ("channel", "the channel is disabled: Monitoring sends nothing") in problems
    assert ("topic", "the topic does not exist") in problems


def test_pstest_has_no_iam_api_so_the_grant_is_unchecked_exit_2(monitoring, cloud_run, monkeypatch):
    """The limit, stated: pstest serves Publisher/Subscriber only, so GetIamPolicy is UNIMPLEMENTED there."""
    from google.cloud import pubsub_v1

    with PubSubEmulator() as emulator:
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emulator.host)
        publisher = pubsub_v1.PublisherClient()
        publisher.create_topic(name=TOPIC)
        publisher.transport.close()
        result = run(monitoring, emulator.host, cloud_run, "--json")
    assert result.exit_code == 2, result.output
    statuses = {(f["check"], f["status"]) for f in findings(result)}
    assert ("topic", "ok") in statuses
    assert ("topic_iam", "unchecked") in statuses
    assert "problem" not in {status for _, status in statuses}


def test_an_unreachable_monitoring_api_cannot_be_checked_exit_2(iam, cloud_run):
    result = run(None, iam.address, cloud_run, "--json", "--timeout", "2")
    assert result.exit_code == 2, result.output
    assert [f["check"] for f in findings(result) if f["status"] == "unchecked"] == ["channel"]


def test_configuration_warnings_and_errors(monitoring, iam, cloud_run):
    paused = run(monitoring, iam.address, cloud_run, WATCHDOG_PAUSED="true", WATCHDOG_SERVICES="")
    assert paused.exit_code == 0
    assert "WARNING   config [environment]: WATCHDOG_PAUSED=true: the watchdog only reports" in paused.stdout
    assert "WATCHDOG_SERVICES is empty" in paused.stdout
    broken = run(monitoring, iam.address, cloud_run, WATCHDOG_COOLDOWN_SECONDS="soon")
    assert broken.exit_code == 1
    assert "invalid configuration: WATCHDOG_COOLDOWN_SECONDS: 'soon' is not a number" in broken.stdout


def test_doctor_changes_nothing(monitoring, iam, cloud_run, sa_iam):
    """Reads, permission tests and a validate_only update: the stand-ins' state is untouched."""
    before = copy.deepcopy(cloud_run.state.services)
    run(monitoring, iam.address, cloud_run, IAM_API_ENDPOINT=sa_iam.url)
    assert {name for name, _ in monitoring.requests} == {"ListNotificationChannels", "ListAlertPolicies"}
    assert cloud_run.state.services == before
    assert cloud_run.state.operations == {}
    methods = {(r["method"], r["path"].rsplit(":", 1)[-1] if ":" in r["path"] else "")
               for r in cloud_run.state.requests}  # fmt: skip
    assert methods == {("GET", ""), ("POST", "testIamPermissions"), ("PATCH", "")}
    assert {p["path"] for p in sa_iam.state.requests} == {
        f"/v1/projects/-/serviceAccounts/{AUTH_SA}:testIamPermissions",
        f"/v1/projects/-/serviceAccounts/{BACKEND_SA}:testIamPermissions",
    }


def test_the_dry_run_sends_what_a_rollback_sends(monitoring, iam, cloud_run, sa_iam):
    run(monitoring, iam.address, cloud_run, IAM_API_ENDPOINT=sa_iam.url)
    patches = {r["path"]: r for r in cloud_run.state.requests if r["method"] == "PATCH"}
    backend = patches[f"/v2/{BACKEND}"]
    assert (backend["query"]["updateMask"], backend["query"]["validateOnly"]) == ("traffic,annotations", "true")
    assert set(backend["body"]) == {"etag", "annotations", "traffic"}  # as pin_traffic sends it (name: in the path)
    assert backend["body"]["etag"] == cloud_run.state.services[BACKEND]["etag"]
    assert backend["body"]["traffic"] == [
        {"type": 2, "revision": "netra-backend-staging-00119-qor", "percent": 100}  # enums as ints, like the client
    ]
    [record] = json.loads(backend["body"]["annotations"]["rollback-watchdog/rollbacks"])
    assert record["incident"] == doctor.DOCTOR_INCIDENT


@pytest.mark.parametrize(
    ("granted_away", "check", "message"),
    [
        pytest.param(
            (BACKEND, "run.services.update"),
            "service_iam",
            "the watchdog lacks run.services.update on netra-staging/us-central1/netra-backend-staging: "
            "gcloud run services add-iam-policy-binding netra-backend-staging --region us-central1 --project "
            "netra-staging --member serviceAccount:WATCHDOG_SERVICE_ACCOUNT --role roles/run.developer",
            id="update",
        ),
        pytest.param(
            (f"projects/-/serviceAccounts/{BACKEND_SA}", "iam.serviceAccounts.actAs"),
            "runtime_sa_iam",
            f"the watchdog lacks iam.serviceAccounts.actAs on the runtime service account {BACKEND_SA}; every "
            f"rollback of netra-backend-staging would get a 403: gcloud iam service-accounts add-iam-policy-binding "
            f"{BACKEND_SA} --project netra-staging --member serviceAccount:WATCHDOG_SERVICE_ACCOUNT "
            "--role roles/iam.serviceAccountUser",
            id="actAs",
        ),
    ],
)
def test_a_missing_permission_is_a_problem_with_its_grant(monitoring, iam, cloud_run, sa_iam, granted_away, check,
                                                          message):  # fmt: skip
    granted = copy.deepcopy(EVERYTHING)
    granted[granted_away[0]].discard(granted_away[1])
    cloud_run.state.granted = granted
    result = run(monitoring, iam.address, cloud_run, "--json", IAM_API_ENDPOINT=sa_iam.url)
    assert result.exit_code == 1, result.output
    problems = [(f["check"], f["subject"], f["message"]) for f in findings(result) if f["status"] == "problem"]
    assert (check, "us-central1/netra-backend-staging", message) in problems
    # the validate_only update meets the same grants as a real rollback would: refused, and it says why
    dry_run = [m for c, subject, m in problems if c == "dry_run"]
    assert len(dry_run) == 1
    assert dry_run[0].startswith(f"Cloud Run refused the rollback update: {granted_away[1]}")
    assert "netra-auth-service" not in {subject for _, subject, _ in problems}


def test_what_cannot_be_tested_is_unchecked_never_ok(monitoring, iam, cloud_run):
    """No IAM endpoint next to a local Cloud Run, and a service on the Compute Engine default account."""
    cloud_run.state.services[BACKEND]["template"].pop("serviceAccount")
    result = run(monitoring, iam.address, cloud_run, "--json", IAM_API_ENDPOINT="")
    assert result.exit_code == 2, result.output
    unchecked = {(f["subject"], f["message"]) for f in findings(result) if f["check"] == "runtime_sa_iam"}
    assert unchecked == {
        ("netra-auth-service", f"no IAM endpoint for a local Cloud Run endpoint (IAM_API_ENDPOINT): actAs on "
         f"{AUTH_SA} not tested"),
        ("us-central1/netra-backend-staging", "the service runs as the Compute Engine default service account, "
         "whose email needs the project number: give --project-number"),
    }  # fmt: skip
    assert {f["status"] for f in findings(result) if f["check"] == "runtime_sa_iam"} == {"unchecked"}


def test_policy_rules_on_their_own():
    labelled_filter = threshold(reduced(), text=THRESHOLD_FILTER + ' AND resource.label.service_name = "api" '
                                                                    'AND resource.label.location = "us-central1"')  # fmt: skip
    assert [f.status for f in doctor.policy_findings(policy(1, "pinned", labelled_filter))] == ["ok"]
    gce = doctor.policy_findings(policy(2, "gce", threshold(text='resource.type = "gce_instance"')))
    assert (gce[0].status, gce[0].message) == (
        "warning",
        "gce: about gce_instance resources, not cloud_run_revision: the watchdog ignores it",
    )
    self_policy = doctor.policy_findings(policy(3, "self", threshold(), userLabels={"rollback_watchdog": "self"}))
    assert self_policy[0].status == "problem"
    assert doctor.exit_code([doctor.Finding("x", "unchecked", ""), doctor.Finding("x", "problem", "")]) == 1


def test_the_compute_default_account_is_tested_given_the_project_number(monitoring, iam, cloud_run):
    cloud_run.state.services[BACKEND]["template"].pop("serviceAccount")
    cloud_run.state.granted = copy.deepcopy(EVERYTHING)
    result = run(monitoring, iam.address, cloud_run, "--json", "--project-number", "123456789012")
    assert result.exit_code == 1, result.output
    [finding] = [f for f in findings(result) if f["check"] == "runtime_sa_iam" and f["subject"].endswith("staging")]
    assert finding["status"] == "problem"
    assert "123456789012-compute@developer.gserviceaccount.com" in finding["message"]


def test_with_every_service_in_scope_the_rights_are_unchecked(monitoring, iam, cloud_run):
    result = run(monitoring, iam.address, cloud_run, "--json", WATCHDOG_SERVICES="*")
    assert result.exit_code == 2, result.output
    assert [(f["check"], f["status"]) for f in findings(result) if f["subject"] == "*"] == [
        ("service", "ok"),
        ("dry_run", "unchecked"),
    ]
    assert [r for r in cloud_run.state.requests if r["method"] != "GET"] == []
