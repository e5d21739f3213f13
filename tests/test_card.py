"""The incident card: what it says, its buttons, and a re-sent card as complete as the first."""

from __future__ import annotations

import contextlib
import json
import time

import pytest

from tests.conftest import BACKEND
from tests.standins.slack import SlackFault
from tests.support import deliver, fixture, pubsub_body
from tests.test_decision import alert, config, decide, state
from watchdog.core.report import FAILED, ROLLED_BACK, ROLLING_BACK, Action, render

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


class TestWhatTheCardSays:
    def test_the_change_its_fix_who_deployed_it_and_when(self):
        text = text_of(card())
        assert "*vpc egress*: `private-ranges-only` → `all-traffic`" in text
        assert "*The fix* (all-traffic-cloud-sql)" in text
        assert "Cloud NAT" in text
        assert "private IP" in text
        assert "deployed 2025-09-15 04:27 UTC, 37h14m before the alert, by anthony@netra.example" in text

    def test_what_else_the_rollback_put_back(self):
        text = text_of(card())
        assert "*The rollback also put back*" in text
        assert (
            "container.image: `gcr.io/netra-staging/netra-auth:v1.41.0` (was `gcr.io/netra-staging/netra-auth:v1.42.0`)"
            in text
        )
        assert "env `DB_CONNECT_TIMEOUT_SECONDS`" in text

    def test_links_to_the_service_the_logs_and_the_incident(self):
        text = text_of(card())
        assert (
            "<https://console.cloud.google.com/run/detail/us-central1/netra-auth-service/revisions?project=netra-staging|"
            in text
        )
        assert "https://console.cloud.google.com/logs/query;query=" in text
        assert "revision_name%3D%22netra-auth-service-00043-nul%22" in text
        assert "|the incident>" in text

    def test_undo_roll_forward_and_pause_commands_in_code_blocks(self):
        text = text_of(card())
        assert (
            "```gcloud run services update-traffic netra-auth-service \\\\\\n  --to-latest \\\\\\n  --region us-central1 --project netra-staging```"
            in text
        )
        assert (
            "```rollback-watchdog pause \\\\\\n  --project netra-staging --region us-central1 \\\\\\n  --service netra-auth-service```"
            in text
        )
        assert "*Undo*" in text

    @pytest.mark.parametrize(("kind", "headline"), [(ROLLING_BACK, ":hourglass_flowing_sand: Rolling back"),
                                                    (ROLLED_BACK, ":white_check_mark: Rolled back"),
                                                    (FAILED, ":rotating_light: ROLLBACK FAILED")])  # fmt: skip
    def test_the_headline_says_the_state(self, kind, headline):
        assert card(kind).blocks[0]["text"]["text"].startswith(headline)

    def test_a_failure_pages_from_the_blocks_not_only_the_fallback_text(self):
        message = card(FAILED)
        assert message.loud
        assert "<!here>" in message.blocks[1]["text"]["text"]
        assert "Roll back by hand" in text_of(message)

    def test_the_footer_is_plain_words(self):
        footer = card().blocks[-1]["elements"][0]["text"]
        assert footer.startswith("The rollback watchdog moved traffic only: no revision was created or deleted.")

    def test_buttons_with_confirm_dialogs_only_when_asked(self):
        assert "actions" not in [b["type"] for b in card().blocks]
        [actions] = [b for b in card(buttons=True).blocks if b["type"] == "actions"]
        ids = [e["action_id"] for e in actions["elements"]]
        assert ids == ["undo_rollback", "pause_service", "acknowledge"]
        undo, pause, _ = actions["elements"]
        assert undo["confirm"]["title"]["text"] == "Undo the rollback?"
        assert pause["confirm"]["confirm"]["text"] == "Pause"
        assert json.loads(undo["value"]) == {"s": "netra-staging/us-central1/netra-auth-service", "i": "0.inc-1"}
        assert "actions" not in [b["type"] for b in card(FAILED, buttons=True).blocks]

    def test_a_long_card_loses_whole_lines_never_half_an_entity(self):
        message = card(policy_name="&<>" * 2000)
        for block in message.blocks:
            for text in [block.get("text", {}).get("text", "")] + [f["text"] for f in block.get("fields", [])]:
                assert len(text) <= 3000
                assert "&am…" not in text
                assert not text.endswith("&amp")


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
    assert "*The fix* (all-traffic-cloud-sql)" in text
    assert "`netra-backend-staging-00119-qor` \\u2192 `netra-backend-staging-00118-paz` 100%" in text
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
    assert "*The fix*" in json.dumps(card["blocks"])
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
