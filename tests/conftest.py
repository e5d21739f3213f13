"""Fixtures that start the real parts: the Cloud Run and Slack stand-ins, and functions-framework."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.standins.cloudrun import CloudRunStandIn
from tests.standins.slack import TOKEN, SlackStandIn
from tests.support import FunctionProcess, fixture

AUTH = "projects/netra-staging/locations/us-central1/services/netra-auth-service"
BACKEND = "projects/netra-staging/locations/us-central1/services/netra-backend-staging"


@dataclass
class Stack:
    cloud_run: CloudRunStandIn
    slack: SlackStandIn
    function: FunctionProcess

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


@pytest.fixture(scope="session")
def _empty_gcloud_config(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("gcloud-config"))


@pytest.fixture(autouse=True)
def no_gcloud_defaults(monkeypatch, _empty_gcloud_config) -> None:
    """The operator commands take --project/--region from gcloud's settings when not given: no test sees the
    settings of the machine it runs on (tests that want some write their own configuration)."""
    monkeypatch.setenv("CLOUDSDK_CONFIG", _empty_gcloud_config)
    for name in ("CLOUDSDK_CORE_PROJECT", "CLOUDSDK_RUN_REGION", "CLOUDSDK_ACTIVE_CONFIG_NAME"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def cloud_run() -> Iterator[CloudRunStandIn]:
    with CloudRunStandIn(fixture("cloudrun/incident_seed.json")) as api:
        yield api


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    """The Slack stand-in; every message the watchdog sent in the test must have been valid Block Kit, and
    every call covered by the app manifest's scopes.

    The watchdog falls back to text only when Slack refuses its blocks, so a
    refusal would not fail the test by itself: it fails here.
    """
    with SlackStandIn() as server:  # the bot has exactly the app manifest's scopes
        yield server
        assert server.state.invalid == [], f"the watchdog sent invalid Block Kit: {server.state.invalid}"
        assert server.state.scope_refusals == [], f"Slack calls beyond the manifest: {server.state.scope_refusals}"


@pytest.fixture
def start_stack(cloud_run, slack, tmp_path) -> Iterator[Callable[..., Stack]]:
    """Start functions-framework with the watchdog pointed at the stand-ins; env overrides as kwargs."""
    started: list[FunctionProcess] = []

    def start(**env: str) -> Stack:
        # each start is a fresh world: stand-ins reset to the incident, no faults, no hooks
        cloud_run.state.reset(fixture("cloudrun/incident_seed.json"))
        slack.state.reset()
        for process in started:
            process.stop()
        base = {
            "CLOUD_RUN_API_ENDPOINT": cloud_run.url,
            "WATCHDOG_SERVICES": "netra-auth-service,us-central1/netra-backend-staging",
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_CHANNEL": "C0ONCALL",
            "SLACK_API_URL": slack.api_url,
            "WATCHDOG_DEADLINE_SECONDS": "8",
        }
        base.update(env)
        process = FunctionProcess(base, log_path=tmp_path / f"function-{len(started)}.log").start()
        started.append(process)
        return Stack(cloud_run, slack, process)

    yield start
    for process in started:
        process.stop()
