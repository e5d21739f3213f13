"""The card's buttons through the real ``slack_actions`` HTTP function: signed, authorized, idempotent."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest

from tests.conftest import BACKEND
from tests.standins import iam
from tests.standins.slack import block_actions, interaction, user
from tests.support import FunctionProcess, deliver, fixture, post, pubsub_body
from watchdog.core import ledger

pytestmark = pytest.mark.e2e

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM = "T0WATCH"
APPROVER, GROUP_MEMBER, STRANGER, GUEST = "U0ONCALL", "U0GROUPED", "U0RANDOM", "U0GUEST"
BACKEND_ALERT = "alerts/incident_backend_startup_metric_threshold.json"
SETTINGS = {
    "SLACK_SIGNING_SECRET": SECRET,
    "WATCHDOG_SLACK_TEAM": TEAM,
    "WATCHDOG_SLACK_APPROVERS": f"{APPROVER},S0ONCALL",
}


@pytest.fixture
def rolled_back(start_stack, tmp_path):
    """The backend rolled back by the alert function; the actions function on the same stand-ins."""
    stack = start_stack(**SETTINGS)
    slack = stack.slack.state
    slack.users.update({u: user(u) for u in (APPROVER, GROUP_MEMBER, STRANGER)})
    slack.users[GUEST] = user(GUEST, is_restricted=True)
    slack.usergroups["S0ONCALL"] = [GROUP_MEMBER, GUEST]  # a guest in the on-call group is still a guest
    assert deliver(stack.function.url, pubsub_body(fixture(BACKEND_ALERT))) == (200, "OK")
    env = stack.env_as(
        iam.ACT, **SETTINGS
    )  # the buttons' own service account, as terraform/slack_actions.tf deploys it
    with FunctionProcess(env, target="slack_actions", signature="http", log_path=tmp_path / "actions.log") as actions:
        yield stack, actions


def click(stack, action: str, user_id: str = APPROVER, action_ts: str = "", team: str = TEAM) -> dict:
    [card] = [m for m in stack.messages if m.get("blocks") and any(b["type"] == "actions" for b in m["blocks"])]
    return block_actions(card, action, user_id, team, action_ts)


def send(actions, payload: dict, *, secret: str = SECRET, timestamp: int | None = None, headers: dict | None = None):
    body, sent = interaction(secret, payload, timestamp)
    return post(actions.url, body, {**sent, **(headers or {})})


def backend(stack) -> dict:
    """The service as the next GET sees it: an update nobody polled has finished by then (read_service)."""
    return stack.cloud_run.state.read_service(BACKEND)


def serving(stack) -> dict[str, int]:
    return {s["revision"]: s["percent"] for s in backend(stack)["trafficStatuses"]}


def test_an_approver_undoes_the_rollback_tags_and_all(rolled_back):
    stack, actions = rolled_back
    assert serving(stack) == {"netra-backend-staging-00118-paz": 100}
    status, _ = send(actions, click(stack, "undo_rollback"))
    assert status == 200
    assert serving(stack) == {"netra-backend-staging-00119-qor": 100}  # as before: LATEST
    assert backend(stack)["traffic"] == [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}]
    record = ledger.find(backend(stack)["annotations"], "0.backend-startup-1")
    assert [e[:2] for e in record.events] == [("undo_rollback", APPROVER)]
    card = stack.messages[0]
    assert card["updates"], "the card was updated in place"
    assert "Undone by <@U0ONCALL>" in json.dumps(card["blocks"])
    assert "undo_rollback" not in json.dumps(card["blocks"])  # the button that no longer applies is gone


def test_a_group_member_may_act_and_a_stranger_or_a_guest_may_not(rolled_back):
    stack, actions = rolled_back
    for who in (STRANGER, GUEST):
        assert send(actions, click(stack, "pause_service", who))[0] == 200
    assert not ledger.paused(backend(stack)["annotations"])
    refused = list(stack.slack.state.ephemeral)
    assert [e["user"] for e in refused] == [STRANGER, GUEST]
    assert "not in WATCHDOG_SLACK_APPROVERS" in refused[0]["text"]
    assert "guests and external users" in refused[1]["text"]
    assert send(actions, click(stack, "pause_service", GROUP_MEMBER))[0] == 200
    assert ledger.paused(backend(stack)["annotations"])
    assert serving(stack) == {"netra-backend-staging-00118-paz": 100}  # a pause moves no traffic


@pytest.mark.parametrize(
    ("secret", "skew"),
    [("wrong-secret-0000000000000000000", 0), (SECRET, -310), (SECRET, 310)],
    ids=["bad signature", "stale", "from the future"],
)
def test_bad_or_stale_signatures_are_401_and_change_nothing(rolled_back, secret, skew):
    stack, actions = rolled_back
    before = json.dumps(backend(stack), sort_keys=True)
    status, _ = send(actions, click(stack, "undo_rollback"), secret=secret, timestamp=int(time.time()) + skew)
    assert status == 401
    assert json.dumps(backend(stack), sort_keys=True) == before


def test_a_missing_signature_is_401(rolled_back):
    stack, actions = rolled_back
    body = urlencode({"payload": json.dumps(click(stack, "undo_rollback"))}).encode()
    assert post(actions.url, body, {"Content-Type": "application/x-www-form-urlencoded"})[0] == 401
    assert serving(stack) == {"netra-backend-staging-00118-paz": 100}


def test_another_workspace_is_refused(rolled_back):
    stack, actions = rolled_back
    assert send(actions, click(stack, "undo_rollback", team="T0OTHER"))[0] == 200
    assert serving(stack) == {"netra-backend-staging-00118-paz": 100}
    assert "workspace" in stack.slack.state.ephemeral[0]["text"]


def test_slack_retries_and_double_clicks_update_once(rolled_back):
    stack, actions = rolled_back
    payload = click(stack, "undo_rollback", action_ts="1700000099.000001")
    assert send(actions, payload)[0] == 200
    assert send(actions, payload, headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})[0] == 200
    second = json.loads(json.dumps(payload))
    second["actions"][0]["action_ts"] = "1700000099.500000"  # a double click, before the card lost its button
    assert send(actions, second)[0] == 200
    traffic = stack.traffic_updates(BACKEND)
    assert len(traffic) == 2  # the rollback, then one undo
    record = ledger.find(backend(stack)["annotations"], "0.backend-startup-1")
    assert len(record.events) == 1


def test_an_undo_after_a_later_deploy_is_refused(rolled_back):
    stack, actions = rolled_back
    newest = stack.cloud_run.state.revisions[BACKEND][0]
    fix = dict(newest, name=newest["name"].replace("00119-qor", "00120-fix"), createTime="2026-01-01T00:00:00Z")
    stack.cloud_run.state.deploy(BACKEND, fix, to_latest=False)  # traffic stays pinned; a new revision waits at 0%
    assert send(actions, click(stack, "undo_rollback"))[0] == 200
    assert serving(stack) == {"netra-backend-staging-00118-paz": 100}
    assert "was deployed after the rollback" in stack.slack.state.ephemeral[-1]["text"]
