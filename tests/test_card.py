"""The incident card end to end: a re-sent card as complete as the first, one card whatever Slack does.

What each state of the card says is tests/test_card_states.py."""

from __future__ import annotations

import contextlib
import json
import time

import pytest

from tests.conftest import BACKEND
from tests.standins.slack import SlackFault
from tests.support import deliver, fixture, pubsub_body
from tests.test_decision import alert, config, decide, state
from watchdog.core.report import FAILED, ROLLED_BACK, Action, render

NOW = 1758044554.0
BACKEND_ALERT = "alerts/incident_backend_startup_metric_threshold.json"


def card(kind=ROLLED_BACK, buttons=False, **alert_kw):
    service, revisions = state()
    revisions[1]["creator"] = "anthony@netra.example"
    incident = alert(
        started_at=NOW, url="https://console.cloud.google.com/monitoring/alerting/incidents/0.inc-1", **alert_kw
    )
    decided = decide(incident, service, revisions, config(), NOW)
    return render(incident, decided, Action(kind, error="boom" if kind == FAILED else ""), buttons=buttons)


def text_of(message) -> str:
    return json.dumps(message.blocks, ensure_ascii=False)


@pytest.mark.e2e
def test_a_card_resent_after_a_slack_outage_is_as_complete_as_the_first(start_stack):
    stack = start_stack()
    stack.slack.state.faults.append(SlackFault(kind="status", status=503, times=4, path="chat.postMessage"))
    first, _ = deliver(stack.function.url, pubsub_body(fixture(BACKEND_ALERT)))
    assert first == 500  # rolled back, report pending
    assert stack.serving(BACKEND) == {"netra-backend-staging-00118-paz": 100}
    time.sleep(8.5)  # the handling deadline of the stack: the first delivery is surely gone
    assert deliver(stack.function.url, pubsub_body(fixture(BACKEND_ALERT))) == (200, "OK")
    [message] = stack.messages
    text = json.dumps(message["blocks"])
    assert "*vpc egress*: `private-ranges-only` \\u2192 `all-traffic`" in text
    assert "*Rules it breaks:* `egress-flip`, `all-traffic-cloud-sql`" in text
    assert "*Traffic:* `netra-backend-staging-00118-paz` 100%, pinned by the watchdog" in text
    assert len(stack.traffic_updates()) == 1


@pytest.mark.e2e
def test_a_crash_between_the_update_and_the_card_is_reported_on_the_first_redelivery(start_stack):
    """Not after the whole handling deadline (60 s here): Pub/Sub's first redelivery comes 10 s later."""
    stack = start_stack(WATCHDOG_DEADLINE_SECONDS="60")

    def die_after_the_update(request):
        if request["method"] == "PATCH" and "traffic" in request["query"].get("updateMask", ""):
            stack.function.kill()

    stack.cloud_run.state.on_served = die_after_the_update
    body = pubsub_body(fixture(BACKEND_ALERT))
    with contextlib.suppress(OSError):  # no answer: it died
        deliver(stack.function.url, body, timeout=20)
    assert stack.messages == []  # it died before the card
    stack.cloud_run.state.on_served = None
    stack.function.stop()
    stack.function.start()
    time.sleep(10)  # Pub/Sub's minimum backoff (terraform sets it)
    assert deliver(stack.function.url, body) == (200, "OK")
    [card] = stack.messages
    assert card["text"].startswith("Rolled back netra-backend-staging to netra-backend-staging-00118-paz")
    assert "*Rules it breaks:*" in json.dumps(card["blocks"])
    assert len(stack.traffic_updates()) == 1


@pytest.mark.e2e
def test_a_slow_slack_that_accepted_the_post_still_shows_one_card(start_stack):
    """The answer to the first post comes after the client gave up (5 s); the card is found and updated."""
    stack = start_stack(WATCHDOG_DEADLINE_SECONDS="30")
    stack.slack.state.faults.append(SlackFault(kind="slow_answer", seconds=6, path="chat.postMessage"))
    assert deliver(stack.function.url, pubsub_body(fixture(BACKEND_ALERT))) == (200, "OK")
    [card] = stack.messages
    assert card["text"].startswith("Rolled back netra-backend-staging to netra-backend-staging-00118-paz")
    assert card["updates"]  # the late-answered post was found by its metadata and updated, not posted again
