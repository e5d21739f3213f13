"""The flows' logic in process (tests/fakes.py): the same flows as the function, without a process or a socket."""

from __future__ import annotations

import copy
import time

from tests.conftest import AUTH
from tests.support import fixture, pubsub_body
from watchdog.core import ledger
from watchdog.core.intake import parse
from watchdog.core.vocabulary import State

HELD_FROM, HELD_TO = "netra-auth-service-00044-new", "netra-auth-service-00041-kip"


def _auth_on_00041(stack) -> dict:
    """The auth service on 00041 (private-ranges-only), and the audit-log entry of the incident's egress flip."""
    state = stack.cloud_run.state
    state.services[AUTH]["traffic"] = [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": HELD_TO,
                                        "percent": 100}]  # fmt: skip
    state._refresh_status(state.services[AUTH])
    event = fixture("deploys/v1_ReplaceService_gcloud_egress_all_traffic.INFERRED.json")
    event["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 5))
    return event


def _deploy_goes_ahead(stack) -> None:
    """The deploy's revision 00044 is created and takes all the traffic."""
    state = stack.cloud_run.state
    good = next(r for r in state.revisions[AUTH] if r["name"].endswith(HELD_TO))
    risky = copy.deepcopy(good)
    risky.update(name=good["name"].replace(HELD_TO, HELD_FROM),
                 createTime=time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()))  # fmt: skip
    risky["vpcAccess"]["egress"] = "ALL_TRAFFIC"
    state.deploy(AUTH, risky)


def test_the_hold_enters_through_the_alert_door(in_process):
    """A deploy-time hold is a rollback like an alert's: it writes the decision metric (one point, the hold's
    incident, rolled back) and registers the service for verification, and the next tick reads its rollback."""
    stack = in_process(WATCHDOG_SENTINEL="hold")
    body = pubsub_body(_auth_on_00041(stack))
    incident = f"hold-{parse(body).key}"
    assert stack.deliver(body)[0] == 500  # warned; its revision does not serve yet: redeliver
    assert stack.metric.written == []  # no decision yet
    _deploy_goes_ahead(stack)

    assert stack.deliver(body) == (200, "OK")  # the redelivery holds it

    assert stack.serving(AUTH) == {HELD_TO: 100}
    record = ledger.find(stack.cloud_run.state.services[AUTH]["annotations"], incident)
    assert (record.from_revision, record.to_revision) == (HELD_FROM, HELD_TO)
    [(alert, outcome)] = stack.metric.written  # the decision metric: one point, the hold's
    assert (alert.incident_id, outcome.result) == (incident, State.ROLLED_BACK)
    ref = alert.service
    assert ref in stack.watchdog.deps.watched.all()  # registered for verification
    stack.cloud_run.state.requests.clear()
    assert stack.deliver(pubsub_body({}, {"rollback-watchdog-tick": "1"})) == (200, "OK")
    reads = [r["path"] for r in stack.cloud_run.state.requests if r["method"] == "GET"]
    assert f"/v2/{AUTH}" in reads  # the tick reads the held service


def test_a_warning_without_a_hold_writes_no_decision_metric(in_process):
    """Only a decision writes the metric: a deploy the sentinel only warns about is not one."""
    stack = in_process()
    body = pubsub_body(_auth_on_00041(stack))
    _deploy_goes_ahead(stack)
    assert stack.deliver(body) == (200, "OK")
    [warning] = stack.messages
    assert "Risky deploy of `netra-auth-service`" in warning["text"]
    assert stack.metric.written == []
    assert stack.traffic_attempts() == []
    assert stack.watchdog.deps.watched.all() == []  # WATCHDOG_SERVICES names no PROJECT/REGION/SERVICE
