"""`rollback-watchdog undo`: the card's undo button from the command line, against the Cloud Run and Slack stand-ins.

The rollback is the real one (the alert function rolls the backend back and posts its card); the undo then
runs the button's plan, refusals and ledger event, and tells the card as the button does.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tests.conftest import BACKEND
from tests.standins.slack import TOKEN, SlackFault
from tests.support import deliver, fixture, pubsub_body
from watchdog.core import ledger
from watchdog.tools.cli import cli

pytestmark = pytest.mark.e2e

INCIDENT = "0.backend-startup-1"
WHERE = ["--project", "netra-staging", "--region", "us-central1", "--service", "netra-backend-staging"]
FAILING, TARGET = "netra-backend-staging-00119-qor", "netra-backend-staging-00118-paz"


@pytest.fixture
def rolled_back(start_stack):
    """The backend rolled back by the alert function, its card in the Slack stand-in."""
    stack = start_stack(SLACK_SIGNING_SECRET="8f742231b10e8888abcd99yyyzzz85a5", WATCHDOG_SLACK_TEAM="T0WATCH",
                        WATCHDOG_SLACK_APPROVERS="U0ONCALL")  # the card has its buttons  # fmt: skip
    assert deliver(stack.function.url, pubsub_body(fixture("alerts/incident_backend_startup_metric_threshold.json"))) == (
        200, "OK")  # fmt: skip
    assert serving(stack) == {TARGET: 100}
    assert "undo_rollback" in json.dumps(card(stack)["blocks"])
    return stack


def serving(stack) -> dict[str, int]:
    return {s["revision"]: s["percent"] for s in stack.cloud_run.state.read_service(BACKEND)["trafficStatuses"]}


def undo(stack, *args: str, slack: bool = True):
    env = {"CLOUD_RUN_API_ENDPOINT": stack.cloud_run.url, "SLACK_BOT_TOKEN": TOKEN if slack else "",
           "SLACK_CHANNEL": "C0ONCALL" if slack else "", "SLACK_API_URL": stack.slack.api_url}  # fmt: skip
    return CliRunner().invoke(cli, ["undo", *WHERE, "--by", "carol", *args], env=env)


def card(stack) -> dict:
    """The incident card: the rollback's report, with its buttons until one is used."""
    return stack.messages[0]


def test_undo_puts_traffic_back_records_who_and_updates_the_card(rolled_back):
    stack = rolled_back
    etag = stack.cloud_run.state.services[BACKEND]["etag"]
    result = undo(stack)
    assert result.exit_code == 0, result.output
    ts = card(stack)["ts"]
    assert result.stdout.splitlines() == [
        f"netra-staging/us-central1/netra-backend-staging: undone (incident {INCIDENT}): traffic is back to how it "
        "was before the rollback",
        f"  serving now: {FAILING} 100%",
        f"  Slack: updated the card (C0ONCALL:{ts})",
    ]
    assert serving(stack) == {FAILING: 100}
    service = stack.cloud_run.state.read_service(BACKEND)
    assert service["traffic"] == [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}]  # as before
    record = ledger.find(service["annotations"], INCIDENT)
    assert [e[:2] for e in record.events] == [("undo_rollback", "carol")]
    undo_patch = stack.traffic_updates(BACKEND)[-1]
    assert undo_patch["query"]["updateMask"] == "traffic,annotations"  # one update, as the button sends it
    assert undo_patch["body"]["etag"] == etag  # guarded by the etag of the service as read
    blocks = json.dumps(card(stack)["blocks"])
    assert "Undone by carol at " in blocks  # the card's history: who, what, when
    assert "undo_rollback" not in blocks  # the button that no longer applies is gone
    assert card(stack)["blocks"][0]["text"]["text"].startswith(":leftwards_arrow_with_hook: Undone: ")


def test_a_second_undo_changes_nothing_and_says_who_undid_it(rolled_back):
    stack = rolled_back
    assert undo(stack).exit_code == 0
    updates = len(stack.traffic_updates(BACKEND))
    again = undo(stack, "--json", "--by", "dave")
    assert again.exit_code == 0
    assert json.loads(again.stdout) == {
        "service": "netra-staging/us-central1/netra-backend-staging", "incident": INCIDENT, "outcome": "already",
        "reason": "already_undone", "detail": "already undone by carol", "serving": None, "slack": None,
    }  # fmt: skip
    assert len(stack.traffic_updates(BACKEND)) == updates


def test_an_undo_after_a_later_deploy_is_refused_and_changes_nothing(rolled_back):
    stack = rolled_back
    newest = stack.cloud_run.state.revisions[BACKEND][0]
    fix = dict(newest, name=newest["name"].replace("00119-qor", "00120-fix"), createTime="2026-01-01T00:00:00Z")
    stack.cloud_run.state.deploy(BACKEND, fix, to_latest=False)  # traffic stays pinned; a new revision waits at 0%
    before = stack.cloud_run.state.read_service(BACKEND)["annotations"]
    updates = len(stack.patches(BACKEND))
    shown = json.dumps(card(stack)["blocks"])
    result = undo(stack, "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert (data["outcome"], data["reason"]) == ("refused", "deployed_since")
    assert data["detail"].startswith("netra-backend-staging-00120-fix was deployed after the rollback")
    assert serving(stack) == {TARGET: 100}
    assert len(stack.patches(BACKEND)) == updates
    assert stack.cloud_run.state.read_service(BACKEND)["annotations"] == before  # no ledger event either
    assert json.dumps(card(stack)["blocks"]) == shown  # the card is untouched


def test_traffic_moved_by_hand_is_refused(rolled_back):
    stack = rolled_back
    split = [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": TARGET, "percent": 90},
             {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": FAILING, "percent": 10}]  # fmt: skip
    assert stack.cloud_run.state.patch_service(BACKEND, ["traffic"], {"traffic": split})[0] == 200
    result = undo(stack)
    assert result.exit_code == 1
    assert "REFUSED (traffic_moved): traffic was moved since the rollback" in result.stdout
    assert "Nothing was changed." in result.stdout


def test_no_rollback_on_record_is_refused(cloud_run):
    result = CliRunner().invoke(cli, ["undo", *WHERE, "--json"], env={"CLOUD_RUN_API_ENDPOINT": cloud_run.url})
    assert result.exit_code == 1
    assert json.loads(result.stdout)["reason"] == "no_rollback"
    other = CliRunner().invoke(
        cli, ["undo", *WHERE, "--incident", "0.nope"], env={"CLOUD_RUN_API_ENDPOINT": cloud_run.url}
    )
    assert "REFUSED (no_rollback): the watchdog made no rollback for incident 0.nope" in other.stdout
    assert [r for r in cloud_run.state.requests if r["method"] != "GET"] == []


def test_without_slack_settings_it_says_that_nobody_was_told(rolled_back):
    stack = rolled_back
    shown = json.dumps(card(stack)["blocks"])
    result = undo(stack, "--json", slack=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["outcome"] == "apply"
    assert data["slack"]["told"] is False
    assert data["slack"]["how"].startswith("Slack is not configured (SLACK_BOT_TOKEN and SLACK_CHANNEL")
    assert json.dumps(card(stack)["blocks"]) == shown


def test_a_card_slack_will_not_update_gets_a_reply_in_its_thread(rolled_back):
    """The card is rendered again from the ledger (nothing is read from Slack); if Slack refuses the update, the
    news goes under the card."""
    stack = rolled_back
    stack.slack.state.faults.append(SlackFault(kind="error", error="internal_error", path="chat.update", times=5))
    result = undo(stack, "--json")
    assert result.exit_code == 0, result.output
    ts = card(stack)["ts"]
    told = json.loads(result.stdout)["slack"]
    assert told["told"] is True
    assert told["how"].endswith("replied in its thread")
    [reply] = [m for m in stack.messages if m.get("thread_ts") == ts]
    assert reply["text"].startswith(":leftwards_arrow_with_hook: Undone by carol (rollback-watchdog undo): ")
    assert "traffic is back to how it was before the rollback (netra-backend-staging, incident 0.backend-startup-1)" in (
        reply["text"])  # fmt: skip
    assert serving(stack) == {FAILING: 100}


@pytest.mark.parametrize(
    ("user", "shown"),
    [("U0ONCALL", "<@U0ONCALL>"), ("W0GRID01", "<@W0GRID01>"), ("carol", "carol"), ("a<b>&c", "a&lt;b&gt;&amp;c")],
    ids=["a Slack user", "an Enterprise Grid user", "a name from --by", "a name with mrkdwn characters"],
)
def test_who_did_it_is_a_mention_only_for_a_slack_user(user, shown):
    from watchdog.core.actions import who

    assert who(user) == shown
