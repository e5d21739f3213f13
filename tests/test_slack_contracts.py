"""The Slack app as installed: its manifest, the scopes each call needs, channel IDs, and loud thread replies.

The Slack stand-in answers ``missing_scope`` as Slack does for any method the token's scopes do not
cover, and the bot gets exactly the scopes of ``docs/slack-app-manifest.json``. So a call the manifest
does not cover fails here (and in every end-to-end test), and a scope nothing uses shows too.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.standins.slack import (
    HISTORY_SCOPES,
    MANIFEST,
    METHOD_SCOPES,
    TOKEN,
    SlackStandIn,
    manifest_scopes,
    user,
)
from tests.support import ROOT
from watchdog.config import Config, ConfigError, SlackSettings
from watchdog.core.report import Message
from watchdog.edges.slack import SlackBot, remaining_until

PUBLIC, PRIVATE, PRIVATE_NEW_KIND = "C0ONCALL", "G0ONCALL", "C0PRIVATE"

# Slack clients' method names as the code calls them (WebClient.chat_postMessage → chat.postMessage).
SLACK_CALL = re.compile(r"\.((?:chat|conversations|users|usergroups|reactions|pins|files|team|auth|bots|apps|views|"
                        r"dnd|emoji|reminders|search|stars|bookmarks)_[A-Za-z_]+)\(")  # fmt: skip


def test_the_manifest_is_a_slack_app_manifest():
    manifest = json.loads(MANIFEST.read_text())
    assert manifest["display_information"]["name"]
    assert manifest["features"]["bot_user"]["display_name"] == "rollback-watchdog"
    interactivity = manifest["settings"]["interactivity"]
    assert interactivity["is_enabled"] is True
    assert interactivity["request_url"].startswith("https://")  # a placeholder: terraform's slack_actions_url
    bot = manifest["oauth_config"]["scopes"]["bot"]
    assert len(bot) == len(set(bot))
    assert set(manifest) <= {"_metadata", "display_information", "features", "oauth_config", "settings"}


def slack_methods_called() -> dict[str, list[str]]:
    """Every Slack Web API method the watchdog's code calls, with the files that call it."""
    found: dict[str, list[str]] = {}
    for path in [ROOT / "main.py", *sorted((ROOT / "watchdog").rglob("*.py"))]:
        for name in SLACK_CALL.findall(path.read_text()):
            found.setdefault(name.replace("_", "."), []).append(str(path.relative_to(ROOT)))
    return found


def test_every_slack_method_the_code_calls_is_covered_by_the_manifest_and_every_scope_is_used():
    called = slack_methods_called()
    assert set(called) == {"chat.postMessage", "chat.update", "chat.postEphemeral", "conversations.history",
                           "users.info", "usergroups.users.list", "auth.test"}, called  # fmt: skip
    unknown = sorted(set(called) - set(METHOD_SCOPES))
    assert unknown == [], "a method the stand-in's scope table (Slack's method reference) does not know"
    # conversations.history reads SLACK_CHANNEL, a public or a private channel (config refuses anything else)
    needed = {METHOD_SCOPES[m] for m in called if METHOD_SCOPES[m]}
    needed |= {HISTORY_SCOPES["public"], HISTORY_SCOPES["private"]} if "conversations.history" in called else set()
    assert sorted(needed - manifest_scopes()) == [], "the code needs a scope the manifest does not ask for"
    assert sorted(manifest_scopes() - needed) == [], "the manifest asks for a scope no call needs"


def exercise(slack: SlackStandIn, channel: str) -> dict[str, bool]:
    """Every Slack call the watchdog makes, through its one Slack edge, in ``channel``: which succeeded."""
    state = slack.state
    state.users["U0ONCALL"] = user("U0ONCALL")
    state.usergroups["S0ONCALL"] = ["U0ONCALL"]
    bot = SlackBot(SlackSettings(bot_token=TOKEN, channel=channel, api_url=slack.api_url),
                   remaining_until(time.monotonic() + 30))  # fmt: skip
    done: dict[str, bool] = {}
    posted = bot.post(Message("card", card="0.incident-1"))
    done["post the card (chat.postMessage)"] = posted.ok
    done["find a card whose answer was lost (conversations.history)"] = bot.find("0.incident-1", 0) == posted.thread
    done["update the card (chat.update)"] = bot.update(Message("card, updated"), posted.thread).ok
    done["a loud reply in its thread (chat.postMessage)"] = bot.post(Message("!", loud=True), posted.thread).ok
    bot.until(remaining_until(time.monotonic() + 2.5))  # a click's calls, as the buttons make them
    done["check the clicker (users.info)"] = bot.user_info("U0ONCALL").ok
    done["read the approvers' group (usergroups.users.list)"] = bot.group_members("S0ONCALL").ok
    done["tell the clicker (chat.postEphemeral)"] = bot.ephemeral(channel, "U0ONCALL", "done").ok
    channel_id, _, ts = posted.thread.partition(":")
    done["update the card after a click (chat.update)"] = bot.replace(channel_id, ts, [], "updated").ok
    return done


@pytest.mark.parametrize("channel", [PUBLIC, PRIVATE, PRIVATE_NEW_KIND], ids=["public", "private (G…)", "private (C…)"])
def test_every_call_succeeds_with_exactly_the_manifests_scopes(channel):
    with SlackStandIn() as slack:
        slack.state.private_channels.add(PRIVATE_NEW_KIND)
        done = exercise(slack, channel)
        assert slack.state.scope_refusals == []
    assert [name for name, ok in done.items() if not ok] == []


@pytest.mark.parametrize("scope", sorted(manifest_scopes()))
def test_without_any_one_manifest_scope_some_call_fails_with_missing_scope(scope):
    """No scope of the manifest is spare: each one removed breaks a call the watchdog makes."""
    failed, needed = [], set()
    for channel in (PUBLIC, PRIVATE):
        with SlackStandIn(scopes=manifest_scopes() - {scope}) as slack:
            done = exercise(slack, channel)
            failed += [name for name, ok in done.items() if not ok]
            needed |= {refusal["needed"] for refusal in slack.state.scope_refusals}
    assert scope in needed
    assert failed


HISTORY = {
    "a public channel's ID": (PUBLIC, set(), None),
    "a private channel's G… ID": (PRIVATE, set(), None),
    "a private channel's C… ID": (PRIVATE_NEW_KIND, set(), None),
    "a #name": ("#oncall", set(), "channel_not_found"),
    "a bare name": ("oncall", set(), "channel_not_found"),
    "a private channel without groups:history": (PRIVATE, {"groups:history"}, "missing_scope"),
    "a public channel without channels:history": (PUBLIC, {"channels:history"}, "missing_scope"),
}


@pytest.mark.parametrize(("channel", "removed", "error"), HISTORY.values(), ids=HISTORY.keys())
def test_conversations_history_takes_a_channel_id_and_the_scope_of_its_kind(channel, removed, error):
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    with SlackStandIn(scopes=manifest_scopes() - removed) as slack:
        slack.state.private_channels.add(PRIVATE_NEW_KIND)
        client = WebClient(token=TOKEN, base_url=slack.api_url)
        if error is None:
            assert client.conversations_history(channel=channel)["ok"] is True
            return
        with pytest.raises(SlackApiError) as raised:
            client.conversations_history(channel=channel)
        answer = raised.value.response
        assert (answer.status_code, answer["ok"], answer["error"]) == (200, False, error)
        if error == "missing_scope":
            assert answer["needed"] in removed
            assert set(answer["provided"].split(",")) == manifest_scopes() - removed


CHANNELS = {
    "a public channel ID": ("C0123ABCD", ""),
    "a private channel ID (older kind)": ("G0123ABCD", ""),
    "a #name": ("#oncall", "not a channel ID"),
    "a name": ("oncall", "not a channel ID"),
    "a lower-case ID": ("c0123abcd", "not a channel ID"),
    "a direct message": ("D0123ABCD", "not a channel ID"),
    "an ID with a space": ("C0123 ABCD", "not a channel ID"),
}


@pytest.mark.parametrize(("channel", "problem"), CHANNELS.values(), ids=CHANNELS.keys())
def test_slack_channel_must_be_a_channel_id(channel, problem):
    env = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_CHANNEL": channel}
    if not problem:
        assert Config.from_env(env).slack.channel == channel
        return
    with pytest.raises(ConfigError) as raised:
        Config.from_env(env)
    message = str(raised.value)
    assert message.startswith("SLACK_CHANNEL: ")
    assert problem in message
    assert "not the #name" in message
    assert "the ID is at the bottom of the About tab" in message  # how to find it


REPLIES = {
    "a loud reply in a thread is broadcast": (True, True, True),
    "a quiet reply stays in the thread": (True, False, False),
    "a loud top-level post is not a reply": (False, True, False),
}


@pytest.mark.parametrize(("in_thread", "loud", "broadcast"), REPLIES.values(), ids=REPLIES.keys())
def test_a_loud_thread_reply_is_broadcast_to_the_channel(in_thread, loud, broadcast):
    with SlackStandIn() as slack:
        bot = SlackBot(SlackSettings(bot_token=TOKEN, channel=PUBLIC, api_url=slack.api_url),
                       remaining_until(time.monotonic() + 30))  # fmt: skip
        card = bot.post(Message("the card"))
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "NOT recovered"}}]
        assert bot.post(Message("NOT recovered", blocks, loud=loud), card.thread if in_thread else "").ok
        sent = slack.state.messages[-1]
    assert sent.get("reply_broadcast", False) is broadcast
    assert bool(sent.get("thread_ts")) is in_thread
    assert ("<!here>" in json.dumps(sent["blocks"])) is loud  # the mention is in the blocks Slack shows
