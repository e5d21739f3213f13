"""No value leaves unless it is known harmless: the credential corpus, through every mode and every output.

The breaking revision of netra-backend-staging (00119-qor, serving, all-traffic) carries every credential of
tests/credential_corpus.py: each in its env, an args list per container (the main one and sidecars), and
startup-probe headers. The watchdog then runs as it does in production (functions-framework, the real
Google and Slack clients, the stand-ins) in each mode that reports or acts, and as the operator tools
(``explain``, ``explain --json``, ``check --json``); the drill function answers over HTTP. Every request the
Slack stand-in received, the function's whole log file, the drill's answers and the CLI output are scanned
for every credential: none may appear. Each mode also shows that the diff was there (the changed names
are named), so a mode that happened to say nothing could not pass by accident.
"""

from __future__ import annotations

import copy
import html
import json
import time

import pytest
from click.testing import CliRunner

from tests import credential_corpus as corpus
from tests.conftest import BACKEND
from tests.support import FunctionProcess, fixture, incident_alert, incident_seed_at, post, pubsub_body
from watchdog.core import field_revert, ledger
from watchdog.tools.cli import cli

pytestmark = pytest.mark.e2e

FAILING = "netra-backend-staging-00119-qor"
TARGET = "netra-backend-staging-00118-paz"


def poisoned_seed(moment: float | None = None) -> dict:
    """The incident's world, the failing (and breaking) backend revision carrying the whole corpus; with
    ``moment``, moved in time so that the symptoms begin then (a drill is now)."""
    seed = incident_seed_at(moment) if moment else fixture("cloudrun/incident_seed.json")
    [target] = [r for r in seed["revisions"] if r["name"].endswith(TARGET)]
    [failing] = [r for r in seed["revisions"] if r["name"].endswith(FAILING)]
    for revision in (target, failing):  # the same containers in both, so each field is compared, not "present"
        for container in revision["containers"]:
            container["name"] = "app"
            container["args"] = ["--port", "8080"]
            container["startupProbe"] = {"httpGet": {"path": "/healthz", "port": 8080}}
        revision["containers"] += [
            {"name": f"sidecar-{i}", "image": "gcr.io/netra-staging/sidecar:1", "args": ["--workers=2"]}
            for i in range(1, len(corpus.ARGS))
        ]
    main = failing["containers"][0]
    main["env"] = main.get("env", []) + [{"name": c.name, "value": c.value} for c in corpus.ENV]
    main["args"] = corpus.ARGS[0][0]
    headers = [{"name": name, "value": value} for name, value, _ in corpus.HEADERS]
    main["startupProbe"] = {"httpGet": {"path": "/healthz", "port": 8080, "httpHeaders": headers}}
    for sidecar, (args, _) in zip(failing["containers"][1:], corpus.ARGS[1:], strict=True):
        sidecar["args"] = args
    return seed


def leaks(**outputs: str) -> list[str]:
    """Every (credential, where) seen; Slack's mrkdwn escaping (&amp;) undone first, so nothing hides behind it."""
    found = []
    for where, text in outputs.items():
        readable = text + "\n" + html.unescape(text)
        found += [f"{what} in {where}" for what, needle in corpus.needles() if needle in readable]
    return found


def seen_names(text: str) -> bool:
    """The diff reached the output: the changed env vars, args and probe are named (their values hidden)."""
    return all(name in text for name in ("DB_DSN", "containers[app].args", "containers[app].startupProbe"))


def _cooldown(stack) -> None:
    service = stack.cloud_run.state.services[BACKEND]
    earlier = ledger.Record("0.earlier", "netra-backend-staging-00100-old", "netra-backend-staging-00099-abc",
                            time.time() - 60, reported=True)  # fmt: skip
    service["annotations"] = ledger.with_record(service.get("annotations") or {}, earlier)


REVERT = field_revert.revision_name("netra-backend-staging", "0.corpus")  # the failing config, egress set back

# mode, settings, a change to the world before the alert, how long ago the alert was published, what serves after
MODES = [
    ("live rollback card, field revert", {"WATCHDOG_DEADLINE_SECONDS": "20"}, None, 0, REVERT),
    ("live rollback card, pin only", {"WATCHDOG_FIELD_REVERT": "off"}, None, 0, TARGET),
    ("rollback on any change", {"WATCHDOG_ROLLBACK_ON": "any"}, None, 0, TARGET),
    ("dry run", {"WATCHDOG_DRY_RUN": "true"}, None, 0, FAILING),
    ("paused", {"WATCHDOG_PAUSED": "true"}, None, 0, FAILING),
    ("cooldown", {}, _cooldown, 0, FAILING),
    ("stale alert", {}, None, 7 * 3600, FAILING),
    ("out of scope", {"WATCHDOG_SERVICES": "netra-auth-service"}, None, 0, FAILING),
]  # fmt: skip


@pytest.mark.parametrize(("settings", "prepare", "age", "after"), [m[1:] for m in MODES], ids=[m[0] for m in MODES])
def test_no_credential_leaves_through_the_function(start_stack, settings, prepare, age, after):
    stack = start_stack(**settings)
    stack.cloud_run.state.reset(poisoned_seed())
    if prepare:
        prepare(stack)
    alert = incident_alert("netra-backend-staging", FAILING, incident_id="0.corpus")
    body = pubsub_body(alert, published_at=time.time() - age if age else None)
    from tests.support import deliver

    assert deliver(stack.function.url, body) == (200, "OK")
    assert stack.serving(BACKEND) == {after: 100}
    slack = json.dumps(stack.slack.state.requests)
    assert stack.messages, "nothing was reported"
    if "WATCHDOG_SERVICES" not in settings:  # out of scope reads nothing, so it has no diff to show
        assert seen_names(slack)
    assert leaks(slack=slack, logs=stack.function.log_path.read_text()) == []


def test_no_credential_leaves_through_the_drill_answer(cloud_run, slack, tmp_path):
    cloud_run.state.reset(poisoned_seed(time.time()))  # a drill is now
    env = {
        "CLOUD_RUN_API_ENDPOINT": cloud_run.url,
        "WATCHDOG_SERVICES": "netra-backend-staging",
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_CHANNEL": "C0ONCALL",
        "SLACK_API_URL": slack.api_url,
        "WATCHDOG_DEADLINE_SECONDS": "20",
    }
    answers = []
    with FunctionProcess(env, target="drill", signature="http", log_path=tmp_path / "drill.log") as drill:
        for live in (False, True):
            short = {"project": "netra-staging", "region": "us-central1", "service": "netra-backend-staging",
                     "live": live}  # fmt: skip
            status, answer = post(drill.url, json.dumps(short).encode(), {"Content-Type": "application/json"})
            assert status == 200, answer
            answers.append(answer)
    assert json.loads(answers[0])["reason"] == "dry_run"
    assert json.loads(answers[1])["result"] == "rolled_back"
    assert seen_names(answers[0])
    found = leaks(dry_run=answers[0], live=answers[1], slack=json.dumps(slack.state.requests),
                  logs=(tmp_path / "drill.log").read_text())  # fmt: skip
    assert found == []


def test_no_credential_leaves_through_explain_or_check(cloud_run, tmp_path):
    cloud_run.state.reset(poisoned_seed())
    alert = tmp_path / "alert.json"
    alert.write_text(json.dumps(pubsub_body(incident_alert("netra-backend-staging", FAILING))))
    env = {"CLOUD_RUN_API_ENDPOINT": cloud_run.url, "WATCHDOG_SERVICES": "*", "WATCHDOG_ROLLBACK_ON": "any"}
    runner = CliRunner()
    outputs = {}
    for name, args in (("explain", []), ("explain --json", ["--json"])):
        result = runner.invoke(cli, ["explain", "--alert", str(alert), *args], env=env)
        assert result.exit_code == 0, result.output
        outputs[name] = result.output
    json.loads(runner.invoke(cli, ["explain", "--alert", str(alert), "--json"], env=env).stdout)  # valid JSON
    # check: the failing revision as the candidate, after traffic went back to the target
    cloud_run.state.services[BACKEND]["traffic"] = [
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": TARGET, "percent": 100}
    ]
    cloud_run.state.services[BACKEND]["trafficStatuses"] = copy.deepcopy(cloud_run.state.services[BACKEND]["traffic"])
    check = runner.invoke(cli, ["check", "--project", "netra-staging", "--region", "us-central1", "--service",
                                "netra-backend-staging", "--revision", FAILING, "--json"], env=env)  # fmt: skip
    assert check.exit_code in (0, 1), check.output
    outputs["check --json"] = check.output
    for name, text in outputs.items():
        assert seen_names(text), name
    assert leaks(**{k.replace(" ", "_").replace("-", ""): v for k, v in outputs.items()}) == []
