"""IAM as deployed, both ways: every flow runs under exactly the grants terraform/ makes, needs no other, and
uses each of them.

One deployment as terraform writes it (WATCHDOG_SERVICES fully qualified), four function processes as
terraform deploys them: the alert function (handle_alert), the events function (handle_events: deploy events
and ticks), the drill function, all as the functions' service account, and the buttons' function
(slack_actions) as its own. Every flow runs once: an alert's rollback (with the blast-radius look and the
decision metric), a deploy event of a watched service, a verification tick (on the events function, for a
rollback the alert function made), a button's field revert and undo, a drill. The stand-ins record every permission check
(tests/standins/iam.py), so the census can say:

- a call the grants refused: a flow needs a permission terraform does not grant (demonstrated below by
  removing one grant);
- a grant no call used: terraform grants more than the flows need. Grants the platform uses, not the code
  (the Slack secrets, read by Cloud Functions as the runtime account at instance start; run.invoker for the
  push subscriptions) are checked against the wiring instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from tests.conftest import BACKEND
from tests.standins import iam
from tests.standins.monitoring import MonitoringStandIn
from tests.standins.slack import block_actions, interaction, user
from tests.support import PYTHON, ROOT, FunctionProcess, deliver, fixture, post, pubsub_body
from tests.terraform.test_wiring import block, resources
from watchdog.core import ledger

pytestmark = pytest.mark.e2e

WATCHED = "netra-staging/us-central1/netra-auth-service,netra-staging/us-central1/netra-backend-staging"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BUTTONS = {"SLACK_SIGNING_SECRET": SECRET, "WATCHDOG_SLACK_TEAM": "T0WATCH", "WATCHDOG_SLACK_APPROVERS": "U0ONCALL"}
BACKEND_ALERT = "alerts/incident_backend_startup_metric_threshold.json"
DEPLOY = "deploys/v1_ReplaceService_gcloud_egress_all_traffic.INFERRED.json"
RESTORED = "netra-backend-staging-00118-paz"
PROBES = "run.googleapis.com/container/completed_probe_count"
TICK = {"rollback-watchdog-tick": "1"}

# Grants the platform uses rather than the code; each is checked against the wiring below.
PLATFORM = {"roles/secretmanager.secretAccessor"}


@pytest.fixture
def monitoring():
    with MonitoringStandIn() as standin:
        yield standin


def _healthy_restored(monitoring, at: float) -> None:
    stamp = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
    monitoring.store.add({
        "metric": {"type": PROBES, "labels": {"is_healthy": "true", "probe_type": "Startup"}},
        "resource": {"type": "cloud_run_revision", "labels": {
            "project_id": "netra-staging", "service_name": "netra-backend-staging", "location": "us-central1",
            "revision_name": RESTORED, "configuration_name": "netra-backend-staging"}},
        "metricKind": "DELTA", "valueType": "INT64",
        "points": [{"interval": {"startTime": stamp(t - 60), "endTime": stamp(t)}, "value": {"int64Value": "2"}}
                   for t in (at + 60, at + 120)],
    })  # fmt: skip


def _age_the_rollback(stack, minutes: float) -> float:
    with stack.cloud_run.state.lock:
        service = stack.cloud_run.state.services[BACKEND]
        items = json.loads(service["annotations"][ledger.ROLLBACKS_KEY])
        at = time.time() - minutes * 60
        items[-1]["at"], items[-1]["alert_at"] = at, at - 60
        service["annotations"][ledger.ROLLBACKS_KEY] = json.dumps(items)
    return at


def run_every_flow(stack, monitoring, tmp_path) -> dict[str, set[str]]:
    """Each flow once, in its own function process; returns the permissions each identity was checked for."""
    # the alert function: a rollback, the blast-radius look after it, the decision metric
    assert deliver(stack.function.url, pubsub_body(fixture(BACKEND_ALERT))) == (200, "OK")
    assert stack.serving(BACKEND) == {RESTORED: 100}
    with FunctionProcess(stack.function.env, target="handle_events", log_path=tmp_path / "events.log") as events:
        # a deploy of a watched service, warned about and remembered in its ledger
        assert deliver(events.url, pubsub_body(fixture(DEPLOY))) == (200, "OK")
        # the tick, on the events function, verifies the rollback the alert function made
        _healthy_restored(monitoring, _age_the_rollback(stack, 14))
        assert deliver(events.url, pubsub_body(b"tick", attributes=TICK)) == (200, "OK")
        assert ledger.records(stack.cloud_run.state.services[BACKEND]["annotations"])[-1].state == "recovered"
    # the buttons, as their own account: undo
    stack.slack.state.users["U0ONCALL"] = user("U0ONCALL")
    env = stack.env_as(iam.ACT, **BUTTONS)
    with FunctionProcess(env, target="slack_actions", signature="http", log_path=tmp_path / "actions.log") as buttons:
        [card] = [m for m in stack.messages if any(b["type"] == "actions" for b in m.get("blocks", []))]
        # the pin changed nothing but the egress: the card offers the field revert; then undo
        for action in ("revert_field", "undo_rollback"):
            body, headers = interaction(SECRET, block_actions(card, action, "U0ONCALL", "T0WATCH"))
            assert post(buttons.url, body, headers)[0] == 200
    undone = stack.cloud_run.state.read_service(BACKEND)  # an update nobody polled finishes on the next read
    assert [(t["revision"], t["percent"]) for t in undone["trafficStatuses"]] == [
        ("netra-backend-staging-00119-qor", 100)
    ]
    # a drill, through the drill function
    with FunctionProcess(stack.function.env, target="drill", signature="http", log_path=tmp_path / "drill.log") as d:
        drilled = subprocess.run(
            [PYTHON, "-m", "watchdog", "drill", "--project", "netra-staging", "--region", "us-central1",
             "--service", "netra-auth-service", "--url", d.url],
            cwd=ROOT, env={**os.environ, "WATCHDOG_SERVICES": WATCHED, "CLOUD_RUN_API_ENDPOINT": stack.cloud_run.url},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert drilled.returncode == 0, drilled.stderr
    checked: dict[str, set[str]] = {}
    for check in stack.grants.checks:
        checked.setdefault(check.identity, set()).add(check.permission)
    return checked


def test_every_flow_runs_under_terraforms_grants_and_uses_each_of_them(start_stack, monitoring, tmp_path):
    stack = start_stack(MONITORING_API_ENDPOINT=monitoring.address, WATCHDOG_SERVICES=WATCHED,
                        WATCHDOG_VERIFY_MINUTES="10", WATCHDOG_DEADLINE_SECONDS="20", **BUTTONS)  # fmt: skip
    checked = run_every_flow(stack, monitoring, tmp_path)

    assert stack.denied() == [], "a flow needs a permission terraform/ does not grant"
    unused = [u for u in stack.grants.unused([iam.FN, iam.ACT]) if u.rsplit(": ", 1)[-1] not in PLATFORM]
    assert unused == [], "terraform/ grants what no flow uses"
    # each identity called with its own grants only: the buttons never with the functions' account's, and back
    assert set(checked) == {iam.FN, iam.ACT}
    assert checked[iam.ACT] == {
        "run.services.get",
        "run.services.update",
        "iam.serviceAccounts.actAs",
        "run.revisions.get",
        "run.revisions.list",
    }  # the card, rendered from the revisions
    assert {"monitoring.timeSeries.create", "monitoring.timeSeries.list", "run.operations.get",
            "run.revisions.get", "run.services.list"} <= checked[iam.FN]  # fmt: skip
    for process in ("function-0.log", "events.log", "actions.log", "drill.log"):
        lines = [json.loads(x) for x in (tmp_path / process).read_text().splitlines() if x.startswith("{")]
        assert [x for x in lines if x.get("severity") == "ERROR"] == [], process


def test_a_flow_that_needs_a_grant_terraform_does_not_make_is_refused(start_stack, tmp_path):
    """One permission removed from what terraform grants (the reader role's run.operations.get): the rollback's
    operation can no longer be polled, the stand-in refuses it as Cloud Run does, and the census sees it."""
    stack = start_stack(WATCHDOG_SERVICES=WATCHED, WATCHDOG_DEADLINE_SECONDS="20")
    stack.grants.revoke("run.operations.get", "google_project_iam_member.function_reads")
    assert deliver(stack.function.url, pubsub_body(fixture(BACKEND_ALERT)))[0] in (200, 500)
    refused = {(c.identity, c.permission) for c in stack.denied()}
    assert (iam.FN, "run.operations.get") in refused
    polls = [r for r in stack.cloud_run.state.requests if "/operations/" in r["path"]]
    assert polls
    assert {r["status"] for r in polls} == {403}


def test_the_grants_the_platform_uses_are_wired_to_what_uses_them() -> None:
    """A secret grant serves a function that runs as its member and reads that secret; an invoker grant serves
    a push subscription that authenticates as its member to that function."""
    # the functions as deployed (one map of entries, function.tf), with the buttons and a webhook secret
    deployment = iam.staging(
        [("netra-staging", "us-central1", "netra-backend-staging", None)], slack_webhook_url_secret="hook"
    )
    reads = {
        (f"serviceAccount:{fn['service_account']}", secret)
        for fn in iam.functions(deployment).values()
        for secret in fn["secrets"].values()
    }
    grants = [b for b in iam.deployed(deployment).bindings if b.role == "roles/secretmanager.secretAccessor"]
    assert {b.source.split("[")[0] for b in grants} == {
        f"google_secret_manager_secret_iam_member.{name}"
        for name in resources("google_secret_manager_secret_iam_member")
    }
    for grant in grants:
        assert (grant.member, grant.resource) in reads, grant.source
    pushes = resources("google_pubsub_subscription")
    invoked = {
        (f"serviceAccount:{block(p, 'push_config', 'oidc_token')['service_account_email']}",
         block(p, "push_config")["push_endpoint"].replace(".uri}", ".service}"))
        for p in pushes.values() if "push_config" in p
    }  # fmt: skip
    for name, grant in resources("google_cloud_run_v2_service_iam_member").items():
        if grant["role"] != "roles/run.invoker" or grant["member"] in ("allUsers", "${each.value}"):
            continue  # the buttons (Slack, signature-checked) and the drill invokers (people)
        assert (grant["member"], grant["name"]) in invoked, name


def test_the_parser_refuses_what_it_does_not_model() -> None:
    """A local it does not know the text of, or a for_each it cannot evaluate, is an error, never a guess."""
    from tests.standins.iam import FOR_EACH, LOCALS, NotUnderstood

    saved = LOCALS["watched_projects"]
    LOCALS["watched_projects"] = ("${toset([for s in local.watched : s.region])}", saved[1])
    try:
        with pytest.raises(NotUnderstood, match=r"changed local\.watched_projects"):
            iam.deployed(iam.staging([("netra-staging", "us-central1", "api", None)]))
    finally:
        LOCALS["watched_projects"] = saved
    saved_each = FOR_EACH.pop("${local.watched}")
    try:
        with pytest.raises(NotUnderstood, match="is not modelled"):
            iam.deployed(iam.staging([("netra-staging", "us-central1", "api", None)]))
    finally:
        FOR_EACH["${local.watched}"] = saved_each
