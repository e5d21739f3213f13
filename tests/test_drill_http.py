"""The `drill` HTTP function (functions-framework --target drill --signature-type http) and `drill --url`."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from tests.conftest import BACKEND, as_identity, deployment
from tests.standins import iam
from tests.standins.slack import TOKEN
from tests.support import PYTHON, ROOT, FunctionProcess, fixture, incident_seed_at, post
from watchdog.config import ServiceRef
from watchdog.flows.drills import notification

pytestmark = pytest.mark.e2e

BACKEND_ARGS = ["--project", "netra-staging", "--region", "us-central1", "--service", "netra-backend-staging"]
BACKEND_REF = ServiceRef("netra-staging", "us-central1", "netra-backend-staging")
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def function(cloud_run, slack, tmp_path):
    """The drill function as deployed: the functions' service account, under the grants terraform/ makes."""
    cloud_run.state.reset(incident_seed_at(time.time()))  # a drill is now: the breaking deploy 37 h old, as on the day
    env = {
        "CLOUD_RUN_API_ENDPOINT": cloud_run.url,
        "WATCHDOG_SERVICES": "netra-auth-service,us-central1/netra-backend-staging",
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_CHANNEL": "C0ONCALL",
        "SLACK_API_URL": slack.api_url,
        "WATCHDOG_DEADLINE_SECONDS": "20",
    }
    cloud_run.state.policy = iam.deployed(deployment(env["WATCHDOG_SERVICES"]))
    env = as_identity(env, iam.FN, cloud_run, cloud_run.state.policy)
    with FunctionProcess(env, target="drill", signature="http", log_path=tmp_path / "drill.log") as process:
        yield process
    assert cloud_run.state.policy.denied() == []


@pytest.fixture(autouse=True)
def watched(cloud_run, monkeypatch):
    """The command checks the service is watched and exists before it sends anything: it reads the same
    WATCHDOG_SERVICES and Cloud Run as the function."""
    monkeypatch.setenv("WATCHDOG_SERVICES", "netra-auth-service,us-central1/netra-backend-staging")
    monkeypatch.setenv("CLOUD_RUN_API_ENDPOINT", cloud_run.url)


def drill(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "watchdog", "drill", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_drill_url_is_a_dry_run_reported_as_drill(function, cloud_run, slack):
    result = drill(*BACKEND_ARGS, "--url", function.url)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["incident_id"].startswith("drill-")
    assert {k: answer[k] for k in ("result", "reason", "drill", "action", "service", "failing", "target")} == {
        "result": "reported",
        "reason": "dry_run",
        "drill": "dry-run",
        "action": "report",
        "service": "netra-staging/us-central1/netra-backend-staging",
        "failing": "netra-backend-staging-00119-qor",
        "target": "netra-backend-staging-00118-paz",
    }
    assert answer["trigger_changes"] == ["vpc egress: private-ranges-only → all-traffic"]
    assert "waiting for the drill function" in result.stderr
    [message] = slack.state.messages
    assert message["text"].startswith("[DRILL] DRY RUN: would roll back netra-backend-staging")
    assert not [r for r in cloud_run.state.requests if r["method"] == "PATCH"]


def test_a_live_drill_rolls_back_and_records_it_as_a_drill(function, cloud_run, slack):
    result = drill(*BACKEND_ARGS, "--url", function.url, "--live")
    assert result.returncode == 0, result.stderr
    assert "LIVE drill" in result.stderr
    answer = json.loads(result.stdout)
    assert (answer["result"], answer["drill"], answer["target"]) == (
        "rolled_back",
        "live",
        "netra-backend-staging-00118-paz",
    )
    statuses = cloud_run.state.services[BACKEND]["trafficStatuses"]
    assert [(s["revision"], s["percent"]) for s in statuses] == [("netra-backend-staging-00118-paz", 100)]
    ledger = json.loads(cloud_run.state.services[BACKEND]["annotations"]["rollback-watchdog/rollbacks"])
    assert ledger[0]["incident"] == answer["incident_id"]
    assert ledger[0]["drill"] is True
    assert slack.state.messages[0]["text"].startswith("[DRILL] Rolled back netra-backend-staging")


def test_the_short_form_body(function, slack):
    body = {"project": "netra-staging", "region": "us-central1", "service": "netra-auth-service"}
    status, text = post(function.url, json.dumps(body).encode(), JSON)
    assert status == 200, text
    answer = json.loads(text)
    assert (answer["result"], answer["reason"], answer["drill"]) == ("reported", "dry_run", "dry-run")
    assert answer["target"] == "netra-auth-service-00041-kip"
    assert slack.state.messages[0]["text"].startswith("[DRILL] DRY RUN")


def _marked(**changes) -> dict:
    payload = notification(BACKEND_REF)
    payload["incident"].update(changes)
    return payload


REAL_ALERT = fixture("alerts/incident_backend_startup_metric_threshold.json")
LABELLED_REAL_ALERT = copy.deepcopy(REAL_ALERT)
LABELLED_REAL_ALERT["incident"]["policy_user_labels"] = {"rollback_watchdog_drill": "dry-run"}

WHERE = {"project": "netra-staging", "region": "us-central1"}
NOWHERE = {
    "type": "cloud_run_revision",
    "labels": {"project_id": "netra-staging", "location": "nowhere", "service_name": "netra-backend-staging"},
}
BAD_REQUESTS = [
    ("not JSON", b"this is not json", "the body is not JSON"),
    ("empty", b"", "the body is not JSON"),
    ("a JSON list", b"[1, 2]", "the body is a JSON list, not an object"),
    ("empty object", {}, "missing field(s): project, region, service"),
    ("no service", WHERE, "missing field(s): service"),
    ("bad service name", {**WHERE, "service": "Bad_Name"}, "not a valid service"),
    ("live is a string", {**WHERE, "service": "netra-backend-staging", "live": "yes"}, "live must be true or false"),
    ("unknown field", {**WHERE, "service": "netra-backend-staging", "revision": "netra-backend-staging-00118-paz"},
     "unknown field(s) revision"),
    ("a real alert", REAL_ALERT, "not a drill"),
    ("a real alert with the drill label", LABELLED_REAL_ALERT, "incident_id must start with 'drill-'"),
    ("an unknown drill mode", _marked(policy_user_labels={"rollback_watchdog_drill": "maybe"}), "not a drill"),
    ("a closed drill", _marked(state="closed"), "a drill is an open incident"),
    ("a drill for an invalid region", _marked(resource=NOWHERE), "names no valid Cloud Run service"),
]  # fmt: skip


def test_anything_that_is_not_a_well_formed_drill_is_rejected_with_400(function, cloud_run, slack):
    for name, body, reason in BAD_REQUESTS:
        status, text = post(function.url, body if isinstance(body, bytes) else json.dumps(body).encode(), JSON)
        assert status == 400, (name, status, text)
        assert reason in json.loads(text)["error"], (name, text)
    assert cloud_run.state.requests == []  # nothing reached Cloud Run
    assert slack.state.messages == []


def test_only_post_is_accepted(function):
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(function.url, timeout=10)
    assert error.value.code == 405


class _Capture(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict]] = []
    answer: ClassVar[tuple[int, bytes]] = (200, b'{"result": "reported"}')

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        type(self).seen.append({"headers": dict(self.headers), "body": json.loads(self.rfile.read(length))})
        status, body = type(self).answer
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def capture():
    _Capture.seen = []
    _Capture.answer = (200, b'{"result": "reported"}')
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, _Capture
    server.shutdown()
    server.server_close()


def test_the_identity_token_is_sent_as_a_bearer_header(capture):
    server, handler = capture
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    assert drill(*BACKEND_ARGS, "--url", url, WATCHDOG_ID_TOKEN="token-from-env").returncode == 0
    assert drill(*BACKEND_ARGS, "--url", url, "--id-token", "token-from-option").returncode == 0
    without = {k: v for k, v in os.environ.items() if k != "WATCHDOG_ID_TOKEN"}
    assert subprocess.run([PYTHON, "-m", "watchdog", "drill", *BACKEND_ARGS, "--url", url], cwd=ROOT, env=without,
                          capture_output=True, timeout=60).returncode == 0  # fmt: skip
    first, second, third = handler.seen
    assert first["headers"]["Authorization"] == "Bearer token-from-env"
    assert second["headers"]["Authorization"] == "Bearer token-from-option"
    assert "Authorization" not in third["headers"]
    assert first["body"]["incident"]["policy_user_labels"] == {"rollback_watchdog_drill": "dry-run"}
    assert first["body"]["incident"]["incident_id"] != second["body"]["incident"]["incident_id"]


def test_exit_codes_of_drill_url(capture):
    server, handler = capture
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    handler.answer = (400, b'{"error": "not a drill"}')
    refused = drill(*BACKEND_ARGS, "--url", url)
    assert refused.returncode == 1
    assert json.loads(refused.stdout) == {"error": "not a drill"}
    assert "answered HTTP 400" in refused.stderr
    server.shutdown()
    server.server_close()
    unreachable = drill(*BACKEND_ARGS, "--url", url, "--timeout", "5")
    assert unreachable.returncode == 2
    assert "could not reach" in unreachable.stderr


def test_json_says_what_was_sent_and_what_the_function_answered(capture):
    server, handler = capture
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    result = drill(*BACKEND_ARGS, "--url", url, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    [sent] = handler.seen
    assert data == {
        "incident_id": sent["body"]["incident"]["incident_id"], "service": "netra-staging/us-central1/netra-backend-staging",
        "drill": "dry-run", "url": url, "status": 200, "answer": {"result": "reported"},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("service", "says"),
    [("netra-backend-stagng", "is not a service the watchdog watches"),
     ("netra-frontend", "is not a service the watchdog watches")],
    ids=["a typo", "another service"],
)  # fmt: skip
def test_a_drill_of_a_service_the_watchdog_does_not_watch_sends_nothing(capture, service, says):
    server, handler = capture
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    result = drill("--project", "netra-staging", "--region", "us-central1", "--service", service, "--url", url)
    assert result.returncode == 2
    assert says in result.stderr
    assert "netra-auth-service,us-central1/netra-backend-staging" in result.stderr  # the watched list
    assert handler.seen == []  # nothing reached the drill function


def test_a_drill_of_a_watched_service_cloud_run_does_not_know_sends_nothing(capture, monkeypatch):
    server, handler = capture
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    monkeypatch.setenv("WATCHDOG_SERVICES", "netra-staging/us-central1/netra-gone")
    result = drill("--project", "netra-staging", "--region", "us-central1", "--service", "netra-gone", "--url", url)
    assert result.returncode == 2
    assert "Cloud Run has no service netra-staging/us-central1/netra-gone; nothing was sent" in result.stderr
    assert handler.seen == []
