"""The Cloud Run and IAM stand-ins are held to google-cloud-run's own types.

Every response the stand-ins can serve, over every seed the tests use and
every fault path, is parsed with ``json_format.Parse(..., ignore_unknown_fields=False)``
into the message the v2 API declares for it: a misspelled or invented field in
a seed or in the stand-in fails here. Operations are parsed with their
Any-packed ``metadata``/``response`` (``google.cloud.run.v2.Service``), which
json_format resolves through the descriptor pool the library registers.
"""

from __future__ import annotations

import copy
import json
import time
import urllib.error
import urllib.request

import pytest
from google.cloud import run_v2
from google.iam.v1 import iam_policy_pb2
from google.longrunning import operations_pb2
from google.protobuf import json_format

from tests import cloudrun_seeds
from tests.bench import seeds as bench_seeds
from tests.standins.cloudrun import CloudRunStandIn, Fault
from tests.standins.iam import IamStandIn
from tests.support import fixture

SERVICE = run_v2.Service.pb(run_v2.Service())
REVISION = run_v2.Revision.pb(run_v2.Revision())
ERROR_KEYS = {"code", "message", "status", "details"}  # the Google REST error envelope


def _operator_tools_seed() -> dict:
    now = time.time()
    revisions = [
        cloudrun_seeds.revision("netra-frontend", 1, now - 7200, env={"MODE": "a"}),
        cloudrun_seeds.revision("netra-frontend", 2, now - 3600, ready=False, connector=None, sql=False,
                                interfaces=[{"network": "default", "subnetwork": "default", "tags": ["a"]}]),
        cloudrun_seeds.revision("netra-frontend", 3, now, egress="ALL_TRAFFIC", image="gcr.io/x/y:v3"),
    ]  # fmt: skip
    serving = cloudrun_seeds.short(revisions[0])
    return {
        "services": [
            cloudrun_seeds.service("netra-frontend", revisions, serving=serving, updated=now),
            cloudrun_seeds.service("netra-api", [cloudrun_seeds.revision("netra-api", 1, now)]),
        ],
        "revisions": revisions,
    }


def _reference_seed() -> dict:
    return {
        "services": [fixture("cloudrun/reference_service_checkout.json")],
        "revisions": fixture("cloudrun/reference_revisions_checkout.json")["revisions"],
    }


SEEDS = {
    "incident": lambda: fixture("cloudrun/incident_seed.json"),
    "reference_checkout": _reference_seed,
    "operator_tools": _operator_tools_seed,
    "bench_service": lambda: bench_seeds.service_seed("bench-a", revisions=5, change_depth=2),
    "bench_fleet": lambda: bench_seeds.fleet(3),
}


def call(url: str, method: str = "GET", body: dict | None = None) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def parse(text: str, message):
    return json_format.Parse(text, type(message)(), ignore_unknown_fields=False)


class Served:
    """Requests to the stand-in; every answer is parsed into the type the API declares for it."""

    def __init__(self, api: CloudRunStandIn) -> None:
        self.api = api
        self.parsed: list[str] = []

    def ok(self, path: str, message, method: str = "GET", body: dict | None = None):
        status, text = call(self.api.url + path, method, body)
        assert status == 200, (path, status, text)
        self.parsed.append(type(message).DESCRIPTOR.full_name)
        return parse(text, message), json.loads(text)

    def error(self, path: str, status: int, method: str = "GET", body: dict | None = None) -> dict:
        got, text = call(self.api.url + path, method, body)
        assert got == status, (path, got, text)
        envelope = json.loads(text)
        assert set(envelope) == {"error"}, envelope
        assert set(envelope["error"]) <= ERROR_KEYS, envelope
        return envelope["error"]

    def operation(self, name: str):
        return self.ok(f"/v2/{name}", operations_pb2.Operation())


def _ready_revisions(state, service: str) -> list[str]:
    return [
        r["name"].rsplit("/", 1)[-1]
        for r in state.revisions[service]
        if any(c.get("type") == "Ready" and c.get("state") == "CONDITION_SUCCEEDED" for c in r.get("conditions", []))
    ]


def _patch(service: str, revision: str, etag: str, validate_only: bool = False) -> tuple[str, dict]:
    query = "updateMask=traffic,annotations" + ("&validateOnly=true" if validate_only else "")
    body = {
        "etag": etag,
        "annotations": {"rollback-watchdog/rollbacks": "[]"},
        "traffic": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": revision, "percent": 100}],
    }
    return f"/v2/{service}?{query}", body


@pytest.mark.parametrize("seed", list(SEEDS))
def test_every_seed_parses_as_the_api_types(seed):
    """The seeds themselves, before the stand-in touches them."""
    data = SEEDS[seed]()
    for service in data["services"]:
        parse(json.dumps(service), SERVICE)
    for revision in data["revisions"]:
        parse(json.dumps(revision), REVISION)


@pytest.mark.parametrize("seed", list(SEEDS))
def test_every_response_the_stand_in_serves_parses(seed):
    data = SEEDS[seed]()
    with CloudRunStandIn(copy.deepcopy(data)) as api, IamStandIn(api.state) as iam:
        served = Served(api)
        state = api.state
        locations = sorted({s["name"].split("/services/")[0] for s in data["services"]})
        for location in locations:
            served.ok(f"/v2/{location}/services", run_v2.ListServicesResponse.pb(run_v2.ListServicesResponse()))
        for name in list(state.services):
            served.ok(f"/v2/{name}", SERVICE)
            token = ""
            while True:  # every page of the revisions, two to a page
                _, raw = served.ok(
                    f"/v2/{name}/revisions?pageSize=2" + (f"&pageToken={token}" if token else ""),
                    run_v2.ListRevisionsResponse.pb(run_v2.ListRevisionsResponse()),
                )
                token = raw.get("nextPageToken", "")
                if not token:
                    break
            for revision in state.revisions[name]:
                served.ok(f"/v2/{revision['name']}", REVISION)
            served.ok(
                f"/v2/{name}:testIamPermissions",
                iam_policy_pb2.TestIamPermissionsResponse(),
                "POST",
                {"permissions": ["run.services.get", "run.services.update"]},
            )
            ready = _ready_revisions(state, name)
            if not ready:
                continue
            target = ready[-1]

            # validate_only: done at once, nothing kept
            path, body = _patch(name, target, state.services[name]["etag"], validate_only=True)
            dry, raw = served.ok(path, operations_pb2.Operation(), "PATCH", body)
            assert dry.done
            assert raw["response"]["traffic"][0]["revision"] == target
            served.error(f"/v2/{dry.name}", 404)

            # a successful update: pending operation, the service while reconciling, the done operation
            state.operation_polls_before_done = 1
            path, body = _patch(name, target, state.services[name]["etag"])
            pending, raw = served.ok(path, operations_pb2.Operation(), "PATCH", body)
            assert not pending.done
            reconciling = parse(json.dumps(state.services[name]), SERVICE)
            assert reconciling.reconciling
            assert reconciling.observed_generation < reconciling.generation
            served.operation(pending.name)
            done, raw = served.operation(pending.name)
            assert done.done
            assert raw["response"]["reconciling"] is False
            state.operation_polls_before_done = 0

            # an operation that ends in error (a fault), and one whose target is gone
            state.faults.append(Fault(kind="operation_error", error={"code": 9, "message": "not ready"}))
            path, body = _patch(name, target, state.services[name]["etag"])
            failed, _ = served.ok(path, operations_pb2.Operation(), "PATCH", body)
            done, raw = served.operation(failed.name)
            assert done.done
            assert raw["error"]["code"] == 9
            path, body = _patch(name, "no-such-revision", state.services[name]["etag"])
            missing, _ = served.ok(path, operations_pb2.Operation(), "PATCH", body)
            done, raw = served.operation(missing.name)
            assert "does not exist" in raw["error"]["message"]
            _, raw = served.ok(f"/v2/{name}", SERVICE)
            assert raw["terminalCondition"]["state"] == "CONDITION_FAILED"

            # errors: stale etag, a denied update and actAs, not found, a scripted status
            path, body = _patch(name, target, '"stale"')
            assert served.error(path, 409, "PATCH", body)["status"] == "ABORTED"
            account = (state.services[name].get("template") or {}).get("serviceAccount", "")
            state.granted = {name: {"run.services.get", "run.services.update"}}
            if account:
                path, body = _patch(name, target, "")
                assert "iam.serviceaccounts.actAs" in served.error(path, 403, "PATCH", body)["message"]
                status, text = call(
                    f"{iam.url}/v1/projects/-/serviceAccounts/{account}:testIamPermissions",
                    "POST",
                    {"permissions": ["iam.serviceAccounts.actAs"]},
                )
                assert status == 200
                assert list(parse(text, iam_policy_pb2.TestIamPermissionsResponse()).permissions) == []
            state.granted = {}
            path, body = _patch(name, target, "")
            assert "run.services.update" in served.error(path, 403, "PATCH", body)["message"]
            state.granted = None
            state.faults.append(Fault(method="GET", status=503))
            served.error(f"/v2/{name}", 503)

            # a concurrent deploy, and what the service and the new revision look like after it
            revision = state.deploy(name, dict(copy.deepcopy(state.revisions[name][0]), name=f"{name}/revisions/x-dep"))
            parse(json.dumps(revision), REVISION)
            served.ok(f"/v2/{name}", SERVICE)
        served.error(f"/v2/{locations[0]}/services/not-there", 404)
        assert "google.longrunning.Operation" in served.parsed or not any(
            _ready_revisions(state, n) for n in state.services
        )


@pytest.mark.parametrize(
    ("blocks", "problem"),
    [
        pytest.param([{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}], "cannot exceed 3000",
                     id="section-too-long"),
        pytest.param([{"type": "section", "txt": {"type": "mrkdwn", "text": "x"}}], "must be specified",
                     id="misspelled-text"),
        pytest.param([{"type": "section", "text": {"type": "mrkdwn", "text": "x"}, "acessory": {}}],
                     "unknown or malformed", id="invented-key"),
        pytest.param([{"type": "sektion", "text": {"type": "mrkdwn", "text": "x"}}], "unknown block type",
                     id="unknown-type"),
        pytest.param([{"type": "header", "text": {"type": "mrkdwn", "text": "x"}}], "plain_text", id="mrkdwn-header"),
    ],
)  # fmt: skip
def test_the_slack_stand_in_refuses_what_block_kit_refuses(blocks, problem):
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    from tests.standins.slack import TOKEN, SlackStandIn

    with SlackStandIn() as slack:
        client = WebClient(token=TOKEN, base_url=slack.api_url)
        with pytest.raises(SlackApiError) as refused:
            client.chat_postMessage(channel="C1", text="t", blocks=blocks)
        assert refused.value.response["error"] == "invalid_blocks"
        assert problem in slack.state.invalid[0]["problem"]
        slack.state.invalid.clear()  # refused on purpose: not a watchdog message
        ok = client.chat_postMessage(channel="C1", text="t", blocks=[{"type": "section", "text": {
            "type": "mrkdwn", "text": "<!here> fine"}}])  # fmt: skip
        assert ok["ok"]


def test_a_loud_message_mentions_here_in_its_blocks_by_webhook_too():
    """Slack shows the blocks, not the fallback text: the mention must be in the blocks (bot and webhook)."""
    from tests.standins.slack import TOKEN, SlackStandIn
    from watchdog.config import SlackSettings
    from watchdog.core.report import Message
    from watchdog.edges.slack import SlackBot, SlackWebhook

    message = Message("failed", [{"type": "header", "text": {"type": "plain_text", "text": "ROLLBACK FAILED"}},
                                 {"type": "section", "text": {"type": "mrkdwn", "text": "what happened"}}], loud=True)  # fmt: skip
    with SlackStandIn() as slack:
        remaining = lambda: 10.0  # noqa: E731
        bot = SlackSettings(bot_token=TOKEN, channel="C1", webhook_url="", api_url=slack.api_url)
        hook = SlackSettings(bot_token="", channel="", webhook_url=slack.webhook_url, api_url="")
        assert SlackBot(bot, remaining).post(message).ok
        assert SlackWebhook(hook, remaining).post(message).ok
        for sent in slack.state.messages:
            blocks = sent["blocks"] if isinstance(sent["blocks"], list) else json.loads(sent["blocks"])
            assert blocks[1]["text"]["text"] == "<!here> what happened"
            assert sent["text"] == "<!here> failed"
        assert message.blocks[1]["text"]["text"] == "what happened"  # the Message itself is not changed
