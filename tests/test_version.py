"""One version, said the same everywhere: watchdog/__init__.py, pyproject.toml, CHANGELOG.md, the CLI, the functions' log."""

from __future__ import annotations

import re
import tomllib

import pytest
from click.testing import CliRunner

import watchdog
from tests.support import ROOT, deliver, fixture, pubsub_body


def test_the_package_pyproject_and_changelog_name_the_same_version():
    assert re.fullmatch(r"\d+\.\d+\.\d+", watchdog.__version__)
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"] == watchdog.__version__
    newest = re.search(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert newest
    assert newest.group(1) == watchdog.__version__


def test_the_licence_is_the_one_pyproject_names():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert "Apache License" in (ROOT / "LICENSE").read_text()[:200]


def test_the_cli_prints_it():
    from watchdog.tools.cli import cli

    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"rollback-watchdog {watchdog.__version__}"


@pytest.mark.e2e
def test_the_function_logs_it_when_an_instance_starts(start_stack):
    stack = start_stack()
    assert (
        deliver(stack.function.url, pubsub_body(fixture("alerts/incident_backend_startup_metric_threshold.json")))[0]
        == 200
    )
    [started] = [line for line in stack.function.logs() if line.get("version")]
    assert started["version"] == watchdog.__version__
    assert started["message"].startswith(f"rollback watchdog {watchdog.__version__} ")
