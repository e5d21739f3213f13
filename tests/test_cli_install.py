"""The `rollback-watchdog` command as `make setup` installs it: a launcher that runs from any directory and imports
this repository's `watchdog`, never the PyPI file watcher of the same name installed beside it."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

import watchdog
from tests.support import PYTHON, ROOT
from watchdog.tools.install import launcher


def install_as_the_makefile_does(bin_dir) -> str:
    """The Makefile's own install line ($(STAMP), which setup, test and demo depend on), with BIN pointed elsewhere.

    The launcher runs with this venv's python (``--python``): the scratch bin holds no interpreter of its own."""
    stamp = (ROOT / "Makefile").read_text().split("\n$(STAMP):", 1)[1].split("\n\n", 1)[0]
    [line] = [line.strip() for line in stamp.splitlines() if "watchdog.tools.install" in line]
    assert line == "$(BIN)/python -m watchdog.tools.install $(BIN)"
    args = line.replace("$(BIN)/python", PYTHON).replace("$(BIN)", str(bin_dir)).split()
    subprocess.run([*args, "--python", PYTHON], cwd=ROOT, check=True, capture_output=True, timeout=60)
    return str(bin_dir / "rollback-watchdog")


@pytest.fixture
def command(tmp_path) -> str:
    (tmp_path / "bin").mkdir()
    return install_as_the_makefile_does(tmp_path / "bin")


def run(command: str, *args: str, cwd, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([command, *args], cwd=cwd, env={**os.environ, "PYTHONPATH": "", **env},
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_elsewhere_import_watchdog_is_the_pypi_package(tmp_path):
    """Why a launcher at all: outside the repository, this venv's `watchdog` is the file watcher."""
    found = subprocess.run([PYTHON, "-c", "import watchdog; print(watchdog.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""}, timeout=60)  # fmt: skip
    assert "site-packages" in found.stdout
    assert not found.stdout.startswith(str(ROOT / "watchdog"))


def test_the_installed_command_runs_from_any_directory(command, tmp_path):
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    assert os.access(command, os.X_OK)
    top = run(command, "--help", cwd=elsewhere)
    assert top.returncode == 0, top.stderr
    assert top.stdout.startswith("Usage: rollback-watchdog [OPTIONS] COMMAND [ARGS]...")
    for name in ("drill", "explain", "check", "doctor", "pause", "resume", "status", "undo"):
        assert re.search(rf"^  {name} ", top.stdout, re.M), name
        assert run(command, name, "--help", cwd=elsewhere).stdout.startswith(f"Usage: rollback-watchdog {name} ")
    assert run(command, "--version", cwd=elsewhere).stdout == f"rollback-watchdog {watchdog.__version__}\n"
    examples = ROOT / "docs" / "examples" / "staging-incident"
    explained = run(command, "explain", "--services", "*", "--alert", str(examples / "alert.json"),
                    "--service-json", str(examples / "service.json"),
                    "--revisions-json", str(examples / "revisions.json"), cwd=elsewhere)  # fmt: skip
    assert explained.returncode == 0, explained.stderr
    assert "Decision: ROLLBACK (rollback)" in explained.stdout


def test_a_moved_repository_is_said_plainly(tmp_path):
    """The launcher names its repository; gone, `import watchdog` finds the PyPI package, and it says so."""
    (tmp_path / "bin").mkdir()
    gone = tmp_path / "moved-away"
    path = tmp_path / "bin" / "rollback-watchdog"
    path.write_text(launcher(PYTHON, gone))
    path.chmod(0o755)
    result = run(str(path), "--help", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"rollback-watchdog: the rollback watchdog is not in {gone} (import watchdog found "
    )
    assert "Run `make setup` in the repository again" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_interpreter_path_too_long_for_a_shebang_goes_through_sh(tmp_path):
    (tmp_path / ("d" * 60)).mkdir()
    venv = tmp_path / ("d" * 60) / ("e" * 60)
    venv.symlink_to(os.path.dirname(os.path.dirname(PYTHON)))  # this venv, under a long name
    python = venv / "bin" / os.path.basename(PYTHON)
    assert len(f"#!{python}") > 127
    path = tmp_path / "rollback-watchdog"
    path.write_text(launcher(str(python)))
    path.chmod(0o755)
    assert path.read_text().startswith("#!/bin/sh\n")
    result = run(str(path), "--version", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, f"rollback-watchdog {watchdog.__version__}\n"), result.stderr
