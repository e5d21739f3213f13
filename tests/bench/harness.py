"""Measuring instruments: a timed request log on the Cloud Run stand-in and a function launcher.

The stand-in logs each request's arrival (``time``); the bench adds when its
answer was written (``done``) and the status, without changing the stand-in:
the log list remembers, per server thread, the request being served, and a
wrapper around the handler's ``_send`` stamps it. Everything runs in this
process, so arrival times and the bench's own ``time.monotonic()`` share a clock.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.bench.seeds import SYMPTOMS, revision_name
from tests.standins import cloudrun as cloudrun_standin
from tests.standins.cloudrun import CloudRunStandIn
from tests.standins.slack import TOKEN, SlackStandIn
from tests.support import FUNCTIONS_FRAMEWORK, ROOT, free_port, incident_alert, pubsub_body

_current = threading.local()


class TimedLog(list):
    """The stand-in's request log; calls ``on_arrival`` (e.g. on the update) as a request arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.on_arrival: Callable[[dict], None] | None = None

    def append(self, entry: dict) -> None:  # type: ignore[override]
        _current.entry = entry
        super().append(entry)
        if self.on_arrival is not None:
            self.on_arrival(entry)


_original_send = cloudrun_standin._Handler._send


def _timed_send(self, status: int, payload: dict, headers: dict | None = None) -> None:
    entry = getattr(_current, "entry", None)
    _current.entry = None
    _original_send(self, status, payload, headers)
    if entry is not None:
        entry["done"] = time.monotonic()
        entry["status"] = status


cloudrun_standin._Handler._send = _timed_send  # type: ignore[method-assign]


def cloud_run_standin(seed: dict) -> CloudRunStandIn:
    api = CloudRunStandIn(seed)
    api.state.requests = TimedLog()
    return api


def reseed(api: CloudRunStandIn, seed: dict, latency: float | None = None) -> None:
    """Replace everything the stand-in holds with ``seed``; clear the log."""
    state = api.state
    with state.lock:
        state.services.clear()
        state.revisions.clear()
        state.operations.clear()
        state.faults.clear()
        state.requests.clear()
        state.load(seed)
        if latency is not None:
            state.latency = latency


def is_update(entry: dict) -> bool:
    return entry["method"] == "PATCH" and "traffic" in entry["query"].get("updateMask", "")


def before_update(log: list[dict], service: str, since: float = 0.0) -> tuple[list[dict], dict | None]:
    """The Cloud Run requests for ``service`` from ``since`` to its traffic update, and the update."""
    mine = [e for e in log if e["time"] >= since and f"/services/{service}" in e["path"]]
    update = next((e for e in mine if is_update(e)), None)
    if update is None:
        return mine, None
    return [e for e in mine if e["time"] < update["time"]], update


def round_trips(requests: list[dict]) -> int:
    """Sequential round trips: requests whose [arrival, answer] intervals overlap count as one."""
    trips, end = 0, float("-inf")
    for entry in sorted(requests, key=lambda e: e["time"]):
        done = entry.get("done", entry["time"])
        if entry["time"] > end:
            trips += 1
            end = done
        else:
            end = max(end, done)
    return trips


def standin_busy(requests: list[dict], latency: float) -> float:
    """Seconds the stand-in spent serving these requests sequentially, beyond the injected latency.

    Overlapping requests count once (the longest of the group), as for round trips.
    """
    total, group_end, group_cost = 0.0, float("-inf"), 0.0
    for entry in sorted(requests, key=lambda e: e["time"]):
        cost = max(0.0, entry.get("done", entry["time"]) - entry["time"] - latency)
        if entry["time"] > group_end:
            total += group_cost
            group_cost = cost
            group_end = entry.get("done", entry["time"])
        else:
            group_cost = max(group_cost, cost)
            group_end = max(group_end, entry.get("done", entry["time"]))
    return total + group_cost


def delivery(service: str, incident_id: str | None = None, revision: str = "", message_id: str = "") -> dict:
    """The alert for ``service`` (failing revision: the newest of a two-revision bench service by default)."""
    revision = revision or revision_name(service, 2)
    notification = incident_alert(service, revision, incident_id=incident_id, started_at=SYMPTOMS)
    return pubsub_body(notification, message_id=message_id)


_HEADERS = {
    "Content-Type": "application/json",
    "ce-source": "//pubsub.googleapis.com/projects/netra-staging/topics/rollback-watchdog-alerts",
    "ce-specversion": "1.0",
    "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
    "ce-time": "2025-09-16T17:42:34.000Z",
}


def encode(body: dict) -> bytes:
    """Serialize a delivery ahead of time, so a timed ``send`` starts with the bytes going out."""
    return json.dumps(body).encode()


def send(url: str, body: dict | bytes, event_id: str = "", timeout: float = 60.0, retry_refused: float = 0.0) -> int:
    """POST one CloudEvent in binary mode, as Eventarc does; retry refused connections for ``retry_refused`` s."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = dict(_HEADERS, **{"ce-id": event_id or str(time.monotonic_ns())})
    end = time.monotonic() + retry_refused
    while True:
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read()
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except (ConnectionRefusedError, urllib.error.URLError) as error:
            reason = getattr(error, "reason", error)
            if not isinstance(reason, ConnectionRefusedError) or time.monotonic() > end:
                raise
            time.sleep(0.002)


def runtime_env(port: int) -> dict[str, str]:
    """A Cloud Functions-like environment: a handful of variables, not the developer's shell.

    requests reads proxy settings from every variable on each call, so a large
    shell environment would be charged to the watchdog; the function also gets
    no PYTHONDONTWRITEBYTECODE (the bench compiles the sources first, see
    ``compile_sources``).
    """
    keep = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    return {
        **keep,
        "PYTHONUNBUFFERED": "1",
        "PORT": str(port),
        "K_SERVICE": "rollback-watchdog",
        "K_REVISION": "rollback-watchdog-00001-ben",
        "K_CONFIGURATION": "rollback-watchdog",
        "FUNCTION_TARGET": "handle_alert",
        "FUNCTION_SIGNATURE_TYPE": "cloudevent",
        "LOG_EXECUTION_ID": "false",
    }


def compile_sources() -> None:
    """Byte-compile main.py and watchdog/ as a deployed build would, so no cold start pays for compiling."""
    import compileall

    compileall.compile_file(str(ROOT / "main.py"), quiet=1)
    compileall.compile_dir(str(ROOT / "watchdog"), quiet=1)
    compileall.compile_dir(str(Path(__file__).resolve().parent / "floor"), quiet=1)


class Function:
    """``functions-framework --source … --target handle_alert --signature-type cloudevent``, as deployed.

    The CLI serves with gunicorn (1 worker, 4 threads per CPU) unless gunicorn is
    missing; ``started`` is taken just before the process is spawned.
    """

    def __init__(
        self,
        env: dict[str, str],
        source: Path = ROOT / "main.py",
        stderr_path: Path | None = None,
        stdout_path: Path | None = None,
        target: str = "handle_alert",
        signature: str = "cloudevent",
    ) -> None:
        self.target, self.signature = target, signature
        self.port = free_port()
        self.env = {**runtime_env(self.port), **env}
        self.source = source
        self.stderr_path = stderr_path
        self.stdout_path = stdout_path
        self.process: subprocess.Popen | None = None
        self.started = 0.0
        self._files: list = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def spawn(self) -> Function:
        command = [
            FUNCTIONS_FRAMEWORK,
            "--source",
            str(self.source),
            "--target",
            self.target,
            "--signature-type",
            self.signature,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        out = self._open(self.stdout_path)
        err = self._open(self.stderr_path)
        self.started = time.monotonic()
        self.process = subprocess.Popen(command, cwd=self.source.parent, env=self.env, stdout=out, stderr=err)
        return self

    def _open(self, path: Path | None):
        if path is None:
            return subprocess.DEVNULL
        handle = open(path, "wb")  # noqa: SIM115 - closed in stop()
        self._files.append(handle)
        return handle

    def wait_listening(self, timeout: float = 60.0) -> Function:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"functions-framework exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.005)
        raise TimeoutError("functions-framework did not listen")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for handle in self._files:
            handle.close()
        self._files.clear()

    def __enter__(self) -> Function:
        return self.spawn().wait_listening()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def watchdog_env(cloud_run: CloudRunStandIn, slack: SlackStandIn | None = None, **extra: str) -> dict[str, str]:
    env = {
        "CLOUD_RUN_API_ENDPOINT": cloud_run.url,
        "WATCHDOG_SERVICES": "*",
        "WATCHDOG_DEADLINE_SECONDS": "30",
    }
    if slack is not None:
        env.update(SLACK_BOT_TOKEN=TOKEN, SLACK_CHANNEL="C0ONCALL", SLACK_API_URL=slack.api_url)
    env.update(extra)
    return env


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if q < 100 else max(values)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)
