"""`make playground` as a user meets it, in each of its two ways of delivering messages: started as a process with
--env-file, the exports sourced by a shell, every command the playground prints (and the README and docs/ list)
run as written, in order, each checked against what it says it does, a deploy event published to the topic as a
Logging sink would, then SIGTERM: a clean exit with everything it started stopped.

The Pub/Sub mode needs build/pstest (``make test`` builds it; the test fails, never skips, without it, as the
emulator's own tests do); the HTTP mode (``PLAYGROUND_NO_PUBSUB=1``) runs anywhere. Which one runs is read from
what the playground says on start. The rest checks how the mode is chosen, and that ``make playground`` runs the
playground on a machine where pstest cannot be built (no apt-get, or no root), building nothing when asked not to.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests import playground
from tests.standins.iam import FN
from tests.support import PYTHON, ROOT, fixture, get_json
from watchdog.config import ENV_VARS
from watchdog.core import ledger

ALERT = "tests/fixtures/alerts/incident_backend_startup_metric_threshold.json"
SERVICES = "projects/netra-staging/locations/us-central1/services/"
BACKEND, AUTH = "netra-backend-staging", "netra-auth-service"
FAILING, TARGET = "netra-backend-staging-00119-qor", "netra-backend-staging-00118-paz"
# the playground's exports are the whole configuration: nothing from the test's own environment
OURS = {*ENV_VARS, "PUBSUB_EMULATOR_HOST", "IAM_API_ENDPOINT", "CLOUDSDK_CORE_PROJECT", "CLOUDSDK_RUN_REGION",
        "CLOUD_FUNCTIONS_API_ENDPOINT", playground.NO_PUBSUB}  # fmt: skip
CLEAN = {name: value for name, value in os.environ.items() if name not in OURS}
MODES = {  # how the playground is started, and what it says on start about the way it delivers
    "Pub/Sub": ({}, "Delivery: Pub/Sub, pstest at "),
    "HTTP": ({playground.NO_PUBSUB: "1"}, "Delivery: HTTP, without Pub/Sub: asked for"),
}


@dataclass
class Playground:
    """A running playground: its exports, its output so far, and what a step saw that a later one needs."""

    env: dict[str, str]
    out: Path
    seen: dict = field(default_factory=dict)

    def shown(self) -> str:
        return self.out.read_text()

    def run(self, line: str) -> subprocess.CompletedProcess:
        """A documented command line, as written, in a bash that sourced the exports. ``rollback-watchdog`` runs as
        this checkout's ``python -m watchdog``, which the playground says it is: a .venv shared by several checkouts
        holds the launcher of whichever ran ``make setup`` last."""
        words = shlex.split(line)
        command = [PYTHON, "-m", "watchdog", *words[1:]] if words[0] == "rollback-watchdog" else words
        assert command[:3] in ([PYTHON, "-m", "watchdog"], ["python", "-m", "tests.playground"]), line
        command[0] = PYTHON
        script = 'source "$1" && shift && exec "$@"'
        return subprocess.run(["bash", "-c", script, "bash", str(self.env_file), *command], cwd=ROOT, env=CLEAN,
                              capture_output=True, text=True, timeout=90)  # fmt: skip

    @property
    def env_file(self) -> Path:
        return self.out.with_name("playground.env")

    def messages(self) -> list[dict]:
        return get_json(self.env["SLACK_API_URL"].removesuffix("/api/") + "/_control/messages")["messages"]

    def service(self, name: str) -> dict:
        return get_json(f"{self.env['CLOUD_RUN_API_ENDPOINT']}/v2/{SERVICES}{name}")

    def serving(self, name: str) -> dict[str, int]:
        return {s["revision"]: s["percent"] for s in self.service(name)["trafficStatuses"] if s.get("percent")}

    def until(self, what: Callable, why: str, timeout: float = 60.0):
        """``what()`` once it is true (a loaded machine: the delivery and the function take turns)."""
        deadline = time.monotonic() + timeout
        while not (found := what()):
            assert time.monotonic() < deadline, f"{why}, not within {timeout:g} s:\n{self.shown()}"
            time.sleep(0.2)
        return found

    def delivered(self, message_id: str, kind: str) -> None:
        """The playground said the function acknowledged this message (its decision lines follow)."""
        self.until(lambda: re.search(rf"message {re.escape(message_id)} \({re.escape(kind)}\) → HTTP 200",
                                     self.shown()), f"message {message_id} not delivered")  # fmt: skip


def section(status: str, service: str) -> str:
    """One service's lines of ``rollback-watchdog status``."""
    return status.split(f"netra-staging/us-central1/{service}:", 1)[1].split("\nnetra-staging/", 1)[0]


# --- the steps: each documented command, and what it must have done ---------------------------------------------


def explained(p: Playground, done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stderr
    assert "Decision: ROLLBACK" in done.stdout
    assert f"target: {TARGET}" in done.stdout
    assert "nothing was changed" in done.stdout
    p.seen["auth before"] = p.serving(AUTH)
    assert p.serving(BACKEND) == {FAILING: 100}


def checked(p: Playground, done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 1, done.stderr  # risky: egress flipped to all-traffic
    assert "FAIL egress-flip" in done.stdout


def all_clear(p: Playground, done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stderr
    backend = section(done.stdout, BACKEND)
    assert "no rollbacks on record" in backend
    assert "traffic pinned" not in backend


def published(p: Playground, done: subprocess.CompletedProcess, kind: str) -> str:
    assert done.returncode == 0, done.stderr
    message_id = done.stdout.strip().splitlines()[-1]  # drill prints the message id Pub/Sub gave it
    p.delivered(message_id, kind)
    return message_id


def dry_run(p: Playground, done: subprocess.CompletedProcess) -> None:
    published(p, done, "rollback-watchdog-drill=dry-run")
    [card] = p.until(lambda: [m for m in p.messages() if "DRY RUN" in m["text"]], "no dry-run card")
    assert BACKEND in card["text"]
    assert p.serving(BACKEND) == {FAILING: 100}  # a dry run changes nothing


def rolled_back(p: Playground, done: subprocess.CompletedProcess) -> None:
    published(p, done, "rollback-watchdog-drill=live")
    [card] = p.until(lambda: [m for m in p.messages() if m["text"].startswith(f"[DRILL] Rolled back {BACKEND}")],
                     "no rollback card")  # fmt: skip
    assert card["text"].startswith(f"[DRILL] Rolled back {BACKEND} to {TARGET}")
    assert card["channel"] == "C0ONCALL"
    p.seen["card"] = card["ts"]
    assert p.serving(BACKEND) == {TARGET: 100}


def verifying(p: Playground, done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stderr
    backend = section(done.stdout, BACKEND)
    assert f"traffic pinned to {TARGET}" in backend
    assert "verifying [drill]" in backend


def forwarded(p: Playground, done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stderr
    assert re.search(rf"{BACKEND}: the rollback of drill-\S+ is now 4 min old", done.stdout)
    # the playground's next tick reads Monitoring over those minutes: the verdict in the thread, the card restated
    verdict = p.until(lambda: [m for m in p.messages() if m.get("thread_ts") == p.seen["card"]], "no verdict")
    assert [m["text"] for m in verdict] == [f"Recovered: {BACKEND} on {TARGET}"]
    p.until(lambda: [m for m in p.messages() if m["ts"] == p.seen["card"]
                     and m["blocks"][0]["text"]["text"].startswith(f":white_check_mark: Recovered: {BACKEND}")],
            "the card was not restated after the verdict")  # fmt: skip


def recovered(p: Playground, done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stderr
    assert "recovered (quiet) [drill]" in section(done.stdout, BACKEND)


def undone_by_button(p: Playground, done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"U0ONCALL clicked undo_rollback on card {p.seen['card']}: slack_actions answered HTTP 200" in done.stdout
    assert p.serving(BACKEND) == {FAILING: 100}
    [card] = [m for m in p.messages() if m["ts"] == p.seen["card"]]
    assert "Undone by <@U0ONCALL>" in json.dumps(card["blocks"])
    assert "undo_rollback" not in json.dumps(card["blocks"])  # the button that no longer applies is gone


def unpinned(p: Playground, done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stderr  # a drill ends with its undo: no finding
    backend = section(done.stdout, BACKEND)
    assert "traffic pinned" not in backend
    assert "undone by U0ONCALL at " in backend


def auth_rolled_back(p: Playground, done: subprocess.CompletedProcess) -> None:
    published(p, done, "rollback-watchdog-drill=live")  # acknowledged once the watchdog is done with it
    p.until(lambda: [m for m in p.messages() if m["text"].startswith("[DRILL]") and AUTH in m["text"]], "no card")
    assert p.serving(AUTH) != p.seen["auth before"]


def refused_click(p: Playground, done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "only the rollback approvers can do this. Nothing was changed." in done.stdout
    assert ledger.PAUSED_KEY not in p.service(AUTH).get("annotations", {})


def undone_by_command(p: Playground, done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stdout + done.stderr
    assert p.serving(AUTH) == p.seen["auth before"]


def paused(p: Playground, done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stderr
    assert "watchdog paused" in done.stdout
    assert p.service(AUTH)["annotations"][ledger.PAUSED_KEY] == "true"


def resumed(p: Playground, done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stderr
    assert "watchdog active" in done.stdout
    assert ledger.PAUSED_KEY not in p.service(AUTH).get("annotations", {})


def doctored(p: Playground, done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 2, done.stdout + done.stderr  # something could not be checked, nothing wrong
    topic = "projects/netra-staging/topics/rollback-watchdog-alerts"
    assert f"OK        topic [{topic}]: exists" in done.stdout
    assert f"UNCHECKED topic_iam [{topic}]: this Pub/Sub endpoint does not implement IAM" in done.stdout
    # the deployed function's account, read from the playground's Cloud Functions stand-in, not from Google
    assert f"UNCHECKED identity [{FN}]: could not act as {FN}" in done.stdout
    assert "PROBLEM" not in done.stdout


STEPS: list[tuple[str, Callable[[Playground, subprocess.CompletedProcess], None]]] = [
    (f"rollback-watchdog explain --alert {ALERT}", explained),
    (f"rollback-watchdog check --service {BACKEND}", checked),
    ("rollback-watchdog status", all_clear),
    (f"rollback-watchdog drill --service {BACKEND}", dry_run),
    (f"rollback-watchdog drill --service {BACKEND} --live", rolled_back),
    ("rollback-watchdog status", verifying),
    ("python -m tests.playground fast-forward", forwarded),
    ("rollback-watchdog status", recovered),
    ("python -m tests.playground click undo", undone_by_button),
    ("rollback-watchdog status", unpinned),
    (f"rollback-watchdog drill --service {AUTH} --live", auth_rolled_back),
    ("python -m tests.playground click pause --user U0VISITOR", refused_click),
    (f"rollback-watchdog undo --service {AUTH}", undone_by_command),
    (f"rollback-watchdog pause --service {AUTH} --reason 'trying the playground'", paused),
    (f"rollback-watchdog resume --service {AUTH}", resumed),
    ("rollback-watchdog doctor", doctored),
]


def deploy_event(p: Playground) -> None:
    """A deploy's audit entry, published to the topic as the Logging sink publishes it (no attributes): the
    sentinel's warning lands in Slack (backend serves all-traffic; this deploy flips egress back)."""
    from google.cloud import pubsub_v1

    entry = fixture("deploys/v1_ReplaceService_gcloud_egress_all_traffic.INFERRED.json")
    entry["insertId"], entry["timestamp"] = "playground-deploy", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    entry["resource"]["labels"]["service_name"] = BACKEND
    entry["protoPayload"]["resourceName"] = entry["protoPayload"]["request"]["name"] = (
        f"namespaces/netra-staging/services/{BACKEND}"
    )
    template = entry["protoPayload"]["request"]["service"]["spec"]["template"]
    template["metadata"]["annotations"]["run.googleapis.com/vpc-access-egress"] = "private-ranges-only"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PUBSUB_EMULATOR_HOST", p.env["PUBSUB_EMULATOR_HOST"])
        publisher = pubsub_v1.PublisherClient()
        try:
            message_id = publisher.publish(p.env["WATCHDOG_TOPIC"], json.dumps(entry).encode()).result(30)
        finally:
            publisher.transport.close()
    p.delivered(message_id, "no attributes")
    p.until(lambda: [m for m in p.messages() if f"Risky deploy of `{BACKEND}`" in m["text"]], "no deploy warning")


def listening(address: str) -> bool:
    host, port = address.removeprefix("http://").split("/")[0].rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        return True
    except OSError:
        return False


def exported(env_file: Path) -> dict[str, str]:
    printed = subprocess.run(["bash", "-c", 'source "$1" && env -0', "bash", str(env_file)], env=CLEAN,
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    return dict(item.split("=", 1) for item in printed.split("\0") if "=" in item)


@pytest.mark.e2e
@pytest.mark.parametrize("mode", MODES)
def test_every_command_works_in_each_mode_and_the_playground_stops_cleanly(tmp_path, mode):
    extra, says = MODES[mode]
    env_file, out = tmp_path / "playground.env", tmp_path / "playground.out"
    with out.open("wb") as sink:
        process = subprocess.Popen([PYTHON, "-m", "tests.playground", "--free-ports", "--env-file", str(env_file),
                                    "--tick-seconds", "5"], cwd=ROOT, env={**CLEAN, **extra}, stdout=sink,
                                   stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not env_file.exists():
            assert process.poll() is None, out.read_text()
            assert time.monotonic() < deadline, "no env file after 60 s:\n" + out.read_text()
            time.sleep(0.1)
        p = Playground(exported(env_file), out)
        assert says in p.shown()
        assert (p.env["CLOUDSDK_CORE_PROJECT"], p.env["CLOUDSDK_RUN_REGION"]) == ("netra-staging", "us-central1")
        assert p.env["WATCHDOG_TOPIC"] == "projects/netra-staging/topics/rollback-watchdog-alerts"
        assert p.env["PATH"].startswith(str(Path(PYTHON).parent) + ":")
        names = re.findall(r"^export (\w+)=", env_file.read_text(), re.M)
        every = [p.env[name] for name in names if name.endswith(("_ENDPOINT", "_URL", "_HOST"))]
        assert len(every) == 6
        assert all(re.match(r"(http://)?127\.0\.0\.1:\d+", value) for value in every)  # nothing real is reached
        for line, check in STEPS:
            done = p.run(line)
            try:
                check(p, done)
            except AssertionError as failed:
                raise AssertionError(f"{line!r} ({mode}): {failed}\n{done.stdout}\n{done.stderr}") from None
        deploy_event(p)
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:  # a failed assertion still stops it the clean way, so nothing it started is left behind
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
    shown = out.read_text()
    assert f"Rolled back {BACKEND} to {TARGET}" in shown  # the card, printed
    ticks = re.findall(r"\(rollback-watchdog-tick=1\) → HTTP 200\n((?:  watchdog .*\n)+)", shown)  # messages too
    assert any(f"watchdog [NOTICE] {BACKEND}: recovered (quiet)" in told for told in ticks)
    assert "Slack → slack_actions: U0ONCALL clicked undo_rollback" in shown
    assert f"slack action undo_rollback by U0ONCALL on {BACKEND}: apply (undone)" in shown
    assert shown.rstrip().endswith("Playground stopped.")
    function = re.search(r"^Function: (http://\S+)", shown, re.MULTILINE).group(1)
    buttons = re.search(r"^Buttons: (http://\S+)", shown, re.MULTILINE).group(1)
    endpoints = ("CLOUD_RUN_API_ENDPOINT", "SLACK_API_URL", "PUBSUB_EMULATOR_HOST", "MONITORING_API_ENDPOINT",
                 "IAM_API_ENDPOINT", "CLOUD_FUNCTIONS_API_ENDPOINT")  # fmt: skip
    for address in (function, buttons, *(p.env[name] for name in endpoints)):
        assert not listening(address), f"{address} still listening after the playground stopped"


# --- the steps cover what the playground prints and what the docs list ---------------------------------------------


def command(line: str) -> str:
    """A command line without its comment, spaces normalised."""
    return " ".join(re.sub(r"\s+#.*$", "", line).split())


def documented() -> list[str]:
    """The commands of every shell block in README.md and docs/ that runs ``python -m tests.playground``."""
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for block in re.findall(r"^```(?:sh|bash|shell|console)?\n(.*?)^```", doc.read_text(), re.M | re.S):
            if "python -m tests.playground" in block:
                found += [command(line) for line in block.splitlines() if command(line)]
    return found


def test_the_steps_run_every_command_the_playground_prints_in_its_order():
    printed = [command(line) for line in playground.EXAMPLES.splitlines() if command(line)]
    assert printed == [command(line) for line, _check in STEPS]


def test_the_steps_run_every_playground_command_the_readme_and_docs_list():
    listed = documented()
    assert "python -m tests.playground click undo" in listed  # the README's block was found
    ran = iter(command(line) for line, _check in STEPS)
    assert [line for line in listed if line not in ran] == [], "listed, and not run in this order by the steps"


# --- how the mode is chosen ----------------------------------------------------------------------------------------


FORCED = {"": False, "0": False, "1": True, "yes": True, "true": True}


@pytest.mark.parametrize("value", FORCED)
def test_playground_no_pubsub_forces_the_http_mode_unless_empty_or_0(value):
    assert playground.forced_http({playground.NO_PUBSUB: value}) is FORCED[value]
    assert playground.arguments([], {playground.NO_PUBSUB: value}).no_pubsub is FORCED[value]


def test_no_pubsub_on_the_command_line_forces_the_http_mode():
    assert playground.arguments(["--no-pubsub"], {}).no_pubsub is True
    assert playground.arguments([], {}).no_pubsub is False


def test_the_mode_is_pubsub_where_pstest_is_built_and_http_otherwise_or_when_asked(tmp_path):
    built = tmp_path / "pstest"
    built.write_text("")
    assert playground.delivery_mode(False, built)[0] == playground.PUBSUB
    mode, why = playground.delivery_mode(False, tmp_path / "missing")
    assert mode == playground.HTTP
    assert "is not built" in why
    assert "golang-google-cloud-dev" in why
    mode, why = playground.delivery_mode(True, built)
    assert mode == playground.HTTP
    assert "--no-pubsub" in why


PSTEST_FAILS = {  # a build/pstest that is there and still does not run here: the HTTP mode, with the reason
    "not executable (another machine's, or no x bit)": ("", 0o644, "PermissionError"),
    "exits at once": ("#!/bin/sh\nexit 3\n", 0o755, "RuntimeError: pstest did not report readiness"),
    "says something else": ("#!/bin/sh\necho 'exec format error'\n", 0o755, "RuntimeError: pstest did not report"),
}


@pytest.mark.parametrize("case", PSTEST_FAILS)
def test_a_pstest_that_does_not_start_gives_the_reason_and_no_emulator(tmp_path, case):
    from contextlib import ExitStack

    script, mode, said = PSTEST_FAILS[case]
    binary = tmp_path / "pstest"
    binary.write_text(script)
    binary.chmod(mode)
    with ExitStack() as running:
        emulator, why = playground.start_pstest(running, 0, binary)
    assert emulator is None
    assert why.startswith("pstest did not start (")
    assert said in why


# --- make playground on a machine that cannot build pstest ---------------------------------------------------------


def fake_checkout(where: Path) -> Path:
    """The Makefile and build.sh as they are, in a checkout whose .venv is set up and whose python only says how it
    was run: ``make playground`` runs there without touching the real .venv or build/."""
    shutil.copy(ROOT / "Makefile", where / "Makefile")
    (where / "tests" / "pubsub_emulator").mkdir(parents=True)
    for name in ("build.sh", "main.go"):
        shutil.copy(ROOT / "tests" / "pubsub_emulator" / name, where / "tests" / "pubsub_emulator" / name)
    (where / "watchdog" / "tools").mkdir(parents=True)
    for name in ("requirements.txt", "requirements-dev.txt", "watchdog/tools/install.py"):
        (where / name).write_text("")
        os.utime(where / name, (1_600_000_000, 1_600_000_000))  # older than the .venv's stamp: no pip install
    bin_dir = where / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (where / ".venv" / ".installed").write_text("")
    python = bin_dir / "python"
    python.write_text(f'#!/bin/sh\necho "ran python $* with {playground.NO_PUBSUB}=${playground.NO_PUBSUB}"\n')
    python.chmod(0o755)
    return where


def tools(where: Path, names: tuple[str, ...]) -> str:
    """A PATH with only these commands: a machine without Go (and without apt-get unless named)."""
    path = where / "path"
    path.mkdir()
    for name in names:
        (path / name).symlink_to(shutil.which(name))
    return str(path)


NO_BUILD = {  # (the commands the machine has, as root?, what build.sh says)
    "no apt-get (macOS, another Linux)": (("bash", "env", "dirname", "id", "make"), True, "has no apt-get"),
    "apt-get but no root": (("bash", "env", "dirname", "id", "make", "apt-get"), False, "need root to apt-get"),
}


@pytest.mark.parametrize("case", NO_BUILD)
def test_make_playground_runs_the_playground_where_pstest_cannot_be_built(case):
    names, as_root, says = NO_BUILD[case]
    where = Path(tempfile.mkdtemp(prefix="make-playground-"))  # not under pytest's root-only tmp: nobody reads it
    try:
        where.chmod(0o755)
        fake_checkout(where)
        env = {"PATH": tools(where, names), "HOME": str(where)}
        run_as = (
            []
            if as_root or os.geteuid() != 0
            else [shutil.which("setpriv"), "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        )
        done = subprocess.run([*run_as, shutil.which("make"), "--no-print-directory", "playground"], cwd=where,
                              env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    finally:
        shutil.rmtree(where)
    assert done.returncode == 0, done.stdout + done.stderr
    assert says in done.stderr
    assert "build/pstest cannot be built here (see above); the playground delivers over HTTP instead" in done.stderr
    assert done.stdout.strip().endswith(f"ran python -m tests.playground with {playground.NO_PUBSUB}=")


def test_make_playground_with_playground_no_pubsub_builds_nothing(tmp_path):
    where = fake_checkout(tmp_path)
    env = {"PATH": tools(where, ("bash", "env", "dirname", "id", "make")), "HOME": str(where)}
    done = subprocess.run([shutil.which("make"), "--no-print-directory", "playground", f"{playground.NO_PUBSUB}=1"],
                          cwd=where, env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "build.sh" not in done.stderr
    assert done.stdout.strip().endswith(f"\nran python -m tests.playground with {playground.NO_PUBSUB}=1")
    assert not (where / "build").exists()
