"""Fixtures that start the real parts: the Cloud Run and Slack stand-ins, and functions-framework.

IAM as deployed: ``start_stack`` gives the stand-ins the grants terraform/ makes for the services
``WATCHDOG_SERVICES`` names (tests/standins/iam.py), and the function process the door of the functions'
service account, so every end-to-end test runs under exactly those grants. A test about something else
opts out with ``start_stack(unenforced="why")``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.standins import iam
from tests.standins.cloudrun import CloudRunStandIn
from tests.standins.slack import TOKEN, SlackStandIn
from tests.support import FunctionProcess, Observed, deliver, fixture

AUTH = "projects/netra-staging/locations/us-central1/services/netra-auth-service"
BACKEND = "projects/netra-staging/locations/us-central1/services/netra-backend-staging"


@dataclass
class Stack(Observed):
    cloud_run: CloudRunStandIn
    slack: SlackStandIn
    function: FunctionProcess
    grants: iam.Grants | None = None  # as deployed; None: unenforced (the test says why)

    def env_as(self, identity: str, **extra: str) -> dict[str, str]:
        """The function's environment for a process running as ``identity`` (e.g. the buttons' account)."""
        return as_identity({**self.function.env, **extra}, identity, self.cloud_run, self.grants)

    def deliver(self, body: dict, event_id: str = "", timeout: float = 90.0) -> tuple[int, str]:
        """One delivery through functions-framework (as Eventarc posts it): (status, body)."""
        return deliver(self.function.url, body, event_id, timeout)

    def logs(self) -> list[dict]:
        return self.function.logs()


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


SEED = "cloudrun/incident_seed.json"


def deployment(
    services: str,
    seed: dict | None = None,
    project: str = "netra-staging",
    region: str = "us-central1",
    **variables: object,
) -> iam.Deployment:
    """terraform's variables for the services WATCHDOG_SERVICES names (entries without a project or region are the
    incident's), each with its runtime service account as the seed's service runs it; ``variables`` on top."""
    seeded = {s["name"]: s for s in (seed or fixture(SEED))["services"]}
    watched = []
    for entry in filter(None, (e.strip() for e in services.split(","))):
        parts = entry.split("/")
        p, r, name = {1: (project, region, *parts), 2: (project, *parts)}.get(len(parts), parts)
        account = (seeded.get(f"projects/{p}/locations/{r}/services/{name}", {}).get("template") or {}).get(
            "serviceAccount"
        )
        watched.append((p, r, name, account))
    return iam.staging(watched, **variables)


def as_identity(env: dict[str, str], identity: str, cloud_run: Any, grants: iam.Grants | None) -> dict:
    """``env`` with the stand-ins reached through ``identity``'s doors (when the grants are enforced)."""
    if grants is None:
        return env
    from tests.standins import monitoring

    env = {**env, "CLOUD_RUN_API_ENDPOINT": cloud_run.door(identity)}
    standin = monitoring.RUNNING.get(env.get("MONITORING_API_ENDPOINT", ""))
    if standin is not None:
        standin.grants = grants
        env["MONITORING_API_ENDPOINT"] = standin.door(identity)
    return env


@pytest.fixture
def start_stack(cloud_run, slack, tmp_path) -> Iterator[Callable[..., Stack]]:
    """Start functions-framework with the watchdog pointed at the stand-ins; env overrides as kwargs.

    Under the grants terraform/ makes for the services in WATCHDOG_SERVICES (the function reaches Cloud Run,
    and Monitoring when MONITORING_API_ENDPOINT is a running stand-in, through the door of its service account),
    unless ``unenforced`` says why not.
    """
    started: list[FunctionProcess] = []
    enforced: list[iam.Grants] = []

    def start(unenforced: str = "", seed: dict | None = None, **env: str) -> Stack:
        # each start is a fresh world: stand-ins reset to the incident (or ``seed``), no faults, no hooks
        cloud_run.state.reset(seed or fixture(SEED))
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
        grants = None
        if not unenforced:
            if base["WATCHDOG_SERVICES"].strip() in ("*", ""):
                raise ValueError("terraform cannot deploy WATCHDOG_SERVICES='*' or '': say why the test is unenforced")
            # terraform's variables behind the settings that change its grants: the metrics project
            variables = (
                {"metrics_project": base["WATCHDOG_METRICS_PROJECT"]} if "WATCHDOG_METRICS_PROJECT" in base else {}
            )
            grants = iam.deployed(deployment(base["WATCHDOG_SERVICES"], seed, **variables))
            enforced.append(grants)
            base.setdefault("WATCHDOG_SERVICE_ACCOUNT", iam.FN)  # as terraform/function.tf sets it
            base = as_identity(base, iam.FN, cloud_run, grants)
        cloud_run.state.policy = grants  # kept across later resets of the world: it is the deployment's
        process = FunctionProcess(base, log_path=tmp_path / f"function-{len(started)}.log").start()
        started.append(process)
        return Stack(cloud_run, slack, process, grants)

    yield start
    for process in started:
        process.stop()
    for grants in enforced:  # a flow that needed a permission terraform does not grant fails its test
        if not grants.revoked:
            assert grants.denied() == [], "a call the grants terraform/ makes refused"


class _NoDoor:
    """In process, Cloud Run is called as the fake's identity, not through a door."""

    def door(self, identity: str) -> str:
        return ""


@pytest.fixture
def in_process(slack) -> Iterator[Callable[..., Any]]:
    """The watchdog function in process (tests/fakes.py ``InProcess``): the same flows over the Cloud Run stand-in's
    model without a process or a socket, and the real Slack client against the Slack stand-in. Under the grants
    terraform/ makes for WATCHDOG_SERVICES, as ``start_stack``, unless ``unenforced`` says why not."""
    from tests.fakes import FakeCloudRun, InProcess
    from tests.standins.cloudrun import CloudRunState

    enforced: list[iam.Grants] = []

    def start(unenforced: str = "", seed: dict | None = None, clock: Callable[[], float] | None = None,
              **env: str) -> InProcess:  # fmt: skip
        slack.state.reset()
        state = CloudRunState(seed or fixture(SEED))
        base = {
            # a local endpoint: nothing in process ever reaches the real Cloud Run or Monitoring (FakeCloudRun
            # answers Cloud Run; Monitoring only at a MONITORING_API_ENDPOINT the test starts)
            "CLOUD_RUN_API_ENDPOINT": "http://cloud-run.in-process.invalid",
            "WATCHDOG_SERVICES": "netra-auth-service,us-central1/netra-backend-staging",
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_CHANNEL": "C0ONCALL",
            "SLACK_API_URL": slack.api_url,
            "WATCHDOG_DEADLINE_SECONDS": "8",
            **env,
        }
        grants = None
        if not unenforced:
            variables = (
                {"metrics_project": base["WATCHDOG_METRICS_PROJECT"]} if "WATCHDOG_METRICS_PROJECT" in base else {}
            )
            grants = iam.deployed(deployment(base["WATCHDOG_SERVICES"], seed, **variables))
            enforced.append(grants)
            base.setdefault("WATCHDOG_SERVICE_ACCOUNT", iam.FN)
            base = as_identity(base, iam.FN, _NoDoor(), grants)  # Monitoring through the function's door
            base["CLOUD_RUN_API_ENDPOINT"] = "http://cloud-run.in-process.invalid"
        state.policy = grants
        import time as _time

        return InProcess(FakeCloudRun(state, iam.FN if grants is not None else ""), slack, base, grants,
                         clock=clock or _time.time)  # fmt: skip

    yield start
    for grants in enforced:  # a flow that needed a permission terraform does not grant fails its test
        if not grants.revoked:
            assert grants.denied() == [], "a call the grants terraform/ makes refused"
