"""Slack text written one way (watchdog/core/slack_text.py): every message clips before it escapes, fits a block
by whole lines, and names a command the same way wherever it appears."""

from __future__ import annotations

import re

import pytest

from watchdog.config import ServiceRef
from watchdog.core import precheck, sentinel, verdict_message
from watchdog.core.deploys import DeployEvent
from watchdog.core.ledger import Record
from watchdog.core.slack_text import MAX_SECTION, one_line, roll_forward_command, watchdog_command
from watchdog.core.verification import Verdict
from watchdog.core.vocabulary import DeployAction, DeployReason, VerdictAction

REF = ServiceRef("netra-staging", "us-central1", "netra-auth-service")
# an escaped text holds "&" only as the start of one of Slack's three entities
CUT_ENTITY = re.compile(r"&(?!amp;|lt;|gt;)")


def risky(findings: int, pad: int) -> tuple[DeployEvent, sentinel.DeployVerdict]:
    event = DeployEvent(REF, "google.cloud.run.v1.Services.ReplaceService", "v1", {}, principal="dev" + "x" * pad,
                        user_agent="gcloud")  # fmt: skip
    found = tuple(precheck.Finding(f"rule-{i}", precheck.FAIL, "egress & <network> " * 12) for i in range(findings))
    return event, sentinel.DeployVerdict(DeployAction.WARN, DeployReason.RISKY, "risky", findings=found)


@pytest.mark.parametrize("pad", range(7))  # where Block Kit's limit falls moves along the escapes
def test_a_long_deploy_warning_loses_whole_lines_never_half_an_escape(pad):
    event, verdict = risky(20, pad)
    message = sentinel.render(event, verdict)
    [block] = message.blocks
    shown = block["text"]["text"]
    assert len(message.text) > MAX_SECTION  # long enough to be cut
    assert len(shown) <= MAX_SECTION
    assert CUT_ENTITY.search(shown) is None
    assert shown.endswith("\n…")
    assert set(shown.split("\n")[:-1]) <= set(message.text.split("\n"))  # whole lines only


@pytest.mark.parametrize(
    ("why", "cut_at"), [("monitoring_denied", 299), ("monitoring_refused", 300), ("monitoring_unavailable", 298)]
)
def test_a_verdict_detail_is_clipped_before_it_is_escaped(why, cut_at):
    """A long detail with an escape where the clip falls: the message never shows half of ``&amp;``."""
    record = Record("0.i-1", "auth-00043", "auth-00041", 1_000.0, state=VerdictAction.UNVERIFIED, why=why,
                    verdict_at=2_000.0)  # fmt: skip
    detail = "x" * (cut_at - 2) + "&" * 40
    verdict = Verdict(VerdictAction.UNVERIFIED, why, detail)
    message = verdict_message.render(REF, record, verdict, 3_000.0, {"auth-00041": 100})
    text = message.blocks[0]["text"]["text"]
    assert CUT_ENTITY.search(text) is None
    assert "…" in text  # clipped, and says so


def test_the_roll_forward_and_check_commands_are_written_one_way():
    """The same command, wherever on-call reads it: the card's, the sentinel's note, the recovered verdict."""
    forward = one_line(roll_forward_command(REF))
    assert forward == (
        "gcloud run services update-traffic netra-auth-service --to-latest --region us-central1 --project netra-staging"
    )
    assert one_line(watchdog_command("check", REF)) == (
        "rollback-watchdog check --project netra-staging --region us-central1 --service netra-auth-service"
    )
    record = Record("0.i-1", "auth-00043", "auth-00041", 1_000.0, state=VerdictAction.RECOVERED, why="quiet",
                    verdict_at=2_000.0, recovered_at=2_000.0)  # fmt: skip
    recovered = verdict_message.render(REF, record, Verdict(VerdictAction.RECOVERED, "quiet", "quiet"), 3_000.0,
                                       {"auth-00041": 100})  # fmt: skip
    assert f"`{forward}`" in recovered.blocks[0]["text"]["text"]
    event, verdict = risky(1, 0)
    assert "`" + one_line(watchdog_command("check", REF)) + "`" in sentinel.render(event, verdict).text
