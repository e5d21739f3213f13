"""Every card state and every report says only what is true in it (issue 20's table of named states).

Each case renders one state of the incident's auth rollback (or a report the watchdog makes instead
of a rollback) and lists the facts the message must state and those it must not: a failed card never
says traffic moved, an undone card never offers Undo, a report never claims a rollback. Every message
is parsed with slack-sdk's Block Kit models, and the first screen on a phone (header, status, cause,
next step, buttons) comes before any detail.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from slack_sdk.models.blocks import Block

from tests.test_decision import K41, K42, K43, alert, config, decide, state
from watchdog.core import card, ledger
from watchdog.core.report import Action, render
from watchdog.core.traffic import traffic_before

NOW = 1758044554.0
REVERT = "netra-auth-service-revert-7a72df"
KEPT = (("gcr.io/netra-staging/netra-auth:v1.42.0", "gcr.io/netra-staging/netra-auth@sha256:" + "ab" * 32),)
UNDO = ("undo_rollback", "U0ONCALL", NOW + 600, "1.1")
PAUSE_EVENT = ("pause_service", "U0ONCALL", NOW + 900, "1.2")


def incident(**config_kw):
    service, revisions = state()
    revisions[1]["creator"] = "anthony@netra.example"
    failing = alert(started_at=NOW, url="https://console.cloud.google.com/monitoring/alerting/incidents/0.inc-1")
    decided = decide(failing, service, revisions, config(**config_kw), NOW)
    record = ledger.Record("0.inc-1", decided.failing, decided.target, NOW, before=traffic_before(service),
                           latest=K43)  # fmt: skip
    return failing, replace(decided, record=record)


PINNED = {K41: 100}
STILL = {K43: 100}


# name, card state, [must say], [must not say], buttons (action ids, in order)
STATES = [
    ("rolling back", card.CardState(card.ROLLING_BACK),
     ["Rolling back netra-auth-service", "moving `netra-auth-service-00043-nul`", "Cloud Run accepted the update",
      "*Cause:* vpc egress `private-ranges-only` → `all-traffic` in `netra-auth-service-00042-vex`",
      "*Next step:* nothing yet"],
     ["verified", "Recovered", "<!here>"], ["undo_rollback", "pause_service", "acknowledge"]),
    ("rolled back, confirmed", card.CardState(card.ROLLED_BACK, seconds=0.21, serving=PINNED),
     ["Rolled back netra-auth-service to netra-auth-service-00041-kip",
      "*Traffic:* `netra-auth-service-00041-kip` 100%, pinned by the watchdog (verified 210 ms",
      "37h14m before the alert, by anthony@netra.example", "*Next step:* fix the cause (keep private-ranges-only",
      "--to-latest", "*The pin takes out of service* 2 deploys", "*The pin also put back*",
      "`gcr.io/netra-staging/netra-auth:v1.41.0` (was `gcr.io/netra-staging/netra-auth:v1.42.0`)",
      "*Rules it breaks:* `egress-flip`, `all-traffic-cloud-sql` (the fix is the next step above)",
      "*Undo* (traffic as it was before the rollback): the next step's command above",
      "|the incident>", "logs of netra-auth-service-00043-nul"],
     ["<!here>", "Recovered", "not verified", "*Roll forward*", "*The fix:*"],
     ["undo_rollback", "pause_service", "acknowledge"]),
    ("rolled back, the field revert offered", card.CardState(card.ROLLED_BACK, serving=PINNED),
     ["*Revert only the field*", "rollback-watchdog revert-field", "the *Revert field* button"],
     ["Field reverted"], ["undo_rollback", "revert_field", "pause_service", "acknowledge"]),
    ("not verified", card.CardState(card.UNVERIFIED, error="still reconciling", serving=STILL),
     ["Rollback of netra-auth-service not verified", "Cloud Run reports `netra-auth-service-00043-nul` 100%",
      "still reconciling", "--to-revisions netra-auth-service-00041-kip=100"],
     ["pinned by the watchdog", "Recovered"], ["undo_rollback", "pause_service", "acknowledge"]),
    ("failed", card.CardState(card.FAILED, error="RESOURCE_EXHAUSTED: quota", serving=STILL),
     ["ROLLBACK FAILED for netra-auth-service", "<!here>", "*Traffic NOT moved:* `netra-auth-service-00043-nul` 100%",
      "RESOURCE_EXHAUSTED", "roll back by hand", "--to-revisions netra-auth-service-00041-kip=100"],
     ["pinned by the watchdog", "Traffic stays on", "*Undo*", "took out of service", "The pin takes out"],
     ["pause_service", "acknowledge"]),
    ("failed: Cloud Run refused the target",
     card.CardState(card.FAILED, error=f"Revision '{K41}' is not ready and cannot serve traffic.", serving=STILL),
     ["<!here>", "Cloud Run refused `netra-auth-service-00041-kip`",
      "gcloud run revisions list --service netra-auth-service"],
     ["--to-revisions netra-auth-service-00041-kip=100"], ["pause_service", "acknowledge"]),
    ("reverting the field", card.CardState(card.REVERTING_FIELD, revert=REVERT, serving=PINNED),
     ["reverting only the field", f"creating `{REVERT}` with netra-auth-service-00043-nul's code (v1.42.0)",
      "traffic moves to", "If it never becomes Ready, the pin stays"],
     ["Field reverted", "no revision was created"], ["undo_rollback", "pause_service", "acknowledge"]),
    ("field reverted", card.CardState(card.FIELD_REVERTED, revert=REVERT, kept=KEPT, released=True,
                                      serving={REVERT: 100}),
     ["Field reverted on netra-auth-service: code kept", f"`{REVERT}` 100%", "vpc egress `private-ranges-only` set back",
      "The pin is released", "code kept: `gcr.io/netra-staging/netra-auth:v1.42.0`", "make the fix permanent",
      "it deletes no revision"],
     ["The pin takes out of service", "The pin also put back", "no revision was created", "*Revert only the field*",
      "*Why `"],  # the pin's target no longer serves: why it was trusted is history
     ["undo_rollback", "pause_service", "acknowledge"]),
    ("field revert failed", card.CardState(card.REVERT_FAILED, revert=REVERT, error=f"{REVERT} never became Ready",
                                           serving=PINNED),
     ["<!here>", "Field revert FAILED for netra-auth-service: still pinned to netra-auth-service-00041-kip",
      "without the deploys after it", f"look at `{REVERT}`'s logs"],
     ["Field reverted on", "code kept"], ["undo_rollback", "pause_service", "acknowledge"]),
    ("recovered", card.CardState(card.RECOVERED, serving=PINNED, verdict="Quiet for 10m00s: 14 healthy probes."),
     ["Recovered: netra-auth-service on netra-auth-service-00041-kip", "Quiet for 10m00s: 14 healthy probes.",
      "--to-latest"],
     ["<!here>", "NOT recovered"], ["undo_rollback", "pause_service", "acknowledge"]),
    ("not recovered", card.CardState(card.ESCALATED, serving=PINNED, verdict="3 unhealthy startup probes since."),
     ["<!here>", "NOT recovered: netra-auth-service still fails on netra-auth-service-00041-kip",
      "3 unhealthy startup probes since.", "will not roll back further"],
     ["Recovered:", "Field reverted"], ["undo_rollback", "pause_service", "acknowledge"]),
    ("undone", card.CardState(card.UNDONE, serving=STILL, events=(UNDO,)),
     ["Undone: netra-auth-service serves as before the rollback", "undone by <@U0ONCALL> at",
      "will not roll `netra-auth-service-00043-nul` back again automatically until a new deploy or a resume",
      "rollback-watchdog resume", "*History:*\n:leftwards_arrow_with_hook: Undone by <@U0ONCALL> at"],
     ["pinned by the watchdog", "*Undo*", "The pin takes out of service", "Rolled back"],
     ["pause_service", "acknowledge"]),
    ("paused", card.CardState(card.PAUSED, serving=PINNED, events=(PAUSE_EVENT,),
                              paused={"by": "Slack user U0ONCALL", "at": NOW + 900, "reason": "from the card"}),
     ["Paused: the watchdog will not roll back netra-auth-service", "Paused by Slack user U0ONCALL at",
      "(from the card)", "rollback-watchdog resume"],
     ["an unknown time", "*Pause* the watchdog", "*Resume* the watchdog"],  # resume: the next step's command, once
     ["undo_rollback", "resume_service", "acknowledge"]),
]  # fmt: skip


def everything(message) -> str:
    """All the text a message shows, block by block, as Slack receives it (mrkdwn, escaped)."""

    def walk(value):
        if isinstance(value, dict):
            for key, inner in value.items():
                yield from ([inner] if key == "text" and isinstance(inner, str) else walk(inner))
        elif isinstance(value, list):
            for inner in value:
                yield from walk(inner)

    return "\n".join(walk(message.blocks))


def rendered(kind_state: card.CardState, drill: bool = False, **config_kw):
    failing, decided = incident(**config_kw)
    if drill:
        failing = replace(failing, drill=True)
    return render(failing, decided, kind_state, buttons=True)


@pytest.mark.parametrize(("name", "kind_state", "says", "never", "buttons"), STATES, ids=[s[0] for s in STATES])
def test_each_card_state_says_what_is_true_in_it_and_nothing_else(name, kind_state, says, never, buttons):
    offer = "offered" in name
    message = rendered(kind_state, field_revert="offer" if offer else "auto")
    shown = everything(message)
    for fact in says:
        assert fact in shown, fact
    for fact in never:
        assert fact not in shown, fact
    [actions] = [b for b in message.blocks if b["type"] == "actions"]
    assert [e["action_id"] for e in actions["elements"]] == buttons
    assert message.loud is ("<!here>" in says)
    for block in message.blocks:  # valid Block Kit, as slack-sdk's models read it
        assert Block.parse(block).to_dict() == block


@pytest.mark.parametrize("kind_state", [s[1] for s in STATES], ids=[s[0] for s in STATES])
def test_the_first_screen_holds_status_cause_next_step_and_buttons(kind_state):
    """At phone width the card shows its first blocks: the header, the status with the cause and the next step,
    the command for that step, then the buttons, before any detail."""
    message = rendered(kind_state)
    kinds = [b["type"] for b in message.blocks]
    first = message.blocks[1]["text"]["text"]
    assert first.removeprefix("<!here> ").startswith(("*Traffic:*", "*Traffic NOT moved:*"))
    assert "*Cause:*" in first
    assert "*Next step:*" in first
    assert kinds.index("actions") <= 3


@pytest.mark.parametrize("kind_state", [s[1] for s in STATES], ids=[s[0] for s in STATES])
def test_a_drill_says_so_in_every_state(kind_state):
    message = rendered(kind_state, drill=True)
    assert message.blocks[0]["text"]["text"].split(" ", 1)[1].startswith("[DRILL] ")
    assert message.text.startswith("[DRILL] ")


def test_state_of_a_record_follows_what_humans_did_last():
    """Undone wins over paused, paused over a verdict, a verdict over the field revert, the field revert over the pin."""
    service, _ = state()
    service["trafficStatuses"] = [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": K41, "percent": 100}]
    record = ledger.Record("0.inc-1", K43, K41, NOW, after=((K41, 100),))
    assert card.state_of(record, service).kind == card.ROLLED_BACK
    assert card.state_of(replace(record, revert=REVERT, revert_state="pending"), service).kind == card.REVERTING_FIELD
    assert card.state_of(replace(record, state="recovered", revert=REVERT, revert_state="serving"), service).kind == (
        card.RECOVERED
    )
    paused = {**service, "annotations": {ledger.PAUSED_KEY: "true"}}
    assert card.state_of(replace(record, state="recovered"), paused).kind == card.PAUSED
    assert card.state_of(replace(record, events=(UNDO,)), paused).kind == card.UNDONE
    moved = {**service, "trafficStatuses": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": K42,
                                              "percent": 100}]}  # fmt: skip
    assert card.state_of(record, moved).kind == card.UNVERIFIED


# --- reports: a rollback decided but not made, and why ------------------------------------------------------------

# name, config and alert changes, [must say], [must not say]
REPORTS = [
    ("dry run", {"dry_run": True}, {},
     ["DRY RUN: would roll back netra-auth-service to netra-auth-service-00041-kip", "*Traffic NOT moved:*",
      "--to-revisions netra-auth-service-00041-kip=100", "*Cause:* vpc egress"], ["Rolled back"]),
    ("paused", {"paused": True}, {},
     ["Rollback held back for netra-auth-service (paused)", "rollback-watchdog resume",
      "--to-revisions netra-auth-service-00041-kip=100"], ["Rolled back"]),
    ("out of scope", {"services": None}, {},
     ["held back for netra-auth-service (out of scope)", "watched_services", "--to-revisions"], ["Rolled back"]),
    ("stale", {"max_alert_age_seconds": 60}, {"published_at": NOW - 7200},
     ["held back for netra-auth-service (stale alert)", "--to-revisions"], ["Rolled back"]),
    ("a change older than the window", {"max_change_age_hours": 24}, {},
     ["Suspect, not acted on: netra-auth-service changed its vpc egress", "before the alert",
      "--to-revisions netra-auth-service-00041-kip=100",
      "gcloud run services update netra-auth-service \\\n  --vpc-egress private-ranges-only"], ["Rolled back"]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "config_kw", "alert_kw", "says", "never"), REPORTS, ids=[r[0] for r in REPORTS])
def test_a_rollback_decided_but_not_made_says_so_with_the_command_to_make_it(name, config_kw, alert_kw, says, never):
    from watchdog.config import ServiceScope

    service, revisions = state()
    if "services" in config_kw:
        config_kw = {**config_kw, "services": ServiceScope.parse("other")}
    failing = alert(started_at=NOW, **alert_kw)
    decided = decide(failing, service, revisions, config(**config_kw), NOW + 3600 * 30)
    message = render(failing, decided, Action())
    shown = everything(message)
    assert message.blocks[1]["text"]["text"].startswith("*Traffic NOT moved:* `netra-auth-service-00043-nul` 100%")
    for fact in says:
        assert fact in shown, fact
    for fact in never:
        assert fact not in shown, fact
    for block in message.blocks:
        assert Block.parse(block).to_dict() == block


def test_clicks_in_a_row_render_one_state_each_never_stacked_and_keep_the_history():
    """Pause, resume, undo, pause: each card is rendered from the ledger as it then is (no prefix over an old body),
    its buttons fit that state, and the history lists every click."""
    failing, decided = incident()
    service, _ = state()
    service["trafficStatuses"] = [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": K41, "percent": 100}]
    record = replace(decided.record, after=((K41, 100),))
    clicks = [("pause_service", True), ("resume_service", False), ("undo_rollback", False), ("pause_service", True)]
    seen = []
    for n, (action, paused) in enumerate(clicks):
        record = replace(record, events=(*record.events, (action, "U0ONCALL", NOW + 60 * n, f"1.{n}")))
        annotations = {ledger.PAUSED_KEY: "true"} if paused else {}
        message = render(failing, decided, card.state_of(record, {**service, "annotations": annotations}), buttons=True)
        [buttons] = [b for b in message.blocks if b["type"] == "actions"]
        seen.append((message.blocks[0]["text"]["text"], [e["action_id"] for e in buttons["elements"]]))
    assert seen == [
        (":double_vertical_bar: Paused: the watchdog will not roll back netra-auth-service",
         ["undo_rollback", "resume_service", "acknowledge"]),
        (":white_check_mark: Rolled back netra-auth-service to netra-auth-service-00041-kip",
         ["undo_rollback", "pause_service", "acknowledge"]),
        (":leftwards_arrow_with_hook: Undone: netra-auth-service serves as before the rollback",
         ["pause_service", "acknowledge"]),
        (":leftwards_arrow_with_hook: Undone: netra-auth-service serves as before the rollback",
         ["resume_service", "acknowledge"]),
    ]  # fmt: skip
    assert everything(message).count(" by <@U0ONCALL> at ") >= 4
