"""`make playground` as a user meets it: started as a process with --env-file, the exports sourced by a
shell, the CLI run against it (explain, status, a live drill whose card lands in Slack, status again),
the playground's own verification tick calling the rollback recovered (after ``fast-forward``), the
card's Undo button clicked through ``python -m tests.playground click undo``, then SIGTERM: a clean
exit with everything it started stopped."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import PYTHON, ROOT, get_json
from watchdog.config import ENV_VARS

pytestmark = pytest.mark.e2e

ALERT = "tests/fixtures/alerts/incident_backend_startup_metric_threshold.json"
WHERE = ["--project", "netra-staging", "--region", "us-central1"]
BACKEND = "projects/netra-staging/locations/us-central1/services/netra-backend-staging"
FAILING = "netra-backend-staging-00119-qor"
# the playground's exports are the whole configuration: nothing from the test's own environment
OURS = {*ENV_VARS, "PUBSUB_EMULATOR_HOST", "IAM_API_ENDPOINT", "CLOUDSDK_CORE_PROJECT", "CLOUDSDK_RUN_REGION"}
CLEAN = {name: value for name, value in os.environ.items() if name not in OURS}


def sourced(env_file: Path, *args: str, module: str = "watchdog") -> subprocess.CompletedProcess:
    """``source`` the exports in bash, then run ``python -m MODULE ARGS`` from the repository root."""
    script = 'source "$1" && shift && exec "$@"'
    return subprocess.run(["bash", "-c", script, "bash", str(env_file), PYTHON, "-m", module, *args],
                          cwd=ROOT, env=CLEAN, capture_output=True, text=True, timeout=60)  # fmt: skip


def exported(env_file: Path) -> dict[str, str]:
    printed = subprocess.run(["bash", "-c", 'source "$1" && env -0', "bash", str(env_file)], env=CLEAN,
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    return dict(item.split("=", 1) for item in printed.split("\0") if "=" in item)


def listening(address: str) -> bool:
    host, port = address.removeprefix("http://").split("/")[0].rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        return True
    except OSError:
        return False


def test_the_playground_runs_every_command_against_the_incident_and_stops_cleanly(tmp_path):
    env_file, out = tmp_path / "playground.env", tmp_path / "playground.out"
    with out.open("wb") as sink:
        playground = subprocess.Popen([PYTHON, "-m", "tests.playground", "--free-ports", "--env-file", str(env_file)],
                                      cwd=ROOT, env=CLEAN, stdout=sink, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not env_file.exists():
            assert playground.poll() is None, out.read_text()
            assert time.monotonic() < deadline, "no env file after 30 s:\n" + out.read_text()
            time.sleep(0.1)
        env = exported(env_file)
        assert (env["CLOUDSDK_CORE_PROJECT"], env["CLOUDSDK_RUN_REGION"]) == ("netra-staging", "us-central1")
        assert env["WATCHDOG_TOPIC"] == "projects/netra-staging/topics/rollback-watchdog-alerts"
        assert env["PATH"].startswith(str(Path(PYTHON).parent) + ":")

        explained = sourced(env_file, "explain", "--alert", ALERT, "--json")
        assert explained.returncode == 0, explained.stderr
        decision = json.loads(explained.stdout)["decision"]
        assert (decision["action"], decision["breaking"], decision["target"]) == (
            "rollback", "netra-backend-staging-00119-qor", "netra-backend-staging-00118-paz")  # fmt: skip

        before = sourced(env_file, "status", *WHERE, "--json")
        assert before.returncode == 0, before.stderr
        backend = next(s for s in json.loads(before.stdout)["services"] if s["service"].endswith("backend-staging"))
        assert (backend["pinned"], backend["rollbacks"]) == (False, [])

        drilled = sourced(env_file, "drill", *WHERE, "--service", "netra-backend-staging", "--live")
        assert drilled.returncode == 0, drilled.stderr
        assert "LIVE drill" in drilled.stderr
        messages = env["SLACK_API_URL"].removesuffix("/api/") + "/_control/messages"
        deadline = time.monotonic() + 60  # a loaded machine: the bridge and the function take turns
        while not any("Rolled back netra-backend-staging" in m["text"] for m in get_json(messages)["messages"]):
            assert time.monotonic() < deadline, "no card in Slack:\n" + out.read_text()
            time.sleep(0.2)
        [card] = get_json(messages)["messages"]
        assert card["channel"] == "C0ONCALL"
        assert card["text"].startswith("[DRILL] Rolled back netra-backend-staging to netra-backend-staging-00118-paz")

        after = sourced(env_file, "status", *WHERE, "--json")
        assert after.returncode == 0, after.stderr
        backend = next(s for s in json.loads(after.stdout)["services"] if s["service"].endswith("backend-staging"))
        assert (backend["pinned"], backend["pinned_to"]) == (True, "netra-backend-staging-00118-paz")
        [rollback] = backend["rollbacks"]
        assert (rollback["from_revision"], rollback["drill"]) == ("netra-backend-staging-00119-qor", True)
        assert rollback["incident"].startswith("drill-")

        # the tick: published by the playground every 15 s; fast-forward spares the 3½ minutes' wait
        forwarded = sourced(env_file, "fast-forward", module="tests.playground")
        assert forwarded.returncode == 0, forwarded.stderr
        assert f"netra-backend-staging: the rollback of {rollback['incident']} is now 4 min old" in forwarded.stdout
        deadline = time.monotonic() + 40
        while len(posted := get_json(messages)["messages"]) < 2:
            assert time.monotonic() < deadline, "no verdict from the playground's ticks:\n" + out.read_text()
            time.sleep(0.5)
        # The verdict goes into the thread first; a second call just after restates the card itself.
        while not posted[0]["blocks"][0]["text"]["text"].startswith(":white_check_mark: Recovered"):
            assert time.monotonic() < deadline, "the card was not restated after the verdict:\n" + out.read_text()
            time.sleep(0.2)
            posted = get_json(messages)["messages"]
        [card, verdict] = posted
        assert verdict["thread_ts"] == card["ts"]
        assert verdict["text"] == "Recovered: netra-backend-staging on netra-backend-staging-00118-paz"
        assert card["blocks"][0]["text"]["text"].startswith(":white_check_mark: Recovered: netra-backend-staging")
        verified = sourced(env_file, "status", *WHERE, "--json")
        assert verified.returncode == 0, verified.stderr
        backend = next(s for s in json.loads(verified.stdout)["services"] if s["service"].endswith("backend-staging"))
        assert [(r["outcome"], r["why"]) for r in backend["rollbacks"]] == [("recovered", "quiet")]

        # the card's Undo button, clicked by the on-call approver as Slack delivers it
        clicked = sourced(env_file, "click", "undo", module="tests.playground")
        assert clicked.returncode == 0, clicked.stdout + clicked.stderr
        assert f"U0ONCALL clicked undo_rollback on card {card['ts']}: slack_actions answered HTTP 200" in clicked.stdout
        service = get_json(f"{env['CLOUD_RUN_API_ENDPOINT']}/v2/{BACKEND}")  # a GET: the undo's operation is done
        assert {s["revision"]: s["percent"] for s in service["trafficStatuses"]} == {FAILING: 100}
        [card, _verdict] = get_json(messages)["messages"]
        assert "Undone by <@U0ONCALL>" in json.dumps(card["blocks"])
        assert "undo_rollback" not in json.dumps(card["blocks"])  # the button that no longer applies is gone
        undone = sourced(env_file, "status", *WHERE, "--json")
        backend = next(s for s in json.loads(undone.stdout)["services"] if s["service"].endswith("backend-staging"))
        assert backend["pinned"] is False

        playground.send_signal(signal.SIGTERM)
        assert playground.wait(20) == 0
    finally:  # a failed assertion still stops it the clean way, so nothing it started is left behind
        if playground.poll() is None:
            playground.send_signal(signal.SIGTERM)
            try:
                playground.wait(20)
            except subprocess.TimeoutExpired:
                playground.kill()
                playground.wait(10)
    shown = out.read_text()
    assert "Rolled back netra-backend-staging to netra-backend-staging-00118-paz" in shown  # the card, printed
    assert re.search(r"message m\d+ \(rollback-watchdog-drill=live\) → HTTP 200", shown)  # ticks are messages too
    ticks = re.findall(r"\(rollback-watchdog-tick=1\) → HTTP 200\n((?:  watchdog .*\n)+)", shown)
    assert any("watchdog [NOTICE] netra-backend-staging: recovered (quiet)" in told for told in ticks)
    assert "Slack → slack_actions: U0ONCALL clicked undo_rollback" in shown
    assert "slack action undo_rollback by U0ONCALL on netra-backend-staging: apply (undone)" in shown
    assert shown.rstrip().endswith("Playground stopped.")
    function = re.search(r"^Function: (http://\S+)", shown, re.MULTILINE).group(1)
    buttons = re.search(r"^Buttons: (http://\S+)", shown, re.MULTILINE).group(1)
    for address in (function, buttons, env["CLOUD_RUN_API_ENDPOINT"], env["SLACK_API_URL"], env["PUBSUB_EMULATOR_HOST"],
                    env["MONITORING_API_ENDPOINT"], env["IAM_API_ENDPOINT"]):  # fmt: skip
        assert not listening(address), f"{address} still listening after the playground stopped"
