"""The field revert: the Cloud Run and Slack stand-ins, and the history where a hotfix landed on top of the
breaking deploy (tests/fixtures/histories/hotfix_on_top.json). The alert path in process (tests/fakes.py); the
buttons' function and the operator commands through functions-framework and the CLI (marked ``e2e``).

The watchdog pins first (traffic is safe in seconds), then creates a revision with the failing
revision's code and only the egress set back, and moves the pinned share to it once it is Ready.
"""

from __future__ import annotations

import copy
import json

import pytest

from tests import histories
from tests.support import incident_alert, pubsub_body
from watchdog.core import field_revert, ledger

REVISION = field_revert.revision_name("checkout", "0.hotfix-1")


def start(start_stack, **env: str):
    history = histories.load("hotfix_on_top")
    stack = start_stack(seed=history.seed(), WATCHDOG_SERVICES="checkout", WATCHDOG_DEADLINE_SECONDS="20", **env)
    return stack, history


def alert(history) -> dict:
    notification = incident_alert(history.service_name, history.name(3), incident_id="0.hotfix-1",
                                  started_at=histories.NOW - 120)  # fmt: skip
    return pubsub_body(notification)


def record(stack, history) -> ledger.Record:
    service = stack.cloud_run.state.services[history.full_name]
    found = ledger.find(service["annotations"], "0.hotfix-1")
    assert found is not None
    return found


def test_the_hotfix_stays_in_service_with_only_the_egress_set_back(in_process):
    stack, history = start(in_process)
    assert stack.deliver(alert(history)) == (200, "OK")

    state = stack.cloud_run.state
    service = state.services[history.full_name]
    serving = {s["revision"]: s["percent"] for s in service["trafficStatuses"] if s["percent"]}
    assert serving == {REVISION: 100}
    [new] = [r for r in state.revisions[history.full_name] if r["name"].endswith(REVISION)]
    failing_image = "gcr.io/netra-staging/checkout:v1.42.1"
    digest = state.v1_revision("netra-staging", history.name(3))["status"]["imageDigest"]
    assert [c["image"] for c in new["containers"]] == [digest]  # the hotfix's code, pinned by digest
    assert digest.startswith("gcr.io/netra-staging/checkout@sha256:")
    assert new["vpcAccess"]["egress"] == "PRIVATE_RANGES_ONLY"  # the known-good revision's egress
    assert new["containers"][0]["env"] == [{"name": "DB_CONNECT_TIMEOUT_SECONDS", "value": "15"}]  # the hotfix's env
    assert new["labels"] == {field_revert.LABEL: field_revert.LABEL_VALUE}
    latest = [t for t in service["traffic"] if t["type"].endswith("LATEST") and t["percent"]]
    assert latest == [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}]  # the pin is released
    tags = {s["tag"]: s["revision"] for s in service["trafficStatuses"] if s.get("tag")}
    assert tags == {"v142": history.name(2), field_revert.TAG: REVISION}  # every tag kept

    patches = [r for r in state.requests if r["method"] == "PATCH"]
    masks = [(p["query"].get("updateMask"), p["query"].get("validateOnly")) for p in patches]
    assert masks[0] == ("traffic,annotations", None)  # 1. the pin, at once
    assert ("template,traffic,annotations", "true") in masks  # 2. validated …
    assert masks.index(("template,traffic,annotations", "true")) < masks.index(("template,traffic,annotations", None))
    assert masks[-1] == ("traffic,annotations", None)  # 3. … created, then the pinned share moved to it
    assert all(p["body"].get("etag") for p in patches)  # every write etag-guarded

    done = record(stack, history)
    assert (done.to_revision, done.revert, done.revert_state) == (history.name(1), REVISION, "serving")
    assert done.restored == REVISION
    assert done.latest == history.name(3)  # the newest revision then: what LATEST meant before the rollback

    card = stack.messages[0]
    assert len(stack.messages) == 1, "one card"
    assert card.get("updates"), "updated in place"
    text = json.dumps(card["blocks"], ensure_ascii=False)
    assert "Field reverted on checkout" in text
    assert failing_image in text
    assert "The pin is released" in text
    assert "code kept" in text
    assert "The rollback also put back" not in text  # nothing else was put back
    logs = {line.get("decision") for line in stack.logs()}
    assert {"rolled_back", "field_revert_created", "field_reverted"} <= logs


def test_a_revision_that_never_becomes_ready_leaves_the_pin_and_pages(in_process):
    stack, history = start(in_process)
    stack.cloud_run.state.new_revisions = "failed"
    stack.cloud_run.state.ready_after_reads = 2
    assert stack.deliver(alert(history)) == (200, "OK")

    service = stack.cloud_run.state.services[history.full_name]
    serving = {s["revision"]: s["percent"] for s in service["trafficStatuses"] if s["percent"]}
    assert serving == {history.name(1): 100}  # the pin stays
    assert record(stack, history).revert_state == "failed"
    loud = [m for m in stack.messages if "<!here>" in json.dumps(m.get("blocks", []))]
    assert loud, "a failed field revert pages on-call"
    assert "Field revert of checkout failed" in loud[-1]["text"]
    assert stack.messages[0]["text"].startswith(":rotating_light:") or "FAILED" in json.dumps(stack.messages[0])


def serving(stack, history) -> dict[str, int]:
    statuses = stack.cloud_run.state.services[history.full_name]["trafficStatuses"]
    return {s["revision"]: s["percent"] for s in statuses if s["percent"]}


def cli(stack, *args: str):
    from click.testing import CliRunner

    from watchdog.tools.cli import cli as command

    where = ["--project", "netra-staging", "--region", "us-central1", "--service", "checkout"]
    return CliRunner().invoke(command, [*args, *where, "--json"], env={"CLOUD_RUN_API_ENDPOINT": stack.cloud_run.url})


@pytest.mark.e2e
def test_undo_after_a_field_revert_puts_traffic_back_as_it_was_and_deletes_nothing(start_stack):
    stack, history = start(start_stack)
    assert stack.deliver(alert(history)) == (200, "OK")
    assert serving(stack, history) == {REVISION: 100}
    revisions = len(stack.cloud_run.state.revisions[history.full_name])

    undone = cli(stack, "undo", "--by", "oncall")
    assert undone.exit_code == 0, undone.output
    # before the rollback LATEST meant 3; now LATEST is the watchdog's revision, so the undo names 3
    assert serving(stack, history) == {history.name(3): 100}
    assert len(stack.cloud_run.state.revisions[history.full_name]) == revisions  # nothing deleted
    assert record(stack, history).undone_at() is not None


@pytest.mark.e2e
def test_offer_mode_pins_and_the_revert_field_command_does_what_the_card_offers(start_stack):
    stack, history = start(start_stack, WATCHDOG_FIELD_REVERT="offer")
    assert stack.deliver(alert(history)) == (200, "OK")
    assert serving(stack, history) == {history.name(1): 100}  # a pin: later deploys are out of service
    assert record(stack, history).revert == ""
    assert "revert-field" in json.dumps(stack.messages[0]["blocks"])  # the card offers it

    done = cli(stack, "revert-field", "--by", "oncall")
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert (result["outcome"], result["reason"], result["revision"]) == ("apply", "serving", REVISION)
    assert serving(stack, history) == {REVISION: 100}
    made = record(stack, history)
    assert made.revert_state == "serving"
    assert [(e[0], e[1]) for e in made.events] == [("revert_field", "oncall")]  # who asked, in the same update

    again = cli(stack, "revert-field")
    assert again.exit_code == 0
    assert json.loads(again.stdout)["reason"] == "already_reverted"


@pytest.mark.e2e
def test_the_revert_field_command_is_guarded_like_undo(start_stack):
    stack, history = start(start_stack, WATCHDOG_FIELD_REVERT="offer")
    assert stack.deliver(alert(history)) == (200, "OK")
    stack.cloud_run.state.deploy(history.full_name, {**stack.cloud_run.state.revisions[history.full_name][0],
                                                     "name": f"{history.full_name}/revisions/checkout-00009-new"},
                                 to_latest=False)  # fmt: skip
    refused = cli(stack, "revert-field")
    assert refused.exit_code == 1
    assert json.loads(refused.stdout)["reason"] == "deployed_since"
    assert serving(stack, history) == {history.name(1): 100}


@pytest.mark.e2e
def test_the_revert_field_command_waits_for_a_resume(start_stack):
    stack, history = start(start_stack, WATCHDOG_FIELD_REVERT="offer")
    assert stack.deliver(alert(history)) == (200, "OK")
    assert cli(stack, "pause", "--reason", "looking").exit_code == 0
    refused = cli(stack, "revert-field")
    assert refused.exit_code == 1
    assert json.loads(refused.stdout)["reason"] == "paused"
    assert record(stack, history).revert == ""  # nothing created
    assert cli(stack, "resume").exit_code == 0
    done = cli(stack, "revert-field")
    assert done.exit_code == 0, done.output
    assert serving(stack, history) == {REVISION: 100}


# --- The Revert field button, then the ticks ----------------------------------------------------------------------

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BUTTONS = {"SLACK_SIGNING_SECRET": SECRET, "WATCHDOG_SLACK_TEAM": "T0WATCH", "WATCHDOG_SLACK_APPROVERS": "U0ONCALL"}
TICK = {"rollback-watchdog-tick": "1"}


@pytest.fixture
def offered(start_stack, tmp_path):
    """offer mode: the alert pinned; the buttons' function runs as its own account (terraform/slack_actions.tf)."""
    from tests.standins import iam
    from tests.standins.slack import user
    from tests.support import FunctionProcess

    stack, history = start(start_stack, WATCHDOG_FIELD_REVERT="offer", **BUTTONS)
    stack.slack.state.users["U0ONCALL"] = user("U0ONCALL")
    assert stack.deliver(alert(history)) == (200, "OK")
    assert serving(stack, history) == {history.name(1): 100}
    env = stack.env_as(iam.ACT, **BUTTONS)
    with FunctionProcess(env, target="slack_actions", signature="http", log_path=tmp_path / "actions.log") as actions:
        yield stack, history, actions
    assert stack.slack.state.scope_refusals == []


def the_card(stack) -> dict:
    [card] = [m for m in stack.messages if any(b["type"] == "actions" for b in m.get("blocks", []))]
    return card


def press(stack, actions, action: str, card: dict | None = None) -> None:
    from tests.standins.slack import block_actions, interaction
    from tests.support import post

    card = card or the_card(stack)
    body, headers = interaction(SECRET, block_actions(card, action, "U0ONCALL", "T0WATCH"))
    assert post(actions.url, body, headers)[0] == 200


def button_ids(stack) -> list[str]:
    [card] = [m for m in stack.messages if any(b["type"] == "actions" for b in m.get("blocks", []))]
    [block] = [b for b in card["blocks"] if b["type"] == "actions"]
    return [e["action_id"] for e in block["elements"]]


def tick(stack) -> None:
    assert stack.deliver(pubsub_body(b"tick", attributes=TICK)) == (200, "OK")


@pytest.mark.e2e
def test_the_revert_field_button_creates_the_revision_and_a_tick_moves_traffic_to_it(offered):
    stack, history, actions = offered
    assert "revert_field" in button_ids(stack)
    press(stack, actions, "revert_field")
    # Slack's 3 s: the click creates the revision and records it; traffic stays pinned until it is Ready
    made = record(stack, history)
    assert (made.revert, made.revert_state) == (REVISION, "pending")
    assert serving(stack, history) == {history.name(1): 100}
    assert [(e[0], e[1]) for e in made.events] == [("revert_field", "U0ONCALL")]
    assert "Reverting the field" in json.dumps(stack.messages[0]["blocks"]) or "revert_field" not in button_ids(stack)

    tick(stack)
    assert serving(stack, history) == {REVISION: 100}
    assert record(stack, history).revert_state == "serving"
    text = json.dumps(stack.messages[0]["blocks"], ensure_ascii=False)
    assert "Field reverted on checkout" in text
    assert "revert_field" not in button_ids(stack)  # done: the button is gone


@pytest.mark.e2e
def test_a_paused_service_refuses_the_revert_field_button_and_holds_a_pending_move(offered):
    stack, history, actions = offered
    stale = copy.deepcopy(the_card(stack))
    press(stack, actions, "pause_service")
    assert "revert_field" not in button_ids(stack)  # not offered while paused
    press(stack, actions, "revert_field", stale)  # a click on the card as it was before the pause
    assert record(stack, history).revert == ""
    told = [e["text"] for e in stack.slack.state.ephemeral]
    assert any("paused" in t and "Nothing was changed" in t for t in told), told

    press(stack, actions, "resume_service")
    press(stack, actions, "revert_field")
    assert record(stack, history).revert_state == "pending"
    press(stack, actions, "pause_service")  # paused between the click and the move
    tick(stack)
    assert serving(stack, history) == {history.name(1): 100}  # hands off: the pin stays
    assert record(stack, history).revert_state == "pending"
    press(stack, actions, "resume_service")
    tick(stack)
    assert serving(stack, history) == {REVISION: 100}
