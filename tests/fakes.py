"""In-process fakes for the flows' logic: Cloud Run, Slack and the clock, without a process or a socket.

- :class:`FakeCloudRun` is the Cloud Run port (watchdog/flows/deps.py). It is the real client
  (watchdog/edges/cloudrun.py: its retries, paging, etag handling, settling and error mapping run as they are)
  with only the transport replaced: each call is answered by the Cloud Run stand-in's own model
  (tests/standins/cloudrun.py ``serve``), in process. So it refuses what the stand-in refuses (the grants
  terraform makes, a stale etag, a missing revision), fails as it is scripted to (``state.faults``: 409, 403,
  5xx, a dropped connection, a slow answer, an operation that ends in error, a concurrent deploy), and every call
  is recorded in ``state.requests`` in the stand-in's shape, so a test reads what was sent as it would over HTTP.
- :class:`RecordingNotifier` is Slack (watchdog/edges/slack.py ``Notifier``): it records every post and update
  and answers as scripted (``fail``: the next posts are refused, retryable or not).
- :class:`FakeClock` is the rules' "now", moved by the test.

The flows are built with them by :func:`build` exactly as ``flows/app.build`` builds them for the function.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from google.api_core import exceptions
from google.cloud import run_v2
from google.protobuf import json_format

from tests.standins.cloudrun import CloudRunState, serve
from tests.support import Observed
from watchdog.config import Config, ServiceRef
from watchdog.core.report import Message
from watchdog.edges.cloudrun import CloudRun, ConcurrentChange, image_digests_of, is_etag_conflict
from watchdog.edges.slack import Posted

BASE = "https://run.googleapis.com"


class FakeCloudRun(CloudRun):
    """The Cloud Run port over the stand-in's model, in process; calls are made as ``identity``."""

    def __init__(self, state: CloudRunState, identity: str = "", *, call_timeout: float = 10.0) -> None:
        # Not CloudRun.__init__: no credentials, no client library transport, no thread pool.
        self.state = state
        self.who = identity
        self.local = True
        self._call_timeout = call_timeout
        self._endpoint = ""
        self._base = BASE + "/v2/"

    def identity(self) -> str:
        """ "": as the real client says with the local stand-in's anonymous credentials (``identity`` is the caller
        the stand-in's IAM checks, as the function process's door is)."""
        return ""

    # --- the transport: one call answered by the stand-in's model ---

    def _call(self, method: str, path: str, query: dict[str, str] | None = None, body: dict | None = None) -> dict:
        answer = serve(self.state, method, path, {k: [v] for k, v in (query or {}).items()}, body or {}, self.who)
        if answer is None:
            raise ConnectionError("the connection was dropped")  # requests raises it as an OSError
        status, payload, headers = answer
        if status >= 400:
            raise exceptions.from_http_response(_response(method, path, status, payload, headers))
        return payload

    def _get_json(self, path: str, params: dict, deadline: float) -> dict:
        query = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()}
        return self._retry(deadline)(lambda: self._call("GET", "/v2/" + path, query))()

    def read(self, ref: ServiceRef, deadline: float) -> tuple[dict, Any]:
        history = self.history(ref, deadline)  # the real client reads both at once; here one after the other
        return self.get_service(ref, deadline), history

    def list_services(self, project: str, region: str, deadline: float) -> list[dict]:
        services: list[dict] = []
        token = ""
        while True:
            query = {"pageToken": token} if token else {}
            page = self._retry(deadline)(
                lambda q=query: self._call("GET", f"/v2/projects/{project}/locations/{region}/services", q)
            )()
            services += page.get("services", [])
            token = page.get("nextPageToken", "")
            if not token:
                return services

    def image_digests(self, ref: ServiceRef, revision: str, deadline: float) -> dict[str, str]:
        path = f"/apis/serving.knative.dev/v1/namespaces/{ref.project}/revisions/{revision}"
        return image_digests_of((self._retry(deadline)(lambda: self._call("GET", path))() or {}).get("status") or {})

    def _update(
        self, service: run_v2.Service, paths: list[str], deadline: float, *, validate_only: bool = False,
        once: bool = False,
    ) -> _Operation:  # fmt: skip
        """UpdateService as the REST transport sends it (the body in REST JSON, the mask in snake_case)."""
        body = json_format.MessageToDict(run_v2.Service.pb(service))
        query = {"updateMask": ",".join(paths), **({"validateOnly": "true"} if validate_only else {})}

        def call() -> dict:
            return self._call("PATCH", f"/v2/{service.name}", query, body)

        try:
            answer = call() if once else self._retry(deadline)(call)()
        except exceptions.GoogleAPICallError as error:
            if is_etag_conflict(error):
                raise ConcurrentChange(str(error)) from error
            raise
        return _Operation(self, answer)


class Operation:
    """What an operation that ended in error is to api_core (``error.response``): edges/cloudrun.py tells it from an
    HTTP failure of the polling by this class name."""

    def __init__(self, payload: dict) -> None:
        self.payload = payload


class _Operation:
    """A long-running operation as ``google.api_core.operation.Operation`` is used: ``result()`` polls until done."""

    def __init__(self, client: FakeCloudRun, answer: dict) -> None:
        self._client = client
        self.name = str(answer.get("name", ""))
        self._answer = answer

    def result(self, timeout: float | None = None, polling: Any = None) -> run_v2.Service:
        until = time.monotonic() + (timeout if timeout is not None else 60.0)
        operation = self._answer
        delay = 0.01
        while not operation.get("done"):
            if time.monotonic() > until:
                raise exceptions.RetryError("operation did not finish in time", None)
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
            operation = self._client._call("GET", f"/v2/{self.name}")
        if operation.get("error"):
            error = operation["error"]
            raise exceptions.from_grpc_status(
                int(error.get("code", 2)), str(error.get("message", "")), response=Operation(operation)
            )
        response = {k: v for k, v in (operation.get("response") or {}).items() if k != "@type"}
        return run_v2.Service.from_json(json.dumps(response), ignore_unknown_fields=True)


def _response(method: str, path: str, status: int, payload: dict, headers: dict) -> requests.Response:
    """The answer as requests would hand it to api_core (``from_http_response`` reads the body and the request)."""
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(payload).encode()
    response.headers.update({"Content-Type": "application/json", **headers})
    response.request = requests.Request(method, BASE + path).prepare()
    return response


@dataclass
class RecordingNotifier:
    """Slack as the flows see it: every post and update recorded; ``fail`` scripts refusals of the next posts."""

    posts: list[tuple[Message, str]] = field(default_factory=list)  # (message, thread)
    updates: list[tuple[Message, str]] = field(default_factory=list)  # (message, "channel:ts")
    fail: list[Posted] = field(default_factory=list)  # answered, in order, instead of the next posts
    channel: str = "C0ONCALL"

    def post(self, message: Message, thread: str = "") -> Posted:
        if self.fail:
            return self.fail.pop(0)
        self.posts.append((message, thread))
        return Posted(True, thread=thread or f"{self.channel}:{len(self.posts):06d}.000100")

    def update(self, message: Message, posted: str) -> Posted:
        self.updates.append((message, posted))
        return Posted(True, thread=posted)

    def find(self, card: str, since: float) -> str:
        for index, (message, thread) in enumerate(self.posts, start=1):
            if card and message.card == card and not thread:
                return f"{self.channel}:{index:06d}.000100"
        return ""

    @property
    def texts(self) -> list[str]:
        return [m.text for m, _ in self.posts]


@dataclass
class FakeClock:
    now: float = 1_758_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Metric:
    """The decision metric as the flows call it: (alert, outcome) recorded."""

    written: list[tuple[Any, Any]] = field(default_factory=list)

    def __call__(self, alert: Any, outcome: Any, deadline: float) -> None:
        self.written.append((alert, outcome))


def build(
    env: dict[str, str],
    cloud_run: FakeCloudRun,
    *,
    notifier: Any = None,
    clock: Callable[[], float] = time.time,
    metric: Metric | None = None,
):
    """The watchdog as ``flows/app.build`` makes it for the function, around the fakes."""
    from watchdog.flows.app import build as app_build

    config = Config.from_env(env)
    recorder = notifier if notifier is not None else RecordingNotifier()
    return app_build(config, cloud_run=cloud_run, notifiers=lambda deadline: recorder, clock=clock,
                     metric=metric if metric is not None else Metric())  # fmt: skip


class InProcess(Observed):
    """The watchdog function in process: the same flows, built by ``flows/app.build``, over :class:`FakeCloudRun`
    and the real Slack client against the Slack stand-in (Block Kit and scopes checked as over HTTP).

    It reads like conftest's ``Stack`` (``cloud_run.state``, ``serving``, ``patches``, ``traffic_updates``,
    ``messages``, ``logs``), and :meth:`deliver` answers as functions-framework would: 200 when the delivery is
    acknowledged, 500 when the watchdog raised to have Pub/Sub redeliver."""

    def __init__(self, cloud_run: FakeCloudRun, slack: Any, env: dict[str, str], grants: Any = None,
                 clock: Callable[[], float] = time.time, metric: Metric | None = None) -> None:  # fmt: skip
        self.cloud_run = cloud_run
        self.slack = slack
        self.env = env
        self.grants = grants
        self.metric = metric if metric is not None else Metric()
        self.lines: list[dict] = []
        self._clock = clock
        config = Config.from_env(env)
        from watchdog.flows.app import build as app_build

        self.watchdog = app_build(config, cloud_run=cloud_run, clock=clock, metric=self.metric)

    def deliver(self, body: dict, event_id: str = "", timeout: float = 90.0) -> tuple[int, str]:
        """One delivery as main.py hands it over (the CloudEvent's id and time: the message's, else now): 200 when
        it returns, 500 when it raises (functions-framework answers 500 for any exception; Pub/Sub redelivers)."""
        import contextlib
        import io
        import uuid

        from watchdog.core.intake import rfc3339

        message = body.get("message") if isinstance(body, dict) and isinstance(body.get("message"), dict) else {}
        published = rfc3339(message.get("publishTime")) if isinstance(message.get("publishTime"), str) else None
        delivery_id = event_id or str(message.get("messageId") or "") or str(uuid.uuid4())
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                self.watchdog.handle(body, delivery_id=delivery_id, published_at=published or time.time())
            return 200, "OK"
        except Exception as error:  # as functions-framework: any exception is a 500
            return 500, f"{type(error).__name__}: {error}"
        finally:
            self.lines += [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]

    def restart(self) -> None:
        """A new instance (a cold start): the same world, a watchdog built afresh, nothing remembered in process."""
        from watchdog.flows.app import build as app_build

        self.watchdog = app_build(Config.from_env(self.env), cloud_run=self.cloud_run, clock=self._clock,
                                  metric=self.metric)  # fmt: skip

    def logs(self) -> list[dict]:
        return list(self.lines)
