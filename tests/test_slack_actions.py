"""The card's buttons through the real ``slack_actions`` HTTP function: signed, authorized, idempotent, truthful.

Slack is the stand-in with exactly the app manifest's scopes; Cloud Run is the stand-in with its
scripted faults (a late answer, an update that arrives late, a deploy landing between read and write).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from urllib.parse import urlencode

import pytest

from tests.conftest import BACKEND
from tests.standins import iam
from tests.standins.cloudrun import Fault
from tests.standins.slack import block_actions, interaction, user
from tests.support import FunctionProcess, deliver, fixture, post, pubsub_body
from watchdog.config import Config, ServiceRef
from watchdog.core import ledger, status

pytestmark = pytest.mark.e2e

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM = "T0WATCH"
APPROVER, GROUP_MEMBER, STRANGER, GUEST = "U0ONCALL", "U0GROUPED", "U0RANDOM", "U0GUEST"
BACKEND_ALERT = "alerts/incident_backend_startup_metric_threshold.json"
INCIDENT = "0.backend-startup-1"
PINNED = {"netra-backend-staging-00118-paz": 100}  # what the rollback left serving
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
    assert slack.scope_refusals == [], "the code called Slack beyond the manifest's scopes"


def card(stack) -> dict:
    [found] = [m for m in stack.messages if m.get("blocks") and any(b["type"] == "actions" for b in m["blocks"])]
    return found


def click(stack, action: str, user_id: str = APPROVER, action_ts: str = "", team: str = TEAM) -> dict:
    return block_actions(card(stack), action, user_id, team, action_ts)


def send(actions, payload: dict, *, secret: str = SECRET, timestamp: int | None = None, headers: dict | None = None):
    body, sent = interaction(secret, payload, timestamp)
    return post(actions.url, body, {**sent, **(headers or {})})


def backend(stack) -> dict:
    """The service as the next GET sees it: an update nobody polled has finished by then (read_service)."""
    return stack.cloud_run.state.read_service(BACKEND)


def serving(stack) -> dict[str, int]:
    return {s["revision"]: s["percent"] for s in backend(stack)["trafficStatuses"]}


def told(stack, user_id: str = APPROVER) -> list[str]:
    return [e["text"] for e in stack.slack.state.ephemeral if e["user"] == user_id]


def buttons(stack) -> list[str]:
    [block] = [b for b in card(stack)["blocks"] if b["type"] == "actions"]
    return [e["action_id"] for e in block["elements"]]


def test_an_approver_undoes_the_rollback_tags_and_all(rolled_back):
    stack, actions = rolled_back
    assert serving(stack) == PINNED
    status_code, _ = send(actions, click(stack, "undo_rollback"))
    assert status_code == 200
    assert serving(stack) == {"netra-backend-staging-00119-qor": 100}  # as before: LATEST
    assert backend(stack)["traffic"] == [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}]
    record = ledger.find(backend(stack)["annotations"], INCIDENT)
    assert [e[:2] for e in record.events] == [("undo_rollback", APPROVER)]
    posted = stack.messages[0]
    assert posted["updates"], "the card was updated in place"
    assert "Undone by <@U0ONCALL>" in json.dumps(posted["blocks"])
    assert "undo_rollback" not in buttons(stack)  # the button that no longer applies is gone
    assert told(stack) == []  # the card says it; nobody is told twice


def test_the_undo_dialog_says_the_watchdog_will_not_roll_that_revision_back_again(rolled_back):
    stack, _ = rolled_back
    [block] = [b for b in card(stack)["blocks"] if b["type"] == "actions"]
    undo = next(e for e in block["elements"] if e["action_id"] == "undo_rollback")
    assert (
        "will not roll this failing revision back again automatically until a new deploy or a resume"
        in (undo["confirm"]["text"]["text"])
    )


def test_a_group_member_may_act_and_a_stranger_or_a_guest_may_not(rolled_back):
    stack, actions = rolled_back
    for who in (STRANGER, GUEST):
        assert send(actions, click(stack, "pause_service", who))[0] == 200
    assert not ledger.paused(backend(stack)["annotations"])
    assert told(stack, STRANGER) == [":no_entry: only the rollback approvers can do this. Nothing was changed."]
    assert told(stack, GUEST) == [
        ":no_entry: only full members of this workspace can do this (guests and external users cannot). "
        "Nothing was changed."
    ]
    assert send(actions, click(stack, "pause_service", GROUP_MEMBER))[0] == 200
    assert ledger.paused(backend(stack)["annotations"])
    assert serving(stack) == PINNED  # a pause moves no traffic


REFUSALS = {
    "another workspace": ({"team": "T0OTHER"}, "only the on-call of the workspace the watchdog reports to"),
    "not an approver": ({"user_id": STRANGER}, "only the rollback approvers can do this"),
    "a guest in the approvers' group": ({"user_id": GUEST}, "only full members of this workspace"),
}


@pytest.mark.parametrize(("who", "says"), REFUSALS.values(), ids=REFUSALS.keys())
def test_a_refusal_says_who_can_act_and_names_no_setting(rolled_back, who, says):
    stack, actions = rolled_back
    assert send(actions, click(stack, "undo_rollback", **who))[0] == 200
    assert serving(stack) == PINNED
    [text] = [e["text"] for e in stack.slack.state.ephemeral]
    assert says in text
    assert re.search(r"[A-Z][A-Z0-9]*_[A-Z0-9_]+", text) is None, "a setting is named"


@pytest.mark.parametrize(
    ("secret", "skew"),
    [("wrong-secret-0000000000000000000", 0), (SECRET, -310), (SECRET, 310)],
    ids=["bad signature", "stale", "from the future"],
)
def test_bad_or_stale_signatures_are_401_and_change_nothing(rolled_back, secret, skew):
    stack, actions = rolled_back
    before = json.dumps(backend(stack), sort_keys=True)
    status_code, _ = send(actions, click(stack, "undo_rollback"), secret=secret, timestamp=int(time.time()) + skew)
    assert status_code == 401
    assert json.dumps(backend(stack), sort_keys=True) == before


def test_a_missing_or_non_ascii_signature_is_401_not_a_crash(rolled_back):
    stack, actions = rolled_back
    body = urlencode({"payload": json.dumps(click(stack, "undo_rollback"))}).encode()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert post(actions.url, body, form)[0] == 401
    stamp = str(int(time.time()))
    for signature in ("v0=\xff" + "0" * 63, "v0=" + "é" * 64):  # sent as latin-1 bytes, as a client may
        status_code, text = post(actions.url, body, {**form, "X-Slack-Request-Timestamp": stamp,
                                                     "X-Slack-Signature": signature})  # fmt: skip
        assert (status_code, json.loads(text)) == (401, {"error": "invalid signature"})
    assert serving(stack) == PINNED
    assert not [line for line in actions.logs() if line.get("severity") in ("ERROR", "CRITICAL")]


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
    record = ledger.find(backend(stack)["annotations"], INCIDENT)
    assert len(record.events) == 1
    assert told(stack) == [":information_source: already undone by <@U0ONCALL>. Nothing was changed."]


def test_an_undo_after_a_later_deploy_is_refused(rolled_back):
    stack, actions = rolled_back
    newest = stack.cloud_run.state.revisions[BACKEND][0]
    fix = dict(newest, name=newest["name"].replace("00119-qor", "00120-fix"), createTime="2026-01-01T00:00:00Z")
    stack.cloud_run.state.deploy(BACKEND, fix, to_latest=False)  # traffic stays pinned; a new revision waits at 0%
    assert send(actions, click(stack, "undo_rollback"))[0] == 200
    assert serving(stack) == PINNED
    assert "was deployed after the rollback" in told(stack)[-1]


def test_an_older_cards_undo_is_refused_and_names_the_newer_rollback(rolled_back):
    """Two rollbacks of one service: the first card's Undo would overwrite what the newer one did."""
    stack, actions = rolled_back
    state = stack.cloud_run.state
    with state.lock:
        service = state.services[BACKEND]
        first = ledger.find(service["annotations"], INCIDENT)
        newer = replace(first, incident="0.backend-startup-2", at=first.at + 600, events=(), thread="")
        service["annotations"] = ledger.with_record(service["annotations"], newer)
        service["etag"] = '"after-the-newer-rollback"'
    assert send(actions, click(stack, "undo_rollback"))[0] == 200
    assert serving(stack) == PINNED
    assert stack.traffic_updates(BACKEND)[1:] == []
    [text] = told(stack)
    assert "a newer rollback of netra-backend-staging was made after this one (incident 0.backend-startup-2" in text
    assert text.endswith("Nothing was changed.")


def test_pause_records_who_when_why_and_resume_takes_its_place(rolled_back):
    stack, actions = rolled_back
    before = time.time()
    assert send(actions, click(stack, "pause_service"))[0] == 200
    annotations = backend(stack)["annotations"]
    assert ledger.paused(annotations)
    info = ledger.pause_info(annotations)
    assert (info["by"], info["reason"]) == ("Slack user U0ONCALL", "from the card")
    assert before - 1 <= info["at"] <= time.time() + 1
    config = Config.from_env({"WATCHDOG_SERVICES": "*"})
    ref = ServiceRef("netra-staging", "us-central1", "netra-backend-staging")
    shown = status.assess(ref, backend(stack), [], config, time.time())
    assert shown.paused_by == "Slack user U0ONCALL"
    assert not any("unknown time" in n for n in shown.needs_human)
    assert buttons(stack) == ["undo_rollback", "resume_service", "acknowledge"]

    assert send(actions, click(stack, "resume_service"))[0] == 200
    annotations = backend(stack)["annotations"]
    assert not ledger.paused(annotations)
    assert ledger.PAUSE_INFO_KEY not in annotations
    record = ledger.find(annotations, INCIDENT)
    assert [e[:2] for e in record.events] == [("pause_service", APPROVER), ("resume_service", APPROVER)]
    assert buttons(stack) == ["undo_rollback", "revert_field", "pause_service", "acknowledge"]
    shown = json.dumps(card(stack)["blocks"])
    assert "Paused by <@U0ONCALL>" in shown  # the card keeps the history
    assert "Resumed by <@U0ONCALL>" in shown
    assert serving(stack) == PINNED


def test_a_pause_by_someone_else_meanwhile_is_already_a_pause(rolled_back):
    stack, actions = rolled_back
    with stack.cloud_run.state.lock:
        service = stack.cloud_run.state.services[BACKEND]
        service["annotations"] = {**service["annotations"], ledger.PAUSED_KEY: "true",
                                  ledger.PAUSE_INFO_KEY: json.dumps({"by": "alice", "at": 1.0, "reason": "db"})}  # fmt: skip
    assert send(actions, click(stack, "pause_service"))[0] == 200
    assert told(stack) == [":information_source: already paused by alice. Nothing was changed."]
    assert ledger.pause_info(backend(stack)["annotations"])["by"] == "alice"


# --- writes whose answer is lost or refused: the clicker hears what is true -------------------------------------


def _answer_late(stack, seconds: float) -> None:
    """Cloud Run applies the next update at once and answers it only after ``seconds`` (past the click's timeout)."""
    state = stack.cloud_run.state
    late = [True]

    def hook(entry: dict) -> None:
        if entry["method"] == "PATCH" and late:
            late.clear()
            time.sleep(seconds)

    state.on_served = hook


def _arrive_late(stack, seconds: float) -> None:
    """The next update reaches Cloud Run only after ``seconds``: the click has stopped waiting for it by then."""
    stack.cloud_run.state.faults.append(Fault(method="PATCH", kind="delay", seconds=seconds))


def _deploy_between(stack, _seconds: float) -> None:
    """A deploy lands between the click's read and its update (the update's etag is stale: 409)."""
    stack.cloud_run.state.faults.append(Fault(method="PATCH", kind="deploy"))


SLOW = {
    "undo applied, its answer late": ("undo_rollback", _answer_late, "done"),
    "undo arriving after the click gave up on it": ("undo_rollback", _arrive_late, "done"),
    "pause applied, its answer late": ("pause_service", _answer_late, "done"),
    "pause arriving after the click gave up on it": ("pause_service", _arrive_late, "done"),
    "a deploy between the read and the undo": ("undo_rollback", _deploy_between, "someone else"),
    "a deploy between the read and the pause": ("pause_service", _deploy_between, "done"),
}


@pytest.mark.parametrize(("action", "fault", "truth"), SLOW.values(), ids=SLOW.keys())
def test_a_lost_or_refused_update_is_read_back_and_the_answer_is_true(rolled_back, action, fault, truth):
    stack, actions = rolled_back
    before = len(stack.patches(BACKEND))
    fault(stack, 3.0)
    started = time.monotonic()
    assert send(actions, click(stack, action))[0] == 200
    assert time.monotonic() - started < 3.0, "answered within Slack's 3 seconds"
    time.sleep(3.5)  # a late update has landed (or been refused) by now
    annotations = backend(stack)["annotations"]
    record = ledger.find(annotations, INCIDENT)
    mine = [e for e in record.events if e[0] == action]
    applied = [p for p in stack.patches(BACKEND)[before:] if p["status"] == 200]
    if truth == "done":
        assert (len(mine), len(applied)) == (1, 1), "applied exactly once"
        assert not any("Nothing was changed" in t or "could not" in t.lower() for t in told(stack))
        said = {"undo_rollback": "Undone by <@U0ONCALL>", "pause_service": "Paused by <@U0ONCALL>"}[action]
        assert said in json.dumps(card(stack)["blocks"])  # the card says so
        if action == "undo_rollback":
            assert serving(stack) == {"netra-backend-staging-00119-qor": 100}
        else:
            assert ledger.paused(annotations)
    else:
        assert (mine, applied) == ([], [])
        [text] = told(stack)
        now_serving = ", ".join(f"{k} {v}%" for k, v in serving(stack).items())
        assert f"someone else changed netra-backend-staging meanwhile (now serving {now_serving})" in text
        assert text.endswith("Nothing was changed.")
