"""`rollback-watchdog doctor` against the Monitoring gRPC stand-in, a Pub/Sub IAM stand-in (and pstest),
the Cloud Functions, IAM and Cloud Run stand-ins: what would stop the watchdog acting, with exit codes 0/1/2.

The rights are terraform's (tests/standins/iam.py), and the doctor proves them as the function's service
account: it impersonates it with the operator's credentials (an authorized_user file whose tokens come from the
IAM stand-in), and the stand-ins answer each call for the identity whose token it carries.
"""

from __future__ import annotations

import copy
import json

import pytest
from click.testing import CliRunner

from tests.conftest import BACKEND, deployment
from tests.pubsub_emulator.server import PubSubEmulator
from tests.standins import iam as grants
from tests.standins.functions import FunctionsStandIn, as_deployed
from tests.standins.iam import IamStandIn, operator_credentials
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
WATCHED = "netra-staging/us-central1/netra-auth-service,netra-staging/us-central1/netra-backend-staging"
OPERATOR = "oncall-operator@netra-staging.iam.gserviceaccount.com"  # who runs the doctor
OPERATE = "google_cloud_run_v2_service_iam_member.function_operates_watched"
ACT_AS = "google_service_account_iam_member.function_acts_as_runtime"


@pytest.fixture(autouse=True)
def deployed(cloud_run, tmp_path):
    """As deployed: terraform's grants on the Cloud Run and IAM stand-ins, the function on the Cloud Functions
    stand-in, and an operator who may impersonate the function's account (and nothing more)."""
    policy = grants.deployed(deployment(WATCHED))
    policy.grant(
        f"serviceAccount:{OPERATOR}", "roles/iam.serviceAccountTokenCreator", f"projects/-/serviceAccounts/{grants.FN}"
    )
    cloud_run.state.policy = policy
    with IamStandIn(cloud_run.state) as iam_standin, FunctionsStandIn([as_deployed(WATCHED, grants.FN)]) as functions:
        cloud_run.iam_url = iam_standin.url
        cloud_run.functions_url = functions.url
        cloud_run.adc = operator_credentials(tmp_path / "adc.json", iam_standin.url, OPERATOR)
        yield iam_standin


@pytest.fixture
def sa_iam(deployed):
    return deployed


def run(monitoring, pubsub_host: str, cloud_run, *args: str, **env: str):
    base = {
        "MONITORING_API_ENDPOINT": monitoring.address if monitoring else f"127.0.0.1:{free_port()}",
        "PUBSUB_EMULATOR_HOST": pubsub_host,
        "CLOUD_RUN_API_ENDPOINT": cloud_run.url,
        "IAM_API_ENDPOINT": getattr(cloud_run, "iam_url", ""),
        "CLOUD_FUNCTIONS_API_ENDPOINT": getattr(cloud_run, "functions_url", ""),
        "GOOGLE_APPLICATION_CREDENTIALS": getattr(cloud_run, "adc", ""),
        "WATCHDOG_TOPIC": TOPIC,
        "WATCHDOG_SERVICES": "",  # the deployed function's list, unless a test gives one
        "WATCHDOG_DRY_RUN": "",
        "WATCHDOG_PAUSED": "",
    }
    return CliRunner().invoke(cli, ["doctor", "--project", PROJECT, "--region", "us-central1", *args],
                              env={**base, **env})  # fmt: skip


def findings(result) -> list[dict]:
    return json.loads(result.stdout)["findings"]


def test_a_healthy_setup_exits_0(monitoring, iam, cloud_run, sa_iam, slack):
    from tests.standins.slack import TOKEN

    result = run(monitoring, iam.address, cloud_run, "--json", "--project-number", "123456789012",
                 IAM_API_ENDPOINT=sa_iam.url, SLACK_BOT_TOKEN=TOKEN, SLACK_CHANNEL="C0ONCALL",
                 SLACK_API_URL=slack.api_url)  # fmt: skip
    assert result.exit_code == 0, result.output
    found = findings(result)
    assert {f["status"] for f in found} == {"ok"}
    assert {f["subject"] for f in found if f["check"] == "policy"} == {
        "Cloud Run 5xx", "DB timeouts in logs", "Startup failures (PromQL)", "Summed but labelled",
    }  # fmt: skip
    # the services the deployed function watches, proven as its service account, which the doctor names
    assert {f["subject"] for f in found if f["check"] == "service"} == set(WATCHED.split(","))
    [identity] = [f for f in found if f["check"] == "identity"]
    assert identity["message"] == (
        f"rights proven as {grants.FN} (the service account of the deployed function "
        f"projects/{PROJECT}/locations/us-central1/functions/rollback-watchdog), impersonated"
    )
    assert {r["caller"] for r in cloud_run.state.requests} == {grants.FN}  # never the operator's rights
    assert cloud_run.state.policy.denied() == []
    assert ("GetIamPolicy", {"resource": TOPIC}) in iam.requests
    listed = monitoring.calls("ListAlertPolicies") + monitoring.calls("ListNotificationChannels")
    assert {c["name"] for c in listed} == {f"projects/{PROJECT}"}
    for check in ("service_iam", "runtime_sa_iam", "dry_run"):
        assert {f["subject"] for f in found if f["check"] == check} == set(WATCHED.split(",")), check
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
    # As the function: a service it holds no grant on answers 403, whether or not it exists
    for subject, name in (("netra-gone", "us-central1/netra-gone"),
                          ("europe-west1/netra-backend-staging", "europe-west1/netra-backend-staging")):  # fmt: skip
        [message] = by_subject[subject]
        assert message.startswith(
            f"the watchdog may not read netra-staging/{name} (403: it does not exist, or {grants.FN} lacks "
            "run.services.get on it): alerts for it cannot be acted on"
        ), message
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
    with FunctionsStandIn([as_deployed("", grants.FN)]) as empty:  # a deployed function that watches nothing
        paused = run(monitoring, iam.address, cloud_run, WATCHDOG_PAUSED="true", CLOUD_FUNCTIONS_API_ENDPOINT=empty.url)
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
        "/token",  # the operator's own token (Application Default Credentials)
        f"/v1/projects/-/serviceAccounts/{grants.FN}:generateAccessToken",  # the function's, for the checks
        f"/v1/projects/-/serviceAccounts/{AUTH_SA}:testIamPermissions",
        f"/v1/projects/-/serviceAccounts/{BACKEND_SA}:testIamPermissions",
    }
    assert {p["caller"] for p in sa_iam.state.requests if "testIamPermissions" in p["path"]} == {grants.FN}


def test_the_dry_run_sends_what_a_rollback_sends(monitoring, iam, cloud_run, sa_iam):
    run(monitoring, iam.address, cloud_run, IAM_API_ENDPOINT=sa_iam.url)
    patches = [r for r in cloud_run.state.requests if r["method"] == "PATCH" and r["path"] == f"/v2/{BACKEND}"]
    [backend] = [p for p in patches if p["query"]["updateMask"] == "traffic,annotations"]
    assert (backend["query"]["updateMask"], backend["query"]["validateOnly"]) == ("traffic,annotations", "true")
    assert set(backend["body"]) == {"etag", "annotations", "traffic"}  # as start_pin sends it (name: in the path)
    assert backend["body"]["etag"] == cloud_run.state.services[BACKEND]["etag"]
    assert backend["body"]["traffic"] == [
        {"type": 2, "revision": "netra-backend-staging-00119-qor", "percent": 100}  # enums as ints, like the client
    ]
    [record] = json.loads(backend["body"]["annotations"]["rollback-watchdog/rollbacks"])
    assert record["incident"] == doctor.DOCTOR_INCIDENT
    # and the field revert's own update, validated too: a new revision at 0% behind a tag, images by digest
    [revert] = [p for p in patches if p["query"]["updateMask"] == "template,traffic,annotations"]
    assert revert["query"]["validateOnly"] == "true"
    assert "@sha256:" in revert["body"]["template"]["containers"][0]["image"]
    assert {t.get("tag") for t in revert["body"]["traffic"]} >= {"watchdog-revert"}
    assert len(cloud_run.state.revisions[BACKEND]) == 2  # nothing was created


BACKEND_FULL = "netra-staging/us-central1/netra-backend-staging"


@pytest.mark.parametrize(
    ("revoked", "check", "message"),
    [
        pytest.param(
            ("run.services.update", f"{OPERATE}['{BACKEND_FULL}']"),
            "service_iam",
            f"the watchdog lacks run.services.update on {BACKEND_FULL}: gcloud run services add-iam-policy-binding "
            f"netra-backend-staging --region us-central1 --project netra-staging --member serviceAccount:{grants.FN} "
            "--role roles/run.developer",
            id="update",
        ),
        pytest.param(
            ("iam.serviceAccounts.actAs", f"{ACT_AS}['{BACKEND_SA}']"),
            "runtime_sa_iam",
            f"the watchdog lacks iam.serviceAccounts.actAs on the runtime service account {BACKEND_SA}; every "
            f"rollback of netra-backend-staging would get a 403: gcloud iam service-accounts add-iam-policy-binding "
            f"{BACKEND_SA} --project netra-staging --member serviceAccount:{grants.FN} "
            "--role roles/iam.serviceAccountUser",
            id="actAs",
        ),
    ],
)
def test_a_missing_grant_is_a_problem_with_its_grant(monitoring, iam, cloud_run, sa_iam, revoked, check, message):
    """One grant removed from what terraform makes: the doctor, acting as the function, finds it and says how."""
    cloud_run.state.policy.revoke(*revoked)
    result = run(monitoring, iam.address, cloud_run, "--json", IAM_API_ENDPOINT=sa_iam.url)
    assert result.exit_code == 1, result.output
    problems = [(f["check"], f["subject"], f["message"]) for f in findings(result) if f["status"] == "problem"]
    assert (check, BACKEND_FULL, message) in problems
    # the validate_only update meets the same grants as a real rollback would: refused, and it says why
    dry_run = [m for c, subject, m in problems if c == "dry_run"]
    assert len(dry_run) == 1
    assert dry_run[0].startswith(f"Cloud Run refused the rollback update: {revoked[0]}")
    assert "netra-staging/us-central1/netra-auth-service" not in {subject for _, subject, _ in problems}


def test_the_operators_own_rights_are_never_what_is_proven(monitoring, iam, cloud_run, sa_iam):
    """Without roles/iam.serviceAccountTokenCreator on the function's account the doctor cannot act as it, and
    then proves nothing (the operator's own rights would say nothing about the function's)."""
    cloud_run.state.policy.bindings = [b for b in cloud_run.state.policy.bindings if not b.source.startswith("test")]
    result = run(monitoring, iam.address, cloud_run, "--json", IAM_API_ENDPOINT=sa_iam.url)
    assert result.exit_code == 2, result.output
    [identity] = [f for f in findings(result) if f["check"] == "identity"]
    assert identity["status"] == "unchecked"
    assert identity["message"].startswith(f"could not act as {grants.FN} to prove its rights: RefreshError")
    assert (
        f"roles/iam.serviceAccountTokenCreator on it: gcloud iam service-accounts add-iam-policy-binding {grants.FN}"
        in (identity["message"])
    )
    assert not {"service_iam", "runtime_sa_iam", "dry_run"} & {f["check"] for f in findings(result)}
    assert cloud_run.state.requests == []


def test_as_proves_the_rights_of_the_account_it_names(monitoring, iam, cloud_run, sa_iam):
    """--as the buttons' account: what terraform grants it (get, update, actAs) is proven for it."""
    cloud_run.state.policy.grant(f"serviceAccount:{OPERATOR}", "roles/iam.serviceAccountTokenCreator",
                                 f"projects/-/serviceAccounts/{grants.ACT}")  # fmt: skip
    result = run(monitoring, iam.address, cloud_run, "--json", "--as", grants.ACT, IAM_API_ENDPOINT=sa_iam.url)
    found = findings(result)
    [identity] = [f for f in found if f["check"] == "identity"]
    assert identity["message"] == f"rights proven as {grants.ACT} (--as), impersonated"
    assert {f["status"] for f in found if f["check"] in ("service_iam", "runtime_sa_iam", "dry_run")} == {"ok"}
    assert {r["caller"] for r in cloud_run.state.requests if ":testIamPermissions" in r["path"]} == {grants.ACT}


# what the doctor is given: (env, the finding that says what is not known)
UNKNOWN = {
    "no deployed function and no --services": (
        {"CLOUD_FUNCTIONS_API_ENDPOINT": "DOWN"},
        ("services", "which services are watched is not known: the deployed function rollback-watchdog could not be "
         "read (Cloud Functions API at 127.0.0.1:{port} is unreachable: connection refused); give --services, or "
         "--function"),
    ),
    "--services but no deployed function to say whose rights": (
        {"CLOUD_FUNCTIONS_API_ENDPOINT": "DOWN", "WATCHDOG_SERVICES": WATCHED},
        ("identity", "whose rights to prove is not known: the deployed function rollback-watchdog could not be read "
         "(Cloud Functions API at 127.0.0.1:{port} is unreachable: connection refused); give --as EMAIL"),
    ),
    "a function that is not deployed": (
        {"WATCHDOG_FUNCTION": "other-watchdog"},
        ("services", "which services are watched is not known: the deployed function other-watchdog could not be "
         "read (HTTP 404: Resource 'projects/netra-staging/locations/us-central1/functions/other-watchdog' was not "
         "found); give --services, or --function"),
    ),
}  # fmt: skip


@pytest.mark.parametrize(("env", "expected"), UNKNOWN.values(), ids=UNKNOWN.keys())
def test_what_is_not_known_is_said_and_exit_2(monitoring, iam, cloud_run, sa_iam, env, expected):
    port = free_port()
    env = {k: (f"http://127.0.0.1:{port}" if v == "DOWN" else v) for k, v in env.items()}
    result = run(monitoring, iam.address, cloud_run, "--json", IAM_API_ENDPOINT=sa_iam.url, **env)
    assert result.exit_code == 2, result.output
    check, message = expected
    assert (check, "unchecked", message.format(port=port)) in [
        (f["check"], f["status"], f["message"]) for f in findings(result)
    ]
    assert not {"service_iam", "runtime_sa_iam", "dry_run"} & {f["check"] for f in findings(result)}
    assert "WATCHDOG_SERVICES is empty" not in result.stdout  # not known is not empty


def test_what_cannot_be_tested_is_unchecked_never_ok(monitoring, iam, cloud_run, sa_iam):
    """No IAM endpoint next to a local Cloud Run (nobody to impersonate through), and a service on the Compute
    Engine default account without the project number."""
    no_iam = run(monitoring, iam.address, cloud_run, "--json", IAM_API_ENDPOINT="")
    assert no_iam.exit_code == 2, no_iam.output
    [identity] = [f for f in findings(no_iam) if f["check"] == "identity"]
    assert (identity["status"], identity["message"]) == (
        "unchecked",
        f"could not act as {grants.FN} to prove its rights: no IAM endpoint (IAM_API_ENDPOINT) for a local Cloud "
        "Run endpoint",
    )
    cloud_run.state.services[BACKEND]["template"].pop("serviceAccount")
    result = run(monitoring, iam.address, cloud_run, "--json", IAM_API_ENDPOINT=sa_iam.url)
    assert result.exit_code == 2, result.output
    unchecked = {(f["subject"], f["message"]) for f in findings(result) if f["check"] == "runtime_sa_iam"
                 and f["status"] == "unchecked"}  # fmt: skip
    assert unchecked == {
        (BACKEND_FULL, "the service runs as the Compute Engine default service account, whose email needs the "
         "project number: give --project-number"),
    }  # fmt: skip


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


def test_a_runtime_account_given_to_terraform_that_the_service_does_not_run_as_is_found(
    monitoring, iam, cloud_run, sa_iam
):
    """The runtime account is a terraform input now: deployed with the backend's own account while the service
    runs as the Compute Engine default one, a rollback would get a 403, and the doctor says so."""
    cloud_run.state.services[BACKEND]["template"].pop("serviceAccount")
    result = run(monitoring, iam.address, cloud_run, "--json", "--project-number", grants.PROJECT_NUMBER,
                 IAM_API_ENDPOINT=sa_iam.url)  # fmt: skip
    assert result.exit_code == 1, result.output
    [finding] = [f for f in findings(result) if f["check"] == "runtime_sa_iam" and f["subject"] == BACKEND_FULL]
    assert finding["status"] == "problem"
    assert f"{grants.PROJECT_NUMBER}-compute@developer.gserviceaccount.com" in finding["message"]


def test_with_every_service_in_scope_the_rights_are_unchecked(monitoring, iam, cloud_run):
    result = run(monitoring, iam.address, cloud_run, "--json", WATCHDOG_SERVICES="*")
    assert result.exit_code == 2, result.output
    assert [(f["check"], f["status"]) for f in findings(result) if f["subject"] == "*"] == [
        ("service", "ok"),
        ("dry_run", "unchecked"),
    ]
    assert [r for r in cloud_run.state.requests if r["method"] != "GET"] == []


@pytest.mark.parametrize(
    ("installed", "status", "says"),
    [(None, "ok", "the bot token has every scope of the app manifest"),
     (frozenset({"chat:write", "channels:history", "groups:history", "users:read"}), "problem",
      "the bot token lacks usergroups:read")],
    ids=["installed from the manifest", "installed without one scope"],
)  # fmt: skip
def test_doctor_proves_the_bot_has_every_scope_of_the_manifest(installed, status, says):
    """Slack states a token's scopes on every answer (x-oauth-scopes): the doctor compares them with the manifest."""
    from tests.standins.slack import TOKEN, SlackStandIn
    from watchdog.tools.doctor import _slack_scopes

    with SlackStandIn(scopes=installed) as slack:
        [finding] = _slack_scopes({"SLACK_BOT_TOKEN": TOKEN, "SLACK_API_URL": slack.api_url}, 5, lambda _t: None)
    assert (finding.check, finding.status) == ("slack_scopes", status)
    assert says in finding.message


def test_doctor_without_a_bot_token_says_the_scopes_were_not_checked():
    from watchdog.tools.doctor import _slack_scopes

    [finding] = _slack_scopes({}, 5, lambda _t: None)
    assert (finding.check, finding.status) == ("slack_scopes", "warning")
    assert "were not checked" in finding.message
