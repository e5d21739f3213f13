"""What gcloud and kubectl users expect of `rollback-watchdog`, checked on every command: help on every option,
--json, --version, --project/--region from gcloud's settings (and saying so), errors that name what the user set,
and an unreachable API that fails in seconds with one line."""

from __future__ import annotations

import json
import os
import subprocess
import time
import tomllib

import click
import pytest
from click.testing import CliRunner

from tests.support import PYTHON, ROOT, free_port
from watchdog.tools import gcloud
from watchdog.tools.cli import cli

EVERY_COMMAND = ("drill", "explain", "check", "doctor", "pause", "resume", "status", "undo", "revert-field")
BACKEND = ["--service", "netra-backend-staging"]
WHERE = ["--project", "netra-staging", "--region", "us-central1", *BACKEND]


def test_the_group_lists_every_command():
    assert sorted(cli.commands) == sorted(EVERY_COMMAND)


def test_every_option_of_every_command_has_help():
    missing = [
        f"{name} {param.opts[0]}"
        for name, command in [("(group)", cli), *cli.commands.items()]
        for param in command.get_params(click.Context(command))
        if not (getattr(param, "help", None) or "").strip()
    ]
    assert missing == []


def test_every_command_prints_its_result_as_json_on_request():
    assert [name for name, command in cli.commands.items() if "as_json" not in {p.name for p in command.params}] == []


def test_version_is_the_one_in_pyproject():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    result = CliRunner().invoke(cli, ["--version"])
    assert (result.exit_code, result.stdout) == (0, f"rollback-watchdog {version}\n")


# --- --project and --region: as given, else CLOUDSDK_*, else the active gcloud configuration ----------------


def configuration(tmp_path, name: str, text: str, *, active: str | None = None) -> dict[str, str]:
    folder = tmp_path / "gcloud"
    (folder / "configurations").mkdir(parents=True, exist_ok=True)
    (folder / "configurations" / f"config_{name}").write_text(text)
    if active is not None:
        (folder / "active_config").write_text(active + "\n")
    return {"CLOUDSDK_CONFIG": str(folder)}


@pytest.mark.parametrize(
    ("files", "env", "project", "region", "configuration_name"),
    [
        pytest.param({"default": "[core]\nproject = p-default\n[run]\nregion = europe-west1\n"}, {},
                     "p-default", "europe-west1", "default", id="no active_config: the default configuration"),
        pytest.param({"default": "[core]\nproject = p-default\n", "work": "[core]\nproject = p-work\n"},
                     {"active": "work"}, "p-work", "", "work", id="active_config names the configuration"),
        pytest.param({"work": "[core]\nproject = p-work\n", "other": "[core]\nproject = p-other\n"},
                     {"active": "work", "CLOUDSDK_ACTIVE_CONFIG_NAME": "other"}, "p-other", "", "other",
                     id="CLOUDSDK_ACTIVE_CONFIG_NAME wins over active_config"),
        pytest.param({"default": "[core]\naccount = a@b.c\nproject =\n"}, {}, "", "", "", id="an empty value is unset"),
        pytest.param({}, {}, "", "", "", id="no configuration file"),
        pytest.param({"default": "not an ini file"}, {}, "", "", "", id="an unreadable file is no configuration"),
    ],
)  # fmt: skip
def test_gcloud_configuration_files(tmp_path, files, env, project, region, configuration_name):
    variables = {"CLOUDSDK_CONFIG": str(tmp_path / "gcloud")}
    (tmp_path / "gcloud").mkdir()
    for name, text in files.items():
        variables = configuration(tmp_path, name, text, active=env.get("active"))
    variables.update({k: v for k, v in env.items() if k != "active"})
    found_project, found_region = gcloud.configured("project", variables), gcloud.configured("region", variables)
    assert (found_project.value, found_region.value) == (project, region)
    if project:
        path = tmp_path / "gcloud" / "configurations" / f"config_{configuration_name}"
        assert found_project.source == f"gcloud configuration {configuration_name!r}, core/project in {path}"


def test_the_configuration_folder_defaults_to_the_home_folder(tmp_path):
    configuration(tmp_path / "home" / ".config", "default", "[core]\nproject = p-home\n")
    assert gcloud.configured("project", {"HOME": str(tmp_path / "home")}).value == "p-home"


def test_project_and_region_from_gcloud_are_said_on_stderr_and_json_stays_clean(cloud_run, tmp_path):
    env = {**configuration(tmp_path, "work", "[core]\nproject = netra-staging\n[run]\nregion = europe-west1\n",
                           active="work"),
           "CLOUDSDK_RUN_REGION": "us-central1", "CLOUD_RUN_API_ENDPOINT": cloud_run.url}  # fmt: skip
    result = CliRunner().invoke(cli, ["check", *BACKEND, "--json"], env=env)
    assert result.exit_code == 1, result.output  # the incident revision is risky
    assert json.loads(result.stdout)["service"] == "netra-staging/us-central1/netra-backend-staging"
    path = tmp_path / "gcloud" / "configurations" / "config_work"
    assert f"project: netra-staging (from gcloud configuration 'work', core/project in {path})\n" in result.stderr
    assert "region: us-central1 (from CLOUDSDK_RUN_REGION)\n" in result.stderr  # the variable wins over the file
    given = CliRunner().invoke(cli, ["check", *WHERE, "--json"], env=env)
    assert "project:" not in given.stderr  # given on the command line: nothing to say


def test_no_project_anywhere_says_every_way_to_give_one(cloud_run):
    result = CliRunner().invoke(cli, ["pause", "--region", "us-central1", *BACKEND],
                                env={"CLOUD_RUN_API_ENDPOINT": cloud_run.url})  # fmt: skip
    assert result.exit_code == 2
    assert "no project: give --project, set CLOUDSDK_CORE_PROJECT, or run `gcloud config set project VALUE`" in (
        result.stderr
    )
    region = CliRunner().invoke(cli, ["check", "--project", "netra-staging", *BACKEND])
    assert "no region: give --region, set CLOUDSDK_RUN_REGION, or run `gcloud config set run/region VALUE`" in (
        region.stderr
    )
    assert cloud_run.state.requests == []


# --- errors name what the user set --------------------------------------------------------------------------

ALERT = str(ROOT / "docs" / "examples" / "staging-incident" / "alert.json")


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        pytest.param(["explain", "--alert", ALERT], {"WATCHDOG_ROLLBACK_ON": "bogus"},
                     "Invalid value for WATCHDOG_ROLLBACK_ON: 'bogus' is not one of", id="a choice from the variable"),
        pytest.param(["explain", "--alert", ALERT, "--rollback-on", "bogus"], {},
                     "Invalid value for '--rollback-on': 'bogus' is not one of", id="a choice from the flag"),
        pytest.param(["explain", "--alert", ALERT], {"WATCHDOG_DRY_RUN": "maybe"},
                     "Invalid value for WATCHDOG_DRY_RUN: 'maybe' is not a valid boolean", id="a flag's variable"),
        pytest.param(["explain", "--alert", ALERT], {"WATCHDOG_SERVICES": "a/b/c/d"},
                     "invalid configuration: WATCHDOG_SERVICES: entry 'a/b/c/d'", id="a setting from the variable"),
        pytest.param(["explain", "--alert", ALERT, "--services", "a/b/c/d"], {},
                     "invalid configuration: --services: entry 'a/b/c/d'", id="a setting from the flag"),
        pytest.param(["doctor", "--project", "netra-staging"], {"WATCHDOG_TOPIC": "t"},
                     "WATCHDOG_TOPIC 't' is not projects/PROJECT/topics/TOPIC", id="the topic from the variable"),
        pytest.param(["drill", *WHERE, "--topic", "t"], {},
                     "--topic 't' is not projects/PROJECT/topics/TOPIC", id="the topic from the flag"),
        pytest.param(["check", "--region", "us-central1", *BACKEND], {"CLOUDSDK_CORE_PROJECT": "Bad_Project"},
                     "CLOUDSDK_CORE_PROJECT 'Bad_Project' is not a valid name", id="the project from the variable"),
        pytest.param(["check", "--project", "Bad_Project", "--region", "us-central1", *BACKEND], {},
                     "--project 'Bad_Project' is not a valid name", id="the project from the flag"),
    ],
)  # fmt: skip
def test_an_error_names_the_flag_or_the_variable_that_was_set(args, env, says):
    result = CliRunner().invoke(cli, args, env={"CLOUD_RUN_API_ENDPOINT": "http://127.0.0.1:9", **env})
    assert result.exit_code == 2, result.output
    assert says in result.stderr


def test_a_bad_project_in_the_gcloud_configuration_is_named_with_its_file(tmp_path):
    env = configuration(tmp_path, "default", "[core]\nproject = Bad_Project\n")
    result = CliRunner().invoke(cli, ["check", "--region", "us-central1", *BACKEND], env=env)
    assert result.exit_code == 2
    path = tmp_path / "gcloud" / "configurations" / "config_default"
    assert (f"the project 'Bad_Project' (from gcloud configuration 'default', core/project in {path}) is not a valid "
            "name") in result.stderr  # fmt: skip


def test_a_bad_setting_from_the_environment_is_a_doctor_problem_under_its_own_name(tmp_path):
    endpoints = {"MONITORING_API_ENDPOINT": f"127.0.0.1:{free_port()}", "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{free_port()}",
                 "CLOUD_RUN_API_ENDPOINT": f"http://127.0.0.1:{free_port()}"}  # fmt: skip
    args = ["doctor", "--project", "netra-staging", "--topic", "projects/netra-staging/topics/t", "--json"]
    flag = CliRunner().invoke(cli, [*args, "--services", "a/b/c/d"], env=endpoints)
    variable = CliRunner().invoke(cli, args, env={**endpoints, "WATCHDOG_SERVICES": "a/b/c/d"})
    messages = [
        [f["message"] for f in json.loads(r.stdout)["findings"] if f["check"] == "config"] for r in (flag, variable)
    ]
    assert messages == [["invalid configuration: --services: entry 'a/b/c/d' is not SERVICE, REGION/SERVICE or "
                         "PROJECT/REGION/SERVICE"],
                        ["invalid configuration: WATCHDOG_SERVICES: entry 'a/b/c/d' is not SERVICE, REGION/SERVICE or "
                         "PROJECT/REGION/SERVICE"]]  # fmt: skip


# --- an unreachable endpoint: seconds, one line, no traceback -------------------------------------------------


def closed() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    return free_port()


@pytest.mark.parametrize(
    ("args", "endpoint", "error"),
    [
        pytest.param(["check", *WHERE], "CLOUD_RUN_API_ENDPOINT", "Cloud Run API at 127.0.0.1:{port} is unreachable",
                     id="check"),
        pytest.param(["explain", "--alert", ALERT], "CLOUD_RUN_API_ENDPOINT",
                     "Cloud Run API at 127.0.0.1:{port} is unreachable", id="explain, live"),
        pytest.param(["status", "--services", "netra-staging/us-central1/netra-backend-staging"],
                     "CLOUD_RUN_API_ENDPOINT", "Cloud Run API at 127.0.0.1:{port} is unreachable", id="status"),
        pytest.param(["pause", *WHERE], "CLOUD_RUN_API_ENDPOINT", "Cloud Run API at 127.0.0.1:{port} is unreachable",
                     id="pause"),
        pytest.param(["undo", *WHERE], "CLOUD_RUN_API_ENDPOINT", "Cloud Run API at 127.0.0.1:{port} is unreachable",
                     id="undo"),
        pytest.param(["drill", *WHERE, "--topic", "projects/netra-staging/topics/t", "--services",
                      "netra-backend-staging"], "PUBSUB_EMULATOR_HOST",
                     "Pub/Sub API emulator at 127.0.0.1:{port} is unreachable", id="drill --topic"),
    ],
)  # fmt: skip
def test_an_unreachable_api_fails_in_seconds_with_one_line(args, endpoint, error):
    """Default deadlines (30 s reads, 90 s publish): the bound comes from the connection check, not from them."""
    port = closed()
    value = f"http://127.0.0.1:{port}" if endpoint.endswith("ENDPOINT") else f"127.0.0.1:{port}"
    started = time.monotonic()
    result = subprocess.run([PYTHON, "-m", "watchdog", *args], cwd=ROOT, env={**os.environ, endpoint: value},
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    took = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert took < 10
    lines = result.stderr.splitlines()
    assert lines[-1] == f"Error: {error.format(port=port)}: connection refused"
    assert any(line.startswith("connecting to the ") and line.endswith(" …") for line in lines)  # while waiting
    assert "Traceback" not in result.stderr
    assert "RetryError" not in result.stderr
    assert result.stdout == ""


def test_doctor_with_every_api_unreachable_says_so_per_check_in_seconds():
    ports = {name: closed() for name in ("monitoring", "pubsub", "cloud_run")}
    env = {**os.environ, "MONITORING_API_ENDPOINT": f"127.0.0.1:{ports['monitoring']}",
           "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{ports['pubsub']}",
           "CLOUD_RUN_API_ENDPOINT": f"http://127.0.0.1:{ports['cloud_run']}", "WATCHDOG_SERVICES": "api"}  # fmt: skip
    started = time.monotonic()
    result = subprocess.run(
        [PYTHON, "-m", "watchdog", "doctor", "--project", "netra-staging", "--region", "us-central1",
         "--topic", "projects/netra-staging/topics/t", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert time.monotonic() - started < 10
    assert result.returncode == 2, result.stderr
    unchecked = {f["check"]: f["message"] for f in json.loads(result.stdout)["findings"] if f["status"] == "unchecked"}
    assert unchecked == {
        "channel": f"could not list notification channels: Monitoring API at 127.0.0.1:{ports['monitoring']} is "
                   "unreachable: connection refused",
        "topic": f"could not read the topic: Pub/Sub API at 127.0.0.1:{ports['pubsub']} is unreachable: "
                 "connection refused",
        "service": f"could not read the services: Cloud Run API at 127.0.0.1:{ports['cloud_run']} is unreachable: "
                   "connection refused",
    }  # fmt: skip
    assert "Traceback" not in result.stderr


# --- --json where there was none -----------------------------------------------------------------------------


def test_pause_and_resume_print_json(cloud_run):
    env = {"CLOUD_RUN_API_ENDPOINT": cloud_run.url}
    paused = CliRunner().invoke(cli, ["pause", *WHERE, "--json", "--by", "carol"], env=env)
    again = CliRunner().invoke(cli, ["pause", *WHERE, "--json"], env=env)
    resumed = CliRunner().invoke(cli, ["resume", *WHERE, "--json"], env=env)
    service = "netra-staging/us-central1/netra-backend-staging"
    assert [json.loads(r.stdout) for r in (paused, again, resumed)] == [
        {"service": service, "watchdog": "paused", "changed": True, "slack": None},  # no rollback: no card to tell
        {"service": service, "watchdog": "paused", "changed": False, "slack": None},
        {"service": service, "watchdog": "active", "changed": True, "slack": None},
    ]
