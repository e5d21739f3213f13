"""`python -m watchdog` itself: help and exit codes everywhere, our package only, off the function's cold start."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from tests.support import PYTHON, ROOT
from watchdog.tools.cli import cli

COMMANDS = ("drill", "explain", "check", "doctor", "pause", "resume", "status", "undo")


def watchdog_cli(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "watchdog", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def help_exit_codes(text: str) -> set[str]:
    block = text.split("Exit codes:", 1)[1]
    return set(re.findall(r"^\s+(\d)\s{2}", block.split("\n\n", 1)[0], re.M))


def test_help_everywhere_with_exit_codes_in_the_epilog():
    top = watchdog_cli("--help")
    assert top.returncode == 0
    for command in COMMANDS:
        assert command in top.stdout
        result = watchdog_cli(command, "--help")
        assert result.returncode == 0, result.stderr
        assert f"Usage: python -m watchdog {command}" in result.stdout
        codes = help_exit_codes(result.stdout)
        assert "0" in codes, command
        assert "2" in codes, command


def test_the_operator_tools_section_documents_the_same_exit_codes():
    """docs/operate.md's exit-code table: a command's row has a meaning under exactly the codes its --help lists."""
    table = (ROOT / "docs" / "operate.md").read_text().split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    header, rows = None, {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if not cells or set(cells[0]) <= {"-", " "}:
            continue
        if header is None:
            header = [cell.strip("`") for cell in cells]
            continue
        for command in re.findall(r"`([a-z-]+)`", cells[0]):
            rows[command] = {code for code, meaning in zip(header[1:], cells[1:], strict=True) if meaning}
    assert set(rows) == set(COMMANDS) | {"revert-field"}
    for command, documented in rows.items():
        assert documented == help_exit_codes(watchdog_cli(command, "--help").stdout), command


def test_options_name_the_functions_environment_variables():
    from watchdog.config import ENV_VARS

    text = "".join(CliRunner().invoke(cli, [c, "--help"]).stdout for c in COMMANDS)
    named = set(re.findall(r"\b(WATCHDOG_[A-Z_]+|CLOUD_RUN_API_ENDPOINT|MONITORING_API_ENDPOINT)\b", text))
    assert named <= set(ENV_VARS)
    assert {"WATCHDOG_SERVICES", "WATCHDOG_TOPIC", "WATCHDOG_ID_TOKEN", "CLOUD_RUN_API_ENDPOINT"} <= named


def test_main_refuses_a_watchdog_package_that_is_not_ours(tmp_path):
    fake = tmp_path / "watchdog"
    fake.mkdir()
    (fake / "__init__.py").write_text("")  # a package named watchdog without our marker
    shutil.copy(ROOT / "watchdog" / "__main__.py", fake / "__main__.py")
    result = subprocess.run([PYTHON, "-m", "watchdog", "--help"], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": ""}, timeout=60)  # fmt: skip
    assert result.returncode == 1
    assert "is not the rollback watchdog; run it from its repo root" in result.stderr


def test_main_py_keeps_the_cli_and_its_clients_off_the_cold_start_path():
    script = (
        "import sys, main\n"
        # watchdog.core.precheck is not here: its rules (and their fixes) are part of the pure core now
        "heavy = ('watchdog.tools.cli', 'watchdog.flows.drills', 'watchdog.tools.doctor', 'watchdog.edges.monitoring', 'watchdog.flows.blast_radius',"
        " 'watchdog.flows.slack_actions', 'watchdog.flows.deploy_events', 'slack_sdk', 'google.cloud.pubsub_v1',"
        " 'google.cloud.monitoring_v3')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "print(callable(main.drill), callable(main.handle_alert))"
    )
    out = subprocess.check_output([PYTHON, "-c", script], cwd=ROOT, text=True)
    assert out.splitlines() == ["[]", "True True"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--project", "p-roject", "--region", "us-central1", "--service", "api"], "give --topic"),
        (["--project", "p-roject", "--region", "us-central1", "--service", "api", "--topic", "projects/p/topics/t",
          "--url", "http://127.0.0.1:9/"], "not both"),
        (["--project", "p-roject", "--region", "us-central1", "--service", "Not_A_Service", "--url", "http://x/"],
         "is not a valid name"),
        (["--project", "p-roject", "--region", "us-central1", "--service", "api", "--topic", "t"],
         "is not projects/PROJECT/topics/TOPIC"),
    ],
)  # fmt: skip
def test_drill_usage_errors_exit_2(args, message):
    result = CliRunner().invoke(cli, ["drill", *args], env={"WATCHDOG_TOPIC": None})
    assert result.exit_code == 2
    assert message in result.output


def test_no_google_credentials_is_exit_2_with_a_hint(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_ENDPOINT", "_EMULATOR_HOST", "CREDENTIALS"))}
    env.update(HOME=str(tmp_path), CLOUDSDK_CONFIG=str(tmp_path), NO_GCE_CHECK="True")
    result = subprocess.run(
        [PYTHON, "-m", "watchdog", "check", "--project", "netra-staging", "--region", "us-central1", "--service", "api"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Error: no Google credentials" in result.stderr
    assert "Traceback" not in result.stderr
