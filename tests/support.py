"""Shared helpers for the end-to-end tests, the demo and the benchmarks.

They start the real functions-framework server as a process and deliver
alerts to it the way Eventarc does: a CloudEvent in binary content mode whose
body is the Pub/Sub ``MessagePublishedData`` carrying the notification.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
PYTHON = sys.executable
FUNCTIONS_FRAMEWORK = str(Path(PYTHON).with_name("functions-framework"))


def fixture(path: str) -> dict:
    return json.loads((FIXTURES / path).read_text())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


# When the staging incident's symptoms began (2025-09-16 17:42:34 UTC): 37 hours after the breaking deploy. The
# stand-ins hold its revisions as they were then, so an alert about them starts then too (the decision counts a
# change's age from the incident's start: watchdog/core/decision.py, rule 9).
INCIDENT_SYMPTOMS = 1758044554.0


def incident_seed_at(moment: float) -> dict:
    """The incident's Cloud Run state moved in time so that its symptoms begin at ``moment`` (epoch seconds):
    a drill run today meets the breaking deploy 37 hours old, as on the day, not a year old."""
    from watchdog.core.intake import rfc3339 as parse

    seed = copy.deepcopy(fixture("cloudrun/incident_seed.json"))
    shift = moment - INCIDENT_SYMPTOMS
    for item in [*seed["revisions"], *seed["services"]]:
        for key in ("createTime", "updateTime"):
            if item.get(key):
                item[key] = rfc3339(parse(item[key]) + shift)
    return seed


def incident_alert(
    service: str,
    revision: str = "",
    *,
    incident_id: str | None = None,
    state: str = "open",
    project: str = "netra-staging",
    region: str = "us-central1",
    base: str = "alerts/v1.2_metric_threshold_cloud_run_revision_open.INFERRED.json",
    started_at: float | None = None,
) -> dict:
    """A schema 1.2 notification for a Cloud Run revision, from a stored fixture."""
    payload = copy.deepcopy(fixture(base))
    incident = payload["incident"]
    incident["incident_id"] = incident_id or f"0.{uuid.uuid4().hex[:12]}"
    incident["state"] = state
    incident["scoping_project_id"] = project
    incident["started_at"] = int(started_at or INCIDENT_SYMPTOMS)
    incident["ended_at"] = int(time.time()) if state == "closed" else None
    labels = {"project_id": project, "service_name": service, "location": region, "configuration_name": service}
    if revision:
        labels["revision_name"] = revision
    incident["resource"] = {"type": "cloud_run_revision", "labels": labels}
    incident["resource_name"] = (
        f"{project} Cloud Run Revision labels {{{', '.join(f'{k}={v}' for k, v in labels.items())}}}"
    )
    incident["url"] = (
        f"https://console.cloud.google.com/monitoring/alerting/incidents/{incident['incident_id']}?project={project}"
    )
    return payload


def rfc3339(epoch: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() if epoch is None else epoch))


def pubsub_body(
    notification: dict | bytes | str,
    attributes: dict | None = None,
    message_id: str = "",
    published_at: float | None = None,
) -> dict:
    """A push body as Pub/Sub sends it; published now unless ``published_at`` (epoch seconds) says otherwise."""
    data = notification if isinstance(notification, (bytes, str)) else json.dumps(notification)
    data = data.encode() if isinstance(data, str) else data
    message = {
        "data": base64.b64encode(data).decode(),
        "messageId": message_id or str(uuid.uuid4().int)[:16],
        "publishTime": rfc3339(published_at),
    }
    if attributes:
        message["attributes"] = attributes
    return {
        "message": message,
        "subscription": "projects/netra-staging/subscriptions/eventarc-us-central1-watchdog-sub",
    }


def deliver(url: str, body: dict, event_id: str = "", timeout: float = 90.0) -> tuple[int, str]:
    """POST one CloudEvent (binary mode), as Eventarc does. Returns (status, body)."""
    headers = {
        "Content-Type": "application/json",
        "ce-id": event_id or body.get("message", {}).get("messageId", "") or str(uuid.uuid4()),
        "ce-source": "//pubsub.googleapis.com/projects/netra-staging/topics/rollback-watchdog-alerts",
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-time": body.get("message", {}).get("publishTime") or rfc3339(),
    }
    return post(url, json.dumps(body).encode(), headers, timeout)


def deliver_until_acked(url: str, body: dict, attempts: int = 30, backoff: float = 0.5) -> list[int]:
    """Deliver like Pub/Sub: redeliver on any non-2xx (or no answer) until acknowledged.

    Returns the status of every attempt (0 for no answer). Backoff is shortened
    from Pub/Sub's 10 s minimum to keep the tests quick.
    """
    statuses = []
    for _ in range(attempts):
        try:
            status, _ = deliver(url, body)
        except OSError:
            status = 0
        statuses.append(status)
        if status in (102, 200, 201, 202, 204):
            return statuses
        time.sleep(backoff)
    raise AssertionError(f"never acknowledged after {attempts} deliveries: {statuses}")


def post(url: str, data: bytes, headers: dict, timeout: float = 30.0) -> tuple[int, str]:
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def post_json(url: str, payload: dict) -> dict:
    _status, text = post(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    return json.loads(text) if text else {}


class FunctionProcess:
    """``functions-framework --source main.py --target handle_alert --signature-type cloudevent``."""

    def __init__(
        self,
        env: dict[str, str],
        target: str = "handle_alert",
        signature: str = "cloudevent",
        cwd: Path = ROOT,
        log_path: Path | None = None,
        port: int = 0,
    ) -> None:
        self.port = port or free_port()
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.command = [
            FUNCTIONS_FRAMEWORK,
            "--source",
            "main.py",
            "--target",
            target,
            "--signature-type",
            signature,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        self.cwd = cwd
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> FunctionProcess:
        if self.log_path is not None:
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
            out = self._log
        else:
            out = subprocess.DEVNULL
        # its own process group: functions-framework runs gunicorn, whose worker is a child process
        self.process = subprocess.Popen(self.command, cwd=self.cwd, env=self.env, stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        wait_for_port(self.port, process=self.process)
        return self

    def kill(self) -> None:
        """Die at once, master and worker, as an instance does when it crashes."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        if self._log:
            self._log.close()
            self._log = None

    def logs(self) -> list[dict]:
        """The structured log lines the function printed."""
        if self.log_path is None or not self.log_path.exists():
            return []
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue
        return found

    def __enter__(self) -> FunctionProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Observed:
    """What a test reads of a running watchdog, over HTTP or in process: the Cloud Run stand-in's requests and
    traffic, and the Slack stand-in's messages (``self.cloud_run.state``, ``self.slack.state``, ``self.grants``)."""

    cloud_run: Any
    slack: Any
    grants: Any

    def denied(self) -> list:
        """Every call the grants refused (a flow that needs a permission terraform does not grant)."""
        return self.grants.denied() if self.grants is not None else []

    def patches(self, service: str | None = None) -> list[dict]:
        return [
            r for r in self.cloud_run.state.requests
            if r["method"] == "PATCH" and (service is None or r["path"].endswith(service.rsplit("/", 1)[-1]))
        ]  # fmt: skip

    def traffic_updates(self, service: str | None = None) -> list[dict]:
        """Traffic updates Cloud Run applied (answered 200)."""
        return [p for p in self.traffic_attempts(service) if p["status"] == 200]

    def traffic_attempts(self, service: str | None = None) -> list[dict]:
        """Every traffic update sent, including those Cloud Run rejected (etag mismatch, faults)."""
        return [p for p in self.patches(service) if "traffic" in p["query"].get("updateMask", "")]

    def serving(self, service: str) -> dict[str, int]:
        statuses = self.cloud_run.state.services[service]["trafficStatuses"]
        return {s["revision"]: s["percent"] for s in statuses}

    @property
    def messages(self) -> list[dict]:
        return self.slack.state.messages
