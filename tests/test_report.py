"""The Slack message: what on-call reads, escaped and within Block Kit's limits."""

from __future__ import annotations

import json
from dataclasses import replace

from tests.test_decision import alert, config, decide, state
from watchdog.core.changes import Change
from watchdog.core.decision import Decision
from watchdog.core.report import FAILED, ROLLED_BACK, Action, render

NOW = 1758044554.0


def incident_decision() -> Decision:
    service, revisions = state()
    return decide(alert(started_at=NOW), service, revisions, config(), NOW)


def blocks_text(message) -> str:
    return json.dumps(message.blocks, ensure_ascii=False)


class TestContent:
    def test_rollback_names_the_change_its_age_revisions_and_roll_forward(self):
        message = render(alert(started_at=NOW), incident_decision(), Action(ROLLED_BACK, seconds=1.2))
        text = blocks_text(message)
        assert "*vpc egress*: `private-ranges-only` → `all-traffic`" in text
        assert "deployed 2025-09-15 04:27 UTC, 37h14m before the alert" in text
        assert "*Traffic:* `netra-auth-service-00041-kip` 100% (as set; not read back), pinned by the watchdog" in text
        assert "*The pin takes out of service* 2 deploys" in text
        assert (
            "update-traffic \\\\\\n  netra-auth-service \\\\\\n  --to-latest \\\\\\n  --region us-central1 \\\\\\n  "
            "--project netra-staging" in text
        )
        assert message.text.startswith("Rolled back netra-auth-service to netra-auth-service-00041-kip")
        assert not message.loud

    def test_egress_comes_before_every_other_change(self):
        text = blocks_text(render(alert(started_at=NOW), incident_decision(), Action(ROLLED_BACK)))
        assert text.index("vpc egress") < text.index("container.image")

    def test_dry_run_is_marked_plainly(self):
        service, revisions = state()
        decided = decide(alert(), service, revisions, config(dry_run=True), NOW)
        message = render(alert(), decided, Action(), dry_run=True)
        assert message.text.startswith("DRY RUN: would roll back")
        assert "*Traffic NOT moved:*" in blocks_text(message)
        assert "*DRY RUN*" in blocks_text(message)

    def test_drill_is_marked(self):
        service, revisions = state()
        drill = alert(drill=True)
        message = render(drill, decide(drill, service, revisions, config(), NOW), Action())
        assert message.text.startswith("[DRILL] ")

    def test_failed_rollback_is_loud_and_says_how_to_do_it_by_hand(self):
        message = render(alert(), incident_decision(), Action(FAILED, error="Revision is not ready"))
        assert message.loud
        assert "Revision is not ready" in message.text
        assert "--to-revisions netra-auth-service-00041-kip=100" in message.text

    def test_related_services_are_listed(self):
        message = render(alert(), incident_decision(), Action(ROLLED_BACK), related=["netra-backend-staging: same"])
        assert "Same change elsewhere" in blocks_text(message)


class TestEscaping:
    """Alert fields cannot ping @channel or smuggle links."""

    def test_mentions_and_links_from_the_alert_are_escaped(self):
        hostile = alert(policy_name="<!channel> <https://evil.example|click> & more", incident_id="<!here>")
        message = render(hostile, incident_decision(), Action(ROLLED_BACK))
        everything = message.text + blocks_text(message)
        assert "<!channel>" not in everything
        assert "<!here>" not in everything
        assert "<https://evil.example" not in everything
        assert "&lt;!channel&gt;" in everything

    def test_revision_values_cannot_break_out_of_code_spans(self):
        decided = replace(incident_decision(), trigger_changes=(Change("vpc egress", "egress", "a`<!channel>`", "b"),))
        text = blocks_text(render(alert(), decided, Action(ROLLED_BACK)))
        assert "<!channel>" not in text


class TestLimits:
    def test_huge_diffs_stay_within_block_kit_limits(self):
        many = tuple(Change(f"container.env.VAR_{i}", "other", "x" * 300, "y" * 300) for i in range(200))
        decided = replace(incident_decision(), changes=many, skipped=tuple(f"rev-{i}" for i in range(100)))
        message = render(alert(policy_name="p" * 5000), decided, Action(ROLLED_BACK))
        assert len(message.blocks) <= 50
        for block in message.blocks:
            if block["type"] == "header":
                assert len(block["text"]["text"]) <= 150
            if "text" in block and block["type"] == "section":
                assert len(block["text"]["text"]) <= 3000
            for field in block.get("fields", []):
                assert len(field["text"]) <= 2000
        assert len(message.text) <= 3500
