"""The card's click rules (watchdog/core/actions.py), pure: tables of named cases, no process, no stand-in."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from watchdog.config import ServiceRef
from watchdog.core import actions, ledger

REF = ServiceRef("netra-staging", "us-central1", "netra-backend-staging")
FAILING, TARGET = "netra-backend-staging-00119-qor", "netra-backend-staging-00118-paz"
RECORD = ledger.Record("0.first", FAILING, TARGET, 1000.0, before=(("LATEST", 100, ""),), after=((TARGET, 100),),
                       latest=FAILING)  # fmt: skip
NOW = 2000.0


def service(*records: ledger.Record, etag: str = '"e1"', **annotations: str) -> dict:
    written = {}
    for record in records:
        written = ledger.with_record(written, record)
    return {
        "etag": etag,
        "annotations": {**written, **annotations},
        "latestCreatedRevision": f"projects/p/locations/r/services/s/revisions/{FAILING}",
        "traffic": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": TARGET, "percent": 100}],
        "trafficStatuses": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": TARGET, "percent": 100}],
    }


def click(action: str, incident: str = "0.first", action_ts: str = "1.1", **extra) -> actions.Click:
    return actions.Click(action, "U0ONCALL", "T0", "C0", "1.0", action_ts, REF, incident, **extra)


PAUSED_BY_ALICE = {ledger.PAUSED_KEY: "true", ledger.PAUSE_INFO_KEY: json.dumps({"by": "alice", "at": 5.0})}
NEWER = replace(RECORD, incident="0.second", at=1500.0)

PLANS = {
    "undo the newest rollback": (click(actions.UNDO), service(RECORD), "apply", "undone"),
    "undo an older card's rollback": (click(actions.UNDO), service(RECORD, NEWER), "refused", "newer_rollback"),
    "undo what was undone": (
        click(actions.UNDO, action_ts="2.2"),
        service(replace(RECORD, events=(("undo_rollback", "U0OTHER", 1500.0, "1.1"),))),
        "already",
        "already_undone",
    ),
    "Slack retries a click": (
        click(actions.ACK),
        service(replace(RECORD, events=(("acknowledge", "U0ONCALL", 1500.0, "1.1"),))),
        "already",
        "same_click",
    ),
    "pause": (click(actions.PAUSE), service(RECORD), "apply", "paused"),
    "pause what someone paused": (
        click(actions.PAUSE),
        service(RECORD, **PAUSED_BY_ALICE),
        "already",
        "already_paused",
    ),
    "pause from an older card": (click(actions.PAUSE), service(RECORD, NEWER), "apply", "paused"),
    "resume": (click(actions.RESUME), service(RECORD, **PAUSED_BY_ALICE), "apply", "resumed"),
    "resume what is not paused": (click(actions.RESUME), service(RECORD), "already", "not_paused"),
    "acknowledge": (click(actions.ACK), service(RECORD), "apply", "acknowledged"),
    "a click on no rollback": (click(actions.ACK, incident="0.none"), service(RECORD), "refused", "no_rollback"),
}


@pytest.mark.parametrize(("pressed", "read", "outcome", "reason"), PLANS.values(), ids=PLANS.keys())
def test_what_a_click_may_change(pressed, read, outcome, reason):
    plan = actions.plan(pressed, read, NOW)
    assert (plan.outcome, plan.reason) == (outcome, reason)
    if outcome == "apply":  # every change carries its ledger event, in the same update
        record = ledger.find(plan.annotations, pressed.incident)
        assert record.events[-1] == (pressed.action, "U0ONCALL", NOW, pressed.action_ts)
    else:
        assert plan.annotations is None
        assert plan.traffic is None


def test_an_older_cards_undo_names_the_newer_rollback():
    plan = actions.plan(click(actions.UNDO), service(RECORD, NEWER), NOW)
    assert "a newer rollback of netra-backend-staging was made after this one (incident 0.second" in plan.detail


def test_pause_records_who_when_and_why_and_resume_clears_both():
    paused = actions.plan(click(actions.PAUSE, user_name="alice"), service(RECORD), NOW).annotations
    assert ledger.paused(paused)
    assert ledger.pause_info(paused) == {"by": "alice (Slack U0ONCALL)", "at": NOW, "reason": "from the card"}
    resumed = actions.plan(click(actions.RESUME, action_ts="2.2"), {**service(RECORD), "annotations": paused}, NOW)
    assert not ledger.paused(resumed.annotations)
    assert ledger.PAUSE_INFO_KEY not in resumed.annotations
    events = ledger.find(resumed.annotations, "0.first").events
    assert [e[0] for e in events] == ["pause_service", "resume_service"]


def test_the_command_line_and_the_card_pause_alike():
    assert actions.paused_annotations({}, "alice", 5.0, "db migration") == {
        ledger.PAUSED_KEY: "true",
        ledger.PAUSE_INFO_KEY: '{"by":"alice","at":5.0,"reason":"db migration"}',
    }


MINE = replace(RECORD, events=(("undo_rollback", "U0ONCALL", NOW, "1.1"),))
SOMEONE_ELSES = replace(RECORD, events=(("undo_rollback", "U0OTHER", NOW, "9.9"),))
AFTER_WRITE = {
    "the click's event is there: applied, its answer late": (service(MINE, etag='"e2"'), actions.DONE),
    "same etag: nothing landed yet": (service(RECORD), actions.NOT_YET),
    "another etag, no event of this click: someone else": (service(RECORD, etag='"e2"'), actions.CHANGED),
    "someone else's undo landed": (service(SOMEONE_ELSES, etag='"e2"'), actions.CHANGED),
    "the ledger unreadable now": ({"etag": '"e2"', "annotations": {ledger.ROLLBACKS_KEY: "{"}}, actions.CHANGED),
}


@pytest.mark.parametrize(("after", "truth"), AFTER_WRITE.values(), ids=AFTER_WRITE.keys())
def test_what_a_read_after_a_lost_or_refused_update_says(after, truth):
    assert actions.after_write(click(actions.UNDO), service(RECORD), after) == truth


GAVE_UP = {
    "an update may still land": (True, False, "unknown", "it may still be applied"),
    "someone else changed it": (False, True, "refused", "someone else changed netra-backend-staging meanwhile"),
    "nothing was sent": (False, False, "refused", "no time left"),
}


@pytest.mark.parametrize(("in_flight", "changed", "outcome", "says"), GAVE_UP.values(), ids=GAVE_UP.keys())
def test_out_of_time_the_answer_says_only_what_is_known(in_flight, changed, outcome, says):
    plan = actions.gave_up(click(actions.UNDO), service(RECORD), in_flight=in_flight, changed=changed)
    assert plan.outcome == outcome
    assert says in plan.detail
    assert ("nothing" in plan.detail.lower()) is False  # the shell adds "Nothing was changed." only to refusals


def payload(**changes) -> dict:
    base = {
        "type": "block_actions",
        "team": {"id": "T0"},
        "user": {"id": "U0ONCALL", "username": "alice"},
        "channel": {"id": "C0"},
        "container": {"type": "message", "message_ts": "1.0", "channel_id": "C0"},
        "message": {"ts": "1.0", "blocks": []},
        "actions": [{"action_id": "undo_rollback", "value": actions.button_value(REF, "0.first"), "action_ts": "1.1"}],
    }
    return {**base, **changes}


PAYLOADS = {
    "a click of the card": (payload(), None),
    "another kind of interaction": ({"type": "view_submission"}, False),
    "another app's button": (payload(actions=[{"action_id": "approve", "value": "x", "action_ts": "1"}]), False),
    "not an object": ([1, 2], True),
    "type not a string": (payload(type=5), True),
    "actions not a list": (payload(actions={"a": 1}), True),
    "no actions": (payload(actions=[]), True),
    "an action that is not an object": (payload(actions=["undo_rollback"]), True),
    "action_id not a string": (payload(actions=[{"action_id": ["undo_rollback"]}]), True),
    "a value that is not JSON": (payload(actions=[{"action_id": "undo_rollback", "value": "{"}]), True),
    "a value without the service": (payload(actions=[{"action_id": "acknowledge", "value": '{"i": "x"}'}]), True),
    "a value whose service is not P/R/S": (
        payload(actions=[{"action_id": "acknowledge", "value": '{"s": "a/b", "i": "x"}'}]),
        True,
    ),
    "an incident that is not a string": (
        payload(actions=[{"action_id": "acknowledge", "value": '{"s": "a/b/c", "i": 5}'}]),
        True,
    ),
    "user not an object": (payload(user="U0ONCALL"), True),
    "a user id that is not a string": (payload(user={"id": 5}), True),
    "team not an object": (payload(team=["T0"]), True),
    "blocks not a list": (payload(message={"ts": "1.0", "blocks": "x"}), True),
    "no team (an org-wide app)": (payload(team=None), None),
}


@pytest.mark.parametrize(("body", "malformed"), PAYLOADS.values(), ids=PAYLOADS.keys())
def test_which_payloads_are_clicks(body, malformed):
    parsed = actions.parse_click(body)
    if malformed is None:
        assert isinstance(parsed, actions.Click)
        assert parsed.service == REF
        return
    assert isinstance(parsed, actions.NotAClick)
    assert parsed.malformed is malformed


def test_a_click_carries_who_and_where():
    parsed = actions.parse_click(payload())
    assert (parsed.user, parsed.user_name, parsed.team, parsed.channel, parsed.message_ts, parsed.action_ts) == (
        "U0ONCALL", "alice", "T0", "C0", "1.0", "1.1")  # fmt: skip


FORMS = {
    "Slack's form": (b"payload=%7B%7D", {}),
    "not ASCII": ("payload=é".encode(), None),
    "not a form": (b'{"payload": {}}', None),
    "no payload": (b"a=b", None),
    "two payloads": (b"payload=%7B%7D&payload=%7B%7D", None),
    "not JSON": (b"payload=nope", None),
    "a JSON list": (b"payload=%5B%5D", None),
    "too deep to read": (b"payload=" + b"%5B" * 5000 + b"%5D" * 5000, None),
    "too large": (b"payload=" + b"a" * 70000, None),
}


@pytest.mark.parametrize(("raw", "parsed"), FORMS.values(), ids=FORMS.keys())
def test_the_form_slack_posts(raw, parsed):
    got = actions.payload_from_form(raw)
    if parsed is None:
        assert isinstance(got, actions.NotAClick)
        assert got.malformed
    else:
        assert got == parsed


HEADERS = {
    "Slack's": ("1700000000", "v0=" + "a" * 64, True),
    "missing timestamp": (None, "v0=" + "a" * 64, False),
    "missing signature": ("1700000000", None, False),
    "non-ASCII signature": ("1700000000", "v0=" + "\xff" * 64, False),
    "upper-case hex": ("1700000000", "v0=" + "A" * 64, False),
    "short": ("1700000000", "v0=" + "a" * 63, False),
    "timestamp with a sign": ("+1700000000", "v0=" + "a" * 64, False),
    "timestamp with a fraction": ("1700000000.5", "v0=" + "a" * 64, False),
    "timestamp too long": ("1" * 13, "v0=" + "a" * 64, False),
}


@pytest.mark.parametrize(("timestamp", "signature", "wellformed"), HEADERS.values(), ids=HEADERS.keys())
def test_only_headers_of_slacks_shape_reach_the_hmac(timestamp, signature, wellformed):
    assert actions.signature_headers_wellformed(timestamp, signature) is wellformed


REFUSALS = {
    "no workspace set up": ("", True, True, {}, {}, "not set up for any workspace"),
    "another workspace": ("T1", True, True, {}, {}, "only the on-call of the workspace"),
    "a service not watched": ("T0", False, True, {}, {}, "is not a service the watchdog watches"),
    "not an approver": ("T0", True, False, {}, {}, "only the rollback approvers can do this"),
    "the group unreadable": ("T0", True, False, {}, {"group_unread": True}, "could not be read just now"),
    "the user unreadable": ("T0", True, True, None, {}, "could not be checked just now"),
    "a guest": ("T0", True, True, {"is_restricted": True}, {}, "guests and external users cannot"),
    "an external user": ("T0", True, True, {"is_stranger": True}, {}, "guests and external users cannot"),
    "deactivated": ("T0", True, True, {"deleted": True}, {}, "only full members"),
    "an approver": ("T0", True, True, {}, {}, ""),
}


@pytest.mark.parametrize(("team", "watched", "approver", "user", "extra", "says"), REFUSALS.values(),
                         ids=REFUSALS.keys())  # fmt: skip
def test_a_refusal_says_who_can_act_and_never_names_a_setting(team, watched, approver, user, extra, says):
    text = actions.refusal(click(actions.UNDO), team, watched, approver, user, **extra)
    assert (says in text) if says else text == ""
    assert re.search(r"[A-Z][A-Z0-9]*_[A-Z0-9_]+", text) is None


GROUP = {
    "a member, read 10 s ago": (10.0, True, True),
    "a member, read 61 s ago": (61.0, True, False),
    "not a member, read 1 s ago: read again": (1.0, False, False),
}


@pytest.mark.parametrize(("age", "member", "usable"), GROUP.values(), ids=GROUP.keys())
def test_only_a_recent_yes_from_the_approvers_group_is_reused(age, member, usable):
    assert actions.group_members_usable(age, member) is usable


def card(header: str = ":white_check_mark: Rolled back netra-backend-staging") -> tuple:
    return (
        {"type": "header", "text": {"type": "plain_text", "text": header}},
        actions.buttons(REF, "0.first"),
    )


def ids(blocks: list[dict]) -> list[str]:
    [block] = [b for b in blocks if b["type"] == "actions"]
    return [e["action_id"] for e in block["elements"]]


def test_the_buttons_are_valid_block_kit_and_the_undo_dialog_tells_what_follows():
    from slack_sdk.models.blocks import Block

    block = actions.buttons(REF, "0.first", paused=True)
    assert Block.parse(block).to_dict() == block
    Block.parse(block).validate_json()
    undo = block["elements"][0]["confirm"]["text"]["text"]
    assert "will not roll this failing revision back again automatically until a new deploy or a resume" in undo
