"""Settings: read once, validated, and a bad value is a ConfigError that names the variable."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tests.support import deliver, fixture, pubsub_body
from watchdog.config import Config, ConfigError
from watchdog.tools.cli import cli

NUMERIC = ["WATCHDOG_COOLDOWN_SECONDS", "WATCHDOG_DEADLINE_SECONDS", "WATCHDOG_MAX_ALERT_AGE_SECONDS"]
BAD = ["inf", "-inf", "nan", "NaN", "1e400", "-1", "ten", "1e9"]


@pytest.mark.parametrize("name", NUMERIC)
@pytest.mark.parametrize("value", BAD)
def test_numeric_settings_reject_non_finite_and_out_of_range_values(name, value):
    with pytest.raises(ConfigError) as raised:
        Config.from_env({name: value})
    assert str(raised.value).startswith(f"{name}: ")


@pytest.mark.parametrize(
    ("env", "field", "expected"),
    [
        ({}, "max_alert_age_seconds", 21600),
        ({"WATCHDOG_MAX_ALERT_AGE_SECONDS": "0"}, "max_alert_age_seconds", 0),
        ({"WATCHDOG_COOLDOWN_SECONDS": "0"}, "cooldown_seconds", 0),
        ({"WATCHDOG_DEADLINE_SECONDS": "540"}, "deadline_seconds", 540.0),
    ],
)
def test_valid_numbers_are_taken(env, field, expected):
    assert getattr(Config.from_env(env), field) == expected


@pytest.mark.e2e
@pytest.mark.parametrize("value", ["inf", "nan", "1e400"])
def test_the_function_acknowledges_and_reports_once_without_a_traceback(start_stack, value):
    stack = start_stack(WATCHDOG_COOLDOWN_SECONDS=value)
    for _ in range(2):
        assert deliver(
            stack.function.url, pubsub_body(fixture("alerts/incident_backend_startup_metric_threshold.json"))
        ) == (200, "OK")
    assert stack.traffic_attempts() == []
    [message] = stack.messages
    assert "WATCHDOG_COOLDOWN_SECONDS" in message["text"]
    log = stack.function.log_path.read_text()
    assert "Traceback" not in log
    assert any("WATCHDOG_COOLDOWN_SECONDS" in line.get("message", "") for line in stack.function.logs())


@pytest.mark.parametrize("value", ["inf", "nan"])
def test_the_cli_names_the_variable_and_exits_2(tmp_path, value):
    alert = tmp_path / "alert.json"
    alert.write_text(json.dumps(fixture("alerts/incident_backend_startup_metric_threshold.json")))
    result = CliRunner().invoke(cli, ["explain", "--alert", str(alert)], env={"WATCHDOG_MAX_ALERT_AGE_SECONDS": value})
    assert result.exit_code == 2
    assert "WATCHDOG_MAX_ALERT_AGE_SECONDS" in result.output
    assert "Traceback" not in result.output
