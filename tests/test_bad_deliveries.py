"""Bad deliveries get a clear answer and lose nothing: the drill endpoint's 400 for any body it cannot read,
however deep, and a Pub/Sub push whose message has attributes but no data acknowledged with a reason.
"""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.standins.slack import TOKEN
from tests.support import ROOT, FunctionProcess, deliver, fixture, post, pubsub_body

JSON_HEADERS = {"Content-Type": "application/json"}
PUSH_HEADERS = {"Content-Type": "application/json"}  # a push subscription sends no ce-* headers
SUBSCRIPTION = "projects/netra-staging/subscriptions/rollback-watchdog-alerts-push"


def nested(depth: int, opening: str = "[", closing: str = "]") -> bytes:
    return (opening * depth + closing * depth).encode()


# --- the drill endpoint -----------------------------------------------------------------------------------------


@pytest.fixture
def drill_function(cloud_run, slack, tmp_path):
    env = {
        "CLOUD_RUN_API_ENDPOINT": cloud_run.url,
        "WATCHDOG_SERVICES": "us-central1/netra-backend-staging",
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_CHANNEL": "C0ONCALL",
        "SLACK_API_URL": slack.api_url,
    }
    with FunctionProcess(env, target="drill", signature="http", log_path=tmp_path / "drill.log") as process:
        yield process


DEEP = {
    "a list 30,000 deep": nested(30000),
    "an object 10,000 deep": b'{"a":' * 10000 + b"1" + b"}" * 10000,
    "deep inside a short form": b'{"project": "p", "region": "r", "service": "s", "live": ' + nested(30000) + b"}",
}


@pytest.mark.e2e
@pytest.mark.parametrize("body", DEEP.values(), ids=DEEP.keys())
def test_the_drill_endpoint_answers_400_to_a_body_nested_too_deep(drill_function, cloud_run, body):
    status, text = post(drill_function.url, body, JSON_HEADERS)
    assert status == 400, text
    assert "nested too deeply" in json.loads(text)["error"]
    assert cloud_run.state.requests == []
    assert not [line for line in drill_function.logs() if line.get("severity") in ("ERROR", "CRITICAL")]


@pytest.fixture(scope="module")
def drill_client():
    from functions_framework import create_app

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FUNCTION_TARGET", "drill")  # create_app sets it; set here so it is restored after
        patch.setenv("WATCHDOG_SERVICES", "")  # a drill that parses changes nothing: no service is in scope
        patch.delenv("SLACK_BOT_TOKEN", raising=False)
        yield create_app("drill", str(ROOT / "main.py"), "http").test_client()
    from watchdog.flows import app

    app.reset()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
BODIES = (
    st.binary(max_size=400)
    | JSON.map(lambda v: json.dumps(v).encode())
    | st.integers(1, 60000).map(nested)
    | st.integers(1, 30000).map(lambda d: b'{"version": "1.2", "incident": ' + b'{"a":' * d + b"1" + b"}" * (d + 1))
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES)
def test_the_drill_endpoint_never_answers_5xx(drill_client, body):
    answer = drill_client.post("/", data=body, headers=JSON_HEADERS)
    assert answer.status_code < 500, answer.get_data()[:300]


# --- a Pub/Sub push without data ------------------------------------------------------------------------------


def push(message: dict) -> bytes:
    return json.dumps({"message": message, "subscription": SUBSCRIPTION}).encode()


@pytest.mark.e2e
def test_a_push_with_attributes_and_no_data_is_acknowledged_with_a_reason(start_stack):
    stack = start_stack()
    message_id = str(uuid.uuid4().int)[:16]
    body = push({"attributes": {"origin": "someone's script"}, "messageId": message_id,
                 "publishTime": "2025-09-16T17:42:34.000Z"})  # fmt: skip
    assert post(stack.function.url, body, PUSH_HEADERS) == (200, "OK")  # acknowledged: never redelivered
    [line] = [entry for entry in stack.function.logs() if entry.get("delivery_id") == message_id]
    assert line["decision"] == "ignored"
    assert line["severity"] in ("INFO", "WARNING")
    assert line["message"]  # the reason
    assert stack.patches() == []
    assert stack.messages == []


@pytest.mark.e2e
def test_every_other_delivery_shape_is_handled_as_before(start_stack):
    stack = start_stack(WATCHDOG_DRY_RUN="true")
    alert = pubsub_body(fixture("alerts/incident_backend_startup_metric_threshold.json"))
    assert post(stack.function.url, json.dumps(alert).encode(), PUSH_HEADERS) == (200, "OK")  # a raw push, with data
    assert deliver(stack.function.url, {"message": {"attributes": {"a": "b"}, "messageId": "1"}})[0] == 200  # Eventarc
    assert post(stack.function.url, b"not json", PUSH_HEADERS)[0] == 400  # not a delivery at all: the framework's 400
    assert post(stack.function.url, json.dumps({"message": "x", "subscription": "s"}).encode(), PUSH_HEADERS)[0] == 400
    decided = [line["decision"] for line in stack.function.logs() if "decision" in line]
    assert "report" in decided  # the raw push with data reached the decision (dry run: a report)
